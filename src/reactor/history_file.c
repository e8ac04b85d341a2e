/* Per-certificate history that survives restarts: every event the manager
 * records (history.c's ring, for status) is also appended as one JSON line
 * to STATE/history/NAME.jsonl, bounded by trimming the file to its newest
 * lines; at start each certificate's ring is filled from its file. Writes
 * run on the threadpool one batch at a time, so a certificate's lines keep
 * their order; it does not decide what is recorded (the manager does). */
#include "reactor/history.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#define HIST_FILE_MAX (64 * 1024)  /* past this the file is trimmed ... */
#define HIST_FILE_KEEP (32 * 1024) /* ... to its newest lines within this */

struct hw_entry {
    struct hw_entry *next;
    char *path; /* owned: STATE/history/NAME.jsonl */
    char *line; /* owned: one JSON object and its newline */
};

struct history_writer {
    uv_loop_t *loop;
    char *dir;                          /* owned: STATE/history */
    struct hw_entry *head, *tail;       /* waiting for the next batch */
    struct hw_entry *batch;             /* owned by the job in flight, or NULL */
    const char *step;                   /* the job's failing step */
    char *err_path;                     /* the job's failing file (borrowed from batch) */
    history_writer_idle_cb idle;        /* when the last batch is written */
    void *arg;
};

static char *hist_path(const char *dir, const char *name)
{
    return xasprintf("%s/%s.jsonl", dir, name);
}

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

int history_file_load(struct history *h, const char *state_dir, const char *name)
{
    char *dir = xasprintf("%s/history", state_dir);
    char *path = hist_path(dir, name);
    char *text = NULL;
    size_t len = 0;
    int rc = store_read_file(path, &text, &len);

    if (rc == 0)
        rc = (int)history_load_text(h, name, text, len);
    else if (rc == -ENOENT)
        rc = 0;
    else
        log_warn(LOG_MAIN, "%s: %s (the certificate's history starts afresh)", path, err_str(rc));
    free(text);
    free(path);
    free(dir);
    return rc;
}

/* On the threadpool: keeps the newest whole lines within HIST_FILE_KEEP. */
static int trim(struct history_writer *w, const char *path, int fd, off_t size)
{
    char *buf = xmalloc((size_t)size);
    ssize_t got = pread(fd, buf, (size_t)size, 0);
    int rc;

    w->step = "read";
    if (got != size) {
        free(buf);
        return got < 0 ? -errno : -EIO;
    }
    size_t from = (size_t)size - HIST_FILE_KEEP;
    while (from < (size_t)size && buf[from - 1] != '\n')
        from++;
    w->step = NULL;
    rc = store_write_atomic(path, buf + from, (size_t)size - from, 0600, (uid_t)-1, (gid_t)-1,
                            &w->step);
    free(buf);
    return rc;
}

static int batch_work(void *arg)
{
    struct history_writer *w = arg;
    int rc;

    w->step = "mkdir";
    rc = store_mkdirs(w->dir, 0700);
    if (rc < 0)
        return rc;
    for (struct hw_entry *e = w->batch; e != NULL; e = e->next) {
        w->err_path = e->path;
        w->step = "open";
        int fd = open(e->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return -errno;
        size_t len = strlen(e->line);
        w->step = "write";
        rc = write(fd, e->line, len) == (ssize_t)len ? 0 : -EIO;
        struct stat st;
        if (rc == 0 && fstat(fd, &st) == 0 && st.st_size > HIST_FILE_MAX)
            rc = trim(w, e->path, fd, st.st_size);
        else if (rc == 0) {
            w->step = "fsync";
            rc = fdatasync(fd) < 0 ? -errno : 0;
        }
        close(fd);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void batch_free(struct hw_entry *e)
{
    while (e != NULL) {
        struct hw_entry *nx = e->next;
        free(e->path);
        free(e->line);
        free(e);
        e = nx;
    }
}

static void start_batch(struct history_writer *w);

static void batch_done(int status, void *arg)
{
    struct history_writer *w = arg;

    if (status < 0)
        log_warn(LOG_MAIN, "history: %s: %s: %s", w->err_path != NULL ? w->err_path : w->dir,
                 w->step != NULL ? w->step : "write", err_str(status));
    batch_free(w->batch);
    w->batch = NULL;
    w->err_path = NULL;
    start_batch(w);
    if (w->batch == NULL && w->idle != NULL)
        w->idle(w->arg);
}

static void start_batch(struct history_writer *w)
{
    if (w->batch != NULL || w->head == NULL)
        return;
    w->batch = w->head;
    w->head = w->tail = NULL;
    if (store_job_start(w->loop, batch_work, w, batch_done) < 0) {
        log_warn(LOG_MAIN, "history: cannot start a write: lines dropped");
        batch_free(w->batch);
        w->batch = NULL;
    }
}

struct history_writer *history_writer_new(uv_loop_t *loop, const char *state_dir,
                                          history_writer_idle_cb idle, void *arg)
{
    struct history_writer *w = xcalloc(1, sizeof(*w));

    w->loop = loop;
    w->dir = xasprintf("%s/history", state_dir);
    w->idle = idle;
    w->arg = arg;
    return w;
}

bool history_writer_add(struct history_writer *w, const char *name, int64_t t, const char *event,
                        const char *detail)
{
    bool was_busy = w->batch != NULL;
    struct hw_entry *e = xcalloc(1, sizeof(*e));

    e->path = hist_path(w->dir, name);
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
    assert(w->batch == NULL); /* the owner waits for idle: the job holds w */
    batch_free(w->head);
    free(w->dir);
    free(w);
}
