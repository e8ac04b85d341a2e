/* The control socket server: accepts connections on a unix socket, reads
 * one HTTP/1.1 request each (head and body capped, the whole request
 * bounded in time), routes it to the owner's handlers and answers with
 * JSON and Connection: close. It owns the socket file and every
 * connection; what a status or a renewal means is the handlers' business. */
#include "reactor/control.h"
#include "reactor/control_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "store/store.h"
#include "net/httpd.h"
#include "net/net.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#define DEF_MAX_CONNS 256
#define DEF_REQUEST_TIMEOUT_MS 10000
#define DEF_REPLY_TIMEOUT_MS 120000
#define DEF_HEAD_MAX (16 * 1024)
#define DEF_BODY_MAX (64 * 1024)

struct control {
    uv_loop_t *loop;    /* borrowed */
    uv_pipe_t listener; /* embedded; .data = self */
    struct control_handlers h;
    char *path; /* owned */
    dev_t dev;  /* of the socket file we created */
    ino_t ino;
    unsigned max_conns;
    uint64_t request_timeout, reply_timeout;
    size_t head_max, body_max;
    struct conn *conns; /* owned list (open and closing connections) */
    size_t nconns;      /* in the list */
    size_t nserving;    /* counted against max_conns (not answering 503) */
    bool listener_closed;
    bool closing;
    bool accept_pending; /* a connection waits in the backlog (we hold back) */
    control_close_cb close_cb;
    void *close_arg;
    char scratch[16384]; /* read buffer: each read is consumed at once */
};

enum conn_state { CONN_READING, CONN_HANDLING, CONN_WRITING, CONN_CLOSING };

/* The cb_arg of an async handler; outlives the connection if needed. */
struct reply_slot {
    struct conn *conn; /* NULL once the connection is gone */
};

struct conn {
    struct control *srv; /* borrowed: the server outlives its connections */
    struct conn *prev, *next;
    uv_pipe_t pipe;   /* .data = self */
    uv_timer_t timer; /* .data = self */
    int open_handles;
    enum conn_state state;
    bool counted; /* in srv->nserving */
    struct buf in;
    struct buf out;  /* the answer's head (and a small body) */
    struct buf body; /* a large body, written after out without a copy; a stream's piece */
    uv_write_t wr;
    struct body_src src;      /* a streamed answer's source (next NULL: none) */
    bool http10;              /* the request was HTTP/1.0: a stream ends with the connection */
    bool src_done;            /* the last piece is being written */
    struct httpd_chunk chunk; /* the piece's framing */
    struct reply_slot *slot;  /* pending async reply, or NULL */
    char method[16];
    char *path;      /* owned: the request path (query removed) */
    size_t head_len; /* 0 until the head is parsed */
    size_t clen;     /* Content-Length */
};

static void conn_close(struct conn *c);
static void accept_one(struct control *s);

/* ---- responses */

static void on_written(uv_write_t *w, int status)
{
    struct conn *c = w->data;

    (void)status; /* either way the connection ends here */
    conn_close(c);
}

static void on_timeout(uv_timer_t *t);

/* Sends the head and then *body (taken: *body is reset), without copying
 * the body: the status of 100,000 certificates is ~100 MB (issue 16). */
static void send_buf(struct conn *c, int code, const char *ctype, const char *extra_head,
                     struct buf *body)
{
    uv_buf_t b[2];
    int rc;

    if (c->state == CONN_CLOSING || c->state == CONN_WRITING) {
        buf_fini(body);
        return;
    }
    log_debug(LOG_CTL, "%s %s -> %d", c->method[0] != '\0' ? c->method : "-",
              c->path != NULL ? c->path : "-", code);
    uv_read_stop((uv_stream_t *)&c->pipe);
    c->state = CONN_WRITING;
    if (c->slot != NULL) {
        c->slot->conn = NULL;
        c->slot = NULL;
    }
    buf_init(&c->out, SIZE_MAX);
    buf_printf(&c->out,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
               "Connection: close\r\n\r\n",
               code, http_reason(code), ctype, body->len, extra_head != NULL ? extra_head : "");
    buf_fini(&c->body);
    buf_move(&c->body, body);
    /* a client that does not read its answer is dropped after the timeout,
     * counted from now: building a large answer (5 s of CPU for the status
     * of 100,000 certificates on a loaded machine) is not the client's time
     * and the loop's clock is still the one from before it */
    uv_update_time(c->pipe.loop);
    uv_timer_start(&c->timer, on_timeout, c->srv->request_timeout, 0);
    b[0] = uv_buf_init(c->out.data, (unsigned)c->out.len);
    b[1] = uv_buf_init(c->body.data != NULL ? c->body.data : c->out.data, (unsigned)c->body.len);
    c->wr.data = c;
    rc = uv_write(&c->wr, (uv_stream_t *)&c->pipe, b, c->body.len > 0 ? 2 : 1, on_written);
    if (rc < 0)
        conn_close(c);
}

static void send_raw(struct conn *c, int code, const char *ctype, const char *extra_head,
                     const char *body, size_t len)
{
    struct buf b = BUF_INIT(SIZE_MAX);

    buf_append(&b, body, len);
    send_buf(c, code, ctype, extra_head, &b);
}

static void stream_piece(struct conn *c);

static void on_piece_written(uv_write_t *w, int status)
{
    struct conn *c = w->data;

    if (status < 0 || c->state != CONN_WRITING || c->src_done) {
        conn_close(c); /* the end, or the client left */
        return;
    }
    stream_piece(c);
}

/* Makes the next piece of c's stream and writes it as one chunk (after the
 * head, the first time; with the last chunk, the last time). One piece per
 * write, and the next only once this one is out: a reader that does not
 * read holds one piece, not the answer, and the loop answers others
 * between two pieces (the write callback runs in a later loop turn). */
static void stream_piece(struct conn *c)
{
    uv_buf_t b[4];
    unsigned n = 0;

    int rc = httpd_chunk_next(&c->src, &c->body, c->http10, &c->chunk);
    if (rc < 0) {
        log_warn(LOG_CTL, "%s %s: the answer was cut: %s", c->method, c->path, err_str(rc));
        conn_close(c); /* no last chunk: the client sees the answer is incomplete */
        return;
    }
    c->src_done = rc == 1;
    if (c->out.len > 0)
        b[n++] = uv_buf_init(c->out.data, (unsigned)c->out.len);
    if (c->chunk.head_len > 0)
        b[n++] = uv_buf_init(c->chunk.head, (unsigned)c->chunk.head_len);
    if (c->body.len > 0)
        b[n++] = uv_buf_init(c->body.data, (unsigned)c->body.len);
    if (c->chunk.tail_len > 0)
        b[n++] = uv_buf_init((char *)c->chunk.tail, (unsigned)c->chunk.tail_len);
    c->out.len = 0; /* the head goes once */
    /* the reader must take each piece within the timeout, counted from now
     * (making the piece was not its time) */
    uv_update_time(c->pipe.loop);
    uv_timer_start(&c->timer, on_timeout, c->srv->request_timeout, 0);
    c->wr.data = c;
    if (n == 0) { /* an empty last piece to an HTTP/1.0 client (or a source stuck) */
        conn_close(c);
        return;
    }
    if (uv_write(&c->wr, (uv_stream_t *)&c->pipe, b, n, on_piece_written) < 0)
        conn_close(c);
}

/* Answers 200 with *src's text (taken), written piece by piece. */
static void send_stream(struct conn *c, const char *ctype, struct body_src *src)
{
    if (c->state == CONN_CLOSING || c->state == CONN_WRITING) {
        body_src_drop(src);
        return;
    }
    log_debug(LOG_CTL, "%s %s -> 200 (streamed)", c->method, c->path != NULL ? c->path : "-");
    uv_read_stop((uv_stream_t *)&c->pipe);
    c->state = CONN_WRITING;
    c->src = *src;
    *src = (struct body_src){0};
    buf_init(&c->out, SIZE_MAX);
    buf_init(&c->body, SIZE_MAX);
    buf_printf(&c->out, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n%sConnection: close\r\n\r\n", ctype,
               httpd_chunk_field(c->http10));
    stream_piece(c);
}

/* Sends obj (a JSON object; the reference is taken) with code, serialized
 * straight into the body (one copy of the text, freed after the write). */
static void send_json(struct conn *c, int code, json_t *obj, const char *extra_head)
{
    struct buf body = BUF_INIT(SIZE_MAX);
    int rc = json_dump_callback(obj, buf_dump_cb, &body, JSON_INDENT(2) | JSON_ENSURE_ASCII);

    json_decref(obj);
    if (rc < 0) {
        static const char fallback[] = "{\"error\": \"cannot encode the answer\"}\n";
        buf_fini(&body);
        send_raw(c, 500, "application/json", NULL, fallback, sizeof(fallback) - 1);
        return;
    }
    buf_append(&body, "\n", 1);
    send_buf(c, code, "application/json", extra_head, &body);
}

static void send_error(struct conn *c, int code, const char *extra_head, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void send_error(struct conn *c, int code, const char *extra_head, const char *fmt, ...)
{
    va_list ap;
    struct buf msg = BUF_INIT(4096);

    va_start(ap, fmt);
    buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    send_json(c, code, json_pack("{s:s}", "error", msg.data != NULL ? msg.data : ""), extra_head);
    buf_fini(&msg);
}

/* ---- handlers */

/* A route answered by a streaming handler: what names it in an error. */
static void do_stream(struct conn *c, int (*h)(void *, struct body_src *), const char *what,
                      const char *ctype)
{
    struct body_src src = {0};
    int rc = h(c->srv->h.arg, &src);

    if (rc < 0)
        send_error(c, 500, NULL, "%s: %s", what, err_str(rc));
    else
        send_stream(c, ctype, &src);
}

static void do_status(struct conn *c)
{
    json_t *obj = NULL;
    int rc;

    if (c->srv->h.status_stream != NULL) {
        do_stream(c, c->srv->h.status_stream, "status", "application/json");
        return;
    }
    if (c->srv->h.status == NULL) {
        send_error(c, 501, NULL, "status is not available");
        return;
    }
    rc = c->srv->h.status(c->srv->h.arg, &obj);
    if (rc < 0 || obj == NULL) {
        json_decref(obj);
        send_error(c, 500, NULL, "status: %s", err_str(rc < 0 ? rc : -EINVAL));
        return;
    }
    send_json(c, 200, obj, NULL);
}

static void do_metrics(struct conn *c)
{
    /* ~270 bytes per certificate: 16 MiB, the old cap, ended at ~60,000 */
    struct buf b = BUF_INIT(1u << 30);
    int rc;

    if (c->srv->h.metrics_stream != NULL) {
        do_stream(c, c->srv->h.metrics_stream, "metrics",
                  "text/plain; version=0.0.4; charset=utf-8");
        return;
    }
    if (c->srv->h.metrics == NULL) {
        send_error(c, 501, NULL, "metrics are not available");
        return;
    }
    rc = c->srv->h.metrics(c->srv->h.arg, &b);
    if (rc < 0)
        send_error(c, 500, NULL, "metrics: %s", err_str(rc));
    else
        send_buf(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, &b);
    buf_fini(&b);
}

static void do_cert(struct conn *c, const char *name)
{
    json_t *obj = NULL;
    int rc = c->srv->h.cert != NULL ? c->srv->h.cert(c->srv->h.arg, name, &obj) : -ENOSYS;

    if (rc == 0)
        send_json(c, 200, obj, NULL);
    else if (rc == -ENOENT)
        send_error(c, 404, NULL, "no certificate named '%s'", name);
    else if (rc == -ENOSYS)
        send_error(c, 501, NULL, "certificates are not available");
    else
        send_error(c, 500, NULL, "%s: %s", name, err_str(rc));
}

static int renew_code(int rc)
{
    switch (rc) {
    case -ENOENT:
        return 404;
    case -EBUSY:
    case -EALREADY:
        return 409;
    case -EINVAL:
        return 400;
    case ERR_RATE_LIMITED:
        return 429;
    default:
        return 500;
    }
}

static void do_renew(struct conn *c, const char *name, const char *body, size_t len)
{
    bool force, deploy_only, new_key;
    const char *why = NULL;
    char *err = NULL;
    int rc = control_renew_body_parse(body, len, &force, &deploy_only, &new_key, &why);

    if (rc < 0) {
        send_error(c, -rc, NULL, "%s", why);
        return;
    }
    if (c->srv->h.renew == NULL) {
        send_error(c, 501, NULL, "renew is not available");
        return;
    }
    rc = c->srv->h.renew(c->srv->h.arg, name, force, deploy_only, new_key, &err);
    if (rc == 0) {
        send_json(c, 202,
                  json_pack("{s:b,s:s,s:s}", "ok", 1, "name", name, "message",
                            err != NULL ? err : "renewal queued"),
                  NULL);
    } else if (err != NULL) {
        send_error(c, renew_code(rc), NULL, "%s", err);
    } else if (rc == -ENOENT) {
        send_error(c, 404, NULL, "no certificate named '%s'", name);
    } else {
        send_error(c, renew_code(rc), NULL, "renew %s: %s", name, err_str(rc));
    }
    free(err);
}

/* The connection an async reply is for (the slot is freed), or NULL when
 * the client left, timed out, or the server closed. */
static struct conn *slot_take(struct reply_slot *slot)
{
    struct conn *c = slot->conn;

    free(slot);
    if (c != NULL)
        c->slot = NULL;
    return c;
}

/* An async handler's failure: {"ok": false, "error", "errors": [...]}. */
static void send_failure(struct conn *c, int code, const char *message, const char *const *errors,
                         size_t n_errors)
{
    json_t *lines = json_array();

    for (size_t i = 0; i < n_errors; i++)
        json_array_append_new(lines, json_string(errors[i] != NULL ? errors[i] : ""));
    send_json(c, code, json_pack("{s:b,s:s,s:o}", "ok", 0, "error", message, "errors", lines),
              NULL);
}

/* Waits for an async handler's answer (at most timeout_ms). */
static struct reply_slot *slot_new(struct conn *c, uint64_t timeout_ms)
{
    struct reply_slot *slot = xmalloc(sizeof(*slot));

    slot->conn = c;
    c->slot = slot;
    c->state = CONN_HANDLING;
    uv_timer_start(&c->timer, on_timeout, timeout_ms, 0);
    return slot;
}

static void on_reload_reply(void *cb_arg, int status, const char *message,
                            const char *const *errors, size_t n_errors)
{
    struct conn *c = slot_take(cb_arg);

    if (c == NULL)
        return;
    if (status == 0) {
        send_json(
            c, 200,
            json_pack("{s:b,s:s}", "ok", 1, "message", message != NULL ? message : "reloaded"),
            NULL);
        return;
    }
    if (message == NULL)
        message = status == ERR_CONFIG ? "the new configuration is invalid; keeping the old one"
                                       : err_str(status);
    send_failure(c, status == ERR_CONFIG ? 422 : 500, message, errors, n_errors);
}

static void do_reload(struct conn *c)
{
    if (c->srv->h.reload == NULL) {
        send_error(c, 501, NULL, "reload is not available");
        return;
    }
    struct reply_slot *slot = slot_new(c, c->srv->reply_timeout);
    c->srv->h.reload(c->srv->h.arg, on_reload_reply, slot); /* may answer at once */
}

static void on_dry_run_reply(void *cb_arg, int status, int failed, const char *summary,
                             const char *message, const char *const *errors, size_t n_errors)
{
    struct conn *c = slot_take(cb_arg);

    if (c == NULL)
        return;
    if (status == 0) {
        send_json(c, 200,
                  json_pack("{s:b,s:i,s:s}", "ok", failed == 0, "failed", failed, "summary",
                            summary != NULL ? summary : ""),
                  NULL);
        return;
    }
    if (message == NULL)
        message = status == ERR_CONFIG ? "the dry run cannot start" : err_str(status);
    int code = status == ERR_CONFIG   ? 422
               : status == -EBUSY     ? 409
               : status == -ECANCELED ? 503
                                      : 500;
    send_failure(c, code, message, errors, n_errors);
}

static void do_dry_run(struct conn *c, const char *body, size_t len)
{
    char **names = NULL;
    size_t n = 0;
    const char *why = NULL;
    int rc = control_dry_run_body_parse(body, len, &names, &n, &why);

    if (rc < 0) {
        send_error(c, -rc, NULL, "%s", why);
        return;
    }
    if (c->srv->h.dry_run == NULL) {
        send_error(c, 501, NULL, "dry runs are not available");
    } else {
        uint64_t t = c->srv->reply_timeout > CONTROL_DRY_RUN_TIMEOUT_MS
                         ? c->srv->reply_timeout
                         : CONTROL_DRY_RUN_TIMEOUT_MS;
        struct reply_slot *slot = slot_new(c, t);
        c->srv->h.dry_run(c->srv->h.arg, (const char *const *)names, n, on_dry_run_reply, slot);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static void route(struct conn *c, const char *body, size_t len)
{
    char name[CONTROL_NAME_MAX + 1];
    const char *allow = NULL;

    switch (control_route_decide(c->method, c->path, name, sizeof(name), &allow)) {
    case CONTROL_ROUTE_STATUS:
        do_status(c);
        break;
    case CONTROL_ROUTE_METRICS:
        do_metrics(c);
        break;
    case CONTROL_ROUTE_RELOAD:
        do_reload(c);
        break;
    case CONTROL_ROUTE_RENEW:
        do_renew(c, name, body, len);
        break;
    case CONTROL_ROUTE_DRY_RUN:
        do_dry_run(c, body, len);
        break;
    case CONTROL_ROUTE_CERT:
        do_cert(c, name);
        break;
    case CONTROL_ROUTE_METHOD: {
        char hdr[32];
        snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
        send_error(c, 405, hdr, "%s: use %s", c->path, allow);
        break;
    }
    case CONTROL_ROUTE_NOT_FOUND:
        send_error(c, 404, NULL, "no such resource");
        break;
    }
}

/* Looks at what has arrived; answers once the request is complete or wrong. */
static void try_request(struct conn *c)
{
    const char *why = NULL;

    if (c->head_len == 0) {
        struct control_req r;
        int rc = control_parse_request(c->in.data, c->in.len, c->srv->head_max, c->srv->body_max,
                                       &r, &why);
        if (rc == 0)
            return;
        if (rc < 0) {
            send_error(c, -rc, NULL, "%s", why);
            return;
        }
        memcpy(c->method, r.method, sizeof(c->method));
        c->path = xstrndup(r.path, r.path_len);
        c->head_len = r.head_len;
        c->clen = r.content_length;
        c->http10 = r.http10;
    }
    if (c->in.len - c->head_len < c->clen)
        return; /* the body is still arriving */
    uv_read_stop((uv_stream_t *)&c->pipe);
    uv_timer_stop(&c->timer);
    c->state = CONN_HANDLING;
    route(c, c->in.data + c->head_len, c->clen);
}

/* ---- connections */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct conn *c = h->data;

    (void)suggested;
    *b = uv_buf_init(c->srv->scratch, sizeof(c->srv->scratch));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = st->data;

    if (c->state != CONN_READING)
        return;
    if (nread < 0) {
        /* EOF before a whole request, or an error: nobody to answer */
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (buf_append(&c->in, b->base, (size_t)nread) < 0) {
        send_error(c, 413, NULL, "request too large");
        return;
    }
    try_request(c);
}

static void on_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;

    switch (c->state) {
    case CONN_READING:
        send_error(c, 408, NULL, "the request did not arrive in time");
        break;
    case CONN_HANDLING:
        log_warn(LOG_CTL, "%s %s: no answer from the daemon in time", c->method,
                 c->path != NULL ? c->path : "-");
        send_error(c, 504, NULL, "the daemon did not answer in time");
        break;
    default:
        conn_close(c); /* the client does not read its answer */
        break;
    }
}

static void maybe_finish(struct control *s)
{
    control_close_cb cb;
    void *arg;

    if (!s->closing || !s->listener_closed || s->nconns > 0)
        return;
    cb = s->close_cb;
    arg = s->close_arg;
    free(s->path);
    free(s);
    if (cb != NULL)
        cb(arg);
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct control *s = c->srv;

    if (--c->open_handles > 0)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->nconns--;
    buf_fini(&c->in);
    buf_fini(&c->out);
    buf_fini(&c->body);
    free(c->path);
    free(c);
    if (s->accept_pending && !s->closing) {
        s->accept_pending = false;
        accept_one(s);
    }
    maybe_finish(s);
}

static void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    body_src_drop(&c->src); /* nothing more is made; the piece in flight stays until closed */
    if (c->slot != NULL) {
        c->slot->conn = NULL; /* the async reply will find nobody */
        c->slot = NULL;
    }
    if (c->counted) {
        c->counted = false;
        c->srv->nserving--;
    }
    uv_close((uv_handle_t *)&c->pipe, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void accept_one(struct control *s)
{
    struct conn *c;
    int rc;

    /* hold connections in the kernel's backlog rather than take on more
     * than twice the cap (the extra ones only get a 503) */
    if (s->nconns >= 2 * (size_t)s->max_conns) {
        s->accept_pending = true;
        return;
    }
    c = xcalloc(1, sizeof(*c));
    c->srv = s;
    buf_init(&c->in, s->head_max + s->body_max);
    rc = uv_pipe_init(s->loop, &c->pipe, 0);
    assert(rc == 0);
    rc = uv_timer_init(s->loop, &c->timer);
    assert(rc == 0);
    c->pipe.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    c->state = CONN_READING;
    rc = uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&c->pipe);
    if (rc < 0) {
        log_debug(LOG_CTL, "accept: %s", err_str(rc));
        conn_close(c);
        return;
    }
    if (s->nserving >= s->max_conns) {
        send_error(c, 503, NULL, "too many connections");
        return;
    }
    c->counted = true;
    s->nserving++;
    uv_timer_start(&c->timer, on_timeout, s->request_timeout, 0);
    rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    if (rc < 0)
        conn_close(c);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct control *s = l->data;

    if (status < 0) {
        log_warn(LOG_CTL, "%s: %s", s->path, err_str(status));
        return;
    }
    if (s->closing)
        return;
    accept_one(s);
}

/* ---- the socket file */

/* Is somebody answering on path? 0: no socket there (a stale one was
 * removed); -EADDRINUSE: a live server; -EEXIST: not a socket. */
static int clear_stale(const char *path)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd, rc;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -EEXIST;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    if (rc < 0)
        rc = -errno;
    close(fd);
    if (rc == 0 || rc == -EAGAIN || rc == -EINPROGRESS)
        return -EADDRINUSE; /* accepted, or a full backlog: alive */
    if (rc != -ECONNREFUSED)
        return rc;
    if (unlink(path) < 0 && errno != ENOENT)
        return -errno;
    log_info(LOG_CTL, "removed the stale socket %s", path);
    return 0;
}

/* mkdir -p of the socket's directory (each created one 0750). A failure
 * names the first directory that could not be created, not just errno. */
static int ensure_parent(const char *path)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    struct stat st;
    int rc = 0;

    if (slash == NULL || slash == dir)
        goto out;
    *slash = '\0';
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        goto out;
    rc = store_mkdirs(dir, 0750);
    if (rc == 0) {
        log_info(LOG_CTL, "created %s", dir);
        goto out;
    }
    /* the first missing component: the child of the deepest one there */
    char *miss = xstrdup(dir);
    for (;;) {
        char *up = strrchr(miss, '/');
        if (up == NULL || up == miss)
            break;
        *up = '\0';
        if (stat(miss, &st) == 0) {
            *up = '/';
            break;
        }
    }
    log_error(LOG_CTL, "control socket %s: cannot create the directory %s: %s", path, miss,
              err_str(rc));
    free(miss);
out:
    free(dir);
    return rc;
}

static void listener_closed(uv_handle_t *h)
{
    struct control *s = h->data;

    s->listener_closed = true;
    maybe_finish(s);
}

int control_open(const struct control_opts *o, struct control **out)
{
    struct control *s;
    struct stat st;
    mode_t old_mask;
    int rc;

    if (strlen(o->path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
        log_error(LOG_CTL, "%s: path too long for a unix socket", o->path);
        return -ENAMETOOLONG;
    }
    rc = ensure_parent(o->path);
    if (rc < 0)
        return rc;
    rc = clear_stale(o->path);
    if (rc == -EADDRINUSE) {
        log_error(LOG_CTL, "%s: another daemon answers on it", o->path);
        return rc;
    }
    if (rc == -EEXIST) {
        log_error(LOG_CTL, "%s exists and is not a socket", o->path);
        return rc;
    }
    if (rc < 0) {
        log_error(LOG_CTL, "%s: %s", o->path, err_str(rc));
        return rc;
    }

    s = xcalloc(1, sizeof(*s));
    s->loop = o->loop;
    if (o->h != NULL)
        s->h = *o->h;
    s->path = xstrdup(o->path);
    s->max_conns = o->max_conns != 0 ? o->max_conns : DEF_MAX_CONNS;
    s->request_timeout =
        o->request_timeout_ms != 0 ? o->request_timeout_ms : DEF_REQUEST_TIMEOUT_MS;
    s->reply_timeout = o->reply_timeout_ms != 0 ? o->reply_timeout_ms : DEF_REPLY_TIMEOUT_MS;
    s->head_max = o->head_max != 0 ? o->head_max : DEF_HEAD_MAX;
    s->body_max = o->body_max != 0 ? o->body_max : DEF_BODY_MAX;
    rc = uv_pipe_init(s->loop, &s->listener, 0);
    assert(rc == 0);
    s->listener.data = s;

    /* the file is created by bind(2) with 0777 & ~umask: under 0117 it is
     * 0660 from its first instant, never wider even for a moment */
    old_mask = umask(0117);
    rc = uv_pipe_bind(&s->listener, s->path);
    umask(old_mask);
    if (rc < 0) {
        log_error(LOG_CTL, "bind %s: %s", s->path, err_str(rc));
        goto fail;
    }
    if (chmod(s->path, 0660) < 0)
        log_warn(LOG_CTL, "chmod %s: %s", s->path, err_str(-errno));
    if (stat(s->path, &st) == 0) {
        s->dev = st.st_dev;
        s->ino = st.st_ino;
    }
    rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
    if (rc < 0) {
        log_error(LOG_CTL, "listen %s: %s", s->path, err_str(rc));
        unlink(s->path);
        goto fail;
    }
    log_info(LOG_CTL, "listening on %s", s->path);
    *out = s;
    return 0;
fail:
    s->closing = true;
    uv_close((uv_handle_t *)&s->listener, listener_closed); /* frees s */
    return rc;
}

void control_close(struct control *s, control_close_cb cb, void *arg)
{
    struct stat st;

    assert(!s->closing);
    s->closing = true;
    s->close_cb = cb;
    s->close_arg = arg;
    /* remove the file only if it is still the one we bound: a successor may
     * already have replaced it */
    if (stat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
        unlink(s->path);
    uv_close((uv_handle_t *)&s->listener, listener_closed);
    for (struct conn *c = s->conns; c != NULL; c = c->next)
        conn_close(c);
}

void control_set_max_conns(struct control *c, unsigned max_conns)
{
    if (c == NULL)
        return;
    c->max_conns = max_conns != 0 ? max_conns : DEF_MAX_CONNS;
    if (c->accept_pending && !c->closing && c->nconns < 2 * (size_t)c->max_conns) {
        c->accept_pending = false;
        accept_one(c);
    }
}

size_t control_conn_count(const struct control *s)
{
    return s->nconns;
}

/* ---- the status document */

static json_t *time_or_null(int64_t t)
{
    return t != 0 ? json_integer((json_int_t)t) : json_null();
}

/* json_string needs UTF-8; fall back to a masked ASCII copy */
static json_t *str_or_null(const char *s)
{
    json_t *v;

    if (s == NULL)
        return json_null();
    v = json_string(s);
    if (v == NULL) {
        char *copy = xstrdup(s);
        for (char *p = copy; *p != '\0'; p++) {
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        }
        v = json_string(copy);
        free(copy);
    }
    return v != NULL ? v : json_null();
}

json_t *control_cert_json(const struct control_cert_status *c)
{
    json_t *o = json_object();
    json_t *doms = json_array();

    for (size_t k = 0; k < c->n_domains; k++)
        json_array_append_new(doms, str_or_null(c->domains[k]));
    json_object_set_new(o, "name", str_or_null(c->name));
    json_object_set_new(o, "state", str_or_null(c->state != NULL ? c->state : "unknown"));
    json_object_set_new(o, "domains", doms);
    json_object_set_new(o, "ca", str_or_null(c->ca));
    json_object_set_new(o, "profile", str_or_null(c->profile));
    json_object_set_new(o, "not_before", time_or_null(c->not_before));
    json_object_set_new(o, "not_after", time_or_null(c->not_after));
    json_object_set_new(o, "next_renewal", time_or_null(c->next_renewal));
    json_object_set_new(o, "reason", str_or_null(c->reason));
    json_object_set_new(o, "last_error", str_or_null(c->last_error));
    json_object_set_new(o, "last_error_at", time_or_null(c->last_error_at));
    json_object_set_new(o, "last_success_at", time_or_null(c->last_success_at));
    json_object_set_new(o, "consecutive_failures", json_integer(c->consecutive_failures));
    json_object_set_new(o, "paused", json_boolean(c->paused));
    if (c->ari_start != 0 || c->ari_end != 0) {
        json_t *ari = json_object();
        json_object_set_new(ari, "start", json_integer((json_int_t)c->ari_start));
        json_object_set_new(ari, "end", json_integer((json_int_t)c->ari_end));
        json_object_set_new(ari, "explanation_url", str_or_null(c->ari_explanation_url));
        json_object_set_new(o, "ari", ari);
    } else {
        json_object_set_new(o, "ari", json_null());
    }
    if (c->persist_until != 0) {
        json_object_set_new(o, "persist_until", time_or_null(c->persist_until));
        json_object_set_new(o, "persist_expiring", json_boolean(c->persist_expiring));
    }
    if (c->from != NULL) {
        json_object_set_new(o, "from", json_string(c->from));
        json_object_set_new(o, "hub_error", str_or_null(c->hub_error));
    }
    json_object_set_new(o, "history", c->history != NULL ? c->history : json_array());
    json_object_set_new(o, "log", c->log != NULL ? c->log : json_array());
    return o;
}

static json_t *status_head(int64_t now, unsigned orders_in_flight)
{
    return json_pack("{s:s,s:I,s:i}", "version", CERTLOOP_VERSION, "now", (json_int_t)now,
                     "orders_in_flight", (int)orders_in_flight);
}

json_t *control_status_json(const struct control_cert_status *certs, size_t n, int64_t now,
                            unsigned orders_in_flight)
{
    json_t *arr = json_array();
    json_t *doc = status_head(now, orders_in_flight);

    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, control_cert_json(&certs[i]));
    json_object_set_new(doc, "certificates", arr);
    return doc;
}

/* ---- the status document written piece by piece: the bytes of
 * json_dumps(JSON_INDENT(2) | JSON_ENSURE_ASCII) of the whole document,
 * without a tree of every certificate (2.8 KB each, issue 16) */

#define STATUS_FLAGS (JSON_INDENT(2) | JSON_ENSURE_ASCII)

/* Appends j (taken) dumped at nesting depth `depth` (2 spaces each). */
static void status_put(struct buf *out, json_t *j, int depth)
{
    char *text = json_dumps(j, STATUS_FLAGS);

    json_decref(j);
    if (text == NULL)
        abort(); /* only on allocation failure (STYLE §3) */
    /* strings never hold a raw newline: each one starts an indented line */
    for (const char *p = text, *nl; *p != '\0'; p = nl + 1) {
        nl = strchr(p, '\n');
        if (nl == NULL) {
            buf_append_str(out, p);
            break;
        }
        buf_append(out, p, (size_t)(nl - p) + 1);
        buf_printf(out, "%*s", 2 * depth, "");
    }
    free(text);
}

void control_status_begin(struct buf *out, int64_t now, unsigned orders_in_flight)
{
    size_t at = out->len;

    status_put(out, status_head(now, orders_in_flight), 0);
    /* "{\n  ...\n}": reopen it after its last member */
    if (out->len >= at + 2 && out->data[out->len - 1] == '}' && out->data[out->len - 2] == '\n')
        out->len -= 2;
    buf_append_str(out, ",\n  \"certificates\": [");
}

void control_status_cert(struct buf *out, size_t index, json_t *cert)
{
    buf_append_str(out, index == 0 ? "\n    " : ",\n    ");
    status_put(out, cert, 2);
}

void control_status_end(struct buf *out, size_t n, json_t *extras)
{
    const char *name;
    json_t *v;

    buf_append_str(out, n > 0 ? "\n  ]" : "]");
    json_object_foreach(extras, name, v)
    {
        json_t *key = json_string(name);
        char *k = json_dumps(key, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
        json_decref(key);
        if (k == NULL)
            abort();
        buf_printf(out, ",\n  %s: ", k);
        free(k);
        status_put(out, json_incref(v), 1);
    }
    json_decref(extras);
    buf_append_str(out, "\n}\n");
}
