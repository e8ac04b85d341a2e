/* The file-descriptor budget: the soft limit is raised to the hard one, the
 * caps come out of what the reserve leaves, a small limit is flagged tight
 * and gets the minimums, a huge one is capped. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <sys/resource.h>

#include "reactor/fdbudget.h"

static void test_raise_soft_to_hard(void **state)
{
    struct rlimit rl;
    (void)state;

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 64)
        skip();
    rlim_t hard = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 1048576 ? 1048576 : rl.rlim_max;
    struct rlimit low = {.rlim_cur = 32, .rlim_max = rl.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    assert_int_equal(fd_budget_raise(), (unsigned)hard);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_int_equal(rl.rlim_cur, hard);
}

static void test_plan_default_limit(void **state)
{
    struct fd_budget b;
    (void)state;

    /* systemd's default soft limit, 64 orders, libuv's 4 threads */
    fd_budget_plan(1024, &(struct fd_budget_need){.max_concurrent_orders = 64, .threadpool = 4},
                   &b);
    assert_int_equal(b.reserve, 64 + 8 * 4 + 4 * 64);
    assert_false(b.tight);
    unsigned rest = 1024 - b.reserve;
    assert_int_equal(b.http01, rest * 3 / 4);
    assert_int_equal(b.control, rest / 16);
    /* every connection the caps admit, control's 503 overflow included,
     * still leaves the reserve */
    assert_true(b.reserve + b.http01 + 2 * b.control <= 1024);
}

static void test_plan_tight_limit(void **state)
{
    struct fd_budget b;
    (void)state;

    fd_budget_plan(256, &(struct fd_budget_need){.max_concurrent_orders = 64, .threadpool = 4}, &b);
    assert_true(b.tight);
    assert_int_equal(b.http01, 32);
    assert_int_equal(b.control, 4);
    /* reserve beyond the limit */
    fd_budget_plan(100, &(struct fd_budget_need){.max_concurrent_orders = 1000, .threadpool = 4},
                   &b);
    assert_true(b.tight);
    assert_int_equal(b.reserve, 100);
}

static void test_plan_caps(void **state)
{
    struct fd_budget b;
    (void)state;

    fd_budget_plan(1048576, &(struct fd_budget_need){.max_concurrent_orders = 64, .threadpool = 4},
                   &b);
    assert_false(b.tight);
    assert_int_equal(b.http01, 65536);
    assert_int_equal(b.control, 256);
}

/* What the configuration holds comes out of the connection caps: more
 * orders, listeners, a tls-alpn-01 responder or notify targets (a reload
 * that adds them) leave less for http-01; fewer give it back. */
static void test_plan_follows_the_configuration(void **state)
{
    struct fd_budget small, big, back;
    struct fd_budget_need n = {.max_concurrent_orders = 4, .threadpool = 4, .listeners = 1};
    (void)state;

    fd_budget_plan(1024, &n, &small);
    n.max_concurrent_orders = 100;
    n.listeners = 3;
    n.tlsalpn_conns = 256;
    n.notify_targets = 5;
    fd_budget_plan(1024, &n, &big);
    assert_int_equal(big.reserve, 64 + 8 * 4 + 4 * 100 + 3 + 256 + 5);
    assert_int_equal(big.reserve - small.reserve, 4 * 96 + 2 + 256 + 5);
    assert_true(big.http01 < small.http01);
    assert_int_equal(big.http01, (1024 - big.reserve) * 3 / 4);
    assert_true(big.reserve + big.http01 + 2 * big.control + big.api <= 1024);
    n = (struct fd_budget_need){.max_concurrent_orders = 4, .threadpool = 4, .listeners = 1};
    fd_budget_plan(1024, &n, &back);
    assert_int_equal(back.http01, small.http01);
}

static void test_threadpool_env(void **state)
{
    (void)state;
    unsetenv("UV_THREADPOOL_SIZE");
    assert_int_equal(fd_budget_threadpool(), 4);
    setenv("UV_THREADPOOL_SIZE", "16", 1);
    assert_int_equal(fd_budget_threadpool(), 16);
    setenv("UV_THREADPOOL_SIZE", "5000", 1);
    assert_int_equal(fd_budget_threadpool(), 1024);
    setenv("UV_THREADPOOL_SIZE", "x", 1);
    assert_int_equal(fd_budget_threadpool(), 4);
    unsetenv("UV_THREADPOOL_SIZE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raise_soft_to_hard),
        cmocka_unit_test(test_plan_default_limit),
        cmocka_unit_test(test_plan_tight_limit),
        cmocka_unit_test(test_plan_caps),
        cmocka_unit_test(test_plan_follows_the_configuration),
        cmocka_unit_test(test_threadpool_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
