/* Loop tests of the c-ares glue (src/net/dns.c) against a tiny UDP DNS
 * responder on 127.0.0.1:0 defined here: TXT, A, AAAA answers, NXDOMAIN,
 * silence (for timeouts). Counts callbacks, checks uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "util/err.h"
#include "util/xalloc.h"

/* ---- the responder ---- */

struct stub_dns {
    uv_udp_t udp; /* unreferenced: never keeps the loop alive */
    int port;
    char servers[64];
    unsigned queries;
    int last_rd; /* RD bit of the last query */
};

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

/* Appends one answer RR pointing at the question name. */
static size_t add_rr(unsigned char *out, size_t at, unsigned type, const void *rdata, size_t rdlen)
{
    put16(out + at, 0xc00c);
    put16(out + at + 2, type);
    put16(out + at + 4, 1);
    memset(out + at + 6, 0, 4);
    out[at + 9] = 60; /* TTL */
    put16(out + at + 10, (unsigned)rdlen);
    memcpy(out + at + 12, rdata, rdlen);
    return at + 12 + rdlen;
}

/* Writes a dotted name in uncompressed wire form; returns its length. */
static size_t encode_name(const char *dotted, unsigned char *out)
{
    size_t n = 0;
    while (*dotted != '\0') {
        const char *dot = strchr(dotted, '.');
        size_t l = dot != NULL ? (size_t)(dot - dotted) : strlen(dotted);
        out[n++] = (unsigned char)l;
        memcpy(out + n, dotted, l);
        n += l;
        dotted += l;
        if (*dotted == '.')
            dotted++;
    }
    out[n++] = 0;
    return n;
}

/* Appends an RR with an explicit owner name. */
static size_t add_rr_owner(unsigned char *out, size_t at, const char *owner, unsigned type,
                           const void *rdata, size_t rdlen)
{
    at += encode_name(owner, out + at);
    put16(out + at, type);
    put16(out + at + 2, 1);
    memset(out + at + 4, 0, 4);
    out[at + 7] = 60;
    put16(out + at + 8, (unsigned)rdlen);
    memcpy(out + at + 10, rdata, rdlen);
    return at + 10 + rdlen;
}

static size_t txt_rdata(unsigned char *rd, const char *const *strings)
{
    size_t n = 0;
    for (; *strings != NULL; strings++) {
        size_t l = strlen(*strings);
        rd[n++] = (unsigned char)l;
        memcpy(rd + n, *strings, l);
        n += l;
    }
    return n;
}

static void stub_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
                      unsigned flags)
{
    struct stub_dns *s = h->data;
    unsigned char out[1024];
    char name[256];
    size_t nl = 0;
    (void)flags;

    if (n < 17 || from == NULL) {
        free(b->base);
        return;
    }
    const unsigned char *q = (const unsigned char *)b->base;
    s->queries++;
    s->last_rd = q[2] & 0x01;
    size_t at = 12;
    while (at < (size_t)n && q[at] != 0 && nl < sizeof(name) - 64) {
        unsigned l = q[at++];
        if (nl > 0)
            name[nl++] = '.';
        for (unsigned i = 0; i < l && at < (size_t)n; i++)
            name[nl++] = (char)tolower(q[at++]);
    }
    name[nl] = '\0';
    at++; /* root label */
    if (at + 4 > (size_t)n) {
        free(b->base);
        return;
    }
    unsigned qtype = (unsigned)(q[at] << 8 | q[at + 1]);
    size_t qend = at + 4;

    if (strcmp(name, "slow.example.test") == 0) {
        free(b->base);
        return; /* never answer */
    }
    memcpy(out, q, qend);
    out[2] = (unsigned char)(0x84 | (q[2] & 0x01)); /* QR, AA, RD copied */
    out[3] = 0;
    put16(out + 6, 0);
    put16(out + 8, 0);
    put16(out + 10, 0);
    size_t len = qend;
    unsigned ancount = 0;
    unsigned char rd[300];
    if (strcmp(name, "_acme-challenge.example.test") == 0 && qtype == DNS_T_TXT) {
        const char *one[] = {"token-abc", NULL};
        const char *split[] = {"part1-", "part2", NULL};
        len = add_rr(out, len, DNS_T_TXT, rd, txt_rdata(rd, one));
        len = add_rr(out, len, DNS_T_TXT, rd, txt_rdata(rd, split));
        ancount = 2;
    } else if (strcmp(name, "www.example.test") == 0 && qtype == DNS_T_A) {
        unsigned char a1[4] = {192, 0, 2, 1}, a2[4] = {192, 0, 2, 2};
        len = add_rr(out, len, DNS_T_A, a1, 4);
        len = add_rr(out, len, DNS_T_A, a2, 4);
        ancount = 2;
    } else if (strcmp(name, "www.example.test") == 0 && qtype == DNS_T_AAAA) {
        unsigned char a6[16];
        inet_pton(AF_INET6, "2001:db8::1", a6);
        len = add_rr(out, len, DNS_T_AAAA, a6, 16);
        ancount = 1;
    } else if (strncmp(name, "n", 1) == 0 && strstr(name, ".many.example.test") != NULL &&
               qtype == DNS_T_TXT) {
        const char *one[] = {name, NULL}; /* echo the name */
        len = add_rr(out, len, DNS_T_TXT, rd, txt_rdata(rd, one));
        ancount = 1;
    } else if (strcmp(name, "example.test") == 0 && qtype == DNS_T_NS) {
        size_t l = encode_name("ns1.example.test", rd);
        len = add_rr(out, len, DNS_T_NS, rd, l);
        l = encode_name("ns2.example.test", rd);
        len = add_rr(out, len, DNS_T_NS, rd, l);
        ancount = 2;
    } else if (strcmp(name, "www.example.test") != 0) {
        out[3] = 3; /* NXDOMAIN, with the zone's SOA in the authority section */
        size_t l = encode_name("ns1.example.test", rd);
        l += encode_name("hostmaster.example.test", rd + l);
        memset(rd + l, 0, 20);
        rd[l + 3] = 1; /* serial 1 */
        len = add_rr_owner(out, len, "example.test", DNS_T_SOA, rd, l + 20);
        put16(out + 8, 1);
    }
    put16(out + 6, ancount);
    uv_buf_t ob = uv_buf_init((char *)out, (unsigned)len);
    uv_udp_try_send(h, &ob, 1, from);
    free(b->base);
}

static void stub_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    b->base = xmalloc(suggested);
    b->len = suggested;
}

static void stub_start(uv_loop_t *loop, struct stub_dns *s)
{
    struct sockaddr_in sa;
    struct sockaddr_in got;
    int len = sizeof(got);

    memset(s, 0, sizeof(*s));
    assert_int_equal(uv_udp_init(loop, &s->udp), 0);
    s->udp.data = s;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_udp_bind(&s->udp, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_udp_getsockname(&s->udp, (struct sockaddr *)&got, &len), 0);
    s->port = ntohs(got.sin_port);
    snprintf(s->servers, sizeof(s->servers), "127.0.0.1:%d", s->port);
    assert_int_equal(uv_udp_recv_start(&s->udp, stub_alloc, stub_recv), 0);
    uv_unref((uv_handle_t *)&s->udp);
}

/* ---- harness ---- */

struct fx {
    uv_loop_t loop;
    struct stub_dns stub;
    struct dns_resolver *res;
};

static void fx_open(struct fx *f, const struct dns_resolver_opts *extra)
{
    assert_int_equal(uv_loop_init(&f->loop), 0);
    stub_start(&f->loop, &f->stub);
    struct dns_resolver_opts o = {.servers = f->stub.servers, .timeout_ms = 500, .tries = 1};
    if (extra != NULL) {
        o.no_recurse = extra->no_recurse;
        if (extra->timeout_ms != 0)
            o.timeout_ms = extra->timeout_ms;
    }
    assert_int_equal(dns_resolver_open(&f->loop, &o, &f->res), 0);
}

static void fx_close(struct fx *f)
{
    dns_resolver_close(f->res);
    f->res = NULL;
    uv_close((uv_handle_t *)&f->stub.udp, NULL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

struct result {
    char *zone;
    char *names[4];
    size_t n_names;
    int calls;
    int status;
    int rcode;
    bool aa;
    size_t len;
    char *txt[4];
    size_t n_txt;
    char *addrs[4];
    size_t n_addrs;
};

static void record_cb(int status, const struct dns_answer *ans, void *arg)
{
    struct result *r = arg;
    r->calls++;
    r->status = status;
    if (status != 0) {
        assert_null(ans);
        return;
    }
    r->rcode = ans->rcode;
    r->aa = ans->authoritative;
    r->len = ans->len;
    assert_non_null(ans->msg);
    for (size_t i = 0; i < ans->n_txt && i < 4; i++)
        r->txt[r->n_txt++] = xstrdup(ans->txt[i]);
    assert_null(ans->txt[ans->n_txt]);
    for (size_t i = 0; i < ans->n_addrs && i < 4; i++)
        r->addrs[r->n_addrs++] = xstrdup(ans->addrs[i]);
    assert_null(ans->addrs[ans->n_addrs]);
    r->zone = ans->zone != NULL ? xstrdup(ans->zone) : NULL;
    for (size_t i = 0; i < ans->n_names && i < 4; i++)
        r->names[r->n_names++] = xstrdup(ans->names[i]);
    assert_null(ans->names[ans->n_names]);
}

static void result_fini(struct result *r)
{
    for (size_t i = 0; i < r->n_txt; i++)
        free(r->txt[i]);
    for (size_t i = 0; i < r->n_addrs; i++)
        free(r->addrs[i]);
    for (size_t i = 0; i < r->n_names; i++)
        free(r->names[i]);
    free(r->zone);
    memset(r, 0, sizeof(*r));
}

/* ---- tests ---- */

static void test_txt_answer_joins_strings_per_record(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    fx_open(&f, NULL);
    assert_int_equal(
        dns_query_start(f.res, "_acme-challenge.example.test", DNS_T_TXT, record_cb, &r, NULL), 0);
    assert_int_equal(r.calls, 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.rcode, 0);
    assert_true(r.aa);
    assert_int_equal(r.n_txt, 2);
    assert_string_equal(r.txt[0], "token-abc");
    assert_string_equal(r.txt[1], "part1-part2");
    assert_int_equal(f.stub.last_rd, 1);
    result_fini(&r);
    fx_close(&f);
}

static void test_a_and_aaaa_answers_as_text(void **state)
{
    (void)state;
    struct fx f;
    struct result a = {0}, aaaa = {0}, none = {0};
    fx_open(&f, NULL);
    assert_int_equal(dns_query_start(f.res, "www.example.test", DNS_T_A, record_cb, &a, NULL), 0);
    assert_int_equal(dns_query_start(f.res, "WWW.example.test", DNS_T_AAAA, record_cb, &aaaa, NULL),
                     0);
    /* NOERROR without data */
    assert_int_equal(dns_query_start(f.res, "www.example.test", DNS_T_TXT, record_cb, &none, NULL),
                     0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.n_addrs, 2);
    assert_string_equal(a.addrs[0], "192.0.2.1");
    assert_string_equal(a.addrs[1], "192.0.2.2");
    assert_int_equal(aaaa.calls, 1);
    assert_int_equal(aaaa.n_addrs, 1);
    assert_string_equal(aaaa.addrs[0], "2001:db8::1");
    assert_int_equal(none.calls, 1);
    assert_int_equal(none.status, 0);
    assert_int_equal(none.rcode, 0);
    assert_int_equal(none.n_txt, 0);
    result_fini(&a);
    result_fini(&aaaa);
    result_fini(&none);
    fx_close(&f);
}

static void test_nxdomain_is_an_answer(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    fx_open(&f, NULL);
    assert_int_equal(dns_query_start(f.res, "nope.example.test", DNS_T_TXT, record_cb, &r, NULL),
                     0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.rcode, 3);
    assert_int_equal(r.n_txt, 0);
    assert_string_equal(r.zone, "example.test"); /* the zone apex, from the authority SOA */
    result_fini(&r);
    fx_close(&f);
}

static void test_ns_answer_lists_targets(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    fx_open(&f, NULL);
    assert_int_equal(dns_query_start(f.res, "example.test", DNS_T_NS, record_cb, &r, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.rcode, 0);
    assert_int_equal(r.n_names, 2);
    assert_string_equal(r.names[0], "ns1.example.test");
    assert_string_equal(r.names[1], "ns2.example.test");
    assert_null(r.zone);
    result_fini(&r);
    fx_close(&f);
}

static void test_silent_server_gives_timeout(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    struct dns_resolver_opts o = {.timeout_ms = 100};
    fx_open(&f, &o);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(dns_query_start(f.res, "slow.example.test", DNS_T_TXT, record_cb, &r, NULL),
                     0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, ERR_TIMEOUT);
    assert_true(ms >= 90 && ms < 3000);
    fx_close(&f);
}

static void test_no_recurse_clears_rd(void **state)
{
    (void)state;
    struct fx f;
    struct result r = {0};
    struct dns_resolver_opts o = {.no_recurse = true};
    fx_open(&f, &o);
    assert_int_equal(
        dns_query_start(f.res, "_acme-challenge.example.test", DNS_T_TXT, record_cb, &r, NULL), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(f.stub.last_rd, 0);
    result_fini(&r);
    fx_close(&f);
}

static void test_cancel_and_close_are_silent(void **state)
{
    (void)state;
    struct fx f;
    struct result r[4] = {{0}};
    struct dns_query *q[4];
    fx_open(&f, NULL);
    for (int i = 0; i < 4; i++) {
        const char *name = i < 2 ? "_acme-challenge.example.test" : "slow.example.test";
        assert_int_equal(dns_query_start(f.res, name, DNS_T_TXT, record_cb, &r[i], &q[i]), 0);
    }
    dns_query_cancel(q[0]); /* would be answered */
    dns_query_cancel(q[2]); /* would time out */
    uv_run(&f.loop, UV_RUN_ONCE);
    /* closing with q[1] maybe answered and q[3] in flight: nothing more runs */
    int before = r[1].calls;
    fx_close(&f);
    assert_int_equal(r[0].calls, 0);
    assert_int_equal(r[2].calls, 0);
    assert_int_equal(r[3].calls, 0);
    assert_true(r[1].calls == before && before <= 1);
    result_fini(&r[1]);
}

struct chain {
    struct fx *f;
    int first, second;
    struct result second_r;
};

static void chain_second(int status, const struct dns_answer *ans, void *arg)
{
    struct chain *c = arg;
    c->second++;
    record_cb(status, ans, &c->second_r);
    dns_resolver_close(c->f->res); /* closing from a callback is fine */
    c->f->res = NULL;
}

static void chain_first(int status, const struct dns_answer *ans, void *arg)
{
    struct chain *c = arg;
    (void)ans;
    c->first++;
    assert_int_equal(status, 0);
    assert_int_equal(dns_query_start(c->f->res, "www.example.test", DNS_T_A, chain_second, c, NULL),
                     0);
}

static void test_callback_may_query_again_and_close(void **state)
{
    (void)state;
    struct fx f;
    struct chain c = {.f = &f};
    fx_open(&f, NULL);
    assert_int_equal(
        dns_query_start(f.res, "_acme-challenge.example.test", DNS_T_TXT, chain_first, &c, NULL),
        0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(c.first, 1);
    assert_int_equal(c.second, 1);
    assert_int_equal(c.second_r.status, 0);
    assert_int_equal(c.second_r.n_addrs, 2);
    result_fini(&c.second_r);
    fx_close(&f);
}

#define N_MANY 100

struct many {
    int calls[N_MANY];
    int ok;
};
struct many_one {
    struct many *m;
    int i;
};

static void many_cb(int status, const struct dns_answer *ans, void *arg)
{
    struct many_one *o = arg;
    char want[64];
    o->m->calls[o->i]++;
    snprintf(want, sizeof(want), "n%d.many.example.test", o->i);
    if (status == 0 && ans->n_txt == 1 && strcmp(ans->txt[0], want) == 0)
        o->m->ok++;
}

static void test_100_concurrent_queries_complete_once_each(void **state)
{
    (void)state;
    struct fx f;
    struct many m = {{0}, 0};
    struct many_one ones[N_MANY];
    fx_open(&f, NULL);
    for (int i = 0; i < N_MANY; i++) {
        char name[64];
        snprintf(name, sizeof(name), "n%d.many.example.test", i);
        ones[i].m = &m;
        ones[i].i = i;
        assert_int_equal(dns_query_start(f.res, name, DNS_T_TXT, many_cb, &ones[i], NULL), 0);
    }
    uv_run(&f.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < N_MANY; i++)
        assert_int_equal(m.calls[i], 1);
    assert_int_equal(m.ok, N_MANY);
    fx_close(&f);
}

static void test_synchronous_failures(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct dns_resolver *res = NULL;
    struct result r = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    struct dns_resolver_opts bad = {.servers = "not an address"};
    assert_int_equal(dns_resolver_open(&loop, &bad, &res), -EINVAL);
    struct dns_resolver_opts ok = {.servers = "127.0.0.1:1"};
    assert_int_equal(dns_resolver_open(&loop, &ok, &res), 0);
    assert_int_equal(dns_query_start(res, "", DNS_T_TXT, record_cb, &r, NULL), -EINVAL);
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(dns_query_start(res, longname, DNS_T_TXT, record_cb, &r, NULL), -EINVAL);
    dns_resolver_close(res);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_txt_answer_joins_strings_per_record),
        cmocka_unit_test(test_a_and_aaaa_answers_as_text),
        cmocka_unit_test(test_nxdomain_is_an_answer),
        cmocka_unit_test(test_ns_answer_lists_targets),
        cmocka_unit_test(test_silent_server_gives_timeout),
        cmocka_unit_test(test_no_recurse_clears_rd),
        cmocka_unit_test(test_cancel_and_close_are_silent),
        cmocka_unit_test(test_callback_may_query_again_and_close),
        cmocka_unit_test(test_100_concurrent_queries_complete_once_each),
        cmocka_unit_test(test_synchronous_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
