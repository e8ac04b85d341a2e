/* libFuzzer target for the http-01 request-head parser and path matcher.
 * The input is a byte stream as a client would send it: parsed as pipelined
 * requests, checking on each head that every pointer stays inside it, and
 * that parsing is consistent over prefixes (a prefix of a complete head
 * never completes early or fails; a prefix that completes gives the same
 * head as the whole). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "challenge/http01_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int within(const uint8_t *p, size_t n, const uint8_t *lo, size_t len)
{
    return p >= lo && n <= len && p + n <= lo + len;
}

static void check_head(const uint8_t *p, size_t n, const struct httpd_req *r)
{
    char tok[HTTP01_TOKEN_MAX + 1];

    if (r->head_len == 0 || r->head_len > n || r->head_len > HTTPD_HEAD_MAX)
        abort();
    if (!within(r->method_str, r->method_len, p, r->head_len) || r->method_len == 0)
        abort();
    if (!within(r->target, r->target_len, p, r->head_len) || r->target_len == 0)
        abort();
    if (r->minor != 0 && r->minor != 1)
        abort();
    if (r->method != HTTPD_GET && r->method != HTTPD_HEAD && r->method != HTTPD_OTHER)
        abort();
    if (r->path != NULL) {
        int is_root = r->path_len == 1 && r->path[0] == '/';
        if (!is_root && !within(r->path, r->path_len, r->target, r->target_len))
            abort();
        int t = http01_path_token(r->path, r->path_len, tok);
        if (t >= 0) {
            if ((size_t)t != strlen(tok) || !http01_token_valid(tok, (size_t)t))
                abort();
        }
    }
}

static int same(const struct httpd_req *a, const struct httpd_req *b)
{
    return a->method == b->method && a->method_str == b->method_str &&
           a->method_len == b->method_len && a->target == b->target &&
           a->target_len == b->target_len && a->path_len == b->path_len &&
           (a->path == b->path ||
            (a->path != NULL && b->path != NULL && memcmp(a->path, b->path, a->path_len) == 0)) &&
           a->minor == b->minor && a->keep_alive == b->keep_alive && a->head_len == b->head_len;
}

/* Prefixes of a complete head of length h: sampled when h is large. */
static void check_prefixes(const uint8_t *p, size_t h)
{
    struct httpd_req r;
    size_t step = h <= 512 ? 1 : h / 97 + 1;

    for (size_t k = 0; k < h; k += step) {
        if (httpd_parse(p, k, &r) != HTTPD_PARSE_MORE)
            abort();
    }
    if (httpd_parse(p, h - 1, &r) != HTTPD_PARSE_MORE)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    unsigned rounds = 0;

    while (off < size && rounds++ < 64) {
        struct httpd_req r;
        const uint8_t *p = data + off;
        size_t n = size - off;
        int rc = httpd_parse(p, n, &r);

        if (rc == HTTPD_PARSE_DONE) {
            check_head(p, n, &r);
            check_prefixes(p, r.head_len);
            /* the head alone parses to the same result */
            struct httpd_req r2;
            if (httpd_parse(p, r.head_len, &r2) != HTTPD_PARSE_DONE || !same(&r, &r2))
                abort();
            off += r.head_len;
            continue;
        }
        if (rc != HTTPD_PARSE_MORE && rc != HTTPD_PARSE_BAD && rc != HTTPD_PARSE_URI_TOO_LONG &&
            rc != HTTPD_PARSE_TOO_LARGE && rc != HTTPD_PARSE_BAD_VERSION)
            abort();
        if (rc == HTTPD_PARSE_MORE && n >= HTTPD_HEAD_MAX)
            abort(); /* the limit is enforced whatever the bytes */
        break;
    }
    /* the matcher on its own, over the raw bytes */
    char tok[HTTP01_TOKEN_MAX + 1];
    int t = http01_path_token(data, size, tok);
    if (t >= 0 && !http01_token_valid(tok, (size_t)t))
        abort();
    return 0;
}
