/* The lifecycle of one certificate entry: its state machine (the only
 * place that changes mc->state, refusing a transition not in the table),
 * the end of a run (mgr_run_end: its outcome recorded in log, history,
 * events, metrics and backoff, the run's resources released, then what
 * comes next: a deploy retry, a redeploy, or a new decision by due.c), and
 * the end of an entry (unlink, free). It starts no step of a run itself. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/manager_internal.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

/* ---- the state machine ---- */

/* The legal transitions; every other one is a bug and is refused.
 *
 *   from      to        where
 *   IDLE      QUEUED    mgr_enqueue: due (mgr_decide), a deploy retry, a request
 *   QUEUED    IDLE      mgr_dequeue (stop, removal); mgr_pump when the CA
 *                       account's new-order window is full (armed instead)
 *   QUEUED    START     mgr_pump: a run slot is free (mgr_run_start)
 *   START     KEYWAIT   run.c keygen_start: RSA key generations are all busy
 *   START     KEYGEN    run.c keygen_start: a new order needs a key
 *   START     ORDER     run.c: resuming an order left behind (its key is stored)
 *   START     MARK      run.c mgr_deploy_stored: a deploy-only run
 *   START     STORE     imports.c: the imported files changed
 *   KEYWAIT   KEYGEN    run.c keygen_next: a slot is free
 *   KEYGEN    ORDER     run.c key_job_done
 *   ORDER     STORE     run.c order_done -> mgr_store_and_deploy
 *   MARK      DEPLOY    run.c mark_job_done -> mgr_deploy_begin
 *   STORE     DEPLOY    run.c store_job_done -> mgr_deploy_begin
 *   START..DEPLOY IDLE  mgr_run_end: every run ends there, whatever its outcome
 *   IDLE      DEAD      mgr_cert_unlink: removed by a reload, or the teardown
 */
static const char *const state_names[MC_STATE__MAX] = {
    [MC_IDLE] = "idle",     [MC_QUEUED] = "queued", [MC_START] = "start", [MC_KEYWAIT] = "keywait",
    [MC_KEYGEN] = "keygen", [MC_ORDER] = "order",   [MC_MARK] = "mark",   [MC_STORE] = "store",
    [MC_DEPLOY] = "deploy", [MC_DEAD] = "dead",
};

#define TO(s) (1u << (s))
#define RUN_STATES                                                                                 \
    (TO(MC_START) | TO(MC_KEYWAIT) | TO(MC_KEYGEN) | TO(MC_ORDER) | TO(MC_MARK) | TO(MC_STORE) |   \
     TO(MC_DEPLOY))

static const unsigned legal_to[MC_STATE__MAX] = {
    [MC_IDLE] = TO(MC_QUEUED) | TO(MC_DEAD),
    [MC_QUEUED] = TO(MC_IDLE) | TO(MC_START),
    [MC_START] =
        TO(MC_KEYWAIT) | TO(MC_KEYGEN) | TO(MC_ORDER) | TO(MC_MARK) | TO(MC_STORE) | TO(MC_IDLE),
    [MC_KEYWAIT] = TO(MC_KEYGEN) | TO(MC_IDLE),
    [MC_KEYGEN] = TO(MC_ORDER) | TO(MC_IDLE),
    [MC_ORDER] = TO(MC_STORE) | TO(MC_IDLE),
    [MC_MARK] = TO(MC_DEPLOY), /* mark_job_done deploys even after a failed mark */
    [MC_STORE] = TO(MC_DEPLOY) | TO(MC_IDLE),
    [MC_DEPLOY] = TO(MC_IDLE),
    [MC_DEAD] = 0,
};

static mgr_state_trace_cb g_trace;
static void *g_trace_arg;
static unsigned long g_refused;

const char *mgr_state_name(enum mc_state s)
{
    return (unsigned)s < MC_STATE__MAX ? state_names[s] : "?";
}

bool mgr_state_legal(enum mc_state from, enum mc_state to)
{
    if ((unsigned)from >= MC_STATE__MAX || (unsigned)to >= MC_STATE__MAX)
        return false;
    return (legal_to[from] & TO(to)) != 0;
}

int mgr_state_set(struct mcert *mc, enum mc_state to)
{
    enum mc_state from = mc->state;

    if (!mgr_state_legal(from, to)) {
        g_refused++;
        log_error(LOG_MAIN, "cert=%s: lifecycle: illegal transition %s -> %s refused (a bug)",
                  mc->name, mgr_state_name(from), mgr_state_name(to));
#ifdef CERTLOOP_DEBUG
        assert(!"illegal lifecycle transition");
#endif
        return -EINVAL;
    }
    mc->state = to;
    if (g_trace != NULL)
        g_trace(mc->name, from, to, g_trace_arg);
    return 0;
}

void mgr_state_trace_set(mgr_state_trace_cb cb, void *arg)
{
    g_trace = cb;
    g_trace_arg = arg;
}

unsigned long mgr_state_refused(void)
{
    return g_refused;
}

/* The backoff after mc's latest failure: exponential with jitter. */
int64_t mgr_backoff_at(const struct mcert *mc, int64_t now)
{
    return now + backoff_delay((unsigned)(mc->failures - 1), RETRY_FIRST_S,
                               mc->m->cfg->daemon.backoff_max_s, NULL, NULL);
}

/* ---- end of a run ---- */

void mgr_cert_free(struct mcert *mc)
{
    free(mc->ari_id);
    free(mc->ari_gen);
    free(mc->ari_expl);
    free(mc->profile);
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

void mgr_run_end(struct mcert *mc, int status, const char *error)
{
    struct manager *m = mc->m;
    const struct cfg_cert *cc = mc->run_cfg;

    if (status == 0) {
        char na[32];
        struct buf names = BUF_INIT(64 * 1024);
        for (size_t i = 0; i < cc->domains.n; i++)
            (void)buf_printf(&names, "%s%s", i ? "," : "", cc->domains.v[i]);
        mgr_fmt_time(mc->not_after, na, sizeof(na));
        log_info(LOG_MAIN, "%s cert=%s names=%s not_after=%s deployed=%zu actions",
                 mc->run_deploy_only ? "deployed" : "issued", mc->name,
                 names.data ? names.data : "", na, cc->n_deploy);
        buf_fini(&names);
        mc->summary = SUM_ISSUED;
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
            mgr_expiring_set(mc, 0);
        } else {
            mgr_hist_add(mc, "deployed", "%zu actions", cc->n_deploy);
        }
    } else if (status == -ECANCELED && (m->stopping || mgr_removed(mc))) {
        log_info(LOG_MAIN, "cert=%s: order cancelled (stopping)", mc->name);
        mc->summary = SUM_FAILED;
        free(mc->error);
        mc->error = xstrdup("cancelled");
        mgr_hist_add(mc, "cancelled", "stopping");
    } else {
        log_error(LOG_MAIN, "order cert=%s %s", mc->name, error ? error : err_str(status));
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
                                mc->expiring_sent, NULL)) {
            char na[32];
            mgr_fmt_time(mc->not_after, na, sizeof(na));
            log_warn(LOG_MAIN, "cert=%s: expires %s and its renewal keeps failing", mc->name, na);
            mgr_hist_add(mc, "expiring", "not_after %s", na);
            mgr_emit(mc, NOTIFY_EV_EXPIRING, mc->error, NULL);
            mgr_expiring_set(mc, mgr_now());
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
    if (deploy_failed)
        mc->summary = SUM_DEPLOY_FAILED;
    mc->run_deploy_only = false;
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
