/* The time of the last daily alert ("expiring", "persist_expiring") per
 * certificate and kind, kept in the store so that the daily repeat
 * survives a restart. When an alert is due is the manager's
 * (notify_expiring_due); delivery is deploy/outbox.c's. */
#include <stdlib.h>

#include "reactor/manager_notify.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

int64_t mgr_alert_last_read(struct store *store, const char *name, enum store_alert kind)
{
    int64_t t = 0;

    /* absent or damaged (logged by the store): the next alert goes out when due */
    if (store_alert_read(store, name, kind, &t) < 0)
        return 0;
    return t;
}

struct alert_job {
    mgr_alert_saved_cb done;
    void *arg;
};

static void alert_job_done(int status, const struct store_result *r, void *arg)
{
    struct alert_job *j = arg;

    if (status < 0)
        log_error(LOG_MAIN, "%s", r->error != NULL ? r->error : err_str(status));
    j->done(j->arg);
    free(j);
}

int mgr_alert_save(struct store *store, const char *name, enum store_alert kind, int64_t t,
                   mgr_alert_saved_cb done, void *arg)
{
    struct alert_job *j = xcalloc(1, sizeof(*j));

    j->done = done;
    j->arg = arg;
    int rc = store_alert_put_start(store, name, kind, t, alert_job_done, j);
    if (rc < 0) {
        char *where = store_where(store, STORE_WHERE_ALERTS, NULL);
        log_error(LOG_MAIN, "%s: %s alert of %s: cannot start the write: %s", where,
                  store_alert_name(kind), name, err_str(rc));
        free(where);
        free(j);
    }
    return rc;
}
