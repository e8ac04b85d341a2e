/* `certloop test NAME`, tls-alpn-01: a probe challenge certificate served
 * and every address of every name connected to as a CA does. The run
 * around it is preflight.c's. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "challenge/challenge.h"
#include "config/config.h"
#include "net/net.h"
#include "reactor/preflight.h"
#include "reactor/preflight_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

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
        pf_report(pf, "tls-alpn-01", t->n->base, true,
                  "%s (certloop's responder, refusing a name without a live challenge: the "
                  "daemon's)",
                  t->detail);
    else if (t->daemon && t->rc == 0)
        pf_report(pf, "tls-alpn-01", t->n->base, false,
                  "%s, but the daemon's responder cannot hold the probe", t->detail);
    else
        pf_report(pf, "tls-alpn-01", t->n->base, t->rc == 0, "%s", t->detail);
    free(t->detail);
    free(t->addr);
    free(t);
    pf_done_one(pf);
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
            pf_report(pf, "tls-alpn-01", n->base, false, "no address to connect to");
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
                pf_report(pf, "tls-alpn-01", n->base, false, "cannot start the handshake");
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
        pf_report(pf, "tls-alpn-01", pf->cname, false, "cannot build the probe certificate: %s",
                  err_str(status));
    if (--pf->tls_puts == 0)
        tls_probes_start(pf, false);
    pf_done_one(pf);
}

void pf_start_tlsalpn01(struct pf *pf)
{
    const struct cfg_strv *l = &pf->cfg->tlsalpn01.listen;
    int rc;

    if (l->n == 0) {
        pf_report(pf, "tls-alpn-01", pf->cname, false,
                  "[tlsalpn01] listen is []: nothing answers the CA");
        return;
    }
    pf->token = pf_random_token();
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
        pf_report(pf, "tls-alpn-01", pf->cname, false, "cannot listen on %s: %s", l->v[0],
                  err_str(rc));
        return;
    }
    fprintf(pf->out,
            "test %s: tls-alpn-01 temporary responder on %s%s (the daemon is not running)\n",
            pf->cname, l->v[0], l->n > 1 ? " and more" : "");
    for (size_t i = 0; i < pf->n_names; i++) {
        if (pf->names[i].wild) {
            pf_report(pf, "tls-alpn-01", pf->names[i].domain, false,
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
            pf_report(pf, "tls-alpn-01", pf->names[i].base, false, "cannot serve the probe: %s",
                      err_str(rc));
        }
    }
}
