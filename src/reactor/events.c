/* The manager's clock and what it tells the world: dates for log lines,
 * the per-certificate history, webhook events ([notify.*]) and the times of
 * the last "expiring" and "persist_expiring" alerts. A leaf: it calls none of the other manager
 * files. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reactor/manager_internal.h"
#include "reactor/manager_notify.h"
#include "util/log.h"
#include "util/xalloc.h"

/* The manager's wall clock: time(2), or the one manager_opts injects (loop
 * tests move it by hand). One manager per process. */
static timerheap_clock_cb g_clock;
static void *g_clock_arg;

void mgr_clock_set(timerheap_clock_cb clock, void *arg)
{
    g_clock = clock;
    g_clock_arg = arg;
}

int64_t mgr_now(void)
{
    if (g_clock != NULL)
        return g_clock(g_clock_arg) / 1000;
    return (int64_t)time(NULL);
}

void mgr_fmt_date(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, n, "%Y-%m-%d", &tm) == 0)
        snprintf(out, n, "%" PRId64, t);
}

void mgr_fmt_time(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, n, "%" PRId64, t);
}

/* The log sink: a line naming a certificate ("cert=NAME", the subject the
 * manager, the ACME layer and deploy put first) joins that certificate's
 * log lines for `status NAME`. */
static bool cert_running(const struct manager *m, const char *name)
{
    for (const struct mcert *mc = m->certs; mc != NULL; mc = mc->next)
        if (strcmp(mc->name, name) == 0)
            return mc->state != MC_IDLE && mc->state != MC_QUEUED;
    return false;
}

void mgr_log_sink(enum log_level lvl, enum log_group g, const char *msg, void *arg)
{
    struct manager *m = arg;
    const char *p = strstr(msg, "cert=");
    char name[256];
    size_t n = 0;

    (void)g;
    if (p == NULL || m->hist == NULL || lvl == LOG_LVL_DEBUG)
        return;
    p += 5;
    while (n + 1 < sizeof(name) && p[n] != '\0' && p[n] != ' ' && p[n] != ':' && p[n] != ',')
        n++;
    if (n == 0)
        return;
    memcpy(name, p, n);
    name[n] = '\0';
    /* A dry run's lines name the same certificates: while the guest runs
     * NAME and we do not, they are its own, not our last run's. */
    if (m->guest != NULL && cert_running(m->guest, name) && !cert_running(m, name))
        return;
    history_log_line(m->hist, name, mgr_now(), msg);
}

__attribute__((format(printf, 4, 0))) static void
hist_addv(struct mcert *mc, bool persist, const char *event, const char *fmt, va_list ap)
{
    char detail[512];

    if (mc->m->hist == NULL)
        return;
    detail[0] = '\0';
    if (fmt != NULL)
        vsnprintf(detail, sizeof(detail), fmt, ap);
    int64_t now = mgr_now();
    if (strcmp(event, "ordering") == 0) /* a run begins: its log lines start afresh */
        history_log_clear(mc->m->hist, mc->name);
    history_add(mc->m->hist, mc->name, now, event, fmt != NULL ? detail : NULL);
    /* persisted too; a batch in flight counts as a job (the manager waits for it) */
    if (persist && mc->m->hw != NULL &&
        history_writer_add(mc->m->hw, mc->name, now, event, fmt != NULL ? detail : NULL))
        mc->m->jobs++;
}

void mgr_hist_add(struct mcert *mc, const char *event, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    hist_addv(mc, true, event, fmt, ap);
    va_end(ap);
}

void mgr_hist_add_mem(struct mcert *mc, const char *event, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    hist_addv(mc, false, event, fmt, ap);
    va_end(ap);
}

/* The CA problem type inside an error line ("...: urn:ietf:params:acme:
 * error:NAME: detail"), copied into out; NULL when there is none. */
static const char *problem_type_of(const char *err, char *out, size_t n)
{
    static const char prefix[] = "urn:ietf:params:acme:error:";
    const char *p = err != NULL ? strstr(err, prefix) : NULL;
    size_t len;

    if (p == NULL)
        return NULL;
    len = sizeof(prefix) - 1;
    while (p[len] != '\0' && p[len] != ':' && p[len] != ' ' && p[len] != ',')
        len++;
    if (len >= n)
        return NULL;
    memcpy(out, p, len);
    out[len] = '\0';
    return out;
}

static void alert_saved(void *arg)
{
    struct manager *m = arg;

    m->jobs--;
    mgr_maybe_finish(m);
}

void mgr_alert_set(struct mcert *mc, enum store_alert kind, int64_t t)
{
    struct manager *m = mc->m;

    if (t <= 0 && mc->alert_sent[kind] <= 0)
        return;
    mc->alert_sent[kind] = t;
    if (mgr_alert_save(m->store, mc->name, kind, t, alert_saved, m) == 0)
        m->jobs++;
}

int64_t mgr_persist_expiring(struct mcert *mc, int64_t now)
{
    const struct cfg_cert *cc = mc->cfg;
    int64_t window = mc->m->cfg->daemon.expiring_window_s, next = 0;
    int64_t sent = mc->alert_sent[STORE_ALERT_PERSIST_EXPIRING];
    char when[32];

    if (cc == NULL || cc->ca == NULL || cc->challenge != CFG_CHAL_DNSPERSIST01 ||
        cc->persist_until <= 0) {
        mgr_alert_set(mc, STORE_ALERT_PERSIST_EXPIRING, 0);
        return 0;
    }
    if (!notify_expiring_due(now, cc->persist_until, window, sent, &next)) {
        /* before the window (persist_until moved later, here or while
         * stopped): the series ended; the next one starts afresh */
        if (!notify_expiring_due(now, cc->persist_until, window, 0, NULL))
            mgr_alert_set(mc, STORE_ALERT_PERSIST_EXPIRING, 0);
        return next;
    }
    mgr_fmt_time(cc->persist_until, when, sizeof(when));
    log_warn(LOG_MAIN,
             "cert=%s: the CA accepts its dns-persist-01 records until %s (persist_until): set "
             "a later persist_until and run certloop persist-record %s --publish",
             mc->name, when, mc->name);
    mgr_hist_add(mc, "persist_expiring", "persist_until %s", when);
    mgr_emit(mc, NOTIFY_EV_PERSIST_EXPIRING, NULL, NULL);
    mgr_alert_set(mc, STORE_ALERT_PERSIST_EXPIRING, now);
    (void)notify_expiring_due(now, cc->persist_until, window, now, &next);
    return next;
}

/* Sends an event to every [notify.*] target subscribed to it. */
void mgr_emit(struct mcert *mc, enum notify_event_type type, const char *error,
              const char *identifier)
{
    struct manager *m = mc->m;
    const struct cfg_cert *cc = mc->run_cfg != NULL ? mc->run_cfg : mc->cfg;
    char ptype[128];
    char *json = NULL;
    const struct acme_problem *pd = type == NOTIFY_EV_FAILED ? mc->problem : NULL;
    struct notify_subproblem *subs = NULL;

    if ((m->notify == NULL && m->event == NULL) || cc == NULL)
        return;
    if (pd != NULL && pd->n_sub > 0) {
        subs = xcalloc(pd->n_sub, sizeof(*subs));
        for (size_t i = 0; i < pd->n_sub; i++)
            subs[i] = (struct notify_subproblem){pd->sub[i].type, pd->sub[i].detail,
                                                 pd->sub[i].identifier};
    }
    struct notify_event e = {
        .type = type,
        .certificate = mc->name,
        .domains = (const char *const *)cc->domains.v,
        .n_domains = cc->domains.n,
        .time = mgr_now(),
        .not_after =
            type == NOTIFY_EV_FAILED || type == NOTIFY_EV_DEPLOY_FAILED ? 0 : mc->not_after,
        .persist_until = type == NOTIFY_EV_PERSIST_EXPIRING ? cc->persist_until : 0,
        .error_type = pd != NULL && pd->type != NULL ? pd->type
                                                     : problem_type_of(error, ptype, sizeof(ptype)),
        .error_detail = error,
        .error_identifier = identifier,
        .subproblems = subs,
        .n_subproblems = pd != NULL ? pd->n_sub : 0,
    };
    if (notify_event_build(&e, &json) == 0) {
        if (m->event != NULL)
            m->event(json, m->arg); /* the API's event stream */
        int n = m->notify != NULL ? notify_emit(m->notify, json) : 0;
        if (n > 0)
            log_info(LOG_MAIN, "cert=%s: %s event queued for %d webhook(s)", mc->name,
                     notify_event_name(type), n);
    }
    free(json);
    free(subs);
}
