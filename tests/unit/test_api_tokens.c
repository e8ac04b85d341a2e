/* The API's pure parts: scopes, the tokens file (parse, match, create and
 * revoke in a temp dir), the per-address limit on failed authentications,
 * the route matcher (traversal and escapes match nothing), and the
 * Authorization field the shared request parser hands over. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api_internal.h"
#include "net/httpd.h"
#include "util/buf.h"
#include "util/xalloc.h"

static void test_scopes_parse_and_format(void **state)
{
    unsigned s = 0;
    char out[32];
    (void)state;

    assert_int_equal(api_scopes_parse("read", &s), 0);
    assert_int_equal(s, API_SCOPE_READ);
    assert_int_equal(api_scopes_parse("manage,read,pull", &s), 0);
    assert_int_equal(s, API_SCOPE_READ | API_SCOPE_PULL | API_SCOPE_MANAGE);
    api_scopes_format(s, out, sizeof(out));
    assert_string_equal(out, "read,pull,manage");
    assert_int_equal(api_scopes_parse("", &s), -EINVAL);
    assert_int_equal(api_scopes_parse("read,", &s), -EINVAL);
    assert_int_equal(api_scopes_parse("read,,pull", &s), -EINVAL);
    assert_int_equal(api_scopes_parse("admin", &s), -EINVAL);
    assert_int_equal(api_scopes_parse("Read", &s), -EINVAL);
}

static void test_tokens_parse_refuses_bad_lines(void **state)
{
    struct api_tokens t;
    char *err = NULL;
    const char *h = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    char ok[200], twice[300], bad_hex[200];
    (void)state;

    snprintf(ok, sizeof(ok), "# comment\n\nci read,pull %s\r\n", h);
    assert_int_equal(api_tokens_parse(ok, strlen(ok), &t, &err), 0);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.v[0].name, "ci");
    assert_int_equal(t.v[0].scopes, API_SCOPE_READ | API_SCOPE_PULL);
    api_tokens_fini(&t);

    snprintf(twice, sizeof(twice), "a read %s\na pull %s\n", h, h);
    assert_int_equal(api_tokens_parse(twice, strlen(twice), &t, &err), -EINVAL);
    assert_non_null(strstr(err, "line 2"));
    free(err);
    snprintf(bad_hex, sizeof(bad_hex), "a read sha256:%064d\n", 0);
    bad_hex[20] = 'X';
    assert_int_equal(api_tokens_parse(bad_hex, strlen(bad_hex), &t, &err), -EINVAL);
    free(err);
    const char *const bad[] = {"a\n", "a read\n", "../x read sha256:00\n", "a admin x\n",
                               "a read sha256:00 extra\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        assert_int_equal(api_tokens_parse(bad[i], strlen(bad[i]), &t, &err), -EINVAL);
        assert_non_null(strstr(err, "line 1"));
        free(err);
    }
    /* a NUL byte inside a line is not silently cut */
    char nul[120];
    int n = snprintf(nul, sizeof(nul), "a read %s\n", h);
    nul[3] = '\0';
    err = NULL;
    assert_int_equal(api_tokens_parse(nul, (size_t)n, &t, &err), -EINVAL);
    free(err);
}

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/test_api_XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

static char *slurp(const char *path)
{
    struct buf b = BUF_INIT(1 << 20);
    assert_int_equal(buf_read_file(&b, path), 0);
    buf_append(&b, "", 1);
    return buf_steal(&b, NULL);
}

static void test_create_match_revoke(void **state)
{
    char *dir = tmpdir();
    char *path = xasprintf("%s/tokens", dir);
    char *s1 = NULL, *s2 = NULL, *err = NULL;
    struct api_tokens t;
    struct stat st;
    (void)state;

    assert_int_equal(api_token_create(path, "ci", API_SCOPE_READ, &s1, &err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(strncmp(s1, API_SECRET_PREFIX, strlen(API_SECRET_PREFIX)), 0);
    assert_int_equal(api_token_create(path, "hub", API_SCOPE_PULL | API_SCOPE_READ, &s2, &err), 0);
    /* the file holds hashes, never a secret */
    char *text = slurp(path);
    assert_null(strstr(text, s1 + strlen(API_SECRET_PREFIX)));
    assert_null(strstr(text, s2 + strlen(API_SECRET_PREFIX)));
    assert_non_null(strstr(text, "ci read sha256:"));
    assert_non_null(strstr(text, "hub read,pull sha256:"));
    /* a taken name is refused, the file unchanged */
    char *s3 = NULL;
    assert_int_equal(api_token_create(path, "ci", API_SCOPE_MANAGE, &s3, &err), -EEXIST);
    assert_null(s3);
    free(err);
    err = NULL;
    assert_int_equal(api_token_create(path, "../x", API_SCOPE_READ, &s3, &err), -EINVAL);
    free(err);
    err = NULL;
    /* an operator's 0640 is kept */
    assert_int_equal(chmod(path, 0640), 0);

    char *text2 = slurp(path);
    assert_int_equal(api_tokens_parse(text2, strlen(text2), &t, &err), 0);
    assert_int_equal(t.n, 2);
    const struct api_token *m = api_tokens_match(&t, s2, strlen(s2));
    assert_non_null(m);
    assert_string_equal(m->name, "hub");
    assert_string_equal(api_tokens_match(&t, s1, strlen(s1))->name, "ci");
    assert_null(api_tokens_match(&t, s1, strlen(s1) - 1));
    assert_null(api_tokens_match(&t, "", 0));
    api_tokens_fini(&t);

    assert_int_equal(api_token_revoke(path, "ci", &err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(api_token_revoke(path, "ci", &err), -ENOENT);
    free(err);
    err = NULL;
    char *text3 = slurp(path);
    assert_int_equal(api_tokens_parse(text3, strlen(text3), &t, &err), 0);
    assert_int_equal(t.n, 1);
    assert_null(api_tokens_match(&t, s1, strlen(s1)));
    assert_non_null(api_tokens_match(&t, s2, strlen(s2)));
    api_tokens_fini(&t);

    unlink(path);
    rmdir(dir);
    free(text);
    free(text2);
    free(text3);
    free(s1);
    free(s2);
    free(path);
    free(dir);
}

static void test_failed_auth_limited_per_address(void **state)
{
    struct api_faillimit *l = xcalloc(1, sizeof(*l));
    (void)state;

    for (unsigned i = 0; i < API_FAIL_MAX; i++) {
        assert_int_equal(api_fail_wait(l, "192.0.2.1", 1000 + i), 0);
        api_fail_add(l, "192.0.2.1", 1000 + i);
    }
    assert_true(api_fail_wait(l, "192.0.2.1", 2000) > 0);
    assert_int_equal(api_fail_wait(l, "192.0.2.1", 2000), 1000 + API_FAIL_WINDOW_MS - 2000);
    /* another address is not affected; the window ends */
    assert_int_equal(api_fail_wait(l, "192.0.2.2", 2000), 0);
    assert_int_equal(api_fail_wait(l, "192.0.2.1", 1000 + API_FAIL_WINDOW_MS), 0);
    /* many addresses: the table reuses its oldest slot, never grows */
    for (unsigned i = 0; i < 3 * API_FAIL_SLOTS; i++) {
        char a[32];
        snprintf(a, sizeof(a), "10.0.%u.%u", i / 256, i % 256);
        api_fail_add(l, a, 5000 + i);
    }
    free(l);
}

static const struct api_route *find(const char *method, const char *path, bool *ok, char **name,
                                    const char **file)
{
    *name = NULL;
    return api_route_find(method, (const uint8_t *)path, strlen(path), ok, name, file);
}

static void test_routes(void **state)
{
    bool ok;
    char *name;
    const char *file;
    const struct api_route *r;
    (void)state;

    r = find("GET", "/v1/certificates", &ok, &name, &file);
    assert_true(r != NULL && ok && r->kind == API_R_LIST && name == NULL);
    r = find("GET", "/v1/certificates/www.example", &ok, &name, &file);
    assert_true(r != NULL && ok && r->kind == API_R_GET);
    assert_string_equal(name, "www.example");
    free(name);
    r = find("HEAD", "/v1/certificates/www/fullchain.pem", &ok, &name, &file);
    assert_true(r != NULL && ok && r->kind == API_R_PEM);
    assert_string_equal(file, "fullchain.pem");
    free(name);
    r = find("GET", "/v1/certificates/www/key.pem", &ok, &name, &file);
    assert_true(r != NULL && ok && r->kind == API_R_KEY && r->scopes == API_SCOPE_PULL);
    free(name);
    r = find("GET", "/v1/certificates/www/renew", &ok, &name, &file);
    assert_true(r != NULL && !ok && r->kind == API_R_RENEW);
    free(name);
    r = find("POST", "/v1/certificates/www/renew", &ok, &name, &file);
    assert_true(r != NULL && ok && r->scopes == API_SCOPE_MANAGE);
    free(name);
    r = find("POST", "/v1/certificates", &ok, &name, &file);
    assert_true(r != NULL && ok && r->kind == API_R_CREATE && name == NULL);
    r = find("DELETE", "/v1/certificates/www", &ok, &name, &file);
    assert_true(r != NULL && ok && r->kind == API_R_DELETE);
    assert_string_equal(name, "www");
    free(name);
    r = find("PUT", "/v1/certificates/www", &ok, &name, &file);
    assert_true(r != NULL && !ok);
    free(name);
    char allow[64];
    api_route_allow((const uint8_t *)"/v1/certificates/www", 20, allow, sizeof(allow));
    assert_string_equal(allow, "GET, HEAD, DELETE");
    api_route_allow((const uint8_t *)"/v1/certificates", 16, allow, sizeof(allow));
    assert_string_equal(allow, "GET, HEAD, POST");
    /* traversal, escapes, empty and dot segments, trailing parts: no route */
    const char *const none[] = {"/v1/certificates/..",
                                "/v1/certificates/../key.pem",
                                "/v1/certificates/%2e%2e/key.pem",
                                "/v1/certificates/a%2fb",
                                "/v1/certificates//key.pem",
                                "/v1/certificates/.hidden",
                                "/v1/certificates/a/b/key.pem",
                                "/v1/certificates/a/key.pem/",
                                "/v1/certificates/",
                                "/v1/certificates/a/other.pem",
                                "/v1",
                                "/",
                                "/v1/certificates/a b"};
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        name = NULL;
        r = find("GET", none[i], &ok, &name, &file);
        if (r != NULL)
            print_error("matched: %s\n", none[i]);
        assert_null(r);
        assert_null(name);
    }
    /* every route needs at least one scope, and only pull reaches the key */
    for (const struct api_route *x = api_routes; x->pattern != NULL; x++) {
        assert_true(x->scopes != 0);
        /* /v1/plan reads configuration text sent by the client (its paths
         * are looked at): manage, as the changes */
        bool changes = strcmp(x->method, "GET") != 0 || x->kind == API_R_PLAN;
        if (x->kind == API_R_KEY)
            assert_int_equal(x->scopes, API_SCOPE_PULL);
        else if (changes) /* whatever changes something needs manage, and only manage */
            assert_int_equal(x->scopes, API_SCOPE_MANAGE);
        else
            assert_true((x->scopes & API_SCOPE_READ) != 0);
    }
}

static void test_parser_hands_over_authorization(void **state)
{
    struct httpd_req r;
    const char *one =
        "GET /v1/certificates HTTP/1.1\r\nHost: a\r\nAuthorization:  Bearer x  \r\n\r\n";
    const char *two = "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nauthorization: b\r\n\r\n";
    const char *body = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    (void)state;

    assert_int_equal(httpd_parse((const uint8_t *)one, strlen(one), &r), HTTPD_PARSE_DONE);
    assert_int_equal(r.authorization_len, 8);
    assert_memory_equal(r.authorization, "Bearer x", 8);
    assert_int_equal(httpd_parse((const uint8_t *)two, strlen(two), &r), HTTPD_PARSE_BAD);
    /* a request body is refused by the parser: the API takes none */
    assert_int_equal(httpd_parse((const uint8_t *)body, strlen(body), &r), HTTPD_PARSE_BAD);
    const char *none = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(httpd_parse((const uint8_t *)none, strlen(none), &r), HTTPD_PARSE_DONE);
    assert_null(r.authorization);
}

static void test_head_field(void **state)
{
    const char *h = "\r\nGET /v1/events HTTP/1.1\r\nHost: a\r\nlast-event-id:  ab-12 \r\n"
                    "X: Last-Event-ID: no\r\n\r\nLast-Event-ID: body\r\n";
    const uint8_t *v = NULL;
    size_t vl = 0;
    (void)state;

    assert_true(api_head_field((const uint8_t *)h, strlen(h), "Last-Event-ID", &v, &vl));
    assert_int_equal(vl, 5);
    assert_memory_equal(v, "ab-12", 5);
    assert_false(api_head_field((const uint8_t *)h, strlen(h), "Authorization", &v, &vl));
    /* nothing after the empty line is a field; a request line is not one */
    const char *g = "GET /Host: x HTTP/1.1\r\nA: b\r\n\r\nHost: y\r\n";
    assert_false(api_head_field((const uint8_t *)g, strlen(g), "Host", &v, &vl));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scopes_parse_and_format),
        cmocka_unit_test(test_tokens_parse_refuses_bad_lines),
        cmocka_unit_test(test_create_match_revoke),
        cmocka_unit_test(test_failed_auth_limited_per_address),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_parser_hands_over_authorization),
        cmocka_unit_test(test_head_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
