/* Pulled certificates ([certificate.NAME] from = "hub.NAME"): the event
 * stream of each [hub.NAME] (GET /v1/events, Server-Sent Events, resumed
 * with Last-Event-ID, reconnected with a backoff), when a pulled
 * certificate is fetched (at start, on the hub's event for it, on every
 * reconnection of the stream, hourly, and on a retry after a failure), and
 * its fetch: cert, chain, fullchain and key of one generation, checked
 * against each other before imports.c compares them with the stored
 * generation. It stores and deploys nothing itself: run.c does, as for an
 * import. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "reactor/manager_internal.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#define PULL_MAX_PEM ((size_t)1024 * 1024)
#define PULL_FETCH_TIMEOUT_MS 30000L
#define PULL_ATTEMPTS 3 /* the hub's generation changed during a fetch: fetch again */
/* The hub sends a comment every 25 s on an idle stream (docs/API.md): this
 * long without a byte and the stream is taken for dead. */
#define HUB_SILENCE_MS 80000u
#define HUB_RETRY_FIRST_MS 1000u
#define HUB_RETRY_MAX_MS 300000u
#define HUB_AUTH_FAILURES 6u /* 1 s << 6: 64 s after a 401, 403 or 429 */
#define HUB_MAX_LINE ((size_t)64 * 1024)
#define HUB_MAX_PENDING 4096u

/* ---- the event stream of one hub ---- */

struct mhub {
    struct manager *m;
    char *name, *url, *token_file, *trust; /* owned copies: the snapshot may go */
    struct http_req *req;                  /* the stream, or NULL */
    uv_timer_t timer;                      /* reconnect after the backoff, or the watchdog */
    uv_timer_t kick;                       /* hands what the stream read to the loop */
    int open_handles;
    bool closing, connected, ever_connected, head_seen, check_all, saving;
    unsigned failures;
    uint64_t last_rx;      /* uv_now of the stream's last bytes */
    struct sse_parser sse; /* the stream being read */
    bool ended;            /* an event was dispatched by the piece being read */
    char *last_id;         /* the id of the last event dispatched, or NULL */
    char *saved_id;        /* the id last written to the store, or NULL */
    char **pending;        /* certificates the stream named, for the loop */
    size_t n_pending, cap_pending;
    char *error; /* why the stream is down, or NULL */
};

static void hub_connect(struct mhub *h);
static void hub_kick_cb(uv_timer_t *t);

static void hub_retry_cb(uv_timer_t *t)
{
    hub_connect(t->data);
}

/* The token: the first line of token_file, without its line end. Owned
 * (cleanse before free), or NULL with *err set. */
static char *hub_token(const char *hub, const char *token_file, char **err)
{
    char *text = NULL;
    int rc = store_read_file(token_file, &text, NULL);

    if (rc < 0) {
        *err = xasprintf("hub.%s: token_file %s: %s", hub, token_file, err_str(rc));
        return NULL;
    }
    size_t n = strcspn(text, "\r\n");
    text[n] = '\0';
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t'))
        text[--n] = '\0';
    if (n == 0 || strpbrk(text, " \t") != NULL) {
        OPENSSL_cleanse(text, strlen(text));
        free(text);
        *err = xasprintf("hub.%s: token_file %s holds no token (one line: the secret "
                         "certloop api-token create printed)",
                         hub, token_file);
        return NULL;
    }
    return text;
}

/* One line for an answer that is not the resource: what it means for a
 * pull client. what: the path asked for. Owned. */
static char *hub_answer_error(const char *hub, const char *token_file, const char *trust,
                              const char *what, int status, const struct http_response *resp)
{
    if (status != 0) {
        const char *why = resp->error != NULL ? resp->error : err_str(status);
        if (trust != NULL && strncmp(why, "TLS", 3) == 0)
            return xasprintf("hub.%s: %s: %s (the hub's certificate is checked against trust = "
                             "%s only)",
                             hub, what, why, trust);
        return xasprintf("hub.%s: %s: %s", hub, what, why);
    }
    switch (resp->status) {
    case 401:
        return xasprintf("hub.%s: %s: the hub refused the token of %s (HTTP 401)", hub, what,
                         token_file);
    case 403:
        return xasprintf("hub.%s: %s: the token of %s lacks the scope (HTTP 403; a pull client "
                         "needs --scopes read,pull)",
                         hub, what, token_file);
    case 404:
        return xasprintf("hub.%s: %s: the hub has no such certificate, or nothing stored for "
                         "it yet (HTTP 404)",
                         hub, what);
    case 429:
        return xasprintf("hub.%s: %s: the hub refuses this address for a while after failed "
                         "authentications (HTTP 429)",
                         hub, what);
    default:
        return xasprintf("hub.%s: %s: HTTP %ld", hub, what, resp->status);
    }
}

static void hub_set_error(struct mhub *h, char *e)
{
    /* a log line when the reason changes, not at every retry */
    if (h->error == NULL || strcmp(h->error, e) != 0)
        log_warn(LOG_MAIN,
                 "%s: the event stream is down; deployed certificates stay as they "
                 "are",
                 e);
    free(h->error);
    h->error = e;
}

static void hub_retry(struct mhub *h)
{
    unsigned shift = h->failures < 12 ? h->failures : 12;
    uint64_t ms = (uint64_t)HUB_RETRY_FIRST_MS << shift;

    if (ms > HUB_RETRY_MAX_MS)
        ms = HUB_RETRY_MAX_MS;
    ms += (uint64_t)(rand() % 1000); /* jitter: hubs restarted at once are not hit at once */
    h->failures++;
    h->connected = false;
    uv_timer_start(&h->timer, hub_retry_cb, ms, 0);
}

/* An event of the stream: its id is the cursor; the certificate it names
 * goes to the pending list when the event means a new generation. */
static void hub_event(const char *type, const char *data, size_t len, const char *id, void *arg)
{
    struct mhub *h = arg;

    (void)type;
    h->ended = true;
    free(h->last_id);
    h->last_id = id != NULL ? xstrdup(id) : NULL;
    if (len == 0)
        return;
    json_t *j = json_loadb(data, len, 0, NULL);
    const char *cert = json_string_value(json_object_get(j, "certificate"));
    const char *ev = json_string_value(json_object_get(j, "event"));
    if (cert != NULL && ev != NULL &&
        (strcmp(ev, "issued") == 0 || strcmp(ev, "renewed") == 0 ||
         strcmp(ev, "deploy_failed") == 0)) {
        if (h->n_pending >= HUB_MAX_PENDING) {
            h->check_all = true;
        } else {
            h->pending =
                xreallocarray_grow(h->pending, &h->cap_pending, h->n_pending + 1, sizeof(char *));
            h->pending[h->n_pending++] = xstrdup(cert);
        }
    }
    json_decref(j);
}

/* Runs inside curl's callback: parses, queues, and leaves everything else
 * to hub_kick_cb on the loop. */
static bool hub_stream(const char *data, size_t len, void *arg)
{
    struct mhub *h = arg;

    h->last_rx = uv_now(h->m->loop);
    if (data == NULL) { /* the answer's head: 200, the stream is open */
        h->head_seen = true;
        uv_timer_start(&h->kick, hub_kick_cb, 0, 0);
        return true;
    }
    h->ended = false;
    if (sse_feed(&h->sse, data, len, hub_event, h) < 0)
        return false; /* a line past 64 KiB: not the hub's stream */
    if (h->ended)     /* an event was dispatched: its certificate and id to the loop */
        uv_timer_start(&h->kick, hub_kick_cb, 0, 0);
    return true;
}

static void cursor_done(int status, const struct store_result *r, void *arg);

static void hub_save_cursor(struct mhub *h)
{
    struct manager *m = h->m;

    if (h->saving || h->last_id == NULL || h->last_id[0] == '\0' ||
        (h->saved_id != NULL && strcmp(h->saved_id, h->last_id) == 0))
        return;
    free(h->saved_id);
    h->saved_id = xstrdup(h->last_id);
    if (store_hub_cursor_put_start(m->store, h->name, h->saved_id, cursor_done, h) == 0) {
        h->saving = true;
        m->jobs++;
    }
}

static void hub_free(struct mhub *h)
{
    struct manager *m = h->m;

    sse_fini(&h->sse);
    free(h->last_id);
    free(h->saved_id);
    for (size_t i = 0; i < h->n_pending; i++)
        free(h->pending[i]);
    free(h->pending);
    free(h->error);
    free(h->name);
    free(h->url);
    free(h->token_file);
    free(h->trust);
    free(h);
    m->closing--;
    mgr_maybe_finish(m);
}

static void cursor_done(int status, const struct store_result *r, void *arg)
{
    struct mhub *h = arg;
    struct manager *m = h->m;

    m->jobs--;
    h->saving = false;
    if (status < 0)
        log_warn(LOG_MAIN,
                 "hub.%s: the last event id was not stored (%s): a restart gets the "
                 "hub's kept events again",
                 h->name, r != NULL && r->error != NULL ? r->error : err_str(status));
    if (h->closing) {
        if (h->open_handles == 0)
            hub_free(h); /* its last step (mgr_maybe_finish) */
        return;
    }
    hub_save_cursor(h);
    if (m->stopping)
        mgr_maybe_finish(m);
}

/* The certificates pulled from hub h: mc->pull_due, queued when idle. */
static void hub_mark_due(struct mhub *h, const char *only)
{
    for (struct mcert *mc = h->m->certs; mc != NULL; mc = mc->next) {
        if (mgr_removed(mc) || mc->cfg->hub == NULL || strcmp(mc->cfg->hub->name, h->name) != 0)
            continue;
        if (only != NULL && strcmp(only, mc->name) != 0)
            continue;
        mc->pull_due = true;
        if (mc->state == MC_IDLE) {
            mc->reason = "pulled: the hub announced a new generation";
            mgr_enqueue(mc);
        }
    }
}

static void hub_kick_cb(uv_timer_t *t)
{
    struct mhub *h = t->data;

    if (h->closing)
        return;
    if (h->head_seen && !h->connected) {
        h->connected = true;
        log_info(LOG_MAIN, "hub.%s: following its events (%s%s%s)", h->name, h->url,
                 h->last_id != NULL ? ", after event " : "", h->last_id != NULL ? h->last_id : "");
        /* events may have been missed while the stream was down (the hub
         * keeps only its last 256, and none across its restarts) */
        if (h->ever_connected || h->failures > 0)
            h->check_all = true;
        h->ever_connected = true;
        h->failures = 0;
        free(h->error);
        h->error = NULL;
    }
    if (h->check_all) {
        h->check_all = false;
        hub_mark_due(h, NULL);
    }
    for (size_t i = 0; i < h->n_pending; i++) {
        log_info(LOG_MAIN, "hub.%s: an event for cert=%s", h->name, h->pending[i]);
        hub_mark_due(h, h->pending[i]);
        free(h->pending[i]);
    }
    h->n_pending = 0;
    hub_save_cursor(h);
    mgr_pump(h->m);
}

static void hub_watchdog(uv_timer_t *t)
{
    struct mhub *h = t->data;

    if (h->req == NULL || uv_now(h->m->loop) - h->last_rx < HUB_SILENCE_MS)
        return;
    http_req_cancel(h->req);
    h->req = NULL;
    uv_timer_stop(&h->timer);
    hub_set_error(h, xasprintf("hub.%s: GET /v1/events: nothing for %u s (the hub sends a "
                               "keepalive every 25 s)",
                               h->name, HUB_SILENCE_MS / 1000));
    hub_retry(h);
}

static void hub_stream_done(int status, const struct http_response *resp, void *arg)
{
    struct mhub *h = arg;

    h->req = NULL;
    uv_timer_stop(&h->timer);
    h->head_seen = false;
    if (status == 0 && resp->status >= 200 && resp->status < 300)
        hub_set_error(h, xasprintf("hub.%s: GET /v1/events: the hub closed the stream", h->name));
    else
        hub_set_error(
            h, hub_answer_error(h->name, h->token_file, h->trust, "GET /v1/events", status, resp));
    /* a refused token or a limited address: trying again at once only adds
     * failed authentications (the hub limits them per address, for every
     * client there): wait a minute at least */
    if (status == 0 && (resp->status == 401 || resp->status == 403 || resp->status == 429) &&
        h->failures < HUB_AUTH_FAILURES)
        h->failures = HUB_AUTH_FAILURES;
    hub_retry(h);
}

static void hub_connect(struct mhub *h)
{
    char *err = NULL;

    if (h->closing || h->m->stopping)
        return;
    char *token = hub_token(h->name, h->token_file, &err);
    if (token == NULL) {
        hub_set_error(h, err);
        hub_retry(h);
        return;
    }
    char *auth = xasprintf("Bearer %s", token);
    OPENSSL_cleanse(token, strlen(token));
    free(token);
    struct http_header hdrs[3] = {
        {"Authorization", auth},
        {"Accept", "text/event-stream"},
        {"Last-Event-ID", h->last_id},
    };
    char *url = xasprintf("%s/v1/events", h->url);
    struct http_request_opts o = {
        .url = url,
        .headers = hdrs,
        .n_headers = h->last_id != NULL ? 3 : 2,
        .trust_file = h->trust,
        .trust_only = h->trust != NULL,
        .timeout_ms = 10000,
        .stream = hub_stream,
    };
    h->last_rx = uv_now(h->m->loop);
    /* a new stream, a new parser: only the last event id carries over */
    sse_fini(&h->sse);
    sse_init(&h->sse, HUB_MAX_LINE);
    h->sse.id = h->last_id != NULL ? xstrdup(h->last_id) : NULL;
    int rc = http_req_start(h->m->http, &o, hub_stream_done, h, &h->req);
    OPENSSL_cleanse(auth, strlen(auth));
    free(auth);
    free(url);
    if (rc < 0) {
        h->req = NULL;
        hub_set_error(h, xasprintf("hub.%s: GET /v1/events: %s", h->name, err_str(rc)));
        hub_retry(h);
        return;
    }
    uv_timer_start(&h->timer, hub_watchdog, 10000, 10000);
}

static void hub_closed(uv_handle_t *hd)
{
    struct mhub *h = hd->data;

    if (--h->open_handles == 0 && !h->saving)
        hub_free(h);
}

static void hub_close(struct mhub *h)
{
    h->closing = true;
    if (h->req != NULL) {
        http_req_cancel(h->req);
        h->req = NULL;
    }
    h->m->closing++; /* hub_free gives it back */
    uv_close((uv_handle_t *)&h->timer, hub_closed);
    uv_close((uv_handle_t *)&h->kick, hub_closed);
}

static struct mhub *hub_open(struct manager *m, const struct cfg_hub *ch)
{
    struct mhub *h = xcalloc(1, sizeof(*h));

    h->m = m;
    h->name = xstrdup(ch->name);
    h->url = xstrdup(ch->url);
    h->token_file = xstrdup(ch->token_file);
    h->trust = ch->trust != NULL ? xstrdup(ch->trust) : NULL;
    sse_init(&h->sse, HUB_MAX_LINE);
    uv_timer_init(m->loop, &h->timer);
    uv_timer_init(m->loop, &h->kick);
    h->timer.data = h;
    h->kick.data = h;
    h->open_handles = 2;
    char *id = NULL;
    if (store_hub_cursor_read(m->store, h->name, &id) == 0) {
        h->last_id = id;
        h->saved_id = xstrdup(id);
    }
    hub_connect(h);
    return h;
}

static bool hub_used(const struct config *cfg, const struct cfg_hub *ch)
{
    for (size_t i = 0; i < cfg->n_certs; i++)
        if (cfg->certs[i].hub == ch)
            return true;
    return false;
}

static bool str_same(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

void mgr_pull_hubs_sync(struct manager *m)
{
    const struct config *cfg = m->cfg;
    size_t kept = 0;

    if (m->once || m->stopping)
        return;
    for (size_t i = 0; i < m->n_hubs; i++) {
        struct mhub *h = m->hubs[i];
        const struct cfg_hub *ch = config_hub_find(cfg, h->name);
        if (ch != NULL && hub_used(cfg, ch) && strcmp(ch->url, h->url) == 0 &&
            strcmp(ch->token_file, h->token_file) == 0 && str_same(ch->trust, h->trust)) {
            m->hubs[kept++] = h;
            continue;
        }
        log_info(LOG_MAIN, "hub.%s: %s: no longer followed", h->name,
                 ch == NULL || !hub_used(cfg, ch) ? "unused" : "changed");
        hub_close(h);
    }
    m->n_hubs = kept;
    for (size_t i = 0; i < cfg->n_hubs; i++) {
        const struct cfg_hub *ch = &cfg->hubs[i];
        bool have = false;
        for (size_t k = 0; k < m->n_hubs; k++)
            have |= strcmp(m->hubs[k]->name, ch->name) == 0;
        if (have || !hub_used(cfg, ch))
            continue;
        m->hubs = xreallocarray_grow(m->hubs, &m->cap_hubs, m->n_hubs + 1, sizeof(*m->hubs));
        m->hubs[m->n_hubs++] = hub_open(m, ch);
    }
}

void mgr_pull_hubs_close(struct manager *m)
{
    for (size_t i = 0; i < m->n_hubs; i++)
        hub_close(m->hubs[i]);
    m->n_hubs = 0;
    free(m->hubs);
    m->hubs = NULL;
    m->cap_hubs = 0;
}

const char *mgr_pull_hub_error(const struct manager *m, const char *hub)
{
    for (size_t i = 0; i < m->n_hubs; i++)
        if (strcmp(m->hubs[i]->name, hub) == 0)
            return m->hubs[i]->error;
    return NULL;
}

/* ---- when a pulled certificate is fetched ---- */

void mgr_pull_decide(struct mcert *mc, int64_t now)
{
    int64_t next = mc->pull_checked_at + PULL_CHECK_S;

    if (mc->pull_due || mc->pull_checked_at == 0 || next <= now ||
        (mc->failures > 0 && mc->retry_at <= now)) {
        mc->pull_due = false;
        if (mc->reason == NULL || strncmp(mc->reason, "pulled: the hub", 15) != 0)
            mc->reason = "pulled: fetching from the hub";
        mgr_enqueue(mc);
        return;
    }
    if (mc->failures > 0 && mc->retry_at < next) {
        mc->reason = "pulled: the last fetch failed: retrying";
        mgr_arm(mc, mc->retry_at);
        return;
    }
    mgr_import_arm(mc, now, next,
                   "pulled: fetched when the hub announces a new generation (and hourly)");
}

/* ---- the fetch ---- */

enum { PULL_F_CERT, PULL_F_CHAIN, PULL_F_FULLCHAIN, PULL_F_KEY, PULL_F__MAX };
static const char *const pf_names[PULL_F__MAX] = {"cert.pem", "chain.pem", "fullchain.pem",
                                                  "key.pem"};

struct mpull {
    struct mcert *mc;
    mgr_pull_cb cb;
    const struct cfg_hub *hub; /* borrowed from mc->run_snap */
    struct http_req *req[PULL_F__MAX];
    char *body[PULL_F__MAX]; /* owned */
    char *gen[PULL_F__MAX];  /* owned: X-Certloop-Generation */
    char *err;               /* owned: the first failure */
    int status;
    unsigned pending;
    int attempts;
};

static void pull_reset(struct mpull *p)
{
    for (int i = 0; i < PULL_F__MAX; i++) {
        if (p->body[i] != NULL)
            OPENSSL_cleanse(p->body[i], strlen(p->body[i]));
        free(p->body[i]);
        free(p->gen[i]);
        p->body[i] = p->gen[i] = NULL;
    }
    free(p->err);
    p->err = NULL;
    p->status = 0;
}

static void pull_free(struct mpull *p)
{
    for (int i = 0; i < PULL_F__MAX; i++) {
        if (p->req[i] != NULL)
            http_req_cancel(p->req[i]);
    }
    pull_reset(p);
    free(p);
}

void mgr_pull_cancel(struct mcert *mc)
{
    if (mc->pull == NULL)
        return;
    pull_free(mc->pull);
    mc->pull = NULL;
}

/* Each certificate of the chain is signed by the next one (the top one's
 * issuer, a root, is not in it and not checked: the hub's CA may be a
 * private one this host does not know). */
static bool chain_links_ok(const struct acme_chain *ch, size_t *bad)
{
    X509 **x = xcalloc(ch->n, sizeof(*x));
    bool ok = true;

    for (size_t i = 0; i < ch->n && ok; i++) {
        BIO *b = BIO_new_mem_buf(ch->pem[i], -1);
        x[i] = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        if (x[i] == NULL) {
            *bad = i;
            ok = false;
        }
    }
    for (size_t i = 0; i + 1 < ch->n && ok; i++) {
        if (X509_check_issued(x[i + 1], x[i]) != X509_V_OK ||
            X509_verify(x[i], X509_get0_pubkey(x[i + 1])) != 1) {
            *bad = i;
            ok = false;
        }
    }
    for (size_t i = 0; i < ch->n; i++)
        X509_free(x[i]);
    free(x);
    ERR_clear_error();
    return ok;
}

/* The four files of one generation, checked against each other; then
 * imports.c's checks (the key, the names) and the comparison with the
 * stored generation. */
static int pull_check(struct mpull *p, char **err)
{
    struct mcert *mc = p->mc;
    const char *hub = p->hub->name;
    struct acme_chain full = {0}, leaf = {0}, chain = {0};
    int rc = ERR_PARSE;

    if (acme_chain_parse(p->body[PULL_F_FULLCHAIN], strlen(p->body[PULL_F_FULLCHAIN]), &full) < 0) {
        *err = xasprintf("hub.%s: %s/fullchain.pem is not a PEM certificate chain", hub, mc->name);
        goto out;
    }
    if (acme_chain_parse(p->body[PULL_F_CERT], strlen(p->body[PULL_F_CERT]), &leaf) < 0 ||
        leaf.n != 1) {
        *err = xasprintf("hub.%s: %s/cert.pem is not one PEM certificate", hub, mc->name);
        goto out;
    }
    bool no_chain = strspn(p->body[PULL_F_CHAIN], " \t\r\n") == strlen(p->body[PULL_F_CHAIN]);
    if (!no_chain &&
        acme_chain_parse(p->body[PULL_F_CHAIN], strlen(p->body[PULL_F_CHAIN]), &chain) < 0) {
        *err = xasprintf("hub.%s: %s/chain.pem is not a PEM certificate chain", hub, mc->name);
        goto out;
    }
    bool same = full.n == 1 + chain.n && strcmp(full.pem[0], leaf.pem[0]) == 0;
    for (size_t i = 0; same && i < chain.n; i++)
        same = strcmp(full.pem[i + 1], chain.pem[i]) == 0;
    if (!same) {
        *err = xasprintf("hub.%s: %s: fullchain.pem is not cert.pem followed by chain.pem", hub,
                         mc->name);
        goto out;
    }
    size_t bad = 0;
    if (!chain_links_ok(&full, &bad)) {
        *err = xasprintf("hub.%s: %s: certificate %zu of fullchain.pem is not signed by the "
                         "next one",
                         hub, mc->name, bad + 1);
        goto out;
    }
    if (full.not_after <= mgr_now()) {
        char na[32];
        mgr_fmt_time(full.not_after, na, sizeof(na));
        rc = ERR_DEPLOY;
        *err = xasprintf("hub.%s: %s: the hub's certificate expired %s: not deployed", hub,
                         mc->name, na);
        goto out;
    }
    char *prefix = xasprintf("hub.%s", hub);
    char *cl = xasprintf("%s/cert.pem", mc->name);
    char *kl = xasprintf("%s/key.pem", mc->name);
    rc = mgr_import_take(mc, &full, p->body[PULL_F_KEY], prefix, cl, kl, err);
    free(prefix);
    free(cl);
    free(kl);
out:
    acme_chain_fini(&full);
    acme_chain_fini(&leaf);
    acme_chain_fini(&chain);
    return rc;
}

static int pull_fetch(struct mpull *p, char **err);

static void pull_end(struct mpull *p)
{
    struct mcert *mc = p->mc;
    char *err = NULL;
    int rc;

    if (p->err != NULL) {
        rc = p->status < 0 ? p->status : ERR_HTTP_STATUS;
        err = p->err;
        p->err = NULL;
    } else {
        bool same_gen = p->gen[0] != NULL;
        for (int i = 1; i < PULL_F__MAX && same_gen; i++)
            same_gen = p->gen[i] != NULL && strcmp(p->gen[i], p->gen[0]) == 0;
        if (!same_gen && ++p->attempts < PULL_ATTEMPTS) {
            /* a renewal landed on the hub between two of the requests */
            log_info(LOG_MAIN,
                     "cert=%s: hub.%s: its generation changed while fetching: "
                     "fetching again",
                     mc->name, p->hub->name);
            pull_reset(p);
            rc = pull_fetch(p, &err);
            if (rc == 0)
                return;
        } else if (!same_gen) {
            rc = ERR_BAD_STATE;
            err = xasprintf("hub.%s: %s: the four files never came from one generation (the hub "
                            "renewed it %d times while fetching)",
                            p->hub->name, mc->name, PULL_ATTEMPTS);
        } else {
            rc = pull_check(p, &err);
            if (rc == MGR_IMPORT_CHANGED) {
                log_info(LOG_MAIN, "cert=%s: hub.%s: new generation %s: storing and deploying it",
                         mc->name, p->hub->name, p->gen[0]);
                mgr_hist_add(mc, "pulled", "hub.%s generation %s", p->hub->name, p->gen[0]);
            }
        }
    }
    mgr_pull_cb cb = p->cb;
    mc->pull = NULL;
    pull_free(p);
    cb(mc, rc, err); /* run.c: stores and deploys, or ends the run */
    free(err);
}

static void pull_one_done(int status, const struct http_response *resp, void *arg, unsigned which)
{
    struct mpull *p = arg;

    p->req[which] = NULL;
    p->pending--;
    if (p->err == NULL) {
        if (status == 0 && resp->status == 200) {
            p->body[which] = xstrdup(resp->body.data != NULL ? resp->body.data : "");
            p->gen[which] = resp->header != NULL ? xstrdup(resp->header) : NULL;
        } else {
            char *what = xasprintf("GET %s/%s", p->mc->name, pf_names[which]);
            p->err = hub_answer_error(p->hub->name, p->hub->token_file, p->hub->trust, what, status,
                                      resp);
            p->status = status < 0 ? status : ERR_HTTP_STATUS;
            free(what);
        }
    }
    if (p->pending == 0)
        pull_end(p);
}

static void pull_cert_done(int status, const struct http_response *resp, void *arg)
{
    pull_one_done(status, resp, arg, PULL_F_CERT);
}

static void pull_chain_done(int status, const struct http_response *resp, void *arg)
{
    pull_one_done(status, resp, arg, PULL_F_CHAIN);
}

static void pull_full_done(int status, const struct http_response *resp, void *arg)
{
    pull_one_done(status, resp, arg, PULL_F_FULLCHAIN);
}

static void pull_key_done(int status, const struct http_response *resp, void *arg)
{
    pull_one_done(status, resp, arg, PULL_F_KEY);
}

static int pull_fetch(struct mpull *p, char **err)
{
    static const http_cb done[PULL_F__MAX] = {pull_cert_done, pull_chain_done, pull_full_done,
                                              pull_key_done};
    struct mcert *mc = p->mc;
    const struct cfg_hub *hub = p->hub;
    char *token = hub_token(hub->name, hub->token_file, err);
    int rc = 0;

    if (token == NULL)
        return ERR_CONFIG;
    char *auth = xasprintf("Bearer %s", token);
    OPENSSL_cleanse(token, strlen(token));
    free(token);
    struct http_header hdr = {"Authorization", auth};
    for (int i = 0; i < PULL_F__MAX; i++) {
        char *url = xasprintf("%s/v1/certificates/%s/%s", hub->url, mc->name, pf_names[i]);
        struct http_request_opts o = {
            .url = url,
            .headers = &hdr,
            .n_headers = 1,
            .trust_file = hub->trust,
            .trust_only = hub->trust != NULL,
            .max_body = PULL_MAX_PEM,
            .timeout_ms = PULL_FETCH_TIMEOUT_MS,
            .header_name = "X-Certloop-Generation",
        };
        rc = http_req_start(mc->m->http, &o, done[i], p, &p->req[i]);
        free(url);
        if (rc < 0) {
            p->req[i] = NULL;
            *err =
                xasprintf("hub.%s: GET %s/%s: %s", hub->name, mc->name, pf_names[i], err_str(rc));
            for (int k = 0; k < i; k++) {
                http_req_cancel(p->req[k]);
                p->req[k] = NULL;
            }
            p->pending = 0;
            break;
        }
        p->pending++;
    }
    OPENSSL_cleanse(auth, strlen(auth));
    free(auth);
    return rc;
}

int mgr_pull_start(struct mcert *mc, mgr_pull_cb cb, char **err)
{
    struct mpull *p = xcalloc(1, sizeof(*p));

    p->mc = mc;
    p->cb = cb;
    p->hub = mc->run_cfg->hub;
    mc->pull_checked_at = mgr_now();
    mc->pull_due = false;       /* an event during the fetch sets it again: fetched once more */
    mc->run_deploy_only = true; /* nothing is ordered here: never counted as an order */
    int rc = pull_fetch(p, err);
    if (rc < 0) {
        pull_free(p);
        return rc;
    }
    log_debug(LOG_MAIN, "cert=%s: fetching from hub.%s", mc->name, p->hub->name);
    mc->pull = p;
    return 0;
}
