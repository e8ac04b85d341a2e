/* Deploy actions (DESIGN "Deploy and events"): after each issuance the
 * [[certificate.NAME.deploy]] actions run in order. `files` writes any of
 * cert, chain, fullchain, key, bundle (key + fullchain) and pkcs12, each one
 * atomically (store_write_atomic) with its mode and owner; `exec` runs a
 * command (argv, never a shell) with a timeout and the CERTLOOP_* and
 * certbot RENEWED_* variables in its environment. */
#ifndef CERTLOOP_DEPLOY_DEPLOY_H
#define CERTLOOP_DEPLOY_DEPLOY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "config/config.h"
#include "store/store.h"

/* ---- files --------------------------------------------------------------- */

enum deploy_file {
    DEPLOY_FILE_KEY,
    DEPLOY_FILE_BUNDLE,
    DEPLOY_FILE_PKCS12,
    DEPLOY_FILE_CERT,
    DEPLOY_FILE_CHAIN,
    DEPLOY_FILE_FULLCHAIN,
    DEPLOY_FILE__MAX
};

/* The path configured for one kind of file, or NULL. */
const char *deploy_file_path(const struct cfg_deploy *d, enum deploy_file f);
/* "key", "bundle", "pkcs12", "cert", "chain", "fullchain". */
const char *deploy_file_name(enum deploy_file f);
/* True for the files that hold the private key (key, bundle, pkcs12). */
bool deploy_file_is_secret(enum deploy_file f);
/* The mode a file gets: the configured `mode` when there is one, else
 * 0644 for certificates and, for the secret files, 0600, or 0640 when a
 * group is configured (the reason to name a group is to let it read). */
mode_t deploy_file_mode(const struct cfg_deploy *d, enum deploy_file f);
/* Checks the modes of every configured file: nothing may be writable by
 * others, and no secret file readable by others or writable by its group.
 * 0, or ERR_DEPLOY with *err (owned) saying which file and why. */
int deploy_files_check(const struct cfg_deploy *d, char **err);

/* Writes every file the `files` action d configures from the generation c
 * (c->key_pem must be loaded when a secret file is configured). Blocking:
 * run it off the loop (store_job_start, or deploy_files_start below); it
 * does not log. Secret files (key, bundle, pkcs12) are written before the
 * certificates. Stops at the first failure: returns < 0 and *err (owned)
 * names the path and step ("/etc/nginx/tls/www.key: rename: Permission
 * denied"); files already replaced stay replaced. d and c are borrowed. */
int deploy_files_sync(const struct cfg_deploy *d, const struct store_cert *c, char **err);

/* Runs deploy_files_sync on the threadpool. name (the certificate, for the
 * log) and d, c are copied, so they need not outlive the call. On the loop
 * the result is logged (`deploy cert=NAME files: ...`) and cb(status, arg)
 * runs exactly once, never from inside _start; after deploy_files_cancel it
 * never runs (the copy frees itself once the thread is done). */
struct deploy_files;
typedef void (*deploy_files_cb)(int status, void *arg);
int deploy_files_start(uv_loop_t *loop, const char *name, const struct cfg_deploy *d,
                       const struct store_cert *c, deploy_files_cb cb, void *arg,
                       struct deploy_files **out);
void deploy_files_cancel(struct deploy_files *op);

/* ---- exec ---------------------------------------------------------------- */

/* What a hook learns about the certificate. All borrowed during the call. */
struct deploy_env {
    const char *name;           /* CERTLOOP_NAME: the certificate's name */
    const char *const *domains; /* CERTLOOP_DOMAINS, RENEWED_DOMAINS (space-separated) */
    size_t n_domains;
    const char *cert_dir; /* CERTLOOP_CERT_DIR, RENEWED_LINEAGE: the generation */
    const char *event;    /* CERTLOOP_EVENT ("issued", "renewed"), or NULL */
};

struct deploy_exec_result {
    int64_t exit_status; /* when the command exited */
    int term_signal;     /* when a signal ended it, else 0 */
    bool timed_out;      /* we killed it after timeout_s */
};

/* status: 0 (exit 0), ERR_HOOK (non-zero exit or a signal), ERR_TIMEOUT.
 * res is borrowed during the callback. */
typedef void (*deploy_done_cb)(int status, const struct deploy_exec_result *res, void *arg);

struct deploy_exec;

/* Spawns d->command (argv[0] looked up in PATH, no shell) in its own
 * process group with stdin on /dev/null; stdout and stderr are logged line
 * by line at info as `deploy cert=NAME cmd=PROG: LINE` (64 KiB at most,
 * the rest dropped with a note). After d->timeout_s (default 60) the group
 * gets SIGTERM, then SIGKILL 5 s later. The environment is ours plus
 * CERTLOOP_NAME, CERTLOOP_DOMAINS, CERTLOOP_CERT_DIR, CERTLOOP_EVENT,
 * RENEWED_LINEAGE and RENEWED_DOMAINS. The outcome is logged.
 * STYLE §4: < 0 synchronously (spawn failed, logged) and no callback; else
 * cb exactly once on the loop. d and env are borrowed during the call only.
 * *out (optional) lets the owner cancel. */
int deploy_exec_start(uv_loop_t *loop, const struct cfg_deploy *d, const struct deploy_env *env,
                      deploy_done_cb cb, void *arg, struct deploy_exec **out);
/* The callback never runs after this. A command still running gets SIGTERM
 * (SIGKILL 5 s later); the op frees itself once the command is gone and
 * its handles are closed. */
void deploy_exec_cancel(struct deploy_exec *op);

#endif
