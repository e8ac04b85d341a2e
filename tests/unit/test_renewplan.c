/* The renewal decision: policy vs ARI, then backoff, the CA's Retry-After
 * and our limits, each pushing the time back and naming the reason. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "reactor/renewplan.h"

#define NOW 1700000000

static struct renewplan_in later(int64_t when)
{
    struct renewplan_in in = {.now = NOW};

    in.policy.why = SCHED_LATER;
    in.policy.when = when;
    in.policy.reason = "a third of the lifetime remaining";
    return in;
}

static void test_policy_alone(void **state)
{
    struct renewplan_in in = later(NOW + 1000);
    struct renewplan p;

    (void)state;
    renewplan_decide(&in, &p);
    assert_int_equal(p.when, NOW + 1000);
    assert_int_equal(p.why, RENEWPLAN_POLICY);
    assert_string_equal(p.reason, "a third of the lifetime remaining");
    /* overdue: now, not in the past */
    in = later(NOW - 5000);
    in.policy.why = SCHED_DUE;
    renewplan_decide(&in, &p);
    assert_int_equal(p.when, NOW);
    in.policy.why = SCHED_NO_CERT;
    in.policy.reason = NULL;
    renewplan_decide(&in, &p);
    assert_string_equal(p.reason, "no certificate stored");
    in.policy.why = SCHED_NEVER;
    renewplan_decide(&in, &p);
    assert_int_equal(p.why, RENEWPLAN_NEVER);
    assert_int_equal(p.when, 0);
}

static void test_ari_only_brings_forward(void **state)
{
    struct renewplan_in in = later(NOW + 10000);
    struct renewplan p;

    (void)state;
    in.have_ari = true;
    in.ari_at = NOW + 4000;
    renewplan_decide(&in, &p);
    assert_int_equal(p.when, NOW + 4000);
    assert_int_equal(p.why, RENEWPLAN_ARI);
    in.ari_at = NOW + 20000; /* later than the policy: the policy wins */
    renewplan_decide(&in, &p);
    assert_int_equal(p.when, NOW + 10000);
    assert_int_equal(p.why, RENEWPLAN_POLICY);
    in.ari_at = NOW - 100; /* window in the past: now */
    renewplan_decide(&in, &p);
    assert_int_equal(p.when, NOW);
    assert_int_equal(p.why, RENEWPLAN_ARI);
    /* a configuration change is ordered now; ARI has no say */
    in.policy.why = SCHED_NAMES_CHANGED;
    in.policy.when = NOW;
    in.ari_at = NOW + 50;
    renewplan_decide(&in, &p);
    assert_int_equal(p.when, NOW);
    assert_int_equal(p.why, RENEWPLAN_POLICY);
    assert_string_equal(p.reason, "the configured names changed");
}

static void test_backoff_ca_and_limits_push_back(void **state)
{
    struct renewplan_in in = later(NOW - 1); /* due */
    struct renewplan p;

    (void)state;
    in.policy.why = SCHED_DUE;
    in.retry_at = NOW + 600;
    renewplan_decide(&in, &p);
    assert_int_equal(p.when, NOW + 600);
    assert_int_equal(p.why, RENEWPLAN_BACKOFF);
    in.ca_retry_at = NOW + 3600;
    renewplan_decide(&in, &p);
    assert_int_equal(p.when, NOW + 3600);
    assert_int_equal(p.why, RENEWPLAN_CA_LIMITED);
    in.limits_at = NOW + 7200;
    renewplan_decide(&in, &p);
    assert_int_equal(p.when, NOW + 7200);
    assert_int_equal(p.why, RENEWPLAN_LIMITS);
    /* bounds in the past change nothing */
    in = later(NOW + 500);
    in.retry_at = NOW - 10;
    in.ca_retry_at = NOW + 100;
    in.limits_at = NOW;
    renewplan_decide(&in, &p);
    assert_int_equal(p.when, NOW + 500);
    assert_int_equal(p.why, RENEWPLAN_POLICY);
    /* a backoff beyond a late policy time still wins */
    in.retry_at = NOW + 900;
    renewplan_decide(&in, &p);
    assert_int_equal(p.when, NOW + 900);
    assert_int_equal(p.why, RENEWPLAN_BACKOFF);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_alone),
        cmocka_unit_test(test_ari_only_brings_forward),
        cmocka_unit_test(test_backoff_ca_and_limits_push_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
