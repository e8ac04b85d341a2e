/* Where a dns-01 record goes and whether the world can see it: following
 * CNAMEs at _acme-challenge names (the acme-dns pattern), finding the zone
 * by SOA lookups, finding the zone's authoritative servers (NS, then their
 * A/AAAA), and polling each of them directly for the TXT value until all
 * serve it or time runs out, remembering what each one said. It changes no
 * record; dns01.c does that. */
#include "challenge/dns01_internal.h"
#include "net/net.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CNAME 8
#define MAX_SERVERS 32
#define REPORT_MAX 4096
#define NO_NS SIZE_MAX

/* ---- answers -------------------------------------------------------------- */

/* The owner or first rdata of rr as a lower-case absolute name. Owned. */
static char *rdf_name(const ldns_rdf *r)
{
    char *s = r != NULL ? ldns_rdf2str(r) : NULL;
    char *n;

    if (s == NULL)
        return NULL;
    n = dns01_name_fqdn(s);
    free(s);
    return n;
}

/* Looks in a section for a record of type t; with `owner` set only one
 * owned by it. Returns its owner (want_rdata false) or its first rdata as a
 * name, owned, or NULL. */
static char *find_rr(const ldns_rr_list *list, ldns_rr_type t, const char *owner, bool want_rdata)
{
    for (size_t i = 0; list != NULL && i < ldns_rr_list_rr_count(list); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(list, i);
        if (ldns_rr_get_type(rr) != t)
            continue;
        char *o = rdf_name(ldns_rr_owner(rr));
        bool match = o != NULL && (owner == NULL || strcmp(o, owner) == 0);
        if (match && !want_rdata)
            return o;
        free(o);
        if (match)
            return rdf_name(ldns_rr_rdf(rr, 0));
    }
    return NULL;
}

static int parse_msg(const uint8_t *msg, size_t len, ldns_pkt **pkt)
{
    *pkt = NULL;
    if (!dns01_wire_sane(msg, len) || ldns_wire2pkt(pkt, msg, len) != LDNS_STATUS_OK ||
        *pkt == NULL) {
        ldns_pkt_free(*pkt);
        *pkt = NULL;
        return ERR_PARSE;
    }
    return 0;
}

int dns01_answer_cname(const uint8_t *msg, size_t len, const char *owner, char **out)
{
    ldns_pkt *pkt;
    char *o = dns01_name_fqdn(owner);
    int rc = parse_msg(msg, len, &pkt);

    if (rc == 0) {
        *out = find_rr(ldns_pkt_answer(pkt), LDNS_RR_TYPE_CNAME, o, true);
        ldns_pkt_free(pkt);
    }
    free(o);
    return rc;
}

int dns01_answer_zone(const uint8_t *msg, size_t len, const char *qname, const char *name,
                      char **out)
{
    ldns_pkt *pkt;
    char *q = dns01_name_fqdn(qname);
    int rc = parse_msg(msg, len, &pkt);
    char *zone = NULL;

    if (rc == 0) {
        zone = find_rr(ldns_pkt_answer(pkt), LDNS_RR_TYPE_SOA, q, false);
        if (zone == NULL) {
            zone = find_rr(ldns_pkt_authority(pkt), LDNS_RR_TYPE_SOA, NULL, false);
            if (zone != NULL && !dns01_name_in_zone(name, zone)) {
                free(zone);
                zone = NULL;
            }
        }
        ldns_pkt_free(pkt);
        *out = zone;
    }
    free(q);
    return rc;
}

int dns01_answer_ns(const uint8_t *msg, size_t len, const char *zone, size_t max, char ***out,
                    size_t *n)
{
    ldns_pkt *pkt;
    char *z = dns01_name_fqdn(zone);
    int rc = parse_msg(msg, len, &pkt);
    char **v = NULL;
    size_t k = 0;

    if (rc == 0) {
        const ldns_rr_list *an = ldns_pkt_answer(pkt);
        for (size_t i = 0; an != NULL && i < ldns_rr_list_rr_count(an) && k < max; i++) {
            const ldns_rr *rr = ldns_rr_list_rr(an, i);
            if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_NS)
                continue;
            char *o = rdf_name(ldns_rr_owner(rr));
            char *t = rdf_name(ldns_rr_rdf(rr, 0));
            if (o != NULL && t != NULL && strcmp(o, z) == 0) {
                v = xrealloc(v, (k + 1) * sizeof(*v));
                v[k++] = t;
                t = NULL;
            }
            free(o);
            free(t);
        }
        ldns_pkt_free(pkt);
        *out = v;
        *n = k;
    }
    free(z);
    return rc;
}

static const char *rcode_str(int rc)
{
    static const char *const names[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                        "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
                                        "NXRRSET", "NOTAUTH", "NOTZONE"};
    return rc >= 0 && (size_t)rc < sizeof(names) / sizeof(names[0]) ? names[rc] : "RCODE?";
}

/* ---- locate: CNAME, then zone --------------------------------------------- */

enum locate_state { L_CNAME, L_SOA };

struct dns01_locate {
    struct dns_resolver *res; /* borrowed */
    struct dns_query *q;      /* in flight, or NULL */
    enum locate_state state;
    char *name; /* owned: current name (after CNAMEs) */
    char *hint; /* owned or NULL */
    char *cand; /* owned: SOA candidate */
    bool need_zone;
    int depth;
    dns01_locate_cb cb;
    void *arg;
};

static void locate_free(struct dns01_locate *l)
{
    free(l->name);
    free(l->hint);
    free(l->cand);
    free(l);
}

static void locate_end(struct dns01_locate *l, int status, const char *zone, const char *why)
{
    dns01_locate_cb cb = l->cb;

    l->cb = NULL;
    if (cb != NULL)
        cb(status, l->name, zone, why, l->arg);
    locate_free(l);
}

static void locate_fail(struct dns01_locate *l, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void locate_fail(struct dns01_locate *l, int status, const char *fmt, ...)
{
    struct buf b = BUF_INIT(1024);
    va_list ap;

    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    locate_end(l, status, NULL, b.data != NULL ? b.data : "lookup failed");
    buf_fini(&b);
}

static void locate_answer(int status, const struct dns_answer *ans, void *arg);

static void locate_query(struct dns01_locate *l, const char *name, enum dns_rrtype t)
{
    int rc = dns_query_start(l->res, name, t, locate_answer, l, &l->q);

    if (rc < 0) {
        l->q = NULL;
        locate_fail(l, ERR_DNS, "%s lookup for %s: %s", t == DNS_T_SOA ? "SOA" : "CNAME", name,
                    err_str(rc));
    }
}

static void locate_zone(struct dns01_locate *l)
{
    if (!l->need_zone) {
        locate_end(l, 0, NULL, NULL);
        return;
    }
    if (l->hint != NULL && dns01_name_in_zone(l->name, l->hint)) {
        char *z = xstrdup(l->hint);
        locate_end(l, 0, z, NULL);
        free(z);
        return;
    }
    l->state = L_SOA;
    free(l->cand);
    l->cand = xstrdup(l->name);
    locate_query(l, l->cand, DNS_T_SOA);
}

static void locate_answer(int status, const struct dns_answer *ans, void *arg)
{
    struct dns01_locate *l = arg;
    const char *what = l->state == L_CNAME ? "CNAME" : "SOA";
    const char *qname = l->state == L_CNAME ? l->name : l->cand;

    l->q = NULL;
    if (status < 0) {
        locate_fail(l, ERR_DNS, "%s lookup for %s: %s: check [daemon] resolvers", what, qname,
                    status == ERR_TIMEOUT ? "no answer (timeout)" : err_str(status));
        return;
    }
    if (ans->rcode != LDNS_RCODE_NOERROR && ans->rcode != LDNS_RCODE_NXDOMAIN) {
        locate_fail(l, ERR_DNS, "%s lookup for %s answers %s: check [daemon] resolvers", what,
                    qname, rcode_str(ans->rcode));
        return;
    }
    if (l->state == L_CNAME) {
        char *target = NULL;
        if (dns01_answer_cname(ans->msg, ans->len, l->name, &target) < 0) {
            locate_fail(l, ERR_DNS, "CNAME lookup for %s: malformed answer", qname);
            return;
        }
        if (target == NULL) {
            locate_zone(l);
            return;
        }
        if (++l->depth > MAX_CNAME) {
            free(target);
            locate_fail(l, ERR_DNS, "%s: more than %d CNAMEs in a row", l->name, MAX_CNAME);
            return;
        }
        log_debug(LOG_CHAL, "dns %s is a CNAME for %s", l->name, target);
        free(l->name);
        l->name = target;
        locate_query(l, l->name, DNS_T_CNAME);
        return;
    }
    /* SOA: the answer names the zone apex itself; an authority-section SOA
     * (NODATA/NXDOMAIN) is the enclosing zone's (RFC 2308 §2). */
    char *zone = NULL;
    if (dns01_answer_zone(ans->msg, ans->len, l->cand, l->name, &zone) < 0) {
        locate_fail(l, ERR_DNS, "SOA lookup for %s: malformed answer", qname);
        return;
    }
    if (zone != NULL) {
        locate_end(l, 0, zone, NULL);
        free(zone);
        return;
    }
    const char *dot = strchr(l->cand, '.');
    if (strcmp(l->cand, ".") == 0 || dot == NULL || dot[1] == '\0') {
        locate_fail(l, ERR_DNS, "no zone found for %s (no SOA up to the root): set zone", l->name);
        return;
    }
    char *up = xstrdup(dot + 1);
    free(l->cand);
    l->cand = up;
    locate_query(l, l->cand, DNS_T_SOA);
}

int dns01_locate_start(struct dns_resolver *resolver, const char *name, const char *zone_hint,
                       bool need_zone, dns01_locate_cb cb, void *arg, struct dns01_locate **out)
{
    struct dns01_locate *l;
    int rc;

    if (resolver == NULL || name == NULL || name[0] == '\0' || cb == NULL)
        return -EINVAL;
    l = xcalloc(1, sizeof(*l));
    l->res = resolver;
    l->name = dns01_name_fqdn(name);
    l->hint = zone_hint != NULL ? dns01_name_fqdn(zone_hint) : NULL;
    l->need_zone = need_zone;
    l->state = L_CNAME;
    rc = dns_query_start(resolver, l->name, DNS_T_CNAME, locate_answer, l, &l->q);
    if (rc < 0) {
        locate_free(l);
        return rc;
    }
    l->cb = cb;
    l->arg = arg;
    if (out != NULL)
        *out = l;
    return 0;
}

void dns01_locate_cancel(struct dns01_locate *l)
{
    if (l == NULL)
        return;
    dns_query_cancel(l->q);
    locate_free(l);
}

/* ---- propagation ---------------------------------------------------------- */

enum prop_state { P_START, P_NS, P_ADDR, P_POLL, P_WAIT, P_ENDED };

struct prop_server {
    struct dns01_prop *p;     /* borrowed: the owner */
    char *addr;               /* owned: "IP:PORT" */
    struct dns_resolver *res; /* owned: asks only this server */
    struct dns_query *q;      /* in flight, or NULL */
    size_t ns;                /* index into p->ns of the NS it belongs to, or NO_NS (configured) */
    bool ok;
    bool unreachable; /* the last query failed at once (no route, refused), not a timeout */
    char *said;       /* owned: what it answered last */
};

struct prop_lookup {
    struct dns01_prop *p; /* borrowed: the owner */
    size_t ns;            /* index into p->ns (A/AAAA lookups) */
    struct dns_query *q;  /* in flight, or NULL */
    enum dns_rrtype type;
};

struct dns01_prop {
    uv_loop_t *loop;
    struct dns_resolver *res; /* borrowed: recursive lookups */
    uv_timer_t timer;         /* embedded; rounds and the start */
    enum prop_state state;
    char *zone, *fqdn, *value, *subject; /* owned */
    unsigned ns_port, timeout_ms;
    int64_t total_ms, interval_ms;
    uint64_t started;
    struct prop_server *srv; /* owned array */
    size_t n_srv;
    struct prop_lookup **lk; /* owned: NS/A/AAAA lookups */
    size_t n_lk, lk_pending;
    char **ns; /* owned: NS names */
    size_t n_ns;
    size_t pending; /* queries in this round */
    unsigned rounds;
    char *report; /* owned: what the callback saw */
    dns01_prop_cb cb;
    void *arg;
};

static void prop_free(struct dns01_prop *p)
{
    for (size_t i = 0; i < p->n_srv; i++) {
        free(p->srv[i].addr);
        free(p->srv[i].said);
    }
    free(p->srv);
    for (size_t i = 0; i < p->n_lk; i++)
        free(p->lk[i]);
    free(p->lk);
    for (size_t i = 0; i < p->n_ns; i++)
        free(p->ns[i]);
    free(p->ns);
    free(p->zone);
    free(p->fqdn);
    free(p->value);
    free(p->subject);
    free(p->report);
    free(p);
}

static void prop_closed(uv_handle_t *h)
{
    prop_free(h->data);
}

static char *prop_report(struct dns01_prop *p, const char *prefix)
{
    struct buf b = BUF_INIT(REPORT_MAX);
    uint64_t waited = (uv_now(p->loop) - p->started + 500) / 1000;

    if (prefix != NULL)
        buf_append_str(&b, prefix);
    for (size_t i = 0; i < p->n_srv; i++)
        buf_printf(&b, "%s%s %s", i > 0 ? "; " : "", p->srv[i].addr,
                   p->srv[i].said != NULL ? p->srv[i].said : "was not asked");
    buf_printf(&b, " (waited %llu s)", (unsigned long long)waited);
    return buf_steal(&b, NULL);
}

static void prop_end(struct dns01_prop *p, int status, const char *prefix)
{
    dns01_prop_cb cb = p->cb;

    if (p->state == P_ENDED)
        return;
    p->state = P_ENDED;
    p->cb = NULL;
    for (size_t i = 0; i < p->n_lk; i++) {
        dns_query_cancel(p->lk[i]->q);
        p->lk[i]->q = NULL;
    }
    for (size_t i = 0; i < p->n_srv; i++) {
        if (p->srv[i].res != NULL)
            dns_resolver_close(p->srv[i].res); /* cancels its query: no callback */
        p->srv[i].res = NULL;
        p->srv[i].q = NULL;
    }
    p->report = prop_report(p, prefix);
    uv_close((uv_handle_t *)&p->timer, prop_closed);
    if (cb != NULL)
        cb(status, p->report, p->arg);
}

void dns01_prop_cancel(struct dns01_prop *p)
{
    if (p == NULL)
        return;
    p->cb = NULL;
    prop_end(p, -ECANCELED, NULL);
}

static void round_start(struct dns01_prop *p);
static void round_timer(uv_timer_t *t);

/* A server counts when it serves the value, or when it cannot be reached
 * from here at all (typically IPv6 on an IPv4-only host) while another
 * address of the same NS name serves it: the name server itself is then
 * known to have the record. Configured nameservers must all answer. */
static bool server_done(struct dns01_prop *p, struct prop_server *s)
{
    if (s->ok)
        return true;
    if (!s->unreachable || s->ns == NO_NS)
        return false;
    for (size_t j = 0; j < p->n_srv; j++) {
        if (p->srv[j].ns == s->ns && p->srv[j].ok) {
            free(s->said);
            s->said = xasprintf("cannot be reached from here (skipped: %s has it on another "
                                "address)",
                                p->ns[s->ns]);
            return true;
        }
    }
    return false;
}

static void round_end(struct dns01_prop *p)
{
    bool all = true;

    for (size_t i = 0; i < p->n_srv; i++)
        all = server_done(p, &p->srv[i]) && all;
    if (all) {
        prop_end(p, 0, NULL);
        return;
    }
    int64_t left = p->total_ms - (int64_t)(uv_now(p->loop) - p->started);
    if (left <= 0) {
        prop_end(p, ERR_TIMEOUT, NULL);
        return;
    }
    if (log_enabled(LOG_CHAL, LOG_LVL_DEBUG)) {
        char *r = prop_report(p, NULL);
        log_debug(LOG_CHAL, "dns %s%sname=%s: round %u: %s", p->subject ? p->subject : "",
                  p->subject ? " " : "", p->fqdn, p->rounds, r);
        free(r);
    }
    p->state = P_WAIT;
    uv_timer_start(&p->timer, round_timer,
                   (uint64_t)(p->interval_ms < left ? p->interval_ms : left), 0);
}

static void server_answer(int status, const struct dns_answer *ans, void *arg)
{
    struct prop_server *s = arg;
    struct dns01_prop *p = s->p;

    s->q = NULL;
    free(s->said);
    s->said = NULL;
    s->unreachable = status < 0 && status != ERR_TIMEOUT;
    if (status == ERR_TIMEOUT) {
        s->said = xstrdup("does not answer (timeout)");
    } else if (status < 0) {
        s->said = xstrdup("cannot be reached (connection refused or no route)");
    } else if (ans->rcode != 0) {
        s->said = xasprintf("answers %s", rcode_str(ans->rcode));
    } else {
        for (size_t i = 0; i < ans->n_txt; i++)
            if (strcmp(ans->txt[i], p->value) == 0)
                s->ok = true;
        if (s->ok)
            s->said = xstrdup("has it");
        else if (ans->n_txt == 0)
            s->said = xstrdup("answers without TXT records");
        else
            s->said =
                xasprintf("answers %zu other TXT value%s", ans->n_txt, ans->n_txt == 1 ? "" : "s");
        if (!ans->authoritative && !s->ok)
            s->said = (free(s->said), xasprintf("answers without authority (AA=0)"));
    }
    if (--p->pending == 0)
        round_end(p);
}

static void round_start(struct dns01_prop *p)
{
    p->state = P_POLL;
    p->rounds++;
    p->pending = 0;
    for (size_t i = 0; i < p->n_srv; i++) {
        struct prop_server *s = &p->srv[i];
        if (s->ok)
            continue;
        int rc = 0;
        if (s->res == NULL) {
            struct dns_resolver_opts o = {s->addr, p->timeout_ms, 2, true, false};
            rc = dns_resolver_open(p->loop, &o, &s->res);
            if (rc < 0)
                s->res = NULL;
        }
        if (rc == 0)
            rc = dns_query_start(s->res, p->fqdn, DNS_T_TXT, server_answer, s, &s->q);
        if (rc < 0) {
            free(s->said);
            s->said = xasprintf("cannot be asked (%s)", err_str(rc));
            continue;
        }
        p->pending++;
    }
    if (p->pending == 0)
        round_end(p);
}

/* Formats addr:port as c-ares and our reports write it. */
static char *addr_port(const char *ip, unsigned port, bool v6)
{
    return v6 ? xasprintf("[%s]:%u", ip, port) : xasprintf("%s:%u", ip, port);
}

static void add_server(struct dns01_prop *p, char *addr, size_t ns)
{
    for (size_t i = 0; i < p->n_srv; i++) {
        if (strcmp(p->srv[i].addr, addr) == 0) {
            free(addr);
            return;
        }
    }
    if (p->n_srv >= MAX_SERVERS) {
        free(addr);
        return;
    }
    p->srv = xrealloc(p->srv, (p->n_srv + 1) * sizeof(*p->srv));
    memset(&p->srv[p->n_srv], 0, sizeof(p->srv[0]));
    p->srv[p->n_srv].p = p;
    p->srv[p->n_srv].addr = addr;
    p->srv[p->n_srv].ns = ns;
    p->n_srv++;
}

static void lookup_answer(int status, const struct dns_answer *ans, void *arg);

static int lookup_start(struct dns01_prop *p, const char *name, enum dns_rrtype t, size_t ns)
{
    struct prop_lookup *l = xcalloc(1, sizeof(*l));
    int rc;

    l->p = p;
    l->ns = ns;
    l->type = t;
    rc = dns_query_start(p->res, name, t, lookup_answer, l, &l->q);
    if (rc < 0) {
        free(l);
        return rc;
    }
    p->lk = xrealloc(p->lk, (p->n_lk + 1) * sizeof(*p->lk));
    p->lk[p->n_lk++] = l;
    p->lk_pending++;
    return 0;
}

static void addrs_done(struct dns01_prop *p)
{
    if (p->n_srv == 0) {
        char *pre = xasprintf("no address found for the name servers of zone %s (set "
                              "nameservers)",
                              p->zone);
        prop_end(p, ERR_DNS, pre);
        free(pre);
        return;
    }
    round_start(p);
}

static void ns_answer(struct dns01_prop *p, int status, const struct dns_answer *ans)
{
    char *pre = NULL;

    if (status < 0 || ans->rcode != 0 ||
        dns01_answer_ns(ans->msg, ans->len, p->zone, MAX_SERVERS, &p->ns, &p->n_ns) < 0) {
        pre = xasprintf("NS lookup for zone %s: %s (set nameservers, or check [daemon] "
                        "resolvers)",
                        p->zone,
                        status < 0        ? err_str(status)
                        : ans->rcode != 0 ? rcode_str(ans->rcode)
                                          : "malformed answer");
        goto fail;
    }
    if (p->n_ns == 0) {
        pre = xasprintf("zone %s has no NS records (set nameservers)", p->zone);
        goto fail;
    }
    p->state = P_ADDR;
    for (size_t i = 0; i < p->n_ns; i++) {
        if (lookup_start(p, p->ns[i], DNS_T_A, i) < 0)
            log_debug(LOG_CHAL, "dns A %s: cannot ask", p->ns[i]);
        if (lookup_start(p, p->ns[i], DNS_T_AAAA, i) < 0)
            log_debug(LOG_CHAL, "dns AAAA %s: cannot ask", p->ns[i]);
    }
    if (p->lk_pending == 0)
        addrs_done(p);
    return;
fail:
    prop_end(p, ERR_DNS, pre);
    free(pre);
}

static void lookup_answer(int status, const struct dns_answer *ans, void *arg)
{
    struct prop_lookup *l = arg;
    struct dns01_prop *p = l->p;

    l->q = NULL;
    p->lk_pending--;
    if (l->type == DNS_T_NS) {
        ns_answer(p, status, ans);
        return;
    }
    if (status == 0 && ans->rcode == 0) {
        for (size_t i = 0; i < ans->n_addrs; i++)
            add_server(p, addr_port(ans->addrs[i], p->ns_port, l->type == DNS_T_AAAA), l->ns);
    }
    if (p->lk_pending == 0)
        addrs_done(p);
}

static void prop_begin(uv_timer_t *t)
{
    struct dns01_prop *p = t->data;
    int rc;

    if (p->n_srv > 0) {
        round_start(p);
        return;
    }
    p->state = P_NS;
    rc = lookup_start(p, p->zone, DNS_T_NS, NO_NS);
    if (rc < 0) {
        char *pre = xasprintf("NS lookup for zone %s: %s", p->zone, err_str(rc));
        prop_end(p, ERR_DNS, pre);
        free(pre);
    }
}

static void round_timer(uv_timer_t *t)
{
    round_start(t->data);
}

int dns01_prop_start(uv_loop_t *loop, struct dns_resolver *resolver, const char *zone,
                     const char *fqdn, const char *value, const struct dns01_prop_opts *o,
                     dns01_prop_cb cb, void *arg, struct dns01_prop **out)
{
    struct dns01_prop *p;
    int rc;

    if (fqdn == NULL || value == NULL || cb == NULL || o == NULL)
        return -EINVAL;
    if (o->n_servers == 0 && (zone == NULL || resolver == NULL))
        return -EINVAL;
    p = xcalloc(1, sizeof(*p));
    p->loop = loop;
    p->res = resolver;
    p->zone = zone != NULL ? dns01_name_fqdn(zone) : NULL;
    p->fqdn = dns01_name_fqdn(fqdn);
    p->value = xstrdup(value);
    p->subject = o->subject != NULL ? xstrdup(o->subject) : NULL;
    p->ns_port = o->ns_port > 0 ? o->ns_port : 53;
    p->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
    p->total_ms = (o->total_s > 0 ? o->total_s : 120) * 1000;
    p->interval_ms = (o->interval_s > 0 ? o->interval_s : 2) * 1000;
    for (size_t i = 0; i < o->n_servers; i++)
        add_server(p, xstrdup(o->servers[i]), NO_NS);
    rc = uv_timer_init(loop, &p->timer);
    if (rc < 0) {
        prop_free(p);
        return rc;
    }
    p->timer.data = p;
    p->started = uv_now(loop);
    p->cb = cb;
    p->arg = arg;
    p->state = P_START;
    /* Even the first round starts from the loop, so no callback can run
     * inside this call. */
    uv_timer_start(&p->timer, prop_begin, 0, 0);
    if (out != NULL)
        *out = p;
    return 0;
}
