/* When each certificate runs: decide() reads the stored certificate and
 * asks the policy (sched_decide plus a stable per-generation jitter), ARI,
 * backoff, Retry-After and our limits (renewplan_decide) for the time of
 * the next run; the deadline lives in ONE timer heap (reactor/timerheap).
 * Due certificates wait in a FIFO queue; pump() starts them while run
 * slots are free. It does not run an order, store or deploy anything. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/manager_internal.h"
#include "reactor/renewplan.h"
#include "reactor/sched.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

/* ---- scheduling ---- */

static void heap_cb(void *arg);

void mgr_disarm(struct mcert *mc)
{
    if (mc->tentry != NULL) {
        timerheap_cancel(mc->tentry);
        mc->tentry = NULL;
    }
    mc->next_at = 0;
}

void mgr_arm(struct mcert *mc, int64_t at)
{
    struct manager *m = mc->m;

    if (m->once || m->stopping || m->heap == NULL)
        return;
    if (mc->tentry != NULL)
        timerheap_reschedule(mc->tentry, at * 1000);
    else
        timerheap_add(m->heap, at * 1000, heap_cb, mc, &mc->tentry);
    mc->next_at = at;
}

void mgr_enqueue(struct mcert *mc)
{
    struct manager *m = mc->m;

    if (mc->state != MC_IDLE || m->stopping)
        return;
    mgr_disarm(mc);
    (void)mgr_state_set(mc, MC_QUEUED);
    mc->qnext = NULL;
    if (m->qtail != NULL)
        m->qtail->qnext = mc;
    else
        m->qhead = mc;
    m->qtail = mc;
}

void mgr_dequeue(struct mcert *mc)
{
    struct manager *m = mc->m;
    struct mcert *prev = NULL;

    for (struct mcert *x = m->qhead; x != NULL; prev = x, x = x->qnext) {
        if (x != mc)
            continue;
        if (prev != NULL)
            prev->qnext = x->qnext;
        else
            m->qhead = x->qnext;
        if (m->qtail == x)
            m->qtail = prev;
        x->qnext = NULL;
        (void)mgr_state_set(mc, MC_IDLE);
        return;
    }
}

/* Whether any name of mc is slowed down by its failures. */
bool mgr_names_paused(const struct mcert *mc)
{
    const struct cfg_cert *cc = mc->cfg;

    if (cc == NULL || mc->m->fails == NULL)
        return false;
    for (size_t i = 0; i < cc->domains.n; i++)
        if (ratelimit_failures_paused(mc->m->fails, cc->domains.v[i]))
            return true;
    return false;
}

/* True when key is the key of the stored certificate (sc->key_pem). */
static bool stored_key_is(const struct store_cert *sc, EVP_PKEY *key)
{
    EVP_PKEY *skey = NULL;
    bool same = sc->key_pem != NULL &&
                acme_key_from_pem(sc->key_pem, strlen(sc->key_pem), &skey) == 0 &&
                EVP_PKEY_eq(key, skey) == 1;

    EVP_PKEY_free(skey);
    return same;
}

/* An order file left by a run that did not finish (a crash, or a
 * deployment that failed: the order file goes only with its commit). When
 * its key is the stored certificate's key, the certificate was stored but
 * maybe not deployed: mark the entry deploy_only. Otherwise the order is
 * resumed when it is run. True when there is something to do now. */
static bool order_left_behind(struct mcert *mc, const struct store_cert *sc)
{
    char *url = NULL;
    EVP_PKEY *okey = NULL;
    int rc = acme_order_resume_load(mc->m->state_dir, mc->cfg, &url, &okey);

    if (rc < 0)
        return false;
    if (stored_key_is(sc, okey)) {
        log_info(LOG_MAIN, "cert=%s: stored by a run that did not finish: deploying it", mc->name);
        mc->deploy_only = true;
    } else {
        log_info(LOG_MAIN, "cert=%s: an order was left in flight: resuming it", mc->name);
    }
    EVP_PKEY_free(okey);
    free(url);
    return true;
}

/* A deploy-only run that did not commit (STATE/orders/NAME.redeploy): a
 * crash, or a deployment that failed before a restart. */
static bool redeploy_left_behind(struct mcert *mc)
{
    if (mc->state != MC_IDLE || !store_redeploy_marked(mc->m->state_dir, mc->name))
        return false;
    log_info(LOG_MAIN,
             "cert=%s: a deployment of the stored certificate did not finish: "
             "deploying it again",
             mc->name);
    mc->deploy_only = true;
    return true;
}

/* An order file whose key is the stored certificate's belongs to an order
 * that is done (its deployment had not succeeded yet, see settle_start):
 * a renewal orders anew instead of resuming it. Reads the stored key (a
 * small file, inline). */
bool mgr_order_is_stored(struct mcert *mc, EVP_PKEY *okey)
{
    struct store_cert sc = {0};

    if (store_cert_read_current(mc->m->state_dir, mc->name, true, &sc) < 0)
        return false;
    bool same = stored_key_is(&sc, okey);
    store_cert_fini(&sc);
    return same;
}

/* Decides whether mc is due now (queue it) or later (arm its deadline). */
void mgr_decide(struct mcert *mc)
{
    struct manager *m = mc->m;
    struct store_cert sc = {0};
    struct sched_meta meta = {0};
    struct sched_decision d;
    struct renewplan plan;
    bool have = false;
    int64_t now = mgr_now();
    int rc;

    if (mc->cfg->ca == NULL) {
        mgr_import_decide(mc, now);
        return;
    }
    rc = store_cert_read_current(m->state_dir, mc->name, true, &sc);
    if (rc == 0) {
        if (sc.meta_json != NULL &&
            sched_meta_parse(sc.meta_json, strlen(sc.meta_json), &meta) == 0)
            have = true;
        else if (sc.cert_pem != NULL &&
                 sched_meta_from_pem(sc.cert_pem, strlen(sc.cert_pem), &meta) == 0)
            have = true;
    } else if (rc != -ENOENT) {
        log_warn(LOG_MAIN, "cert=%s: stored certificate unreadable (%s): ordering a new one",
                 mc->name, err_str(rc));
    }
    sched_decide_jittered(mc->name, mc->cfg, have ? &meta : NULL, now, &d);
    mc->had_cert = have;
    if (have) {
        mc->not_after = meta.not_after;
        mc->not_before = meta.not_before;
        free(mc->profile);
        mc->profile = meta.profile != NULL ? xstrdup(meta.profile) : NULL;
        mc->renew_at = d.when;
    }
    if (have && rc == 0)
        mgr_ari_consider(mc, &sc, now);
    struct renewplan_in in = {
        .now = now,
        .policy = d,
        .have_ari = mc->ari_id != NULL && mc->ari_end > 0,
        .ari_at = mc->ari_at,
        .retry_at = mc->retry_at,
        .ca_retry_at = mc->ca_retry_at,
        .limits_at =
            ratelimit_earliest(mgr_ca_window(m, mc->cfg->ca), m->fails,
                               (const char *const *)mc->cfg->domains.v, mc->cfg->domains.n, now),
    };
    renewplan_decide(&in, &plan);
    mc->reason = plan.reason;
    mc->next_is_retry =
        mc->failures > 0 && (plan.why == RENEWPLAN_BACKOFF || plan.why == RENEWPLAN_CA_LIMITED ||
                             plan.why == RENEWPLAN_LIMITS);
    /* (an order file kept for a deployment that waits for the round's
     * reload commands is not left behind: the round commits it) */
    if (d.why == SCHED_LATER && mc->failures == 0 && rc == 0 && !mc->journal_shared &&
        (order_left_behind(mc, &sc) || redeploy_left_behind(mc))) {
        mgr_enqueue(mc);
    } else if (plan.when > now) {
        char when[32];
        mgr_fmt_time(plan.when, when, sizeof(when));
        if (d.why == SCHED_LATER && plan.why == RENEWPLAN_POLICY)
            log_info(LOG_MAIN, "cert=%s: valid, renewal at %s (%s)", mc->name, when, plan.reason);
        else
            log_info(LOG_MAIN, "cert=%s: next order at %s (%s)", mc->name, when, plan.reason);
        if (mc->summary == SUM_NONE && have)
            mc->summary = SUM_OK;
        if (plan.when != mc->next_at)
            mgr_hist_add(mc, plan.why == RENEWPLAN_LIMITS ? "rate-limited" : "scheduled", "%s: %s",
                         when, plan.reason);
        /* wake for the next renewalInfo fetch when it comes first */
        int64_t wake = plan.when;
        if (mc->ari_id != NULL && mc->ari_poll > now && mc->ari_poll < wake)
            wake = mc->ari_poll;
        mgr_arm(mc, wake);
        mc->next_at = plan.when;
    } else {
        log_info(LOG_MAIN, "cert=%s: due: %s", mc->name, plan.reason);
        mgr_enqueue(mc);
    }
    if (have)
        sched_meta_fini(&meta);
    if (rc == 0)
        store_cert_fini(&sc);
}

static void heap_cb(void *arg)
{
    struct mcert *mc = arg;

    mc->tentry = NULL; /* the heap freed it */
    mc->next_at = 0;
    if (mc->state != MC_IDLE || mgr_removed(mc))
        return;
    if (mc->deploy_only)
        mgr_enqueue(mc); /* a deploy retry: no decision, no order */
    else
        mgr_decide(mc);
    mgr_pump(mc->m);
}

/* A queued certificate about to start a new order while its CA account's
 * window is full waits for the window instead (deploy-only runs and
 * resumed orders do not count). */
static bool window_full(struct mcert *mc)
{
    struct manager *m = mc->m;
    int64_t now = mgr_now(), next;

    if (mc->deploy_only || mc->forced || mc->cfg->ca == NULL)
        return false;
    next = ratelimit_window_next(mgr_ca_window(m, mc->cfg->ca), now);
    if (next <= now)
        return false;
    char when[32];
    mgr_fmt_time(next, when, sizeof(when));
    mc->reason = "rate limit: new orders per CA account";
    log_info(LOG_MAIN, "cert=%s: ca=%s's max_new_orders reached: waiting until %s", mc->name,
             mc->cfg->ca->name, when);
    mgr_hist_add(mc, "rate-limited", "new orders per CA account: waiting until %s", when);
    mgr_arm(mc, next);
    return true;
}

void mgr_pump(struct manager *m)
{
    unsigned max = m->cfg->daemon.max_concurrent_orders;

    if (max == 0)
        max = 1;
    while (!m->stopping && m->qhead != NULL && m->running < max) {
        if (!mgr_round_begin(m))
            break; /* the pre hooks run first (or the last round is ending) */
        struct mcert *mc = m->qhead;
        m->qhead = mc->qnext;
        if (m->qhead == NULL)
            m->qtail = NULL;
        mc->qnext = NULL;
        if (window_full(mc)) {
            (void)mgr_state_set(mc, MC_IDLE); /* its deadline is armed */
            continue;
        }
        mc->forced = false;
        (void)mgr_state_set(mc, MC_START);
        mgr_run_start(mc);
    }
    mgr_maybe_finish(m);
}
