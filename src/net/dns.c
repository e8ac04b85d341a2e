/* DNS on the reactor: one c-ares channel per resolver, its sockets watched
 * with uv_poll_t handles (ARES_OPT_SOCK_STATE_CB + ares_process_fd) and its
 * timeouts driven by one uv_timer_t re-armed from ares_timeout; no c-ares
 * event thread. Answers are raw messages plus TXT and address lists; what
 * the records mean (propagation, CAA) is the caller's business. */
#include "net/net.h"
#include "net/net_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define DNS_DEFAULT_TIMEOUT_MS 2000L
#define DNS_DEFAULT_TRIES 3
#define DNS_MAX_NAME 253

/* One socket c-ares asked us to watch: freed in its close callback. */
struct dns_sock {
    uv_poll_t poll;           /* embedded; poll.data = self */
    struct dns_resolver *res; /* borrowed */
    ares_socket_t fd;
    struct dns_sock *prev, *next; /* in res->socks */
};

enum query_state {
    Q_PENDING, /* c-ares owns a reference until it calls query_done */
    Q_DONE,    /* answered, waiting in res->done for its callback */
    Q_CALLING, /* its callback is running */
};

struct dns_query {
    struct dns_resolver *res;      /* borrowed */
    struct dns_query *prev, *next; /* in res->pending or res->done */
    enum query_state state;
    bool cancelled; /* tombstone: c-ares' late callback only frees */
    bool in_start;  /* c-ares called back from inside ares_send */
    int sync_status;
    char *name; /* owned */
    enum dns_rrtype type;
    dns_cb cb; /* NULL once cancelled or called */
    void *arg;
    int status;
    unsigned char *msg; /* owned copy of the response */
    size_t len;
    char **txt; /* owned, NULL-terminated once non-NULL */
    size_t n_txt, txt_cap;
    char **addrs; /* owned, NULL-terminated once non-NULL */
    size_t n_addrs, addrs_cap;
    struct dns_scan scan;
    struct dns_answer ans;
};

struct query_list {
    struct dns_query *head, *tail;
};

struct dns_resolver {
    uv_loop_t *loop;      /* borrowed */
    ares_channel channel; /* owned; NULL once closing */
    uv_timer_t timer;     /* embedded; c-ares timeouts */
    struct dns_sock *socks;
    struct query_list pending, done;
    struct dns_query *calling;
    unsigned open_handles; /* timer + sockets */
    bool no_recurse;
    bool closing;
    bool dispatching;
};

static const char *const no_strings[] = {NULL};

static const char *type_name(enum dns_rrtype t)
{
    switch (t) {
    case DNS_T_A:
        return "A";
    case DNS_T_NS:
        return "NS";
    case DNS_T_CNAME:
        return "CNAME";
    case DNS_T_SOA:
        return "SOA";
    case DNS_T_TXT:
        return "TXT";
    case DNS_T_AAAA:
        return "AAAA";
    case DNS_T_CAA:
        return "CAA";
    }
    return "TYPE?";
}

static void qlist_append(struct query_list *l, struct dns_query *q)
{
    q->next = NULL;
    q->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = q;
    else
        l->head = q;
    l->tail = q;
}

static void qlist_remove(struct query_list *l, struct dns_query *q)
{
    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        l->head = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    else
        l->tail = q->prev;
    q->prev = q->next = NULL;
}

static void query_free(struct dns_query *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->n_txt; i++)
        free(q->txt[i]);
    for (size_t i = 0; i < q->n_addrs; i++)
        free(q->addrs[i]);
    free(q->txt);
    free(q->addrs);
    dns_scan_fini(&q->scan);
    free(q->msg);
    free(q->name);
    free(q);
}

static void push_str(char ***arr, size_t *n, size_t *cap, char *s)
{
    *arr = xreallocarray_grow(*arr, cap, *n + 2, sizeof(char *));
    (*arr)[(*n)++] = s;
    (*arr)[*n] = NULL;
}

/* TXT: the strings of one record are joined (RFC 8555 §8.4 values fit in
 * one string, but a record may legally split them). */
static void parse_txt(struct dns_query *q)
{
    struct ares_txt_ext *list = NULL;

    if (ares_parse_txt_reply_ext(q->msg, (int)q->len, &list) != ARES_SUCCESS)
        return;
    char *cur = NULL;
    size_t cur_len = 0;
    for (struct ares_txt_ext *t = list; t != NULL; t = t->next) {
        if (t->record_start && cur != NULL) {
            push_str(&q->txt, &q->n_txt, &q->txt_cap, cur);
            cur = NULL;
            cur_len = 0;
        }
        cur = xrealloc(cur, cur_len + t->length + 1);
        memcpy(cur + cur_len, t->txt, t->length);
        cur_len += t->length;
        cur[cur_len] = '\0';
    }
    if (cur != NULL)
        push_str(&q->txt, &q->n_txt, &q->txt_cap, cur);
    ares_free_data(list);
}

static void parse_addrs(struct dns_query *q)
{
    char text[INET6_ADDRSTRLEN];

    if (q->type == DNS_T_A) {
        struct ares_addrttl a[32];
        int n = 32;
        if (ares_parse_a_reply(q->msg, (int)q->len, NULL, a, &n) != ARES_SUCCESS)
            return;
        for (int i = 0; i < n; i++) {
            if (inet_ntop(AF_INET, &a[i].ipaddr, text, sizeof(text)) != NULL)
                push_str(&q->addrs, &q->n_addrs, &q->addrs_cap, xstrdup(text));
        }
    } else if (q->type == DNS_T_AAAA) {
        struct ares_addr6ttl a[32];
        int n = 32;
        if (ares_parse_aaaa_reply(q->msg, (int)q->len, NULL, a, &n) != ARES_SUCCESS)
            return;
        for (int i = 0; i < n; i++) {
            if (inet_ntop(AF_INET6, &a[i].ip6addr, text, sizeof(text)) != NULL)
                push_str(&q->addrs, &q->n_addrs, &q->addrs_cap, xstrdup(text));
        }
    }
}

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* Expands the (possibly compressed) name at msg[*at] and moves *at past
 * it. The name is owned by the caller; NULL on malformed input. */
static char *take_name(const unsigned char *msg, size_t len, size_t *at)
{
    char *name = NULL;
    long enclen = 0;

    if (*at >= len || len > INT_MAX)
        return NULL;
    if (ares_expand_name(msg + *at, msg, (int)len, &name, &enclen) != ARES_SUCCESS)
        return NULL;
    if (enclen <= 0 || (size_t)enclen > len - *at) {
        ares_free_string(name);
        return NULL;
    }
    *at += (size_t)enclen;
    char *copy = xstrdup(name);
    ares_free_string(name);
    return copy;
}

void dns_scan_fini(struct dns_scan *s)
{
    free(s->zone);
    for (size_t i = 0; i < s->n_names; i++)
        free(s->names[i]);
    free(s->names);
    memset(s, 0, sizeof(*s));
}

int dns_scan_message(const unsigned char *msg, size_t len, struct dns_scan *out)
{
    if (len < 12)
        return ERR_PARSE;
    unsigned qd = get16(msg + 4), an = get16(msg + 6), ns = get16(msg + 8);
    size_t at = 12;

    for (unsigned i = 0; i < qd; i++) {
        char *name = take_name(msg, len, &at);
        if (name == NULL || len - at < 4) {
            free(name);
            return ERR_PARSE;
        }
        free(name);
        at += 4; /* QTYPE, QCLASS */
    }
    for (unsigned i = 0; i < an + ns; i++) {
        char *owner = take_name(msg, len, &at);
        if (owner == NULL || len - at < 10) {
            free(owner);
            return ERR_PARSE;
        }
        unsigned type = get16(msg + at);
        size_t rdlen = get16(msg + at + 8);
        at += 10;
        if (len - at < rdlen) {
            free(owner);
            return ERR_PARSE;
        }
        if (type == DNS_T_SOA && out->zone == NULL) {
            out->zone = owner;
            owner = NULL;
        } else if (i < an && (type == DNS_T_NS || type == DNS_T_CNAME)) {
            size_t rat = at;
            char *target = take_name(msg, at + rdlen, &rat);
            if (target == NULL) {
                free(owner);
                return ERR_PARSE;
            }
            push_str(&out->names, &out->n_names, &out->names_cap, target);
        }
        free(owner);
        at += rdlen;
    }
    return 0;
}

/* The c-ares callback: records the outcome only. User callbacks run later
 * from dispatch(), outside c-ares, so they may start queries or close the
 * resolver (ares_destroy must not run inside a c-ares callback). */
static void query_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct dns_query *q = arg;
    struct dns_resolver *r = q->res;

    (void)timeouts;
    if (q->cancelled) {
        query_free(q);
        return;
    }
    if (q->in_start) {
        q->sync_status = status;
        return;
    }
    if (status == ARES_SUCCESS && abuf != NULL && alen >= 12) {
        q->status = 0;
        q->msg = xmemdup(abuf, (size_t)alen);
        q->len = (size_t)alen;
        q->ans.rcode = abuf[3] & 0x0f;
        q->ans.authoritative = (abuf[2] & 0x04) != 0;
        if (q->ans.rcode == 0) {
            if (q->type == DNS_T_TXT)
                parse_txt(q);
            parse_addrs(q);
        }
        if (dns_scan_message(q->msg, q->len, &q->scan) < 0)
            log_debug(LOG_DNS, "%s %s: malformed records ignored", type_name(q->type), q->name);
        q->ans.msg = q->msg;
        q->ans.len = q->len;
        q->ans.txt = q->txt != NULL ? (const char *const *)q->txt : no_strings;
        q->ans.n_txt = q->n_txt;
        q->ans.addrs = q->addrs != NULL ? (const char *const *)q->addrs : no_strings;
        q->ans.n_addrs = q->n_addrs;
        q->ans.zone = q->scan.zone;
        q->ans.names = q->scan.names != NULL ? (const char *const *)q->scan.names : no_strings;
        q->ans.n_names = q->scan.n_names;
        log_debug(LOG_DNS, "%s %s: rcode %d, %zu bytes", type_name(q->type), q->name, q->ans.rcode,
                  q->len);
    } else if (status == ARES_ETIMEOUT) {
        q->status = ERR_TIMEOUT;
        log_error(LOG_DNS, "%s %s: %s", type_name(q->type), q->name, ares_strerror(status));
    } else {
        q->status = ERR_DNS;
        log_error(LOG_DNS, "%s %s: %s", type_name(q->type), q->name, ares_strerror(status));
    }
    qlist_remove(&r->pending, q);
    q->state = Q_DONE;
    qlist_append(&r->done, q);
}

static void resolver_maybe_free(struct dns_resolver *r)
{
    if (r->closing && r->open_handles == 0 && !r->dispatching)
        free(r);
}

static void dispatch(struct dns_resolver *r)
{
    if (r->dispatching)
        return;
    r->dispatching = true;
    for (;;) {
        struct dns_query *q = r->done.head;
        if (q == NULL)
            break;
        qlist_remove(&r->done, q);
        q->state = Q_CALLING;
        r->calling = q;
        dns_cb cb = q->cb;
        q->cb = NULL;
        if (cb != NULL)
            cb(q->status, q->status == 0 ? &q->ans : NULL, q->arg);
        r->calling = NULL;
        query_free(q);
    }
    r->dispatching = false;
    resolver_maybe_free(r);
}

static void timer_fired(uv_timer_t *t);

/* Re-arms our timer from c-ares' next deadline (0 ms becomes 1 ms). */
static void rearm(struct dns_resolver *r)
{
    struct timeval tv;

    if (r->channel == NULL)
        return;
    if (ares_timeout(r->channel, NULL, &tv) == NULL) {
        uv_timer_stop(&r->timer);
        return;
    }
    uint64_t ms = (uint64_t)tv.tv_sec * 1000 + ((uint64_t)tv.tv_usec + 999) / 1000;
    uv_timer_start(&r->timer, timer_fired, ms == 0 ? 1 : ms, 0);
}

static void timer_fired(uv_timer_t *t)
{
    struct dns_resolver *r = t->data;

    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm(r);
    dispatch(r);
}

static void sock_closed(uv_handle_t *h)
{
    struct dns_sock *s = h->data;
    struct dns_resolver *r = s->res;

    free(s);
    r->open_handles--;
    resolver_maybe_free(r);
}

static void sock_close(struct dns_sock *s)
{
    struct dns_resolver *r = s->res;

    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        r->socks = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    struct dns_sock *s = p->data;
    struct dns_resolver *r = s->res;
    ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

    /* On error let c-ares read and write, so it sees the failure itself. */
    if (status < 0 || (events & UV_READABLE))
        rfd = s->fd;
    if (status < 0 || (events & UV_WRITABLE))
        wfd = s->fd;
    ares_process_fd(r->channel, rfd, wfd);
    rearm(r);
    dispatch(r);
}

/* ARES_OPT_SOCK_STATE_CB: only uv calls here, never c-ares ones. */
static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns_resolver *r = data;
    struct dns_sock *s = r->socks;

    if (r->closing)
        return;
    while (s != NULL && s->fd != fd)
        s = s->next;
    if (!readable && !writable) {
        if (s != NULL)
            sock_close(s);
        return;
    }
    if (s == NULL) {
        s = xcalloc(1, sizeof(*s));
        s->res = r;
        s->fd = fd;
        int rc = uv_poll_init_socket(r->loop, &s->poll, fd);
        if (rc < 0) {
            /* c-ares times the query out and tries the next server. */
            log_error(LOG_DNS, "uv_poll_init: %s", uv_strerror(rc));
            free(s);
            return;
        }
        s->poll.data = s;
        r->open_handles++;
        s->next = r->socks;
        if (r->socks != NULL)
            r->socks->prev = s;
        r->socks = s;
    }
    uv_poll_start(&s->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), poll_cb);
}

int dns_resolver_open(uv_loop_t *loop, const struct dns_resolver_opts *o, struct dns_resolver **out)
{
    static bool ares_ready;
    static const struct dns_resolver_opts defaults = {0};
    struct ares_options ao;
    int rc;

    if (o == NULL)
        o = &defaults;
    if (!ares_ready) {
        rc = ares_library_init(ARES_LIB_INIT_ALL);
        if (rc != ARES_SUCCESS) {
            log_error(LOG_DNS, "ares_library_init: %s", ares_strerror(rc));
            return ERR_DNS;
        }
        ares_ready = true;
    }
    struct dns_resolver *r = xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->no_recurse = o->no_recurse;
    memset(&ao, 0, sizeof(ao));
    ao.sock_state_cb = sock_state_cb;
    ao.sock_state_cb_data = r;
    ao.timeout = (int)(o->timeout_ms > 0 ? o->timeout_ms : DNS_DEFAULT_TIMEOUT_MS);
    ao.tries = o->tries > 0 ? o->tries : DNS_DEFAULT_TRIES;
    ao.flags = (o->no_recurse ? ARES_FLAG_NORECURSE : 0) | (o->tcp ? ARES_FLAG_USEVC : 0) |
               ARES_FLAG_NOCHECKRESP; /* REFUSED or SERVFAIL is an answer to report */
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
    /* Reads /etc/resolv.conf inline: a small local file (STYLE §5). */
    rc = ares_init_options(&r->channel, &ao, mask);
    if (rc != ARES_SUCCESS) {
        log_error(LOG_DNS, "ares_init_options: %s", ares_strerror(rc));
        free(r);
        return ERR_DNS;
    }
    if (o->servers != NULL) {
        rc = ares_set_servers_ports_csv(r->channel, o->servers);
        if (rc != ARES_SUCCESS) {
            log_error(LOG_DNS, "servers \"%s\": %s", o->servers, ares_strerror(rc));
            ares_destroy(r->channel);
            free(r);
            return rc == ARES_EBADSTR ? -EINVAL : ERR_DNS;
        }
    }
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->open_handles = 1;
    *out = r;
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    struct dns_resolver *r = h->data;

    r->open_handles--;
    resolver_maybe_free(r);
}

void dns_resolver_close(struct dns_resolver *r)
{
    if (r == NULL || r->closing)
        return;
    r->closing = true;
    while (r->pending.head != NULL)
        dns_query_cancel(r->pending.head);
    while (r->done.head != NULL)
        dns_query_cancel(r->done.head);
    if (r->calling != NULL)
        r->calling->cb = NULL;
    /* Our polls go before c-ares closes the sockets under them; then
     * ares_destroy calls every cancelled query back (ARES_EDESTRUCTION)
     * and those tombstones free themselves. */
    while (r->socks != NULL)
        sock_close(r->socks);
    uv_close((uv_handle_t *)&r->timer, timer_closed);
    ares_destroy(r->channel);
    r->channel = NULL;
}

int dns_query_start(struct dns_resolver *r, const char *name, enum dns_rrtype type, dns_cb cb,
                    void *arg, struct dns_query **out)
{
    unsigned char *qbuf = NULL;
    int qlen = 0;

    if (r == NULL || name == NULL || cb == NULL)
        return -EINVAL;
    if (r->closing)
        return -ESHUTDOWN;
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > DNS_MAX_NAME + 1) {
        log_error(LOG_DNS, "%s \"%s\": invalid name", type_name(type), name);
        return -EINVAL;
    }
    /* ares_send takes a ready-made message, so RD is set here, not by the
     * channel's ARES_FLAG_NORECURSE; c-ares assigns the message id. */
    int rc =
        ares_create_query(name, 1 /* IN */, (int)type, 0, r->no_recurse ? 0 : 1, &qbuf, &qlen, 0);
    if (rc != ARES_SUCCESS) {
        log_error(LOG_DNS, "%s %s: %s", type_name(type), name, ares_strerror(rc));
        return rc == ARES_EBADNAME ? -EINVAL : ERR_DNS;
    }
    struct dns_query *q = xcalloc(1, sizeof(*q));
    q->res = r;
    q->name = xstrdup(name);
    q->type = type;
    q->cb = cb;
    q->arg = arg;
    q->state = Q_PENDING;
    q->in_start = true;
    q->sync_status = INT_MIN;
    ares_send(r->channel, qbuf, qlen, query_done, q);
    ares_free_string(qbuf);
    q->in_start = false;
    if (q->sync_status != INT_MIN) {
        /* c-ares failed at once: a synchronous failure, no callback. */
        log_error(LOG_DNS, "%s %s: %s", type_name(type), name, ares_strerror(q->sync_status));
        rc = q->sync_status;
        query_free(q);
        return rc == ARES_ENOMEM ? -ENOMEM : ERR_DNS;
    }
    qlist_append(&r->pending, q);
    rearm(r);
    if (out != NULL)
        *out = q;
    return 0;
}

void dns_query_cancel(struct dns_query *q)
{
    if (q == NULL)
        return;
    struct dns_resolver *r = q->res;
    switch (q->state) {
    case Q_PENDING:
        qlist_remove(&r->pending, q);
        q->cancelled = true; /* c-ares still holds it: its callback frees */
        q->cb = NULL;
        break;
    case Q_DONE:
        qlist_remove(&r->done, q);
        query_free(q);
        break;
    case Q_CALLING:
        q->cb = NULL;
        break;
    }
}
