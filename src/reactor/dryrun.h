/* `renew --dry-run` inside the running daemon (POST /v1/dry-run on the
 * control socket): a second manager on the daemon's loop orders from each
 * CA's staging directory, answers http-01 and tls-alpn-01 through the
 * daemon's own listeners, and keeps nothing: STATE/dry-run holds only its
 * staging accounts afterwards. The CLI without a daemon runs the same
 * configuration itself (main.c) and shares dryrun_clean. */
#ifndef CERTLOOP_REACTOR_DRYRUN_H
#define CERTLOOP_REACTOR_DRYRUN_H

#include <stddef.h>
#include <uv.h>

struct manager;
struct dryrun;

/* Exactly once, on the loop. status 0: the dry run ran; failed is how many
 * certificates failed, summary their lines ("NAME: issued, expires ...",
 * "NAME: failed: ..."). ERR_CONFIG: errors[] say why it could not start (the
 * file does not load now, an unknown name, a CA without staging). ERR_LOCKED:
 * another dry run holds STATE/dry-run. -ECANCELED: stopped (summary: what had
 * ended). Strings are borrowed for the call. */
typedef void (*dryrun_done_cb)(void *arg, int status, int failed, const char *summary,
                               const char *const *errors, size_t n_errors);

struct dryrun_opts {
    uv_loop_t *loop;
    const char *config_path;  /* copied: read again, off the loop */
    struct manager *host;     /* borrowed: its listeners answer the challenges */
    const char *const *names; /* copied; n_names == 0: every certificate with a CA */
    size_t n_names;
    dryrun_done_cb done;
    void *arg;
};

/* Starts it (the file is read on the threadpool). Never fails. */
struct dryrun *dryrun_start(const struct dryrun_opts *o);
/* Stops it early (orders cancelled as at a daemon stop); done still runs
 * once, later. Afterwards the host may stop. */
void dryrun_stop(struct dryrun *dr);

/* Removes what a dry run stored under dir (STATE/dry-run): certificates,
 * orders, history, alerts, outbox; its staging accounts stay (the staging
 * CA sees one account). Blocking: off the loop in the daemon. Logs what
 * cannot be removed. */
void dryrun_clean(const char *dir);

#endif
