/* The in-memory store of store_fake.h: lists of records, no disk. */
#include "store_fake.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/xalloc.h"

enum rec_kind {
    R_ACCOUNT,
    R_ACCOUNT_NEXT,
    R_RETIRED,
    R_ORDER,
    R_MARK,
    R_ALERT,         /* an "expiring" alert */
    R_ALERT_PERSIST, /* a "persist_expiring" alert */
    R_OUTBOX,
    R_DEAD,
    R_NOTE,
    R_LEASE,
    R_HISTORY,
    R_DEPLOYED,
    R_HUB_CURSOR, /* key: the hub's name */
    R_BOOTSTRAP   /* key: "api"; a: the certificate, b: its key */
};

struct rec {
    struct rec *next;
    enum rec_kind kind;
    char *key;   /* CA, certificate name, delivery id, or NAME/GENERATION/NOTE */
    char *a, *b; /* account: key PEM, JSON; others: the record text in a */
    int64_t t;   /* alert time; lease: expiry (ms) in a shared fake */
    uint64_t u;  /* lease fence */
};

struct gen {
    struct gen *next; /* oldest first */
    char *name, *gen;
    char *cert, *chain, *full, *key, *meta;
};

#define MAX_OPS 32
#define MAX_HELD 8

/* An answer held back by store_fake_hold. */
struct held {
    int status;
    struct store_result r; /* its strings owned */
    store_cb cb;
    void *arg;
};

struct fake {
    struct store base; /* first */
    struct rec *recs;
    struct gen *gens;
    unsigned n_gens_made;
    uint64_t fence;
    const int64_t *now_ms; /* shared: the clock leases expire on */
    const char *cur_op;    /* the operation being answered (enter sets it) */
    const char *hold_op;   /* store_fake_hold: whose answers are held, or NULL */
    unsigned hold_want, n_held;
    struct held held[MAX_HELD];
    unsigned owed; /* answers started and not yet delivered */
    bool down;     /* store_fake_set_down: what health says */
    struct {
        const char *op; /* static: a member name */
        unsigned calls;
        int fail; /* one-shot status, 0: none */
    } ops[MAX_OPS];
};

static struct fake *fake_of(const struct store *s)
{
    return (struct fake *)s;
}

/* Counts a call of op and returns its injected failure (0: none). */
static int enter(struct store *s, const char *op)
{
    struct fake *f = fake_of(s);

    f->cur_op = op;
    for (size_t i = 0; i < MAX_OPS; i++) {
        if (f->ops[i].op == NULL)
            f->ops[i].op = op;
        if (strcmp(f->ops[i].op, op) != 0)
            continue;
        f->ops[i].calls++;
        int rc = f->ops[i].fail;
        f->ops[i].fail = 0;
        return rc;
    }
    return 0;
}

/* ---- records ------------------------------------------------------------- */

static struct rec **rec_find(struct fake *f, enum rec_kind kind, const char *key)
{
    struct rec **pp = &f->recs;

    while (*pp != NULL && !((*pp)->kind == kind && strcmp((*pp)->key, key) == 0))
        pp = &(*pp)->next;
    return pp;
}

static struct rec *rec_get(struct fake *f, enum rec_kind kind, const char *key)
{
    return *rec_find(f, kind, key);
}

static struct rec *rec_put(struct fake *f, enum rec_kind kind, const char *key)
{
    struct rec *r = rec_get(f, kind, key);

    if (r == NULL) {
        r = xcalloc(1, sizeof(*r));
        r->kind = kind;
        r->key = xstrdup(key);
        r->next = f->recs;
        f->recs = r;
    }
    free(r->a);
    free(r->b);
    r->a = r->b = NULL;
    return r;
}

static void rec_free(struct rec *r)
{
    free(r->key);
    free(r->a);
    free(r->b);
    free(r);
}

static void rec_del(struct fake *f, enum rec_kind kind, const char *key)
{
    struct rec **pp = rec_find(f, kind, key);
    struct rec *r = *pp;

    if (r == NULL)
        return;
    *pp = r->next;
    rec_free(r);
}

static void gen_free(struct gen *g)
{
    free(g->name);
    free(g->gen);
    free(g->cert);
    free(g->chain);
    free(g->full);
    free(g->key);
    free(g->meta);
    free(g);
}

static struct gen *gen_current(struct fake *f, const char *name)
{
    struct gen *cur = NULL;

    for (struct gen *g = f->gens; g != NULL; g = g->next)
        if (strcmp(g->name, name) == 0)
            cur = g;
    return cur;
}

static void prune(struct fake *f, const char *name, int keep)
{
    struct gen *cur = gen_current(f, name);
    size_t n = 0;

    if (keep < 1)
        keep = 1;
    for (struct gen *g = f->gens; g != NULL; g = g->next)
        n += strcmp(g->name, name) == 0;
    for (struct gen **pp = &f->gens; *pp != NULL && n > (size_t)keep;) {
        struct gen *g = *pp;
        if (strcmp(g->name, name) != 0 || g == cur) {
            pp = &g->next;
            continue;
        }
        *pp = g->next;
        gen_free(g);
        n--;
    }
}

/* A read of op: the record (kind, key), its injected failure or -ENOENT. */
static int read_rec(struct store *s, const char *op, enum rec_kind kind, const char *key,
                    struct rec **out)
{
    int rc = enter(s, op);

    *out = rec_get(fake_of(s), kind, key);
    if (rc == 0 && *out == NULL)
        rc = -ENOENT;
    return rc;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

static void held_free(struct held *h)
{
    free((char *)h->r.error);
    free((char *)h->r.generation);
    free((char *)h->r.lineage);
}

/* The held answers, in call order, from one loop callback. */
static void held_release(int status, const struct store_result *r, void *arg)
{
    struct fake *f = arg;
    struct held v[MAX_HELD];
    unsigned n = f->n_held;

    (void)status;
    (void)r;
    memcpy(v, f->held, sizeof(v));
    f->n_held = 0;
    for (unsigned i = 0; i < n; i++) {
        v[i].cb(v[i].status, &v[i].r, v[i].arg);
        held_free(&v[i]);
    }
}

/* Keeps an answer of the held operation; the last one held sends them all. */
static int hold(struct fake *f, int status, const struct store_result *r, store_cb cb, void *arg)
{
    struct held *h = &f->held[f->n_held++];

    *h = (struct held){status, *r, cb, arg};
    h->r.error = dup_or_null(r->error);
    h->r.generation = dup_or_null(r->generation);
    h->r.lineage = dup_or_null(r->lineage);
    if (f->n_held < f->hold_want)
        return 0;
    f->hold_op = NULL;
    return store_defer(&f->base, 0, NULL, held_release, f);
}

/* An answer on its way: counted as owed until the caller has it. */
struct relay {
    struct fake *f;
    store_cb cb;
    void *arg;
};

static void relay_cb(int status, const struct store_result *r, void *arg)
{
    struct relay *x = arg;
    store_cb cb = x->cb;
    void *cb_arg = x->arg;

    x->f->owed--;
    free(x);
    cb(status, r, cb_arg);
}

/* Answers a write: status, and the rest of r, on the loop later. */
static int answer(struct store *s, int status, const struct store_result *r, store_cb cb, void *arg)
{
    struct fake *f = fake_of(s);
    struct store_result none = {0};
    char *error = NULL;
    struct relay *x = xmalloc(sizeof(*x));

    *x = (struct relay){f, cb, arg};
    if (r == NULL)
        r = &none;
    struct store_result copy = *r;
    if (status < 0 && copy.error == NULL)
        copy.error = error = xasprintf("fake: injected failure: %s", err_str(status));
    int rc = f->hold_op != NULL && strcmp(f->hold_op, f->cur_op) == 0
                 ? hold(f, status, &copy, relay_cb, x)
                 : store_defer(s, status, &copy, relay_cb, x);
    if (rc < 0)
        free(x);
    else
        f->owed++;
    free(error);
    return rc;
}

/* ---- the operations ------------------------------------------------------ */

static void f_close(struct store *s)
{
    struct fake *f = fake_of(s);

    while (f->recs != NULL) {
        struct rec *r = f->recs;
        f->recs = r->next;
        rec_free(r);
    }
    while (f->gens != NULL) {
        struct gen *g = f->gens;
        f->gens = g->next;
        gen_free(g);
    }
    for (unsigned i = 0; i < f->n_held; i++)
        held_free(&f->held[i]);
    free(f);
}

static char *f_where(struct store *s, enum store_what what, const char *name)
{
    static const char *const words[] = {"store",    "account", "cert",   "order",
                                        "redeploy", "alerts",  "outbox", "outbox-dead"};
    (void)s;
    return xasprintf("fake:%s/%s", words[what], name != NULL ? name : "");
}

static int f_sweep(struct store *s)
{
    return enter(s, "sweep");
}

static int f_account_read(struct store *s, const char *ca, char **key_pem, char **json)
{
    struct rec *r;
    int rc = read_rec(s, "account_read", R_ACCOUNT, ca, &r);

    if (rc < 0)
        return rc;
    *key_pem = xstrdup(r->a);
    *json = xstrdup(r->b);
    return 0;
}

static int f_account_put(struct store *s, const char *ca, const char *key_pem, const char *json,
                         store_cb cb, void *arg)
{
    int rc = enter(s, "account_put");

    if (rc == 0) {
        struct rec *r = rec_put(fake_of(s), R_ACCOUNT, ca);
        r->a = xstrdup(key_pem);
        r->b = xstrdup(json);
    }
    return answer(s, rc, NULL, cb, arg);
}

static int f_account_next_read(struct store *s, const char *ca, char **key_pem)
{
    struct rec *r;
    int rc = read_rec(s, "account_next_read", R_ACCOUNT_NEXT, ca, &r);

    if (rc < 0)
        return rc;
    *key_pem = xstrdup(r->a);
    return 0;
}

static int f_account_next_put(struct store *s, const char *ca, const char *key_pem, store_cb cb,
                              void *arg)
{
    int rc = enter(s, "account_next_put");

    if (rc == 0)
        rec_put(fake_of(s), R_ACCOUNT_NEXT, ca)->a = xstrdup(key_pem);
    return answer(s, rc, NULL, cb, arg);
}

static int f_account_rollover(struct store *s, const char *ca, const char *key_pem,
                              const char *json, store_cb cb, void *arg)
{
    int rc = enter(s, "account_rollover");

    if (rc == 0) {
        struct rec *r = rec_put(fake_of(s), R_ACCOUNT, ca);
        r->a = xstrdup(key_pem);
        r->b = xstrdup(json);
        rec_del(fake_of(s), R_ACCOUNT_NEXT, ca);
    }
    return answer(s, rc, NULL, cb, arg);
}

static int f_account_retire(struct store *s, const char *ca, int64_t t, store_cb cb, void *arg)
{
    struct rec *r = rec_get(fake_of(s), R_ACCOUNT, ca);
    int rc = enter(s, "account_retire");

    if (rc == 0 && r == NULL)
        rc = -ENOENT;
    if (rc == 0) {
        r->kind = R_RETIRED; /* kept, no longer the account */
        r->t = t;
    }
    return answer(s, rc, NULL, cb, arg);
}

static int f_cert_read_current(struct store *s, const char *name, bool with_key,
                               struct store_cert *out)
{
    int rc = enter(s, "cert_read_current");
    struct gen *g = gen_current(fake_of(s), name);

    if (rc < 0)
        return rc;
    if (g == NULL)
        return -ENOENT;
    memset(out, 0, sizeof(*out));
    out->generation = xstrdup(g->gen);
    out->cert_pem = xstrdup(g->cert);
    out->chain_pem = xstrdup(g->chain);
    out->fullchain_pem = xstrdup(g->full);
    out->key_pem = with_key ? xstrdup(g->key) : NULL;
    out->meta_json = xstrdup(g->meta);
    return 0;
}

static int f_cert_list(struct store *s, const char *name, char ***gens, size_t *n)
{
    int rc = enter(s, "cert_list");
    char **v = NULL;
    size_t k = 0, cap = 0;

    if (rc < 0)
        return rc;
    for (struct gen *g = fake_of(s)->gens; g != NULL; g = g->next) {
        if (strcmp(g->name, name) != 0)
            continue;
        v = xreallocarray_grow(v, &cap, k + 1, sizeof(*v));
        v[k++] = xstrdup(g->gen);
    }
    *gens = v;
    *n = k;
    return 0;
}

static int f_cert_put(struct store *s, const struct store_cert_put *p, store_cb cb, void *arg)
{
    struct fake *f = fake_of(s);
    int rc = enter(s, "cert_put");
    struct store_result r = {0};
    char gen[32];

    if (rc == 0 && (!store_name_ok(p->name) || p->cert_pem == NULL || p->key_pem == NULL ||
                    p->fullchain_pem == NULL))
        rc = -EINVAL;
    if (rc == 0) {
        struct gen *g = xcalloc(1, sizeof(*g));
        snprintf(gen, sizeof(gen), "20260101T000000Z-%04x", ++f->n_gens_made & 0xffff);
        g->name = xstrdup(p->name);
        g->gen = xstrdup(gen);
        g->cert = xstrdup(p->cert_pem);
        g->chain = xstrdup(p->chain_pem != NULL ? p->chain_pem : "");
        g->full = xstrdup(p->fullchain_pem);
        g->key = xstrdup(p->key_pem);
        g->meta = xstrdup(p->meta_json != NULL ? p->meta_json : "{}");
        struct gen **pp = &f->gens;
        while (*pp != NULL)
            pp = &(*pp)->next;
        *pp = g;
        if (p->mark_redeploy) {
            r.mark_status = enter(s, "redeploy_mark");
            if (r.mark_status == 0)
                (void)rec_put(f, R_MARK, p->name);
        }
        prune(f, p->name, p->keep);
        r.generation = gen;
    }
    return answer(s, rc, &r, cb, arg);
}

static int f_cert_prune(struct store *s, const char *name, int keep, store_cb cb, void *arg)
{
    int rc = enter(s, "cert_prune");

    if (rc == 0)
        prune(fake_of(s), name, keep);
    return answer(s, rc, NULL, cb, arg);
}

static char *note_key(const char *name, const char *generation, const char *note)
{
    return xasprintf("%s/%s/%s", name, generation, note);
}

static int f_note_read(struct store *s, const char *name, const char *generation, const char *note,
                       char **json)
{
    struct rec *r;
    char *key = note_key(name, generation, note);
    int rc = read_rec(s, "note_read", R_NOTE, key, &r);

    free(key);
    if (rc < 0)
        return rc;
    *json = xstrdup(r->a);
    return 0;
}

static int f_note_put(struct store *s, const char *name, const char *generation, const char *note,
                      const char *json, store_cb cb, void *arg)
{
    struct fake *f = fake_of(s);
    int rc = enter(s, "note_put");
    bool exists = false;

    for (struct gen *g = f->gens; g != NULL; g = g->next)
        exists = exists || (strcmp(g->name, name) == 0 && strcmp(g->gen, generation) == 0);
    if (rc == 0 && !exists)
        rc = -ENOENT;
    if (rc == 0) {
        char *key = note_key(name, generation, note);
        rec_put(f, R_NOTE, key)->a = xstrdup(json);
        free(key);
    }
    return answer(s, rc, NULL, cb, arg);
}

static int f_order_read(struct store *s, const char *name, char **json)
{
    struct rec *r;
    int rc = read_rec(s, "order_read", R_ORDER, name, &r);

    if (rc < 0)
        return rc;
    *json = xstrdup(r->a);
    return 0;
}

static int f_order_put(struct store *s, const char *name, const char *json, store_cb cb, void *arg)
{
    int rc = enter(s, "order_put");

    if (rc == 0 && !store_name_ok(name))
        rc = -EINVAL;
    if (rc == 0)
        rec_put(fake_of(s), R_ORDER, name)->a = xstrdup(json);
    return answer(s, rc, NULL, cb, arg);
}

static int f_order_settle(struct store *s, const char *name, store_cb cb, void *arg)
{
    int rc = enter(s, "order_settle");

    if (rc == 0) {
        rec_del(fake_of(s), R_ORDER, name);
        rec_del(fake_of(s), R_MARK, name);
    }
    return answer(s, rc, NULL, cb, arg);
}

static bool f_redeploy_marked(struct store *s, const char *name)
{
    (void)enter(s, "redeploy_marked");
    return rec_get(fake_of(s), R_MARK, name) != NULL;
}

static int f_redeploy_mark(struct store *s, const char *name, store_cb cb, void *arg)
{
    int rc = enter(s, "redeploy_mark");

    if (rc == 0)
        (void)rec_put(fake_of(s), R_MARK, name);
    return answer(s, rc, NULL, cb, arg);
}

static int f_history_read(struct store *s, const char *name, char **text, size_t *len)
{
    struct rec *r;
    int rc = read_rec(s, "history_read", R_HISTORY, name, &r);

    if (rc < 0)
        return rc;
    *text = xstrdup(r->a);
    if (len != NULL)
        *len = strlen(r->a);
    return 0;
}

static int f_history_append(struct store *s, const struct store_history_line *v, size_t n,
                            store_cb cb, void *arg)
{
    struct fake *f = fake_of(s);
    int rc = enter(s, "history_append");

    for (size_t i = 0; i < n && rc == 0; i++) {
        struct rec *r = rec_get(f, R_HISTORY, v[i].name);
        char *text = xasprintf("%s%s", r != NULL ? r->a : "", v[i].line);
        rec_put(f, R_HISTORY, v[i].name)->a = text;
    }
    return answer(s, rc, NULL, cb, arg);
}

static enum rec_kind alert_rec(enum store_alert kind)
{
    return kind == STORE_ALERT_PERSIST_EXPIRING ? R_ALERT_PERSIST : R_ALERT;
}

static int f_alert_read(struct store *s, const char *name, enum store_alert kind, int64_t *t)
{
    struct rec *r;
    int rc = read_rec(s, "alert_read", alert_rec(kind), name, &r);

    if (rc < 0)
        return rc;
    *t = r->t;
    return 0;
}

static int f_alert_put(struct store *s, const char *name, enum store_alert kind, int64_t t,
                       store_cb cb, void *arg)
{
    int rc = enter(s, "alert_put");

    if (rc == 0 && t <= 0)
        rec_del(fake_of(s), alert_rec(kind), name);
    else if (rc == 0)
        rec_put(fake_of(s), alert_rec(kind), name)->t = t;
    return answer(s, rc, NULL, cb, arg);
}

static int f_alerts_sweep(struct store *s, bool (*known)(const char *name, void *arg), void *arg)
{
    struct fake *f = fake_of(s);
    int removed = enter(s, "alerts_sweep");

    if (removed < 0)
        return removed;
    for (struct rec **pp = &f->recs; *pp != NULL;) {
        struct rec *r = *pp;
        if ((r->kind == R_ALERT || r->kind == R_ALERT_PERSIST) && !known(r->key, arg)) {
            *pp = r->next;
            rec_free(r);
            removed++;
        } else {
            pp = &r->next;
        }
    }
    return removed;
}

static int f_outbox_load(struct store *s, store_outbox_each_fn each, void *arg)
{
    struct fake *f = fake_of(s);
    int count = enter(s, "outbox_load");

    if (count < 0)
        return count;
    for (struct rec **pp = &f->recs; *pp != NULL;) {
        struct rec *r = *pp;
        const char *why = r->kind == R_OUTBOX ? each(r->key, r->a, arg) : NULL;
        if (r->kind == R_OUTBOX && why != NULL) {
            r->kind = R_DEAD;
        } else if (r->kind == R_OUTBOX) {
            count++;
        }
        pp = &r->next;
    }
    return count;
}

static int f_outbox_put(struct store *s, const char *id, const char *text, store_cb cb, void *arg)
{
    int rc = enter(s, "outbox_put");

    if (rc == 0)
        rec_put(fake_of(s), R_OUTBOX, id)->a = xstrdup(text);
    return answer(s, rc, NULL, cb, arg);
}

static int f_outbox_remove(struct store *s, const char *id, store_cb cb, void *arg)
{
    int rc = enter(s, "outbox_remove");

    if (rc == 0)
        rec_del(fake_of(s), R_OUTBOX, id);
    return answer(s, rc, NULL, cb, arg);
}

static int f_outbox_bury(struct store *s, const char *id, const char *text, store_cb cb, void *arg)
{
    int rc = enter(s, "outbox_bury");

    if (rc == 0) {
        rec_put(fake_of(s), R_DEAD, id)->a = xstrdup(text);
        rec_del(fake_of(s), R_OUTBOX, id);
    }
    return answer(s, rc, NULL, cb, arg);
}

/* A lease record: a = "other" when another instance holds it. */
static bool lease_live(const struct fake *f, const struct rec *l)
{
    return l != NULL && (f->now_ms == NULL || l->t > *f->now_ms);
}

static int64_t lease_until(const struct fake *f)
{
    return f->now_ms != NULL ? *f->now_ms + f->base.lease_ms : 0;
}

static int f_lease_take(struct store *s, const char *name, store_cb cb, void *arg)
{
    struct fake *f = fake_of(s);
    int rc = enter(s, "lease_take");
    struct store_result r = {0};

    if (rc == 0 && lease_live(f, rec_get(f, R_LEASE, name)))
        rc = ERR_LOCKED;
    if (rc == 0) {
        struct rec *l = rec_put(f, R_LEASE, name);
        r.fence = l->u = ++f->fence;
        l->t = lease_until(f);
    }
    return answer(s, rc, &r, cb, arg);
}

static int f_lease_renew(struct store *s, const char *name, uint64_t fence, store_cb cb, void *arg)
{
    struct fake *f = fake_of(s);
    int rc = enter(s, "lease_renew");
    struct rec *l = rec_get(f, R_LEASE, name);
    struct store_result r = {.fence = fence};

    if (rc == 0 && (!lease_live(f, l) || l->a != NULL || l->u != fence))
        rc = ERR_LOCKED;
    if (rc == 0)
        l->t = lease_until(f);
    return answer(s, rc, &r, cb, arg);
}

static void f_lease_release(struct store *s, const char *name, uint64_t fence)
{
    struct rec *l = rec_get(fake_of(s), R_LEASE, name);

    (void)enter(s, "lease_release");
    if (l != NULL && l->a == NULL && l->u == fence)
        rec_del(fake_of(s), R_LEASE, name);
}

static int f_deployed_read(struct store *s, const char *name, char **generation, bool *ok)
{
    struct rec *r;
    int rc;

    if (!s->shared)
        return ERR_UNSUPPORTED;
    rc = read_rec(s, "deployed_read", R_DEPLOYED, name, &r);
    if (rc == 0) {
        *generation = xstrdup(r->a);
        *ok = r->u != 0;
    }
    return rc;
}

static int f_deployed_put(struct store *s, const char *name, const char *generation, bool ok,
                          const char *error, store_cb cb, void *arg)
{
    int rc = enter(s, "deployed_put");

    (void)error;
    if (!s->shared)
        return ERR_UNSUPPORTED;
    if (rc == 0) {
        struct rec *r = rec_put(fake_of(s), R_DEPLOYED, name);
        r->a = xstrdup(generation);
        r->u = ok;
    }
    return answer(s, rc, NULL, cb, arg);
}

void store_fake_share(struct store *s, int64_t lease_ms, const int64_t *now_ms)
{
    s->shared = true;
    s->lease_ms = lease_ms;
    fake_of(s)->now_ms = now_ms;
}

void store_fake_lease_other(struct store *s, const char *name, int64_t until_ms)
{
    struct fake *f = fake_of(s);
    struct rec *l = rec_put(f, R_LEASE, name);

    l->a = xstrdup("other");
    l->u = ++f->fence;
    l->t = until_ms;
}

const char *store_fake_lease_holder(const struct store *s, const char *name)
{
    const struct fake *f = fake_of(s);
    struct rec *l = rec_get((struct fake *)f, R_LEASE, name);

    if (!lease_live(f, l))
        return NULL;
    return l->a != NULL ? "other" : "us";
}

static int f_hub_cursor_read(struct store *s, const char *hub, char **id)
{
    struct rec *r;
    int rc = read_rec(s, "hub_cursor_read", R_HUB_CURSOR, hub, &r);

    if (rc == 0)
        *id = xstrdup(r->a);
    return rc;
}

static int f_hub_cursor_put(struct store *s, const char *hub, const char *id, store_cb cb,
                            void *arg)
{
    int rc = enter(s, "hub_cursor_put");

    if (rc == 0)
        rec_put(fake_of(s), R_HUB_CURSOR, hub)->a = xstrdup(id);
    return answer(s, rc, NULL, cb, arg);
}

static int f_api_bootstrap_read(struct store *s, char **cert_pem, char **key_pem)
{
    struct rec *r;
    int rc = read_rec(s, "api_bootstrap_read", R_BOOTSTRAP, "api", &r);

    if (rc == 0) {
        *cert_pem = xstrdup(r->a);
        *key_pem = xstrdup(r->b);
    }
    return rc;
}

static int f_api_bootstrap_put(struct store *s, const char *cert_pem, const char *key_pem)
{
    int rc = enter(s, "api_bootstrap_put");

    if (rc == 0) {
        struct rec *r = rec_put(fake_of(s), R_BOOTSTRAP, "api");
        r->a = xstrdup(cert_pem);
        r->b = xstrdup(key_pem);
    }
    return rc;
}

static void f_health(struct store *s, struct store_health *out)
{
    const struct fake *f = fake_of(s);

    out->down = f->down;
    out->down_since = f->down && f->now_ms != NULL ? *f->now_ms / 1000 : 0;
}

void store_fake_set_down(struct store *s, bool down)
{
    struct fake *f = fake_of(s);
    bool back = f->down && !down;

    f->down = down;
    if (back)
        store_back_notify(s);
}

static const struct store_ops fake_ops = {
    .type = "fake",
    .close = f_close,
    .where = f_where,
    .sweep = f_sweep,
    .account_read = f_account_read,
    .account_put = f_account_put,
    .account_next_read = f_account_next_read,
    .account_next_put = f_account_next_put,
    .account_rollover = f_account_rollover,
    .account_retire = f_account_retire,
    .cert_read_current = f_cert_read_current,
    .cert_list = f_cert_list,
    .cert_put = f_cert_put,
    .cert_prune = f_cert_prune,
    .note_read = f_note_read,
    .note_put = f_note_put,
    .order_read = f_order_read,
    .order_put = f_order_put,
    .order_settle = f_order_settle,
    .redeploy_marked = f_redeploy_marked,
    .redeploy_mark = f_redeploy_mark,
    .history_read = f_history_read,
    .history_append = f_history_append,
    .alert_read = f_alert_read,
    .alert_put = f_alert_put,
    .alerts_sweep = f_alerts_sweep,
    .hub_cursor_read = f_hub_cursor_read,
    .hub_cursor_put = f_hub_cursor_put,
    .outbox_load = f_outbox_load,
    .outbox_put = f_outbox_put,
    .outbox_remove = f_outbox_remove,
    .outbox_bury = f_outbox_bury,
    .lease_take = f_lease_take,
    .lease_renew = f_lease_renew,
    .lease_release = f_lease_release,
    .deployed_read = f_deployed_read,
    .deployed_put = f_deployed_put,
    .health = f_health,
    .api_bootstrap_read = f_api_bootstrap_read,
    .api_bootstrap_put = f_api_bootstrap_put,
};

struct store *store_fake_new(uv_loop_t *loop)
{
    struct fake *f = xcalloc(1, sizeof(*f));

    f->base.ops = &fake_ops;
    f->base.loop = loop;
    return &f->base;
}

void store_fake_fail_next(struct store *s, const char *op, int status)
{
    struct fake *f = fake_of(s);

    for (size_t i = 0; i < MAX_OPS; i++) {
        if (f->ops[i].op == NULL)
            f->ops[i].op = op;
        if (strcmp(f->ops[i].op, op) == 0) {
            f->ops[i].fail = status;
            return;
        }
    }
}

unsigned store_fake_calls(const struct store *s, const char *op)
{
    const struct fake *f = fake_of(s);

    for (size_t i = 0; i < MAX_OPS && f->ops[i].op != NULL; i++)
        if (strcmp(f->ops[i].op, op) == 0)
            return f->ops[i].calls;
    return 0;
}

unsigned store_fake_owed(const struct store *s)
{
    return fake_of(s)->owed;
}

void store_fake_hold(struct store *s, const char *op, unsigned n)
{
    struct fake *f = fake_of(s);

    assert(n > 0 && n <= MAX_HELD && f->n_held == 0);
    f->hold_op = op;
    f->hold_want = n;
}
