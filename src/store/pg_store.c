/* The PostgreSQL backend of the store interface (issue 14), built on
 * pg_conn (async libpq), pg_schema, pg_crypt and pg_lease. Reads answer from
 * an in-memory copy of the rows, loaded at open (before the loop runs) and
 * kept current by our own writes and by other instances' NOTIFY; writes are
 * ops on the loop, one transaction each. Private keys are sealed before
 * they leave us; a generation hooks must read is written out under the
 * state directory (pg_lineage: STATE/lineage, lineage.c), and the records
 * of this instance alone stay there too (pg_local.c).
 *
 * Not done: the in-memory copy is a list searched linearly (fine for
 * thousands, not for a million). */
#include "store/pg_internal.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct pg_store *pg_of(struct store *s)
{
    return (struct pg_store *)s;
}

/* ---- sealing ---------------------------------------------------------------------- */

/* The associated data of an account key: no certificate can be named so
 * ('/' is refused by store_name_ok). */
char *pg_store_account_ad(const char *ca)
{
    return xasprintf("@account/%s", ca);
}

/* key_pem sealed for (cert, gen) as bytea hex text ("\x..."), owned. */
static char *seal_hex(struct pg_store *p, const char *cert, const char *gen, const char *key_pem)
{
    uint8_t *blob;
    size_t len;

    if (pg_seal(&p->key, cert, gen, (const uint8_t *)key_pem, strlen(key_pem), &blob, &len) < 0)
        return NULL;
    char *hex = pg_bytea_hex(blob, len);
    free(blob);
    return hex;
}

/* A hex string from encode(key_sealed, 'hex') unsealed for (cert, gen), or
 * NULL (logged: the row and why). */
char *pg_store_unseal_hex(struct pg_store *p, const char *cert, const char *gen, const char *hex)
{
    size_t n, ptlen;
    uint8_t *blob = pg_hex_bytes(hex, &n), *pt = NULL;

    if (blob == NULL)
        return NULL;
    int rc = pg_unseal(&p->key, cert, gen, blob, n, &pt, &ptlen);
    free(blob);
    if (rc < 0) {
        log_error(LOG_STORE, "database: key of %s %s: %s", cert, gen,
                  rc == -EKEYREJECTED ? "sealed with another encryption key"
                                      : "does not authenticate (tampered or moved)");
        return NULL;
    }
    return (char *)pt;
}

/* ---- writes: one op each --------------------------------------------------------- */

enum wkind {
    W_ACCOUNT,
    W_ACCOUNT_NEXT,
    W_ROLLOVER,
    W_RETIRE,
    W_HISTORY,
    W_CERT,
    W_PRUNE,
    W_NOTE,
    W_ORDER,
    W_SETTLE,
    W_MARK,
    W_ALERT,
    W_DEPLOYED,
    W_OUTBOX,
    W_LEASE_TAKE,
    W_LEASE_RENEW,
    W_FIRE_AND_FORGET
};

/* What a write changes in the copy once it committed. */
struct wop {
    struct pg_store *p;
    enum wkind kind;
    store_cb cb;
    void *arg;
    char *name, *gen, *text, *key_pem; /* owned copies as needed */
    char *note;
    struct store_history_line *lines; /* W_HISTORY: owned copies */
    size_t nlines;
    int keep;
    bool mark;
    bool create; /* W_ACCOUNT: none known here: the first instance's wins */
    int64_t t;
    enum store_alert alert;    /* W_ALERT: its kind */
    struct store_cert_put put; /* W_CERT: the strings below */
    char *cert_pem, *chain_pem, *fullchain_pem, *meta_json;
};

static void wop_free(void *arg)
{
    struct wop *w = arg;

    free(w->name);
    free(w->note);
    for (size_t i = 0; i < w->nlines; i++) {
        free((char *)w->lines[i].name);
        free((char *)w->lines[i].line);
    }
    free(w->lines);
    free(w->gen);
    free(w->text);
    if (w->key_pem != NULL)
        OPENSSL_cleanse(w->key_pem, strlen(w->key_pem));
    free(w->key_pem);
    free(w->cert_pem);
    free(w->chain_pem);
    free(w->fullchain_pem);
    free(w->meta_json);
    free(w);
}

static struct wop *wop_new(struct pg_store *p, enum wkind kind, const char *name, store_cb cb,
                           void *arg)
{
    struct wop *w = xcalloc(1, sizeof(*w));

    w->p = p;
    w->kind = kind;
    w->name = name != NULL ? xstrdup(name) : NULL;
    w->cb = cb;
    w->arg = arg;
    return w;
}

/* Applies a committed write to the copy. */
static void apply(struct wop *w)
{
    struct pg_store *p = w->p;
    bool about_cert = w->kind != W_ACCOUNT && w->kind != W_ACCOUNT_NEXT && w->kind != W_ROLLOVER &&
                      w->kind != W_RETIRE && w->kind != W_OUTBOX && w->kind != W_HISTORY;
    struct pcert *c = w->name != NULL && about_cert ? pg_cache_cert_get(p, w->name) : NULL;
    struct pacct *a;

    switch (w->kind) {
    case W_ACCOUNT:
        pg_cache_acct_set(p, w->name, w->key_pem, w->text);
        break;
    case W_ACCOUNT_NEXT:
        pg_cache_acct_next_set(p, w->name, w->key_pem);
        break;
    case W_ROLLOVER:
        pg_cache_acct_set(p, w->name, w->key_pem, w->text);
        pg_cache_acct_next_set(p, w->name, NULL);
        break;
    case W_RETIRE:
        a = pg_cache_acct_find(p, w->name);
        if (a != NULL) { /* reads as absent from now on */
            pg_cache_wipe_free(a->key_pem);
            free(a->json);
            free(a->ca);
            *a = p->accts[--p->naccts];
        }
        break;
    case W_OUTBOX:
        pg_cache_box_set(p, w->note, w->mark ? w->text : NULL);
        break;
    case W_HISTORY:
        for (size_t i = 0; i < w->nlines; i++)
            pg_cache_history_add(pg_cache_cert_get(p, w->lines[i].name), w->lines[i].line);
        break;
    case W_CERT:
        store_cert_fini(&c->cur);
        c->cur.generation = xstrdup(w->gen);
        c->cur.cert_pem = xstrdup(w->cert_pem);
        c->cur.chain_pem = xstrdup(w->chain_pem);
        c->cur.fullchain_pem = xstrdup(w->fullchain_pem);
        c->cur.key_pem = xstrdup(w->key_pem);
        c->cur.meta_json = xstrdup(w->meta_json);
        pg_cache_gen_add(c, w->gen);
        pg_cache_gens_prune(c, w->keep);
        if (w->mark)
            c->redeploy = true;
        break;
    case W_PRUNE:
        pg_cache_gens_prune(c, w->keep);
        break;
    case W_NOTE:
        pg_cache_note_set(c, w->gen, w->note, w->text);
        break;
    case W_ORDER:
        free(c->order_json);
        c->order_json = xstrdup(w->text);
        break;
    case W_SETTLE:
        free(c->order_json);
        c->order_json = NULL;
        c->redeploy = false;
        break;
    case W_MARK:
        c->redeploy = true;
        break;
    case W_ALERT:
        c->alert[w->alert] = w->t > 0;
        c->alert_t[w->alert] = w->t;
        break;
    case W_DEPLOYED:
        free(c->deployed);
        c->deployed = xstrdup(w->gen);
        c->deployed_ok = w->mark;
        break;
    default:
        break;
    }
}

static void wop_done(int status, const struct pg_res *res, void *arg)
{
    struct wop *w = arg;
    struct store_result r = {0};
    char *err = NULL;

    if (w->kind == W_FIRE_AND_FORGET)
        return;
    if (status == ERR_DB && strcmp(res->sqlstate, PG_SQLSTATE_LEASE_LOST) == 0) {
        status = ERR_LOCKED; /* the fence refused: another instance holds the lease */
        err = xasprintf("postgresql: %s: %s", w->name, res->message);
    } else if (status == ERR_DB) {
        err = xasprintf("postgresql: %s: %s %s", w->name != NULL ? w->name : "outbox",
                        res->sqlstate, res->message);
    } else if (status < 0) {
        err =
            xasprintf("postgresql: %s: %s", w->name != NULL ? w->name : "outbox", err_str(status));
    } else if (w->create && PQntuples(res->res[0]) == 0 && PQntuples(res->res[1]) == 1) {
        /* another instance's account came first: ours is not stored */
        char *ad = pg_store_account_ad(w->name);
        char *key = pg_store_unseal_hex(w->p, ad, "", PQgetvalue(res->res[1], 0, 0));
        free(ad);
        pg_cache_acct_set(w->p, w->name, key, PQgetvalue(res->res[1], 0, 1));
        pg_cache_wipe_free(key);
        status = ERR_LOCKED;
        err = xasprintf("postgresql: account %s: another instance stored one first", w->name);
    } else if (w->kind == W_NOTE && PQntuples(res->res[res->n - 1]) == 0) {
        status = -ENOENT; /* the generation is gone */
        err = xasprintf("postgresql: %s %s: no such generation", w->name, w->gen);
    } else if (w->kind != W_DEPLOYED) { /* applied when it started */
        apply(w);
    }
    r.error = err;
    if (w->kind == W_CERT) {
        r.generation = w->gen;
        r.mark_status = w->mark ? status : 0;
    }
    w->cb(status, &r, w->arg);
    free(err);
}

static int wop_start(struct wop *w, const struct pg_stmt *st, size_t n)
{
    if (w->p->conn == NULL) { /* opened without a loop: reads only */
        wop_free(w);
        return -EINVAL;
    }
    int rc = pg_op_start_owning(w->p->conn, st, n, wop_done, w, wop_free, NULL);

    if (rc < 0)
        wop_free(w);
    return rc;
}

/* The fence statement when we hold name's lease (a write under it), else
 * nothing: writes without a lease (imports) are not fenced. */
static size_t fence_if_leased(struct pg_store *p, const char *name, struct pg_fence *f,
                              struct pg_stmt *st)
{
    struct pcert *c = pg_cache_cert_find(p, name);

    if (c == NULL || !c->leased)
        return 0;
    *f = (struct pg_fence){.cert = name, .holder = p->instance, .token = c->fence, .now_ms = -1};
    pg_fence_stmt(f, st);
    return 1;
}

#define ACCOUNT_UPSERT_SQL                                                                         \
    "INSERT INTO certloop_accounts (ca, key_sealed, account_json) VALUES ($1, $2::bytea, $3)"      \
    " ON CONFLICT (ca) DO UPDATE SET key_sealed = EXCLUDED.key_sealed,"                            \
    " account_json = EXCLUDED.account_json, updated_at = now()"

/* The account's key and JSON, and for a rollover (the CA confirmed the new
 * key) the next key forgotten with them: one transaction either way. */
static int account_write(struct store *s, enum wkind kind, const char *ca, const char *key_pem,
                         const char *account_json, store_cb cb, void *arg)
{
    struct pg_store *p = pg_of(s);
    char *ad = pg_store_account_ad(ca);
    char *hex = seal_hex(p, ad, "", key_pem);

    free(ad);
    if (hex == NULL)
        return ERR_CRYPTO;
    struct wop *w = wop_new(p, kind, ca, cb, arg);
    w->key_pem = xstrdup(key_pem);
    w->text = xstrdup(account_json);
    const char *par[] = {ca, hex, account_json};
    const char *ca_p[] = {ca};
    struct pg_stmt st[] = {
        {ACCOUNT_UPSERT_SQL, 3, par},
        {"DELETE FROM certloop_account_next WHERE ca = $1", 1, ca_p},
    };
    /* A fleet starting together: every instance finds no account and
     * makes a key. The first one stored is the fleet's (an order resumed
     * by another instance must belong to the same account); the others
     * get ERR_LOCKED and that account in their copy, and use it. */
    struct pg_stmt create[] = {
        {"INSERT INTO certloop_accounts (ca, key_sealed, account_json) VALUES ($1, $2::bytea, $3)"
         " ON CONFLICT (ca) DO NOTHING RETURNING ca",
         3, par},
        {"SELECT encode(key_sealed, 'hex'), account_json FROM certloop_accounts WHERE ca = $1", 1,
         ca_p},
    };
    int rc;
    if (kind == W_ACCOUNT && pg_cache_acct_find(p, ca) == NULL) {
        w->create = true;
        rc = wop_start(w, create, 2);
    } else {
        rc = wop_start(w, st, kind == W_ROLLOVER ? 2 : 1);
    }
    free(hex);
    return rc;
}

static int pg_account_put(struct store *s, const char *ca, const char *key_pem,
                          const char *account_json, store_cb cb, void *arg)
{
    return account_write(s, W_ACCOUNT, ca, key_pem, account_json, cb, arg);
}

#define PRUNE_SQL                                                                                  \
    "DELETE FROM certloop_generations WHERE cert = $1 AND generation <> ALL (SELECT generation"    \
    " FROM certloop_generations WHERE cert = $1 ORDER BY generation DESC LIMIT $2::int + 1)"

static char *new_generation(void)
{
    struct tm tm;
    time_t now = time(NULL);
    char stamp[32], rnd[5];

    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    store_rand_hex(rnd, 4); /* a clash within a second fails the INSERT: retried by the caller */
    return xasprintf("%s-%s", stamp, rnd);
}

static int pg_cert_put(struct store *s, const struct store_cert_put *put, store_cb cb, void *arg)
{
    struct pg_store *p = pg_of(s);

    if (!store_name_ok(put->name) || put->key_pem == NULL || put->cert_pem == NULL ||
        put->fullchain_pem == NULL)
        return -EINVAL;
    struct wop *w = wop_new(p, W_CERT, put->name, cb, arg);
    w->gen = new_generation();
    w->keep = put->keep < 1 ? 1 : put->keep;
    w->mark = put->mark_redeploy;
    w->cert_pem = xstrdup(put->cert_pem);
    w->chain_pem = xstrdup(put->chain_pem != NULL ? put->chain_pem : "");
    w->fullchain_pem = xstrdup(put->fullchain_pem);
    w->meta_json = xstrdup(put->meta_json != NULL ? put->meta_json : "{}");
    w->key_pem = xstrdup(put->key_pem);
    char *hex = seal_hex(p, put->name, w->gen, put->key_pem);
    if (hex == NULL) {
        wop_free(w);
        return ERR_CRYPTO;
    }
    char keep_s[16];
    snprintf(keep_s, sizeof(keep_s), "%d", w->keep);
    const char *name_p[] = {put->name};
    const char *gen_p[] = {put->name,        w->gen, w->cert_pem,  w->chain_pem,
                           w->fullchain_pem, hex,    w->meta_json, p->instance};
    const char *cur_p[] = {put->name, w->gen};
    const char *mark_p[] = {p->instance, put->name};
    const char *prune_p[] = {put->name, keep_s};
    struct pg_fence f;
    struct pg_stmt st[6];
    size_t n = fence_if_leased(p, put->name, &f, st);

    st[n++] = (struct pg_stmt){
        "INSERT INTO certloop_certificates (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", 1,
        name_p};
    st[n++] = (struct pg_stmt){"INSERT INTO certloop_generations (cert, generation, cert_pem,"
                               " chain_pem, fullchain_pem, key_sealed, meta_json, created_by)"
                               " VALUES ($1, $2, $3, $4, $5, $6::bytea, $7, $8)",
                               8, gen_p};
    st[n++] = (struct pg_stmt){"UPDATE certloop_certificates SET current_generation = $2,"
                               " updated_at = now() WHERE name = $1",
                               2, cur_p};
    if (w->mark) /* in the same transaction: current and marked together */
        st[n++] = (struct pg_stmt){"INSERT INTO certloop_redeploy (instance, cert) VALUES ($1, $2)"
                                   " ON CONFLICT DO NOTHING",
                                   2, mark_p};
    st[n++] = (struct pg_stmt){PRUNE_SQL, 2, prune_p};
    int rc = wop_start(w, st, n);
    free(hex);
    return rc;
}

static int pg_cert_prune(struct store *s, const char *name, int keep, store_cb cb, void *arg)
{
    struct pg_store *p = pg_of(s);
    struct wop *w = wop_new(p, W_PRUNE, name, cb, arg);
    char keep_s[16];

    w->keep = keep < 1 ? 1 : keep;
    snprintf(keep_s, sizeof(keep_s), "%d", w->keep);
    const char *par[] = {name, keep_s};
    struct pg_stmt st = {PRUNE_SQL, 2, par};
    return wop_start(w, &st, 1);
}

static int pg_note_put(struct store *s, const char *name, const char *generation, const char *note,
                       const char *json, store_cb cb, void *arg)
{
    struct wop *w = wop_new(pg_of(s), W_NOTE, name, cb, arg);

    w->gen = xstrdup(generation);
    w->note = xstrdup(note);
    w->text = xstrdup(json);
    const char *par[] = {name, generation, note, json};
    /* no row back: the generation is gone (-ENOENT, see wop_done) */
    struct pg_stmt st = {"INSERT INTO certloop_notes (cert, generation, note, json)"
                         " SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM"
                         " certloop_generations WHERE cert = $1 AND generation = $2)"
                         " ON CONFLICT (cert, generation, note) DO UPDATE SET json = EXCLUDED.json"
                         " RETURNING 1",
                         4, par};
    return wop_start(w, &st, 1);
}

static int pg_account_next_put(struct store *s, const char *ca, const char *key_pem, store_cb cb,
                               void *arg)
{
    struct pg_store *p = pg_of(s);
    char *ad = xasprintf("@account-next/%s", ca);
    char *hex = seal_hex(p, ad, "", key_pem);

    free(ad);
    if (hex == NULL)
        return ERR_CRYPTO;
    struct wop *w = wop_new(p, W_ACCOUNT_NEXT, ca, cb, arg);
    w->key_pem = xstrdup(key_pem);
    const char *par[] = {ca, hex};
    struct pg_stmt st = {"INSERT INTO certloop_account_next (ca, key_sealed) VALUES ($1, $2::bytea)"
                         " ON CONFLICT (ca) DO UPDATE SET key_sealed = EXCLUDED.key_sealed",
                         2, par};
    int rc = wop_start(w, &st, 1);
    free(hex);
    return rc;
}

static int pg_account_rollover(struct store *s, const char *ca, const char *key_pem,
                               const char *account_json, store_cb cb, void *arg)
{
    return account_write(s, W_ROLLOVER, ca, key_pem, account_json, cb, arg);
}

static int pg_account_retire(struct store *s, const char *ca, int64_t t, store_cb cb, void *arg)
{
    struct wop *w = wop_new(pg_of(s), W_RETIRE, ca, cb, arg);
    char ts[24];

    snprintf(ts, sizeof(ts), "%" PRId64, t);
    const char *par[] = {ca, ts};
    const char *ca_p[] = {ca};
    struct pg_stmt st[] = {
        {"INSERT INTO certloop_accounts_retired (ca, t, key_sealed, account_json)"
         " SELECT ca, $2::bigint, key_sealed, account_json FROM certloop_accounts WHERE ca = $1",
         2, par},
        {"DELETE FROM certloop_accounts WHERE ca = $1", 1, ca_p},
    };
    return wop_start(w, st, 2);
}

/* Appends the lines (each with its certificate) and cuts every touched
 * history past 64 KiB to its newest lines within 32 KiB, in one
 * transaction. */
static int pg_history_append(struct store *s, const struct store_history_line *v, size_t n,
                             store_cb cb, void *arg)
{
    struct pg_store *p = pg_of(s);

    if (n == 0)
        return -EINVAL;
    struct wop *w = wop_new(p, W_HISTORY, NULL, cb, arg);
    struct pg_stmt *st = xcalloc(2 * n, sizeof(*st));
    const char *(*par)[3] = xcalloc(n, sizeof(*par));
    w->lines = xcalloc(n, sizeof(*w->lines));
    w->nlines = n;
    for (size_t i = 0; i < n; i++) {
        w->lines[i].name = xstrdup(v[i].name);
        w->lines[i].line = xstrdup(v[i].line);
        par[i][0] = w->lines[i].name;
        par[i][1] = p->instance;
        par[i][2] = w->lines[i].line;
        st[2 * i] = (struct pg_stmt){
            "INSERT INTO certloop_history (cert, instance, line) VALUES ($1, $2, $3)", 3, par[i]};
        st[2 * i + 1] = (struct pg_stmt){
            "DELETE FROM certloop_history WHERE cert = $1 AND (SELECT sum(length(line)) FROM"
            " certloop_history WHERE cert = $1) > " HISTORY_MAX_S " AND id < (SELECT min(id)"
            " FROM (SELECT id, sum(length(line)) OVER (ORDER BY id DESC) AS acc FROM"
            " certloop_history WHERE cert = $1) t WHERE acc <= " HISTORY_KEEP_S ")",
            1, par[i]};
    }
    int rc = wop_start(w, st, 2 * n);
    free(par);
    free(st);
    return rc;
}

static int pg_order_put(struct store *s, const char *name, const char *json, store_cb cb, void *arg)
{
    struct pg_store *p = pg_of(s);
    struct pcert *c = pg_cache_cert_find(p, name);
    struct wop *w = wop_new(p, W_ORDER, name, cb, arg);
    char tok[24];

    w->text = xstrdup(json);
    snprintf(tok, sizeof(tok), "%" PRIu64, c != NULL && c->leased ? c->fence : 0);
    const char *par[] = {name, json, p->instance, tok};
    struct pg_fence f;
    struct pg_stmt st[2];
    size_t n = fence_if_leased(p, name, &f, st);
    st[n++] = (struct pg_stmt){
        "INSERT INTO certloop_orders (cert, order_json, holder, token) VALUES ($1, $2, $3,"
        " $4::bigint) ON CONFLICT (cert) DO UPDATE SET order_json = EXCLUDED.order_json,"
        " holder = EXCLUDED.holder, token = EXCLUDED.token, updated_at = now()",
        4, par};
    return wop_start(w, st, n);
}

/* Removes the order and our redeploy mark together (the deployment's
 * commit): one transaction, so no crash leaves one without the other. */
static int pg_order_settle(struct store *s, const char *name, store_cb cb, void *arg)
{
    struct pg_store *p = pg_of(s);
    struct wop *w = wop_new(p, W_SETTLE, name, cb, arg);
    const char *o_p[] = {name, p->instance};
    const char *m_p[] = {p->instance, name};
    /* the order of another instance that holds the lease now (its next
     * renewal) is its own: only a deployment of ours settles here */
    struct pg_stmt st[] = {
        {"DELETE FROM certloop_orders WHERE cert = $1 AND NOT EXISTS (SELECT 1 FROM"
         " certloop_leases l WHERE l.cert = $1 AND l.holder <> $2 AND l.expires_ms >"
         " (extract(epoch FROM clock_timestamp()) * 1000)::bigint)",
         2, o_p},
        {"DELETE FROM certloop_redeploy WHERE instance = $1 AND cert = $2", 2, m_p},
    };
    return wop_start(w, st, 2);
}

static int pg_redeploy_mark(struct store *s, const char *name, store_cb cb, void *arg)
{
    struct pg_store *p = pg_of(s);
    struct wop *w = wop_new(p, W_MARK, name, cb, arg);
    const char *par[] = {p->instance, name};
    struct pg_stmt st = {
        "INSERT INTO certloop_redeploy (instance, cert) VALUES ($1, $2) ON CONFLICT DO NOTHING", 2,
        par};
    return wop_start(w, &st, 1);
}

static int pg_alert_put(struct store *s, const char *name, enum store_alert kind, int64_t t,
                        store_cb cb, void *arg)
{
    struct pg_store *p = pg_of(s);
    struct wop *w = wop_new(p, W_ALERT, name, cb, arg);
    char ts[24];

    w->t = t;
    w->alert = kind;
    snprintf(ts, sizeof(ts), "%" PRId64, t);
    const char *par[] = {p->instance, name, store_alert_name(kind), ts};
    struct pg_stmt put = {"INSERT INTO certloop_alerts (instance, cert, kind, t) VALUES ($1, $2,"
                          " $3, $4::bigint) ON CONFLICT (instance, cert, kind)"
                          " DO UPDATE SET t = EXCLUDED.t",
                          4, par};
    struct pg_stmt forget = {"DELETE FROM certloop_alerts WHERE instance = $1 AND cert = $2"
                             " AND kind = $3",
                             3, par};
    return wop_start(w, t > 0 ? &put : &forget, 1);
}

/* live: the delivery is (still) to be made after this write; else it is
 * gone from the live outbox (removed or buried). */
static int outbox_write(struct store *s, const char *sql, int nparams, const char *id,
                        const char *text, bool live, store_cb cb, void *arg)
{
    struct wop *w = wop_new(pg_of(s), cb != NULL ? W_OUTBOX : W_FIRE_AND_FORGET, NULL, cb, arg);
    const char *par[] = {id, text, pg_of(s)->instance};

    w->note = xstrdup(id);
    w->text = text != NULL ? xstrdup(text) : NULL;
    w->mark = live;
    struct pg_stmt st = {sql, nparams, par};

    return wop_start(w, &st, 1);
}

/* The delivery id is this instance's to make (it may have been a silent
 * instance's): the others leave it alone at their start. */
static void outbox_claim(struct store *s, const char *id)
{
    struct wop *w = wop_new(pg_of(s), W_FIRE_AND_FORGET, NULL, NULL, NULL);
    const char *par[] = {id, pg_of(s)->instance};
    struct pg_stmt st = {"UPDATE certloop_outbox SET instance = $2 WHERE id = $1", 2, par};

    wop_start(w, &st, 1);
}

static int pg_outbox_put(struct store *s, const char *id, const char *text, store_cb cb, void *arg)
{
    return outbox_write(s,
                        "INSERT INTO certloop_outbox (id, payload, instance) VALUES ($1, $2, $3)"
                        " ON CONFLICT (id) DO UPDATE SET payload = EXCLUDED.payload, dead = false,"
                        " instance = EXCLUDED.instance",
                        3, id, text, true, cb, arg);
}

static int pg_outbox_remove(struct store *s, const char *id, store_cb cb, void *arg)
{
    return outbox_write(s, "DELETE FROM certloop_outbox WHERE id = $1", 1, id, NULL, false, cb,
                        arg);
}

static int pg_outbox_bury(struct store *s, const char *id, const char *text, store_cb cb, void *arg)
{
    return outbox_write(s,
                        "INSERT INTO certloop_outbox (id, payload, dead) VALUES ($1, $2, true)"
                        " ON CONFLICT (id) DO UPDATE SET payload = EXCLUDED.payload, dead = true",
                        2, id, text, false, cb, arg);
}

/* ---- leases ------------------------------------------------------------------------ */

struct lease_wait {
    struct pg_store *p;
    char *name;
    bool take;
    store_cb cb;
    void *arg;
};

static void lease_wait_free(void *arg)
{
    struct lease_wait *lw = arg;

    free(lw->name);
    free(lw);
}

static void lease_answer(struct lease_wait *lw, int status, uint64_t token, const char *err)
{
    struct store_result r = {.fence = token, .error = err};

    lw->cb(status, &r, lw->arg);
}

/* After a take: the order another instance may have left (a crash) and the
 * current generation, as the database has them now, so that the run
 * resumes that order, or finds the certificate renewed meanwhile. */
static void lease_fresh(int status, const struct pg_res *res, void *arg)
{
    struct lease_wait *lw = arg;
    struct pcert *c = pg_cache_cert_get(lw->p, lw->name);
    char *err = NULL;

    if (status == 0) {
        free(c->order_json);
        c->order_json = PQntuples(res->res[0]) > 0 ? xstrdup(PQgetvalue(res->res[0], 0, 0)) : NULL;
        pg_open_current_rows(lw->p, res->res[1]);
    } else {
        err = xasprintf("postgresql: lease %s: reading the order: %s", lw->name,
                        status == ERR_DB ? res->message : err_str(status));
    }
    lease_answer(lw, status, c->fence, err);
    free(err);
}

static void lease_done(int status, enum pg_lease_verdict v, uint64_t token, void *arg)
{
    struct lease_wait *lw = arg;
    char *err = NULL;

    if (status == 0 && v == PG_LEASE_GRANTED) {
        struct pcert *c = pg_cache_cert_get(lw->p, lw->name);
        c->leased = true;
        c->fence = token;
        if (lw->take) {
            const char *par[] = {lw->name};
            struct pg_stmt st[] = {
                {"SELECT order_json FROM certloop_orders WHERE cert = $1", 1, par},
                {PG_CURRENT_SQL " WHERE c.name = $1", 1, par},
            };
            if (pg_op_start_owning(lw->p->conn, st, 2, lease_fresh, lw, lease_wait_free, NULL) == 0)
                return;
            status = -ENOMEM;
            err = xasprintf("postgresql: lease %s: cannot read the order", lw->name);
        }
    } else if (status == 0) {
        struct pcert *c = pg_cache_cert_find(lw->p, lw->name);
        if (c != NULL && !lw->take)
            c->leased = false;
        status = ERR_LOCKED;
        err = xasprintf("postgresql: lease %s: %s", lw->name,
                        v == PG_LEASE_BUSY ? "held by another instance" : "no longer ours");
    } else {
        err = xasprintf("postgresql: lease %s: %s", lw->name, err_str(status));
    }
    lease_answer(lw, status, token, err);
    free(err);
    lease_wait_free(lw);
}

static int ps_lease_take(struct store *s, const char *name, store_cb cb, void *arg)
{
    if (pg_of(s)->conn == NULL)
        return -EINVAL;
    struct pcert *c = pg_cache_cert_find(pg_of(s), name);
    if (c != NULL && c->leased) { /* one run per certificate in this process too */
        struct store_result r = {.error = "postgresql: lease: held by this instance"};
        return store_defer(s, ERR_LOCKED, &r, cb, arg);
    }
    struct lease_wait *lw = xcalloc(1, sizeof(*lw));

    *lw = (struct lease_wait){pg_of(s), xstrdup(name), true, cb, arg};
    int rc = pg_lease_take_start(pg_of(s)->conn, name, pg_of(s)->instance, -1, s->lease_ms,
                                 lease_done, lw, NULL);
    if (rc < 0)
        lease_wait_free(lw);
    return rc;
}

static int ps_lease_renew(struct store *s, const char *name, uint64_t fence, store_cb cb, void *arg)
{
    if (pg_of(s)->conn == NULL)
        return -EINVAL;
    struct lease_wait *lw = xcalloc(1, sizeof(*lw));

    *lw = (struct lease_wait){pg_of(s), xstrdup(name), false, cb, arg};
    int rc = pg_lease_renew_start(pg_of(s)->conn, name, pg_of(s)->instance, fence, -1, s->lease_ms,
                                  lease_done, lw, NULL);
    if (rc < 0)
        lease_wait_free(lw);
    return rc;
}

static void released(int status, enum pg_lease_verdict v, uint64_t token, void *arg)
{
    (void)status, (void)v, (void)token, (void)arg; /* the lease also expires by itself */
}

static void ps_lease_release(struct store *s, const char *name, uint64_t fence)
{
    struct pg_store *p = pg_of(s);
    struct pcert *c = pg_cache_cert_find(p, name);

    if (c == NULL || !c->leased || c->fence != fence || p->conn == NULL)
        return; /* a stale fence is ignored */
    c->leased = false;
    pg_lease_release_start(p->conn, name, p->instance, fence, -1, released, NULL, NULL);
}

/* ---- what this instance deployed ---------------------------------------------------------- */

static int pg_deployed_read(struct store *s, const char *name, char **generation, bool *ok)
{
    struct pcert *c = pg_cache_cert_find(pg_of(s), name);

    if (c == NULL || c->deployed == NULL)
        return -ENOENT;
    *generation = xstrdup(c->deployed);
    *ok = c->deployed_ok;
    return 0;
}

/* The instance's row first: the fleet view's heartbeat fills it in. */
static int pg_deployed_put(struct store *s, const char *name, const char *generation, bool ok,
                           const char *error, store_cb cb, void *arg)
{
    struct pg_store *p = pg_of(s);
    struct wop *w = wop_new(p, W_DEPLOYED, name, cb, arg);
    const char *i_p[] = {p->instance};
    const char *d_p[] = {p->instance, name, generation, ok ? "true" : "false",
                         error != NULL ? error : ""};
    struct pg_stmt st[] = {
        {"INSERT INTO certloop_instances (name, version, config_digest) VALUES ($1, '', '')"
         " ON CONFLICT (name) DO NOTHING",
         1, i_p},
        {"INSERT INTO certloop_deployments (instance, cert, generation, ok, error)"
         " VALUES ($1, $2, $3, $4::boolean, $5) ON CONFLICT (instance, cert) DO"
         " UPDATE SET generation = EXCLUDED.generation, ok = EXCLUDED.ok,"
         " error = EXCLUDED.error, at = now()",
         5, d_p},
    };
    w->gen = xstrdup(generation);
    w->mark = ok;
    int rc = wop_start(w, st, 2);
    /* read back at once (the manager decides again right after it): a
     * record lost with the database is only a deployment repeated later */
    if (rc == 0)
        apply(w);
    return rc;
}

static void pg_health(struct store *s, struct store_health *out)
{
    struct pg_store *p = pg_of(s);
    struct pg_conn_stats st;

    if (p->conn == NULL)
        return;
    pg_conn_stats(p->conn, &st);
    out->down = st.down_since != 0;
    out->down_since = st.down_since;
    out->failures = st.failures;
    out->waiting = st.waiting;
    snprintf(out->error, sizeof(out->error), "%s", st.last_error);
}

/* ---- reads (from the copy) ------------------------------------------------------------ */

static int pg_account_read(struct store *s, const char *ca, char **key_pem, char **account_json)
{
    struct pacct *a = pg_cache_acct_find(pg_of(s), ca);

    if (a == NULL)
        return -ENOENT;
    if (a->key_pem == NULL)
        return ERR_CRYPTO; /* logged when loaded */
    *key_pem = xstrdup(a->key_pem);
    *account_json = xstrdup(a->json);
    return 0;
}

static int pg_cert_read_current(struct store *s, const char *name, bool with_key,
                                struct store_cert *out)
{
    struct pcert *c = pg_cache_cert_find(pg_of(s), name);

    if (c == NULL || c->cur.generation == NULL)
        return -ENOENT;
    if (with_key && c->cur.key_pem == NULL)
        return ERR_CRYPTO;
    memset(out, 0, sizeof(*out));
    out->generation = xstrdup(c->cur.generation);
    out->cert_pem = xstrdup(c->cur.cert_pem);
    out->chain_pem = xstrdup(c->cur.chain_pem);
    out->fullchain_pem = xstrdup(c->cur.fullchain_pem);
    out->meta_json = xstrdup(c->cur.meta_json);
    out->key_pem = with_key ? xstrdup(c->cur.key_pem) : NULL;
    return 0;
}

static int pg_cert_list(struct store *s, const char *name, char ***gens, size_t *n)
{
    struct pcert *c = pg_cache_cert_find(pg_of(s), name);

    *gens = NULL;
    *n = 0;
    if (c == NULL || c->ngens == 0)
        return 0;
    *gens = xcalloc(c->ngens, sizeof(char *));
    for (size_t i = 0; i < c->ngens; i++)
        (*gens)[i] = xstrdup(c->gens[i]);
    *n = c->ngens;
    return 0;
}

static int pg_note_read(struct store *s, const char *name, const char *generation, const char *note,
                        char **json)
{
    struct pcert *c = pg_cache_cert_find(pg_of(s), name);
    char **v = c != NULL ? pg_cache_note_find(c, generation, note) : NULL;

    if (v == NULL)
        return -ENOENT;
    *json = xstrdup(*v);
    return 0;
}

static int pg_account_next_read(struct store *s, const char *ca, char **key_pem)
{
    struct pnext *n = pg_cache_next_find(pg_of(s), ca);

    if (n == NULL)
        return -ENOENT;
    if (n->key_pem == NULL)
        return ERR_CRYPTO; /* logged when loaded */
    *key_pem = xstrdup(n->key_pem);
    return 0;
}

static int pg_history_read(struct store *s, const char *name, char **text, size_t *len)
{
    struct pcert *c = pg_cache_cert_find(pg_of(s), name);

    if (c == NULL || c->history.len == 0)
        return -ENOENT;
    *text = xmemdup(c->history.data, c->history.len + 1);
    *len = c->history.len;
    return 0;
}

static int pg_order_read(struct store *s, const char *name, char **json)
{
    struct pcert *c = pg_cache_cert_find(pg_of(s), name);

    if (c == NULL || c->order_json == NULL)
        return -ENOENT;
    *json = xstrdup(c->order_json);
    return 0;
}

static bool pg_redeploy_marked(struct store *s, const char *name)
{
    struct pcert *c = pg_cache_cert_find(pg_of(s), name);

    return c != NULL && c->redeploy;
}

static int pg_alert_read(struct store *s, const char *name, enum store_alert kind, int64_t *t)
{
    struct pcert *c = pg_cache_cert_find(pg_of(s), name);

    if (c == NULL || !c->alert[kind])
        return -ENOENT;
    *t = c->alert_t[kind];
    return 0;
}

/* ---- start-up ------------------------------------------------------------------------ */

static int pg_sweep(struct store *s)
{
    struct pg_store *p = pg_of(s);

    /* every write is one transaction: a crash leaves no halves. The
     * generations written out for the last run's hooks are not needed
     * after it: their keys do not stay on disk (a certificate since
     * removed from the configuration included) */
    if (p->lineage_root != NULL) {
        int n = store_lineage_clear(p->lineage_root);
        if (n > 0)
            log_info(LOG_STORE, "%s: removed %d generation(s) written for hooks", p->lineage_root,
                     n);
        else if (n < 0)
            log_warn(LOG_STORE, "%s: %s", p->lineage_root, err_str(n));
    }
    return 0;
}

static int pg_lineage(struct store *s, const char *name, const struct store_cert *c, store_cb cb,
                      void *arg)
{
    struct pg_store *p = pg_of(s);

    if (p->lineage_root == NULL)
        return -ENOTSUP;
    return store_lineage_job_start(s, p->lineage_root, name, c, cb, arg);
}

static int pg_alerts_sweep(struct store *s, bool (*known)(const char *name, void *arg), void *arg)
{
    struct pg_store *p = pg_of(s);
    int n = 0;

    for (size_t i = 0; i < p->ncerts; i++) {
        struct pcert *c = p->certs[i];
        int kinds = 0; /* records, as the file backend counts its files */
        for (int k = 0; k < STORE_ALERT__MAX; k++)
            kinds += c->alert[k];
        if (kinds == 0 || known(c->name, arg))
            continue;
        memset(c->alert, 0, sizeof(c->alert));
        struct wop *w = wop_new(p, W_FIRE_AND_FORGET, c->name, NULL, NULL);
        const char *par[] = {p->instance, c->name};
        struct pg_stmt st = {"DELETE FROM certloop_alerts WHERE instance = $1 AND cert = $2", 2,
                             par};
        if (wop_start(w, &st, 1) == 0)
            n += kinds;
    }
    return n;
}

static int pg_outbox_load(struct store *s, store_outbox_each_fn each, void *arg)
{
    struct pg_store *p = pg_of(s);
    int n = 0;

    for (size_t i = 0; i < p->nboxes;) {
        const char *why = each(p->boxes[i].id, p->boxes[i].text, arg);
        if (why == NULL) {
            outbox_claim(s, p->boxes[i].id);
            n++;
            i++;
            continue;
        }
        log_warn(LOG_STORE, "database: outbox %s: %s: kept as dead", p->boxes[i].id, why);
        outbox_write(s, "UPDATE certloop_outbox SET dead = true WHERE id = $1", 1, p->boxes[i].id,
                     NULL, false, NULL, NULL);
        pg_cache_box_set(p, p->boxes[i].id, NULL); /* i now holds the next one */
    }
    return n;
}

static char *pg_where(struct store *s, enum store_what what, const char *name)
{
    (void)s;
    static const char *const table[] = {
        [STORE_WHERE_ROOT] = "",
        [STORE_WHERE_ACCOUNT] = "accounts",
        [STORE_WHERE_CERT] = "certificates",
        [STORE_WHERE_ORDER] = "orders",
        [STORE_WHERE_REDEPLOY] = "redeploy",
        [STORE_WHERE_ALERTS] = "alerts",
        [STORE_WHERE_OUTBOX] = "outbox",
        [STORE_WHERE_OUTBOX_DEAD] = "outbox (dead)",
    };
    const char *t = (unsigned)what < sizeof(table) / sizeof(table[0]) ? table[what] : "?";

    if (name == NULL || what == STORE_WHERE_ROOT || what >= STORE_WHERE_OUTBOX)
        return xasprintf("postgresql%s%s", t[0] != '\0' ? ": " : "", t);
    return xasprintf("postgresql: %s %s", t, name);
}

void pg_store_free(struct store *s)
{
    struct pg_store *p = pg_of(s);

    pg_conn_close(p->conn, NULL, NULL); /* frees itself once its handles close */
    for (size_t i = 0; i < p->ncerts; i++)
        pg_cache_pcert_free(p->certs[i]);
    free(p->certs);
    for (size_t i = 0; i < p->naccts; i++) {
        if (p->accts[i].key_pem != NULL)
            OPENSSL_cleanse(p->accts[i].key_pem, strlen(p->accts[i].key_pem));
        free(p->accts[i].key_pem);
        free(p->accts[i].ca);
        free(p->accts[i].json);
    }
    free(p->accts);
    for (size_t i = 0; i < p->nnexts; i++) {
        pg_cache_wipe_free(p->nexts[i].key_pem);
        free(p->nexts[i].ca);
    }
    free(p->nexts);
    for (size_t i = 0; i < p->nboxes; i++) {
        free(p->boxes[i].id);
        free(p->boxes[i].text);
    }
    free(p->boxes);
    pg_key_wipe(&p->key);
    free(p->instance);
    free(p->lineage_root);
    free(p->local_dir);
    free(p);
}

const struct store_ops pg_store_ops = {
    .type = "postgresql",
    .close = pg_store_free,
    .where = pg_where,
    .sweep = pg_sweep,
    .account_read = pg_account_read,
    .account_put = pg_account_put,
    .account_next_read = pg_account_next_read,
    .account_next_put = pg_account_next_put,
    .account_rollover = pg_account_rollover,
    .account_retire = pg_account_retire,
    .cert_read_current = pg_cert_read_current,
    .cert_list = pg_cert_list,
    .cert_put = pg_cert_put,
    .cert_prune = pg_cert_prune,
    .lineage = pg_lineage,
    .note_read = pg_note_read,
    .note_put = pg_note_put,
    .history_read = pg_history_read,
    .history_append = pg_history_append,
    .order_read = pg_order_read,
    .order_put = pg_order_put,
    .order_settle = pg_order_settle,
    .redeploy_marked = pg_redeploy_marked,
    .redeploy_mark = pg_redeploy_mark,
    .alert_read = pg_alert_read,
    .alert_put = pg_alert_put,
    .alerts_sweep = pg_alerts_sweep,
    .hub_cursor_read = pg_hub_cursor_read,
    .hub_cursor_put = pg_hub_cursor_put,
    .outbox_load = pg_outbox_load,
    .outbox_put = pg_outbox_put,
    .outbox_remove = pg_outbox_remove,
    .outbox_bury = pg_outbox_bury,
    .lease_take = ps_lease_take,
    .lease_renew = ps_lease_renew,
    .lease_release = ps_lease_release,
    .deployed_read = pg_deployed_read,
    .deployed_put = pg_deployed_put,
    .health = pg_health,
    .api_bootstrap_read = pg_api_bootstrap_read,
    .api_bootstrap_put = pg_api_bootstrap_put,
};
