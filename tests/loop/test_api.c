/* Loop tests of the HTTPS API server (src/api/api.c) on a real uv loop with
 * a blocking OpenSSL client on a thread: the bootstrap certificate is
 * written and served; a read token lists, a missing one gets 401 and a
 * wrong scope 403; renew reaches the handler exactly once; a request that
 * never completes its head is cut at the configured timeout; an event
 * published with api_event reaches an open stream; the connection cap
 * closes the oldest; api_close with connections open calls back once and
 * leaves uv_loop_close() == 0; the list streamed in chunks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "api/api.h"
#include "store/store.h"
#include "test_fs.h"
#include "util/bodysrc.h"
#include "util/xalloc.h"

struct fx {
    uv_loop_t loop;
    uv_async_t async;
    struct api *api;
    struct store *store; /* the file backend on dir: keeps the bootstrap */
    char dir[64];
    char *tokens;
    char *read_tok, *manage_tok;
    int renews, closed;
    char renewed[32];
    int statuses, lists, ones, list_freed;
};

/* fx_open gives the API the streamed list and the one-certificate handler */
static bool with_list;
/* h_status lists www twice (a removed run still finishing and its
 * re-added successor); fx_open gives the API a configuration path */
static bool www_twice;

static int h_status(void *arg, json_t **out)
{
    ((struct fx *)arg)->statuses++;
    if (www_twice)
        *out = json_pack("{s:[{s:s,s:s,s:[]},{s:s,s:s,s:[]}]}", "certificates", "name", "www",
                         "state", "renewing", "history", "name", "www", "state", "ok", "history");
    else
        *out = json_pack("{s:[{s:s,s:s,s:[]}]}", "certificates", "name", "www", "state", "ok",
                         "history");
    return 0;
}

static int h_renew(void *arg, const char *name, bool force, char **err)
{
    struct fx *f = arg;

    f->renews++;
    snprintf(f->renewed, sizeof(f->renewed), "%s", name);
    if (!force) /* as the manager says of a certificate not due */
        *err = xasprintf("%s: not due; renewal at 2030-01-01T00:00:00Z (use --force)", name);
    return 0;
}

/* The list in three pieces, one per call. */
static const char *const list_pieces[] = {"{\"certificates\":[", "{\"name\":\"www\"}", "]}\n"};

struct list_src {
    struct fx *f;
    size_t i;
};

static int list_next(void *arg, struct buf *out, size_t want)
{
    struct list_src *l = arg;

    (void)want;
    buf_append_str(out, list_pieces[l->i++]);
    return l->i == 3 ? 1 : 0;
}

static void list_free(void *arg)
{
    struct list_src *l = arg;

    l->f->list_freed++;
    free(l);
}

static int h_list(void *arg, struct body_src *out)
{
    struct list_src *l = xcalloc(1, sizeof(*l));

    l->f = arg;
    l->f->lists++;
    *out = (struct body_src){.next = list_next, .free = list_free, .arg = l};
    return 0;
}

static int h_one(void *arg, const char *name, json_t **out)
{
    ((struct fx *)arg)->ones++;
    if (strcmp(name, "www") != 0)
        return -ENOENT;
    *out = json_pack("{s:s,s:[]}", "name", "www", "history");
    return 0;
}

static int h_fleet(void *arg, json_t **out)
{
    (void)arg;
    *out = NULL; /* a file store: no fleet */
    return 0;
}

static void async_cb(uv_async_t *a)
{
    uv_stop(a->loop);
}

static void closed_cb(void *arg)
{
    struct fx *f = arg;

    f->closed++;
}

static void fx_open(struct fx *f, unsigned max_conns, unsigned head_ms)
{
    const char *listen[] = {"127.0.0.1:0"};
    struct api_handlers h = {.status = h_status, .renew = h_renew, .arg = f};

    if (with_list) {
        h.list = h_list;
        h.one = h_one;
        h.fleet = h_fleet;
    }
    char *err = NULL;

    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_api_loop_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->tokens = xasprintf("%s/tokens", f->dir);
    assert_int_equal(api_token_create(f->tokens, "r", API_SCOPE_READ, &f->read_tok, &err), 0);
    assert_int_equal(api_token_create(f->tokens, "m", API_SCOPE_MANAGE, &f->manage_tok, &err), 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_async_init(&f->loop, &f->async, async_cb), 0);
    assert_int_equal(store_fs_open(&f->loop, f->dir, 0, &f->store), 0);
    char *conf = www_twice ? xasprintf("%s/certloop.toml", f->dir) : NULL;
    struct api_opts o = {
        .loop = &f->loop,
        .listen = listen,
        .n_listen = 1,
        .tokens_file = f->tokens,
        .state_dir = f->dir,
        .config_path = conf,
        .store = f->store,
        .max_connections = max_conns,
        .h = &h,
        .lim = {.head_timeout_ms = head_ms},
    };
    assert_int_equal(api_open(&o, &f->api), 0);
    free(conf);
    assert_true(api_port(f->api, 0) > 0);
}

static void fx_files_free(struct fx *f)
{
    store_close(f->store);
    test_rm_rf(f->dir);
    free(f->tokens);
    free(f->read_tok);
    free(f->manage_tok);
}

static void fx_close(struct fx *f)
{
    api_close(f->api, closed_cb, f);
    uv_close((uv_handle_t *)&f->async, NULL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->closed, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    fx_files_free(f);
}

/* A blocking TLS client: sends req (its whole text), reads until the server
 * closes or `until` appears, then signals the loop. */
struct client {
    int port;
    const char *req;
    const char *until; /* stop reading once this is in resp, or NULL */
    const char *then;  /* with mid: what to wait for after signalling it */
    char resp[8192];
    size_t len;
    int connected;    /* set (atomically) once the handshake is done */
    int finished;     /* set (atomically) when the client has ended */
    uv_async_t *done; /* or NULL: the test polls `finished` */
    uv_async_t *mid;  /* signalled once `until` was read, if set */
};

static void *client_main(void *arg)
{
    struct client *cl = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    char addr[32];

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", cl->port);
    BIO *b = BIO_new_connect(addr);
    if (ctx == NULL || b == NULL || BIO_do_connect(b) <= 0) {
        BIO_free_all(b);
        goto out;
    }
    ssl = SSL_new(ctx);
    SSL_set_bio(ssl, b, b);
    if (SSL_connect(ssl) != 1)
        goto out;
    __atomic_store_n(&cl->connected, 1, __ATOMIC_SEQ_CST);
    if (cl->req != NULL && SSL_write(ssl, cl->req, (int)strlen(cl->req)) <= 0)
        goto out;
    for (;;) {
        int n = SSL_read(ssl, cl->resp + cl->len, (int)(sizeof(cl->resp) - 1 - cl->len));
        if (n <= 0)
            break;
        cl->len += (size_t)n;
        cl->resp[cl->len] = '\0';
        if (cl->until != NULL && strstr(cl->resp, cl->until) != NULL) {
            if (cl->mid != NULL) {
                uv_async_send(cl->mid);
                cl->mid = NULL;
                cl->until = cl->then;
                continue;
            }
            break;
        }
    }
out:
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    __atomic_store_n(&cl->finished, 1, __ATOMIC_SEQ_CST);
    if (cl->done != NULL)
        uv_async_send(cl->done);
    return NULL;
}

static void run_client(struct fx *f, struct client *cl)
{
    pthread_t th;

    cl->port = api_port(f->api, 0);
    cl->done = &f->async;
    assert_int_equal(pthread_create(&th, NULL, client_main, cl), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* until the client's async */
    pthread_join(th, NULL);
}

static char *request(const char *method, const char *path, const char *token)
{
    return xasprintf("%s %s HTTP/1.1\r\nHost: localhost\r\n%s%s%s\r\n", method, path,
                     token != NULL ? "Authorization: Bearer " : "", token != NULL ? token : "",
                     token != NULL ? "\r\n" : "");
}

static void test_requests_and_scopes(void **state)
{
    struct fx f;
    struct stat st;
    (void)state;

    fx_open(&f, 0, 0);
    char *boot = xasprintf("%s/api/bootstrap.pem", f.dir);
    assert_int_equal(stat(boot, &st), 0);
    free(boot);
    boot = xasprintf("%s/api/bootstrap-key.pem", f.dir);
    assert_int_equal(stat(boot, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(boot);

    char *q = request("GET", "/v1/certificates", f.read_tok);
    struct client c1 = {.req = q};
    run_client(&f, &c1);
    assert_non_null(strstr(c1.resp, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(c1.resp, "\"name\":\"www\""));
    assert_null(strstr(c1.resp, "history")); /* the list leaves it out */
    free(q);

    q = request("GET", "/v1/certificates", NULL);
    struct client c2 = {.req = q};
    run_client(&f, &c2);
    assert_non_null(strstr(c2.resp, "HTTP/1.1 401 Unauthorized\r\n"));
    assert_non_null(strstr(c2.resp, "WWW-Authenticate: Bearer"));
    free(q);

    q = request("POST", "/v1/certificates/www/renew", f.read_tok);
    struct client c3 = {.req = q};
    run_client(&f, &c3);
    assert_non_null(strstr(c3.resp, "HTTP/1.1 403 Forbidden\r\n"));
    assert_int_equal(f.renews, 0);
    free(q);

    q = request("POST", "/v1/certificates/www/renew?force=true", f.manage_tok);
    struct client c4 = {.req = q};
    run_client(&f, &c4);
    assert_non_null(strstr(c4.resp, "HTTP/1.1 202 Accepted\r\n"));
    assert_int_equal(f.renews, 1);
    assert_string_equal(f.renewed, "www");
    free(q);

    /* not forced, not due: nothing queued, and the answer says so */
    q = request("POST", "/v1/certificates/www/renew", f.manage_tok);
    struct client c6 = {.req = q};
    run_client(&f, &c6);
    assert_non_null(strstr(c6.resp, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(c6.resp, "\"queued\":false"));
    assert_non_null(strstr(c6.resp, "not due; renewal at 2030-01-01T00:00:00Z"));
    assert_int_equal(f.renews, 2);
    free(q);

    q = request("POST", "/v1/certificates/other/renew", f.manage_tok);
    struct client c5 = {.req = q};
    run_client(&f, &c5);
    assert_non_null(strstr(c5.resp, "HTTP/1.1 404 Not Found\r\n"));
    assert_int_equal(f.renews, 2);
    free(q);
    fx_close(&f);
}

/* DELETE of a name the status lists twice (a certificate removed while its
 * run was in flight, re-added by a later reload): the running configuration
 * has it, not through the API: 403. The status document's first object was
 * referenced and dropped (LeakSanitizer in the ASan run, found by a reload
 * and DELETE storm against the daemon). */
static void test_delete_name_listed_twice(void **state)
{
    struct fx f;
    (void)state;

    www_twice = true;
    fx_open(&f, 0, 0);
    char *q = request("DELETE", "/v1/certificates/www", f.manage_tok);
    struct client c = {.req = q};
    run_client(&f, &c);
    www_twice = false;
    assert_non_null(strstr(c.resp, "HTTP/1.1 403 Forbidden\r\n"));
    assert_non_null(strstr(c.resp, "declared by the administrator's configuration"));
    assert_int_equal(f.statuses, 1);
    free(q);
    fx_close(&f);
}

static void test_slow_head_cut_at_timeout(void **state)
{
    struct fx f;
    struct timespec t0, t1;
    (void)state;

    fx_open(&f, 0, 300);
    struct client c = {.req = "GET /v1/certificates HTTP/1.1\r\nHost: a\r\n"};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run_client(&f, &c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_int_equal(c.connected, 1);
    assert_int_equal(c.len, 0); /* no answer, only the close */
    assert_true(s >= 0.25 && s < 5);
    fx_close(&f);
}

struct publisher {
    struct fx *f;
    uv_async_t a;
};

static void publish_cb(uv_async_t *a)
{
    struct publisher *p = a->data;

    api_event(p->f->api, "{\"id\":\"ev-1\",\"event\":\"renewed\",\"certificate\":\"www\"}");
}

static void test_event_reaches_stream(void **state)
{
    struct fx f;
    struct publisher p;
    (void)state;

    fx_open(&f, 0, 0);
    p.f = &f;
    assert_int_equal(uv_async_init(&f.loop, &p.a, publish_cb), 0);
    p.a.data = &p;
    char *q = request("GET", "/v1/events", f.read_tok);
    /* the stream's head arrives, the loop publishes, then the event arrives */
    struct client c = {
        .req = q, .until = ": certloop events\n\n", .then = "id: ev-1\n", .mid = &p.a};
    run_client(&f, &c);
    assert_non_null(strstr(c.resp, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"));
    assert_non_null(strstr(c.resp, "id: ev-1\nevent: renewed\ndata: {"));
    uv_close((uv_handle_t *)&p.a, NULL);
    free(q);
    /* a later stream resuming after ev-1 gets nothing old; an unknown id gets ev-1 */
    q = xasprintf("GET /v1/events HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n"
                  "Last-Event-ID: nope\r\n\r\n",
                  f.read_tok);
    struct client c2 = {.req = q, .until = "id: ev-1\n"};
    run_client(&f, &c2);
    assert_non_null(strstr(c2.resp, "id: ev-1\n"));
    free(q);
    fx_close(&f);
}

static int flag(int *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

/* Runs the loop in small steps until *a (and *b, if not NULL) is set, for
 * at most 10 s. */
static void poll_until(struct fx *f, int *a, int *b, int *c)
{
    for (int i = 0; i < 1000; i++) {
        if (flag(a) && (b == NULL || flag(b)) && (c == NULL || flag(c)))
            return;
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(10 * 1000);
    }
}

static void test_cap_closes_oldest_and_close_with_open_connections(void **state)
{
    struct fx f;
    struct client c[3];
    pthread_t th[3];
    (void)state;

    fx_open(&f, 2, 5000);
    memset(c, 0, sizeof(c));
    /* three handshaken connections that never send a request: the first is
     * closed for the third, the second stays */
    for (int i = 0; i < 3; i++) {
        c[i].port = api_port(f.api, 0);
        assert_int_equal(pthread_create(&th[i], NULL, client_main, &c[i]), 0);
        poll_until(&f, &c[i].connected, NULL, NULL);
        assert_int_equal(flag(&c[i].connected), 1);
    }
    poll_until(&f, &c[0].finished, NULL, NULL);
    assert_int_equal(flag(&c[0].finished), 1);
    assert_int_equal(flag(&c[1].finished), 0);
    assert_int_equal(flag(&c[2].finished), 0);
    /* closing the API with two connections open: they end, one callback */
    api_close(f.api, closed_cb, &f);
    poll_until(&f, &f.closed, &c[1].finished, &c[2].finished);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(f.closed, 1);
    uv_close((uv_handle_t *)&f.async, NULL);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    fx_files_free(&f);
}

/* GET /v1/certificates streamed in chunks (to HTTP/1.0: until the close),
 * one certificate's routes and the fleet without the whole status
 * document. */
static void test_list_streamed_and_one(void **state)
{
    struct fx f;
    (void)state;

    with_list = true;
    fx_open(&f, 0, 0);
    with_list = false;
    char *q = request("GET", "/v1/certificates", f.read_tok);
    struct client c1 = {.req = q};
    run_client(&f, &c1);
    assert_non_null(strstr(c1.resp, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(c1.resp, "\r\nTransfer-Encoding: chunked\r\n"));
    assert_null(strstr(c1.resp, "Content-Length"));
    const char *body = strstr(c1.resp, "\r\n\r\n");
    assert_non_null(body);
    assert_string_equal(body + 4, "11\r\n{\"certificates\":[\r\ne\r\n{\"name\":\"www\"}\r\n"
                                  "3\r\n]}\n\r\n0\r\n\r\n");
    free(q);

    struct client c2 = {.req = "GET /v1/certificates HTTP/1.0\r\nAuthorization: Bearer "};
    char *q2 = xasprintf("%s%s\r\n\r\n", c2.req, f.read_tok);
    c2.req = q2;
    run_client(&f, &c2);
    assert_null(strstr(c2.resp, "Transfer-Encoding"));
    body = strstr(c2.resp, "\r\n\r\n");
    assert_non_null(body);
    assert_string_equal(body + 4, "{\"certificates\":[{\"name\":\"www\"}]}\n");
    free(q2);

    q = request("GET", "/v1/certificates/www", f.read_tok);
    struct client c3 = {.req = q};
    run_client(&f, &c3);
    assert_non_null(strstr(c3.resp, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(c3.resp, "{\"name\":\"www\",\"history\":[]}\n"));
    free(q);
    q = request("GET", "/v1/certificates/nope", f.read_tok);
    struct client c4 = {.req = q};
    run_client(&f, &c4);
    assert_non_null(strstr(c4.resp, "HTTP/1.1 404 Not Found\r\n"));
    free(q);
    q = request("GET", "/v1/fleet", f.read_tok);
    struct client c5 = {.req = q};
    run_client(&f, &c5);
    assert_non_null(strstr(c5.resp, "HTTP/1.1 404 Not Found\r\n"));
    assert_non_null(strstr(c5.resp, "no fleet"));
    free(q);
    assert_int_equal(f.lists, 2);
    assert_int_equal(f.ones, 2);
    assert_int_equal(f.statuses, 0);
    fx_close(&f);
    assert_int_equal(f.list_freed, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_and_scopes),
        cmocka_unit_test(test_delete_name_listed_twice),
        cmocka_unit_test(test_slow_head_cut_at_timeout),
        cmocka_unit_test(test_event_reaches_stream),
        cmocka_unit_test(test_cap_closes_oldest_and_close_with_open_connections),
        cmocka_unit_test(test_list_streamed_and_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
