/* ARI (RFC 9773) helpers: renewalInfo parsing (valid, garbage, inverted
 * windows), RFC 3339 timestamps checked against timegm, the pick inside the
 * window with chosen random bits, and the re-poll time from Retry-After. */
#define _DEFAULT_SOURCE /* timegm */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "acme/acme.h"
#include "util/err.h"

static int parse(const char *json, struct acme_ari_info *ai)
{
    return acme_ari_parse(json, strlen(json), ai);
}

static int64_t ts(const char *s)
{
    int64_t v = -1;

    assert_int_equal(acme_rfc3339_parse(s, strlen(s), &v, NULL), 0);
    return v;
}

static void test_parse_rfc9773_example(void **state)
{
    /* the example of RFC 9773 §4.2 */
    const char *j = "{\"suggestedWindow\": {\"start\": \"2025-01-02T04:00:00Z\","
                    " \"end\": \"2025-01-03T04:00:00Z\"},"
                    " \"explanationURL\": \"https://acme.example.com/docs/ari\"}";
    struct acme_ari_info ai;

    (void)state;
    assert_int_equal(parse(j, &ai), 0);
    assert_int_equal(ai.start, 1735790400);
    assert_int_equal(ai.end, 1735790400 + 86400);
    assert_string_equal(ai.explanation_url, "https://acme.example.com/docs/ari");
    acme_ari_info_fini(&ai);
    assert_null(ai.explanation_url);

    /* no explanationURL, extra members ignored, offsets and fractions */
    j = "{\"suggestedWindow\":{\"start\":\"2025-01-02T05:00:00.5+01:00\","
        "\"end\":\"2025-01-02t04:00:01.25z\",\"x\":1},\"other\":[]}";
    assert_int_equal(parse(j, &ai), 0);
    assert_int_equal(ai.start, 1735790400);
    assert_int_equal(ai.end, 1735790401);
    assert_null(ai.explanation_url);
    acme_ari_info_fini(&ai);
}

static void test_parse_rejects_garbage(void **state)
{
    static const char *const bad[] = {
        "",
        "null",
        "[]",
        "{}",
        "{\"suggestedWindow\":null}",
        "{\"suggestedWindow\":{}}",
        "{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\"}}",
        "{\"suggestedWindow\":{\"start\":1735790400,\"end\":1735876800}}",
        /* end before / equal to start */
        "{\"suggestedWindow\":{\"start\":\"2025-01-03T04:00:00Z\",\"end\":\"2025-01-02T04:00:00Z\"}"
        "}",
        "{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\",\"end\":\"2025-01-02T04:00:00Z\"}"
        "}",
        /* same instant written with two offsets */
        "{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\",\"end\":\"2025-01-02T05:00:00+01:"
        "00\"}}",
        /* not RFC 3339 */
        "{\"suggestedWindow\":{\"start\":\"2025-01-02 "
        "04:00:00Z\",\"end\":\"2025-01-03T04:00:00Z\"}}",
        "{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00\",\"end\":\"2025-01-03T04:00:00Z\"}"
        "}",
        "{\"suggestedWindow\":{\"start\":\"2025-02-30T04:00:00Z\",\"end\":\"2025-03-03T04:00:00Z\"}"
        "}",
        /* explanationURL of the wrong type or with spaces */
        "{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\",\"end\":\"2025-01-03T04:00:00Z\"}"
        ","
        "\"explanationURL\":5}",
        "{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\",\"end\":\"2025-01-03T04:00:00Z\"}"
        ","
        "\"explanationURL\":\"a b\"}",
        "{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\",\"end\":\"2025-01-03T04:00:"
        "00Z\"}",
    };
    struct acme_ari_info ai = {.start = 7};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &ai) != ERR_PARSE)
            fail_msg("accepted: %s", bad[i]);
    }
    assert_int_equal(ai.start, 7); /* out untouched on failure */
    /* a window of half a second: end is still after start in seconds */
    assert_int_equal(parse("{\"suggestedWindow\":{\"start\":\"2026-12-20T00:00:00Z\","
                           "\"end\":\"2026-12-20T00:00:00.5+00:00\"}}",
                           &ai),
                     0);
    assert_true(ai.end > ai.start);
    acme_ari_info_fini(&ai);
    /* NUL inside the input is not JSON */
    assert_int_equal(acme_ari_parse("{\"a\":1}\0x", 9, &ai), ERR_PARSE);
}

static void test_rfc3339_against_timegm(void **state)
{
    char s[64];
    uint64_t seed = 88172645463325252u;

    (void)state;
    for (int i = 0; i < 20000; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        struct tm tm = {0};
        tm.tm_year = (int)(seed % 300) + 1; /* 1901..2200 */
        tm.tm_mon = (int)((seed >> 10) % 12);
        tm.tm_mday = (int)((seed >> 20) % 28) + 1;
        tm.tm_hour = (int)((seed >> 30) % 24);
        tm.tm_min = (int)((seed >> 40) % 60);
        tm.tm_sec = (int)((seed >> 50) % 60);
        int64_t want = (int64_t)timegm(&tm);
        snprintf(s, sizeof(s), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        assert_int_equal(ts(s), want);
    }
    assert_int_equal(ts("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(ts("2000-02-29T12:00:00Z"), 951825600);
    assert_int_equal(ts("2024-12-31T23:59:60Z"), 1735689600); /* leap second */
    assert_int_equal(ts("2025-01-01T00:00:00-05:30"), 1735689600 + 5 * 3600 + 1800);
    int64_t msv;
    assert_int_equal(acme_rfc3339_parse("1970-01-01T00:00:01.999Z", 24, NULL, &msv), 0);
    assert_int_equal(msv, 1999);

    static const char *const bad[] = {
        "1900-02-29T00:00:00Z",     "2023-02-29T00:00:00Z",       "2025-13-01T00:00:00Z",
        "2025-00-01T00:00:00Z",     "2025-01-00T00:00:00Z",       "2025-01-01T24:00:00Z",
        "2025-01-01T00:60:00Z",     "2025-01-01T00:00:61Z",       "2025-01-01T00:00:00.Z",
        "2025-01-01T00:00:00+0100", "2025-01-01T00:00:00+01:00x", "2025-1-01T00:00:00Z",
        "0000-01-01T00:00:00Z",     "2025-01-01T00:00:00ZZ",      "+025-01-01T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (acme_rfc3339_parse(bad[i], strlen(bad[i]), &msv, NULL) != ERR_PARSE)
            fail_msg("accepted: %s", bad[i]);
    }
}

static void test_pick_in_window(void **state)
{
    struct acme_ari_info ai = {.start = 1000, .end = 2000};

    (void)state;
    assert_int_equal(acme_ari_pick(&ai, 0, 0), 1000);
    assert_int_equal(acme_ari_pick(&ai, 0, 999), 1999);
    assert_int_equal(acme_ari_pick(&ai, 0, 1000), 1000); /* end excluded */
    assert_int_equal(acme_ari_pick(&ai, 0, 1234567), 1567);
    /* a picked time already past: now */
    assert_int_equal(acme_ari_pick(&ai, 1500, 10), 1500);
    assert_int_equal(acme_ari_pick(&ai, 1500, 700), 1700);
    /* the whole window in the past: now, whatever the dice say */
    for (uint64_t r = 0; r < 5000; r += 7)
        assert_int_equal(acme_ari_pick(&ai, 5000, r), 5000);
    /* uniformity, roughly: 10 buckets over the window from a LCG stream */
    unsigned hist[10] = {0};
    uint64_t x = 1;
    for (int i = 0; i < 100000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        int64_t t = acme_ari_pick(&ai, 0, x >> 11);
        assert_true(t >= 1000 && t < 2000);
        hist[(t - 1000) / 100]++;
    }
    for (int i = 0; i < 10; i++)
        assert_true(hist[i] > 9000 && hist[i] < 11000);
}

static void test_next_poll(void **state)
{
    const int64_t now = 1700000000;

    (void)state;
    assert_int_equal(acme_ari_next_poll(NULL, now), now + 6 * 3600);
    assert_int_equal(acme_ari_next_poll("garbage", now), now + 6 * 3600);
    assert_int_equal(acme_ari_next_poll("3600", now), now + 3600);
    assert_int_equal(acme_ari_next_poll("0", now), now + 60);         /* clamped up */
    assert_int_equal(acme_ari_next_poll("999999", now), now + 86400); /* clamped down */
    /* HTTP-date 2 hours ahead: 1700007200 = Wed, 15 Nov 2023 00:13:20 GMT */
    assert_int_equal(acme_ari_next_poll("Wed, 15 Nov 2023 00:13:20 GMT", now), now + 7200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_rfc9773_example),
        cmocka_unit_test(test_parse_rejects_garbage),
        cmocka_unit_test(test_rfc3339_against_timegm),
        cmocka_unit_test(test_pick_in_window),
        cmocka_unit_test(test_next_poll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
