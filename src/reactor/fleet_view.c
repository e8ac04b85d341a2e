/* The fleet view (fleet.h): this instance's heartbeat and deployments go
 * to the shared store, and every instance's row comes back into a copy
 * that the status document carries. Nothing here blocks: one timer, and
 * one op at a time for the read. */
#include "reactor/fleet.h"

#include "config/config.h"
#include "store/store.h"
#include "store/store_pg.h"
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
    bool reading;      /* a read op in flight */
    bool beating;      /* a heartbeat in flight */
    bool db_up;        /* the last beat or read got an answer */
    int64_t as_of;     /* when the copy was read (unix s), 0: never */
    json_t *instances; /* the copy: an array */
    unsigned pending;  /* beats and reads in flight: v lives until they answered */
    bool stopped, timer_closed;
};

static void maybe_free(struct fleet_view *v)
{
    if (!v->stopped || !v->timer_closed || v->pending > 0)
        return;
    json_decref(v->instances);
    free(v);
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

static void refresh(struct fleet_view *v)
{
    if (v->reading)
        return;
    if (store_pg_fleet_read_start(v->store, FLEET_SILENT_S, read_done, v) == 0) {
        v->reading = true;
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

struct fleet_view *fleet_view_start(uv_loop_t *loop, struct store *store, const struct config *cfg)
{
    if (!store_pg_is(store))
        return NULL;
    struct fleet_view *v = xcalloc(1, sizeof(*v));
    v->loop = loop;
    v->store = store;
    v->db_up = true;
    v->instances = json_array();
    fleet_config_digest(cfg, v->digest);
    uv_timer_init(loop, &v->timer);
    v->timer.data = v;
    uv_timer_start(&v->timer, on_tick, 0, FLEET_BEAT_S * 1000);
    return v;
}

void fleet_view_config(struct fleet_view *v, const struct config *cfg)
{
    if (v != NULL)
        fleet_config_digest(cfg, v->digest);
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
    return json_pack("{s:s, s:s, s:o, s:i, s:O}", "self", store_pg_instance(v->store), "database",
                     v->db_up && store_pg_connected(v->store) ? "up" : "unreachable", "as_of",
                     v->as_of > 0 ? json_integer(v->as_of) : json_null(), "silent_after",
                     FLEET_SILENT_S, "instances", v->instances);
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
