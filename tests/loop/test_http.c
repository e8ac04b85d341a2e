/* Loop tests of the HTTP client (src/net/http.c) against the fake server in
 * tests/support, plus HTTPS against `openssl s_server` with a throwaway CA,
 * and unit tests of the Retry-After and Link parsers. Every test runs its
 * own uv loop dry and checks uv_loop_close() == 0. Only 127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fake_http.h"
#include "net/net.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

extern char **environ;

/* ---- harness ---- */

struct fx {
    uv_loop_t loop;
    struct http_client *client;
    struct fake_http *srv;
};

static void fx_open(struct fx *f, fake_http_handler_cb handler, void *arg)
{
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(http_client_open(&f->loop, &f->client), 0);
    f->srv = NULL;
    if (handler != NULL)
        assert_int_equal(fake_http_start(&f->loop, handler, arg, &f->srv), 0);
}

/* Closes whatever is still open, runs the loop dry and checks that every
 * handle is gone. */
static void fx_close(struct fx *f)
{
    if (f->client != NULL)
        http_client_close(f->client);
    f->client = NULL;
    fake_http_close(f->srv);
    f->srv = NULL;
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

struct later {
    uv_timer_t t;
    void (*fn)(void *);
    void *arg;
};

static void later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void later_fired(uv_timer_t *t)
{
    struct later *l = t->data;
    l->fn(l->arg);
    uv_close((uv_handle_t *)&l->t, later_closed);
}

/* Runs fn(arg) on the loop after ms milliseconds. */
static void run_later(uv_loop_t *loop, uint64_t ms, void (*fn)(void *), void *arg)
{
    struct later *l = xcalloc(1, sizeof(*l));
    l->fn = fn;
    l->arg = arg;
    uv_timer_init(loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, later_fired, ms, 0);
}

/* What a callback saw, copied out of the borrowed response. */
struct result {
    int calls;
    int status;
    long http_status;
    char *body;
    size_t body_len;
    char *content_type, *location, *replay_nonce, *retry_after, *effective_url;
    char *error; /* resp->error of a failure */
    char *links[8];
    size_t n_links;
};

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

static void result_fini(struct result *r)
{
    free(r->body);
    free(r->content_type);
    free(r->location);
    free(r->replay_nonce);
    free(r->retry_after);
    free(r->effective_url);
    free(r->error);
    for (size_t i = 0; i < r->n_links; i++)
        free(r->links[i]);
    memset(r, 0, sizeof(*r));
}

static void record_cb(int status, const struct http_response *resp, void *arg)
{
    struct result *r = arg;

    r->calls++;
    r->status = status;
    if (status != 0) {
        /* a failure carries the transport's reason, nothing else */
        assert_non_null(resp);
        assert_non_null(resp->error);
        assert_null(resp->body.data);
        free(r->error);
        r->error = xstrdup(resp->error);
        return;
    }
    assert_non_null(resp);
    assert_non_null(resp->body.data);
    assert_int_equal(resp->body.data[resp->body.len], '\0');
    r->http_status = resp->status;
    r->body = xmemdup(resp->body.data, resp->body.len + 1);
    r->body_len = resp->body.len;
    r->content_type = dup_or_null(resp->content_type);
    r->location = dup_or_null(resp->location);
    r->replay_nonce = dup_or_null(resp->replay_nonce);
    r->retry_after = dup_or_null(resp->retry_after);
    r->effective_url = dup_or_null(resp->effective_url);
    assert_non_null(resp->links);
    for (size_t i = 0; i < resp->n_links && i < 8; i++)
        r->links[r->n_links++] = xstrdup(resp->links[i]);
    assert_null(resp->links[resp->n_links]);
}

static char *url_of(struct fx *f, const char *path)
{
    return xasprintf("%s%s", fake_http_url(f->srv), path);
}

/* ---- handlers ---- */

/* Answers like an ACME server would, and echoes what it received. */
static void acme_like_handler(const struct fake_http_request *req, struct fake_http_response *resp,
                              void *arg)
{
    char v[256];
    (void)arg;

    resp->status = strcmp(req->method, "POST") == 0 ? 201 : 200;
    fake_http_resp_header(resp, "Content-Type", "application/json");
    fake_http_resp_header(resp, "Location", "http://127.0.0.1/acme/order/%u", req->seq);
    fake_http_resp_header(resp, "Replay-Nonce", "nonce-%u", req->seq);
    fake_http_resp_header(resp, "Retry-After", "  120 ");
    fake_http_resp_header(resp, "Link", "<http://127.0.0.1/dir>;rel=\"index\"");
    fake_http_resp_header(resp, "link",
                          "<http://127.0.0.1/cert/1>; rel=\"alternate\", "
                          "<http://127.0.0.1/cert/2>; rel=alternate");
    fake_http_resp_body(resp, "{\"method\":\"");
    fake_http_resp_body(resp, req->method);
    fake_http_resp_body(resp, "\",\"target\":\"");
    fake_http_resp_body(resp, req->target);
    fake_http_resp_body(resp, "\",\"ct\":\"");
    fake_http_resp_body(resp,
                        fake_http_req_header(req, "Content-Type", v, sizeof(v)) != NULL ? v : "-");
    fake_http_resp_body(resp, "\",\"ua\":\"");
    fake_http_resp_body(resp,
                        fake_http_req_header(req, "User-Agent", v, sizeof(v)) != NULL ? v : "-");
    fake_http_resp_body(resp, "\",\"x\":\"");
    fake_http_resp_body(resp, fake_http_req_header(req, "X-Test", v, sizeof(v)) != NULL ? v : "-");
    fake_http_resp_body(resp, "\",\"body\":\"");
    fake_http_resp_body(resp, req->body);
    fake_http_resp_body(resp, "\"}");
}

/* Behaviour picked by the request path. */
static void path_handler(const struct fake_http_request *req, struct fake_http_response *resp,
                         void *arg)
{
    (void)arg;
    if (strncmp(req->target, "/huge", 5) == 0) {
        resp->huge_body = 1024 * 1024;
    } else if (strncmp(req->target, "/stream", 7) == 0) {
        resp->huge_body = 256 * 1024;
        resp->no_length = true;
    } else if (strncmp(req->target, "/delay", 6) == 0) {
        resp->delay_ms = 600;
        fake_http_resp_body(resp, "late");
    } else if (strncmp(req->target, "/hang", 5) == 0) {
        resp->hang = true;
    } else if (strncmp(req->target, "/drop", 5) == 0) {
        resp->close_without_answer = true;
    } else if (strncmp(req->target, "/manyheaders", 12) == 0) {
        for (int i = 0; i < 150; i++)
            fake_http_resp_header(resp, "X-Filler", "%d", i);
    } else if (strncmp(req->target, "/bigheader", 10) == 0) {
        char *v = xmalloc(70001);
        memset(v, 'v', 70000);
        v[70000] = '\0';
        fake_http_resp_header(resp, "X-Big", "%s", v);
        free(v);
    } else if (strncmp(req->target, "/redirect", 9) == 0) {
        resp->status = 302;
        fake_http_resp_header(resp, "Location", "/elsewhere");
    } else {
        /* echo the target so concurrent callers can check they got theirs */
        fake_http_resp_body(resp, req->target);
    }
}

/* ---- tests ---- */

static void test_get_round_trip_captures_headers(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    fx_open(&f, acme_like_handler, NULL);
    char *url = url_of(&f, "/dir?x=1");
    struct http_header hdrs[] = {{"X-Test", "hello"}};
    struct http_request_opts o = {.url = url, .headers = hdrs, .n_headers = 1};

    assert_int_equal(http_req_start(f.client, &o, record_cb, &r, NULL), 0);
    assert_int_equal(http_client_inflight(f.client), 1);
    assert_int_equal(r.calls, 0); /* never from inside _start */
    uv_run(&f.loop, UV_RUN_DEFAULT);

    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.http_status, 200);
    assert_int_equal(http_client_inflight(f.client), 0);
    assert_string_equal(r.content_type, "application/json");
    assert_string_equal(r.location, "http://127.0.0.1/acme/order/0");
    assert_string_equal(r.replay_nonce, "nonce-0");
    assert_string_equal(r.retry_after, "120");
    assert_string_equal(r.effective_url, url);
    assert_int_equal(r.n_links, 2);
    assert_string_equal(r.links[0], "<http://127.0.0.1/dir>;rel=\"index\"");
    char *alt = http_link_url(r.links[1], "alternate");
    assert_string_equal(alt, "http://127.0.0.1/cert/1");
    free(alt);
    char *idx = http_link_url(r.links[0], "index");
    assert_string_equal(idx, "http://127.0.0.1/dir");
    free(idx);
    assert_non_null(strstr(r.body, "\"method\":\"GET\""));
    assert_non_null(strstr(r.body, "\"target\":\"/dir?x=1\""));
    assert_non_null(strstr(r.body, "\"ua\":\"certloop/" CERTLOOP_VERSION "\""));
    assert_non_null(strstr(r.body, "\"x\":\"hello\""));
    assert_int_equal(r.body_len, strlen(r.body));
    free(url);
    result_fini(&r);
    fx_close(&f);
}

static void test_post_round_trip_sends_body_and_content_type(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    fx_open(&f, acme_like_handler, NULL);
    char *url = url_of(&f, "/new-order");
    struct http_header hdrs[] = {{"Content-Type", "application/jose+json"}};
    char body[] = "protected.payload.signature";
    struct http_request_opts o = {.method = "POST",
                                  .url = url,
                                  .headers = hdrs,
                                  .n_headers = 1,
                                  .body = body,
                                  .body_len = strlen(body)};

    assert_int_equal(http_req_start(f.client, &o, record_cb, &r, NULL), 0);
    memset(body, 'Z', sizeof(body) - 1); /* _start copied it */
    uv_run(&f.loop, UV_RUN_DEFAULT);

    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.http_status, 201);
    assert_non_null(strstr(r.body, "\"method\":\"POST\""));
    assert_non_null(strstr(r.body, "\"ct\":\"application/jose+json\""));
    assert_non_null(strstr(r.body, "\"body\":\"protected.payload.signature\""));
    free(url);
    result_fini(&r);
    fx_close(&f);
}

static void test_head_has_headers_and_empty_body(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    fx_open(&f, acme_like_handler, NULL);
    char *url = url_of(&f, "/new-nonce");
    struct http_request_opts o = {.method = "HEAD", .url = url};

    assert_int_equal(http_req_start(f.client, &o, record_cb, &r, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.http_status, 200);
    assert_string_equal(r.replay_nonce, "nonce-0");
    assert_int_equal(r.body_len, 0);
    assert_string_equal(r.body, "");
    free(url);
    result_fini(&r);
    fx_close(&f);
}

static void test_redirect_is_not_followed(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    fx_open(&f, path_handler, NULL);
    char *url = url_of(&f, "/redirect");
    struct http_request_opts o = {.url = url};

    assert_int_equal(http_req_start(f.client, &o, record_cb, &r, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.http_status, 302);
    assert_string_equal(r.location, "/elsewhere");
    assert_int_equal(fake_http_requests(f.srv), 1);
    free(url);
    result_fini(&r);
    fx_close(&f);
}

static void test_body_cap_gives_too_big(void **state)
{
    (void)state;
    struct fx f;
    struct result big = {0}, stream = {0}, fits = {0};
    fx_open(&f, path_handler, NULL);
    char *u1 = url_of(&f, "/huge");
    char *u2 = url_of(&f, "/stream");
    char *u3 = url_of(&f, "/fits-cap");
    /* Content-Length past the cap, and a close-delimited body past it. */
    struct http_request_opts o1 = {.url = u1, .max_body = 4096};
    struct http_request_opts o2 = {.url = u2, .max_body = 4096};
    struct http_request_opts o3 = {.url = u3, .max_body = 9};

    assert_int_equal(http_req_start(f.client, &o1, record_cb, &big, NULL), 0);
    assert_int_equal(http_req_start(f.client, &o2, record_cb, &stream, NULL), 0);
    assert_int_equal(http_req_start(f.client, &o3, record_cb, &fits, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(big.calls, 1);
    assert_int_equal(big.status, ERR_TOO_BIG);
    assert_int_equal(stream.calls, 1);
    assert_int_equal(stream.status, ERR_TOO_BIG);
    /* exactly at the cap is fine */
    assert_int_equal(fits.calls, 1);
    assert_int_equal(fits.status, 0);
    assert_string_equal(fits.body, "/fits-cap");
    free(u1);
    free(u2);
    free(u3);
    result_fini(&big);
    result_fini(&stream);
    result_fini(&fits);
    fx_close(&f);
}

static void test_too_many_headers_gives_too_big(void **state)
{
    (void)state;
    struct fx f;
    struct result many = {0}, big = {0};
    fx_open(&f, path_handler, NULL);
    char *u1 = url_of(&f, "/manyheaders"); /* 150 lines, past 100 */
    char *u2 = url_of(&f, "/bigheader");   /* 70 000 bytes, past 64 KiB */
    struct http_request_opts o1 = {.url = u1};
    struct http_request_opts o2 = {.url = u2};

    assert_int_equal(http_req_start(f.client, &o1, record_cb, &many, NULL), 0);
    assert_int_equal(http_req_start(f.client, &o2, record_cb, &big, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(many.calls, 1);
    assert_int_equal(many.status, ERR_TOO_BIG);
    assert_int_equal(big.calls, 1);
    assert_int_equal(big.status, ERR_TOO_BIG);
    free(u1);
    free(u2);
    result_fini(&many);
    result_fini(&big);
    fx_close(&f);
}

static void test_timeout_gives_err_timeout(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    fx_open(&f, path_handler, NULL);
    char *url = url_of(&f, "/hang");
    struct http_request_opts o = {.url = url, .timeout_ms = 150};

    uint64_t t0 = uv_hrtime();
    assert_int_equal(http_req_start(f.client, &o, record_cb, &r, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, ERR_TIMEOUT);
    assert_true(ms >= 140 && ms < 3000);
    free(url);
    result_fini(&r);
    fx_close(&f);
}

static void test_connection_refused_gives_err_http(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    fx_open(&f, NULL, NULL);
    int port = fake_http_free_port();
    assert_true(port > 0);
    char *url = xasprintf("http://127.0.0.1:%d/", port);
    struct http_request_opts o = {.url = url};

    assert_int_equal(http_req_start(f.client, &o, record_cb, &r, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, ERR_HTTP);
    char *want = xasprintf("connection refused by 127.0.0.1:%d", port);
    assert_string_equal(r.error, want);
    free(want);
    free(url);
    result_fini(&r);
    fx_close(&f);
}

static void test_server_drop_gives_err_http(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    fx_open(&f, path_handler, NULL);
    char *url = url_of(&f, "/drop");
    struct http_request_opts o = {.url = url};

    assert_int_equal(http_req_start(f.client, &o, record_cb, &r, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, ERR_HTTP);
    free(url);
    result_fini(&r);
    fx_close(&f);
}

static void test_synchronous_failures_never_call_back(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    fx_open(&f, NULL, NULL);
    struct http_request_opts ftp = {.url = "ftp://127.0.0.1/x"};
    struct http_request_opts file = {.url = "file:///etc/passwd"};
    struct http_request_opts method = {.method = "BREW", .url = "http://127.0.0.1:1/"};
    struct http_header bad[] = {{"X-Evil", "a\r\nInjected: yes"}};
    struct http_request_opts hdr = {.url = "http://127.0.0.1:1/", .headers = bad, .n_headers = 1};
    struct http_request_opts trust = {.url = "https://127.0.0.1:1/",
                                      .trust_file = "/nonexistent/certloop-ca.pem"};

    assert_int_equal(http_req_start(f.client, &ftp, record_cb, &r, NULL), -EINVAL);
    assert_int_equal(http_req_start(f.client, &file, record_cb, &r, NULL), -EINVAL);
    assert_int_equal(http_req_start(f.client, &method, record_cb, &r, NULL), -EINVAL);
    assert_int_equal(http_req_start(f.client, &hdr, record_cb, &r, NULL), -EINVAL);
    assert_int_equal(http_req_start(f.client, &trust, record_cb, &r, NULL), -ENOENT);
    assert_int_equal(http_client_inflight(f.client), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 0);
    fx_close(&f);
}

static void close_server(void *arg)
{
    struct fx *f = arg;
    fake_http_close(f->srv);
    f->srv = NULL;
}

static void test_cancel_right_after_start_is_silent(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    struct http_req *req = NULL;
    fx_open(&f, acme_like_handler, NULL);
    char *url = url_of(&f, "/x");
    struct http_request_opts o = {.url = url};

    assert_int_equal(http_req_start(f.client, &o, record_cb, &r, &req), 0);
    assert_non_null(req);
    http_req_cancel(req);
    assert_int_equal(http_client_inflight(f.client), 0);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    run_later(&f.loop, 100, close_server, &f);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 0);
    free(url);
    fx_close(&f);
}

struct cancel_ctx {
    struct http_req *req;
    struct fx *f;
    unsigned seen_by_server;
};

static void cancel_it(void *arg)
{
    struct cancel_ctx *cc = arg;
    cc->seen_by_server = fake_http_requests(cc->f->srv);
    http_req_cancel(cc->req);
    cc->req = NULL;
}

static void test_cancel_while_server_delays_is_silent(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    struct cancel_ctx cc = {.f = &f};
    fx_open(&f, path_handler, NULL);
    char *url = url_of(&f, "/delay");
    struct http_request_opts o = {.url = url};

    assert_int_equal(http_req_start(f.client, &o, record_cb, &r, &cc.req), 0);
    run_later(&f.loop, 150, cancel_it, &cc);
    uv_run(&f.loop, UV_RUN_DEFAULT); /* the server still answers at 600 ms */
    assert_int_equal(cc.seen_by_server, 1);
    assert_int_equal(r.calls, 0);
    assert_int_equal(http_client_inflight(f.client), 0);
    free(url);
    fx_close(&f);
}

static void close_client(void *arg)
{
    struct fx *f = arg;
    http_client_close(f->client);
    f->client = NULL;
    fake_http_close(f->srv);
    f->srv = NULL;
}

static void test_close_client_with_requests_in_flight_is_silent(void **state)
{
    (void)state;
    struct fx f;
    struct result r[6] = {{0}};
    fx_open(&f, path_handler, NULL);
    char *hang = url_of(&f, "/hang");
    char *delay = url_of(&f, "/delay");
    for (int i = 0; i < 6; i++) {
        struct http_request_opts o = {.url = i % 2 ? hang : delay};
        assert_int_equal(http_req_start(f.client, &o, record_cb, &r[i], NULL), 0);
    }
    assert_int_equal(http_client_inflight(f.client), 6);
    run_later(&f.loop, 100, close_client, &f);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 6; i++)
        assert_int_equal(r[i].calls, 0);
    free(hang);
    free(delay);
    fx_close(&f); /* asserts uv_loop_close() == 0 */
}

#define N_CONCURRENT 200

struct many {
    int calls[N_CONCURRENT];
    int ok;
};

struct many_one {
    struct many *m;
    int i;
};

static void many_cb(int status, const struct http_response *resp, void *arg)
{
    struct many_one *one = arg;
    char want[32];

    one->m->calls[one->i]++;
    snprintf(want, sizeof(want), "/item/%d", one->i);
    if (status == 0 && resp->status == 200 && strcmp(resp->body.data, want) == 0)
        one->m->ok++;
}

static void test_200_concurrent_requests_complete_once_each(void **state)
{
    (void)state;
    struct fx f;
    struct many m = {{0}, 0};
    struct many_one ones[N_CONCURRENT];
    fx_open(&f, path_handler, NULL);

    for (int i = 0; i < N_CONCURRENT; i++) {
        char *url = xasprintf("%s/item/%d", fake_http_url(f.srv), i);
        struct http_request_opts o = {.url = url};
        ones[i].m = &m;
        ones[i].i = i;
        assert_int_equal(http_req_start(f.client, &o, many_cb, &ones[i], NULL), 0);
        free(url); /* _start copied what it needs */
    }
    assert_int_equal(http_client_inflight(f.client), N_CONCURRENT);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < N_CONCURRENT; i++)
        assert_int_equal(m.calls[i], 1);
    assert_int_equal(m.ok, N_CONCURRENT);
    assert_int_equal(fake_http_requests(f.srv), N_CONCURRENT);
    assert_int_equal(http_client_inflight(f.client), 0);

    /* Connections are kept: a second round reuses them. */
    unsigned conns = fake_http_connections(f.srv);
    assert_true(conns >= 1 && conns <= N_CONCURRENT);
    memset(&m, 0, sizeof(m));
    for (int i = 0; i < 10; i++) {
        char *url = xasprintf("%s/item/%d", fake_http_url(f.srv), i);
        struct http_request_opts o = {.url = url};
        assert_int_equal(http_req_start(f.client, &o, many_cb, &ones[i], NULL), 0);
        free(url);
        uv_run(&f.loop, UV_RUN_DEFAULT);
    }
    assert_int_equal(m.ok, 10);
    assert_int_equal(fake_http_connections(f.srv), conns);
    fx_close(&f);
}

struct chain {
    struct fx *f;
    char *url;
    int first_calls, second_calls;
    int second_status;
    long second_http;
};

static void chain_second_cb(int status, const struct http_response *resp, void *arg)
{
    struct chain *ch = arg;
    ch->second_calls++;
    ch->second_status = status;
    ch->second_http = status == 0 ? resp->status : 0;
}

static void chain_first_cb(int status, const struct http_response *resp, void *arg)
{
    struct chain *ch = arg;
    (void)resp;
    ch->first_calls++;
    assert_int_equal(status, 0);
    struct http_request_opts o = {.url = ch->url};
    assert_int_equal(http_req_start(ch->f->client, &o, chain_second_cb, ch, NULL), 0);
    assert_int_equal(ch->second_calls, 0);
}

static void test_callback_may_start_another_request(void **state)
{
    (void)state;
    struct fx f;
    struct chain ch = {.f = &f};
    fx_open(&f, path_handler, NULL);
    ch.url = url_of(&f, "/second");
    char *url = url_of(&f, "/first");
    struct http_request_opts o = {.url = url};

    assert_int_equal(http_req_start(f.client, &o, chain_first_cb, &ch, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(ch.first_calls, 1);
    assert_int_equal(ch.second_calls, 1);
    assert_int_equal(ch.second_status, 0);
    assert_int_equal(ch.second_http, 200);
    free(url);
    free(ch.url);
    fx_close(&f);
}

/* Several requests finish in the same loop iteration; the first callback
 * cancels one sibling and then closes the client: nothing else may run. */
struct burst {
    struct fx *f;
    struct http_req *req[4];
    int calls[4];
    int close_on;
};

struct burst_one {
    struct burst *b;
    int i;
};

static void burst_cb(int status, const struct http_response *resp, void *arg)
{
    struct burst_one *one = arg;
    struct burst *b = one->b;
    (void)status;
    (void)resp;
    b->calls[one->i]++;
    b->req[one->i] = NULL;
    int other = (one->i + 1) % 4;
    if (b->req[other] != NULL) {
        http_req_cancel(b->req[other]);
        b->req[other] = NULL;
    }
    if (one->i == b->close_on || b->close_on < 0) {
        http_client_close(b->f->client);
        b->f->client = NULL;
        b->close_on = 99;
    }
}

static void test_callback_may_cancel_siblings_and_close_client(void **state)
{
    (void)state;
    struct fx f;
    struct burst b = {.f = &f, .close_on = -1};
    struct burst_one ones[4];
    fx_open(&f, path_handler, NULL);
    char *url = url_of(&f, "/delay");

    for (int i = 0; i < 4; i++) {
        struct http_request_opts o = {.url = url};
        ones[i].b = &b;
        ones[i].i = i;
        assert_int_equal(http_req_start(f.client, &o, burst_cb, &ones[i], &b.req[i]), 0);
    }
    uv_run(&f.loop, UV_RUN_DEFAULT);
    int total = 0;
    for (int i = 0; i < 4; i++) {
        assert_true(b.calls[i] <= 1);
        total += b.calls[i];
    }
    /* the first callback closed the client: nobody else heard back */
    assert_int_equal(total, 1);
    free(url);
    fx_close(&f);
}

/* Requests that time out together finish in the same timer round: the
 * first callback cancels its siblings, which may already be waiting for
 * their own callbacks. None of them may run. */
struct siblings {
    struct http_req *req[3];
    int calls[3];
};

struct sibling_one {
    struct siblings *s;
    int i;
};

static void sibling_cb(int status, const struct http_response *resp, void *arg)
{
    struct sibling_one *one = arg;
    struct siblings *s = one->s;
    (void)resp;
    assert_int_equal(status, ERR_TIMEOUT);
    s->calls[one->i]++;
    s->req[one->i] = NULL;
    for (int i = 0; i < 3; i++) {
        if (s->req[i] != NULL) {
            http_req_cancel(s->req[i]);
            s->req[i] = NULL;
        }
    }
}

static void test_callback_may_cancel_finished_siblings(void **state)
{
    (void)state;
    struct fx f;
    struct siblings s = {{NULL}, {0}};
    struct sibling_one ones[3];
    fx_open(&f, path_handler, NULL);
    char *url = url_of(&f, "/hang");
    for (int i = 0; i < 3; i++) {
        struct http_request_opts o = {.url = url, .timeout_ms = 100};
        ones[i].s = &s;
        ones[i].i = i;
        assert_int_equal(http_req_start(f.client, &o, sibling_cb, &ones[i], &s.req[i]), 0);
    }
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(s.calls[0] + s.calls[1] + s.calls[2], 1);
    assert_int_equal(http_client_inflight(f.client), 0);
    free(url);
    fx_close(&f);
}

/* ---- logging ---- */

struct captured {
    int errors;
    int debugs;
    char first_error[512];
    char last_debug[1024];
};

static void capture_sink(enum log_level lvl, enum log_group g, const char *msg, void *arg)
{
    struct captured *cap = arg;
    if (g != LOG_HTTP)
        return;
    if (lvl == LOG_LVL_ERROR && cap->errors++ == 0)
        snprintf(cap->first_error, sizeof(cap->first_error), "%s", msg);
    if (lvl == LOG_LVL_DEBUG) {
        cap->debugs++;
        snprintf(cap->last_debug, sizeof(cap->last_debug), "%s", msg);
    }
}

static void test_transport_error_logged_once_with_method_and_url(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    struct captured cap = {0};
    fx_open(&f, NULL, NULL);
    int port = fake_http_free_port();
    char *url = xasprintf("http://127.0.0.1:%d/refused", port);
    char *prefix = xasprintf("GET %s: ", url);
    struct http_request_opts o = {.url = url};

    log_set_sink(capture_sink, &cap);
    assert_int_equal(http_req_start(f.client, &o, record_cb, &r, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    log_set_sink(NULL, NULL);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, ERR_HTTP);
    assert_int_equal(cap.errors, 1);
    assert_memory_equal(cap.first_error, prefix, strlen(prefix));
    assert_non_null(strstr(cap.first_error, "onnect")); /* curl's own words */
    result_fini(&r);
    free(url);
    free(prefix);
    fx_close(&f);
}

/* A webhook URL's path and query are its secret: with redact_url the log
 * shows only scheme and authority (userinfo dropped too). */
static void test_redacted_url_keeps_the_secret_out_of_the_log(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    struct captured cap = {0};
    fx_open(&f, NULL, NULL);
    int port = fake_http_free_port();
    char *url = xasprintf("http://user:pw@127.0.0.1:%d/hooks/T0KEN-s3cret?sig=abc", port);
    char *want = xasprintf("POST http://127.0.0.1:%d/...: ", port);
    struct http_request_opts o = {.method = "POST", .url = url, .redact_url = true};

    log_set_sink(capture_sink, &cap);
    log_set_debug_group(LOG_HTTP, true);
    assert_int_equal(http_req_start(f.client, &o, record_cb, &r, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    log_set_debug_group(LOG_HTTP, false);
    log_set_sink(NULL, NULL);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, ERR_HTTP);
    assert_int_equal(cap.errors, 1);
    assert_memory_equal(cap.first_error, want, strlen(want));
    assert_null(strstr(cap.first_error, "s3cret"));
    assert_null(strstr(cap.first_error, "pw"));
    assert_null(strstr(cap.last_debug, "s3cret"));
    result_fini(&r);
    free(url);
    free(want);
    fx_close(&f);
}

static void binary_handler(const struct fake_http_request *req, struct fake_http_response *resp,
                           void *arg)
{
    (void)req;
    (void)arg;
    fake_http_resp_body(resp, "ok\x01\x1b[31mred\n");
}

static void test_debug_log_masks_body(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    struct captured cap = {0};
    fx_open(&f, binary_handler, NULL);
    char *url = url_of(&f, "/x");
    struct http_request_opts o = {.url = url};

    log_set_sink(capture_sink, &cap);
    log_set_debug_group(LOG_HTTP, true);
    assert_int_equal(http_req_start(f.client, &o, record_cb, &r, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    log_set_debug_group(LOG_HTTP, false);
    log_set_sink(NULL, NULL);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.body_len, 12);
    assert_int_equal(cap.errors, 0);
    assert_true(cap.debugs >= 1);
    assert_non_null(strstr(cap.last_debug, "HTTP 200"));
    assert_non_null(strstr(cap.last_debug, "red"));
    for (const char *p = cap.last_debug; *p != '\0'; p++)
        assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f);
    free(url);
    result_fini(&r);
    fx_close(&f);
}

struct self_cancel {
    struct http_req *req;
    int calls;
};

static void self_cancel_cb(int status, const struct http_response *resp, void *arg)
{
    struct self_cancel *sc = arg;
    (void)resp;
    assert_int_equal(status, 0);
    sc->calls++;
    http_req_cancel(sc->req); /* harmless: the request ends when we return */
    sc->req = NULL;
}

static void test_cancel_from_own_callback_is_harmless(void **state)
{
    (void)state;
    struct fx f;
    struct self_cancel sc = {0};
    fx_open(&f, acme_like_handler, NULL);
    char *url = url_of(&f, "/x");
    struct http_request_opts o = {.url = url};

    assert_int_equal(http_req_start(f.client, &o, self_cancel_cb, &sc, &sc.req), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(sc.calls, 1);
    assert_int_equal(http_client_inflight(f.client), 0);
    free(url);
    fx_close(&f);
}

/* ---- HTTPS against openssl s_server with a throwaway CA ---- */

static int run_cmd(const char *dir, const char *cmd)
{
    char *full = xasprintf("cd '%s' && ( %s ) >/dev/null 2>&1", dir, cmd);
    int rc = system(full);
    free(full);
    return rc;
}

static bool port_open(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Makes a throwaway CA (ca.pem), a leaf for IP 127.0.0.1 signed by it
 * (leaf.pem, leaf.key) and an unrelated CA (other.pem) in a new temp dir. */
static char *make_pki(void)
{
    char *dir = xstrdup("/tmp/certloop-http-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(run_cmd(dir, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
                                  "-nodes -keyout ca.key -out ca.pem -days 2 "
                                  "-subj /CN=certloop-test-ca"),
                     0);
    assert_int_equal(run_cmd(dir, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
                                  "-nodes -keyout other.key -out other.pem -days 2 "
                                  "-subj /CN=certloop-other-ca"),
                     0);
    assert_int_equal(run_cmd(dir, "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                                  "-keyout leaf.key -out leaf.csr -subj /CN=127.0.0.1"),
                     0);
    assert_int_equal(run_cmd(dir, "printf 'subjectAltName=IP:127.0.0.1\\n"
                                  "extendedKeyUsage=serverAuth\\n' > ext.cnf"),
                     0);
    assert_int_equal(run_cmd(dir, "openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key "
                                  "-CAcreateserial -out leaf.pem -days 2 -extfile ext.cnf"),
                     0);
    return dir;
}

static void remove_dir(char *dir)
{
    char *rm = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(rm), 0);
    free(rm);
    free(dir);
}

static pid_t spawn_quiet(char *const argv[])
{
    posix_spawn_file_actions_t fa;
    pid_t pid;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    assert_int_equal(posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

static void wait_port(int port)
{
    bool up = false;
    for (int i = 0; i < 200 && !up; i++) {
        struct timespec ts = {0, 25 * 1000 * 1000};
        up = port_open(port);
        if (!up)
            nanosleep(&ts, NULL);
    }
    assert_true(up);
}

/* Runs one request to completion on its own and records it. */
static void fetch(struct fx *f, const char *url, const char *trust, struct result *r)
{
    struct http_request_opts o = {.url = url, .trust_file = trust, .max_body = 1 << 20};
    assert_int_equal(http_req_start(f->client, &o, record_cb, r, NULL), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r->calls, 1);
}

static void test_https_trust_file_adds_anchor(void **state)
{
    (void)state;
    char *dir = make_pki();
    int port = fake_http_free_port();
    assert_true(port > 0);
    char *accept = xasprintf("127.0.0.1:%d", port);
    char *cert = xasprintf("%s/leaf.pem", dir);
    char *key = xasprintf("%s/leaf.key", dir);
    char *argv[] = {"openssl", "s_server", "-quiet", "-www", "-accept", accept,
                    "-cert",   cert,       "-key",   key,    NULL};
    pid_t pid = spawn_quiet(argv);
    wait_port(port);

    struct fx f;
    struct result with = {0}, without = {0}, other = {0}, system_store = {0}, again = {0};
    fx_open(&f, NULL, NULL);
    char *url = xasprintf("https://127.0.0.1:%d/", port);
    char *ca = xasprintf("%s/ca.pem", dir);
    char *other_ca = xasprintf("%s/other.pem", dir);

    /* one at a time: s_server serves one connection after another */
    fetch(&f, url, ca, &with);
    assert_int_equal(with.status, 0);
    assert_int_equal(with.http_status, 200);
    assert_true(with.body_len > 0);
    /* the extra anchor did not leak into the default store */
    fetch(&f, url, NULL, &without);
    assert_int_equal(without.status, ERR_HTTP);
    /* a trust file without the right CA does not help */
    fetch(&f, url, other_ca, &other);
    assert_int_equal(other.status, ERR_HTTP);
    /* ...but the system store still counts next to a trust file: OpenSSL's
     * default locations honour SSL_CERT_FILE, which stands in for it here */
    setenv("SSL_CERT_FILE", ca, 1);
    fetch(&f, url, other_ca, &system_store);
    unsetenv("SSL_CERT_FILE");
    assert_int_equal(system_store.status, 0);
    assert_int_equal(system_store.http_status, 200);
    fetch(&f, url, ca, &again);
    assert_int_equal(again.status, 0);

    /* the cached trust file is re-read when it changes on disk */
    char *trust = xasprintf("%s/trust.pem", dir);
    struct result stale = {0}, fresh = {0};
    assert_int_equal(run_cmd(dir, "cp other.pem trust.pem"), 0);
    fetch(&f, url, trust, &stale);
    assert_int_equal(stale.status, ERR_HTTP);
    assert_int_equal(run_cmd(dir, "cp ca.pem trust.new && mv trust.new trust.pem"), 0);
    fetch(&f, url, trust, &fresh);
    assert_int_equal(fresh.status, 0);
    result_fini(&stale);
    result_fini(&fresh);

    /* unusable trust files fail synchronously */
    struct result never = {0};
    assert_int_equal(run_cmd(dir, "echo not a certificate > junk.pem"), 0);
    assert_int_equal(run_cmd(dir, "printf -- '-----BEGIN CERTIFICATE-----\\nAAAA\\n"
                                  "-----END CERTIFICATE-----\\n' > broken.pem"),
                     0);
    char *junk = xasprintf("%s/junk.pem", dir);
    char *broken = xasprintf("%s/broken.pem", dir);
    struct http_request_opts o_junk = {.url = url, .trust_file = junk};
    struct http_request_opts o_broken = {.url = url, .trust_file = broken};
    assert_int_equal(http_req_start(f.client, &o_junk, record_cb, &never, NULL), ERR_PARSE);
    assert_int_equal(http_req_start(f.client, &o_broken, record_cb, &never, NULL), ERR_CRYPTO);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(never.calls, 0);
    fx_close(&f);

    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    remove_dir(dir);
    free(trust);
    free(junk);
    free(broken);
    free(url);
    free(ca);
    free(other_ca);
    free(accept);
    free(cert);
    free(key);
    result_fini(&with);
    result_fini(&without);
    result_fini(&other);
    result_fini(&system_store);
    result_fini(&again);
}

#define N_H2 50

/* nginx with TLS and HTTP/2 on loopback: many requests share one
 * multiplexed connection, and a request without the trust file never rides
 * on a connection that was verified with it. */
static void test_https_http2_multiplexes_and_keeps_trust_apart(void **state)
{
    (void)state;
    const char *nginx = "/usr/sbin/nginx";
    if (access(nginx, X_OK) != 0) {
        const char *ci = getenv("CI");
        assert_false(ci != NULL && strcmp(ci, "true") == 0); /* CI must have it */
        skip();
    }
    char *dir = make_pki();
    int port = fake_http_free_port();
    assert_true(port > 0);
    char *conf = xasprintf("%s/nginx.conf", dir);
    FILE *fp = fopen(conf, "w");
    assert_non_null(fp);
    fprintf(fp,
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid %s/nginx.pid;\n"
            "error_log %s/error.log;\nevents { worker_connections 512; }\n"
            "http {\n access_log off;\n client_body_temp_path %s;\n proxy_temp_path %s;\n"
            " fastcgi_temp_path %s;\n uwsgi_temp_path %s;\n scgi_temp_path %s;\n"
            " server {\n  listen 127.0.0.1:%d ssl http2;\n  ssl_certificate %s/leaf.pem;\n"
            "  ssl_certificate_key %s/leaf.key;\n  keepalive_requests 100000;\n"
            "  location / { return 200 \"$connection $server_protocol\\n\"; }\n }\n}\n",
            dir, dir, dir, dir, dir, dir, dir, port, dir, dir);
    fclose(fp);
    char *errlog = xasprintf("%s/error.log", dir);
    char *argv[] = {(char *)nginx, "-e", errlog, "-p", dir, "-c", conf, NULL};
    pid_t pid = spawn_quiet(argv);
    wait_port(port);

    struct fx f;
    struct result r[N_H2];
    memset(r, 0, sizeof(r));
    fx_open(&f, NULL, NULL);
    char *url = xasprintf("https://127.0.0.1:%d/x", port);
    char *ca = xasprintf("%s/ca.pem", dir);
    for (int i = 0; i < N_H2; i++) {
        struct http_request_opts o = {.url = url, .trust_file = ca};
        assert_int_equal(http_req_start(f.client, &o, record_cb, &r[i], NULL), 0);
    }
    uv_run(&f.loop, UV_RUN_DEFAULT);
    long conn_ids[N_H2];
    size_t n_ids = 0;
    for (int i = 0; i < N_H2; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, 0);
        assert_int_equal(r[i].http_status, 200);
        assert_non_null(strstr(r[i].body, "HTTP/2.0"));
        long id = strtol(r[i].body, NULL, 10);
        bool seen = false;
        for (size_t j = 0; j < n_ids; j++)
            seen = seen || conn_ids[j] == id;
        if (!seen)
            conn_ids[n_ids++] = id;
        result_fini(&r[i]);
    }
    /* CURLOPT_PIPEWAIT: the requests wait for the first connection */
    assert_int_equal(n_ids, 1);

    struct result without = {0}, again = {0};
    fetch(&f, url, NULL, &without);
    assert_int_equal(without.status, ERR_HTTP);
    fetch(&f, url, ca, &again);
    assert_int_equal(again.status, 0);
    assert_int_equal(strtol(again.body, NULL, 10), conn_ids[0]); /* reused */
    fx_close(&f);

    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    remove_dir(dir);
    free(conf);
    free(errlog);
    free(url);
    free(ca);
    result_fini(&without);
    result_fini(&again);
}

/* ---- parsers ---- */

/* 784111777 is Sun, 06 Nov 1994 08:49:37 GMT, the RFC 9110 example date. */
#define RFC_EXAMPLE_TIME 784111777LL

static void test_retry_after_delta_seconds(void **state)
{
    (void)state;
    assert_int_equal(http_retry_after_parse("120", 0), 120);
    assert_int_equal(http_retry_after_parse(" 0 ", 1000), 0);
    assert_int_equal(http_retry_after_parse("86400", 5), 86400);
    /* huge values are clamped to a year and a day, not overflowed */
    int64_t big = http_retry_after_parse("99999999999999999999999", 0);
    assert_true(big > 0 && big <= 366LL * 86400);
    assert_int_equal(http_retry_after_parse("-5", 0), -1);
    assert_int_equal(http_retry_after_parse("12a", 0), -1);
    assert_int_equal(http_retry_after_parse("1.5", 0), -1);
    assert_int_equal(http_retry_after_parse("", 0), -1);
    assert_int_equal(http_retry_after_parse(NULL, 0), -1);
}

static void test_retry_after_http_dates(void **state)
{
    (void)state;
    int64_t now = RFC_EXAMPLE_TIME - 90;
    assert_int_equal(http_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", now), 90);
    assert_int_equal(http_retry_after_parse("Sunday, 06-Nov-94 08:49:37 GMT", now), 90);
    assert_int_equal(http_retry_after_parse("Sun Nov  6 08:49:37 1994", now), 90);
    /* a date in the past means "now" */
    assert_int_equal(http_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", now + 1000), 0);
    /* leap years and month ends */
    struct tm tm = {.tm_year = 2024 - 1900, .tm_mon = 1, .tm_mday = 29, .tm_hour = 12};
    int64_t feb29 = timegm(&tm);
    assert_int_equal(http_retry_after_parse("Thu, 29 Feb 2024 12:00:00 GMT", feb29 - 5), 5);
    assert_int_equal(http_retry_after_parse("Thu, 29 Feb 2023 12:00:00 GMT", 0), -1);
    assert_int_equal(http_retry_after_parse("Sun, 31 Apr 1994 08:49:37 GMT", 0), -1);
    assert_int_equal(http_retry_after_parse("Sun, 06 Nov 1994 24:00:00 GMT", 0), -1);
    assert_int_equal(http_retry_after_parse("Sun, 06 Nov 1994 08:49:37 UTC", 0), -1);
    assert_int_equal(http_retry_after_parse("Sun, 6 Nov 1994 08:49:37 GMT", 0), -1);
    assert_int_equal(http_retry_after_parse("Sun, 06 Foo 1994 08:49:37 GMT", 0), -1);
    assert_int_equal(http_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT trailing", 0), -1);
    /* RFC 850 two-digit years: never more than 50 years into the future */
    struct tm t2 = {.tm_year = 2030 - 1900, .tm_mon = 0, .tm_mday = 1};
    int64_t in2030 = timegm(&t2);
    assert_int_equal(http_retry_after_parse("Monday, 31-Dec-29 00:00:00 GMT", in2030), 0);
    assert_int_equal(http_retry_after_parse("Wednesday, 01-Jan-31 00:00:00 GMT", in2030),
                     365 * 86400);
    assert_int_equal(http_retry_after_parse("Monday, 01-Jan-85 00:00:00 GMT", in2030), 0);
    struct tm t3 = {.tm_year = 1984 - 1900, .tm_mon = 11, .tm_mday = 31};
    int64_t in1984 = timegm(&t3);
    assert_int_equal(http_retry_after_parse("Tuesday, 01-Jan-85 00:00:00 GMT", in1984), 86400);
}

static void expect_link(const char *value, const char *rel, const char *want)
{
    char *got = http_link_url(value, rel);
    if (want == NULL) {
        assert_null(got);
    } else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
    free(got);
}

static void test_link_header_parsing(void **state)
{
    (void)state;
    expect_link("<https://ca/cert/1/alt>;rel=\"alternate\"", "alternate", "https://ca/cert/1/alt");
    expect_link("<https://ca/dir>;rel=\"index\"", "alternate", NULL);
    expect_link("<https://ca/a>; rel=\"up\", <https://ca/b>; rel=alternate", "alternate",
                "https://ca/b");
    expect_link("<https://ca/a>; rel=\"up\", <https://ca/b>; rel=alternate", "up", "https://ca/a");
    expect_link("<https://ca/a>; rel=\"index alternate\"", "alternate", "https://ca/a");
    expect_link("<https://ca/a>; REL=\"Alternate\"", "alternate", "https://ca/a");
    expect_link("<https://ca/a>; title=\"x, rel=alternate\"; rel=up", "alternate", NULL);
    expect_link("<https://ca/a>; title=\"x, y\"; rel=up, <https://ca/b>;rel=\"alternate\"",
                "alternate", "https://ca/b");
    expect_link("<https://ca/a,b>; rel=alternate", "alternate", "https://ca/a,b");
    expect_link("<https://ca/a>; rel=\"alternate-ish\"", "alternate", NULL);
    expect_link("<https://ca/a>; rel=up; rel=alternate", "alternate", NULL); /* first rel only */
    expect_link("<https://ca/a>; crossorigin; rel=alternate", "alternate", "https://ca/a");
    expect_link("<https://ca/a>; rel=\"alt\\\"ernate\"", "alt\"ernate", "https://ca/a");
    expect_link("https://ca/a; rel=alternate", "alternate", NULL);
    expect_link("<https://ca/a; rel=alternate", "alternate", NULL);
    expect_link("<https://ca/a>; rel=\"alternate", "alternate", NULL);
    expect_link("", "alternate", NULL);
    expect_link(NULL, "alternate", NULL);
    expect_link(" , <https://ca/a> ; rel = alternate ,", "alternate", "https://ca/a");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_round_trip_captures_headers),
        cmocka_unit_test(test_post_round_trip_sends_body_and_content_type),
        cmocka_unit_test(test_head_has_headers_and_empty_body),
        cmocka_unit_test(test_redirect_is_not_followed),
        cmocka_unit_test(test_body_cap_gives_too_big),
        cmocka_unit_test(test_too_many_headers_gives_too_big),
        cmocka_unit_test(test_timeout_gives_err_timeout),
        cmocka_unit_test(test_connection_refused_gives_err_http),
        cmocka_unit_test(test_server_drop_gives_err_http),
        cmocka_unit_test(test_synchronous_failures_never_call_back),
        cmocka_unit_test(test_cancel_right_after_start_is_silent),
        cmocka_unit_test(test_cancel_while_server_delays_is_silent),
        cmocka_unit_test(test_close_client_with_requests_in_flight_is_silent),
        cmocka_unit_test(test_200_concurrent_requests_complete_once_each),
        cmocka_unit_test(test_callback_may_start_another_request),
        cmocka_unit_test(test_callback_may_cancel_siblings_and_close_client),
        cmocka_unit_test(test_callback_may_cancel_finished_siblings),
        cmocka_unit_test(test_transport_error_logged_once_with_method_and_url),
        cmocka_unit_test(test_debug_log_masks_body),
        cmocka_unit_test(test_cancel_from_own_callback_is_harmless),
        cmocka_unit_test(test_https_trust_file_adds_anchor),
        cmocka_unit_test(test_https_http2_multiplexes_and_keeps_trust_apart),
        cmocka_unit_test(test_retry_after_delta_seconds),
        cmocka_unit_test(test_retry_after_http_dates),
        cmocka_unit_test(test_link_header_parsing),
        cmocka_unit_test(test_redacted_url_keeps_the_secret_out_of_the_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
