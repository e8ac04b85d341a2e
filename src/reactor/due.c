/* The scheduler. When each certificate runs: mgr_decide reads the stored
 * certificate and asks the policy (sched_decide plus a stable
 * per-generation jitter), ARI, backoff, Retry-After and our limits
 * (renewplan_decide) for the time of the next run, then arms its deadline
 * (ONE timer heap, reactor/timerheap) or queues it. mgr_pump starts queued
 * runs while run slots are free. mgr_run_end takes a run back: its outcome
 * (log, history, events, metrics, backoff), the run's resources released,
 * then what comes next (a deploy retry, a redeploy, or a new decision).
 * Entries end here too (unlink, free). It does not order, store or deploy
 * anything itself (run.c, round.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/fleet.h"
#include "reactor/manager_internal.h"
#include "reactor/renewplan.h"
#include "reactor/sched.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

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

/* An order file left by a run that did not finish (a crash, or a
 * deployment that failed: the order file goes only with its commit). When
 * its key is the stored certificate's key, the certificate was stored but
 * maybe not deployed: mark the entry deploy_only. Otherwise the order is
 * resumed when it is run. True when there is something to do now. */
static bool order_left_behind(struct mcert *mc, const struct store_cert *sc)
{
    char *url = NULL;
    EVP_PKEY *okey = NULL;
    int rc = acme_order_resume_load(mc->m->store, mc->cfg, &url, &okey);

    if (rc < 0)
        return false;
    if (mgr_stored_key_is(sc, okey)) {
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
    if (mc->state != MC_IDLE || !store_redeploy_marked(mc->m->store, mc->name))
        return false;
    log_info(LOG_MAIN,
             "cert=%s: a deployment of the stored certificate did not finish: "
             "deploying it again",
             mc->name);
    mc->deploy_only = true;
    return true;
}

/* A shared store: the current generation is not the one this instance
 * deployed (another instance stored it, or this one was stopped before
 * its deployment finished): deploy it, with this instance's own deploy
 * actions. A deployment that failed here is retried by its own schedule
 * (mgr_run_end), or at the next start. */
static bool deploy_behind(struct mcert *mc, const struct store_cert *sc)
{
    char *gen = NULL;
    bool ok = false;

    if (!store_shared(mc->m->store) || sc->generation == NULL || mc->state != MC_IDLE)
        return false;
    int rc = store_deployed_read(mc->m->store, mc->name, &gen, &ok);
    bool behind = rc == -ENOENT || (rc == 0 && strcmp(gen, sc->generation) != 0) ||
                  (rc == 0 && !ok && mc->failures == 0);
    if (behind) {
        log_info(LOG_MAIN, "cert=%s: generation %s is not deployed here%s%s: deploying it",
                 mc->name, sc->generation, gen != NULL ? " (deployed: " : "",
                 gen != NULL ? gen : "");
        if (gen != NULL)
            log_debug(LOG_MAIN, "cert=%s: the last deployment here %s", mc->name,
                      ok ? "succeeded" : "failed");
        mc->deploy_only = true;
    }
    free(gen);
    return behind;
}

/* Another instance holds the lease of a due certificate: wait for its
 * generation (the store's watch ends the wait) or for the lease to run out
 * (manager.c's tick ends it then), instead of ordering. */
static bool lease_wait(struct mcert *mc, int64_t now)
{
    struct manager *m = mc->m;

    if (mc->lease_wait_until <= now || mc->forced)
        return false;
    mgr_disarm(mc);
    if (!mc->lease_waiting) {
        mc->lease_waiting = true;
        m->lease_waiting++;
        if (m->lease_tick_open)
            uv_ref((uv_handle_t *)&m->lease_tick); /* --once waits for it too */
    }
    mc->reason = "another instance is ordering it";
    mc->next_at = mc->lease_wait_until;
    return true;
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

    if (mc->cfg->hub != NULL) {
        mgr_pull_decide(mc, now);
        return;
    }
    if (mc->cfg->ca == NULL) {
        mgr_import_decide(mc, now);
        return;
    }
    rc = store_cert_read_current(m->store, mc->name, true, &sc);
    if (rc == 0) {
        if (sc.meta_json != NULL &&
            sched_meta_parse(sc.meta_json, strlen(sc.meta_json), &meta) == 0)
            have = true;
        else if (sc.cert_pem != NULL &&
                 sched_meta_from_pem(sc.cert_pem, strlen(sc.cert_pem), &meta) == 0)
            have = true;
    } else if (rc != -ENOENT) {
        log_warn(LOG_MAIN, "cert=%s: stored certificate unreadable (%s)%s", mc->name, err_str(rc),
                 store_shared(m->store) ? "" : ": ordering a new one");
    }
    sched_decide_jittered(mc->name, mc->cfg, have ? &meta : NULL, now, &d);
    if ((d.why == SCHED_NAMES_CHANGED || d.why == SCHED_KEY_CHANGED) &&
        fleet_view_conflict(m->fleet_view, mc->name)) {
        /* another instance declares it differently: an order for our names
         * would be undone by its next one (status --fleet shows it) */
        d.why = SCHED_LATER;
        d.when = now + FLEET_BEAT_S + 1;
        d.reason = "another instance declares it differently (status --fleet)";
    }
    mc->had_cert = have;
    free(mc->decided_gen);
    mc->decided_gen = rc == 0 && sc.generation != NULL ? xstrdup(sc.generation) : NULL;
    if (have) {
        mc->not_after = meta.not_after;
        mc->not_before = meta.not_before;
        free(mc->profile);
        mc->profile = meta.profile != NULL ? xstrdup(meta.profile) : NULL;
        mc->renew_at = d.when;
    }
    /* revoked by `certloop revoke`: shown as such; with --reissue the
     * replacement is ordered now */
    free(mc->revoked_reason);
    mc->revoked_reason = NULL;
    bool reissue = false;
    if (have && rc == 0 && sc.generation != NULL &&
        sched_revoked_read(m->store, mc->name, sc.generation, &mc->revoked_reason, &reissue) == 0 &&
        reissue && (d.why == SCHED_LATER || d.why == SCHED_DUE)) {
        d.why = SCHED_DUE;
        d.when = now;
        d.reason = "the certificate was revoked: ordering its replacement";
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
    int64_t persist_next = mgr_persist_expiring(mc, now);
    mc->reason = plan.reason;
    mc->next_is_retry =
        mc->failures > 0 && (plan.why == RENEWPLAN_BACKOFF || plan.why == RENEWPLAN_CA_LIMITED ||
                             plan.why == RENEWPLAN_LIMITS);
    /* (an order file kept for a deployment that waits for the round's
     * reload commands is not left behind: the round commits it) */
    if (mc->lease_waiting) { /* decided again: the wait is over or renewed below */
        mc->lease_waiting = false;
        m->lease_waiting--;
    }
    if (rc == 0 && !mc->journal_shared && deploy_behind(mc, &sc)) {
        mgr_enqueue(mc);
    } else if (d.why == SCHED_LATER && mc->failures == 0 && rc == 0 && !mc->journal_shared &&
               (order_left_behind(mc, &sc) || redeploy_left_behind(mc))) {
        mgr_enqueue(mc);
    } else if (plan.when <= now && lease_wait(mc, now)) {
        log_info(LOG_MAIN, "cert=%s: due, but another instance is ordering it: waiting", mc->name);
    } else if (plan.when > now) {
        char when[32];
        mgr_fmt_time(plan.when, when, sizeof(when));
        if (d.why == SCHED_LATER && plan.why == RENEWPLAN_POLICY)
            log_info(LOG_MAIN, "cert=%s: valid, renewal at %s (%s)", mc->name, when, plan.reason);
        else
            log_info(LOG_MAIN, "cert=%s: next order at %s (%s)", mc->name, when, plan.reason);
        if (mc->summary == SUM_NONE && have)
            mc->summary = SUM_OK;
        /* the first decision of this process is made again at every start:
         * shown, not appended to the history file (10,000 certificates
         * were 10,000 appends and fdatasyncs right after each start) */
        void (*hist)(struct mcert *, const char *, const char *, ...) =
            mc->decided_once ? mgr_hist_add : mgr_hist_add_mem;
        if (plan.when != mc->next_at)
            hist(mc, plan.why == RENEWPLAN_LIMITS ? "rate-limited" : "scheduled", "%s: %s", when,
                 plan.reason);
        mc->decided_once = true;
        /* wake for the next renewalInfo fetch or persist_until warning
         * when it comes first */
        int64_t wake = plan.when;
        if (mc->ari_id != NULL && mc->ari_poll > now && mc->ari_poll < wake)
            wake = mc->ari_poll;
        if (persist_next > now && persist_next < wake)
            wake = persist_next;
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
    if (m->once && mc->summary != SUM_HELD) {
        /* --once ends without it: due and not ordered is not fine */
        mc->summary = SUM_HELD;
        mc->next_at = next;
        m->failed++;
        m->held++;
    }
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
        mc->run_forced = mc->forced;
        mc->forced = false;
        (void)mgr_state_set(mc, MC_START);
        mgr_run_start(mc);
    }
    mgr_maybe_finish(m);
}

/* ---- the end of a run, and of an entry ---- */

void mgr_cert_free(struct mcert *mc)
{
    free(mc->ari_id);
    free(mc->ari_gen);
    free(mc->ari_expl);
    free(mc->profile);
    free(mc->revoked_reason);
    deploy_journal_free(mc->journal);
    free(mc->failed_ident);
    acme_problem_free(mc->problem);
    free(mc->last_error);
    EVP_PKEY_free(mc->key);
    free(mc->key_pem);
    free(mc->generation);
    free(mc->gen_dir);
    free(mc->resume_url);
    acme_order_result_free(mc->res);
    free(mc->error);
    free(mc->decided_gen);
    free(mc->name);
    free(mc);
}

void mgr_cert_unlink(struct mcert *mc)
{
    struct manager *m = mc->m;

    for (struct mcert **pp = &m->certs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == mc) {
            *pp = mc->next;
            break;
        }
    }
    /* a streamed view about to visit mc visits its successor instead */
    for (struct mgr_cursor *k = m->cursors; k != NULL; k = k->next) {
        if (k->at == mc)
            k->at = mc->next;
    }
    /* freed later, from the loop: callers may still be walking the list
     * (mc->next stays valid) */
    mgr_disarm(mc);
    if (mc->ari_req != NULL) {
        http_req_cancel(mc->ari_req);
        mc->ari_req = NULL;
        m->ari_inflight--;
    }
    if (mc->journal != NULL && !m->stopping) {
        /* removed while its deployment waited for the round's reload
         * commands: its files stay, its backups and order file go */
        mgr_settle_start(m, NULL, false, mc->name, mc->journal, 0, NULL);
        mc->journal = NULL;
        mc->journal_shared = false;
    }
    (void)mgr_state_set(mc, MC_DEAD);
    mc->dead_next = m->dead;
    m->dead = mc;
}

void mgr_free_dead(struct manager *m)
{
    while (m->dead != NULL) {
        struct mcert *mc = m->dead;
        m->dead = mc->dead_next;
        mgr_cert_free(mc);
    }
}

static void deployed_done(int status, const struct store_result *r, void *arg)
{
    struct manager *m = arg;

    m->jobs--;
    if (status < 0)
        log_warn(LOG_MAIN, "recording a deployment: %s", r->error ? r->error : err_str(status));
    mgr_maybe_finish(m);
}

/* A shared store: which generation this instance deployed, and how it went. */
static void deployed_record(struct mcert *mc, bool ok, const char *error)
{
    struct manager *m = mc->m;

    m->jobs++;
    int rc =
        store_deployed_put_start(m->store, mc->name, mc->generation, ok, error, deployed_done, m);
    if (rc < 0) {
        m->jobs--;
        log_warn(LOG_MAIN, "cert=%s: recording its deployment: %s", mc->name, err_str(rc));
    }
}

/* The lease of a shared store goes back once the run has settled. */
static void lease_release(struct mcert *mc)
{
    if (!mc->leased)
        return;
    store_lease_release(mc->m->store, mc->name, mc->fence);
    mc->leased = false;
    mc->lease_renewing = false;
    mc->m->leases_held--;
}

/* Whether a run's failure is the shared store being away: one of its
 * writes waited for it in vain (ERR_TIMEOUT: nothing written) or was cut
 * off (-ECONNRESET), and it still is. Such a run is tried again when the
 * store is back (manager.c store_back), not at the backoff; any other
 * failure (the CA's timeout while the database is up, say) keeps it. */
static bool store_away(struct store *s, int status)
{
    struct store_health h;

    if (!store_shared(s) || (status != ERR_TIMEOUT && status != -ECONNRESET))
        return false;
    store_health(s, &h);
    return h.down;
}

void mgr_run_end(struct mcert *mc, int status, const char *error)
{
    struct manager *m = mc->m;
    const struct cfg_cert *cc = mc->run_cfg;
    /* a shared store's lease held by another instance (or its new
     * generation found under ours): not a failure, a wait */
    bool waits = status == ERR_LOCKED && mc->state == MC_LEASE;

    if (waits) {
        log_info(LOG_MAIN, "cert=%s: %s: waiting for its new generation", mc->name,
                 error != NULL ? error : "held by another instance");
        mgr_hist_add_mem(mc, "waiting", "%s", error != NULL ? error : "another instance");
        int64_t wait = m->store->lease_ms / 1000;
        mc->lease_wait_until = mgr_now() + (wait > 0 ? wait : 1);
    } else if (status == 0) {
        char na[32];
        struct buf names = BUF_INIT(64 * 1024);
        for (size_t i = 0; i < cc->domains.n; i++)
            (void)buf_printf(&names, "%s%s", i ? "," : "", cc->domains.v[i]);
        mgr_fmt_time(mc->not_after, na, sizeof(na));
        if (mc->run_unchanged) /* an import's files or a hub's generation: the stored one */
            log_debug(LOG_MAIN, "cert=%s: unchanged: nothing stored or deployed", mc->name);
        else
            log_info(LOG_MAIN, "%s cert=%s names=%s not_after=%s deployed=%zu actions",
                     mc->run_deploy_only ? "deployed" : "issued", mc->name,
                     names.data ? names.data : "", na, cc->n_deploy);
        buf_fini(&names);
        mc->summary = mc->run_deploy_only && store_shared(m->store) ? SUM_DEPLOYED : SUM_ISSUED;
        if (!mc->journal_shared)
            mc->failures = 0; /* else once the round's reload commands succeed */
        mc->retry_at = 0;
        mc->ca_retry_at = 0;
        mc->last_success_at = mgr_now();
        free(mc->error);
        mc->error = NULL;
        if (!mc->run_deploy_only) {
            mc->renewals_ok++;
            metrics_hist_observe(&m->order_hist, (double)(mgr_now() - mc->started));
            for (size_t i = 0; i < cc->domains.n; i++)
                ratelimit_failures_success(m->fails, cc->domains.v[i]);
            mgr_hist_add(mc, mc->had_cert ? "renewed" : "issued", "not_after %s", na);
            if (cc->n_deploy > 0)
                mgr_hist_add(mc, "deployed", "%zu actions", cc->n_deploy);
            mgr_emit(mc, mc->had_cert ? NOTIFY_EV_RENEWED : NOTIFY_EV_ISSUED, NULL, NULL);
            mgr_alert_set(mc, STORE_ALERT_EXPIRING, 0);
        } else if (!mc->run_unchanged) {
            mgr_hist_add(mc, "deployed", "%zu actions", cc->n_deploy);
        }
    } else if (status == -ECANCELED && (m->stopping || mgr_removed(mc))) {
        log_info(LOG_MAIN, "cert=%s: order cancelled (stopping)", mc->name);
        mc->summary = SUM_FAILED;
        free(mc->error);
        mc->error = xstrdup("cancelled");
        mgr_hist_add(mc, "cancelled", "stopping");
    } else {
        log_error(LOG_MAIN, "%s cert=%s %s", cc->hub != NULL ? "pull" : "order", mc->name,
                  error ? error : err_str(status));
        m->failed++;
        mc->summary = SUM_FAILED;
        mc->failures++;
        free(mc->error);
        mc->error = xstrdup(error ? error : err_str(status));
        free(mc->last_error);
        mc->last_error = xstrdup(mc->error);
        mc->last_error_at = mgr_now();
        mgr_hist_add(mc, "failed", "%s", mc->error);
        /* stored but not deployed (see deploy_failed below): the deployment failed */
        mgr_emit(mc, mc->generation != NULL ? NOTIFY_EV_DEPLOY_FAILED : NOTIFY_EV_FAILED, mc->error,
                 mc->failed_ident);
        if (mc->not_after > 0 &&
            notify_expiring_due(mgr_now(), mc->not_after, m->cfg->daemon.expiring_window_s,
                                mc->alert_sent[STORE_ALERT_EXPIRING], NULL)) {
            char na[32];
            mgr_fmt_time(mc->not_after, na, sizeof(na));
            log_warn(LOG_MAIN, "cert=%s: expires %s and its renewal keeps failing", mc->name, na);
            mgr_hist_add(mc, "expiring", "not_after %s", na);
            mgr_emit(mc, NOTIFY_EV_EXPIRING, mc->error, NULL);
            mgr_alert_set(mc, STORE_ALERT_EXPIRING, mgr_now());
        }
        if (!mc->run_deploy_only) {
            int64_t now = mgr_now();
            mc->renewals_failed++;
            metrics_hist_observe(&m->order_hist, (double)(now - mc->started));
            if (mc->failed_ident != NULL)
                ratelimit_failures_record(m->fails, mc->failed_ident, now);
            /* exponential backoff with jitter; the CA's Retry-After when longer */
            mc->retry_at = mgr_backoff_at(mc, now);
            mc->ca_retry_at = mc->retry_after_s > 0 ? now + mc->retry_after_s : 0;
        } else {
            mc->retry_at = mgr_backoff_at(mc, mgr_now());
        }
        mc->retry_after_s = 0;
        free(mc->failed_ident);
        mc->failed_ident = NULL;
    }
    /* a generation is stored (or was being redeployed) but a deploy action
     * failed: the deployment failed, not the certificate */
    bool deploy_failed = status != 0 && status != -ECANCELED && mc->generation != NULL;
    mc->store_failed = !deploy_failed && store_away(m->store, status);
    if (store_shared(m->store) && mc->generation != NULL && status != -ECANCELED)
        deployed_record(mc, status == 0, status == 0 ? NULL : error);
    lease_release(mc);
    if (deploy_failed)
        mc->summary = SUM_DEPLOY_FAILED;
    mc->run_deploy_only = false;
    mc->run_unchanged = false;
    if (status != 0 && !mc->journal_shared) {
        /* stopped mid-deployment: the order file stays, so the next start
         * deploys again (and deploy_files_sweep removes the backups) */
        deploy_journal_free(mc->journal);
        mc->journal = NULL;
    }
    /* release the run */
    EVP_PKEY_free(mc->key);
    mc->key = NULL;
    if (mc->key_pem != NULL)
        OPENSSL_cleanse(mc->key_pem, strlen(mc->key_pem));
    free(mc->key_pem);
    mc->key_pem = NULL;
    free(mc->generation);
    mc->generation = NULL;
    free(mc->gen_dir);
    mc->gen_dir = NULL;
    free(mc->resume_url);
    mc->resume_url = NULL;
    acme_problem_free(mc->problem);
    mc->problem = NULL;
    acme_order_result_free(mc->res);
    mc->res = NULL;
    config_unref(mc->run_snap);
    mc->run_snap = NULL;
    mc->run_cfg = NULL;
    (void)mgr_state_set(mc, MC_IDLE);
    m->running--;

    if (mgr_removed(mc)) {
        history_forget(m->hist, mc->name);
        mgr_cert_unlink(mc);
    } else if (waits && !m->stopping) {
        mgr_decide(mc); /* waits, also in --once mode */
    } else if (m->once && status == 0 && mc->cfg != NULL && mc->cfg->ca == NULL) {
        /* `run --once` has no later decision: the import's alert is now */
        (void)mgr_import_expiring(mc, mgr_now());
    } else if (!m->once && !m->stopping) {
        if (deploy_failed) {
            /* the certificate is stored: only its deployment is retried,
             * on the backoff schedule, never a new order */
            char when[32];
            mc->deploy_only = true;
            mc->reason = "deploy retry after a failure";
            mgr_fmt_time(mc->retry_at, when, sizeof(when));
            log_info(LOG_MAIN, "cert=%s: deploy retry at %s", mc->name, when);
            mgr_hist_add(mc, "scheduled", "%s: %s", when, mc->reason);
            mgr_arm(mc, mc->retry_at);
        } else if (mc->redeploy_after && status == 0) {
            mc->redeploy_after = false;
            mc->deploy_only = true;
            mgr_enqueue(mc);
        } else {
            mgr_decide(mc); /* the renewal, or the retry after a failure */
        }
    }
    mgr_pump(m);
}
