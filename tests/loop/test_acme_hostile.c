/* The ACME client against a hostile CA (issue 17 items 3 and 4), a fake
 * built on tests/support/fake_http that answers like an ACME server but
 * hands out URLs of its choosing and says "Retry-After: 0" forever:
 * - a directory whose newNonce points at another host fails the account
 *   setup naming the URL and "newNonce in the directory", and nothing is
 *   sent there;
 * - an order whose finalize URL points at another host (or plain http off
 *   loopback) fails naming the URL and "the order's finalize" before
 *   anything is sent there; with allow_other_hosts = true it is followed;
 * - an authorization that stays pending with Retry-After: 0 is polled at
 *   most once a second (it was ~22 times a second), and an order stops
 *   after max_requests requests;
 * - issue 16: the CA seen fetching the token (acme_order_chal_seen) gets the
 *   authorization polled once, then the order goes on with no more requests
 *   than with timed polls; a CA that keeps fetching a token while the
 *   authorization stays pending gets no more polls than the floor allows;
 *   an order of two names whose tokens were both fetched is polled once as
 *   an order (pending: each authorization on its own after the floor).
 * Every test runs its loop dry and checks uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acme/acme.h"
#include "config/config.h"
#include "fake_http.h"
#include "net/net.h"
#include "test_config.h"
#include "store/store.h"
#include "util/err.h"
#include "util/xalloc.h"

/* acme/order_internal.h's POLL_FLOOR_MS: no timed poll sooner */
#define POLL_FLOOR_MS_TEST 1000

struct hostile {
    struct fake_http *srv;
    unsigned seq;
    const char *new_nonce; /* directory newNonce, or NULL: ours */
    const char *finalize;  /* the order's finalize URL, or NULL: ours */
    bool authz_stuck;      /* the authorization stays pending, Retry-After: 0 */
    bool no_retry_after;   /* authz_stuck without any Retry-After */
    bool until_seen;       /* the authorization is pending until the test saw a fetch */
    bool seen;
    bool two;                /* two names: x.test (tok1) and y.test (tok2) */
    unsigned order_lags;     /* order polls answered pending although both were seen */
    unsigned authz_polls;    /* authorization fetches after the challenge answer */
    unsigned order_polls;    /* POST-as-GETs of the order */
    unsigned order_requests; /* every POST after the account's */
    unsigned fin_posts;      /* POSTs to our finalize */
    uint64_t first_poll_ms, last_poll_ms;
    uv_loop_t *loop;
};

static void body(struct fake_http_response *resp, int status, const char *text)
{
    resp->status = status;
    fake_http_resp_header(resp, "Content-Type", "application/json");
    fake_http_resp_body(resp, text);
}

static void handler(const struct fake_http_request *req, struct fake_http_response *resp, void *arg)
{
    struct hostile *H = arg;
    const char *b = fake_http_url(H->srv);
    char *t = NULL;

    fake_http_resp_header(resp, "Replay-Nonce", "n%u", ++H->seq);
    if (strcmp(req->target, "/dir") == 0) {
        char *nn = H->new_nonce != NULL ? xstrdup(H->new_nonce) : xasprintf("%s/nonce", b);
        t = xasprintf("{\"newNonce\":\"%s\",\"newAccount\":\"%s/acct\",\"newOrder\":\"%s/order\"}",
                      nn, b, b);
        free(nn);
        body(resp, 200, t);
    } else if (strcmp(req->target, "/nonce") == 0) {
        resp->status = 200;
    } else if (strcmp(req->target, "/acct") == 0) {
        fake_http_resp_header(resp, "Location", "%s/acct/1", b);
        body(resp, 201, "{\"status\":\"valid\"}");
    } else if (strcmp(req->target, "/order") == 0) {
        char *fin = H->finalize != NULL ? xstrdup(H->finalize) : xasprintf("%s/fin/1", b);
        H->order_requests++;
        char *az = H->two ? xasprintf("\"%s/authz/1\",\"%s/authz/2\"", b, b)
                          : xasprintf("\"%s/authz/1\"", b);
        t = xasprintf("{\"status\":\"%s\",\"identifiers\":[{\"type\":\"dns\",\"value\":"
                      "\"x.test\"}],\"authorizations\":[%s],\"finalize\":\"%s\"}",
                      H->authz_stuck || H->until_seen ? "pending" : "ready", az, fin);
        free(az);
        free(fin);
        fake_http_resp_header(resp, "Location", "%s/order/1", b);
        body(resp, 201, t);
    } else if (strcmp(req->target, "/order/1") == 0) {
        bool lag = H->order_lags > 0;
        H->order_requests++;
        H->order_polls++;
        if (lag)
            H->order_lags--;
        t = xasprintf("{\"status\":\"%s\",\"authorizations\":[\"%s/authz/1\"],"
                      "\"finalize\":\"%s/fin/1\"}",
                      H->seen && !lag ? "ready" : "pending", b, b);
        body(resp, 200, t);
    } else if (strcmp(req->target, "/authz/1") == 0 || strcmp(req->target, "/authz/2") == 0) {
        bool two = strcmp(req->target, "/authz/2") == 0;
        bool pending =
            H->authz_stuck || (H->until_seen && !H->seen) || (H->until_seen && H->order_lags > 0);
        H->order_requests++;
        if (H->authz_stuck || H->until_seen) {
            uint64_t now = uv_now(H->loop);
            if (H->authz_polls++ == 0)
                H->first_poll_ms = now;
            H->last_poll_ms = now;
            if (H->authz_stuck && !H->no_retry_after)
                fake_http_resp_header(resp, "Retry-After", "0");
        }
        t = xasprintf("{\"status\":\"%s\",\"identifier\":{\"type\":\"dns\",\"value\":"
                      "\"%c.test\"},\"challenges\":[{\"type\":\"http-01\",\"url\":\"%s/chal/%d\","
                      "\"token\":\"tok%d\",\"status\":\"%s\"}]}",
                      pending ? "pending" : "valid", two ? 'y' : 'x', b, two ? 2 : 1, two ? 2 : 1,
                      pending ? "pending" : "valid");
        body(resp, 200, t);
    } else if (strcmp(req->target, "/chal/1") == 0 || strcmp(req->target, "/chal/2") == 0) {
        H->order_requests++;
        if (!H->no_retry_after && !H->until_seen)
            fake_http_resp_header(resp, "Retry-After", "0");
        body(resp, 200, "{\"type\":\"http-01\",\"status\":\"processing\"}");
    } else if (strcmp(req->target, "/fin/1") == 0) {
        H->order_requests++;
        H->fin_posts++;
        /* stays processing: the test only needs to see the finalize arrive */
        body(resp, 403, "{}");
    } else {
        resp->status = 404;
    }
    free(t);
}

struct fx {
    uv_loop_t loop;
    struct http_client *http;
    struct hostile H;
    char dir[64];
    char *state;
    struct store *store; /* the file backend on state */
    struct config *cfg;
    struct acme_client *client;
};

static void fx_open(struct fx *f, const char *ca_extra)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->H.loop = &f->loop;
    assert_int_equal(http_client_open(&f->loop, &f->http), 0);
    assert_int_equal(fake_http_start(&f->loop, handler, &f->H, &f->H.srv), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/certloop-hostile-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->state = xasprintf("%s/state", f->dir);
    assert_int_equal(mkdir(f->state, 0700), 0);
    assert_int_equal(store_fs_open(&f->loop, f->state, 0, &f->store), 0);
    char *path = xasprintf("%s/certloop.toml", f->dir);
    char *toml = xasprintf("[daemon]\nstate_dir = \"%s\"\n\n[ca.t]\ndirectory = \"%s/dir\"\n"
                           "agree_tos = true\n%s\n"
                           "[certificate.www]\ndomains = [\"x.test\"]\nca = \"t\"\n",
                           f->state, fake_http_url(f->H.srv), ca_extra);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(toml, fp);
    fclose(fp);
    f->cfg = test_config_load(path);
    free(path);
    free(toml);
    struct acme_client_opts o = {
        .loop = &f->loop,
        .http = f->http,
        .cfg = f->cfg,
        .ca = config_ca_find(f->cfg, "t"),
        .store = f->store,
    };
    assert_int_equal(acme_client_new(&o, &f->client), 0);
}

static void fx_close(struct fx *f)
{
    acme_client_close(f->client);
    http_client_close(f->http);
    fake_http_close(f->H.srv);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    store_close(f->store);
    config_unref(f->cfg);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", f->dir, (char *)NULL);
        _exit(127);
    }
    (void)waitpid(pid, NULL, 0);
    free(f->state);
}

struct got {
    int calls, status;
    char *error;
};

static void req_cb(int status, const struct acme_response *r, void *arg)
{
    struct got *g = arg;

    g->calls++;
    g->status = status;
    g->error = r->error != NULL ? xstrdup(r->error) : NULL;
}

static void order_cb(int status, struct acme_order_result *res, void *arg)
{
    struct got *g = arg;

    g->calls++;
    g->status = status;
    g->error = res != NULL && res->error != NULL ? xstrdup(res->error) : NULL;
    acme_order_result_free(res);
}

static int present(void *ctx, const char *token, const char *keyauth)
{
    (void)ctx;
    (void)token;
    (void)keyauth;
    return 0;
}

static void cleanup(void *ctx, const char *token)
{
    (void)ctx;
    (void)token;
}

/* The CA "fetches" tok1 every 10 ms from the challenge answer on (what our
 * listener would report), until the order ends. */
struct fetcher {
    uv_timer_t timer;
    struct fx *f;
    struct acme_order *order; /* NULL once the order ended */
    unsigned fetches;
    bool once; /* one fetch, and the authorization turns valid */
};

static void fetch_cb(uv_timer_t *t)
{
    struct fetcher *fe = t->data;

    /* not before the challenges are answered */
    if (fe->order == NULL || fe->f->H.order_requests < (fe->f->H.two ? 5 : 3))
        return;
    fe->fetches++;
    if (fe->once) {
        fe->f->H.seen = true;
        uv_timer_stop(t);
    }
    acme_order_chal_seen(fe->order, "tok1");
    if (fe->f->H.two)
        acme_order_chal_seen(fe->order, "tok2");
    acme_order_chal_seen(fe->order, "another-token"); /* not this order's: ignored */
}

static void fetched_order_cb(int status, struct acme_order_result *res, void *arg)
{
    struct fetcher *fe = arg;
    struct got *g = fe->timer.loop->data;

    fe->order = NULL;
    uv_close((uv_handle_t *)&fe->timer, NULL);
    order_cb(status, res, g);
}

/* Runs one order to its end; with fe, the CA "fetches" its token as fe says. */
static void run_order(struct fx *f, unsigned max_requests, int authz_timeout_s, struct got *g,
                      struct fetcher *fe)
{
    struct acme_chal_ops ops = {.present = present, .cleanup = cleanup};
    EVP_PKEY *k = NULL;

    assert_int_equal(acme_key_generate(CFG_KEY_EC_P256, &k), 0);
    struct acme_order_opts o = {
        .cert = config_cert_find(f->cfg, "www"),
        .key = k,
        .chal = &ops,
        .store = f->store,
        .authz_timeout_s = authz_timeout_s,
        .max_requests = max_requests,
    };
    if (fe != NULL) {
        fe->f = f;
        f->loop.data = g;
        uv_timer_init(&f->loop, &fe->timer);
        fe->timer.data = fe;
        uv_timer_start(&fe->timer, fetch_cb, 10, 10);
        assert_int_equal(acme_order_start(f->client, &o, fetched_order_cb, fe, &fe->order), 0);
    } else {
        assert_int_equal(acme_order_start(f->client, &o, order_cb, g, NULL), 0);
    }
    uv_run(&f->loop, UV_RUN_DEFAULT);
    EVP_PKEY_free(k);
    assert_int_equal(g->calls, 1);
    assert_non_null(g->error);
}

static void test_directory_url_on_another_host_is_refused(void **state)
{
    struct fx f;
    struct got g = {0};
    (void)state;

    fx_open(&f, "");
    f.H.new_nonce = "https://nonce.evil.example/nonce";
    char *url = xasprintf("%s/echo", fake_http_url(f.H.srv));
    struct acme_request_opts ro = {.url = url, .payload = "{}", .subject = "test"};
    assert_int_equal(acme_request_start(f.client, &ro, req_cb, &g, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    free(url);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, ERR_URL_REFUSED);
    assert_non_null(g.error);
    if (strstr(g.error, "https://nonce.evil.example/nonce (newNonce in the directory)") == NULL ||
        strstr(g.error, "not the directory's") == NULL)
        fail_msg("error: %s", g.error);
    free(g.error);
    fx_close(&f);
}

static void test_finalize_on_another_host_is_refused(void **state)
{
    struct fx f;
    struct got g = {0};
    (void)state;

    fx_open(&f, "");
    f.H.finalize = "http://203.0.113.9/fin/1";
    run_order(&f, 0, 10, &g, NULL);
    assert_int_equal(g.status, ERR_URL_REFUSED);
    if (strstr(g.error, "URL http://203.0.113.9/fin/1 (the order's finalize) refused: not https") ==
        NULL)
        fail_msg("error: %s", g.error);
    free(g.error);
    /* another loopback address is another host too */
    char *other = xasprintf("http://127.0.0.2:%d/fin/1", fake_http_port(f.H.srv));
    f.H.finalize = other;
    memset(&g, 0, sizeof(g));
    run_order(&f, 0, 10, &g, NULL);
    assert_int_equal(g.status, ERR_URL_REFUSED);
    if (strstr(g.error, "(the order's finalize) refused: host 127.0.0.2") == NULL)
        fail_msg("error: %s", g.error);
    free(g.error);
    assert_int_equal(f.H.fin_posts, 0);
    fx_close(&f);
    free(other);
}

static void test_allow_other_hosts_follows_them(void **state)
{
    struct fx f;
    struct got g = {0};
    (void)state;

    fx_open(&f, "allow_other_hosts = true\n");
    /* the same server under another name: followed, so our /fin/1 sees it */
    char *other = xasprintf("http://localhost:%d/fin/1", fake_http_port(f.H.srv));
    f.H.finalize = other;
    run_order(&f, 0, 10, &g, NULL);
    assert_int_equal(f.H.fin_posts, 1);
    assert_null(strstr(g.error, "refused"));
    free(g.error);
    fx_close(&f);
    free(other);
}

static void test_retry_after_zero_is_polled_once_a_second(void **state)
{
    struct fx f;
    struct got g = {0};
    (void)state;

    fx_open(&f, "");
    f.H.authz_stuck = true;
    run_order(&f, 0, 3, &g, NULL);
    assert_int_equal(g.status, ERR_TIMEOUT);
    /* 3 s of Retry-After: 0: the first fetch, the challenge answer, then
     * one poll a second (before the floor: ~22 a second) */
    assert_true(f.H.authz_polls >= 2);
    assert_true(f.H.authz_polls <= 5);
    uint64_t span = f.H.last_poll_ms - f.H.first_poll_ms;
    assert_true(span >= (uint64_t)(f.H.authz_polls - 2) * 1000);
    free(g.error);
    fx_close(&f);
}

static void test_order_gives_up_after_max_requests(void **state)
{
    struct fx f;
    struct got g = {0};
    (void)state;

    fx_open(&f, "");
    f.H.authz_stuck = true;
    run_order(&f, 5, 60, &g, NULL);
    assert_int_equal(g.status, ERR_TIMEOUT);
    if (strstr(g.error, "gave up after 5 requests") == NULL)
        fail_msg("error: %s", g.error);
    assert_int_equal(f.H.order_requests, 5);
    free(g.error);
    fx_close(&f);
}

static void test_token_fetched_polls_once_then_finalizes(void **state)
{
    struct fx f;
    struct fetcher fe = {.once = true};
    struct got g = {0};
    (void)state;

    fx_open(&f, "");
    f.H.until_seen = true;
    run_order(&f, 0, 3, &g, &fe);
    /* the fake's finalize answers 403: getting there is the point */
    assert_int_equal(f.H.fin_posts, 1);
    assert_int_equal(fe.fetches, 1);
    /* the first fetch, the challenge answer, one poll after the CA's fetch,
     * the finalize: what timed polls send against a CA as quick as this */
    assert_int_equal(f.H.authz_polls, 2);
    assert_int_equal(f.H.order_requests, 5);
    free(g.error);
    fx_close(&f);
}

static void test_token_fetched_over_and_over_is_no_hammer(void **state)
{
    struct fx f;
    struct fetcher fe = {.once = false};
    struct got g = {0};
    (void)state;

    fx_open(&f, "");
    f.H.authz_stuck = true;
    f.H.no_retry_after = true;
    run_order(&f, 0, 3, &g, &fe);
    assert_int_equal(g.status, ERR_TIMEOUT);
    assert_true(fe.fetches > 20);
    /* 3 s of fetches every 10 ms: the first fetch, one early poll, then
     * the timed polls (1 s, then 1.5 s): at most 4 */
    assert_true(f.H.authz_polls >= 2);
    assert_true(f.H.authz_polls <= 4);
    free(g.error);
    fx_close(&f);
}

/* An order for two names whose tokens the CA fetches once; its first
 * order_lags order polls answer pending. */
static void two_names_fetched(unsigned order_lags, unsigned want_authz_polls,
                              unsigned want_requests)
{
    struct fx f;
    struct fetcher fe = {.once = true};
    struct got g = {0};

    fx_open(&f, "");
    f.H.until_seen = true;
    f.H.two = true;
    f.H.order_lags = order_lags;
    uint64_t t0 = uv_now(&f.loop);
    run_order(&f, 0, 5, &g, &fe);
    assert_int_equal(f.H.fin_posts, 1);
    assert_int_equal(f.H.order_polls, 1);
    assert_int_equal(f.H.authz_polls, want_authz_polls);
    assert_int_equal(f.H.order_requests, want_requests);
    if (order_lags > 0)
        assert_true(f.H.last_poll_ms - t0 >= POLL_FLOOR_MS_TEST);
    free(g.error);
    fx_close(&f);
}

/* Issue 16: the CA fetched the tokens of both authorizations: one poll of
 * the order (ready) instead of one per authorization, then finalize:
 * newOrder, the 2 authorizations' first fetches, 2 challenge answers, the
 * order poll, finalize (one poll per authorization made 8). */
static void test_tokens_fetched_one_order_poll(void **state)
{
    (void)state;
    two_names_fetched(0, 2, 7);
}

/* The order is still pending when polled (the CA validates later): each
 * authorization is polled on its own from then on, after the floor (one
 * timed poll each). */
static void test_order_poll_pending_polls_each_authorization(void **state)
{
    (void)state;
    two_names_fetched(1, 4, 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directory_url_on_another_host_is_refused),
        cmocka_unit_test(test_finalize_on_another_host_is_refused),
        cmocka_unit_test(test_allow_other_hosts_follows_them),
        cmocka_unit_test(test_retry_after_zero_is_polled_once_a_second),
        cmocka_unit_test(test_order_gives_up_after_max_requests),
        cmocka_unit_test(test_token_fetched_polls_once_then_finalizes),
        cmocka_unit_test(test_token_fetched_over_and_over_is_no_hammer),
        cmocka_unit_test(test_tokens_fetched_one_order_poll),
        cmocka_unit_test(test_order_poll_pending_polls_each_authorization),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
