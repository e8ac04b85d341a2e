/* The certificate manager: decides which certificates are due, runs their
 * orders (at most [daemon] max_concurrent_orders at once, FIFO), generates
 * keys and stores generations off the loop, deploys, and schedules the next
 * renewal or a retry. It wires acme to the http-01 listener through the
 * challenge-provider callbacks; it does not speak ACME or write files itself.
 *
 * Scheduling: every certificate has at most one deadline in ONE timer heap
 * (reactor/timerheap), armed at renewplan_decide()'s answer: the policy
 * (sched_decide, with a stable per-generation jitter), backoff after
 * failures, the CA's Retry-After, and our own limits (new orders per CA
 * account per 3 hours, failed validations per name per hour). The loop
 * sleeps until the earliest deadline. */
#include "reactor/manager.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acme/acme.h"
#include "challenge/challenge.h"
#include "deploy/deploy.h"
#include "net/net.h"
#include "reactor/control.h"
#include "reactor/dns01_provider.h"
#include "reactor/history.h"
#include "reactor/manager_notify.h"
#include "reactor/metrics.h"
#include "reactor/ratelimit.h"
#include "reactor/renewplan.h"
#include "reactor/sched.h"
#include "reactor/timerheap.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#define RETRY_FIRST_S 60
/* Renewal times move earlier by up to this much (or a tenth of the time to
 * the renewal, whichever is less), stable per certificate and generation, so that
 * certificates issued together do not all renew in the same second. */
#define JITTER_MAX_S (6 * 3600)
/* The heap's wall clock is checked at least this often (suspend, clock
 * steps), so a deadline is never missed by more than this. */
#define HEAP_MAX_SLEEP_MS (15 * 60 * 1000)
/* Imported certificates ([certificate.NAME] import = {cert, key}): their
 * files are checked this often, deployed again when they change. */
#define IMPORT_CHECK_S 3600
/* ARI (RFC 9773): renewalInfo fetches in flight at once (the others try
 * again within a minute), and how long after a failed fetch or directory
 * read to ask again. */
#define ARI_MAX_INFLIGHT 8
#define ARI_RETRY_S 3600
#define KEEP_GENERATIONS 3
/* RSA keys generated at once. The threadpool (4 threads by default) also
 * runs every atomic write; were it full of RSA 4096 key generations, the
 * order files and certificates of orders already running would wait behind
 * them. */
#define RSA_KEYGEN_MAX 2

enum mc_state {
    MC_IDLE,    /* nothing running; maybe a timer armed */
    MC_QUEUED,  /* waiting for a slot */
    MC_KEYWAIT, /* waiting for a key generation slot */
    MC_KEYGEN,  /* key generation job in flight */
    MC_ORDER,   /* ACME order in flight */
    MC_STORE,   /* store job in flight */
    MC_DEPLOY,  /* deploy actions running */
};

enum mc_summary { SUM_NONE, SUM_ISSUED, SUM_FAILED, SUM_OK };

struct mclient {
    char *ca_name;   /* owned */
    char *directory; /* owned */
    struct acme_client *c;
};

struct mcert {
    struct manager *m;
    struct mcert *next;         /* in m->certs */
    struct mcert *qnext;        /* in the FIFO queue */
    struct mcert *dead_next;    /* unlinked, waiting to be freed */
    char *name;                 /* owned */
    const struct cfg_cert *cfg; /* borrowed from m->cfg (the current snapshot) */
    /* the run in progress */
    struct config *run_snap;        /* ref, or NULL */
    const struct cfg_cert *run_cfg; /* borrowed from run_snap */
    EVP_PKEY *key;                  /* owned */
    char *resume_url;               /* owned */
    struct acme_order *order;       /* child, or NULL */
    struct acme_order_result *res;  /* owned */
    struct deploy_exec *exec;       /* child, or NULL */
    struct deploy_files *files;     /* child, or NULL */
    struct deploy_hooks *hooks;     /* hooks.d/deploy running, or NULL */
    char *key_pem;                  /* owned: the stored key, for deploys */
    char *generation, *gen_dir;     /* owned: the stored generation */
    bool had_cert;                  /* a certificate was stored before this run */
    bool deploy_only;               /* the stored generation still needs deploying */
    bool run_deploy_only;           /* this run only deploys */
    size_t deploy_idx;
    struct deploy_journal *journal; /* owned: what this round's deployment replaced, or NULL */
    bool journal_shared;            /* it waits for the round's reload commands */
    enum mc_state state;
    bool removed;
    bool forced;                    /* queued by renew --force: starts even over the window */
    bool deploy_failing;            /* the last deployment failed; a deploy-only retry is armed */
    bool redeploy_after;            /* deploy actions changed during a run: deploy again after it */
    struct timerheap_entry *tentry; /* the armed deadline, or NULL */
    int failures;                   /* consecutive, for the backoff */
    int64_t retry_after_s;          /* the CA asked us to wait this long (rateLimited) */
    int64_t retry_at;               /* backoff: not before this (0: none) */
    int64_t ca_retry_at;            /* the CA's Retry-After as a time (0: none) */
    char *failed_ident;             /* the last run's invalid authorization, or NULL */
    struct acme_problem *problem;   /* the failing order's problem document, until run_end */
    uint64_t renewals_ok, renewals_failed; /* for /metrics */
    int64_t expiring_sent;                 /* the last "expiring" event (0: none) */
    int64_t import_checked_at;             /* an import's files were last read then */
    /* ARI for the current generation */
    char *ari_id;                                 /* its CertID, or NULL */
    char *ari_gen;                                /* the generation ari_* describe, or NULL */
    int64_t ari_start, ari_end, ari_at, ari_poll; /* window, chosen time, next fetch */
    char *ari_expl;                               /* explanationURL, or NULL */
    struct http_req *ari_req;                     /* renewalInfo GET in flight, or NULL */
    bool ari_replaces_refused;                    /* the CA refused `replaces`: orders go without */
    bool sent_replaces;                           /* the order in flight carries `replaces` */
    int64_t started;                              /* unix seconds the run began */
    /* what --once prints */
    enum mc_summary summary;
    char *error; /* owned */
    int64_t not_after, renew_at;
    /* what status shows */
    int64_t not_before, next_at; /* next_at: the armed timer, 0 when none */
    const char *reason;          /* static: why next_at is what it is */
    char *last_error;            /* owned */
    int64_t last_error_at, last_success_at;
};

struct manager {
    uv_loop_t *loop;
    struct config *cfg;  /* ref: the current snapshot */
    struct store *store; /* borrowed */
    char *state_dir;     /* owned */
    bool once;
    manager_done_cb done;
    void *arg;
    struct chal_http01 *chal;   /* owned */
    struct http_client *http;   /* owned */
    struct dns01_provider *dns; /* owned, or NULL when no certificate uses dns-01 */
    int dns_drain_ticks;        /* waits for background dns-01 cleanups at the end */
    struct mclient *clients;
    size_t n_clients;
    struct mcert *certs;
    struct mcert *dead; /* unlinked entries, freed from the loop */
    struct mcert *qhead, *qtail;
    unsigned running;
    unsigned jobs;               /* store jobs in flight */
    unsigned rsa_keygens;        /* RSA key generations in flight */
    struct mcert *khead, *ktail; /* waiting for an RSA key generation slot */
    int failed;
    bool stopping, torn_down;
    struct timerheap *heap;           /* every certificate's deadline */
    struct history *hist;             /* recent events per certificate */
    struct ratelimit_failures *fails; /* failed validations per name */
    struct mlimit {
        struct manager *m;
        char *ca_name; /* owned */
        struct ratelimit_window win;
        /* ARI: the directory's renewalInfo URL, fetched once per CA */
        enum { DIR_UNKNOWN, DIR_FETCHING, DIR_KNOWN, DIR_FAILED } dir_state;
        char *renewal_info;   /* owned, or NULL: the CA has no ARI */
        int64_t dir_retry_at; /* DIR_FAILED: try again then */
        struct http_req *dir_req;
        const struct cfg_ca *ca; /* borrowed from the snapshot that asked, during a fetch */
    } * *limits;                 /* per CA account: new orders, ARI */
    size_t n_limits;
    unsigned ari_inflight;          /* renewalInfo fetches in flight */
    struct metrics_hist order_hist; /* order durations */
    struct notify *notify;          /* webhooks ([notify.*]) and their outbox, or NULL */
    /* A round: from the first run after an idle time until every run has
     * ended (in --once mode, the whole run). hooks.d/pre runs before its
     * first run, exec deploy actions are collected and each distinct argv
     * runs once when the runs have ended, then hooks.d/post. */
    enum { ROUND_IDLE, ROUND_PRE, ROUND_ACTIVE, ROUND_END } round;
    struct rexec {
        struct config *snap;        /* ref: the action lives in it */
        const struct cfg_deploy *d; /* borrowed from snap */
        char *name, *gen_dir;       /* the first certificate that asked, for the env */
        const char *event;          /* its CERTLOOP_EVENT: "issued" or "renewed" */
        const struct cfg_cert *cc;  /* borrowed from snap */
        char **certs;               /* every certificate that asked (owned) */
        size_t n_certs;
        char *why; /* owned: how it failed, or NULL */
    } * rexecs;
    size_t n_rexecs, rexec_idx;
    int settling;                 /* rollbacks and commits of the round's deployments in flight */
    struct deploy_hooks *hooks;   /* the pre or post hooks running, or NULL */
    struct deploy_exec *rexec_op; /* the deferred exec running, or NULL */
    bool notify_draining, notify_drained;
    uv_timer_t kick; /* the first pump, from the loop */
    bool kick_open, started;
    int closing; /* handles (and the listener) still closing */
};

static void pump(struct manager *m);
static bool round_begin(struct manager *m);
static bool round_end(struct manager *m);
static void run_end(struct mcert *mc, int status, const char *error);
static void deploy_next(struct mcert *mc);
static void deploy_begin(struct mcert *mc);
static void maybe_finish(struct manager *m);

/* The manager's wall clock: time(2), or the one manager_opts injects (loop
 * tests move it by hand). One manager per process. */
static timerheap_clock_cb g_clock;
static void *g_clock_arg;

static int64_t now_s(void)
{
    if (g_clock != NULL)
        return g_clock(g_clock_arg) / 1000;
    return (int64_t)time(NULL);
}

static void fmt_date(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, n, "%Y-%m-%d", &tm) == 0)
        snprintf(out, n, "%" PRId64, t);
}

static void fmt_time(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, n, "%" PRId64, t);
}

/* ---- challenge provider ---- */

static int chal_present(void *ctx, const char *token, const char *keyauth)
{
    struct mcert *mc = ctx;

    if (mc->m->chal == NULL)
        return -ENOTCONN;
    return chal_http01_put(mc->m->chal, token, keyauth);
}

static void chal_cleanup(void *ctx, const char *token)
{
    struct mcert *mc = ctx;

    if (mc->m->chal != NULL)
        chal_http01_del(mc->m->chal, token);
}

/* dns-01 through the provider, with the snapshot of the run. */
static int dns_present_start(void *ctx, const char *identifier, const char *keyauth,
                             acme_chal_done_cb done, void *done_arg, void **handle)
{
    struct mcert *mc = ctx;
    struct dns01_provision *pv = NULL;
    int rc;

    if (mc->m->dns == NULL)
        return -ENOTCONN;
    rc = dns01_provider_present_start(mc->m->dns, mc->run_snap, mc->run_cfg, identifier, keyauth,
                                      done, done_arg, &pv);
    if (rc == 0)
        *handle = pv;
    return rc;
}

static void dns_present_cancel(void *ctx, void *handle)
{
    (void)ctx;
    dns01_provider_present_cancel(handle);
}

static void dns_cleanup(void *ctx, const char *identifier, const char *keyauth)
{
    struct mcert *mc = ctx;

    if (mc->m->dns != NULL)
        dns01_provider_cleanup(mc->m->dns, mc->run_snap, mc->run_cfg, identifier, keyauth);
}

/* ---- clients ---- */

static struct acme_client *client_get(struct manager *m, struct config *snap,
                                      const struct cfg_ca *ca)
{
    for (size_t i = 0; i < m->n_clients; i++) {
        if (strcmp(m->clients[i].ca_name, ca->name) == 0 &&
            strcmp(m->clients[i].directory, ca->directory) == 0)
            return m->clients[i].c;
    }
    struct acme_client_opts o = {
        .loop = m->loop,
        .http = m->http,
        .cfg = snap,
        .ca = ca,
        .state_dir = m->state_dir,
    };
    struct acme_client *c = NULL;
    if (acme_client_new(&o, &c) < 0)
        return NULL;
    m->clients = xrealloc(m->clients, (m->n_clients + 1) * sizeof(*m->clients));
    m->clients[m->n_clients].ca_name = xstrdup(ca->name);
    m->clients[m->n_clients].directory = xstrdup(ca->directory);
    m->clients[m->n_clients].c = c;
    m->n_clients++;
    return c;
}

/* ---- scheduling ---- */

static void heap_cb(void *arg);

static void disarm(struct mcert *mc)
{
    if (mc->tentry != NULL) {
        timerheap_cancel(mc->tentry);
        mc->tentry = NULL;
    }
    mc->next_at = 0;
}

static void arm(struct mcert *mc, int64_t at)
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

static void enqueue(struct mcert *mc)
{
    struct manager *m = mc->m;

    if (mc->state != MC_IDLE || m->stopping)
        return;
    disarm(mc);
    mc->state = MC_QUEUED;
    mc->qnext = NULL;
    if (m->qtail != NULL)
        m->qtail->qnext = mc;
    else
        m->qhead = mc;
    m->qtail = mc;
}

static void dequeue(struct mcert *mc)
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
        mc->state = MC_IDLE;
        return;
    }
}

/* What the manager keeps per CA account (created on first use). */
static struct mlimit *ca_state(struct manager *m, const struct cfg_ca *ca)
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
static struct ratelimit_window *ca_window(struct manager *m, const struct cfg_ca *ca)
{
    return &ca_state(m, ca)->win;
}

/* ---- ARI (RFC 9773) ---- */

static void decide(struct mcert *mc);
static void hist_add(struct mcert *mc, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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
        l->dir_retry_at = now_s() + ARI_RETRY_S;
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
        if (!mc->removed && mc->state == MC_IDLE && mc->cfg != NULL && mc->cfg->ca != NULL &&
            strcmp(mc->cfg->ca->name, l->ca_name) == 0)
            decide(mc);
    pump(m);
}

/* Reads the CA's directory once (daemon only), to learn renewalInfo. */
static void ca_dir_fetch(struct manager *m, struct mlimit *l, const struct cfg_ca *ca)
{
    if (l->dir_state == DIR_FETCHING || l->dir_state == DIR_KNOWN || m->http == NULL)
        return;
    if (l->dir_state == DIR_FAILED && now_s() < l->dir_retry_at)
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
        l->dir_retry_at = now_s() + ARI_RETRY_S;
        return;
    }
    l->dir_state = DIR_FETCHING;
}

/* The ARI state of the generation sc: its CertID, and what
 * GENERATION/ari.json remembers (window, chosen time, next fetch). */
static void ari_load(struct mcert *mc, const struct store_cert *sc)
{
    struct acme_chain ch = {0};
    char *path, *txt = NULL;

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
    if (mc->ari_id == NULL || sc->dir == NULL)
        return;
    path = xasprintf("%s/ari.json", sc->dir);
    if (store_read_file(path, &txt, NULL) == 0) {
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
    free(path);
}

struct ari_job {
    struct manager *m;
    char *path, *json;
};

static int ari_job_work(void *arg)
{
    struct ari_job *j = arg;

    return store_write_atomic(j->path, j->json, strlen(j->json), 0644, (uid_t)-1, (gid_t)-1, NULL);
}

static void ari_job_done(int status, void *arg)
{
    struct ari_job *j = arg;
    struct manager *m = j->m;

    m->jobs--;
    if (status < 0)
        log_warn(LOG_MAIN, "%s: %s (the renewal window is fetched again after a restart)", j->path,
                 err_str(status));
    free(j->path);
    free(j->json);
    free(j);
    maybe_finish(m);
}

/* Persists the ARI state beside the generation it describes (off the loop). */
static void ari_save(struct mcert *mc)
{
    struct manager *m = mc->m;
    struct store_cert sc = {0};

    if (store_cert_read_current(m->state_dir, mc->name, false, &sc) < 0)
        return;
    if (sc.generation == NULL || mc->ari_gen == NULL || strcmp(sc.generation, mc->ari_gen) != 0) {
        store_cert_fini(&sc);
        return;
    }
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:s?}", "cert_id", mc->ari_id, "start",
                          (json_int_t)mc->ari_start, "end", (json_int_t)mc->ari_end, "at",
                          (json_int_t)mc->ari_at, "poll", (json_int_t)mc->ari_poll,
                          "explanation_url", mc->ari_expl);
    struct ari_job *j = xcalloc(1, sizeof(*j));
    j->m = m;
    j->path = xasprintf("%s/ari.json", sc.dir);
    j->json = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    store_cert_fini(&sc);
    if (store_job_start(m->loop, ari_job_work, j, ari_job_done) < 0) {
        free(j->path);
        free(j->json);
        free(j);
        return;
    }
    m->jobs++;
}

static void ari_done(int status, const struct http_response *hr, void *arg)
{
    struct mcert *mc = arg;
    struct manager *m = mc->m;
    struct acme_ari_info ai = {0};
    int64_t now = now_s();

    mc->ari_req = NULL;
    m->ari_inflight--;
    if (status == 0 && hr->status == 200 &&
        acme_ari_parse(hr->body.data != NULL ? hr->body.data : "", hr->body.len, &ai) == 0) {
        if (ai.start != mc->ari_start || ai.end != mc->ari_end || mc->ari_at == 0) {
            char a[32], b[32], c[32];
            mc->ari_at = acme_ari_pick(&ai, now, ratelimit_rand_os(NULL));
            fmt_time(ai.start, a, sizeof(a));
            fmt_time(ai.end, b, sizeof(b));
            fmt_time(mc->ari_at, c, sizeof(c));
            log_info(LOG_MAIN, "cert=%s: ARI window %s .. %s: renewal at %s", mc->name, a, b, c);
            hist_add(mc, "ari", "window %s .. %s, renewal at %s", a, b, c);
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
    if (mc->state == MC_IDLE && !mc->removed)
        decide(mc);
    pump(m);
}

/* Fetches renewalInfo/CERTID for mc, or arranges to try again soon when
 * enough fetches are in flight. */
static void ari_request(struct mcert *mc, const struct mlimit *l)
{
    struct manager *m = mc->m;

    if (mc->ari_req != NULL)
        return;
    if (m->ari_inflight >= ARI_MAX_INFLIGHT) {
        mc->ari_poll = now_s() + 1 + (int64_t)(ratelimit_rand_os(NULL) % 60);
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
        mc->ari_poll = now_s() + ARI_RETRY_S;
        return;
    }
    m->ari_inflight++;
}

/* In decide: what ARI says for the stored generation sc (daemon only). */
static void ari_consider(struct mcert *mc, const struct store_cert *sc, int64_t now)
{
    struct manager *m = mc->m;

    if (m->once || m->http == NULL)
        return;
    struct mlimit *l = ca_state(m, mc->cfg->ca);
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

/* A stable jitter in [0, min(JITTER_MAX_S, a tenth of the time from
 * not_before to the planned renewal)] for this certificate and generation
 * (FNV-1a of the name and not_after): never enough to make a fresh
 * certificate due at once. */
static int64_t jitter_s(const char *name, int64_t not_before, int64_t not_after, int64_t when)
{
    uint64_t h = 1469598103934665603ULL;
    int64_t span = (when - not_before) / 10;

    if (span > JITTER_MAX_S)
        span = JITTER_MAX_S;
    if (span <= 0)
        return 0;
    for (const char *p = name; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    for (int i = 0; i < 8; i++)
        h = (h ^ (uint8_t)((uint64_t)not_after >> (8 * i))) * 1099511628211ULL;
    return (int64_t)(h % (uint64_t)(span + 1));
}

/* Whether any name of mc is slowed down by its failures. */
static bool names_paused(const struct mcert *mc)
{
    const struct cfg_cert *cc = mc->cfg;

    if (cc == NULL || mc->m->fails == NULL)
        return false;
    for (size_t i = 0; i < cc->domains.n; i++)
        if (ratelimit_failures_paused(mc->m->fails, cc->domains.v[i]))
            return true;
    return false;
}

static void hist_add(struct mcert *mc, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void hist_add(struct mcert *mc, const char *event, const char *fmt, ...)
{
    char detail[512];
    va_list ap;

    if (mc->m->hist == NULL)
        return;
    detail[0] = '\0';
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
    }
    history_add(mc->m->hist, mc->name, now_s(), event, fmt != NULL ? detail : NULL);
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

static void expiring_saved(void *arg)
{
    struct manager *m = arg;

    m->jobs--;
    maybe_finish(m);
}

/* Records when the last "expiring" alert went out (0: the series ended),
 * in memory and in STATE/alerts/, so that a restart keeps the daily pace. */
static void expiring_set(struct mcert *mc, int64_t t)
{
    struct manager *m = mc->m;

    if (t <= 0 && mc->expiring_sent <= 0)
        return;
    mc->expiring_sent = t;
    if (mgr_expiring_save(m->loop, m->state_dir, mc->name, t, expiring_saved, m) == 0)
        m->jobs++;
}

/* Sends an event to every [notify.*] target subscribed to it. */
static void emit(struct mcert *mc, enum notify_event_type type, const char *error,
                 const char *identifier)
{
    struct manager *m = mc->m;
    const struct cfg_cert *cc = mc->run_cfg != NULL ? mc->run_cfg : mc->cfg;
    char ptype[128];
    char *json = NULL;
    const struct acme_problem *pd = type == NOTIFY_EV_FAILED ? mc->problem : NULL;
    struct notify_subproblem *subs = NULL;

    if (m->notify == NULL || cc == NULL)
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
        .time = now_s(),
        .not_after =
            type == NOTIFY_EV_FAILED || type == NOTIFY_EV_DEPLOY_FAILED ? 0 : mc->not_after,
        .error_type = pd != NULL && pd->type != NULL ? pd->type
                                                     : problem_type_of(error, ptype, sizeof(ptype)),
        .error_detail = error,
        .error_identifier = identifier,
        .subproblems = subs,
        .n_subproblems = pd != NULL ? pd->n_sub : 0,
    };
    if (notify_event_build(&e, &json) == 0) {
        int n = notify_emit(m->notify, json);
        if (n > 0)
            log_info(LOG_MAIN, "cert=%s: %s event queued for %d webhook(s)", mc->name,
                     notify_event_name(type), n);
    }
    free(json);
    free(subs);
}

/* True when key is the key of the stored certificate (sc->key_pem). */
static bool stored_key_is(const struct store_cert *sc, EVP_PKEY *key)
{
    EVP_PKEY *skey = NULL;
    bool same = sc->key_pem != NULL &&
                acme_key_from_pem(sc->key_pem, strlen(sc->key_pem), &skey) == 0 &&
                EVP_PKEY_eq(key, skey) == 1;

    EVP_PKEY_free(skey);
    return same;
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
    int rc = acme_order_resume_load(mc->m->state_dir, mc->cfg, &url, &okey);

    if (rc < 0)
        return false;
    if (stored_key_is(sc, okey)) {
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
    if (mc->state != MC_IDLE || !store_redeploy_marked(mc->m->state_dir, mc->name))
        return false;
    log_info(LOG_MAIN,
             "cert=%s: a deployment of the stored certificate did not finish: "
             "deploying it again",
             mc->name);
    mc->deploy_only = true;
    return true;
}

/* An order file whose key is the stored certificate's belongs to an order
 * that is done (its deployment had not succeeded yet, see settle_start):
 * a renewal orders anew instead of resuming it. Reads the stored key (a
 * small file, inline). */
static bool order_is_stored(struct mcert *mc, EVP_PKEY *okey)
{
    struct store_cert sc = {0};

    if (store_cert_read_current(mc->m->state_dir, mc->name, true, &sc) < 0)
        return false;
    bool same = stored_key_is(&sc, okey);
    store_cert_fini(&sc);
    return same;
}

/* Inside the expiring window an imported certificate's "expiring" event
 * goes out daily; returns when to look again (0: not inside it). */
static int64_t import_expiring(struct mcert *mc, int64_t now)
{
    struct manager *m = mc->m;
    int64_t exp_next = 0;

    if (mc->not_after > 0 &&
        notify_expiring_due(now, mc->not_after, m->cfg->daemon.expiring_window_s, mc->expiring_sent,
                            &exp_next)) {
        char na[32];
        fmt_time(mc->not_after, na, sizeof(na));
        log_warn(LOG_MAIN, "cert=%s: the imported certificate expires %s: replace %s", mc->name, na,
                 mc->cfg->import_cert);
        hist_add(mc, "expiring", "not_after %s", na);
        emit(mc, NOTIFY_EV_EXPIRING, NULL, NULL);
        expiring_set(mc, now);
        (void)notify_expiring_due(now, mc->not_after, m->cfg->daemon.expiring_window_s, now,
                                  &exp_next);
    }
    return exp_next;
}

/* An imported certificate is never ordered: its files are read at start,
 * then hourly (a run that stores and deploys them when they changed), and
 * inside the expiring window an "expiring" event goes out daily. */
static void decide_import(struct mcert *mc, int64_t now)
{
    int64_t next = mc->import_checked_at + IMPORT_CHECK_S;

    if (mc->import_checked_at == 0 || next <= now) {
        mc->reason = "imported: reading its files";
        enqueue(mc);
        return;
    }
    int64_t exp_next = import_expiring(mc, now);
    if (exp_next > now && exp_next < next)
        next = exp_next;
    mc->reason = "imported: its files are checked hourly";
    arm(mc, next);
}

/* Decides whether mc is due now (queue it) or later (arm its deadline). */
static void decide(struct mcert *mc)
{
    struct manager *m = mc->m;
    struct store_cert sc = {0};
    struct sched_meta meta = {0};
    struct sched_decision d;
    struct renewplan plan;
    bool have = false;
    int64_t now = now_s();
    int rc;

    if (mc->cfg->ca == NULL) {
        decide_import(mc, now);
        return;
    }
    rc = store_cert_read_current(m->state_dir, mc->name, true, &sc);
    if (rc == 0) {
        if (sc.meta_json != NULL &&
            sched_meta_parse(sc.meta_json, strlen(sc.meta_json), &meta) == 0)
            have = true;
        else if (sc.cert_pem != NULL &&
                 sched_meta_from_pem(sc.cert_pem, strlen(sc.cert_pem), &meta) == 0)
            have = true;
    } else if (rc != -ENOENT) {
        log_warn(LOG_MAIN, "cert=%s: stored certificate unreadable (%s): ordering a new one",
                 mc->name, err_str(rc));
    }
    sched_decide(mc->cfg, have ? &meta : NULL, now, &d);
    mc->had_cert = have;
    if (have) {
        mc->not_after = meta.not_after;
        mc->not_before = meta.not_before;
        if (d.why == SCHED_LATER || d.why == SCHED_DUE) {
            d.when -= jitter_s(mc->name, meta.not_before, meta.not_after, d.when);
            if (d.why == SCHED_LATER && d.when <= now)
                d.why = SCHED_DUE;
        }
        mc->renew_at = d.when;
    }
    if (have && rc == 0)
        ari_consider(mc, &sc, now);
    struct renewplan_in in = {
        .now = now,
        .policy = d,
        .have_ari = mc->ari_id != NULL && mc->ari_end > 0,
        .ari_at = mc->ari_at,
        .retry_at = mc->retry_at,
        .ca_retry_at = mc->ca_retry_at,
        .limits_at =
            ratelimit_earliest(ca_window(m, mc->cfg->ca), m->fails,
                               (const char *const *)mc->cfg->domains.v, mc->cfg->domains.n, now),
    };
    renewplan_decide(&in, &plan);
    mc->reason = plan.reason;
    /* (an order file kept for a deployment that waits for the round's
     * reload commands is not left behind: the round commits it) */
    if (d.why == SCHED_LATER && mc->failures == 0 && rc == 0 && !mc->journal_shared &&
        (order_left_behind(mc, &sc) || redeploy_left_behind(mc))) {
        enqueue(mc);
    } else if (plan.when > now) {
        char when[32];
        fmt_time(plan.when, when, sizeof(when));
        if (d.why == SCHED_LATER && plan.why == RENEWPLAN_POLICY)
            log_info(LOG_MAIN, "cert=%s: valid, renewal at %s (%s)", mc->name, when, plan.reason);
        else
            log_info(LOG_MAIN, "cert=%s: next order at %s (%s)", mc->name, when, plan.reason);
        if (mc->summary == SUM_NONE && have)
            mc->summary = SUM_OK;
        if (plan.when != mc->next_at)
            hist_add(mc, plan.why == RENEWPLAN_LIMITS ? "rate-limited" : "scheduled", "%s: %s",
                     when, plan.reason);
        /* wake for the next renewalInfo fetch when it comes first */
        int64_t wake = plan.when;
        if (mc->ari_id != NULL && mc->ari_poll > now && mc->ari_poll < wake)
            wake = mc->ari_poll;
        arm(mc, wake);
        mc->next_at = plan.when;
    } else {
        log_info(LOG_MAIN, "cert=%s: due: %s", mc->name, plan.reason);
        enqueue(mc);
    }
    if (have)
        sched_meta_fini(&meta);
    if (rc == 0)
        store_cert_fini(&sc);
}

static void heap_cb(void *arg)
{
    struct mcert *mc = arg;

    mc->tentry = NULL; /* the heap freed it */
    mc->next_at = 0;
    if (mc->state != MC_IDLE || mc->removed)
        return;
    if (mc->deploy_only)
        enqueue(mc); /* a deploy retry: no decision, no order */
    else
        decide(mc);
    pump(mc->m);
}

/* ---- a run: key, order, store, deploy ---- */

static void order_done(int status, struct acme_order_result *res, void *arg);
static void import_run(struct mcert *mc);

static void order_begin(struct mcert *mc)
{
    struct manager *m = mc->m;
    struct acme_client *c = client_get(m, mc->run_snap, mc->run_cfg->ca);
    struct acme_chal_ops ops = {
        .present = chal_present,
        .cleanup = chal_cleanup,
        .dns_present_start = dns_present_start,
        .dns_present_cancel = dns_present_cancel,
        .dns_cleanup = dns_cleanup,
        .ctx = mc,
    };
    /* a renewal names the certificate it replaces when the CA speaks ARI */
    const char *replaces = NULL;
    if (mc->had_cert && mc->ari_id != NULL && !mc->ari_replaces_refused &&
        ca_state(m, mc->run_cfg->ca)->renewal_info != NULL)
        replaces = mc->ari_id;
    struct acme_order_opts o = {
        .cert = mc->run_cfg,
        .key = mc->key,
        .chal = &ops,
        .resume_url = mc->resume_url,
        .state_dir = m->state_dir,
        .replaces = replaces,
    };
    int rc;
    mc->sent_replaces = replaces != NULL;

    if (c == NULL) {
        run_end(mc, -ENOMEM, "cannot create the ACME client");
        return;
    }
    mc->state = MC_ORDER;
    rc = acme_order_start(c, &o, order_done, mc, &mc->order);
    if (rc < 0) {
        char *e = xasprintf("cannot start the order: %s", err_str(rc));
        mc->order = NULL;
        run_end(mc, rc, e);
        free(e);
    }
}

struct key_job {
    struct mcert *mc;
    enum cfg_key_type type;
    EVP_PKEY *key;
};

static int key_job_work(void *arg)
{
    struct key_job *j = arg;

    return acme_key_generate(j->type, &j->key);
}

static bool is_rsa(enum cfg_key_type t)
{
    return t == CFG_KEY_RSA2048 || t == CFG_KEY_RSA3072 || t == CFG_KEY_RSA4096;
}

static void keygen_start(struct mcert *mc);

static void keygen_next(struct manager *m)
{
    while (!m->stopping && m->khead != NULL && m->rsa_keygens < RSA_KEYGEN_MAX) {
        struct mcert *mc = m->khead;
        m->khead = mc->qnext;
        if (m->khead == NULL)
            m->ktail = NULL;
        mc->qnext = NULL;
        keygen_start(mc);
    }
}

static void key_job_done(int status, void *arg)
{
    struct key_job *j = arg;
    struct mcert *mc = j->mc;
    struct manager *m = mc->m;

    m->jobs--;
    if (is_rsa(j->type))
        m->rsa_keygens--;
    keygen_next(m);
    if (m->stopping || mc->removed) {
        EVP_PKEY_free(j->key);
        free(j);
        run_end(mc, -ECANCELED, "stopped");
        return;
    }
    if (status < 0) {
        free(j);
        run_end(mc, status, "key generation failed");
        return;
    }
    mc->key = j->key;
    free(j);
    order_begin(mc);
}

/* Key generation off the loop (RSA 4096 takes seconds). */
static void keygen_start(struct mcert *mc)
{
    struct manager *m = mc->m;
    enum cfg_key_type type = mc->run_cfg->key;
    int rc;

    if (is_rsa(type) && m->rsa_keygens >= RSA_KEYGEN_MAX) {
        mc->state = MC_KEYWAIT;
        mc->qnext = NULL;
        if (m->ktail != NULL)
            m->ktail->qnext = mc;
        else
            m->khead = mc;
        m->ktail = mc;
        return;
    }
    struct key_job *j = xcalloc(1, sizeof(*j));
    j->mc = mc;
    j->type = type;
    mc->state = MC_KEYGEN;
    rc = store_job_start(m->loop, key_job_work, j, key_job_done);
    if (rc < 0) {
        free(j);
        run_end(mc, rc, "cannot start key generation");
        return;
    }
    m->jobs++;
    if (is_rsa(type))
        m->rsa_keygens++;
}

/* Deploys the stored generation (after a crash between store and deploy). */
/* A deploy-only run first leaves STATE/orders/NAME.redeploy (the commit
 * removes it), so that a restart after a crash or a failure deploys the
 * stored generation again; then the deployment begins. */
static void mark_failed(const char *name, const char *state_dir, int rc)
{
    log_warn(LOG_MAIN, "cert=%s: %s/orders/%s.redeploy: %s (a restart would not redeploy)", name,
             state_dir, name, err_str(rc));
}

struct mark_job {
    struct mcert *mc; /* the run: it waits for this job */
    char *state_dir, *name;
};

static int mark_job_work(void *arg)
{
    struct mark_job *j = arg;

    return store_redeploy_mark_sync(j->state_dir, j->name);
}

static void mark_job_done(int status, void *arg)
{
    struct mark_job *j = arg;
    struct mcert *mc = j->mc;

    mc->m->jobs--;
    if (status < 0)
        mark_failed(j->name, j->state_dir, status);
    free(j->state_dir);
    free(j->name);
    free(j);
    deploy_begin(mc);
}

static void redeploy_mark_start(struct mcert *mc)
{
    struct mark_job *j = xcalloc(1, sizeof(*j));

    j->mc = mc;
    j->state_dir = xstrdup(mc->m->state_dir);
    j->name = xstrdup(mc->name);
    mc->m->jobs++;
    int rc = store_job_start(mc->m->loop, mark_job_work, j, mark_job_done);
    if (rc < 0)
        mark_job_done(rc, j);
}

static void deploy_stored(struct mcert *mc)
{
    struct store_cert sc = {0};
    struct sched_meta meta = {0};
    int rc = store_cert_read_current(mc->m->state_dir, mc->name, true, &sc);

    if (rc < 0) {
        char *e = xasprintf("reading the stored certificate: %s", err_str(rc));
        run_end(mc, rc, e);
        free(e);
        return;
    }
    mc->res = xcalloc(1, sizeof(*mc->res));
    mc->res->cert_pem = xstrdup(sc.cert_pem ? sc.cert_pem : "");
    mc->res->chain_pem = xstrdup(sc.chain_pem ? sc.chain_pem : "");
    mc->res->fullchain_pem = xstrdup(sc.fullchain_pem ? sc.fullchain_pem : "");
    mc->key_pem = sc.key_pem;
    sc.key_pem = NULL;
    mc->generation = sc.generation != NULL ? xstrdup(sc.generation) : NULL;
    mc->gen_dir = xstrdup(sc.dir != NULL ? sc.dir : "");
    if (sc.meta_json != NULL && sched_meta_parse(sc.meta_json, strlen(sc.meta_json), &meta) == 0) {
        mc->not_after = meta.not_after;
        sched_meta_fini(&meta);
    }
    store_cert_fini(&sc);
    mc->had_cert = false;
    redeploy_mark_start(mc);
}

static void run_start(struct mcert *mc)
{
    struct manager *m = mc->m;
    char *url = NULL;
    EVP_PKEY *key = NULL;
    int rc;

    m->running++;
    mc->started = now_s();
    mc->run_snap = config_ref(m->cfg);
    mc->run_cfg = mc->cfg;
    if (mc->run_cfg->challenge == CFG_CHAL_DNS01 && m->dns == NULL &&
        dns01_provider_open(m->loop, m->cfg, &m->dns) < 0) {
        m->dns = NULL; /* e.g. a dns-01 certificate added by a reload */
        run_end(mc, ERR_UNSUPPORTED, "dns-01: the solver could not be started");
        return;
    }
    dns01_provider_set_notify(m->dns, m->notify);
    if (mc->deploy_only) {
        mc->deploy_only = false;
        mc->run_deploy_only = true;
        hist_add(mc, "deploying", "the stored certificate");
        deploy_stored(mc);
        return;
    }
    /* an import without a CA, or with one but nothing stored yet: the
     * imported files become the (first) generation */
    if (mc->run_cfg->ca == NULL ||
        (mc->run_cfg->import_cert != NULL && !mc->had_cert && mc->import_checked_at == 0)) {
        import_run(mc);
        return;
    }
    /* Resume an order a previous run left behind (same names, CA, key type). */
    rc = acme_order_resume_load(m->state_dir, mc->run_cfg, &url, &key);
    if (rc == 0 && order_is_stored(mc, key)) {
        log_info(LOG_MAIN,
                 "cert=%s: the stored order's certificate is the stored one: ordering anew",
                 mc->name);
        EVP_PKEY_free(key);
        free(url);
        key = NULL;
        url = NULL;
        rc = -ENOENT;
    }
    if (rc == 0) {
        log_info(LOG_MAIN, "cert=%s: resuming the stored order", mc->name);
        hist_add(mc, "ordering", "resuming %s", url);
        mc->resume_url = url;
        mc->key = key;
        order_begin(mc);
        return;
    }
    if (rc != -ENOENT)
        log_info(LOG_MAIN, "cert=%s: stored order not usable (%s): starting a new one", mc->name,
                 err_str(rc));
    /* a new order counts against the CA account's window */
    if (!ratelimit_window_take(ca_window(m, mc->run_cfg->ca), now_s()))
        log_warn(LOG_MAIN, "cert=%s: over ca=%s's max_new_orders (a forced renewal)", mc->name,
                 mc->run_cfg->ca->name);
    hist_add(mc, "ordering", "new order: %s", mc->reason != NULL ? mc->reason : "due");
    keygen_start(mc);
}

/* A queued certificate about to start a new order while its CA account's
 * window is full waits for the window instead (deploy-only runs and
 * resumed orders do not count). */
static bool window_full(struct mcert *mc)
{
    struct manager *m = mc->m;
    int64_t now = now_s(), next;

    if (mc->deploy_only || mc->forced || mc->cfg->ca == NULL)
        return false;
    next = ratelimit_window_next(ca_window(m, mc->cfg->ca), now);
    if (next <= now)
        return false;
    char when[32];
    fmt_time(next, when, sizeof(when));
    mc->reason = "rate limit: new orders per CA account";
    log_info(LOG_MAIN, "cert=%s: ca=%s's max_new_orders reached: waiting until %s", mc->name,
             mc->cfg->ca->name, when);
    hist_add(mc, "rate-limited", "new orders per CA account: waiting until %s", when);
    arm(mc, next);
    return true;
}

static void pump(struct manager *m)
{
    unsigned max = m->cfg->daemon.max_concurrent_orders;

    if (max == 0)
        max = 1;
    while (!m->stopping && m->qhead != NULL && m->running < max) {
        if (!round_begin(m))
            break; /* the pre hooks run first (or the last round is ending) */
        struct mcert *mc = m->qhead;
        m->qhead = mc->qnext;
        if (m->qhead == NULL)
            m->qtail = NULL;
        mc->qnext = NULL;
        mc->state = MC_IDLE;
        if (window_full(mc))
            continue;
        mc->forced = false;
        run_start(mc);
    }
    maybe_finish(m);
}

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
    char *state_dir; /* owned: for the order file (commit) */
    int status;      /* for run_end */
    char *why;       /* owned: what failed (rollback), or NULL */
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
    int rc = store_order_remove_sync(j->state_dir, j->name);
    int rc2 = store_redeploy_clear_sync(j->state_dir, j->name);
    if (rc == -ENOENT)
        rc = 0;
    return rc < 0 ? rc : rc2;
}

static void settle_job_done(int status, void *arg)
{
    struct settle_job *j = arg;
    struct manager *m = j->m;
    char *e = NULL;

    m->jobs--;
    if (j->commit && status < 0)
        log_warn(LOG_MAIN, "cert=%s: removing %s/orders/%s.{json,redeploy}: %s", j->name,
                 j->state_dir, j->name, err_str(status));
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
        run_end(j->mc, j->commit ? j->status : ERR_DEPLOY, e);
    else if (j->round)
        round_settled(m, j->name, e);
    else
        maybe_finish(m);
    free(e);
    deploy_journal_free(j->j);
    free(j->name);
    free(j->state_dir);
    free(j->why);
    free(j->err);
    free(j);
}

/* Ends the deployment of the certificate name with journal (owned): commit
 * (its backups and the order file go) or, with why, rollback. mc: the run
 * to end afterwards with status, or NULL; round: round_settle's job. */
static void settle_start(struct manager *m, struct mcert *mc, bool round, const char *name,
                         struct deploy_journal *journal, int status, const char *why)
{
    struct settle_job *j = xcalloc(1, sizeof(*j));

    j->m = m;
    j->mc = mc;
    j->round = round;
    j->name = xstrdup(name);
    j->j = journal != NULL ? journal : deploy_journal_new();
    j->commit = why == NULL;
    j->state_dir = xstrdup(m->state_dir);
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
    settle_start(mc->m, mc, false, mc->name, j, ERR_DEPLOY, why);
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

/* Starts the deployment of the run's generation. */
static void deploy_begin(struct mcert *mc)
{
    mc->state = MC_DEPLOY;
    mc->deploy_idx = 0;
    /* a deployment earlier in this round still waiting for the round's
     * reload commands goes on in the same journal */
    if (mc->journal == NULL)
        mc->journal = deploy_journal_new();
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
            struct deploy_env env = {
                .name = mc->name,
                .domains = (const char *const *)cc->domains.v,
                .n_domains = cc->domains.n,
                .cert_dir = mc->gen_dir,
                .event = mc->had_cert ? "renewed" : "issued",
            };
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
        run_end(mc, -ECANCELED, "stopped before every deploy action ran");
        return;
    }
    /* hooks.d/deploy for this certificate, then the run is done */
    struct deploy_env env = {
        .name = mc->name,
        .domains = (const char *const *)cc->domains.v,
        .n_domains = cc->domains.n,
        .cert_dir = mc->gen_dir,
        .event = mc->had_cert ? "renewed" : "issued",
    };
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
        run_end(mc, 0, NULL);
        return;
    }
    struct deploy_journal *j = mc->journal;
    mc->journal = NULL;
    settle_start(mc->m, mc, false, mc->name, j, 0, NULL);
}

/* ---- storing ---- */

struct store_job {
    struct mcert *mc;
    char *state_dir, *name;
    char *cert, *chain, *fullchain, *key, *meta; /* owned copies */
    char *generation;                            /* out */
    const char *step;
    bool mark;   /* no order file covers the deployment: leave a redeploy mark */
    int mark_rc; /* its outcome (a failure is only logged) */
};

static int store_job_work(void *arg)
{
    struct store_job *j = arg;
    int rc;

    j->step = "storing the certificate";
    rc = store_cert_write_sync(j->state_dir, j->name, j->cert, j->chain, j->fullchain, j->key,
                               j->meta, KEEP_GENERATIONS, &j->generation);
    if (rc == 0 && j->mark)
        j->mark_rc = store_redeploy_mark_sync(j->state_dir, j->name);
    return rc;
}

static void store_job_done(int status, void *arg)
{
    struct store_job *j = arg;
    struct mcert *mc = j->mc;

    mc->m->jobs--;
    if (status < 0) {
        char *e = xasprintf("%s: %s", j->step, err_str(status));
        run_end(mc, status, e);
        free(e);
    } else {
        log_debug(LOG_MAIN, "cert=%s: stored generation %s", mc->name,
                  j->generation ? j->generation : "?");
        if (j->mark_rc < 0)
            mark_failed(mc->name, j->state_dir, j->mark_rc);
        mc->generation = j->generation;
        j->generation = NULL;
        mc->gen_dir = xasprintf("%s/certs/%s/%s", mc->m->state_dir, mc->name,
                                mc->generation ? mc->generation : "current");
        mc->key_pem = j->key;
        j->key = NULL;
        deploy_begin(mc);
    }
    if (j->key != NULL)
        OPENSSL_cleanse(j->key, strlen(j->key));
    free(j->key);
    free(j->state_dir);
    free(j->name);
    free(j->cert);
    free(j->chain);
    free(j->fullchain);
    free(j->meta);
    free(j->generation);
    free(j);
}

static char *meta_json(struct mcert *mc, const struct acme_chain *ch)
{
    const struct cfg_cert *cc = mc->run_cfg;
    json_t *doms = json_array();
    char *s;

    for (size_t i = 0; i < cc->domains.n; i++)
        json_array_append_new(doms, json_string(cc->domains.v[i]));
    json_t *j =
        json_pack("{s:o, s:s?, s:s?, s:s, s:I, s:I, s:I, s:s}", "domains", doms, "ca",
                  cc->ca != NULL ? cc->ca->name : NULL, "directory",
                  cc->ca != NULL ? cc->ca->directory : NULL, "key", config_key_type_name(cc->key),
                  "not_before", (json_int_t)ch->not_before, "not_after", (json_int_t)ch->not_after,
                  "issued_at", (json_int_t)now_s(), "serial", ch->serial_hex ? ch->serial_hex : "");
    s = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    return s;
}

static void store_and_deploy(struct mcert *mc);
static void import_run(struct mcert *mc);

static void order_done(int status, struct acme_order_result *res, void *arg)
{
    struct mcert *mc = arg;

    mc->order = NULL;
    if (status != 0) {
        mc->retry_after_s = res != NULL ? res->retry_after_s : 0;
        free(mc->failed_ident);
        mc->failed_ident = NULL;
        if (res != NULL && res->failed_identifier != NULL)
            mc->failed_ident = xstrdup(res->failed_identifier);
        acme_problem_free(mc->problem);
        mc->problem = res != NULL ? res->problem : NULL;
        if (res != NULL)
            res->problem = NULL;
        /* a CA that refuses `replaces` (already replaced, or not the
         * certificate it knows): the next order goes without it */
        if (mc->sent_replaces && res != NULL && res->error != NULL &&
            (strstr(res->error, "alreadyReplaced") != NULL ||
             strstr(res->error, "replaces") != NULL)) {
            log_warn(LOG_MAIN, "cert=%s: the CA refused `replaces`; next orders go without it",
                     mc->name);
            mc->ari_replaces_refused = true;
        }
        char *e = xasprintf("%s", res != NULL && res->error ? res->error : err_str(status));
        acme_order_result_free(res);
        run_end(mc, status, e);
        free(e);
        return;
    }
    mc->res = res;
    store_and_deploy(mc);
}

/* Stores mc->res with mc->key as a new generation, then deploys it. */
static void store_and_deploy(struct mcert *mc)
{
    struct manager *m = mc->m;
    struct acme_order_result *res = mc->res;
    char *pem = NULL;
    size_t plen;
    int rc;

    /* Never store a certificate that does not belong to our key. */
    if (!acme_chain_matches_key(&res->chain, mc->key)) {
        run_end(mc, ERR_CRYPTO, "the certificate does not match the certificate key");
        return;
    }
    rc = acme_key_to_pem(mc->key, &pem, &plen);
    if (rc < 0) {
        run_end(mc, rc, "cannot encode the key");
        return;
    }
    struct store_job *j = xcalloc(1, sizeof(*j));
    j->mc = mc;
    j->state_dir = xstrdup(m->state_dir);
    j->name = xstrdup(mc->name);
    j->cert = xstrdup(res->cert_pem);
    j->chain = xstrdup(res->chain_pem);
    j->fullchain = xstrdup(res->fullchain_pem);
    j->key = pem;
    j->meta = meta_json(mc, &res->chain);
    j->mark = mc->run_deploy_only; /* an import: no order file */
    mc->not_after = res->chain.not_after;
    mc->state = MC_STORE;
    rc = store_job_start(m->loop, store_job_work, j, store_job_done);
    if (rc < 0) {
        j->step = "cannot start the store job";
        m->jobs++; /* store_job_done decrements it */
        store_job_done(rc, j);
        return;
    }
    m->jobs++;
}

/* An imported certificate's run: reads import.cert (leaf then chain) and
 * import.key, refuses a key that does not match, and stores and deploys
 * them when they differ from the current generation. */
static void import_run(struct mcert *mc)
{
    const struct cfg_cert *cc = mc->run_cfg;
    char *cert = NULL, *key = NULL;
    struct acme_chain ch = {0};
    struct store_cert sc = {0};
    char *e = NULL;
    int rc;

    mc->import_checked_at = now_s();
    rc = store_read_file(cc->import_cert, &cert, NULL);
    if (rc < 0) {
        e = xasprintf("import: %s: %s", cc->import_cert, err_str(rc));
        goto fail;
    }
    rc = store_read_file(cc->import_key, &key, NULL);
    if (rc < 0) {
        e = xasprintf("import: %s: %s", cc->import_key, err_str(rc));
        goto fail;
    }
    rc = acme_chain_parse(cert, strlen(cert), &ch);
    if (rc < 0) {
        e = xasprintf("import: %s: not a PEM certificate chain", cc->import_cert);
        goto fail;
    }
    rc = acme_key_from_pem(key, strlen(key), &mc->key);
    if (rc < 0) {
        e = xasprintf("import: %s: not a PEM private key", cc->import_key);
        goto fail;
    }
    if (!acme_chain_matches_key(&ch, mc->key)) {
        rc = ERR_CRYPTO;
        e = xasprintf("import: %s does not belong to the key %s", cc->import_cert, cc->import_key);
        goto fail;
    }
    mc->not_after = ch.not_after;
    mc->not_before = ch.not_before;
    /* the same files as the current generation: nothing to do */
    if (store_cert_read_current(mc->m->state_dir, mc->name, true, &sc) == 0) {
        bool same = sc.cert_pem != NULL && sc.key_pem != NULL &&
                    strcmp(sc.cert_pem, ch.pem[0]) == 0 && strcmp(sc.key_pem, key) == 0;
        store_cert_fini(&sc);
        if (same) {
            acme_chain_fini(&ch);
            OPENSSL_cleanse(key, strlen(key));
            free(key);
            free(cert);
            mc->summary = SUM_OK;
            mc->run_deploy_only = true; /* nothing ordered, nothing counted */
            if (store_redeploy_marked(mc->m->state_dir, mc->name)) {
                log_info(LOG_MAIN,
                         "cert=%s: its last deployment did not finish: deploying it "
                         "again",
                         mc->name);
                deploy_stored(mc);
                return;
            }
            run_end(mc, 0, NULL);
            return;
        }
    }
    struct buf chain = BUF_INIT(1 << 20), full = BUF_INIT(1 << 20);
    for (size_t i = 0; i < ch.n; i++) {
        if (i > 0)
            (void)buf_printf(&chain, "%s", ch.pem[i]);
        (void)buf_printf(&full, "%s", ch.pem[i]);
    }
    size_t n;
    mc->res = xcalloc(1, sizeof(*mc->res));
    mc->res->cert_pem = xstrdup(ch.pem[0]);
    mc->res->chain_pem = chain.data != NULL ? buf_steal(&chain, &n) : xstrdup("");
    mc->res->fullchain_pem = buf_steal(&full, &n);
    mc->res->chain = ch;
    buf_fini(&chain);
    buf_fini(&full);
    log_info(LOG_MAIN, "cert=%s: imported files changed: storing and deploying them", mc->name);
    hist_add(mc, "imported", "%s", cc->import_cert);
    OPENSSL_cleanse(key, strlen(key));
    free(key);
    free(cert);
    mc->had_cert = true;
    mc->run_deploy_only = true; /* deployed, not issued: no order was made */
    store_and_deploy(mc);
    return;
fail:
    acme_chain_fini(&ch);
    if (key != NULL)
        OPENSSL_cleanse(key, strlen(key));
    free(key);
    free(cert);
    mc->run_deploy_only = true; /* a deployment problem: never an order */
    run_end(mc, rc < 0 ? rc : ERR_DEPLOY, e);
    free(e);
}

/* ---- end of a run ---- */

static void mc_free(struct mcert *mc)
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

static void mc_unlink(struct mcert *mc)
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
    disarm(mc);
    if (mc->ari_req != NULL) {
        http_req_cancel(mc->ari_req);
        mc->ari_req = NULL;
        m->ari_inflight--;
    }
    if (mc->journal != NULL && !m->stopping) {
        /* removed while its deployment waited for the round's reload
         * commands: its files stay, its backups and order file go */
        settle_start(m, NULL, false, mc->name, mc->journal, 0, NULL);
        mc->journal = NULL;
        mc->journal_shared = false;
    }
    mc->dead_next = m->dead;
    m->dead = mc;
}

static void free_dead(struct manager *m)
{
    while (m->dead != NULL) {
        struct mcert *mc = m->dead;
        m->dead = mc->dead_next;
        mc_free(mc);
    }
}

static void run_end(struct mcert *mc, int status, const char *error)
{
    struct manager *m = mc->m;
    const struct cfg_cert *cc = mc->run_cfg;

    if (status == 0) {
        char na[32];
        struct buf names = BUF_INIT(64 * 1024);
        for (size_t i = 0; i < cc->domains.n; i++)
            (void)buf_printf(&names, "%s%s", i ? "," : "", cc->domains.v[i]);
        fmt_time(mc->not_after, na, sizeof(na));
        log_info(LOG_MAIN, "%s cert=%s names=%s not_after=%s deployed=%zu actions",
                 mc->run_deploy_only ? "deployed" : "issued", mc->name,
                 names.data ? names.data : "", na, cc->n_deploy);
        buf_fini(&names);
        mc->summary = SUM_ISSUED;
        if (!mc->journal_shared)
            mc->failures = 0; /* else once the round's reload commands succeed */
        mc->retry_at = 0;
        mc->ca_retry_at = 0;
        mc->last_success_at = now_s();
        free(mc->error);
        mc->error = NULL;
        if (!mc->run_deploy_only) {
            mc->renewals_ok++;
            metrics_hist_observe(&m->order_hist, (double)(now_s() - mc->started));
            for (size_t i = 0; i < cc->domains.n; i++)
                ratelimit_failures_success(m->fails, cc->domains.v[i]);
            hist_add(mc, mc->had_cert ? "renewed" : "issued", "not_after %s", na);
            emit(mc, mc->had_cert ? NOTIFY_EV_RENEWED : NOTIFY_EV_ISSUED, NULL, NULL);
            expiring_set(mc, 0);
        } else {
            hist_add(mc, "deployed", "%zu actions", cc->n_deploy);
        }
    } else if (status == -ECANCELED && (m->stopping || mc->removed)) {
        log_info(LOG_MAIN, "cert=%s: order cancelled (stopping)", mc->name);
        mc->summary = SUM_FAILED;
        free(mc->error);
        mc->error = xstrdup("cancelled");
        hist_add(mc, "cancelled", "stopping");
    } else {
        log_error(LOG_MAIN, "order cert=%s %s", mc->name, error ? error : err_str(status));
        m->failed++;
        mc->summary = SUM_FAILED;
        mc->failures++;
        free(mc->error);
        mc->error = xstrdup(error ? error : err_str(status));
        free(mc->last_error);
        mc->last_error = xstrdup(mc->error);
        mc->last_error_at = now_s();
        hist_add(mc, "failed", "%s", mc->error);
        /* stored but not deployed (see deploy_failed below): the deployment failed */
        emit(mc, mc->generation != NULL ? NOTIFY_EV_DEPLOY_FAILED : NOTIFY_EV_FAILED, mc->error,
             mc->failed_ident);
        if (mc->not_after > 0 &&
            notify_expiring_due(now_s(), mc->not_after, m->cfg->daemon.expiring_window_s,
                                mc->expiring_sent, NULL)) {
            char na[32];
            fmt_time(mc->not_after, na, sizeof(na));
            log_warn(LOG_MAIN, "cert=%s: expires %s and its renewal keeps failing", mc->name, na);
            hist_add(mc, "expiring", "not_after %s", na);
            emit(mc, NOTIFY_EV_EXPIRING, mc->error, NULL);
            expiring_set(mc, now_s());
        }
        if (!mc->run_deploy_only) {
            int64_t now = now_s();
            mc->renewals_failed++;
            metrics_hist_observe(&m->order_hist, (double)(now - mc->started));
            if (mc->failed_ident != NULL)
                ratelimit_failures_record(m->fails, mc->failed_ident, now);
            /* exponential backoff with jitter; the CA's Retry-After when longer */
            mc->retry_at = now + backoff_delay((unsigned)(mc->failures - 1), RETRY_FIRST_S,
                                               m->cfg->daemon.backoff_max_s, NULL, NULL);
            mc->ca_retry_at = mc->retry_after_s > 0 ? now + mc->retry_after_s : 0;
        } else {
            mc->retry_at = now_s() + backoff_delay((unsigned)(mc->failures - 1), RETRY_FIRST_S,
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
        mc_unlink(mc);
    } else if (m->once && status == 0 && mc->cfg != NULL && mc->cfg->ca == NULL) {
        /* `run --once` has no later decision: the import's alert is now */
        (void)import_expiring(mc, now_s());
    } else if (!m->once && !m->stopping) {
        if (deploy_failed) {
            /* the certificate is stored: only its deployment is retried,
             * on the backoff schedule, never a new order */
            char when[32];
            mc->deploy_only = true;
            mc->reason = "deploy retry after a failure";
            fmt_time(mc->retry_at, when, sizeof(when));
            log_info(LOG_MAIN, "cert=%s: deploy retry at %s", mc->name, when);
            hist_add(mc, "scheduled", "%s: %s", when, mc->reason);
            arm(mc, mc->retry_at);
        } else if (mc->redeploy_after && status == 0) {
            mc->redeploy_after = false;
            mc->deploy_only = true;
            enqueue(mc);
        } else {
            decide(mc); /* the renewal, or the retry after a failure */
        }
    }
    pump(m);
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
    pump(m);
}

/* True when runs may start now; else the pre hooks run first. */
static bool round_begin(struct manager *m)
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

static void round_free_execs(struct manager *m)
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
    mc->summary = SUM_FAILED;
    free(mc->error);
    mc->error = xstrdup(e);
    free(mc->last_error);
    mc->last_error = xstrdup(e);
    mc->last_error_at = now_s();
    mc->deploy_failing = true;
    mc->deploy_only = true;
    mc->retry_at = now_s() + backoff_delay((unsigned)(mc->failures - 1), RETRY_FIRST_S,
                                           m->cfg->daemon.backoff_max_s, NULL, NULL);
    mc->reason = "deploy retry after a failure";
    hist_add(mc, "failed", "%s", e);
    emit(mc, NOTIFY_EV_DEPLOY_FAILED, e, NULL);
    if (mc->state == MC_IDLE && !m->once && !m->stopping)
        arm(mc, mc->retry_at);
}

static void post_done(int status, size_t run, size_t failed, void *arg)
{
    struct manager *m = arg;

    m->hooks = NULL;
    if (status != 0)
        log_warn(LOG_DEPLOY, "hooks.d/post: %zu of %zu hooks failed", failed, run);
    round_free_execs(m);
    m->round = ROUND_IDLE;
    pump(m);
}

/* The round's deployments are settled: hooks.d/post, then the round is
 * over. async: called back from a job (pump here), not from round_end. */
static void round_post(struct manager *m, bool async)
{
    if (!m->stopping && deploy_hooks_start(m->loop, m->cfg->daemon.hooks_dir, DEPLOY_HOOK_POST,
                                           NULL, 0, post_done, m, &m->hooks) == 0)
        return;
    m->hooks = NULL;
    round_free_execs(m);
    m->round = ROUND_IDLE;
    if (async)
        pump(m);
}

/* One deployment of the round is settled (e: its error after a rollback,
 * or NULL), or with name NULL, round_settle has started them all. */
static void round_settled(struct manager *m, const char *name, const char *e)
{
    for (struct mcert *mc = m->certs; mc != NULL && name != NULL; mc = mc->next) {
        if (mc->removed || strcmp(mc->name, name) != 0)
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
        maybe_finish(m); /* stopped meanwhile */
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
        if (mc->removed || !mc->journal_shared)
            continue;
        const char *why = NULL;
        for (size_t i = 0; i < m->n_rexecs && why == NULL; i++)
            if (m->rexecs[i].why != NULL && rexec_has(&m->rexecs[i], mc->name))
                why = m->rexecs[i].why;
        struct deploy_journal *j = mc->journal;
        mc->journal = NULL;
        mc->journal_shared = false;
        m->settling++;
        settle_start(m, NULL, true, mc->name, j, 0, why);
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
static bool round_end(struct manager *m)
{
    if (m->round != ROUND_ACTIVE || m->running > 0 || m->qhead != NULL || m->khead != NULL)
        return false;
    m->round = ROUND_END;
    m->rexec_idx = 0;
    round_next_exec(m);
    return m->round != ROUND_IDLE;
}

/* ---- teardown ---- */

static void free_dead(struct manager *m);
static void round_free_execs(struct manager *m);

static void manager_free(struct manager *m)
{
    free_dead(m);
    round_free_execs(m);
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
    history_free(m->hist);
    ratelimit_failures_free(m->fails);
    free(m->state_dir);
    config_unref(m->cfg);
    free(m);
}

static void chal_closed(void *arg)
{
    struct manager *m = arg;

    m->closing--;
    maybe_finish(m);
}

static void print_summary(struct manager *m)
{
    for (struct mcert *mc = m->certs; mc != NULL; mc = mc->next) {
        char a[32], b[32];
        if (mc->cfg != NULL && mc->cfg->ca == NULL && mc->summary != SUM_FAILED &&
            mc->not_after > 0) {
            fmt_date(mc->not_after, a, sizeof(a));
            printf("%s: imported, valid until %s\n", mc->name, a);
            continue;
        }
        switch (mc->summary) {
        case SUM_ISSUED:
            fmt_date(mc->not_after, a, sizeof(a));
            printf("%s: issued, expires %s\n", mc->name, a);
            break;
        case SUM_FAILED:
            printf("%s: failed: %s\n", mc->name, mc->error ? mc->error : "unknown error");
            break;
        case SUM_OK:
            if (mc->not_after > 0) {
                fmt_date(mc->not_after, a, sizeof(a));
                fmt_date(mc->renew_at, b, sizeof(b));
                printf("%s: ok, valid until %s, renewal %s\n", mc->name, a, b);
            } else {
                printf("%s: ok\n", mc->name);
            }
            break;
        case SUM_NONE:
            printf("%s: not processed\n", mc->name);
            break;
        }
    }
    fflush(stdout);
}

static void kick_closed(uv_handle_t *h)
{
    struct manager *m = h->data;

    m->closing--;
    maybe_finish(m);
}

static void notify_closed(void *arg)
{
    struct manager *m = arg;

    m->closing--;
    maybe_finish(m);
}

static void heap_closed(void *arg)
{
    struct manager *m = arg;

    m->closing--;
    maybe_finish(m);
}

static void teardown(struct manager *m)
{
    m->torn_down = true;
    if (m->kick_open) {
        m->kick_open = false;
        m->closing++;
        uv_close((uv_handle_t *)&m->kick, kick_closed);
    }
    if (m->once)
        print_summary(m);
    while (m->certs != NULL)
        mc_unlink(m->certs);
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
    if (m->chal != NULL) {
        m->closing++;
        chal_http01_close(m->chal, chal_closed, m);
        m->chal = NULL;
    }
}

static void notify_drained(bool drained, void *arg)
{
    struct manager *m = arg;

    if (!drained)
        log_warn(LOG_MAIN, "webhooks: deliveries still in flight; they stay in the outbox");
    m->notify_drained = true;
    maybe_finish(m);
}

static void kick_cb(uv_timer_t *t)
{
    struct manager *m = t->data;

    m->started = true;
    pump(m);
}

static void maybe_finish(struct manager *m)
{
    if (!m->started)
        return;
    if (!m->torn_down) {
        if (round_end(m))
            return; /* finishing the round: post_done pumps again */
        bool idle = m->running == 0 && m->qhead == NULL && m->jobs == 0 && m->round == ROUND_IDLE;
        if (!idle || !(m->once || m->stopping))
            return;
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

static bool cert_configured(const char *name, void *arg)
{
    return config_cert_find(arg, name) != NULL;
}

static struct mcert *mc_new(struct manager *m, const struct cfg_cert *cc)
{
    struct mcert *mc = xcalloc(1, sizeof(*mc));

    mc->m = m;
    mc->name = xstrdup(cc->name);
    mc->cfg = cc;
    mc->expiring_sent = mgr_expiring_last_read(m->state_dir, mc->name);
    /* keep the list in config order (sorted by name) */
    struct mcert **pp = &m->certs;
    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = mc;
    return mc;
}

int manager_start(const struct manager_opts *o, struct manager **out)
{
    struct manager *m = xcalloc(1, sizeof(*m));
    int rc;

    m->loop = o->loop;
    m->cfg = config_ref(o->cfg);
    m->store = o->store;
    m->state_dir = xstrdup(store_dir(o->store));
    m->once = o->once;
    m->done = o->done;
    m->arg = o->arg;
    g_clock = o->clock;
    g_clock_arg = o->clock_arg;
    m->hist = history_new(0);
    m->fails = ratelimit_failures_new(RATELIMIT_FAILURES_DEFAULT, RATELIMIT_FAILURES_WINDOW_S,
                                      RATELIMIT_PAUSE_HINT_DEFAULT);

    bool need_http01 = false;
    for (size_t i = 0; i < m->cfg->n_certs; i++)
        if (m->cfg->certs[i].challenge == CFG_CHAL_HTTP01 && m->cfg->certs[i].ca != NULL)
            need_http01 = true;
    if (need_http01 || !m->once) {
        rc = chal_http01_open(m->loop, (const char *const *)m->cfg->http01.listen.v,
                              m->cfg->http01.listen.n, &m->chal);
        if (rc < 0) {
            m->chal = NULL;
            goto fail;
        }
        struct chal_http01_limits lim = {.max_connections = o->http01_max_connections};
        chal_http01_set_limits(m->chal, &lim); /* zeros keep the defaults */
    }
    bool need_dns01 = false;
    for (size_t i = 0; i < m->cfg->n_certs; i++)
        if (m->cfg->certs[i].challenge == CFG_CHAL_DNS01 && m->cfg->certs[i].ca != NULL)
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
    if (notify_open(m->loop, m->http, m->state_dir, m->cfg, NULL, &m->notify) < 0) {
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
    for (size_t i = 0; i < m->cfg->n_certs; i++)
        mc_new(m, &m->cfg->certs[i]);
    (void)mgr_alerts_sweep(m->state_dir, cert_configured, m->cfg);
    for (struct mcert *mc = m->certs; mc != NULL; mc = mc->next)
        decide(mc);
    *out = m;
    /* The first pump runs from the loop so that done never runs inside
     * manager_start (nothing due in --once mode ends at once). */
    uv_timer_init(m->loop, &m->kick);
    m->kick.data = m;
    m->kick_open = true;
    uv_timer_start(&m->kick, kick_cb, 0, 0);
    return 0;
fail:
    if (m->notify != NULL)
        notify_close(m->notify, NULL, NULL);
    if (m->http != NULL)
        http_client_close(m->http);
    if (m->dns != NULL)
        dns01_provider_close(m->dns);
    if (m->chal != NULL)
        chal_http01_close(m->chal, NULL, NULL);
    m->done = NULL;
    history_free(m->hist);
    ratelimit_failures_free(m->fails);
    config_unref(m->cfg);
    free(m->state_dir);
    free(m);
    return rc;
}

void manager_reload(struct manager *m, struct config *cfg)
{
    struct config *old = m->cfg;
    /* the entry of each certificate of the new snapshot, by its index (a
     * lookup per certificate would make a reload quadratic) */
    struct mcert **by_idx = xcalloc(cfg->n_certs > 0 ? cfg->n_certs : 1, sizeof(*by_idx));

    free_dead(m);
    m->cfg = config_ref(cfg);
    if (m->notify != NULL)
        notify_reload(m->notify, cfg);
    /* Certificates gone from the new snapshot: no new work; a run in flight
     * finishes with the snapshot it started with, then the entry goes. */
    for (struct mcert *mc = m->certs, *nx; mc != NULL; mc = nx) {
        nx = mc->next;
        const struct cfg_cert *cc = config_cert_find(cfg, mc->name);
        if (cc != NULL) {
            if (!mc->removed)
                by_idx[cc - cfg->certs] = mc; /* mc->cfg still the old one: diffed below */
            continue;
        }
        log_info(LOG_MAIN, "cert=%s: removed from the configuration", mc->name);
        expiring_set(mc, 0); /* its alert series ends with it */
        mc->removed = true;
        mc->cfg = NULL;
        if (mc->state == MC_QUEUED)
            dequeue(mc);
        disarm(mc);
        if (mc->state == MC_IDLE) {
            history_forget(m->hist, mc->name);
            mc_unlink(mc);
        }
    }
    /* Added: decided. Changed names, key type or CA: decided anew (the
     * stored certificate no longer matches: ordered now). Changed deploy
     * actions only: the stored certificate is deployed again, no order.
     * Unchanged: untouched, including a run in flight or an armed timer. */
    for (size_t i = 0; i < cfg->n_certs; i++) {
        const struct cfg_cert *cc = &cfg->certs[i];
        struct mcert *mc = by_idx[i];
        if (mc == NULL) {
            log_info(LOG_MAIN, "cert=%s: added", cc->name);
            mc = mc_new(m, cc);
            hist_add(mc, "added", "by a reload");
            decide(mc);
            continue;
        }
        const struct cfg_cert *prev = mc->cfg;
        bool same_order = config_cert_equal_order(prev, cc);
        bool same_deploy = config_cert_equal_deploy(prev, cc);
        mc->cfg = cc;
        if (same_order && same_deploy)
            continue;
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
            hist_add(mc, "changed", "names, key, CA or policy");
            mc->retry_at = 0;
            decide(mc);
        } else {
            struct store_cert sc = {0};
            if (store_cert_read_current(m->state_dir, mc->name, false, &sc) == 0) {
                store_cert_fini(&sc);
                log_info(LOG_MAIN, "cert=%s: deploy actions changed: deploying again", mc->name);
                hist_add(mc, "changed", "deploy actions: deploying the stored certificate");
                mc->deploy_only = true;
                enqueue(mc);
            }
        }
    }
    free(by_idx);
    config_unref(old);
    pump(m);
}

void manager_stop(struct manager *m)
{
    if (m->stopping)
        return;
    m->stopping = true;
    m->started = true;
    /* Nothing queued starts any more. */
    while (m->qhead != NULL)
        dequeue(m->qhead);
    while (m->khead != NULL) {
        struct mcert *mc = m->khead;
        m->khead = mc->qnext;
        if (m->khead == NULL)
            m->ktail = NULL;
        mc->qnext = NULL;
        run_end(mc, -ECANCELED, "stopped");
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
        round_free_execs(m);
        m->round = ROUND_IDLE;
    }
    for (struct mcert *mc = m->certs; mc != NULL; mc = mc->next) {
        disarm(mc);
        if (mc->hooks != NULL) {
            deploy_hooks_cancel(mc->hooks);
            mc->hooks = NULL;
            run_end(mc, -ECANCELED, "stopped");
            continue;
        }
        if (mc->order != NULL) {
            /* cancel cleans the order's tokens and never calls back */
            acme_order_cancel(mc->order);
            mc->order = NULL;
            run_end(mc, -ECANCELED, "stopped");
        } else if (mc->exec != NULL) {
            deploy_exec_cancel(mc->exec);
            mc->exec = NULL;
            run_end(mc, -ECANCELED, "stopped");
        } else if (mc->files != NULL) {
            deploy_files_cancel(mc->files);
            mc->files = NULL;
            run_end(mc, -ECANCELED, "stopped");
        }
    }
    maybe_finish(m);
}

/* ---- status and renew (the control socket's handlers call these) ---- */

static const char *state_word(const struct mcert *mc, int64_t now)
{
    switch (mc->state) {
    case MC_QUEUED:
        return "due";
    case MC_KEYWAIT:
    case MC_KEYGEN:
    case MC_ORDER:
        return "ordering";
    case MC_STORE:
        return "storing";
    case MC_DEPLOY:
        return "deploying";
    case MC_IDLE:
        break;
    }
    if (mc->journal_shared)
        return "deploying"; /* waits for the round's reload commands */
    if (mc->failures > 0 && mc->deploy_failing)
        return "deploy-failed";
    if (mc->failures > 0)
        return "retrying";
    if (mc->not_after == 0)
        return "no-certificate";
    if (mc->not_after <= now)
        return "expired";
    return "valid";
}

json_t *manager_status(const struct manager *m)
{
    size_t n = 0, i = 0;
    int64_t now = now_s();
    unsigned inflight = 0;

    for (const struct mcert *mc = m->certs; mc != NULL; mc = mc->next)
        n++;
    struct control_cert_status *st = xcalloc(n > 0 ? n : 1, sizeof(*st));
    for (const struct mcert *mc = m->certs; mc != NULL; mc = mc->next, i++) {
        const struct cfg_cert *cc = mc->run_cfg != NULL ? mc->run_cfg : mc->cfg;
        if (mc->state != MC_IDLE && mc->state != MC_QUEUED)
            inflight++;
        st[i].name = mc->name;
        st[i].state = state_word(mc, now);
        if (cc != NULL) {
            st[i].domains = (const char *const *)cc->domains.v;
            st[i].n_domains = cc->domains.n;
            st[i].ca = cc->ca != NULL ? cc->ca->name : NULL;
        }
        st[i].not_before = mc->not_before;
        st[i].not_after = mc->not_after;
        st[i].next_renewal = mc->tentry != NULL ? mc->next_at : (mc->state == MC_IDLE ? 0 : now);
        st[i].reason = mc->reason;
        st[i].last_error = mc->last_error;
        st[i].last_error_at = mc->last_error_at;
        st[i].last_success_at = mc->last_success_at;
        st[i].consecutive_failures = (unsigned)mc->failures;
        st[i].paused = names_paused(mc);
        if (mc->ari_id != NULL && mc->ari_end > 0) {
            st[i].ari_start = mc->ari_start;
            st[i].ari_end = mc->ari_end;
            st[i].ari_explanation_url = mc->ari_expl;
        }
        st[i].history = m->hist != NULL ? history_json(m->hist, mc->name) : NULL;
    }
    json_t *j = control_status_json(st, n, now, inflight);
    free(st);
    return j;
}

int manager_renew(struct manager *m, const char *name, bool force, bool deploy_only, char **err)
{
    struct mcert *mc = NULL;

    for (struct mcert *x = m->certs; x != NULL; x = x->next)
        if (!x->removed && strcmp(x->name, name) == 0)
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
    if (mc->cfg->ca == NULL && !deploy_only) {
        /* an import is never ordered: read its files again now */
        log_info(LOG_MAIN, "cert=%s: reading the imported files (requested)", name);
        hist_add(mc, "requested", "re-read the imported files");
        mc->import_checked_at = 0;
        enqueue(mc);
        pump(m);
        return 0;
    }
    if (deploy_only) {
        struct store_cert sc = {0};
        if (store_cert_read_current(m->state_dir, name, false, &sc) < 0) {
            if (err != NULL)
                *err = xasprintf("%s: nothing stored to deploy", name);
            return -EINVAL;
        }
        store_cert_fini(&sc);
        mc->deploy_only = true;
        log_info(LOG_MAIN, "cert=%s: deploy requested", name);
        hist_add(mc, "requested", "renew --deploy-only");
        enqueue(mc);
    } else if (force) {
        log_info(LOG_MAIN, "cert=%s: renewal requested (forced)", name);
        mc->reason = "renewal requested";
        mc->forced = true;
        mc->retry_at = 0;
        mc->deploy_only = false; /* a new order, even while a deployment is failing */
        hist_add(mc, "requested", "renew --force");
        enqueue(mc);
    } else {
        /* not forced: order only when due, as the schedule says */
        decide(mc);
        if (mc->state != MC_QUEUED && err != NULL) {
            char when[32];
            fmt_time(mc->next_at, when, sizeof(when));
            *err = xasprintf("%s: not due; renewal at %s (use --force)", name, when);
        }
    }
    pump(m);
    return 0;
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
    int rc = metrics_write(&snap, out);
    free(mcs);
    return rc;
}

void manager_clock_moved(struct manager *m)
{
    if (m->heap != NULL)
        (void)timerheap_run_due(m->heap);
    pump(m);
}
