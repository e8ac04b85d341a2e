/* Loop tests of the manager against a fake CA, on an injected wall clock
 * (no sleeps: the test moves the clock and calls manager_clock_moved):
 * - a newOrder answered 429 rateLimited with Retry-After: 7200 is not
 *   tried again before those two hours, and is right at them;
 * - a reload that keeps a certificate whose order is in flight and adds
 *   another leaves the order alone (no second newOrder) and orders the
 *   added one;
 * - a newOrder refused with rejectedIdentifier and subproblems sends a
 *   "failed" webhook event carrying the CA's type and every subproblem;
 * - STATE/alerts/NAME.expiring files of certificates no longer configured
 *   are removed at start-up and when a reload removes the certificate;
 * - dns-persist-01's "persist_expiring" goes out once a day, a restart
 *   within the day included (its time kept in STATE/alerts/), status
 *   still shows it after the restart, and the series ends (the record
 *   goes) when persist_until moves past the window or the certificate
 *   stops using dns-persist-01. */
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
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "fake_http.h"
#include "reactor/manager.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/xalloc.h"

#define T0 1700000000 /* the fake clock's start, Unix seconds */

enum order_answer {
    ANSWER_REJECTED,     /* 400 rejectedIdentifier */
    ANSWER_RATE_LIMITED, /* 429 rateLimited, Retry-After: 7200 */
    ANSWER_HANG,         /* never answers: the order stays in flight */
};

struct harness {
    uv_loop_t loop;
    struct fake_http *srv;
    enum order_answer answer;
    unsigned nonce_seq;
    unsigned new_orders; /* POSTs to newOrder the fake CA saw */
    char dir[64];
    struct config *cfg;
    struct store *st;
    struct manager *m;
    int64_t now_ms; /* the injected clock */
    int done_calls;
    uv_timer_t poll;
    unsigned want_orders; /* settle: wait for this many newOrders */
    bool any_state;       /* settle: do not wait for the certificates to be idle */
    char *hook_body;      /* the first webhook POST the fake endpoint got */
};

/* h_config adds a [notify.hook] webhook posting to the fake server's /hook. */
static bool g_with_hook;
/* Called by h_start after the state directory exists, before the manager. */
static void (*g_before_start)(struct harness *h);
/* h_config appends this to every certificate's table (NULL: nothing). */
static const char *g_cert_extra;
/* h_start: use this directory (a restart on the state that h_stop_keep
 * left) and start the clock at g_start_s instead of T0. */
static const char *g_reuse_dir;
static int64_t g_start_s;

static int64_t fake_clock(void *arg)
{
    return ((struct harness *)arg)->now_ms;
}

static void problem(struct fake_http_response *resp, int status, const char *type)
{
    char *b = xasprintf("{\"type\":\"urn:ietf:params:acme:error:%s\",\"detail\":\"no\"}", type);
    resp->status = status;
    fake_http_resp_header(resp, "Content-Type", "application/problem+json");
    fake_http_resp_body(resp, b);
    free(b);
}

static void ca_handler(const struct fake_http_request *req, struct fake_http_response *resp,
                       void *arg)
{
    struct harness *h = arg;
    const char *b = fake_http_url(h->srv);

    fake_http_resp_header(resp, "Replay-Nonce", "n%u", ++h->nonce_seq);
    if (strcmp(req->target, "/dir") == 0) {
        char *d = xasprintf("{\"newNonce\":\"%s/nonce\",\"newAccount\":\"%s/acct\","
                            "\"newOrder\":\"%s/order\"}",
                            b, b, b);
        resp->status = 200;
        fake_http_resp_header(resp, "Content-Type", "application/json");
        fake_http_resp_body(resp, d);
        free(d);
    } else if (strcmp(req->target, "/nonce") == 0) {
        resp->status = 200;
    } else if (strcmp(req->target, "/acct") == 0) {
        resp->status = 201;
        fake_http_resp_header(resp, "Location", "%s/acct/1", b);
        fake_http_resp_header(resp, "Content-Type", "application/json");
        fake_http_resp_body(resp, "{\"status\":\"valid\"}");
    } else if (strcmp(req->target, "/order") == 0) {
        h->new_orders++;
        if (h->answer == ANSWER_HANG)
            resp->hang = true;
        else if (h->answer == ANSWER_RATE_LIMITED) {
            fake_http_resp_header(resp, "Retry-After", "7200");
            problem(resp, 429, "rateLimited");
        } else {
            resp->status = 400;
            fake_http_resp_header(resp, "Content-Type", "application/problem+json");
            fake_http_resp_body(resp,
                                "{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
                                "\"detail\":\"Some identifiers were rejected\",\"subproblems\":["
                                "{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
                                "\"detail\":\"c00.test is on a blocklist\","
                                "\"identifier\":{\"type\":\"dns\",\"value\":\"c00.test\"}},"
                                "{\"type\":\"urn:ietf:params:acme:error:caa\","
                                "\"detail\":\"CAA forbids\"}]}");
        }
    } else if (strcmp(req->target, "/hook") == 0) {
        if (h->hook_body == NULL)
            h->hook_body = xstrndup(req->body, req->body_len);
        resp->status = 200;
    } else {
        resp->status = 404;
    }
}

static void done_cb(int failed, void *arg)
{
    struct harness *h = arg;

    (void)failed;
    h->done_calls++;
}

/* Writes a configuration with certificates c00.. and loads it. */
static struct config *h_config(struct harness *h, unsigned n_certs, const char *daemon_extra,
                               const char *ca_extra)
{
    struct config_diag diag;
    struct config *cfg = NULL;
    struct buf toml = BUF_INIT(1 << 20);

    assert_int_equal(buf_printf(&toml,
                                "[daemon]\nstate_dir = \"%s/state\"\n%s\n\n[http01]\n"
                                "listen = [\"127.0.0.1:%d\"]\n\n[ca.t]\ndirectory = \"%s/dir\"\n"
                                "agree_tos = true\n%s\n",
                                h->dir, daemon_extra, fake_http_free_port(), fake_http_url(h->srv),
                                ca_extra),
                     0);
    if (g_with_hook)
        assert_int_equal(buf_printf(&toml,
                                    "\n[notify.hook]\nurl = \"%s/hook\"\n"
                                    "events = [\"failed\"]\n",
                                    fake_http_url(h->srv)),
                         0);
    for (unsigned i = 0; i < n_certs; i++)
        assert_int_equal(buf_printf(&toml,
                                    "\n[certificate.c%02u]\ndomains = [\"c%02u.test\"]\n"
                                    "ca = \"t\"\n%s",
                                    i, i, g_cert_extra != NULL ? g_cert_extra : ""),
                         0);
    char *path = xasprintf("%s/certloop.toml", h->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(toml.data, fp);
    fclose(fp);
    buf_fini(&toml);
    config_diag_init(&diag);
    int rc = config_load(path, &cfg, &diag);
    for (size_t i = 0; i < diag.n; i++)
        fprintf(stderr, "%s\n", diag.lines[i]);
    config_diag_fini(&diag);
    free(path);
    assert_int_equal(rc, 0);
    return cfg;
}

static void h_start(struct harness *h, unsigned n_certs, const char *daemon_extra,
                    const char *ca_extra, enum order_answer answer)
{
    memset(h, 0, sizeof(*h));
    h->answer = answer;
    h->now_ms = (g_start_s > 0 ? g_start_s : T0) * 1000;
    assert_int_equal(uv_loop_init(&h->loop), 0);
    assert_int_equal(fake_http_start(&h->loop, ca_handler, h, &h->srv), 0);
    snprintf(h->dir, sizeof(h->dir), "%s",
             g_reuse_dir != NULL ? g_reuse_dir : "/tmp/certloop-sched-XXXXXX");
    if (g_reuse_dir == NULL)
        assert_non_null(mkdtemp(h->dir));
    h->cfg = h_config(h, n_certs, daemon_extra, ca_extra);
    char *state_dir = xasprintf("%s/state", h->dir);
    assert_int_equal(store_fs_open(&h->loop, state_dir, 0, &h->st), 0);
    free(state_dir);

    if (g_before_start != NULL)
        g_before_start(h);
    struct manager_opts o = {
        .loop = &h->loop,
        .cfg = h->cfg,
        .store = h->st,
        .clock = fake_clock,
        .clock_arg = h,
        .done = done_cb,
        .arg = h,
    };
    assert_int_equal(manager_start(&o, &h->m), 0);
    uv_timer_init(&h->loop, &h->poll);
    h->poll.data = h;
}

/* True when no certificate is queued or in an order. */
static bool all_idle(struct harness *h)
{
    json_t *st = manager_status(h->m);
    json_t *certs = json_object_get(st, "certificates");
    bool idle = true;

    for (size_t i = 0; i < json_array_size(certs); i++) {
        const char *s = json_string_value(json_object_get(json_array_get(certs, i), "state"));
        if (strcmp(s, "due") == 0 || strcmp(s, "ordering") == 0 || strcmp(s, "storing") == 0 ||
            strcmp(s, "deploying") == 0)
            idle = false;
    }
    json_decref(st);
    return idle;
}

static void poll_cb(uv_timer_t *t)
{
    struct harness *h = t->data;

    if (h->new_orders >= h->want_orders && (h->any_state || all_idle(h))) {
        uv_stop(&h->loop);
        return;
    }
    uv_timer_start(t, poll_cb, 5, 0);
}

/* Runs the loop until the fake CA has seen want newOrders in all and every
 * certificate is idle again (its failure handled, its next time armed). */
static void h_settle(struct harness *h, unsigned want)
{
    h->want_orders = want;
    uv_timer_start(&h->poll, poll_cb, 5, 0);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&h->poll);
}

/* Moves the fake clock and fires what became due. */
static void h_advance_to(struct harness *h, int64_t t)
{
    h->now_ms = t * 1000;
    manager_clock_moved(h->m);
}

/* The state word of certificate i in the status document, into out. */
static void h_state(struct harness *h, unsigned i, char *out, size_t n)
{
    json_t *st = manager_status(h->m);
    json_t *c = json_array_get(json_object_get(st, "certificates"), i);

    snprintf(out, n, "%s", json_string_value(json_object_get(c, "state")));
    json_decref(st);
}

static json_t *h_cert(struct harness *h, json_t **st, unsigned i)
{
    *st = manager_status(h->m);
    return json_array_get(json_object_get(*st, "certificates"), i);
}

static int64_t h_next(struct harness *h, unsigned i, char *reason, size_t n)
{
    json_t *st = NULL;
    json_t *c = h_cert(h, &st, i);
    int64_t next = (int64_t)json_integer_value(json_object_get(c, "next_renewal"));
    const char *r = json_string_value(json_object_get(c, "reason"));

    snprintf(reason, n, "%s", r != NULL ? r : "");
    json_decref(st);
    return next;
}

/* Stops the manager and closes everything but keeps the directory (a
 * restart: h_start with g_reuse_dir). */
static void h_stop_keep(struct harness *h)
{
    manager_stop(h->m);
    fake_http_close(h->srv);
    uv_close((uv_handle_t *)&h->poll, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(h->done_calls, 1);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    store_close(h->st);
    config_unref(h->cfg);
    free(h->hook_body);
}

static void remove_dir(const char *dir)
{
    pid_t pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", dir, (char *)NULL);
        _exit(127);
    }
    (void)waitpid(pid, NULL, 0);
}

static void h_stop(struct harness *h)
{
    h_stop_keep(h);
    remove_dir(h->dir);
}

/* The CA answers rateLimited with Retry-After: 7200: no new order before. */
static void test_rate_limited_retry_after_is_obeyed(void **state)
{
    struct harness h;
    char reason[128];

    (void)state;
    h_start(&h, 1, "", "", ANSWER_RATE_LIMITED);
    h_settle(&h, 1);
    int64_t next = h_next(&h, 0, reason, sizeof(reason));
    assert_int_equal(next, T0 + 7200);
    assert_non_null(strstr(reason, "rateLimited"));
    char state_word[32];
    /* a deadline that fires starts the run at once: "ordering" (or "due") */
    h_advance_to(&h, T0 + 7199);
    h_state(&h, 0, state_word, sizeof(state_word));
    assert_string_not_equal(state_word, "ordering");
    assert_string_not_equal(state_word, "due");
    assert_int_equal(h.new_orders, 1);
    h_advance_to(&h, T0 + 7200);
    h_state(&h, 0, state_word, sizeof(state_word));
    assert_true(strcmp(state_word, "ordering") == 0 || strcmp(state_word, "due") == 0);
    h_settle(&h, 2);
    assert_int_equal(h.new_orders, 2);
    h_stop(&h);
}

/* SIGHUP with an unchanged certificate whose order is in flight and an
 * added one: the order in flight goes on untouched (no second newOrder),
 * the added certificate is ordered. */
static void test_reload_leaves_unchanged_orders_in_flight(void **state)
{
    struct harness h;

    (void)state;
    h_start(&h, 1, "", "", ANSWER_HANG);
    h.any_state = true;
    h_settle(&h, 1);
    struct config *next = h_config(&h, 2, "", "");
    manager_reload(h.m, next);
    config_unref(next);
    h_settle(&h, 2);
    json_t *st = NULL;
    json_t *c0 = h_cert(&h, &st, 0);
    assert_string_equal(json_string_value(json_object_get(c0, "name")), "c00");
    assert_string_equal(json_string_value(json_object_get(c0, "state")), "ordering");
    json_t *c1 = json_array_get(json_object_get(st, "certificates"), 1);
    assert_string_equal(json_string_value(json_object_get(c1, "name")), "c01");
    assert_string_equal(json_string_value(json_object_get(c1, "state")), "ordering");
    json_decref(st);
    assert_int_equal(h.new_orders, 2);
    h_stop(&h);
}

/* h_run_until: runs the loop until g_until(h) holds, checked every 5 ms,
 * or 10 s pass (the caller's assertions then fail). */
static bool (*g_until)(struct harness *h);
static uint64_t g_until_end;

static void until_cb(uv_timer_t *t)
{
    struct harness *h = t->data;

    if (g_until(h) || uv_now(&h->loop) >= g_until_end) {
        uv_stop(&h->loop);
        return;
    }
    uv_timer_start(t, until_cb, 5, 0);
}

static void h_run_until(struct harness *h, bool (*pred)(struct harness *h))
{
    g_until = pred;
    g_until_end = uv_now(&h->loop) + 10000;
    uv_timer_start(&h->poll, until_cb, 5, 0);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&h->poll);
}

static bool hook_received(struct harness *h)
{
    return h->hook_body != NULL;
}

/* rejectedIdentifier with subproblems: the failed event carries them all. */
static void test_failed_event_carries_subproblems(void **state)
{
    struct harness h;

    (void)state;
    g_with_hook = true;
    h_start(&h, 1, "", "", ANSWER_REJECTED);
    g_with_hook = false;
    h_settle(&h, 1);
    h_run_until(&h, hook_received);
    assert_non_null(h.hook_body);
    json_error_t jerr;
    json_t *ev = json_loads(h.hook_body, 0, &jerr);
    assert_non_null(ev);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "failed");
    json_t *err = json_object_get(ev, "error");
    assert_string_equal(json_string_value(json_object_get(err, "type")),
                        "urn:ietf:params:acme:error:rejectedIdentifier");
    assert_non_null(strstr(json_string_value(json_object_get(err, "detail")),
                           "Some identifiers were rejected"));
    json_t *subs = json_object_get(err, "subproblems");
    assert_int_equal(json_array_size(subs), 2);
    json_t *s0 = json_array_get(subs, 0), *s1 = json_array_get(subs, 1);
    assert_string_equal(json_string_value(json_object_get(s0, "type")),
                        "urn:ietf:params:acme:error:rejectedIdentifier");
    assert_string_equal(json_string_value(json_object_get(s0, "detail")),
                        "c00.test is on a blocklist");
    assert_string_equal(json_string_value(json_object_get(s0, "identifier")), "dns:c00.test");
    assert_string_equal(json_string_value(json_object_get(s1, "type")),
                        "urn:ietf:params:acme:error:caa");
    assert_null(json_object_get(s1, "identifier")); /* left out, not invented */
    json_decref(ev);
    h_stop(&h);
}

static char *alert_file(struct harness *h, const char *name)
{
    return xasprintf("%s/state/alerts/%s", h->dir, name);
}

static bool exists(struct harness *h, const char *name)
{
    char *p = alert_file(h, name);
    bool yes = access(p, F_OK) == 0;
    free(p);
    return yes;
}

static void seed_alerts(struct harness *h)
{
    const char *names[] = {"c00.expiring", "gone.expiring", ".tmp-c00.expiring-ab12"};
    char *dir = xasprintf("%s/state/alerts", h->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    free(dir);
    for (size_t i = 0; i < 3; i++) {
        char *p = alert_file(h, names[i]);
        FILE *fp = fopen(p, "w");
        assert_non_null(fp);
        fprintf(fp, "%d\n", T0 - 100);
        fclose(fp);
        free(p);
    }
}

static bool c00_alert_gone(struct harness *h)
{
    return !exists(h, "c00.expiring");
}

/* Alert files follow the configuration: at start-up those of unknown
 * certificates (and temp files) go; a reload that removes a certificate
 * removes its file. */
static void test_alert_files_follow_the_configuration(void **state)
{
    struct harness h;

    (void)state;
    g_before_start = seed_alerts;
    h_start(&h, 1, "", "", ANSWER_HANG);
    g_before_start = NULL;
    assert_true(exists(&h, "c00.expiring"));
    assert_false(exists(&h, "gone.expiring"));
    assert_false(exists(&h, ".tmp-c00.expiring-ab12"));
    h.any_state = true;
    h_settle(&h, 1);
    assert_true(exists(&h, "c00.expiring"));
    struct config *next = h_config(&h, 0, "", "");
    manager_reload(h.m, next);
    config_unref(next);
    h_run_until(&h, c00_alert_gone);
    assert_false(exists(&h, "c00.expiring"));
    h_stop(&h);
}

/* How many "persist_expiring" lines c00's history file holds. */
static int persist_lines(const char *dir)
{
    char *path = xasprintf("%s/state/history/c00.jsonl", dir);
    FILE *fp = fopen(path, "r");
    char line[1024];
    int n = 0;

    free(path);
    if (fp == NULL)
        return 0;
    while (fgets(line, sizeof(line), fp) != NULL)
        n += strstr(line, "\"persist_expiring\"") != NULL;
    fclose(fp);
    return n;
}

static bool h_persist_flag(struct harness *h)
{
    json_t *st = NULL;
    json_t *c = h_cert(h, &st, 0);
    bool yes = json_is_true(json_object_get(c, "persist_expiring"));

    json_decref(st);
    return yes;
}

static bool persist_alert_gone(struct harness *h)
{
    return !exists(h, "c00.persist_expiring");
}

static bool persist_alert_there(struct harness *h)
{
    return exists(h, "c00.persist_expiring");
}

#define PERSIST_DAEMON "expiring_window = \"3000d\""
/* (after [ca.t]: the solver dns-persist-01 needs, never run here) */
#define PERSIST_DNS "\n[dns.x]\ntype = \"exec\"\ncommand = [\"/bin/true\"]\n"

/* g_cert_extra for dns-persist-01 with persist_until (0: neither). */
static void persist_extra(char *buf, size_t n, int64_t persist_until)
{
    snprintf(buf, n, "challenge = \"dns-persist-01\"\ndns = \"x\"\npersist_until = %lld\n",
             (long long)persist_until);
    g_cert_extra = persist_until > 0 ? buf : NULL;
}

static struct config *persist_config(struct harness *h, int64_t persist_until)
{
    char extra[128];

    persist_extra(extra, sizeof(extra), persist_until);
    struct config *cfg = h_config(h, 1, PERSIST_DAEMON, PERSIST_DNS);
    g_cert_extra = NULL;
    return cfg;
}

/* dns-persist-01 with persist_until inside expiring_window: the
 * "persist_expiring" event goes out at the first decision; a restart an
 * hour later sends none (the time is in STATE/alerts/) and status still
 * shows the flag; a day after the first it repeats. persist_until moved
 * past the window ends the series (the record goes, the flag clears);
 * moved back, it starts again at once; without dns-persist-01 it ends. The
 * CA answers every order rateLimited (Retry-After: 7200), so the
 * certificate is idle between decisions. */
static void test_persist_expiring_keeps_its_pace_across_restarts(void **state)
{
    struct harness h;
    char dir[64], extra[128];
    /* persist_until a month ahead of the real clock (check refuses one
     * more than 10 years ahead of it); with a 3000-day window the fake
     * clock (T0, 2023) is inside */
    int64_t pu = (int64_t)time(NULL) + 30 * 86400;
    int64_t later = (int64_t)time(NULL) + 9 * 365 * 86400; /* past the window at T0 */

    (void)state;
    persist_extra(extra, sizeof(extra), pu);
    h_start(&h, 1, PERSIST_DAEMON, PERSIST_DNS, ANSWER_RATE_LIMITED);
    h_settle(&h, 1);
    assert_true(h_persist_flag(&h));
    snprintf(dir, sizeof(dir), "%s", h.dir);
    h_stop_keep(&h);
    assert_int_equal(persist_lines(dir), 1);

    /* restarted an hour later, twice: none sent, the flag still up */
    g_reuse_dir = dir;
    g_start_s = T0 + 3600;
    for (int i = 0; i < 2; i++) {
        if (i > 0)
            h_stop_keep(&h);
        h_start(&h, 1, PERSIST_DAEMON, PERSIST_DNS, ANSWER_RATE_LIMITED);
        assert_true(h_persist_flag(&h));
        h_settle(&h, 1);
        assert_true(h_persist_flag(&h));
        assert_int_equal(persist_lines(dir), 1);
    }
    g_reuse_dir = NULL;
    g_start_s = 0;
    g_cert_extra = NULL;
    char *alert = alert_file(&h, "c00.persist_expiring");
    char *text = NULL;
    assert_int_equal(store_read_file(alert, &text, NULL), 0);
    assert_int_equal(strtoll(text, NULL, 10), T0);
    free(text);
    free(alert);
    /* a day after the first: again (the retry at T0 + 3600 + 7200 wakes it) */
    h_advance_to(&h, T0 + 86400);
    h_settle(&h, 2);
    assert_true(h_persist_flag(&h));

    /* persist_until moved past the window: the series ends */
    struct config *next = persist_config(&h, later);
    manager_reload(h.m, next);
    config_unref(next);
    h_run_until(&h, persist_alert_gone);
    assert_false(exists(&h, "c00.persist_expiring"));
    assert_false(h_persist_flag(&h));
    /* moved back inside: a new series, sent at once */
    next = persist_config(&h, pu);
    manager_reload(h.m, next);
    config_unref(next);
    h_run_until(&h, persist_alert_there);
    assert_true(h_persist_flag(&h));
    /* no longer dns-persist-01: it ends */
    next = persist_config(&h, 0);
    manager_reload(h.m, next);
    config_unref(next);
    h_run_until(&h, persist_alert_gone);
    assert_false(exists(&h, "c00.persist_expiring"));
    assert_false(h_persist_flag(&h));
    h_stop_keep(&h);
    assert_int_equal(persist_lines(dir), 3);
    remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_limited_retry_after_is_obeyed),
        cmocka_unit_test(test_reload_leaves_unchanged_orders_in_flight),
        cmocka_unit_test(test_failed_event_carries_subproblems),
        cmocka_unit_test(test_alert_files_follow_the_configuration),
        cmocka_unit_test(test_persist_expiring_keeps_its_pace_across_restarts),
    };

    log_set_level(getenv("TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
