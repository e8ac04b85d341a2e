/* The HTTPS API server: uv_tcp_t listeners, TLS through memory BIOs
 * (net/tls_mem.h, shared with the tls-alpn-01 responder; the contexts,
 * bootstrap or managed certificate, come from api_tls.c), one request per
 * connection parsed by the http-01 listener's strict parser (same limits),
 * Bearer tokens (the tokens file: tokens.c) and dashboard sessions, the
 * routes of api_routes[] and their answers, and the GET /v1/events streams.
 * It answers from what the reactor's handlers and the state directory give
 * it; it does not decide anything about certificates. */
#include "api/api.h"
#include "api/api_internal.h"
#include "api/dashboard_internal.h"
#include "api/server_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "net/httpd.h"
#include "config/config.h"
#include "net/tls_mem.h"
#include "store/store.h"
#include "util/bodysrc.h"
#include "util/buf.h"
#include "net/net.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#define BACKLOG 128
#define DEF_MAX_CONNS 256
#define DEF_HEAD_TIMEOUT_MS 10000
#define DEF_WRITE_TIMEOUT_MS 30000
#define RESP_MAX (64 * 1024 * 1024) /* head and body of one answer */
#define SSE_KEEPALIVE_MS 25000      /* a comment line this often on an idle stream */
#define SSE_WRITES_MAX 256          /* writes a stream reader may leave pending before it is cut */

struct aconn {
    struct tls_conn t; /* first: its handles' data is this struct too */
    struct api *a;     /* borrowed: outlives its connections */
    bool hs_done, answered;
    bool sse; /* a GET /v1/events stream: open until the client or we close */
    uint8_t in[HTTPD_HEAD_MAX];
    size_t in_len;
    char peer[INET6_ADDRSTRLEN];
    struct httpd_req req; /* once the head is in: its pointers are into in */
    char *body;           /* owned: req.content_length bytes and a NUL, or NULL */
    size_t body_have;
    struct api_wait *wait; /* work answering this request later, or NULL */
    struct body_src src;   /* a streamed answer's source until its last piece (next NULL: none) */
    char *logline;         /* owned: "PEER METHOD TARGET token=NAME" of an answer to come */
};

/* ---- connections ------------------------------------------------------------ */

static void maybe_free(struct api *a)
{
    if (!a->closing || a->open_handles > 0 || a->conns.head != NULL || a->jobs > 0)
        return;
    api_writes_free(a->writes);
    free(a->config_path);
    void (*cb)(void *) = a->closed_cb;
    void *arg = a->closed_arg;
    SSL_CTX_free(a->boot_ctx);
    SSL_CTX_free(a->cert_ctx);
    free(a->cert_gen);
    api_tokens_fini(&a->tokens);
    OPENSSL_cleanse(&a->sessions, sizeof(a->sessions));
    for (size_t i = 0; i < API_EV_RING; i++) {
        free(a->ring[i].id);
        free(a->ring[i].text);
    }
    free(a->tokens_file);
    free(a->certificate);
    free(a->state_dir);
    free(a->ls);
    free(a);
    if (cb != NULL)
        cb(arg);
}

static void conn_freed(struct tls_conn *t)
{
    struct aconn *c = (struct aconn *)t;
    struct api *a = c->a;

    if (c->wait != NULL)
        c->wait->c = NULL; /* its work answers nobody */
    body_src_drop(&c->src);
    if (c->body != NULL)
        OPENSSL_cleanse(c->body, c->req.content_length);
    free(c->body);
    free(c->logline);
    free(c);
    maybe_free(a);
}

static void timer_cb(uv_timer_t *t)
{
    struct aconn *c = t->data;

    log_debug(LOG_API, "%s: %s timed out", c->peer,
              c->answered ? "writing the answer" : "handshake or request head");
    tls_conn_close(&c->t);
}

/* Queues the whole answer through TLS, then close_notify; the connection
 * closes once the last write is out (one request per connection). */
/* Writes data (a whole answer) through TLS, then close_notify; the
 * connection closes once the last write is out (one request per
 * connection). */
static void conn_answer_raw(struct aconn *c, const void *data, size_t len)
{
    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->t.tcp);
    uv_timer_start(&c->t.timer, timer_cb,
                   c->a->lim.write_timeout_ms ? c->a->lim.write_timeout_ms : DEF_WRITE_TIMEOUT_MS,
                   0);
    int n = SSL_write(c->t.ssl, data, (int)len);
    if (n <= 0) {
        log_debug(LOG_API, "%s: TLS write failed (%d)", c->peer, SSL_get_error(c->t.ssl, n));
        ERR_clear_error();
        tls_conn_close(&c->t);
        return;
    }
    (void)SSL_shutdown(c->t.ssl);
    ERR_clear_error();
    c->t.close_after_write = true;
    tls_conn_flush(&c->t);
}

static void conn_answer(struct aconn *c, int status, const char *ctype, const char *extra,
                        const void *body, size_t len, bool head_only)
{
    struct buf out = BUF_INIT(RESP_MAX);

    buf_printf(&out,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
               "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
               "Connection: close\r\n%s\r\n",
               status, http_reason(status), ctype, len, extra != NULL ? extra : "");
    if (!head_only && len > 0)
        buf_append(&out, body, len);
    conn_answer_raw(c, out.data, out.len);
    if (out.data != NULL)
        OPENSSL_cleanse(out.data, out.len); /* may hold a private key */
    buf_fini(&out);
}

static bool tls_put(struct aconn *c, const void *p, size_t n)
{
    if (SSL_write(c->t.ssl, p, (int)n) > 0)
        return true;
    ERR_clear_error();
    return false;
}

/* Makes the next piece of c's streamed answer and queues it as one chunk
 * (HTTP/1.0: as is), the last one with the last chunk and close_notify.
 * The next piece is made once this one is out (stream_drained): a reader
 * that stalls holds one piece, and the loop serves others in between. */
static void stream_piece(struct aconn *c)
{
    struct buf piece = BUF_INIT(SIZE_MAX);
    struct httpd_chunk f;
    int rc = httpd_chunk_next(&c->src, &piece, c->req.minor == 0, &f);
    bool ok = rc >= 0;

    if (ok) { /* only the parts there are: no SSL_write of 0 bytes */
        ok = (f.head_len == 0 || tls_put(c, f.head, f.head_len)) &&
             (piece.len == 0 || tls_put(c, piece.data, piece.len)) &&
             (f.tail_len == 0 || tls_put(c, f.tail, f.tail_len));
    }
    buf_fini(&piece);
    if (ok && rc == 1) {
        body_src_drop(&c->src);
        (void)SSL_shutdown(c->t.ssl);
        ERR_clear_error();
        c->t.close_after_write = true;
    }
    if (!ok) {
        /* no last chunk: the client sees the answer is incomplete */
        log_info(LOG_API, "%s: the answer was cut: %s", c->peer, rc < 0 ? err_str(rc) : "TLS");
        tls_conn_close(&c->t);
        return;
    }
    /* the reader must take each piece within the write time limit, counted
     * from now (making it was not the reader's time) */
    uv_update_time(c->a->loop);
    uv_timer_start(&c->t.timer, timer_cb,
                   c->a->lim.write_timeout_ms ? c->a->lim.write_timeout_ms : DEF_WRITE_TIMEOUT_MS,
                   0);
    tls_conn_flush(&c->t);
}

static void stream_drained(struct tls_conn *t)
{
    struct aconn *c = (struct aconn *)t;

    if (c->src.next != NULL)
        stream_piece(c);
}

/* Answers 200 with *src's text (taken), streamed in HTTP/1.1 chunks. */
static void answer_stream(struct aconn *c, const char *ctype, struct body_src *src, bool head_only)
{
    char *head = xasprintf("HTTP/1.1 200 OK\r\nContent-Type: %s\r\n%s"
                           "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                           "Connection: close\r\n\r\n",
                           ctype, httpd_chunk_field(c->req.minor == 0));

    if (head_only) {
        body_src_drop(src);
        conn_answer_raw(c, head, strlen(head));
        free(head);
        return;
    }
    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->t.tcp);
    c->src = *src;
    *src = (struct body_src){0};
    c->t.drained_cb = stream_drained;
    bool ok = tls_put(c, head, strlen(head));
    free(head);
    if (!ok) {
        tls_conn_close(&c->t);
        return;
    }
    stream_piece(c);
}

static void answer_json(struct aconn *c, int status, const char *extra, json_t *j, bool head_only)
{
    char *s = json_dumps(j, JSON_COMPACT);
    size_t n = s != NULL ? strlen(s) : 0;
    char *body = xasprintf("%s\n", s != NULL ? s : "{}");

    conn_answer(c, status, "application/json", extra, body, n + 1, head_only);
    free(body);
    free(s);
}

static void answer_error(struct aconn *c, int status, const char *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void answer_error(struct aconn *c, int status, const char *extra, const char *fmt, ...)
{
    va_list ap;
    char msg[512];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *j = json_pack("{s:s}", "error", msg);
    answer_json(c, status, extra, j, false);
    json_decref(j);
}

/* ---- for the route files (write.c, preview.c) ------------------------------ */

void api_reply_json(struct aconn *c, int status, json_t *j)
{
    answer_json(c, status, NULL, j, false);
}

void api_reply_error(struct aconn *c, int status, const char *fmt, ...)
{
    va_list ap;
    char msg[512];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    answer_error(c, status, NULL, "%s", msg);
}

void api_reply_errors(struct aconn *c, int status, const char *msg, const char *const *lines,
                      size_t n)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(lines[i]));
    json_t *j = json_pack("{s:s,s:o}", "error", msg, "errors", arr);
    answer_json(c, status, NULL, j, false);
    json_decref(j);
}

void api_wait_begin(struct aconn *c, struct api_wait *w, unsigned ms)
{
    w->c = c;
    c->wait = w;
    c->a->jobs++;
    uv_read_stop((uv_stream_t *)&c->t.tcp);
    /* the work and its answer together get the write time limit (or ms) */
    if (ms == 0)
        ms = c->a->lim.write_timeout_ms ? c->a->lim.write_timeout_ms : DEF_WRITE_TIMEOUT_MS;
    uv_timer_start(&c->t.timer, timer_cb, ms, 0);
}

void api_wait_end(struct api_wait *w, int status)
{
    struct aconn *c = w->c;

    if (c != NULL) {
        log_info(LOG_API, "%s -> %d", c->logline != NULL ? c->logline : c->peer, status);
        c->wait = NULL;
        w->c = NULL;
    }
}

void api_job_end(struct api *a)
{
    a->jobs--;
    maybe_free(a);
}

const uint8_t *api_conn_head(const struct aconn *c)
{
    return c->in;
}

struct api *api_of(const struct aconn *c)
{
    return c->a;
}

uv_loop_t *api_loop(const struct api *a)
{
    return a->loop;
}

const struct api_handlers *api_handlers_of(const struct api *a)
{
    return &a->h;
}

const char *api_config_path(const struct api *a)
{
    return a->config_path;
}

struct api_writes **api_writes_slot(struct api *a)
{
    return &a->writes;
}

bool api_closing(const struct api *a)
{
    return a->closing;
}

/* ---- events (Server-Sent Events) ------------------------------------------ */

/* Queues bytes on an open stream; a reader that leaves too much pending is
 * cut off rather than buffered without end. */
static void sse_send(struct aconn *c, const char *text, size_t len)
{
    if (c->t.closing)
        return;
    if (c->t.writes > SSE_WRITES_MAX) {
        log_info(LOG_API, "%s: event stream reader too slow, closed", c->peer);
        tls_conn_close(&c->t);
        return;
    }
    if (SSL_write(c->t.ssl, text, (int)len) <= 0) {
        ERR_clear_error();
        tls_conn_close(&c->t);
        return;
    }
    tls_conn_flush(&c->t);
}

static void sse_keepalive_cb(uv_timer_t *t)
{
    struct aconn *c = t->data;

    static const char ka[] = ": keepalive\n\n";

    sse_send(c, ka, sizeof(ka) - 1);
}

/* Starts a stream: the head, then the kept events after last_id (all kept
 * ones when last_id is not among them; none without last_id). */
static void sse_start(struct aconn *c, const uint8_t *last_id, size_t last_len, bool head_only)
{
    struct api *a = c->a;
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                               "Connection: close\r\n\r\n";
    static const char hello[] = ": certloop events\n\n";

    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->t.tcp);
    if (head_only) {
        conn_answer_raw(c, head, sizeof(head) - 1);
        return;
    }
    c->sse = true;
    sse_send(c, head, sizeof(head) - 1);
    sse_send(c, hello, sizeof(hello) - 1);
    if (last_id != NULL) {
        size_t first = (a->ring_next + API_EV_RING - a->ring_n) % API_EV_RING, from = 0;
        for (size_t k = 0; k < a->ring_n; k++) {
            const char *id = a->ring[(first + k) % API_EV_RING].id;
            if (strlen(id) == last_len && memcmp(id, last_id, last_len) == 0)
                from = k + 1;
        }
        for (size_t k = from; k < a->ring_n; k++) {
            const char *text = a->ring[(first + k) % API_EV_RING].text;
            sse_send(c, text, strlen(text));
        }
    }
    uv_timer_start(&c->t.timer, sse_keepalive_cb, SSE_KEEPALIVE_MS, SSE_KEEPALIVE_MS);
}

void api_event(struct api *a, const char *json)
{
    if (a == NULL || a->closing)
        return;
    json_t *j = json_loads(json, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *ev = json_string_value(json_object_get(j, "event"));
    if (id == NULL || ev == NULL || strpbrk(id, "\r\n") != NULL || strpbrk(ev, "\r\n") != NULL) {
        json_decref(j);
        return;
    }
    char *flat = json_dumps(j, JSON_COMPACT); /* one data: line */
    char *text = xasprintf("id: %s\nevent: %s\ndata: %s\n\n", id, ev, flat != NULL ? flat : "{}");
    size_t slot = a->ring_next;
    free(a->ring[slot].id);
    free(a->ring[slot].text);
    a->ring[slot].id = xstrdup(id);
    a->ring[slot].text = text;
    a->ring_next = (slot + 1) % API_EV_RING;
    if (a->ring_n < API_EV_RING)
        a->ring_n++;
    for (struct tls_conn *t = a->conns.head; t != NULL; t = t->next) {
        struct aconn *c = (struct aconn *)t;
        if (c->sse)
            sse_send(c, text, strlen(text));
    }
    free(flat);
    json_decref(j);
}

/* ---- routes ------------------------------------------------------------------ */

/* The status document's object for name (borrowed from doc), or NULL. */
static json_t *cert_find(json_t *doc, const char *name)
{
    json_t *arr = json_object_get(doc, "certificates");
    size_t i;
    json_t *o;

    json_array_foreach(arr, i, o)
    {
        const char *n = json_string_value(json_object_get(o, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return o;
    }
    return NULL;
}

/* Reads the query parameter key of target (a boolean: true/1 or
 * false/0) into *out. -1 for a malformed query or an unknown parameter
 * (allowed lists the known ones), 0 otherwise. */
static int query_bools(const uint8_t *target, size_t len, const char *const *keys, bool *vals,
                       size_t n)
{
    const uint8_t *q = memchr(target, '?', len);

    if (q == NULL)
        return 0;
    q++;
    size_t ql = len - (size_t)(q - target);
    while (ql > 0) {
        const uint8_t *amp = memchr(q, '&', ql);
        size_t pl = amp != NULL ? (size_t)(amp - q) : ql;
        const uint8_t *eq = memchr(q, '=', pl);
        if (eq == NULL)
            return -1;
        size_t kl = (size_t)(eq - q), vl = pl - kl - 1;
        bool known = false;
        for (size_t i = 0; i < n; i++) {
            if (kl != strlen(keys[i]) || memcmp(q, keys[i], kl) != 0)
                continue;
            known = true;
            if ((vl == 4 && memcmp(eq + 1, "true", 4) == 0) || (vl == 1 && eq[1] == '1'))
                vals[i] = true;
            else if ((vl == 5 && memcmp(eq + 1, "false", 5) == 0) || (vl == 1 && eq[1] == '0'))
                vals[i] = false;
            else
                return -1;
        }
        if (!known)
            return -1;
        q += pl;
        ql -= pl;
        if (ql > 0) {
            q++;
            ql--;
        }
    }
    return 0;
}

static int route_run(struct aconn *c, const struct httpd_req *r, const struct api_route *rt,
                     const char *name, const char *file, bool head_only)
{
    struct api *a = c->a;
    json_t *doc = NULL;
    int st;

    if (c->body != NULL && rt->kind != API_R_CREATE && rt->kind != API_R_PLAN) {
        answer_error(c, 400, NULL, "%s %s takes no request body", rt->method, rt->pattern);
        return 400;
    }
    switch (rt->kind) { /* the routes of their own files */
    case API_R_CREATE:
        return api_route_create(c, c->body, c->req.content_length);
    case API_R_DELETE:
        return api_route_delete(c, name);
    case API_R_PLAN:
        return api_route_plan(c, r, c->body, c->req.content_length);
    case API_R_TEST:
        return api_route_test(c, name);
    default:
        break;
    }
    /* the whole status document only where nothing cheaper answers: a
     * streamed list, and one certificate's object by name */
    bool stream_list = rt->kind == API_R_LIST && a->h.list != NULL;
    bool need_doc = (rt->kind == API_R_FLEET && a->h.fleet == NULL) ||
                    (rt->kind == API_R_LIST && !stream_list) || (name != NULL && a->h.one == NULL);
    if (need_doc && (a->h.status == NULL || a->h.status(a->h.arg, &doc) < 0 || doc == NULL)) {
        answer_error(c, 503, NULL, "the daemon is stopping");
        return 503;
    }
    json_t *one = NULL; /* owned */
    if (name != NULL) {
        int rc = -ENOENT;
        if (doc != NULL) {
            one = json_incref(cert_find(doc, name));
            rc = one != NULL ? 0 : -ENOENT;
        } else {
            rc = a->h.one(a->h.arg, name, &one);
        }
        if (rc < 0) {
            if (rc == -ENOENT)
                answer_error(c, 404, NULL, "no certificate named %s", name);
            else
                answer_error(c, 503, NULL, "the daemon is stopping");
            json_decref(doc);
            return rc == -ENOENT ? 404 : 503;
        }
    }
    if (stream_list) {
        struct body_src src = {0};
        st = a->h.list(a->h.arg, &src);
        if (st < 0) {
            answer_error(c, 503, NULL, "the daemon is stopping");
            return 503;
        }
        answer_stream(c, "application/json", &src, head_only);
        return 200;
    }
    switch (rt->kind) {
    case API_R_LIST: {
        json_t *arr = json_array();
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(doc, "certificates"), i, o)
        {
            json_t *copy = json_copy(o); /* without the long parts: GET NAME has them */
            json_object_del(copy, "history");
            json_object_del(copy, "log");
            json_array_append_new(arr, copy);
        }
        json_t *j = json_pack("{s:o}", "certificates", arr);
        answer_json(c, 200, NULL, j, head_only);
        json_decref(j);
        st = 200;
        break;
    }
    case API_R_GET:
        answer_json(c, 200, NULL, one, head_only);
        st = 200;
        break;
    case API_R_FLEET: { /* the status document's copy of the fleet view */
        json_t *fleet = NULL;
        if (doc != NULL) {
            fleet = json_incref(json_object_get(doc, "fleet"));
        } else if (a->h.fleet(a->h.arg, &fleet) < 0) {
            answer_error(c, 503, NULL, "the daemon is stopping");
            st = 503;
            break;
        }
        if (fleet == NULL) {
            answer_error(c, 404, NULL,
                         "this daemon's store is not shared with other instances: no fleet");
            st = 404;
        } else {
            answer_json(c, 200, NULL, fleet, head_only);
            st = 200;
        }
        json_decref(fleet);
        break;
    }
    case API_R_PEM:
    case API_R_KEY: {
        struct store_cert sc = {0};
        bool key = rt->kind == API_R_KEY;
        int rc = store_cert_read_current(a->store, name, key, &sc);
        const char *pem = NULL;
        if (rc == 0) {
            pem = key                              ? sc.key_pem
                  : strcmp(file, "cert.pem") == 0  ? sc.cert_pem
                  : strcmp(file, "chain.pem") == 0 ? sc.chain_pem
                                                   : sc.fullchain_pem;
        }
        if (rc == -ENOENT || (rc == 0 && pem == NULL)) {
            answer_error(c, 404, NULL, "%s has no stored certificate yet", name);
            st = 404;
        } else if (rc < 0) {
            log_error(LOG_API, "%s: reading the stored certificate: %s", name, err_str(rc));
            answer_error(c, 503, NULL, "%s: the stored certificate cannot be read", name);
            st = 503;
        } else {
            char *extra = xasprintf("X-Certloop-Generation: %s\r\n",
                                    sc.generation != NULL ? sc.generation : "");
            conn_answer(c, 200,
                        key ? "application/x-pem-file" : "application/pem-certificate-chain", extra,
                        pem, strlen(pem), head_only);
            free(extra);
            st = 200;
        }
        if (sc.key_pem != NULL)
            OPENSSL_cleanse(sc.key_pem, strlen(sc.key_pem));
        store_cert_fini(&sc);
        break;
    }
    case API_R_RENEW: {
        static const char *const keys[] = {"force", "dry_run"};
        bool vals[2] = {false, false};
        if (query_bools(r->target, r->target_len, keys, vals, 2) < 0) {
            answer_error(c, 400, NULL,
                         "renew takes force=true|false and dry_run=true|false, nothing else");
            st = 400;
        } else if (vals[1]) {
            st = api_route_dry_run(c, name);
        } else {
            char *err = NULL;
            int rc = a->h.renew != NULL ? a->h.renew(a->h.arg, name, vals[0], &err) : -ENOSYS;
            if (rc == 0 && err != NULL) {
                /* not forced and not due: nothing was queued; why, and when */
                json_t *j = json_pack("{s:s,s:b,s:b,s:s}", "name", name, "queued", 0, "force",
                                      vals[0], "reason", err);
                answer_json(c, 200, NULL, j, false);
                json_decref(j);
                st = 200;
            } else if (rc == 0) {
                json_t *j = json_pack("{s:s,s:b,s:b}", "name", name, "queued", 1, "force", vals[0]);
                answer_json(c, 202, NULL, j, false);
                json_decref(j);
                st = 202;
            } else {
                st = rc == -ENOENT ? 404 : 409;
                answer_error(c, st, NULL, "%s", err != NULL ? err : err_str(rc));
            }
            free(err);
        }
        break;
    }
    case API_R_EVENTS: {
        const uint8_t *last = NULL;
        size_t last_len = 0;
        if (!api_head_field(c->in, r->head_len, "Last-Event-ID", &last, &last_len))
            last = NULL;
        sse_start(c, last, last_len, head_only);
        st = 200;
        break;
    }
    default:
        answer_error(c, 404, NULL, "no such resource");
        st = 404;
        break;
    }
    json_decref(one);
    json_decref(doc);
    return st;
}

/* "Bearer TOKEN" (RFC 6750 §2.1; the scheme is case-insensitive). */
static bool bearer(const struct httpd_req *r, const char **tok, size_t *len)
{
    if (r->authorization == NULL || r->authorization_len <= 7 ||
        strncasecmp((const char *)r->authorization, "bearer ", 7) != 0)
        return false;
    *tok = (const char *)r->authorization + 7;
    *len = r->authorization_len - 7;
    while (*len > 0 && **tok == ' ') {
        (*tok)++;
        (*len)--;
    }
    return *len > 0;
}

static bool session_path(const struct httpd_req *r)
{
    static const char p[] = "/v1/session";

    return r->path != NULL && r->path_len == sizeof(p) - 1 &&
           memcmp(r->path, p, sizeof(p) - 1) == 0;
}

/* A change authenticated by a session cookie: refused with 403 unless it
 * carries the session's X-CSRF-Token and comes from this origin. */
static bool session_csrf(struct aconn *c, const struct httpd_req *r, const struct api_session *se)
{
    const uint8_t *csrf = NULL, *origin = NULL, *host = NULL, *site = NULL;
    size_t csrf_len = 0, origin_len = 0, host_len = 0, site_len = 0;
    const char *why = NULL;

    if (!api_head_field(c->in, r->head_len, "X-CSRF-Token", &csrf, &csrf_len))
        csrf = NULL;
    if (!api_head_field(c->in, r->head_len, "Origin", &origin, &origin_len))
        origin = NULL;
    if (!api_head_field(c->in, r->head_len, "Host", &host, &host_len))
        host = NULL;
    if (!api_head_field(c->in, r->head_len, "Sec-Fetch-Site", &site, &site_len))
        site = NULL;
    if (api_session_csrf_ok(se, csrf, csrf_len, origin, origin_len, host, host_len, site, site_len,
                            &why))
        return true;
    answer_error(c, 403, NULL, "%s", why);
    return false;
}

/* /v1/session, the dashboard's login: POST with a Bearer token opens a
 * session (the cookie and the CSRF token), GET says who the session or
 * token is, DELETE (with the CSRF token) logs out. */
static int session_route(struct aconn *c, const char *method, const struct api_token *t,
                         struct api_session *se)
{
    struct api *a = c->a;
    char scopes[32];
    char *cookie = NULL;
    int st;

    api_scopes_format(t->scopes, scopes, sizeof(scopes));
    if (strcmp(method, "POST") == 0) {
        st = 200; /* with the session's own cookie (and CSRF token): the same session */
        if (se == NULL) {
            se = api_session_new(&a->sessions, t, uv_now(a->loop));
            st = 201;
        }
        cookie = api_session_set_cookie(se);
    } else if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
        st = 200;
    } else if (strcmp(method, "DELETE") == 0) {
        api_session_drop(se);
        cookie = api_session_set_cookie(NULL);
        json_t *j = json_pack("{s:b}", "logged_out", 1);
        answer_json(c, 200, cookie, j, false);
        json_decref(j);
        free(cookie);
        return 200;
    } else {
        answer_error(c, 405, "Allow: GET, HEAD, POST, DELETE\r\n", "use POST to log in");
        return 405;
    }
    json_t *j = json_pack("{s:s,s:s}", "name", t->name, "scopes", scopes);
    if (se != NULL) {
        json_object_set_new(j, "csrf_token", json_string(se->csrf));
        json_object_set_new(
            j, "expires",
            json_integer(
                (json_int_t)(time(NULL) +
                             (API_SESSION_LIFE_MS - (se->used_ms - se->created_ms)) / 1000)));
    }
    answer_json(c, st, cookie, j, strcmp(method, "HEAD") == 0);
    json_decref(j);
    free(cookie);
    return st;
}

static void conn_request(struct aconn *c, const struct httpd_req *r)
{
    struct api *a = c->a;
    char method[16];
    const char *who = "-";
    char *name = NULL;
    int st;

    snprintf(method, sizeof(method), "%.*s",
             (int)(r->method_len < sizeof(method) ? r->method_len : sizeof(method) - 1),
             (const char *)r->method_str);
    bool head_only = strcmp(method, "HEAD") == 0;
    uint64_t now = uv_now(a->loop);
    uint64_t wait = api_fail_wait(&a->fails, c->peer, now);
    const char *tok = NULL;
    size_t tok_len = 0;
    const struct api_token *t = NULL;

    struct api_session *se = NULL;
    bool cookie_sent = false;
    const struct api_asset *asset = r->path != NULL && (head_only || strcmp(method, "GET") == 0)
                                        ? api_asset_find(r->path, r->path_len)
                                        : NULL;

    if (asset != NULL) { /* the dashboard's own files: public, they hold no data */
        conn_answer(c, 200, asset->ctype, api_asset_headers, asset->data, asset->len, head_only);
        st = 200;
        goto log;
    }
    if (wait > 0) {
        char *extra = xasprintf("Retry-After: %llu\r\n", (unsigned long long)(wait + 999) / 1000);
        answer_error(c, 429, extra, "too many failed authentications from %s; try later", c->peer);
        free(extra);
        st = 429;
        goto log;
    }
    if (bearer(r, &tok, &tok_len)) {
        t = api_tokens_match(api_tokens_current(a), tok, tok_len);
    } else if (r->authorization == NULL) {
        /* no token: a dashboard session's cookie, if it is still good */
        const uint8_t *ck = NULL;
        size_t ckl = 0;
        cookie_sent = api_head_field(c->in, r->head_len, "Cookie", &ck, &ckl);
        if (cookie_sent)
            se = api_session_find(&a->sessions, ck, ckl, now);
        t = se != NULL ? api_session_token(se, api_tokens_current(a)) : NULL;
        if (se != NULL && t == NULL) {
            api_session_drop(se); /* its token was revoked or replaced */
            se = NULL;
        }
    }
    if (t == NULL) {
        /* a stale session cookie (a random 256-bit id: nothing to guess) and
         * the dashboard asking whether it is signed in are not failures */
        if (!cookie_sent && !(session_path(r) && r->authorization == NULL))
            api_fail_add(&a->fails, c->peer, now);
        answer_error(c, 401, "WWW-Authenticate: Bearer realm=\"certloop\"\r\n",
                     r->authorization != NULL ? "the token is not valid"
                     : cookie_sent            ? "the session has ended: log in again"
                                              : "an Authorization: Bearer token is required");
        st = 401;
        goto log;
    }
    who = t->name;
    if (se != NULL && !head_only && strcmp(method, "GET") != 0 && !session_csrf(c, r, se)) {
        st = 403;
        goto log;
    }
    if (session_path(r)) {
        st = session_route(c, method, t, se);
        goto log;
    }
    bool method_ok = false;
    const char *file = NULL;
    const struct api_route *rt =
        r->path != NULL ? api_route_find(method, r->path, r->path_len, &method_ok, &name, &file)
                        : NULL;
    if (rt == NULL) {
        answer_error(c, 404, NULL, "no such resource");
        st = 404;
    } else if (!method_ok) {
        char allow[64];
        api_route_allow(r->path, r->path_len, allow, sizeof(allow));
        char *extra = xasprintf("Allow: %s\r\n", allow);
        answer_error(c, 405, extra, "use %s", allow);
        free(extra);
        st = 405;
    } else if ((t->scopes & rt->scopes) == 0) {
        char need[32];
        api_scopes_format(rt->scopes, need, sizeof(need));
        answer_error(c, 403, NULL, "token %s lacks the scope this needs (%s)", t->name, need);
        st = 403;
    } else {
        st = route_run(c, r, rt, name, file, head_only);
    }
log:
    if (st != 0) /* else the route answers later (api_wait_end logs it) */
        log_info(LOG_API, "%s %s %.*s token=%s%s -> %d", c->peer, method,
                 (int)(r->target_len > 256 ? 256 : r->target_len), (const char *)r->target, who,
                 se != NULL ? " (session)" : "", st);
    else
        c->logline = xasprintf("%s %s %.*s token=%s%s", c->peer, method,
                               (int)(r->target_len > 256 ? 256 : r->target_len),
                               (const char *)r->target, who, se != NULL ? " (session)" : "");
    free(name);
}

/* Reads what TLS has decrypted into buf[*have..cap). false when the
 * connection is gone (closed here). */
static bool conn_read(struct aconn *c, uint8_t *buf, size_t cap, size_t *have)
{
    while (*have < cap) {
        int n = SSL_read(c->t.ssl, buf + *have, (int)(cap - *have));
        if (n <= 0) {
            int e = SSL_get_error(c->t.ssl, n);
            ERR_clear_error();
            if (e != SSL_ERROR_WANT_READ) {
                tls_conn_flush(&c->t);
                tls_conn_close(&c->t);
                return false;
            }
            break;
        }
        *have += (size_t)n;
    }
    return true;
}

/* Reads the rest of a body announced by Content-Length; the request runs
 * once all of it is in (the head's time limit covers the body too). */
static void conn_body(struct aconn *c)
{
    size_t want = c->req.content_length;

    if (!conn_read(c, (uint8_t *)c->body, want, &c->body_have))
        return;
    if (c->body_have < want) {
        tls_conn_flush(&c->t);
        return;
    }
    c->body[want] = '\0';
    conn_request(c, &c->req);
}

static void conn_input(struct aconn *c)
{
    if (c->body != NULL) {
        conn_body(c);
        return;
    }
    if (!conn_read(c, c->in, sizeof(c->in), &c->in_len))
        return;
    struct httpd_req r;
    int rc = httpd_parse_body(c->in, c->in_len, API_BODY_MAX, &r);
    if (rc == HTTPD_PARSE_DONE && r.content_length > 0) {
        /* what came with the head is the body's start; the rest is read into it */
        size_t have = c->in_len - r.head_len;
        c->req = r;
        c->body = xmalloc(r.content_length + 1);
        c->body_have = have < r.content_length ? have : r.content_length;
        memcpy(c->body, c->in + r.head_len, c->body_have);
        conn_body(c);
    } else if (rc == HTTPD_PARSE_DONE) {
        c->req = r;
        conn_request(c, &r);
    } else if (rc < 0) {
        log_info(LOG_API, "%s: malformed request -> %d", c->peer, -rc);
        answer_error(c, -rc, NULL, "%s", http_reason(-rc));
    } else {
        tls_conn_flush(&c->t);
    }
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct aconn *c = st->data;

    if (!tls_conn_read(&c->t, nread, buf) || c->answered)
        return;
    if (!c->hs_done) {
        int r = SSL_do_handshake(c->t.ssl);
        if (r == 1) {
            c->hs_done = true;
        } else {
            int e = SSL_get_error(c->t.ssl, r);
            ERR_clear_error();
            if (e != SSL_ERROR_WANT_READ) {
                log_debug(LOG_API, "%s: TLS handshake failed", c->peer);
                c->answered = true;
                uv_read_stop(st);
                c->t.close_after_write = true; /* once the alert is out */
            }
            tls_conn_flush(&c->t); /* the handshake's next flight, or an alert */
            return;
        }
    }
    conn_input(c);
}

static void connection_cb(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    struct api *a = l->a;

    if (status < 0 || a->closing)
        return;
    struct aconn *c = xcalloc(1, sizeof(*c));
    c->a = a;
    tls_conn_init(a->loop, &a->conns, &c->t, conn_freed);
    if (uv_accept(server, (uv_stream_t *)&c->t.tcp) < 0) {
        tls_conn_close(&c->t);
        return;
    }
    (void)uv_tcp_nodelay(&c->t.tcp, 1); /* small answers: no Nagle wait for the last segment */
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    snprintf(c->peer, sizeof(c->peer), "?");
    if (uv_tcp_getpeername(&c->t.tcp, (struct sockaddr *)&ss, &sl) == 0) {
        const void *ad = ss.ss_family == AF_INET6
                             ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                             : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
        (void)uv_inet_ntop(ss.ss_family, ad, c->peer, sizeof(c->peer));
    }
    if (a->conns.n > a->max_conns) {
        /* the oldest goes: a slow client holds a place only until newer
         * ones need it */
        struct aconn *old = (struct aconn *)tls_conn_oldest(&a->conns);
        log_debug(LOG_API, "%zu connections: closing the oldest, from %s", a->conns.n, old->peer);
        tls_conn_close(&old->t);
    }
    SSL_CTX *ctx = api_ctx_current(a);
    c->t.ssl = ctx != NULL ? tls_mem_accept_new(ctx) : NULL;
    if (c->t.ssl == NULL) {
        tls_conn_close(&c->t);
        return;
    }
    uv_timer_start(&c->t.timer, timer_cb,
                   a->lim.head_timeout_ms ? a->lim.head_timeout_ms : DEF_HEAD_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->t.tcp, tls_conn_alloc_cb, read_cb) < 0)
        tls_conn_close(&c->t);
}

/* ---- open and close ------------------------------------------------------- */

static void listener_closed(uv_handle_t *h)
{
    struct listener *l = h->data;
    struct api *a = l->a;

    a->open_handles--;
    maybe_free(a);
}

void api_set_max_connections(struct api *a, unsigned max_connections)
{
    if (a != NULL)
        a->max_conns = max_connections ? max_connections : DEF_MAX_CONNS;
}

void api_set_files(struct api *a, const char *tokens_file, const char *certificate)
{
    if (a == NULL)
        return;
    if ((tokens_file == NULL) != (a->tokens_file == NULL) ||
        (tokens_file != NULL && strcmp(tokens_file, a->tokens_file) != 0)) {
        free(a->tokens_file);
        a->tokens_file = tokens_file != NULL ? xstrdup(tokens_file) : NULL;
        memset(&a->tokens_st, 0, sizeof(a->tokens_st)); /* read at the next request */
        a->tokens_bad = false;
    }
    if ((certificate == NULL) != (a->certificate == NULL) ||
        (certificate != NULL && strcmp(certificate, a->certificate) != 0)) {
        free(a->certificate);
        a->certificate = certificate != NULL ? xstrdup(certificate) : NULL;
        SSL_CTX_free(a->cert_ctx);
        a->cert_ctx = NULL;
        free(a->cert_gen);
        a->cert_gen = NULL;
        a->cert_checked = 0;
    }
}

int api_open(const struct api_opts *o, struct api **out)
{
    struct api *a = xcalloc(1, sizeof(*a));
    int rc = 0;

    *out = NULL;
    a->loop = o->loop;
    a->max_conns = o->max_connections ? o->max_connections : DEF_MAX_CONNS;
    a->lim = o->lim;
    if (o->h != NULL)
        a->h = *o->h;
    a->state_dir = xstrdup(o->state_dir);
    a->config_path = o->config_path != NULL ? xstrdup(o->config_path) : NULL;
    a->store = o->store;
    a->tokens_file = o->tokens_file != NULL ? xstrdup(o->tokens_file) : NULL;
    a->certificate = o->certificate != NULL ? xstrdup(o->certificate) : NULL;
    a->ls = xcalloc(o->n_listen ? o->n_listen : 1, sizeof(*a->ls));
    for (size_t i = 0; i < o->n_listen; i++) {
        struct listener *l = &a->ls[i];
        l->a = a;
        uv_tcp_init(a->loop, &l->tcp);
        l->tcp.data = l;
        a->n_ls++;
        a->open_handles++;
        rc = tls_listen(&l->tcp, o->listen[i], BACKLOG, connection_cb, LOG_API, "api");
        if (rc < 0)
            break;
    }
    if (rc == 0)
        rc = api_boot_make(a, false);
    if (rc < 0) {
        api_close(a, NULL, NULL);
        return rc;
    }
    (void)api_ctx_current(a); /* the managed certificate, if stored already (logged) */
    (void)api_tokens_current(a);
    for (size_t i = 0; i < a->n_ls; i++)
        log_info(LOG_API, "listening on %s (https, at most %u connections)", o->listen[i],
                 a->max_conns);
    *out = a;
    return 0;
}

void api_close(struct api *a, void (*closed_cb)(void *arg), void *arg)
{
    if (a == NULL)
        return;
    a->closing = true;
    a->closed_cb = closed_cb;
    a->closed_arg = arg;
    for (size_t i = 0; i < a->n_ls; i++)
        uv_close((uv_handle_t *)&a->ls[i].tcp, listener_closed);
    tls_conn_close_all(&a->conns);
    maybe_free(a);
}

int api_port(const struct api *a, size_t i)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (a == NULL || i >= a->n_ls ||
        uv_tcp_getsockname(&a->ls[i].tcp, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}
