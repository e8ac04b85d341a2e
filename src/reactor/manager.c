/* The certificate manager's wiring: manager_start opens the listener, the
 * HTTP client, the dns-01 solver, the outbox and the deadline heap and
 * creates an entry per certificate; manager_reload diffs a new snapshot
 * against the entries; manager_stop and the teardown close everything;
 * manager_renew turns a control request into a queued run. It decides no
 * schedule (due.c), runs nothing itself (run.c, round.c) and formats no
 * status (status.c). */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/fleet.h"
#include "reactor/manager_internal.h"
#include "reactor/manager_notify.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

/* ---- teardown ---- */

static void manager_free(struct manager *m)
{
    mgr_cursors_detach(m);
    mgr_free_dead(m);
    mgr_round_free_execs(m);
    for (size_t i = 0; i < m->n_clients; i++) {
        free(m->clients[i].ca_name);
        free(m->clients[i].directory);
    }
    free(m->clients);
    for (size_t i = 0; i < m->n_limits; i++) {
        free(m->limits[i]->ca_name);
        free(m->limits[i]->renewal_info);
        ratelimit_window_fini(&m->limits[i]->win);
        free(m->limits[i]);
    }
    free(m->limits);
    if (m->host == NULL)
        log_set_sink(NULL, NULL);
    history_free(m->hist);
    history_writer_free(m->hw);
    ratelimit_failures_free(m->fails);
    config_unref(m->cfg);
    free(m);
}

static void chal_closed(void *arg)
{
    struct manager *m = arg;

    m->closing--;
    mgr_maybe_finish(m);
}

static void kick_closed(uv_handle_t *h)
{
    struct manager *m = h->data;

    m->closing--;
    mgr_maybe_finish(m);
}

static void notify_closed(void *arg)
{
    struct manager *m = arg;

    m->closing--;
    mgr_maybe_finish(m);
}

static void heap_closed(void *arg)
{
    struct manager *m = arg;

    m->closing--;
    mgr_maybe_finish(m);
}

/* ---- a shared store: leases held and waited for ---- */

struct lease_renewal {
    struct manager *m;
    char *name;
    uint64_t fence;
};

static struct mcert *cert_named(struct manager *m, const char *name)
{
    for (struct mcert *mc = m->certs; mc != NULL; mc = mc->next)
        if (strcmp(mc->name, name) == 0)
            return mc;
    return NULL;
}

/* Another instance declares a certificate of ours differently (fleet_view.c,
 * which logged it): its history and the fleet_conflict event. */
static void fleet_conflict(const char *cert, const char *instance, const char *names,
                           const char *key, void *arg)
{
    struct mcert *mc = cert_named(arg, cert);

    if (mc == NULL)
        return;
    char *detail = xasprintf("instance %s declares it as %s (key %s)", instance, names, key);
    mgr_hist_add(mc, "conflict", "%s", detail);
    mgr_emit(mc, NOTIFY_EV_FLEET_CONFLICT, detail, instance);
    free(detail);
}

static void lease_renewed(int status, const struct store_result *r, void *arg)
{
    struct lease_renewal *lr = arg;
    struct manager *m = lr->m;
    struct mcert *mc = cert_named(m, lr->name);

    m->jobs--;
    if (mc != NULL && mc->leased && mc->fence == lr->fence) {
        mc->lease_renewing = false;
        if (status == 0) {
            int64_t every = m->store->lease_ms / 3000;
            mc->lease_renew_at = mgr_now() + (every > 0 ? every : 1);
        } else {
            /* its fenced writes are refused from now on: the run fails
             * there, and another instance resumes the order */
            log_warn(LOG_MAIN, "cert=%s: renewing its lease: %s", lr->name,
                     r->error != NULL ? r->error : err_str(status));
            mc->lease_renew_at = mgr_now() + 1;
        }
    }
    free(lr->name);
    free(lr);
    mgr_maybe_finish(m);
}

/* Every second while the store is shared: renews the leases our runs hold
 * (every third of the lease time) and ends the waits whose time is up. */
static void lease_tick_run(struct manager *m)
{
    int64_t now = mgr_now();

    if (m->torn_down)
        return;
    for (struct mcert *mc = m->certs; mc != NULL && (m->leases_held > 0 || m->lease_waiting > 0);
         mc = mc->next) {
        if (mc->leased && !mc->lease_renewing && now >= mc->lease_renew_at) {
            struct lease_renewal *lr = xcalloc(1, sizeof(*lr));
            *lr = (struct lease_renewal){m, xstrdup(mc->name), mc->fence};
            mc->lease_renewing = true;
            m->jobs++;
            int rc = store_lease_renew_start(m->store, mc->name, mc->fence, lease_renewed, lr);
            if (rc < 0) {
                lease_renewed(rc, &(struct store_result){0}, lr);
                return; /* it may have finished the manager */
            }
        }
        if (mc->lease_waiting && mc->state == MC_IDLE && now >= mc->lease_wait_until)
            mgr_decide(mc);
    }
    if (m->leases_held == 0 && m->lease_waiting == 0)
        uv_unref((uv_handle_t *)&m->lease_tick);
    mgr_pump(m);
}

static void lease_tick_cb(uv_timer_t *t)
{
    lease_tick_run(t->data);
}

/* Another instance's generation became current: deploy it (mgr_decide
 * finds it not deployed here), or stop waiting for it. A run in flight
 * decides again when it ends. */
static void store_watched(const char *name, void *arg)
{
    struct manager *m = arg;
    struct mcert *mc = cert_named(m, name);

    if (mc == NULL || mgr_removed(mc) || mc->state != MC_IDLE || m->stopping || m->torn_down)
        return;
    log_info(LOG_MAIN, "cert=%s: a new generation was stored by another instance", name);
    mc->lease_wait_until = 0;
    mgr_decide(mc);
    mgr_pump(m);
}

/* The shared store is reachable again (connected, its copy re-read): the
 * certificates whose last run failed because it was away are decided
 * again now instead of at their backoff (30 to 60 s after the first
 * failure, more after others). They go through the queue like any due
 * certificate, so max_concurrent_orders and each CA's new-order window
 * pace them; the CA's own Retry-After still holds. */
static void store_back(void *arg)
{
    struct manager *m = arg;
    int n = 0;

    if (m->once || m->stopping || m->torn_down)
        return;
    for (struct mcert *mc = m->certs; mc != NULL; mc = mc->next) {
        if (!mc->store_failed || mc->state != MC_IDLE || mgr_removed(mc))
            continue;
        mc->store_failed = false;
        mc->retry_at = 0;
        log_info(LOG_MAIN, "cert=%s: the store is back: deciding again now, not at the backoff",
                 mc->name);
        mgr_decide(mc);
        n++;
    }
    if (n > 0)
        mgr_pump(m);
}

static void lease_tick_closed(uv_handle_t *h)
{
    struct manager *m = h->data;

    m->closing--;
    mgr_maybe_finish(m);
}

static void teardown(struct manager *m)
{
    m->torn_down = true;
    if (m->kick_open) {
        m->kick_open = false;
        m->closing++;
        uv_close((uv_handle_t *)&m->kick, kick_closed);
    }
    if (m->lease_tick_open) {
        m->lease_tick_open = false;
        m->closing++;
        uv_close((uv_handle_t *)&m->lease_tick, lease_tick_closed);
        store_watch_set(m->store, NULL, NULL);
        store_back_set(m->store, NULL, NULL);
    }
    if (m->once) {
        mgr_print_summary(m);
        if (m->held > 0)
            log_warn(LOG_MAIN,
                     "run --once: %d %s due but held back by max_new_orders (new orders per "
                     "CA account): not ordered, counted as failed; run again when the window "
                     "allows (the summary says when), or raise [ca.NAME] max_new_orders",
                     m->held, m->held == 1 ? "certificate was" : "certificates were");
    }
    mgr_pull_hubs_close(m);
    while (m->certs != NULL)
        mgr_cert_unlink(m->certs);
    mgr_cursors_detach(m);
    if (m->heap != NULL) {
        m->closing++;
        timerheap_close(m->heap, heap_closed, m);
        m->heap = NULL;
    }
    for (size_t i = 0; i < m->n_clients; i++) {
        acme_client_close(m->clients[i].c);
        m->clients[i].c = NULL;
    }
    for (size_t i = 0; i < m->n_limits; i++) {
        if (m->limits[i]->dir_req != NULL) {
            http_req_cancel(m->limits[i]->dir_req);
            m->limits[i]->dir_req = NULL;
            m->limits[i]->dir_state = DIR_UNKNOWN;
        }
    }
    dns01_provider_set_notify(m->dns, NULL);
    if (m->notify != NULL) {
        m->closing++;
        notify_close(m->notify, notify_closed, m);
        m->notify = NULL;
    }
    if (m->http != NULL) {
        http_client_close(m->http);
        m->http = NULL;
    }
    if (m->dns != NULL) {
        dns01_provider_close(m->dns);
        m->dns = NULL;
    }
    fleet_http01_stop(m->fleet_http01);
    m->fleet_http01 = NULL;
    fleet_view_stop(m->fleet_view);
    m->fleet_view = NULL;
    if (m->host != NULL) {
        /* a guest: the listeners are the host's (its tokens are gone);
         * m->host stays set (it still marks a guest), never used again */
        m->host->guest = NULL;
        m->chal = NULL;
        m->tls = NULL;
    }
    if (m->chal != NULL) {
        m->closing++;
        chal_http01_close(m->chal, chal_closed, m);
        m->chal = NULL;
    }
    if (m->tls != NULL) {
        m->closing++;
        chal_tlsalpn_close(m->tls, chal_closed, m);
        m->tls = NULL;
    }
}

static void notify_drained(bool drained, void *arg)
{
    struct manager *m = arg;

    if (!drained)
        log_warn(LOG_MAIN, "webhooks: deliveries still in flight; they stay in the outbox");
    m->notify_drained = true;
    mgr_maybe_finish(m);
}

static void kick_cb(uv_timer_t *t)
{
    struct manager *m = t->data;

    m->started = true;
    mgr_pump(m);
}

void mgr_maybe_finish(struct manager *m)
{
    if (!m->started)
        return;
    if (!m->torn_down) {
        if (mgr_round_end(m))
            return; /* finishing the round: post_done pumps again */
        bool idle = m->running == 0 && m->qhead == NULL && m->jobs == 0 && m->round == ROUND_IDLE;
        if (!idle || !(m->once || m->stopping))
            return;
        if (m->once && !m->stopping && m->lease_waiting > 0)
            return; /* another instance orders: its generation is deployed here too */
        /* Let background dns-01 cleanups finish (bounded: 30 s), so that
         * no TXT record is left behind by an orderly end. */
        if (m->dns != NULL && dns01_provider_inflight(m->dns) > 0 && m->kick_open &&
            m->dns_drain_ticks < 300) {
            m->dns_drain_ticks++;
            uv_timer_start(&m->kick, kick_cb, 100, 0);
            return;
        }
        /* Webhooks queued by this run get their first attempt (bounded);
         * what fails stays in the outbox for the next start. */
        if (m->notify != NULL && !m->notify_drained) {
            if (m->notify_draining)
                return;
            m->notify_draining = true;
            if (notify_drain(m->notify, m->once ? 15000 : 3000, notify_drained, m) == 0)
                return;
            m->notify_drained = true;
        }
        teardown(m);
    }
    if (m->closing > 0 || m->jobs > 0)
        return;
    if (m->done == NULL)
        return; /* already reported */
    manager_done_cb done = m->done;
    void *arg = m->arg;
    int failed = m->failed;
    m->done = NULL;
    manager_free(m);
    done(failed, arg);
}

/* ---- public ---- */

/* The history writer's last batch is on disk. */
static void hist_written(void *arg)
{
    struct manager *m = arg;

    m->jobs--;
    mgr_maybe_finish(m);
}

static bool cert_configured(const char *name, void *arg)
{
    return config_cert_find(arg, name) != NULL;
}

/* A new entry for cc, appended at **tail (the list's end, which the caller
 * keeps: finding it anew for each of 100,000 entries was quadratic, 70 s
 * of start-up, issue 16); *tail moves past it. */
static struct mcert *mc_new(struct manager *m, const struct cfg_cert *cc, struct mcert ***tail)
{
    struct mcert *mc = xcalloc(1, sizeof(*mc));

    mc->m = m;
    mc->name = xstrdup(cc->name);
    mc->cfg = cc;
    for (int k = 0; k < STORE_ALERT__MAX; k++)
        mc->alert_sent[k] = mgr_alert_last_read(m->store, mc->name, (enum store_alert)k);
    /* the events of earlier runs: status shows them after a restart */
    (void)history_file_load(m->hist, m->store, mc->name);
    /* keep the list in config order (sorted by name) */
    **tail = mc;
    *tail = &mc->next;
    return mc;
}

int manager_start(const struct manager_opts *o, struct manager **out)
{
    struct manager *m = xcalloc(1, sizeof(*m));
    int rc;

    m->loop = o->loop;
    m->cfg = config_ref(o->cfg);
    m->store = o->store;
    m->once = o->once;
    m->done = o->done;
    m->event = o->event;
    m->arg = o->arg;
    m->summary = o->summary;
    if (o->host == NULL) {
        mgr_clock_set(o->clock, o->clock_arg);
        log_set_sink(mgr_log_sink, m);
    }
    m->hist = history_new(0);
    m->hw = history_writer_new(m->store, hist_written, m);
    m->fails = ratelimit_failures_new(RATELIMIT_FAILURES_DEFAULT, RATELIMIT_FAILURES_WINDOW_S,
                                      RATELIMIT_PAUSE_HINT_DEFAULT);

    bool need_http01 = false;
    for (size_t i = 0; i < m->cfg->n_certs; i++)
        if (m->cfg->certs[i].challenge == CFG_CHAL_HTTP01 && m->cfg->certs[i].ca != NULL)
            need_http01 = true;
    if (o->host != NULL) {
        assert(o->host->guest == NULL); /* one guest at a time */
        m->host = o->host;
        m->host->guest = m;
        m->chal = m->host->chal;
        m->tls = m->host->tls;
    } else if (need_http01 || !m->once) {
        rc = chal_http01_open(m->loop, (const char *const *)m->cfg->http01.listen.v,
                              m->cfg->http01.listen.n, &m->chal);
        if (rc < 0) {
            m->chal = NULL;
            goto fail;
        }
        struct chal_http01_limits lim = {.max_connections = o->http01_max_connections};
        if (m->chal != NULL) { /* NULL: listen = [] (a webroot, or nothing needs it) */
            chal_http01_set_limits(m->chal, &lim); /* zeros keep the defaults */
            chal_http01_set_seen_cb(m->chal, mgr_chal_seen, m);
            m->fleet_http01 = fleet_http01_start(m->loop, m->store, m->chal);
        }
    }
    if (m->host == NULL && !m->once)
        m->fleet_view = fleet_view_start(m->loop, m->store, m->cfg, fleet_conflict, m);
    if (m->host == NULL && m->cfg->tlsalpn01.listen.n > 0) {
        rc = chal_tlsalpn_open(m->loop, (const char *const *)m->cfg->tlsalpn01.listen.v,
                               m->cfg->tlsalpn01.listen.n, &m->tls);
        if (rc < 0) {
            m->tls = NULL;
            goto fail;
        }
        chal_tlsalpn_set_seen_cb(m->tls, mgr_chal_seen, m);
    }
    bool need_dns01 = false;
    for (size_t i = 0; i < m->cfg->n_certs; i++)
        if (CFG_CHAL_IS_DNS(m->cfg->certs[i].challenge) && m->cfg->certs[i].ca != NULL)
            need_dns01 = true;
    if (need_dns01) {
        rc = dns01_provider_open(m->loop, m->cfg, &m->dns);
        if (rc < 0) {
            /* dns-01 certificates fail with a clear message; http-01 ones go on */
            log_error(LOG_MAIN, "dns-01 solver: cannot start: %s", err_str(rc));
            m->dns = NULL;
        }
    }
    rc = http_client_open(m->loop, &m->http);
    if (rc < 0) {
        log_error(LOG_MAIN, "cannot start the HTTP client: %s", err_str(rc));
        m->http = NULL;
        goto fail;
    }
    if (notify_open(m->loop, m->http, m->store, m->cfg, NULL, &m->notify) < 0) {
        log_error(LOG_MAIN, "webhooks: the outbox cannot be used; events are only logged");
        m->notify = NULL;
    }
    dns01_provider_set_notify(m->dns, m->notify);
    if (!m->once) {
        rc = timerheap_open(m->loop, o->clock, o->clock_arg, &m->heap);
        if (rc < 0) {
            log_error(LOG_MAIN, "cannot start the timer heap: %s", err_str(rc));
            m->heap = NULL;
            goto fail;
        }
        timerheap_set_max_sleep(m->heap, HEAP_MAX_SLEEP_MS);
    }
    struct mcert **tail = &m->certs;
    for (size_t i = 0; i < m->cfg->n_certs; i++)
        mc_new(m, &m->cfg->certs[i], &tail);
    (void)store_alerts_sweep(m->store, cert_configured, m->cfg);
    for (struct mcert *mc = m->certs; mc != NULL; mc = mc->next)
        mgr_decide(mc);
    mgr_pull_hubs_sync(m);
    *out = m;
    /* The first pump runs from the loop so that done never runs inside
     * manager_start (nothing due in --once mode ends at once). */
    uv_timer_init(m->loop, &m->kick);
    m->kick.data = m;
    m->kick_open = true;
    uv_timer_start(&m->kick, kick_cb, 0, 0);
    if (store_shared(m->store)) {
        uv_timer_init(m->loop, &m->lease_tick);
        m->lease_tick.data = m;
        m->lease_tick_open = true;
        uv_timer_start(&m->lease_tick, lease_tick_cb, 1000, 1000);
        if (m->lease_waiting == 0)
            uv_unref((uv_handle_t *)&m->lease_tick);
        store_watch_set(m->store, store_watched, m);
        store_back_set(m->store, store_back, m);
    }
    return 0;
fail:
    if (m->host != NULL) {
        m->host->guest = NULL;
        m->chal = NULL;
        m->tls = NULL;
    }
    if (m->notify != NULL)
        notify_close(m->notify, NULL, NULL);
    if (m->http != NULL)
        http_client_close(m->http);
    if (m->dns != NULL)
        dns01_provider_close(m->dns);
    fleet_http01_stop(m->fleet_http01);
    fleet_view_stop(m->fleet_view);
    if (m->chal != NULL)
        chal_http01_close(m->chal, NULL, NULL);
    if (m->tls != NULL)
        chal_tlsalpn_close(m->tls, NULL, NULL);
    m->done = NULL;
    if (m->host == NULL)
        log_set_sink(NULL, NULL);
    history_free(m->hist);
    history_writer_free(m->hw);
    ratelimit_failures_free(m->fails);
    config_unref(m->cfg);
    free(m);
    return rc;
}

int manager_tlsalpn_listen(struct manager *m, const struct cfg_strv *listen, char **why)
{
    const char *failed = NULL;
    int rc;

    *why = NULL;
    if (m->host != NULL)
        return 0; /* a guest uses its host's */
    if (m->tls == NULL) {
        if (listen->n == 0)
            return 0;
        rc = chal_tlsalpn_open(m->loop, (const char *const *)listen->v, listen->n, &m->tls);
        if (rc < 0) {
            m->tls = NULL;
            *why =
                xasprintf("tlsalpn01.listen: cannot listen on %s: %s", listen->v[0], err_str(rc));
            return rc;
        }
        chal_tlsalpn_set_seen_cb(m->tls, mgr_chal_seen, m);
        log_info(LOG_MAIN, "tlsalpn01: listening on %s%s", listen->v[0],
                 listen->n > 1 ? " and more" : "");
        return 0;
    }
    rc = chal_tlsalpn_rebind(m->tls, (const char *const *)listen->v, listen->n, &failed);
    if (rc < 0) {
        *why = xasprintf("tlsalpn01.listen: cannot listen on %s: %s", failed != NULL ? failed : "?",
                         err_str(rc));
        return rc;
    }
    if (listen->n > 0)
        log_info(LOG_MAIN, "tlsalpn01: now listening on %s%s", listen->v[0],
                 listen->n > 1 ? " and more" : "");
    else
        log_info(LOG_MAIN, "tlsalpn01: listen = []: the responder stopped listening");
    return 0;
}

/* config_cert_find, trying the certificate after the last one found first:
 * the entries are in the order of the snapshot they were made from, and
 * both snapshots are sorted by name, so at 100,000 certificates a reload
 * skips most of 1.7 million string comparisons of the searches. */
static const struct cfg_cert *cert_find_from(const struct config *cfg, const char *name,
                                             size_t *hint)
{
    const struct cfg_cert *cc;

    if (*hint < cfg->n_certs && strcmp(cfg->certs[*hint].name, name) == 0)
        cc = &cfg->certs[*hint];
    else
        cc = config_cert_find(cfg, name);
    if (cc != NULL)
        *hint = (size_t)(cc - cfg->certs) + 1;
    return cc;
}

void manager_reload(struct manager *m, struct config *cfg)
{
    struct config *old = m->cfg;
    /* the entry of each certificate of the new snapshot, by its index (a
     * lookup per certificate would make a reload quadratic) */
    struct mcert **by_idx = xcalloc(cfg->n_certs > 0 ? cfg->n_certs : 1, sizeof(*by_idx));

    mgr_free_dead(m);
    m->cfg = config_ref(cfg);
    fleet_view_config(m->fleet_view, cfg);
    if (m->notify != NULL)
        notify_reload(m->notify, cfg);
    /* Certificates gone from the new snapshot: no new work; a run in flight
     * finishes with the snapshot it started with, then the entry goes. */
    size_t hint = 0;
    for (struct mcert *mc = m->certs, *nx; mc != NULL; mc = nx) {
        nx = mc->next;
        const struct cfg_cert *cc = cert_find_from(cfg, mc->name, &hint);
        if (cc != NULL) {
            /* mc->cfg still the old one: diffed below. A removed entry
             * still here has its run in flight: back in the configuration,
             * it is the same entry again (a second one would run beside
             * it, resume the same stored order and finalize it twice) */
            if (by_idx[cc - cfg->certs] == NULL || !mgr_removed(mc))
                by_idx[cc - cfg->certs] = mc;
            continue;
        }
        log_info(LOG_MAIN, "cert=%s: removed from the configuration", mc->name);
        for (int k = 0; k < STORE_ALERT__MAX; k++) /* its alert series end with it */
            mgr_alert_set(mc, (enum store_alert)k, 0);
        mc->cfg = NULL; /* mgr_removed(mc) from now on */
        if (mc->state == MC_QUEUED)
            mgr_dequeue(mc);
        mgr_disarm(mc);
        if (mc->state == MC_IDLE) {
            history_forget(m->hist, mc->name);
            mgr_cert_unlink(mc);
        }
    }
    /* Added: decided. Changed names, key type or CA: decided anew (the
     * stored certificate no longer matches: ordered now). Changed deploy
     * actions only: the stored certificate is deployed again, no order.
     * Changed persist_until only: decided again when idle (its alerts).
     * Unchanged: untouched, including a run in flight or an armed timer. */
    struct mcert **tail = &m->certs;
    while (*tail != NULL)
        tail = &(*tail)->next;
    for (size_t i = 0; i < cfg->n_certs; i++) {
        const struct cfg_cert *cc = &cfg->certs[i];
        struct mcert *mc = by_idx[i];
        if (mc == NULL) {
            log_info(LOG_MAIN, "cert=%s: added", cc->name);
            mc = mc_new(m, cc, &tail);
            mgr_hist_add(mc, "added", "by a reload");
            mgr_decide(mc);
            continue;
        }
        const struct cfg_cert *prev = mc->cfg;
        if (prev == NULL) { /* removed by an earlier reload, its run still in flight */
            log_info(LOG_MAIN, "cert=%s: added again; the run in flight finishes first", mc->name);
            mgr_hist_add(mc, "added", "by a reload; the run in flight goes on");
            mc->cfg = cc;
            /* the run has its snapshot's deploy actions: the new ones once it ends */
            if (mc->run_cfg != NULL && config_cert_equal_order(mc->run_cfg, cc) &&
                !config_cert_equal_deploy(mc->run_cfg, cc))
                mc->redeploy_after = true;
            continue;
        }
        bool same_order = config_cert_equal_order(prev, cc);
        bool same_deploy = config_cert_equal_deploy(prev, cc);
        bool same_persist = prev->persist_until == cc->persist_until;
        mc->cfg = cc;
        if (same_order && same_deploy) {
            /* persist_until moved: its "persist_expiring" series (sent,
             * ended, the wake for the next) follows now, not at the next
             * renewal */
            if (!same_persist && mc->state == MC_IDLE)
                mgr_decide(mc);
            continue;
        }
        if (mc->state != MC_IDLE) {
            /* a run in flight keeps its snapshot; what it stores is checked
             * against the new configuration when it ends (decide) */
            log_info(LOG_MAIN, "cert=%s: changed; the run in flight finishes first", mc->name);
            if (same_order)
                mc->redeploy_after = true; /* deploy with the new actions once it ends */
            continue;
        }
        if (!same_order) {
            log_info(LOG_MAIN, "cert=%s: changed (names, key, CA or policy): deciding anew",
                     mc->name);
            mgr_hist_add(mc, "changed", "names, key, CA or policy");
            mc->retry_at = 0;
            mc->pull_checked_at = 0; /* a pulled one: fetched now */
            mgr_decide(mc);
        } else {
            struct store_cert sc = {0};
            if (store_cert_read_current(m->store, mc->name, false, &sc) == 0) {
                store_cert_fini(&sc);
                log_info(LOG_MAIN, "cert=%s: deploy actions changed: deploying again", mc->name);
                mgr_hist_add(mc, "changed", "deploy actions: deploying the stored certificate");
                mc->deploy_only = true;
                mgr_enqueue(mc);
            }
        }
    }
    free(by_idx);
    config_unref(old);
    mgr_pull_hubs_sync(m);
    mgr_pump(m);
}

void manager_set_http01_max_connections(struct manager *m, unsigned max_connections)
{
    if (m->chal != NULL && m->host == NULL)
        chal_http01_set_max_connections(m->chal, max_connections);
}

void manager_stop(struct manager *m)
{
    if (m->stopping)
        return;
    m->stopping = true;
    m->started = true;
    /* Nothing queued starts any more. */
    while (m->qhead != NULL)
        mgr_dequeue(m->qhead);
    while (m->khead != NULL) {
        struct mcert *mc = m->khead;
        m->khead = mc->qnext;
        if (m->khead == NULL)
            m->ktail = NULL;
        mc->qnext = NULL;
        mgr_run_end(mc, -ECANCELED, "stopped");
    }
    if (m->hooks != NULL) {
        deploy_hooks_cancel(m->hooks);
        m->hooks = NULL;
    }
    if (m->rexec_op != NULL) {
        deploy_exec_cancel(m->rexec_op);
        m->rexec_op = NULL;
    }
    if (m->round != ROUND_IDLE) {
        if (m->round == ROUND_END && m->rexec_idx < m->n_rexecs)
            log_warn(LOG_DEPLOY, "stopping: %zu deploy command(s) of this round not run",
                     m->n_rexecs - m->rexec_idx);
        mgr_round_free_execs(m);
        m->round = ROUND_IDLE;
    }
    mgr_pull_hubs_close(m);
    for (struct mcert *mc = m->certs; mc != NULL; mc = mc->next) {
        mgr_disarm(mc);
        if (mc->hooks != NULL) {
            deploy_hooks_cancel(mc->hooks);
            mc->hooks = NULL;
            mgr_run_end(mc, -ECANCELED, "stopped");
            continue;
        }
        if (mc->pull != NULL) {
            mgr_pull_cancel(mc);
            mgr_run_end(mc, -ECANCELED, "stopped");
        } else if (mc->order != NULL) {
            /* cancel cleans the order's tokens and never calls back */
            mgr_order_cancel(mc->order);
            mc->order = NULL;
            mgr_run_end(mc, -ECANCELED, "stopped");
        } else if (mc->exec != NULL) {
            deploy_exec_cancel(mc->exec);
            mc->exec = NULL;
            mgr_run_end(mc, -ECANCELED, "stopped");
        } else if (mc->files != NULL) {
            deploy_files_cancel(mc->files);
            mc->files = NULL;
            mgr_run_end(mc, -ECANCELED, "stopped");
        }
    }
    mgr_maybe_finish(m);
}

int manager_renew(struct manager *m, const char *name, bool force, bool deploy_only, char **err)
{
    struct mcert *mc = NULL;

    for (struct mcert *x = m->certs; x != NULL; x = x->next)
        if (!mgr_removed(x) && strcmp(x->name, name) == 0)
            mc = x;
    if (mc == NULL) {
        if (err != NULL)
            *err = xasprintf("no certificate named %s", name);
        return -ENOENT;
    }
    if (m->stopping || mc->state != MC_IDLE) {
        if (err != NULL)
            *err = xasprintf("%s: %s", name, m->stopping ? "stopping" : "already in progress");
        return -EBUSY;
    }
    if (mc->cfg->hub != NULL && !deploy_only) {
        /* a pulled certificate is never ordered here: fetch it again now */
        log_info(LOG_MAIN, "cert=%s: fetching it from hub.%s (requested)", name,
                 mc->cfg->hub->name);
        mgr_hist_add(mc, "requested", "fetch from hub.%s", mc->cfg->hub->name);
        mc->pull_due = true;
        mc->reason = "pulled: fetch requested";
        mgr_enqueue(mc);
        mgr_pump(m);
        return 0;
    }
    if (mc->cfg->ca == NULL && !deploy_only) {
        /* an import is never ordered: read its files again now */
        log_info(LOG_MAIN, "cert=%s: reading the imported files (requested)", name);
        mgr_hist_add(mc, "requested", "re-read the imported files");
        mc->import_checked_at = 0;
        mgr_enqueue(mc);
        mgr_pump(m);
        return 0;
    }
    if (deploy_only) {
        struct store_cert sc = {0};
        if (store_cert_read_current(m->store, name, false, &sc) < 0) {
            if (err != NULL)
                *err = xasprintf("%s: nothing stored to deploy", name);
            return -EINVAL;
        }
        store_cert_fini(&sc);
        mc->deploy_only = true;
        log_info(LOG_MAIN, "cert=%s: deploy requested", name);
        mgr_hist_add(mc, "requested", "renew --deploy-only");
        mgr_enqueue(mc);
    } else if (force) {
        log_info(LOG_MAIN, "cert=%s: renewal requested (forced)", name);
        mc->reason = "renewal requested";
        mc->forced = true;
        mc->retry_at = 0;
        mc->deploy_only = false; /* a new order, even while a deployment is failing */
        mgr_hist_add(mc, "requested", "renew --force");
        mgr_enqueue(mc);
    } else {
        /* not forced: order only when due, as the schedule says */
        mgr_decide(mc);
        if (mc->state != MC_QUEUED && err != NULL) {
            char when[32];
            mgr_fmt_time(mc->next_at, when, sizeof(when));
            *err = xasprintf("%s: not due; renewal at %s (use --force)", name, when);
        }
    }
    mgr_pump(m);
    return 0;
}

void manager_clock_moved(struct manager *m)
{
    if (m->heap != NULL)
        (void)timerheap_run_due(m->heap);
    if (m->lease_tick_open)
        lease_tick_run(m); /* pumps */
    else
        mgr_pump(m);
}

int manager_renew_new_key(struct manager *m, const char *name, bool force, bool deploy_only,
                          bool new_key, char **err)
{
    struct mcert *mc = NULL;

    for (struct mcert *x = m->certs; x != NULL; x = x->next)
        if (!mgr_removed(x) && strcmp(x->name, name) == 0)
            mc = x;
    /* set before the run can start (the queue may start it at once) */
    bool was = mc != NULL && mc->new_key_once;
    if (mc != NULL && new_key && mc->state == MC_IDLE)
        mc->new_key_once = true;
    int rc = manager_renew(m, name, force, deploy_only, err);
    if (rc < 0 && mc != NULL && mc->state == MC_IDLE)
        mc->new_key_once = was;
    return rc;
}
