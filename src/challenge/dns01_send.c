/* Sends one DNS message (an RFC 2136 UPDATE) to one server on the loop and
 * hands back the first reply carrying its id: UDP with retries, TCP (RFC
 * 7766, two-byte length prefix) when the UDP reply is truncated or the
 * message is too big for a classic 512-byte datagram. It does not parse or
 * judge the reply beyond its header; dns01_reply_check does that. */
#include "challenge/dns01_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define UDP_MAX 512 /* RFC 1035 §4.2.1: bigger messages go over TCP */
#define TCP_REPLY_MAX 65535

enum send_state { SEND_UDP, SEND_TCP, SEND_ENDED };

struct dns01_send {
    uv_udp_t udp;     /* embedded; data = self; open while udp_open */
    uv_tcp_t tcp;     /* embedded; data = self; open while tcp_open */
    uv_timer_t timer; /* embedded; data = self */
    uv_udp_send_t send_req;
    uv_connect_t conn_req;
    uv_write_t write_req;
    bool udp_open, tcp_open;
    bool udp_sending;      /* send_req in use */
    unsigned open_handles; /* freed when the last one has closed */
    enum send_state state;
    struct sockaddr_storage server;
    uint8_t *wire; /* owned: 2-byte TCP length prefix, then the message */
    size_t len;    /* of the message alone */
    uint16_t id;
    unsigned timeout_ms, tries, tried;
    uint8_t *rbuf; /* owned: UDP datagram or accumulating TCP stream */
    size_t rlen, rcap;
    dns01_send_cb cb; /* NULL once cancelled or ended */
    void *arg;
};

static void send_closed(uv_handle_t *h)
{
    struct dns01_send *s = h->data;

    if (--s->open_handles > 0)
        return;
    free(s->wire);
    free(s->rbuf);
    free(s);
}

static void send_end(struct dns01_send *s, int status, const uint8_t *reply, size_t len)
{
    dns01_send_cb cb = s->cb;

    if (s->state == SEND_ENDED)
        return;
    s->state = SEND_ENDED;
    s->cb = NULL;
    uv_close((uv_handle_t *)&s->timer, send_closed);
    if (s->udp_open)
        uv_close((uv_handle_t *)&s->udp, send_closed);
    if (s->tcp_open)
        uv_close((uv_handle_t *)&s->tcp, send_closed);
    /* The buffers live until the last close callback, so reply stays valid. */
    if (cb != NULL)
        cb(status, reply, len, s->arg);
}

void dns01_send_cancel(struct dns01_send *s)
{
    s->cb = NULL;
    send_end(s, -ECANCELED, NULL, 0);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct dns01_send *s = h->data;

    (void)suggested;
    if (s->state == SEND_UDP) {
        if (s->rbuf == NULL) {
            s->rcap = 65536;
            s->rbuf = xmalloc(s->rcap);
        }
        *b = uv_buf_init((char *)s->rbuf, (unsigned)s->rcap);
        return;
    }
    if (s->rcap - s->rlen < 4096 && s->rcap < TCP_REPLY_MAX + 2) {
        s->rcap = TCP_REPLY_MAX + 2;
        s->rbuf = xrealloc(s->rbuf, s->rcap);
    }
    *b = uv_buf_init((char *)s->rbuf + s->rlen, (unsigned)(s->rcap - s->rlen));
}

static bool is_ours(const struct dns01_send *s, const uint8_t *p, size_t n, bool *tc)
{
    uint16_t id;
    bool qr;

    return dns01_wire_header(p, n, &id, tc, &qr) && qr && id == s->id;
}

static void tcp_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct dns01_send *s = st->data;
    bool tc;

    (void)b;
    if (s->state != SEND_TCP)
        return;
    if (nread < 0) {
        log_debug(LOG_DNS, "dns update: tcp read: %s", uv_strerror((int)nread));
        send_end(s, nread == UV_EOF ? ERR_DNS : (int)nread, NULL, 0);
        return;
    }
    s->rlen += (size_t)nread;
    if (s->rlen < 2)
        return;
    size_t want = (size_t)s->rbuf[0] << 8 | s->rbuf[1];
    if (s->rlen < want + 2) {
        if (s->rlen == s->rcap)
            send_end(s, ERR_TOO_BIG, NULL, 0);
        return;
    }
    if (!is_ours(s, s->rbuf + 2, want, &tc)) {
        send_end(s, ERR_PARSE, NULL, 0);
        return;
    }
    send_end(s, 0, s->rbuf + 2, want);
}

static void tcp_written(uv_write_t *w, int status)
{
    struct dns01_send *s = w->data;

    if (status < 0 && s->state == SEND_TCP)
        send_end(s, status, NULL, 0);
}

static void tcp_connected(uv_connect_t *c, int status)
{
    struct dns01_send *s = c->data;

    if (s->state != SEND_TCP)
        return;
    if (status < 0) {
        send_end(s, status, NULL, 0);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)s->wire, (unsigned)(s->len + 2));
    s->write_req.data = s;
    int rc = uv_write(&s->write_req, (uv_stream_t *)&s->tcp, &b, 1, tcp_written);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, tcp_read);
    if (rc < 0)
        send_end(s, rc, NULL, 0);
}

static void timer_fired(uv_timer_t *t);

/* Switches to TCP; < 0 on a synchronous failure (the caller ends). */
static int tcp_begin(struct dns01_send *s)
{
    int rc;

    if (s->udp_open) {
        uv_udp_recv_stop(&s->udp);
        uv_close((uv_handle_t *)&s->udp, send_closed);
        s->udp_open = false;
    }
    s->state = SEND_TCP;
    free(s->rbuf);
    s->rbuf = NULL;
    s->rlen = s->rcap = 0;
    rc = uv_tcp_init(s->timer.loop, &s->tcp);
    if (rc < 0)
        return rc;
    s->tcp.data = s;
    s->tcp_open = true;
    s->open_handles++;
    s->conn_req.data = s;
    rc = uv_tcp_connect(&s->conn_req, &s->tcp, (const struct sockaddr *)&s->server, tcp_connected);
    if (rc < 0)
        return rc;
    /* One deadline for connect + write + read, as long as all UDP tries. */
    return uv_timer_start(&s->timer, timer_fired, (uint64_t)s->timeout_ms * s->tries, 0);
}

static void udp_read(uv_udp_t *u, ssize_t nread, const uv_buf_t *b, const struct sockaddr *from,
                     unsigned flags)
{
    struct dns01_send *s = u->data;
    bool tc = false;

    (void)from; /* the socket is connected: the kernel only passes the server's datagrams */
    if (s->state != SEND_UDP || nread == 0)
        return;
    if (nread < 0) {
        /* ICMP port unreachable shows up here on a connected socket. */
        send_end(s, (int)nread, NULL, 0);
        return;
    }
    if ((flags & UV_UDP_PARTIAL) != 0 ||
        !is_ours(s, (const uint8_t *)b->base, (size_t)nread, &tc)) {
        if ((flags & UV_UDP_PARTIAL) == 0) {
            log_debug(LOG_DNS, "dns update: ignoring a datagram that does not answer id %u",
                      (unsigned)s->id);
            return;
        }
        tc = true;
    }
    if (tc) {
        log_debug(LOG_DNS, "dns update: reply truncated, retrying over TCP");
        int rc = tcp_begin(s);
        if (rc < 0)
            send_end(s, rc, NULL, 0);
        return;
    }
    send_end(s, 0, (const uint8_t *)b->base, (size_t)nread);
}

static void udp_sent(uv_udp_send_t *r, int status)
{
    struct dns01_send *s = r->data;

    s->udp_sending = false;
    if (status < 0 && s->state == SEND_UDP)
        send_end(s, status, NULL, 0);
}

static int udp_try(struct dns01_send *s)
{
    uv_buf_t b = uv_buf_init((char *)s->wire + 2, (unsigned)s->len);
    int rc;

    s->tried++;
    if (!s->udp_sending) { /* else the last datagram is still queued: just wait again */
        s->send_req.data = s;
        rc = uv_udp_send(&s->send_req, &s->udp, &b, 1, NULL, udp_sent);
        if (rc < 0)
            return rc;
        s->udp_sending = true;
    }
    return uv_timer_start(&s->timer, timer_fired, s->timeout_ms, 0);
}

static void timer_fired(uv_timer_t *t)
{
    struct dns01_send *s = t->data;

    if (s->state == SEND_UDP && s->tried < s->tries) {
        int rc = udp_try(s);
        if (rc < 0)
            send_end(s, rc, NULL, 0);
        return;
    }
    send_end(s, ERR_TIMEOUT, NULL, 0);
}

static int udp_begin(struct dns01_send *s)
{
    int rc = uv_udp_init(s->timer.loop, &s->udp);

    if (rc < 0)
        return rc;
    s->udp.data = s;
    s->udp_open = true;
    s->open_handles++;
    rc = uv_udp_connect(&s->udp, (const struct sockaddr *)&s->server);
    if (rc == 0)
        rc = uv_udp_recv_start(&s->udp, alloc_cb, udp_read);
    if (rc == 0)
        rc = udp_try(s);
    return rc;
}

int dns01_send_start(uv_loop_t *loop, const struct sockaddr *server, const uint8_t *wire,
                     size_t len, unsigned timeout_ms, unsigned tries, dns01_send_cb cb, void *arg,
                     struct dns01_send **out)
{
    struct dns01_send *s;
    size_t salen;
    bool qr, tc;
    int rc;

    if (server->sa_family == AF_INET)
        salen = sizeof(struct sockaddr_in);
    else if (server->sa_family == AF_INET6)
        salen = sizeof(struct sockaddr_in6);
    else
        return -EAFNOSUPPORT;
    if (len > 65535)
        return ERR_TOO_BIG;
    s = xcalloc(1, sizeof(*s));
    if (!dns01_wire_header(wire, len, &s->id, &tc, &qr)) {
        free(s);
        return -EINVAL;
    }
    memcpy(&s->server, server, salen);
    s->wire = xmalloc(len + 2);
    s->wire[0] = (uint8_t)(len >> 8);
    s->wire[1] = (uint8_t)len;
    memcpy(s->wire + 2, wire, len);
    s->len = len;
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : 3000;
    s->tries = tries > 0 ? tries : 3;
    s->cb = cb;
    s->arg = arg;
    rc = uv_timer_init(loop, &s->timer);
    if (rc < 0) {
        free(s->wire);
        free(s);
        return rc;
    }
    s->timer.data = s;
    s->open_handles = 1;
    s->state = SEND_UDP;
    rc = len > UDP_MAX ? tcp_begin(s) : udp_begin(s);
    if (rc < 0) {
        s->cb = NULL; /* synchronous failure: no callback */
        send_end(s, rc, NULL, 0);
        return rc;
    }
    if (out != NULL)
        *out = s;
    return 0;
}
