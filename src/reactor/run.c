/* One run of one certificate, from MC_START to the hand-over to round.c:
 * the challenge providers the order uses, key generation off the loop (RSA
 * keys at most RSA_KEYGEN_MAX at once), the ACME order (or the resumption
 * of one left behind), an import's files (read by imports.c), storing the
 * result as a new generation, and a deploy-only run's stored generation.
 * It does not decide when to run, nor what follows a run (due.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/fleet.h"
#include "reactor/manager_internal.h"
#include "reactor/sched.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

static const struct mgr_order_ops real_order_ops = {acme_order_start, acme_order_cancel};
static const struct mgr_order_ops *g_order_ops = &real_order_ops;

void mgr_order_ops_set(const struct mgr_order_ops *ops)
{
    g_order_ops = ops != NULL ? ops : &real_order_ops;
}

void mgr_order_cancel(struct acme_order *o)
{
    g_order_ops->cancel(o);
}

/* ---- the stored key ---- */

/* True when key is the key of the stored certificate (sc->key_pem). */
bool mgr_stored_key_is(const struct store_cert *sc, EVP_PKEY *key)
{
    EVP_PKEY *skey = NULL;
    bool same = sc->key_pem != NULL &&
                acme_key_from_pem(sc->key_pem, strlen(sc->key_pem), &skey) == 0 &&
                EVP_PKEY_eq(key, skey) == 1;

    EVP_PKEY_free(skey);
    return same;
}

/* An order file whose key is the stored certificate's belongs to an order
 * that is done (its deployment had not succeeded yet, see settle_start):
 * a renewal orders anew instead of resuming it. Reads the stored key (a
 * small file, inline). */
static bool order_is_stored(struct mcert *mc, EVP_PKEY *okey)
{
    struct store_cert sc = {0};

    if (store_cert_read_current(mc->m->store, mc->name, true, &sc) < 0)
        return false;
    bool same = mgr_stored_key_is(&sc, okey);
    store_cert_fini(&sc);
    return same;
}

/* ---- challenge provider ---- */

/* The run's [http01] (its snapshot's: a reload in between does not move
 * the webroot under a token). */
static const struct cfg_http01 *run_http01(const struct mcert *mc)
{
    return mc->run_snap != NULL ? &mc->run_snap->http01 : &mc->m->cfg->http01;
}

/* http-01: the token goes to every responder there is, certloop's listener
 * (or socket activation's) and the web server's document root, so either
 * may answer the CA. */
static int chal_present(void *ctx, const char *token, const char *keyauth)
{
    struct mcert *mc = ctx;
    const struct cfg_http01 *h = run_http01(mc);
    int rc;

    if (mc->m->chal == NULL && h->webroot == NULL)
        return -ENOTCONN;
    if (mc->m->chal != NULL) {
        rc = chal_http01_put(mc->m->chal, token, keyauth);
        if (rc < 0)
            return rc;
        /* and every instance of a fleet: its NOTIFY is on the way before the
         * CA is told; the others' listeners wait for a token they miss */
        fleet_http01_present(mc->m->fleet_http01, token, keyauth, mc->name);
    }
    if (h->webroot != NULL) {
        rc = chal_webroot_put(h->webroot, h->webroot_uid, h->webroot_gid, token, keyauth);
        if (rc < 0) {
            if (mc->m->chal != NULL) {
                chal_http01_del(mc->m->chal, token);
                fleet_http01_cleanup(mc->m->fleet_http01, token);
            }
            return rc;
        }
    }
    return 0;
}

void mgr_chal_seen(void *arg, const char *what)
{
    struct manager *m = arg;

    if (g_order_ops != &real_order_ops)
        return; /* a loop test's fake orders are no acme_order */
    /* a walk over the entries, cheap beside the CA's fetch it follows
     * (10,000 entries: tens of microseconds) */
    for (struct mcert *mc = m->certs; mc != NULL; mc = mc->next)
        if (mc->state == MC_ORDER && mc->order != NULL)
            acme_order_chal_seen(mc->order, what);
    if (m->guest != NULL) /* a dry run answers through our listeners */
        mgr_chal_seen(m->guest, what);
}

static void chal_cleanup(void *ctx, const char *token)
{
    struct mcert *mc = ctx;
    const struct cfg_http01 *h = run_http01(mc);

    if (mc->m->chal != NULL) {
        chal_http01_del(mc->m->chal, token);
        fleet_http01_cleanup(mc->m->fleet_http01, token);
    }
    if (h->webroot != NULL)
        chal_webroot_del(h->webroot, token);
}

/* dns-01 through the provider, with the snapshot of the run. */
static int dns_present_start(void *ctx, const char *identifier, const char *keyauth,
                             acme_chal_done_cb done, void *done_arg, void **handle)
{
    struct mcert *mc = ctx;
    struct dns01_provision *pv = NULL;
    int rc;

    if (mc->m->dns == NULL)
        return -ENOTCONN;
    rc = dns01_provider_present_start(mc->m->dns, mc->run_snap, mc->run_cfg, identifier, keyauth,
                                      done, done_arg, &pv);
    if (rc == 0)
        *handle = pv;
    return rc;
}

static void dns_present_cancel(void *ctx, void *handle)
{
    (void)ctx;
    dns01_provider_present_cancel(handle);
}

static void dns_cleanup(void *ctx, const char *identifier, const char *keyauth)
{
    struct mcert *mc = ctx;

    if (mc->m->dns != NULL)
        dns01_provider_cleanup(mc->m->dns, mc->run_snap, mc->run_cfg, identifier, keyauth);
}

/* dns-persist-01: the persistent record is only checked on the
 * authoritative servers (it is published once, by persist-record). */
static int persist_check_start(void *ctx, const char *name, const char *value,
                               acme_chal_done_cb done, void *done_arg, void **handle)
{
    struct mcert *mc = ctx;
    struct dns01_provision *pv = NULL;
    int rc;

    if (mc->m->dns == NULL)
        return -ENOTCONN;
    rc = dns01_provider_record_start(mc->m->dns, mc->run_snap, mc->run_cfg, name, value, false,
                                     done, done_arg, &pv);
    if (rc == 0)
        *handle = pv;
    return rc;
}

/* tls-alpn-01 through the responder (RFC 8737): the challenge certificate
 * is built off the loop; done runs once it is served. */
struct tls_put {
    struct chal_tlsalpn_put *put;
    acme_chal_done_cb done;
    void *done_arg;
};

static void tls_put_done(int status, void *arg)
{
    struct tls_put *tp = arg;
    acme_chal_done_cb done = tp->done;
    void *done_arg = tp->done_arg;

    free(tp);
    done(status, status == 0 ? NULL : "cannot build the challenge certificate", done_arg);
}

static int tls_present_start(void *ctx, const char *identifier, const char *keyauth,
                             acme_chal_done_cb done, void *done_arg, void **handle)
{
    struct mcert *mc = ctx;
    struct tls_put *tp;
    int rc;

    if (mc->m->tls == NULL)
        return -ENOTCONN;
    tp = xcalloc(1, sizeof(*tp));
    tp->done = done;
    tp->done_arg = done_arg;
    rc = chal_tlsalpn_put_start(mc->m->tls, identifier, keyauth, tls_put_done, tp, &tp->put);
    if (rc < 0) {
        free(tp);
        return rc;
    }
    *handle = tp;
    return 0;
}

static void tls_present_cancel(void *ctx, void *handle)
{
    struct tls_put *tp = handle;

    (void)ctx;
    chal_tlsalpn_put_cancel(tp->put);
    free(tp);
}

static void tls_cleanup(void *ctx, const char *identifier, const char *keyauth)
{
    struct mcert *mc = ctx;

    (void)keyauth;
    if (mc->m->tls != NULL)
        chal_tlsalpn_del(mc->m->tls, identifier);
}

/* ---- clients ---- */

static struct acme_client *client_get(struct manager *m, struct config *snap,
                                      const struct cfg_ca *ca)
{
    for (size_t i = 0; i < m->n_clients; i++) {
        if (strcmp(m->clients[i].ca_name, ca->name) == 0 &&
            strcmp(m->clients[i].directory, ca->directory) == 0)
            return m->clients[i].c;
    }
    struct acme_client_opts o = {
        .loop = m->loop,
        .http = m->http,
        .cfg = snap,
        .ca = ca,
        .store = m->store,
    };
    struct acme_client *c = NULL;
    if (acme_client_new(&o, &c) < 0)
        return NULL;
    m->clients = xrealloc(m->clients, (m->n_clients + 1) * sizeof(*m->clients));
    m->clients[m->n_clients].ca_name = xstrdup(ca->name);
    m->clients[m->n_clients].directory = xstrdup(ca->directory);
    m->clients[m->n_clients].c = c;
    m->n_clients++;
    return c;
}

/* ---- a run: key, order, store, deploy ---- */

static void order_done(int status, struct acme_order_result *res, void *arg);
static void store_and_deploy(struct mcert *mc);

static void order_begin(struct mcert *mc)
{
    struct manager *m = mc->m;
    struct acme_client *c = client_get(m, mc->run_snap, mc->run_cfg->ca);
    struct acme_chal_ops ops = {
        .present = chal_present,
        .cleanup = chal_cleanup,
        .dns_present_start = dns_present_start,
        .dns_present_cancel = dns_present_cancel,
        .dns_cleanup = dns_cleanup,
        .tls_present_start = tls_present_start,
        .tls_present_cancel = tls_present_cancel,
        .tls_cleanup = tls_cleanup,
        .persist_check_start = persist_check_start,
        .persist_check_cancel = dns_present_cancel,
        .ctx = mc,
    };
    /* a renewal names the certificate it replaces when the CA speaks ARI */
    const char *replaces = NULL;
    if (mc->had_cert && mc->ari_id != NULL && !mc->ari_replaces_refused &&
        mgr_ca_state(m, mc->run_cfg->ca)->renewal_info != NULL)
        replaces = mc->ari_id;
    struct acme_order_opts o = {
        .cert = mc->run_cfg,
        .key = mc->key,
        .chal = &ops,
        .resume_url = mc->resume_url,
        .store = m->store,
        .replaces = replaces,
    };
    int rc;
    mc->sent_replaces = replaces != NULL;

    if (c == NULL) {
        mgr_run_end(mc, -ENOMEM, "cannot create the ACME client");
        return;
    }
    /* draft-ietf-acme-dns-persist-02 §9.4: a record past its persistUntil
     * is refused by the CA; say so here instead of ordering */
    if (mc->run_cfg->challenge == CFG_CHAL_DNSPERSIST01 && mc->run_cfg->persist_until > 0 &&
        mc->run_cfg->persist_until <= mgr_now()) {
        char when[32];
        mgr_fmt_time(mc->run_cfg->persist_until, when, sizeof(when));
        char *e = xasprintf("dns-persist-01: persist_until (%s) has passed, so the CA refuses "
                            "the records: set a later persist_until and publish them again "
                            "(certloop persist-record %s --publish)",
                            when, mc->name);
        mgr_run_end(mc, ERR_CHALLENGE, e);
        free(e);
        return;
    }
    (void)mgr_state_set(mc, MC_ORDER);
    rc = g_order_ops->start(c, &o, order_done, mc, &mc->order);
    if (rc < 0) {
        char *e = xasprintf("cannot start the order: %s", err_str(rc));
        mc->order = NULL;
        mgr_run_end(mc, rc, e);
        free(e);
    }
}

struct key_job {
    struct mcert *mc;
    enum cfg_key_type type;
    EVP_PKEY *key;
};

static int key_job_work(void *arg)
{
    struct key_job *j = arg;

    return acme_key_generate(j->type, &j->key);
}

static bool is_rsa(enum cfg_key_type t)
{
    return t == CFG_KEY_RSA2048 || t == CFG_KEY_RSA3072 || t == CFG_KEY_RSA4096;
}

static void keygen_start(struct mcert *mc);

static void keygen_next(struct manager *m)
{
    while (!m->stopping && m->khead != NULL && m->rsa_keygens < RSA_KEYGEN_MAX) {
        struct mcert *mc = m->khead;
        m->khead = mc->qnext;
        if (m->khead == NULL)
            m->ktail = NULL;
        mc->qnext = NULL;
        keygen_start(mc);
    }
}

static void key_job_done(int status, void *arg)
{
    struct key_job *j = arg;
    struct mcert *mc = j->mc;
    struct manager *m = mc->m;

    m->jobs--;
    if (is_rsa(j->type))
        m->rsa_keygens--;
    keygen_next(m);
    if (m->stopping || mgr_removed(mc)) {
        EVP_PKEY_free(j->key);
        free(j);
        mgr_run_end(mc, -ECANCELED, "stopped");
        return;
    }
    if (status < 0) {
        free(j);
        mgr_run_end(mc, status, "key generation failed");
        return;
    }
    mc->key = j->key;
    free(j);
    order_begin(mc);
}

/* reuse_key (for DANE/TLSA and pinning): the current generation's key when
 * it has the configured type and was not revoked for keyCompromise; NULL
 * (a new key is made) otherwise. A PEM read from the state directory,
 * inline like the other small state files. */
static EVP_PKEY *stored_key_reusable(struct mcert *mc)
{
    struct store_cert sc = {0};
    EVP_PKEY *key = NULL;
    enum cfg_key_type t;
    char *reason = NULL;
    bool reissue = false;
    const char *why = NULL;

    if (store_cert_read_current(mc->m->store, mc->name, true, &sc) < 0 || sc.key_pem == NULL) {
        why = "no stored key";
    } else if (sched_revoked_read(mc->m->store, mc->name, sc.generation, &reason, &reissue) == 0 &&
               strcmp(reason, "keyCompromise") == 0) {
        why = "the certificate was revoked for keyCompromise";
    } else if (acme_key_from_pem(sc.key_pem, strlen(sc.key_pem), &key) < 0) {
        why = "the stored key does not parse";
    } else if (acme_key_type_of(key, &t) < 0 || t != mc->run_cfg->key) {
        why = "the key type changed";
        EVP_PKEY_free(key);
        key = NULL;
    }
    if (key != NULL)
        log_info(LOG_MAIN, "cert=%s: reusing the stored key (reuse_key)", mc->name);
    else
        log_info(LOG_MAIN, "cert=%s: reuse_key: a new key: %s", mc->name, why);
    free(reason);
    store_cert_fini(&sc);
    return key;
}

/* Key generation off the loop (RSA 4096 takes seconds). */
static void keygen_start(struct mcert *mc)
{
    struct manager *m = mc->m;
    enum cfg_key_type type = mc->run_cfg->key;
    int rc;

    if (is_rsa(type) && m->rsa_keygens >= RSA_KEYGEN_MAX) {
        (void)mgr_state_set(mc, MC_KEYWAIT);
        mc->qnext = NULL;
        if (m->ktail != NULL)
            m->ktail->qnext = mc;
        else
            m->khead = mc;
        m->ktail = mc;
        return;
    }
    struct key_job *j = xcalloc(1, sizeof(*j));
    j->mc = mc;
    j->type = type;
    (void)mgr_state_set(mc, MC_KEYGEN);
    rc = store_job_start(m->loop, key_job_work, j, key_job_done);
    if (rc < 0) {
        free(j);
        mgr_run_end(mc, rc, "cannot start key generation");
        return;
    }
    m->jobs++;
    if (is_rsa(type))
        m->rsa_keygens++;
}

/* Deploys the stored generation (after a crash between store and deploy). */
/* A deploy-only run first leaves STATE/orders/NAME.redeploy (the commit
 * removes it), so that a restart after a crash or a failure deploys the
 * stored generation again; then the deployment begins. */
static void mark_failed(struct mcert *mc, int rc)
{
    char *where = store_where(mc->m->store, STORE_WHERE_REDEPLOY, mc->name);
    log_warn(LOG_MAIN, "cert=%s: %s: %s (a restart would not redeploy)", mc->name, where,
             err_str(rc));
    free(where);
}

static void mark_job_done(int status, const struct store_result *r, void *arg)
{
    struct mcert *mc = arg; /* the run: it waits for the mark */

    (void)r;
    mc->m->jobs--;
    if (status < 0)
        mark_failed(mc, status);
    mgr_deploy_begin(mc);
}

static void redeploy_mark_start(struct mcert *mc)
{
    mc->m->jobs++;
    int rc = store_redeploy_mark_start(mc->m->store, mc->name, mark_job_done, mc);
    if (rc < 0)
        mark_job_done(rc, &(struct store_result){0}, mc);
}

static void deploy_stored(struct mcert *mc)
{
    struct store_cert sc = {0};
    struct sched_meta meta = {0};
    int rc = store_cert_read_current(mc->m->store, mc->name, true, &sc);

    if (rc < 0) {
        char *e = xasprintf("reading the stored certificate: %s", err_str(rc));
        mgr_run_end(mc, rc, e);
        free(e);
        return;
    }
    mc->res = xcalloc(1, sizeof(*mc->res));
    mc->res->cert_pem = xstrdup(sc.cert_pem ? sc.cert_pem : "");
    mc->res->chain_pem = xstrdup(sc.chain_pem ? sc.chain_pem : "");
    mc->res->fullchain_pem = xstrdup(sc.fullchain_pem ? sc.fullchain_pem : "");
    mc->key_pem = sc.key_pem;
    sc.key_pem = NULL;
    mc->generation = sc.generation != NULL ? xstrdup(sc.generation) : NULL;
    mc->gen_dir = xstrdup(sc.dir != NULL ? sc.dir : "");
    if (sc.meta_json != NULL && sched_meta_parse(sc.meta_json, strlen(sc.meta_json), &meta) == 0) {
        mc->not_after = meta.not_after;
        sched_meta_fini(&meta);
    }
    store_cert_fini(&sc);
    mc->had_cert = false;
    (void)mgr_state_set(mc, MC_MARK);
    redeploy_mark_start(mc);
}

/* An imported certificate's run: stores and deploys its files when they
 * changed, deploys the stored generation when its last deployment did not
 * finish, else ends at once. */
static void import_next(struct mcert *mc, int rc, const char *e)
{
    if (rc < 0)
        mgr_run_end(mc, rc, e);
    else if (rc == MGR_IMPORT_REDEPLOY)
        deploy_stored(mc);
    else if (rc == MGR_IMPORT_SAME)
        mgr_run_end(mc, 0, NULL);
    else
        store_and_deploy(mc);
}

static void import_run(struct mcert *mc)
{
    char *e = NULL;
    int rc = mgr_import_read(mc, &e);

    import_next(mc, rc, e);
    free(e);
}

/* A pulled certificate's run (from = "hub.NAME"): pull.c fetches and
 * checks the hub's generation; then as an import's. */
static void pull_run(struct mcert *mc)
{
    char *e = NULL;
    int rc = mgr_pull_start(mc, import_next, &e);

    if (rc < 0)
        mgr_run_end(mc, rc, e);
    free(e);
}

static bool lease_start(struct mcert *mc);
static void run_order(struct mcert *mc);

void mgr_run_start(struct mcert *mc)
{
    struct manager *m = mc->m;

    m->running++;
    mc->started = mgr_now();
    mc->run_snap = config_ref(m->cfg);
    mc->run_cfg = mc->cfg;
    if (CFG_CHAL_IS_DNS(mc->run_cfg->challenge) && m->dns == NULL &&
        dns01_provider_open(m->loop, m->cfg, &m->dns) < 0) {
        m->dns = NULL; /* e.g. a dns-01 certificate added by a reload */
        mgr_run_end(mc, ERR_UNSUPPORTED, "dns-01: the solver could not be started");
        return;
    }
    dns01_provider_set_notify(m->dns, m->notify);
    if (mc->deploy_only) {
        mc->deploy_only = false;
        mc->run_deploy_only = true;
        mgr_hist_add(mc, "deploying", "the stored certificate");
        deploy_stored(mc);
        return;
    }
    if (mc->run_cfg->hub != NULL) {
        pull_run(mc);
        return;
    }
    /* an import without a CA, or with one but nothing stored yet: the
     * imported files become the (first) generation */
    if (mc->run_cfg->ca == NULL ||
        (mc->run_cfg->import_cert != NULL && !mc->had_cert && mc->import_checked_at == 0)) {
        import_run(mc);
        return;
    }
    if (lease_start(mc))
        return; /* lease_taken goes on */
    run_order(mc);
}

/* The ordering part of a run: resume the order left behind, or a new one
 * (with the lease held when the store is shared). */
static void run_order(struct mcert *mc)
{
    struct manager *m = mc->m;
    char *url = NULL;
    EVP_PKEY *key = NULL;
    int rc;

    /* Resume an order a previous run left behind (same names, CA, key type). */
    rc = acme_order_resume_load(m->store, mc->run_cfg, &url, &key);
    if (rc == 0 && order_is_stored(mc, key)) {
        log_info(LOG_MAIN,
                 "cert=%s: the stored order's certificate is the stored one: ordering anew",
                 mc->name);
        EVP_PKEY_free(key);
        free(url);
        key = NULL;
        url = NULL;
        rc = -ENOENT;
    }
    if (rc == 0) {
        log_info(LOG_MAIN, "cert=%s: resuming the stored order", mc->name);
        mgr_hist_add(mc, "ordering", "resuming %s", url);
        mc->resume_url = url;
        mc->key = key;
        order_begin(mc);
        return;
    }
    if (rc != -ENOENT)
        log_info(LOG_MAIN, "cert=%s: stored order not usable (%s): starting a new one", mc->name,
                 err_str(rc));
    /* a new order counts against the CA account's window */
    if (!ratelimit_window_take(mgr_ca_window(m, mc->run_cfg->ca), mgr_now()))
        log_warn(LOG_MAIN, "cert=%s: over ca=%s's max_new_orders (a forced renewal)", mc->name,
                 mc->run_cfg->ca->name);
    mgr_hist_add(mc, "ordering", "new order: %s", mc->reason != NULL ? mc->reason : "due");
    bool want_new = mc->new_key_once;
    mc->new_key_once = false;
    if (want_new && mc->run_cfg->reuse_key)
        log_info(LOG_MAIN, "cert=%s: reuse_key: a new key (renew --new-key)", mc->name);
    else if (mc->run_cfg->reuse_key) {
        key = stored_key_reusable(mc);
        if (key != NULL) {
            mc->key = key;
            order_begin(mc);
            return;
        }
    }
    keygen_start(mc);
}

/* A shared store: the lease is ours now (or not). Another instance that
 * stored a new generation since this certificate was found due has renewed
 * it: this run ends (its generation is deployed by the next decision), and
 * never orders twice (a queued run may start long after its decision). */
static void lease_taken(int status, const struct store_result *r, void *arg)
{
    struct mcert *mc = arg;
    struct manager *m = mc->m;
    struct store_cert sc = {0};

    if (status < 0) {
        char *e =
            status == ERR_LOCKED
                ? xstrdup(r->error != NULL ? r->error : "held by another instance")
                : xasprintf("taking the lease: %s", r->error != NULL ? r->error : err_str(status));
        mgr_run_end(mc, status, e);
        free(e);
        return;
    }
    mc->leased = true;
    mc->fence = r->fence;
    m->leases_held++;
    int64_t every = m->store->lease_ms / 3000;
    mc->lease_renew_at = mgr_now() + (every > 0 ? every : 1);
    log_debug(LOG_MAIN, "cert=%s: lease taken (token %" PRIu64 ")", mc->name, mc->fence);
    int rc = store_cert_read_current(m->store, mc->name, true, &sc);
    if (rc == ERR_CRYPTO) {
        /* the fleet's key for it is there but this instance cannot open
         * it: a new order would be sealed with a key the others cannot
         * open either (and "renewed meanwhile" below would wait forever) */
        mgr_run_end(mc, ERR_CRYPTO,
                    "its stored private key cannot be opened with [store] "
                    "encryption_key_file (sealed with another key, or tampered): not ordering; "
                    "give this instance the fleet's key and reload");
        return;
    }
    bool renewed = rc == 0 && sc.generation != NULL &&
                   (mc->decided_gen == NULL || strcmp(sc.generation, mc->decided_gen) != 0) &&
                   !mc->run_forced;
    store_cert_fini(&sc);
    if (renewed) {
        mgr_run_end(mc, ERR_LOCKED, "renewed by another instance meanwhile");
        return;
    }
    run_order(mc);
}

/* A shared store: a run that orders takes the certificate's lease first
 * (MC_LEASE), so that one instance of the fleet orders it. True when the
 * run goes on in lease_taken. */
static bool lease_start(struct mcert *mc)
{
    struct store *s = mc->m->store;

    if (!store_shared(s) || mc->leased)
        return false;
    (void)mgr_state_set(mc, MC_LEASE);
    int rc = store_lease_take_start(s, mc->name, lease_taken, mc);
    if (rc < 0)
        lease_taken(rc, &(struct store_result){0}, mc);
    return true;
}

/* ---- storing ---- */

struct store_job {
    struct mcert *mc;
    char *key; /* owned: the key PEM, kept for the deployment */
};

static void store_job_done(int status, const struct store_result *r, void *arg)
{
    struct store_job *j = arg;
    struct mcert *mc = j->mc;

    mc->m->jobs--;
    if (status < 0) {
        char *e = xasprintf("storing the certificate: %s", err_str(status));
        mgr_run_end(mc, status, e);
        free(e);
    } else {
        log_debug(LOG_MAIN, "cert=%s: stored generation %s", mc->name,
                  r->generation ? r->generation : "?");
        if (r->mark_status < 0)
            mark_failed(mc, r->mark_status);
        mc->generation = r->generation != NULL ? xstrdup(r->generation) : NULL;
        mc->gen_dir = xstrdup(r->lineage != NULL ? r->lineage : "");
        mc->key_pem = j->key;
        j->key = NULL;
        mgr_deploy_begin(mc);
    }
    if (j->key != NULL)
        OPENSSL_cleanse(j->key, strlen(j->key));
    free(j->key);
    free(j);
}

static char *meta_json(struct mcert *mc, const struct acme_chain *ch, const char *profile)
{
    const struct cfg_cert *cc = mc->run_cfg;
    json_t *doms = json_array();
    char *s;

    for (size_t i = 0; i < cc->domains.n; i++)
        json_array_append_new(doms, json_string(cc->domains.v[i]));
    json_t *j = json_pack("{s:o, s:s?, s:s?, s:s, s:I, s:I, s:I, s:s}", "domains", doms, "ca",
                          cc->ca != NULL ? cc->ca->name : NULL, "directory",
                          cc->ca != NULL ? cc->ca->directory : NULL, "key",
                          config_key_type_name(cc->key), "not_before", (json_int_t)ch->not_before,
                          "not_after", (json_int_t)ch->not_after, "issued_at",
                          (json_int_t)mgr_now(), "serial", ch->serial_hex ? ch->serial_hex : "");
    if (profile != NULL)
        json_object_set_new(j, "profile", json_string(profile));
    s = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    return s;
}

static void order_done(int status, struct acme_order_result *res, void *arg)
{
    struct mcert *mc = arg;

    mc->order = NULL;
    if (status != 0) {
        mc->retry_after_s = res != NULL ? res->retry_after_s : 0;
        free(mc->failed_ident);
        mc->failed_ident = NULL;
        if (res != NULL && res->failed_identifier != NULL)
            mc->failed_ident = xstrdup(res->failed_identifier);
        acme_problem_free(mc->problem);
        mc->problem = res != NULL ? res->problem : NULL;
        if (res != NULL)
            res->problem = NULL;
        /* a CA that refuses `replaces` (already replaced, or not the
         * certificate it knows): the next order goes without it */
        if (mc->sent_replaces && res != NULL && res->error != NULL &&
            (strstr(res->error, "alreadyReplaced") != NULL ||
             strstr(res->error, "replaces") != NULL)) {
            log_warn(LOG_MAIN, "cert=%s: the CA refused `replaces`; next orders go without it",
                     mc->name);
            mc->ari_replaces_refused = true;
        }
        char *e = xasprintf("%s", res != NULL && res->error ? res->error : err_str(status));
        acme_order_result_free(res);
        mgr_run_end(mc, status, e);
        free(e);
        return;
    }
    mc->res = res;
    store_and_deploy(mc);
}

/* Stores mc->res with mc->key as a new generation, then deploys it. */
static void store_and_deploy(struct mcert *mc)
{
    struct manager *m = mc->m;
    struct acme_order_result *res = mc->res;
    char *pem = NULL;
    size_t plen;
    int rc;

    /* Never store a certificate that does not belong to our key. */
    if (!acme_chain_matches_key(&res->chain, mc->key)) {
        mgr_run_end(mc, ERR_CRYPTO, "the certificate does not match the certificate key");
        return;
    }
    if (res->key_pem != NULL) { /* the order encoded it for its file */
        pem = res->key_pem;
        res->key_pem = NULL;
    } else {
        rc = acme_key_to_pem(mc->key, &pem, &plen);
        if (rc < 0) {
            mgr_run_end(mc, rc, "cannot encode the key");
            return;
        }
    }
    struct store_job *j = xcalloc(1, sizeof(*j));
    j->mc = mc;
    j->key = pem;
    char *meta = meta_json(mc, &res->chain, res->profile);
    free(mc->profile);
    mc->profile = res->profile != NULL ? xstrdup(res->profile) : NULL;
    struct store_cert_put p = {
        .name = mc->name,
        .cert_pem = res->cert_pem,
        .chain_pem = res->chain_pem,
        .fullchain_pem = res->fullchain_pem,
        .key_pem = pem,
        .meta_json = meta,
        .keep = KEEP_GENERATIONS,
        .mark_redeploy = mc->run_deploy_only, /* an import: no order file */
    };
    mc->not_after = res->chain.not_after;
    (void)mgr_state_set(mc, MC_STORE);
    m->jobs++; /* store_job_done decrements it */
    rc = store_cert_put_start(m->store, &p, store_job_done, j);
    free(meta);
    if (rc < 0)
        store_job_done(rc, &(struct store_result){0}, j);
}
