/* The HTTP/1.x request-head parser of certloop's two servers, the http-01
 * listener (src/challenge) and the HTTPS API (src/api): a pure function over
 * bytes (RFC 9112 §2-§6), strict about framing because both face the
 * internet, lenient only where RFC 9112 asks recipients to be. It never
 * allocates and does not know about sockets, tokens or responses. */
#include "net/httpd.h"

#include <string.h>

/* tchar (RFC 9110 §5.6.2) */
static bool is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar, SP or HTAB (RFC 9110 §5.5); obs-text is allowed */
static bool is_field_char(uint8_t c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* a request-target byte: VCHAR without '#', which never travels in a target */
static bool is_target_char(uint8_t c)
{
    return c > 0x20 && c < 0x7f && c != '#';
}

static uint8_t lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

static bool eq_nocase(const uint8_t *p, size_t n, const char *lit)
{
    size_t m = strlen(lit);

    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (lower(p[i]) != (uint8_t)lit[i])
            return false;
    }
    return true;
}

static bool prefix_nocase(const uint8_t *p, size_t n, const char *lit)
{
    size_t m = strlen(lit);

    return n >= m && eq_nocase(p, m, lit);
}

/* Finds the next line in p[pos..lim): returns true and sets *end (content end,
 * a CR before the LF excluded) and *next (after the LF). Without an LF, *end
 * is the end of what is there, again without a trailing CR that may yet be
 * followed by its LF. */
static bool next_line(const uint8_t *p, size_t pos, size_t lim, size_t *end, size_t *next)
{
    const uint8_t *lf = memchr(p + pos, '\n', lim - pos);
    size_t e = lf != NULL ? (size_t)(lf - p) : lim;

    *next = lf != NULL ? e + 1 : lim;
    if (e > pos && p[e - 1] == '\r')
        e--;
    *end = e;
    return lf != NULL;
}

/* Splits the target into its path, dropping the query (ignored: ACME tokens
 * carry none, and proxies may append one). */
static int target_path(struct httpd_req *r)
{
    const uint8_t *t = r->target;
    size_t n = r->target_len;
    size_t i;

    r->path = NULL;
    r->path_len = 0;
    if (t[0] == '/') {
        i = 0;
    } else if (prefix_nocase(t, n, "http://") || prefix_nocase(t, n, "https://")) {
        /* absolute-form (RFC 9112 §3.2.2): the authority wins over Host */
        size_t a = (lower(t[4]) == 's') ? 8 : 7;

        i = a;
        while (i < n && t[i] != '/' && t[i] != '?')
            i++;
        if (i == a)
            return HTTPD_PARSE_BAD; /* an http URI needs a host */
        if (i == n || t[i] == '?') {
            r->path = (const uint8_t *)"/"; /* an empty path means "/" */
            r->path_len = 1;
            return 0;
        }
    } else {
        return 0; /* asterisk-form, authority-form or another scheme: no path */
    }
    r->path = t + i;
    while (i < n && t[i] != '?')
        i++;
    r->path_len = (size_t)(t + i - r->path);
    return 0;
}

/* Checks the request line p[s..e). With partial set the line is not complete
 * yet: only what is there is checked, and MORE means "fine so far". */
static int request_line(const uint8_t *p, size_t s, size_t e, bool partial, struct httpd_req *r)
{
    static const char version[] = "HTTP/d.d";
    size_t i = s;

    while (i < e && is_tchar(p[i]))
        i++;
    if (i == e)
        return partial ? HTTPD_PARSE_MORE : HTTPD_PARSE_BAD;
    if (p[i] != ' ' || i == s)
        return HTTPD_PARSE_BAD;
    r->method_str = p + s;
    r->method_len = i - s;
    size_t t = ++i;
    while (i < e && is_target_char(p[i]))
        i++;
    if (i == e)
        return partial ? HTTPD_PARSE_MORE : HTTPD_PARSE_BAD;
    if (p[i] != ' ' || i == t)
        return HTTPD_PARSE_BAD;
    r->target = p + t;
    r->target_len = i - t;
    size_t v = ++i;
    if (e - v > sizeof(version) - 1)
        return HTTPD_PARSE_BAD;
    for (; i < e; i++) {
        char want = version[i - v];
        bool ok = want == 'd' ? (p[i] >= '0' && p[i] <= '9') : p[i] == (uint8_t)want;
        if (!ok)
            return HTTPD_PARSE_BAD;
    }
    if (partial)
        return HTTPD_PARSE_MORE;
    if (e - v != sizeof(version) - 1)
        return HTTPD_PARSE_BAD;
    if (p[v + 5] != '1')
        return HTTPD_PARSE_BAD_VERSION;
    r->minor = p[v + 7] == '0' ? 0 : 1;
    if (r->method_len == 3 && memcmp(r->method_str, "GET", 3) == 0)
        r->method = HTTPD_GET;
    else if (r->method_len == 4 && memcmp(r->method_str, "HEAD", 4) == 0)
        r->method = HTTPD_HEAD;
    else
        r->method = HTTPD_OTHER;
    return target_path(r);
}

struct fields {
    size_t max_body; /* the largest Content-Length taken; 0: none */
    size_t len;      /* the Content-Length */
    bool has_len;
    unsigned count;
    unsigned host;
    const uint8_t *auth;
    size_t auth_len;
    bool close;
    bool keep_alive;
};

/* Content-Length (RFC 9112 §6.3): digits only, one field; a value above
 * max_body (0: no body taken at all) is refused before a byte of it is read. */
static int content_length(const uint8_t *v, size_t n, struct fields *f)
{
    uint64_t len = 0;

    if (n == 0 || f->has_len)
        return HTTPD_PARSE_BAD; /* empty, or a second field (RFC 9112 §6.3 item 5) */
    f->has_len = true;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return HTTPD_PARSE_BAD;
        if (len > (UINT64_MAX - 9) / 10)
            return f->max_body == 0 ? HTTPD_PARSE_BAD : HTTPD_PARSE_TOO_BIG;
        len = len * 10 + (uint64_t)(v[i] - '0');
    }
    if (len > f->max_body)
        return f->max_body == 0 ? HTTPD_PARSE_BAD : HTTPD_PARSE_TOO_BIG;
    f->len = (size_t)len;
    return 0;
}

/* Connection (RFC 9110 §7.6.1): a comma-separated list of options. */
static void connection(const uint8_t *v, size_t n, struct fields *f)
{
    size_t i = 0;

    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (eq_nocase(v + s, i - s, "close"))
            f->close = true;
        else if (eq_nocase(v + s, i - s, "keep-alive"))
            f->keep_alive = true;
    }
}

/* Checks one field line p[s..e); partial as in request_line(). */
static int field_line(const uint8_t *p, size_t s, size_t e, bool partial, struct fields *f)
{
    size_t i = s;

    if (partial && s == e)
        return HTTPD_PARSE_MORE; /* may yet be the empty line ending the head */
    /* a line starting with whitespace is obs-fold, or whitespace before the
     * first field: RFC 9112 §5.2 and §2.2 let us reject both */
    if (p[s] == ' ' || p[s] == '\t')
        return HTTPD_PARSE_BAD;
    if (f->count + 1 > HTTPD_FIELDS_MAX)
        return HTTPD_PARSE_TOO_LARGE;
    while (i < e && is_tchar(p[i]))
        i++;
    if (i == e)
        return partial ? HTTPD_PARSE_MORE : HTTPD_PARSE_BAD;
    if (p[i] != ':' || i == s)
        return HTTPD_PARSE_BAD; /* RFC 9112 §5.1: no whitespace before ':' */
    size_t name_end = i++;
    for (size_t j = i; j < e; j++) {
        if (!is_field_char(p[j]))
            return HTTPD_PARSE_BAD;
    }
    if (partial)
        return HTTPD_PARSE_MORE;
    f->count++;
    while (i < e && (p[i] == ' ' || p[i] == '\t'))
        i++;
    size_t ve = e;
    while (ve > i && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
        ve--;
    const uint8_t *name = p + s;
    size_t name_len = name_end - s;
    if (eq_nocase(name, name_len, "host")) {
        if (++f->host > 1)
            return HTTPD_PARSE_BAD; /* RFC 9112 §3.2 */
    } else if (eq_nocase(name, name_len, "content-length")) {
        return content_length(p + i, ve - i, f);
    } else if (eq_nocase(name, name_len, "transfer-encoding")) {
        return HTTPD_PARSE_BAD; /* a body follows: not for us */
    } else if (eq_nocase(name, name_len, "connection")) {
        connection(p + i, ve - i, f);
    } else if (eq_nocase(name, name_len, "authorization")) {
        if (f->auth != NULL)
            return HTTPD_PARSE_BAD;
        f->auth = p + i;
        f->auth_len = ve - i;
    }
    return 0;
}

int httpd_parse(const uint8_t *p, size_t n, struct httpd_req *out)
{
    return httpd_parse_body(p, n, 0, out);
}

int httpd_parse_body(const uint8_t *p, size_t n, size_t max_body, struct httpd_req *out)
{
    struct httpd_req r = {0};
    struct fields f = {.max_body = max_body};
    size_t lim = n < HTTPD_HEAD_MAX ? n : HTTPD_HEAD_MAX;
    size_t pos = 0, end, next;
    unsigned empty = 0;
    bool complete;
    int rc;

    /* RFC 9112 §2.2: ignore at least one empty line before a request line */
    for (;;) {
        complete = next_line(p, pos, lim, &end, &next);
        if (!complete || end > pos)
            break;
        if (++empty > HTTPD_LEADING_EMPTY_MAX)
            return HTTPD_PARSE_BAD;
        pos = next;
    }
    if (!complete && end == pos)
        return lim == HTTPD_HEAD_MAX ? HTTPD_PARSE_TOO_LARGE : HTTPD_PARSE_MORE;
    rc = request_line(p, pos, end, !complete, &r);
    if (rc < 0)
        return rc;
    if (end - pos > HTTPD_LINE_MAX)
        return HTTPD_PARSE_URI_TOO_LONG;
    if (!complete)
        return lim == HTTPD_HEAD_MAX ? HTTPD_PARSE_TOO_LARGE : HTTPD_PARSE_MORE;
    pos = next;
    for (;;) {
        complete = next_line(p, pos, lim, &end, &next);
        if (complete && end == pos)
            break;
        rc = field_line(p, pos, end, !complete, &f);
        if (rc < 0)
            return rc;
        if (!complete)
            return lim == HTTPD_HEAD_MAX ? HTTPD_PARSE_TOO_LARGE : HTTPD_PARSE_MORE;
        pos = next;
    }
    if (r.minor == 1 && f.host == 0)
        return HTTPD_PARSE_BAD; /* RFC 9112 §3.2: HTTP/1.1 requires Host */
    r.keep_alive = r.minor == 1 ? !f.close : (f.keep_alive && !f.close);
    r.head_len = next;
    r.authorization = f.auth;
    r.authorization_len = f.auth_len;
    r.content_length = f.len;
    *out = r;
    return HTTPD_PARSE_DONE;
}
