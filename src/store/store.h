/* The store: everything certloop keeps between runs (accounts, certificate
 * generations, orders in flight, redeploy marks, expiry alerts, the webhook
 * outbox, ARI state) behind one interface, `struct store` and its vtable
 * `struct store_ops`. Callers hold a `struct store *` and never learn where
 * or how things are kept; nothing outside src/store/ builds a path inside
 * the state directory.
 *
 * Backends:
 *   files (store/fs.c, the default): the state directory of DESIGN.md:
 *     STATE/lock
 *     STATE/accounts/CA/account.json, account.key          (0600)
 *     STATE/certs/NAME/current -> GENERATION               (rename(2) of a temp symlink)
 *     STATE/certs/NAME/GENERATION/cert.pem chain.pem fullchain.pem key.pem
 *                                 privkey.pem -> key.pem, meta.json, NOTE.json
 *     STATE/orders/NAME.json, NAME.redeploy
 *     STATE/alerts/NAME.expiring, NAME.persist_expiring
 *     STATE/history/NAME.jsonl
 *     STATE/outbox/ID.json, STATE/outbox/dead/ID.json
 *   Every write is temp file (O_EXCL, same directory, final mode from the
 *   start) + write + fsync + rename + fsync of the directory; private keys
 *   are never readable by others at any moment. The writes of an issuance
 *   (order, generation, mark, settle, history) are group-committed: the
 *   same steps for a batch of them, with one syncfs(2) of the state
 *   directory between steps instead of the fsyncs (fs.c, and
 *   docs/ARCHITECTURE.md "Group commit").
 *
 * ---- The three kinds of operation ----
 *
 * 1. Reads (store_*_read, store_redeploy_marked, store_cert_list) are
 *    synchronous and are called on the loop thread, so they must not block:
 *    the file backend reads small local files (capped at 1 MiB, a
 *    page-cache read: STYLE §5); they log their own failures except
 *    -ENOENT, which is a normal answer.
 * 2. Start-up operations (store_sweep, store_alerts_sweep,
 *    store_outbox_load) run once, before the loop runs, and may block.
 * 3. Writes (store_*_start) are asynchronous and follow STYLE §4: < 0
 *    returned synchronously means nothing was queued and no callback
 *    follows; otherwise the callback runs exactly once, on the loop thread,
 *    never from inside _start, with (status, result, arg). There is no
 *    cancel: a write cannot be taken back, so an owner that goes away
 *    leaves a tombstone in arg and lets the callback free it. The file
 *    backend runs each write (or batch of writes) as one job on the libuv
 *    threadpool (store_job_start); the callback's result->error then names the path
 *    and the failing step ("PATH: STEP: REASON") for the caller to log.
 *    Writes on the same certificate are not ordered with each other:
 *    issue the next one from the callback of the previous.
 *
 * ---- What is atomic, and what a crash leaves ----
 *
 * Each of these is all or nothing, on its own, across a crash or power cut:
 *   - store_account_put_start: the key is written first and the account
 *     JSON last; the account exists (store_account_read) only once the JSON
 *     is in place. A crash between the two leaves a key without an account:
 *     read as absent, and the next setup writes a new key over it.
 *   - store_cert_put_start: the generation (every PEM and meta.json) is
 *     written complete, then made current in one step (the `current`
 *     symlink is replaced by rename(2)). A reader never sees half a
 *     generation or files from two generations. A crash before the swap
 *     leaves an incomplete, non-current generation that store_sweep
 *     removes; a crash after it leaves the new generation current (pruning
 *     of old ones may not have happened: the next put or prune does it).
 *     With mark_redeploy (a deployment no order covers: an import), the
 *     redeploy mark is written after the generation is complete and before
 *     the swap, so no crash can leave that generation current but unmarked
 *     (undeployed and forgotten); a crash before the swap leaves a mark on
 *     the old generation: the next start deploys it again, which is
 *     harmless.
 *   - store_account_rollover_start replaces the key (then the JSON), then
 *     forgets the next key: a crash in between leaves the account intact
 *     with a next key equal to its key, which the next rollover finds (as
 *     account.c did before the store had an interface).
 *   - store_account_retire_start puts the JSON aside first, then the key: a
 *     crash in between leaves no account (the JSON is what marks one).
 *   - store_history_append_start appends each line durably, in order.
 *   - store_order_put_start, store_redeploy_mark_start, store_alert_put_start,
 *     store_note_put_start, store_outbox_put_start, store_outbox_remove_start:
 *     each replaces or removes one record atomically.
 *   - store_order_settle_start removes the order and then the redeploy mark
 *     (the deployment's commit). A crash between the two leaves only the
 *     mark: the next start deploys the stored generation once more (deploy
 *     actions are idempotent), never orders again.
 *   - store_outbox_bury_start writes the dead copy, then removes the live
 *     one: a crash between leaves both, and the delivery is tried again at
 *     the next start (at least once, never lost).
 * Across operations nothing is atomic: the daemon orders its writes so that
 * every crash point leaves a state a restart resumes from (docs/ARCHITECTURE.md,
 * "Store", has the whole list for one issuance):
 *   order put -> [challenges] -> cert put (+ mark) -> [deploy] -> settle.
 *   Crash after order put: the order is resumed at the next start (same URL,
 *   same key). After cert put: current holds the new certificate; the order
 *   file (and the mark) are still there, so the next start redeploys the
 *   stored generation without a new order. After settle: nothing left to do.
 *
 * ---- Leases ----
 *
 * One run (order, store, deploy) per certificate at a time, across every
 * process sharing the store: with a shared store (store_shared) a run that
 * orders takes the certificate's lease first and releases it after its
 * settle; with the file backend the directory lock already gives that
 * guarantee and the manager takes none (docs/ARCHITECTURE.md, "Leases").
 * The file backend's lease is the state-directory lock (one daemon per
 * directory, taken by store_fs_open) plus an in-process table, so a take
 * only fails when this process already holds it (ERR_LOCKED). Each take
 * hands back a fencing token (result->fence) that grows with every take;
 * renew and release name it, and a stale token is refused (ERR_LOCKED).
 *
 * ---- How a non-file backend fits (PostgreSQL, issue 14) ----
 *
 * A backend is a struct that begins with `struct store` (ops, loop) and a
 * `struct store_ops` filled in with its functions; store_close calls
 * ops->close. For a backend whose storage is across a network:
 *   - Writes map one to one onto a query (or a short transaction) sent
 *     asynchronously on the loop (libpq: PQsendQueryParams, PQsocket
 *     watched by a uv_poll_t, results consumed with PQconsumeInput and
 *     PQgetResult), and the callback runs from that poll callback: never a
 *     blocking call on the loop thread. Operations listed above as atomic
 *     become one transaction each (cert put with its mark, settle).
 *   - Reads must not block either: the backend keeps an in-memory copy of
 *     the rows this instance uses (accounts, current generation per
 *     certificate, orders, marks, alerts), loaded at open (before the loop
 *     runs, where blocking is allowed) and kept current by its own writes
 *     and by LISTEN/NOTIFY from other instances. A read answers from that
 *     copy.
 *   - Start-up operations may use blocking calls (the loop does not run).
 *   - Leases become a row with an expiry and a fencing token (or an
 *     advisory lock); take/renew are queries with a callback; release is
 *     fire-and-forget (the lease also expires).
 *   - store_where names the record for messages (no paths); store_cert's
 *     `dir` and result->lineage are NULL unless the backend materialises
 *     the generation's files somewhere hooks can read them; otherwise it
 *     writes them out on demand (store_lineage_start, lineage.c).
 */
#ifndef CERTLOOP_STORE_STORE_H
#define CERTLOOP_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

/* ---- atomic files (any path; deploy and the file backend use them) ------- */

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
/* store_stage_file, with the temp file's fsync only when sync (a writer
 * that syncs its file systems once instead: struct store_fsset). */
int store_stage_file_opt(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
                         gid_t gid, bool sync, char **tmp_out, const char **failed_step);
/* store_commit_file without the directory sync, for a writer that renames
 * several files into one directory and then syncs it once
 * (store_fsync_dir) before it reports them written. */
int store_rename_file(const char *tmp, const char *path, const char **failed_step);
/* n random lowercase hex digits and a NUL into out (n + 1 bytes), for
 * temp and backup file names. */
void store_rand_hex(char *out, size_t n);
/* mkdir -p with mode for each created component. */
int store_mkdirs(const char *path, mode_t mode);
/* fsync(2) of a directory, so a rename or unlink inside it is durable. */
int store_fsync_dir(const char *dir);
/* Whether syncfs(2) reports write-back errors (Linux 5.8 and later) and
 * CERTLOOP_NO_SYNCFS is not set in the environment: only then may one
 * syncfs stand in for the fsyncs of the files and directories it covers. */
bool store_syncfs_reports(void);
/* The file systems of a writer's directories, to make several files and
 * renames durable with one syncfs(2) each instead of an fsync per file and
 * directory. Opened before the writes it must cover: syncfs reports a
 * write-back error only if it happened after its descriptor was opened. */
#define STORE_FSSET_MAX 8
struct store_fsset {
    int fd[STORE_FSSET_MAX]; /* owned: one directory on each file system */
    dev_t dev[STORE_FSSET_MAX];
    size_t n;
};
void store_fsset_init(struct store_fsset *s);
/* Adds the file system of dir (once per file system). false when syncfs
 * cannot stand in for fsync there (store_syncfs_reports, more than
 * STORE_FSSET_MAX file systems, dir not readable): the writer syncs each
 * file and directory itself. */
bool store_fsset_add(struct store_fsset *s, const char *dir);
/* syncfs of each file system: 0 or the first -errno. */
int store_fsset_sync(struct store_fsset *s);
void store_fsset_close(struct store_fsset *s);
/* True when s is usable as a name in the store: not empty, at most 200
 * bytes, no '/', no leading '.', no control characters. Names of
 * certificates, CAs and orders are checked with it (-EINVAL). */
bool store_name_ok(const char *s);
/* Reads a whole file capped at STORE_FILE_MAX bytes into an owned
 * NUL-terminated string. -errno or ERR_TOO_BIG; logs nothing. */
#define STORE_FILE_MAX (1024 * 1024)
int store_read_file(const char *path, char **out, size_t *len_out);

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

/* ---- the store ----------------------------------------------------------- */

struct store;
struct store_ops;
struct store_health;

/* Another process stored a new current generation of name (see
 * store_watch_set). */
typedef void (*store_watch_fn)(const char *name, void *arg);
/* The store is reachable again (see store_back_set). */
typedef void (*store_back_fn)(void *arg);

/* Every backend's struct begins with this. */
struct store {
    const struct store_ops *ops; /* borrowed: static */
    uv_loop_t *loop;             /* borrowed; NULL: reads only (store_*_start: -EINVAL) */
    /* Set by the backend at open: several daemons share this store
     * (PostgreSQL). Runs that order then take the certificate's lease, and
     * each daemon records which generation it deployed (store_deployed_*),
     * so that another's new generation is deployed here too. */
    bool shared;
    int64_t lease_ms; /* shared: how long a lease lasts unless renewed */
    store_watch_fn watch;
    void *watch_arg;
    store_back_fn back;
    void *back_arg;
};

/* What a write hands its callback; every pointer is borrowed for the call. */
struct store_result {
    const char *error;      /* on failure: "WHERE: STEP: REASON", or NULL */
    const char *generation; /* cert put: the new generation's name */
    const char *lineage;    /* cert put: a directory holding its files (hooks'
                               RENEWED_LINEAGE), or NULL */
    int mark_status;        /* cert put with mark_redeploy: the mark's own status */
    uint64_t fence;         /* lease take/renew: the fencing token */
};
typedef void (*store_cb)(int status, const struct store_result *r, void *arg);

/* A stored certificate generation. */
struct store_cert {
    char *dir;        /* owned: a directory holding this generation's files (the
                         file backend: STATE/certs/NAME/GENERATION), or NULL */
    char *generation; /* owned: "YYYYMMDDTHHMMSSZ-xxxx" (UTC, 4 hex digits), sorts by age */
    char *cert_pem, *chain_pem, *fullchain_pem, *key_pem; /* owned, NUL-terminated */
    char *meta_json; /* owned; {"domains":[..],"ca":..,"key":..,"not_before":..,"not_after":..,
                        "issued_at":..} */
};
void store_cert_fini(struct store_cert *c);

/* A new generation for store_cert_put_start; every pointer borrowed (copied). */
struct store_cert_put {
    const char *name;
    const char *cert_pem, *chain_pem, *fullchain_pem, *key_pem; /* chain NULL: empty */
    const char *meta_json;                                      /* NULL: "{}" */
    int keep;           /* generations kept besides current (at least 1) */
    bool mark_redeploy; /* also set the redeploy mark (result->mark_status) */
};

/* The events whose last sending time is kept (store_alert_read): each
 * repeats daily inside a window before a deadline, and a restart must not
 * send it again before the day has passed. */
enum store_alert {
    STORE_ALERT_EXPIRING,         /* "expiring": the certificate's notAfter */
    STORE_ALERT_PERSIST_EXPIRING, /* "persist_expiring": dns-persist-01's persist_until */
    STORE_ALERT__MAX
};

/* What store_where describes. */
enum store_what {
    STORE_WHERE_ROOT,        /* the store itself (name ignored) */
    STORE_WHERE_ACCOUNT,     /* name: a CA */
    STORE_WHERE_CERT,        /* name: a certificate */
    STORE_WHERE_ORDER,       /* name: a certificate's order in flight */
    STORE_WHERE_REDEPLOY,    /* name: a certificate's redeploy mark */
    STORE_WHERE_ALERTS,      /* name: a certificate's "expiring" alert; NULL: all alerts */
    STORE_WHERE_OUTBOX,      /* the outbox (name ignored) */
    STORE_WHERE_OUTBOX_DEAD, /* its dead letters (name ignored) */
};

/* One line of a certificate's history for store_history_append_start
 * (both borrowed, copied). */
struct store_history_line {
    const char *name; /* the certificate */
    const char *line; /* one record and its newline (reactor/history_file.c's format) */
};

/* Called by store_outbox_load for each stored delivery: id and text are
 * borrowed. Returns NULL when it took the delivery, or a short reason
 * (static) to have the record moved aside as dead. */
typedef const char *(*store_outbox_each_fn)(const char *id, const char *text, void *arg);

/* The vtable. Each entry mirrors the public function of the same name
 * below, which documents it; a backend implements every one. */
struct store_ops {
    const char *type; /* "files" */
    void (*close)(struct store *s);
    char *(*where)(struct store *s, enum store_what what, const char *name);
    int (*sweep)(struct store *s);
    /* accounts */
    int (*account_read)(struct store *s, const char *ca, char **key_pem, char **account_json);
    int (*account_put)(struct store *s, const char *ca, const char *key_pem,
                       const char *account_json, store_cb cb, void *arg);
    int (*account_next_read)(struct store *s, const char *ca, char **key_pem);
    int (*account_next_put)(struct store *s, const char *ca, const char *key_pem, store_cb cb,
                            void *arg);
    int (*account_rollover)(struct store *s, const char *ca, const char *key_pem,
                            const char *account_json, store_cb cb, void *arg);
    int (*account_retire)(struct store *s, const char *ca, int64_t t, store_cb cb, void *arg);
    /* generations */
    int (*cert_read_current)(struct store *s, const char *name, bool with_key,
                             struct store_cert *out);
    int (*cert_list)(struct store *s, const char *name, char ***gens, size_t *n);
    /* optional: store_cert_current_gen without reading the files */
    int (*cert_current_gen)(struct store *s, const char *name, char **gen);
    int (*cert_put)(struct store *s, const struct store_cert_put *p, store_cb cb, void *arg);
    int (*cert_prune)(struct store *s, const char *name, int keep, store_cb cb, void *arg);
    /* optional: NULL when store_cert's dir is always set (the file backend) */
    int (*lineage)(struct store *s, const char *name, const struct store_cert *c, store_cb cb,
                   void *arg);
    int (*note_read)(struct store *s, const char *name, const char *generation, const char *note,
                     char **json);
    int (*note_put)(struct store *s, const char *name, const char *generation, const char *note,
                    const char *json, store_cb cb, void *arg);
    /* orders in flight and redeploy marks */
    int (*order_read)(struct store *s, const char *name, char **json);
    int (*order_put)(struct store *s, const char *name, const char *json, store_cb cb, void *arg);
    int (*order_settle)(struct store *s, const char *name, store_cb cb, void *arg);
    bool (*redeploy_marked)(struct store *s, const char *name);
    int (*redeploy_mark)(struct store *s, const char *name, store_cb cb, void *arg);
    /* per-certificate history */
    int (*history_read)(struct store *s, const char *name, char **text, size_t *len);
    int (*history_append)(struct store *s, const struct store_history_line *v, size_t n,
                          store_cb cb, void *arg);
    /* expiry alerts */
    int (*alert_read)(struct store *s, const char *name, enum store_alert kind, int64_t *t);
    int (*alert_put)(struct store *s, const char *name, enum store_alert kind, int64_t t,
                     store_cb cb, void *arg);
    int (*alerts_sweep)(struct store *s, bool (*known)(const char *name, void *arg), void *arg);
    /* webhook outbox */
    int (*outbox_load)(struct store *s, store_outbox_each_fn each, void *arg);
    int (*outbox_put)(struct store *s, const char *id, const char *text, store_cb cb, void *arg);
    int (*outbox_remove)(struct store *s, const char *id, store_cb cb, void *arg);
    int (*outbox_bury)(struct store *s, const char *id, const char *text, store_cb cb, void *arg);
    /* hub event cursors (optional: NULL in a backend without them) */
    int (*hub_cursor_read)(struct store *s, const char *hub, char **id);
    int (*hub_cursor_put)(struct store *s, const char *hub, const char *id, store_cb cb, void *arg);
    /* leases */
    int (*lease_take)(struct store *s, const char *name, store_cb cb, void *arg);
    int (*lease_renew)(struct store *s, const char *name, uint64_t fence, store_cb cb, void *arg);
    void (*lease_release)(struct store *s, const char *name, uint64_t fence);
    /* shared stores (NULL otherwise) */
    int (*deployed_read)(struct store *s, const char *name, char **generation, bool *ok);
    int (*deployed_put)(struct store *s, const char *name, const char *generation, bool ok,
                        const char *error, store_cb cb, void *arg);
    void (*health)(struct store *s, struct store_health *out); /* NULL: always reachable */
    /* the HTTPS API's bootstrap certificate (optional: NULL in a backend
     * that keeps none) */
    int (*api_bootstrap_read)(struct store *s, char **cert_pem, char **key_pem);
    int (*api_bootstrap_put)(struct store *s, const char *cert_pem, const char *key_pem);
};

/* -- opening ---------------------------------------------------------------- */

/* Flags for store_fs_open. */
/* STORE_FS_SHARED: a short command beside a running daemon (plan, revoke,
 * account, imports): no lock taken, nothing created at open.
 * STORE_FS_AS_OWNER: a command run as root for a daemon that runs as the
 * state directory's owner (the systemd unit's certloop user): the accounts
 * it writes take that owner, else the daemon could not read them. */
#define STORE_FS_SHARED 0x1u
#define STORE_FS_AS_OWNER 0x2u

/* Opens the file backend on state_dir: creates it (0700) if missing, refuses
 * it when writable by group or others (ERR_BAD_STATE), takes its lock
 * (flock on STATE/lock; ERR_LOCKED, with the holder's pid in the log, if
 * another process has it). loop (borrowed, may be NULL for reads only)
 * runs the writes. Owned: store_close. */
int store_fs_open(uv_loop_t *loop, const char *state_dir, unsigned flags, struct store **out);
/* Opens the backend [store] names: the state directory ([daemon] state_dir,
 * flags and failures as store_fs_open) or PostgreSQL (conninfo_file and
 * encryption_key_file read, the database migrated and loaded, blocking up
 * to 10 s; flags ignored; failures logged). loop (borrowed; NULL: reads
 * only) must be initialised: the PostgreSQL backend puts its connection on
 * it at once, and store_close then needs the loop to run once more so that
 * its handles close. */
struct config;
int store_open_config(uv_loop_t *loop, const struct config *cfg, unsigned flags,
                      struct store **out);
/* Releases the lock (file backend) and frees s. NULL is fine. Every write
 * must have called back first. */
void store_close(struct store *s);
/* The backend's name ("files"). */
const char *store_type(const struct store *s);
/* An owned human-readable name of a record for messages (the file
 * backend: its path, e.g. "/var/lib/certloop/certs/www"). */
char *store_where(struct store *s, enum store_what what, const char *name);

/* -- start-up (before the loop runs; may block) ------------------------------ */

/* Removes what a crash left half-written: temp files and symlinks, and
 * generations that are not current and not complete. Returns how many
 * entries were removed (each logged at info). Call once after opening. */
int store_sweep(struct store *s);
/* Removes the expiry alerts (of every kind) of every certificate name for
 * which known(name, arg) is false (and interrupted alert writes). Returns
 * how many. */
int store_alerts_sweep(struct store *s, bool (*known)(const char *name, void *arg), void *arg);
/* Calls each for every delivery waiting in the outbox (creating the outbox
 * if needed); records that cannot be read, or that each refuses, are moved
 * to the dead letters with a warning. Returns how many each took, or < 0
 * (logged) when the outbox cannot be opened. */
int store_outbox_load(struct store *s, store_outbox_each_fn each, void *arg);

/* -- accounts --------------------------------------------------------------- */

/* The account of CA ca: key PEM and account JSON ({"url":..., "directory":...}),
 * both owned. -ENOENT when there is none (or only half of one). */
int store_account_read(struct store *s, const char *ca, char **key_pem, char **account_json);
/* Stores the account of ca: the key first, the JSON last (see above). */
int store_account_put_start(struct store *s, const char *ca, const char *key_pem,
                            const char *account_json, store_cb cb, void *arg);

/* A key rollover (RFC 8555 §7.3.5) with a crash in mind: the new key is
 * stored as the account's *next* key before the CA hears of it
 * (store_account_next_put_start), and becomes the account's key only once
 * the CA has confirmed (store_account_rollover_start: the key and JSON are
 * replaced, then the next key is forgotten). A crash in between leaves the
 * next key, which the next rollover uses again (store_account_next_read:
 * -ENOENT when none). */
int store_account_next_read(struct store *s, const char *ca, char **key_pem);
int store_account_next_put_start(struct store *s, const char *ca, const char *key_pem, store_cb cb,
                                 void *arg);
int store_account_rollover_start(struct store *s, const char *ca, const char *key_pem,
                                 const char *account_json, store_cb cb, void *arg);
/* Puts a deactivated account aside (kept, named with the time t; the file
 * backend: account.json.deactivated-T, then account.key.deactivated-T), so
 * that the account reads as absent and the next order registers anew. */
int store_account_retire_start(struct store *s, const char *ca, int64_t t, store_cb cb, void *arg);

/* -- generations ------------------------------------------------------------ */

/* Reads name's current generation into *out (keys only when with_key).
 * -ENOENT if there is none; ERR_BAD_STATE when current names a damaged
 * generation. Every file comes from one generation even while a new one
 * is being made current. */
int store_cert_read_current(struct store *s, const char *name, bool with_key,
                            struct store_cert *out);
/* The name of name's current generation (*gen owned), or -ENOENT: what
 * store_cert_read_current's generation would be, without reading the
 * generation's files (the file backend reads only the `current` link). */
int store_cert_current_gen(struct store *s, const char *name, char **gen);
/* The generations of name, oldest first (*gens owned: store_list_free).
 * An unknown name has none (0, *n = 0). */
int store_cert_list(struct store *s, const char *name, char ***gens, size_t *n);
void store_list_free(char **v, size_t n);
/* Stores a new generation (key 0600, the rest 0644 in the file backend),
 * makes it current, then keeps only the newest p->keep generations and the
 * current one. result->generation names it. */
int store_cert_put_start(struct store *s, const struct store_cert_put *p, store_cb cb, void *arg);
/* Removes generations of name beyond the newest keep, never the current. */
int store_cert_prune_start(struct store *s, const char *name, int keep, store_cb cb, void *arg);
/* Writes the generation c of name (its generation and PEMs; dir ignored)
 * out as files hooks can read, for a backend whose store_cert has no dir
 * (PostgreSQL): result->lineage names a private local directory holding
 * cert.pem, chain.pem, fullchain.pem, key.pem and privkey.pem, the file
 * backend's names (PostgreSQL: STATE/lineage/NAME/GENERATION, 0700, the
 * key 0600, written complete before it appears; the other generations of
 * name there are removed, so one key per certificate stays, and the
 * daemon's start-up sweep empties STATE/lineage). -ENOTSUP when the
 * backend has no such place (the file backend, whose dir is its own
 * generation; a store opened by a short command). */
int store_lineage_start(struct store *s, const char *name, const struct store_cert *c, store_cb cb,
                        void *arg);
/* A note kept with one generation (JSON, owned): note is a short lowercase
 * word naming what it records, today "ari" (the renewal window, ari_sched.c)
 * and "revoked" (`certloop revoke`, sched.c reads it). -ENOENT when none.
 * A put for a generation that is gone fails with -ENOENT; a put replaces
 * the note. */
int store_note_read(struct store *s, const char *name, const char *generation, const char *note,
                    char **json);
int store_note_put_start(struct store *s, const char *name, const char *generation,
                         const char *note, const char *json, store_cb cb, void *arg);

/* -- orders in flight and redeploy marks ------------------------------------ */

/* The order in flight for name (JSON, owned: the order URL, the pending
 * certificate's key PEM, whatever the order machine needs to resume; kept
 * private, 0600). -ENOENT when absent. */
int store_order_read(struct store *s, const char *name, char **json);
int store_order_put_start(struct store *s, const char *name, const char *json, store_cb cb,
                          void *arg);
/* The commit of a run: removes the order and then the redeploy mark of
 * name (absent ones are fine). */
int store_order_settle_start(struct store *s, const char *name, store_cb cb, void *arg);
/* A deployment of the stored generation that has not succeeded yet (a
 * deploy-only run: changed deploy actions, `renew --deploy-only`, a retry,
 * an import): marked before its first file is touched and cleared by the
 * settle, so that a restart after a crash or a failure deploys the stored
 * generation again (an issuance has its order for that). */
bool store_redeploy_marked(struct store *s, const char *name);
int store_redeploy_mark_start(struct store *s, const char *name, store_cb cb, void *arg);

/* -- per-certificate history ------------------------------------------------- */

/* The history lines kept for name (owned text of *len bytes, the oldest
 * first; what a line means is reactor/history_file.c's). -ENOENT when none. */
int store_history_read(struct store *s, const char *name, char **text, size_t *len);
/* Appends the n lines in order (each to its certificate's history) and
 * makes them durable; a certificate's history past 64 KiB is cut to its
 * newest lines within 32 KiB (the file backend: an atomic rewrite). Each
 * line is appended whole or not at all as far as a reader can tell (a
 * torn last line after a crash is skipped by the reader). */
int store_history_append_start(struct store *s, const struct store_history_line *v, size_t n,
                               store_cb cb, void *arg);

/* -- expiry alerts ---------------------------------------------------------- */

/* The name of kind: the event it times, which is also its key in the
 * store (STATE/alerts/NAME.KIND, certloop_alerts.kind); "?" when unknown. */
const char *store_alert_name(enum store_alert kind);
/* When the last alert of kind for certificate name went out (unix
 * seconds), kept so that a restart does not repeat it before a day has
 * passed. 0 and *t set, -ENOENT when none, ERR_PARSE (logged) when the
 * record is damaged. */
int store_alert_read(struct store *s, const char *name, enum store_alert kind, int64_t *t);
/* Records t for (name, kind); t <= 0 removes the record. */
int store_alert_put_start(struct store *s, const char *name, enum store_alert kind, int64_t t,
                          store_cb cb, void *arg);

/* -- hub event cursors ------------------------------------------------------ */

/* The id of the last event seen on [hub.NAME]'s event stream (the pull
 * client sends it as Last-Event-ID when it connects again). 0 and *id
 * (owned), -ENOENT when none, -ENOTSUP when the backend keeps none. The
 * file backend keeps STATE/hubs/NAME.last-event-id (0600); PostgreSQL keeps
 * the same file in the instance's state directory (a cursor is this
 * instance's own, pg_local.c), none without one. */
int store_hub_cursor_read(struct store *s, const char *hub, char **id);
/* Records id for hub (a line of at most 200 printable characters). */
int store_hub_cursor_put_start(struct store *s, const char *hub, const char *id, store_cb cb,
                               void *arg);

/* -- webhook outbox --------------------------------------------------------- */

/* Deliveries by id (a name that store_name_ok accepts): text is the record
 * the outbox (deploy/outbox.c) writes and parses. put replaces, remove
 * forgets (absent is fine), bury moves to the dead letters (the record is
 * written there as text, then the live one removed). */
int store_outbox_put_start(struct store *s, const char *id, const char *text, store_cb cb,
                           void *arg);
int store_outbox_remove_start(struct store *s, const char *id, store_cb cb, void *arg);
int store_outbox_bury_start(struct store *s, const char *id, const char *text, store_cb cb,
                            void *arg);

/* -- leases ----------------------------------------------------------------- */

/* Takes the lease of certificate name: result->fence is its token.
 * ERR_LOCKED (through the callback) when someone holds it. */
int store_lease_take_start(struct store *s, const char *name, store_cb cb, void *arg);
/* Extends a lease held with fence; ERR_LOCKED when it is no longer ours. */
int store_lease_renew_start(struct store *s, const char *name, uint64_t fence, store_cb cb,
                            void *arg);
/* Gives the lease back (a stale fence is ignored). Never fails; no callback. */
void store_lease_release(struct store *s, const char *name, uint64_t fence);

/* -- a store shared by several daemons -------------------------------------- */

bool store_shared(const struct store *s);
/* fn(name, arg) runs on the loop whenever another daemon's new generation
 * of name became current (reads already return it). NULL stops it. */
void store_watch_set(struct store *s, store_watch_fn fn, void *arg);
/* fn(arg) runs on the loop each time the store has (re)connected and its
 * copy is read again (PostgreSQL: after every connection, the first one
 * too), so that what failed while it was away (store_health's down) can be
 * tried again at once. NULL stops it. */
void store_back_set(struct store *s, store_back_fn fn, void *arg);
/* The generation this daemon last deployed of name (*generation owned) and
 * whether that deployment succeeded; -ENOENT when it deployed none,
 * ERR_UNSUPPORTED when the store is not shared (one daemon deploys what it
 * stores). */
int store_deployed_read(struct store *s, const char *name, char **generation, bool *ok);
/* Records that this daemon deployed generation of name (ok, or failed with
 * error), for the check above and the fleet view. ERR_UNSUPPORTED when the
 * store is not shared. */
int store_deployed_put_start(struct store *s, const char *name, const char *generation, bool ok,
                             const char *error, store_cb cb, void *arg);

/* Whether the store can be reached now (a database backend; the file
 * backend always can). */
struct store_health {
    bool down;          /* the last attempt to reach it failed */
    int64_t down_since; /* unix seconds, when down */
    uint64_t failures;  /* connection failures and losses so far */
    unsigned waiting;   /* writes waiting for it */
    char error[160];    /* why, when down */
};
void store_health(struct store *s, struct store_health *out);

/* -- the HTTPS API's bootstrap certificate ---------------------------------- */

/* The self-signed certificate (and its key) the API serves until [api]
 * certificate is stored, kept between starts so that clients pinning it go
 * on working. It is no generation of any certificate: no history, no
 * deploy, not listed. The file backend keeps STATE/api/bootstrap.pem (0644:
 * clients pin it, `curl --cacert`) and STATE/api/bootstrap-key.pem (0600);
 * PostgreSQL the same two files in the instance's state directory (it
 * names this host's listen addresses; the key never reaches the database;
 * pg_local.c), none without one.
 * read: 0 with both PEMs (owned), -ENOENT when none is kept, ERR_UNSUPPORTED
 * when the backend keeps none. put: replaces both, atomically each;
 * blocking (at start, and once a year on the loop: two small files). */
int store_api_bootstrap_read(struct store *s, char **cert_pem, char **key_pem);
int store_api_bootstrap_put(struct store *s, const char *cert_pem, const char *key_pem);

/* -- for commands (not the daemon) ------------------------------------------ */

/* A command that owns its loop (plan, revoke, account, import-certbot) may
 * wait for one write: start it with store_wait_cb and &w (w zeroed by
 * store_wait_init), then store_wait_run runs the loop until it called back
 * and returns its status; w->error (owned, may be NULL) names the failure. */
struct store_wait {
    bool done;
    int status;
    char *error;
};
void store_wait_init(struct store_wait *w);
void store_wait_cb(int status, const struct store_result *r, void *arg);
int store_wait_run(uv_loop_t *loop, struct store_wait *w);
void store_wait_fini(struct store_wait *w);

/* -- for backends ----------------------------------------------------------- */

/* Calls cb(status, r, arg) on s's loop soon, never from inside this call
 * (a backend that answers at once, like the file backend's leases). r is
 * copied (its strings too). < 0 when it cannot be queued. */
int store_defer(struct store *s, int status, const struct store_result *r, store_cb cb, void *arg);
/* Calls the watch store_watch_set installed (if any) for name. */
void store_watch_notify(struct store *s, const char *name);
/* Calls what store_back_set installed (if any). */
void store_back_notify(struct store *s);

#endif
