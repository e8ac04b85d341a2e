/* The PostgreSQL backend's records of this instance alone, which the
 * shared database does not keep: the HTTPS API's bootstrap certificate and
 * key, and the hub cursors (the last event id of each [hub.NAME] stream).
 * Both describe this host (its listen addresses, the streams it follows),
 * so they stay in its own state directory, locked by this instance, through
 * the file backend's code (fs_api.c, fs_records.c: the same files, modes
 * and atomic writes as with the file store). Without a state directory (a
 * store opened by tests or tools without one) none is kept. */
#include "store/pg_internal.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "util/err.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdlib.h>

static struct pg_store *pg_of(struct store *s)
{
    return (struct pg_store *)s;
}

void pg_store_local_set(struct store *s, const char *state_dir)
{
    struct pg_store *p = pg_of(s);

    free(p->local_dir);
    free(p->lineage_root);
    p->local_dir = xstrdup(state_dir);
    /* hooks read generations from files only in the daemon (its loop runs
     * the writes) */
    p->lineage_root = s->loop != NULL ? xasprintf("%s/lineage", state_dir) : NULL;
}

int pg_api_bootstrap_read(struct store *s, char **cert_pem, char **key_pem)
{
    struct pg_store *p = pg_of(s);

    if (p->local_dir == NULL)
        return ERR_UNSUPPORTED;
    return store_fs_api_bootstrap_read(p->local_dir, cert_pem, key_pem);
}

int pg_api_bootstrap_put(struct store *s, const char *cert_pem, const char *key_pem)
{
    struct pg_store *p = pg_of(s);

    if (p->local_dir == NULL)
        return ERR_UNSUPPORTED;
    return store_fs_api_bootstrap_put(p->local_dir, cert_pem, key_pem);
}

int pg_hub_cursor_read(struct store *s, const char *hub, char **id)
{
    struct pg_store *p = pg_of(s);

    if (p->local_dir == NULL)
        return -ENOTSUP;
    return store_fs_hub_cursor_read(p->local_dir, hub, id);
}

/* ---- a cursor's write, on the threadpool (an fsync) ---- */

struct cursor_job {
    char *dir, *hub, *id; /* owned copies */
    char *err;            /* set by the worker */
    store_cb cb;
    void *arg;
};

static void cursor_job_free(struct cursor_job *j)
{
    free(j->dir);
    free(j->hub);
    free(j->id);
    free(j->err);
    free(j);
}

static int cursor_work(void *arg)
{
    struct cursor_job *j = arg;

    return store_fs_hub_cursor_write(j->dir, j->hub, j->id, &j->err);
}

static void cursor_done(int status, void *arg)
{
    struct cursor_job *j = arg;
    struct store_result r = {.error = j->err};

    j->cb(status, &r, j->arg);
    cursor_job_free(j);
}

int pg_hub_cursor_put(struct store *s, const char *hub, const char *id, store_cb cb, void *arg)
{
    struct pg_store *p = pg_of(s);

    if (p->local_dir == NULL)
        return -ENOTSUP;
    if (s->loop == NULL)
        return -EINVAL;
    struct cursor_job *j = xcalloc(1, sizeof(*j));
    j->dir = xstrdup(p->local_dir);
    j->hub = xstrdup(hub);
    j->id = xstrdup(id);
    j->cb = cb;
    j->arg = arg;
    int rc = store_job_start(s->loop, cursor_work, j, cursor_done);
    if (rc < 0)
        cursor_job_free(j);
    return rc;
}
