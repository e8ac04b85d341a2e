/* The dashboard's pure parts (src/api/session.c, dashboard.c): sessions
 * (new, found by the cookie in constant time, idle and absolute expiry,
 * ended by a revoked or replaced token, the oldest reused when full), the
 * CSRF rule for changes made with the cookie (the session's token, this
 * origin, not cross-site), the Set-Cookie flags, and the embedded files
 * with their headers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/dashboard_internal.h"
#include "util/xalloc.h"

static struct api_token tok(const char *name, uint8_t fill)
{
    struct api_token t = {.name = (char *)name, .scopes = API_SCOPE_READ | API_SCOPE_MANAGE};
    memset(t.hash, fill, sizeof(t.hash));
    return t;
}

static const uint8_t *u8(const char *s)
{
    return (const uint8_t *)s;
}

static void test_session_cookie_roundtrip(void **state)
{
    struct api_sessions *s = xcalloc(1, sizeof(*s));
    struct api_token t = tok("alice", 7);
    (void)state;

    struct api_session *se = api_session_new(s, &t, 1000);
    assert_int_equal(strlen(se->id), API_SESSION_ID_LEN);
    assert_int_equal(strlen(se->csrf), API_SESSION_ID_LEN);
    assert_string_not_equal(se->id, se->csrf);
    assert_string_equal(se->token, "alice");

    char *hdr = xasprintf("theme=dark; " API_SESSION_COOKIE "=%s; other=1", se->id);
    assert_ptr_equal(api_session_find(s, u8(hdr), strlen(hdr), 2000), se);
    free(hdr);
    hdr = xasprintf(API_SESSION_COOKIE "=%s", se->id);
    assert_ptr_equal(api_session_find(s, u8(hdr), strlen(hdr), 2000), se);
    /* one character changed, another cookie's name, no cookie: nothing */
    hdr[strlen(hdr) - 1] ^= 1;
    assert_null(api_session_find(s, u8(hdr), strlen(hdr), 2000));
    free(hdr);
    hdr = xasprintf("certloop=%s", se->id);
    assert_null(api_session_find(s, u8(hdr), strlen(hdr), 2000));
    free(hdr);
    assert_null(api_session_find(s, NULL, 0, 2000));
    /* an all-zero id does not match a free slot */
    hdr = xasprintf(API_SESSION_COOKIE "=%043d", 0);
    assert_null(api_session_find(s, u8(hdr), strlen(hdr), 2000));
    free(hdr);
    free(s);
}

static void test_session_expiry_and_token(void **state)
{
    struct api_sessions *s = xcalloc(1, sizeof(*s));
    struct api_token t = tok("alice", 7);
    struct api_tokens set = {.v = &t, .n = 1};
    (void)state;

    struct api_session *se = api_session_new(s, &t, 0);
    char *hdr = xasprintf(API_SESSION_COOKIE "=%s", se->id);
    assert_ptr_equal(api_session_token(se, &set), &t);
    /* used within the idle time, again and again, until the absolute end */
    uint64_t now = 0;
    while (now + API_SESSION_IDLE_MS / 2 < API_SESSION_LIFE_MS) {
        now += API_SESSION_IDLE_MS / 2;
        assert_non_null(api_session_find(s, u8(hdr), strlen(hdr), now));
    }
    assert_null(api_session_find(s, u8(hdr), strlen(hdr), API_SESSION_LIFE_MS));
    /* idle too long */
    se = api_session_new(s, &t, 0);
    free(hdr);
    hdr = xasprintf(API_SESSION_COOKIE "=%s", se->id);
    assert_non_null(api_session_find(s, u8(hdr), strlen(hdr), API_SESSION_IDLE_MS - 1));
    assert_null(api_session_find(s, u8(hdr), strlen(hdr), 2 * API_SESSION_IDLE_MS));
    /* the token revoked, or made again with another secret: the session ends */
    se = api_session_new(s, &t, 0);
    struct api_token t2 = tok("alice", 8);
    struct api_tokens other = {.v = &t2, .n = 1}, none = {0};
    assert_null(api_session_token(se, &other));
    assert_null(api_session_token(se, &none));
    /* logout */
    free(hdr);
    hdr = xasprintf(API_SESSION_COOKIE "=%s", se->id);
    api_session_drop(se);
    assert_null(api_session_find(s, u8(hdr), strlen(hdr), 1));
    free(hdr);
    free(s);
}

static void test_session_full_reuses_oldest(void **state)
{
    struct api_sessions *s = xcalloc(1, sizeof(*s));
    struct api_token t = tok("bob", 1);
    char first[API_SESSION_ID_LEN + 1];
    (void)state;

    for (unsigned i = 0; i < API_SESSIONS_MAX; i++) {
        struct api_session *se = api_session_new(s, &t, 10 + i);
        if (i == 0)
            snprintf(first, sizeof(first), "%s", se->id);
    }
    char *hdr = xasprintf(API_SESSION_COOKIE "=%s", first);
    struct api_session *again = api_session_new(s, &t, 10 + API_SESSIONS_MAX);
    assert_string_not_equal(again->id, first);
    assert_null(api_session_find(s, u8(hdr), strlen(hdr), 10 + API_SESSIONS_MAX));
    free(hdr);
    free(s);
}

static void test_csrf_rule(void **state)
{
    struct api_sessions *s = xcalloc(1, sizeof(*s));
    struct api_token t = tok("alice", 7);
    struct api_session *se = api_session_new(s, &t, 0);
    const char *why = NULL;
    const char *host = "127.0.0.1:8443";
    char *good_origin = xasprintf("https://%s", host);
    size_t hl = strlen(host), ol = strlen(good_origin), cl = strlen(se->csrf);
    (void)state;

    /* the token and the origin: yes; the token without Origin (old clients): yes */
    assert_true(api_session_csrf_ok(se, u8(se->csrf), cl, u8(good_origin), ol, u8(host), hl,
                                    u8("same-origin"), 11, &why));
    assert_true(api_session_csrf_ok(se, u8(se->csrf), cl, NULL, 0, u8(host), hl, NULL, 0, &why));
    /* no token, the session id instead of it, a wrong one */
    assert_false(
        api_session_csrf_ok(se, NULL, 0, u8(good_origin), ol, u8(host), hl, NULL, 0, &why));
    assert_non_null(strstr(why, "X-CSRF-Token"));
    assert_false(
        api_session_csrf_ok(se, u8(se->id), cl, u8(good_origin), ol, u8(host), hl, NULL, 0, &why));
    assert_false(
        api_session_csrf_ok(se, u8(se->csrf), cl - 1, NULL, 0, u8(host), hl, NULL, 0, &why));
    /* another origin, http instead of https, a longer host */
    assert_false(api_session_csrf_ok(se, u8(se->csrf), cl, u8("https://evil.example"), 20, u8(host),
                                     hl, NULL, 0, &why));
    assert_non_null(strstr(why, "Origin"));
    assert_false(api_session_csrf_ok(se, u8(se->csrf), cl, u8("http://127.0.0.1:8443"), 21,
                                     u8(host), hl, NULL, 0, &why));
    assert_false(api_session_csrf_ok(se, u8(se->csrf), cl, u8("https://127.0.0.1:84431"), 23,
                                     u8(host), hl, NULL, 0, &why));
    assert_false(
        api_session_csrf_ok(se, u8(se->csrf), cl, u8("null"), 4, u8(host), hl, NULL, 0, &why));
    /* a browser saying the request came from another site */
    assert_false(api_session_csrf_ok(se, u8(se->csrf), cl, NULL, 0, u8(host), hl, u8("cross-site"),
                                     10, &why));
    assert_false(
        api_session_csrf_ok(se, u8(se->csrf), cl, NULL, 0, u8(host), hl, u8("same-site"), 9, &why));
    free(good_origin);
    free(s);
}

static void test_set_cookie_flags(void **state)
{
    struct api_sessions *s = xcalloc(1, sizeof(*s));
    struct api_token t = tok("alice", 7);
    struct api_session *se = api_session_new(s, &t, 0);
    (void)state;

    char *c = api_session_set_cookie(se);
    char *want = xasprintf("Set-Cookie: __Host-certloop=%s; Path=/; Secure; HttpOnly; "
                           "SameSite=Strict; Max-Age=43200\r\n",
                           se->id);
    assert_string_equal(c, want);
    free(c);
    free(want);
    c = api_session_set_cookie(NULL);
    assert_string_equal(c, "Set-Cookie: __Host-certloop=; Path=/; Secure; HttpOnly; "
                           "SameSite=Strict; Max-Age=0\r\n");
    free(c);
    free(s);
}

static void test_assets(void **state)
{
    (void)state;
    const struct api_asset *a = api_asset_find(u8("/"), 1);
    assert_non_null(a);
    assert_string_equal(a->ctype, "text/html; charset=utf-8");
    /* the page carries no inline script or style: the CSP forbids them */
    assert_non_null(memmem(a->data, a->len, "<script src=\"/app.js\"", 21));
    assert_null(memmem(a->data, a->len, "<script>", 8));
    assert_null(memmem(a->data, a->len, "style=", 6));
    assert_null(memmem(a->data, a->len, "onclick=", 8));
    assert_null(memmem(a->data, a->len, "onload=", 7));
    assert_null(memmem(a->data, a->len, "javascript:", 11));
    assert_null(memmem(a->data, a->len, "http://", 7));
    assert_null(memmem(a->data, a->len, "https://", 8)); /* nothing from another origin */
    a = api_asset_find(u8("/app.js"), 7);
    assert_non_null(a);
    assert_string_equal(a->ctype, "text/javascript; charset=utf-8");
    assert_null(memmem(a->data, a->len, "innerHTML", 9));
    assert_null(memmem(a->data, a->len, "eval(", 5));
    a = api_asset_find(u8("/app.css"), 8);
    assert_non_null(a);
    assert_string_equal(a->ctype, "text/css; charset=utf-8");
    assert_null(memmem(a->data, a->len, "@import", 7));
    assert_null(memmem(a->data, a->len, "url(http", 8));
    assert_non_null(api_asset_find(u8("/favicon.svg"), 12));
    assert_null(api_asset_find(u8("/index.html"), 11));
    assert_null(api_asset_find(u8("/app.js/"), 8));
    assert_null(api_asset_find(u8("/v1/certificates"), 16));
    assert_non_null(strstr(api_asset_headers, "script-src 'self';"));
    assert_non_null(strstr(api_asset_headers, "frame-ancestors 'none'"));
    assert_null(strstr(api_asset_headers, "unsafe-inline"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_cookie_roundtrip),
        cmocka_unit_test(test_session_expiry_and_token),
        cmocka_unit_test(test_session_full_reuses_oldest),
        cmocka_unit_test(test_csrf_rule),
        cmocka_unit_test(test_set_cookie_flags),
        cmocka_unit_test(test_assets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
