/* Deployment, all or nothing per certificate: files, per-certificate
 * exec actions and hooks.d/deploy, with a journal of what they replaced;
 * commit or rollback off the loop. And the round around every run:
 * hooks.d/pre before the first, each distinct shared reload command once
 * after the last, then the commits or rollbacks they decide, then
 * hooks.d/post. It never orders or stores a certificate. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/fleet.h"
#include "reactor/manager_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

/* ---- deploy ---- */

/* A deployment is all or nothing per certificate (issue #6). Its files
 * actions keep what they replace in mc->journal until every part of it has
 * succeeded: the per-certificate exec actions, hooks.d/deploy, and the
 * round's reload commands the certificate takes part in. Then the backups
 * go (commit); on the first failure every file goes back (rollback), off
 * the loop, and the deployment (not the certificate) has failed. The
 * order file goes only with the commit: a restart before it (a crash, or a
 * deployment that failed) finds it and deploys the stored generation again
 * (order_left_behind). */

static void deploy_next(struct mcert *mc);
static void deploy_hooks_done(int status, size_t run, size_t failed, void *arg);
static void round_defer_exec(struct mcert *mc, const struct cfg_deploy *d);
static void round_settled(struct manager *m, const char *name, const char *e);

struct settle_job {
    struct manager *m;
    struct mcert *mc;         /* the run that ends afterwards, or NULL */
    bool round;               /* mc NULL: round_settle's (round_settled follows) */
    char *name;               /* owned: the certificate */
    struct deploy_journal *j; /* owned */
    bool commit;
    int status; /* for run_end */
    char *why;  /* owned: what failed (rollback), or NULL */
    /* set by the worker */
    size_t count;
    char *err;
};

static int settle_job_work(void *arg)
{
    struct settle_job *j = arg;

    if (!j->commit)
        return deploy_journal_rollback_sync(j->j, &j->count, &j->err);
    j->count = (size_t)deploy_journal_commit_sync(j->j);
    return 0;
}

/* The end of a settle: logs, then ends the run or the round. */
static void settle_end(struct settle_job *j, int status, const char *store_err)
{
    struct manager *m = j->m;
    char *e = NULL;

    m->jobs--;
    if (j->commit && status < 0)
        log_warn(LOG_MAIN, "cert=%s: removing the order and the redeploy mark: %s", j->name,
                 store_err != NULL ? store_err : err_str(status));
    else if (j->commit)
        log_debug(LOG_DEPLOY, "deploy cert=%s: committed (%zu backups removed)", j->name, j->count);
    else if (status < 0)
        log_error(LOG_DEPLOY, "deploy cert=%s: rolled back only %zu files after: %s; %s", j->name,
                  j->count, j->why, j->err != NULL ? j->err : err_str(status));
    else if (j->count > 0)
        log_warn(LOG_DEPLOY, "deploy cert=%s: rolled back %zu files after: %s", j->name, j->count,
                 j->why);
    if (!j->commit && status < 0)
        e = xasprintf("deployment failed: %s; rolled back only %zu file(s): %s", j->why, j->count,
                      j->err != NULL ? j->err : err_str(status));
    else if (!j->commit && j->count > 0)
        e = xasprintf("deployment failed: %s; rolled back %zu file(s)", j->why, j->count);
    else if (!j->commit)
        e = xasprintf("deployment failed: %s", j->why); /* nothing was replaced */
    if (j->mc != NULL)
        mgr_run_end(j->mc, j->commit ? j->status : ERR_DEPLOY, e);
    else if (j->round)
        round_settled(m, j->name, e);
    else
        mgr_maybe_finish(m);
    free(e);
    deploy_journal_free(j->j);
    free(j->name);
    free(j->why);
    free(j->err);
    free(j);
}

static void settle_store_done(int status, const struct store_result *r, void *arg)
{
    settle_end(arg, status, r->error);
}

/* After the journal: a commit also forgets the order and the redeploy mark
 * (store_order_settle_start), and only then is the run over. */
static void settle_job_done(int status, void *arg)
{
    struct settle_job *j = arg;

    if (j->commit && status == 0) {
        status = store_order_settle_start(j->m->store, j->name, settle_store_done, j);
        if (status == 0)
            return;
    }
    settle_end(j, status, NULL);
}

/* Ends the deployment of the certificate name with journal (owned): commit
 * (its backups and the order file go) or, with why, rollback. mc: the run
 * to end afterwards with status, or NULL; round: round_settle's job. */
void mgr_settle_start(struct manager *m, struct mcert *mc, bool round, const char *name,
                      struct deploy_journal *journal, int status, const char *why)
{
    struct settle_job *j = xcalloc(1, sizeof(*j));

    j->m = m;
    j->mc = mc;
    j->round = round;
    j->name = xstrdup(name);
    j->j = journal != NULL ? journal : deploy_journal_new();
    j->commit = why == NULL;
    j->status = status;
    j->why = why != NULL ? xstrdup(why) : NULL;
    m->jobs++; /* settle_job_done decrements it */
    int rc = store_job_start(m->loop, settle_job_work, j, settle_job_done);
    if (rc < 0) {
        log_error(LOG_DEPLOY, "deploy cert=%s: queue work: %s", name, err_str(rc));
        settle_job_done(rc, j);
    }
}

/* The per-certificate part of the deployment failed (why: what failed and
 * why): every file of the deployment goes back, then the run ends. */
static void deploy_fail(struct mcert *mc, const char *why)
{
    struct deploy_journal *j = mc->journal;

    mc->journal = NULL;
    mc->journal_shared = false;
    mgr_settle_start(mc->m, mc, false, mc->name, j, ERR_DEPLOY, why);
}

static void files_done(int status, const char *error, void *arg)
{
    struct mcert *mc = arg;

    mc->files = NULL;
    if (status != 0) {
        deploy_fail(mc, error); /* logged by deploy */
        return;
    }
    mc->deploy_idx++;
    deploy_next(mc);
}

static void exec_done(int status, const struct deploy_exec_result *res, void *arg)
{
    struct mcert *mc = arg;

    mc->exec = NULL;
    if (status != 0) {
        char *why = deploy_exec_describe(NULL, &mc->run_cfg->deploy[mc->deploy_idx], status, res);
        deploy_fail(mc, why);
        free(why);
        return;
    }
    mc->deploy_idx++;
    deploy_next(mc);
}

/* What exec actions and hooks.d/deploy get (CERTLOOP_*) for mc's run. */
static struct deploy_env run_env(const struct mcert *mc)
{
    const struct cfg_cert *cc = mc->run_cfg;

    return (struct deploy_env){
        .name = mc->name,
        .domains = (const char *const *)cc->domains.v,
        .n_domains = cc->domains.n,
        .cert_dir = mc->gen_dir,
        .event = mc->had_cert ? "renewed" : "issued",
    };
}

/* Whether a hook of this deployment may read the generation's files
 * (RENEWED_LINEAGE) and the store has not said where they are: a shared
 * store keeps them in the database, and writes them out only then (a
 * private key on disk that nothing reads is one too many). */
static bool lineage_wanted(const struct mcert *mc)
{
    const struct cfg_cert *cc = mc->run_cfg;

    if (mc->gen_dir != NULL && mc->gen_dir[0] != '\0')
        return false;
    for (size_t i = 0; i < cc->n_deploy; i++)
        if (cc->deploy[i].type == CFG_DEPLOY_EXEC)
            return true;
    /* hooks.d/deploy: a listing of a local directory (as its run makes) */
    const char *hd = mc->m->cfg->daemon.hooks_dir;
    char *dir = xasprintf("%s/%s", hd != NULL ? hd : DEPLOY_HOOKS_DIR_DEFAULT,
                          deploy_hook_phase_name(DEPLOY_HOOK_DEPLOY));
    char **v = NULL;
    size_t n = 0;
    int rc = deploy_hooks_list(dir, &v, &n);
    free(dir);
    deploy_hooks_list_free(v);
    return rc < 0 || n > 0;
}

static void lineage_done(int status, const struct store_result *r, void *arg)
{
    struct mcert *mc = arg;

    mc->m->jobs--;
    if (status < 0) {
        char *why = xasprintf("writing the certificate's files for hooks: %s",
                              r->error != NULL ? r->error : err_str(status));
        log_error(LOG_DEPLOY, "deploy cert=%s: %s", mc->name, why);
        deploy_fail(mc, why);
        free(why);
        return;
    }
    free(mc->gen_dir);
    mc->gen_dir = xstrdup(r->lineage != NULL ? r->lineage : "");
    deploy_next(mc);
}

/* Starts the deployment of the run's generation. */
void mgr_deploy_begin(struct mcert *mc)
{
    (void)mgr_state_set(mc, MC_DEPLOY);
    mc->deploy_idx = 0;
    /* a deployment earlier in this round still waiting for the round's
     * reload commands goes on in the same journal */
    if (mc->journal == NULL)
        mc->journal = deploy_journal_new();
    if (lineage_wanted(mc) && mc->res != NULL) {
        /* exactly what this run deploys: the same PEMs and key */
        struct store_cert c = {
            .generation = mc->generation,
            .cert_pem = mc->res->cert_pem,
            .chain_pem = mc->res->chain_pem,
            .fullchain_pem = mc->res->fullchain_pem,
            .key_pem = mc->key_pem,
        };
        mc->m->jobs++;
        int rc = store_lineage_start(mc->m->store, mc->name, &c, lineage_done, mc);
        if (rc == 0)
            return;
        mc->m->jobs--;
        if (rc != -ENOTSUP) {
            lineage_done(rc, &(struct store_result){0}, mc);
            return;
        }
    }
    deploy_next(mc);
}

/* Runs the deploy actions in order, up to the first failure. Reload
 * commands shared by the round (exec actions without per_certificate) are
 * handed to the round only once the rest has succeeded. */
static void deploy_next(struct mcert *mc)
{
    struct manager *m = mc->m;
    const struct cfg_cert *cc = mc->run_cfg;
    struct acme_order_result *res = mc->res;
    int rc;

    while (!m->stopping && mc->deploy_idx < cc->n_deploy) {
        const struct cfg_deploy *d = &cc->deploy[mc->deploy_idx];
        if (d->type == CFG_DEPLOY_FILES) {
            struct store_cert sc = {
                .dir = mc->gen_dir,
                .generation = mc->generation,
                .cert_pem = res->cert_pem,
                .chain_pem = res->chain_pem,
                .fullchain_pem = res->fullchain_pem,
                .key_pem = mc->key_pem,
                .meta_json = NULL,
            };
            rc = deploy_files_start(m->loop, mc->name, d, &sc, mc->journal, files_done, mc,
                                    &mc->files);
        } else if (!d->per_certificate) {
            mc->deploy_idx++; /* the round runs it (deploy_hooks_done) */
            continue;
        } else {
            struct deploy_env env = run_env(mc);
            rc = deploy_exec_start(m->loop, d, &env, exec_done, mc, &mc->exec);
        }
        if (rc == 0)
            return;
        char *why = xasprintf("deploy action %zu could not be started: %s", mc->deploy_idx + 1,
                              err_str(rc));
        log_error(LOG_DEPLOY, "deploy cert=%s: %s", mc->name, why);
        deploy_fail(mc, why);
        free(why);
        return;
    }
    if (m->stopping && mc->deploy_idx < cc->n_deploy) {
        /* the order file stays: the next start deploys this generation
         * (the backups go with deploy_files_sweep) */
        mgr_run_end(mc, -ECANCELED, "stopped before every deploy action ran");
        return;
    }
    /* hooks.d/deploy for this certificate, then the run is done */
    struct deploy_env env = run_env(mc);
    rc = deploy_hooks_start(m->loop, m->cfg->daemon.hooks_dir, DEPLOY_HOOK_DEPLOY, &env, 0,
                            deploy_hooks_done, mc, &mc->hooks);
    if (rc < 0) {
        mc->hooks = NULL;
        deploy_fail(mc, "hooks.d/deploy cannot be read");
    }
}

static void deploy_hooks_done(int status, size_t run, size_t failed, void *arg)
{
    struct mcert *mc = arg;
    const char *first = deploy_hooks_error(mc->hooks);
    const struct cfg_cert *cc = mc->run_cfg;

    mc->hooks = NULL;
    if (status != 0) {
        char *why = xasprintf("%s (%zu of %zu hooks.d/deploy hooks failed)",
                              first != NULL ? first : err_str(status), failed, run);
        deploy_fail(mc, why);
        free(why);
        return;
    }
    /* the reload commands this certificate shares with the round: its
     * deployment succeeds or fails with them (round_settle) */
    for (size_t i = 0; i < cc->n_deploy; i++) {
        if (cc->deploy[i].type == CFG_DEPLOY_EXEC && !cc->deploy[i].per_certificate) {
            round_defer_exec(mc, &cc->deploy[i]);
            mc->journal_shared = true;
        }
    }
    if (mc->journal_shared) {
        mgr_run_end(mc, 0, NULL);
        return;
    }
    struct deploy_journal *j = mc->journal;
    mc->journal = NULL;
    mgr_settle_start(mc->m, mc, false, mc->name, j, 0, NULL);
}

/* ---- rounds: hooks.d/pre and post, reload commands once ---- */

static void pre_done(int status, size_t run, size_t failed, void *arg)
{
    struct manager *m = arg;

    m->hooks = NULL;
    if (status != 0)
        log_warn(LOG_DEPLOY, "hooks.d/pre: %zu of %zu hooks failed; the round goes on", failed,
                 run);
    m->round = ROUND_ACTIVE;
    mgr_pump(m);
}

/* True when runs may start now; else the pre hooks run first. */
bool mgr_round_begin(struct manager *m)
{
    if (m->round == ROUND_ACTIVE)
        return true;
    if (m->round != ROUND_IDLE)
        return false;
    m->round = ROUND_PRE;
    if (deploy_hooks_start(m->loop, m->cfg->daemon.hooks_dir, DEPLOY_HOOK_PRE, NULL, 0, pre_done, m,
                           &m->hooks) < 0) {
        m->hooks = NULL; /* unreadable: logged */
        m->round = ROUND_ACTIVE;
        return true;
    }
    return false;
}

static bool rexec_has(const struct rexec *x, const char *name)
{
    for (size_t k = 0; k < x->n_certs; k++)
        if (strcmp(x->certs[k], name) == 0)
            return true;
    return false;
}

static void round_defer_exec(struct mcert *mc, const struct cfg_deploy *d)
{
    struct manager *m = mc->m;
    struct rexec *x = NULL;

    for (size_t i = 0; i < m->n_rexecs; i++)
        if (deploy_exec_same(m->rexecs[i].d, d))
            x = &m->rexecs[i];
    if (x == NULL) {
        m->rexecs = xrealloc(m->rexecs, (m->n_rexecs + 1) * sizeof(*m->rexecs));
        x = &m->rexecs[m->n_rexecs++];
        memset(x, 0, sizeof(*x));
        x->snap = config_ref(mc->run_snap);
        x->d = d;
        x->cc = mc->run_cfg;
        x->name = xstrdup(mc->name);
        x->gen_dir = xstrdup(mc->gen_dir != NULL ? mc->gen_dir : "");
        x->event = mc->had_cert ? "renewed" : "issued";
        log_info(LOG_DEPLOY, "deploy cert=%s cmd=%s: runs once the round's deployments are done",
                 mc->name, d->command.v[0]);
    } else {
        log_info(LOG_DEPLOY, "deploy cert=%s cmd=%s: already due this round (for %s)", mc->name,
                 d->command.v[0], x->name);
    }
    if (rexec_has(x, mc->name))
        return; /* deployed twice this round */
    x->certs = xrealloc(x->certs, (x->n_certs + 1) * sizeof(char *));
    x->certs[x->n_certs++] = xstrdup(mc->name);
}

void mgr_round_free_execs(struct manager *m)
{
    for (size_t i = 0; i < m->n_rexecs; i++) {
        struct rexec *x = &m->rexecs[i];
        for (size_t k = 0; k < x->n_certs; k++)
            free(x->certs[k]);
        free(x->certs);
        free(x->name);
        free(x->gen_dir);
        free(x->why);
        config_unref(x->snap);
    }
    free(m->rexecs);
    m->rexecs = NULL;
    m->n_rexecs = 0;
    m->rexec_idx = 0;
}

/* The deployment of mc failed after its run ended (a reload command of the
 * round) and was rolled back: the deployment failed, not the certificate,
 * and a deploy-only retry is armed. */
static void deploy_mark_failed(struct mcert *mc, const char *e)
{
    struct manager *m = mc->m;

    log_error(LOG_MAIN, "deploy cert=%s: %s", mc->name, e);
    m->failed++;
    mc->failures++;
    free(mc->error);
    mc->error = xstrdup(e);
    free(mc->last_error);
    mc->last_error = xstrdup(e);
    mc->last_error_at = mgr_now();
    mc->summary = SUM_DEPLOY_FAILED;
    mc->deploy_only = true;
    mc->retry_at = mgr_backoff_at(mc, mgr_now());
    mc->reason = "deploy retry after a failure";
    mgr_hist_add(mc, "failed", "%s", e);
    mgr_emit(mc, NOTIFY_EV_DEPLOY_FAILED, e, NULL);
    fleet_view_deployed(m->fleet_view, mc->name, NULL, false, e); /* its stored generation */
    if (mc->state == MC_IDLE && !m->once && !m->stopping)
        mgr_arm(mc, mc->retry_at);
}

static void post_done(int status, size_t run, size_t failed, void *arg)
{
    struct manager *m = arg;

    m->hooks = NULL;
    if (status != 0)
        log_warn(LOG_DEPLOY, "hooks.d/post: %zu of %zu hooks failed", failed, run);
    mgr_round_free_execs(m);
    m->round = ROUND_IDLE;
    mgr_pump(m);
}

/* The round's deployments are settled: hooks.d/post, then the round is
 * over. async: called back from a job (pump here), not from round_end. */
static void round_post(struct manager *m, bool async)
{
    if (!m->stopping && deploy_hooks_start(m->loop, m->cfg->daemon.hooks_dir, DEPLOY_HOOK_POST,
                                           NULL, 0, post_done, m, &m->hooks) == 0)
        return;
    m->hooks = NULL;
    mgr_round_free_execs(m);
    m->round = ROUND_IDLE;
    if (async)
        mgr_pump(m);
}

/* One deployment of the round is settled (e: its error after a rollback,
 * or NULL), or with name NULL, round_settle has started them all. */
static void round_settled(struct manager *m, const char *name, const char *e)
{
    for (struct mcert *mc = m->certs; mc != NULL && name != NULL; mc = mc->next) {
        if (mgr_removed(mc) || strcmp(mc->name, name) != 0)
            continue;
        if (e != NULL)
            deploy_mark_failed(mc, e);
        else
            mc->failures = 0; /* the backoff restarts only once a deployment succeeds */
        break;
    }
    if (--m->settling > 0)
        return;
    if (m->round != ROUND_END) {
        mgr_maybe_finish(m); /* stopped meanwhile */
        return;
    }
    round_post(m, name != NULL);
}

/* The reload commands have run: each deployment that took part in one is
 * committed when all of its commands succeeded, else rolled back. */
static void round_settle(struct manager *m)
{
    m->settling++; /* held until every job is started */
    for (struct mcert *mc = m->certs; mc != NULL; mc = mc->next) {
        if (mgr_removed(mc) || !mc->journal_shared)
            continue;
        const char *why = NULL;
        for (size_t i = 0; i < m->n_rexecs && why == NULL; i++)
            if (m->rexecs[i].why != NULL && rexec_has(&m->rexecs[i], mc->name))
                why = m->rexecs[i].why;
        struct deploy_journal *j = mc->journal;
        mc->journal = NULL;
        mc->journal_shared = false;
        m->settling++;
        mgr_settle_start(m, NULL, true, mc->name, j, 0, why);
    }
    round_settled(m, NULL, NULL);
}

static void round_next_exec(struct manager *m);

static void rexec_done(int status, const struct deploy_exec_result *res, void *arg)
{
    struct manager *m = arg;
    struct rexec *x = &m->rexecs[m->rexec_idx];

    m->rexec_op = NULL;
    if (status != 0)
        x->why = deploy_exec_describe("reload command", x->d, status, res);
    m->rexec_idx++;
    round_next_exec(m);
}

static void round_next_exec(struct manager *m)
{
    while (m->rexec_idx < m->n_rexecs && !m->stopping) {
        struct rexec *x = &m->rexecs[m->rexec_idx];
        struct deploy_env env = {
            .name = x->name,
            .domains = (const char *const *)x->cc->domains.v,
            .n_domains = x->cc->domains.n,
            .cert_dir = x->gen_dir,
            .event = x->event,
        };
        if (deploy_exec_start(m->loop, x->d, &env, rexec_done, m, &m->rexec_op) == 0)
            return;
        m->rexec_op = NULL;
        x->why = deploy_exec_describe("reload command", x->d, ERR_HOOK, NULL);
        m->rexec_idx++;
    }
    if (m->rexec_idx < m->n_rexecs) {
        log_warn(LOG_DEPLOY, "stopping: %zu deploy command(s) of this round not run",
                 m->n_rexecs - m->rexec_idx);
        round_post(m, false);
        return;
    }
    round_settle(m);
}

/* Every run of the round has ended: the deferred commands, then post. */
bool mgr_round_end(struct manager *m)
{
    if (m->round != ROUND_ACTIVE || m->running > 0 || m->qhead != NULL || m->khead != NULL)
        return false;
    m->round = ROUND_END;
    m->rexec_idx = 0;
    round_next_exec(m);
    return m->round != ROUND_IDLE;
}
