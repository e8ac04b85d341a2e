/* `certloop test NAME`, dns-01: a test record presented for every name
 * through the configured solver and checked, removed afterwards;
 * dns-persist-01: the persistent records looked for on every authoritative
 * server. The run around it is preflight.c's. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <time.h>
#include <uv.h>

#include "acme/acme.h"
#include "challenge/challenge.h"
#include "config/config.h"
#include "net/net.h"
#include "reactor/preflight.h"
#include "reactor/preflight_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "deploy/deploy.h"
#include "reactor/dns01_provider.h"

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
        pf_report(pf, "dns-01", n->domain, true, "test record at %s: %s", rn,
                  detail != NULL ? detail : "served by every authoritative server");
    else
        pf_report(pf, "dns-01", n->domain, false, "test record at %s: %s (%s)", rn,
                  detail != NULL ? detail : "failed", err_str(status));
    free(rn);
    dns01_provider_cleanup(pf->dns01, pf->cfg, pf->cert, pf->recnames[p->i], pf->keyauths[p->i]);
    free(p);
    pf_done_one(pf);
}

/* ---- dns-persist-01 (draft-ietf-acme-dns-persist-02) ----
 *
 * The records an order will look for (the directory's first issuer domain
 * name, the hashed account URI, policy=wildcard for a wildcard,
 * persistUntil) must already be served by every authoritative server;
 * nothing is written. */

struct pf_persist {
    struct pf *pf;
    const char *domain; /* borrowed from the configuration */
    char *name, *value;
};

static void on_persist(int status, const char *detail, void *arg)
{
    struct pf_persist *p = arg;

    if (status == 0)
        pf_report(p->pf, "dns-persist-01", p->domain, true, "%s \"%s\": %s", p->name, p->value,
                  detail != NULL ? detail : "served by every authoritative server");
    else
        pf_report(p->pf, "dns-persist-01", p->domain, false,
                  "%s \"%s\": %s (certloop persist-record %s --publish puts it there)", p->name,
                  p->value, detail != NULL ? detail : err_str(status), p->pf->cname);
    struct pf *pf = p->pf;
    free(p->name);
    free(p->value);
    free(p);
    pf_done_one(pf);
}

static void start_persist(struct pf *pf)
{
    const struct cfg_cert *cc = pf->cert;
    const json_t *meta = pf->dir_meta;
    const json_t *ids = json_object_get(meta, "issuerDomainNames");
    const char *issuer = json_string_value(json_array_get(ids, 0));
    const char *prefix = json_string_value(json_object_get(meta, "accountHashPrefix"));

    if (cc->persist_until > 0) {
        char when[32];
        time_t t = (time_t)cc->persist_until;
        struct tm tm;
        if (gmtime_r(&t, &tm) == NULL ||
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
            snprintf(when, sizeof(when), "%lld", (long long)cc->persist_until);
        int64_t left = cc->persist_until - (int64_t)time(NULL);
        pf_report(pf, "dns-persist-01", pf->cname, left > 0,
                  left > 0 ? "persist_until %s: the CA accepts the records for %lld more days"
                           : "persist_until %s has passed: the CA refuses the records; set a later "
                             "one and publish them again",
                  when, (long long)(left > 0 ? left / 86400 : 0));
    }
    if (issuer == NULL || prefix == NULL) {
        pf_report(pf, "dns-persist-01", pf->cname, false,
                  "the CA's directory has no issuerDomainNames and accountHashPrefix "
                  "(draft-ietf-acme-dns-persist-02 sections 3.2 and 4.1): the records cannot "
                  "be computed");
        return;
    }
    if (pf->account_url == NULL || pf->thumbprint == NULL) {
        pf_report(pf, "dns-persist-01", pf->cname, false,
                  "no account for ca=%s in the state directory yet: the records name it (the "
                  "first order registers it and fails naming them; then certloop "
                  "persist-record %s --publish)",
                  cc->ca->name, pf->cname);
        return;
    }
    for (size_t i = 0; i < pf->n_names; i++) {
        struct pf_name *n = &pf->names[i];
        char *auri = acme_dns_persist_account_uri(prefix, n->base, pf->thumbprint, pf->account_url);
        if (auri == NULL)
            continue;
        struct pf_persist *p = xcalloc(1, sizeof(*p));
        p->pf = pf;
        p->domain = n->domain;
        p->name = xasprintf("_validation-persist.%s", n->base);
        p->value = acme_dns_persist_value(issuer, auri, n->wild, cc->persist_until);
        free(auri);
        int rc = dns01_provider_record_start(pf->dns01, pf->cfg, cc, p->name, p->value, false,
                                             on_persist, p, NULL);
        if (rc < 0) {
            pf_report(pf, "dns-persist-01", n->domain, false, "cannot look for %s: %s", p->name,
                      err_str(rc));
            free(p->name);
            free(p->value);
            free(p);
            continue;
        }
        pf->pending++;
    }
}

void pf_start_dns01(struct pf *pf)
{
    int rc = dns01_provider_open(&pf->loop, pf->cfg, &pf->dns01);

    if (rc < 0) {
        pf_report(pf, "dns-01", pf->cname, false, "cannot open the dns-01 solver: %s", err_str(rc));
        pf->dns01 = NULL;
        return;
    }
    if (pf->cert->dns != NULL && pf->cert->dns->type == CFG_DNS_CALLBACK) {
        /* no outbox: a pre-flight must not leave deliveries in the state */
        rc = notify_open(&pf->loop, pf->http, NULL, pf->cfg, NULL, &pf->notify);
        if (rc < 0) {
            pf_report(pf, "dns-01", pf->cname, false, "cannot send callback requests: %s",
                      err_str(rc));
            pf->notify = NULL;
        }
        dns01_provider_set_notify(pf->dns01, pf->notify);
    }
    if (pf->cert->challenge == CFG_CHAL_DNSPERSIST01) {
        start_persist(pf);
        return;
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
        char *tok = pf_random_token();
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
            pf_report(pf, "dns-01", pf->names[i].domain, false, "cannot present a test record: %s",
                      err_str(rc));
            dns01_provider_cleanup(pf->dns01, pf->cfg, pf->cert, pf->recnames[i], pf->keyauths[i]);
            free(p);
            continue;
        }
        pf->pending++;
    }
    free(label);
}
