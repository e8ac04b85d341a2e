/* The fleet's records on the PostgreSQL store (store_pg.h): thin wrappers
 * of pg_fleet.c on the store's own connection, for the reactor, which does
 * not see the backend's internals. */
#include "store/pg_internal.h"
#include "store/store_pg.h"

#include "util/xalloc.h"

#include <errno.h>
#include <stdlib.h>

/* A store this backend opened, or NULL. */
static struct pg_store *pg_shared(const struct store *s)
{
    if (s == NULL || s->ops != &pg_store_ops)
        return NULL;
    struct pg_store *p = (struct pg_store *)s;
    return p->conn != NULL ? p : NULL;
}

bool store_pg_is(const struct store *s)
{
    return s != NULL && s->ops == &pg_store_ops;
}

/* http-01 tokens live this long in the database unless removed first: the
 * longest an order may take to validate, with room. */
#define HTTP01_TTL_S 86400

int store_pg_http01_put_start(struct store *s, const char *token, const char *key_authz,
                              const char *cert, void (*cb)(int status, void *arg), void *arg)
{
    struct pg_store *p = pg_shared(s);

    if (p == NULL)
        return -ENOTSUP;
    return pg_http01_put_start(p->conn, token, key_authz, cert, HTTP01_TTL_S, cb, arg, NULL);
}

int store_pg_http01_remove_start(struct store *s, const char *token,
                                 void (*cb)(int status, void *arg), void *arg)
{
    struct pg_store *p = pg_shared(s);

    if (p == NULL)
        return -ENOTSUP;
    return pg_http01_remove_start(p->conn, token, cb, arg, NULL);
}

int store_pg_http01_lookup_start(struct store *s, const char *token,
                                 void (*cb)(int status, const char *key_authz, void *arg),
                                 void *arg, struct pg_op **out)
{
    struct pg_store *p = pg_shared(s);

    if (p == NULL)
        return -ENOTSUP;
    return pg_http01_lookup_start(p->conn, token, cb, arg, out);
}

void store_pg_op_cancel(struct pg_op *op)
{
    pg_op_cancel(op);
}

void store_pg_http01_watch(struct store *s, void (*cb)(const char *token, void *arg), void *arg)
{
    struct pg_store *p = pg_shared(s);

    if (p == NULL)
        return;
    p->http01_cb = cb;
    p->http01_arg = arg;
}

/* ---- the fleet view --------------------------------------------------------------------- */

bool store_pg_connected(const struct store *s)
{
    const struct pg_store *p = store_pg_is(s) ? (const struct pg_store *)s : NULL;

    return p != NULL && p->conn != NULL && pg_conn_state(p->conn) == PG_CONN_UP;
}

const char *store_pg_instance(const struct store *s)
{
    return store_pg_is(s) ? ((const struct pg_store *)s)->instance : NULL;
}

int store_pg_beat_start(struct store *s, const char *version, const char *config_digest,
                        void (*cb)(int status, void *arg), void *arg)
{
    struct pg_store *p = pg_shared(s);

    if (p == NULL)
        return -ENOTSUP;
    return pg_instance_beat_start(p->conn, p->instance, version, config_digest, cb, arg, NULL);
}

int store_pg_deployed_start(struct store *s, const char *cert, const char *generation, bool ok,
                            const char *error, void (*cb)(int status, void *arg), void *arg)
{
    struct pg_store *p = pg_shared(s);

    if (p == NULL)
        return -ENOTSUP;
    return pg_deployment_put_start(p->conn, p->instance, cert, generation, ok, error, cb, arg,
                                   NULL);
}

struct fleet_read {
    void (*cb)(int status, const struct store_fleet_row *rows, size_t n, void *arg);
    void *arg;
};

static void fleet_read(int status, const struct pg_fleet_row *rows, size_t n, void *arg)
{
    struct fleet_read *fr = arg;
    struct store_fleet_row *out = xcalloc(n + 1, sizeof(*out));

    for (size_t i = 0; i < n; i++)
        out[i] = (struct store_fleet_row){rows[i].name,          rows[i].version,
                                          rows[i].config_digest, rows[i].heartbeat_age_s,
                                          rows[i].silent,        rows[i].deployed,
                                          rows[i].lagging,       rows[i].failed,
                                          rows[i].lagging_certs, rows[i].failed_certs};
    fr->cb(status, out, n, fr->arg);
    free(out);
    free(fr);
}

int store_pg_fleet_read_start(struct store *s, int64_t silent_after_s,
                              void (*cb)(int status, const struct store_fleet_row *rows, size_t n,
                                         void *arg),
                              void *arg)
{
    struct pg_store *p = pg_shared(s);

    if (p == NULL)
        return -ENOTSUP;
    struct fleet_read *fr = xcalloc(1, sizeof(*fr));
    fr->cb = cb;
    fr->arg = arg;
    int rc = pg_fleet_read_start(p->conn, silent_after_s, fleet_read, fr, NULL);
    if (rc < 0)
        free(fr);
    return rc;
}

/* ---- declarations ----------------------------------------------------------------------- */

_Static_assert(sizeof(struct store_declaration) == sizeof(struct pg_declaration),
               "store_declaration and pg_declaration are the same four strings");
_Static_assert(sizeof(struct store_conflict) == sizeof(struct pg_conflict),
               "store_conflict and pg_conflict are the same four strings");

int store_pg_declare_start(struct store *s, const struct store_declaration *d, size_t n,
                           void (*cb)(int status, void *arg), void *arg)
{
    struct pg_store *p = pg_shared(s);

    if (p == NULL)
        return -ENOTSUP;
    /* the same four strings, in the same order */
    return pg_declarations_put_start(p->conn, p->instance, (const struct pg_declaration *)d, n, cb,
                                     arg);
}

struct conflicts_read {
    void (*cb)(int status, const struct store_conflict *rows, size_t n, void *arg);
    void *arg;
};

static void conflicts_read(int status, const struct pg_conflict *rows, size_t n, void *arg)
{
    struct conflicts_read *cr = arg;

    cr->cb(status, (const struct store_conflict *)rows, n, cr->arg);
    free(cr);
}

int store_pg_conflicts_read_start(struct store *s, int64_t silent_after_s,
                                  void (*cb)(int status, const struct store_conflict *rows,
                                             size_t n, void *arg),
                                  void *arg)
{
    struct pg_store *p = pg_shared(s);

    if (p == NULL)
        return -ENOTSUP;
    struct conflicts_read *cr = xcalloc(1, sizeof(*cr));
    cr->cb = cb;
    cr->arg = arg;
    int rc = pg_conflicts_read_start(p->conn, p->instance, silent_after_s, conflicts_read, cr);
    if (rc < 0)
        free(cr);
    return rc;
}
