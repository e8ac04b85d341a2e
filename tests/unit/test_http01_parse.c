/* The http-01 request-head parser (httpd_parse) and the challenge-path
 * matcher (http01_path_token): framing, limits, keep-alive, targets. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "challenge/http01_internal.h"

static int parse_str(const char *s, struct httpd_req *r)
{
    return httpd_parse((const uint8_t *)s, strlen(s), r);
}

static void assert_mem_str(const uint8_t *p, size_t n, const char *want)
{
    assert_non_null(p);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(p, want, n);
}

/* Every proper prefix of a complete head must ask for more. */
static void assert_prefixes_need_more(const char *s, size_t head_len)
{
    struct httpd_req r;

    for (size_t i = 0; i < head_len; i++)
        assert_int_equal(httpd_parse((const uint8_t *)s, i, &r), HTTPD_PARSE_MORE);
}

static void test_get_http11_complete(void **state)
{
    const char *s = "GET /.well-known/acme-challenge/abc HTTP/1.1\r\nHost: example.org\r\n"
                    "User-Agent: x\r\n\r\n";
    struct httpd_req r;

    (void)state;
    assert_int_equal(parse_str(s, &r), HTTPD_PARSE_DONE);
    assert_int_equal(r.method, HTTPD_GET);
    assert_mem_str(r.method_str, r.method_len, "GET");
    assert_mem_str(r.target, r.target_len, "/.well-known/acme-challenge/abc");
    assert_mem_str(r.path, r.path_len, "/.well-known/acme-challenge/abc");
    assert_int_equal(r.minor, 1);
    assert_true(r.keep_alive);
    assert_int_equal(r.head_len, strlen(s));
    assert_prefixes_need_more(s, strlen(s));
}

static void test_head_http10_keep_alive_rules(void **state)
{
    struct httpd_req r;

    (void)state;
    assert_int_equal(parse_str("HEAD / HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_DONE);
    assert_int_equal(r.method, HTTPD_HEAD);
    assert_int_equal(r.minor, 0);
    assert_false(r.keep_alive);
    assert_int_equal(parse_str("HEAD / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r),
                     HTTPD_PARSE_DONE);
    assert_true(r.keep_alive);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", &r),
                     HTTPD_PARSE_DONE);
    assert_false(r.keep_alive);
    assert_int_equal(
        parse_str("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", &r),
        HTTPD_PARSE_DONE);
    assert_false(r.keep_alive);
    /* HTTP/1.9 is answered as 1.1 (RFC 9110 §6.2) */
    assert_int_equal(parse_str("GET / HTTP/1.9\r\nHost: a\r\n\r\n", &r), HTTPD_PARSE_DONE);
    assert_int_equal(r.minor, 1);
    assert_true(r.keep_alive);
}

static void test_bare_lf_and_leading_empty_lines(void **state)
{
    const char *s = "\r\n\nGET /x HTTP/1.1\nHost: a\n\n";
    struct httpd_req r;

    (void)state;
    assert_int_equal(parse_str(s, &r), HTTPD_PARSE_DONE);
    assert_int_equal(r.head_len, strlen(s));
    assert_mem_str(r.path, r.path_len, "/x");
    assert_prefixes_need_more(s, strlen(s));
    assert_int_equal(parse_str("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_BAD);
}

static void test_pipelined_rest_is_not_consumed(void **state)
{
    const char *one = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    char buf[256];
    struct httpd_req r;

    (void)state;
    snprintf(buf, sizeof(buf), "%s%s", one, "GET /b HTTP/1.1\r\nHost: h\r\n\r\nGARBAGE");
    assert_int_equal(parse_str(buf, &r), HTTPD_PARSE_DONE);
    assert_int_equal(r.head_len, strlen(one));
    assert_mem_str(r.path, r.path_len, "/a");
    assert_int_equal(parse_str(buf + r.head_len, &r), HTTPD_PARSE_DONE);
    assert_mem_str(r.path, r.path_len, "/b");
}

static void test_targets(void **state)
{
    struct httpd_req r;

    (void)state;
    assert_int_equal(parse_str("GET /p/q?x=1&y HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_DONE);
    assert_mem_str(r.path, r.path_len, "/p/q");
    assert_mem_str(r.target, r.target_len, "/p/q?x=1&y");
    assert_int_equal(
        parse_str("GET http://example.org:80/.well-known/acme-challenge/t?q HTTP/1.1\r\nHost: "
                  "example.org\r\n\r\n",
                  &r),
        HTTPD_PARSE_DONE);
    assert_mem_str(r.path, r.path_len, "/.well-known/acme-challenge/t");
    assert_int_equal(parse_str("GET HTTP://EXAMPLE.ORG HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_DONE);
    assert_mem_str(r.path, r.path_len, "/");
    assert_int_equal(parse_str("GET https://h?z HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_DONE);
    assert_mem_str(r.path, r.path_len, "/");
    assert_int_equal(parse_str("GET http:///x HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_BAD);
    assert_int_equal(parse_str("OPTIONS * HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_DONE);
    assert_int_equal(r.method, HTTPD_OTHER);
    assert_null(r.path);
    assert_int_equal(parse_str("CONNECT h:443 HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_DONE);
    assert_null(r.path);
    assert_int_equal(parse_str("GET ftp://h/x HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_DONE);
    assert_null(r.path);
    assert_int_equal(parse_str("GET /a#frag HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_BAD);
    assert_int_equal(parse_str("GET /\xc3\xa9 HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_BAD);
}

static void test_methods(void **state)
{
    struct httpd_req r;

    (void)state;
    assert_int_equal(parse_str("POST / HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_DONE);
    assert_int_equal(r.method, HTTPD_OTHER);
    assert_mem_str(r.method_str, r.method_len, "POST");
    /* methods are case-sensitive (RFC 9110 §9.1) */
    assert_int_equal(parse_str("get / HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_DONE);
    assert_int_equal(r.method, HTTPD_OTHER);
    assert_int_equal(parse_str("GETS / HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_DONE);
    assert_int_equal(r.method, HTTPD_OTHER);
    assert_int_equal(parse_str("G(T / HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_BAD);
}

static void test_malformed_request_lines(void **state)
{
    static const char *const bad[] = {
        "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", /* two spaces */
        "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", /* trailing space */
        "GET /\r\n\r\n",                      /* HTTP/0.9 */
        "GET / HTTP/1.1x\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.\r\n\r\n",
        "GET / http/1.1\r\nHost: a\r\n\r\n",
        " GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\rHost: a\r\n\r\n",              /* bare CR */
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS ClientHello */
        "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
    };
    struct httpd_req r;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse_str(bad[i], &r) != HTTPD_PARSE_BAD)
            fail_msg("case %zu not rejected", i);
    }
    assert_int_equal(parse_str("GET / HTTP/2.0\r\n\r\n", &r), HTTPD_PARSE_BAD_VERSION);
    assert_int_equal(parse_str("GET / HTTP/0.9\r\n\r\n", &r), HTTPD_PARSE_BAD_VERSION);
    /* garbage is caught before its line ends, not after a timeout */
    assert_int_equal(parse_str("\x16\x03", &r), HTTPD_PARSE_BAD);
    assert_int_equal(parse_str("GET /x HTTX", &r), HTTPD_PARSE_BAD);
    assert_int_equal(parse_str("GET /x HTTP/1", &r), HTTPD_PARSE_MORE);
}

static void test_fields(void **state)
{
    struct httpd_req r;

    (void)state;
    assert_int_equal(parse_str("GET / HTTP/1.1\r\n\r\n", &r), HTTPD_PARSE_BAD); /* no Host */
    assert_int_equal(parse_str("GET / HTTP/1.0\r\n\r\n", &r), HTTPD_PARSE_DONE);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", &r),
                     HTTPD_PARSE_BAD);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost:\r\n\r\n", &r), HTTPD_PARSE_DONE);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost : a\r\n\r\n", &r), HTTPD_PARSE_BAD);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", &r),
                     HTTPD_PARSE_BAD);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\n Host: a\r\n\r\n", &r), HTTPD_PARSE_BAD);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", &r),
                     HTTPD_PARSE_BAD);
    assert_int_equal(httpd_parse((const uint8_t *)"GET / HTTP/1.0\r\nX: a\0b\r\n\r\n", 27, &r),
                     HTTPD_PARSE_BAD);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", &r),
                     HTTPD_PARSE_DONE); /* obs-text is allowed */
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", &r),
                     HTTPD_PARSE_BAD);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", &r), HTTPD_PARSE_BAD);
}

static void test_no_body_accepted(void **state)
{
    struct httpd_req r;

    (void)state;
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &r),
                     HTTPD_PARSE_DONE);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 000\r\n\r\n", &r),
                     HTTPD_PARSE_DONE);
    assert_int_equal(parse_str("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", &r),
                     HTTPD_PARSE_BAD);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\ncontent-length: x\r\n\r\n", &r),
                     HTTPD_PARSE_BAD);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", &r),
                     HTTPD_PARSE_BAD);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0, 0\r\n\r\n", &r),
                     HTTPD_PARSE_BAD);
    assert_int_equal(
        parse_str("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", &r),
        HTTPD_PARSE_BAD);
}

/* The API's variant: one Content-Length up to the caller's limit. */
static void test_body_limit(void **state)
{
    struct httpd_req r;
    const char *five = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    const char *two =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
    const char *huge =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    const char *te = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

    (void)state;
    assert_int_equal(httpd_parse_body((const uint8_t *)five, strlen(five), 5, &r),
                     HTTPD_PARSE_DONE);
    assert_int_equal(r.content_length, 5);
    assert_memory_equal(five + r.head_len, "hello", 5);
    assert_int_equal(httpd_parse_body((const uint8_t *)five, strlen(five), 4, &r),
                     HTTPD_PARSE_TOO_BIG);
    assert_int_equal(httpd_parse_body((const uint8_t *)two, strlen(two), 100, &r), HTTPD_PARSE_BAD);
    assert_int_equal(httpd_parse_body((const uint8_t *)huge, strlen(huge), 100, &r),
                     HTTPD_PARSE_TOO_BIG);
    assert_int_equal(httpd_parse_body((const uint8_t *)te, strlen(te), 100, &r), HTTPD_PARSE_BAD);
    assert_int_equal(httpd_parse((const uint8_t *)five, strlen(five), &r), HTTPD_PARSE_BAD);
}

static void test_request_line_limit(void **state)
{
    size_t cap = HTTPD_LINE_MAX + 64;
    char *s = malloc(cap);
    struct httpd_req r;

    (void)state;
    assert_non_null(s);
    /* "GET /" + pad + " HTTP/1.0" is exactly the limit: accepted */
    size_t pad = HTTPD_LINE_MAX - strlen("GET / HTTP/1.0");
    memcpy(s, "GET /", 5);
    memset(s + 5, 'a', pad);
    snprintf(s + 5 + pad, cap - 5 - pad, " HTTP/1.0\r\n\r\n");
    assert_int_equal(parse_str(s, &r), HTTPD_PARSE_DONE);
    /* one more byte: 414 */
    memset(s + 5, 'a', pad + 1);
    snprintf(s + 6 + pad, cap - 6 - pad, " HTTP/1.0\r\n\r\n");
    assert_int_equal(parse_str(s, &r), HTTPD_PARSE_URI_TOO_LONG);
    /* and as soon as the unfinished line passes the limit */
    assert_int_equal(httpd_parse((const uint8_t *)s, HTTPD_LINE_MAX + 1, &r),
                     HTTPD_PARSE_URI_TOO_LONG);
    assert_int_equal(httpd_parse((const uint8_t *)s, HTTPD_LINE_MAX, &r), HTTPD_PARSE_MORE);
    free(s);
}

static char *head_with_fields(unsigned n, size_t value_len)
{
    size_t cap = 64 + (size_t)n * (value_len + 16);
    char *s = malloc(cap);
    size_t at;

    assert_non_null(s);
    at = (size_t)snprintf(s, cap, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (unsigned i = 1; i < n; i++) {
        at += (size_t)snprintf(s + at, cap - at, "X%u: ", i);
        memset(s + at, 'v', value_len);
        at += value_len;
        at += (size_t)snprintf(s + at, cap - at, "\r\n");
    }
    snprintf(s + at, cap - at, "\r\n");
    return s;
}

static void test_field_count_and_head_size_limits(void **state)
{
    struct httpd_req r;
    char *s;

    (void)state;
    s = head_with_fields(HTTPD_FIELDS_MAX, 1);
    assert_int_equal(parse_str(s, &r), HTTPD_PARSE_DONE);
    free(s);
    s = head_with_fields(HTTPD_FIELDS_MAX + 1, 1);
    assert_int_equal(parse_str(s, &r), HTTPD_PARSE_TOO_LARGE);
    free(s);
    /* 40 fields of 250 bytes: past 8 KiB */
    s = head_with_fields(40, 250);
    assert_true(strlen(s) > HTTPD_HEAD_MAX);
    assert_int_equal(parse_str(s, &r), HTTPD_PARSE_TOO_LARGE);
    /* an unfinished head at the limit is rejected without waiting */
    assert_int_equal(httpd_parse((const uint8_t *)s, HTTPD_HEAD_MAX, &r), HTTPD_PARSE_TOO_LARGE);
    assert_int_equal(httpd_parse((const uint8_t *)s, HTTPD_HEAD_MAX - 1, &r), HTTPD_PARSE_MORE);
    free(s);
    /* a head ending exactly at the limit is fine */
    s = head_with_fields(30, 250);
    size_t len = strlen(s);
    assert_true(len < HTTPD_HEAD_MAX);
    char *big = malloc(HTTPD_HEAD_MAX + 1);
    assert_non_null(big);
    size_t extra = HTTPD_HEAD_MAX - len;
    memcpy(big, s, len - 2);
    memcpy(big + len - 2, "Y: ", 3);
    memset(big + len + 1, 'z', extra - 5);
    memcpy(big + HTTPD_HEAD_MAX - 4, "\r\n\r\n", 4);
    assert_int_equal(httpd_parse((const uint8_t *)big, HTTPD_HEAD_MAX, &r), HTTPD_PARSE_DONE);
    assert_int_equal(r.head_len, HTTPD_HEAD_MAX);
    free(big);
    free(s);
}

static void test_path_token(void **state)
{
    char tok[HTTP01_TOKEN_MAX + 1];
    char path[600];

    (void)state;
#define PT(s) http01_path_token((const uint8_t *)(s), strlen(s), tok)
    assert_int_equal(PT("/.well-known/acme-challenge/aB3-_x"), 6);
    assert_string_equal(tok, "aB3-_x");
    assert_int_equal(PT("/.well-known/acme-challenge/%61b%2D"), 3);
    assert_string_equal(tok, "ab-");
    assert_int_equal(PT("/.well-known/acme-challenge/"), -1);
    assert_int_equal(PT("/.well-known/acme-challenge/a/"), -1);
    assert_int_equal(PT("/.well-known/acme-challenge/a%2Fb"), -1);
    assert_int_equal(PT("/.well-known/acme-challenge/a.b"), -1);
    assert_int_equal(PT("/.well-known/acme-challenge/a%2"), -1);
    assert_int_equal(PT("/.well-known/acme-challenge/a%zz"), -1);
    assert_int_equal(PT("/.WELL-KNOWN/acme-challenge/a"), -1);
    assert_int_equal(PT("/.well-known/acme-challengeX/a"), -1);
    assert_int_equal(PT("/"), -1);
    assert_int_equal(http01_path_token(NULL, 0, tok), -1);
    size_t at = (size_t)snprintf(path, sizeof(path), "%s", HTTP01_PREFIX);
    memset(path + at, 'A', HTTP01_TOKEN_MAX);
    path[at + HTTP01_TOKEN_MAX] = '\0';
    assert_int_equal(PT(path), HTTP01_TOKEN_MAX);
    path[at + HTTP01_TOKEN_MAX] = 'A';
    path[at + HTTP01_TOKEN_MAX + 1] = '\0';
    assert_int_equal(PT(path), -1);
#undef PT
    assert_true(http01_token_valid("abc_-9Z", 7));
    assert_false(http01_token_valid("", 0));
    assert_false(http01_token_valid("a=b", 3));
    assert_false(http01_token_valid(path + at, HTTP01_TOKEN_MAX + 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_http11_complete),
        cmocka_unit_test(test_head_http10_keep_alive_rules),
        cmocka_unit_test(test_bare_lf_and_leading_empty_lines),
        cmocka_unit_test(test_pipelined_rest_is_not_consumed),
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_malformed_request_lines),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_no_body_accepted),
        cmocka_unit_test(test_request_line_limit),
        cmocka_unit_test(test_field_count_and_head_size_limits),
        cmocka_unit_test(test_path_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
