/* Loop tests of the ACME client and order machine (src/acme/client.c,
 * order.c) against a fake ACME server built on tests/support/fake_http:
 * one account setup for many queued requests, badNonce retries (bounded),
 * the onlyReturnExisting lookup of a stored key, cancel means silence, and
 * an order whose authorization fails names the identifier and the CA's
 * problem and removes its token. Every test runs its loop dry and checks
 * uv_loop_close() == 0. */
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
#include <fcntl.h>
#include <unistd.h>

#include "acme/acme.h"
#include "config/config.h"
#include "fake_http.h"
#include "test_config.h"
#include "net/net.h"
#include "store/store.h"
#include "util/b64.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

/* ---- the fake CA ---- */

enum authz_mode { AZ_PENDING_FOREVER, AZ_INVALID_AFTER_RESPONSE };

struct fake_ca {
    struct fake_http *srv;
    unsigned nonce_seq;
    unsigned dir_gets, nonce_heads, acct_posts, echo_posts, order_posts, chal_posts, authz_posts;
    unsigned bad_nonces_sent;
    unsigned echo_badnonce_left; /* answer /echo with badNonce this many times */
    unsigned echo_delay_ms;      /* answer /echo after this long */
    char replaces[128];          /* the last newOrder's "replaces", or "" */
    char profile[64];            /* the last newOrder's "profile", or "" */
    const char *dir_meta;        /* the directory's "meta" object (JSON), or NULL */
    bool acct_exists;            /* onlyReturnExisting finds it */
    bool saw_only_existing, saw_tos_after_lookup;
    unsigned kid_missing; /* kid-signed requests without the account URL as kid */
    char used_nonces[256][32];
    unsigned n_used;
    unsigned nonce_reused;
    enum authz_mode authz_mode;
    unsigned acct_no;     /* the current account is /acct/N (N >= 1) */
    unsigned echo_forget; /* forget the account on this many /echo requests */
    bool chal_answered;
};

static const char *base(struct fake_ca *F)
{
    return fake_http_url(F->srv);
}

static json_t *b64_json(const char *s)
{
    uint8_t *raw = NULL;
    size_t len = 0;
    json_t *j;

    if (s == NULL || b64url_decode(s, strlen(s), &raw, &len) < 0)
        return NULL;
    j = json_loadb((const char *)raw, len, 0, NULL);
    free(raw);
    return j;
}

static void problem(struct fake_http_response *resp, int status, const char *type,
                    const char *detail)
{
    char *b =
        xasprintf("{\"type\":\"urn:ietf:params:acme:error:%s\",\"detail\":\"%s\"}", type, detail);
    resp->status = status;
    fake_http_resp_header(resp, "Content-Type", "application/problem+json");
    fake_http_resp_body(resp, b);
    free(b);
}

static void json_body(struct fake_http_response *resp, int status, const char *body)
{
    resp->status = status;
    fake_http_resp_header(resp, "Content-Type", "application/json");
    fake_http_resp_body(resp, body);
}

static void handler(const struct fake_http_request *req, struct fake_http_response *resp, void *arg)
{
    struct fake_ca *F = arg;
    const char *b = base(F);

    fake_http_resp_header(resp, "Replay-Nonce", "n%u", ++F->nonce_seq);
    if (strcmp(req->target, "/dir") == 0) {
        char *d = xasprintf("{\"newNonce\":\"%s/nonce\",\"newAccount\":\"%s/acct\","
                            "\"newOrder\":\"%s/order\"%s%s}",
                            b, b, b, F->dir_meta != NULL ? ",\"meta\":" : "",
                            F->dir_meta != NULL ? F->dir_meta : "");
        F->dir_gets++;
        json_body(resp, 200, d);
        free(d);
        return;
    }
    if (strcmp(req->target, "/nonce") == 0) {
        F->nonce_heads++;
        resp->status = 200;
        return;
    }
    /* Everything else is a JWS POST. */
    json_t *jws = json_loadb(req->body, req->body_len, 0, NULL);
    json_t *prot = b64_json(json_string_value(json_object_get(jws, "protected")));
    const char *payload_b64 = json_string_value(json_object_get(jws, "payload"));
    json_t *payload = payload_b64 != NULL && *payload_b64 ? b64_json(payload_b64) : NULL;
    const char *nonce = json_string_value(json_object_get(prot, "nonce"));
    const char *kid = json_string_value(json_object_get(prot, "kid"));
    char *acct_url = xasprintf("%s/acct/%u", b, F->acct_no > 0 ? F->acct_no : 1);

    if (nonce != NULL) {
        for (unsigned i = 0; i < F->n_used; i++)
            if (strcmp(F->used_nonces[i], nonce) == 0)
                F->nonce_reused++;
        if (F->n_used < 256)
            snprintf(F->used_nonces[F->n_used++], sizeof(F->used_nonces[0]), "%s", nonce);
    }
    if (strcmp(req->target, "/acct") == 0) {
        F->acct_posts++;
        if (json_is_true(json_object_get(payload, "onlyReturnExisting"))) {
            F->saw_only_existing = true;
            if (!F->acct_exists) {
                problem(resp, 400, "accountDoesNotExist", "no such account");
                goto out;
            }
        } else if (F->saw_only_existing &&
                   json_is_true(json_object_get(payload, "termsOfServiceAgreed"))) {
            F->saw_tos_after_lookup = true;
        }
        fake_http_resp_header(resp, "Location", "%s", acct_url);
        json_body(resp, F->acct_exists ? 200 : 201, "{\"status\":\"valid\"}");
        goto out;
    }
    if (kid == NULL || strcmp(kid, acct_url) != 0)
        F->kid_missing++;
    if (strcmp(req->target, "/echo") == 0) {
        F->echo_posts++;
        resp->delay_ms = F->echo_delay_ms;
        if (F->echo_forget > 0) {
            F->echo_forget--;
            F->acct_no = (F->acct_no > 0 ? F->acct_no : 1) + 1;
            F->acct_exists = false;
            problem(resp, 400, "accountDoesNotExist", "no such account");
            goto out;
        }
        if (F->echo_badnonce_left > 0) {
            F->echo_badnonce_left--;
            F->bad_nonces_sent++;
            problem(resp, 400, "badNonce", "JWS has an invalid anti-replay nonce");
            goto out;
        }
        json_body(resp, 200, "{\"ok\":true}");
        goto out;
    }
    if (strcmp(req->target, "/order") == 0) {
        char *o = xasprintf("{\"status\":\"pending\",\"identifiers\":[{\"type\":\"dns\","
                            "\"value\":\"x.test\"}],\"authorizations\":[\"%s/authz/1\"],"
                            "\"finalize\":\"%s/fin/1\"}",
                            b, b);
        F->order_posts++;
        const char *rp = json_string_value(json_object_get(payload, "replaces"));
        snprintf(F->replaces, sizeof(F->replaces), "%s", rp != NULL ? rp : "");
        const char *pf = json_string_value(json_object_get(payload, "profile"));
        snprintf(F->profile, sizeof(F->profile), "%s", pf != NULL ? pf : "");
        fake_http_resp_header(resp, "Location", "%s/order/1", b);
        json_body(resp, 201, o);
        free(o);
        goto out;
    }
    if (strcmp(req->target, "/authz/1") == 0) {
        char *a;
        F->authz_posts++;
        if (F->chal_answered && F->authz_mode == AZ_INVALID_AFTER_RESPONSE)
            a = xasprintf("{\"status\":\"invalid\",\"identifier\":{\"type\":\"dns\",\"value\":"
                          "\"x.test\"},\"challenges\":[{\"type\":\"http-01\",\"url\":\"%s/chal/"
                          "1\",\"token\":\"tok1\",\"status\":\"invalid\",\"error\":{\"type\":"
                          "\"urn:ietf:params:acme:error:connection\",\"detail\":\"127.0.0.1: "
                          "Connection refused\"}}]}",
                          b);
        else
            a = xasprintf("{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":"
                          "\"x.test\"},\"challenges\":[{\"type\":\"dns-01\",\"url\":\"%s/chal/"
                          "2\",\"token\":\"tok2\",\"status\":\"pending\"},{\"type\":\"http-01\","
                          "\"url\":\"%s/chal/1\",\"token\":\"tok1\",\"status\":\"pending\"}]}",
                          b, b);
        json_body(resp, 200, a);
        free(a);
        goto out;
    }
    if (strcmp(req->target, "/chal/1") == 0) {
        F->chal_posts++;
        F->chal_answered = true;
        json_body(resp, 200, "{\"type\":\"http-01\",\"status\":\"processing\"}");
        goto out;
    }
    resp->status = 404;
out:
    free(acct_url);
    json_decref(payload);
    json_decref(prot);
    json_decref(jws);
}

/* ---- harness ---- */

struct fx {
    uv_loop_t loop;
    struct http_client *http;
    struct fake_ca F;
    char dir[64];
    char *state;
    struct store *store; /* the file backend on state */
    struct config *cfg;
    struct acme_client *client;
};

/* Extra lines for [ca.t], set by a test before fx_open. */
static const char *fx_ca_extra = "";

static void fx_open(struct fx *f)
{
    char *path, *toml;
    FILE *fp;

    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(http_client_open(&f->loop, &f->http), 0);
    assert_int_equal(fake_http_start(&f->loop, handler, &f->F, &f->F.srv), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/certloop-acmeloop-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->state = xasprintf("%s/state", f->dir);
    assert_int_equal(mkdir(f->state, 0700), 0);
    assert_int_equal(store_fs_open(&f->loop, f->state, 0, &f->store), 0);
    path = xasprintf("%s/certloop.toml", f->dir);
    toml = xasprintf("[daemon]\nstate_dir = \"%s\"\n\n[ca.t]\ndirectory = \"%s/dir\"\n"
                     "contact = [\"mailto:ops@example.org\"]\nagree_tos = true\n%s\n"
                     "[certificate.www]\ndomains = [\"x.test\"]\nca = \"t\"\n",
                     f->state, fake_http_url(f->F.srv), fx_ca_extra);
    fp = fopen(path, "w");
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

/* Stores an account through the store and waits for it (status). */
static int put_account(struct fx *f, const char *key_pem, const char *json)
{
    struct store_wait w;

    store_wait_init(&w);
    assert_int_equal(store_account_put_start(f->store, "t", key_pem, json, store_wait_cb, &w), 0);
    int rc = store_wait_run(&f->loop, &w);
    store_wait_fini(&w);
    return rc;
}

/* Forgets the order in flight of name through the store and waits. */
static int settle_order(struct fx *f, const char *name)
{
    struct store_wait w;

    store_wait_init(&w);
    assert_int_equal(store_order_settle_start(f->store, name, store_wait_cb, &w), 0);
    int rc = store_wait_run(&f->loop, &w);
    store_wait_fini(&w);
    return rc;
}

static void rm_rf(const char *dir)
{
    char *cmd[] = {"rm", "-rf", (char *)dir, NULL};
    pid_t pid = fork();

    if (pid == 0) {
        execvp(cmd[0], cmd);
        _exit(127);
    }
    if (pid > 0)
        (void)waitpid(pid, NULL, 0);
}

static void fx_close(struct fx *f)
{
    acme_client_close(f->client);
    http_client_close(f->http);
    fake_http_close(f->F.srv);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    store_close(f->store);
    config_unref(f->cfg);
    rm_rf(f->dir);
    free(f->state);
}

struct got {
    int calls;
    int status;
    char *error;
};

static void got_cb(int status, const struct acme_response *r, void *arg)
{
    struct got *g = arg;

    g->calls++;
    g->status = status;
    free(g->error);
    g->error = r != NULL && r->error != NULL ? xstrdup(r->error) : NULL;
}

static int echo(struct fx *f, struct got *g, struct acme_request **out)
{
    char *url = xasprintf("%s/echo", fake_http_url(f->F.srv));
    struct acme_request_opts o = {.url = url, .payload = "{}", .subject = "test"};
    int rc = acme_request_start(f->client, &o, got_cb, g, out);

    free(url);
    return rc;
}

/* ---- tests ---- */

static void test_requests_queue_behind_one_account_setup(void **state)
{
    struct fx f;
    struct got g[5];
    struct stat st;
    char *p;

    (void)state;
    memset(g, 0, sizeof(g));
    fx_open(&f);
    for (int i = 0; i < 5; i++)
        assert_int_equal(echo(&f, &g[i], NULL), 0);
    assert_int_equal(g[0].calls, 0); /* never from inside _start */
    uv_run(&f.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].status, 0);
        free(g[i].error);
    }
    assert_int_equal(f.F.dir_gets, 1);
    assert_int_equal(f.F.acct_posts, 1);
    assert_int_equal(f.F.echo_posts, 5);
    assert_int_equal(f.F.kid_missing, 0);
    assert_int_equal(f.F.nonce_reused, 0);
    assert_non_null(acme_client_thumbprint(f.client));
    /* the account key is stored, private */
    p = xasprintf("%s/accounts/t/account.key", f.state);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(p);
    char *key = NULL, *js = NULL;
    assert_int_equal(store_account_read(f.store, "t", &key, &js), 0);
    assert_non_null(strstr(js, "/acct/1"));
    free(key);
    free(js);
    fx_close(&f);
}

/* Six slow requests at once: with max_parallel_requests = 2 the CA never
 * sees more than two at a time (HTTP/1.1 to the fake: one connection per
 * request in flight, reused after), all six still complete; without the
 * limit they overlap on more connections. */
static unsigned parallel_run(const char *extra, struct fake_ca *out)
{
    struct fx f;
    struct got g[6];
    unsigned conns;

    memset(g, 0, sizeof(g));
    fx_ca_extra = extra;
    fx_open(&f);
    fx_ca_extra = "";
    f.F.echo_delay_ms = 40;
    for (int i = 0; i < 6; i++)
        assert_int_equal(echo(&f, &g[i], NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].status, 0);
        free(g[i].error);
    }
    conns = fake_http_connections(f.F.srv);
    *out = f.F;
    fx_close(&f);
    return conns;
}

static void test_max_parallel_requests_bounds_the_ca(void **state)
{
    struct fake_ca F;

    (void)state;
    assert_true(parallel_run("max_parallel_requests = 2\n", &F) <= 2);
    assert_int_equal(F.echo_posts, 6);
    assert_int_equal(F.nonce_reused, 0);
    assert_true(parallel_run("max_parallel_requests = 1\n", &F) == 1);
    assert_int_equal(F.echo_posts, 6);
    assert_true(parallel_run("", &F) > 2);
    assert_int_equal(F.echo_posts, 6);
}

static void test_badnonce_retried_with_the_new_nonce(void **state)
{
    struct fx f;
    struct got g = {0};

    (void)state;
    fx_open(&f);
    f.F.echo_badnonce_left = 3;
    assert_int_equal(echo(&f, &g, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_int_equal(f.F.bad_nonces_sent, 3);
    assert_int_equal(f.F.echo_posts, 4);
    assert_int_equal(f.F.nonce_reused, 0);
    /* every response carried a nonce (the directory's too), so the retries
     * used the nonces that came with the errors: no HEAD newNonce at all */
    assert_int_equal(f.F.nonce_heads, 0);
    free(g.error);
    fx_close(&f);
}

static void test_badnonce_retries_are_bounded(void **state)
{
    struct fx f;
    struct got g = {0};

    (void)state;
    fx_open(&f);
    f.F.echo_badnonce_left = 1000;
    assert_int_equal(echo(&f, &g, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, ERR_BAD_NONCE);
    assert_int_equal(f.F.echo_posts, 1 + ACME_BADNONCE_RETRIES);
    assert_non_null(g.error);
    assert_non_null(strstr(g.error, "badNonce"));
    free(g.error);
    fx_close(&f);
}

static void test_cancel_never_calls_back(void **state)
{
    struct fx f;
    struct got g = {0}, g2 = {0};
    struct acme_request *r = NULL;

    (void)state;
    fx_open(&f);
    assert_int_equal(echo(&f, &g, &r), 0);
    assert_int_equal(echo(&f, &g2, NULL), 0);
    acme_request_cancel(r);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 0);
    assert_int_equal(g2.calls, 1);
    assert_int_equal(g2.status, 0);
    /* and closing the client with a request in flight silences it too */
    assert_int_equal(echo(&f, &g, NULL), 0);
    free(g2.error);
    fx_close(&f);
    assert_int_equal(g.calls, 0);
}

static void test_stored_key_is_looked_up_then_registered(void **state)
{
    struct fx f;
    struct got g = {0};
    EVP_PKEY *k = NULL;
    char *pem = NULL;
    size_t len;

    (void)state;
    fx_open(&f);
    /* a key stored by a run that crashed before newAccount answered */
    assert_int_equal(acme_key_generate(CFG_KEY_EC_P256, &k), 0);
    assert_int_equal(acme_key_to_pem(k, &pem, &len), 0);
    char *aj = xasprintf("{\"directory\":\"%s/dir\"}", fake_http_url(f.F.srv));
    assert_int_equal(put_account(&f, pem, aj), 0);
    assert_int_equal(echo(&f, &g, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(g.status, 0);
    assert_true(f.F.saw_only_existing);
    assert_true(f.F.saw_tos_after_lookup);
    assert_int_equal(f.F.acct_posts, 2);
    /* the stored key was kept */
    char *thumb = acme_jwk_thumbprint(k);
    assert_string_equal(acme_client_thumbprint(f.client), thumb);
    free(thumb);
    free(aj);
    free(pem);
    EVP_PKEY_free(k);
    free(g.error);
    fx_close(&f);
}

static void test_forgotten_account_is_set_up_again(void **state)
{
    struct fx f;
    struct got g = {0}, g2 = {0};

    (void)state;
    fx_open(&f);
    assert_int_equal(echo(&f, &g, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(g.status, 0);
    /* the CA restarts and forgets the account: the request is sent again
     * behind a new setup (lookup of the stored key, then registration) */
    f.F.echo_forget = 1;
    f.F.saw_only_existing = false;
    assert_int_equal(echo(&f, &g2, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(g2.calls, 1);
    assert_int_equal(g2.status, 0);
    assert_true(f.F.saw_only_existing);
    assert_int_equal(f.F.acct_posts, 3);
    assert_int_equal(f.F.kid_missing, 0); /* each carried the account URL of its time */
    char *want = xasprintf("%s/acct/2", fake_http_url(f.F.srv));
    assert_string_equal(acme_client_account_url(f.client), want);
    char *key = NULL, *js = NULL;
    assert_int_equal(store_account_read(f.store, "t", &key, &js), 0);
    assert_non_null(strstr(js, want));
    free(want);
    free(key);
    free(js);
    free(g.error);
    free(g2.error);
    fx_close(&f);
}

/* ---- orders ---- */

struct chal_rec {
    int present, cleanup;
    char token[64];
    char keyauth[256];
};

static int rec_present(void *ctx, const char *token, const char *keyauth)
{
    struct chal_rec *c = ctx;

    c->present++;
    snprintf(c->token, sizeof(c->token), "%s", token);
    snprintf(c->keyauth, sizeof(c->keyauth), "%s", keyauth);
    return 0;
}

static void rec_cleanup(void *ctx, const char *token)
{
    struct chal_rec *c = ctx;

    if (strcmp(token, c->token) == 0)
        c->cleanup++;
}

struct order_got {
    int calls;
    int status;
    char *error;
};

static void order_cb(int status, struct acme_order_result *res, void *arg)
{
    struct order_got *g = arg;

    g->calls++;
    g->status = status;
    g->error = res != NULL && res->error != NULL ? xstrdup(res->error) : NULL;
    acme_order_result_free(res);
}

/* fx_open with a CA whose authorization turns invalid once answered, and
 * the options of an order for "www" with a new key (*k, owned). */
static struct acme_order_opts invalid_order_open(struct fx *f, struct acme_chal_ops *ops,
                                                 EVP_PKEY **k)
{
    fx_open(f);
    f->F.authz_mode = AZ_INVALID_AFTER_RESPONSE;
    assert_int_equal(acme_key_generate(CFG_KEY_EC_P256, k), 0);
    struct acme_order_opts o = {
        .cert = config_cert_find(f->cfg, "www"),
        .key = *k,
        .chal = ops,
        .store = f->store,
    };
    return o;
}

static void test_order_failure_names_identifier_and_problem(void **state)
{
    struct fx f;
    struct chal_rec c = {0};
    struct order_got g = {0};
    struct acme_chal_ops ops = {.present = rec_present, .cleanup = rec_cleanup, .ctx = &c};
    EVP_PKEY *k = NULL;

    (void)state;
    struct acme_order_opts o = invalid_order_open(&f, &ops, &k);
    assert_int_equal(acme_order_start(f.client, &o, order_cb, &g, NULL), 0);
    assert_int_equal(g.calls, 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, ERR_CHALLENGE);
    assert_non_null(g.error);
    assert_string_equal(g.error, "name=x.test: authorization invalid: "
                                 "urn:ietf:params:acme:error:connection: 127.0.0.1: "
                                 "Connection refused");
    /* the http-01 token (not the dns-01 one) was served, then removed */
    assert_string_equal(c.token, "tok1");
    char *want = xasprintf("tok1.%s", acme_client_thumbprint(f.client));
    assert_string_equal(c.keyauth, want);
    free(want);
    assert_int_equal(c.present, 1);
    assert_int_equal(c.cleanup, 1);
    assert_int_equal(f.F.chal_posts, 1);
    /* the order file was written before the challenge was answered */
    char *json = NULL;
    assert_int_equal(store_order_read(f.store, "www", &json), 0);
    assert_non_null(strstr(json, "/order/1"));
    free(json);
    /* ... and it resumes with the same key */
    char *url = NULL;
    EVP_PKEY *k2 = NULL;
    assert_int_equal(acme_order_resume_load(f.store, config_cert_find(f.cfg, "www"), &url, &k2), 0);
    assert_int_equal(EVP_PKEY_eq(k, k2), 1);
    free(url);
    EVP_PKEY_free(k2);
    /* without ARI no "replaces" was sent; with a CertID it is */
    assert_string_equal(f.F.replaces, "");
    g.calls = 0;
    free(g.error);
    g.error = NULL;
    assert_int_equal(settle_order(&f, "www"), 0);
    o.replaces = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";
    assert_int_equal(acme_order_start(f.client, &o, order_cb, &g, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    assert_string_equal(f.F.replaces, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    EVP_PKEY_free(k);
    free(g.error);
    fx_close(&f);
}

/* A new order file is written in place, without a temp file (issue 16:
 * one sync instead of two). A crash before the sync may leave the file
 * without its content: that reads as no order, and the next order's file
 * replaces it (a temp file and a rename, as over any order file). */
static void test_order_file_without_content_is_no_order(void **state)
{
    struct fx f;
    struct chal_rec c = {0};
    struct order_got g = {0};
    struct acme_chal_ops ops = {.present = rec_present, .cleanup = rec_cleanup, .ctx = &c};
    EVP_PKEY *k = NULL, *k2 = NULL;
    char *url = NULL;

    (void)state;
    struct acme_order_opts o = invalid_order_open(&f, &ops, &k);
    char *path = xasprintf("%s/orders/www.json", f.state);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600); /* the name, no content */
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(acme_order_resume_load(f.store, o.cert, &url, &k2), ERR_PARSE);
    /* replaced by the order's file; then settled, and a new order's file
     * is written in place */
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            assert_int_equal(settle_order(&f, "www"), 0);
            assert_int_equal(access(path, F_OK), -1);
        }
        g.calls = 0;
        free(g.error);
        g.error = NULL;
        assert_int_equal(acme_order_start(f.client, &o, order_cb, &g, NULL), 0);
        uv_run(&f.loop, UV_RUN_DEFAULT);
        assert_int_equal(g.calls, 1);
        assert_int_equal(acme_order_resume_load(f.store, o.cert, &url, &k2), 0);
        assert_int_equal(EVP_PKEY_eq(k, k2), 1);
        free(url);
        EVP_PKEY_free(k2);
    }
    free(path);
    EVP_PKEY_free(k);
    free(g.error);
    fx_close(&f);
}

/* Regression: [ca.NAME] profile was accepted but never sent. With the
 * profile offered in the directory's meta.profiles (draft-ietf-acme-
 * profiles-00 §3), newOrder carries it (§4). */
static void test_order_sends_the_offered_profile(void **state)
{
    struct fx f;
    struct chal_rec c = {0};
    struct order_got g = {0};
    struct acme_chal_ops ops = {.present = rec_present, .cleanup = rec_cleanup, .ctx = &c};
    EVP_PKEY *k = NULL;

    (void)state;
    fx_ca_extra = "profile = \"shortlived\"\n";
    fx_open(&f);
    fx_ca_extra = "";
    f.F.dir_meta = "{\"profiles\":{\"classic\":\"90 days\",\"shortlived\":\"6 days\"}}";
    f.F.authz_mode = AZ_INVALID_AFTER_RESPONSE;
    assert_int_equal(acme_key_generate(CFG_KEY_EC_P256, &k), 0);
    struct acme_order_opts o = {
        .cert = config_cert_find(f.cfg, "www"), .key = k, .chal = &ops, .store = f.store};
    assert_int_equal(acme_order_start(f.client, &o, order_cb, &g, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(f.F.order_posts, 1);
    assert_string_equal(f.F.profile, "shortlived");
    assert_string_equal(acme_client_profile(f.client), "shortlived");
    EVP_PKEY_free(k);
    free(g.error);
    fx_close(&f);
}

/* A profile the directory does not offer: no newOrder is sent, and the
 * error names the profiles the CA does offer. */
static void test_profile_not_offered_names_the_offered_ones(void **state)
{
    struct fx f;
    struct chal_rec c = {0};
    struct order_got g = {0};
    struct acme_chal_ops ops = {.present = rec_present, .cleanup = rec_cleanup, .ctx = &c};
    EVP_PKEY *k = NULL;

    (void)state;
    fx_ca_extra = "profile = \"tlsserver\"\n";
    fx_open(&f);
    fx_ca_extra = "";
    f.F.dir_meta = "{\"profiles\":{\"classic\":\"90 days\",\"shortlived\":\"6 days\"}}";
    assert_int_equal(acme_key_generate(CFG_KEY_EC_P256, &k), 0);
    struct acme_order_opts o = {
        .cert = config_cert_find(f.cfg, "www"), .key = k, .chal = &ops, .store = f.store};
    assert_int_equal(acme_order_start(f.client, &o, order_cb, &g, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, ERR_UNSUPPORTED);
    assert_int_equal(f.F.order_posts, 0);
    assert_int_equal(f.F.acct_posts, 0);
    assert_non_null(g.error);
    if (strstr(g.error, "profile \"tlsserver\" is not offered by the CA (it offers: classic, "
                        "shortlived)") == NULL)
        fail_msg("error: %s", g.error);
    EVP_PKEY_free(k);
    free(g.error);
    fx_close(&f);
}

/* profile_fallback = true: the same directory gives a warning and a
 * newOrder without a profile. */
static void test_profile_fallback_orders_without(void **state)
{
    struct fx f;
    struct chal_rec c = {0};
    struct order_got g = {0};
    struct acme_chal_ops ops = {.present = rec_present, .cleanup = rec_cleanup, .ctx = &c};
    EVP_PKEY *k = NULL;

    (void)state;
    fx_ca_extra = "profile = \"tlsserver\"\nprofile_fallback = true\n";
    fx_open(&f);
    fx_ca_extra = "";
    f.F.dir_meta = "{\"profiles\":{\"classic\":\"90 days\"}}";
    f.F.authz_mode = AZ_INVALID_AFTER_RESPONSE;
    assert_int_equal(acme_key_generate(CFG_KEY_EC_P256, &k), 0);
    struct acme_order_opts o = {
        .cert = config_cert_find(f.cfg, "www"), .key = k, .chal = &ops, .store = f.store};
    assert_int_equal(acme_order_start(f.client, &o, order_cb, &g, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(f.F.order_posts, 1);
    assert_string_equal(f.F.profile, "");
    assert_null(acme_client_profile(f.client));
    EVP_PKEY_free(k);
    free(g.error);
    fx_close(&f);
}

/* acme_dns_persist_issuer (draft-ietf-acme-dns-persist-02 §3.1-3.2): the
 * directory's first issuer domain name when the challenge lists it, else
 * the challenge's first; an empty, oversized or non-string list, or a
 * directory name missing from the challenge, is malformed. */
static void test_dns_persist_issuer(void **state)
{
    json_t *chal =
        json_pack("{s:[s,s]}", "issuerDomainNames", "ca.example.net", "authority.example");
    json_t *meta = json_pack("{s:[s]}", "issuerDomainNames", "authority.example");
    const char *issuer = NULL;
    char *why = NULL;

    (void)state;
    assert_int_equal(acme_dns_persist_issuer(chal, meta, &issuer, &why), 0);
    assert_string_equal(issuer, "authority.example");
    assert_int_equal(acme_dns_persist_issuer(chal, NULL, &issuer, &why), 0);
    assert_string_equal(issuer, "ca.example.net");
    json_array_set_new(json_object_get(meta, "issuerDomainNames"), 0, json_string("other.example"));
    assert_int_equal(acme_dns_persist_issuer(chal, meta, &issuer, &why), ERR_PARSE);
    assert_non_null(strstr(why, "other.example is missing from the challenge"));
    free(why);
    json_t *bad = json_pack("{s:[]}", "issuerDomainNames");
    assert_int_equal(acme_dns_persist_issuer(bad, NULL, &issuer, &why), ERR_PARSE);
    assert_null(issuer);
    free(why);
    json_decref(bad);
    bad = json_pack("{s:[s,s,s,s,s,s,s,s,s,s,s]}", "issuerDomainNames", "a", "b", "c", "d", "e",
                    "f", "g", "h", "i", "j", "k");
    assert_int_equal(acme_dns_persist_issuer(bad, NULL, &issuer, &why), ERR_PARSE);
    free(why);
    json_decref(bad);
    /* draft -01's name of the member is not read */
    bad = json_pack("{s:[s]}", "issuer-domain-names", "authority.example");
    assert_int_equal(acme_dns_persist_issuer(bad, NULL, &issuer, &why), ERR_PARSE);
    free(why);
    json_decref(bad);
    json_decref(chal);
    json_decref(meta);
}

/* acme_profile_choose: no profile wanted, offered, not offered with and
 * without fallback, a directory without meta.profiles. */
static void test_profile_choose(void **state)
{
    json_t *dir =
        json_loads("{\"meta\":{\"profiles\":{\"classic\":\"x\",\"tlsserver\":\"y\"}}}", 0, NULL);
    json_t *bare = json_loads("{\"newOrder\":\"u\"}", 0, NULL);
    const char *use = NULL;
    char *why = NULL;

    (void)state;
    assert_int_equal(acme_profile_choose(dir, NULL, false, &use, &why), 0);
    assert_null(use);
    assert_null(why);
    assert_int_equal(acme_profile_choose(dir, "tlsserver", false, &use, &why), 0);
    assert_string_equal(use, "tlsserver");
    assert_null(why);
    assert_int_equal(acme_profile_choose(dir, "shortlived", false, &use, &why), ERR_UNSUPPORTED);
    assert_null(use);
    assert_non_null(strstr(why, "(it offers: classic, tlsserver)"));
    free(why);
    assert_int_equal(acme_profile_choose(dir, "shortlived", true, &use, &why), 0);
    assert_null(use);
    assert_non_null(strstr(why, "ordering without a profile"));
    free(why);
    assert_int_equal(acme_profile_choose(bare, "shortlived", false, &use, &why), ERR_UNSUPPORTED);
    assert_non_null(strstr(why, "(it offers: none)"));
    free(why);
    json_decref(dir);
    json_decref(bare);
}

static void cancel_timer_cb(uv_timer_t *t)
{
    struct acme_order **op = t->data;

    acme_order_cancel(*op);
    *op = NULL;
    uv_close((uv_handle_t *)t, NULL);
}

static void test_order_cancel_is_silent_and_cleans_tokens(void **state)
{
    struct fx f;
    struct chal_rec c = {0};
    struct order_got g = {0};
    struct acme_chal_ops ops = {.present = rec_present, .cleanup = rec_cleanup, .ctx = &c};
    struct acme_order *op = NULL;
    uv_timer_t t;
    EVP_PKEY *k = NULL;

    (void)state;
    fx_open(&f);
    f.F.authz_mode = AZ_PENDING_FOREVER;
    assert_int_equal(acme_key_generate(CFG_KEY_EC_P256, &k), 0);
    struct acme_order_opts o = {
        .cert = config_cert_find(f.cfg, "www"),
        .key = k,
        .chal = &ops,
        .store = f.store,
    };
    assert_int_equal(acme_order_start(f.client, &o, order_cb, &g, &op), 0);
    EVP_PKEY_free(k); /* the order holds its own reference */
    uv_timer_init(&f.loop, &t);
    t.data = &op;
    uv_timer_start(&t, cancel_timer_cb, 1500, 0); /* while polling the authorization */
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_null(op);
    assert_int_equal(g.calls, 0);
    assert_int_equal(c.present, 1);
    assert_int_equal(c.cleanup, 1);
    assert_true(f.F.authz_posts >= 2); /* fetched, then polled */
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_queue_behind_one_account_setup),
        cmocka_unit_test(test_max_parallel_requests_bounds_the_ca),
        cmocka_unit_test(test_badnonce_retried_with_the_new_nonce),
        cmocka_unit_test(test_badnonce_retries_are_bounded),
        cmocka_unit_test(test_cancel_never_calls_back),
        cmocka_unit_test(test_stored_key_is_looked_up_then_registered),
        cmocka_unit_test(test_forgotten_account_is_set_up_again),
        cmocka_unit_test(test_order_failure_names_identifier_and_problem),
        cmocka_unit_test(test_order_file_without_content_is_no_order),
        cmocka_unit_test(test_order_cancel_is_silent_and_cleans_tokens),
        cmocka_unit_test(test_order_sends_the_offered_profile),
        cmocka_unit_test(test_profile_not_offered_names_the_offered_ones),
        cmocka_unit_test(test_profile_fallback_orders_without),
        cmocka_unit_test(test_profile_choose),
        cmocka_unit_test(test_dns_persist_issuer),
    };

    log_set_level(getenv("TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
