/* The control socket server on a real loop with fake handlers. The loop
 * runs on the test thread; a client thread speaks to it with blocking
 * sockets (ctl_request, or raw bytes for malformed input) and ends the
 * test through a uv_async_t that closes the server. Results are checked
 * after uv_run returns, and every test ends with uv_loop_close() == 0. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "reactor/control.h"
#include "reactor/metrics.h"
#include "util/err.h"
#include "util/log.h"

#define NCONC 200

enum reload_mode { RELOAD_OK, RELOAD_INVALID, RELOAD_LATER, RELOAD_NEVER };

struct env;
typedef void (*client_fn)(struct env *e);

struct env {
    uv_loop_t loop;
    struct control *srv;
    struct control_opts opts;
    struct control_handlers h;
    uv_async_t done;
    pthread_t th;
    client_fn client;
    char dir[64];
    char path[128];
    int closed;
    /* handler bookkeeping (loop thread) */
    int status_calls, renew_calls, reload_calls, metrics_calls, dry_calls;
    char dry_names[300];
    char renew_name[300];
    bool renew_force, renew_deploy_only;
    enum reload_mode reload_mode;
    uv_timer_t later;
    bool later_init;
    control_reply_cb pending_cb;
    void *pending_arg;
    /* streamed answers (loop thread) */
    int sources, sources_freed;
    size_t stream_made_min; /* the least made by a source when freed */
    /* client results (client thread; read after join) */
    int failures;
    char msg[512];
};

/* ---- fake handlers */

static int h_status(void *arg, json_t **out)
{
    struct env *e = arg;

    e->status_calls++;
    *out = json_pack("{s:[{s:s,s:s,s:I,s:I,s:s,s:n}]}", "certificates", "name", "www", "state",
                     "valid", "not_after", (json_int_t)1767225600, "next_renewal",
                     (json_int_t)1764633600, "reason", "a third of the lifetime remaining",
                     "last_error");
    return 0;
}

static int h_cert(void *arg, const char *name, json_t **out)
{
    (void)arg;
    if (strcmp(name, "www") != 0)
        return -ENOENT;
    *out = json_pack("{s:s,s:s}", "name", "www", "state", "valid");
    return 0;
}

static int h_renew(void *arg, const char *name, bool force, bool deploy_only, bool new_key,
                   char **err)
{
    (void)new_key;
    struct env *e = arg;

    e->renew_calls++;
    snprintf(e->renew_name, sizeof(e->renew_name), "%s", name);
    e->renew_force = force;
    e->renew_deploy_only = deploy_only;
    if (strcmp(name, "www") == 0)
        return 0;
    if (strcmp(name, "busy") == 0) {
        *err = strdup("busy: an order is in flight");
        return -EBUSY;
    }
    return -ENOENT;
}

static void later_fire(uv_timer_t *t)
{
    struct env *e = t->data;
    control_reply_cb cb = e->pending_cb;

    e->pending_cb = NULL;
    cb(e->pending_arg, 0, "reloaded later: 2 certificates", NULL, 0);
}

static void h_reload(void *arg, control_reply_cb cb, void *cb_arg)
{
    struct env *e = arg;
    static const char *const lines[] = {
        "certloop.toml:3:7: error: certificate.www.key: expected ec-p256, ec-p384, rsa2048, "
        "rsa3072 or rsa4096",
        "certloop.toml:9:1: error: ca.x: unknown key 'directry'",
    };

    e->reload_calls++;
    switch (e->reload_mode) {
    case RELOAD_OK:
        cb(cb_arg, 0, "reloaded: 1 certificate", NULL, 0);
        break;
    case RELOAD_INVALID:
        cb(cb_arg, ERR_CONFIG, NULL, lines, 2);
        break;
    case RELOAD_LATER:
    case RELOAD_NEVER:
        if (e->pending_cb != NULL) /* one at a time: the older one is answered now */
            e->pending_cb(e->pending_arg, 0, "superseded", NULL, 0);
        e->pending_cb = cb;
        e->pending_arg = cb_arg;
        if (e->reload_mode == RELOAD_LATER)
            uv_timer_start(&e->later, later_fire, 50, 0);
        break;
    }
}

/* "www" runs, "busy" is refused, "nope" cannot start, else one fails */
static void h_dry_run(void *arg, const char *const *names, size_t n, control_dry_run_cb cb,
                      void *cb_arg)
{
    struct env *e = arg;
    static const char *const lines[] = {"no certificate named 'nope' in certloop.toml"};

    e->dry_calls++;
    e->dry_names[0] = '\0';
    for (size_t i = 0; i < n; i++)
        snprintf(e->dry_names + strlen(e->dry_names), sizeof(e->dry_names) - strlen(e->dry_names),
                 "%s%s", i > 0 ? "," : "", names[i]);
    if (n == 1 && strcmp(names[0], "busy") == 0)
        cb(cb_arg, -EBUSY, 0, NULL, "a dry run is already running in the daemon", NULL, 0);
    else if (n == 1 && strcmp(names[0], "nope") == 0)
        cb(cb_arg, ERR_CONFIG, 0, NULL, NULL, lines, 1);
    else if (n == 1 && strcmp(names[0], "www") == 0)
        cb(cb_arg, 0, 0, "www: issued, expires 2027-01-01 00:00 UTC\n", NULL, NULL, 0);
    else
        cb(cb_arg, 0, 1, "www: issued\nbad: failed: connection refused\n", NULL, NULL, 0);
}

static int h_metrics(void *arg, struct buf *out)
{
    struct env *e = arg;
    struct metrics_cert c = {.name = "www", .not_after = 1767225600, .renewals_ok = 2};
    struct metrics_snapshot s = {.certs = &c, .n_certs = 1, .orders_in_flight = 1};

    e->metrics_calls++;
    return metrics_write(&s, out);
}

/* A streamed status: STREAM_LINES lines of 64 bytes (3.2 MB, more than a
 * unix socket holds), made as the server asks. */
#define STREAM_LINES 50000

struct fake_src {
    struct env *e;
    int line;
    size_t made;
};

static void stream_line(char out[80], int i)
{
    snprintf(out, 80, "%06d abcdefghijklmnopqrstuvwxyz abcdefghijklmnopqrstuvwxyz 01\n", i);
}

static int src_next(void *arg, struct buf *out, size_t want)
{
    struct fake_src *f = arg;
    size_t stop = out->len + want;
    char l[80];

    while (out->len < stop && f->line < STREAM_LINES) {
        stream_line(l, f->line++);
        buf_append(out, l, 64);
        f->made += 64;
    }
    return f->line == STREAM_LINES ? 1 : 0;
}

static void src_free(void *arg)
{
    struct fake_src *f = arg;

    f->e->sources_freed++;
    if (f->e->stream_made_min == 0 || f->made < f->e->stream_made_min)
        f->e->stream_made_min = f->made;
    free(f);
}

static int h_status_stream(void *arg, struct body_src *out)
{
    struct env *e = arg;
    struct fake_src *f = calloc(1, sizeof(*f));

    f->e = e;
    e->sources++;
    *out = (struct body_src){.next = src_next, .free = src_free, .arg = f};
    return 0;
}

/* ---- harness */

static void server_closed(void *arg)
{
    struct env *e = arg;

    e->closed++;
}

static void on_done(uv_async_t *a)
{
    struct env *e = a->data;

    if (e->pending_cb != NULL) {
        /* a late answer after the client gave up: dropped without harm */
        control_reply_cb cb = e->pending_cb;
        e->pending_cb = NULL;
        cb(e->pending_arg, 0, "too late", NULL, 0);
    }
    control_close(e->srv, server_closed, e);
    uv_close((uv_handle_t *)a, NULL);
    if (e->later_init)
        uv_close((uv_handle_t *)&e->later, NULL);
}

static void *client_main(void *arg)
{
    struct env *e = arg;

    e->client(e);
    uv_async_send(&e->done);
    return NULL;
}

static void setup_env(struct env *e)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/certloop-ctl-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->path, sizeof(e->path), "%s/run/control.sock", e->dir); /* run/ is created */
    assert_int_equal(uv_loop_init(&e->loop), 0);
    e->h = (struct control_handlers){.status = h_status,
                                     .renew = h_renew,
                                     .reload = h_reload,
                                     .metrics = h_metrics,
                                     .cert = h_cert,
                                     .dry_run = h_dry_run,
                                     .arg = e};
    e->opts = (struct control_opts){.loop = &e->loop, .path = e->path, .h = &e->h};
}

static void run_env(struct env *e, client_fn fn)
{
    assert_int_equal(control_open(&e->opts, &e->srv), 0);
    assert_int_equal(uv_async_init(&e->loop, &e->done, on_done), 0);
    e->done.data = e;
    assert_int_equal(uv_timer_init(&e->loop, &e->later), 0);
    e->later.data = e;
    e->later_init = true;
    e->client = fn;
    assert_int_equal(pthread_create(&e->th, NULL, client_main, e), 0);
    assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
    pthread_join(e->th, NULL);
    assert_int_equal(e->closed, 1);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    if (e->failures > 0)
        fail_msg("%d client check(s) failed; first: %s", e->failures, e->msg);
}

static void teardown_env(struct env *e)
{
    char sub[128];

    snprintf(sub, sizeof(sub), "%s/run", e->dir);
    rmdir(sub);
    rmdir(e->dir);
}

/* client-side checks cannot use cmocka's asserts on another thread */
static void check(struct env *e, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void check(struct env *e, bool ok, const char *fmt, ...)
{
    va_list ap;

    if (ok)
        return;
    if (e->failures++ == 0) {
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
    }
}

/* one request via the real client; returns the status or -1 */
static int req(struct env *e, const char *method, const char *target, const char *body,
               struct ctl_response *r)
{
    char *err = NULL;
    int rc = ctl_request(e->path, method, target, body, 5000, r, &err);

    if (rc < 0) {
        check(e, false, "%s %s: %s", method, target, err);
        free(err);
        return -1;
    }
    return r->status;
}

static int req_status(struct env *e, const char *method, const char *target, const char *body,
                      char *out, size_t n)
{
    struct ctl_response r = {0};
    int st = req(e, method, target, body, &r);

    if (out != NULL)
        snprintf(out, n, "%s", r.body != NULL ? r.body : "");
    ctl_response_fini(&r);
    return st;
}

static int raw_connect(struct env *e)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memcpy(sa.sun_path, e->path, strlen(e->path) + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        check(e, false, "connect: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads until EOF (or 5 s); returns bytes read into out (NUL-terminated). */
static size_t read_all(int fd, char *out, size_t n, int timeout_ms)
{
    size_t len = 0;

    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0)
            break;
        ssize_t r = read(fd, out + len, n - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len + 1 >= n)
            break;
    }
    out[len] = '\0';
    return len;
}

/* sends raw bytes and returns the status code of the answer, 0 if none */
static int raw_exchange(struct env *e, const char *data, size_t len, char *resp, size_t n)
{
    int fd = raw_connect(e);
    int status = 0;

    if (fd < 0)
        return -1;
    if (len > 0)
        (void)!send(fd, data, len, MSG_NOSIGNAL);
    size_t got = read_all(fd, resp, n, 5000);
    if (got >= 12 && memcmp(resp, "HTTP/1.1 ", 9) == 0)
        status = atoi(resp + 9);
    close(fd);
    return status;
}

/* ---- tests */

static void client_routes(struct env *e)
{
    char body[4096];
    struct ctl_response r = {0};
    int st;

    st = req(e, "GET", "/v1/status", NULL, &r);
    check(e, st == 200, "status: %d", st);
    check(e, r.content_type != NULL && strcmp(r.content_type, "application/json") == 0,
          "status content type %s", r.content_type);
    json_t *j = json_loads(r.body != NULL ? r.body : "", 0, NULL);
    json_t *c0 = json_array_get(json_object_get(j, "certificates"), 0);
    check(e,
          c0 != NULL && strcmp(json_string_value(json_object_get(c0, "name")), "www") == 0 &&
              json_integer_value(json_object_get(c0, "not_after")) == 1767225600,
          "status body: %s", r.body);
    json_decref(j);
    ctl_response_fini(&r);

    st = req_status(e, "POST", "/v1/certificates/www/renew",
                    "{\"force\":true,\"deploy_only\":true}", body, sizeof(body));
    check(e, st == 202 && strstr(body, "\"ok\": true") != NULL, "renew www: %d %s", st, body);
    st = req_status(e, "POST", "/v1/certificates/nope/renew", NULL, body, sizeof(body));
    check(e, st == 404 && strstr(body, "no certificate named 'nope'") != NULL, "renew nope: %d %s",
          st, body);
    st = req_status(e, "POST", "/v1/certificates/busy/renew", "", body, sizeof(body));
    check(e, st == 409 && strstr(body, "an order is in flight") != NULL, "renew busy: %d %s", st,
          body);
    st = req_status(e, "POST", "/v1/certificates/www/renew", "[1]", body, sizeof(body));
    check(e, st == 400, "renew with an array body: %d", st);
    st = req_status(e, "POST", "/v1/certificates/www/renew", "{\"force\":1}", body, sizeof(body));
    check(e, st == 400, "renew with force=1: %d", st);
    st = req_status(e, "POST", "/v1/certificates/www/renew", "{not json", body, sizeof(body));
    check(e, st == 400, "renew with broken JSON: %d", st);
    st = req_status(e, "POST", "/v1/certificates//renew", NULL, body, sizeof(body));
    check(e, st == 404, "renew without a name: %d", st);
    st = req_status(e, "POST", "/v1/certificates/a%2Fb/renew", NULL, body, sizeof(body));
    check(e, st == 404, "renew with a slash in the name: %d", st);
    st = req_status(e, "GET", "/v1/certificates/www/renew", NULL, body, sizeof(body));
    check(e, st == 405, "GET renew: %d", st);
    st = req_status(e, "POST", "/v1/status", NULL, body, sizeof(body));
    check(e, st == 405, "POST status: %d", st);
    st = req_status(e, "GET", "/v1/reload", NULL, body, sizeof(body));
    check(e, st == 405, "GET reload: %d", st);
    st = req_status(e, "GET", "/v1/certificates/w%77w", NULL, body, sizeof(body));
    check(e, st == 200 && strstr(body, "\"name\": \"www\"") != NULL, "one certificate: %d %s", st,
          body);
    st = req_status(e, "GET", "/v1/certificates/nope", NULL, body, sizeof(body));
    check(e, st == 404 && strstr(body, "nope") != NULL, "an unknown certificate: %d %s", st, body);
    st = req_status(e, "POST", "/v1/certificates/www", NULL, body, sizeof(body));
    check(e, st == 405, "POST one certificate: %d", st);
    st = req_status(e, "GET", "/v2/nothing", NULL, body, sizeof(body));
    check(e, st == 404 && strstr(body, "\"error\"") != NULL, "unknown route: %d %s", st, body);
    st = req_status(e, "GET", "/v1/status?x=1", NULL, body, sizeof(body));
    check(e, st == 200, "status with a query: %d", st);

    st = req(e, "GET", "/metrics", NULL, &r);
    check(e, st == 200 && r.content_type != NULL && strncmp(r.content_type, "text/plain", 10) == 0,
          "metrics: %d %s", st, r.content_type);
    check(e,
          r.body != NULL &&
              strstr(r.body, "certloop_certificate_not_after_timestamp_seconds{name=\"www\"} "
                             "1767225600\n") != NULL,
          "metrics body: %s", r.body);
    ctl_response_fini(&r);

    st = req_status(e, "POST", "/v1/reload", NULL, body, sizeof(body));
    check(e, st == 200 && strstr(body, "reloaded: 1 certificate") != NULL, "reload: %d %s", st,
          body);
}

static void test_routes(void **state)
{
    struct env e;

    (void)state;
    setup_env(&e);
    run_env(&e, client_routes);
    assert_int_equal(e.status_calls, 2);
    assert_int_equal(e.metrics_calls, 1);
    assert_int_equal(e.reload_calls, 1);
    /* www, nope and busy reached the handler; malformed bodies, empty
     * names and wrong methods did not */
    assert_int_equal(e.renew_calls, 3);
    assert_string_equal(e.renew_name, "busy");
    teardown_env(&e);
}

static void client_dry_run(struct env *e)
{
    struct ctl_response r = {0};
    char body[1024];
    int st = req(e, "POST", "/v1/dry-run", "{\"names\":[\"www\"]}", &r);
    json_t *j = json_loads(r.body != NULL ? r.body : "", 0, NULL);

    check(e,
          st == 200 && json_is_true(json_object_get(j, "ok")) &&
              json_integer_value(json_object_get(j, "failed")) == 0 &&
              strstr(json_string_value(json_object_get(j, "summary")), "www: issued") != NULL,
          "dry run: %d %s", st, r.body);
    json_decref(j);
    ctl_response_fini(&r);
    st = req_status(e, "POST", "/v1/dry-run", NULL, body, sizeof(body));
    check(e, st == 200 && strstr(body, "\"failed\": 1") != NULL, "dry run of all: %d %s", st, body);
    st = req_status(e, "POST", "/v1/dry-run", "{\"names\":[\"busy\"]}", body, sizeof(body));
    check(e, st == 409 && strstr(body, "already running") != NULL, "busy dry run: %d %s", st, body);
    st = req_status(e, "POST", "/v1/dry-run", "{\"names\":[\"nope\"]}", body, sizeof(body));
    check(e, st == 422 && strstr(body, "no certificate named 'nope'") != NULL,
          "dry run that cannot start: %d %s", st, body);
    /* refused before the handler */
    st = req_status(e, "POST", "/v1/dry-run", "{\"names\":\"www\"}", body, sizeof(body));
    check(e, st == 400, "names not an array: %d", st);
    st = req_status(e, "POST", "/v1/dry-run", "{\"names\":[\"a b\"]}", body, sizeof(body));
    check(e, st == 400, "a name with a space: %d", st);
    st = req_status(e, "POST", "/v1/dry-run", "{\"force\":true}", body, sizeof(body));
    check(e, st == 400, "another member: %d", st);
    st = req_status(e, "GET", "/v1/dry-run", NULL, body, sizeof(body));
    check(e, st == 405, "GET dry-run: %d", st);
}

static void test_dry_run(void **state)
{
    struct env e;

    (void)state;
    setup_env(&e);
    run_env(&e, client_dry_run);
    assert_int_equal(e.dry_calls, 4);
    assert_string_equal(e.dry_names, "nope");
    teardown_env(&e);
}

static void client_renew_flags(struct env *e)
{
    int st = req_status(e, "POST", "/v1/certificates/w%77w/renew",
                        "{\"force\":true,\"deploy_only\":false,\"extra\":1}", NULL, 0);

    check(e, st == 202, "renew w%%77w: %d", st);
}

static void test_renew_flags_and_decoding(void **state)
{
    struct env e;

    (void)state;
    setup_env(&e);
    run_env(&e, client_renew_flags);
    assert_int_equal(e.renew_calls, 1);
    assert_string_equal(e.renew_name, "www");
    assert_true(e.renew_force);
    assert_false(e.renew_deploy_only);
    teardown_env(&e);
}

static void client_reload_invalid(struct env *e)
{
    struct ctl_response r = {0};
    int st = req(e, "POST", "/v1/reload", NULL, &r);
    json_t *j = json_loads(r.body != NULL ? r.body : "", 0, NULL);
    json_t *errs = json_object_get(j, "errors");

    check(e, st == 422, "invalid reload: %d", st);
    check(e,
          json_is_false(json_object_get(j, "ok")) && json_array_size(errs) == 2 &&
              strstr(json_string_value(json_array_get(errs, 1)), "unknown key 'directry'"),
          "invalid reload body: %s", r.body);
    json_decref(j);
    ctl_response_fini(&r);
}

static void test_reload_invalid_config(void **state)
{
    struct env e;

    (void)state;
    setup_env(&e);
    e.reload_mode = RELOAD_INVALID;
    run_env(&e, client_reload_invalid);
    assert_int_equal(e.reload_calls, 1);
    teardown_env(&e);
}

static void client_reload_later(struct env *e)
{
    char body[1024];
    int st = req_status(e, "POST", "/v1/reload", NULL, body, sizeof(body));

    check(e, st == 200 && strstr(body, "reloaded later") != NULL, "async reload: %d %s", st, body);
}

static void test_reload_async_reply(void **state)
{
    struct env e;

    (void)state;
    setup_env(&e);
    e.reload_mode = RELOAD_LATER;
    run_env(&e, client_reload_later);
    teardown_env(&e);
}

static void client_reload_never(struct env *e)
{
    char body[1024];
    int st = req_status(e, "POST", "/v1/reload", NULL, body, sizeof(body));

    check(e, st == 504, "reload without an answer: %d %s", st, body);
}

/* The handler never answers in time: 504, and its late answer (on_done) is
 * dropped without touching the freed connection. */
static void test_reload_reply_timeout(void **state)
{
    struct env e;

    (void)state;
    setup_env(&e);
    e.reload_mode = RELOAD_NEVER;
    e.opts.reply_timeout_ms = 150;
    run_env(&e, client_reload_never);
    teardown_env(&e);
}

static void client_malformed(struct env *e)
{
    static char big[40000];
    char resp[8192];
    int st;

    st = raw_exchange(e, "GARBAGE\r\n\r\n", 11, resp, sizeof(resp));
    check(e, st == 400, "garbage: %d", st);
    check(e,
          strstr(resp, "Connection: close\r\n") != NULL && strstr(resp, "Content-Length: ") != NULL,
          "error answer head: %s", resp);
    st = raw_exchange(e, "\x01\x02\x03\xff\r\n\r\n", 8, resp, sizeof(resp));
    check(e, st == 400, "binary junk: %d", st);
    st = raw_exchange(e, "GET /v1/status HTTP/2.0\r\n\r\n", 27, resp, sizeof(resp));
    check(e, st == 505, "HTTP/2.0: %d", st);
    const char *nocolon = "GET /v1/status HTTP/1.1\r\nHost localhost\r\n\r\n";
    st = raw_exchange(e, nocolon, strlen(nocolon), resp, sizeof(resp));
    check(e, st == 400, "field without a colon: %d", st);
    const char *fold = "GET /v1/status HTTP/1.1\r\nX: a\r\n b\r\n\r\n";
    st = raw_exchange(e, fold, strlen(fold), resp, sizeof(resp));
    check(e, st == 400, "obsolete folding: %d", st);
    const char *te = "POST /v1/reload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    st = raw_exchange(e, te, strlen(te), resp, sizeof(resp));
    check(e, st == 400, "chunked: %d", st);
    const char *cl2 =
        "POST /v1/reload HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
    st = raw_exchange(e, cl2, strlen(cl2), resp, sizeof(resp));
    check(e, st == 400, "two Content-Lengths: %d", st);
    const char *clbad = "POST /v1/reload HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
    st = raw_exchange(e, clbad, strlen(clbad), resp, sizeof(resp));
    check(e, st == 400, "negative Content-Length: %d", st);
    const char *bigbody = "POST /v1/reload HTTP/1.1\r\nContent-Length: 100000\r\n\r\n";
    st = raw_exchange(e, bigbody, strlen(bigbody), resp, sizeof(resp));
    check(e, st == 413, "body of 100000: %d", st);
    /* a head past 16 KiB without its end */
    memcpy(big, "GET /v1/status HTTP/1.1\r\n", 25);
    for (size_t i = 25; i + 20 <= sizeof(big); i += 20)
        memcpy(big + i, "X-Filler: 12345678\r\n", 20);
    st = raw_exchange(e, big, 20000, resp, sizeof(resp));
    check(e, st == 413, "head of 20000 bytes: %d", st);
    /* a body exactly at the cap is fine; one byte more is not */
    const char *lf = "GET /v1/status HTTP/1.1\nHost: x\n\n";
    st = raw_exchange(e, lf, strlen(lf), resp, sizeof(resp));
    check(e, st == 200, "LF-only lines: %d", st);
    /* nothing at all, then EOF: no answer, no crash */
    st = raw_exchange(e, "", 0, resp, 1);
    (void)st;
}

static void test_malformed_requests(void **state)
{
    struct env e;

    (void)state;
    setup_env(&e);
    e.opts.request_timeout_ms = 300; /* the empty connection ends by timeout */
    run_env(&e, client_malformed);
    assert_int_equal(e.reload_calls, 0); /* none of them reached a handler */
    assert_int_equal(e.status_calls, 1);
    teardown_env(&e);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void client_slow(struct env *e)
{
    char resp[4096];
    int fd = raw_connect(e);

    if (fd < 0)
        return;
    int64_t t0 = mono_ms();
    (void)!send(fd, "GET /v1/sta", 11, MSG_NOSIGNAL);
    size_t n = read_all(fd, resp, sizeof(resp), 5000);
    int64_t dt = mono_ms() - t0;
    check(e, n > 12 && strncmp(resp, "HTTP/1.1 408 ", 13) == 0, "slow client got: %s", resp);
    check(e, dt >= 150 && dt < 3000, "closed after %lld ms", (long long)dt);
    close(fd);
    /* a client that never sends a byte is dropped the same way */
    fd = raw_connect(e);
    n = read_all(fd, resp, sizeof(resp), 5000);
    check(e, n > 12 && strncmp(resp, "HTTP/1.1 408 ", 13) == 0, "idle client got: %s", resp);
    close(fd);
}

static void test_slow_client_times_out(void **state)
{
    struct env e;

    (void)state;
    setup_env(&e);
    e.opts.request_timeout_ms = 200;
    run_env(&e, client_slow);
    teardown_env(&e);
}

static void client_concurrent(struct env *e)
{
    static int fds[NCONC];
    static const char rq[] = "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n";
    char resp[4096];
    int ok = 0;

    for (int i = 0; i < NCONC; i++)
        fds[i] = raw_connect(e);
    /* all 200 are open at once before any request is sent */
    for (int i = 0; i < NCONC; i++) {
        if (fds[i] >= 0)
            (void)!send(fds[i], rq, sizeof(rq) - 1, MSG_NOSIGNAL);
    }
    for (int i = 0; i < NCONC; i++) {
        if (fds[i] < 0)
            continue;
        size_t n = read_all(fds[i], resp, sizeof(resp), 5000);
        if (n > 12 && strncmp(resp, "HTTP/1.1 200 ", 13) == 0 && strstr(resp, "\"www\"") != NULL)
            ok++;
        close(fds[i]);
    }
    check(e, ok == NCONC, "%d of %d concurrent clients got 200", ok, NCONC);
}

static void test_200_concurrent_clients(void **state)
{
    struct env e;

    (void)state;
    setup_env(&e);
    run_env(&e, client_concurrent);
    assert_int_equal(e.status_calls, NCONC);
    teardown_env(&e);
}

static void client_cap(struct env *e)
{
    int idle[4];
    char resp[4096];

    for (int i = 0; i < 4; i++)
        idle[i] = raw_connect(e);
    /* give the loop a moment to accept the idle ones */
    poll(NULL, 0, 100);
    int st = raw_exchange(e, "GET /v1/status HTTP/1.1\r\n\r\n", 27, resp, sizeof(resp));
    check(e, st == 503, "fifth connection: %d", st);
    for (int i = 0; i < 4; i++)
        close(idle[i]);
    poll(NULL, 0, 100);
    st = raw_exchange(e, "GET /v1/status HTTP/1.1\r\n\r\n", 27, resp, sizeof(resp));
    check(e, st == 200, "after the idle ones left: %d", st);
}

static void test_connection_cap(void **state)
{
    struct env e;

    (void)state;
    setup_env(&e);
    e.opts.max_conns = 4;
    run_env(&e, client_cap);
    teardown_env(&e);
}

static void client_leaves_early(struct env *e)
{
    static const char st[] = "GET /v1/status HTTP/1.1\r\n\r\n";
    static const char rl[] = "POST /v1/reload HTTP/1.1\r\n\r\n";
    char body[1024];

    for (int i = 0; i < 20; i++) {
        int fd = raw_connect(e);
        if (fd < 0)
            return;
        (void)!send(fd, i % 2 ? rl : st, i % 2 ? sizeof(rl) - 1 : sizeof(st) - 1, MSG_NOSIGNAL);
        close(fd); /* gone before the answer */
    }
    poll(NULL, 0, 200); /* the delayed reload answers find nobody */
    int code = req_status(e, "GET", "/v1/status", NULL, body, sizeof(body));
    check(e, code == 200, "status after clients left early: %d", code);
}

/* Clients that hang up before their answer (sync or async) do not disturb
 * the server. */
static void test_clients_leaving_early(void **state)
{
    struct env e;

    (void)state;
    setup_env(&e);
    e.reload_mode = RELOAD_LATER;
    run_env(&e, client_leaves_early);
    teardown_env(&e);
}

static void nothing(struct env *e)
{
    (void)e;
}

/* Mode 0660 even under a permissive umask; a stale socket is replaced; a
 * live one or a regular file is refused; the file goes away on close. */
static void test_socket_file(void **state)
{
    struct env e;
    struct stat st;
    struct control *second = NULL;
    mode_t old = umask(0);

    (void)state;
    setup_env(&e);
    /* a stale socket: bound, never listening, its process gone */
    char run[128];
    snprintf(run, sizeof(run), "%s/run", e.dir);
    assert_int_equal(mkdir(run, 0700), 0);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, e.path, strlen(e.path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    assert_int_equal(lstat(e.path, &st), 0);
    ino_t stale_ino = st.st_ino;

    assert_int_equal(control_open(&e.opts, &e.srv), 0);
    umask(old);
    assert_int_equal(lstat(e.path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0660);
    (void)stale_ino; /* inode numbers are reused: ask the socket instead */
    int probe = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(probe, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(probe);
    /* a second server on the same path finds the first one alive */
    assert_int_equal(control_open(&e.opts, &second), -EADDRINUSE);
    assert_int_equal(lstat(e.path, &st), 0); /* and left it alone */
    control_close(e.srv, server_closed, &e);
    assert_int_equal(uv_run(&e.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(e.closed, 1);
    assert_int_equal(lstat(e.path, &st), -1); /* removed on close */

    /* a regular file in the way is never removed */
    FILE *f = fopen(e.path, "w");
    assert_non_null(f);
    fputs("precious", f);
    fclose(f);
    assert_int_equal(control_open(&e.opts, &second), -EEXIST);
    assert_int_equal(lstat(e.path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    unlink(e.path);
    assert_int_equal(uv_run(&e.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&e.loop), 0);
    (void)nothing;
    teardown_env(&e);
}

/* Issue 17 item 6: every missing parent of the socket is created (only one
 * was); a parent that cannot be created fails with the error logged naming
 * that directory. */
static void test_socket_parents_created(void **state)
{
    struct env e;
    struct stat st;
    char deep[192], path[256], blocker[192];

    (void)state;
    setup_env(&e);
    snprintf(deep, sizeof(deep), "%s/a/b/c", e.dir);
    snprintf(path, sizeof(path), "%s/control.sock", deep);
    e.opts.path = path;
    assert_int_equal(control_open(&e.opts, &e.srv), 0);
    assert_int_equal(stat(deep, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    control_close(e.srv, server_closed, &e);
    assert_int_equal(uv_run(&e.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(e.closed, 1);

    /* a regular file where a directory should be: ENOTDIR, nothing bound */
    snprintf(blocker, sizeof(blocker), "%s/file", e.dir);
    FILE *f = fopen(blocker, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/file/sub/control.sock", e.dir);
    struct control *srv = NULL;
    assert_int_equal(control_open(&e.opts, &srv), -ENOTDIR);
    assert_null(srv);
    assert_int_equal(uv_run(&e.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&e.loop), 0);
    unlink(blocker);
    for (const char *d = deep; strlen(d) > strlen(e.dir); d = deep) {
        rmdir(deep);
        *strrchr(deep, '/') = '\0';
    }
    teardown_env(&e);
}

/* The CLI's view of a missing daemon: a clear message, no hang. */
static void test_client_no_daemon(void **state)
{
    struct ctl_response r = {0};
    char *err = NULL;
    char path[128];
    char dir[] = "/tmp/certloop-ctl-XXXXXX";

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/none.sock", dir);
    assert_int_equal(ctl_request(path, "GET", "/v1/status", NULL, 1000, &r, &err), -ENOENT);
    assert_non_null(strstr(err, "no daemon answers on "));
    free(err);
    err = NULL;
    /* a socket nobody listens on */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(ctl_request(path, "GET", "/v1/status", NULL, 1000, &r, &err), -ECONNREFUSED);
    char want[256];
    snprintf(want, sizeof(want), "no daemon answers on %s: Connection refused", path);
    assert_string_equal(err, want);
    free(err);
    err = NULL;
    /* listening but never answering: the deadline holds */
    assert_int_equal(listen(fd, 4), 0);
    int64_t t0 = mono_ms();
    assert_int_equal(ctl_request(path, "GET", "/v1/status", NULL, 300, &r, &err), ERR_TIMEOUT);
    assert_true(mono_ms() - t0 < 2000);
    assert_non_null(strstr(err, "no answer within 300 ms"));
    free(err);
    close(fd);
    unlink(path);
    rmdir(dir);
}

#define TXT(s) (s), strlen(s)

/* The status document the manager builds, and the CLI's table of it. */
static void test_status_document_and_table(void **state)
{
    const char *doms[] = {"example.org", "www.example.org"};
    json_t *hist = json_array();
    json_array_append_new(hist, json_pack("{s:I,s:s}", "time", (json_int_t)5, "event", "issued"));
    struct control_cert_status certs[] = {
        {.name = "www",
         .state = "valid",
         .domains = doms,
         .n_domains = 2,
         .ca = "le",
         .not_before = 1759449600,
         .not_after = 1767225600,
         .next_renewal = 1764633600,
         .reason = "a third of the lifetime remaining",
         .last_success_at = 1759449700,
         .ari_start = 1764000000,
         .ari_end = 1764086400,
         .history = hist},
        {.name = "api",
         .state = "retrying",
         .next_renewal = 1764000000,
         .reason = "backoff after 3 failures",
         .last_error = "name=api.test: authorization invalid\n\xff",
         .last_error_at = 1763990000,
         .consecutive_failures = 3,
         .paused = true},
    };
    json_t *doc = control_status_json(certs, 2, 1763999999, 4);
    char *text;
    char *out = NULL;
    size_t outlen = 0;

    (void)state;
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "now")), 1763999999);
    assert_int_equal(json_integer_value(json_object_get(doc, "orders_in_flight")), 4);
    json_t *www = json_array_get(json_object_get(doc, "certificates"), 0);
    json_t *api = json_array_get(json_object_get(doc, "certificates"), 1);
    assert_int_equal(json_array_size(json_object_get(www, "domains")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(www, "ari"), "end")),
                     1764086400);
    assert_true(json_is_null(json_object_get(json_object_get(www, "ari"), "explanation_url")));
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(www, "history"), 0), "event")),
                        "issued");
    assert_true(json_is_null(json_object_get(www, "last_error")));
    assert_true(json_is_null(json_object_get(api, "not_after")));
    assert_true(json_is_null(json_object_get(api, "ari")));
    assert_true(json_is_true(json_object_get(api, "paused")));
    assert_int_equal(json_array_size(json_object_get(api, "history")), 0);
    /* invalid UTF-8 in an error still gives a string */
    assert_non_null(strstr(json_string_value(json_object_get(api, "last_error")), "invalid\n?"));

    text = json_dumps(doc, 0);
    json_decref(doc);
    FILE *f = open_memstream(&out, &outlen);
    assert_int_equal(ctl_status_table(text, strlen(text), f), 0);
    fclose(f);
    free(text);
    assert_string_equal(out,
                        "NAME  STATE     NOT AFTER         NEXT RENEWAL      REASON/LAST ERROR\n"
                        "www   valid     2026-01-01 00:00  2025-12-02 00:00  a third of the "
                        "lifetime remaining\n"
                        "api   retrying  -                 2025-11-24 16:00  error: "
                        "name=api.test: authorization invalid.?\n");
    free(out);
    out = NULL;
    f = open_memstream(&out, &outlen);
    assert_int_equal(ctl_status_table(TXT("{\"certificates\":{}}"), f), ERR_PARSE);
    assert_int_equal(ctl_status_table(TXT("[]"), f), ERR_PARSE);
    assert_int_equal(ctl_status_table(TXT("{\"certificates\":[{\"state\":\"x\"}]}"), f), ERR_PARSE);
    assert_int_equal(ctl_status_table(TXT("{\"certificates\":[]}"), f), 0);
    fclose(f);
    assert_string_equal(out, "NAME  STATE  NOT AFTER  NEXT RENEWAL  REASON/LAST ERROR\n"
                             "(no certificates)\n");
    free(out);
}

/* The status document written piece by piece (GET /v1/status) is byte for
 * byte the dump of the whole tree, for 0, 1 and 3 certificates, with and
 * without a last member (the fleet), non-ASCII and escapes included. */
/* The whole streamed text, as a client must see it. */
static char *stream_text(void)
{
    char *t = malloc((size_t)STREAM_LINES * 64 + 1);

    for (int i = 0; i < STREAM_LINES; i++) {
        char l[80];
        stream_line(l, i);
        memcpy(t + (size_t)i * 64, l, 64);
    }
    t[(size_t)STREAM_LINES * 64] = '\0';
    return t;
}

static void client_streamed(struct env *e)
{
    char *want = stream_text();
    struct ctl_response r = {0};
    size_t cap = (size_t)STREAM_LINES * 64 + 4096;
    char *raw = malloc(cap);

    /* the CLI's client decodes the chunks */
    int st = req(e, "GET", "/v1/status", NULL, &r);
    check(e, st == 200 && r.body_len == strlen(want) && strcmp(r.body, want) == 0,
          "streamed status: %d, %zu bytes", st, r.body_len);
    ctl_response_fini(&r);

    /* HTTP/1.0 knows no chunks: the body ends with the connection */
    static const char rq10[] = "GET /v1/status HTTP/1.0\r\n\r\n";
    st = raw_exchange(e, rq10, sizeof(rq10) - 1, raw, cap);
    const char *body = strstr(raw, "\r\n\r\n");
    check(e,
          st == 200 && strstr(raw, "Transfer-Encoding") == NULL && body != NULL &&
              strcmp(body + 4, want) == 0,
          "HTTP/1.0 stream: %d", st);

    /* a reader that stalls holds one piece, not the answer, and the loop
     * answers other requests meanwhile; after the timeout it is dropped and
     * what it got has no last chunk */
    static const char rq11[] = "GET /v1/status HTTP/1.1\r\n\r\n";
    int fd = raw_connect(e);
    if (fd >= 0) {
        (void)!send(fd, rq11, sizeof(rq11) - 1, MSG_NOSIGNAL);
        char small[256];
        st = req_status(e, "POST", "/v1/certificates/www/renew", NULL, small, sizeof(small));
        check(e, st == 202, "renew during a stalled stream: %d", st);
        /* until the server has dropped it (its source freed: the third) */
        for (int i = 0; i < 500 && __atomic_load_n(&e->sources_freed, __ATOMIC_SEQ_CST) < 3; i++) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        size_t got = read_all(fd, raw, cap, 2000);
        check(e,
              got > 0 && got < (size_t)STREAM_LINES * 64 && strstr(raw, "chunked") != NULL &&
                  (got < 5 || memcmp(raw + got - 5, "0\r\n\r\n", 5) != 0),
              "stalled stream: %zu bytes", got);
        close(fd);
    }
    free(raw);
    free(want);
}

static void test_streamed_answer(void **state)
{
    struct env e;
    (void)state;

    setup_env(&e);
    e.h.status_stream = h_status_stream;
    e.opts.request_timeout_ms = 300;
    run_env(&e, client_streamed);
    teardown_env(&e);
    assert_int_equal(e.sources, 3);
    assert_int_equal(e.sources_freed, 3);
    assert_true(e.stream_made_min < (size_t)STREAM_LINES * 64 / 2); /* the stalled one */
    assert_int_equal(e.status_calls, 0);
}

static void test_status_written_piecewise(void **state)
{
    const char *doms[] = {"example.org", "b\xc3\xbc"
                                         "cher.example"};
    (void)state;
    for (size_t n = 0; n <= 3; n += (n == 1 ? 2 : 1)) {
        for (int with_extra = 0; with_extra < 2; with_extra++) {
            struct control_cert_status c[3], d[3];
            for (size_t i = 0; i < 3; i++) {
                memset(&c[i], 0, sizeof(c[i]));
                c[i].name = i == 1 ? "api" : "www";
                c[i].state = "valid";
                c[i].domains = doms;
                c[i].n_domains = i == 2 ? 0 : 2;
                c[i].not_after = 1767225600;
                c[i].reason = "a \"quoted\" reason\nwith a newline";
                c[i].ari_start = i == 0 ? 1764000000 : 0;
                c[i].ari_end = i == 0 ? 1764086400 : 0;
                c[i].persist_until = i == 1 ? 1800000000 : 0;
                d[i] = c[i];
                c[i].history = json_pack("[{s:I,s:s}]", "time", (json_int_t)5, "event", "issued");
                d[i].history = json_deep_copy(c[i].history);
            }
            json_t *doc = control_status_json(c, n, 1763999999, 2);
            json_t *extra =
                with_extra ? json_pack("{s:[],s:{s:i}}", "instances", "lag", "x", 1) : NULL;
            if (extra != NULL)
                json_object_set(doc, "fleet", extra);
            char *want = json_dumps(doc, JSON_INDENT(2) | JSON_ENSURE_ASCII);
            json_decref(doc);
            struct buf got = BUF_INIT(SIZE_MAX);
            control_status_begin(&got, 1763999999, 2);
            for (size_t i = 0; i < n; i++)
                control_status_cert(&got, i, control_cert_json(&d[i]));
            for (size_t i = n; i < 3; i++) {
                json_decref(c[i].history);
                json_decref(d[i].history);
            }
            control_status_end(&got, n, extra != NULL ? json_pack("{s:o}", "fleet", extra) : NULL);
            buf_append(&got, "", 1);
            size_t wl = strlen(want);
            assert_int_equal(got.len - 1, wl + 1);
            assert_memory_equal(got.data, want, wl);
            assert_int_equal(got.data[wl], '\n');
            free(want);
            buf_fini(&got);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_renew_flags_and_decoding),
        cmocka_unit_test(test_dry_run),
        cmocka_unit_test(test_reload_invalid_config),
        cmocka_unit_test(test_reload_async_reply),
        cmocka_unit_test(test_reload_reply_timeout),
        cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_slow_client_times_out),
        cmocka_unit_test(test_200_concurrent_clients),
        cmocka_unit_test(test_connection_cap),
        cmocka_unit_test(test_clients_leaving_early),
        cmocka_unit_test(test_socket_file),
        cmocka_unit_test(test_socket_parents_created),
        cmocka_unit_test(test_client_no_daemon),
        cmocka_unit_test(test_status_document_and_table),
        cmocka_unit_test(test_status_written_piecewise),
        cmocka_unit_test(test_streamed_answer),
    };

    signal(SIGPIPE, SIG_IGN); /* as the daemon does: a client may leave early */
    log_init();
    log_set_level(LOG_LVL_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
