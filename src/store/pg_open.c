/* Opening the PostgreSQL backend and keeping its copy current: migrate
 * and load on a private loop before the daemon's loop runs, then follow
 * other instances' generations through NOTIFY (and re-read everything
 * after each (re)connect, since notifications sent meanwhile are lost). */
#include "config/config.h"
#include "store/pg_internal.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <assert.h>
#include <errno.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define OPEN_TIMEOUT_MS 10000

/* ---- other instances' generations ------------------------------------------------------- */

/* Rows of PG_CURRENT_SQL into the copy: each certificate's current generation,
 * replacing what we had (another instance may have stored a newer one). */
void pg_open_current_rows(struct pg_store *p, PGresult *r)
{
    for (int i = 0; i < PQntuples(r); i++) {
        struct pcert *c = pg_cache_cert_get(p, PQgetvalue(r, i, 0));
        if (PQgetisnull(r, i, 1))
            continue;
        if (c->cur.generation != NULL && strcmp(c->cur.generation, PQgetvalue(r, i, 1)) == 0)
            continue; /* already ours */
        /* an older one is a late answer: generations' names sort by age */
        if (c->cur.generation != NULL && strcmp(c->cur.generation, PQgetvalue(r, i, 1)) > 0)
            continue;
        store_cert_fini(&c->cur);
        c->cur.generation = xstrdup(PQgetvalue(r, i, 1));
        c->cur.cert_pem = xstrdup(PQgetvalue(r, i, 2));
        c->cur.chain_pem = xstrdup(PQgetvalue(r, i, 3));
        c->cur.fullchain_pem = xstrdup(PQgetvalue(r, i, 4));
        c->cur.key_pem = pg_store_unseal_hex(p, c->name, c->cur.generation, PQgetvalue(r, i, 5));
        c->cur.meta_json = xstrdup(PQgetvalue(r, i, 6));
        pg_cache_gen_add(c, c->cur.generation);
        store_watch_notify(&p->base, c->name);
    }
}

static void refreshed(int status, const struct pg_res *res, void *arg)
{
    struct pg_store *p = arg;

    if (status == 0)
        pg_open_current_rows(p, res->res[0]);
    else if (status == ERR_DB)
        log_warn(LOG_STORE, "database: refresh: %s %s", res->sqlstate, res->message);
}

/* The full re-read after a (re)connect: the copy is current again, and
 * what failed while the database was away may go on (store_back_set). */
static void refreshed_all(int status, const struct pg_res *res, void *arg)
{
    struct pg_store *p = arg;

    refreshed(status, res, arg);
    if (status == 0)
        store_back_notify(&p->base);
}

/* Re-reads the current generation of cert (NULL: of every certificate). The
 * op is silenced by pg_conn_close, so it never outlives the store. */
static void refresh(struct pg_store *p, const char *cert)
{
    const char *par[] = {cert};
    struct pg_stmt st = {cert != NULL ? PG_CURRENT_SQL " WHERE c.name = $1" : PG_CURRENT_SQL,
                         cert != NULL ? 1 : 0, par};

    if (pg_op_start(p->conn, &st, 1, cert != NULL ? refreshed : refreshed_all, p, NULL) < 0)
        log_warn(LOG_STORE, "database: refresh of %s not started", cert != NULL ? cert : "all");
}

/* NOTIFY certloop_generation "CERT GENERATION": another instance (or we)
 * stored a generation; the copy follows within one round trip. */
static void on_notify(const char *channel, const char *payload, void *arg)
{
    struct pg_store *p = arg;
    const char *sp = strchr(payload, ' ');

    if (strcmp(channel, PG_CHANNEL_HTTP01) == 0 && p->http01_cb != NULL) {
        p->http01_cb(payload, p->http01_arg);
        return;
    }
    if (strcmp(channel, PG_CHANNEL_GENERATION) != 0 || sp == NULL)
        return;
    char *cert = xstrndup(payload, (size_t)(sp - payload));
    struct pcert *c = pg_cache_cert_find(p, cert);
    if (c == NULL || c->cur.generation == NULL || strcmp(c->cur.generation, sp + 1) != 0)
        refresh(p, cert);
    free(cert);
}

/* Notifications sent while we were not listening are lost: after every
 * (re)connect, re-read all. The first one too: the copy was loaded at open
 * on another connection, before this one listened. The LISTEN goes out
 * first on a new connection, so nothing falls between the two. */
static void on_state(enum pg_conn_state st, void *arg)
{
    struct pg_store *p = arg;

    if (st == PG_CONN_UP)
        refresh(p, NULL);
}

/* ---- open: migrate and load on a private loop ------------------------------------------ */

struct opening {
    struct pg_store *p;
    int done;
    int status;
};

static void load_rows(struct pg_store *p, const struct pg_res *res)
{
    PGresult *r = res->res[0]; /* accounts */
    for (int i = 0; i < PQntuples(r); i++) {
        const char *ca = PQgetvalue(r, i, 0);
        char *ad = pg_store_account_ad(ca);
        char *key = pg_store_unseal_hex(p, ad, "", PQgetvalue(r, i, 1));
        free(ad);
        pg_cache_acct_set(p, ca, key, PQgetvalue(r, i, 2));
        if (key != NULL)
            OPENSSL_cleanse(key, strlen(key));
        free(key);
    }
    pg_open_current_rows(p, res->res[1]); /* certificates and their current generation */
    r = res->res[2];                      /* every generation */
    for (int i = 0; i < PQntuples(r); i++)
        pg_cache_gen_add(pg_cache_cert_get(p, PQgetvalue(r, i, 0)), PQgetvalue(r, i, 1));
    r = res->res[3]; /* orders in flight */
    for (int i = 0; i < PQntuples(r); i++)
        pg_cache_cert_get(p, PQgetvalue(r, i, 0))->order_json = xstrdup(PQgetvalue(r, i, 1));
    r = res->res[4]; /* our redeploy marks */
    for (int i = 0; i < PQntuples(r); i++)
        pg_cache_cert_get(p, PQgetvalue(r, i, 0))->redeploy = true;
    r = res->res[5]; /* our alerts (a kind we do not know is a newer certloop's) */
    for (int i = 0; i < PQntuples(r); i++) {
        for (int k = 0; k < STORE_ALERT__MAX; k++) {
            if (strcmp(PQgetvalue(r, i, 1), store_alert_name((enum store_alert)k)) != 0)
                continue;
            struct pcert *c = pg_cache_cert_get(p, PQgetvalue(r, i, 0));
            c->alert[k] = true;
            c->alert_t[k] = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        }
    }
    r = res->res[6]; /* the live outbox */
    for (int i = 0; i < PQntuples(r); i++) {
        p->boxes = xreallocarray_grow(p->boxes, &p->capboxes, p->nboxes + 1, sizeof(*p->boxes));
        p->boxes[p->nboxes].id = xstrdup(PQgetvalue(r, i, 0));
        p->boxes[p->nboxes].text = xstrdup(PQgetvalue(r, i, 1));
        p->nboxes++;
    }
    r = res->res[7]; /* notes of generations */
    for (int i = 0; i < PQntuples(r); i++)
        pg_cache_note_set(pg_cache_cert_get(p, PQgetvalue(r, i, 0)), PQgetvalue(r, i, 1),
                          PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
    r = res->res[8]; /* rollovers' next keys */
    for (int i = 0; i < PQntuples(r); i++) {
        const char *ca = PQgetvalue(r, i, 0);
        char *ad = xasprintf("@account-next/%s", ca);
        char *key = pg_store_unseal_hex(p, ad, "", PQgetvalue(r, i, 1));
        free(ad);
        pg_cache_acct_next_set(p, ca, key != NULL ? key : "");
        if (key == NULL) { /* present but unusable: reads say so */
            struct pnext *n = pg_cache_next_find(p, ca);
            free(n->key_pem);
            n->key_pem = NULL;
        }
        pg_cache_wipe_free(key);
    }
    r = res->res[9]; /* histories, oldest line first */
    for (int i = 0; i < PQntuples(r); i++)
        pg_cache_history_add(pg_cache_cert_get(p, PQgetvalue(r, i, 0)), PQgetvalue(r, i, 1));
    r = res->res[10]; /* what this instance deployed */
    for (int i = 0; i < PQntuples(r); i++) {
        struct pcert *c = pg_cache_cert_get(p, PQgetvalue(r, i, 0));
        free(c->deployed);
        c->deployed = xstrdup(PQgetvalue(r, i, 1));
        c->deployed_ok = strcmp(PQgetvalue(r, i, 2), "t") == 0;
    }
}

static void loaded(int status, const struct pg_res *res, void *arg)
{
    struct opening *o = arg;

    if (status == 0)
        load_rows(o->p, res);
    else if (status == ERR_DB)
        log_error(LOG_STORE, "database: load: %s %s", res->sqlstate, res->message);
    o->status = status;
    o->done = 1;
}

static void migrated(int status, int version, void *arg)
{
    struct opening *o = arg;
    struct pg_store *p = o->p;

    (void)version;
    if (status < 0) {
        o->status = status;
        o->done = 1;
        return;
    }
    const char *me[] = {p->instance};
    struct pg_stmt st[] = {
        {"SELECT ca, encode(key_sealed, 'hex'), account_json FROM certloop_accounts", 0, NULL},
        {PG_CURRENT_SQL, 0, NULL},
        {"SELECT cert, generation FROM certloop_generations ORDER BY cert, generation", 0, NULL},
        {"SELECT cert, order_json FROM certloop_orders", 0, NULL},
        {"SELECT cert FROM certloop_redeploy WHERE instance = $1", 1, me},
        {"SELECT cert, kind, t FROM certloop_alerts WHERE instance = $1", 1, me},
        /* the live outbox: this instance's deliveries, and those of an
         * instance without a heartbeat for a while (taken over) */
        {"SELECT o.id, o.payload FROM certloop_outbox o WHERE NOT o.dead AND (o.instance IN"
         " ('', $1) OR NOT EXISTS (SELECT 1 FROM certloop_instances i WHERE i.name = o.instance"
         " AND now() - i.heartbeat_at < interval '" PG_OUTBOX_TAKEOVER_S " seconds'))"
         " ORDER BY o.id",
         1, me},
        {"SELECT cert, generation, note, json FROM certloop_notes", 0, NULL},
        {"SELECT ca, encode(key_sealed, 'hex') FROM certloop_account_next", 0, NULL},
        {"SELECT cert, line FROM certloop_history ORDER BY cert, id", 0, NULL},
        {"SELECT cert, generation, ok FROM certloop_deployments WHERE instance = $1", 1, me},
    };
    int rc = pg_op_start(p->conn, st, sizeof(st) / sizeof(st[0]), loaded, o, NULL);
    if (rc < 0) {
        o->status = rc;
        o->done = 1;
    }
}

static void on_open_timeout(uv_timer_t *t)
{
    struct opening *o = t->data;

    if (!o->done) {
        o->status = ERR_TIMEOUT;
        o->done = 1;
    }
}

int store_pg_open(uv_loop_t *loop, const char *conninfo, const struct pg_key *key,
                  const char *instance, struct store **out)
{
    struct pg_store *p = xcalloc(1, sizeof(*p));
    struct opening o = {p, 0, 0};
    uv_loop_t tmp;
    uv_timer_t timer;
    struct pg_conn_opts opts = {.conninfo = conninfo};

    p->base.ops = &pg_store_ops;
    p->base.loop = loop;
    p->base.shared = true;
    p->base.lease_ms = PG_LEASE_MS;
    p->key = *key;
    p->instance = xstrdup(instance);
    /* Before the daemon's loop runs: migrate and load on a private loop,
     * with a deadline, so a missing database fails the start clearly. */
    int rc = uv_loop_init(&tmp);
    if (rc < 0) {
        pg_store_free(&p->base);
        return rc;
    }
    rc = pg_conn_open(&tmp, &opts, &p->conn);
    if (rc == 0)
        rc = pg_schema_migrate_start(p->conn, migrated, &o, NULL);
    uv_timer_init(&tmp, &timer);
    timer.data = &o;
    uv_timer_start(&timer, on_open_timeout, OPEN_TIMEOUT_MS, 0);
    while (rc == 0 && !o.done)
        uv_run(&tmp, UV_RUN_ONCE);
    if (rc == 0)
        rc = o.status;
    if (p->conn != NULL)
        pg_conn_close(p->conn, NULL, NULL);
    p->conn = NULL;
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&tmp, UV_RUN_DEFAULT);
    int crc = uv_loop_close(&tmp);
    assert(crc == 0);
    (void)crc;
    if (rc == 0 && loop != NULL) { /* the daemon's connection */
        opts.on_notify = on_notify;
        opts.on_state = on_state;
        opts.arg = p;
        rc = pg_conn_open(loop, &opts, &p->conn);
        if (rc == 0)
            rc = pg_conn_listen(p->conn, PG_CHANNEL_GENERATION);
        if (rc == 0)
            rc = pg_conn_listen(p->conn, PG_CHANNEL_HTTP01);
    }
    if (rc < 0) {
        log_error(LOG_STORE, "database: open: %s", err_str(rc));
        pg_store_free(&p->base);
        return rc;
    }
    *out = &p->base;
    return 0;
}

/* The conninfo file holds one libpq connection string (it may carry a
 * password: never logged); surrounding whitespace and a final newline go. */
#define CONNINFO_MAX 4096

int pg_conninfo_read(const char *path, struct buf *b)
{
    buf_init(b, CONNINFO_MAX);
    int rc = buf_read_file(b, path);
    if (rc < 0) {
        log_error(LOG_STORE, "%s: conninfo: %s", path, err_str(rc));
        return rc;
    }
    while (b->len > 0 && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == '\r' ||
                          b->data[b->len - 1] == ' '))
        b->data[--b->len] = '\0';
    return 0;
}

void pg_conninfo_wipe(struct buf *b)
{
    if (b->data != NULL)
        OPENSSL_cleanse(b->data, b->len);
    buf_fini(b);
}

int store_pg_open_config(uv_loop_t *loop, const struct cfg_store *cfg, const char *instance,
                         struct store **out)
{
    struct buf b;
    struct pg_key key;
    char host[256];
    int rc;

    if (cfg->conninfo_file == NULL || cfg->encryption_key_file == NULL)
        return -EINVAL;
    rc = pg_conninfo_read(cfg->conninfo_file, &b);
    if (rc < 0)
        goto out;
    rc = pg_key_load(cfg->encryption_key_file, &key);
    if (rc < 0)
        goto out;
    if (instance == NULL) { /* the host's name: one instance per host */
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "certloop");
        host[sizeof(host) - 1] = '\0';
        instance = host;
    }
    rc = store_pg_open(loop, b.data != NULL ? b.data : "", &key, instance, out);
    if (rc == 0 && cfg->lease_time_s > 0)
        (*out)->lease_ms = cfg->lease_time_s * 1000;
    pg_key_wipe(&key);
out:
    pg_conninfo_wipe(&b);
    return rc;
}

int store_open_config(uv_loop_t *loop, const struct config *cfg, unsigned flags, struct store **out)
{
    *out = NULL;
    if (cfg->store.type == CFG_STORE_POSTGRESQL) {
        int rc = store_pg_open_config(loop, &cfg->store, cfg->store.instance, out);
        /* the state directory, which this instance alone uses (its
         * lock), keeps what is this host's own (pg_local.c) and, for the
         * daemon, the generations written out for hooks */
        if (rc == 0 && cfg->daemon.state_dir != NULL)
            pg_store_local_set(*out, cfg->daemon.state_dir);
        return rc;
    }
    return store_fs_open(loop, cfg->daemon.state_dir, flags, out);
}
