/* The end of a run (mgr_run_end): its outcome recorded (log, history,
 * events, metrics, backoff), the run's resources released, and what comes
 * next (a deploy retry, a redeploy, or a new decision); and the end of an
 * entry (unlink, free). It starts no work itself beyond handing back to due.c. */
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

/* ---- end of a run ---- */

void mgr_cert_free(struct mcert *mc)
{
    free(mc->ari_id);
    free(mc->ari_gen);
    free(mc->ari_expl);
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
            mgr_emit(mc, mc->had_cert ? NOTIFY_EV_RENEWED : NOTIFY_EV_ISSUED, NULL, NULL);
            mgr_expiring_set(mc, 0);
        } else {
            mgr_hist_add(mc, "deployed", "%zu actions", cc->n_deploy);
        }
    } else if (status == -ECANCELED && (m->stopping || mc->removed)) {
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
            mc->retry_at = now + backoff_delay((unsigned)(mc->failures - 1), RETRY_FIRST_S,
                                               m->cfg->daemon.backoff_max_s, NULL, NULL);
            mc->ca_retry_at = mc->retry_after_s > 0 ? now + mc->retry_after_s : 0;
        } else {
            mc->retry_at = mgr_now() + backoff_delay((unsigned)(mc->failures - 1), RETRY_FIRST_S,
                                                   m->cfg->daemon.backoff_max_s, NULL, NULL);
        }
        mc->retry_after_s = 0;
        free(mc->failed_ident);
        mc->failed_ident = NULL;
    }
    /* a generation is stored (or was being redeployed) but a deploy action
     * failed: the deployment failed, not the certificate */
    bool deploy_failed = status != 0 && status != -ECANCELED && mc->generation != NULL;
    mc->deploy_failing = deploy_failed;
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
    mc->state = MC_IDLE;
    m->running--;

    if (mc->removed) {
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
