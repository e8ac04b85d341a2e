/* `certloop test NAME`: see preflight.h. The checks run one phase after
 * another on a private loop: resolve every name, read the CA's
 * caaIdentities and climb the CAA tree, then exercise the configured
 * challenge (a temporary http-01 listener, or the running daemon's, fetched
 * through the resolved addresses; or a dns-01 test record through the
 * configured solver, removed afterwards). This file runs the phases (names,
 * CAA, the sequencing); each challenge's probe is in preflight_http01.c,
 * preflight_tlsalpn01.c and preflight_dns01.c (sharing
 * preflight_internal.h), the pure CAA helpers in preflight_caa.c. */
#include "reactor/preflight.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

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
#include "reactor/preflight_internal.h"
#include "store/store.h"
#include "util/b64.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"
/* ---- the run ---- */

#define PF_CAA_MAX 32

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

void pf_report(struct pf *pf, const char *check, const char *domain, bool pass, const char *fmt,
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

char *pf_random_token(void)
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

void pf_done_one(struct pf *pf)
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
    pf_done_one(n->pf);
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
            pf_report(pf, "dns", n->domain, false, "%s does not resolve (%s)", n->base,
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
            pf_report(pf, "dns", n->base, true, "an IP address (RFC 8738): nothing to resolve");
        else if (n->wild)
            pf_report(pf, "dns", n->domain, true, "base name %s resolves to %s", n->base, list);
        else
            pf_report(pf, "dns", n->base, true, "resolves to %s", list);
        free(list);
    }
}

/* ---- 2: CAA ---- */

/* [ca.NAME] profile against the directory's meta.profiles (draft-ietf-
 * acme-profiles-00 §3), as the daemon decides at its first contact. */
static void check_profile(struct pf *pf, const json_t *dir)
{
    const struct cfg_ca *ca = pf->cert->ca;
    const char *use = NULL;
    char *why = NULL;

    if (ca->profile == NULL)
        return;
    int rc = acme_profile_choose(dir, ca->profile, ca->profile_fallback, &use, &why);
    if (rc < 0)
        pf_report(pf, "profile", ca->name, false, "[ca.%s] %s", ca->name, why);
    else if (why != NULL)
        pf_report(pf, "profile", ca->name, true, "[ca.%s] %s", ca->name, why);
    else
        pf_report(pf, "profile", ca->name, true, "\"%s\" is offered by the CA", use);
    free(why);
}

static void on_directory(int status, const struct http_response *resp, void *arg)
{
    struct pf *pf = arg;
    const char *dir = pf->cert->ca->directory;

    if (status != 0) {
        pf_report(pf, "caa", dir, false, "cannot fetch the CA directory: %s", resp->error);
    } else if (resp->status != 200) {
        pf_report(pf, "caa", dir, false, "the CA directory answered HTTP %ld", resp->status);
    } else {
        json_error_t je;
        json_t *j = json_loadb(resp->body.data, resp->body.len, 0, &je);
        json_t *ids = json_object_get(json_object_get(j, "meta"), "caaIdentities");
        if (j == NULL || !json_is_object(j)) {
            pf_report(pf, "caa", dir, false, "the CA directory is not a JSON object");
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
        if (j != NULL && json_is_object(j))
            check_profile(pf, j);
        json_t *meta = json_object_get(j, "meta");
        if (json_is_object(meta))
            pf->dir_meta = json_incref(meta);
        json_decref(j);
    }
    pf_done_one(pf);
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
        pf_report(pf, "caa", o.url, false, "cannot fetch the CA directory: %s", err_str(rc));
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
        pf_report(n->pf, "caa", n->domain, false, "CAA query for %s failed: %s", n->caa_at,
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
        pf_report(pf, "caa", n->domain, false, "CAA query for %s failed: %s", n->caa_at,
                  err_str(status));
        pf_done_one(pf);
        return;
    }
    if (ans->rcode != 0 && ans->rcode != 3) {
        /* RFC 8659 §3: a lookup failure is not "no CAA" */
        pf_report(pf, "caa", n->domain, false, "CAA query for %s answered rcode %d", n->caa_at,
                  ans->rcode);
        pf_done_one(pf);
        return;
    }
    found = pf_caa_from_msg(ans->msg, ans->len, rrs, PF_CAA_MAX);
    if (found < 0) {
        pf_report(pf, "caa", n->domain, false, "malformed CAA answer for %s", n->caa_at);
        pf_done_one(pf);
        return;
    }
    if (found > 0) {
        const char *why = NULL;
        size_t cnt = (size_t)found < PF_CAA_MAX ? (size_t)found : PF_CAA_MAX;
        bool ok = pf_caa_permits_rfc8657(rrs, cnt, n->wild, (const char *const *)pf->ids, pf->n_ids,
                                         pf->account_url,
                                         config_challenge_name(pf->cert->challenge), &why);
        pf_report(pf, "caa", n->domain, ok, "%d CAA record%s at %s: %s", found,
                  found == 1 ? "" : "s", n->caa_at, why);
        pf_done_one(pf);
        return;
    }
    dot = strchr(n->caa_at, '.');
    if (dot == NULL || dot[1] == '\0') {
        pf_report(pf, "caa", n->domain, true, "no CAA records (any CA may issue)");
        pf_done_one(pf);
        return;
    }
    n->caa_at = dot + 1;
    if (!caa_query(n))
        pf_done_one(pf);
}

static void start_caa(struct pf *pf)
{
    for (size_t i = 0; i < pf->n_names; i++) {
        struct pf_name *n = &pf->names[i];
        if (!pf->ids_known) {
            pf_report(pf, "caa", n->domain, true, "CA publishes no caaIdentities: CAA not checked");
            continue;
        }
        if (config_name_is_ip(n->base)) {
            pf_report(pf, "caa", n->domain, true, "an IP address: CAA (RFC 8659) does not apply");
            continue;
        }
        n->caa_at = n->base;
        if (caa_query(n))
            pf->pending++;
    }
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
                pf_start_dns01(pf);
            else if (pf->cert->challenge == CFG_CHAL_TLSALPN01)
                pf_start_tlsalpn01(pf);
            else
                pf_start_http01(pf);
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
    if (cert->hub != NULL) {
        fprintf(out, "test %s: pulled from hub.%s: nothing to order here, no checks\n", name,
                cert->hub->name);
        return 0;
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
    pf.account_url = pf_account(cfg, cert, &pf.thumbprint);
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
    free(pf.thumbprint);
    json_decref(pf.dir_meta);
    free(pf.token);
    free(pf.keyauth);
    config_unref(pf.cfg);
    return pf.failed ? 1 : 0;
}
