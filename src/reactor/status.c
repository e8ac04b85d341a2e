/* Read-only views of the manager for the control socket and --once:
 * GET /v1/status (the state word of each certificate), GET /metrics, and
 * the summary `run --once` prints. It changes nothing. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reactor/fleet.h"
#include "reactor/manager_internal.h"
#include "reactor/sched.h"
#include "reactor/control.h"
#include "reactor/statusview.h"
#include "util/xalloc.h"

void mgr_print_summary(struct manager *m)
{
    struct buf own = BUF_INIT(SIZE_MAX);
    struct buf *b = m->summary != NULL ? m->summary : &own;

    for (struct mcert *mc = m->certs; mc != NULL; mc = mc->next) {
        char a[32], b2[32];
        if (mc->cfg != NULL && mc->cfg->ca == NULL && mc->summary != SUM_FAILED &&
            mc->summary != SUM_DEPLOY_FAILED && mc->not_after > 0) {
            mgr_fmt_date(mc->not_after, a, sizeof(a));
            buf_printf(b, "%s: %s, valid until %s\n", mc->name,
                       mc->cfg->hub != NULL ? "pulled" : "imported", a);
            continue;
        }
        switch (mc->summary) {
        case SUM_ISSUED:
            mgr_fmt_date(mc->not_after, a, sizeof(a));
            buf_printf(b, "%s: issued, expires %s\n", mc->name, a);
            break;
        case SUM_DEPLOYED:
            mgr_fmt_date(mc->not_after, a, sizeof(a));
            buf_printf(b, "%s: deployed the stored generation, expires %s\n", mc->name, a);
            break;
        case SUM_FAILED:
        case SUM_DEPLOY_FAILED:
            buf_printf(b, "%s: failed: %s\n", mc->name, mc->error ? mc->error : "unknown error");
            break;
        case SUM_OK:
            if (mc->not_after > 0) {
                mgr_fmt_date(mc->not_after, a, sizeof(a));
                mgr_fmt_date(mc->renew_at, b2, sizeof(b2));
                buf_printf(b, "%s: ok, valid until %s, renewal %s\n", mc->name, a, b2);
            } else {
                buf_printf(b, "%s: ok\n", mc->name);
            }
            break;
        case SUM_HELD:
            mgr_fmt_time(mc->next_at, a, sizeof(a));
            buf_printf(b,
                       "%s: held back: ca=%s's max_new_orders (new orders per CA account) "
                       "reached; not ordered, possible again at %s\n",
                       mc->name, mc->cfg != NULL && mc->cfg->ca != NULL ? mc->cfg->ca->name : "?",
                       a);
            break;
        case SUM_NONE:
            buf_printf(b, "%s: not processed\n", mc->name);
            break;
        }
    }
    if (b == &own) {
        if (own.len > 0)
            fwrite(own.data, 1, own.len, stdout);
        fflush(stdout);
        buf_fini(&own);
    }
}

/* ---- status and renew (the control socket's handlers call these) ---- */

/* `certloop revoke` notes the current generation as revoked while the
 * daemon runs: look for it at status time (small inline reads). */
static bool revoked_now(const struct mcert *mc)
{
    struct store_cert sc = {0};
    char *reason = NULL;
    bool reissue = false, r = false;

    if (store_cert_read_current(mc->m->store, mc->name, false, &sc) == 0 && sc.generation != NULL)
        r = sched_revoked_read(mc->m->store, mc->name, sc.generation, &reason, &reissue) == 0;
    free(reason);
    store_cert_fini(&sc);
    return r;
}

/* The facts statusview_decide needs, from the manager's record. */
static void status_of(const struct mcert *mc, int64_t now, struct statusview *out)
{
    struct statusview_in in = {
        .deploy_waiting = mc->journal_shared,
        .deploy_failed = mc->summary == SUM_DEPLOY_FAILED,
        .failures = mc->failures > 0 ? (unsigned)mc->failures : 0,
        .retry_scheduled = mc->next_is_retry,
        .not_after = mc->not_after,
        .next_at = mc->tentry != NULL ? mc->next_at : 0,
        .last_error = mc->last_error,
        .last_error_at = mc->last_error_at,
        .last_success_at = mc->last_success_at,
        .revoked = mc->revoked_reason != NULL || revoked_now(mc),
    };

    switch (mc->state) {
    case MC_QUEUED:
        in.phase = STATUSVIEW_QUEUED;
        break;
    case MC_START:
    case MC_LEASE:
    case MC_KEYWAIT:
    case MC_KEYGEN:
    case MC_ORDER:
        in.phase = STATUSVIEW_ORDERING;
        break;
    case MC_STORE:
        in.phase = STATUSVIEW_STORING;
        break;
    case MC_MARK:
    case MC_DEPLOY:
        in.phase = STATUSVIEW_DEPLOYING;
        break;
    case MC_IDLE:
    case MC_DEAD:
    case MC_STATE__MAX:
        in.phase = STATUSVIEW_IDLE;
        break;
    }
    statusview_decide(&in, now, out);
}

/* One certificate's row of the status document (its history and log
 * arrays are new references; *from, set for a pulled certificate, is the
 * caller's to free once the row is dumped). */
static void fill_status(const struct manager *m, const struct mcert *mc, int64_t now,
                        struct control_cert_status *st, char **from)
{
    const struct cfg_cert *cc = mc->run_cfg != NULL ? mc->run_cfg : mc->cfg;
    struct statusview v;

    memset(st, 0, sizeof(*st));
    status_of(mc, now, &v);
    st->name = mc->name;
    st->state = v.state;
    if (cc != NULL) {
        st->domains = (const char *const *)cc->domains.v;
        st->n_domains = cc->domains.n;
        st->ca = cc->ca != NULL ? cc->ca->name : NULL;
        if (cc->hub != NULL) { /* a pulled certificate: its source */
            *from = xasprintf("hub.%s", cc->hub->name);
            st->from = *from;
            st->hub_error = mgr_pull_hub_error(m, cc->hub->name);
        }
    }
    st->profile = mc->profile;
    st->not_before = mc->not_before;
    st->not_after = mc->not_after;
    st->next_renewal = v.next_renewal;
    st->reason = mc->reason;
    st->last_error = v.last_error;
    st->last_error_at = v.last_error_at;
    st->last_success_at = mc->last_success_at;
    st->consecutive_failures = (unsigned)mc->failures;
    st->paused = mgr_names_paused(mc);
    if (mc->ari_id != NULL && mc->ari_end > 0) {
        st->ari_start = mc->ari_start;
        st->ari_end = mc->ari_end;
        st->ari_explanation_url = mc->ari_expl;
    }
    if (cc != NULL && cc->challenge == CFG_CHAL_DNSPERSIST01 && cc->persist_until > 0) {
        st->persist_until = cc->persist_until;
        st->persist_expiring = mc->persist_sent > 0;
    }
    st->history = m->hist != NULL ? history_json(m->hist, mc->name) : NULL;
    st->log = m->hist != NULL ? history_log_json(m->hist, mc->name) : NULL;
}

static unsigned in_flight(const struct manager *m, size_t *n)
{
    unsigned inflight = 0;

    *n = 0;
    for (const struct mcert *mc = m->certs; mc != NULL; mc = mc->next) {
        (*n)++;
        if (mc->state != MC_IDLE && mc->state != MC_QUEUED)
            inflight++;
    }
    return inflight;
}

/* The members after "certificates": the store's reachability (a database
 * may be away; the file store always answers) and, with a store shared
 * with other instances, the fleet view. */
static json_t *status_extras(const struct manager *m)
{
    struct store_health h;

    store_health(m->store, &h);
    json_t *sj =
        json_pack("{s:s, s:b, s:I, s:i}", "type", store_type(m->store), "reachable", !h.down,
                  "failures", (json_int_t)h.failures, "writes_waiting", (int)h.waiting);
    if (h.down) {
        char since[32];
        mgr_fmt_time(h.down_since, since, sizeof(since));
        json_object_set_new(sj, "unreachable_since", json_string(since));
        json_object_set_new(sj, "error", json_string(h.error));
    }
    json_t *x = json_pack("{s:o}", "store", sj);
    json_t *fleet = fleet_view_json(m->fleet_view);
    if (fleet != NULL)
        json_object_set_new(x, "fleet", fleet);
    return x;
}

json_t *manager_status(const struct manager *m)
{
    size_t n = 0, i = 0;
    int64_t now = mgr_now();
    unsigned inflight = in_flight(m, &n);
    struct control_cert_status *st = xcalloc(n > 0 ? n : 1, sizeof(*st));
    char **from = xcalloc(n > 0 ? n : 1, sizeof(*from));

    for (const struct mcert *mc = m->certs; mc != NULL; mc = mc->next, i++)
        fill_status(m, mc, now, &st[i], &from[i]);
    json_t *j = control_status_json(st, n, now, inflight);
    for (size_t k = 0; k < n; k++)
        free(from[k]);
    free(from);
    free(st);
    json_t *x = status_extras(m);
    json_object_update(j, x);
    json_decref(x);
    return j;
}

void manager_status_write(const struct manager *m, struct buf *out)
{
    size_t n = 0, i = 0;
    int64_t now = mgr_now();
    unsigned inflight = in_flight(m, &n);

    control_status_begin(out, now, inflight);
    for (const struct mcert *mc = m->certs; mc != NULL; mc = mc->next, i++) {
        struct control_cert_status st;
        char *from = NULL;
        fill_status(m, mc, now, &st, &from);
        control_status_cert(out, i, control_cert_json(&st));
        free(from);
    }
    control_status_end(out, n, status_extras(m));
}

int manager_metrics(const struct manager *m, struct buf *out)
{
    size_t n = 0, i = 0;
    unsigned inflight = 0;

    for (const struct mcert *mc = m->certs; mc != NULL; mc = mc->next)
        n++;
    struct metrics_cert *mcs = xcalloc(n > 0 ? n : 1, sizeof(*mcs));
    for (const struct mcert *mc = m->certs; mc != NULL; mc = mc->next, i++) {
        if (mc->state != MC_IDLE && mc->state != MC_QUEUED)
            inflight++;
        mcs[i].name = mc->name;
        mcs[i].not_after = mc->not_after;
        mcs[i].next_renewal = mc->tentry != NULL ? mc->next_at : 0;
        mcs[i].renewals_ok = mc->renewals_ok;
        mcs[i].renewals_failed = mc->renewals_failed;
    }
    struct metrics_snapshot snap = {
        .certs = mcs,
        .n_certs = n,
        .order_duration = &m->order_hist,
        .orders_in_flight = inflight,
    };
    struct store_health h;
    store_health(m->store, &h);
    snap.store_type = store_type(m->store);
    snap.store_up = !h.down;
    snap.store_failures = h.failures;
    snap.store_waiting = h.waiting;
    int rc = metrics_write(&snap, out);
    free(mcs);
    return rc;
}
