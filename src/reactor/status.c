/* Read-only views of the manager for the control socket, the HTTPS API
 * and --once: GET /v1/status (the state word of each certificate), GET
 * /metrics, the API's certificate list (these three also streamed piece by
 * piece: manager_view_open), and the summary `run --once` prints. It
 * changes nothing. */
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
#include "util/err.h"
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
    char *gen = NULL, *reason = NULL;
    bool reissue = false, r = false;

    if (store_cert_current_gen(mc->m->store, mc->name, &gen) == 0)
        r = sched_revoked_read(mc->m->store, mc->name, gen, &reason, &reissue) == 0;
    free(reason);
    free(gen);
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
                        struct control_cert_status *st, char **from, bool with_history)
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
        st->persist_expiring = mc->alert_sent[STORE_ALERT_PERSIST_EXPIRING] > 0;
    }
    if (with_history && m->hist != NULL) {
        st->history = history_json(m->hist, mc->name);
        st->log = history_log_json(m->hist, mc->name);
    }
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
        fill_status(m, mc, now, &st[i], &from[i], true);
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

/* ---- the streamed views: GET /v1/status, GET /metrics, the API's list ---- */

static void metrics_of(const struct mcert *mc, struct metrics_cert *out)
{
    out->name = mc->name;
    out->not_after = mc->not_after;
    out->next_renewal = mc->tentry != NULL ? mc->next_at : 0;
    out->renewals_ok = mc->renewals_ok;
    out->renewals_failed = mc->renewals_failed;
}

/* The members after the certificates' families, as of now. */
static int metrics_rest(const struct manager *m, struct buf *out)
{
    size_t n;
    struct metrics_snapshot snap = {
        .order_duration = &m->order_hist,
        .orders_in_flight = in_flight(m, &n),
    };
    struct store_health h;

    store_health(m->store, &h);
    snap.store_type = store_type(m->store);
    snap.store_up = !h.down;
    snap.store_failures = h.failures;
    snap.store_waiting = h.waiting;
    return metrics_write_rest(&snap, out);
}

int manager_metrics(const struct manager *m, struct buf *out)
{
    int rc = 0;

    for (int f = 0; rc == 0 && f < METRICS_FAM__MAX; f++) {
        rc = metrics_family_head(out, (enum metrics_family)f);
        for (const struct mcert *mc = m->certs; rc == 0 && mc != NULL; mc = mc->next) {
            struct metrics_cert c;
            metrics_of(mc, &c);
            rc = metrics_family_sample(out, (enum metrics_family)f, &c);
        }
    }
    return rc == 0 ? metrics_rest(m, out) : rc;
}

/* One streamed view in progress. Its cursor is the only thing it keeps of
 * the manager between pieces: each certificate is read when its piece is
 * made, so a reload in between can neither free what the stream holds nor
 * make it show a removed certificate (mgr_cert_unlink moves the cursor). */
struct mstream {
    struct mgr_cursor cur; /* linked in m->cursors until the end or the teardown */
    enum manager_view view;
    bool begun;   /* the head is written */
    int family;   /* METRICS: the family being written */
    size_t index; /* certificates written (of the family) */
    int64_t now;  /* STATUS, LIST: the document's time, from the first piece */
};

static void cursor_unlink(struct mgr_cursor *k)
{
    if (k->m == NULL)
        return;
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        k->m->cursors = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    k->m = NULL;
    k->at = NULL;
    k->prev = k->next = NULL;
}

void mgr_cursors_detach(struct manager *m)
{
    while (m->cursors != NULL)
        cursor_unlink(m->cursors);
}

/* A certificate's object of the API's list: the status one without its
 * history and log (GET /v1/certificates/NAME has them). */
static json_t *list_cert_json(const struct manager *m, const struct mcert *mc, int64_t now)
{
    struct control_cert_status st;
    char *from = NULL;

    fill_status(m, mc, now, &st, &from, false);
    json_t *o = control_cert_json(&st);
    free(from);
    json_object_del(o, "history");
    json_object_del(o, "log");
    return o;
}

static int list_put(struct buf *out, json_t *j)
{
    int rc = json_dump_callback(j, buf_dump_cb, out, JSON_COMPACT);

    json_decref(j);
    return rc < 0 ? ERR_TOO_BIG : 0;
}

static int stream_next(void *arg, struct buf *out, size_t want)
{
    struct mstream *s = arg;
    const struct manager *m = s->cur.m;
    size_t stop = out->len + want;
    int rc = 0;

    if (m == NULL)
        return -ECANCELED; /* the manager is gone: the answer is cut */
    if (!s->begun) {
        size_t n;
        s->begun = true;
        s->now = mgr_now();
        if (s->view == MANAGER_VIEW_STATUS)
            control_status_begin(out, s->now, in_flight(m, &n));
        else if (s->view == MANAGER_VIEW_LIST)
            buf_append_str(out, "{\"certificates\":[");
        else
            rc = metrics_family_head(out, METRICS_FAM_NOT_AFTER);
    }
    for (;;) {
        while (rc == 0 && out->len < stop && s->cur.at != NULL) {
            const struct mcert *mc = s->cur.at;
            s->cur.at = mc->next;
            if (s->view == MANAGER_VIEW_STATUS) {
                struct control_cert_status st;
                char *from = NULL;
                fill_status(m, mc, s->now, &st, &from, true);
                control_status_cert(out, s->index, control_cert_json(&st));
                free(from);
            } else if (s->view == MANAGER_VIEW_LIST) {
                if (s->index > 0)
                    buf_append(out, ",", 1);
                rc = list_put(out, list_cert_json(m, mc, s->now));
            } else {
                struct metrics_cert c;
                metrics_of(mc, &c);
                rc = metrics_family_sample(out, (enum metrics_family)s->family, &c);
            }
            s->index++;
        }
        if (rc < 0)
            return rc;
        if (s->cur.at != NULL)
            return 0; /* the piece is full */
        if (s->view != MANAGER_VIEW_METRICS || s->family + 1 >= METRICS_FAM__MAX)
            break;
        /* the next family walks the list again, as it is now */
        s->family++;
        s->index = 0;
        s->cur.at = m->certs;
        rc = metrics_family_head(out, (enum metrics_family)s->family);
        if (out->len >= stop)
            return rc;
    }
    if (s->view == MANAGER_VIEW_STATUS)
        control_status_end(out, s->index, status_extras(m));
    else if (s->view == MANAGER_VIEW_LIST)
        buf_append_str(out, "]}\n");
    else
        rc = metrics_rest(m, out);
    cursor_unlink(&s->cur);
    return rc < 0 ? rc : 1;
}

static void stream_free(void *arg)
{
    struct mstream *s = arg;

    cursor_unlink(&s->cur);
    free(s);
}

void manager_view_open(struct manager *m, enum manager_view view, struct body_src *out)
{
    struct mstream *s = xcalloc(1, sizeof(*s));

    s->view = view;
    s->cur.m = m;
    s->cur.at = m->certs;
    s->cur.next = m->cursors;
    if (m->cursors != NULL)
        m->cursors->prev = &s->cur;
    m->cursors = &s->cur;
    *out = (struct body_src){.next = stream_next, .free = stream_free, .arg = s};
}

json_t *manager_fleet(const struct manager *m)
{
    return fleet_view_json(m->fleet_view);
}

int manager_status_one(const struct manager *m, const char *name, json_t **out)
{
    for (const struct mcert *mc = m->certs; mc != NULL; mc = mc->next) {
        if (strcmp(mc->name, name) != 0)
            continue;
        struct control_cert_status st;
        char *from = NULL;
        fill_status(m, mc, mgr_now(), &st, &from, true);
        *out = control_cert_json(&st);
        free(from);
        return 0;
    }
    return -ENOENT;
}
