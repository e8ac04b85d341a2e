/* The http-01 listener on a real loop. Each test runs the loop on the test
 * thread and a client scenario on a second thread with blocking sockets; the
 * client asks the loop to do things (delete a token) through a uv_async_t and
 * a semaphore, and ends the test with another uv_async_t that closes the
 * listener. Results are checked on the test thread after uv_run returns. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "challenge/challenge.h"
#include "challenge/http01_internal.h"
#include "util/log.h"

#define TOKEN "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
#define KEYAUTH TOKEN ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
#define TOKEN2 "tok2"
#define KEYAUTH2 "tok2.thumb"
#define PATH "/.well-known/acme-challenge/"
#define NCONC 500

struct env;
typedef void (*client_fn)(struct env *e);
typedef void (*loop_fn)(struct env *e);

struct resp {
    int status;
    char head[4096];
    char body[4096];
    size_t body_len;
};

struct env {
    uv_loop_t loop;
    struct chal_http01 *srv;
    uv_async_t done;
    uv_async_t cmd;
    uv_sem_t cmd_sem;
    loop_fn cmd_fn;
    pthread_t th;
    client_fn client;
    int port;  /* listener 0 */
    int port6; /* listener 1, when opened */
    int closed_calls;
    struct chal_http01_stats stats; /* taken just before closing */
    /* what the client saw */
    int n_ok;
    int statuses[16];
    struct resp r[4];
    bool eof;
    bool flag;
    long elapsed_ms;
    int fds[8];
};

/* ---- loop side ---------------------------------------------------------------- */

static void on_closed(void *arg)
{
    struct env *e = arg;
    e->closed_calls++;
}

static void done_cb(uv_async_t *a)
{
    struct env *e = a->data;

    chal_http01_get_stats(e->srv, &e->stats);
    chal_http01_close(e->srv, on_closed, e);
    e->srv = NULL;
    uv_close((uv_handle_t *)&e->done, NULL);
    uv_close((uv_handle_t *)&e->cmd, NULL);
}

static void cmd_cb(uv_async_t *a)
{
    struct env *e = a->data;

    if (e->cmd_fn != NULL) {
        e->cmd_fn(e);
        e->cmd_fn = NULL;
        uv_sem_post(&e->cmd_sem);
    }
}

static void *client_main(void *arg)
{
    struct env *e = arg;

    e->client(e);
    uv_async_send(&e->done);
    return NULL;
}

/* From the client thread: runs fn on the loop and waits for it. */
static void on_loop(struct env *e, loop_fn fn)
{
    e->cmd_fn = fn;
    uv_async_send(&e->cmd);
    uv_sem_wait(&e->cmd_sem);
}

static struct env *env_new(void)
{
    struct env *e = calloc(1, sizeof(*e));

    assert_non_null(e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(uv_sem_init(&e->cmd_sem, 0), 0);
    return e;
}

static void env_open(struct env *e, const char *const *listen, size_t n)
{
    assert_int_equal(chal_http01_open(&e->loop, listen, n, &e->srv), 0);
    e->port = chal_http01_port(e->srv, 0);
    assert_true(e->port > 0);
    if (n > 1)
        e->port6 = chal_http01_port(e->srv, 1);
    assert_int_equal(chal_http01_put(e->srv, TOKEN, KEYAUTH), 0);
    assert_int_equal(chal_http01_put(e->srv, TOKEN2, KEYAUTH2), 0);
}

static struct env *env_start(void)
{
    static const char *const lo[] = {"127.0.0.1:0"};
    struct env *e = env_new();

    env_open(e, lo, 1);
    return e;
}

static void set_limits(struct env *e, unsigned header_ms, unsigned idle_ms, unsigned max_conns,
                       unsigned max_req)
{
    struct chal_http01_limits l = {0};

    l.header_timeout_ms = header_ms;
    l.idle_timeout_ms = idle_ms;
    l.linger_timeout_ms = 300;
    l.max_connections = max_conns;
    l.max_requests = max_req;
    chal_http01_set_limits(e->srv, &l);
}

/* Runs client on its thread until it finishes, closes the listener, checks
 * that everything closed, and frees e. */
static void env_run(struct env *e, client_fn client)
{
    e->client = client;
    uv_async_init(&e->loop, &e->done, done_cb);
    e->done.data = e;
    uv_async_init(&e->loop, &e->cmd, cmd_cb);
    e->cmd.data = e;
    assert_int_equal(pthread_create(&e->th, NULL, client_main, e), 0);
    assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(pthread_join(e->th, NULL), 0);
    assert_int_equal(e->closed_calls, 1);
    assert_int_equal(uv_loop_close(&e->loop), 0);
}

static void env_free(struct env *e)
{
    uv_sem_destroy(&e->cmd_sem);
    free(e);
}

/* ---- client side (blocking sockets, no cmocka calls) ---------------------------- */

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cl_connect_af(int af, int port)
{
    int fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {5, 0};
    int rc;

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (af == AF_INET6) {
        struct sockaddr_in6 a = {0};
        a.sin6_family = AF_INET6;
        a.sin6_port = htons((uint16_t)port);
        a.sin6_addr = in6addr_loopback;
        rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    } else {
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    }
    if (rc < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int cl_connect(struct env *e)
{
    return cl_connect_af(AF_INET, e->port);
}

static bool cl_send(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

static bool cl_sends(int fd, const char *s)
{
    return cl_send(fd, s, strlen(s));
}

struct rd {
    int fd;
    size_t len;
    char buf[16384];
};

static const char *find_head_end(const char *p, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++) {
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            return p + i + 4;
    }
    return NULL;
}

static const char *header_value(const char *head, const char *name)
{
    size_t nl = strlen(name);

    for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':')
            return p + 3 + nl + strspn(p + 3 + nl, " ");
    }
    return NULL;
}

/* Reads one response (no body for HEAD); -1 on EOF, error or timeout. */
static int cl_response(struct rd *r, bool head_only, struct resp *out)
{
    const char *end;

    memset(out, 0, sizeof(*out));
    while ((end = find_head_end(r->buf, r->len)) == NULL) {
        if (r->len == sizeof(r->buf))
            return -1;
        ssize_t n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
        if (n <= 0)
            return -1;
        r->len += (size_t)n;
    }
    size_t hl = (size_t)(end - r->buf);
    if (hl >= sizeof(out->head))
        return -1;
    memcpy(out->head, r->buf, hl);
    out->head[hl] = '\0';
    if (sscanf(out->head, "HTTP/1.1 %d ", &out->status) != 1)
        return -1;
    const char *cl = header_value(out->head, "Content-Length");
    size_t blen = head_only || cl == NULL ? 0 : strtoul(cl, NULL, 10);
    if (blen >= sizeof(out->body))
        return -1;
    while (r->len < hl + blen) {
        ssize_t n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
        if (n <= 0)
            return -1;
        r->len += (size_t)n;
    }
    memcpy(out->body, r->buf + hl, blen);
    out->body[blen] = '\0';
    out->body_len = blen;
    memmove(r->buf, r->buf + hl + blen, r->len - hl - blen);
    r->len -= hl + blen;
    return 0;
}

/* True if the peer closes (EOF, or a reset after we were answered) before
 * the receive timeout; what arrives meanwhile is dropped. */
static bool cl_wait_eof(int fd)
{
    char b[4096];

    for (;;) {
        ssize_t n = recv(fd, b, sizeof(b), 0);
        if (n == 0)
            return true;
        if (n < 0)
            return errno == ECONNRESET;
    }
}

/* One request on a fresh connection with Connection: close. */
static int cl_request(struct env *e, const char *req, bool head_only, struct resp *out)
{
    struct rd *r = calloc(1, sizeof(*r));
    int rc = -1;

    r->fd = cl_connect(e);
    if (r->fd >= 0 && cl_sends(r->fd, req) && cl_response(r, head_only, out) == 0)
        rc = 0;
    if (r->fd >= 0)
        close(r->fd);
    free(r);
    return rc;
}

/* ---- tests ---------------------------------------------------------------------- */

static void client_get_head(struct env *e)
{
    cl_request(e, "GET " PATH TOKEN " HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n",
               false, &e->r[0]);
    /* HEAD: read everything until EOF to prove no body follows */
    int fd = cl_connect(e);
    cl_sends(fd, "HEAD " PATH TOKEN " HTTP/1.0\r\nHost: example.org\r\n\r\n");
    size_t n = 0;
    ssize_t k;
    while (n < sizeof(e->r[1].head) - 1 &&
           (k = recv(fd, e->r[1].head + n, sizeof(e->r[1].head) - 1 - n, 0)) > 0)
        n += (size_t)k;
    e->r[1].head[n] = '\0';
    e->eof = k == 0;
    close(fd);
    /* absolute-form target with a query, HTTP/1.0 */
    cl_request(e, "GET http://example.org" PATH TOKEN2 "?x=1 HTTP/1.0\r\n\r\n", false, &e->r[2]);
}

static void test_get_and_head_live_token(void **state)
{
    struct env *e = env_start();

    (void)state;
    env_run(e, client_get_head);
    assert_int_equal(e->r[0].status, 200);
    assert_string_equal(e->r[0].body, KEYAUTH);
    assert_true(strncmp(header_value(e->r[0].head, "Content-Type"), "application/octet-stream\r\n",
                        26) == 0);
    assert_int_equal(strtoul(header_value(e->r[0].head, "Content-Length"), NULL, 10),
                     strlen(KEYAUTH));
    assert_non_null(header_value(e->r[0].head, "Date"));
    /* HEAD: the same head, then the connection ends without a body */
    assert_true(e->eof);
    assert_true(strncmp(e->r[1].head, "HTTP/1.1 200 OK\r\n", 17) == 0);
    const char *end = strstr(e->r[1].head, "\r\n\r\n");
    assert_non_null(end);
    assert_int_equal(end[4], '\0');
    assert_int_equal(strtoul(header_value(e->r[1].head, "Content-Length"), NULL, 10),
                     strlen(KEYAUTH));
    assert_int_equal(e->r[2].status, 200);
    assert_string_equal(e->r[2].body, KEYAUTH2);
    assert_int_equal(e->stats.served, 3);
    env_free(e);
}

static void del_token(struct env *e)
{
    chal_http01_del(e->srv, TOKEN);
    e->statuses[15] = (int)chal_http01_count(e->srv);
}

static void client_not_found(struct env *e)
{
    struct resp r;

    cl_request(e, "GET " PATH "unknownToken HTTP/1.0\r\n\r\n", false, &r);
    e->statuses[0] = r.status;
    cl_request(e, "GET /index.html HTTP/1.0\r\n\r\n", false, &r);
    e->statuses[1] = r.status;
    cl_request(e, "GET " PATH TOKEN " HTTP/1.0\r\n\r\n", false, &r);
    e->statuses[2] = r.status;
    on_loop(e, del_token);
    cl_request(e, "GET " PATH TOKEN " HTTP/1.0\r\n\r\n", false, &r);
    e->statuses[3] = r.status;
    cl_request(e, "GET " PATH TOKEN "/ HTTP/1.0\r\n\r\n", false, &r);
    e->statuses[4] = r.status;
    cl_request(e, "HEAD " PATH "nope HTTP/1.0\r\n\r\n", true, &r);
    e->statuses[5] = r.status;
}

static void test_unknown_token_path_and_deleted_token_404(void **state)
{
    struct env *e = env_start();

    (void)state;
    env_run(e, client_not_found);
    assert_int_equal(e->statuses[0], 404);
    assert_int_equal(e->statuses[1], 404);
    assert_int_equal(e->statuses[2], 200);
    assert_int_equal(e->statuses[15], 1); /* TOKEN2 is left */
    assert_int_equal(e->statuses[3], 404);
    assert_int_equal(e->statuses[4], 404);
    assert_int_equal(e->statuses[5], 404);
    assert_int_equal(e->stats.not_found, 5);
    assert_int_equal(e->stats.served, 1);
    env_free(e);
}

static void client_errors(struct env *e)
{
    struct rd *r = calloc(1, sizeof(*r));

    /* 405, and the connection stays usable */
    r->fd = cl_connect(e);
    cl_sends(r->fd, "POST " PATH TOKEN " HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    if (cl_response(r, false, &e->r[0]) == 0)
        e->n_ok++;
    cl_sends(r->fd, "GET " PATH TOKEN " HTTP/1.1\r\nHost: a\r\n\r\n");
    if (cl_response(r, false, &e->r[1]) == 0)
        e->n_ok++;
    close(r->fd);
    /* garbage: 400 then close */
    memset(r, 0, sizeof(*r));
    r->fd = cl_connect(e);
    cl_sends(r->fd, "hello there\r\n\r\n");
    cl_response(r, false, &e->r[2]);
    e->statuses[0] = cl_wait_eof(r->fd);
    close(r->fd);
    /* a body: 400 then close, even though the body itself keeps coming */
    memset(r, 0, sizeof(*r));
    r->fd = cl_connect(e);
    cl_sends(r->fd, "PUT " PATH TOKEN " HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    cl_response(r, false, &e->r[3]);
    e->statuses[1] = cl_wait_eof(r->fd);
    close(r->fd);
    /* chunked */
    struct resp x;
    cl_request(e, "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false,
               &x);
    e->statuses[2] = x.status;
    /* not HTTP/1 */
    cl_request(e, "GET / HTTP/2.0\r\n\r\n", false, &x);
    e->statuses[3] = x.status;
    /* GET * */
    cl_request(e, "GET * HTTP/1.0\r\n\r\n", false, &x);
    e->statuses[4] = x.status;
    free(r);
}

static void test_methods_garbage_and_bodies_rejected(void **state)
{
    struct env *e = env_start();

    (void)state;
    env_run(e, client_errors);
    assert_int_equal(e->n_ok, 2);
    assert_int_equal(e->r[0].status, 405);
    assert_true(strncmp(header_value(e->r[0].head, "Allow"), "GET, HEAD\r\n", 11) == 0);
    assert_int_equal(e->r[1].status, 200);
    assert_int_equal(e->r[2].status, 400);
    assert_true(strncmp(header_value(e->r[2].head, "Connection"), "close", 5) == 0);
    assert_true(e->statuses[0]);
    assert_int_equal(e->r[3].status, 400);
    assert_true(e->statuses[1]);
    assert_int_equal(e->statuses[2], 400);
    assert_int_equal(e->statuses[3], 505);
    assert_int_equal(e->statuses[4], 400);
    assert_int_equal(e->stats.rejected, 6);
    env_free(e);
}

static void client_big_heads(struct env *e)
{
    size_t cap = 20000;
    char *big = malloc(cap);
    struct rd *r = calloc(1, sizeof(*r));
    size_t at;

    /* a 12 KiB header: 431 as soon as 8 KiB are in, then close; the rest of
     * what we send is drained, so we read the answer and not a reset */
    at = (size_t)snprintf(big, cap, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
    memset(big + at, 'x', 12000);
    at += 12000;
    at += (size_t)snprintf(big + at, cap - at, "\r\n\r\n");
    r->fd = cl_connect(e);
    cl_send(r->fd, big, at);
    cl_response(r, false, &e->r[0]);
    e->statuses[0] = cl_wait_eof(r->fd);
    close(r->fd);
    /* 100 header lines: 431 */
    at = (size_t)snprintf(big, cap, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 100; i++)
        at += (size_t)snprintf(big + at, cap - at, "X-%d: y\r\n", i);
    at += (size_t)snprintf(big + at, cap - at, "\r\n");
    memset(r, 0, sizeof(*r));
    r->fd = cl_connect(e);
    cl_send(r->fd, big, at);
    cl_response(r, false, &e->r[1]);
    e->statuses[1] = cl_wait_eof(r->fd);
    close(r->fd);
    /* a 3 KiB request line: 414 */
    at = (size_t)snprintf(big, cap, "GET /");
    memset(big + at, 'a', 3000);
    at += 3000;
    at += (size_t)snprintf(big + at, cap - at, " HTTP/1.1\r\nHost: a\r\n\r\n");
    memset(r, 0, sizeof(*r));
    r->fd = cl_connect(e);
    cl_send(r->fd, big, at);
    cl_response(r, false, &e->r[2]);
    e->statuses[2] = cl_wait_eof(r->fd);
    close(r->fd);
    free(r);
    free(big);
}

static void test_oversized_heads_rejected_and_closed(void **state)
{
    struct env *e = env_start();

    (void)state;
    env_run(e, client_big_heads);
    assert_int_equal(e->r[0].status, 431);
    assert_true(e->statuses[0]);
    assert_int_equal(e->r[1].status, 431);
    assert_true(e->statuses[1]);
    assert_int_equal(e->r[2].status, 414);
    assert_true(e->statuses[2]);
    assert_int_equal(e->stats.rejected, 3);
    env_free(e);
}

static void client_slow(struct env *e)
{
    struct rd *r = calloc(1, sizeof(*r));

    long t0 = now_ms();
    r->fd = cl_connect(e);
    cl_sends(r->fd, "G");
    /* the listener gives up after 200 ms: a 408 then the end */
    e->statuses[0] = cl_response(r, false, &e->r[0]);
    e->eof = cl_wait_eof(r->fd);
    e->elapsed_ms = now_ms() - t0;
    close(r->fd);
    /* dribbling bytes does not extend the deadline */
    t0 = now_ms();
    r->fd = cl_connect(e);
    const char *req = "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 0123456789012345678901234567890";
    bool cut = false;
    for (size_t i = 0; req[i] != '\0'; i++) {
        if (!cl_send(r->fd, req + i, 1)) {
            cut = true;
            break;
        }
        struct pollfd p = {r->fd, POLLIN, 0};
        if (poll(&p, 1, 20) > 0) {
            cut = true;
            break;
        }
    }
    e->flag = cut && cl_wait_eof(r->fd);
    e->statuses[1] = (int)(now_ms() - t0);
    close(r->fd);
    /* an idle keep-alive connection is closed after idle_timeout_ms */
    memset(r, 0, sizeof(*r));
    r->fd = cl_connect(e);
    cl_sends(r->fd, "GET " PATH TOKEN " HTTP/1.1\r\nHost: a\r\n\r\n");
    e->statuses[2] = cl_response(r, false, &e->r[1]);
    t0 = now_ms();
    e->statuses[3] = cl_wait_eof(r->fd);
    e->statuses[4] = (int)(now_ms() - t0);
    close(r->fd);
    free(r);
}

static void test_slow_and_idle_clients_disconnected(void **state)
{
    struct env *e = env_start();

    (void)state;
    set_limits(e, 200, 300, 0, 0);
    env_run(e, client_slow);
    assert_int_equal(e->statuses[0], 0);
    assert_int_equal(e->r[0].status, 408);
    assert_true(e->eof);
    assert_true(e->elapsed_ms >= 150);
    assert_true(e->elapsed_ms < 20000);
    assert_true(e->flag);
    assert_true(e->statuses[1] >= 150);
    assert_true(e->statuses[1] < 3000);
    assert_int_equal(e->statuses[2], 0);
    assert_int_equal(e->r[1].status, 200);
    assert_true(e->statuses[3]);
    assert_true(e->statuses[4] >= 200);
    assert_true(e->statuses[4] < 3000);
    assert_int_equal(e->stats.timeouts, 2);
    env_free(e);
}

static void client_pipeline(struct env *e)
{
    struct rd *r = calloc(1, sizeof(*r));

    r->fd = cl_connect(e);
    /* three requests in one write, answered in order */
    cl_sends(r->fd, "GET " PATH TOKEN " HTTP/1.1\r\nHost: a\r\n\r\n"
                    "GET " PATH "missing HTTP/1.1\r\nHost: a\r\n\r\n"
                    "HEAD " PATH TOKEN2 " HTTP/1.1\r\nHost: a\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        if (cl_response(r, i == 2, &e->r[i]) == 0)
            e->n_ok++;
    }
    /* the connection is still open: one more, split across writes */
    cl_sends(r->fd, "GET " PATH "to");
    usleep(20000);
    cl_sends(r->fd, "k2 HTTP/1.1\r\nHo");
    usleep(20000);
    cl_sends(r->fd, "st: a\r\nConnection: close\r\n\r\n");
    if (cl_response(r, false, &e->r[3]) == 0)
        e->n_ok++;
    e->eof = cl_wait_eof(r->fd) && r->len == 0;
    close(r->fd);
    free(r);
}

static void test_keepalive_pipelined_in_order(void **state)
{
    struct env *e = env_start();

    (void)state;
    env_run(e, client_pipeline);
    assert_int_equal(e->n_ok, 4);
    assert_int_equal(e->r[0].status, 200);
    assert_string_equal(e->r[0].body, KEYAUTH);
    assert_null(header_value(e->r[0].head, "Connection"));
    assert_int_equal(e->r[1].status, 404);
    assert_int_equal(e->r[2].status, 200);
    assert_int_equal(strtoul(header_value(e->r[2].head, "Content-Length"), NULL, 10),
                     strlen(KEYAUTH2));
    assert_int_equal(e->r[3].status, 200);
    assert_string_equal(e->r[3].body, KEYAUTH2);
    assert_true(strncmp(header_value(e->r[3].head, "Connection"), "close", 5) == 0);
    assert_true(e->eof);
    assert_int_equal(e->stats.connections, 1);
    assert_int_equal(e->stats.requests, 4);
    env_free(e);
}

static void client_max_requests(struct env *e)
{
    struct rd *r = calloc(1, sizeof(*r));

    r->fd = cl_connect(e);
    for (int i = 0; i < 3; i++) {
        cl_sends(r->fd, "GET " PATH TOKEN " HTTP/1.1\r\nHost: a\r\n\r\n");
        if (cl_response(r, false, &e->r[i]) == 0)
            e->n_ok++;
    }
    e->eof = cl_wait_eof(r->fd);
    close(r->fd);
    /* HTTP/1.0 keep-alive is honoured when asked for */
    memset(r, 0, sizeof(*r));
    r->fd = cl_connect(e);
    cl_sends(r->fd, "GET " PATH TOKEN " HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    if (cl_response(r, false, &e->r[3]) == 0)
        e->n_ok++;
    cl_sends(r->fd, "GET " PATH TOKEN " HTTP/1.0\r\n\r\n");
    struct resp x;
    if (cl_response(r, false, &x) == 0 && x.status == 200)
        e->n_ok++;
    e->flag = cl_wait_eof(r->fd);
    close(r->fd);
    free(r);
}

static void test_requests_per_connection_capped(void **state)
{
    struct env *e = env_start();

    (void)state;
    set_limits(e, 0, 0, 0, 3);
    env_run(e, client_max_requests);
    assert_int_equal(e->n_ok, 5);
    assert_null(header_value(e->r[0].head, "Connection"));
    assert_null(header_value(e->r[1].head, "Connection"));
    assert_true(strncmp(header_value(e->r[2].head, "Connection"), "close", 5) == 0);
    assert_true(e->eof);
    assert_true(strncmp(header_value(e->r[3].head, "Connection"), "keep-alive", 10) == 0);
    assert_true(e->flag);
    env_free(e);
}

static void client_concurrent(struct env *e)
{
    struct rd *r = calloc(NCONC, sizeof(*r));

    for (int i = 0; i < NCONC; i++)
        r[i].fd = cl_connect(e);
    for (int i = 0; i < NCONC; i++) {
        if (r[i].fd >= 0)
            cl_sends(r[i].fd, "GET " PATH TOKEN " HTTP/1.1\r\nHost: a\r\n\r\n");
    }
    for (int i = 0; i < NCONC; i++) {
        struct resp x;
        if (r[i].fd >= 0 && cl_response(&r[i], false, &x) == 0 && x.status == 200 &&
            strcmp(x.body, KEYAUTH) == 0)
            e->n_ok++;
    }
    for (int i = 0; i < NCONC; i++) {
        if (r[i].fd >= 0)
            close(r[i].fd);
    }
    free(r);
}

static void test_500_concurrent_connections_served(void **state)
{
    struct env *e = env_start();

    (void)state;
    env_run(e, client_concurrent);
    assert_int_equal(e->n_ok, NCONC);
    assert_int_equal(e->stats.connections, NCONC);
    assert_int_equal(e->stats.served, NCONC);
    env_free(e);
}

static void client_evict(struct env *e)
{
    for (int i = 0; i < 4; i++)
        e->fds[i] = cl_connect(e);
    usleep(100000); /* let the loop accept them, in order */
    struct resp x;
    if (cl_request(e, "GET " PATH TOKEN " HTTP/1.0\r\n\r\n", false, &x) == 0 && x.status == 200)
        e->n_ok++;
    e->eof = cl_wait_eof(e->fds[0]); /* the oldest waiting one made room */
    struct pollfd p = {e->fds[1], POLLIN, 0};
    e->flag = poll(&p, 1, 100) == 0; /* the others are untouched */
    for (int i = 0; i < 4; i++)
        close(e->fds[i]);
}

static void test_max_connections_evicts_oldest(void **state)
{
    struct env *e = env_start();

    (void)state;
    set_limits(e, 0, 0, 4, 0);
    env_run(e, client_evict);
    assert_int_equal(e->n_ok, 1);
    assert_true(e->eof);
    assert_true(e->flag);
    assert_int_equal(e->stats.evicted, 1);
    env_free(e);
}

static void client_v6(struct env *e)
{
    struct rd *r = calloc(1, sizeof(*r));

    r->fd = cl_connect_af(AF_INET6, e->port6);
    cl_sends(r->fd, "GET " PATH TOKEN " HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n");
    if (cl_response(r, false, &e->r[0]) == 0)
        e->n_ok++;
    close(r->fd);
    struct resp x;
    if (cl_request(e, "GET " PATH TOKEN " HTTP/1.0\r\n\r\n", false, &x) == 0 && x.status == 200)
        e->n_ok++;
    free(r);
}

static void test_ipv4_and_ipv6_listeners(void **state)
{
    static const char *const both[] = {"127.0.0.1:0", "[::1]:0"};
    struct env *e = env_new();

    (void)state;
    env_open(e, both, 2);
    assert_int_equal(chal_http01_listeners(e->srv), 2);
    assert_true(e->port6 > 0);
    assert_int_equal(chal_http01_port(e->srv, 2), -EINVAL);
    env_run(e, client_v6);
    assert_int_equal(e->n_ok, 2);
    assert_int_equal(e->r[0].status, 200);
    assert_string_equal(e->r[0].body, KEYAUTH);
    env_free(e);
}

static void client_one_get(struct env *e)
{
    struct resp x;

    if (cl_request(e, "GET " PATH TOKEN " HTTP/1.0\r\n\r\n", false, &x) == 0 && x.status == 200 &&
        strcmp(x.body, KEYAUTH) == 0)
        e->n_ok++;
}

static void test_systemd_socket_activation(void **state)
{
    static const char *const unused[] = {"127.0.0.1:1"};
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof(a);
    char pid[32];

    (void)state;
    /* fds 3 and 4 may be in use (ctest, a sanitizer): keep them safe
     * meanwhile. The loop is created after, so it cannot hold them itself. */
    int saved3 = fcntl(3, F_GETFD) >= 0 ? fcntl(3, F_DUPFD_CLOEXEC, 10) : -1;
    int saved4 = fcntl(4, F_GETFD) >= 0 ? fcntl(4, F_DUPFD_CLOEXEC, 10) : -1;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int pair[2];
    assert_true(ls >= 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(ls, 16), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
    /* fd 3: our TCP listener; fd 4: a unix socket that is not for us */
    assert_int_equal(dup2(ls, 3), 3);
    if (ls != 3)
        close(ls);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    assert_int_equal(dup2(pair[0], 4), 4);
    if (pair[0] != 4)
        close(pair[0]);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);

    struct env *e = env_new();
    env_open(e, unused, 1);
    assert_int_equal(e->port, ntohs(a.sin_port));
    assert_int_equal(chal_http01_listeners(e->srv), 1);
    assert_null(getenv("LISTEN_PID"));
    assert_null(getenv("LISTEN_FDS"));
    env_run(e, client_one_get);
    assert_int_equal(e->n_ok, 1);
    env_free(e);
    assert_int_equal(fcntl(3, F_GETFD), -1); /* closed with the listener */
    assert_true(fcntl(4, F_GETFD) >= 0);     /* left alone */
    assert_int_equal(write(4, "x", 1), 1);
    close(4);
    close(pair[1]);
    if (saved3 >= 0) {
        dup2(saved3, 3);
        close(saved3);
    }
    if (saved4 >= 0) {
        dup2(saved4, 4);
        close(saved4);
    }

    /* LISTEN_PID of another process: the variables are not for us */
    setenv("LISTEN_PID", "1", 1);
    setenv("LISTEN_FDS", "1", 1);
    static const char *const lo[] = {"127.0.0.1:0"};
    e = env_new();
    env_open(e, lo, 1);
    assert_int_not_equal(e->port, ntohs(a.sin_port));
    env_run(e, client_one_get);
    assert_int_equal(e->n_ok, 1);
    env_free(e);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
}

#define NFLOOD 5000

static char bigka[1001];

static void put_big(struct env *e)
{
    memset(bigka, 'k', 1000);
    bigka[1000] = '\0';
    e->statuses[0] = chal_http01_put(e->srv, "big", bigka);
}

static void client_leave_open(struct env *e)
{
    struct rd *r = calloc(1, sizeof(*r));

    e->fds[0] = cl_connect(e); /* nothing sent */
    e->fds[1] = cl_connect(e);
    cl_sends(e->fds[1], "GET / HTTP/1.1\r\nHo"); /* half a request */
    r->fd = e->fds[2] = cl_connect(e);
    cl_sends(r->fd, "GET " PATH TOKEN " HTTP/1.1\r\nHost: a\r\n\r\n"); /* then idle */
    if (cl_response(r, false, &e->r[0]) == 0)
        e->n_ok++;
    /* a client that does not read: its large responses fill the kernel's
     * buffers, and the listener queues a write and stops reading */
    on_loop(e, put_big);
    e->fds[3] = cl_connect(e);
    struct timeval tv = {0, 300000};
    setsockopt(e->fds[3], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char *many = malloc(60 * 1024);
    size_t at = 0;
    while (at + 64 < 60 * 1024)
        at += (size_t)snprintf(many + at, 60 * 1024 - at,
                               "GET " PATH "big HTTP/1.1\r\nHost: a\r\n\r\n");
    for (int i = 0; i < 100 && cl_send(e->fds[3], many, at); i++)
        ;
    free(many);
    free(r);
}

static void test_close_with_connections_open(void **state)
{
    struct env *e = env_start();

    (void)state;
    set_limits(e, 0, 0, 0, 1000000); /* so that the pipelining client is not cut off */
    env_run(e, client_leave_open);
    assert_int_equal(e->n_ok, 1);
    assert_int_equal(e->stats.active, 4);
    /* every connection was closed by the listener (the last one has
     * megabytes of answers to read first: just close it) */
    close(e->fds[3]);
    for (int i = 0; i < 3; i++) {
        struct timeval tv = {2, 0};
        setsockopt(e->fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        assert_true(cl_wait_eof(e->fds[i]));
        close(e->fds[i]);
    }
    env_free(e);
}

static void test_open_failures(void **state)
{
    static const char *const bad[] = {"127.0.0.1",       "1.2.3.4:80x",    "::1:80", "[::1]80",
                                      "127.0.0.1:65536", "example.org:80", ":80"};
    struct chal_http01 *s = NULL;
    uv_loop_t loop;

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (chal_http01_open(&loop, &bad[i], 1, &s) != -EINVAL)
            fail_msg("%s accepted", bad[i]);
    }
    assert_null(s);
    /* listen = []: nothing to open, not an error (webroot serves tokens) */
    s = (struct chal_http01 *)&loop;
    assert_int_equal(chal_http01_open(&loop, NULL, 0, &s), 0);
    assert_null(s);
    /* a port already taken: the second address fails, the first is undone */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof(a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(ls, 1), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
    char taken[64];
    snprintf(taken, sizeof(taken), "127.0.0.1:%d", ntohs(a.sin_port));
    const char *two[] = {"127.0.0.1:0", taken};
    assert_int_equal(chal_http01_open(&loop, two, 2, &s), UV_EADDRINUSE);
    assert_null(s);
    /* the message names the holder: this process, by its name */
    char name[32], comm[32] = "";
    long pid = 0;
    FILE *f = fopen("/proc/self/comm", "r");
    assert_non_null(f);
    assert_non_null(fgets(comm, sizeof(comm), f));
    fclose(f);
    comm[strcspn(comm, "\n")] = '\0';
    assert_int_equal(http01_port_owner(ntohs(a.sin_port), name, sizeof(name), &pid), 0);
    assert_int_equal(pid, (long)getpid());
    assert_string_equal(name, comm);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    close(ls);
}

static void test_put_validates_and_replaces(void **state)
{
    static const char *const lo[] = {"127.0.0.1:0"};
    struct chal_http01 *s;
    uv_loop_t loop;
    char longtok[300];

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(chal_http01_open(&loop, lo, 1, &s), 0);
    assert_int_equal(chal_http01_put(s, "a.b", "x"), -EINVAL);
    assert_int_equal(chal_http01_put(s, "", "x"), -EINVAL);
    assert_int_equal(chal_http01_put(s, "ok", ""), -EINVAL);
    assert_int_equal(chal_http01_put(s, "ok", "has space"), -EINVAL);
    memset(longtok, 'a', 257);
    longtok[257] = '\0';
    assert_int_equal(chal_http01_put(s, longtok, "x"), -EINVAL);
    longtok[256] = '\0';
    assert_int_equal(chal_http01_put(s, longtok, "x"), 0);
    assert_int_equal(chal_http01_put(s, "ok", "v1"), 0);
    assert_int_equal(chal_http01_put(s, "ok", "v2"), 0);
    assert_int_equal(chal_http01_count(s), 2);
    /* many tokens: the table grows and still finds each */
    for (int i = 0; i < 200; i++) {
        char t[16];
        snprintf(t, sizeof(t), "t%d", i);
        assert_int_equal(chal_http01_put(s, t, "ka"), 0);
    }
    assert_int_equal(chal_http01_count(s), 202);
    for (int i = 0; i < 200; i += 2) {
        char t[16];
        snprintf(t, sizeof(t), "t%d", i);
        chal_http01_del(s, t);
    }
    chal_http01_del(s, "never-put");
    assert_int_equal(chal_http01_count(s), 102);
    chal_http01_close(s, NULL, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Sends NFLOOD pipelined requests without reading for the first 300 ms, so
 * the listener's writes back up, then reads everything: every response must
 * arrive, complete and in order. */
static void client_flood(struct env *e)
{
    static const char req[] = "GET " PATH "big HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t total = NFLOOD * (sizeof(req) - 1), sent = 0;
    struct rd *r = calloc(1, sizeof(*r));
    long t0 = now_ms();

    on_loop(e, put_big);
    r->fd = cl_connect(e);
    fcntl(r->fd, F_SETFL, O_NONBLOCK);
    while (e->n_ok < NFLOOD && now_ms() - t0 < 20000) {
        bool may_read = now_ms() - t0 > 300;
        struct pollfd p = {r->fd, (short)((sent < total ? POLLOUT : 0) | (may_read ? POLLIN : 0)),
                           0};
        if (poll(&p, 1, 50) < 0)
            break;
        if ((p.revents & POLLOUT) && sent < total) {
            size_t off = sent % (sizeof(req) - 1);
            ssize_t w = send(r->fd, req + off, sizeof(req) - 1 - off, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
        }
        if (!may_read || !(p.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        ssize_t n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
        if (n <= 0)
            break;
        r->len += (size_t)n;
        /* consume complete responses */
        for (;;) {
            const char *end = find_head_end(r->buf, r->len);
            if (end == NULL)
                break;
            size_t hl = (size_t)(end - r->buf);
            if (r->len < hl + 1000)
                break;
            if (strncmp(r->buf, "HTTP/1.1 200 OK\r\n", 17) != 0 || r->buf[hl] != 'k' ||
                r->buf[hl + 999] != 'k') {
                e->flag = true; /* wrong answer */
                r->len = 0;
                break;
            }
            memmove(r->buf, r->buf + hl + 1000, r->len - hl - 1000);
            r->len -= hl + 1000;
            e->n_ok++;
        }
    }
    e->elapsed_ms = (long)sent;
    close(r->fd);
    free(r);
}

static void test_pipelined_flood_with_slow_reader(void **state)
{
    struct env *e = env_start();

    (void)state;
    set_limits(e, 0, 0, 0, 1000000);
    env_run(e, client_flood);
    assert_int_equal(e->statuses[0], 0);
    assert_false(e->flag);
    assert_int_equal(e->elapsed_ms,
                     NFLOOD * (long)strlen("GET " PATH "big HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_int_equal(e->n_ok, NFLOOD);
    assert_int_equal(e->stats.served, NFLOOD);
    env_free(e);
}

static char logged[8][512];
static int n_logged;

static void sink(enum log_level lvl, enum log_group g, const char *msg, void *arg)
{
    (void)arg;
    if (lvl == LOG_LVL_DEBUG && g == LOG_CHAL && n_logged < 8)
        snprintf(logged[n_logged++], sizeof(logged[0]), "%s", msg);
}

static void client_logged(struct env *e)
{
    struct resp x;

    cl_request(e, "GET " PATH TOKEN2 " HTTP/1.0\r\n\r\n", false, &x);
    e->statuses[0] = x.status;
    cl_request(e, "GET /\x01\xff HTTP/1.0\r\n\r\n", false, &x);
    e->statuses[1] = x.status;
    cl_request(e, "BREW /pot HTTP/1.0\r\n\r\n", false, &x);
    e->statuses[2] = x.status;
}

static void test_requests_logged_at_debug(void **state)
{
    struct env *e = env_start();

    (void)state;
    n_logged = 0;
    log_set_debug_group(LOG_CHAL, true);
    log_set_sink(sink, NULL);
    env_run(e, client_logged);
    log_set_sink(NULL, NULL);
    log_set_debug_group(LOG_CHAL, false);
    assert_int_equal(e->statuses[0], 200);
    assert_int_equal(e->statuses[1], 400);
    assert_int_equal(e->statuses[2], 405);
    assert_int_equal(n_logged, 3);
    assert_string_equal(logged[0], "http01: GET " PATH TOKEN2 " from 127.0.0.1: 200");
    assert_string_equal(logged[1], "http01: bad request from 127.0.0.1: 400");
    assert_string_equal(logged[2], "http01: BREW /pot from 127.0.0.1: 405");
    env_free(e);
}

static void client_linger(struct env *e)
{
    struct rd *r = calloc(1, sizeof(*r));
    size_t n = 300 * 1024;
    char *junk = malloc(n);

    /* a bad request followed at once by much more: the listener answers 400
     * and closes, but drains what we sent instead of resetting the
     * connection, which would destroy the answer before we read it */
    memcpy(junk, "nonsense\r\n", 10);
    memset(junk + 10, 'j', n - 10);
    r->fd = cl_connect(e);
    e->flag = cl_send(r->fd, junk, n);
    usleep(50000);
    cl_response(r, false, &e->r[0]);
    shutdown(r->fd, SHUT_WR);
    char b[64];
    e->statuses[0] = (int)recv(r->fd, b, sizeof(b), 0); /* 0: a clean end */
    close(r->fd);
    free(junk);
    free(r);
}

static void test_lingering_close_drains_the_peer(void **state)
{
    struct env *e = env_start();

    (void)state;
    env_run(e, client_linger);
    assert_true(e->flag);
    assert_int_equal(e->r[0].status, 400);
    assert_int_equal(e->statuses[0], 0);
    env_free(e);
}

/* ---- the miss callback (a fleet's shared tokens) ---------------------------------- */

static uv_timer_t late_timer;
static char misses[256];

static void late_put(uv_timer_t *t)
{
    struct env *e = t->data;

    if (e->srv != NULL)
        chal_http01_put(e->srv, "late1", "late1.thumb");
    uv_close((uv_handle_t *)t, NULL);
}

/* Looks "late1" up elsewhere: it arrives 100 ms later; "never" never does. */
static void on_miss(void *arg, const char *token)
{
    struct env *e = arg;

    strncat(misses, token, sizeof(misses) - strlen(misses) - 2);
    strncat(misses, " ", sizeof(misses) - strlen(misses) - 1);
    if (strcmp(token, "late1") == 0) {
        uv_timer_init(&e->loop, &late_timer);
        late_timer.data = e;
        uv_timer_start(&late_timer, late_put, 100, 0);
    }
}

static void client_miss(struct env *e)
{
    struct rd *r = calloc(1, sizeof(*r));
    struct resp x;
    long t0;

    r->fd = cl_connect(e);
    /* pipelined: the waiting request holds back the one after it, in order */
    cl_sends(r->fd, "GET " PATH TOKEN " HTTP/1.1\r\nHost: a\r\n\r\n"
                    "GET " PATH "late1 HTTP/1.1\r\nHost: a\r\n\r\n"
                    "GET " PATH TOKEN2 " HTTP/1.1\r\nHost: a\r\n\r\n");
    for (int i = 0; i < 3; i++)
        if (cl_response(r, false, &e->r[i]) == 0)
            e->n_ok++;
    close(r->fd);
    /* known now: answered at once */
    t0 = now_ms();
    cl_request(e, "GET " PATH "late1 HTTP/1.0\r\n\r\n", false, &x);
    e->statuses[0] = x.status;
    e->statuses[1] = (int)(now_ms() - t0);
    /* never arrives: 404 after miss_wait_ms */
    t0 = now_ms();
    cl_request(e, "GET " PATH "never HTTP/1.0\r\n\r\n", false, &x);
    e->statuses[2] = x.status;
    e->elapsed_ms = now_ms() - t0;
    /* not a challenge path: no wait */
    cl_request(e, "GET /index.html HTTP/1.0\r\n\r\n", false, &x);
    e->statuses[3] = x.status;
    free(r);
}

static void test_miss_waits_for_the_token(void **state)
{
    struct env *e = env_start();
    struct chal_http01_limits l = {0};

    (void)state;
    misses[0] = '\0';
    l.miss_wait_ms = 400;
    chal_http01_set_limits(e->srv, &l);
    chal_http01_set_miss_cb(e->srv, on_miss, e);
    env_run(e, client_miss);
    assert_int_equal(e->n_ok, 3);
    assert_int_equal(e->r[0].status, 200);
    assert_int_equal(e->r[1].status, 200);
    assert_string_equal(e->r[1].body, "late1.thumb");
    assert_int_equal(e->r[2].status, 200);
    assert_string_equal(e->r[2].body, KEYAUTH2);
    assert_int_equal(e->statuses[0], 200);
    assert_true(e->statuses[1] < 300);
    assert_int_equal(e->statuses[2], 404);
    assert_true(e->elapsed_ms >= 390);
    assert_int_equal(e->statuses[3], 404);
    assert_string_equal(misses, "late1 never ");
    assert_int_equal(e->stats.waited, 2);
    env_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_and_head_live_token),
        cmocka_unit_test(test_unknown_token_path_and_deleted_token_404),
        cmocka_unit_test(test_methods_garbage_and_bodies_rejected),
        cmocka_unit_test(test_oversized_heads_rejected_and_closed),
        cmocka_unit_test(test_slow_and_idle_clients_disconnected),
        cmocka_unit_test(test_keepalive_pipelined_in_order),
        cmocka_unit_test(test_requests_per_connection_capped),
        cmocka_unit_test(test_500_concurrent_connections_served),
        cmocka_unit_test(test_max_connections_evicts_oldest),
        cmocka_unit_test(test_ipv4_and_ipv6_listeners),
        cmocka_unit_test(test_systemd_socket_activation),
        cmocka_unit_test(test_close_with_connections_open),
        cmocka_unit_test(test_open_failures),
        cmocka_unit_test(test_put_validates_and_replaces),
        cmocka_unit_test(test_pipelined_flood_with_slow_reader),
        cmocka_unit_test(test_requests_logged_at_debug),
        cmocka_unit_test(test_lingering_close_drains_the_peer),
        cmocka_unit_test(test_miss_waits_for_the_token),
    };
    signal(SIGPIPE, SIG_IGN); /* as the daemon does */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
