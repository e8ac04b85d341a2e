/* The fleet's records on the PostgreSQL store (store_pg.h): thin wrappers
 * of pg_fleet.c on the store's own connection, for the reactor, which does
 * not see the backend's internals. */
#include "store/pg_internal.h"
#include "store/store_pg.h"

#include <errno.h>

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
