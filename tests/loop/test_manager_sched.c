/* Loop tests of the manager's scheduling with an injected wall clock (no
 * sleeps: the test moves the clock and calls manager_clock_moved):
 * - backoff: an order that fails (the CA answers 503) is retried after
 *   60 s with equal jitter ([30 s, 60 s]), then after [60 s, 120 s], and
 *   status says "retrying" with the backoff reason and the failure count;
 *   /metrics counts the failures;
 * - the new-order window: 30 certificates due at once with
 *   [ca.t] max_new_orders = 10 start 10 orders; the other 20 wait for the
 *   window (3 hours) with the rate-limit reason and a "rate-limited" event
 *   in their history;
 * - the streamed views (GET /v1/status, /metrics, the API's list): the
 *   bytes of the whole documents, and a reload during a stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "fake_http.h"
#include "test_config.h"
#include "reactor/manager.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#define T0_MS ((int64_t)1900000000 * 1000)

struct fx {
    uv_loop_t loop;
    struct fake_http *srv;
    unsigned requests;
    bool fail; /* 503 for everything, else hang */
    int64_t now_ms;
    int port;
    char dir[40];
    struct config *cfg;
    struct store *st;
    struct manager *m;
    int done_calls;
    int failed;         /* what done_cb was given */
    struct buf summary; /* --once: the end-of-run lines */
};

static int64_t fake_clock(void *arg)
{
    return ((struct fx *)arg)->now_ms;
}

static void handler(const struct fake_http_request *req, struct fake_http_response *resp, void *arg)
{
    struct fx *f = arg;

    (void)req;
    f->requests++;
    if (f->fail) {
        resp->status = 503;
        fake_http_resp_header(resp, "Content-Type", "application/problem+json");
        fake_http_resp_body(resp, "{\"type\":\"urn:ietf:params:acme:error:serverInternal\","
                                  "\"detail\":\"try later\"}");
    } else {
        resp->hang = true;
    }
}

static void done_cb(int failed, void *arg)
{
    struct fx *f = arg;

    f->failed = failed;
    f->done_calls++;
}

/* The configuration with the certificates c<i> whose bit i is set in
 * keep, written to file (a reload gets its own). */
static struct config *fx_config(struct fx *f, const char *file, uint64_t keep, const char *ca_extra)
{
    struct buf b = BUF_INIT(1 << 20);
    char *path = xasprintf("%s/%s", f->dir, file);

    assert_int_equal(buf_printf(&b,
                                "[daemon]\nstate_dir = \"%s/state\"\nmax_concurrent_orders = 64\n\n"
                                "[http01]\nlisten = [\"127.0.0.1:%d\"]\n\n"
                                "[ca.t]\ndirectory = \"%s/dir\"\nagree_tos = true\n%s\n",
                                f->dir, f->port, fake_http_url(f->srv), ca_extra),
                     0);
    for (int i = 0; i < 64; i++)
        if (keep & ((uint64_t)1 << i))
            assert_int_equal(
                buf_printf(&b, "[certificate.c%02d]\ndomains = [\"c%02d.test\"]\n\n", i, i), 0);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(b.data, fp);
    fclose(fp);
    buf_fini(&b);
    struct config *cfg = test_config_load(path);
    free(path);
    return cfg;
}

static void fx_open_mode(struct fx *f, bool fail, int n_certs, const char *ca_extra, bool once)
{
    memset(f, 0, sizeof(*f));
    f->summary = (struct buf)BUF_INIT(1 << 20);
    f->fail = fail;
    f->now_ms = T0_MS;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(fake_http_start(&f->loop, handler, f, &f->srv), 0);
    f->port = fake_http_free_port();
    snprintf(f->dir, sizeof(f->dir), "/tmp/certloop-sched-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *state_dir = xasprintf("%s/state", f->dir);
    f->cfg = fx_config(f, "certloop.toml", ((uint64_t)1 << n_certs) - 1, ca_extra);
    assert_int_equal(store_fs_open(&f->loop, state_dir, 0, &f->st), 0);
    struct manager_opts o = {.loop = &f->loop,
                             .cfg = f->cfg,
                             .store = f->st,
                             .done = done_cb,
                             .arg = f,
                             .clock = fake_clock,
                             .clock_arg = f,
                             .once = once,
                             .summary = once ? &f->summary : NULL};
    assert_int_equal(manager_start(&o, &f->m), 0);
    free(state_dir);
}

static void fx_open(struct fx *f, bool fail, int n_certs, const char *ca_extra)
{
    fx_open_mode(f, fail, n_certs, ca_extra, false);
}

static void fx_close(struct fx *f)
{
    if (f->done_calls == 0)
        manager_stop(f->m);
    fake_http_close(f->srv);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->done_calls, 1);
    buf_fini(&f->summary);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    store_close(f->st);
    config_unref(f->cfg);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", f->dir, (char *)NULL);
        _exit(127);
    }
    (void)waitpid(pid, NULL, 0);
}

/* Runs the loop until pred(f) holds (bounded: the fake answers at once). */
static void run_until(struct fx *f, bool (*pred)(struct fx *f))
{
    for (int i = 0; i < 2000 && !pred(f); i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(pred(f));
}

static json_t *cert_status(struct fx *f, const char *name, json_t **doc)
{
    *doc = manager_status(f->m);
    json_t *certs = json_object_get(*doc, "certificates");
    for (size_t i = 0; i < json_array_size(certs); i++) {
        json_t *c = json_array_get(certs, i);
        if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0)
            return c;
    }
    fail_msg("no %s in the status", name);
    return NULL;
}

static int failures_of(struct fx *f)
{
    json_t *doc;
    json_t *c = cert_status(f, "c00", &doc);
    int n = (int)json_integer_value(json_object_get(c, "consecutive_failures"));
    json_decref(doc);
    return n;
}

static bool one_failure(struct fx *f)
{
    return failures_of(f) >= 1;
}

static bool two_failures(struct fx *f)
{
    return failures_of(f) >= 2;
}

static void expect_retry(struct fx *f, int64_t from_s, int64_t lo, int64_t hi, int failures)
{
    json_t *doc;
    json_t *c = cert_status(f, "c00", &doc);
    int64_t next = (int64_t)json_integer_value(json_object_get(c, "next_renewal"));

    assert_string_equal(json_string_value(json_object_get(c, "state")), "retrying");
    assert_string_equal(json_string_value(json_object_get(c, "reason")), "backoff after a failure");
    assert_int_equal(json_integer_value(json_object_get(c, "consecutive_failures")), failures);
    assert_true(next >= from_s + lo);
    assert_true(next <= from_s + hi);
    assert_non_null(strstr(json_string_value(json_object_get(c, "last_error")), "503"));
    json_decref(doc);
}

static void test_failed_order_backs_off_exponentially(void **state)
{
    struct fx f;
    (void)state;

    fx_open(&f, true, 1, "");
    run_until(&f, one_failure);
    expect_retry(&f, T0_MS / 1000, 30, 60, 1);
    unsigned before = f.requests;

    /* nothing happens before the deadline: 29 s later is too early */
    f.now_ms = T0_MS + 29 * 1000;
    manager_clock_moved(f.m);
    for (int i = 0; i < 20; i++)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(f.requests, before);
    assert_int_equal(failures_of(&f), 1);

    /* past the largest possible delay: the retry runs and fails again */
    f.now_ms = T0_MS + 61 * 1000;
    manager_clock_moved(f.m);
    run_until(&f, two_failures);
    assert_true(f.requests > before);
    expect_retry(&f, T0_MS / 1000 + 61, 60, 120, 2);

    struct buf mb = BUF_INIT(1 << 20);
    assert_int_equal(manager_metrics(f.m, &mb), 0);
    assert_non_null(strstr(mb.data, "certloop_renewals_total{name=\"c00\",result=\"failure\"} 2"));
    assert_non_null(strstr(mb.data, "certloop_order_duration_seconds_count 2"));
    buf_fini(&mb);
    fx_close(&f);
}

static bool window_settled(struct fx *f)
{
    json_t *doc = manager_status(f->m);
    json_t *certs = json_object_get(doc, "certificates");
    int ordering = 0, waiting = 0;
    for (size_t i = 0; i < json_array_size(certs); i++) {
        json_t *c = json_array_get(certs, i);
        const char *st = json_string_value(json_object_get(c, "state"));
        if (strcmp(st, "ordering") == 0)
            ordering++;
        else if (strcmp(st, "due") != 0 &&
                 json_integer_value(json_object_get(c, "next_renewal")) > 0)
            waiting++;
    }
    json_decref(doc);
    return ordering + waiting == 30;
}

static void test_new_order_window_holds_when_many_are_due(void **state)
{
    struct fx f;
    (void)state;

    fx_open(&f, false, 30, "max_new_orders = 10\n");
    run_until(&f, window_settled);
    json_t *doc = manager_status(f.m);
    json_t *certs = json_object_get(doc, "certificates");
    int ordering = 0, limited = 0;
    for (size_t i = 0; i < json_array_size(certs); i++) {
        json_t *c = json_array_get(certs, i);
        const char *st = json_string_value(json_object_get(c, "state"));
        if (strcmp(st, "ordering") == 0) {
            ordering++;
            continue;
        }
        limited++;
        if (getenv("TEST_DEBUG"))
            fprintf(stderr, "%s %s %s\n", json_string_value(json_object_get(c, "name")), st,
                    json_string_value(json_object_get(c, "reason")));
        assert_int_equal(json_integer_value(json_object_get(c, "next_renewal")),
                         T0_MS / 1000 + 3 * 3600);
        assert_string_equal(json_string_value(json_object_get(c, "reason")),
                            "rate limit: new orders per CA account");
        json_t *h = json_object_get(c, "history");
        json_t *last = json_array_get(h, json_array_size(h) - 1);
        assert_string_equal(json_string_value(json_object_get(last, "event")), "rate-limited");
    }
    assert_int_equal(ordering, 10);
    assert_int_equal(limited, 20);
    json_decref(doc);
    fx_close(&f);
}

static bool once_done(struct fx *f)
{
    return f->done_calls > 0;
}

/* --once with the window full: 10 orders start (the CA fails them), the
 * other 20 are not ordered and say so; all 30 count as not fine. */
static void test_once_reports_held_back(void **state)
{
    struct fx f;
    (void)state;

    fx_open_mode(&f, true, 30, "max_new_orders = 10\n", true);
    run_until(&f, once_done);
    assert_int_equal(f.done_calls, 1);
    assert_int_equal(f.failed, 30);
    int held = 0, failed = 0;
    for (char *line = f.summary.data; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        if (strstr(line, ": held back: ca=t's max_new_orders (new orders per CA account) "
                         "reached; not ordered, possible again at ") != NULL)
            held++;
        else if (strstr(line, ": failed: ") != NULL)
            failed++;
        else
            fail_msg("unexpected summary line: %s", line);
        line = nl + 1;
    }
    assert_int_equal(held, 20);
    assert_int_equal(failed, 10);
    fx_close(&f);
}

static bool manager_done(struct fx *f)
{
    return f->done_calls > 0;
}

/* Drains src in pieces of about want bytes into out; the number of pieces. */
static int drain(struct body_src *src, struct buf *out, size_t want)
{
    int pieces = 0, rc = 0;

    while (rc == 0) {
        rc = src->next(src->arg, out, want);
        assert_true(rc >= 0);
        pieces++;
    }
    body_src_drop(src);
    return pieces;
}

static char *dump_nl(json_t *j, size_t flags)
{
    char *s = json_dumps(j, flags);
    char *t = xasprintf("%s\n", s);
    free(s);
    return t;
}

/* The API's certificate list as it was made before it was streamed: the
 * status document's objects without history and log. */
static char *list_of(json_t *doc)
{
    json_t *arr = json_array();
    size_t i;
    json_t *o;

    json_array_foreach(json_object_get(doc, "certificates"), i, o)
    {
        json_t *copy = json_copy(o);
        json_object_del(copy, "history");
        json_object_del(copy, "log");
        json_array_append_new(arr, copy);
    }
    json_t *j = json_pack("{s:o}", "certificates", arr);
    char *t = dump_nl(j, JSON_COMPACT);
    json_decref(j);
    return t;
}

static void reload_with(struct fx *f, const char *file, uint64_t keep)
{
    struct config *cfg = fx_config(f, file, keep, "max_new_orders = 10\n");
    manager_reload(f->m, cfg);
    config_unref(cfg);
}

/* The streamed views are byte for byte the documents made whole, in pieces
 * of one certificate or of 1 MiB (the whole); a reload that removes the certificates
 * the status stream was about to write (and a second one, which frees
 * them) leaves a valid document of the others; a stream whose manager has
 * ended fails instead of reading it (the ASan build checks the memory). */
static void test_streamed_views(void **state)
{
    struct fx f;
    (void)state;

    fx_open(&f, false, 30, "max_new_orders = 10\n");
    run_until(&f, window_settled);
    json_t *doc = manager_status(f.m);
    char *want_status = dump_nl(doc, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    char *want_list = list_of(doc);
    json_decref(doc);
    struct buf want_metrics = BUF_INIT(1 << 20);
    assert_int_equal(manager_metrics(f.m, &want_metrics), 0);
    static const enum manager_view views[] = {MANAGER_VIEW_STATUS, MANAGER_VIEW_METRICS,
                                              MANAGER_VIEW_LIST};
    const char *wants[] = {want_status, want_metrics.data, want_list};
    for (size_t v = 0; v < 3; v++) {
        for (size_t want = 1; want <= (1u << 20); want += (1u << 20) - 1) {
            struct body_src src;
            struct buf got = BUF_INIT(SIZE_MAX);
            manager_view_open(f.m, views[v], &src);
            int pieces = drain(&src, &got, want);
            assert_string_equal(got.data, wants[v]);
            assert_true(want > 1 ? pieces == 1 : pieces > 30);
            buf_fini(&got);
        }
    }
    free(want_status);
    free(want_list);
    buf_fini(&want_metrics);

    /* a reload in the middle: c00..c12 written, c10..c19 removed, c30 and
     * c31 added; then a second reload frees the removed entries */
    struct body_src src;
    struct buf got = BUF_INIT(SIZE_MAX);
    manager_view_open(f.m, MANAGER_VIEW_STATUS, &src);
    for (int i = 0; i < 14; i++) /* the head, then one certificate each */
        assert_int_equal(src.next(src.arg, &got, 1), 0);
    uint64_t keep = (((uint64_t)1 << 32) - 1) & ~((((uint64_t)1 << 10) - 1) << 10);
    reload_with(&f, "reload1.toml", keep);
    reload_with(&f, "reload2.toml", keep);
    drain(&src, &got, 1);
    json_t *j = json_loads(got.data, 0, NULL);
    assert_non_null(j);
    json_t *certs = json_object_get(j, "certificates");
    assert_non_null(json_object_get(j, "store"));
    /* c00..c09 ran (their orders hang) and stay until their runs end */
    size_t n = json_array_size(certs);
    char names[64][8];
    for (size_t i = 0; i < n; i++)
        snprintf(names[i], sizeof(names[i]), "%s",
                 json_string_value(json_object_get(json_array_get(certs, i), "name")));
    assert_int_equal(n, 13 + 12);
    assert_string_equal(names[12], "c12");
    assert_string_equal(names[13], "c20");
    assert_string_equal(names[24], "c31");
    json_decref(j);
    buf_fini(&got);

    /* a stream outliving its manager fails, and its release is safe */
    manager_view_open(f.m, MANAGER_VIEW_METRICS, &src);
    got = (struct buf)BUF_INIT(SIZE_MAX);
    assert_int_equal(src.next(src.arg, &got, 1), 0);
    manager_stop(f.m);
    run_until(&f, manager_done);
    assert_int_equal(src.next(src.arg, &got, 1), -ECANCELED);
    body_src_drop(&src);
    buf_fini(&got);
    fx_close(&f);
}

static bool ordering(struct fx *f)
{
    return f->requests > 0;
}

/* A certificate removed by a reload while its order is in flight and added
 * back by the next one is the same entry again: listed once, its run goes
 * on, no second run beside it (it resumed the same stored order and
 * finalized it twice: one of the two failed with orderNotReady). */
static void test_removed_in_flight_then_added_back(void **state)
{
    struct fx f;
    (void)state;

    fx_open(&f, false, 1, ""); /* every CA request hangs: c00's run stays in flight */
    run_until(&f, ordering);
    reload_with(&f, "gone.toml", 0);
    reload_with(&f, "back.toml", 1);
    for (int i = 0; i < 50; i++) /* a second run, if any, starts now */
        uv_run(&f.loop, UV_RUN_NOWAIT);
    json_t *doc = manager_status(f.m);
    json_t *certs = json_object_get(doc, "certificates");
    assert_int_equal(json_array_size(certs), 1);
    json_t *c = json_array_get(certs, 0);
    assert_string_equal(json_string_value(json_object_get(c, "name")), "c00");
    assert_string_equal(json_string_value(json_object_get(c, "state")), "ordering");
    bool added_again = false;
    json_t *h;
    size_t i;
    json_array_foreach(json_object_get(c, "history"), i, h)
    {
        const char *d = json_string_value(json_object_get(h, "detail"));
        added_again |= d != NULL && strstr(d, "the run in flight goes on") != NULL;
    }
    assert_true(added_again);
    json_decref(doc);
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_order_backs_off_exponentially),
        cmocka_unit_test(test_new_order_window_holds_when_many_are_due),
        cmocka_unit_test(test_streamed_views),
        cmocka_unit_test(test_once_reports_held_back),
        cmocka_unit_test(test_removed_in_flight_then_added_back),
    };

    log_set_level(getenv("TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
