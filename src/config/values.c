/* Value parsers of the configuration: durations, IP:PORT addresses, URLs,
 * strings and string lists, octal modes, event lists and `domains`. Each
 * looks at one value as written and reports its own errors; none looks at
 * the file system, the user database or another section (checks.c does). */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config/config_internal.h"
#include "util/timefmt.h"
#include "util/xalloc.h"

int config_duration_parse(const char *s, int64_t *out)
{
    static const struct {
        char unit;
        int64_t secs;
    } units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
    int64_t total = 0;
    size_t next_unit = 0;
    const char *p = s;

    if (s == NULL || *s == '\0')
        return -EINVAL;
    while (*p != '\0') {
        int64_t v = 0;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (++digits > 9)
                return -EINVAL;
            v = v * 10 + (*p - '0');
            p++;
        }
        if (digits == 0)
            return -EINVAL;
        size_t u = next_unit;
        while (u < sizeof(units) / sizeof(units[0]) && units[u].unit != *p)
            u++;
        if (u == sizeof(units) / sizeof(units[0]))
            return -EINVAL; /* unknown unit, missing unit, or units out of order */
        total += v * units[u].secs;
        next_unit = u + 1;
        p++;
    }
    *out = total;
    return 0;
}

static int parse_port(const char *p, int *port)
{
    int v = 0;

    if (*p == '\0')
        return -EINVAL;
    for (int n = 0; *p != '\0'; p++, n++) {
        if (*p < '0' || *p > '9' || n >= 5)
            return -EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (v > 65535)
        return -EINVAL;
    *port = v;
    return 0;
}

int config_addr_parse(const char *s, int default_port, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *portstr = NULL;
    int port = default_port;
    bool v6;

    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || (size_t)(end - s - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        if (end[1] == ':')
            portstr = end + 2;
        else if (end[1] != '\0')
            return -EINVAL;
        v6 = true;
    } else {
        const char *colon = strchr(s, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            /* bare IPv6 address: no port can follow */
            if (strlen(s) >= sizeof(host))
                return -EINVAL;
            memcpy(host, s, strlen(s) + 1);
            v6 = true;
        } else {
            size_t hl = colon != NULL ? (size_t)(colon - s) : strlen(s);
            if (hl >= sizeof(host))
                return -EINVAL;
            memcpy(host, s, hl);
            host[hl] = '\0';
            if (colon != NULL)
                portstr = colon + 1;
            v6 = false;
        }
    }
    if (portstr != NULL) {
        if (parse_port(portstr, &port) < 0)
            return -EINVAL;
    } else if (default_port < 0) {
        return -EINVAL;
    }

    struct sockaddr_storage tmp;
    memset(&tmp, 0, sizeof(tmp));
    if (v6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&tmp;
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return -EINVAL;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&tmp;
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return -EINVAL;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof(*a4);
    }
    *ss = tmp;
    return 0;
}

/* Splits an http(s) URL: returns false if malformed. host is lower-cased. */
bool config_url_split(const char *u, bool *https, char *host, size_t hostcap)
{
    const char *p;

    if (strncasecmp(u, "https://", 8) == 0) {
        *https = true;
        p = u + 8;
    } else if (strncasecmp(u, "http://", 7) == 0) {
        *https = false;
        p = u + 7;
    } else {
        return false;
    }
    size_t alen = strcspn(p, "/?#");
    if (memchr(p, '@', alen) != NULL)
        return false;
    const char *hend;
    const char *hstart = p;
    if (*p == '[') {
        hend = memchr(p, ']', alen);
        if (hend == NULL)
            return false;
        hstart = p + 1;
        if (hend + 1 < p + alen && hend[1] != ':')
            return false;
    } else {
        hend = memchr(p, ':', alen);
        if (hend == NULL)
            hend = p + alen;
    }
    size_t hl = (size_t)(hend - hstart);
    if (hl == 0 || hl >= hostcap)
        return false;
    for (size_t i = 0; i < hl; i++) {
        char ch = hstart[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch + 32);
        if ((unsigned char)ch <= 0x20)
            return false;
        host[i] = ch;
    }
    host[hl] = '\0';
    /* a port, if any, is digits only */
    const char *pe = p + alen;
    const char *colon = (*p == '[') ? hend + 1 : hend;
    if (colon < pe && *colon == ':') {
        if (colon + 1 == pe)
            return false;
        for (const char *q = colon + 1; q < pe; q++) {
            if (*q < '0' || *q > '9')
                return false;
        }
    }
    return true;
}

void config_strv_free(struct cfg_strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

static bool str_is_clean(struct cctx *c, const struct toml_value *v, const char *path)
{
    if (strlen(v->u.s.ptr) != v->u.s.len) {
        ERR(c, v->pos, path, "must not contain NUL characters");
        return false;
    }
    return true;
}

bool config_conv_str(struct cctx *c, const struct toml_keyval *kv, const char *path, char **field,
                     bool abs_path)
{
    const struct toml_value *v = &kv->val;

    if (v->type != TOML_STRING) {
        config_type_error(c, v, path, "a string");
        return false;
    }
    if (!str_is_clean(c, v, path))
        return false;
    if (v->u.s.len == 0) {
        ERR(c, v->pos, path, "must not be empty");
        return false;
    }
    if (abs_path && v->u.s.ptr[0] != '/') {
        char b[256];
        ERR(c, v->pos, path, "\"%s\" is not an absolute path",
            config_show(b, sizeof(b), v->u.s.ptr));
        return false;
    }
    free(*field);
    *field = xstrdup(v->u.s.ptr);
    return true;
}

bool config_conv_duration(struct cctx *c, const struct toml_value *v, const char *path, int64_t min,
                          int64_t *field)
{
    int64_t secs;

    if (v->type == TOML_INTEGER) {
        secs = v->u.i;
    } else if (v->type == TOML_STRING) {
        if (!str_is_clean(c, v, path))
            return false;
        if (config_duration_parse(v->u.s.ptr, &secs) < 0) {
            char b[128];
            ERR(c, v->pos, path,
                "\"%s\" is not a duration: expected a number with a unit d, h, m or s, "
                "largest first (\"90d\", \"12h\", \"30m\", \"45s\", \"1d12h\")",
                config_show(b, sizeof(b), v->u.s.ptr));
            return false;
        }
    } else {
        config_type_error(c, v, path, "a duration string (\"30d\", \"90s\")");
        return false;
    }
    if (secs < min) {
        ERR(c, v->pos, path, "must be at least %llds", (long long)min);
        return false;
    }
    *field = secs;
    return true;
}

bool config_conv_strv(struct cctx *c, const struct toml_keyval *kv, const char *path,
                      struct cfg_strv *field)
{
    const struct toml_value *v = &kv->val;
    bool ok = true;

    if (v->type != TOML_ARRAY) {
        config_type_error(c, v, path, "an array of strings");
        return false;
    }
    const struct toml_array *a = v->u.arr;
    for (size_t i = 0; i < a->n; i++) {
        if (a->items[i].type != TOML_STRING) {
            char *ep = xasprintf("%s[%zu]", path, i);
            config_type_error(c, &a->items[i], ep, "a string");
            free(ep);
            ok = false;
        } else if (strlen(a->items[i].u.s.ptr) != a->items[i].u.s.len) {
            char *ep = xasprintf("%s[%zu]", path, i);
            ERR(c, a->items[i].pos, ep, "must not contain NUL characters");
            free(ep);
            ok = false;
        }
    }
    if (!ok)
        return false;
    config_strv_free(field);
    field->v = xcalloc(a->n + 1, sizeof(char *));
    for (size_t i = 0; i < a->n; i++)
        field->v[i] = xstrdup(a->items[i].u.s.ptr);
    field->n = a->n;
    return true;
}

/* Rewrites each element to "IP:PORT" form; default_port < 0: port required. */
static bool check_addrs(struct cctx *c, const struct toml_keyval *kv, const char *path,
                        struct cfg_strv *v, int default_port)
{
    bool ok = true;

    for (size_t i = 0; i < v->n; i++) {
        struct sockaddr_storage ss;
        socklen_t len;
        char b[128];

        if (config_addr_parse(v->v[i], default_port, &ss, &len) < 0) {
            char *ep = kv->val.type == TOML_ARRAY ? xasprintf("%s[%zu]", path, i) : xstrdup(path);
            struct toml_pos pos =
                kv->val.type == TOML_ARRAY ? kv->val.u.arr->items[i].pos : kv->val.pos;
            if (default_port < 0)
                ERR(c, pos, ep, "\"%s\" is not \"IP:PORT\" or \"[IPv6]:PORT\"",
                    config_show(b, sizeof(b), v->v[i]));
            else
                ERR(c, pos, ep, "\"%s\" is not an IP address (with an optional :PORT)",
                    config_show(b, sizeof(b), v->v[i]));
            free(ep);
            ok = false;
            continue;
        }
        bool has_port = v->v[i][0] == '[' ? strstr(v->v[i], "]:") != NULL
                                          : strchr(v->v[i], ':') != NULL &&
                                                strchr(v->v[i], ':') == strrchr(v->v[i], ':');
        if (!has_port) {
            char *n;
            if (ss.ss_family == AF_INET6 && v->v[i][0] != '[')
                n = xasprintf("[%s]:%d", v->v[i], default_port);
            else
                n = xasprintf("%s:%d", v->v[i], default_port);
            free(v->v[i]);
            v->v[i] = n;
        }
    }
    return ok;
}

bool config_check_listen(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field)
{
    struct cfg_http01 *h = obj;

    h->listen_written = true; /* a webroot turns only the default listener off */
    return check_addrs(c, kv, path, field, -1);
}

bool config_check_listen_addrs(struct cctx *c, const struct toml_keyval *kv, const char *path,
                               void *obj, void *field)
{
    (void)obj;
    return check_addrs(c, kv, path, field, -1);
}

bool config_check_dns_addrs(struct cctx *c, const struct toml_keyval *kv, const char *path,
                            void *obj, void *field)
{
    (void)obj;
    return check_addrs(c, kv, path, field, 53);
}

/* A single "IP[:PORT]" string (dns server). */
bool config_check_dns_addr(struct cctx *c, const struct toml_keyval *kv, const char *path,
                           void *obj, void *field)
{
    char **s = field;
    struct cfg_strv one = {.v = (char *[]){*s, NULL}, .n = 1};

    (void)obj;
    if (!check_addrs(c, kv, path, &one, 53))
        return false;
    *s = one.v[0];
    return true;
}

bool config_check_http_url(struct cctx *c, const struct toml_keyval *kv, const char *path,
                           void *obj, void *field)
{
    char host[256], b[256];
    bool https;
    const char *u = *(char **)field;

    (void)obj;
    if (!config_url_split(u, &https, host, sizeof(host))) {
        ERR(c, kv->val.pos, path, "\"%s\" is not an http:// or https:// URL",
            config_show(b, sizeof(b), u));
        return false;
    }
    return true;
}

bool config_check_smtp_url(struct cctx *c, const struct toml_keyval *kv, const char *path,
                           void *obj, void *field)
{
    const char *u = *(char **)field;
    char b[256];
    size_t skip = strncmp(u, "smtp://", 7) == 0 ? 7 : strncmp(u, "smtps://", 8) == 0 ? 8 : 0;

    (void)obj;
    if (skip == 0 || u[skip] == '\0' || u[skip] == '/' || u[skip] == ':' ||
        strpbrk(u + skip, "/?#@ ") != NULL) {
        ERR(c, kv->val.pos, path,
            "\"%s\" is not smtp://HOST[:PORT] (STARTTLS) or smtps://HOST[:PORT] (TLS)",
            config_show(b, sizeof(b), u));
        return false;
    }
    return true;
}

/* A plain address local@domain: no display name, no angle brackets, no
 * whitespace or control characters (they would end up in mail headers). */
static bool mail_addr_ok(const char *a)
{
    const char *at = strchr(a, '@');

    if (at == NULL || at == a || at[1] == '\0' || strchr(at + 1, '@') != NULL)
        return false;
    for (const char *p = a; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == ',' || *p == '"' ||
            *p == 0x7f)
            return false;
    }
    return true;
}

bool config_check_mail_addr(struct cctx *c, const struct toml_keyval *kv, const char *path,
                            void *obj, void *field)
{
    const char *a = *(char **)field;
    char b[256];

    (void)obj;
    if (!mail_addr_ok(a)) {
        ERR(c, kv->val.pos, path, "\"%s\" is not an address like certloop@example.org",
            config_show(b, sizeof(b), a));
        return false;
    }
    return true;
}

bool config_check_mail_addrs(struct cctx *c, const struct toml_keyval *kv, const char *path,
                             void *obj, void *field)
{
    const struct cfg_strv *v = field;
    char b[256];
    bool ok = true;

    (void)obj;
    if (v->n == 0) {
        ERR(c, kv->val.pos, path, "at least one address is needed");
        return false;
    }
    for (size_t i = 0; i < v->n; i++) {
        if (!mail_addr_ok(v->v[i])) {
            const struct toml_value *e = kv->val.type == TOML_ARRAY && i < kv->val.u.arr->n
                                             ? &kv->val.u.arr->items[i]
                                             : &kv->val;
            ERR(c, e->pos, path, "\"%s\" is not an address like ops@example.org",
                config_show(b, sizeof(b), v->v[i]));
            ok = false;
        }
    }
    return ok;
}

bool config_check_contact(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                          void *field)
{
    const struct cfg_strv *v = field;
    bool ok = true;

    (void)obj;
    for (size_t i = 0; i < v->n; i++) {
        if (strncmp(v->v[i], "mailto:", 7) != 0 || v->v[i][7] == '\0' ||
            strchr(v->v[i] + 7, '@') == NULL) {
            char b[256];
            char *ep = xasprintf("%s[%zu]", path, i);
            ERR(c, kv->val.u.arr->items[i].pos, ep,
                "\"%s\" is not a contact URL; expected \"mailto:ADDRESS\"",
                config_show(b, sizeof(b), v->v[i]));
            free(ep);
            ok = false;
        }
    }
    return ok;
}

bool config_check_tsig_alg(struct cctx *c, const struct toml_keyval *kv, const char *path,
                           void *obj, void *field)
{
    static const char *const algs[] = {"hmac-sha256", "hmac-sha384", "hmac-sha512", NULL};
    const char *a = *(char **)field;
    char list[128];

    (void)obj;
    for (size_t i = 0; algs[i] != NULL; i++) {
        if (strcmp(a, algs[i]) == 0)
            return true;
    }
    config_join_names(list, sizeof(list), algs);
    ERR(c, kv->val.pos, path, "expected %s", list);
    return false;
}

bool config_check_zone(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                       void *field)
{
    char **z = field;
    char why[300], *norm = NULL;

    (void)obj;
    if (config_domain_normalize(*z, strlen(*z), &norm, why, sizeof(why)) < 0 || norm[0] == '*') {
        ERR(c, kv->val.pos, path, "%s", norm != NULL ? "a zone cannot be a wildcard" : why);
        free(norm);
        return false;
    }
    free(*z);
    *z = norm;
    return true;
}

bool config_conv_mode(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                      void *field)
{
    struct cfg_deploy *d = obj;
    const struct toml_value *v = &kv->val;
    char b[64];

    (void)field;
    if (v->type != TOML_STRING) {
        if (v->type == TOML_INTEGER)
            ERR(c, v->pos, path,
                "expected an octal string such as \"0640\" (an integer would be read as "
                "decimal)");
        else
            config_type_error(c, v, path, "an octal string such as \"0640\"");
        return false;
    }
    const char *s = v->u.s.ptr;
    size_t n = strlen(s);
    bool ok = n == v->u.s.len && n >= 3 && n <= 4 && (n == 3 || s[0] == '0');
    unsigned m = 0;
    for (size_t i = 0; ok && i < n; i++) {
        if (s[i] < '0' || s[i] > '7')
            ok = false;
        else
            m = m * 8 + (unsigned)(s[i] - '0');
    }
    if (!ok) {
        ERR(c, v->pos, path, "\"%s\" is not an octal mode such as \"0640\"",
            config_show(b, sizeof(b), s));
        return false;
    }
    d->mode = (mode_t)m;
    d->has_mode = true;
    return true;
}

bool config_conv_events(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                        void *field)
{
    /* in the order of the CFG_EVENT_* bits */
    static const char *const names[] = {"issued",
                                        "renewed",
                                        "failed",
                                        "expiring",
                                        "deploy_failed",
                                        "dns_record_required",
                                        "dns_record_removable",
                                        "persist_expiring",
                                        "fleet_conflict",
                                        NULL};
    struct cfg_notify *nt = obj;
    struct cfg_strv v = {0};
    bool ok = true;
    unsigned bits = 0;

    (void)field;
    if (!config_conv_strv(c, kv, path, &v))
        return false;
    if (v.n == 0) {
        ERR(c, kv->val.pos, path, "must name at least one event");
        ok = false;
    }
    for (size_t i = 0; i < v.n; i++) {
        size_t j = 0;
        while (names[j] != NULL && strcmp(names[j], v.v[i]) != 0)
            j++;
        if (names[j] == NULL) {
            char list[256], b[128];
            char *ep = xasprintf("%s[%zu]", path, i);
            config_join_names(list, sizeof(list), names);
            ERR(c, kv->val.u.arr->items[i].pos, ep, "unknown event \"%s\"; expected %s",
                config_show(b, sizeof(b), v.v[i]), list);
            free(ep);
            ok = false;
            continue;
        }
        bits |= 1u << j;
    }
    config_strv_free(&v);
    if (ok)
        nt->events = bits;
    return ok;
}

/* How far ahead persist_until may be: ten years (leap days included).
 * persistUntil exists to end a record's authority (draft-ietf-acme-dns-
 * persist §4.1). A certificate lives 200 days at most (100 from March 2027,
 * 47 from 2029: CA/Browser Forum ballot SC-081), and an account key is
 * rolled over (which changes the record) long before a decade is out: a
 * date further away limits nothing and is far more often a typo (2207 for
 * 2027, milliseconds for seconds) than a wish; a record meant to last has
 * no persistUntil. The bound also keeps every value inside what UNIX time,
 * our RFC 3339 output (years up to 9999) and a CA's 64-bit integer carry.
 * Relative to now, so a value accepted once stays accepted at every later
 * check and reload. */
#define PERSIST_AHEAD_MAX_S (3653LL * 86400)

static bool persist_until_near(struct cctx *c, const struct toml_value *v, const char *path,
                               int64_t t)
{
    int64_t last = (int64_t)time(NULL) + PERSIST_AHEAD_MAX_S;
    char when[48], lim[48], as[80];

    if (t <= last)
        return true;
    timefmt_utc(lim, sizeof(lim), last, TIMEFMT_RFC3339);
    timefmt_utc(when, sizeof(when), t, TIMEFMT_RFC3339);
    if (v->type == TOML_INTEGER)
        snprintf(as, sizeof(as), "%lld (%s)", (long long)t, when);
    else
        snprintf(as, sizeof(as), "%s", when);
    ERR(c, v->pos, path,
        "%s is more than 10 years ahead (the latest accepted now is %s): a persistUntil that far "
        "away limits nothing and is more likely a mistake%s; leave persist_until out for records "
        "that do not expire",
        as, lim,
        v->type == TOML_INTEGER && t > 99999999999LL ? " (UNIX seconds, not milliseconds)" : "");
    return false;
}

/* persist_until: an offset date-time (2027-06-30T00:00:00Z), a date
 * (2027-06-30: midnight UTC) or UNIX seconds, at most 10 years ahead; kept
 * as UNIX seconds. */
bool config_conv_persist_until(struct cctx *c, const struct toml_keyval *kv, const char *path,
                               void *obj, void *field)
{
    const struct toml_value *v = &kv->val;
    int64_t *out = field;
    (void)obj;

    if (v->type == TOML_INTEGER) {
        if (v->u.i <= 0) {
            ERR(c, v->pos, path, "must be a positive number of seconds since 1970");
            return false;
        }
        if (!persist_until_near(c, v, path, v->u.i))
            return false;
        *out = v->u.i;
        return true;
    }
    if (v->type != TOML_DATETIME && v->type != TOML_DATE_LOCAL) {
        config_type_error(c, v, path,
                          "a date-time with its offset (2027-06-30T00:00:00Z), a date "
                          "(2027-06-30) or UNIX seconds");
        return false;
    }
    struct tm tm = {0};
    tm.tm_year = v->u.dt.year - 1900;
    tm.tm_mon = v->u.dt.month - 1;
    tm.tm_mday = v->u.dt.day;
    if (v->type == TOML_DATETIME) {
        tm.tm_hour = v->u.dt.hour;
        tm.tm_min = v->u.dt.minute;
        tm.tm_sec = v->u.dt.second;
    }
    int64_t t = (int64_t)timegm(&tm);
    if (v->type == TOML_DATETIME)
        t -= (int64_t)v->u.dt.offset_minutes * 60;
    if (t <= 0) {
        ERR(c, v->pos, path, "must be after 1970");
        return false;
    }
    if (!persist_until_near(c, v, path, t))
        return false;
    *out = t;
    return true;
}

/* domains = [...]: normalised, counted, duplicates found by sorting. */
struct domidx {
    const char *name;
    size_t i;
};

static int domidx_cmp(const void *a, const void *b)
{
    const struct domidx *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    if (r != 0)
        return r;
    return x->i < y->i ? -1 : x->i > y->i;
}

bool config_conv_domains(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field)
{
    struct cert_tmp *ct = obj;
    const struct toml_value *v = &kv->val;
    bool ok = true;

    (void)field;
    ct->domains_given = true;
    ct->domains_bad = true;
    if (v->type != TOML_ARRAY) {
        config_type_error(c, v, path, "an array of names");
        return false;
    }
    const struct toml_array *a = v->u.arr;
    if (a->n == 0) {
        ERR(c, v->pos, path, "must list at least one name");
        return false;
    }
    if (a->n > CONFIG_MAX_DOMAINS) {
        ERR(c, v->pos, path, "at most %d names per certificate, not %zu", CONFIG_MAX_DOMAINS, a->n);
        return false;
    }
    struct cfg_strv *d = &ct->c.domains;
    d->v = xcalloc(a->n + 1, sizeof(char *));
    ct->dom_pos = xcalloc(a->n, sizeof(*ct->dom_pos));
    for (size_t i = 0; i < a->n; i++) {
        const struct toml_value *e = &a->items[i];
        char why[400], *norm = NULL;

        if (e->type != TOML_STRING) {
            char *ep = xasprintf("%s[%zu]", path, i);
            config_type_error(c, e, ep, "a string");
            free(ep);
            ok = false;
            continue;
        }
        if (config_domain_normalize(e->u.s.ptr, e->u.s.len, &norm, why, sizeof(why)) < 0) {
            char *ep = xasprintf("%s[%zu]", path, i);
            ERR(c, e->pos, ep, "%s", why);
            free(ep);
            ok = false;
            continue;
        }
        ct->dom_pos[d->n] = e->pos;
        d->v[d->n++] = norm;
    }
    if (!ok)
        return false;

    struct domidx *idx = xcalloc(d->n, sizeof(*idx));
    for (size_t i = 0; i < d->n; i++) {
        idx[i].name = d->v[i];
        idx[i].i = i;
    }
    qsort(idx, d->n, sizeof(*idx), domidx_cmp);
    for (size_t i = 1; i < d->n; i++) {
        if (strcmp(idx[i].name, idx[i - 1].name) != 0)
            continue;
        size_t first = i - 1;
        while (first > 0 && strcmp(idx[first - 1].name, idx[i].name) == 0)
            first--;
        char *ep = xasprintf("%s[%zu]", path, idx[i].i);
        ERR(c, ct->dom_pos[idx[i].i], ep, "duplicate name \"%s\" (also %s[%zu])", idx[i].name, path,
            idx[first].i);
        free(ep);
        ok = false;
    }
    free(idx);
    ct->domains_bad = !ok;
    return ok;
}

static bool conv_ref(struct cctx *c, const struct toml_keyval *kv, const char *path, char **name,
                     struct toml_pos *pos)
{
    if (!config_conv_str(c, kv, path, name, false))
        return false;
    *pos = kv->val.pos;
    return true;
}

bool config_conv_cert_ca(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field)
{
    struct cert_tmp *ct = obj;
    (void)field;
    return conv_ref(c, kv, path, &ct->ca_name, &ct->ca_pos);
}

bool config_conv_cert_dns(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                          void *field)
{
    struct cert_tmp *ct = obj;
    (void)field;
    return conv_ref(c, kv, path, &ct->dns_name, &ct->dns_pos);
}

bool config_check_challenge(struct cctx *c, const struct toml_keyval *kv, const char *path,
                            void *obj, void *field)
{
    struct cert_tmp *ct = obj;
    (void)c;
    (void)path;
    (void)field;
    ct->challenge_set = true;
    ct->challenge_pos = kv->val.pos;
    return true;
}
