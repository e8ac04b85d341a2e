/* The fleet view (fleet.h): this instance's heartbeat and deployments go
 * to the shared store, and every instance's row comes back into a copy
 * that the status document carries. Nothing here blocks: one timer, and
 * one op at a time for the read. */
#include "reactor/fleet.h"

#include "config/config.h"
#include "store/store.h"
#include "store/store_pg.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fleet_view {
    uv_loop_t *loop;
    struct store *store;
    uv_timer_t timer; /* timer.data = self; freed in its close callback */
    char digest[17];
    bool reading;        /* a read op in flight */
    bool beating;        /* a heartbeat in flight */
    bool db_up;          /* the last beat or read got an answer */
    int64_t as_of;       /* when the copy was read (unix s), 0: never */
    json_t *instances;   /* the copy: an array */
    json_t *conflicts;   /* [{"certificate", "instance", "names", "key"}] as last read */
    bool conflicts_read; /* read once at least since the last declaration */
    bool conflicting;    /* a conflicts read in flight */
    bool declaring;      /* a declaration in flight: the next one waits for it */
    bool declare_again;
    struct config *cfg; /* a reference: the snapshot whose declarations go out next */
    fleet_conflict_cb on_conflict;
    void *arg;
    unsigned pending; /* beats and reads in flight: v lives until they answered */
    bool stopped, timer_closed;
};

static void maybe_free(struct fleet_view *v)
{
    if (!v->stopped || !v->timer_closed || v->pending > 0)
        return;
    json_decref(v->instances);
    json_decref(v->conflicts);
    config_unref(v->cfg);
    free(v);
}

void fleet_cert_digest(const struct cfg_cert *c, char out[17])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned hl = 0;
    const char *key = config_key_type_name(c->key);

    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    EVP_DigestUpdate(md, key, strlen(key) + 1);
    for (size_t d = 0; d < c->domains.n; d++)
        EVP_DigestUpdate(md, c->domains.v[d], strlen(c->domains.v[d]) + 1);
    EVP_DigestFinal_ex(md, h, &hl);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

void fleet_config_digest(const struct config *cfg, char out[17])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned hl = 0;

    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (size_t i = 0; i < cfg->n_certs; i++) { /* sorted by name */
        const struct cfg_cert *c = &cfg->certs[i];
        char line[64];
        int n = snprintf(line, sizeof(line), "|%d|", (int)c->key);
        EVP_DigestUpdate(md, c->name, strlen(c->name) + 1);
        if (c->ca != NULL)
            EVP_DigestUpdate(md, c->ca->name, strlen(c->ca->name) + 1);
        EVP_DigestUpdate(md, line, (size_t)n);
        for (size_t d = 0; d < c->domains.n; d++)
            EVP_DigestUpdate(md, c->domains.v[d], strlen(c->domains.v[d]) + 1);
        EVP_DigestUpdate(md, "\n", 1);
    }
    EVP_DigestFinal_ex(md, h, &hl);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* "a b c" -> ["a","b","c"] */
static json_t *names_json(const char *s)
{
    json_t *a = json_array();
    const char *p = s;

    while (p != NULL && *p != '\0') {
        const char *sp = strchr(p, ' ');
        size_t n = sp != NULL ? (size_t)(sp - p) : strlen(p);
        if (n > 0)
            json_array_append_new(a, json_stringn(p, n));
        p = sp != NULL ? sp + 1 : NULL;
    }
    return a;
}

static void read_done(int status, const struct store_fleet_row *rows, size_t n, void *arg)
{
    struct fleet_view *v = arg;

    v->reading = false;
    v->pending--;
    if (v->stopped) {
        maybe_free(v);
        return;
    }
    if (status < 0) {
        v->db_up = false;
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct store_fleet_row *r = &rows[i];
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:s, s:I, s:b, s:I, s:o, s:o}", "instance", r->name, "version",
                         r->version, "config_digest", r->config_digest, "heartbeat_age",
                         (json_int_t)r->heartbeat_age_s, "silent", r->silent, "deployed",
                         (json_int_t)r->deployed, "lagging", names_json(r->lagging_certs), "failed",
                         names_json(r->failed_certs)));
        if (r->silent && log_enabled(LOG_MAIN, LOG_LVL_DEBUG))
            log_debug(LOG_MAIN, "fleet: instance %s silent for %lld s", r->name,
                      (long long)r->heartbeat_age_s);
    }
    json_decref(v->instances);
    v->instances = a;
    v->as_of = (int64_t)time(NULL);
    v->db_up = true;
}

/* ---- conflicting declarations ---------------------------------------------------------- */

static bool conflict_has(const json_t *arr, const char *cert, const char *instance)
{
    size_t i;
    const json_t *o;

    json_array_foreach(arr, i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "certificate")), cert) == 0 &&
            (instance == NULL ||
             strcmp(json_string_value(json_object_get(o, "instance")), instance) == 0))
            return true;
    }
    return false;
}

static void conflicts_done(int status, const struct store_conflict *rows, size_t n, void *arg)
{
    struct fleet_view *v = arg;

    v->conflicting = false;
    v->pending--;
    if (v->stopped) {
        maybe_free(v);
        return;
    }
    if (status < 0)
        return;
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct store_conflict *r = &rows[i];
        bool fresh = !conflict_has(v->conflicts, r->cert, r->instance);
        if (fresh)
            log_warn(LOG_MAIN,
                     "cert=%s: instance %s declares it differently (names %s, key %s): this "
                     "instance orders it only as its stored generation allows, never to undo "
                     "the other's; make the declarations agree",
                     r->cert, r->instance, r->names, r->key);
        json_array_append_new(a,
                              json_pack("{s:s, s:s, s:s, s:s}", "certificate", r->cert, "instance",
                                        r->instance, "names", r->names, "key", r->key));
        if (fresh && v->on_conflict != NULL)
            v->on_conflict(r->cert, r->instance, r->names, r->key, v->arg);
    }
    size_t i;
    json_t *o;
    json_array_foreach(v->conflicts, i, o)
    {
        const char *cert = json_string_value(json_object_get(o, "certificate"));
        if (!conflict_has(a, cert, NULL))
            log_info(LOG_MAIN, "cert=%s: the fleet's declarations agree again", cert);
    }
    json_decref(v->conflicts);
    v->conflicts = a;
    v->conflicts_read = true;
}

static void declared(int status, void *arg);

/* This instance's declarations: every certificate with a CA, its names and
 * key type. One op; a reload meanwhile sends again after it. */
static void declare(struct fleet_view *v)
{
    const struct config *cfg = v->cfg;
    struct store_declaration *d = xcalloc(cfg->n_certs + 1, sizeof(*d));
    char **names = xcalloc(cfg->n_certs + 1, sizeof(*names));
    char(*digests)[17] = xcalloc(cfg->n_certs + 1, sizeof(*digests));
    size_t n = 0;

    if (v->declaring) {
        v->declare_again = true;
        free(d);
        free(names);
        free(digests);
        return;
    }
    for (size_t i = 0; i < cfg->n_certs; i++) {
        const struct cfg_cert *c = &cfg->certs[i];
        if (c->ca == NULL)
            continue; /* an import: nothing to order */
        struct buf b = BUF_INIT(1024 * 1024);
        for (size_t k = 0; k < c->domains.n; k++)
            buf_printf(&b, "%s%s", k > 0 ? " " : "", c->domains.v[k]);
        names[n] = buf_steal(&b, NULL);
        fleet_cert_digest(c, digests[n]);
        d[n] = (struct store_declaration){c->name, digests[n], names[n] != NULL ? names[n] : "",
                                          config_key_type_name(c->key)};
        n++;
    }
    if (store_pg_declare_start(v->store, d, n, declared, v) == 0) {
        v->declaring = true;
        v->pending++;
        v->conflicts_read = false;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(digests);
    free(d);
}

static void declared(int status, void *arg)
{
    struct fleet_view *v = arg;

    v->declaring = false;
    v->pending--;
    if (v->stopped) {
        maybe_free(v);
        return;
    }
    if (status < 0)
        log_warn(LOG_MAIN, "fleet: declarations not written: %s", err_str(status));
    if (v->declare_again || status < 0) {
        v->declare_again = false;
        declare(v); /* a reload came meanwhile, or the database was away */
    }
}

bool fleet_view_conflict(const struct fleet_view *v, const char *cert)
{
    if (v == NULL)
        return false;
    /* not known yet (just started or reloaded): as good as a conflict for
     * an order that would change names or key, until the next read */
    return !v->conflicts_read || conflict_has(v->conflicts, cert, NULL);
}

static void refresh(struct fleet_view *v)
{
    if (v->reading)
        return;
    if (store_pg_fleet_read_start(v->store, FLEET_SILENT_S, read_done, v) == 0) {
        v->reading = true;
        v->pending++;
    }
    if (!v->conflicting && !v->declaring &&
        store_pg_conflicts_read_start(v->store, FLEET_SILENT_S, conflicts_done, v) == 0) {
        v->conflicting = true;
        v->pending++;
    }
}

static void beat_done(int status, void *arg)
{
    struct fleet_view *v = arg;

    v->pending--;
    v->beating = false;
    if (v->stopped) {
        maybe_free(v);
        return;
    }
    if (status < 0) {
        if (v->db_up)
            log_warn(LOG_MAIN, "fleet: heartbeat not written: %s", err_str(status));
        v->db_up = false;
    }
}

static void on_tick(uv_timer_t *t)
{
    struct fleet_view *v = t->data;

    /* ops run in order on the store's connection: the read sees our beat */
    /* while the database is away, one beat waits for it (not one per tick) */
    if (!v->beating &&
        store_pg_beat_start(v->store, CERTLOOP_VERSION, v->digest, beat_done, v) == 0) {
        v->beating = true;
        v->pending++;
    }
    refresh(v);
}

struct fleet_view *fleet_view_start(uv_loop_t *loop, struct store *store, const struct config *cfg,
                                    fleet_conflict_cb conflict, void *arg)
{
    if (!store_pg_is(store))
        return NULL;
    struct fleet_view *v = xcalloc(1, sizeof(*v));
    v->loop = loop;
    v->store = store;
    v->on_conflict = conflict;
    v->arg = arg;
    v->db_up = true;
    v->instances = json_array();
    v->conflicts = json_array();
    v->cfg = config_ref((struct config *)cfg);
    fleet_config_digest(cfg, v->digest);
    declare(v);
    uv_timer_init(loop, &v->timer);
    v->timer.data = v;
    uv_timer_start(&v->timer, on_tick, 0, FLEET_BEAT_S * 1000);
    return v;
}

void fleet_view_config(struct fleet_view *v, const struct config *cfg)
{
    if (v == NULL)
        return;
    fleet_config_digest(cfg, v->digest);
    config_unref(v->cfg);
    v->cfg = config_ref((struct config *)cfg);
    declare(v);
}

static void deployed_done(int status, void *arg)
{
    (void)arg;
    if (status < 0)
        log_warn(LOG_MAIN, "fleet: deployment not recorded: %s", err_str(status));
}

void fleet_view_deployed(struct fleet_view *v, const char *cert, const char *generation, bool ok,
                         const char *error)
{
    struct store_cert sc = {0};

    if (v == NULL)
        return;
    if (generation == NULL && store_cert_read_current(v->store, cert, false, &sc) == 0)
        generation = sc.generation;
    if (generation != NULL &&
        store_pg_deployed_start(v->store, cert, generation, ok, error, deployed_done, NULL) == 0)
        refresh(v);
    store_cert_fini(&sc);
}

json_t *fleet_view_json(const struct fleet_view *v)
{
    if (v == NULL)
        return NULL;
    return json_pack("{s:s, s:s, s:o, s:i, s:O, s:O}", "self", store_pg_instance(v->store),
                     "database", v->db_up && store_pg_connected(v->store) ? "up" : "unreachable",
                     "as_of", v->as_of > 0 ? json_integer(v->as_of) : json_null(), "silent_after",
                     FLEET_SILENT_S, "instances", v->instances, "conflicts", v->conflicts);
}

static void timer_closed(uv_handle_t *h)
{
    struct fleet_view *v = h->data;

    v->timer_closed = true;
    maybe_free(v);
}

/* Answers still owed by the store free v when they come; a store closed
 * first silences them (and v stays: the process is ending). */
void fleet_view_stop(struct fleet_view *v)
{
    if (v == NULL)
        return;
    v->stopped = true;
    uv_close((uv_handle_t *)&v->timer, timer_closed);
}
