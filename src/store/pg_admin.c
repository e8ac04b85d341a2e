/* One-shot commands on the shared database (store_pg.h), outside the
 * daemon: each opens its own connection on a private loop, runs one
 * operation with a deadline and closes everything before it returns. */
#include "config/config.h"
#include "store/pg_internal.h"
#include "store/store_pg.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"

#include <assert.h>
#include <errno.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <string.h>

/* A private loop with one connection and a deadline. */
struct oneshot {
    uv_loop_t loop;
    uv_timer_t timer;
    struct pg_conn *conn;
    bool inited; /* the loop and the timer */
    bool done;
    int status;
};

static void oneshot_timeout(uv_timer_t *t)
{
    struct oneshot *o = t->data;

    if (!o->done) {
        o->status = ERR_TIMEOUT;
        o->done = true;
    }
}

static int oneshot_open(struct oneshot *o, const char *conninfo_file, unsigned timeout_ms)
{
    struct buf ci;
    struct pg_conn_opts opts = {.backoff_max_ms = 1000};
    int rc = uv_loop_init(&o->loop);

    if (rc < 0)
        return rc;
    o->inited = true;
    uv_timer_init(&o->loop, &o->timer);
    o->timer.data = o;
    uv_timer_start(&o->timer, oneshot_timeout, timeout_ms, 0);
    rc = pg_conninfo_read(conninfo_file, &ci);
    if (rc == 0) {
        opts.conninfo = ci.data != NULL ? ci.data : "";
        rc = pg_conn_open(&o->loop, &opts, &o->conn);
    }
    pg_conninfo_wipe(&ci);
    return rc;
}

/* Runs the loop until the operation (or the deadline) ends it. */
static int oneshot_run(struct oneshot *o)
{
    while (!o->done)
        uv_run(&o->loop, UV_RUN_ONCE);
    return o->status;
}

static void oneshot_close(struct oneshot *o)
{
    if (!o->inited)
        return;
    if (o->conn != NULL)
        pg_conn_close(o->conn, NULL, NULL);
    uv_close((uv_handle_t *)&o->timer, NULL);
    uv_run(&o->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&o->loop);
    assert(rc == 0);
    (void)rc;
}

/* ---- the encryption key's rotation ---------------------------------------------------------- */

struct rotating {
    struct oneshot *o;
    size_t resealed;
};

static void rotated(int status, size_t resealed, void *arg)
{
    struct rotating *r = arg;

    r->resealed = resealed;
    if (!r->o->done) {
        r->o->status = status;
        r->o->done = true;
    }
}

int store_pg_rotate_key(const struct cfg_store *cfg, const char *old_key_file,
                        const char *new_key_file, unsigned timeout_ms, size_t *resealed)
{
    struct pg_key old_key, new_key;
    struct oneshot o = {0};
    struct rotating r = {&o, 0};
    int rc;

    *resealed = 0;
    if (old_key_file == NULL)
        old_key_file = cfg->encryption_key_file;
    if (cfg->conninfo_file == NULL || old_key_file == NULL)
        return -EINVAL;
    /* the new key is what protects every private key from now on: a file
     * others may read (or write) is refused before anything is sealed with
     * it, as check refuses it as encryption_key_file */
    struct stat st;
    if (stat(new_key_file, &st) == 0 && (st.st_mode & 027) != 0 && !((st.st_mode & 077) == 040)) {
        log_error(LOG_STORE,
                  "%s: encryption key: the file is accessible by %s (mode %04o): run chmod 600 "
                  "%s first; nothing was changed",
                  new_key_file, (st.st_mode & 007) != 0 ? "others" : "its group",
                  (unsigned)(st.st_mode & 07777), new_key_file);
        return -EINVAL;
    }
    if (pg_key_load(old_key_file, &old_key) < 0)
        return -EINVAL;
    if (pg_key_load(new_key_file, &new_key) < 0) {
        pg_key_wipe(&old_key);
        return -EINVAL;
    }
    if (memcmp(old_key.id, new_key.id, sizeof(old_key.id)) == 0) {
        log_error(LOG_STORE, "%s and %s hold the same key", old_key_file, new_key_file);
        pg_key_wipe(&old_key);
        pg_key_wipe(&new_key);
        return -EINVAL;
    }
    rc = oneshot_open(&o, cfg->conninfo_file, timeout_ms);
    if (rc == 0)
        rc = pg_key_rotate_start(o.conn, &old_key, &new_key, rotated, &r);
    pg_key_wipe(&old_key);
    pg_key_wipe(&new_key);
    if (rc == 0)
        rc = oneshot_run(&o);
    if (rc == ERR_TIMEOUT)
        log_error(LOG_STORE, "database: no answer within %u ms (conninfo from %s)", timeout_ms,
                  cfg->conninfo_file);
    oneshot_close(&o);
    if (rc == 0)
        *resealed = r.resealed;
    return rc;
}
