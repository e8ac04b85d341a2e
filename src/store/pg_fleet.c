/* The fleet's shared records that are not part of the store interface
 * (issue 14 items 4 and 6): http-01 key authorizations every instance's
 * listener can answer (NOTIFY certloop_http01 at insert, a lookup on a
 * miss), and each instance's heartbeat and deployments for the fleet view
 * (`status --fleet`, GET /v1/fleet). Single statements, one op each. */
#include "store/pg_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a small owner for single-statement ops ---------------------------------- */

enum fkind { F_STATUS, F_LOOKUP, F_FLEET };

struct fop {
    enum fkind kind;
    void (*status_cb)(int status, void *arg);
    pg_http01_cb lookup_cb;
    pg_fleet_cb fleet_cb;
    void *arg;
};

static void fop_done(int status, const struct pg_res *res, void *arg)
{
    struct fop *f = arg;

    if (status == ERR_DB)
        log_warn(LOG_STORE, "database: fleet: %s %s", res->sqlstate, res->message);
    switch (f->kind) {
    case F_STATUS:
        f->status_cb(status, f->arg);
        break;
    case F_LOOKUP: {
        const char *v = NULL;
        if (status == 0 && PQntuples(res->res[0]) == 1)
            v = PQgetvalue(res->res[0], 0, 0);
        f->lookup_cb(status == 0 && v == NULL ? -ENOENT : status, v, f->arg);
        break;
    }
    case F_FLEET: {
        struct pg_fleet_row *rows = NULL;
        size_t n = 0;
        if (status == 0) {
            PGresult *r = res->res[0];
            n = (size_t)PQntuples(r);
            rows = xcalloc(n + 1, sizeof(*rows));
            for (size_t i = 0; i < n; i++) {
                int row = (int)i;
                rows[i].name = PQgetvalue(r, row, 0);
                rows[i].version = PQgetvalue(r, row, 1);
                rows[i].config_digest = PQgetvalue(r, row, 2);
                rows[i].heartbeat_age_s = strtoll(PQgetvalue(r, row, 3), NULL, 10);
                rows[i].silent = PQgetvalue(r, row, 4)[0] == 't';
                rows[i].lagging = (unsigned)strtoul(PQgetvalue(r, row, 5), NULL, 10);
                rows[i].failed = (unsigned)strtoul(PQgetvalue(r, row, 6), NULL, 10);
                rows[i].lagging_certs = PQgetvalue(r, row, 7);
                rows[i].failed_certs = PQgetvalue(r, row, 8);
                rows[i].deployed = (unsigned)strtoul(PQgetvalue(r, row, 9), NULL, 10);
            }
        }
        f->fleet_cb(status, rows, n, f->arg);
        free(rows);
        break;
    }
    }
}

static int fop_start(struct pg_conn *c, struct fop *f, const struct pg_stmt *st, struct pg_op **out)
{
    int rc = pg_op_start_owning(c, st, 1, fop_done, f, free, out);

    if (rc < 0)
        free(f);
    return rc;
}

static int status_start(struct pg_conn *c, const char *sql, int n, const char *const *par,
                        void (*cb)(int, void *), void *arg, struct pg_op **out)
{
    struct fop *f = xcalloc(1, sizeof(*f));
    struct pg_stmt st = {sql, n, par};

    f->kind = F_STATUS;
    f->status_cb = cb;
    f->arg = arg;
    return fop_start(c, f, &st, out);
}

/* ---- http-01 ------------------------------------------------------------------------ */

int pg_http01_put_start(struct pg_conn *c, const char *token, const char *key_authz,
                        const char *cert, int64_t ttl_s, void (*cb)(int status, void *arg),
                        void *arg, struct pg_op **out)
{
    char ttl[24];

    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_s);
    const char *par[] = {token, key_authz, cert, ttl};
    return status_start(c,
                        "INSERT INTO certloop_http01 (token, key_authz, cert, expires_at)"
                        " VALUES ($1, $2, $3, now() + make_interval(secs => $4::bigint))"
                        " ON CONFLICT (token) DO UPDATE SET key_authz = EXCLUDED.key_authz,"
                        " cert = EXCLUDED.cert, expires_at = EXCLUDED.expires_at",
                        4, par, cb, arg, out);
}

int pg_http01_remove_start(struct pg_conn *c, const char *token, void (*cb)(int status, void *arg),
                           void *arg, struct pg_op **out)
{
    const char *par[] = {token};

    return status_start(c, "DELETE FROM certloop_http01 WHERE token = $1", 1, par, cb, arg, out);
}

int pg_http01_lookup_start(struct pg_conn *c, const char *token, pg_http01_cb cb, void *arg,
                           struct pg_op **out)
{
    struct fop *f = xcalloc(1, sizeof(*f));
    const char *par[] = {token};
    struct pg_stmt st = {
        "SELECT key_authz FROM certloop_http01 WHERE token = $1 AND expires_at > now()", 1, par};

    f->kind = F_LOOKUP;
    f->lookup_cb = cb;
    f->arg = arg;
    return fop_start(c, f, &st, out);
}

/* ---- instances --------------------------------------------------------------------- */

int pg_instance_beat_start(struct pg_conn *c, const char *name, const char *version,
                           const char *config_digest, void (*cb)(int status, void *arg), void *arg,
                           struct pg_op **out)
{
    const char *par[] = {name, version, config_digest};

    return status_start(c,
                        "INSERT INTO certloop_instances (name, version, config_digest)"
                        " VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET"
                        " version = EXCLUDED.version, config_digest = EXCLUDED.config_digest,"
                        " heartbeat_at = now()",
                        3, par, cb, arg, out);
}

int pg_deployment_put_start(struct pg_conn *c, const char *instance, const char *cert,
                            const char *generation, bool ok, const char *error,
                            void (*cb)(int status, void *arg), void *arg, struct pg_op **out)
{
    const char *par[] = {instance, cert, generation, ok ? "true" : "false",
                         error != NULL ? error : ""};

    return status_start(c,
                        "INSERT INTO certloop_deployments (instance, cert, generation, ok, error)"
                        " VALUES ($1, $2, $3, $4::boolean, $5) ON CONFLICT (instance, cert) DO"
                        " UPDATE SET generation = EXCLUDED.generation, ok = EXCLUDED.ok,"
                        " error = EXCLUDED.error, at = now()",
                        5, par, cb, arg, out);
}

int pg_fleet_read_start(struct pg_conn *c, int64_t silent_after_s, pg_fleet_cb cb, void *arg,
                        struct pg_op **out)
{
    struct fop *f = xcalloc(1, sizeof(*f));
    char silent[24];

    snprintf(silent, sizeof(silent), "%" PRId64, silent_after_s);
    const char *par[] = {silent};
    /* lagging: certificates this instance deployed whose current generation
     * is newer than the one it deployed; failed: its last deployment failed */
    struct pg_stmt st = {
        "SELECT i.name, i.version, i.config_digest,"
        " extract(epoch FROM now() - i.heartbeat_at)::bigint,"
        " now() - i.heartbeat_at > make_interval(secs => $1::bigint),"
        " (SELECT count(*) FROM certloop_deployments d JOIN certloop_certificates c"
        "  ON c.name = d.cert WHERE d.instance = i.name"
        "  AND d.generation IS DISTINCT FROM c.current_generation),"
        " (SELECT count(*) FROM certloop_deployments d WHERE d.instance = i.name AND NOT d.ok),"
        " array_to_string(ARRAY(SELECT d.cert FROM certloop_deployments d JOIN"
        "  certloop_certificates c ON c.name = d.cert WHERE d.instance = i.name"
        "  AND d.generation IS DISTINCT FROM c.current_generation ORDER BY d.cert), ' '),"
        " array_to_string(ARRAY(SELECT d.cert FROM certloop_deployments d"
        "  WHERE d.instance = i.name AND NOT d.ok ORDER BY d.cert), ' '),"
        " (SELECT count(*) FROM certloop_deployments d WHERE d.instance = i.name)"
        " FROM certloop_instances i ORDER BY i.name",
        1, par};

    f->kind = F_FLEET;
    f->fleet_cb = cb;
    f->arg = arg;
    return fop_start(c, f, &st, out);
}

/* ---- declarations ------------------------------------------------------------------ */

int pg_declarations_put_start(struct pg_conn *c, const char *instance,
                              const struct pg_declaration *d, size_t n,
                              void (*cb)(int status, void *arg), void *arg)
{
    struct pg_stmt *st = xcalloc(n + 1, sizeof(*st));
    const char **par = xcalloc(5 * n + 1, sizeof(*par));
    struct fop *f = xcalloc(1, sizeof(*f));

    /* what this instance declares now replaces what it declared before */
    par[0] = instance;
    st[0] = (struct pg_stmt){"DELETE FROM certloop_declarations WHERE instance = $1", 1, par};
    for (size_t i = 0; i < n; i++) {
        const char **p = par + 1 + 4 * i;
        p[0] = d[i].cert;
        p[1] = d[i].digest;
        p[2] = d[i].names;
        p[3] = d[i].key;
        st[i + 1] = (struct pg_stmt){"INSERT INTO certloop_declarations (instance, cert, digest,"
                                     " names, key) VALUES ($1, $2, $3, $4, $5)",
                                     5, NULL};
    }
    /* each INSERT names the instance first: its own parameter array */
    const char **own = xcalloc(5 * n + 1, sizeof(*own));
    for (size_t i = 0; i < n; i++) {
        own[5 * i] = instance;
        memcpy(&own[5 * i + 1], par + 1 + 4 * i, 4 * sizeof(*own));
        st[i + 1].params = own + 5 * i;
    }
    f->kind = F_STATUS;
    f->status_cb = cb;
    f->arg = arg;
    int rc = pg_op_start_owning(c, st, n + 1, fop_done, f, free, NULL);
    if (rc < 0)
        free(f);
    free(own);
    free(par);
    free(st);
    return rc;
}

struct cop {
    pg_conflicts_cb cb;
    void *arg;
};

static void conflicts_done(int status, const struct pg_res *res, void *arg)
{
    struct cop *o = arg;
    struct pg_conflict *rows = NULL;
    size_t n = 0;

    if (status == ERR_DB)
        log_warn(LOG_STORE, "database: fleet: %s %s", res->sqlstate, res->message);
    if (status == 0) {
        PGresult *r = res->res[0];
        n = (size_t)PQntuples(r);
        rows = xcalloc(n + 1, sizeof(*rows));
        for (size_t i = 0; i < n; i++)
            rows[i] = (struct pg_conflict){PQgetvalue(r, (int)i, 0), PQgetvalue(r, (int)i, 1),
                                           PQgetvalue(r, (int)i, 2), PQgetvalue(r, (int)i, 3)};
    }
    o->cb(status, rows, n, o->arg);
    free(rows);
}

int pg_conflicts_read_start(struct pg_conn *c, const char *instance, int64_t silent_after_s,
                            pg_conflicts_cb cb, void *arg)
{
    char silent[24];

    snprintf(silent, sizeof(silent), "%" PRId64, silent_after_s);
    const char *par[] = {instance, silent};
    /* the certificates we declare that a live instance declares otherwise */
    struct pg_stmt st = {
        "SELECT o.cert, o.instance, o.names, o.key FROM certloop_declarations m"
        " JOIN certloop_declarations o ON o.cert = m.cert AND o.instance <> m.instance"
        " AND o.digest <> m.digest"
        " JOIN certloop_instances i ON i.name = o.instance"
        " AND now() - i.heartbeat_at <= make_interval(secs => $2::bigint)"
        " WHERE m.instance = $1 ORDER BY o.cert, o.instance",
        2, par};
    struct cop *o = xcalloc(1, sizeof(*o));
    o->cb = cb;
    o->arg = arg;
    int rc = pg_op_start_owning(c, &st, 1, conflicts_done, o, free, NULL);
    if (rc < 0)
        free(o);
    return rc;
}
