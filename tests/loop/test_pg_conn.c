/* The asynchronous PostgreSQL connection on a real loop against a real
 * PostgreSQL 15 (tests/support/pg_world, one server for the whole binary):
 * the loop keeps turning during a slow query, pipelined ops complete in
 * order exactly once, an op is one transaction, cancel means silence,
 * LISTEN/NOTIFY across connections and again after the server restarts,
 * the watchdog on a silent server, retries while the server is missing,
 * and uv_loop_close() == 0 after every test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_world.h"
#include "store/pg_internal.h"
#include "util/err.h"
#include "util/xalloc.h"

struct fx {
    uv_loop_t loop;
    struct pg_conn *c;
    struct pg_conn *c2; /* a second instance's connection, or NULL */
    int closed;
    int ups, downs;
    int notes;
    char note[128];
    uv_timer_t tick; /* a test's own timer, closed in teardown */
    int ticks;
    bool tick_on;
};

struct call {
    int calls;
    int status;
    int order; /* position among completions */
    char value[64];
    char sqlstate[8];
};

static int completions;

static void on_state(enum pg_conn_state st, void *arg)
{
    struct fx *f = arg;

    if (st == PG_CONN_UP)
        f->ups++;
    else
        f->downs++;
}

static void on_notify(const char *channel, const char *payload, void *arg)
{
    struct fx *f = arg;

    f->notes++;
    snprintf(f->note, sizeof(f->note), "%s:%s", channel, payload);
}

static void on_closed(void *arg)
{
    struct fx *f = arg;

    f->closed++;
}

static void on_op(int status, const struct pg_res *res, void *arg)
{
    struct call *k = arg;

    k->calls++;
    k->status = status;
    k->order = completions++;
    if (res != NULL && res->n > 0 && res->res[res->n - 1] != NULL &&
        PQntuples(res->res[res->n - 1]) > 0)
        snprintf(k->value, sizeof(k->value), "%s", PQgetvalue(res->res[res->n - 1], 0, 0));
    if (res != NULL && res->sqlstate != NULL)
        snprintf(k->sqlstate, sizeof(k->sqlstate), "%s", res->sqlstate);
}

/* A connection on loop whose state and notifications are counted in f. */
static struct pg_conn *open_conn_on(uv_loop_t *loop, struct fx *f, const char *conninfo,
                                    uint64_t op_timeout_ms)
{
    struct pg_conn_opts o = {.conninfo = conninfo,
                             .on_notify = on_notify,
                             .on_state = on_state,
                             .arg = f,
                             .backoff_min_ms = 50,
                             .backoff_max_ms = 400,
                             .op_timeout_ms = op_timeout_ms};
    struct pg_conn *c = NULL;

    assert_int_equal(pg_conn_open(loop, &o, &c), 0);
    return c;
}

static struct pg_conn *open_conn(struct fx *f, const char *conninfo, uint64_t op_timeout_ms)
{
    return open_conn_on(&f->loop, f, conninfo, op_timeout_ms);
}

/* Runs the loop until *flag reaches want, at most limit_ms. */
static void run_until(struct fx *f, const int *flag, int want, uint64_t limit_ms)
{
    uv_update_time(&f->loop); /* not the time before a blocking call (pg_ctl) */
    uint64_t end = uv_now(&f->loop) + limit_ms;

    while (*flag < want && uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(*flag >= want);
}

/* Runs the loop until c has failed at least n times (connection attempts
 * and lost connections), at most 10 s: waited for, not a fixed time (under
 * load an attempt on the threadpool takes longer than the backoff). */
static void run_until_failures(struct fx *f, struct pg_conn *c, uint64_t n)
{
    struct pg_conn_stats st;

    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + 10000;
    for (;;) {
        pg_conn_stats(c, &st);
        if (st.failures >= n || uv_now(&f->loop) >= end)
            break;
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_true(st.failures >= n);
}

static void on_tick(uv_timer_t *t)
{
    (*(int *)t->data)++;
}

static void start_tick(struct fx *f, uint64_t first, uint64_t repeat)
{
    uv_timer_init(&f->loop, &f->tick);
    f->tick.data = &f->ticks;
    f->tick_on = true;
    uv_timer_start(&f->tick, on_tick, first, repeat);
}

/* Keeps UV_RUN_ONCE from blocking forever while we wait for a flag. */
static uv_timer_t guard;

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &guard);
    uv_timer_start(&guard, on_tick, 20, 20);
    static int guard_ticks;
    guard.data = &guard_ticks;
    completions = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    if (f->c != NULL)
        pg_conn_close(f->c, on_closed, f);
    if (f->c2 != NULL) /* a failed test's */
        pg_conn_close(f->c2, NULL, NULL);
    uv_close((uv_handle_t *)&guard, NULL);
    if (f->tick_on)
        uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* The reason for all of this: while the server sleeps a second on our
 * query, the loop still fires a 50 ms timer. */
static void test_loop_turns_during_slow_query(void **state)
{
    struct fx *f = *state;
    struct call k = {0};

    f->c = open_conn(f, pg_test_world.conninfo, 0);
    assert_int_equal(pg_query_start(f->c, "SELECT 42 FROM pg_sleep(1)", 0, NULL, on_op, &k, NULL),
                     0);
    assert_int_equal(k.calls, 0); /* never from inside _start */
    start_tick(f, 50, 50);
    uint64_t t0 = uv_now(&f->loop);
    run_until(f, &k.calls, 1, 10000);
    uint64_t took = uv_now(&f->loop) - t0;
    assert_int_equal(k.status, 0);
    assert_string_equal(k.value, "42");
    assert_true(took >= 1000);
    assert_true(f->ticks >= 15); /* ~20 expected; a blocked loop would show 0-1 */
    assert_int_equal(f->ups, 1);
}

/* Many ops started in one turn go out pipelined and complete in order,
 * each exactly once, with parameters passed as text. */
static void test_pipelined_ops_complete_in_order(void **state)
{
    struct fx *f = *state;
    enum { N = 200 };
    struct call *k = xcalloc(N, sizeof(*k));

    f->c = open_conn(f, pg_test_world.conninfo, 0);
    for (int i = 0; i < N; i++) {
        char num[16];
        snprintf(num, sizeof(num), "%d", i);
        const char *p[] = {num};
        assert_int_equal(pg_query_start(f->c, "SELECT $1::int * 2", 1, p, on_op, &k[i], NULL), 0);
    }
    run_until(f, &completions, N, 10000);
    for (int i = 0; i < N; i++) {
        assert_int_equal(k[i].calls, 1);
        assert_int_equal(k[i].status, 0);
        assert_int_equal(k[i].order, i);
        assert_int_equal(atoi(k[i].value), 2 * i);
    }
    struct pg_conn_stats st;
    pg_conn_stats(f->c, &st);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.ops, N);
    free(k);
}

/* The statements of one op commit together or not at all; the next op
 * runs normally after a failed one. */
static void test_op_is_one_transaction(void **state)
{
    struct fx *f = *state;
    struct call bad = {0}, check = {0}, good = {0};
    struct pg_stmt st[] = {
        {"CREATE TABLE txn_probe (x int)", 0, NULL},
        {"INSERT INTO txn_probe VALUES (1)", 0, NULL},
        {"SELECT 1 / 0", 0, NULL},
        {"INSERT INTO txn_probe VALUES (2)", 0, NULL},
    };

    f->c = open_conn(f, pg_test_world.conninfo, 0);
    assert_int_equal(pg_op_start(f->c, st, 4, on_op, &bad, NULL), 0);
    assert_int_equal(pg_query_start(f->c, "SELECT to_regclass('txn_probe') IS NULL", 0, NULL, on_op,
                                    &check, NULL),
                     0);
    assert_int_equal(pg_query_start(f->c, "SELECT 'fine'", 0, NULL, on_op, &good, NULL), 0);
    run_until(f, &good.calls, 1, 10000);
    assert_int_equal(bad.calls, 1);
    assert_int_equal(bad.status, ERR_DB);
    assert_string_equal(bad.sqlstate, "22012"); /* division_by_zero */
    assert_int_equal(check.status, 0);
    assert_string_equal(check.value, "t"); /* the CREATE TABLE was rolled back */
    assert_int_equal(good.status, 0);
    assert_string_equal(good.value, "fine");
}

/* Cancelled before it was sent, or while the server runs it: no callback
 * either way, and the ops after it still get their own results. */
static void test_cancel_means_silence(void **state)
{
    struct fx *f = *state;
    struct call early = {0}, inflight = {0}, after = {0};
    struct pg_op *op = NULL;

    f->c = open_conn(f, pg_test_world.conninfo, 0);
    assert_int_equal(pg_query_start(f->c, "SELECT 'early'", 0, NULL, on_op, &early, &op), 0);
    pg_op_cancel(op);
    assert_int_equal(
        pg_query_start(f->c, "SELECT pg_sleep(0.3), 'x'", 0, NULL, on_op, &inflight, &op), 0);
    assert_int_equal(pg_query_start(f->c, "SELECT 'after'", 0, NULL, on_op, &after, NULL), 0);
    run_until(f, &f->ups, 1, 5000);  /* connected (waited for: not 100 ms) */
    uv_run(&f->loop, UV_RUN_NOWAIT); /* the sleep on the wire */
    assert_int_equal(f->ups, 1);
    pg_op_cancel(op);
    run_until(f, &after.calls, 1, 5000);
    assert_int_equal(early.calls, 0);
    assert_int_equal(inflight.calls, 0);
    assert_int_equal(after.status, 0);
    assert_string_equal(after.value, "after");
}

/* Another connection's NOTIFY reaches our listener. */
static void test_notify_reaches_listener(void **state)
{
    struct fx *f = *state;
    struct fx other = {0};
    struct call k = {0}, barrier = {0};

    f->c = open_conn(f, pg_test_world.conninfo, 0);
    assert_int_equal(pg_conn_listen(f->c, "certloop_test"), 0);
    assert_int_equal(pg_conn_listen(f->c, "Bad-Name"), -EINVAL);
    /* ops run in order, LISTEN first: once this one is back we listen */
    assert_int_equal(pg_query_start(f->c, "SELECT 1", 0, NULL, on_op, &barrier, NULL), 0);
    run_until(f, &barrier.calls, 1, 5000);
    /* c2 runs on our loop; its state counters land in `other` */
    struct pg_conn *c2 = open_conn_on(&f->loop, &other, pg_test_world.conninfo, 0);
    f->c2 = c2;
    const char *p[] = {"gen 7"};
    assert_int_equal(
        pg_query_start(c2, "SELECT pg_notify('certloop_test', $1)", 1, p, on_op, &k, NULL), 0);
    run_until(f, &f->notes, 1, 5000);
    assert_string_equal(f->note, "certloop_test:gen 7");
    assert_int_equal(k.status, 0);
    pg_conn_close(c2, on_closed, &other);
    f->c2 = NULL;
    run_until(f, &other.closed, 1, 5000);
    assert_int_equal(other.notes, 0); /* c2 does not listen */
}

/* A server crash: the op on the wire fails with -ECONNRESET, an op started
 * while the server is down waits, the connection comes back by itself
 * once the server does, LISTEN is re-issued, and the waiting op runs. */
static void test_reconnects_after_server_crash(void **state)
{
    struct fx *f = *state;
    struct call lost = {0}, waited = {0}, sent = {0};

    f->c = open_conn(f, pg_test_world.conninfo, 0);
    assert_int_equal(pg_conn_listen(f->c, "certloop_test"), 0);
    run_until(f, &f->ups, 1, 5000);
    assert_int_equal(pg_query_start(f->c, "SELECT pg_sleep(5)", 0, NULL, on_op, &lost, NULL), 0);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* on the wire */
    assert_int_equal(pg_world_stop(&pg_test_world, true), 0);
    run_until(f, &lost.calls, 1, 5000);
    assert_int_equal(lost.status, -ECONNRESET);
    assert_int_equal(f->downs, 1);
    assert_int_equal(pg_conn_state(f->c), PG_CONN_DOWN);
    assert_int_equal(pg_query_start(f->c, "SELECT 'waited'", 0, NULL, on_op, &waited, NULL), 0);
    /* a few failed attempts while the server is away; the op still waits */
    run_until_failures(f, f->c, 2);
    assert_int_equal(waited.calls, 0);

    assert_int_equal(pg_world_restart(&pg_test_world), 0);
    run_until(f, &waited.calls, 1, 10000);
    assert_int_equal(waited.status, 0);
    assert_string_equal(waited.value, "waited");
    assert_int_equal(f->ups, 2);
    /* LISTEN survived the reconnect: a notification through ourselves */
    const char *p[] = {"again"};
    assert_int_equal(
        pg_query_start(f->c, "SELECT pg_notify('certloop_test', $1)", 1, p, on_op, &sent, NULL), 0);
    run_until(f, &f->notes, 1, 5000);
    assert_string_equal(f->note, "certloop_test:again");
}

/* A server that does not answer within op_timeout_ms: the op ends with
 * ERR_TIMEOUT, the connection is replaced, later ops work. */
static void test_watchdog_drops_a_silent_connection(void **state)
{
    struct fx *f = *state;
    struct call slow = {0}, next = {0};

    f->c = open_conn(f, pg_test_world.conninfo, 300);
    assert_int_equal(pg_query_start(f->c, "SELECT pg_sleep(3)", 0, NULL, on_op, &slow, NULL), 0);
    run_until(f, &slow.calls, 1, 5000);
    assert_int_equal(slow.status, ERR_TIMEOUT);
    assert_int_equal(pg_query_start(f->c, "SELECT 'next'", 0, NULL, on_op, &next, NULL), 0);
    run_until(f, &next.calls, 1, 5000);
    assert_string_equal(next.value, "next");
    assert_int_equal(f->ups, 2);
}

/* No server at all: attempts repeat with backoff, nothing is called back,
 * and closing during the backoff (or with ops waiting) is clean. */
static void test_close_while_retrying_is_silent(void **state)
{
    struct fx *f = *state;
    struct call k = {0};
    char *ci = xasprintf("host=%s/nowhere dbname=postgres user=postgres", pg_test_world.dir);

    f->c = open_conn(f, ci, 0);
    free(ci);
    assert_int_equal(pg_query_start(f->c, "SELECT 1", 0, NULL, on_op, &k, NULL), 0);
    run_until_failures(f, f->c, 2);
    struct pg_conn_stats st;
    pg_conn_stats(f->c, &st);
    assert_int_equal(st.connects, 0);
    pg_conn_close(f->c, on_closed, f);
    f->c = NULL;
    run_until(f, &f->closed, 1, 2000);
    assert_int_equal(k.calls, 0);
    assert_int_equal(f->ups, 0);
}

/* The server away: an op waits wait_timeout_ms for it, then ends with
 * ERR_TIMEOUT (nothing reached the server), and the stats say since when
 * and why the server is unreachable; once it is back they are cleared. */
static void test_wait_timeout_while_away(void **state)
{
    struct fx *f = *state;
    struct call k = {0}, later = {0};
    char *ci = xasprintf("host=%s/nowhere dbname=postgres user=postgres", pg_test_world.dir);
    struct pg_conn_opts o = {.conninfo = ci,
                             .on_state = on_state,
                             .arg = f,
                             .backoff_min_ms = 50,
                             .backoff_max_ms = 200,
                             .wait_timeout_ms = 300};
    struct pg_conn_stats st;

    assert_int_equal(pg_conn_open(&f->loop, &o, &f->c), 0);
    free(ci);
    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(pg_query_start(f->c, "SELECT 1", 0, NULL, on_op, &k, NULL), 0);
    pg_conn_stats(f->c, &st);
    assert_int_equal(st.waiting, 1);
    run_until(f, &k.calls, 1, 3000);
    assert_int_equal(k.status, ERR_TIMEOUT);
    assert_true(uv_now(&f->loop) - t0 >= 300);
    pg_conn_stats(f->c, &st);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.waiting, 0);
    assert_true(st.down_since > 0);
    assert_true(st.last_error[0] != '\0');
    assert_int_equal(f->ups, 0);
    /* a server that answers: nothing times out, the stats say up */
    pg_conn_close(f->c, NULL, NULL);
    f->c = open_conn(f, pg_test_world.conninfo, 0);
    assert_int_equal(pg_query_start(f->c, "SELECT 'up'", 0, NULL, on_op, &later, NULL), 0);
    run_until(f, &later.calls, 1, 5000);
    assert_int_equal(later.status, 0);
    pg_conn_stats(f->c, &st);
    assert_int_equal(st.down_since, 0);
    assert_int_equal(st.timeouts, 0);
}

/* Closing with ops queued and on the wire: none calls back, the close
 * callback runs once, and the loop closes clean (teardown checks). */
static void test_close_with_ops_in_flight(void **state)
{
    struct fx *f = *state;
    struct call k[2] = {{0}};

    f->c = open_conn(f, pg_test_world.conninfo, 0);
    run_until(f, &f->ups, 1, 5000);
    assert_int_equal(pg_query_start(f->c, "SELECT pg_sleep(0.5)", 0, NULL, on_op, &k[0], NULL), 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(pg_query_start(f->c, "SELECT 1", 0, NULL, on_op, &k[1], NULL), 0);
    pg_conn_close(f->c, on_closed, f);
    f->c = NULL;
    run_until(f, &f->closed, 1, 2000);
    assert_int_equal(k[0].calls + k[1].calls, 0);
}

/* A conninfo libpq cannot parse fails synchronously. */
static void test_bad_conninfo_is_refused(void **state)
{
    struct fx *f = *state;
    struct pg_conn_opts o = {.conninfo = "host=/tmp nonsense_key=1"};
    struct pg_conn *c = NULL;

    assert_int_equal(pg_conn_open(&f->loop, &o, &c), -EINVAL);
    assert_null(c);
}

int main(void)
{
    int rc = pg_world_unavailable();
    if (rc >= 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loop_turns_during_slow_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_ops_complete_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_op_is_one_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_means_silence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_reaches_listener, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watchdog_drops_a_silent_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_while_retrying_is_silent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_timeout_while_away, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_ops_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_conninfo_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnects_after_server_crash, setup, teardown),
    };
    return cmocka_run_group_tests(tests, pg_world_group_setup, pg_world_group_teardown);
}
