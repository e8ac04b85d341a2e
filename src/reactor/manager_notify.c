/* The time of the last "expiring" alert per certificate, persisted in
 * STATE/alerts/ so that the daily repeat survives a restart. When an alert
 * is due is manager.c's (notify_expiring_due); delivery is deploy/outbox.c's. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reactor/manager_notify.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

static char *alert_path(const char *state_dir, const char *name)
{
    return xasprintf("%s/alerts/%s.expiring", state_dir, name);
}

int64_t mgr_expiring_last_read(const char *state_dir, const char *name)
{
    char *path = alert_path(state_dir, name);
    char *text = NULL, *end = NULL;
    int64_t t = 0;

    if (store_read_file(path, &text, NULL) == 0) {
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (errno == 0 && end != text && v > 0)
            t = (int64_t)v;
        else
            log_warn(LOG_MAIN, "%s: not a time; the next expiring alert goes out when due", path);
    }
    free(text);
    free(path);
    return t;
}

struct alert_job {
    char *dir, *path; /* owned */
    int64_t t;
    const char *step;
    mgr_expiring_saved_cb done;
    void *arg;
};

static int alert_job_work(void *arg)
{
    struct alert_job *j = arg;
    char text[32];
    int rc;

    if (j->t <= 0) {
        j->step = "unlink";
        if (unlink(j->path) < 0)
            return errno == ENOENT ? 0 : -errno;
        j->step = "fsync-dir";
        return store_fsync_dir(j->dir);
    }
    j->step = "mkdir";
    rc = store_mkdirs(j->dir, 0700);
    if (rc < 0)
        return rc;
    int n = snprintf(text, sizeof(text), "%" PRId64 "\n", j->t);
    j->step = NULL;
    return store_write_atomic(j->path, text, (size_t)n, 0600, (uid_t)-1, (gid_t)-1, &j->step);
}

static void alert_job_done(int status, void *arg)
{
    struct alert_job *j = arg;

    if (status < 0)
        log_error(LOG_MAIN, "%s: %s: %s", j->path, j->step ? j->step : "write", err_str(status));
    j->done(j->arg);
    free(j->dir);
    free(j->path);
    free(j);
}

int mgr_expiring_save(uv_loop_t *loop, const char *state_dir, const char *name, int64_t t,
                      mgr_expiring_saved_cb done, void *arg)
{
    struct alert_job *j = xcalloc(1, sizeof(*j));
    int rc;

    j->dir = xasprintf("%s/alerts", state_dir);
    j->path = alert_path(state_dir, name);
    j->t = t;
    j->done = done;
    j->arg = arg;
    rc = store_job_start(loop, alert_job_work, j, alert_job_done);
    if (rc < 0) {
        log_error(LOG_MAIN, "%s: cannot start the write: %s", j->path, err_str(rc));
        free(j->dir);
        free(j->path);
        free(j);
    }
    return rc;
}

int mgr_alerts_sweep(const char *state_dir, bool (*known)(const char *name, void *arg), void *arg)
{
    static const char suffix[] = ".expiring";
    char *dir = xasprintf("%s/alerts", state_dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    int removed = 0;

    if (d == NULL) {
        if (errno != ENOENT)
            log_warn(LOG_MAIN, "%s: %s", dir, strerror(errno));
        free(dir);
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        size_t len = strlen(n), sl = sizeof(suffix) - 1;
        bool tmp = strncmp(n, ".tmp-", 5) == 0;
        if (!tmp && (n[0] == '.' || len <= sl || strcmp(n + len - sl, suffix) != 0))
            continue;
        char *name = tmp ? NULL : xstrndup(n, len - sl);
        if (name != NULL && known(name, arg)) {
            free(name);
            continue;
        }
        char *path = xasprintf("%s/%s", dir, n);
        if (unlink(path) == 0) {
            removed++;
            if (tmp)
                log_info(LOG_MAIN, "%s: removed (an interrupted write)", path);
            else
                log_info(LOG_MAIN, "%s: removed (certificate %s is no longer configured)", path,
                         name);
        } else if (errno != ENOENT) {
            log_warn(LOG_MAIN, "%s: unlink: %s", path, strerror(errno));
        }
        free(path);
        free(name);
    }
    closedir(d);
    if (removed > 0)
        (void)store_fsync_dir(dir);
    free(dir);
    return removed;
}
