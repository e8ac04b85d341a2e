/* Loop tests of the dns-01 machinery against a stub DNS server on
 * 127.0.0.1:0 (UDP and TCP on one port, replies built with ldns): the
 * sender (UDP answer, TC -> TCP, big message -> TCP, retries then timeout,
 * stray ids ignored, cancel), the exec spawner (output, exit status,
 * timeout, cancel), and chal_dns01_wait/present (per-server report,
 * NXDOMAIN timeout, cancel). Every test counts callbacks and ends with
 * uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "challenge/challenge.h"
#include "challenge/dns01_internal.h"
#include "config/config.h"
#include "acme/acme.h"
#include "net/net.h"
#include "reactor/dns01_provider.h"
#include "util/err.h"
#include "util/xalloc.h"

/* ---- the stub server ------------------------------------------------------ */

enum stub_mode {
    STUB_ECHO,     /* the request back with QR set */
    STUB_TRUNCATE, /* UDP: QR + TC, no body; TCP: echo */
    STUB_DROP,     /* UDP: never answer */
    STUB_STRAY,    /* UDP: first a reply with another id, then the echo */
    STUB_TXT,      /* queries: TXT `txt` at any name; other types: NODATA */
    STUB_NXDOMAIN, /* queries: NXDOMAIN */
};

struct stub_conn {
    uv_tcp_t tcp;
    struct stub *st;
    uint8_t buf[70000];
    size_t len;
};

struct stub {
    uv_loop_t *loop;
    uv_udp_t udp;
    uv_tcp_t tcp;
    int port;
    char addr[64];
    enum stub_mode mode;
    const char *txt;
    unsigned udp_queries, tcp_queries;
};

/* Builds the reply to req (owned, *len); NULL for none. */
static uint8_t *stub_reply(struct stub *st, const uint8_t *req, size_t n, bool tcp, size_t *len)
{
    uint8_t *out = NULL;

    if (st->mode == STUB_TXT || st->mode == STUB_NXDOMAIN) {
        ldns_pkt *q = NULL;
        if (ldns_wire2pkt(&q, req, n) != LDNS_STATUS_OK)
            return NULL;
        ldns_pkt *a = ldns_pkt_new();
        ldns_pkt_set_id(a, ldns_pkt_id(q));
        ldns_pkt_set_qr(a, true);
        ldns_pkt_set_aa(a, true);
        ldns_rr *qr = ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(q), 0));
        ldns_pkt_push_rr(a, LDNS_SECTION_QUESTION, qr);
        if (st->mode == STUB_NXDOMAIN) {
            ldns_pkt_set_rcode(a, LDNS_RCODE_NXDOMAIN);
        } else if (ldns_rr_get_type(qr) == LDNS_RR_TYPE_TXT) {
            ldns_rr *rr = ldns_rr_new();
            ldns_rr_set_owner(rr, ldns_rdf_clone(ldns_rr_owner(qr)));
            ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
            ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
            ldns_rr_set_ttl(rr, 1);
            uint8_t s[256];
            s[0] = (uint8_t)strlen(st->txt);
            memcpy(s + 1, st->txt, s[0]);
            ldns_rr_push_rdf(rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, s[0] + 1u, s));
            ldns_pkt_push_rr(a, LDNS_SECTION_ANSWER, rr);
        }
        ldns_pkt2wire(&out, a, len);
        ldns_pkt_free(a);
        ldns_pkt_free(q);
        return out;
    }
    if (n < 12)
        return NULL;
    if (st->mode == STUB_TRUNCATE && !tcp) {
        out = xmemdup(req, 12);
        out[2] |= 0x82; /* QR, TC */
        memset(out + 4, 0, 8);
        *len = 12;
        return out;
    }
    out = xmemdup(req, n);
    out[2] |= 0x80;
    *len = n;
    return out;
}

static void stub_sent(uv_udp_send_t *r, int status)
{
    (void)status;
    free(r->data);
    free(r);
}

static void stub_udp_send(struct stub *st, const struct sockaddr *to, uint8_t *msg, size_t len)
{
    uv_udp_send_t *r = xcalloc(1, sizeof(*r));
    uv_buf_t b = uv_buf_init((char *)msg, (unsigned)len);

    r->data = msg;
    assert_int_equal(uv_udp_send(r, &st->udp, &b, 1, to, stub_sent), 0);
}

static void stub_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    (void)h;
    b->base = xmalloc(s);
    b->len = s;
}

static void stub_udp_read(uv_udp_t *u, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
                          unsigned flags)
{
    struct stub *st = u->data;

    (void)flags;
    if (n > 0 && from != NULL) {
        st->udp_queries++;
        size_t len = 0;
        if (st->mode == STUB_STRAY) {
            uint8_t *w = xmemdup(b->base, (size_t)n);
            w[0] ^= 0xff;
            w[2] |= 0x80;
            stub_udp_send(st, from, w, (size_t)n);
        }
        uint8_t *r = st->mode == STUB_DROP
                         ? NULL
                         : stub_reply(st, (const uint8_t *)b->base, (size_t)n, false, &len);
        if (r != NULL)
            stub_udp_send(st, from, r, len);
    }
    free(b->base);
}

static void conn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void conn_written(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void conn_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    struct stub_conn *c = h->data;

    (void)s;
    b->base = (char *)c->buf + c->len;
    b->len = sizeof(c->buf) - c->len;
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct stub_conn *c = s->data;

    (void)b;
    if (n < 0) {
        uv_close((uv_handle_t *)s, conn_closed);
        return;
    }
    c->len += (size_t)n;
    if (c->len < 2 || c->len < 2u + (size_t)(c->buf[0] << 8 | c->buf[1]))
        return;
    c->st->tcp_queries++;
    size_t len = 0;
    uint8_t *r = stub_reply(c->st, c->buf + 2, (size_t)(c->buf[0] << 8 | c->buf[1]), true, &len);
    c->len = 0;
    if (r == NULL)
        return;
    uint8_t *w = xmalloc(len + 2);
    w[0] = (uint8_t)(len >> 8);
    w[1] = (uint8_t)len;
    memcpy(w + 2, r, len);
    free(r);
    uv_write_t *wr = xcalloc(1, sizeof(*wr));
    wr->data = w;
    uv_buf_t buf = uv_buf_init((char *)w, (unsigned)len + 2);
    uv_write(wr, s, &buf, 1, conn_written);
}

static void stub_accept(uv_stream_t *server, int status)
{
    struct stub *st = server->data;
    struct stub_conn *c = xcalloc(1, sizeof(*c));

    assert_int_equal(status, 0);
    c->st = st;
    uv_tcp_init(st->loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&c->tcp), 0);
    uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
}

static void stub_open(uv_loop_t *loop, struct stub *st, enum stub_mode mode)
{
    struct sockaddr_in sa;
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    memset(st, 0, sizeof(*st));
    st->loop = loop;
    st->mode = mode;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    for (;;) {
        uv_udp_init(loop, &st->udp);
        st->udp.data = st;
        assert_int_equal(uv_udp_bind(&st->udp, (struct sockaddr *)&sa, 0), 0);
        uv_udp_getsockname(&st->udp, (struct sockaddr *)&ss, &len);
        st->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        uv_tcp_init(loop, &st->tcp);
        st->tcp.data = st;
        struct sockaddr_in ta;
        uv_ip4_addr("127.0.0.1", st->port, &ta);
        if (uv_tcp_bind(&st->tcp, (struct sockaddr *)&ta, 0) == 0 &&
            uv_listen((uv_stream_t *)&st->tcp, 8, stub_accept) == 0)
            break;
        uv_close((uv_handle_t *)&st->udp, NULL);
        uv_close((uv_handle_t *)&st->tcp, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
    }
    uv_udp_recv_start(&st->udp, stub_alloc, stub_udp_read);
    uv_unref((uv_handle_t *)&st->udp);
    uv_unref((uv_handle_t *)&st->tcp);
    snprintf(st->addr, sizeof(st->addr), "127.0.0.1:%d", st->port);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h,
                 h->data == (void *)h ? conn_closed : NULL); /* a stub_conn starts with its tcp */
}

static void stub_close(uv_loop_t *loop, struct stub *st)
{
    (void)st;
    uv_walk(loop, close_walk, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- the sender ----------------------------------------------------------- */

struct sent {
    unsigned calls;
    int status;
    uint8_t reply[1024];
    size_t len;
};

static void on_sent(int status, const uint8_t *reply, size_t len, void *arg)
{
    struct sent *s = arg;

    s->calls++;
    s->status = status;
    if (status == 0 && len <= sizeof(s->reply)) {
        memcpy(s->reply, reply, len);
        s->len = len;
    }
}

static void query(uint8_t *w, size_t *len, uint16_t id, size_t pad)
{
    memset(w, 0, 12 + pad);
    w[0] = (uint8_t)(id >> 8);
    w[1] = (uint8_t)id;
    w[2] = 5 << 3; /* opcode UPDATE */
    *len = 12 + pad;
}

static void send_case(enum stub_mode mode, size_t pad, unsigned timeout_ms, struct stub *st,
                      struct sent *s)
{
    uv_loop_t loop;
    struct sockaddr_in sa;
    uint8_t w[2048];
    size_t len;

    memset(s, 0, sizeof(*s));
    uv_loop_init(&loop);
    stub_open(&loop, st, mode);
    uv_ip4_addr("127.0.0.1", st->port, &sa);
    query(w, &len, 0xbeef, pad);
    assert_int_equal(
        dns01_send_start(&loop, (struct sockaddr *)&sa, w, len, timeout_ms, 3, on_sent, s, NULL),
        0);
    assert_int_equal(s->calls, 0); /* never from inside _start */
    uv_run(&loop, UV_RUN_DEFAULT);
    stub_close(&loop, st);
    assert_int_equal(s->calls, 1);
}

static void test_send_udp_answer(void **state)
{
    struct stub st;
    struct sent s;

    (void)state;
    send_case(STUB_ECHO, 0, 1000, &st, &s);
    assert_int_equal(s.status, 0);
    assert_int_equal(s.len, 12);
    assert_int_equal(s.reply[0] << 8 | s.reply[1], 0xbeef);
    assert_true(s.reply[2] & 0x80);
    assert_int_equal(st.udp_queries, 1);
    assert_int_equal(st.tcp_queries, 0);
}

static void test_send_truncated_retries_over_tcp(void **state)
{
    struct stub st;
    struct sent s;

    (void)state;
    send_case(STUB_TRUNCATE, 20, 1000, &st, &s);
    assert_int_equal(s.status, 0);
    assert_int_equal(st.udp_queries, 1);
    assert_int_equal(st.tcp_queries, 1);
    assert_int_equal(s.len, 32); /* the full echo, not the truncated header */
    assert_false(s.reply[2] & 0x02);
}

static void test_send_big_message_uses_tcp(void **state)
{
    struct stub st;
    struct sent s;

    (void)state;
    send_case(STUB_ECHO, 600, 1000, &st, &s);
    assert_int_equal(s.status, 0);
    assert_int_equal(st.udp_queries, 0);
    assert_int_equal(st.tcp_queries, 1);
    assert_int_equal(s.len, 612);
}

static void test_send_retries_then_times_out(void **state)
{
    struct stub st;
    struct sent s;
    uint64_t t0 = uv_hrtime();

    (void)state;
    send_case(STUB_DROP, 0, 100, &st, &s);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(s.status, ERR_TIMEOUT);
    assert_int_equal(st.udp_queries, 3);
    assert_true(ms >= 290 && ms < 2000);
}

static void test_send_ignores_other_ids(void **state)
{
    struct stub st;
    struct sent s;

    (void)state;
    send_case(STUB_STRAY, 0, 1000, &st, &s);
    assert_int_equal(s.status, 0);
    assert_int_equal(s.reply[0] << 8 | s.reply[1], 0xbeef);
}

static void test_send_cancel_never_calls_back(void **state)
{
    uv_loop_t loop;
    struct stub st;
    struct sent s = {0};
    struct sockaddr_in sa;
    struct dns01_send *op = NULL;
    uint8_t w[64];
    size_t len;

    (void)state;
    uv_loop_init(&loop);
    stub_open(&loop, &st, STUB_ECHO);
    uv_ip4_addr("127.0.0.1", st.port, &sa);
    query(w, &len, 1, 0);
    assert_int_equal(
        dns01_send_start(&loop, (struct sockaddr *)&sa, w, len, 1000, 3, on_sent, &s, &op), 0);
    dns01_send_cancel(op);
    uv_run(&loop, UV_RUN_DEFAULT);
    stub_close(&loop, &st);
    assert_int_equal(s.calls, 0);
}

/* ---- the spawner ---------------------------------------------------------- */

struct spawned {
    unsigned calls;
    int status;
    char out[4200];
};

static void on_spawned(int status, const char *output, void *arg)
{
    struct spawned *s = arg;

    s->calls++;
    s->status = status;
    snprintf(s->out, sizeof(s->out), "%s", output);
}

static void spawn_case(const char *script, uint64_t timeout_ms, bool cancel, struct spawned *s)
{
    uv_loop_t loop;
    struct dns01_spawn *op = NULL;
    const char *argv[] = {"/bin/sh", "-c", script, "sh", "present", "x.test.", "V", NULL};
    const char *env[] = {"CERTLOOP_TEST=yes", NULL};

    memset(s, 0, sizeof(*s));
    uv_loop_init(&loop);
    assert_int_equal(dns01_spawn_start(&loop, argv, env, timeout_ms, on_spawned, s, &op), 0);
    if (cancel)
        dns01_spawn_cancel(op);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_spawn_output_and_args(void **state)
{
    struct spawned s;

    (void)state;
    spawn_case("echo \"$1 $2 $3 $CERTLOOP_TEST\"; echo err >&2", 5000, false, &s);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, 0);
    assert_non_null(strstr(s.out, "present x.test. V yes\n"));
    assert_non_null(strstr(s.out, "err\n"));
}

static void test_spawn_nonzero_exit(void **state)
{
    struct spawned s;

    (void)state;
    spawn_case("echo nope; exit 3", 5000, false, &s);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, ERR_HOOK);
    assert_string_equal(s.out, "nope\n");
}

static void test_spawn_timeout_kills(void **state)
{
    struct spawned s;
    uint64_t t0 = uv_hrtime();

    (void)state;
    spawn_case("exec sleep 20", 200, false, &s);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, ERR_TIMEOUT);
    assert_true(ms >= 190 && ms < 3000);
}

static void test_spawn_keeps_last_output(void **state)
{
    struct spawned s;

    (void)state;
    spawn_case("i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done", 10000, false, &s);
    assert_int_equal(s.status, 0);
    assert_true(strlen(s.out) <= 4096);
    assert_non_null(strstr(s.out, "line1999\n"));
    assert_null(strstr(s.out, "line0\n"));
}

static void test_spawn_cancel_never_calls_back(void **state)
{
    struct spawned s;

    (void)state;
    spawn_case("exec sleep 20", 10000, true, &s);
    assert_int_equal(s.calls, 0);
}

static void test_spawn_missing_program_fails_at_once(void **state)
{
    uv_loop_t loop;
    struct spawned s = {0};
    const char *argv[] = {"/nonexistent/certloop-hook", "present", NULL};

    (void)state;
    uv_loop_init(&loop);
    assert_true(dns01_spawn_start(&loop, argv, NULL, 1000, on_spawned, &s, NULL) < 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(s.calls, 0);
}

/* ---- the challenge.h operations ------------------------------------------- */

struct done {
    unsigned calls;
    int status;
    char detail[1024];
    char fqdn[256];
};

static void on_done(int status, const struct chal_dns01_result *r, void *arg)
{
    struct done *d = arg;

    d->calls++;
    d->status = status;
    snprintf(d->detail, sizeof(d->detail), "%s", r->detail);
    snprintf(d->fqdn, sizeof(d->fqdn), "%s", r->fqdn != NULL ? r->fqdn : "");
}

/* Runs wait with `nameservers` = the stub. */
static void wait_case(enum stub_mode mode, const char *txt, struct done *d, bool cancel)
{
    uv_loop_t loop;
    struct stub st;
    struct dns_resolver *res = NULL;
    struct chal_dns01_op *op = NULL;
    struct cfg_dns dns;
    char *ns[2];
    struct chal_dns01_opts o = {.subject = "cert=www", .dns_timeout_ms = 300};

    memset(d, 0, sizeof(*d));
    uv_loop_init(&loop);
    stub_open(&loop, &st, mode);
    st.txt = txt;
    struct dns_resolver_opts ro = {st.addr, 300, 1, false, false};
    assert_int_equal(dns_resolver_open(&loop, &ro, &res), 0);
    memset(&dns, 0, sizeof(dns));
    dns.name = "stub";
    dns.type = CFG_DNS_RFC2136;
    ns[0] = st.addr;
    ns[1] = NULL;
    dns.nameservers.v = ns;
    dns.nameservers.n = 1;
    dns.propagation_timeout_s = 2;
    dns.poll_interval_s = 1;
    assert_int_equal(chal_dns01_wait_start(&loop, res, &dns, "_acme-challenge.a.test", "expected",
                                           &o, on_done, d, &op),
                     0);
    assert_int_equal(d->calls, 0);
    if (cancel)
        chal_dns01_cancel(op);
    uv_run(&loop, UV_RUN_DEFAULT);
    dns_resolver_close(res);
    stub_close(&loop, &st);
}

static void test_wait_all_servers_have_it(void **state)
{
    struct done d;

    (void)state;
    wait_case(STUB_TXT, "expected", &d, false);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);
    assert_string_equal(d.fqdn, "_acme-challenge.a.test.");
    char want[256];
    snprintf(want, sizeof(want), "has it (waited 0 s)");
    assert_non_null(strstr(d.detail, want));
}

static void test_wait_times_out_with_report(void **state)
{
    struct done d;
    uint64_t t0 = uv_hrtime();

    (void)state;
    wait_case(STUB_TXT, "something else", &d, false);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, ERR_TIMEOUT);
    assert_non_null(strstr(d.detail, "answers 1 other TXT value (waited 2 s)"));
    assert_true(ms >= 1900 && ms < 4000);
}

static void test_wait_nxdomain_reported(void **state)
{
    struct done d;

    (void)state;
    /* The CNAME lookup itself gets NXDOMAIN (no CNAME: fine), then the
     * server keeps answering NXDOMAIN for the TXT. */
    wait_case(STUB_NXDOMAIN, NULL, &d, false);
    assert_int_equal(d.status, ERR_TIMEOUT);
    assert_non_null(strstr(d.detail, "answers NXDOMAIN (waited 2 s)"));
}

static void test_wait_cancel_never_calls_back(void **state)
{
    struct done d;

    (void)state;
    wait_case(STUB_TXT, "other", &d, true);
    assert_int_equal(d.calls, 0);
}

static void test_present_unreachable_server_times_out(void **state)
{
    uv_loop_t loop;
    struct stub st, dead;
    struct dns_resolver *res = NULL;
    struct cfg_dns dns;
    struct done d = {0};
    char key[] = "/tmp/certloop-dns01-key-XXXXXX";
    struct chal_dns01_opts o = {.dns_timeout_ms = 100};

    (void)state;
    int fd = mkstemp(key);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "c2VjcmV0c2VjcmV0c2VjcmV0\n", 25), 25);
    close(fd);
    uv_loop_init(&loop);
    stub_open(&loop, &st, STUB_NXDOMAIN); /* resolver: no CNAME */
    stub_open(&loop, &dead, STUB_DROP);   /* the primary: silent */
    struct dns_resolver_opts ro = {st.addr, 300, 1, false, false};
    assert_int_equal(dns_resolver_open(&loop, &ro, &res), 0);
    memset(&dns, 0, sizeof(dns));
    dns.name = "stub";
    dns.type = CFG_DNS_RFC2136;
    dns.server = dead.addr;
    dns.zone = "test.";
    dns.tsig.name = "acme-key.";
    dns.tsig.secret_file = key;
    assert_int_equal(chal_dns01_present_start(&loop, res, &dns, "_acme-challenge.a.test", "v", &o,
                                              on_done, &d, NULL),
                     0);
    uv_run(&loop, UV_RUN_DEFAULT);
    dns_resolver_close(res);
    stub_close(&loop, &st);
    unlink(key);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, ERR_DNS);
    assert_non_null(strstr(d.detail, "no reply (timeout)"));
    assert_int_equal(dead.udp_queries, 3);
}

static void test_present_bad_key_file_fails_at_once(void **state)
{
    uv_loop_t loop;
    struct dns_resolver *res = NULL;
    struct cfg_dns dns;
    struct done d = {0};

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(dns_resolver_open(&loop, NULL, &res), 0);
    memset(&dns, 0, sizeof(dns));
    dns.name = "stub";
    dns.type = CFG_DNS_RFC2136;
    dns.server = "127.0.0.1:53";
    dns.tsig.name = "acme-key.";
    dns.tsig.secret_file = "/nonexistent/tsig.key";
    assert_true(chal_dns01_present_start(&loop, res, &dns, "_acme-challenge.a.test", "v", NULL,
                                         on_done, &d, NULL) < 0);
    dns_resolver_close(res);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(d.calls, 0);
}

/* ---- the order-side provider (reactor/dns01_provider.c) ------------------ */

struct prov {
    unsigned calls;
    int status;
    char detail[1024];
};

static void on_provided(int status, const char *detail, void *arg)
{
    struct prov *p = arg;

    p->calls++;
    p->status = status;
    snprintf(p->detail, sizeof(p->detail), "%s", detail != NULL ? detail : "");
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    static char buf[4096];
    size_t n;

    if (f == NULL)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void provider_case(bool cancel, struct prov *pr, char *log_path)
{
    uv_loop_t loop;
    struct stub st;
    struct dns01_provider *p = NULL;
    struct config cfg;
    struct cfg_dns dns;
    struct cfg_cert cert;
    char *resolvers[2], *ns[2], *cmd[4];
    char script[600];
    const char *keyauth = "tok.thumb";
    char *txt = acme_dns01_txt(keyauth);

    memset(pr, 0, sizeof(*pr));
    uv_loop_init(&loop);
    stub_open(&loop, &st, STUB_TXT);
    st.txt = txt;
    memset(&cfg, 0, sizeof(cfg));
    cfg.refs = 1; /* ours, never dropped: the provider only borrows references */
    resolvers[0] = st.addr;
    resolvers[1] = NULL;
    cfg.daemon.resolvers.v = resolvers;
    cfg.daemon.resolvers.n = 1;
    memset(&dns, 0, sizeof(dns));
    dns.name = "hook";
    dns.type = CFG_DNS_EXEC;
    snprintf(script, sizeof(script), "echo \"$1 $2 $3\" >> %s", log_path);
    cmd[0] = "/bin/sh";
    cmd[1] = "-c";
    cmd[2] = script;
    cmd[3] = NULL;
    /* sh -c SCRIPT present FQDN VALUE: $0 = present, so shift the names. */
    snprintf(script, sizeof(script), "echo \"$0 $1 $2\" >> %s", log_path);
    dns.command.v = cmd;
    dns.command.n = 3;
    dns.timeout_s = 5;
    ns[0] = st.addr;
    ns[1] = NULL;
    dns.nameservers.v = ns;
    dns.nameservers.n = 1;
    dns.propagation_timeout_s = 3;
    dns.poll_interval_s = 1;
    memset(&cert, 0, sizeof(cert));
    cert.name = "www";
    cert.challenge = CFG_CHAL_DNS01;
    cert.dns = &dns;

    assert_int_equal(dns01_provider_open(&loop, &cfg, &p), 0);
    /* Through the acme_chal_ops-style binding, as an order calls it. */
    struct dns01_binding bind = {p, &cfg, &cert};
    void *handle = NULL;
    assert_int_equal(
        dns01_binding_present_start(&bind, "*.A.test", keyauth, on_provided, pr, &handle), 0);
    assert_non_null(handle);
    assert_int_equal(cfg.refs, 2);
    assert_int_equal(dns01_provider_inflight(p), 1);
    if (cancel) {
        dns01_binding_present_cancel(&bind, handle);
        assert_int_equal(dns01_provider_inflight(p), 0);
        /* and a background cleanup that the close silences */
        dns01_binding_cleanup(&bind, "*.A.test", keyauth);
        assert_int_equal(dns01_provider_inflight(p), 1);
        dns01_provider_close(p);
        p = NULL;
    } else {
        uv_run(&loop, UV_RUN_DEFAULT);
        assert_int_equal(dns01_provider_inflight(p), 0);
        dns01_binding_cleanup(&bind, "*.A.test", keyauth);
        uv_run(&loop, UV_RUN_DEFAULT);
        assert_int_equal(dns01_provider_inflight(p), 0);
        dns01_provider_close(p);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(cfg.refs, 1);
    stub_close(&loop, &st);
    char want[256];
    char *got = read_all(log_path);
    if (!cancel) {
        snprintf(want, sizeof(want),
                 "present _acme-challenge.a.test. %s\ncleanup "
                 "_acme-challenge.a.test. %s\n",
                 txt, txt);
        assert_non_null(got);
        assert_string_equal(got, want);
    }
    free(txt);
}

static void test_provider_present_wait_cleanup(void **state)
{
    struct prov pr;
    char path[] = "/tmp/certloop-dns01-prov-XXXXXX";
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    provider_case(false, &pr, path);
    unlink(path);
    assert_int_equal(pr.calls, 1);
    assert_int_equal(pr.status, 0);
    assert_non_null(strstr(pr.detail, "every server has it"));
}

static void test_provider_close_cancels_silently(void **state)
{
    struct prov pr;
    char path[] = "/tmp/certloop-dns01-prov-XXXXXX";
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    provider_case(true, &pr, path);
    unlink(path);
    assert_int_equal(pr.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_udp_answer),
        cmocka_unit_test(test_send_truncated_retries_over_tcp),
        cmocka_unit_test(test_send_big_message_uses_tcp),
        cmocka_unit_test(test_send_retries_then_times_out),
        cmocka_unit_test(test_send_ignores_other_ids),
        cmocka_unit_test(test_send_cancel_never_calls_back),
        cmocka_unit_test(test_spawn_output_and_args),
        cmocka_unit_test(test_spawn_nonzero_exit),
        cmocka_unit_test(test_spawn_timeout_kills),
        cmocka_unit_test(test_spawn_keeps_last_output),
        cmocka_unit_test(test_spawn_cancel_never_calls_back),
        cmocka_unit_test(test_spawn_missing_program_fails_at_once),
        cmocka_unit_test(test_wait_all_servers_have_it),
        cmocka_unit_test(test_wait_times_out_with_report),
        cmocka_unit_test(test_wait_nxdomain_reported),
        cmocka_unit_test(test_wait_cancel_never_calls_back),
        cmocka_unit_test(test_present_unreachable_server_times_out),
        cmocka_unit_test(test_present_bad_key_file_fails_at_once),
        cmocka_unit_test(test_provider_present_wait_cleanup),
        cmocka_unit_test(test_provider_close_cancels_silently),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
