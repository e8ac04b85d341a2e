/* One order per certificate across the fleet (issue 14 item 3): a lease row
 * per certificate with an expiry and a fencing token, as pure functions
 * (the rule) and as single SQL statements (the rule applied where every
 * instance sees it), plus the fenced write of a new generation.
 *
 * Why lease rows and not session advisory locks: an advisory lock belongs
 * to a database session, so a network blip that drops our connection frees
 * every lock while we may still be writing, with nothing to refuse our
 * late writes; it cannot outlive a reconnect, so the holder cannot resume;
 * it says nothing about who holds what for `status --fleet`; and it breaks
 * behind a transaction-pooling proxy. A row survives reconnects, expires by
 * itself when the holder dies (the next instance takes over after the
 * lease time), is visible, and its token fences: every write under the
 * lease starts with certloop_fence(), which locks the row FOR SHARE and
 * fails the whole transaction unless the holder, token and expiry still
 * match. The cost is a renewal write every third of the lease time. */
#include "store/pg_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the rule --------------------------------------------------------------- */

static bool held_by(const struct pg_lease *l, const char *holder, uint64_t token, int64_t now)
{
    return strcmp(l->holder, holder) == 0 && l->token == token && l->expires > now;
}

enum pg_lease_verdict pg_lease_take(struct pg_lease *l, const char *holder, int64_t now,
                                    int64_t ttl_ms, uint64_t *token_out)
{
    if (l->expires > now && strcmp(l->holder, holder) != 0)
        return PG_LEASE_BUSY;
    if (!(l->expires > now)) { /* free: a new tenure, a new token */
        l->token++;
        snprintf(l->holder, sizeof(l->holder), "%s", holder);
    }
    l->expires = now + ttl_ms;
    *token_out = l->token;
    return PG_LEASE_GRANTED;
}

enum pg_lease_verdict pg_lease_renew(struct pg_lease *l, const char *holder, uint64_t token,
                                     int64_t now, int64_t ttl_ms)
{
    if (!held_by(l, holder, token, now))
        return PG_LEASE_LOST;
    l->expires = now + ttl_ms;
    return PG_LEASE_GRANTED;
}

enum pg_lease_verdict pg_lease_release(struct pg_lease *l, const char *holder, uint64_t token,
                                       int64_t now)
{
    if (!held_by(l, holder, token, now))
        return PG_LEASE_LOST;
    l->expires = now;
    return PG_LEASE_GRANTED;
}

bool pg_lease_write_ok(const struct pg_lease *l, const char *holder, uint64_t token, int64_t now)
{
    return held_by(l, holder, token, now);
}

/* ---- in the database ----------------------------------------------------------- */

/* The clock: the caller's (tests) or the server's, in ms. */
#define CLOCK_CTE(n)                                                                               \
    "WITH clock AS (SELECT COALESCE($" #n "::bigint, "                                             \
    "(extract(epoch FROM clock_timestamp()) * 1000)::bigint) AS ms) "

static const char take_sql[] =
    CLOCK_CTE(3) "INSERT INTO certloop_leases AS l (cert, holder, token, expires_ms)"
                 " SELECT $1, $2, 1, ms + $4::bigint FROM clock"
                 " ON CONFLICT (cert) DO UPDATE SET holder = EXCLUDED.holder,"
                 " token = CASE WHEN l.holder = EXCLUDED.holder AND"
                 " l.expires_ms > (SELECT ms FROM clock) THEN l.token ELSE l.token + 1 END,"
                 " expires_ms = EXCLUDED.expires_ms"
                 " WHERE l.holder = EXCLUDED.holder OR l.expires_ms <= (SELECT ms FROM clock)"
                 " RETURNING token";

static const char renew_sql[] =
    CLOCK_CTE(4) "UPDATE certloop_leases SET expires_ms = (SELECT ms FROM clock) + $5::bigint"
                 " WHERE cert = $1 AND holder = $2 AND token = $3::bigint"
                 " AND expires_ms > (SELECT ms FROM clock) RETURNING token";

static const char release_sql[] =
    CLOCK_CTE(4) "UPDATE certloop_leases SET expires_ms = (SELECT ms FROM clock)"
                 " WHERE cert = $1 AND holder = $2 AND token = $3::bigint"
                 " AND expires_ms > (SELECT ms FROM clock) RETURNING token";

enum kind { K_TAKE, K_RENEW, K_RELEASE, K_WRITE };

struct lease_op {
    enum kind kind;
    pg_lease_cb cb;
    void *arg;
    uint64_t token;
};

static void lease_done(int status, const struct pg_res *res, void *arg)
{
    struct lease_op *lo = arg;
    enum pg_lease_verdict v = PG_LEASE_LOST;
    uint64_t token = lo->token;

    if (status == ERR_DB && strcmp(res->sqlstate, PG_SQLSTATE_LEASE_LOST) == 0) {
        status = 0; /* the fence refused: an answer, not a fault */
    } else if (status == ERR_DB) {
        log_error(LOG_STORE, "database: lease: %s %s", res->sqlstate, res->message);
    } else if (status == 0 && lo->kind == K_WRITE) {
        v = PG_LEASE_GRANTED;
    } else if (status == 0) {
        PGresult *r = res->res[0];
        if (PQntuples(r) == 1) {
            v = PG_LEASE_GRANTED;
            token = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        } else {
            v = lo->kind == K_TAKE ? PG_LEASE_BUSY : PG_LEASE_LOST;
        }
    }
    lo->cb(status, v, token, lo->arg);
}

static int lease_start(struct pg_conn *c, enum kind kind, const struct pg_stmt *st, size_t n,
                       uint64_t token, pg_lease_cb cb, void *arg, struct pg_op **out)
{
    struct lease_op *lo = xcalloc(1, sizeof(*lo));

    lo->kind = kind;
    lo->cb = cb;
    lo->arg = arg;
    lo->token = token;
    int rc = pg_op_start_owning(c, st, n, lease_done, lo, free, out);
    if (rc < 0)
        free(lo);
    return rc;
}

static const char *num(char *buf, size_t n, int64_t v)
{
    snprintf(buf, n, "%" PRId64, v);
    return buf;
}

int pg_lease_take_start(struct pg_conn *c, const char *cert, const char *holder, int64_t now_ms,
                        int64_t ttl_ms, pg_lease_cb cb, void *arg, struct pg_op **out)
{
    char now_s[24], ttl_s[24];
    const char *p[] = {cert, holder, now_ms < 0 ? NULL : num(now_s, sizeof(now_s), now_ms),
                       num(ttl_s, sizeof(ttl_s), ttl_ms)};
    struct pg_stmt st = {take_sql, 4, p};

    if (ttl_ms <= 0)
        return -EINVAL;
    return lease_start(c, K_TAKE, &st, 1, 0, cb, arg, out);
}

int pg_lease_renew_start(struct pg_conn *c, const char *cert, const char *holder, uint64_t token,
                         int64_t now_ms, int64_t ttl_ms, pg_lease_cb cb, void *arg,
                         struct pg_op **out)
{
    char tok_s[24], now_s[24], ttl_s[24];
    const char *p[] = {cert, holder, num(tok_s, sizeof(tok_s), (int64_t)token),
                       now_ms < 0 ? NULL : num(now_s, sizeof(now_s), now_ms),
                       num(ttl_s, sizeof(ttl_s), ttl_ms)};
    struct pg_stmt st = {renew_sql, 5, p};

    if (ttl_ms <= 0)
        return -EINVAL;
    return lease_start(c, K_RENEW, &st, 1, token, cb, arg, out);
}

int pg_lease_release_start(struct pg_conn *c, const char *cert, const char *holder, uint64_t token,
                           int64_t now_ms, pg_lease_cb cb, void *arg, struct pg_op **out)
{
    char tok_s[24], now_s[24];
    const char *p[] = {cert, holder, num(tok_s, sizeof(tok_s), (int64_t)token),
                       now_ms < 0 ? NULL : num(now_s, sizeof(now_s), now_ms)};
    struct pg_stmt st = {release_sql, 4, p};

    return lease_start(c, K_RELEASE, &st, 1, token, cb, arg, out);
}

void pg_fence_stmt(struct pg_fence *f, struct pg_stmt *out)
{
    f->params[0] = f->cert;
    f->params[1] = f->holder;
    f->params[2] = num(f->token_s, sizeof(f->token_s), (int64_t)f->token);
    f->params[3] = f->now_ms < 0 ? NULL : num(f->now_s, sizeof(f->now_s), f->now_ms);
    *out = (struct pg_stmt){"SELECT certloop_fence($1, $2, $3::bigint, $4::bigint)", 4, f->params};
}

int pg_generation_put_start(struct pg_conn *c, struct pg_fence *f, const struct pg_generation *g,
                            pg_lease_cb cb, void *arg, struct pg_op **out)
{
    if (strcmp(f->cert, g->cert) != 0)
        return -EINVAL;
    char *key = pg_bytea_hex(g->key_sealed, g->key_sealed_len);
    const char *cert_p[] = {g->cert};
    const char *gen_p[] = {g->cert,          g->generation, g->cert_pem,  g->chain_pem,
                           g->fullchain_pem, key,           g->meta_json, f->holder};
    const char *cur_p[] = {g->cert, g->generation};
    struct pg_stmt st[4];

    pg_fence_stmt(f, &st[0]);
    st[1] = (struct pg_stmt){
        "INSERT INTO certloop_certificates (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", 1,
        cert_p};
    st[2] = (struct pg_stmt){"INSERT INTO certloop_generations (cert, generation, cert_pem,"
                             " chain_pem, fullchain_pem, key_sealed, meta_json, created_by)"
                             " VALUES ($1, $2, $3, $4, $5, $6::bytea, $7, $8)",
                             8, gen_p};
    st[3] = (struct pg_stmt){"UPDATE certloop_certificates SET current_generation = $2,"
                             " updated_at = now() WHERE name = $1",
                             2, cur_p};
    int rc = lease_start(c, K_WRITE, st, 4, f->token, cb, arg, out);
    free(key);
    return rc;
}
