/* A dry run inside the daemon: the configuration file read again and
 * narrowed by config_dry_run, its own store (STATE/dry-run, locked, so a
 * standalone dry run cannot run beside it), and a guest manager in --once
 * mode borrowing the daemon manager's listeners. It changes nothing of the
 * daemon's: not its snapshot, its store, its events or its log sink. */
#include "reactor/dryrun.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "reactor/manager.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

struct dryrun {
    uv_loop_t *loop;
    uv_work_t work; /* .data = self; the load, then the clean */
    char *path;
    struct manager *host;
    char **names;
    size_t n_names;
    dryrun_done_cb done;
    void *arg;
    struct config *cfg; /* owned: the narrowed snapshot */
    struct store *store;
    struct config_diag diag;
    int rc;              /* the load's outcome, then the run's */
    struct manager *mgr; /* the guest, while it runs */
    struct buf summary;  /* its end-of-run lines */
    int failed;
    bool stopped;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
        log_warn(LOG_MAIN, "dry run: remove %s: %s", path, strerror(errno));
    return 0;
}

void dryrun_clean(const char *dir)
{
    static const char *const gone[] = {"certs", "orders", "history", "alerts", "outbox"};

    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
        char *p = xasprintf("%s/%s", dir, gone[i]);
        (void)nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(p);
    }
}

static void finish(struct dryrun *dr)
{
    char *summary = buf_steal(&dr->summary, NULL);

    dr->done(dr->arg, dr->rc, dr->failed, summary != NULL ? summary : "",
             (const char *const *)dr->diag.lines, dr->diag.n);
    free(summary);
    config_diag_fini(&dr->diag);
    config_unref(dr->cfg);
    for (size_t i = 0; i < dr->n_names; i++)
        free(dr->names[i]);
    free(dr->names);
    free(dr->path);
    free(dr);
}

/* ---- after the run: the store closed, what it stored removed */

static void clean_work(uv_work_t *w)
{
    struct dryrun *dr = w->data;

    dryrun_clean(dr->cfg->daemon.state_dir);
}

static void clean_done(uv_work_t *w, int status)
{
    (void)status; /* the threadpool does not cancel a running clean */
    finish(w->data);
}

static void guest_done(int failed, void *arg)
{
    struct dryrun *dr = arg;

    dr->mgr = NULL;
    dr->failed = failed;
    if (dr->stopped)
        dr->rc = -ECANCELED;
    log_info(LOG_MAIN, "dry run finished: %d %s failed%s", failed,
             failed == 1 ? "certificate" : "certificates", dr->stopped ? " (stopped)" : "");
    store_close(dr->store);
    dr->store = NULL;
    int rc = uv_queue_work(dr->loop, &dr->work, clean_work, clean_done);
    if (rc < 0) /* only for a NULL callback */
        finish(dr);
}

/* ---- before the run: the file read and narrowed, the store opened */

static void load_work(uv_work_t *w)
{
    struct dryrun *dr = w->data;
    struct config *cfg = NULL;
    int rc = config_load(dr->path, &cfg, &dr->diag);

    if (rc < 0) {
        if (dr->diag.n == 0)
            config_diag_add(&dr->diag, "%s: %s", dr->path, err_str(rc));
        dr->rc = ERR_CONFIG;
        return;
    }
    dr->cfg = cfg;
    if (config_dry_run(cfg, (const char *const *)dr->names, dr->n_names, &dr->diag) < 0) {
        dr->rc = ERR_CONFIG;
        return;
    }
    if (cfg->n_certs == 0) {
        config_diag_add(&dr->diag, "no certificate with a CA to order");
        dr->rc = ERR_CONFIG;
        return;
    }
    /* the loop is only stored here; writes start from the loop later */
    rc = store_fs_open(dr->loop, cfg->daemon.state_dir, 0, &dr->store);
    if (rc < 0) {
        dr->store = NULL;
        dr->rc = rc;
        if (rc != ERR_LOCKED)
            config_diag_add(&dr->diag, "%s: %s", cfg->daemon.state_dir, err_str(rc));
        return;
    }
    (void)store_sweep(dr->store);
    /* what an interrupted dry run left would make this one "ok" */
    dryrun_clean(cfg->daemon.state_dir);
    dr->rc = 0;
}

static void load_done(uv_work_t *w, int status)
{
    struct dryrun *dr = w->data;

    if (status < 0 || dr->stopped) {
        dr->rc = -ECANCELED;
    } else if (dr->rc == 0) {
        struct manager_opts mo = {
            .loop = dr->loop,
            .cfg = dr->cfg,
            .store = dr->store,
            .once = true,
            .done = guest_done,
            .arg = dr,
            .host = dr->host,
            .summary = &dr->summary,
        };
        log_info(LOG_MAIN, "dry run: %zu %s against the staging CA (%s)", dr->cfg->n_certs,
                 dr->cfg->n_certs == 1 ? "certificate" : "certificates", dr->cfg->daemon.state_dir);
        int rc = manager_start(&mo, &dr->mgr);
        if (rc == 0)
            return; /* guest_done goes on */
        dr->mgr = NULL;
        dr->rc = rc;
        config_diag_add(&dr->diag, "cannot start: %s", err_str(rc));
    }
    if (dr->store != NULL)
        store_close(dr->store);
    dr->store = NULL;
    finish(dr);
}

struct dryrun *dryrun_start(const struct dryrun_opts *o)
{
    struct dryrun *dr = xcalloc(1, sizeof(*dr));

    dr->loop = o->loop;
    dr->work.data = dr;
    dr->path = xstrdup(o->config_path);
    dr->host = o->host;
    dr->done = o->done;
    dr->arg = o->arg;
    dr->names = xcalloc(o->n_names > 0 ? o->n_names : 1, sizeof(*dr->names));
    for (size_t i = 0; i < o->n_names; i++)
        dr->names[i] = xstrdup(o->names[i]);
    dr->n_names = o->n_names;
    dr->summary = (struct buf)BUF_INIT(1024 * 1024);
    config_diag_init(&dr->diag);
    int rc = uv_queue_work(dr->loop, &dr->work, load_work, load_done);
    if (rc < 0) /* only for a NULL callback */
        abort();
    return dr;
}

void dryrun_stop(struct dryrun *dr)
{
    if (dr->stopped)
        return;
    dr->stopped = true;
    if (dr->mgr != NULL)
        manager_stop(dr->mgr);
    else
        (void)uv_cancel((uv_req_t *)&dr->work); /* else load_done sees stopped */
}
