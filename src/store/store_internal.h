/* Internals of the store shared by its .c files and its unit tests only. */
#ifndef CERTLOOP_STORE_STORE_INTERNAL_H
#define CERTLOOP_STORE_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/store.h"

/* Writes all of data to fd (short writes and EINTR retried). 0 or -errno. */
int store_write_all(int fd, const void *data, size_t len);
/* Gives the open file fd its mode, writes all of data, fsyncs and closes it
 * (fd is closed whatever happens). 0, or -errno with *step naming the step
 * that failed ("chmod", "write", "fsync", "close"). */
int store_fd_complete(int fd, mode_t mode, const void *data, size_t len, const char **step);
/* store_fd_complete, with the fsync only when sync (the group commit syncs
 * the whole file system once for a batch instead, see fs.c). */
int store_fd_fill(int fd, mode_t mode, const void *data, size_t len, bool sync, const char **step);

/* Removes the directory entry `name` under parent (a directory fd) and, when it is a
 * directory, everything in it (at most a few levels deep: generations are
 * flat). 0 or -errno. */
int store_remove_tree_at(int parent, const char *name);

/* lineage.c: a generation written out for hooks by a backend that keeps
 * none on disk. store_lineage_write (blocking, never logs) writes
 * root/NAME/GENERATION/ (key.pem 0600, cert.pem, chain.pem and
 * fullchain.pem 0644, privkey.pem -> key.pem; every directory 0700)
 * complete in a temp directory, renames it into place (swapped whole when
 * it is there already), then removes every other entry of root/NAME;
 * *dir_out (owned) is the directory. store_lineage_clear removes all of
 * root's content (start-up) and says how many generations went.
 * store_lineage_job_start runs the write on the threadpool for
 * store_lineage_start (c is copied; result->lineage is the directory). */
int store_lineage_write(const char *root, const char *name, const struct store_cert *c,
                        char **dir_out, char **err);
int store_lineage_clear(const char *root);
int store_lineage_job_start(struct store *s, const char *root, const char *name,
                            const struct store_cert *c, store_cb cb, void *arg);

/* Test hook: called by store_commit_file (so store_write_atomic too) after the temp file is
 * complete (written, synced, closed) and before the rename, with the temp path. Lets a unit test
 * stat the temp file. NULL removes it. Not thread-safe: tests only. */
typedef void (*store_before_rename_fn)(const char *tmp_path, void *arg);
void store_test_set_before_rename(store_before_rename_fn fn, void *arg);

/* ---- the file backend's blocking layer (store_state.c, fs_records.c) ----
 *
 * Each takes the state directory (borrowed). Writers block (fsync): fs.c
 * runs them on the threadpool; they never log and describe a failure in
 * *err (owned, may be NULL) as "PATH: STEP: REASON". Readers are the
 * inline reads behind the store_*_read operations and log like them. */
int store_fs_account_read(const char *state_dir, const char *ca, char **key_pem,
                          char **account_json);
int store_fs_account_write(const char *state_dir, const char *ca, const char *key_pem,
                           const char *account_json, char **err);
/* Gives accounts/CA and its account files to uid:gid, and accounts/ too
 * while root owns it (for STORE_FS_AS_OWNER: a command run as root writes
 * what the daemon, running as the state directory's owner, must read).
 * 0, or the first failure with *err (owned, may be NULL) as
 * "PATH: chown: REASON". */
int store_fs_account_chown(const char *state_dir, const char *ca, uid_t uid, gid_t gid, char **err);
int store_fs_account_next_read(const char *state_dir, const char *ca, char **key_pem);
int store_fs_account_next_write(const char *state_dir, const char *ca, const char *key_pem,
                                char **err);
int store_fs_account_rollover(const char *state_dir, const char *ca, const char *key_pem,
                              const char *account_json, char **err);
int store_fs_account_retire(const char *state_dir, const char *ca, int64_t t, char **err);
/* The file backend's store_cert_current_gen: the `current` link only. */
int store_fs_cert_current_gen(const char *state_dir, const char *name, char **gen);
int store_fs_cert_read_current(const char *state_dir, const char *name, bool with_key,
                               struct store_cert *out);
int store_fs_cert_list(const char *state_dir, const char *name, char ***gens, size_t *n);
/* *mark_rc (may be NULL) gets the redeploy mark's status when p asks for it. */
int store_fs_cert_write(const char *state_dir, const struct store_cert_put *p, int *mark_rc,
                        char **generation_out, char **err);
/* A generation written in three steps (store_fs_cert_write runs them with
 * their fsyncs; fs.c's group commit runs each step over a batch with
 * `sync` false and one syncfs(2) between the steps). A failed step
 * removes the generation; g is then empty. */
struct store_fs_gen {
    char *name_dir, *gen, *gen_dir; /* owned */
    bool published;                 /* `current` names gen */
};
/* 1: certs/NAME, a new generation directory, key, cert, chain, fullchain
 * and the privkey.pem link. */
int store_fs_gen_stage(const char *state_dir, const struct store_cert_put *p, bool sync,
                       struct store_fs_gen *g, char **err);
/* 2: meta.json (its presence marks the generation complete), and the
 * redeploy mark when p asks for it (its status in *mark_rc). */
int store_fs_gen_seal(const char *state_dir, const struct store_cert_put *p, bool sync,
                      struct store_fs_gen *g, int *mark_rc, char **err);
/* 3: `current` renamed to the generation. */
int store_fs_gen_publish(struct store_fs_gen *g, bool sync, char **err);
/* After 3: prunes older generations, hands out the generation's name. */
void store_fs_gen_finish(struct store_fs_gen *g, int keep, bool sync, char **generation_out);
/* Removes an unpublished generation's directory; frees g. */
void store_fs_gen_abort(struct store_fs_gen *g);
void store_fs_gen_fini(struct store_fs_gen *g);
int store_fs_cert_prune(const char *state_dir, const char *name, int keep, char **err);
int store_fs_note_read(const char *state_dir, const char *name, const char *generation,
                       const char *note, char **json);
int store_fs_note_write(const char *state_dir, const char *name, const char *generation,
                        const char *note, const char *json, char **err);
int store_fs_order_read(const char *state_dir, const char *name, char **json);
int store_fs_order_write(const char *state_dir, const char *name, const char *json, char **err);
int store_fs_order_settle(const char *state_dir, const char *name, char **err);
/* The halves of store_fs_order_write: the temp file (*tmp_out; fsynced only when sync),
 * then (for the group commit) its rename without the directory's sync. */
int store_fs_order_stage(const char *state_dir, const char *name, const char *json, bool sync,
                         char **tmp_out, char **err);
int store_fs_order_rename(const char *state_dir, const char *name, const char *tmp, char **err);
/* An order file written where none is (the group commit's one-step order
 * put: durable at the batch's next sync; a crash before it may leave the
 * file without its content, which acme_order_resume_load reads as no
 * order). -EEXIST (nothing written, no error set) when there is one: it is
 * replaced with store_fs_order_stage and store_fs_order_rename instead.
 * *path_out (owned) names the file written. */
int store_fs_order_create(const char *state_dir, const char *name, const char *json,
                          char **path_out, char **err);
/* store_fs_order_settle and store_fs_redeploy_mark, syncing only when sync. */
int store_fs_order_settle_opt(const char *state_dir, const char *name, bool sync, char **err);
int store_fs_redeploy_mark_opt(const char *state_dir, const char *name, bool sync, char **err);
bool store_fs_redeploy_marked(const char *state_dir, const char *name);
int store_fs_redeploy_mark(const char *state_dir, const char *name, char **err);
int store_fs_history_read(const char *state_dir, const char *name, char **text, size_t *len);
/* Appends lines[i] to the history of names[i], in order. */
int store_fs_history_append(const char *state_dir, char *const *names, char *const *lines, size_t n,
                            char **err);
/* The same, with the fdatasync of each line only when sync. */
int store_fs_history_append_opt(const char *state_dir, char *const *names, char *const *lines,
                                size_t n, bool sync, char **err);
/* STATE/alerts/NAME.KIND (KIND: store_alert_name, so an "expiring" alert
 * is NAME.expiring as before kinds existed), or STATE/alerts when name is
 * NULL (owned). */
char *store_fs_alert_path(const char *state_dir, const char *name, enum store_alert kind);
int store_fs_alert_read(const char *state_dir, const char *name, enum store_alert kind, int64_t *t);
int store_fs_alert_write(const char *state_dir, const char *name, enum store_alert kind, int64_t t,
                         char **err);
/* STATE/hubs/NAME.last-event-id: the pull client's cursor per hub. */
int store_fs_hub_cursor_read(const char *state_dir, const char *hub, char **id);
int store_fs_hub_cursor_write(const char *state_dir, const char *hub, const char *id, char **err);
int store_fs_alerts_sweep(const char *state_dir, bool (*known)(const char *name, void *arg),
                          void *arg);
/* STATE/outbox[/dead][/ID.json] (owned). */
char *store_fs_outbox_path(const char *state_dir, bool dead, const char *id);
int store_fs_outbox_load(const char *state_dir, store_outbox_each_fn each, void *arg);
/* fs_api.c: the API's bootstrap certificate under state_dir/api/. */
int store_fs_api_bootstrap_read(const char *state_dir, char **cert_pem, char **key_pem);
int store_fs_api_bootstrap_put(const char *state_dir, const char *cert_pem, const char *key_pem);
int store_fs_outbox_write(const char *state_dir, const char *id, const char *text, char **err);
/* Removes a delivery; with dead_text, first writes it to the dead letters. */
int store_fs_outbox_remove(const char *state_dir, const char *id, const char *dead_text,
                           char **err);
int store_fs_sweep(const char *state_dir);
/* Tests: how many group-commit batches the file store s has started, or -1 when s is not a
 * file store or writes each record alone (no usable syncfs). */
long store_fs_group_batches(struct store *s);
/* Removes path (absent is fine) and syncs dir, the directory holding it. */
int store_fs_remove(const char *dir, const char *path, char **err);

#endif
