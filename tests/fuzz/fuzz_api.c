/* libFuzzer target for the API's parsers of untrusted input: the first byte
 * picks one. 0: the tokens file (api_tokens_parse: every parsed token has a
 * valid name and scopes, an error says which line); 1: a request path
 * against the route table (api_route_find: a matched NAME is 1..200 of
 * [A-Za-z0-9._-] not starting with '.', so never "..", "/" or an escape);
 * 2: a request head through httpd_parse and httpd_parse_body (the API's:
 * the same heads, plus a Content-Length up to API_BODY_MAX), then
 * Last-Event-ID and Authorization looked up with api_head_field (values
 * inside the head, no CR or LF in them). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "net/httpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *n)
{
    size_t l = strlen(n);

    if (l == 0 || l > 200 || n[0] == '.')
        abort();
    for (size_t i = 0; i < l; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t *p = malloc(size); /* a copy: reads past the end are caught */
    size_t n = size - 1;
    memcpy(p, data + 1, n);
    switch (data[0] % 3) {
    case 0: {
        struct api_tokens t;
        char *err = NULL;
        if (api_tokens_parse((const char *)p, n, &t, &err) == 0) {
            for (size_t i = 0; i < t.n; i++) {
                if (!api_token_name_ok(t.v[i].name) || t.v[i].scopes == 0 || t.v[i].scopes > 7)
                    abort();
            }
            api_tokens_fini(&t);
        } else if (err == NULL || strncmp(err, "line ", 5) != 0) {
            abort();
        }
        free(err);
        break;
    }
    case 1: {
        bool ok = false;
        char *name = NULL;
        const char *file = NULL;
        const struct api_route *r = api_route_find("GET", p, n, &ok, &name, &file);
        if (r == NULL && name != NULL)
            abort();
        if (name != NULL)
            check_name(name);
        free(name);
        break;
    }
    default: {
        struct httpd_req r, rb;
        int a = httpd_parse(p, n, &r);
        int b = httpd_parse_body(p, n, API_BODY_MAX, &rb);
        /* the API's variant takes what the http-01 one takes, and only adds
         * bodies up to its limit */
        if (a == HTTPD_PARSE_DONE &&
            (b != HTTPD_PARSE_DONE || rb.head_len != r.head_len || rb.content_length != 0))
            abort();
        if (b == HTTPD_PARSE_DONE && (rb.content_length > API_BODY_MAX || rb.head_len > n ||
                                      (rb.content_length == 0 && a != HTTPD_PARSE_DONE)))
            abort();
        if (a == HTTPD_PARSE_DONE) {
            static const char *const names[] = {"Last-Event-ID", "Authorization", "Host"};
            for (size_t i = 0; i < 3; i++) {
                const uint8_t *v = NULL;
                size_t vl = 0;
                if (!api_head_field(p, r.head_len, names[i], &v, &vl))
                    continue;
                if (v < p || v + vl > p + r.head_len || memchr(v, '\n', vl) != NULL ||
                    memchr(v, '\r', vl) != NULL)
                    abort();
            }
        }
        break;
    }
    }
    free(p);
    return 0;
}
