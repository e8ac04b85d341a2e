/* The control socket's client for the certloop CLI: one blocking request
 * per connection, bounded by a deadline with poll(2). It speaks only what
 * control.c answers (Content-Length or chunked bodies, Connection: close); it is never
 * used on the daemon's loop. */
#include "reactor/control.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/err.h"
#include "util/xalloc.h"

#define RESPONSE_MAX (1u << 30) /* status of 100,000 certificates is ~100 MB (issue 16) */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline: 0 ready, ERR_TIMEOUT, -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        struct pollfd p = {.fd = fd, .events = events};
        if (left <= 0)
            return ERR_TIMEOUT;
        int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

static int do_connect(int fd, const char *path, int64_t deadline)
{
    struct sockaddr_un sa;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    /* a unix socket connects at once, or says EAGAIN when the server's
     * backlog is full: try again until the deadline */
    for (;;) {
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        if (now_ms() >= deadline)
            return ERR_TIMEOUT;
        poll(NULL, 0, 20); /* a short pause before the next try */
    }
}

static int send_all(int fd, const char *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN)
            return -errno;
        int rc = wait_fd(fd, POLLOUT, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Reads until EOF into b. */
static int recv_all(int fd, struct buf *b, int64_t deadline)
{
    char tmp[8192];

    for (;;) {
        ssize_t r = recv(fd, tmp, sizeof(tmp), 0);
        if (r == 0)
            return 0;
        if (r > 0) {
            int rc = buf_append(b, tmp, (size_t)r);
            if (rc < 0)
                return rc;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
}

/* Decodes the chunked body p[0..n) in place (RFC 9112 §7.1: hex size,
 * optional extensions, CRLF, data, CRLF; a last chunk of size 0, then
 * trailer lines and the empty line): *len bytes at p. ERR_PARSE when it is
 * malformed or cut short (no last chunk: the daemon cut the answer). */
static int dechunk(char *p, size_t n, size_t *len)
{
    const char *r = p, *end = p + n;
    char *w = p;

    for (;;) {
        const char *eol = memchr(r, '\n', (size_t)(end - r));
        const char *q = r;
        size_t size = 0;
        if (eol == NULL)
            return ERR_PARSE;
        for (; q < eol && isxdigit((unsigned char)*q); q++) {
            if (size > (SIZE_MAX >> 4))
                return ERR_PARSE;
            size = size * 16 + (size_t)(*q <= '9' ? *q - '0' : (*q | 0x20) - 'a' + 10);
        }
        if (q == r || (q < eol && *q != ';' && *q != '\r'))
            return ERR_PARSE;
        r = eol + 1;
        if (size == 0)
            break;
        if ((size_t)(end - r) < size + 1)
            return ERR_PARSE;
        memmove(w, r, size);
        w += size;
        r += size;
        if (r[0] == '\r')
            r++;
        if (r >= end || r[0] != '\n')
            return ERR_PARSE;
        r++;
    }
    for (;;) { /* trailer fields, up to the empty line */
        const char *eol = memchr(r, '\n', (size_t)(end - r));
        if (eol == NULL)
            return ERR_PARSE;
        bool empty = eol == r || (eol == r + 1 && r[0] == '\r');
        r = eol + 1;
        if (empty)
            break;
    }
    *len = (size_t)(w - p);
    return 0;
}

/* "HTTP/1.1 200 OK\r\nName: value\r\n...\r\n\r\nBODY" (a chunked body is
 * decoded in p) */
static int parse_response(char *p, size_t n, struct ctl_response *out)
{
    const char *end = p + n;
    const char *eol = memchr(p, '\n', n);
    size_t clen = 0;
    bool have_len = false, chunked = false;
    char *ctype = NULL;

    if (eol == NULL || n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' || p[9] < '1' ||
        p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
        return ERR_PARSE;
    out->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    const char *line = eol + 1;
    for (;;) {
        if (line >= end)
            goto bad;
        eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            goto bad;
        size_t llen = (size_t)(eol - line);
        if (llen > 0 && line[llen - 1] == '\r')
            llen--;
        if (llen == 0)
            break;
        const char *colon = memchr(line, ':', llen);
        if (colon == NULL)
            goto bad;
        const char *v = colon + 1;
        const char *vend = line + llen;
        while (v < vend && (*v == ' ' || *v == '\t'))
            v++;
        size_t klen = (size_t)(colon - line);
        if (klen == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
            char *e;
            char num[24];
            size_t vl = (size_t)(vend - v);
            if (vl == 0 || vl >= sizeof(num))
                goto bad;
            memcpy(num, v, vl);
            num[vl] = '\0';
            unsigned long long x = strtoull(num, &e, 10);
            if (*e != '\0' || num[0] < '0' || num[0] > '9')
                goto bad;
            clen = (size_t)x;
            have_len = true;
        } else if (klen == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
            /* the daemon sends only "chunked" (control.c stream_piece) */
            if ((size_t)(vend - v) != 7 || strncasecmp(v, "chunked", 7) != 0)
                goto bad;
            chunked = true;
        } else if (klen == 12 && strncasecmp(line, "Content-Type", 12) == 0) {
            free(ctype);
            ctype = xstrndup(v, (size_t)(vend - v));
        }
        line = eol + 1;
    }
    const char *body = eol + 1;
    size_t blen = (size_t)(end - body);
    if (chunked) {
        if (have_len || dechunk(p + (body - p), blen, &blen) < 0)
            goto bad;
    } else if (have_len) {
        if (blen < clen)
            goto bad; /* cut short */
        blen = clen;
    }
    out->body = xstrndup(body, blen);
    out->body_len = blen;
    out->content_type = ctype;
    return 0;
bad:
    free(ctype);
    return ERR_PARSE;
}

int ctl_request(const char *path, const char *method, const char *target, const char *body,
                int timeout_ms, struct ctl_response *out, char **err)
{
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 10000);
    struct buf req = BUF_INIT(SIZE_MAX);
    struct buf resp = BUF_INIT(RESPONSE_MAX);
    struct ctl_response r = {0};
    int fd = -1;
    int rc;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = -errno;
        *err = xasprintf("socket: %s", err_str(rc));
        goto out;
    }
    rc = do_connect(fd, path, deadline);
    if (rc < 0) {
        if (rc == ERR_TIMEOUT)
            *err = xasprintf("no daemon answers on %s: its backlog stayed full for %d ms", path,
                             timeout_ms);
        else
            *err = xasprintf("no daemon answers on %s: %s", path, strerror(-rc));
        goto out;
    }
    buf_printf(&req, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n", method, target);
    if (body != NULL)
        buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                   strlen(body), body);
    else
        buf_printf(&req, "Content-Length: 0\r\n\r\n");
    rc = send_all(fd, req.data, req.len, deadline);
    if (rc == 0)
        rc = recv_all(fd, &resp, deadline);
    if (rc == ERR_TIMEOUT) {
        *err = xasprintf("%s: no answer within %d ms", path, timeout_ms);
        goto out;
    }
    if (rc == ERR_TOO_BIG) {
        *err = xasprintf("%s: answer too large", path);
        goto out;
    }
    if (rc < 0) {
        *err = xasprintf("%s: %s", path, err_str(rc));
        goto out;
    }
    rc = resp.data != NULL ? parse_response(resp.data, resp.len, &r) : ERR_PARSE;
    if (rc < 0) {
        *err = xasprintf("%s: malformed answer", path);
        goto out;
    }
    *out = r;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    buf_fini(&req);
    buf_fini(&resp);
    return rc;
}

void ctl_response_fini(struct ctl_response *r)
{
    if (r == NULL)
        return;
    free(r->content_type);
    free(r->body);
    r->content_type = NULL;
    r->body = NULL;
}

/* ---- `certloop status` table */

static void fmt_when(const json_t *v, char *out, size_t n)
{
    struct tm tm;
    time_t t;

    if (!json_is_integer(v)) {
        snprintf(out, n, "-");
        return;
    }
    t = (time_t)json_integer_value(v);
    if (gmtime_r(&t, &tm) == NULL || strftime(out, n, "%Y-%m-%d %H:%M", &tm) == 0)
        snprintf(out, n, "?");
}

/* A printable copy of a JSON string member ("-" when absent), capped. */
static char *text_of(const json_t *obj, const char *key, const char *prefix)
{
    const json_t *v = json_object_get(obj, key);
    const char *s;
    char *out;
    size_t k = 0;

    if (!json_is_string(v))
        return NULL;
    s = json_string_value(v);
    size_t plen = strlen(prefix);
    size_t len = strlen(s);
    if (len > 400)
        len = 400;
    out = xmalloc(plen + len + 1);
    memcpy(out, prefix, plen);
    k = plen;
    for (size_t i = 0; i < len; i++)
        out[k++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '.' : s[i];
    out[k] = '\0';
    return out;
}

int ctl_status_one(const char *json, size_t len, const char *name, bool as_json, FILE *out)
{
    json_t *root = json_loadb(json, len, 0, NULL);
    const json_t *certs = json_object_get(root, "certificates");
    const json_t *c = NULL;
    int rc = ERR_PARSE;

    if (!json_is_array(certs))
        goto out;
    for (size_t i = 0; i < json_array_size(certs) && c == NULL; i++) {
        const json_t *x = json_array_get(certs, i);
        const char *n = json_string_value(json_object_get(x, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            c = x;
    }
    rc = -ENOENT;
    if (c == NULL)
        goto out;
    rc = 0;
    if (as_json) {
        char *s = json_dumps(c, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s == NULL)
            abort();
        fprintf(out, "%s\n", s);
        free(s);
        goto out;
    }
    static const struct {
        const char *label, *key;
        bool time;
    } rows[] = {
        {"state", "state", false},
        {"ca", "ca", false},
        {"from", "from", false},
        {"hub down", "hub_error", false},
        {"profile", "profile", false},
        {"not after", "not_after", true},
        {"next renewal", "next_renewal", true},
        {"reason", "reason", false},
        {"last error", "last_error", false},
        {"last error at", "last_error_at", true},
        {"last success", "last_success_at", true},
        {"persist until", "persist_until", true},
    };
    fprintf(out, "%s\n", name);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const json_t *v = json_object_get(c, rows[i].key);
        if (v == NULL || json_is_null(v))
            continue;
        char when[32];
        char *t = NULL;
        if (rows[i].time)
            fmt_when(v, when, sizeof(when));
        else
            t = text_of(c, rows[i].key, "");
        fprintf(out, "  %-13s %s%s\n", rows[i].label, rows[i].time ? when : t,
                rows[i].time ? " UTC" : "");
        free(t);
    }
    const json_t *h = json_object_get(c, "history");
    fprintf(out, "history (oldest first, kept across restarts):\n");
    if (json_array_size(h) == 0)
        fprintf(out, "  (none)\n");
    for (size_t i = 0; i < json_array_size(h); i++) {
        const json_t *e = json_array_get(h, i);
        char when[32];
        fmt_when(json_object_get(e, "time"), when, sizeof(when));
        char *ev = text_of(e, "event", "");
        char *de = text_of(e, "detail", "");
        fprintf(out, "  %s  %-12s %s\n", when, ev != NULL ? ev : "-", de != NULL ? de : "");
        free(ev);
        free(de);
    }
    const json_t *lg = json_object_get(c, "log");
    if (json_array_size(lg) > 0)
        fprintf(out, "log of the last run (this daemon's, newest 40 lines):\n");
    for (size_t i = 0; i < json_array_size(lg); i++) {
        const json_t *e = json_array_get(lg, i);
        char when[32];
        fmt_when(json_object_get(e, "time"), when, sizeof(when));
        char *line = text_of(e, "line", "");
        fprintf(out, "  %s  %s\n", when, line != NULL ? line : "");
        free(line);
    }
out:
    json_decref(root);
    return rc;
}

struct row {
    char *name, *state, *note;
    char not_after[32], next[32];
};

int ctl_status_table(const char *json, size_t len, FILE *out)
{
    json_t *root = json_loadb(json, len, 0, NULL);
    const json_t *certs = json_object_get(root, "certificates");
    struct row *rows = NULL;
    size_t n = 0, w[4] = {4, 5, 9, 12}; /* header widths */
    int rc = ERR_PARSE;

    if (!json_is_array(certs))
        goto out;
    n = json_array_size(certs);
    rows = xcalloc(n + 1, sizeof(*rows));
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(certs, i);
        struct row *r = &rows[i];
        if (!json_is_object(c))
            goto out;
        r->name = text_of(c, "name", "");
        if (r->name == NULL)
            goto out;
        r->state = text_of(c, "state", "");
        if (r->state == NULL)
            r->state = xstrdup("-");
        fmt_when(json_object_get(c, "not_after"), r->not_after, sizeof(r->not_after));
        fmt_when(json_object_get(c, "next_renewal"), r->next, sizeof(r->next));
        r->note = text_of(c, "last_error", "error: ");
        if (r->note == NULL)
            r->note = text_of(c, "reason", "");
        if (r->note == NULL)
            r->note = xstrdup("");
        if (json_is_true(json_object_get(c, "persist_expiring"))) {
            char until[64];
            fmt_when(json_object_get(c, "persist_until"), until, sizeof(until));
            char *n2 = xasprintf("[dns-persist-01 records expire %s] %s", until, r->note);
            free(r->note);
            r->note = n2;
        }
        char *hub = text_of(c, "hub_error", "");
        char *from = text_of(c, "from", "");
        if (from != NULL) {
            char *n2 = xasprintf("[from %s] %s%s%s", from, hub != NULL ? "hub down: " : "",
                                 hub != NULL ? hub : "", hub != NULL ? "; " : "");
            char *n3 = xasprintf("%s%s", n2, r->note);
            free(r->note);
            free(n2);
            r->note = n3;
        }
        free(hub);
        free(from);
        char *prof = text_of(c, "profile", "");
        if (prof != NULL) {
            char *n2 = xasprintf("[profile %s] %s", prof, r->note);
            free(r->note);
            free(prof);
            r->note = n2;
        }
        size_t l[4] = {strlen(r->name), strlen(r->state), strlen(r->not_after), strlen(r->next)};
        for (int k = 0; k < 4; k++)
            w[k] = l[k] > w[k] ? l[k] : w[k];
    }
    fprintf(out, "%-*s  %-*s  %-*s  %-*s  %s\n", (int)w[0], "NAME", (int)w[1], "STATE", (int)w[2],
            "NOT AFTER", (int)w[3], "NEXT RENEWAL", "REASON/LAST ERROR");
    for (size_t i = 0; i < n; i++) {
        const struct row *r = &rows[i];
        fprintf(out, "%-*s  %-*s  %-*s  %-*s  %s\n", (int)w[0], r->name, (int)w[1], r->state,
                (int)w[2], r->not_after, (int)w[3], r->next, r->note);
    }
    if (n == 0)
        fprintf(out, "(no certificates)\n");
    /* a store that cannot be reached (a database away): said under the table */
    const json_t *st = json_object_get(root, "store");
    if (json_is_false(json_object_get(st, "reachable"))) {
        char *type = text_of(st, "type", "");
        char *since = text_of(st, "unreachable_since", "");
        char *why = text_of(st, "error", "");
        fprintf(out,
                "store %s: UNREACHABLE since %s (%s); %lld writes waiting, deployed files "
                "stay, retrying\n",
                type != NULL ? type : "?", since != NULL ? since : "?", why != NULL ? why : "?",
                (long long)json_integer_value(json_object_get(st, "writes_waiting")));
        free(type);
        free(since);
        free(why);
    }
    rc = 0;
out:
    if (rows != NULL) {
        for (size_t i = 0; i < n; i++) {
            free(rows[i].name);
            free(rows[i].state);
            free(rows[i].note);
        }
        free(rows);
    }
    json_decref(root);
    return rc;
}

/* "lagging: a b" from an array of names, masked, appended to b (with "; "
 * before it when b is not empty). */
static void names_note(struct buf *b, const json_t *arr, const char *what)
{
    size_t i;
    const json_t *v;

    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return;
    buf_printf(b, "%s%s:", b->len > 0 ? "; " : "", what);
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            continue;
        buf_append_str(b, " ");
        for (const char *p = json_string_value(v); *p != '\0' && b->len < 2000; p++)
            buf_append(b, (unsigned char)*p < 0x20 || *p == 0x7f ? "." : p, 1);
    }
}

int ctl_fleet_table(const char *json, size_t len, bool as_json, FILE *out)
{
    json_t *root = json_loadb(json, len, 0, NULL);
    const json_t *fleet = json_object_get(root, "fleet");
    const json_t *insts = json_object_get(fleet, "instances");
    int rc = ERR_PARSE;

    if (json_is_object(root) && json_object_get(root, "certificates") != NULL && fleet == NULL) {
        rc = -ENOENT;
        goto out;
    }
    if (!json_is_object(fleet) || !json_is_array(insts))
        goto out;
    if (as_json) {
        char *s = json_dumps(fleet, JSON_INDENT(2) | JSON_SORT_KEYS);
        fprintf(out, "%s\n", s);
        free(s);
        rc = 0;
        goto out;
    }
    char *me = text_of(fleet, "self", "");
    char *db = text_of(fleet, "database", "");
    const json_t *asof = json_object_get(fleet, "as_of");
    char when[32];
    fmt_when(asof, when, sizeof(when));
    fprintf(out, "fleet seen by %s: database %s, read %s, silent after %lld s\n",
            me != NULL ? me : "?", db != NULL ? db : "?", when,
            (long long)json_integer_value(json_object_get(fleet, "silent_after")));
    free(me);
    free(db);
    fprintf(out, "%-20s  %-10s  %-16s  %9s  %8s  %s\n", "INSTANCE", "VERSION", "CONFIG",
            "HEARTBEAT", "DEPLOYED", "STATE");
    size_t i;
    const json_t *o;
    json_array_foreach(insts, i, o)
    {
        char *name = text_of(o, "instance", ""), *ver = text_of(o, "version", "");
        char *dig = text_of(o, "config_digest", "");
        struct buf note = BUF_INIT(4096);
        bool silent = json_is_true(json_object_get(o, "silent"));
        if (silent)
            buf_append_str(&note, "SILENT");
        names_note(&note, json_object_get(o, "lagging"), "LAGGING");
        names_note(&note, json_object_get(o, "failed"), "FAILED");
        char age[24];
        snprintf(age, sizeof(age), "%llds ago",
                 (long long)json_integer_value(json_object_get(o, "heartbeat_age")));
        fprintf(out, "%-20s  %-10s  %-16s  %9s  %8lld  %s\n", name != NULL ? name : "?",
                ver != NULL ? ver : "?", dig != NULL ? dig : "?", age,
                (long long)json_integer_value(json_object_get(o, "deployed")),
                note.len > 0 ? note.data : "ok");
        buf_fini(&note);
        free(name);
        free(ver);
        free(dig);
    }
    if (json_array_size(insts) == 0)
        fprintf(out, "(no instance has written a heartbeat yet)\n");
    json_array_foreach(json_object_get(fleet, "conflicts"), i, o)
    {
        char *cert = text_of(o, "certificate", ""), *inst = text_of(o, "instance", "");
        char *names = text_of(o, "names", ""), *key = text_of(o, "key", "");
        fprintf(out, "CONFLICT %s: instance %s declares it as %s (key %s)\n",
                cert != NULL ? cert : "?", inst != NULL ? inst : "?", names != NULL ? names : "?",
                key != NULL ? key : "?");
        free(cert);
        free(inst);
        free(names);
        free(key);
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}
