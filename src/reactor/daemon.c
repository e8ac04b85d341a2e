/* The daemon skeleton: process start-up (config, state lock, loop), signal
 * handling (SIGHUP reload with the old snapshot kept on error, SIGTERM and
 * SIGINT graceful stop), systemd notifications, and an orderly end where
 * every handle is closed and uv_loop_close() succeeds, and the control
 * socket (status, renew, reload, metrics) wired to the manager. The work
 * itself (orders, challenges, renewals) belongs to the manager. */
#include "reactor/daemon.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <uv.h>

#include "challenge/challenge.h"
#include "config/config.h"
#include "deploy/deploy.h"
#include "reactor/apiview.h"
#include "reactor/control.h"
#include "reactor/dryrun.h"
#include "reactor/fdbudget.h"
#include "api/api.h"
#include "reactor/manager.h"
#include "reactor/plan.h"
#include "reactor/sdnotify.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#define EXIT_CANTCREAT 73

struct daemon {
    uv_loop_t loop;
    uv_signal_t sighup; /* embedded; .data = self */
    uv_signal_t sigterm;
    uv_signal_t sigint;
    int open_handles;         /* our own signal handles not yet closed */
    const char *config_path;  /* borrowed */
    struct config *cfg;       /* ref: the snapshot in force */
    struct store *store;      /* owned */
    struct store *state_lock; /* owned: with postgresql, the state directory held for its lock */
    struct manager *mgr;      /* owned until its done callback */
    struct control *ctl;      /* owned; NULL when not open (--once, failed, closed) */
    struct api *api;          /* owned; NULL without [api] listen (or --once, closed) */
    struct fd_budget fds;     /* the connection caps, sized at start and at each reload */
    struct dryrun *dry;       /* the dry run in progress (control socket), or NULL */
    bool stop_after_dry;      /* stopping: the manager stops once the dry run has ended */
    bool once;
    bool stopping;                 /* a stop was requested (signal) */
    bool manager_done;             /* the manager's done callback ran */
    int failed;                    /* what the manager reported */
    struct reload_job *reload;     /* the reload being read, or NULL */
    bool reload_again;             /* another was asked for meanwhile */
    struct reload_waiter *waiting; /* owned: control replies for that next one */
    size_t n_waiting, cap_waiting;
};

static void handle_closed(uv_handle_t *h)
{
    struct daemon *d = h->data;

    d->open_handles--;
}

/* Closes our signal handles and the control socket (its handles finish
 * closing on the loop, so uv_loop_close() still succeeds afterwards). */
static void close_signals(struct daemon *d)
{
    uv_signal_t *sigs[] = {&d->sighup, &d->sigterm, &d->sigint};

    if (d->ctl != NULL) {
        control_close(d->ctl, NULL, NULL);
        d->ctl = NULL;
    }
    api_close(d->api, NULL, NULL);
    d->api = NULL;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        if (!uv_is_closing((uv_handle_t *)sigs[i]))
            uv_close((uv_handle_t *)sigs[i], handle_closed);
    }
}

/* "READY=1\nSTATUS=[note; ]managing N certificates" */
static void notify_ready(const struct daemon *d, const char *note)
{
    char msg[256];

    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s%smanaging %zu %s", note != NULL ? note : "",
             note != NULL ? "; " : "", d->cfg->n_certs,
             d->cfg->n_certs == 1 ? "certificate" : "certificates");
    sdnotify_send(msg);
}

static void manager_done(int failed, void *arg)
{
    struct daemon *d = arg;

    d->manager_done = true;
    d->mgr = NULL;
    d->failed = failed;
    if (d->once)
        log_info(LOG_MAIN, "run --once finished: %d %s failed or held back", failed,
                 failed == 1 ? "certificate" : "certificates");
    else if (!d->stopping)
        log_error(LOG_MAIN, "the manager stopped on its own; exiting");
    /* nothing else keeps the loop alive once our signal handles are gone */
    close_signals(d);
}

/* Sizes the connection caps from the open file limit and what cfg makes
 * certloop hold (orders, listeners, notify targets): at start before
 * anything is open, and at each reload, whose changes move the caps of the
 * listeners already open (logged when they change). */
static void budget_plan(struct daemon *d, const struct config *cfg, unsigned limit)
{
    struct fd_budget_need need = {
        .max_concurrent_orders = cfg->daemon.max_concurrent_orders,
        .threadpool = fd_budget_threadpool(),
        .listeners = (unsigned)(cfg->http01.listen.n + cfg->tlsalpn01.listen.n + cfg->api.listen.n),
        .tlsalpn_conns = cfg->tlsalpn01.listen.n > 0 ? CHAL_TLSALPN_MAX_CONNECTIONS : 0,
        .notify_targets = (unsigned)cfg->n_notify,
    };
    struct fd_budget old = d->fds;

    fd_budget_plan(limit, &need, &d->fds);
    bool reload = old.limit != 0;
    if (reload && old.http01 == d->fds.http01 && old.control == d->fds.control &&
        old.api == d->fds.api && old.tight == d->fds.tight)
        return;
    if (d->fds.tight)
        log_warn(LOG_MAIN,
                 "open file limit %u leaves too little beside the %u kept for %u concurrent "
                 "orders: raise LimitNOFILE or lower max_concurrent_orders",
                 d->fds.limit, d->fds.reserve, need.max_concurrent_orders);
    log_info(LOG_MAIN,
             "open file limit %u, %u kept for the store, deploys, curl, c-ares and hooks; "
             "http01: at most %u connections, control: %u, api: %u%s",
             d->fds.limit, d->fds.reserve, d->fds.http01, d->fds.control, d->fds.api,
             reload ? " (after the reload)" : "");
    if (!reload)
        return;
    if (d->mgr != NULL)
        manager_set_http01_max_connections(d->mgr, d->fds.http01);
    control_set_max_conns(d->ctl, d->fds.control);
    api_set_max_connections(d->api, d->fds.api);
}

/* SIGHUP and POST /v1/reload: a new snapshot replaces the old one only when
 * all of it is valid (STYLE §6); settings bound at start-up (the state
 * directory and its lock, the http-01 sockets, the control socket) keep
 * their old values until a restart.
 *
 * The files are read and validated on the threadpool: config_load in the
 * work callback builds a snapshot nobody else sees yet and touches no
 * shared state, so a slow file (a network file system, thousands of include
 * files) leaves the loop free to answer http-01, the control socket and
 * SIGTERM meanwhile. Non-regular files are refused by config_load itself.
 * One reload reads at a time; requests arriving meanwhile are folded into
 * one more reload after it (the files may have changed since the read
 * began), and each control request is answered by the reload it waited for. */
struct reload_waiter {
    control_reply_cb cb;
    void *arg;
};

struct reload_job {
    uv_work_t work;          /* .data = self */
    struct daemon *d;        /* borrowed: uv_run returns only after the job ends */
    char *path;              /* owned copy of the main file's path */
    const char *origin;      /* static: "SIGHUP", "control" */
    struct config *cfg;      /* owned: the new snapshot, set by the work */
    struct config *old;      /* owned: the replaced snapshot once nobody holds it, or NULL */
    struct config_diag diag; /* the work's errors */
    int rc;
    struct reload_waiter *waiters; /* owned: answered when this job ends */
    size_t n_waiters;
};

static void reload_work(uv_work_t *w)
{
    struct reload_job *job = w->data;

    job->rc = config_load(job->path, &job->cfg, &job->diag);
}

/* Answers one control request with the job's outcome (0 or an error). */
static void reload_answer(const struct daemon *d, const struct reload_job *job, int rc,
                          const struct reload_waiter *w)
{
    if (rc == -ECANCELED) {
        w->cb(w->arg, -ECANCELED, "the daemon is stopping", NULL, 0);
    } else if (rc == 0) {
        char *msg = xasprintf("reloaded: %zu %s", d->cfg->n_certs,
                              d->cfg->n_certs == 1 ? "certificate" : "certificates");
        w->cb(w->arg, 0, msg, NULL, 0);
        free(msg);
    } else if (job->diag.n > 0) {
        w->cb(w->arg, ERR_CONFIG, NULL, (const char *const *)job->diag.lines, job->diag.n);
    } else {
        /* the main file could not be read: no diag line, say why */
        char *line = xasprintf("%s: %s", d->config_path, err_str(rc));
        const char *lines[1] = {line};
        w->cb(w->arg, ERR_CONFIG, NULL, lines, 1);
        free(line);
    }
}

/* Puts a loaded snapshot in force (or logs why not). 0 or the load's code. */
static int reload_apply(struct daemon *d, struct reload_job *job)
{
    struct config *cfg = job->cfg;

    if (job->rc < 0) {
        for (size_t i = 0; i < job->diag.n; i++)
            log_error(LOG_CONFIG, "%s", job->diag.lines[i]);
        if (job->diag.n == 0)
            log_error(LOG_CONFIG, "%s: %s", d->config_path, err_str(job->rc));
        log_error(LOG_MAIN, "reload failed, keeping the previous configuration");
        notify_ready(d, "reload failed, keeping the previous configuration");
        return job->rc;
    }
    /* [tlsalpn01] listen: the new addresses are bound before the old ones
     * close; a bind failure refuses the whole reload */
    if (d->mgr != NULL && !config_strv_equal(&cfg->tlsalpn01.listen, &d->cfg->tlsalpn01.listen)) {
        char *why = NULL;
        int rc = manager_tlsalpn_listen(d->mgr, &cfg->tlsalpn01.listen, &why);
        if (rc < 0) {
            log_error(LOG_CONFIG, "%s", why);
            config_diag_add(&job->diag, "%s", why);
            free(why);
            log_error(LOG_MAIN, "reload failed, keeping the previous configuration");
            notify_ready(d, "reload failed, keeping the previous configuration");
            return ERR_CONFIG;
        }
    }
    job->cfg = NULL;
    if (strcmp(cfg->daemon.state_dir, d->cfg->daemon.state_dir) != 0)
        log_warn(LOG_MAIN, "daemon.state_dir changed to %s: takes effect at the next restart",
                 cfg->daemon.state_dir);
    if (!config_strv_equal(&cfg->http01.listen, &d->cfg->http01.listen))
        log_warn(LOG_MAIN, "http01.listen changed: takes effect at the next restart");
    if (!config_strv_equal(&cfg->api.listen, &d->cfg->api.listen))
        log_warn(LOG_MAIN, "api.listen changed: takes effect at the next restart");
    api_set_files(d->api, cfg->api.tokens_file, cfg->api.certificate);
    budget_plan(d, cfg, d->fds.limit);
    if (strcmp(cfg->daemon.control_socket, d->cfg->daemon.control_socket) != 0)
        log_warn(LOG_MAIN, "daemon.control_socket changed to %s: takes effect at the next restart",
                 cfg->daemon.control_socket);
    log_set_level(cfg->daemon.log_level);
    if (d->mgr != NULL)
        manager_reload(d->mgr, cfg);
    job->old = config_unref_last(d->cfg); /* freed off the loop: reload_tidy */
    d->cfg = cfg;
    log_info(LOG_MAIN, "reloaded: %zu %s", cfg->n_certs,
             cfg->n_certs == 1 ? "certificate" : "certificates");
    notify_ready(d, NULL);
    return 0;
}

static void reload_start(struct daemon *d, const char *origin);

/* Answers the requests waiting for the next reload with -ECANCELED. */
static void reload_drop_waiting(struct daemon *d)
{
    struct reload_job none = {.rc = -ECANCELED};

    for (size_t i = 0; i < d->n_waiting; i++)
        reload_answer(d, &none, -ECANCELED, &d->waiting[i]);
    d->n_waiting = 0;
    d->reload_again = false;
}

/* What a reload leaves behind, freed on the threadpool: the replaced
 * snapshot (or a refused new one) and, after it, the malloc arenas' free
 * pages given back. The snapshot was built on a threadpool thread, in that
 * thread's malloc arena; the old one freed leaves its pages there, and each
 * reload may use another thread's arena: 10,000 certificates grew the RSS
 * from 63 to 168 MiB over 5 reloads without malloc_trim. At 100,000
 * certificates the free takes ~50 ms and malloc_trim ~200 ms: done on the
 * loop they stopped it that long after each reload. The work touches only
 * the snapshots, which nothing else can reach any more. */
struct reload_tidy {
    uv_work_t work;         /* .data = self */
    struct config *dead[2]; /* owned */
};

static void reload_tidy_work(uv_work_t *w)
{
    struct reload_tidy *t = w->data;

    config_free(t->dead[0]);
    config_free(t->dead[1]);
    t->dead[0] = t->dead[1] = NULL;
    malloc_trim(0);
}

static void reload_tidy_done(uv_work_t *w, int status)
{
    struct reload_tidy *t = w->data;

    (void)status; /* never cancelled; a snapshot left over is freed here */
    config_free(t->dead[0]);
    config_free(t->dead[1]);
    free(t);
}

static void reload_tidy_start(struct daemon *d, struct config *a, struct config *b)
{
    struct reload_tidy *t = xcalloc(1, sizeof(*t));

    t->work.data = t;
    t->dead[0] = a;
    t->dead[1] = b;
    int rc = uv_queue_work(&d->loop, &t->work, reload_tidy_work, reload_tidy_done);
    assert(rc == 0); /* fails only for a NULL work_cb */
    (void)rc;
}

static void reload_done(uv_work_t *w, int status)
{
    struct reload_job *job = w->data;
    struct daemon *d = job->d;
    int rc;

    d->reload = NULL;
    if (status < 0 || d->stopping || d->manager_done) {
        rc = -ECANCELED; /* cancelled before it ran, or nobody to apply it to */
        log_info(LOG_MAIN, "%s: reload dropped: the daemon is stopping", job->origin);
    } else {
        rc = reload_apply(d, job);
    }
    for (size_t i = 0; i < job->n_waiters; i++)
        reload_answer(d, job, rc, &job->waiters[i]);
    reload_tidy_start(d, job->old, config_unref_last(job->cfg));
    config_diag_fini(&job->diag);
    free(job->waiters);
    free(job->path);
    free(job);
    if (d->stopping || d->manager_done)
        reload_drop_waiting(d);
    else if (d->reload_again)
        reload_start(d, "SIGHUP/control");
}

/* Starts a reload for the requests waiting (d->waiting moves to the job). */
static void reload_start(struct daemon *d, const char *origin)
{
    struct reload_job *job = xcalloc(1, sizeof(*job));

    job->work.data = job;
    job->d = d;
    job->path = xstrdup(d->config_path);
    job->origin = origin;
    config_diag_init(&job->diag);
    job->waiters = d->waiting;
    job->n_waiters = d->n_waiting;
    d->waiting = NULL;
    d->n_waiting = d->cap_waiting = 0;
    d->reload_again = false;
    sdnotify_reloading();
    log_info(LOG_MAIN, "%s: reloading %s", origin, d->config_path);
    int rc = uv_queue_work(&d->loop, &job->work, reload_work, reload_done);
    assert(rc == 0); /* fails only for a NULL work_cb */
    (void)rc;
    d->reload = job;
}

/* Asks for a reload; cb (may be NULL) is answered when it has been applied
 * or refused. */
static void reload_request(struct daemon *d, const char *origin, control_reply_cb cb, void *arg)
{
    if (cb != NULL) {
        d->waiting =
            xreallocarray_grow(d->waiting, &d->cap_waiting, d->n_waiting + 1, sizeof(*d->waiting));
        d->waiting[d->n_waiting++] = (struct reload_waiter){cb, arg};
    }
    if (d->reload != NULL) {
        if (!d->reload_again)
            log_info(LOG_MAIN, "%s: a reload is being read; another follows it", origin);
        d->reload_again = true;
        return;
    }
    reload_start(d, origin);
}

static void stop(struct daemon *d, const char *why)
{
    if (d->stopping) {
        log_info(LOG_MAIN, "%s: already stopping", why);
        return;
    }
    d->stopping = true;
    log_info(LOG_MAIN, "%s: stopping", why);
    if (d->reload != NULL)
        (void)uv_cancel((uv_req_t *)&d->reload->work); /* else its end drops it */
    reload_drop_waiting(d);
    sdnotify_send("STOPPING=1");
    if (d->dry != NULL) {
        /* its manager borrows our manager's listeners: it ends first */
        d->stop_after_dry = true;
        dryrun_stop(d->dry);
        return;
    }
    if (d->mgr != NULL && !d->manager_done)
        manager_stop(d->mgr); /* done_cb closes the rest */
    else
        close_signals(d);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;

    if (signum == SIGHUP) {
        if (d->stopping || d->manager_done) {
            log_info(LOG_MAIN, "SIGHUP ignored while stopping");
            return;
        }
        reload_request(d, "SIGHUP", NULL, NULL); /* logged */
    } else {
        stop(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
    }
}

/* ---- control socket handlers (run on the loop) */

static bool ctl_available(const struct daemon *d)
{
    return !d->stopping && !d->manager_done && d->mgr != NULL;
}

static int ctl_status(void *arg, json_t **out)
{
    struct daemon *d = arg;

    if (d->mgr == NULL || d->manager_done)
        return -ECANCELED;
    *out = manager_status(d->mgr);
    return *out != NULL ? 0 : -ENOMEM;
}

/* The manager's views written as the socket drains (manager_view_open). */
static int ctl_view(struct daemon *d, enum manager_view v, struct body_src *out)
{
    if (d->mgr == NULL || d->manager_done)
        return -ECANCELED;
    manager_view_open(d->mgr, v, out);
    return 0;
}

static int ctl_status_stream(void *arg, struct body_src *out)
{
    return ctl_view(arg, MANAGER_VIEW_STATUS, out);
}

/* One certificate (the control socket's GET /v1/certificates/NAME and the
 * API's routes of one certificate). */
static int ctl_cert(void *arg, const char *name, json_t **out)
{
    struct daemon *d = arg;

    if (d->mgr == NULL || d->manager_done)
        return -ECANCELED;
    return manager_status_one(d->mgr, name, out);
}

static int ctl_metrics_stream(void *arg, struct body_src *out)
{
    return ctl_view(arg, MANAGER_VIEW_METRICS, out);
}

static int ctl_renew(void *arg, const char *name, bool force, bool deploy_only, bool new_key,
                     char **err)
{
    struct daemon *d = arg;

    if (!ctl_available(d)) {
        *err = xstrdup("the daemon is stopping");
        return -EBUSY;
    }
    if (new_key && (!force || deploy_only)) {
        *err = xstrdup("new_key needs force (a new order)");
        return -EINVAL;
    }
    return manager_renew_new_key(d->mgr, name, force, deploy_only, new_key, err);
}

static void ctl_reload(void *arg, control_reply_cb cb, void *cb_arg)
{
    struct daemon *d = arg;

    if (!ctl_available(d)) {
        cb(cb_arg, -ECANCELED, "the daemon is stopping", NULL, 0);
        return;
    }
    reload_request(d, "control", cb, cb_arg);
}

static int ctl_metrics(void *arg, struct buf *out)
{
    struct daemon *d = arg;

    if (d->mgr == NULL || d->manager_done)
        return -ECANCELED;
    return manager_metrics(d->mgr, out);
}

struct dry_reply {
    struct daemon *d;
    control_dry_run_cb cb;
    void *cb_arg;
};

static void dry_done(void *arg, int status, int failed, const char *summary,
                     const char *const *errors, size_t n_errors)
{
    struct dry_reply *r = arg;
    struct daemon *d = r->d;

    d->dry = NULL;
    if (status == ERR_LOCKED)
        r->cb(r->cb_arg, -EBUSY, 0, NULL,
              "another dry run (certloop renew --dry-run without the daemon) is running", NULL, 0);
    else if (status == -ECANCELED)
        r->cb(r->cb_arg, -ECANCELED, failed, summary, "the daemon is stopping", NULL, 0);
    else
        r->cb(r->cb_arg, status, failed, summary, NULL, errors, n_errors);
    free(r);
    if (d->stop_after_dry) {
        d->stop_after_dry = false;
        if (d->mgr != NULL && !d->manager_done)
            manager_stop(d->mgr);
        else
            close_signals(d);
    }
}

static void ctl_dry_run(void *arg, const char *const *names, size_t n, control_dry_run_cb cb,
                        void *cb_arg)
{
    struct daemon *d = arg;

    if (!ctl_available(d)) {
        cb(cb_arg, -ECANCELED, 0, NULL, "the daemon is stopping", NULL, 0);
        return;
    }
    if (d->dry != NULL) {
        cb(cb_arg, -EBUSY, 0, NULL, "a dry run is already running in the daemon", NULL, 0);
        return;
    }
    struct dry_reply *r = xmalloc(sizeof(*r));
    *r = (struct dry_reply){d, cb, cb_arg};
    struct dryrun_opts o = {
        .loop = &d->loop,
        .config_path = d->config_path,
        .host = d->mgr,
        .names = names,
        .n_names = n,
        .done = dry_done,
        .arg = r,
    };
    if (n == 0)
        log_info(LOG_MAIN, "control: a dry run of every certificate");
    else
        log_info(LOG_MAIN, "control: a dry run of %zu %s", n,
                 n == 1 ? "certificate" : "certificates");
    d->dry = dryrun_start(&o);
}

/* Opens the control socket. 0, or an exit status: EXIT_TEMPFAIL when
 * another daemon answers on it. Other failures are logged and the daemon
 * goes on without it (renewals do not need it). */
static int open_control(struct daemon *d)
{
    struct control_handlers h = {
        .status = ctl_status,
        .status_stream = ctl_status_stream,
        .cert = ctl_cert,
        .renew = ctl_renew,
        .reload = ctl_reload,
        .metrics = ctl_metrics,
        .metrics_stream = ctl_metrics_stream,
        .dry_run = ctl_dry_run,
        .arg = d,
    };
    struct control_opts co = {
        .loop = &d->loop,
        .path = d->cfg->daemon.control_socket,
        .h = &h,
        .max_conns = d->fds.control,
    };
    int rc = control_open(&co, &d->ctl);

    if (rc == -EADDRINUSE) {
        d->ctl = NULL;
        log_error(LOG_MAIN, "another certloop daemon answers on %s", co.path);
        return EXIT_TEMPFAIL;
    }
    if (rc < 0) {
        d->ctl = NULL;
        log_error(LOG_MAIN,
                  "control socket %s: %s; running without it (status, renew and reload "
                  "will not reach this daemon)",
                  co.path, err_str(rc));
    }
    return 0;
}

/* The manager's events, for the API's GET /v1/events streams. */
static void manager_event(const char *json, void *arg)
{
    struct daemon *d = arg;

    api_event(d->api, json);
}

static int api_status(void *arg, json_t **out)
{
    return ctl_status(arg, out);
}

static int api_list(void *arg, struct body_src *out)
{
    return ctl_view(arg, MANAGER_VIEW_LIST, out);
}

static int api_fleet(void *arg, json_t **out)
{
    struct daemon *d = arg;

    if (d->mgr == NULL || d->manager_done)
        return -ECANCELED;
    *out = manager_fleet(d->mgr);
    return 0;
}

static int api_renew(void *arg, const char *name, bool force, char **err)
{
    return ctl_renew(arg, name, force, false, false, err);
}

static void api_plan(void *arg, const char *text, api_view_cb cb, void *cb_arg)
{
    struct daemon *d = arg;

    apiview_plan(&d->loop, d->config_path, text, cb, cb_arg);
}

static void api_test(void *arg, const char *name, api_view_cb cb, void *cb_arg)
{
    struct daemon *d = arg;

    apiview_test(&d->loop, d->config_path, name, cb, cb_arg);
}

/* Opens the HTTPS API when [api] listen has addresses. 0, or an exit
 * status: a port that cannot be bound is a configuration problem (78),
 * anything else temporary (75). */
static int open_api(struct daemon *d)
{
    const struct cfg_api *c = &d->cfg->api;
    struct api_handlers h = {
        .status = api_status,
        .list = api_list,
        .one = ctl_cert,
        .fleet = api_fleet,
        .renew = api_renew,
        .reload = ctl_reload,
        .plan = api_plan,
        .test = api_test,
        .dry_run = ctl_dry_run,
        .arg = d,
    };
    struct api_opts o = {
        .loop = &d->loop,
        .listen = (const char *const *)c->listen.v,
        .n_listen = c->listen.n,
        .tokens_file = c->tokens_file,
        .certificate = c->certificate,
        .store = d->store,
        .state_dir = d->cfg->daemon.state_dir,
        .config_path = d->config_path,
        .max_connections = d->fds.api,
        .h = &h,
    };

    if (c->listen.n == 0)
        return 0;
    int rc = api_open(&o, &d->api);
    if (rc < 0) {
        d->api = NULL;
        return rc == UV_EADDRINUSE || rc == UV_EACCES || rc == UV_EADDRNOTAVAIL ? EXIT_CONFIG
                                                                                : EXIT_TEMPFAIL;
    }
    return 0;
}

static int open_store(struct daemon *d)
{
    const char *dir = d->cfg->daemon.state_dir;
    bool pg = d->cfg->store.type == CFG_STORE_POSTGRESQL;
    /* with postgresql the state directory still holds this instance's own
     * files (the API's, the deploy sweep below): its lock keeps one daemon
     * per directory all the same */
    int rc = store_fs_open(&d->loop, dir, 0, pg ? &d->state_lock : &d->store);

    if (rc == ERR_LOCKED)
        return EXIT_TEMPFAIL; /* the store named the holder */
    if (rc < 0) {
        log_error(LOG_MAIN, "state directory %s: %s", dir, err_str(rc));
        return EXIT_CANTCREAT;
    }
    if (pg) {
        rc = store_open_config(&d->loop, d->cfg, 0, &d->store);
        if (rc < 0) {
            /* logged by the store (which file, or what the database said) */
            log_error(LOG_MAIN, "store postgresql: cannot open: %s", err_str(rc));
            return EXIT_TEMPFAIL;
        }
    }
    rc = store_sweep(d->store);
    if (rc > 0)
        log_info(LOG_STORE, "%s: removed %d leftover temporary %s", dir, rc,
                 rc == 1 ? "file" : "files");
    /* a process killed while deploying leaves its temp files beside the
     * deployed ones too (the state lock makes them ours) */
    for (size_t i = 0; i < d->cfg->n_certs; i++)
        for (size_t j = 0; j < d->cfg->certs[i].n_deploy; j++)
            (void)deploy_files_sweep(&d->cfg->certs[i].deploy[j]); /* logs each */
    return 0;
}

static void log_open_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    log_error(LOG_MAIN, "shutdown: handle still open: %s%s", uv_handle_type_name(h->type),
              uv_is_closing(h) ? " (closing)" : "");
}

/* Initialises the loop and our signal handles. On failure after the loop
 * exists, *loop_ok is true and the caller must still finish_loop(). */
static int start_loop(struct daemon *d, bool *loop_ok)
{
    struct {
        uv_signal_t *h;
        int signum;
    } sigs[] = {{&d->sighup, SIGHUP}, {&d->sigterm, SIGTERM}, {&d->sigint, SIGINT}};
    int rc = uv_loop_init(&d->loop);

    *loop_ok = false;
    if (rc < 0) {
        log_error(LOG_MAIN, "uv_loop_init: %s", err_str(rc));
        return rc;
    }
    *loop_ok = true;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        rc = uv_signal_init(&d->loop, sigs[i].h);
        assert(rc == 0); /* cannot fail on Linux once the loop exists */
        sigs[i].h->data = d;
        d->open_handles++;
    }
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        rc = uv_signal_start(sigs[i].h, on_signal, sigs[i].signum);
        if (rc < 0) {
            log_error(LOG_MAIN, "signal %d: %s", sigs[i].signum, err_str(rc));
            return rc;
        }
    }
    return 0;
}

/* Closes what is still open and runs the loop dry (STYLE §4). */
static void finish_loop(struct daemon *d)
{
    close_signals(d);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    /* every write has called back: a database store closes its connection
     * on the loop (the file store has nothing there) */
    store_close(d->store);
    d->store = NULL;
    uv_run(&d->loop, UV_RUN_DEFAULT);
    assert(d->open_handles == 0);
    if (uv_loop_close(&d->loop) != 0) {
        uv_walk(&d->loop, log_open_handle, NULL);
        assert(!"uv_loop_close: handles left open at shutdown");
    }
}

int daemon_run(const struct daemon_opts *o)
{
    struct daemon d;
    struct sigaction sa;
    int rc;
    int code;

    memset(&d, 0, sizeof(d));
    d.config_path = o->config_path;
    d.once = o->once;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL); /* peers closing sockets are handled as errors */

    if (o->cfg != NULL) {
        d.cfg = config_ref(o->cfg);
        code = 0;
    } else {
        code = plan_load_config(o->config_path, stderr, &d.cfg);
    }
    if (code != 0)
        return code;
    log_set_level(d.cfg->daemon.log_level);
    /* before anything opens a descriptor: caps from the real budget */
    budget_plan(&d, d.cfg, fd_budget_raise());
    bool loop_ok;
    rc = start_loop(&d, &loop_ok);
    if (rc < 0) {
        code = EXIT_TEMPFAIL;
        if (loop_ok)
            finish_loop(&d);
        goto out;
    }
    /* after the loop exists: a database store puts its connection on it */
    code = open_store(&d);
    if (code != 0) {
        finish_loop(&d);
        goto out;
    }

    struct manager_opts mo = {
        .loop = &d.loop,
        .cfg = d.cfg,
        .store = d.store,
        .once = d.once,
        .http01_max_connections = d.fds.http01,
        .done = manager_done,
        .event = manager_event,
        .arg = &d,
    };
    rc = manager_start(&mo, &d.mgr);
    if (rc < 0) {
        /* the manager logged what failed (a listener that cannot bind...) */
        log_error(LOG_MAIN, "cannot start: %s", err_str(rc));
        d.mgr = NULL;
        /* A port held by a web server stays held: restarting cannot help
         * (the unit's RestartPreventExitStatus names 78), the config must
         * change, as the listener's message explains. */
        code = rc == UV_EADDRINUSE ? EXIT_CONFIG : EXIT_TEMPFAIL;
        finish_loop(&d);
        goto out;
    }
    if (!d.once) {
        code = open_control(&d);
        if (code != 0) {
            stop(&d, "control socket");
            finish_loop(&d); /* runs the manager's stop to its end */
            goto out;
        }
        code = open_api(&d);
        if (code != 0) {
            stop(&d, "api");
            finish_loop(&d);
            goto out;
        }
    }
    log_info(LOG_MAIN, "certloop %s started%s: %s, %zu %s, state %s", CERTLOOP_VERSION,
             d.once ? " (--once)" : "", d.config_path, d.cfg->n_certs,
             d.cfg->n_certs == 1 ? "certificate" : "certificates", d.cfg->daemon.state_dir);
    if (!d.once)
        notify_ready(&d, NULL);

    uv_run(&d.loop, UV_RUN_DEFAULT);
    finish_loop(&d);
    assert(d.manager_done);
    if (d.once)
        code = d.failed == 0 && !d.stopping ? 0 : 1;
    else
        code = d.stopping ? 0 : 1;
    log_info(LOG_MAIN, "stopped");
out:
    store_close(d.store);
    store_close(d.state_lock);
    if (d.cfg != NULL)
        config_unref(d.cfg);
    assert(d.reload == NULL && d.n_waiting == 0); /* uv_run waited for the reload */
    free(d.waiting);
    return code;
}
