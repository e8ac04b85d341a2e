/* `certloop test NAME`: see preflight.h. The checks run one phase after
 * another on a private loop: resolve every name, read the CA's
 * caaIdentities and climb the CAA tree, then exercise the configured
 * challenge (a temporary http-01 listener, or the running daemon's, fetched
 * through the resolved addresses; or a dns-01 test record through the
 * configured solver, removed afterwards). */
#include "reactor/preflight.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <uv.h>

#include "acme/acme.h"
#include "challenge/challenge.h"
#include "config/config.h"
#include "deploy/deploy.h"
#include "net/net.h"
#include "reactor/dns01_provider.h"
#include "store/store.h"
#include "util/b64.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

/* ---- pure helpers ---- */

int pf_caa_parse_rdata(const uint8_t *rd, size_t len, struct pf_caa *out)
{
    size_t tl, vl;

    if (len < 2)
        return -EBADMSG;
    tl = rd[1];
    if (tl == 0 || tl > PF_CAA_TAG_MAX || 2 + tl > len)
        return -EBADMSG;
    for (size_t i = 0; i < tl; i++) {
        uint8_t ch = rd[2 + i];
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum)
            return -EBADMSG;
        out->tag[i] = (char)ch;
    }
    out->tag[tl] = '\0';
    out->flags = rd[0];
    vl = len - 2 - tl;
    if (memchr(rd + 2 + tl, '\0', vl) != NULL)
        return -EBADMSG;
    if (vl > PF_CAA_VALUE_MAX)
        vl = PF_CAA_VALUE_MAX;
    memcpy(out->value, rd + 2 + tl, vl);
    out->value[vl] = '\0';
    return 0;
}

static unsigned be16(const uint8_t *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

/* Skips a (possibly compressed) name at *off. 0 or -EBADMSG. */
static int skip_name(const uint8_t *msg, size_t len, size_t *off)
{
    for (int labels = 0; labels < 128; labels++) {
        uint8_t c;
        if (*off >= len)
            return -EBADMSG;
        c = msg[*off];
        if (c == 0) {
            *off += 1;
            return 0;
        }
        if ((c & 0xC0) == 0xC0) {
            if (*off + 2 > len)
                return -EBADMSG;
            *off += 2;
            return 0;
        }
        if ((c & 0xC0) != 0)
            return -EBADMSG;
        *off += 1 + (size_t)c;
    }
    return -EBADMSG;
}

int pf_caa_from_msg(const uint8_t *msg, size_t len, struct pf_caa *out, size_t max)
{
    size_t off = 12;
    unsigned qd, an;
    int found = 0;

    if (len < 12)
        return -EBADMSG;
    qd = be16(msg + 4);
    an = be16(msg + 6);
    for (unsigned i = 0; i < qd; i++) {
        if (skip_name(msg, len, &off) != 0 || off + 4 > len)
            return -EBADMSG;
        off += 4;
    }
    for (unsigned i = 0; i < an; i++) {
        unsigned type, rdlen;
        if (skip_name(msg, len, &off) != 0 || off + 10 > len)
            return -EBADMSG;
        type = be16(msg + off);
        rdlen = be16(msg + off + 8);
        off += 10;
        if (off + rdlen > len)
            return -EBADMSG;
        if (type == DNS_T_CAA) {
            struct pf_caa tmp;
            if (pf_caa_parse_rdata(msg + off, rdlen, (size_t)found < max ? &out[found] : &tmp) != 0)
                return -EBADMSG;
            found++;
        }
        off += rdlen;
    }
    return found;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

void pf_caa_issuer_domain(const char *value, char *dom, size_t cap)
{
    const char *s = value, *e;
    size_t n;

    while (is_space(*s))
        s++;
    e = s;
    while (*e != '\0' && *e != ';' && !is_space(*e))
        e++;
    n = (size_t)(e - s);
    if (cap == 0)
        return;
    if (n >= cap)
        n = cap - 1;
    memcpy(dom, s, n);
    dom[n] = '\0';
}

static void set_why(const char **why, const char *s)
{
    if (why != NULL)
        *why = s;
}

bool pf_caa_param(const char *value, const char *key, char *out, size_t cap)
{
    const char *s = strchr(value, ';');
    size_t kl = strlen(key);

    while (s != NULL) {
        s++;
        while (is_space(*s))
            s++;
        const char *k = s;
        while (*s != '\0' && *s != '=' && *s != ';' && !is_space(*s))
            s++;
        size_t l = (size_t)(s - k);
        while (is_space(*s))
            s++;
        if (*s != '=') {
            s = strchr(s, ';');
            continue;
        }
        s++;
        while (is_space(*s))
            s++;
        const char *v = s;
        while (*s != '\0' && *s != ';' && !is_space(*s))
            s++;
        size_t vl = (size_t)(s - v);
        if (l == kl && strncasecmp(k, key, kl) == 0) {
            if (vl >= cap)
                return false;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return true;
        }
        s = strchr(s, ';');
    }
    return false;
}

/* RFC 8657 §3, §4: the parameters of one property that names the CA. */
static bool rfc8657_ok(const char *value, const char *account_url, const char *method,
                       const char **why)
{
    char p[PF_CAA_VALUE_MAX + 1];

    if (pf_caa_param(value, "accounturi", p, sizeof(p)) &&
        (account_url == NULL || strcmp(p, account_url) != 0)) {
        set_why(why, account_url == NULL
                         ? "the property naming the CA has an accounturi, and there is no "
                           "account yet (the first order registers one)"
                         : "the property naming the CA has an accounturi of another account");
        return false;
    }
    if (pf_caa_param(value, "validationmethods", p, sizeof(p))) {
        bool found = false;
        for (char *save = NULL, *m = strtok_r(p, ",", &save); m != NULL;
             m = strtok_r(NULL, ",", &save))
            if (method != NULL && strcmp(m, method) == 0)
                found = true;
        if (!found) {
            set_why(why, "the property naming the CA has validationmethods without the "
                         "challenge in use");
            return false;
        }
    }
    return true;
}

bool pf_caa_permits(const struct pf_caa *rrs, size_t n, bool wildcard, const char *const *ids,
                    size_t nids, const char **why)
{
    return pf_caa_permits_rfc8657(rrs, n, wildcard, ids, nids, NULL, NULL, why);
}

bool pf_caa_permits_rfc8657(const struct pf_caa *rrs, size_t n, bool wildcard,
                            const char *const *ids, size_t nids, const char *account_url,
                            const char *method, const char **why)
{
    const char *tag = "issue";
    bool any = false, check = method != NULL;
    const char *refused = NULL;

    for (size_t i = 0; i < n; i++) {
        bool known = strcasecmp(rrs[i].tag, "issue") == 0 ||
                     strcasecmp(rrs[i].tag, "issuewild") == 0 ||
                     strcasecmp(rrs[i].tag, "iodef") == 0;
        if ((rrs[i].flags & 0x80) != 0 && !known) {
            set_why(why, "a critical CAA property this checker does not know forbids issuance");
            return false;
        }
        if (wildcard && strcasecmp(rrs[i].tag, "issuewild") == 0)
            tag = "issuewild";
    }
    for (size_t i = 0; i < n; i++) {
        char dom[256];
        if (strcasecmp(rrs[i].tag, tag) != 0)
            continue;
        any = true;
        pf_caa_issuer_domain(rrs[i].value, dom, sizeof(dom));
        for (size_t j = 0; j < nids && dom[0] != '\0'; j++) {
            if (strcasecmp(dom, ids[j]) == 0) {
                if (check && !rfc8657_ok(rrs[i].value, account_url, method, &refused))
                    break;
                set_why(why, wildcard && strcmp(tag, "issuewild") == 0
                                 ? "an issuewild property names the CA"
                                 : "an issue property names the CA");
                return true;
            }
        }
    }
    if (refused != NULL) {
        set_why(why, refused);
        return false;
    }
    if (!any) {
        set_why(why, wildcard ? "CAA records without issue/issuewild properties (not restricted)"
                              : "CAA records without issue properties (not restricted)");
        return true;
    }
    set_why(why, strcmp(tag, "issuewild") == 0 ? "no issuewild property names the CA"
                                               : "no issue property names the CA");
    return false;
}

/* ---- the run ---- */

#define PF_CAA_MAX 32
#define HTTP_FETCH_TIMEOUT_MS 10000

struct pf;

struct pf_name {
    struct pf *pf;
    const char *domain; /* as configured: "*.a.test" or "a.test" (borrowed from cfg) */
    const char *base;   /* without "*." */
    bool wild;
    char **addrs; /* owned, n_addrs */
    size_t n_addrs;
    char *dns_err;      /* owned: first error, or NULL */
    int answers;        /* A/AAAA answers received */
    const char *caa_at; /* CAA: the name queried now (points into base) */
};

/* One http-01 fetch (name x address). */
struct pf_fetch {
    struct pf *pf;
    struct pf_name *n;
    char *addr;  /* where to connect now (owned) */
    char *shown; /* http://NAME[:PORT]/.well-known/acme-challenge/TOKEN (owned) */
    char *url;   /* the URL fetched now, after redirects (owned) */
    char *trail; /* "301 URL, 302 URL" of the redirects followed, or NULL (owned) */
    int hops;
};

#define PF_CALLBACK_WAIT_MS 15000

enum pf_phase { PH_DNS, PH_DIRECTORY, PH_CAA, PH_CHALLENGE, PH_CLEANUP, PH_DONE };

struct pf {
    uv_loop_t loop;
    struct config *cfg;
    const struct cfg_cert *cert;
    const char *cname;
    FILE *out, *err;
    struct dns_resolver *res;
    struct http_client *http;
    struct chal_http01 *chal;
    struct dns01_provider *dns01;
    struct notify *notify; /* callback solvers: in memory, no outbox */
    uint64_t cleanup_deadline;
    uv_timer_t poll;
    bool poll_open;
    struct pf_name *names;
    size_t n_names;
    char **ids; /* caaIdentities, owned; NULL-terminated */
    size_t n_ids;
    char *account_url; /* owned: the CA account's URL from the state directory, or NULL */
    bool ids_known;
    enum pf_phase phase;
    int pending;
    bool failed;
    /* http-01 */
    char *token, *keyauth;
    bool webroot_token; /* the probe token is in [http01] webroot: remove it */
    int http_mode;      /* enum pf_http_mode */
    char **keyauths;    /* dns-01: per name, owned */
    char **recnames;    /* dns-01: per name, where the test record goes (owned) */
    /* tls-alpn-01 */
    struct chal_tlsalpn *tls; /* our temporary responder, or NULL (the daemon's) */
    int tls_puts;             /* challenge certificates being built */
};

static void step(struct pf *pf);
static void close_all(struct pf *pf);

/* The account URL of cert's CA as the store holds it (RFC 8657
 * accounturi is compared with it), or NULL when there is none yet; with
 * thumbprint, the account key's JWK thumbprint too (owned, NULL when the
 * key does not load). */
char *pf_account(const struct config *cfg, const struct cfg_cert *cert, char **thumbprint)
{
    char *key = NULL, *acct = NULL, *url = NULL;
    struct store *store = NULL;

    if (thumbprint != NULL)
        *thumbprint = NULL;

    /* beside a running daemon: a read only, no lock */
    if (cert->ca == NULL || store_open_config(NULL, cfg, STORE_FS_SHARED, &store) < 0 ||
        store_account_read(store, cert->ca->name, &key, &acct) < 0 || acct == NULL)
        goto out;
    json_t *j = json_loads(acct, 0, NULL);
    const char *u = json_string_value(json_object_get(j, "url"));
    const char *d = json_string_value(json_object_get(j, "directory"));
    if (u != NULL && d != NULL && strcmp(d, cert->ca->directory) == 0)
        url = xstrdup(u);
    json_decref(j);
    EVP_PKEY *pk = NULL;
    if (url != NULL && thumbprint != NULL && key != NULL &&
        acme_key_from_pem(key, strlen(key), &pk) == 0) {
        *thumbprint = acme_jwk_thumbprint(pk);
        EVP_PKEY_free(pk);
    }
out:
    if (key != NULL)
        OPENSSL_cleanse(key, strlen(key));
    free(key);
    free(acct);
    store_close(store);
    return url;
}

char *pf_account_url(const struct config *cfg, const struct cfg_cert *cert)
{
    return pf_account(cfg, cert, NULL);
}

static void report(struct pf *pf, const char *check, const char *domain, bool pass, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));
static void report(struct pf *pf, const char *check, const char *domain, bool pass, const char *fmt,
                   ...)
{
    va_list ap;

    fprintf(pf->out, "test %s: %-7s %s: ", pf->cname, check, domain);
    va_start(ap, fmt);
    vfprintf(pf->out, fmt, ap);
    va_end(ap);
    fprintf(pf->out, " ... %s\n", pass ? "PASS" : "FAIL");
    fflush(pf->out);
    if (!pass)
        pf->failed = true;
}

static char *random_token(void)
{
    uint8_t b[18];
    size_t got = 0;

    while (got < sizeof(b)) {
        ssize_t r = getrandom(b + got, sizeof(b) - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            abort(); /* no randomness at all: nothing sensible to do */
        }
        got += (size_t)r;
    }
    return b64url_encode(b, sizeof(b));
}

static void done_one(struct pf *pf)
{
    if (--pf->pending == 0)
        step(pf);
}

/* ---- 1: names resolve ---- */

static void on_addr(int status, const struct dns_answer *ans, void *arg)
{
    struct pf_name *n = arg;

    if (status != 0) {
        if (n->dns_err == NULL)
            n->dns_err = xstrdup(err_str(status));
    } else {
        n->answers++;
        for (size_t i = 0; i < ans->n_addrs; i++) {
            n->addrs = xrealloc(n->addrs, (n->n_addrs + 1) * sizeof(*n->addrs));
            n->addrs[n->n_addrs++] = xstrdup(ans->addrs[i]);
        }
        if (ans->rcode != 0 && n->dns_err == NULL)
            n->dns_err = xasprintf("rcode %d%s", ans->rcode, ans->rcode == 3 ? " (NXDOMAIN)" : "");
    }
    done_one(n->pf);
}

static void start_dns(struct pf *pf)
{
    static const enum dns_rrtype types[] = {DNS_T_A, DNS_T_AAAA};

    for (size_t i = 0; i < pf->n_names; i++) {
        if (config_name_is_ip(pf->names[i].base)) {
            /* an ip identifier (RFC 8738): the address is where the CA goes */
            struct pf_name *n = &pf->names[i];
            n->addrs = xrealloc(n->addrs, (n->n_addrs + 1) * sizeof(*n->addrs));
            n->addrs[n->n_addrs++] = xstrdup(n->base);
            continue;
        }
        for (size_t t = 0; t < 2; t++) {
            int rc =
                dns_query_start(pf->res, pf->names[i].base, types[t], on_addr, &pf->names[i], NULL);
            if (rc < 0) {
                if (pf->names[i].dns_err == NULL)
                    pf->names[i].dns_err = xstrdup(err_str(rc));
                continue;
            }
            pf->pending++;
        }
    }
}

static void show_dns(struct pf *pf)
{
    for (size_t i = 0; i < pf->n_names; i++) {
        struct pf_name *n = &pf->names[i];
        if (n->n_addrs == 0) {
            report(pf, "dns", n->domain, false, "%s does not resolve (%s)", n->base,
                   n->dns_err != NULL ? n->dns_err : "no A or AAAA record");
            continue;
        }
        char *list = xstrdup("");
        for (size_t a = 0; a < n->n_addrs; a++) {
            char *l = xasprintf("%s%s%s", list, a > 0 ? ", " : "", n->addrs[a]);
            free(list);
            list = l;
        }
        if (config_name_is_ip(n->base))
            report(pf, "dns", n->base, true, "an IP address (RFC 8738): nothing to resolve");
        else if (n->wild)
            report(pf, "dns", n->domain, true, "base name %s resolves to %s", n->base, list);
        else
            report(pf, "dns", n->base, true, "resolves to %s", list);
        free(list);
    }
}

/* ---- 2: CAA ---- */

static void on_directory(int status, const struct http_response *resp, void *arg)
{
    struct pf *pf = arg;
    const char *dir = pf->cert->ca->directory;

    if (status != 0) {
        report(pf, "caa", dir, false, "cannot fetch the CA directory: %s", resp->error);
    } else if (resp->status != 200) {
        report(pf, "caa", dir, false, "the CA directory answered HTTP %ld", resp->status);
    } else {
        json_error_t je;
        json_t *j = json_loadb(resp->body.data, resp->body.len, 0, &je);
        json_t *ids = json_object_get(json_object_get(j, "meta"), "caaIdentities");
        if (j == NULL || !json_is_object(j)) {
            report(pf, "caa", dir, false, "the CA directory is not a JSON object");
        } else if (json_is_array(ids) && json_array_size(ids) > 0) {
            size_t i;
            json_t *v;
            pf->ids = xcalloc(json_array_size(ids) + 1, sizeof(*pf->ids));
            json_array_foreach(ids, i, v)
            {
                if (json_is_string(v))
                    pf->ids[pf->n_ids++] = xstrdup(json_string_value(v));
            }
            pf->ids_known = pf->n_ids > 0;
        }
        json_decref(j);
    }
    done_one(pf);
}

static void start_directory(struct pf *pf)
{
    struct http_request_opts o = {
        .url = pf->cert->ca->directory,
        .trust_file = pf->cert->ca->trust,
        .timeout_ms = 30000,
        .max_body = 256 * 1024,
    };
    int rc = http_req_start(pf->http, &o, on_directory, pf, NULL);

    if (rc < 0) {
        report(pf, "caa", o.url, false, "cannot fetch the CA directory: %s", err_str(rc));
        return;
    }
    pf->pending++;
}

static void on_caa(int status, const struct dns_answer *ans, void *arg);

/* Queries CAA for n->caa_at; false (and reports) when it cannot start. */
static bool caa_query(struct pf_name *n)
{
    int rc = dns_query_start(n->pf->res, n->caa_at, DNS_T_CAA, on_caa, n, NULL);

    if (rc < 0) {
        report(n->pf, "caa", n->domain, false, "CAA query for %s failed: %s", n->caa_at,
               err_str(rc));
        return false;
    }
    return true;
}

static void on_caa(int status, const struct dns_answer *ans, void *arg)
{
    struct pf_name *n = arg;
    struct pf *pf = n->pf;
    struct pf_caa rrs[PF_CAA_MAX];
    int found;
    const char *dot;

    if (status != 0) {
        report(pf, "caa", n->domain, false, "CAA query for %s failed: %s", n->caa_at,
               err_str(status));
        done_one(pf);
        return;
    }
    if (ans->rcode != 0 && ans->rcode != 3) {
        /* RFC 8659 §3: a lookup failure is not "no CAA" */
        report(pf, "caa", n->domain, false, "CAA query for %s answered rcode %d", n->caa_at,
               ans->rcode);
        done_one(pf);
        return;
    }
    found = pf_caa_from_msg(ans->msg, ans->len, rrs, PF_CAA_MAX);
    if (found < 0) {
        report(pf, "caa", n->domain, false, "malformed CAA answer for %s", n->caa_at);
        done_one(pf);
        return;
    }
    if (found > 0) {
        const char *why = NULL;
        size_t cnt = (size_t)found < PF_CAA_MAX ? (size_t)found : PF_CAA_MAX;
        bool ok = pf_caa_permits_rfc8657(rrs, cnt, n->wild, (const char *const *)pf->ids, pf->n_ids,
                                         pf->account_url,
                                         config_challenge_name(pf->cert->challenge), &why);
        report(pf, "caa", n->domain, ok, "%d CAA record%s at %s: %s", found, found == 1 ? "" : "s",
               n->caa_at, why);
        done_one(pf);
        return;
    }
    dot = strchr(n->caa_at, '.');
    if (dot == NULL || dot[1] == '\0') {
        report(pf, "caa", n->domain, true, "no CAA records (any CA may issue)");
        done_one(pf);
        return;
    }
    n->caa_at = dot + 1;
    if (!caa_query(n))
        done_one(pf);
}

static void start_caa(struct pf *pf)
{
    for (size_t i = 0; i < pf->n_names; i++) {
        struct pf_name *n = &pf->names[i];
        if (!pf->ids_known) {
            report(pf, "caa", n->domain, true, "CA publishes no caaIdentities: CAA not checked");
            continue;
        }
        if (config_name_is_ip(n->base)) {
            report(pf, "caa", n->domain, true, "an IP address: CAA (RFC 8659) does not apply");
            continue;
        }
        n->caa_at = n->base;
        if (caa_query(n))
            pf->pending++;
    }
}

/* ---- 3: http-01 ----
 *
 * A probe token is put where the CA's request will end up (certloop's own
 * listener when the port is free, the webroot when one is set), then
 * fetched as a CA's validator does (RFC 8555 §8.3): http://NAME/.well-
 * known/acme-challenge/TOKEN on [http01] public_port, to every address of
 * the name, following redirects (at most 10, http or https, certificates
 * not checked; with public_port 80 only to ports 80 and 443, as Let's
 * Encrypt does), the body compared after trimming whitespace. With the
 * daemon running and no webroot, its listener cannot take the probe: an
 * unknown token must then come back as certloop's own 404. */

#define PF_MAX_REDIRECTS 10

enum pf_http_mode {
    PF_TOKEN,      /* the probe token is served: expect 200 and the key authorization */
    PF_DAEMON_404, /* the daemon's listener: expect certloop's 404 for an unknown token */
};

static void fetch_free(struct pf_fetch *f)
{
    free(f->addr);
    free(f->shown);
    free(f->url);
    free(f->trail);
    free(f);
}

static void fetch_go(struct pf_fetch *f);

static void fetch_report(struct pf_fetch *f, bool pass, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fetch_report(struct pf_fetch *f, bool pass, const char *fmt, ...)
{
    va_list ap;
    char *what;

    va_start(ap, fmt);
    if (vasprintf(&what, fmt, ap) < 0)
        abort();
    va_end(ap);
    report(f->pf, "http-01", f->n->base, pass, "%s via %s%s%s: %s", f->shown, f->addr,
           f->trail != NULL ? ", redirected: " : "", f->trail != NULL ? f->trail : "", what);
    free(what);
}

/* A body as the CA compares it: surrounding whitespace trimmed. */
static bool body_is(const struct http_response *resp, const char *want)
{
    const char *b = resp->body.data;
    size_t n = resp->body.len;

    while (n > 0 && (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n')) {
        b++;
        n--;
    }
    while (n > 0 && (b[n - 1] == ' ' || b[n - 1] == '\t' || b[n - 1] == '\r' || b[n - 1] == '\n'))
        n--;
    return n == strlen(want) && memcmp(b, want, n) == 0;
}

static void fetch_final(struct pf_fetch *f, const struct http_response *resp)
{
    struct pf *pf = f->pf;

    if (pf->http_mode == PF_TOKEN) {
        if (resp->status == 200 && body_is(resp, pf->keyauth)) {
            fetch_report(f, true, "token served");
            return;
        }
        if (resp->status == 200)
            fetch_report(f, false,
                         "answered HTTP 200 with another body: something else than %s serves "
                         "this path",
                         pf->cfg->http01.webroot != NULL ? "the webroot" : "certloop");
        else if (resp->status == 404 || resp->status == 403)
            fetch_report(f, false,
                         "answered HTTP %ld: the server on port %u does not serve the token; "
                         "have it serve /.well-known/acme-challenge/ from [http01] webroot or "
                         "proxy it to certloop's listener (etc/examples/nginx-acme.conf)",
                         resp->status, pf->cfg->http01.public_port);
        else
            fetch_report(f, false, "answered HTTP %ld, the CA needs 200 and the token",
                         resp->status);
        return;
    }
    /* certloop's listener answers an unknown token with exactly this */
    bool ok = resp->status == 404 && strcmp(resp->body.data, "404 Not Found\n") == 0;
    if (ok)
        fetch_report(f, true, "answered HTTP 404: the running daemon's listener is reachable");
    else
        fetch_report(f, false,
                     "answered HTTP %ld: not certloop's 404 for an unknown token (another "
                     "server on the port? have it proxy /.well-known/acme-challenge/ to "
                     "certloop's listener, etc/examples/nginx-acme.conf)",
                     resp->status);
}

static void on_redirect_addr(int status, const struct dns_answer *ans, void *arg)
{
    struct pf_fetch *f = arg;
    struct pf *pf = f->pf;

    if (status != 0 || ans->n_addrs == 0) {
        fetch_report(f, false, "the redirect's host does not resolve (%s)",
                     status != 0 ? err_str(status) : "no A record");
        fetch_free(f);
    } else {
        free(f->addr);
        f->addr = xstrdup(ans->addrs[0]);
        fetch_go(f);
    }
    done_one(pf);
}

/* Follows a 3xx's Location as a validator does. Returns true when the
 * fetch goes on (f is kept), false when it ended (f reported). */
static bool fetch_redirect(struct pf_fetch *f, const struct http_response *resp)
{
    struct pf *pf = f->pf;
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *old_host = NULL, *next = NULL;
    bool going = false;

    if (u == NULL || curl_url_set(u, CURLUPART_URL, f->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &old_host, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_URL, resp->location, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &next, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        fetch_report(f, false, "answered HTTP %ld with an unusable Location '%s'", resp->status,
                     resp->location);
        goto out;
    }
    char *t = xasprintf("%s%s%ld %s", f->trail != NULL ? f->trail : "",
                        f->trail != NULL ? ", " : "", resp->status, next);
    free(f->trail);
    f->trail = t;
    if (++f->hops > PF_MAX_REDIRECTS) {
        fetch_report(f, false, "more than %d redirects: the CA gives up", PF_MAX_REDIRECTS);
        goto out;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        fetch_report(f, false, "a redirect to %s: the CA follows only http and https", scheme);
        goto out;
    }
    if (pf->cfg->http01.public_port == 80 && strcmp(port, "80") != 0 && strcmp(port, "443") != 0) {
        fetch_report(f, false, "a redirect to port %s: the CA follows only ports 80 and 443", port);
        goto out;
    }
    free(f->url);
    f->url = xstrdup(next);
    if (strcasecmp(host, old_host) == 0) {
        fetch_go(f);
        going = true;
        goto out;
    }
    /* another host: resolve it as the CA would (IPv4 first; IP literals as they are) */
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    const char *h = host;
    char bare[64];
    if (h[0] == '[' && strlen(h) < sizeof(bare) + 2) {
        snprintf(bare, sizeof(bare), "%.*s", (int)strlen(h) - 2, h + 1);
        h = bare;
    }
    if (uv_ip4_addr(h, 80, &a4) == 0 || uv_ip6_addr(h, 80, &a6) == 0) {
        free(f->addr);
        f->addr = xstrdup(h);
        fetch_go(f);
        going = true;
        goto out;
    }
    if (dns_query_start(pf->res, host, DNS_T_A, on_redirect_addr, f, NULL) < 0) {
        fetch_report(f, false, "cannot resolve the redirect's host %s", host);
        goto out;
    }
    pf->pending++;
    going = true;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(old_host);
    curl_free(next);
    curl_url_cleanup(u);
    return going;
}

static void on_fetch(int status, const struct http_response *resp, void *arg)
{
    struct pf_fetch *f = arg;
    struct pf *pf = f->pf;

    if (status != 0) {
        fetch_report(f, false, "%s%s", resp->error,
                     status == ERR_HTTP ? " (no answer: nothing listens there or it is blocked)"
                                        : "");
    } else if (resp->status >= 300 && resp->status < 400 && resp->location != NULL) {
        if (fetch_redirect(f, resp)) {
            done_one(pf);
            return;
        }
    } else {
        fetch_final(f, resp);
    }
    fetch_free(f);
    done_one(pf);
}

/* Fetches f->url, connecting to f->addr (the name as Host and SNI). */
static void fetch_go(struct pf_fetch *f)
{
    struct pf *pf = f->pf;
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *ct = NULL;
    int rc = -EINVAL;

    if (u != NULL && curl_url_set(u, CURLUPART_URL, f->url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        bool v6 = strchr(f->addr, ':') != NULL;
        ct = xasprintf("%s:%s:%s%s%s:%s", host, port, v6 ? "[" : "", f->addr, v6 ? "]" : "", port);
        struct http_request_opts o = {
            .url = f->url,
            .connect_to = ct,
            .insecure = true,
            .max_body = 4096,
            .timeout_ms = HTTP_FETCH_TIMEOUT_MS,
        };
        rc = http_req_start(pf->http, &o, on_fetch, f, NULL);
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    free(ct);
    if (rc < 0) {
        fetch_report(f, false, "%s", err_str(rc));
        fetch_free(f);
        return;
    }
    pf->pending++;
}

static void start_fetch(struct pf *pf, struct pf_name *n, const char *addr)
{
    struct pf_fetch *f = xcalloc(1, sizeof(*f));
    unsigned port = pf->cfg->http01.public_port;
    char *host = port == 80 ? xstrdup(n->base) : xasprintf("%s:%u", n->base, port);

    f->pf = pf;
    f->n = n;
    f->addr = xstrdup(addr);
    f->url = xasprintf("http://%s/.well-known/acme-challenge/%s", host, pf->token);
    f->shown = xstrdup(f->url);
    free(host);
    fetch_go(f);
}

static void start_http01(struct pf *pf)
{
    const struct cfg_http01 *h = &pf->cfg->http01;
    const struct cfg_strv *l = &h->listen;
    bool served = false;
    int rc;

    pf->token = random_token();
    pf->keyauth = xasprintf("%s.certloop-preflight", pf->token);
    if (h->webroot != NULL) {
        rc = chal_webroot_put(h->webroot, h->webroot_uid, h->webroot_gid, pf->token, pf->keyauth);
        if (rc < 0) {
            report(pf, "http-01", pf->cname, false, "cannot write the probe token under %s: %s",
                   h->webroot, err_str(rc));
            return;
        }
        pf->webroot_token = true;
        served = true;
        char *path = chal_webroot_path(h->webroot, pf->token);
        fprintf(pf->out, "test %s: http-01 probe token written to %s\n", pf->cname, path);
        free(path);
    }
    if (l->n > 0) {
        rc = chal_http01_open(&pf->loop, (const char *const *)l->v, l->n, &pf->chal);
        if (rc == 0 && pf->chal != NULL) {
            rc = chal_http01_put(pf->chal, pf->token, pf->keyauth);
            if (rc < 0) {
                report(pf, "http-01", pf->cname, false, "cannot put the test token: %s",
                       err_str(rc));
                return;
            }
            served = true;
            fprintf(pf->out,
                    "test %s: http-01 temporary listener on %s%s (the daemon is not running)\n",
                    pf->cname, l->v[0], l->n > 1 ? " and more" : "");
        } else if (rc == UV_EADDRINUSE) {
            pf->chal = NULL;
            if (!served)
                fprintf(pf->out,
                        "test %s: http-01 %s is in use (the daemon is running?): fetching an "
                        "unknown token, which its listener answers with its own 404\n",
                        pf->cname, l->v[0]);
        } else {
            pf->chal = NULL;
            report(pf, "http-01", pf->cname, false, "cannot listen on %s: %s", l->v[0],
                   err_str(rc));
            return;
        }
    } else if (!served) {
        report(pf, "http-01", pf->cname, false,
               "[http01] listen is [] and no webroot is set: nothing answers the CA");
        return;
    }
    pf->http_mode = served ? PF_TOKEN : PF_DAEMON_404;
    if (h->public_port != 80)
        fprintf(pf->out,
                "test %s: http-01 note: fetching port %u as [http01] public_port says; public "
                "CAs connect to port 80\n",
                pf->cname, h->public_port);
    for (size_t i = 0; i < pf->n_names; i++) {
        struct pf_name *n = &pf->names[i];
        if (n->n_addrs == 0) {
            report(pf, "http-01", n->base, false, "no address to fetch from");
            continue;
        }
        for (size_t a = 0; a < n->n_addrs; a++)
            start_fetch(pf, n, n->addrs[a]);
    }
}

/* ---- 4: tls-alpn-01 ----
 *
 * A probe key authorization is served for every name (not wildcards,
 * which tls-alpn-01 cannot validate) by a temporary responder on
 * [tlsalpn01] listen, then each address of each name is connected to on
 * [tlsalpn01] public_port as a CA does (RFC 8737 §3): ALPN acme-tls/1, the
 * name (or its reverse name, RFC 8738 §6) as SNI, the certificate's
 * acmeIdentifier compared with the probe's. With the daemon running its
 * responder holds the port and has no challenge for the probe: the name
 * must then come back refused with unrecognized_name, as certloop's
 * responder refuses a name without a live challenge. The handshakes block,
 * so they run on the threadpool. */

#define PF_TLS_TIMEOUT_S 10

struct pf_tls {
    uv_work_t w;
    struct pf *pf;
    struct pf_name *n;
    char *addr;
    bool daemon; /* the daemon's responder: expect unrecognized_name */
    int rc;
    char *detail;
};

static void tls_probe_work(uv_work_t *w)
{
    struct pf_tls *t = w->data;

    t->rc = chal_tlsalpn_probe(t->addr, t->pf->cfg->tlsalpn01.public_port, t->n->base,
                               t->pf->keyauth, PF_TLS_TIMEOUT_S, &t->detail);
}

static void tls_probe_done(uv_work_t *w, int status)
{
    struct pf_tls *t = w->data;
    struct pf *pf = t->pf;

    (void)status;
    if (t->daemon && t->rc == -ENOENT)
        report(pf, "tls-alpn-01", t->n->base, true,
               "%s (certloop's responder, refusing a name without a live challenge: the "
               "daemon's)",
               t->detail);
    else if (t->daemon && t->rc == 0)
        report(pf, "tls-alpn-01", t->n->base, false,
               "%s, but the daemon's responder cannot hold the probe", t->detail);
    else
        report(pf, "tls-alpn-01", t->n->base, t->rc == 0, "%s", t->detail);
    free(t->detail);
    free(t->addr);
    free(t);
    done_one(pf);
}

static void tls_probes_start(struct pf *pf, bool daemon)
{
    if (pf->cfg->tlsalpn01.public_port != 443)
        fprintf(pf->out,
                "test %s: tls-alpn-01 note: connecting to port %u as [tlsalpn01] public_port "
                "says; public CAs connect to port 443\n",
                pf->cname, pf->cfg->tlsalpn01.public_port);
    for (size_t i = 0; i < pf->n_names; i++) {
        struct pf_name *n = &pf->names[i];
        if (n->wild)
            continue;
        if (n->n_addrs == 0) {
            report(pf, "tls-alpn-01", n->base, false, "no address to connect to");
            continue;
        }
        for (size_t a = 0; a < n->n_addrs; a++) {
            struct pf_tls *t = xcalloc(1, sizeof(*t));
            t->pf = pf;
            t->n = n;
            t->addr = xstrdup(n->addrs[a]);
            t->daemon = daemon;
            t->w.data = t;
            if (uv_queue_work(&pf->loop, &t->w, tls_probe_work, tls_probe_done) != 0) {
                report(pf, "tls-alpn-01", n->base, false, "cannot start the handshake");
                free(t->addr);
                free(t);
                continue;
            }
            pf->pending++;
        }
    }
}

static void tls_put_done(int status, void *arg)
{
    struct pf *pf = arg;

    if (status != 0)
        report(pf, "tls-alpn-01", pf->cname, false, "cannot build the probe certificate: %s",
               err_str(status));
    if (--pf->tls_puts == 0)
        tls_probes_start(pf, false);
    done_one(pf);
}

static void start_tlsalpn01(struct pf *pf)
{
    const struct cfg_strv *l = &pf->cfg->tlsalpn01.listen;
    int rc;

    if (l->n == 0) {
        report(pf, "tls-alpn-01", pf->cname, false,
               "[tlsalpn01] listen is []: nothing answers the CA");
        return;
    }
    pf->token = random_token();
    pf->keyauth = xasprintf("%s.certloop-preflight", pf->token);
    rc = chal_tlsalpn_open(&pf->loop, (const char *const *)l->v, l->n, &pf->tls);
    if (rc == UV_EADDRINUSE) {
        pf->tls = NULL;
        fprintf(pf->out,
                "test %s: tls-alpn-01 %s is in use (the daemon is running?): its responder "
                "must refuse the probe's names (it has no challenge for them)\n",
                pf->cname, l->v[0]);
        tls_probes_start(pf, true);
        return;
    }
    if (rc != 0 || pf->tls == NULL) {
        pf->tls = NULL;
        report(pf, "tls-alpn-01", pf->cname, false, "cannot listen on %s: %s", l->v[0],
               err_str(rc));
        return;
    }
    fprintf(pf->out,
            "test %s: tls-alpn-01 temporary responder on %s%s (the daemon is not running)\n",
            pf->cname, l->v[0], l->n > 1 ? " and more" : "");
    for (size_t i = 0; i < pf->n_names; i++) {
        if (pf->names[i].wild) {
            report(pf, "tls-alpn-01", pf->names[i].domain, false,
                   "tls-alpn-01 cannot validate a wildcard (RFC 8737 section 3)");
            continue;
        }
        pf->tls_puts++;
        pf->pending++;
        rc =
            chal_tlsalpn_put_start(pf->tls, pf->names[i].base, pf->keyauth, tls_put_done, pf, NULL);
        if (rc < 0) {
            pf->tls_puts--;
            pf->pending--;
            report(pf, "tls-alpn-01", pf->names[i].base, false, "cannot serve the probe: %s",
                   err_str(rc));
        }
    }
}

/* ---- 5: dns-01 ---- */

struct pf_pres {
    struct pf *pf;
    size_t i;
};

static void on_present(int status, const char *detail, void *arg)
{
    struct pf_pres *p = arg;
    struct pf *pf = p->pf;
    struct pf_name *n = &pf->names[p->i];

    char *rn = chal_dns01_record_name(pf->recnames[p->i]);

    if (status == 0)
        report(pf, "dns-01", n->domain, true, "test record at %s: %s", rn,
               detail != NULL ? detail : "served by every authoritative server");
    else
        report(pf, "dns-01", n->domain, false, "test record at %s: %s (%s)", rn,
               detail != NULL ? detail : "failed", err_str(status));
    free(rn);
    dns01_provider_cleanup(pf->dns01, pf->cfg, pf->cert, pf->recnames[p->i], pf->keyauths[p->i]);
    free(p);
    done_one(pf);
}

static void start_dns01(struct pf *pf)
{
    int rc = dns01_provider_open(&pf->loop, pf->cfg, &pf->dns01);

    if (rc < 0) {
        report(pf, "dns-01", pf->cname, false, "cannot open the dns-01 solver: %s", err_str(rc));
        pf->dns01 = NULL;
        return;
    }
    if (pf->cert->dns != NULL && pf->cert->dns->type == CFG_DNS_CALLBACK) {
        /* no outbox: a pre-flight must not leave deliveries in the state */
        rc = notify_open(&pf->loop, pf->http, NULL, pf->cfg, NULL, &pf->notify);
        if (rc < 0) {
            report(pf, "dns-01", pf->cname, false, "cannot send callback requests: %s",
                   err_str(rc));
            pf->notify = NULL;
        }
        dns01_provider_set_notify(pf->dns01, pf->notify);
    }
    /* dns-account-01 (draft-ietf-acme-dns-account-label-03 §3.1): the
     * records go to _LABEL._acme-challenge.NAME, the label from the account
     * URL; without an account yet dns-01's name is tried instead */
    char *label = NULL;
    if (pf->cert->challenge == CFG_CHAL_DNSACCOUNT01) {
        label = pf->account_url != NULL ? acme_dns_account_label(pf->account_url) : NULL;
        if (label != NULL)
            fprintf(pf->out,
                    "test %s: dns-account-01 label of ca=%s's account (%s): %s, test records at "
                    "%s._acme-challenge.NAME\n",
                    pf->cname, pf->cert->ca->name, pf->account_url, label, label);
        else
            fprintf(pf->out,
                    "test %s: dns-account-01: no account for ca=%s in the state directory yet "
                    "(the first order registers it): its label is unknown, test records at "
                    "_acme-challenge.NAME instead\n",
                    pf->cname, pf->cert->ca->name);
    }
    pf->keyauths = xcalloc(pf->n_names, sizeof(*pf->keyauths));
    pf->recnames = xcalloc(pf->n_names, sizeof(*pf->recnames));
    for (size_t i = 0; i < pf->n_names; i++) {
        struct pf_pres *p = xcalloc(1, sizeof(*p));
        char *tok = random_token();
        p->pf = pf;
        p->i = i;
        pf->keyauths[i] = xasprintf("%s.certloop-preflight", tok);
        free(tok);
        pf->recnames[i] = label != NULL
                              ? xasprintf("%s._acme-challenge.%s", label, pf->names[i].base)
                              : xstrdup(pf->names[i].domain);
        rc = dns01_provider_present_start(pf->dns01, pf->cfg, pf->cert, pf->recnames[i],
                                          pf->keyauths[i], on_present, p, NULL);
        if (rc < 0) {
            report(pf, "dns-01", pf->names[i].domain, false, "cannot present a test record: %s",
                   err_str(rc));
            dns01_provider_cleanup(pf->dns01, pf->cfg, pf->cert, pf->recnames[i], pf->keyauths[i]);
            free(p);
            continue;
        }
        pf->pending++;
    }
    free(label);
}

static void on_poll(uv_timer_t *t)
{
    struct pf *pf = t->data;

    if (pf->dns01 != NULL && dns01_provider_inflight(pf->dns01) > 0)
        return;
    if (pf->notify != NULL) {
        /* the callback solver's removal requests, for a while */
        struct notify_stats st;
        notify_stats_get(pf->notify, &st);
        if (pf->cleanup_deadline == 0)
            pf->cleanup_deadline = uv_now(&pf->loop) + PF_CALLBACK_WAIT_MS;
        if (st.pending > 0 && uv_now(&pf->loop) < pf->cleanup_deadline)
            return;
        if (st.pending > 0)
            fprintf(pf->out, "test %s: dns-01 removal requests not delivered: see the log\n",
                    pf->cname);
    }
    uv_timer_stop(t);
    if (pf->dns01 != NULL)
        fprintf(pf->out, "test %s: dns-01 test records removed (cleanup finished)\n", pf->cname);
    pf->phase = PH_DONE;
    close_all(pf);
}

/* ---- sequencing ---- */

static void close_all(struct pf *pf)
{
    if (pf->chal != NULL)
        chal_http01_close(pf->chal, NULL, NULL);
    pf->chal = NULL;
    if (pf->tls != NULL)
        chal_tlsalpn_close(pf->tls, NULL, NULL);
    pf->tls = NULL;
    dns01_provider_set_notify(pf->dns01, NULL);
    if (pf->notify != NULL)
        notify_close(pf->notify, NULL, NULL);
    pf->notify = NULL;
    if (pf->dns01 != NULL)
        dns01_provider_close(pf->dns01);
    pf->dns01 = NULL;
    if (pf->res != NULL)
        dns_resolver_close(pf->res);
    pf->res = NULL;
    if (pf->http != NULL)
        http_client_close(pf->http);
    pf->http = NULL;
    if (pf->poll_open)
        uv_close((uv_handle_t *)&pf->poll, NULL);
    pf->poll_open = false;
}

static void on_finish(uv_timer_t *t)
{
    close_all(t->data);
}

/* Advances through the phases while nothing is pending. */
static void step(struct pf *pf)
{
    while (pf->pending == 0) {
        switch (pf->phase) {
        case PH_DNS:
            start_dns(pf);
            pf->phase = PH_DIRECTORY;
            break;
        case PH_DIRECTORY:
            show_dns(pf);
            start_directory(pf);
            pf->phase = PH_CAA;
            break;
        case PH_CAA:
            start_caa(pf);
            pf->phase = PH_CHALLENGE;
            break;
        case PH_CHALLENGE:
            if (CFG_CHAL_IS_DNS(pf->cert->challenge))
                start_dns01(pf);
            else if (pf->cert->challenge == CFG_CHAL_TLSALPN01)
                start_tlsalpn01(pf);
            else
                start_http01(pf);
            pf->phase = PH_CLEANUP;
            break;
        case PH_CLEANUP:
            if (pf->chal != NULL) {
                chal_http01_close(pf->chal, NULL, NULL);
                pf->chal = NULL;
            }
            if (pf->tls != NULL) {
                chal_tlsalpn_close(pf->tls, NULL, NULL);
                pf->tls = NULL;
            }
            if (pf->webroot_token) {
                chal_webroot_del(pf->cfg->http01.webroot, pf->token);
                pf->webroot_token = false;
            }
            pf->phase = PH_DONE;
            if (pf->dns01 != NULL) {
                /* wait for the cleanups (they run in the background) */
                pf->pending = 1;
                uv_timer_start(&pf->poll, on_poll, 0, 100);
                return;
            }
            break;
        case PH_DONE:
            /* close from a fresh loop turn, not from inside a client's callback */
            pf->pending = 1;
            uv_timer_start(&pf->poll, on_finish, 0, 0);
            return;
        }
    }
}

static char *join_resolvers(const struct cfg_strv *r)
{
    char *s = NULL;

    for (size_t i = 0; i < r->n; i++) {
        char *t = xasprintf("%s%s%s", s != NULL ? s : "", s != NULL ? "," : "", r->v[i]);
        free(s);
        s = t;
    }
    return s;
}

int preflight_run(struct config *cfg, const char *name, FILE *out, FILE *err)
{
    const struct cfg_cert *cert = config_cert_find(cfg, name);
    struct pf pf = {0};
    struct dns_resolver_opts ro = {0};
    char *servers;
    int rc;

    if (cert == NULL) {
        fprintf(err, "certloop: test: no certificate named '%s' in the configuration\n", name);
        return 64;
    }
    if (cert->ca == NULL) {
        fprintf(out, "test %s: an imported certificate without a CA: nothing to order, no checks\n",
                name);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN); /* chal_http01 requires it */
    pf.cfg = config_ref(cfg);
    pf.cert = cert;
    pf.cname = cert->name != NULL ? cert->name : name;
    pf.account_url = pf_account_url(cfg, cert);
    pf.out = out;
    pf.err = err;
    if (uv_loop_init(&pf.loop) != 0) {
        fprintf(err, "certloop: test: cannot create an event loop\n");
        config_unref(pf.cfg);
        return 1;
    }
    uv_timer_init(&pf.loop, &pf.poll);
    pf.poll.data = &pf;
    pf.poll_open = true;
    servers = join_resolvers(&cfg->daemon.resolvers);
    ro.servers = servers;
    rc = dns_resolver_open(&pf.loop, &ro, &pf.res);
    free(servers);
    if (rc == 0)
        rc = http_client_open(&pf.loop, &pf.http);
    if (rc != 0) {
        fprintf(err, "certloop: test: cannot start the resolver or the HTTP client: %s\n",
                err_str(rc));
        pf.failed = true;
        close_all(&pf);
    } else {
        pf.n_names = cert->domains.n;
        pf.names = xcalloc(pf.n_names ? pf.n_names : 1, sizeof(*pf.names));
        for (size_t i = 0; i < pf.n_names; i++) {
            struct pf_name *n = &pf.names[i];
            n->pf = &pf;
            n->domain = cert->domains.v[i];
            n->wild = strncmp(n->domain, "*.", 2) == 0;
            n->base = n->wild ? n->domain + 2 : n->domain;
        }
        pf.phase = PH_DNS;
        step(&pf);
    }
    uv_run(&pf.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&pf.loop) != 0)
        log_warn(LOG_MAIN, "test: event loop closed with handles still open");
    for (size_t i = 0; i < pf.n_names; i++) {
        for (size_t a = 0; a < pf.names[i].n_addrs; a++)
            free(pf.names[i].addrs[a]);
        free(pf.names[i].addrs);
        free(pf.names[i].dns_err);
        if (pf.keyauths != NULL)
            free(pf.keyauths[i]);
        if (pf.recnames != NULL)
            free(pf.recnames[i]);
    }
    free(pf.keyauths);
    free(pf.recnames);
    free(pf.names);
    for (size_t i = 0; i < pf.n_ids; i++)
        free(pf.ids[i]);
    free(pf.ids);
    free(pf.account_url);
    free(pf.token);
    free(pf.keyauth);
    config_unref(pf.cfg);
    return pf.failed ? 1 : 0;
}
