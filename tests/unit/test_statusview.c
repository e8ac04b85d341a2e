/* statusview_decide: one function decides the state word and the dates and
 * error shown with it (issue 17 item 5). The contradictions it prevents:
 * "retrying" next to a renewal years away (a forced renewal that failed on
 * a valid certificate), and "valid" next to an error a later success made
 * stale. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "reactor/statusview.h"

#define NOW 1800000000
#define YEARS (3 * 365 * 86400)

static void test_running_phases_show_now(void **state)
{
    static const struct {
        enum statusview_phase p;
        const char *word;
    } cases[] = {{STATUSVIEW_QUEUED, "due"},
                 {STATUSVIEW_ORDERING, "ordering"},
                 {STATUSVIEW_STORING, "storing"},
                 {STATUSVIEW_DEPLOYING, "deploying"}};
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct statusview_in in = {.phase = cases[i].p,
                                   .not_after = NOW + YEARS,
                                   .next_at = NOW + YEARS - 86400,
                                   .failures = 2,
                                   .retry_scheduled = true};
        struct statusview v;
        statusview_decide(&in, NOW, &v);
        assert_string_equal(v.state, cases[i].word);
        assert_int_equal(v.next_renewal, NOW);
    }
}

static void test_retrying_only_when_the_next_attempt_is_a_retry(void **state)
{
    struct statusview v;
    (void)state;

    /* a failed renewal retried after the backoff */
    struct statusview_in in = {.failures = 1,
                               .retry_scheduled = true,
                               .not_after = NOW + 86400,
                               .next_at = NOW + 120,
                               .last_error = "HTTP 503",
                               .last_error_at = NOW - 10,
                               .last_success_at = NOW - 86400};
    statusview_decide(&in, NOW, &v);
    assert_string_equal(v.state, "retrying");
    assert_int_equal(v.next_renewal, NOW + 120);
    assert_string_equal(v.last_error, "HTTP 503");
    assert_int_equal(v.last_error_at, NOW - 10);

    /* a forced renewal failed; the next attempt is the ordinary renewal
     * years away: the certificate is valid, the error still shows */
    in.retry_scheduled = false;
    in.not_after = NOW + YEARS;
    in.next_at = NOW + YEARS - 30 * 86400;
    statusview_decide(&in, NOW, &v);
    assert_string_equal(v.state, "valid");
    assert_int_equal(v.next_renewal, NOW + YEARS - 30 * 86400);
    assert_string_equal(v.last_error, "HTTP 503");

    /* ... or expired, or none */
    in.not_after = NOW - 1;
    statusview_decide(&in, NOW, &v);
    assert_string_equal(v.state, "expired");
    in.not_after = 0;
    statusview_decide(&in, NOW, &v);
    assert_string_equal(v.state, "no-certificate");
}

static void test_stale_error_is_not_shown(void **state)
{
    struct statusview v;
    (void)state;

    struct statusview_in in = {.not_after = NOW + YEARS,
                               .next_at = NOW + 86400,
                               .last_error = "old failure",
                               .last_error_at = NOW - 7200,
                               .last_success_at = NOW - 3600};
    statusview_decide(&in, NOW, &v);
    assert_string_equal(v.state, "valid");
    assert_null(v.last_error);
    assert_int_equal(v.last_error_at, 0);
    /* a failure after the success is shown */
    in.last_error_at = NOW - 60;
    statusview_decide(&in, NOW, &v);
    assert_string_equal(v.last_error, "old failure");
    /* never succeeded: the error shows */
    in.last_success_at = 0;
    in.last_error_at = NOW - 7200;
    statusview_decide(&in, NOW, &v);
    assert_string_equal(v.last_error, "old failure");
}

static void test_deployments(void **state)
{
    struct statusview v;
    (void)state;

    struct statusview_in in = {.failures = 1,
                               .deploy_failed = true,
                               .retry_scheduled = false,
                               .not_after = NOW + YEARS,
                               .next_at = NOW + 60};
    statusview_decide(&in, NOW, &v);
    assert_string_equal(v.state, "deploy-failed");
    assert_int_equal(v.next_renewal, NOW + 60);
    in.deploy_waiting = true;
    statusview_decide(&in, NOW, &v);
    assert_string_equal(v.state, "deploying");
    /* nothing scheduled: no date */
    struct statusview_in idle = {.not_after = NOW + YEARS};
    statusview_decide(&idle, NOW, &v);
    assert_string_equal(v.state, "valid");
    assert_int_equal(v.next_renewal, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_running_phases_show_now),
        cmocka_unit_test(test_retrying_only_when_the_next_attempt_is_a_retry),
        cmocka_unit_test(test_stale_error_is_not_shown),
        cmocka_unit_test(test_deployments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
