/* Unit tests for ACME problem documents (RFC 7807 / RFC 8555 §6.7):
 * parsing with and without subproblems, tolerance of missing or mistyped
 * members, rejection of non-objects, masking and capping of CA text, and
 * the one-line rendering used in logs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acme/acme.h"
#include "util/err.h"

static void parse_ok(const char *json, struct acme_problem *p)
{
    memset(p, 0x5a, sizeof(*p));
    assert_int_equal(acme_problem_parse(json, strlen(json), p), 0);
}

static void test_problem_simple(void **state)
{
    (void)state;
    struct acme_problem p;
    parse_ok("{\"type\":\"urn:ietf:params:acme:error:badNonce\","
             "\"detail\":\"JWS has an invalid anti-replay nonce: \\\"abc\\\"\",\"status\":400}",
             &p);
    assert_string_equal(p.type, "urn:ietf:params:acme:error:badNonce");
    assert_string_equal(p.detail, "JWS has an invalid anti-replay nonce: \"abc\"");
    assert_int_equal(p.status, 400);
    assert_int_equal(p.n_sub, 0);
    assert_null(p.sub);
    assert_true(acme_problem_is(&p, "badNonce"));
    assert_false(acme_problem_is(&p, "badNonc"));
    assert_false(acme_problem_is(&p, "rateLimited"));
    char *s = acme_problem_str(&p);
    assert_string_equal(
        s, "urn:ietf:params:acme:error:badNonce: JWS has an invalid anti-replay nonce: \"abc\"");
    free(s);
    acme_problem_fini(&p);
    assert_null(p.type); /* fini leaves it empty */
}

static void test_problem_with_subproblems(void **state)
{
    (void)state;
    struct acme_problem p;
    /* RFC 8555 §6.7.1 shape. */
    parse_ok("{\n"
             "  \"type\": \"urn:ietf:params:acme:error:malformed\",\n"
             "  \"detail\": \"Some of the identifiers requested were rejected\",\n"
             "  \"subproblems\": [\n"
             "    {\"type\": \"urn:ietf:params:acme:error:malformed\",\n"
             "     \"detail\": \"Invalid underscore in DNS name \\\"_example.org\\\"\",\n"
             "     \"identifier\": {\"type\": \"dns\", \"value\": \"_example.org\"}},\n"
             "    {\"type\": \"urn:ietf:params:acme:error:rejectedIdentifier\",\n"
             "     \"detail\": \"This CA will not issue for \\\"example.net\\\"\",\n"
             "     \"identifier\": {\"type\": \"dns\", \"value\": \"example.net\"}}\n"
             "  ]\n"
             "}",
             &p);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.n_sub, 2);
    assert_string_equal(p.sub[0].identifier, "dns:_example.org");
    assert_string_equal(p.sub[0].type, "urn:ietf:params:acme:error:malformed");
    assert_string_equal(p.sub[1].identifier, "dns:example.net");
    assert_string_equal(p.sub[1].detail, "This CA will not issue for \"example.net\"");
    assert_true(acme_problem_is(&p, "malformed"));
    char *s = acme_problem_str(&p);
    assert_string_equal(s, "urn:ietf:params:acme:error:malformed: Some of the identifiers "
                           "requested were rejected (subproblems: dns:_example.org: "
                           "urn:ietf:params:acme:error:malformed: Invalid underscore in DNS name "
                           "\"_example.org\"; dns:example.net: "
                           "urn:ietf:params:acme:error:rejectedIdentifier: This CA will not "
                           "issue for \"example.net\")");
    assert_null(strchr(s, '\n'));
    /* a deep copy outlives the original and reads the same */
    struct acme_problem *d = acme_problem_dup(&p);
    acme_problem_fini(&p);
    char *ds = acme_problem_str(d);
    assert_string_equal(ds, s);
    assert_int_equal(d->n_sub, 2);
    assert_string_equal(d->sub[1].identifier, "dns:example.net");
    acme_problem_free(d);
    assert_null(acme_problem_dup(NULL));
    acme_problem_free(NULL);
    free(ds);
    free(s);
}

static void test_problem_tolerates_missing_and_mistyped_members(void **state)
{
    (void)state;
    struct acme_problem p;

    parse_ok("{}", &p);
    assert_null(p.type);
    assert_null(p.detail);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.n_sub, 0);
    assert_false(acme_problem_is(&p, "badNonce"));
    char *s = acme_problem_str(&p);
    assert_string_equal(s, "about:blank"); /* RFC 7807 §4.2 default type */
    free(s);
    acme_problem_fini(&p);

    parse_ok("{\"type\":42,\"detail\":null,\"status\":\"400\",\"subproblems\":{}}", &p);
    assert_null(p.type);
    assert_null(p.detail);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.n_sub, 0);
    acme_problem_fini(&p);

    /* Out of range status, odd subproblem entries and identifiers. */
    parse_ok("{\"status\":99999,\"subproblems\":[1,\"x\",{},{\"identifier\":\"dns\"},"
             "{\"identifier\":{\"type\":\"dns\"}},{\"identifier\":{\"value\":\"v.example\"}}]}",
             &p);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.n_sub, 4); /* the two non-objects are skipped */
    assert_null(p.sub[0].identifier);
    assert_null(p.sub[0].type);
    assert_null(p.sub[1].identifier);
    assert_null(p.sub[2].identifier);
    assert_string_equal(p.sub[3].identifier, "?:v.example");
    s = acme_problem_str(&p);
    assert_string_equal(s, "about:blank (subproblems: about:blank; about:blank; about:blank; "
                           "?:v.example: about:blank)");
    free(s);
    acme_problem_fini(&p);

    /* Type only. */
    parse_ok("{\"type\":\"urn:ietf:params:acme:error:rateLimited\"}", &p);
    s = acme_problem_str(&p);
    assert_string_equal(s, "urn:ietf:params:acme:error:rateLimited");
    assert_true(acme_problem_is(&p, "rateLimited"));
    free(s);
    acme_problem_fini(&p);
}

static void test_problem_rejects_non_objects(void **state)
{
    (void)state;
    const char *bad[] = {"",    "[]",   "null",   "\"urn:x\"", "42",   "{",
                         "{}}", "true", "<html>", "{\"a\":}",  "[{}]", "{\"type\":\"x\"} {}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct acme_problem p;
        memset(&p, 0x5a, sizeof(p));
        assert_int_equal(acme_problem_parse(bad[i], strlen(bad[i]), &p), ERR_PARSE);
    }
    struct acme_problem p;
    assert_int_equal(acme_problem_parse(NULL, 0, &p), ERR_PARSE);
    /* Only the first len bytes count. */
    const char doc[] = "{\"type\":\"t\"}garbage";
    assert_int_equal(acme_problem_parse(doc, strlen(doc), &p), ERR_PARSE);
    assert_int_equal(acme_problem_parse(doc, 12, &p), 0);
    assert_string_equal(p.type, "t");
    acme_problem_fini(&p);

    json_t *arr = json_array();
    assert_int_equal(acme_problem_from_json(arr, &p), ERR_PARSE);
    assert_int_equal(acme_problem_from_json(NULL, &p), ERR_PARSE);
    json_decref(arr);
}

static void test_problem_from_json_object(void **state)
{
    (void)state;
    /* A challenge's "error" member as the order code will pass it. */
    json_t *chall =
        json_pack("{s:s, s:{s:s, s:s, s:i}}", "status", "invalid", "error", "type",
                  "urn:ietf:params:acme:error:connection", "detail",
                  "Fetching http://a.example/.well-known/acme-challenge/x: Timeout", "status", 400);
    struct acme_problem p;
    assert_int_equal(acme_problem_from_json(json_object_get(chall, "error"), &p), 0);
    assert_true(acme_problem_is(&p, "connection"));
    assert_int_equal(p.status, 400);
    assert_string_equal(p.detail,
                        "Fetching http://a.example/.well-known/acme-challenge/x: Timeout");
    acme_problem_fini(&p);
    json_decref(chall);
}

static void test_problem_masks_control_characters(void **state)
{
    (void)state;
    struct acme_problem p;
    parse_ok("{\"type\":\"urn:ietf:params:acme:error:caa\\u001b[31m\","
             "\"detail\":\"line1\\nline2\\r\\u0000tab\\there \\u00e9\\u202e\","
             "\"subproblems\":[{\"detail\":\"x\\u0007y\","
             "\"identifier\":{\"type\":\"dns\",\"value\":\"a\\nb.example\"}}]}",
             &p);
    assert_string_equal(p.type, "urn:ietf:params:acme:error:caa.[31m");
    /* é is two UTF-8 bytes, U+202E three: each byte becomes a '.'. */
    assert_string_equal(p.detail, "line1.line2..tab.here .....");
    assert_string_equal(p.sub[0].detail, "x.y");
    assert_string_equal(p.sub[0].identifier, "dns:a.b.example");
    char *s = acme_problem_str(&p);
    for (const char *c = s; *c != '\0'; c++)
        assert_true(*c >= 0x20 && *c < 0x7f);
    free(s);
    acme_problem_fini(&p);
}

static void test_problem_caps_long_strings(void **state)
{
    (void)state;
    size_t big = 5000; /* well past every cap */
    char *detail = malloc(big + 1);
    memset(detail, 'd', big);
    detail[big] = '\0';
    json_t *subs = json_array();
    for (int i = 0; i < 300; i++)
        json_array_append_new(subs,
                              json_pack("{s:s, s:s, s:{s:s, s:s}}", "type", "t", "detail", detail,
                                        "identifier", "type", "dns", "value", detail));
    json_t *doc =
        json_pack("{s:s, s:s, s:o}", "type", detail, "detail", detail, "subproblems", subs);
    char *text = json_dumps(doc, JSON_COMPACT);
    struct acme_problem p;
    assert_int_equal(acme_problem_parse(text, strlen(text), &p), 0);
    assert_true(strlen(p.type) < 1000);
    assert_true(strlen(p.detail) < 2000);
    assert_int_equal(strcmp(p.detail + strlen(p.detail) - 3, "..."), 0);
    assert_true(p.n_sub <= 100);
    assert_true(p.n_sub > 0);
    assert_true(strlen(p.sub[0].identifier) < 1000);
    char *s = acme_problem_str(&p);
    assert_true(strlen(s) <= 16384 + 1500);
    assert_int_equal(strncmp(s, p.type, strlen(p.type)), 0);
    /* Cut between subproblems, and still closed. */
    assert_int_equal(strcmp(s + strlen(s) - 6, "; ...)"), 0);
    free(s);
    acme_problem_fini(&p);
    free(text);
    json_decref(doc);
    free(detail);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_problem_simple),
        cmocka_unit_test(test_problem_with_subproblems),
        cmocka_unit_test(test_problem_tolerates_missing_and_mistyped_members),
        cmocka_unit_test(test_problem_rejects_non_objects),
        cmocka_unit_test(test_problem_from_json_object),
        cmocka_unit_test(test_problem_masks_control_characters),
        cmocka_unit_test(test_problem_caps_long_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
