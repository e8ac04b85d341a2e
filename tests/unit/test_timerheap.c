/* The deadline heap: order (deadline, then insertion), cancel and reschedule
 * among 10,000 entries on a fake clock driven by timerheap_run_due, memory
 * per entry, callbacks that add/close, and one short run on a real loop. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/timerheap.h"

#define N 10000

struct fake_clock {
    int64_t now;
};

static int64_t fake_now(void *arg)
{
    return ((struct fake_clock *)arg)->now;
}

struct rec {
    int64_t when[N];
    int id[N];
    size_t n;
    struct fake_clock *clock;
};

struct item {
    struct rec *rec;
    int id;
    int64_t when;
    struct timerheap_entry *e;
    bool cancelled;
};

static void on_fire(void *arg)
{
    struct item *it = arg;
    struct rec *r = it->rec;

    assert_false(it->cancelled);
    assert_true(r->clock->now >= it->when); /* never early */
    r->when[r->n] = it->when;
    r->id[r->n] = it->id;
    r->n++;
    it->e = NULL;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Drives the fake clock over the deadlines in coarse steps, as a loop that
 * wakes late would, and checks that each step fires exactly the due ones. */
static void drive(struct timerheap *h, struct fake_clock *clk, int64_t end, int64_t step)
{
    while (clk->now < end) {
        clk->now += step;
        timerheap_run_due(h);
        int64_t next;
        if (timerheap_next(h, &next) == 0)
            assert_true(next > clk->now);
    }
}

static void test_order_10000_random_deadlines(void **state)
{
    static struct rec r;
    static struct item items[N];
    struct fake_clock clk = {.now = 1000};
    struct timerheap *h;
    uint64_t seed = 0x9e3779b97f4a7c15u;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.clock = &clk;
    assert_int_equal(timerheap_open(NULL, fake_now, &clk, &h), 0);
    for (int i = 0; i < N; i++) {
        items[i] = (struct item){.rec = &r, .id = i};
        /* few distinct deadlines so ties are frequent */
        items[i].when = 1000 + (int64_t)(xorshift(&seed) % 500) * 10;
        timerheap_add(h, items[i].when, on_fire, &items[i], &items[i].e);
    }
    assert_int_equal(timerheap_count(h), N);
    drive(h, &clk, 7000, 7);
    assert_int_equal(r.n, N);
    for (size_t i = 1; i < r.n; i++) {
        assert_true(r.when[i - 1] <= r.when[i]);
        if (r.when[i - 1] == r.when[i])
            assert_true(r.id[i - 1] < r.id[i]); /* FIFO among ties */
    }
    assert_int_equal(timerheap_count(h), 0);
    timerheap_close(h, NULL, NULL);
}

static void test_cancel_and_reschedule_10000(void **state)
{
    static struct rec r;
    static struct item items[N];
    struct fake_clock clk = {.now = 0};
    struct timerheap *h;
    uint64_t seed = 12345;
    size_t expect = 0;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.clock = &clk;
    assert_int_equal(timerheap_open(NULL, fake_now, &clk, &h), 0);
    for (int i = 0; i < N; i++) {
        items[i] = (struct item){.rec = &r, .id = i};
        items[i].when = 100 + (int64_t)(xorshift(&seed) % 100000);
        timerheap_add(h, items[i].when, on_fire, &items[i], &items[i].e);
    }
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0) {
            timerheap_cancel(items[i].e);
            items[i].e = NULL;
            items[i].cancelled = true;
        } else if (i % 3 == 1) {
            /* half earlier, half later than before */
            int64_t w = (i % 2) ? items[i].when / 2 : items[i].when + 50000;
            timerheap_reschedule(items[i].e, w);
            assert_int_equal(timerheap_entry_when(items[i].e), w);
            items[i].when = w;
            expect++;
        } else {
            expect++;
        }
    }
    assert_int_equal(timerheap_count(h), expect);
    int64_t next;
    assert_int_equal(timerheap_next(h, &next), 0);
    int64_t min = INT64_MAX;
    for (int i = 0; i < N; i++) {
        if (!items[i].cancelled && items[i].when < min)
            min = items[i].when;
    }
    assert_int_equal(next, min);
    drive(h, &clk, 200000, 997);
    assert_int_equal(r.n, expect);
    for (size_t i = 1; i < r.n; i++)
        assert_true(r.when[i - 1] <= r.when[i]);
    for (int i = 0; i < N; i++)
        assert_true(items[i].cancelled || items[i].e == NULL);
    assert_int_equal(timerheap_next(h, &next), -ENOENT);
    timerheap_close(h, NULL, NULL);
}

static void closed_cb(void *arg)
{
    (*(int *)arg)++;
}

/* Pending entries are freed by close; their callbacks never run. */
static void test_close_with_pending_entries(void **state)
{
    static struct rec r;
    static struct item items[100];
    struct fake_clock clk = {.now = 0};
    struct timerheap *h;
    int closed = 0;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.clock = &clk;
    assert_int_equal(timerheap_open(NULL, fake_now, &clk, &h), 0);
    for (int i = 0; i < 100; i++) {
        items[i] = (struct item){.rec = &r, .id = i, .when = i};
        timerheap_add(h, i, on_fire, &items[i], NULL);
    }
    clk.now = 9;
    assert_int_equal(timerheap_run_due(h), 10);
    timerheap_close(h, closed_cb, &closed);
    assert_int_equal(closed, 1); /* no loop: at once */
    assert_int_equal(r.n, 10);
}

struct readd {
    struct timerheap *h;
    struct fake_clock *clk;
    int fired;
    bool close_on_fire;
    int closed;
};

static void on_readd(void *arg)
{
    struct readd *x = arg;

    x->fired++;
    if (x->close_on_fire)
        return;
    timerheap_add(x->h, x->clk->now, on_readd, x, NULL); /* due at once */
}

/* A callback that re-adds itself at "now" runs once per round, not forever. */
static void test_readd_at_now_waits_for_next_round(void **state)
{
    struct fake_clock clk = {.now = 50};
    struct readd x = {.clk = &clk};

    (void)state;
    assert_int_equal(timerheap_open(NULL, fake_now, &clk, &x.h), 0);
    timerheap_add(x.h, 10, on_readd, &x, NULL);
    assert_int_equal(timerheap_run_due(x.h), 1);
    assert_int_equal(timerheap_run_due(x.h), 1);
    assert_int_equal(x.fired, 2);
    assert_int_equal(timerheap_count(x.h), 1);
    timerheap_close(x.h, NULL, NULL);
}

struct closer {
    struct timerheap *h;
    int *closed;
    int fired;
};

static void on_close_from_cb(void *arg)
{
    struct closer *c = arg;

    c->fired++;
    timerheap_close(c->h, closed_cb, c->closed);
    assert_int_equal(*c->closed, 0); /* deferred until run_due returns */
}

static void test_close_from_callback(void **state)
{
    struct fake_clock clk = {.now = 100};
    int closed = 0;
    struct closer c = {.closed = &closed};

    (void)state;
    assert_int_equal(timerheap_open(NULL, fake_now, &clk, &c.h), 0);
    timerheap_add(c.h, 1, on_close_from_cb, &c, NULL);
    timerheap_add(c.h, 2, on_close_from_cb, &c, NULL); /* never runs: closed */
    assert_int_equal(timerheap_run_due(c.h), 1);
    assert_int_equal(c.fired, 1);
    assert_int_equal(closed, 1);
}

/* 10,000 pending timers cost at most ~64 bytes each, malloc overhead
 * included. mallinfo2 means nothing under AddressSanitizer. */
static void test_memory_per_entry(void **state)
{
#if defined(__SANITIZE_ADDRESS__)
    (void)state;
    skip();
#else
    static void (*const noop)(void *) = closed_cb; /* never runs: closed below */
    struct fake_clock clk = {.now = 0};
    struct timerheap *h;

    (void)state;
    assert_int_equal(timerheap_open(NULL, fake_now, &clk, &h), 0);
    size_t before = mallinfo2().uordblks;
    for (int i = 0; i < N; i++)
        timerheap_add(h, i, noop, NULL, NULL);
    size_t after = mallinfo2().uordblks;
    size_t per = (after - before) / N;
    print_message("timerheap: %zu bytes per entry\n", per);
    assert_true(per <= 64);
    timerheap_close(h, NULL, NULL);
#endif
}

/* On a real loop: the single uv timer fires the due entries and stops when
 * nothing is pending, so uv_run returns; the close callback runs on the loop
 * and the loop closes cleanly. */
struct loopy {
    int fired;
    int64_t at[3];
};

static void on_loop_fire(void *arg)
{
    struct loopy *l = arg;

    l->at[l->fired++] = timerheap_clock_realtime(NULL);
}

static void test_real_loop(void **state)
{
    uv_loop_t loop;
    struct timerheap *h;
    struct loopy l = {0};
    struct timerheap_entry *e;
    int closed = 0;

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(timerheap_open(&loop, NULL, NULL, &h), 0);
    int64_t t0 = timerheap_clock_realtime(NULL);
    timerheap_add(h, t0 + 30, on_loop_fire, &l, NULL);
    timerheap_add(h, t0 - 1000, on_loop_fire, &l, NULL); /* overdue: next iteration */
    timerheap_add(h, t0 + 5000, on_loop_fire, &l, &e);
    assert_int_equal(l.fired, 0); /* never from inside add */
    timerheap_reschedule(e, t0 + 60);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(l.fired, 3);
    assert_true(l.at[1] >= t0 + 30);
    assert_true(l.at[2] >= t0 + 60);
    assert_true(l.at[2] < t0 + 4000);
    timerheap_add(h, t0 + 100000, on_loop_fire, &l, NULL);
    timerheap_close(h, closed_cb, &closed);
    assert_int_equal(closed, 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(closed, 1);
    assert_int_equal(l.fired, 3);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_10000_random_deadlines),
        cmocka_unit_test(test_cancel_and_reschedule_10000),
        cmocka_unit_test(test_close_with_pending_entries),
        cmocka_unit_test(test_readd_at_now_waits_for_next_round),
        cmocka_unit_test(test_close_from_callback),
        cmocka_unit_test(test_memory_per_entry),
        cmocka_unit_test(test_real_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
