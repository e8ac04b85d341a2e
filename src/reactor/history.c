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

struct entry {
    struct entry *next;
    char *name; /* owned */
    struct event log[LOG_LINES]; /* ring: event is the line, detail unused */
    size_t log_head, log_n;
    size_t head, n;
    struct event ev[]; /* per_cert slots */
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

static void log_clear(struct entry *e)
{
    for (size_t i = 0; i < e->log_n; i++)
        free(e->log[(e->log_head + i) % LOG_LINES].event);
    e->log_head = e->log_n = 0;
}

static void entry_free(struct history *h, struct entry *e)
{
    log_clear(e);
    for (size_t i = 0; i < e->n; i++) {
        struct event *v = &e->ev[(e->head + i) % h->per_cert];
        free(v->event);
        free(v->detail);
    }
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
        e = xcalloc(1, sizeof(*e) + h->per_cert * sizeof(e->ev[0]));
        e->name = xstrdup(name);
        *p = e;
        h->count++;
        if (h->count > h->nbuckets)
            grow(h);
    }
    if (e->n == h->per_cert) {
        /* full: the oldest slot is reused */
        v = &e->ev[e->head];
        free(v->event);
        free(v->detail);
        e->head = (e->head + 1) % h->per_cert;
    } else {
        v = &e->ev[(e->head + e->n) % h->per_cert];
        e->n++;
    }
    v->t = t;
    v->event = clean(event);
    v->detail = detail != NULL ? clean(detail) : NULL;
}

json_t *history_json(const struct history *h, const char *name)
{
    const struct entry *e = *slot(h, name);
    json_t *arr = json_array();

    for (size_t i = 0; e != NULL && i < e->n; i++) {
        const struct event *v = &e->ev[(e->head + i) % h->per_cert];
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
    if (e->log_n == LOG_LINES) {
        v = &e->log[e->log_head];
        free(v->event);
        e->log_head = (e->log_head + 1) % LOG_LINES;
    } else {
        v = &e->log[(e->log_head + e->log_n) % LOG_LINES];
        e->log_n++;
    }
    v->t = t;
    v->event = clean(line);
}

void history_log_clear(struct history *h, const char *name)
{
    struct entry *e = *slot(h, name);

    if (e != NULL)
        log_clear(e);
}

json_t *history_log_json(const struct history *h, const char *name)
{
    const struct entry *e = *slot(h, name);
    json_t *arr = json_array();

    for (size_t i = 0; e != NULL && i < e->log_n; i++) {
        const struct event *v = &e->log[(e->log_head + i) % LOG_LINES];
        json_array_append_new(arr,
                              json_pack("{s:I,s:s}", "time", (json_int_t)v->t, "line", v->event));
    }
    return arr;
}

size_t history_count(const struct history *h, const char *name)
{
    const struct entry *e = *slot(h, name);

    return e != NULL ? e->n : 0;
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
