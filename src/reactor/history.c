/* The status history: a hash table of certificate names, each with a ring
 * of its last events. It only stores and lists; deciding what is worth an
 * entry is the manager's job. */
#include "reactor/history.h"

#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

#define DETAIL_MAX 512
#define LOG_LINES 40 /* a certificate's log lines kept since its last run began */

struct event {
    int64_t t;
    char *event;  /* owned */
    char *detail; /* owned, or NULL */
};

/* A ring that grows (2, 4, 8 ... up to its maximum) as it fills: with
 * 10,000 certificates of one or two events each, fixed rings of 20 events
 * and 40 log lines were 1.4 KiB per certificate (issue 16: idle RSS). */
struct ring {
    struct event *v; /* owned: cap slots, or NULL */
    size_t head, n, cap;
};

struct entry {
    struct entry *next;
    char *name;      /* owned */
    struct ring log; /* event is the line, detail unused; at most LOG_LINES */
    struct ring ev;  /* at most per_cert */
};

struct history {
    struct entry **tab; /* owned */
    size_t nbuckets, count, per_cert;
};

static size_t hash(const char *s)
{
    uint64_t h = 14695981039346656037u;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211u;
    }
    return (size_t)h;
}

struct history *history_new(size_t per_cert)
{
    struct history *h = xcalloc(1, sizeof(*h));

    h->per_cert = per_cert != 0 ? per_cert : 20;
    h->nbuckets = 64;
    h->tab = xcalloc(h->nbuckets, sizeof(*h->tab));
    return h;
}

static struct event *ring_at(const struct ring *r, size_t i)
{
    return &r->v[(r->head + i) % r->cap];
}

/* The slot for a new newest element: the oldest one emptied when the ring
 * holds max, else a fresh one (the ring grows first when it is full). */
static struct event *ring_push(struct ring *r, size_t max)
{
    struct event *v;

    if (r->n == max) {
        v = ring_at(r, 0);
        free(v->event);
        free(v->detail);
        v->event = v->detail = NULL;
        r->head = (r->head + 1) % r->cap;
        return v;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap == 0 ? 2 : r->cap * 2 > max ? max : r->cap * 2;
        struct event *nv = xcalloc(cap, sizeof(*nv));
        for (size_t i = 0; i < r->n; i++)
            nv[i] = *ring_at(r, i);
        free(r->v);
        r->v = nv;
        r->cap = cap;
        r->head = 0;
    }
    v = &r->v[(r->head + r->n) % r->cap];
    r->n++;
    return v;
}

static void ring_clear(struct ring *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(ring_at(r, i)->event);
        free(ring_at(r, i)->detail);
    }
    free(r->v);
    memset(r, 0, sizeof(*r));
}

static void entry_free(struct history *h, struct entry *e)
{
    (void)h;
    ring_clear(&e->log);
    ring_clear(&e->ev);
    free(e->name);
    free(e);
}

void history_free(struct history *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->nbuckets; i++) {
        struct entry *e = h->tab[i];
        while (e != NULL) {
            struct entry *next = e->next;
            entry_free(h, e);
            e = next;
        }
    }
    free(h->tab);
    free(h);
}

static struct entry **slot(const struct history *h, const char *name)
{
    struct entry **p = &h->tab[hash(name) & (h->nbuckets - 1)];

    while (*p != NULL && strcmp((*p)->name, name) != 0)
        p = &(*p)->next;
    return p;
}

static void grow(struct history *h)
{
    size_t nb = h->nbuckets * 2;
    struct entry **tab = xcalloc(nb, sizeof(*tab));

    for (size_t i = 0; i < h->nbuckets; i++) {
        struct entry *e = h->tab[i];
        while (e != NULL) {
            struct entry *next = e->next;
            size_t b = hash(e->name) & (nb - 1);
            e->next = tab[b];
            tab[b] = e;
            e = next;
        }
    }
    free(h->tab);
    h->tab = tab;
    h->nbuckets = nb;
}

static char *clean(const char *s)
{
    size_t len = strnlen(s, DETAIL_MAX);
    char *out = xstrndup(s, len);

    for (size_t i = 0; i < len; i++) {
        /* ASCII only: JSON needs valid UTF-8, and CA details are ASCII */
        if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] >= 0x7f)
            out[i] = '.';
    }
    return out;
}

void history_add(struct history *h, const char *name, int64_t t, const char *event,
                 const char *detail)
{
    struct entry **p = slot(h, name);
    struct entry *e = *p;
    struct event *v;

    if (e == NULL) {
        e = xcalloc(1, sizeof(*e));
        e->name = xstrdup(name);
        *p = e;
        h->count++;
        if (h->count > h->nbuckets)
            grow(h);
    }
    v = ring_push(&e->ev, h->per_cert); /* full: the oldest slot is reused */
    v->t = t;
    v->event = clean(event);
    v->detail = detail != NULL ? clean(detail) : NULL;
}

json_t *history_json(const struct history *h, const char *name)
{
    const struct entry *e = *slot(h, name);
    json_t *arr = json_array();

    for (size_t i = 0; e != NULL && i < e->ev.n; i++) {
        const struct event *v = ring_at(&e->ev, i);
        json_array_append_new(arr, json_pack("{s:I,s:s,s:s?}", "time", (json_int_t)v->t, "event",
                                             v->event, "detail", v->detail));
    }
    return arr;
}

void history_log_line(struct history *h, const char *name, int64_t t, const char *line)
{
    struct entry *e = *slot(h, name);
    struct event *v;

    if (e == NULL)
        return; /* not a certificate the manager knows */
    v = ring_push(&e->log, LOG_LINES);
    v->t = t;
    v->event = clean(line);
}

void history_log_clear(struct history *h, const char *name)
{
    struct entry *e = *slot(h, name);

    if (e != NULL)
        ring_clear(&e->log);
}

json_t *history_log_json(const struct history *h, const char *name)
{
    const struct entry *e = *slot(h, name);
    json_t *arr = json_array();

    for (size_t i = 0; e != NULL && i < e->log.n; i++) {
        const struct event *v = ring_at(&e->log, i);
        json_array_append_new(arr,
                              json_pack("{s:I,s:s}", "time", (json_int_t)v->t, "line", v->event));
    }
    return arr;
}

size_t history_count(const struct history *h, const char *name)
{
    const struct entry *e = *slot(h, name);

    return e != NULL ? e->ev.n : 0;
}

void history_forget(struct history *h, const char *name)
{
    struct entry **p = slot(h, name);
    struct entry *e = *p;

    if (e == NULL)
        return;
    *p = e->next;
    entry_free(h, e);
    h->count--;
}
