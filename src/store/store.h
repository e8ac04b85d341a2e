/* The state directory (DESIGN "State directory"): accounts, certificate
 * generations behind a `current` symlink, orders in flight, and the lock
 * that keeps a second daemon out. Every write is temp file (O_EXCL, same
 * directory, final mode from the start) + write + fsync + rename + fsync of
 * the directory; private keys are never readable by others at any moment.
 *
 *   STATE/lock
 *   STATE/accounts/CA/account.json, account.key          (0600)
 *   STATE/certs/NAME/current -> GENERATION               (rename(2) of a temp symlink)
 *   STATE/certs/NAME/GENERATION/cert.pem chain.pem fullchain.pem key.pem meta.json
 *   STATE/orders/NAME.json
 *
 * The *_sync functions do blocking I/O: call them from uv_queue_work (the
 * store_job helpers below do that) or before the loop runs. They never log
 * (STYLE §5: a work_cb touches only its job); the *_err variants also hand
 * back an owned message "PATH: STEP: REASON" for the caller to log on the
 * loop. The read functions are inline page-cache reads (STYLE §5) and log
 * their own failures, except -ENOENT, which is a normal answer. */
#ifndef CERTLOOP_STORE_STORE_H
#define CERTLOOP_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

/* ---- atomic files -------------------------------------------------------- */

/* Writes data to path atomically with the given mode (and owner/group unless
 * (uid_t)-1 / (gid_t)-1). On failure nothing at path changes and no temp
 * file is left; returns -errno and, if failed_step is not NULL, names the
 * step ("open", "write", "fsync", "chown", "rename", "fsync-dir"). */
int store_write_atomic(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
                       gid_t gid, const char **failed_step);
/* The two halves of store_write_atomic, for writers that must replace
 * several files all or nothing: store_stage_file writes a complete,
 * fsynced temp file beside path (*tmp_out owned; on failure nothing is
 * left), store_commit_file renames it over path and syncs the directory
 * (on a failed rename the temp file is removed). */
int store_stage_file(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
                     gid_t gid, char **tmp_out, const char **failed_step);
int store_commit_file(const char *tmp, const char *path, const char **failed_step);
/* n random lowercase hex digits and a NUL into out (n + 1 bytes), for
 * temp and backup file names. */
void store_rand_hex(char *out, size_t n);
/* mkdir -p with mode for each created component. */
int store_mkdirs(const char *path, mode_t mode);
/* fsync(2) of a directory, so a rename or unlink inside it is durable. */
int store_fsync_dir(const char *dir);
/* True when s is usable as one path component of the state directory: not
 * empty, at most 200 bytes, no '/', no leading '.', no control characters.
 * Names of certificates, CAs and orders are checked with it (-EINVAL). */
bool store_name_ok(const char *s);
/* Reads a whole file capped at STORE_FILE_MAX bytes into an owned
 * NUL-terminated string. -errno or ERR_TOO_BIG; logs nothing. */
#define STORE_FILE_MAX (1024 * 1024)
int store_read_file(const char *path, char **out, size_t *len_out);

/* ---- the state directory ------------------------------------------------- */

struct store;

/* Opens (creating 0700 if missing) the state directory and takes its lock
 * (flock on STATE/lock). ERR_LOCKED, with the holder's pid in the log, if
 * another process has it. Owned; store_close releases the lock. */
int store_open(const char *state_dir, struct store **out);
void store_close(struct store *s);
const char *store_dir(const struct store *s);

/* Account: key PEM and account JSON ({"url":..., "directory":...}). Reads
 * return -ENOENT when absent. Owned out strings. */
int store_account_read(const char *state_dir, const char *ca, char **key_pem, char **account_json);
int store_account_write_sync(const char *state_dir, const char *ca, const char *key_pem,
                             const char *account_json);
/* The key is written first, the JSON last: account.json marks a complete
 * account. *err (owned, may be NULL) describes a failure. */
int store_account_write_sync_err(const char *state_dir, const char *ca, const char *key_pem,
                                 const char *account_json, char **err);

/* A stored certificate generation. */
struct store_cert {
    char *dir; /* STATE/certs/NAME/GENERATION (owned) */
    char *generation;
    char *cert_pem, *chain_pem, *fullchain_pem, *key_pem; /* owned, NUL-terminated */
    char *
        meta_json; /* owned;
                      {"domains":[..],"ca":..,"key":..,"not_before":..,"not_after":..,"issued_at":..}
                    */
};
void store_cert_fini(struct store_cert *c);

/* Reads STATE/certs/NAME/current. -ENOENT if there is none. Keys included
 * only when with_key. Pure file reads (capped at 1 MiB each). */
int store_cert_read_current(const char *state_dir, const char *name, bool with_key,
                            struct store_cert *out);
/* Writes a new generation directory (0700, key 0600, others 0644) then
 * swaps `current` to it by rename(2); older generations beyond the last
 * `keep` are removed. *generation_out (owned) names the new one.
 * Generation names are "YYYYMMDDTHHMMSSZ-xxxx" (UTC, 4 hex digits) and sort
 * by age. Each generation also holds privkey.pem -> key.pem so certbot hooks
 * that read $RENEWED_LINEAGE/privkey.pem work; meta.json is written last and
 * marks the generation complete. chain_pem NULL writes an empty chain.pem,
 * meta_json NULL writes "{}". */
int store_cert_write_sync(const char *state_dir, const char *name, const char *cert_pem,
                          const char *chain_pem, const char *fullchain_pem, const char *key_pem,
                          const char *meta_json, int keep, char **generation_out);
int store_cert_write_sync_err(const char *state_dir, const char *name, const char *cert_pem,
                              const char *chain_pem, const char *fullchain_pem, const char *key_pem,
                              const char *meta_json, int keep, char **generation_out, char **err);

/* Orders in flight: STATE/orders/NAME.json holds the order URL, the key PEM
 * of the pending certificate key (0600) and whatever the order machine needs
 * to resume. -ENOENT when absent. */
int store_order_read(const char *state_dir, const char *name, char **json);
int store_order_write_sync(const char *state_dir, const char *name, const char *json);
int store_order_write_sync_err(const char *state_dir, const char *name, const char *json,
                               char **err);
/* Removing an absent order is not an error (returns 0). */
int store_order_remove_sync(const char *state_dir, const char *name);

/* A deployment of the stored generation that has not succeeded yet (a
 * deploy-only run: changed deploy actions, `renew --deploy-only`, a retry):
 * STATE/orders/NAME.redeploy (empty, 0600), written before its first file
 * is touched and removed with its commit, so that a restart after a crash
 * or a failure deploys the stored generation again (an issuance has its
 * order file for that). mark and clear return 0 or -errno (clearing an
 * absent mark is 0); marked is a short inline check. */
int store_redeploy_mark_sync(const char *state_dir, const char *name);
int store_redeploy_clear_sync(const char *state_dir, const char *name);
bool store_redeploy_marked(const char *state_dir, const char *name);

/* Removes leftover temp files and symlinks (".tmp-*") under the state
 * directory (STATE, accounts/CA, certs/NAME, certs/NAME/GEN, orders) and generation
 * directories that `current` does not point to and that have no meta.json
 * (a crash while writing them); called at start after the lock is taken.
 * Returns how many entries were removed (each one logged at info). */
int store_sweep_temp(const char *state_dir);

/* ---- off-loop execution -------------------------------------------------- */

/* Runs fn(arg) on the libuv threadpool and then done(status, arg) on the
 * loop (status = fn's return value, or UV_ECANCELED if libuv cancelled the
 * work before it ran). fn must touch only arg (no uv_*, no log). Async
 * contract: < 0 synchronously and no callback, else exactly one callback.
 * There is no cancel: work already on a thread cannot be stopped, so an
 * owner that goes away marks arg (a tombstone) and lets done free it. */
typedef int (*store_work_fn)(void *arg);
typedef void (*store_done_cb)(int status, void *arg);
int store_job_start(uv_loop_t *loop, store_work_fn fn, void *arg, store_done_cb done);

#endif
