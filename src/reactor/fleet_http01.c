/* Shared http-01 tokens (fleet.h): the glue between the listener's table
 * (challenge/http01.c) and the fleet's table in the database
 * (store/store_pg.h). It owns the lookups in flight and the list of tokens
 * it put in the listener, and knows nothing of orders. */
#include "reactor/fleet.h"

#include "challenge/challenge.h"
#include "store/store_pg.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_TTL_MS (3600 * 1000) /* a token learned from the database is dropped after */
#define SWEEP_MS (60 * 1000)
#define LOOKUPS_MAX 256 /* in flight at once; a miss past it is not looked up */

struct lookup {
    struct lookup *next;
    struct fleet_http01 *f;
    struct pg_op *op;
    char *token;
};

struct cached {
    struct cached *next;
    char *token;
    uint64_t at; /* loop ms when learned */
};

struct fleet_http01 {
    uv_loop_t *loop;
    struct store *store;
    struct chal_http01 *chal;
    struct lookup *lookups;
    size_t nlookups;
    struct cached *cached;
    uv_timer_t sweep; /* sweep.data = NULL once f is freed with it */
    struct fleet_http01_stats st;
};

static void cached_add(struct fleet_http01 *f, const char *token)
{
    for (struct cached *c = f->cached; c != NULL; c = c->next)
        if (strcmp(c->token, token) == 0) {
            c->at = uv_now(f->loop);
            return;
        }
    struct cached *c = xcalloc(1, sizeof(*c));
    c->token = xstrdup(token);
    c->at = uv_now(f->loop);
    c->next = f->cached;
    f->cached = c;
    f->st.cached++;
}

static void lookup_unlink(struct fleet_http01 *f, struct lookup *l)
{
    for (struct lookup **pp = &f->lookups; *pp != NULL; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            f->nlookups--;
            break;
        }
    free(l->token);
    free(l);
}

static void looked_up(int status, const char *key_authz, void *arg)
{
    struct lookup *l = arg;
    struct fleet_http01 *f = l->f;

    if (status == 0 && chal_http01_put(f->chal, l->token, key_authz) == 0) {
        f->st.found++;
        cached_add(f, l->token);
    } else if (status < 0 && status != -ENOENT) {
        log_debug(LOG_CHAL, "http01: fleet lookup of %s: %s", l->token, err_str(status));
    }
    lookup_unlink(f, l);
}

/* One lookup per token at a time. */
static void lookup(struct fleet_http01 *f, const char *token)
{
    for (struct lookup *l = f->lookups; l != NULL; l = l->next)
        if (strcmp(l->token, token) == 0)
            return;
    if (f->nlookups >= LOOKUPS_MAX)
        return;
    struct lookup *l = xcalloc(1, sizeof(*l));
    l->f = f;
    l->token = xstrdup(token);
    if (store_pg_http01_lookup_start(f->store, token, looked_up, l, &l->op) < 0) {
        free(l->token);
        free(l);
        return;
    }
    l->next = f->lookups;
    f->lookups = l;
    f->nlookups++;
    f->st.lookups++;
}

/* The listener was asked for a token it does not hold. */
static void on_miss(void *arg, const char *token)
{
    lookup(arg, token);
}

/* An instance put a token in the database. */
static void on_notify(const char *token, void *arg)
{
    struct fleet_http01 *f = arg;

    f->st.notified++;
    lookup(f, token);
}

static void on_sweep(uv_timer_t *t)
{
    struct fleet_http01 *f = t->data;
    uint64_t now = uv_now(f->loop);

    for (struct cached **pp = &f->cached; *pp != NULL;) {
        struct cached *c = *pp;
        if (now - c->at < CACHE_TTL_MS) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        chal_http01_del(f->chal, c->token);
        f->st.cached--;
        free(c->token);
        free(c);
    }
}

struct fleet_http01 *fleet_http01_start(uv_loop_t *loop, struct store *store,
                                        struct chal_http01 *chal)
{
    if (chal == NULL || !store_pg_is(store))
        return NULL;
    struct fleet_http01 *f = xcalloc(1, sizeof(*f));
    f->loop = loop;
    f->store = store;
    f->chal = chal;
    uv_timer_init(loop, &f->sweep);
    f->sweep.data = f;
    uv_timer_start(&f->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    chal_http01_set_miss_cb(chal, on_miss, f);
    store_pg_http01_watch(store, on_notify, f);
    return f;
}

static void put_done(int status, void *arg)
{
    (void)arg;
    if (status < 0)
        log_warn(LOG_CHAL,
                 "http01: token not shared with the fleet (%s): only this instance answers it",
                 err_str(status));
}

void fleet_http01_present(struct fleet_http01 *f, const char *token, const char *key_authz,
                          const char *cert)
{
    if (f != NULL)
        store_pg_http01_put_start(f->store, token, key_authz, cert, put_done, NULL);
}

static void remove_done(int status, void *arg)
{
    (void)arg;
    if (status < 0)
        log_debug(LOG_CHAL, "http01: fleet token not removed: %s", err_str(status));
}

void fleet_http01_cleanup(struct fleet_http01 *f, const char *token)
{
    if (f != NULL)
        store_pg_http01_remove_start(f->store, token, remove_done, NULL);
}

void fleet_http01_get_stats(const struct fleet_http01 *f, struct fleet_http01_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (f != NULL)
        *out = f->st;
}

static void sweep_closed(uv_handle_t *h)
{
    free(h->data);
}

void fleet_http01_stop(struct fleet_http01 *f)
{
    if (f == NULL)
        return;
    chal_http01_set_miss_cb(f->chal, NULL, NULL);
    store_pg_http01_watch(f->store, NULL, NULL);
    while (f->lookups != NULL) {
        struct lookup *l = f->lookups;
        store_pg_op_cancel(l->op);
        lookup_unlink(f, l);
    }
    while (f->cached != NULL) {
        struct cached *c = f->cached;
        f->cached = c->next;
        free(c->token);
        free(c);
    }
    uv_close((uv_handle_t *)&f->sweep, sweep_closed);
}
