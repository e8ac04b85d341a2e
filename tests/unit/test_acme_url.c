/* acme_url_check: which URLs a CA may hand out. https on the directory's
 * host and port passes; plain http, another host or port, userinfo and
 * control bytes are refused with the URL and its origin named; http is
 * fine only between loopback hosts when the directory is loopback http;
 * allow_other_hosts lifts the host rule but not the https one. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "acme/acme.h"
#include "util/err.h"

static const char *dir = "https://acme.example.org/directory";

static void ok(const char *d, bool other, const char *url)
{
    char *why = NULL;
    int rc = acme_url_check(d, other, url, "test", &why);
    if (rc != 0)
        fail_msg("%s refused: %s", url, why);
    assert_null(why);
}

/* refused, and the message names the URL, the origin and contains want */
static void refused(const char *d, bool other, const char *url, const char *want)
{
    char *why = NULL;
    assert_int_equal(acme_url_check(d, other, url, "the order's finalize", &why), ERR_URL_REFUSED);
    assert_non_null(why);
    if (strstr(why, "(the order's finalize)") == NULL || strstr(why, want) == NULL)
        fail_msg("%s: message %s", url, why);
    free(why);
}

static void test_same_origin_https_passes(void **state)
{
    (void)state;
    ok(dir, false, "https://acme.example.org/acme/new-nonce");
    ok(dir, false, "https://ACME.example.org./acme/order/1?x=y");
    ok(dir, false, "https://acme.example.org:443/acme/finalize/1");
    ok(dir, false, "https://acme.example.org");
    ok("https://127.0.0.1:14000/dir", false, "https://127.0.0.1:14000/nonce-plz");
    ok("https://[::1]:14000/dir", false, "https://[::1]:14000/authz/x");
}

static void test_plain_http_refused(void **state)
{
    (void)state;
    refused(dir, false, "http://acme.example.org/acme/new-nonce", "not https");
    refused(dir, true, "http://acme.example.org/acme/new-nonce", "not https");
    /* a loopback https directory does not allow http either */
    refused("https://127.0.0.1:14000/dir", false, "http://127.0.0.1:14000/x", "not https");
    /* an http loopback directory may use http on loopback only */
    ok("http://127.0.0.1:4001/dir", false, "http://127.0.0.1:4001/order/1");
    ok("http://localhost:4001/dir", true, "http://127.0.0.2:80/order/1");
    refused("http://127.0.0.1:4001/dir", true, "http://203.0.113.7/order/1", "not https");
}

static void test_other_host_or_port_refused(void **state)
{
    (void)state;
    refused(dir, false, "https://evil.example.net/acme/order/1", "host evil.example.net port 443");
    refused(dir, false, "https://acme.example.org:8443/acme/order/1", "port 8443");
    refused(dir, false, "https://acme.example.org.evil.net/x", "not the directory's");
    refused(dir, false, "https://acme.example.org@evil.net/x", "not an http(s) URL");
    ok(dir, true, "https://api.example.net/acme/order/1");
}

static void test_malformed_refused(void **state)
{
    (void)state;
    refused(dir, true, "", "not an http(s) URL");
    refused(dir, true, "ftp://acme.example.org/x", "not an http(s) URL");
    refused(dir, true, "https:///x", "not an http(s) URL");
    refused(dir, true, "https://acme.example.org:/x", "not an http(s) URL");
    refused(dir, true, "https://acme.example.org:99999/x", "not an http(s) URL");
    refused(dir, true, "https://acme.example.org/a b", "not an http(s) URL");
    refused(dir, true, "https://acme.example.org/a\r\nX-Evil: 1", "not an http(s) URL");
    refused(dir, true, "https://[::1/x", "not an http(s) URL");
}

static void test_long_url_capped_and_masked(void **state)
{
    char url[1200];
    char *why = NULL;
    (void)state;

    strcpy(url, "https://evil.example.net/");
    memset(url + strlen(url), 'a', 1000);
    url[1025] = '\0';
    assert_int_equal(acme_url_check(dir, false, url, NULL, &why), ERR_URL_REFUSED);
    assert_true(strlen(why) < 500);
    assert_non_null(strstr(why, "...")); /* cut marked */
    assert_non_null(strstr(why, "(from the CA)"));
    free(why);
    assert_int_equal(acme_url_check(dir, false, "https://x/\x01\x7f", NULL, &why), ERR_URL_REFUSED);
    assert_non_null(strstr(why, "https://x/.."));
    free(why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_origin_https_passes),
        cmocka_unit_test(test_plain_http_refused),
        cmocka_unit_test(test_other_host_or_port_refused),
        cmocka_unit_test(test_malformed_refused),
        cmocka_unit_test(test_long_url_capped_and_masked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
