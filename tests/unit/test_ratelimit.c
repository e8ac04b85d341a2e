/* Rate limiting policy: the new-order window per CA account, the failure
 * tracker per identifier, and backoff with a scripted random source. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "reactor/ratelimit.h"

#define T0 1700000000

/* 250 orders in 3 hours: the 251st waits until the first leaves the window. */
static void test_window_default_limit(void **state)
{
    struct ratelimit_window w;
    int64_t now = T0;

    (void)state;
    ratelimit_window_init(&w, RATELIMIT_ORDERS_DEFAULT, RATELIMIT_ORDERS_WINDOW_S);
    for (int i = 0; i < 250; i++) {
        assert_int_equal(ratelimit_window_next(&w, now), now);
        assert_true(ratelimit_window_take(&w, now));
        now += 10; /* one every 10 s: 2500 s for all */
    }
    assert_int_equal(ratelimit_window_used(&w, now), 250);
    /* full: next allowed when the first (T0) is 3 h old */
    assert_int_equal(ratelimit_window_next(&w, now), T0 + 3 * 3600);
    assert_int_equal(ratelimit_window_next(&w, T0 + 3 * 3600 - 1), T0 + 3 * 3600);
    assert_int_equal(ratelimit_window_next(&w, T0 + 3 * 3600), T0 + 3 * 3600);
    /* going over is recorded and reported */
    assert_false(ratelimit_window_take(&w, now));
    /* now the first two have been pushed out by the over-limit take:
     * next is the 2nd event (T0 + 10) + 3h */
    assert_int_equal(ratelimit_window_next(&w, now), T0 + 10 + 3 * 3600);
    /* after the window passes entirely, everything is free again */
    int64_t later = now + 3 * 3600 + 1;
    assert_int_equal(ratelimit_window_used(&w, later), 0);
    assert_int_equal(ratelimit_window_next(&w, later), later);
    assert_true(ratelimit_window_take(&w, later));
    ratelimit_window_fini(&w);
}

static void test_window_sliding(void **state)
{
    struct ratelimit_window w;

    (void)state;
    ratelimit_window_init(&w, 3, 100);
    assert_true(ratelimit_window_take(&w, 0));
    assert_true(ratelimit_window_take(&w, 50));
    assert_true(ratelimit_window_take(&w, 60));
    assert_int_equal(ratelimit_window_next(&w, 70), 100);
    assert_true(ratelimit_window_take(&w, 100)); /* t=0 left the window */
    assert_int_equal(ratelimit_window_next(&w, 100), 150);
    assert_int_equal(ratelimit_window_used(&w, 100), 3);
    assert_int_equal(ratelimit_window_used(&w, 155), 2);
    assert_int_equal(ratelimit_window_next(&w, 155), 155); /* t=50 left too */
    ratelimit_window_fini(&w);
}

static void test_window_unlimited_and_block(void **state)
{
    struct ratelimit_window w;

    (void)state;
    ratelimit_window_init(&w, 0, 100);
    for (int i = 0; i < 1000; i++)
        assert_true(ratelimit_window_take(&w, 5));
    assert_int_equal(ratelimit_window_next(&w, 5), 5);
    ratelimit_window_fini(&w);

    /* a rateLimited answer with Retry-After blocks until then */
    ratelimit_window_init(&w, 4, 1000);
    assert_true(ratelimit_window_take(&w, 10));
    ratelimit_window_block_until(&w, 500);
    assert_int_equal(ratelimit_window_next(&w, 20), 500);
    assert_int_equal(ratelimit_window_next(&w, 499), 500);
    assert_int_equal(ratelimit_window_next(&w, 500), 500);
    assert_true(ratelimit_window_take(&w, 500));
    /* after that, only the events that really happened still count */
    assert_int_equal(ratelimit_window_next(&w, 501), 501);
    /* block_until in the past changes nothing */
    ratelimit_window_block_until(&w, 0);
    assert_int_equal(ratelimit_window_next(&w, 502), 502);
    ratelimit_window_fini(&w);
}

/* 5 failures per identifier per hour: the 6th attempt waits for the first
 * failure to be an hour old. Identifiers are case-insensitive. */
static void test_failures_per_identifier(void **state)
{
    struct ratelimit_failures *f =
        ratelimit_failures_new(RATELIMIT_FAILURES_DEFAULT, RATELIMIT_FAILURES_WINDOW_S, 8);

    (void)state;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ratelimit_failures_next(f, "Example.ORG", T0 + i * 60), T0 + i * 60);
        ratelimit_failures_record(f, "example.org", T0 + i * 60);
    }
    assert_int_equal(ratelimit_failures_next(f, "example.org", T0 + 300), T0 + 3600);
    assert_int_equal(ratelimit_failures_next(f, "EXAMPLE.org", T0 + 3600), T0 + 3600);
    /* other names are not affected */
    assert_int_equal(ratelimit_failures_next(f, "www.example.org", T0 + 300), T0 + 300);
    assert_int_equal(ratelimit_failures_consecutive(f, "example.org"), 5);
    assert_false(ratelimit_failures_paused(f, "example.org"));
    /* a 6th failure at T0+3600 -> the next slot opens with the 2nd failure */
    ratelimit_failures_record(f, "example.org", T0 + 3600);
    assert_int_equal(ratelimit_failures_next(f, "example.org", T0 + 3600), T0 + 60 + 3600);
    ratelimit_failures_record(f, "example.org", T0 + 3700);
    ratelimit_failures_record(f, "example.org", T0 + 3800);
    assert_int_equal(ratelimit_failures_consecutive(f, "example.org"), 8);
    assert_true(ratelimit_failures_paused(f, "example.org"));
    /* success resets the consecutive count, not the hourly window */
    ratelimit_failures_success(f, "example.org");
    assert_int_equal(ratelimit_failures_consecutive(f, "example.org"), 0);
    assert_false(ratelimit_failures_paused(f, "example.org"));
    /* the last five failures: T0+180, +240, +3600, +3700, +3800 */
    assert_int_equal(ratelimit_failures_next(f, "example.org", T0 + 3750), T0 + 180 + 3600);
    assert_int_equal(ratelimit_failures_count(f), 1);
    ratelimit_failures_forget(f, "EXAMPLE.ORG");
    assert_int_equal(ratelimit_failures_count(f), 0);
    assert_int_equal(ratelimit_failures_next(f, "example.org", T0 + 3800), T0 + 3800);
    ratelimit_failures_free(f);
}

/* Thousands of identifiers: the table grows and every record is found. */
static void test_failures_many_identifiers(void **state)
{
    struct ratelimit_failures *f = ratelimit_failures_new(2, 100, 0);
    char name[64];

    (void)state;
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "host%d.example.org", i);
        for (int k = 0; k <= i % 3; k++)
            ratelimit_failures_record(f, name, k);
    }
    assert_int_equal(ratelimit_failures_count(f), 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "HOST%d.example.org", i);
        assert_int_equal(ratelimit_failures_consecutive(f, name), (uint32_t)(i % 3 + 1));
        int64_t want = i % 3 == 0 ? 10 : i % 3 == 1 ? 100 : 101;
        assert_int_equal(ratelimit_failures_next(f, name, 10), want);
        assert_false(ratelimit_failures_paused(f, name)); /* pause hint 0: never */
    }
    ratelimit_failures_free(f);
    ratelimit_failures_free(NULL);
}

/* A certificate waits for the slowest of its CA window and its names. */
static void test_earliest_combines_limits(void **state)
{
    struct ratelimit_window w;
    struct ratelimit_failures *f = ratelimit_failures_new(2, 1000, 0);
    const char *names[] = {"a.test", "b.test", "c.test"};

    (void)state;
    ratelimit_window_init(&w, 1, 500);
    assert_int_equal(ratelimit_earliest(&w, f, names, 3, 100), 100);
    assert_int_equal(ratelimit_earliest(NULL, NULL, names, 3, 100), 100);
    ratelimit_window_take(&w, 100); /* the window opens again at 600 */
    assert_int_equal(ratelimit_earliest(&w, f, names, 3, 100), 600);
    ratelimit_failures_record(f, "b.test", 50);
    ratelimit_failures_record(f, "B.test", 60); /* b.test waits until 1050 */
    assert_int_equal(ratelimit_earliest(&w, f, names, 3, 100), 1050);
    assert_int_equal(ratelimit_earliest(&w, f, names, 1, 100), 600); /* a.test only */
    assert_int_equal(ratelimit_earliest(NULL, f, names + 1, 1, 2000), 2000);
    ratelimit_window_fini(&w);
    ratelimit_failures_free(f);
}

struct script {
    const uint64_t *v;
    size_t n, i;
};

static uint64_t scripted(void *arg)
{
    struct script *s = arg;

    return s->v[s->i++ % s->n];
}

static void test_backoff_bounds_and_determinism(void **state)
{
    static const uint64_t zero[] = {0};
    static const uint64_t max[] = {UINT64_MAX};
    struct script lo = {zero, 1, 0};
    struct script hi = {max, 1, 0};

    (void)state;
    /* base 60 s, cap 1 day: d = 60, 120, 240, ... capped at 86400 */
    int64_t d = 60;
    for (unsigned a = 0; a < 20; a++) {
        int64_t l = backoff_delay(a, 60, 86400, scripted, &lo);
        int64_t h = backoff_delay(a, 60, 86400, scripted, &hi);
        assert_int_equal(l, d / 2);
        /* UINT64_MAX % (d - d/2 + 1) lands somewhere in the range */
        assert_true(h >= d / 2 && h <= d);
        d = d * 2 > 86400 ? 86400 : d * 2;
    }
    /* huge attempt numbers do not overflow */
    int64_t big = backoff_delay(1000000, 60, 86400, scripted, &lo);
    assert_int_equal(big, 43200);
    /* the exact top of the range is reachable */
    static const uint64_t top[] = {60};
    struct script t = {top, 1, 0};
    assert_int_equal(backoff_delay(1, 60, 3600, scripted, &t), 120); /* 60 + 60 % 61 */
    /* same script, same answers */
    static const uint64_t seq[] = {7, 123456789, 42, 99999};
    struct script s1 = {seq, 4, 0}, s2 = {seq, 4, 0};
    for (unsigned a = 0; a < 8; a++)
        assert_int_equal(backoff_delay(a, 30, 7200, scripted, &s1),
                         backoff_delay(a, 30, 7200, scripted, &s2));
    assert_int_equal(backoff_delay(3, 0, 100, scripted, &lo), 0);
    /* the OS source stays in range */
    for (int i = 0; i < 100; i++) {
        int64_t v = backoff_delay(2, 10, 1000, NULL, NULL);
        assert_true(v >= 20 && v <= 40);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_default_limit),
        cmocka_unit_test(test_window_sliding),
        cmocka_unit_test(test_window_unlimited_and_block),
        cmocka_unit_test(test_failures_per_identifier),
        cmocka_unit_test(test_failures_many_identifiers),
        cmocka_unit_test(test_earliest_combines_limits),
        cmocka_unit_test(test_backoff_bounds_and_determinism),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
