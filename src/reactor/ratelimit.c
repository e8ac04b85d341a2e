/* Rate limiting and backoff policy: how many new orders a CA account may
 * send, when a failing identifier may be tried again, and how long to back
 * off after a failure. Pure bookkeeping over times the caller passes in;
 * the manager decides what to do with the answers. */
#include "reactor/ratelimit.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "util/xalloc.h"

void ratelimit_window_init(struct ratelimit_window *w, uint32_t limit, int64_t window_s)
{
    memset(w, 0, sizeof(*w));
    w->limit = limit;
    w->window_s = window_s;
    if (limit > 0)
        w->t = xcalloc(limit, sizeof(*w->t));
}

void ratelimit_window_fini(struct ratelimit_window *w)
{
    free(w->t);
    w->t = NULL;
    w->n = 0;
}

static int64_t oldest(const struct ratelimit_window *w)
{
    return w->t[w->head];
}

uint32_t ratelimit_window_used(const struct ratelimit_window *w, int64_t now)
{
    uint32_t used = 0;

    for (uint32_t i = 0; i < w->n; i++) {
        if (w->t[(w->head + i) % w->limit] > now - w->window_s)
            used++;
    }
    return used;
}

int64_t ratelimit_window_next(const struct ratelimit_window *w, int64_t now)
{
    int64_t at;

    if (w->limit == 0 || w->n < w->limit)
        return now;
    /* full: one more fits once the oldest of the last `limit` events leaves */
    at = oldest(w) + w->window_s;
    return at > now ? at : now;
}

bool ratelimit_window_take(struct ratelimit_window *w, int64_t now)
{
    bool ok = ratelimit_window_next(w, now) <= now;

    if (w->limit == 0)
        return true;
    if (w->n < w->limit) {
        w->t[(w->head + w->n) % w->limit] = now;
        w->n++;
    } else {
        w->t[w->head] = now; /* overwrite the oldest */
        w->head = (w->head + 1) % w->limit;
    }
    return ok;
}

void ratelimit_window_block_until(struct ratelimit_window *w, int64_t until)
{
    /* rebuild the ring in time order: the missing events first, all at
     * until - window, then the recorded ones, none earlier than that */
    int64_t t = until - w->window_s;
    int64_t *v;
    uint32_t pad;

    if (w->limit == 0)
        return;
    v = xcalloc(w->limit, sizeof(*v));
    pad = w->limit - w->n;
    for (uint32_t i = 0; i < w->limit; i++) {
        int64_t x = i < pad ? t : w->t[(w->head + i - pad) % w->limit];
        v[i] = x < t ? t : x;
    }
    free(w->t);
    w->t = v;
    w->head = 0;
    w->n = w->limit;
}

/* ---- failures per identifier: a chained hash table of small records */

struct fail_rec {
    struct fail_rec *next;
    uint32_t consecutive;
    uint32_t n, head; /* ring of the last max_per_window failure times */
    char *ident;      /* owned, lower case */
    int64_t t[];      /* max_per_window entries */
};

struct ratelimit_failures {
    struct fail_rec **tab; /* owned */
    size_t nbuckets, count;
    uint32_t max;
    int64_t window_s;
    uint32_t pause_hint;
};

struct ratelimit_failures *ratelimit_failures_new(uint32_t max_per_window, int64_t window_s,
                                                  uint32_t pause_hint)
{
    struct ratelimit_failures *f = xcalloc(1, sizeof(*f));

    f->nbuckets = 64;
    f->tab = xcalloc(f->nbuckets, sizeof(*f->tab));
    f->max = max_per_window;
    f->window_s = window_s;
    f->pause_hint = pause_hint;
    return f;
}

void ratelimit_failures_free(struct ratelimit_failures *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->nbuckets; i++) {
        struct fail_rec *r = f->tab[i];
        while (r != NULL) {
            struct fail_rec *next = r->next;
            free(r->ident);
            free(r);
            r = next;
        }
    }
    free(f->tab);
    free(f);
}

static int lc(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* FNV-1a over the lower-cased identifier */
static size_t hash(const char *s)
{
    uint64_t h = 14695981039346656037u;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)lc((unsigned char)*s);
        h *= 1099511628211u;
    }
    return (size_t)h;
}

static struct fail_rec **slot(const struct ratelimit_failures *f, const char *ident)
{
    struct fail_rec **p = &f->tab[hash(ident) & (f->nbuckets - 1)];

    while (*p != NULL && strcasecmp((*p)->ident, ident) != 0)
        p = &(*p)->next;
    return p;
}

static const struct fail_rec *find(const struct ratelimit_failures *f, const char *ident)
{
    return *slot(f, ident);
}

static void grow(struct ratelimit_failures *f)
{
    size_t nb = f->nbuckets * 2;
    struct fail_rec **tab = xcalloc(nb, sizeof(*tab));

    for (size_t i = 0; i < f->nbuckets; i++) {
        struct fail_rec *r = f->tab[i];
        while (r != NULL) {
            struct fail_rec *next = r->next;
            size_t b = hash(r->ident) & (nb - 1);
            r->next = tab[b];
            tab[b] = r;
            r = next;
        }
    }
    free(f->tab);
    f->tab = tab;
    f->nbuckets = nb;
}

void ratelimit_failures_record(struct ratelimit_failures *f, const char *ident, int64_t now)
{
    struct fail_rec **p = slot(f, ident);
    struct fail_rec *r = *p;

    if (r == NULL) {
        r = xcalloc(1, sizeof(*r) + (size_t)f->max * sizeof(r->t[0]));
        r->ident = xstrdup(ident);
        for (char *c = r->ident; *c != '\0'; c++)
            *c = (char)lc((unsigned char)*c);
        *p = r;
        f->count++;
        if (f->count > f->nbuckets)
            grow(f);
    }
    r->consecutive++;
    if (f->max == 0)
        return;
    if (r->n < f->max) {
        r->t[(r->head + r->n) % f->max] = now;
        r->n++;
    } else {
        r->t[r->head] = now;
        r->head = (r->head + 1) % f->max;
    }
}

void ratelimit_failures_success(struct ratelimit_failures *f, const char *ident)
{
    struct fail_rec *r = *slot(f, ident);

    if (r != NULL)
        r->consecutive = 0;
}

int64_t ratelimit_failures_next(const struct ratelimit_failures *f, const char *ident, int64_t now)
{
    const struct fail_rec *r = find(f, ident);
    int64_t at;

    if (r == NULL || f->max == 0 || r->n < f->max)
        return now;
    at = r->t[r->head] + f->window_s;
    return at > now ? at : now;
}

uint32_t ratelimit_failures_consecutive(const struct ratelimit_failures *f, const char *ident)
{
    const struct fail_rec *r = find(f, ident);

    return r != NULL ? r->consecutive : 0;
}

bool ratelimit_failures_paused(const struct ratelimit_failures *f, const char *ident)
{
    return f->pause_hint > 0 && ratelimit_failures_consecutive(f, ident) >= f->pause_hint;
}

void ratelimit_failures_forget(struct ratelimit_failures *f, const char *ident)
{
    struct fail_rec **p = slot(f, ident);
    struct fail_rec *r = *p;

    if (r == NULL)
        return;
    *p = r->next;
    free(r->ident);
    free(r);
    f->count--;
}

size_t ratelimit_failures_count(const struct ratelimit_failures *f)
{
    return f->count;
}

int64_t ratelimit_earliest(const struct ratelimit_window *w, const struct ratelimit_failures *f,
                           const char *const *names, size_t n, int64_t now)
{
    int64_t at = now;

    if (w != NULL) {
        int64_t t = ratelimit_window_next(w, now);
        at = t > at ? t : at;
    }
    for (size_t i = 0; f != NULL && i < n; i++) {
        int64_t t = ratelimit_failures_next(f, names[i], now);
        at = t > at ? t : at;
    }
    return at;
}

/* ---- backoff */

uint64_t ratelimit_rand_os(void *arg)
{
    uint64_t v = 0;

    (void)arg;
    /* 8 bytes from the urandom pool never block or come back short once
     * the pool is initialised, which it is long before a daemon starts */
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        abort();
    return v;
}

int64_t backoff_delay(unsigned attempt, int64_t base_s, int64_t cap_s, ratelimit_rand_cb rnd,
                      void *rnd_arg)
{
    int64_t d = base_s;
    int64_t half;

    if (base_s <= 0)
        return 0;
    if (cap_s < base_s)
        cap_s = base_s;
    for (unsigned i = 0; i < attempt && d < cap_s; i++)
        d = d > cap_s / 2 ? cap_s : d * 2;
    if (d > cap_s)
        d = cap_s;
    if (rnd == NULL)
        rnd = ratelimit_rand_os;
    half = d / 2;
    return half + (int64_t)(rnd(rnd_arg) % (uint64_t)(d - half + 1));
}
