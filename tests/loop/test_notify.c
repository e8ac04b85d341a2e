/* Webhook delivery on a real loop against tests/support/fake_http: the
 * signature (recomputed here with OpenSSL), the headers, the outbox file
 * written before the first attempt and removed after a 2xx, retries with
 * backoff, Retry-After, giving up into dead/, restarts (after a failure and
 * with a request in flight), bounded concurrency, unique ids, subscription
 * filters, recovery of the outbox at open, and a clean uv_loop_close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "test_fs.h"
#include "deploy/deploy.h"
#include "fake_http.h"
#include "net/net.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#define SECRET "s3cret-key"
#define MAX_RECV 256

/* What the receiver saw for one request. */
struct recv {
    char *method, *target, *ctype, *event, *delivery, *sig;
    char *body;
    uint64_t at; /* uv_now when it arrived */
    char *file;  /* the outbox file at that moment, or NULL */
    unsigned inflight;
};

struct fx {
    uv_loop_t loop;
    uv_timer_t guard;    /* keeps UV_RUN_ONCE from blocking forever */
    char *dir;           /* the state directory */
    struct store *store; /* the file backend on dir, shared (no lock) */
    char *secret_path;
    struct http_client *http;
    struct fake_http *srv;
    struct notify *n;
    struct notify_opts opts;
    struct config cfg;
    struct cfg_notify targets[3];
    char *urls[3];
    int closed;
    /* script */
    int statuses[16];
    size_t n_statuses;
    int default_status;
    unsigned delay_ms;
    bool hang;
    const char *retry_after;
    /* record */
    struct recv recv[MAX_RECV];
    size_t n_recv;
    unsigned max_inflight_seen;
};

static struct fx *F;

/* ---- helpers ------------------------------------------------------------- */

static char *slurp_or_null(const char *path)
{
    char *s = NULL;

    if (store_read_file(path, &s, NULL) < 0)
        return NULL;
    return s;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static char *outbox_path(struct fx *f, const char *id)
{
    return xasprintf("%s/outbox/%s.json", f->dir, id);
}

/* Entries of a directory, not counting ".", ".." and "dead". */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            strcmp(e->d_name, "dead") != 0)
            n++;
    }
    closedir(d);
    return n;
}

static int outbox_count(struct fx *f)
{
    char *d = xasprintf("%s/outbox", f->dir);
    int n = count_entries(d);
    free(d);
    return n;
}

static int dead_count(struct fx *f)
{
    char *d = xasprintf("%s/outbox/dead", f->dir);
    int n = count_entries(d);
    free(d);
    return n;
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *o = json_loads(text, 0, &e);

    assert_non_null(o);
    return o;
}

static long long json_int(const char *text, const char *key)
{
    json_t *o = parse(text);
    long long v = json_integer_value(json_object_get(o, key));
    json_decref(o);
    return v;
}

/* The signature the receiver expects, computed here independently. */
static void expected_sig(const char *key, const char *body, char out[72])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    assert_non_null(HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)body,
                         strlen(body), mac, &len));
    assert_int_equal(len, 32);
    int off = snprintf(out, 72, "sha256=");
    for (unsigned i = 0; i < len; i++)
        off += snprintf(out + off, (size_t)(72 - off), "%02x", mac[i]);
}

static char *hdr(const struct fake_http_request *req, const char *name)
{
    char b[512];

    return fake_http_req_header(req, name, b, sizeof(b)) != NULL ? xstrdup(b) : NULL;
}

static void handler(const struct fake_http_request *req, struct fake_http_response *resp, void *arg)
{
    struct fx *f = arg;
    struct notify_stats st;

    assert_true(f->n_recv < MAX_RECV);
    struct recv *r = &f->recv[f->n_recv++];
    r->method = xstrdup(req->method);
    r->target = xstrdup(req->target);
    r->ctype = hdr(req, "Content-Type");
    r->event = hdr(req, "X-Certloop-Event");
    r->delivery = hdr(req, "X-Certloop-Delivery");
    r->sig = hdr(req, "X-Certloop-Signature");
    r->body = xstrndup(req->body, req->body_len);
    r->at = uv_now(&f->loop);
    if (r->delivery != NULL && strlen(r->delivery) == NOTIFY_ID_LEN) {
        char *p = outbox_path(f, r->delivery);
        r->file = slurp_or_null(p);
        free(p);
    }
    if (f->n != NULL) {
        notify_stats_get(f->n, &st);
        r->inflight = (unsigned)st.inflight;
        if (r->inflight > f->max_inflight_seen)
            f->max_inflight_seen = r->inflight;
    }
    resp->status = req->seq < f->n_statuses ? f->statuses[req->seq] : f->default_status;
    resp->delay_ms = f->delay_ms;
    resp->hang = f->hang;
    if (f->retry_after != NULL)
        fake_http_resp_header(resp, "Retry-After", "%s", f->retry_after);
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until pred holds or timeout_ms pass. */
static bool run_until(struct fx *f, bool (*pred)(struct fx *), uint64_t timeout_ms)
{
    uint64_t end = uv_now(&f->loop) + timeout_ms;

    uv_timer_start(&f->guard, on_guard, 5, 5);
    while (!pred(f) && uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->guard);
    return pred(f);
}

static struct notify_stats stats(struct fx *f)
{
    struct notify_stats st;

    notify_stats_get(f->n, &st);
    return st;
}

static uint64_t want_delivered;
static bool delivered_enough(struct fx *f)
{
    /* delivered and the outbox file removed (no delivery pending) */
    struct notify_stats st = stats(f);
    return st.delivered >= want_delivered && st.pending == 0 && outbox_count(f) == 0;
}

static void on_closed(void *arg)
{
    struct fx *f = arg;
    f->closed++;
}

static bool is_closed(struct fx *f)
{
    return f->closed > 0;
}

/* Adds a target NAME posting to PATH on the receiver. */
static void add_target(struct fx *f, const char *name, const char *path, bool signed_,
                       unsigned events)
{
    size_t i = f->cfg.n_notify;

    assert_true(i < 3);
    f->urls[i] = xasprintf("%s%s", fake_http_url(f->srv), path);
    f->targets[i].name = (char *)name;
    f->targets[i].url = f->urls[i];
    f->targets[i].secret_file = signed_ ? f->secret_path : NULL;
    f->targets[i].events = events;
    f->cfg.notify = f->targets;
    f->cfg.n_notify = i + 1;
}

static void open_notify(struct fx *f)
{
    f->closed = 0;
    assert_int_equal(notify_open(&f->loop, f->http, f->store, &f->cfg, &f->opts, &f->n), 0);
}

static void close_notify(struct fx *f)
{
    notify_close(f->n, on_closed, f);
    assert_int_equal(f->closed, 0); /* never from inside notify_close */
    assert_true(run_until(f, is_closed, 5000));
    assert_int_equal(f->closed, 1);
    f->n = NULL;
}

static char *emit(struct fx *f, enum notify_event_type type, const char *cert, int want)
{
    const char *domains[] = {"example.org", "www.example.org"};
    struct notify_event e = {
        .type = type,
        .certificate = cert,
        .domains = domains,
        .n_domains = 2,
        .time = 1764000000,
        .not_after = 1771776000,
        .record_name = "_acme-challenge.example.org",
        .record_value = "v",
    };
    char *text = NULL;

    assert_int_equal(notify_event_build(&e, &text), 0);
    assert_int_equal(notify_emit(f->n, text), want);
    return text;
}

static int setup(void **state)
{
    char tmpl[] = "/tmp/test_notify.XXXXXX";
    struct fx *f = xcalloc(1, sizeof(*f));

    assert_non_null(mkdtemp(tmpl));
    f->dir = xstrdup(tmpl);
    f->secret_path = xasprintf("%s/webhook.secret", f->dir);
    write_file(f->secret_path, SECRET "\n"); /* the final newline is not part of the key */
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->guard);
    assert_int_equal(store_fs_open(&f->loop, f->dir, STORE_FS_SHARED, &f->store), 0);
    assert_int_equal(http_client_open(&f->loop, &f->http), 0);
    assert_int_equal(fake_http_start(&f->loop, handler, f, &f->srv), 0);
    f->default_status = 200;
    f->opts.base_delay_ms = 20;
    f->opts.max_delay_ms = 100;
    want_delivered = 1;
    F = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    if (f->n != NULL)
        notify_close(f->n, on_closed, f);
    http_client_close(f->http);
    fake_http_close(f->srv);
    uv_close((uv_handle_t *)&f->guard, NULL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    store_close(f->store);
    for (size_t i = 0; i < f->n_recv; i++) {
        struct recv *r = &f->recv[i];
        free(r->method);
        free(r->target);
        free(r->ctype);
        free(r->event);
        free(r->delivery);
        free(r->sig);
        free(r->body);
        free(r->file);
    }
    for (size_t i = 0; i < 3; i++)
        free(f->urls[i]);
    test_rm_rf(f->dir);
    free(f->dir);
    free(f->secret_path);
    free(f);
    F = NULL;
    return 0;
}

/* ---- tests --------------------------------------------------------------- */

static void test_delivery_signed_persisted_then_removed(void **state)
{
    struct fx *f = *state;
    char sig[72];

    add_target(f, "ops", "/hook", true, CFG_EVENT_ALL);
    open_notify(f);
    char *body = emit(f, NOTIFY_EV_ISSUED, "www", 1);
    assert_int_equal(f->n_recv, 0); /* nothing is sent from inside notify_emit */
    assert_true(run_until(f, delivered_enough, 5000));

    assert_int_equal(f->n_recv, 1);
    struct recv *r = &f->recv[0];
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->target, "/hook");
    assert_string_equal(r->ctype, "application/json");
    assert_string_equal(r->event, "issued");
    assert_non_null(r->delivery);
    assert_int_equal(strlen(r->delivery), NOTIFY_ID_LEN);
    /* the exact bytes of the event, signed with the secret (no newline) */
    assert_string_equal(r->body, body);
    expected_sig(SECRET, r->body, sig);
    assert_non_null(r->sig);
    assert_string_equal(r->sig, sig);
    expected_sig(SECRET "\n", r->body, sig);
    assert_string_not_equal(r->sig, sig);
    /* on disk before the first attempt: the record with the same body */
    assert_non_null(r->file);
    json_t *rec = parse(r->file);
    assert_string_equal(json_string_value(json_object_get(rec, "body")), body);
    assert_string_equal(json_string_value(json_object_get(rec, "target")), "ops");
    assert_string_equal(json_string_value(json_object_get(rec, "delivery")), r->delivery);
    assert_int_equal(json_integer_value(json_object_get(rec, "attempts")), 0);
    json_decref(rec);
    char *p = outbox_path(f, r->delivery);
    struct stat st;
    assert_int_equal(stat(p, &st), -1); /* removed after the 2xx */
    assert_int_equal(errno, ENOENT);
    free(p);
    struct notify_stats s = stats(f);
    assert_int_equal(s.delivered, 1);
    assert_int_equal(s.failed, 0);
    assert_int_equal(s.inflight, 0);
    free(body);
    close_notify(f);
}

static void test_retries_until_2xx_with_backoff(void **state)
{
    struct fx *f = *state;

    f->statuses[0] = 500;
    f->statuses[1] = 500;
    f->statuses[2] = 200;
    f->n_statuses = 3;
    f->opts.base_delay_ms = 40;
    f->opts.max_delay_ms = 1000;
    add_target(f, "ops", "/hook", true, CFG_EVENT_ALL);
    open_notify(f);
    char *body = emit(f, NOTIFY_EV_RENEWED, "www", 1);
    assert_true(run_until(f, delivered_enough, 5000));

    assert_int_equal(f->n_recv, 3);
    for (size_t i = 0; i < 3; i++) {
        /* the same delivery every time, the attempt count persisted before it */
        assert_string_equal(f->recv[i].delivery, f->recv[0].delivery);
        assert_string_equal(f->recv[i].body, body);
        assert_non_null(f->recv[i].file);
        assert_int_equal(json_int(f->recv[i].file, "attempts"), (long long)i);
    }
    /* delays in [d/2, d]: 40 ms then 80 ms (a millisecond of rounding) */
    assert_true(f->recv[1].at - f->recv[0].at >= 19);
    assert_true(f->recv[2].at - f->recv[1].at >= 39);
    struct notify_stats s = stats(f);
    assert_int_equal(s.delivered, 1);
    assert_int_equal(s.failed, 2);
    free(body);
    close_notify(f);
}

static void test_retry_after_is_honoured(void **state)
{
    struct fx *f = *state;

    f->statuses[0] = 503;
    f->n_statuses = 1;
    f->retry_after = "1";
    f->opts.base_delay_ms = 10;
    f->opts.max_delay_ms = 5000;
    add_target(f, "ops", "/hook", true, CFG_EVENT_ALL);
    open_notify(f);
    free(emit(f, NOTIFY_EV_FAILED, "www", 1));
    assert_true(run_until(f, delivered_enough, 5000));
    assert_int_equal(f->n_recv, 2);
    assert_true(f->recv[1].at - f->recv[0].at >= 995);
    close_notify(f);
}

static bool failed_once_and_persisted(struct fx *f)
{
    if (f->n_recv < 1 || f->recv[0].delivery == NULL)
        return false;
    char *p = outbox_path(f, f->recv[0].delivery);
    char *text = slurp_or_null(p);
    free(p);
    bool ok = text != NULL && json_int(text, "attempts") == 1;
    free(text);
    return ok;
}

static void test_restart_after_failed_attempt(void **state)
{
    struct fx *f = *state;

    f->default_status = 500;
    f->opts.base_delay_ms = 300;
    add_target(f, "ops", "/hook", true, CFG_EVENT_ALL);
    open_notify(f);
    char *body = emit(f, NOTIFY_EV_ISSUED, "www", 1);
    assert_true(run_until(f, failed_once_and_persisted, 5000));
    close_notify(f);
    assert_int_equal(f->n_recv, 1);
    assert_int_equal(outbox_count(f), 1);

    /* a new process on the same state directory */
    f->default_status = 200;
    open_notify(f);
    assert_int_equal(stats(f).pending, 1);
    assert_true(run_until(f, delivered_enough, 5000));
    assert_int_equal(f->n_recv, 2);
    assert_string_equal(f->recv[1].delivery, f->recv[0].delivery);
    assert_string_equal(f->recv[1].body, body);
    char sig[72];
    expected_sig(SECRET, body, sig);
    assert_string_equal(f->recv[1].sig, sig);
    /* it waited for its persisted next attempt (300 ms, jittered to >= 150) */
    assert_true(f->recv[1].at - f->recv[0].at >= 149);
    free(body);
    close_notify(f);
}

static bool received_one(struct fx *f)
{
    return f->n_recv >= 1;
}

static void test_restart_with_request_in_flight(void **state)
{
    struct fx *f = *state;

    f->hang = true;
    add_target(f, "ops", "/hook", true, CFG_EVENT_ALL);
    open_notify(f);
    char *body = emit(f, NOTIFY_EV_EXPIRING, "www", 1);
    assert_true(run_until(f, received_one, 5000));
    assert_int_equal(stats(f).inflight, 1);
    close_notify(f); /* cancels the request; no callback into freed memory */
    assert_int_equal(outbox_count(f), 1);

    f->hang = false;
    open_notify(f);
    assert_true(run_until(f, delivered_enough, 5000));
    assert_int_equal(f->n_recv, 2);
    assert_string_equal(f->recv[1].delivery, f->recv[0].delivery);
    assert_string_equal(f->recv[1].body, body);
    /* the cancelled attempt was never counted */
    assert_int_equal(json_int(f->recv[1].file, "attempts"), 0);
    free(body);
    close_notify(f);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_distinct_events_two_targets_bounded(void **state)
{
    struct fx *f = *state;
    enum { N = 20 };
    char *bodies[N];

    f->delay_ms = 20;
    f->opts.max_inflight = 3;
    add_target(f, "a", "/a", true, CFG_EVENT_ALL);
    add_target(f, "b", "/b", false, CFG_EVENT_ALL);
    open_notify(f);
    for (size_t i = 0; i < N; i++)
        bodies[i] = emit(f, NOTIFY_EV_ISSUED, "www", 2);
    want_delivered = 2 * N;
    assert_true(run_until(f, delivered_enough, 10000));
    assert_int_equal(f->n_recv, 2 * N);
    /* bounded, and the bound was used */
    assert_int_equal(f->max_inflight_seen, 3);

    char *dids[2 * N], *eids[2 * N];
    size_t na = 0, nb = 0;
    for (size_t i = 0; i < 2 * N; i++) {
        struct recv *r = &f->recv[i];
        json_t *o = parse(r->body);
        dids[i] = r->delivery;
        eids[i] = xstrdup(json_string_value(json_object_get(o, "id")));
        json_decref(o);
        if (strcmp(r->target, "/a") == 0) {
            char sig[72];
            expected_sig(SECRET, r->body, sig);
            assert_string_equal(r->sig, sig);
            na++;
        } else {
            assert_string_equal(r->target, "/b");
            assert_null(r->sig); /* no secret_file: unsigned */
            nb++;
        }
    }
    assert_int_equal(na, N);
    assert_int_equal(nb, N);
    /* every delivery id distinct; every event id seen exactly twice */
    qsort(dids, 2 * N, sizeof(char *), cmp_str);
    for (size_t i = 1; i < 2 * N; i++)
        assert_string_not_equal(dids[i - 1], dids[i]);
    qsort(eids, 2 * N, sizeof(char *), cmp_str);
    for (size_t i = 0; i < 2 * N; i += 2) {
        assert_string_equal(eids[i], eids[i + 1]);
        if (i + 2 < 2 * N)
            assert_string_not_equal(eids[i], eids[i + 2]);
    }
    for (size_t i = 0; i < 2 * N; i++)
        free(eids[i]);
    for (size_t i = 0; i < N; i++)
        free(bodies[i]);
    close_notify(f);
}

static bool one_dead(struct fx *f)
{
    return stats(f).dead == 1 && stats(f).pending == 0 && dead_count(f) == 1 &&
           outbox_count(f) == 0;
}

static void test_gives_up_into_dead(void **state)
{
    struct fx *f = *state;

    f->default_status = 500;
    f->opts.base_delay_ms = 5;
    f->opts.max_delay_ms = 10;
    f->opts.give_up_ms = 150;
    add_target(f, "ops", "/hook", true, CFG_EVENT_ALL);
    open_notify(f);
    char *body = emit(f, NOTIFY_EV_ISSUED, "www", 1);
    assert_true(run_until(f, one_dead, 5000));
    /* retried until the deadline (how often depends on the machine's load) */
    assert_true(f->n_recv >= 2);
    char *p = xasprintf("%s/outbox/dead/%s.json", f->dir, f->recv[0].delivery);
    char *text = slurp_or_null(p);
    assert_non_null(text);
    json_t *o = parse(text);
    assert_string_equal(json_string_value(json_object_get(o, "body")), body);
    assert_string_equal(json_string_value(json_object_get(o, "last_error")), "HTTP 500");
    assert_int_equal(json_integer_value(json_object_get(o, "attempts")), (long long)f->n_recv);
    json_decref(o);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(text);
    free(p);
    free(body);
    close_notify(f);
}

static void test_subscription_filter(void **state)
{
    struct fx *f = *state;

    add_target(f, "some", "/some", true, CFG_EVENT_ISSUED | CFG_EVENT_FAILED);
    add_target(f, "all", "/all", true, CFG_EVENT_ALL);
    open_notify(f);
    free(emit(f, NOTIFY_EV_RENEWED, "www", 1));       /* only "all" */
    free(emit(f, NOTIFY_EV_ISSUED, "www", 2));        /* both */
    free(emit(f, NOTIFY_EV_DEPLOY_FAILED, "www", 1)); /* the default takes every type */
    /* not events */
    assert_int_equal(notify_emit(f->n, "{\"id\":\"abc\",\"event\":\"nope\",\"certificate\":\"x\"}"),
                     -EINVAL);
    assert_int_equal(
        notify_emit(f->n, "{\"id\":\"../x\",\"event\":\"issued\",\"certificate\":\"x\"}"), -EINVAL);
    assert_int_equal(notify_emit(f->n, "[1,2]"), -EINVAL);
    assert_int_equal(notify_emit(f->n, "not json"), -EINVAL);
    want_delivered = 4;
    assert_true(run_until(f, delivered_enough, 5000));
    size_t some = 0;
    for (size_t i = 0; i < f->n_recv; i++) {
        if (strcmp(f->recv[i].target, "/some") == 0) {
            assert_string_equal(f->recv[i].event, "issued");
            some++;
        }
    }
    assert_int_equal(some, 1);
    assert_int_equal(f->n_recv, 4);
    close_notify(f);
}

static char *record_at(const char *id, const char *target, const char *body, int attempts,
                       long long next_ms)
{
    json_t *o = json_object();

    json_object_set_new(o, "delivery", json_string(id));
    json_object_set_new(o, "target", json_string(target));
    json_object_set_new(o, "event", json_string("renewed"));
    json_object_set_new(o, "event_id", json_string("e1"));
    json_object_set_new(o, "created_ms", json_integer(1000));
    json_object_set_new(o, "attempts", json_integer(attempts));
    json_object_set_new(o, "next_attempt_ms", json_integer(next_ms));
    json_object_set_new(o, "body", json_string(body));
    char *t = json_dumps(o, 0);
    json_decref(o);
    return t;
}

static char *record(const char *id, const char *target, const char *body, int attempts)
{
    return record_at(id, target, body, attempts, 0);
}

static bool first_done_other_waits(struct fx *f)
{
    return stats(f).delivered == 1 && stats(f).pending == 1 && outbox_count(f) == 1;
}

static void test_open_recovers_outbox(void **state)
{
    struct fx *f = *state;
    const char *ok_id = "0123456789abcdef0123456789abcdef";
    const char *gone_id = "fedcba9876543210fedcba9876543210";
    const char *bad_id = "00000000000000000000000000000000";
    const char *body = "{\"id\":\"e1\",\"event\":\"renewed\",\"certificate\":\"www\"}";
    char *p, *t;

    /* created_ms 1000 is long ago: a generous give_up keeps them alive */
    f->opts.give_up_ms = INT64_MAX / 4;
    char *ob = xasprintf("%s/outbox", f->dir);
    assert_int_equal(store_mkdirs(ob, 0700), 0);
    p = outbox_path(f, ok_id);
    t = record(ok_id, "ops", body, 3);
    write_file(p, t);
    free(t);
    free(p);
    p = outbox_path(f, gone_id);
    t = record(gone_id, "gone", body, 0);
    write_file(p, t);
    free(t);
    free(p);
    p = outbox_path(f, bad_id);
    write_file(p, "{\"delivery\": 12");
    free(p);
    p = xasprintf("%s/.tmp-x.json-1234", ob);
    write_file(p, "partial");
    free(p);

    add_target(f, "ops", "/ops", true, CFG_EVENT_ALL);
    open_notify(f);
    /* the garbage went to dead/, the leftover temp file is gone */
    assert_int_equal(dead_count(f), 1);
    assert_int_equal(outbox_count(f), 2);
    assert_int_equal(stats(f).pending, 2);
    assert_true(run_until(f, first_done_other_waits, 5000));
    assert_int_equal(f->n_recv, 1);
    assert_string_equal(f->recv[0].delivery, ok_id);
    assert_string_equal(f->recv[0].target, "/ops");
    assert_string_equal(f->recv[0].event, "renewed");
    assert_string_equal(f->recv[0].body, body);
    char sig[72];
    expected_sig(SECRET, body, sig);
    assert_string_equal(f->recv[0].sig, sig);
    /* the delivery of the vanished target waits on disk */
    assert_int_equal(outbox_count(f), 1);
    p = outbox_path(f, gone_id);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    free(p);

    /* until a reload brings its target back */
    add_target(f, "gone", "/gone", false, CFG_EVENT_ALL);
    notify_reload(f->n, &f->cfg);
    want_delivered = 2;
    assert_true(run_until(f, delivered_enough, 5000));
    assert_int_equal(f->n_recv, 2);
    assert_string_equal(f->recv[1].delivery, gone_id);
    assert_string_equal(f->recv[1].target, "/gone");
    free(ob);
    close_notify(f);
}

/* A next attempt far in the future was computed under another wall clock
 * (it stepped back since): no wait is longer than max_delay. */
static void test_far_future_attempt_is_clamped(void **state)
{
    struct fx *f = *state;
    const char *id = "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb";
    const char *body = "{\"id\":\"e2\",\"event\":\"renewed\",\"certificate\":\"www\"}";

    f->opts.give_up_ms = INT64_MAX / 4;
    f->opts.max_delay_ms = 200;
    char *ob = xasprintf("%s/outbox", f->dir);
    assert_int_equal(store_mkdirs(ob, 0700), 0);
    char *p = outbox_path(f, id);
    char *t = record_at(id, "ops", body, 1, 32503680000000LL); /* year 3000 */
    write_file(p, t);
    add_target(f, "ops", "/ops", true, CFG_EVENT_ALL);
    uint64_t t0 = uv_now(&f->loop);
    open_notify(f);
    assert_true(run_until(f, delivered_enough, 5000));
    assert_int_equal(f->n_recv, 1);
    assert_string_equal(f->recv[0].delivery, id);
    assert_true(f->recv[0].at - t0 <= 1000);
    free(t);
    free(p);
    free(ob);
    close_notify(f);
}

static bool failed_twice(struct fx *f)
{
    return stats(f).failed >= 2;
}

static void test_missing_secret_never_sends_unsigned(void **state)
{
    struct fx *f = *state;
    char *missing = xasprintf("%s/later.secret", f->dir);

    f->opts.base_delay_ms = 30;
    f->opts.max_delay_ms = 30;
    add_target(f, "ops", "/hook", true, CFG_EVENT_ALL);
    f->targets[0].secret_file = missing;
    open_notify(f);
    char *body = emit(f, NOTIFY_EV_ISSUED, "www", 1);
    /* attempts fail before any request while the secret is unreadable
     * (waited for by count, not for a fixed time: a loaded machine may
     * run fewer retries in a given window) */
    assert_true(run_until(f, failed_twice, 5000));
    assert_int_equal(f->n_recv, 0);
    write_file(missing, "later-key");
    assert_true(run_until(f, delivered_enough, 5000));
    assert_int_equal(f->n_recv, 1);
    char sig[72];
    expected_sig("later-key", body, sig);
    assert_string_equal(f->recv[0].sig, sig);
    free(body);
    free(missing);
    close_notify(f);
}

struct drained {
    int calls;
    bool ok;
    struct notify_stats at; /* the stats when it was called */
    int outbox;
};

static void on_drained(bool ok, void *arg)
{
    struct drained *d = arg;

    d->calls++;
    d->ok = ok;
    d->at = stats(F);
    d->outbox = outbox_count(F);
}

static bool drain_called(struct fx *f)
{
    (void)f;
    return false; /* run until the timeout; the callback is checked after */
}

static void test_drain_waits_for_deliveries(void **state)
{
    struct fx *f = *state;
    struct drained d = {0};

    f->delay_ms = 30;
    add_target(f, "ops", "/hook", true, CFG_EVENT_ALL);
    open_notify(f);
    for (int i = 0; i < 3; i++)
        free(emit(f, NOTIFY_EV_ISSUED, "www", 1));
    assert_int_equal(notify_drain(f->n, 5000, on_drained, &d), 0);
    assert_int_equal(notify_drain(f->n, 5000, on_drained, &d), -EBUSY);
    assert_int_equal(d.calls, 0);
    run_until(f, drain_called, 600);
    assert_int_equal(d.calls, 1);
    assert_true(d.ok);
    assert_int_equal(d.at.delivered, 3);
    assert_int_equal(d.outbox, 0);
    close_notify(f);
}

static void test_drain_leaves_later_retries_in_the_outbox(void **state)
{
    struct fx *f = *state;
    struct drained d = {0};

    f->default_status = 500;
    f->opts.base_delay_ms = 10000;
    f->opts.max_delay_ms = 10000;
    add_target(f, "ops", "/hook", true, CFG_EVENT_ALL);
    open_notify(f);
    free(emit(f, NOTIFY_EV_FAILED, "www", 1));
    assert_int_equal(notify_drain(f->n, 5000, on_drained, &d), 0);
    run_until(f, drain_called, 500);
    assert_int_equal(d.calls, 1);
    assert_true(d.ok);
    assert_int_equal(d.at.failed, 1);
    assert_int_equal(d.at.pending, 1);
    assert_int_equal(d.outbox, 1); /* persisted with its next attempt */
    assert_int_equal(f->n_recv, 1);
    close_notify(f);
}

static void test_drain_times_out_and_close_silences_it(void **state)
{
    struct fx *f = *state;
    struct drained d = {0};

    f->hang = true;
    add_target(f, "ops", "/hook", true, CFG_EVENT_ALL);
    open_notify(f);
    free(emit(f, NOTIFY_EV_ISSUED, "www", 1));
    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(notify_drain(f->n, 100, on_drained, &d), 0);
    run_until(f, drain_called, 400);
    assert_int_equal(d.calls, 1);
    assert_false(d.ok);
    assert_int_equal(d.at.inflight, 1);
    assert_true(uv_now(&f->loop) - t0 >= 100);
    /* a second drain, closed before it ends: never called */
    assert_int_equal(notify_drain(f->n, 10000, on_drained, &d), 0);
    close_notify(f);
    assert_int_equal(d.calls, 1);
}

static void test_close_idle_and_emit_after_close(void **state)
{
    struct fx *f = *state;

    add_target(f, "ops", "/hook", true, CFG_EVENT_ALL);
    open_notify(f);
    notify_close(f->n, on_closed, f);
    /* until the close callback, emitting is refused */
    assert_int_equal(notify_emit(f->n, "{\"id\":\"a\",\"event\":\"issued\",\"certificate\":\"x\"}"),
                     -ECANCELED);
    assert_int_equal(f->closed, 0);
    assert_true(run_until(f, is_closed, 5000));
    assert_int_equal(f->closed, 1);
    f->n = NULL;
    assert_int_equal(f->n_recv, 0);
}

/* ---- dns-01 callback solvers --------------------------------------------- */

/* A [dns.api] callback solver posting to PATH; its name is also a webhook's. */
static struct cfg_dns solver_cfg;
static void add_solver(struct fx *f, const char *name, const char *path)
{
    memset(&solver_cfg, 0, sizeof(solver_cfg));
    solver_cfg.name = (char *)name;
    solver_cfg.type = CFG_DNS_CALLBACK;
    solver_cfg.url = xasprintf("%s%s", fake_http_url(f->srv), path);
    solver_cfg.secret_file = f->secret_path;
    f->cfg.dns = &solver_cfg;
    f->cfg.n_dns = 1;
}

static char *solver_event(enum notify_event_type type, const char *value)
{
    const char *domains[] = {"example.org"};
    struct notify_event e = {
        .type = type,
        .certificate = "www",
        .domains = domains,
        .n_domains = 1,
        .time = 1764000000,
        .record_name = "_acme-challenge.example.org",
        .record_value = value,
    };
    char *text = NULL;

    assert_int_equal(notify_event_build(&e, &text), 0);
    return text;
}

static size_t recv_at(struct fx *f, const char *target)
{
    size_t n = 0;

    for (size_t i = 0; i < f->n_recv; i++)
        n += strcmp(f->recv[i].target, target) == 0;
    return n;
}

static bool two_received(struct fx *f)
{
    return f->n_recv >= 2 && stats(f).inflight == 0 && stats(f).pending == 0 &&
           outbox_count(f) == 0;
}

static void test_solver_gets_only_what_is_addressed_to_it(void **state)
{
    struct fx *f = *state;
    char sig[72];

    add_target(f, "api", "/hook", true, CFG_EVENT_ALL); /* same name, other namespace */
    add_solver(f, "api", "/dns");
    open_notify(f);
    char *req = solver_event(NOTIFY_EV_DNS_RECORD_REQUIRED, "v1");
    /* broadcast: the webhook only */
    assert_int_equal(notify_emit(f->n, req), 1);
    /* addressed: the solver only, in memory (no outbox file at any time) */
    assert_int_equal(notify_emit_solver(f->n, "api", req, false, "k1"), 1);
    assert_int_equal(notify_emit_solver(f->n, "nope", req, false, "k1"), -ENOENT);
    assert_int_equal(notify_emit_solver(f->n, "api", "[1]", false, "k1"), -EINVAL);
    assert_true(run_until(f, two_received, 5000));
    assert_int_equal(recv_at(f, "/hook"), 1);
    assert_int_equal(recv_at(f, "/dns"), 1);
    for (size_t i = 0; i < f->n_recv; i++) {
        struct recv *r = &f->recv[i];
        assert_string_equal(r->body, req);
        assert_string_equal(r->event, "dns_record_required");
        expected_sig(SECRET, r->body, sig);
        assert_string_equal(r->sig, sig);
        if (strcmp(r->target, "/dns") == 0)
            assert_null(r->file); /* never persisted */
    }
    assert_false(notify_solver_pending(f->n, "api", "k1", NULL, NULL)); /* delivered */
    free(req);
    close_notify(f);
    free(solver_cfg.url);
}

static bool solver_failed_twice(struct fx *f)
{
    unsigned attempts = 0;
    return notify_solver_pending(f->n, "api", "k1", &attempts, NULL) && attempts >= 2 &&
           stats(f).inflight == 0;
}

static bool one_in_outbox(struct fx *f)
{
    return outbox_count(f) == 1;
}

static void test_solver_request_retried_reported_and_cancelled(void **state)
{
    struct fx *f = *state;
    unsigned attempts = 0;
    const char *last = NULL;

    f->default_status = 403;
    add_solver(f, "api", "/dns");
    open_notify(f);
    char *req = solver_event(NOTIFY_EV_DNS_RECORD_REQUIRED, "v1");
    assert_int_equal(notify_emit_solver(f->n, "api", req, false, "k1"), 1);
    assert_true(notify_solver_pending(f->n, "api", "k1", &attempts, &last));
    assert_int_equal(attempts, 0);
    assert_null(last);
    assert_true(run_until(f, solver_failed_twice, 5000));
    assert_true(notify_solver_pending(f->n, "api", "k1", &attempts, &last));
    assert_non_null(last);
    assert_string_equal(last, "HTTP 403");
    assert_int_equal(outbox_count(f), 0); /* retries of an in-memory delivery stay in memory */
    assert_false(notify_solver_pending(f->n, "api", "other", NULL, NULL));
    /* the removal: the request is dropped, then the removal persisted */
    assert_int_equal(notify_solver_cancel(f->n, "api", "k1"), 1);
    assert_false(notify_solver_pending(f->n, "api", "k1", NULL, NULL));
    assert_int_equal(notify_solver_cancel(f->n, "api", "k1"), 0);
    size_t seen = recv_at(f, "/dns");
    char *rem = solver_event(NOTIFY_EV_DNS_RECORD_REMOVABLE, "v1");
    assert_int_equal(notify_emit_solver(f->n, "api", rem, true, "k1"), 1);
    assert_true(run_until(f, one_in_outbox, 5000));
    /* a restart keeps the removal and sends it to the solver again */
    close_notify(f);
    assert_int_equal(outbox_count(f), 1);
    f->default_status = 200;
    open_notify(f);
    want_delivered = 1;
    assert_true(run_until(f, delivered_enough, 5000));
    struct recv *r = &f->recv[f->n_recv - 1];
    assert_string_equal(r->target, "/dns");
    assert_string_equal(r->event, "dns_record_removable");
    assert_string_equal(r->body, rem);
    /* no request was sent after the cancel but the removal's */
    for (size_t i = seen; i < f->n_recv; i++)
        assert_string_equal(f->recv[i].event, "dns_record_removable");
    free(req);
    free(rem);
    close_notify(f);
    free(solver_cfg.url);
}

static bool one_delivered(struct fx *f)
{
    return stats(f).delivered >= 1 && stats(f).pending == 0;
}

static void test_without_state_dir_nothing_is_written(void **state)
{
    struct fx *f = *state;
    struct stat st;

    add_target(f, "ops", "/hook", true, CFG_EVENT_ALL);
    f->closed = 0;
    assert_int_equal(notify_open(&f->loop, f->http, NULL, &f->cfg, &f->opts, &f->n), 0);
    free(emit(f, NOTIFY_EV_ISSUED, "www", 1));
    assert_true(run_until(f, one_delivered, 5000));
    assert_int_equal(f->n_recv, 1);
    assert_null(f->recv[0].file);
    char *p = xasprintf("%s/outbox", f->dir);
    assert_int_equal(stat(p, &st), -1); /* no outbox anywhere */
    free(p);
    close_notify(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivery_signed_persisted_then_removed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_retries_until_2xx_with_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_is_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_after_failed_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_with_request_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_distinct_events_two_targets_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gives_up_into_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscription_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_recovers_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_far_future_attempt_is_clamped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_secret_never_sends_unsigned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_waits_for_deliveries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_leaves_later_retries_in_the_outbox, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_drain_times_out_and_close_silences_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_idle_and_emit_after_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_solver_gets_only_what_is_addressed_to_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_solver_request_retried_reported_and_cancelled, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_without_state_dir_nothing_is_written, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
