/* What the manager keeps per CA account (the new-order window, the
 * directory's renewalInfo URL) and the ARI (RFC 9773) window of each
 * certificate's current generation: fetched, picked, kept in
 * GENERATION/ari.json. It only feeds decide() (due.c); it never starts a run. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/manager_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

/* What the manager keeps per CA account (created on first use). */
struct mlimit *mgr_ca_state(struct manager *m, const struct cfg_ca *ca)
{
    for (size_t i = 0; i < m->n_limits; i++)
        if (strcmp(m->limits[i]->ca_name, ca->name) == 0)
            return m->limits[i];
    m->limits = xrealloc(m->limits, (m->n_limits + 1) * sizeof(*m->limits));
    struct mlimit *l = xcalloc(1, sizeof(*l));
    m->limits[m->n_limits++] = l;
    l->m = m;
    l->ca_name = xstrdup(ca->name);
    ratelimit_window_init(&l->win, ca->max_new_orders, RATELIMIT_ORDERS_WINDOW_S);
    return l;
}

/* The new-order window of a CA account. */
struct ratelimit_window *mgr_ca_window(struct manager *m, const struct cfg_ca *ca)
{
    return &mgr_ca_state(m, ca)->win;
}

/* ---- ARI (RFC 9773) ---- */

static void ca_dir_done(int status, const struct http_response *hr, void *arg)
{
    struct mlimit *l = arg;
    struct manager *m = l->m;
    json_t *j = NULL;

    l->dir_req = NULL;
    if (status == 0 && hr->status == 200)
        j = json_loadb(hr->body.data != NULL ? hr->body.data : "", hr->body.len, 0, NULL);
    if (!json_is_object(j)) {
        l->dir_state = DIR_FAILED;
        l->dir_retry_at = mgr_now() + ARI_RETRY_S;
        log_warn(LOG_MAIN, "ca=%s: directory: %s; renewal windows (ARI) asked again in 1 h",
                 l->ca_name,
                 status != 0         ? hr->error
                 : hr->status != 200 ? "HTTP error"
                                     : "not JSON");
        json_decref(j);
        return;
    }
    const char *ri = json_string_value(json_object_get(j, "renewalInfo"));
    free(l->renewal_info);
    l->renewal_info = ri != NULL ? xstrdup(ri) : NULL;
    l->dir_state = DIR_KNOWN;
    json_decref(j);
    if (l->renewal_info == NULL) {
        log_info(LOG_MAIN, "ca=%s: no renewalInfo in the directory: renewal by policy only",
                 l->ca_name);
        return;
    }
    log_info(LOG_MAIN, "ca=%s: ARI renewalInfo at %s", l->ca_name, l->renewal_info);
    for (struct mcert *mc = m->certs; mc != NULL; mc = mc->next)
        if (!mgr_removed(mc) && mc->state == MC_IDLE && mc->cfg->ca != NULL &&
            strcmp(mc->cfg->ca->name, l->ca_name) == 0)
            mgr_decide(mc);
    mgr_pump(m);
}

/* Reads the CA's directory once (daemon only), to learn renewalInfo. */
static void ca_dir_fetch(struct manager *m, struct mlimit *l, const struct cfg_ca *ca)
{
    if (l->dir_state == DIR_FETCHING || l->dir_state == DIR_KNOWN || m->http == NULL)
        return;
    if (l->dir_state == DIR_FAILED && mgr_now() < l->dir_retry_at)
        return;
    struct http_request_opts ho = {
        .method = "GET",
        .url = ca->directory,
        .trust_file = ca->trust,
        .max_body = 64 * 1024,
    };
    if (http_req_start(m->http, &ho, ca_dir_done, l, &l->dir_req) < 0) {
        l->dir_req = NULL;
        l->dir_state = DIR_FAILED;
        l->dir_retry_at = mgr_now() + ARI_RETRY_S;
        return;
    }
    l->dir_state = DIR_FETCHING;
}

/* The ARI state of the generation sc: its CertID, and what
 * GENERATION/ari.json remembers (window, chosen time, next fetch). */
static void ari_load(struct mcert *mc, const struct store_cert *sc)
{
    struct acme_chain ch = {0};
    char *txt = NULL;

    free(mc->ari_id);
    free(mc->ari_gen);
    free(mc->ari_expl);
    mc->ari_id = mc->ari_gen = mc->ari_expl = NULL;
    mc->ari_start = mc->ari_end = mc->ari_at = mc->ari_poll = 0;
    mc->ari_gen = xstrdup(sc->generation != NULL ? sc->generation : "");
    if (sc->cert_pem == NULL || acme_chain_parse(sc->cert_pem, strlen(sc->cert_pem), &ch) < 0)
        return;
    mc->ari_id = acme_ari_cert_id(&ch);
    acme_chain_fini(&ch);
    if (mc->ari_id == NULL || sc->generation == NULL)
        return;
    if (store_note_read(mc->m->store, mc->name, sc->generation, "ari", &txt) == 0) {
        json_t *j = json_loads(txt, 0, NULL);
        const char *id = json_string_value(json_object_get(j, "cert_id"));
        if (id != NULL && strcmp(id, mc->ari_id) == 0) {
            mc->ari_start = (int64_t)json_integer_value(json_object_get(j, "start"));
            mc->ari_end = (int64_t)json_integer_value(json_object_get(j, "end"));
            mc->ari_at = (int64_t)json_integer_value(json_object_get(j, "at"));
            mc->ari_poll = (int64_t)json_integer_value(json_object_get(j, "poll"));
            const char *e = json_string_value(json_object_get(j, "explanation_url"));
            mc->ari_expl = e != NULL ? xstrdup(e) : NULL;
        }
        json_decref(j);
        free(txt);
    }
}

static void ari_job_done(int status, const struct store_result *r, void *arg)
{
    struct manager *m = arg;

    m->jobs--;
    if (status < 0)
        log_warn(LOG_MAIN, "%s (the renewal window is fetched again after a restart)",
                 r->error != NULL ? r->error : err_str(status));
    mgr_maybe_finish(m);
}

/* Persists the ARI state beside the generation it describes (off the loop). */
static void ari_save(struct mcert *mc)
{
    struct manager *m = mc->m;
    struct store_cert sc = {0};

    if (store_cert_read_current(m->store, mc->name, false, &sc) < 0)
        return;
    if (sc.generation == NULL || mc->ari_gen == NULL || strcmp(sc.generation, mc->ari_gen) != 0) {
        store_cert_fini(&sc);
        return;
    }
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:s?}", "cert_id", mc->ari_id, "start",
                          (json_int_t)mc->ari_start, "end", (json_int_t)mc->ari_end, "at",
                          (json_int_t)mc->ari_at, "poll", (json_int_t)mc->ari_poll,
                          "explanation_url", mc->ari_expl);
    char *json = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    int rc = store_note_put_start(m->store, mc->name, sc.generation, "ari", json, ari_job_done, m);
    free(json);
    store_cert_fini(&sc);
    if (rc == 0)
        m->jobs++;
}

static void ari_done(int status, const struct http_response *hr, void *arg)
{
    struct mcert *mc = arg;
    struct manager *m = mc->m;
    struct acme_ari_info ai = {0};
    int64_t now = mgr_now();

    mc->ari_req = NULL;
    m->ari_inflight--;
    if (status == 0 && hr->status == 200 &&
        acme_ari_parse(hr->body.data != NULL ? hr->body.data : "", hr->body.len, &ai) == 0) {
        if (ai.start != mc->ari_start || ai.end != mc->ari_end || mc->ari_at == 0) {
            char a[32], b[32], c[32];
            mc->ari_at = acme_ari_pick(&ai, now, ratelimit_rand_os(NULL));
            mgr_fmt_time(ai.start, a, sizeof(a));
            mgr_fmt_time(ai.end, b, sizeof(b));
            mgr_fmt_time(mc->ari_at, c, sizeof(c));
            log_info(LOG_MAIN, "cert=%s: ARI window %s .. %s: renewal at %s", mc->name, a, b, c);
            mgr_hist_add(mc, "ari", "window %s .. %s, renewal at %s", a, b, c);
        }
        mc->ari_start = ai.start;
        mc->ari_end = ai.end;
        free(mc->ari_expl);
        mc->ari_expl = ai.explanation_url != NULL ? xstrdup(ai.explanation_url) : NULL;
        mc->ari_poll = acme_ari_next_poll(hr->retry_after, now);
        acme_ari_info_fini(&ai);
        ari_save(mc);
    } else {
        log_warn(LOG_MAIN, "cert=%s: renewalInfo: %s; asked again in 1 h", mc->name,
                 status != 0         ? hr->error
                 : hr->status != 200 ? "HTTP error status"
                                     : "not a renewalInfo document");
        mc->ari_poll = now + ARI_RETRY_S;
    }
    if (mc->state == MC_IDLE && !mgr_removed(mc))
        mgr_decide(mc);
    mgr_pump(m);
}

/* Fetches renewalInfo/CERTID for mc, or arranges to try again soon when
 * enough fetches are in flight. */
static void ari_request(struct mcert *mc, const struct mlimit *l)
{
    struct manager *m = mc->m;

    if (mc->ari_req != NULL)
        return;
    if (m->ari_inflight >= ARI_MAX_INFLIGHT) {
        mc->ari_poll = mgr_now() + 1 + (int64_t)(ratelimit_rand_os(NULL) % 60);
        return;
    }
    char *url = xasprintf(
        "%s%s%s", l->renewal_info,
        l->renewal_info[0] != '\0' && l->renewal_info[strlen(l->renewal_info) - 1] == '/' ? ""
                                                                                          : "/",
        mc->ari_id);
    struct http_request_opts ho = {
        .method = "GET",
        .url = url,
        .trust_file = mc->cfg->ca->trust,
        .max_body = 16 * 1024,
    };
    int rc = http_req_start(m->http, &ho, ari_done, mc, &mc->ari_req);
    free(url);
    if (rc < 0) {
        mc->ari_req = NULL;
        mc->ari_poll = mgr_now() + ARI_RETRY_S;
        return;
    }
    m->ari_inflight++;
}

/* In decide: what ARI says for the stored generation sc (daemon only). */
void mgr_ari_consider(struct mcert *mc, const struct store_cert *sc, int64_t now)
{
    struct manager *m = mc->m;

    if (m->once || m->http == NULL)
        return;
    struct mlimit *l = mgr_ca_state(m, mc->cfg->ca);
    if (l->dir_state != DIR_KNOWN) {
        ca_dir_fetch(m, l, mc->cfg->ca);
        return;
    }
    if (l->renewal_info == NULL)
        return;
    if (mc->ari_gen == NULL || sc->generation == NULL || strcmp(mc->ari_gen, sc->generation) != 0)
        ari_load(mc, sc);
    if (mc->ari_id != NULL && mc->ari_poll <= now)
        ari_request(mc, l);
}
