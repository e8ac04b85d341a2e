/* Per-certificate history that survives restarts: every event the manager
 * records (history.c's ring, for status) is also appended as one JSON line
 * to the certificate's history in the store (store_history_append_start,
 * which bounds it); at start each certificate's ring is filled from it.
 * Writes go one batch at a time, so a certificate's lines keep their order;
 * it does not decide what is recorded (the manager does). */
#include "reactor/history.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

struct hw_entry {
    struct hw_entry *next;
    char *name; /* owned: the certificate */
    char *line; /* owned: one JSON object and its newline */
};

struct history_writer {
    struct store *store;          /* borrowed: outlives the writer */
    struct hw_entry *head, *tail; /* waiting for the next batch */
    struct hw_entry *batch;       /* owned, the write in flight, or NULL */
    history_writer_idle_cb idle;  /* when the last batch is written */
    void *arg;
};

/* Printable ASCII only, the rest '.', as history.c keeps it (and always
 * valid UTF-8 for the JSON). Owned. */
static char *printable(const char *s)
{
    char *c = xstrdup(s);

    for (char *p = c; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '.';
    return c;
}

char *history_line(int64_t t, const char *event, const char *detail)
{
    char *ev = printable(event), *de = detail != NULL ? printable(detail) : NULL;
    json_t *o = json_object();
    json_object_set_new(o, "time", json_integer(t));
    json_object_set_new(o, "event", json_string(ev));
    json_object_set_new(o, "detail", de != NULL ? json_string(de) : json_null());
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    free(ev);
    free(de);
    if (s == NULL)
        abort(); /* only allocation fails here (STYLE §3) */
    char *line = xasprintf("%s\n", s);
    free(s);
    return line;
}

size_t history_load_text(struct history *h, const char *name, const char *text, size_t len)
{
    size_t n = 0;

    for (size_t off = 0; off < len;) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t l = nl != NULL ? (size_t)(nl - (text + off)) : len - off;
        json_t *o = json_loadb(text + off, l, 0, NULL);
        const char *ev = json_string_value(json_object_get(o, "event"));
        json_t *t = json_object_get(o, "time");
        if (ev != NULL && json_is_integer(t)) {
            history_add(h, name, json_integer_value(t), ev,
                        json_string_value(json_object_get(o, "detail")));
            n++;
        }
        json_decref(o);
        off += l + 1;
    }
    return n;
}

int history_file_load(struct history *h, struct store *store, const char *name)
{
    char *text = NULL;
    size_t len = 0;
    int rc = store_history_read(store, name, &text, &len);

    if (rc == 0)
        rc = (int)history_load_text(h, name, text, len);
    else if (rc == -ENOENT)
        rc = 0;
    free(text);
    return rc;
}

static void batch_free(struct hw_entry *e)
{
    while (e != NULL) {
        struct hw_entry *nx = e->next;
        free(e->name);
        free(e->line);
        free(e);
        e = nx;
    }
}

static void start_batch(struct history_writer *w);

static void batch_done(int status, const struct store_result *r, void *arg)
{
    struct history_writer *w = arg;

    if (status < 0)
        log_warn(LOG_MAIN, "history: %s", r->error != NULL ? r->error : err_str(status));
    batch_free(w->batch);
    w->batch = NULL;
    start_batch(w);
    if (w->batch == NULL && w->idle != NULL)
        w->idle(w->arg);
}

static void start_batch(struct history_writer *w)
{
    size_t n = 0;

    if (w->batch != NULL || w->head == NULL)
        return;
    w->batch = w->head;
    w->head = w->tail = NULL;
    for (struct hw_entry *e = w->batch; e != NULL; e = e->next)
        n++;
    struct store_history_line *v = xcalloc(n, sizeof(*v));
    n = 0;
    for (struct hw_entry *e = w->batch; e != NULL; e = e->next) {
        v[n].name = e->name;
        v[n].line = e->line;
        n++;
    }
    if (store_history_append_start(w->store, v, n, batch_done, w) < 0) {
        log_warn(LOG_MAIN, "history: cannot start a write: lines dropped");
        batch_free(w->batch);
        w->batch = NULL;
    }
    free(v);
}

struct history_writer *history_writer_new(struct store *store, history_writer_idle_cb idle,
                                          void *arg)
{
    struct history_writer *w = xcalloc(1, sizeof(*w));

    w->store = store;
    w->idle = idle;
    w->arg = arg;
    return w;
}

bool history_writer_add(struct history_writer *w, const char *name, int64_t t, const char *event,
                        const char *detail)
{
    bool was_busy = w->batch != NULL;
    struct hw_entry *e = xcalloc(1, sizeof(*e));

    e->name = xstrdup(name);
    e->line = history_line(t, event, detail);
    if (w->tail != NULL)
        w->tail->next = e;
    else
        w->head = e;
    w->tail = e;
    start_batch(w);
    return !was_busy && w->batch != NULL;
}

bool history_writer_busy(const struct history_writer *w)
{
    return w != NULL && w->batch != NULL;
}

void history_writer_free(struct history_writer *w)
{
    if (w == NULL)
        return;
    assert(w->batch == NULL); /* the owner waits for idle: the write holds w */
    batch_free(w->head);
    free(w);
}
