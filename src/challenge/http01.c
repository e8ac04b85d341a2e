/* The http-01 listener: uv_tcp_t listeners (their addresses, systemd's
 * sockets and the "in use" error come from http01_listen.c), connections with
 * strict limits, one sweeping timer for all deadlines, and the token table it
 * answers from. It parses with httpd_parse() and knows nothing of ACME orders:
 * the reactor puts and deletes tokens. Responses are built into one shared
 * buffer and written with uv_try_write; only what the kernel does not take
 * is copied and queued. */
#include "challenge/challenge.h"
#include "challenge/http01_internal.h"
#include "net/net.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define KEYAUTH_MAX 1024
#define RESP_MAX 2048                  /* one response, head and body: KEYAUTH_MAX + headers */
#define IO_SIZE (64 * 1024)            /* the shared read and write buffers */
#define LINGER_DRAIN_MAX (1024 * 1024) /* linger_timeout_ms bounds it too */
#define EMFILE_SHED 16                 /* connections closed when accept finds no descriptor */
#define BACKLOG 511

/* Each live connection waits in exactly one queue, ordered by deadline since
 * every entry of a queue gets the same timeout added to a monotonic now. */
enum conn_queue { Q_HEAD, Q_IDLE, Q_LINGER, Q_WAIT, Q__MAX };

enum conn_state {
    C_READ,     /* reading requests */
    C_WRITE,    /* a response is queued with uv_write; reading stopped */
    C_SHUTDOWN, /* uv_shutdown pending after the last response */
    C_LINGER,   /* write side shut; dropping what the peer still sends */
    C_CLOSING,  /* uv_close called; freed in conn_closed */
    C_WAIT,     /* a request for an unknown token waits for the miss callback's answer
                 * (Q_WAIT); reading stopped */
};

struct token {
    struct token *next; /* owned: bucket chain */
    uint32_t hash;
    char *tok;  /* owned */
    char *body; /* owned: the key authorization */
    size_t body_len;
    char *head; /* owned: "Content-Type: ...\r\nContent-Length: N\r\n" */
    size_t head_len;
    uint64_t hits;
};

struct conn {
    uv_tcp_t tcp; /* tcp.data = self */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    struct chal_http01 *s; /* borrowed: outlives its connections */
    struct conn *prev, *next;
    enum conn_queue q;
    bool queued; /* in s->qs[q] */
    enum conn_state state;
    uint64_t deadline;
    uint8_t *in; /* owned: bytes read but not yet consumed */
    size_t in_len, in_cap;
    bool in_nl;   /* in holds a LF */
    uint8_t *out; /* owned: the unsent rest of a response */
    unsigned requests;
    size_t drained;
    bool reading;
    bool close_after; /* shut down once the queued response is out */
    bool waited;      /* the next request has waited once: answer it as it stands */
    char *wait_tok;   /* owned: the token a C_WAIT connection waits for */
};

struct queue {
    struct conn *head, *tail;
};

struct listener {
    uv_tcp_t tcp; /* tcp.data = the server */
};

struct chal_http01 {
    uv_loop_t *loop;     /* borrowed */
    struct listener *ls; /* owned array; handles must not move */
    size_t n_ls;
    uv_timer_t timer;   /* timer.data = self */
    uint64_t timer_due; /* 0: not armed */
    struct queue qs[Q__MAX];
    size_t n_conns;         /* live connections (not closing) */
    size_t n_handles;       /* handles opened and not yet closed */
    struct token **buckets; /* owned */
    size_t n_buckets, n_tokens;
    struct chal_http01_limits lim;
    struct chal_http01_stats st;
    bool closing;
    void (*closed_cb)(void *arg);
    void *closed_arg;
    chal_seen_cb seen_cb; /* a token was served, or NULL */
    void *seen_arg;
    chal_miss_cb miss_cb; /* an unknown token was asked for, or NULL */
    void *miss_arg;
    size_t n_waiting; /* connections in C_WAIT */
    uint64_t date_tick;
    char date[64]; /* "Date: ...\r\n" */
    size_t date_len;
    uint8_t rbuf[IO_SIZE];
    uint8_t wbuf[IO_SIZE];
};

static void conn_close(struct conn *c);
static void conn_process(struct conn *c, uint8_t *data, size_t len, bool fresh);
static void wake_waiters(struct chal_http01 *s, const char *token);

/* ---- limits and tokens ---------------------------------------------------- */

void chal_http01_limits_default(struct chal_http01_limits *l)
{
    l->header_timeout_ms = 10000;
    l->idle_timeout_ms = 30000;
    l->linger_timeout_ms = 2000;
    l->max_connections = 1024;
    l->max_requests = 100;
    l->miss_wait_ms = 3000;
    l->max_waiting = 256;
}

static void evict_one(struct chal_http01 *s);

void chal_http01_set_limits(struct chal_http01 *s, const struct chal_http01_limits *l)
{
    struct chal_http01_limits d;

    chal_http01_limits_default(&d);
    s->lim.header_timeout_ms = l->header_timeout_ms ? l->header_timeout_ms : d.header_timeout_ms;
    s->lim.idle_timeout_ms = l->idle_timeout_ms ? l->idle_timeout_ms : d.idle_timeout_ms;
    s->lim.linger_timeout_ms = l->linger_timeout_ms ? l->linger_timeout_ms : d.linger_timeout_ms;
    s->lim.max_connections = l->max_connections ? l->max_connections : d.max_connections;
    s->lim.max_requests = l->max_requests ? l->max_requests : d.max_requests;
    s->lim.miss_wait_ms = l->miss_wait_ms ? l->miss_wait_ms : d.miss_wait_ms;
    s->lim.max_waiting = l->max_waiting ? l->max_waiting : d.max_waiting;
}

void chal_http01_set_max_connections(struct chal_http01 *s, unsigned max_connections)
{
    struct chal_http01_limits d;

    chal_http01_limits_default(&d);
    s->lim.max_connections = max_connections ? max_connections : d.max_connections;
    /* a smaller cap (the daemon's budget after a reload) holds at once:
     * the oldest connections least likely to matter go first */
    for (size_t n = s->n_conns; n > s->lim.max_connections; n--)
        evict_one(s);
}

static uint32_t hash_token(const char *t, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)t[i];
        h *= 16777619u;
    }
    return h;
}

static struct token **token_slot(const struct chal_http01 *s, const char *tok, size_t n, uint32_t h)
{
    struct token **pp = &s->buckets[h & (s->n_buckets - 1)];

    while (*pp != NULL &&
           ((*pp)->hash != h || strlen((*pp)->tok) != n || memcmp((*pp)->tok, tok, n) != 0))
        pp = &(*pp)->next;
    return pp;
}

static void token_free(struct token *t)
{
    if (t == NULL)
        return;
    free(t->tok);
    free(t->body);
    free(t->head);
    free(t);
}

static void tokens_grow(struct chal_http01 *s)
{
    size_t nb = s->n_buckets * 2;
    struct token **b = xcalloc(nb, sizeof(*b));

    for (size_t i = 0; i < s->n_buckets; i++) {
        struct token *t = s->buckets[i];
        while (t != NULL) {
            struct token *next = t->next;
            t->next = b[t->hash & (nb - 1)];
            b[t->hash & (nb - 1)] = t;
            t = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->n_buckets = nb;
}

int chal_http01_put(struct chal_http01 *s, const char *token, const char *key_authorization)
{
    size_t n = strlen(token);
    size_t kn = strlen(key_authorization);

    if (!http01_token_valid(token, n) || kn == 0 || kn > KEYAUTH_MAX)
        return -EINVAL;
    for (size_t i = 0; i < kn; i++) {
        if (key_authorization[i] <= 0x20 || key_authorization[i] >= 0x7f)
            return -EINVAL;
    }
    uint32_t h = hash_token(token, n);
    struct token **pp = token_slot(s, token, n, h);
    struct token *t = xcalloc(1, sizeof(*t));
    t->hash = h;
    t->tok = xstrdup(token);
    t->body = xstrdup(key_authorization);
    t->body_len = kn;
    t->head = xasprintf("Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n", kn);
    t->head_len = strlen(t->head);
    if (*pp != NULL) {
        struct token *old = *pp;
        t->next = old->next;
        *pp = t;
        token_free(old);
        return 0;
    }
    t->next = s->buckets[h & (s->n_buckets - 1)];
    s->buckets[h & (s->n_buckets - 1)] = t;
    if (++s->n_tokens > s->n_buckets)
        tokens_grow(s);
    if (s->n_waiting > 0)
        wake_waiters(s, token);
    return 0;
}

void chal_http01_del(struct chal_http01 *s, const char *token)
{
    size_t n = strlen(token);
    struct token **pp = token_slot(s, token, n, hash_token(token, n));
    struct token *t = *pp;

    if (t == NULL)
        return;
    *pp = t->next;
    token_free(t);
    s->n_tokens--;
}

size_t chal_http01_count(const struct chal_http01 *s)
{
    return s->n_tokens;
}

void chal_http01_get_stats(const struct chal_http01 *s, struct chal_http01_stats *out)
{
    *out = s->st;
    out->active = s->n_conns;
}

/* ---- deadlines: one timer, three queues ------------------------------------ */

static void q_unlink(struct chal_http01 *s, struct conn *c)
{
    struct queue *q = &s->qs[c->q];

    if (!c->queued)
        return;
    c->queued = false;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        q->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        q->tail = c->prev;
    c->prev = c->next = NULL;
}

static unsigned q_timeout(const struct chal_http01 *s, enum conn_queue q)
{
    switch (q) {
    case Q_HEAD:
        return s->lim.header_timeout_ms;
    case Q_IDLE:
        return s->lim.idle_timeout_ms;
    case Q_WAIT:
        return s->lim.miss_wait_ms;
    default:
        return s->lim.linger_timeout_ms;
    }
}

static void sweep_cb(uv_timer_t *t);

static void timer_rearm(struct chal_http01 *s)
{
    uint64_t due = 0;

    for (int i = 0; i < Q__MAX; i++) {
        struct conn *h = s->qs[i].head;
        if (h != NULL && (due == 0 || h->deadline < due))
            due = h->deadline;
    }
    if (due == 0) {
        if (s->timer_due != 0)
            uv_timer_stop(&s->timer);
        s->timer_due = 0;
        return;
    }
    if (s->timer_due != 0 && s->timer_due <= due)
        return; /* fires early at worst, then re-arms */
    uint64_t now = uv_now(s->loop);
    uv_timer_start(&s->timer, sweep_cb, due > now ? due - now : 0, 0);
    s->timer_due = due;
}

/* Moves c to the tail of queue q with a fresh deadline. */
static void q_set(struct conn *c, enum conn_queue q)
{
    struct chal_http01 *s = c->s;

    q_unlink(s, c);
    c->q = q;
    c->deadline = uv_now(s->loop) + q_timeout(s, q);
    c->prev = s->qs[q].tail;
    if (c->prev != NULL)
        c->prev->next = c;
    else
        s->qs[q].head = c;
    s->qs[q].tail = c;
    c->queued = true;
    if (s->timer_due == 0 || c->deadline < s->timer_due)
        timer_rearm(s);
}

/* A token that waiting connections asked for has arrived: their deadline
 * becomes now, and the sweep answers them (never from inside
 * chal_http01_put, which an order may be calling). */
static void wake_waiters(struct chal_http01 *s, const char *token)
{
    struct queue *q = &s->qs[Q_WAIT];
    uint64_t now = uv_now(s->loop);
    struct conn *next;

    for (struct conn *c = q->head; c != NULL; c = next) {
        next = c->next;
        if (c->wait_tok == NULL || strcmp(c->wait_tok, token) != 0)
            continue;
        q_unlink(s, c); /* to the head: the queue stays ordered by deadline */
        c->q = Q_WAIT;
        c->deadline = now;
        c->next = q->head;
        if (q->head != NULL)
            q->head->prev = c;
        else
            q->tail = c;
        q->head = c;
        c->queued = true;
    }
    timer_rearm(s);
}

/* ---- responses -------------------------------------------------------------- */

static void refresh_date(struct chal_http01 *s)
{
    uint64_t tick = uv_now(s->loop) / 1000;
    time_t now;
    struct tm tm;
    char d[40];

    if (s->date_len != 0 && tick == s->date_tick)
        return;
    s->date_tick = tick;
    now = time(NULL);
    if (gmtime_r(&now, &tm) == NULL ||
        strftime(d, sizeof(d), "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
        d[0] = '\0';
    int n = snprintf(s->date, sizeof(s->date), "Date: %s\r\n", d);
    s->date_len = n > 0 && (size_t)n < sizeof(s->date) ? (size_t)n : 0;
}

static size_t put(uint8_t *o, size_t at, const void *p, size_t n)
{
    memcpy(o + at, p, n);
    return at + n;
}

#define PUT_LIT(o, at, lit) put((o), (at), (lit), sizeof(lit) - 1)

/* Writes a complete response into o (room for RESP_MAX) and returns its
 * length. t is the token answered (200), or NULL for a status with a short
 * text body. conn_hdr says what to tell about the connection: 0 nothing,
 * 1 close, 2 keep-alive (for an HTTP/1.0 client that asked for it). */
static size_t build_response(struct chal_http01 *s, uint8_t *o, int status, const struct token *t,
                             bool head_only, int conn_hdr)
{
    char line[96], text[64];
    const char *body = text;
    size_t body_len, at = 0;
    int n;

    refresh_date(s);
    if (status == 200) {
        at = PUT_LIT(o, at, "HTTP/1.1 200 OK\r\n"); /* the common case: no printf */
    } else {
        n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, http_reason(status));
        at = put(o, at, line, (size_t)n);
    }
    at = put(o, at, s->date, s->date_len);
    if (t != NULL) {
        at = put(o, at, t->head, t->head_len);
        body = t->body;
        body_len = t->body_len;
    } else {
        body_len = (size_t)snprintf(text, sizeof(text), "%d %s\n", status, http_reason(status));
        if (status == 405)
            at = PUT_LIT(o, at, "Allow: GET, HEAD\r\n");
        n = snprintf(line, sizeof(line), "Content-Type: text/plain\r\nContent-Length: %zu\r\n",
                     body_len);
        at = put(o, at, line, (size_t)n);
    }
    if (conn_hdr == 1)
        at = PUT_LIT(o, at, "Connection: close\r\n");
    else if (conn_hdr == 2)
        at = PUT_LIT(o, at, "Connection: keep-alive\r\n");
    at = PUT_LIT(o, at, "\r\n");
    if (!head_only)
        at = put(o, at, body, body_len);
    assert(at <= RESP_MAX);
    return at;
}

static void peer_name(struct conn *c, char *out, size_t n)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    snprintf(out, n, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)&ss, out, n);
    else if (ss.ss_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)&ss, out, n);
}

static void log_request(struct conn *c, const struct httpd_req *r, int status)
{
    char peer[64], method[32], target[300];

    if (!log_enabled(LOG_CHAL, LOG_LVL_DEBUG))
        return;
    peer_name(c, peer, sizeof(peer));
    if (r == NULL) {
        log_debug(LOG_CHAL, "http01: bad request from %s: %d", peer, status);
        return;
    }
    log_mask(method, sizeof(method), (const char *)r->method_str,
             r->method_len < sizeof(method) - 1 ? r->method_len : sizeof(method) - 1);
    log_mask(target, sizeof(target), (const char *)r->target,
             r->target_len < sizeof(target) - 1 ? r->target_len : sizeof(target) - 1);
    log_debug(LOG_CHAL, "http01: %s %s from %s: %d", method, target, peer, status);
}

/* Answers one parsed request into o; returns the response length. */
static size_t answer(struct conn *c, const struct httpd_req *r, bool keep, uint8_t *o)
{
    struct chal_http01 *s = c->s;
    char tok[HTTP01_TOKEN_MAX + 1];
    struct token *t = NULL;
    int status;
    int conn_hdr = !keep ? 1 : (r->minor == 0 ? 2 : 0);

    s->st.requests++;
    if (r->method == HTTPD_OTHER) {
        status = 405;
        s->st.rejected++;
    } else if (r->path == NULL) {
        status = 400; /* GET * or GET host:port */
        s->st.rejected++;
    } else {
        int n = http01_path_token(r->path, r->path_len, tok);
        if (n > 0)
            t = *token_slot(s, tok, (size_t)n, hash_token(tok, (size_t)n));
        status = t != NULL ? 200 : 404;
        if (t != NULL)
            s->st.served++;
        else
            s->st.not_found++;
    }
    log_request(c, r, status);
    if (t != NULL && t->hits++ == 0 && log_enabled(LOG_CHAL, LOG_LVL_INFO)) {
        char peer[64];
        peer_name(c, peer, sizeof(peer));
        log_info(LOG_CHAL, "http01: token %s fetched by %s", t->tok, peer);
    }
    size_t n = build_response(s, o, status, t, r->method == HTTPD_HEAD, conn_hdr);
    if (t != NULL && s->seen_cb != NULL)
        s->seen_cb(s->seen_arg, t->tok); /* the order polls soon (acme_order_chal_seen) */
    return n;
}

void chal_http01_set_seen_cb(struct chal_http01 *s, chal_seen_cb cb, void *arg)
{
    s->seen_cb = cb;
    s->seen_arg = arg;
}

void chal_http01_set_miss_cb(struct chal_http01 *s, chal_miss_cb cb, void *arg)
{
    s->miss_cb = cb;
    s->miss_arg = arg;
}

/* ---- connections ------------------------------------------------------------ */

/* Every handle's close callback ends here: the last one frees the server. */
static void handle_gone(struct chal_http01 *s)
{
    s->n_handles--;
    if (!s->closing || s->n_handles > 0)
        return;
    void (*cb)(void *) = s->closed_cb;
    void *arg = s->closed_arg;
    for (size_t i = 0; i < s->n_buckets; i++) {
        struct token *t = s->buckets[i];
        while (t != NULL) {
            struct token *next = t->next;
            token_free(t);
            t = next;
        }
    }
    free(s->buckets);
    free(s->ls);
    free(s);
    if (cb != NULL)
        cb(arg);
}

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct chal_http01 *s = c->s;

    free(c->in);
    free(c->out);
    free(c->wait_tok);
    free(c);
    handle_gone(s);
}

static void server_handle_closed(uv_handle_t *h)
{
    handle_gone(h->data); /* a listener or the timer: data is the server */
}

static void conn_close(struct conn *c)
{
    struct chal_http01 *s = c->s;

    if (c->state == C_CLOSING)
        return;
    if (c->state == C_WAIT)
        s->n_waiting--;
    q_unlink(s, c);
    c->state = C_CLOSING;
    s->n_conns--;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = h->data;

    (void)hint;
    /* libuv reads into this and calls read_cb before any other read: one
     * buffer for all connections */
    *buf = uv_buf_init((char *)c->s->rbuf, IO_SIZE);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void reading(struct conn *c, bool on)
{
    if (on == c->reading)
        return;
    c->reading = on;
    if (on) {
        int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
        if (rc < 0)
            conn_close(c);
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;

    if (c->state == C_CLOSING)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->state = C_LINGER;
}

/* After the last response: half-close, then drain the peer until it closes
 * or linger_timeout_ms passes (so it never sees a reset instead of the
 * answer, which closing with unread input would send). */
static void conn_finish(struct conn *c)
{
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    c->state = C_SHUTDOWN;
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, shutdown_cb) < 0) {
        conn_close(c);
        return;
    }
    q_set(c, Q_LINGER);
    reading(c, true);
}

static void write_cb(uv_write_t *req, int status)
{
    struct conn *c = req->data;

    free(c->out);
    c->out = NULL;
    if (c->state == C_CLOSING)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->state = C_READ;
    if (c->close_after) {
        conn_finish(c);
        return;
    }
    if (c->in_len > 0) {
        conn_process(c, c->in, c->in_len, true);
        if (c->state != C_READ)
            return;
    } else {
        q_set(c, Q_IDLE);
    }
    reading(c, true);
}

/* Sends o[0..n): whatever uv_try_write does not take is queued. Returns
 * false if the connection is now writing or closed. */
static bool conn_send(struct conn *c, const uint8_t *o, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)o, (unsigned)n);
    int rc = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);

    if (rc == (int)n)
        return true;
    if (rc < 0 && rc != UV_EAGAIN) {
        conn_close(c);
        return false;
    }
    size_t done = rc > 0 ? (size_t)rc : 0;
    c->out = xmemdup(o + done, n - done);
    b = uv_buf_init((char *)c->out, (unsigned)(n - done));
    c->wreq.data = c;
    rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
    if (rc < 0) {
        conn_close(c);
        return false;
    }
    c->state = C_WRITE;
    q_set(c, Q_HEAD); /* a peer that does not read gets header_timeout_ms */
    reading(c, false);
    return false;
}

/* Keeps data[0..len) as the unconsumed input; data may point into c->in. */
static void keep_input(struct conn *c, const uint8_t *data, size_t len)
{
    uintptr_t d = (uintptr_t)data, in = (uintptr_t)c->in;

    if (len == 0) {
        c->in_len = 0;
        c->in_nl = false;
        return;
    }
    if (c->in != NULL && d >= in && d < in + c->in_cap) {
        memmove(c->in, data, len);
    } else {
        if (c->in_cap < len) {
            free(c->in);
            c->in_cap = len < 1024 ? 1024 : len;
            c->in = xmalloc(c->in_cap);
        }
        memcpy(c->in, data, len);
    }
    c->in_len = len;
    c->in_nl = memchr(c->in, '\n', len) != NULL;
}

/* The token of a GET or HEAD for a token the table does not hold (its
 * length, tok filled), else 0. */
static int missing_token(const struct chal_http01 *s, const struct httpd_req *r, char *tok)
{
    if (r->method == HTTPD_OTHER || r->path == NULL)
        return 0;
    int n = http01_path_token(r->path, r->path_len, tok);
    if (n <= 0 || *token_slot(s, tok, (size_t)n, hash_token(tok, (size_t)n)) != NULL)
        return 0;
    return n;
}

/* Puts c (reading, its unanswered request at the start of c->in) to wait
 * for tok, and tells the miss callback. */
static void conn_wait(struct conn *c, const char *tok)
{
    struct chal_http01 *s = c->s;

    c->state = C_WAIT;
    c->wait_tok = xstrdup(tok);
    s->n_waiting++;
    s->st.waited++;
    q_set(c, Q_WAIT);
    reading(c, false);
    s->miss_cb(s->miss_arg, tok);
}

/* The wait is over (the token arrived, or miss_wait_ms passed): the request
 * is answered with what the table holds now. */
static void conn_resume(struct conn *c)
{
    struct chal_http01 *s = c->s;

    q_unlink(s, c);
    s->n_waiting--;
    free(c->wait_tok);
    c->wait_tok = NULL;
    c->state = C_READ;
    c->waited = true;
    conn_process(c, c->in, c->in_len, false);
    if (c->state == C_READ)
        reading(c, true);
}

/* Answers every complete request in data[0..len) (fresh: a new request may
 * start here, so it gets a new header deadline once consumed). A request
 * for an unknown token, with a miss callback set, stops the loop: the
 * connection waits (conn_wait) with that request kept as its input. */
static void conn_process(struct conn *c, uint8_t *data, size_t len, bool fresh)
{
    struct chal_http01 *s = c->s;
    uint8_t *o = s->wbuf;
    size_t off = 0, out = 0;
    bool answered = false;
    char tok[HTTP01_TOKEN_MAX + 1];
    bool wait = false;

    while (off < len) {
        struct httpd_req r;
        int rc = httpd_parse(data + off, len - off, &r);

        if (rc == HTTPD_PARSE_MORE)
            break;
        if (out + RESP_MAX > IO_SIZE) {
            if (!conn_send(c, o, out)) {
                out = 0;
                break;
            }
            out = 0;
        }
        if (rc < 0) {
            s->st.requests++;
            s->st.rejected++;
            log_request(c, NULL, -rc);
            out += build_response(s, o + out, -rc, NULL, false, 1);
            c->close_after = true;
            off = len;
            break;
        }
        if (s->miss_cb != NULL && !c->waited && s->n_waiting < s->lim.max_waiting &&
            missing_token(s, &r, tok) > 0) {
            wait = true; /* off stays at this request */
            break;
        }
        c->waited = false;
        c->requests++;
        bool keep = r.keep_alive && c->requests < s->lim.max_requests;
        out += answer(c, &r, keep, o + out);
        off += r.head_len;
        answered = true;
        if (!keep) {
            c->close_after = true;
            off = len; /* nothing after a last request is read */
            break;
        }
    }
    if (c->state == C_CLOSING)
        return;
    if (c->close_after)
        off = len;
    keep_input(c, data + off, len - off);
    if (out > 0 && c->state == C_READ && !conn_send(c, o, out))
        return; /* writing (write_cb goes on) or closed */
    if (c->state != C_READ)
        return;
    if (wait) {
        conn_wait(c, tok);
        return;
    }
    if (c->close_after) {
        conn_finish(c);
        return;
    }
    if (c->in_len == 0)
        q_set(c, Q_IDLE);
    else if (answered || fresh)
        q_set(c, Q_HEAD); /* the next request's head starts now */
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;

    if (nread == 0 || c->state == C_CLOSING)
        return;
    if (nread < 0) {
        conn_close(c); /* EOF or error: no answer is owed any more */
        return;
    }
    if (c->state == C_SHUTDOWN || c->state == C_LINGER) {
        c->drained += (size_t)nread;
        if (c->drained > LINGER_DRAIN_MAX)
            conn_close(c);
        return;
    }
    uint8_t *p = (uint8_t *)buf->base;
    size_t n = (size_t)nread;
    if (c->in_len == 0 && c->state == C_READ) {
        conn_process(c, p, n, c->q == Q_IDLE);
        return;
    }
    /* a request spanning reads: append, and parse again only when it can
     * have changed the answer (a new line, or a limit reached), so a client
     * sending one byte at a time costs one parse per line, not per byte.
     * While a write is queued reading is stopped; what libuv still hands
     * over is kept for write_cb. */
    bool nl = memchr(p, '\n', n) != NULL;
    size_t total = c->in_len + n;
    if (c->in_cap < total) {
        c->in_cap = total < 2 * c->in_cap ? 2 * c->in_cap : total;
        c->in = xrealloc(c->in, c->in_cap);
    }
    memcpy(c->in + c->in_len, p, n);
    c->in_len = total;
    if (c->state != C_READ) {
        c->in_nl = c->in_nl || nl;
        return;
    }
    if (nl || total >= HTTPD_HEAD_MAX || (!c->in_nl && total > HTTPD_LINE_MAX + 1)) {
        c->in_nl = c->in_nl || nl;
        conn_process(c, c->in, c->in_len, false);
    }
}

/* The oldest connection least likely to matter: lingering, idle, waiting. */
static void evict_one(struct chal_http01 *s)
{
    static const enum conn_queue order[] = {Q_LINGER, Q_IDLE, Q_HEAD, Q_WAIT};

    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        struct conn *c = s->qs[order[i]].head;
        if (c != NULL) {
            s->st.evicted++;
            conn_close(c);
            return;
        }
    }
}

static void connection_cb(uv_stream_t *server, int status)
{
    struct chal_http01 *s = server->data;

    if (status == UV_EMFILE || status == UV_ENFILE) {
        /* Out of descriptors despite the budget (something else took them):
         * libuv dropped the pending connection. Shed the oldest idle ones so
         * the next request, perhaps the CA's, finds room. */
        size_t n = s->n_conns < EMFILE_SHED ? s->n_conns : EMFILE_SHED;
        for (size_t i = 0; i < n; i++)
            evict_one(s);
        s->st.shed += n;
        log_warn(LOG_CHAL, "http01: accept: %s: closed the %zu oldest idle connections",
                 err_str(status), n);
        return;
    }
    if (status < 0) {
        log_warn(LOG_CHAL, "http01: accept: %s", err_str(status));
        return;
    }
    struct conn *c = xcalloc(1, sizeof(*c));
    c->s = s;
    c->q = Q_HEAD;
    c->state = C_READ;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    s->n_handles++;
    s->n_conns++;
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        log_warn(LOG_CHAL, "http01: accept: %s", err_str(rc));
        conn_close(c);
        return;
    }
    s->st.connections++;
    if (s->n_conns > s->lim.max_connections)
        evict_one(s);
    uv_tcp_nodelay(&c->tcp, 1);
    q_set(c, Q_HEAD);
    reading(c, true);
}

static void expire(struct conn *c)
{
    struct chal_http01 *s = c->s;

    if (c->q == Q_WAIT) {
        conn_resume(c);
        return;
    }
    if (c->q == Q_HEAD) {
        s->st.timeouts++;
        s->st.rejected++;
        if (c->state == C_READ) {
            /* best effort: tell a slow but honest client why */
            uint8_t o[RESP_MAX];
            size_t n = build_response(s, o, 408, NULL, false, 1);
            uv_buf_t b = uv_buf_init((char *)o, (unsigned)n);
            uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
            if (log_enabled(LOG_CHAL, LOG_LVL_DEBUG)) {
                char peer[64];
                peer_name(c, peer, sizeof(peer));
                log_debug(LOG_CHAL, "http01: %s: no complete request in time", peer);
            }
        }
    }
    conn_close(c);
}

static void sweep_cb(uv_timer_t *t)
{
    struct chal_http01 *s = t->data;
    uint64_t now = uv_now(s->loop);

    s->timer_due = 0;
    for (int i = 0; i < Q__MAX; i++) {
        while (s->qs[i].head != NULL && s->qs[i].head->deadline <= now)
            expire(s->qs[i].head);
    }
    timer_rearm(s);
}

/* ---- listeners -------------------------------------------------------------- */

static int listener_bind(struct listener *l, const char *addr)
{
    struct sockaddr_storage ss;
    int rc;

    rc = http01_listen_parse(addr, &ss);
    if (rc < 0) {
        log_error(LOG_CHAL, "http01: listen %s: expected IP:PORT or [IPv6]:PORT", addr);
        return rc;
    }
    unsigned flags = ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
    rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, flags);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, BACKLOG, connection_cb);
    if (rc == UV_EADDRINUSE)
        http01_log_addr_in_use(addr, &ss);
    else if (rc < 0)
        log_error(LOG_CHAL, "http01: listen %s: %s", addr, err_str(rc));
    return rc;
}

static int listener_adopt(struct listener *l, int fd)
{
    int rc;

    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    rc = uv_tcp_open(&l->tcp, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, BACKLOG, connection_cb);
    if (rc < 0)
        log_error(LOG_CHAL, "http01: socket activation fd %d: %s", fd, err_str(rc));
    return rc;
}

static void server_close(struct chal_http01 *s)
{
    s->closing = true;
    for (int i = 0; i < Q__MAX; i++) {
        while (s->qs[i].head != NULL)
            conn_close(s->qs[i].head);
    }
    for (size_t i = 0; i < s->n_ls; i++)
        uv_close((uv_handle_t *)&s->ls[i].tcp, server_handle_closed);
    uv_close((uv_handle_t *)&s->timer, server_handle_closed);
}

int chal_http01_open(uv_loop_t *loop, const char *const *listen, size_t n, struct chal_http01 **out)
{
    size_t nfds = http01_activation_fds();
    size_t count = nfds > 0 ? nfds : n;
    int rc = 0;

    if (count == 0) {
        /* listen = [] without socket activation: tokens are served by
         * someone else (webroot) or nothing needs them */
        log_info(LOG_CHAL, "http01: no listener (listen = [])");
        *out = NULL;
        return 0;
    }
    struct chal_http01 *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    chal_http01_limits_default(&s->lim);
    s->n_buckets = 16;
    s->buckets = xcalloc(s->n_buckets, sizeof(*s->buckets));
    s->ls = xcalloc(count, sizeof(*s->ls));
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->n_handles = 1;
    for (size_t i = 0; i < count; i++) {
        int fd = 3 + (int)i;
        if (nfds > 0 && !http01_is_tcp_listener(fd)) {
            log_warn(LOG_CHAL,
                     "http01: socket activation fd %d: not a listening TCP socket, "
                     "left alone",
                     fd);
            continue;
        }
        struct listener *l = &s->ls[s->n_ls++];
        uv_tcp_init(loop, &l->tcp);
        l->tcp.data = s;
        s->n_handles++;
        rc = nfds > 0 ? listener_adopt(l, fd) : listener_bind(l, listen[i]);
        if (rc < 0)
            break;
    }
    if (rc == 0 && s->n_ls == 0) {
        log_error(LOG_CHAL, "http01: socket activation passed no listening TCP socket");
        rc = -ENOTSOCK;
    }
    if (rc < 0) {
        server_close(s);
        return rc;
    }
    if (nfds > 0)
        log_info(LOG_CHAL, "http01: listening on %zu socket(s) from systemd", s->n_ls);
    else
        for (size_t i = 0; i < n; i++)
            log_info(LOG_CHAL, "http01: listening on %s", listen[i]);
    *out = s;
    return 0;
}

void chal_http01_close(struct chal_http01 *s, void (*closed_cb)(void *arg), void *arg)
{
    if (s == NULL)
        return;
    s->closed_cb = closed_cb;
    s->closed_arg = arg;
    server_close(s);
}

size_t chal_http01_listeners(const struct chal_http01 *s)
{
    return s->n_ls;
}

int chal_http01_port(const struct chal_http01 *s, size_t i)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (i >= s->n_ls)
        return -EINVAL;
    int rc = uv_tcp_getsockname(&s->ls[i].tcp, (struct sockaddr *)&ss, &len);
    if (rc < 0)
        return rc;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}
