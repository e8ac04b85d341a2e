/* The lifecycle of one certificate entry: its state machine (the only
 * place that changes mc->state, refusing a transition not in the table),
 * its deadline in the timer heap and its place in the run queue, and the
 * backoff after failures. It decides nothing and starts no step of a run:
 * when a deadline comes, it hands the entry to due.c (mgr_decide). */
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
 *   START     LEASE     run.c lease_start: a shared store: the certificate's lease first
 *   LEASE     KEYWAIT, KEYGEN, ORDER   run.c lease_taken: as from START, lease held
 *   START     KEYWAIT   run.c keygen_start: RSA key generations are all busy
 *   START     KEYGEN    run.c keygen_start: a new order needs a key
 *   START     ORDER     run.c: resuming an order left behind (its key is stored)
 *   START     MARK      run.c deploy_stored: a deploy-only run
 *   START     STORE     run.c import_run: the imported files changed
 *   KEYWAIT   KEYGEN    run.c keygen_next: a slot is free
 *   KEYGEN    ORDER     run.c key_job_done
 *   ORDER     STORE     run.c order_done -> store_and_deploy
 *   MARK      DEPLOY    run.c mark_job_done -> mgr_deploy_begin
 *   STORE     DEPLOY    run.c store_job_done -> mgr_deploy_begin
 *   START..DEPLOY IDLE  mgr_run_end (due.c): every run ends there, whatever its outcome
 *   IDLE      DEAD      mgr_cert_unlink: removed by a reload, or the teardown
 */
static const char *const state_names[MC_STATE__MAX] = {
    [MC_IDLE] = "idle",     [MC_QUEUED] = "queued", [MC_START] = "start", [MC_KEYWAIT] = "keywait",
    [MC_KEYGEN] = "keygen", [MC_ORDER] = "order",   [MC_MARK] = "mark",   [MC_STORE] = "store",
    [MC_DEPLOY] = "deploy", [MC_DEAD] = "dead",     [MC_LEASE] = "lease",
};

#define TO(s) (1u << (s))
#define RUN_STATES                                                                                 \
    (TO(MC_START) | TO(MC_LEASE) | TO(MC_KEYWAIT) | TO(MC_KEYGEN) | TO(MC_ORDER) | TO(MC_MARK) |   \
     TO(MC_STORE) | TO(MC_DEPLOY))

static const unsigned legal_to[MC_STATE__MAX] = {
    [MC_IDLE] = TO(MC_QUEUED) | TO(MC_DEAD),
    [MC_QUEUED] = TO(MC_IDLE) | TO(MC_START),
    [MC_START] = TO(MC_LEASE) | TO(MC_KEYWAIT) | TO(MC_KEYGEN) | TO(MC_ORDER) | TO(MC_MARK) |
                 TO(MC_STORE) | TO(MC_IDLE),
    [MC_LEASE] = TO(MC_KEYWAIT) | TO(MC_KEYGEN) | TO(MC_ORDER) | TO(MC_IDLE),
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

/* ---- the deadline and the queue ---- */

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
