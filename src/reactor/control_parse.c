/* The control socket's requests, pure (no libuv, no connection): the
 * request-head parser, the router and the parsers of the renew and dry-run
 * bodies (control_internal.h). control.c reads requests and answers them;
 * the tests and the fuzz target call these directly. */
#include "reactor/control_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "util/err.h"
#include "util/xalloc.h"

int control_dry_run_body_parse(const char *body, size_t len, char ***names, size_t *n,
                               const char **why)
{
    *names = NULL;
    *n = 0;
    if (len == 0)
        return 0;
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *arr = json_object_get(root, "names");
    int rc = -400;
    if (!json_is_object(root) || json_object_size(root) != (arr != NULL ? 1u : 0u)) {
        *why = "the body must be a JSON object with nothing but \"names\"";
        goto out;
    }
    if (arr != NULL && (!json_is_array(arr) || json_array_size(arr) > 1000)) {
        *why = "names must be an array of at most 1000 certificate names";
        goto out;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        size_t sl = s != NULL ? json_string_length(json_array_get(arr, i)) : 0;
        bool ok = s != NULL && sl > 0 && sl <= CONTROL_NAME_MAX && strlen(s) == sl;
        for (size_t k = 0; ok && k < sl; k++)
            ok = s[k] > 0x20 && s[k] < 0x7f;
        if (!ok) {
            *why = "each name must be 1 to 256 printable characters";
            goto out;
        }
    }
    size_t cnt = json_array_size(arr);
    if (cnt > 0) {
        *names = xcalloc(cnt, sizeof(**names));
        for (size_t i = 0; i < cnt; i++)
            (*names)[i] = xstrdup(json_string_value(json_array_get(arr, i)));
        *n = cnt;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* "/v1/certificates/NAME" + suf -> NAME percent-decoded into out; false if
 * the path has another shape or NAME is empty, too long or not printable. */
static bool cert_path(const char *path, const char *suf, char *out, size_t n)
{
    static const char pre[] = "/v1/certificates/";
    size_t plen = strlen(path), slen = strlen(suf);
    size_t k = 0;

    if (strncmp(path, pre, sizeof(pre) - 1) != 0 || plen < sizeof(pre) - 1 + slen ||
        strcmp(path + plen - slen, suf) != 0)
        return false;
    const char *p = path + sizeof(pre) - 1;
    const char *end = path + plen - slen;
    if (p == end)
        return false;
    while (p < end) {
        int ch = (unsigned char)*p;
        if (ch == '%') {
            unsigned v;
            if (end - p < 3 || sscanf(p + 1, "%2x", &v) != 1 || !isxdigit((unsigned char)p[1]) ||
                !isxdigit((unsigned char)p[2]))
                return false;
            ch = (int)v;
            p += 3;
        } else {
            p++;
        }
        if (ch <= 0x20 || ch >= 0x7f || ch == '/' || k + 1 >= n)
            return false;
        out[k++] = (char)ch;
    }
    out[k] = '\0';
    return true;
}

enum control_route control_route_decide(const char *method, const char *path, char *name, size_t n,
                                        const char **allow)
{
    enum control_route r;
    const char *want;

    if (strcmp(path, "/v1/status") == 0 || strcmp(path, "/metrics") == 0) {
        r = path[1] == 'v' ? CONTROL_ROUTE_STATUS : CONTROL_ROUTE_METRICS;
        want = "GET";
    } else if (strcmp(path, "/v1/reload") == 0) {
        r = CONTROL_ROUTE_RELOAD;
        want = "POST";
    } else if (strcmp(path, "/v1/dry-run") == 0) {
        r = CONTROL_ROUTE_DRY_RUN;
        want = "POST";
    } else if (cert_path(path, "/renew", name, n)) {
        r = CONTROL_ROUTE_RENEW;
        want = "POST";
    } else if (cert_path(path, "", name, n)) {
        r = CONTROL_ROUTE_CERT;
        want = "GET";
    } else {
        return CONTROL_ROUTE_NOT_FOUND;
    }
    if (strcmp(method, want) != 0) {
        *allow = want;
        return CONTROL_ROUTE_METHOD;
    }
    return r;
}

int control_renew_body_parse(const char *body, size_t len, bool *force, bool *deploy_only,
                             bool *new_key, const char **why)
{
    *force = false;
    *deploy_only = false;
    *new_key = false;
    if (len == 0)
        return 0;
    json_t *root = json_loadb(body, len, 0, NULL);
    int rc = 0;
    if (!json_is_object(root)) {
        *why = "the body must be a JSON object";
        rc = -400;
        goto out;
    }
    json_t *f = json_object_get(root, "force");
    json_t *d = json_object_get(root, "deploy_only");
    json_t *k = json_object_get(root, "new_key");
    if ((f != NULL && !json_is_boolean(f)) || (d != NULL && !json_is_boolean(d)) ||
        (k != NULL && !json_is_boolean(k))) {
        *why = "force, deploy_only and new_key must be true or false";
        rc = -400;
        goto out;
    }
    *force = json_is_true(f);
    *deploy_only = json_is_true(d);
    *new_key = json_is_true(k);
out:
    json_decref(root);
    return rc;
}

/* ---- request parsing */

static bool is_tchar(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Finds the end of the head: the index just past the empty line, or 0. */
static size_t head_end(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '\n')
            continue;
        if (p[i + 1] == '\n')
            return i + 2;
        if (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Parses the complete head p[0..n) (it ends with the empty line). */
static int parse_head(const char *p, size_t n, size_t body_max, struct control_req *r,
                      const char **why)
{
    const char *line = p, *end = p + n;
    bool have_len = false;
    size_t k;

    r->content_length = 0;
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    size_t llen = (size_t)(eol - line);
    if (llen > 0 && line[llen - 1] == '\r')
        llen--;
    /* METHOD SP TARGET SP HTTP/1.x */
    for (k = 0; k < llen && is_tchar((unsigned char)line[k]); k++) {
    }
    if (k == 0 || k >= sizeof(r->method) || k >= llen || line[k] != ' ') {
        *why = "malformed request line";
        return -400;
    }
    memcpy(r->method, line, k);
    r->method[k] = '\0';
    const char *t = line + k + 1;
    const char *tend = memchr(t, ' ', llen - (k + 1));
    if (tend == NULL || tend == t || t[0] != '/') {
        *why = "malformed request target";
        return -400;
    }
    for (const char *q = t; q < tend; q++) {
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f) {
            *why = "malformed request target";
            return -400;
        }
    }
    const char *v = tend + 1;
    size_t vlen = (size_t)(line + llen - v);
    if (vlen != 8 || memcmp(v, "HTTP/1.", 7) != 0 || (v[7] != '0' && v[7] != '1')) {
        *why = "not an HTTP/1.x request";
        return vlen >= 5 && memcmp(v, "HTTP/", 5) == 0 ? -505 : -400;
    }
    r->http10 = v[7] == '0';
    const char *q = memchr(t, '?', (size_t)(tend - t));
    r->path = t;
    r->path_len = (size_t)((q != NULL ? q : tend) - t);

    /* header fields */
    line = eol + 1;
    while (line < end) {
        eol = memchr(line, '\n', (size_t)(end - line));
        llen = (size_t)(eol - line);
        if (llen > 0 && line[llen - 1] == '\r')
            llen--;
        if (llen == 0)
            break; /* the empty line */
        for (k = 0; k < llen && is_tchar((unsigned char)line[k]); k++) {
        }
        if (k == 0 || k >= llen || line[k] != ':') {
            *why = "malformed header field";
            return -400; /* also obsolete line folding and "Name :" */
        }
        const char *val = line + k + 1;
        const char *vend = line + llen;
        while (val < vend && (*val == ' ' || *val == '\t'))
            val++;
        while (vend > val && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        for (const char *x = val; x < vend; x++) {
            if (((unsigned char)*x < 0x20 && *x != '\t') || *x == 0x7f) {
                *why = "control character in a header field";
                return -400;
            }
        }
        if (k == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
            size_t cl = 0;
            if (val == vend || vend - val > 12) {
                *why = "bad Content-Length";
                return -400;
            }
            for (const char *x = val; x < vend; x++) {
                if (*x < '0' || *x > '9') {
                    *why = "bad Content-Length";
                    return -400;
                }
                cl = cl * 10 + (size_t)(*x - '0');
            }
            if (have_len && cl != r->content_length) {
                *why = "conflicting Content-Length";
                return -400;
            }
            have_len = true;
            r->content_length = cl;
        } else if (k == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
            *why = "Transfer-Encoding is not supported; send Content-Length";
            return -400;
        }
        line = eol + 1;
    }
    if (r->content_length > body_max) {
        *why = "request body too large";
        return -413;
    }
    return 1;
}

int control_parse_request(const char *p, size_t n, size_t head_max, size_t body_max,
                          struct control_req *out, const char **why)
{
    struct control_req r;
    size_t hl = head_end(p, n);
    int rc;

    if (hl == 0 || hl > head_max) {
        if (hl == 0 && n <= head_max)
            return 0;
        *why = "request head too large";
        return -413;
    }
    memset(&r, 0, sizeof(r));
    rc = parse_head(p, hl, body_max, &r, why);
    if (rc < 0)
        return rc;
    r.head_len = hl;
    *out = r;
    return 1;
}
