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

/* Removes the temp files a killed process left beside the files the action
 * d writes: ".tmp-BASE-XXXXXXXX" (store_write_atomic's names) and
 * ".bak-BASE-XXXXXXXX" (the backups of deploy_journal_files_sync and the
 * journal) in each file's directory, for each configured BASE; nothing
 * else is touched. A deployment cut short by a crash is not rolled back
 * from them: its order file makes the next start deploy the stored
 * generation again (see the manager).
 * Blocking (a readdir per directory): for start-up, before the loop runs.
 * Logs each removal; returns how many were removed. */
int deploy_files_sweep(const struct cfg_deploy *d);

/* Writes every file the `files` action d configures from the generation c
 * (c->key_pem must be loaded when a secret file is configured). Blocking:
 * run it off the loop (store_job_start, or deploy_files_start below); it
 * does not log. Secret files (key, bundle, pkcs12) are written before the
 * certificates. All or nothing: on failure it returns < 0, *err (owned)
 * names the path and step ("/etc/nginx/tls/www.key: rename: Permission
 * denied"), and every file this action had already replaced is put back.
 * d and c are borrowed. Same as deploy_journal_files_sync(NULL, ...). */
int deploy_files_sync(const struct cfg_deploy *d, const struct store_cert *c, char **err);

/* ---- rollback journal: one certificate's deployment, all or nothing ------ */

/* What the `files` actions of one deployment replaced: for each path, the
 * backup of the file it held before (a hard link ".bak-BASE-XXXXXXXX"
 * beside it, or a copy ".tmp-BASE-XXXXXXXX" where fs.protected_hardlinks
 * forbids the link), or a note that it did not exist. It spans every action of the
 * deployment, so a later failure (another files action, an exec action, a
 * hook, a shared reload command) can put back every file: the deployment
 * ends with deploy_journal_commit_sync (backups removed) or
 * deploy_journal_rollback_sync (files put back). Plain memory, no handles;
 * only one thread may use it at a time. */
struct deploy_journal;
struct deploy_journal *deploy_journal_new(void);
/* Frees the memory only: backups stay on disk (deploy_files_sweep removes
 * them at the next start). NULL is fine. */
void deploy_journal_free(struct deploy_journal *j);
/* How many files the journal can put back (or remove). */
size_t deploy_journal_count(const struct deploy_journal *j);

/* deploy_files_sync, keeping the backups of the replaced files in j (may
 * be NULL: they are removed at once) once the whole action has succeeded.
 * A path already in j keeps its first entry (the state before the
 * deployment). A file that exists but cannot be backed up fails the action
 * before anything is replaced. Blocking; logs nothing. */
int deploy_journal_files_sync(struct deploy_journal *j, const struct cfg_deploy *d,
                              const struct store_cert *c, char **err);
/* Puts back every file in j, newest first: each backup is renamed over its
 * path (the old inode: same bytes, mode and owner), a path that did not
 * exist before is removed, and each directory is synced. *done gets how
 * many files were put back or removed. Returns 0, or < 0 with *err (owned)
 * naming the first file that could not be ("PATH: restore: REASON"; the
 * others are still tried). j is emptied either way. Blocking; logs
 * nothing. */
int deploy_journal_rollback_sync(struct deploy_journal *j, size_t *done, char **err);
/* The deployment succeeded: removes every backup in j and empties it.
 * Returns how many backups were removed (a removal that fails leaves a file
 * deploy_files_sweep removes at the next start). Blocking; logs nothing. */
int deploy_journal_commit_sync(struct deploy_journal *j);

/* Runs deploy_journal_files_sync on the threadpool. name (the certificate,
 * for the log) and d, c are copied, so they need not outlive the call. j
 * (may be NULL) is borrowed until the callback: the worker uses a copy, and
 * j takes the copy's entries on the loop just before cb runs; after
 * deploy_files_cancel j is never touched again (the entries the action
 * added are forgotten; their backups stay for deploy_files_sweep). On the
 * loop the result is logged (`deploy cert=NAME files: ...`) and
 * cb(status, arg) runs exactly once, never from inside _start; after
 * deploy_files_cancel it never runs (the copy frees itself once the thread
 * is done). */
struct deploy_files;
/* error: what failed ("PATH: STEP: REASON"), borrowed during the call;
 * NULL on success. */
typedef void (*deploy_files_cb)(int status, const char *error, void *arg);
int deploy_files_start(uv_loop_t *loop, const char *name, const struct cfg_deploy *d,
                       const struct store_cert *c, struct deploy_journal *j, deploy_files_cb cb,
                       void *arg, struct deploy_files **out);
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

/* What a finished command did, for an error line: "command `ARGV...`
 * exited 3", "... timed out after N s", "... killed by signal 9", or
 * "... could not be started" (res NULL). d and res are borrowed; the
 * result is owned. label (e.g. "reload command", "hook") replaces
 * "command" when not NULL. */
char *deploy_exec_describe(const char *label, const struct cfg_deploy *d, int status,
                           const struct deploy_exec_result *res);

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

/* ---- hook directories (deploy/hooks.c) ----------------------------------- */

/* certbot-style hook directories: DIR/pre, DIR/deploy and DIR/post hold
 * programs run with argv [path] and the deploy_env variables (CERTLOOP_*,
 * RENEWED_*). pre runs before a round of renewals, deploy after each
 * certificate is deployed, post after the round. */
#define DEPLOY_HOOKS_DIR_DEFAULT "/etc/certloop/hooks.d"
#define DEPLOY_HOOK_TIMEOUT_S 60

enum deploy_hook_phase { DEPLOY_HOOK_PRE, DEPLOY_HOOK_DEPLOY, DEPLOY_HOOK_POST, DEPLOY_HOOK__MAX };

/* "pre", "deploy", "post". */
const char *deploy_hook_phase_name(enum deploy_hook_phase p);

/* Lists the hooks of one directory: every regular file (symlinks followed)
 * that is executable by us and whose name does not start with '.' nor end
 * with '~', sorted by name (byte order). Other entries are skipped (logged
 * at debug). A missing directory is an empty list. Returns 0 with *out an
 * owned NULL-terminated array of "dir/name" paths (free with
 * deploy_hooks_list_free) and *n_out its length, or -errno (logged) when
 * the directory exists but cannot be read. A short inline read (STYLE §5). */
int deploy_hooks_list(const char *dir, char ***out, size_t *n_out);
void deploy_hooks_list_free(char **v);

/* status: 0 when every hook exited 0 (or there was none), else ERR_HOOK or
 * ERR_TIMEOUT (the first failure's code); run and failed count the hooks. */
typedef void (*deploy_hooks_cb)(int status, size_t run, size_t failed, void *arg);
struct deploy_hooks;

/* Runs the hooks of hooks_dir/PHASE one after the other in name order (a
 * failing hook does not stop the others, as with certbot), each through
 * deploy_exec_start with argv [path], the env variables and timeout_s
 * (<= 0: DEPLOY_HOOK_TIMEOUT_S). hooks_dir NULL means
 * DEPLOY_HOOKS_DIR_DEFAULT. The list is read when the op starts. hooks_dir
 * and env are copied. STYLE §4: < 0 synchronously (the directory cannot be
 * read; logged) and no callback, else cb exactly once on the loop, never
 * from inside _start, even for an empty directory. */
int deploy_hooks_start(uv_loop_t *loop, const char *hooks_dir, enum deploy_hook_phase phase,
                       const struct deploy_env *env, int64_t timeout_s, deploy_hooks_cb cb,
                       void *arg, struct deploy_hooks **out);
/* The callback never runs after this; a hook still running is stopped
 * (deploy_exec_cancel) and later hooks are not started. */
void deploy_hooks_cancel(struct deploy_hooks *h);
/* During the callback: the first failure ("hook `PATH` exited 1", see
 * deploy_exec_describe), or NULL when every hook succeeded. Borrowed. */
const char *deploy_hooks_error(const struct deploy_hooks *h);

/* True when a and b are exec actions with the same argv. */
bool deploy_exec_same(const struct cfg_deploy *a, const struct cfg_deploy *b);
/* Reload commands shared by several certificates run once per round:
 * given the exec actions of one round (borrowed; NULL entries and non-exec
 * actions are ignored), writes to idx_out (room for n) the indices of the
 * first action of every distinct argv, in their original order, and
 * returns how many there are. */
size_t deploy_exec_dedup(const struct cfg_deploy *const *acts, size_t n, size_t *idx_out);

/* ---- events and webhooks (deploy/notify.c, deploy/outbox.c) ---- */

/* Events (DESIGN "Deploy and events"). The JSON an event becomes:
 *   {"id": 32 hex digits (128 random bits), "event": NAME, "certificate": CERT,
 *    "domains": [...], "time": "2026-11-25T01:02:03Z",
 *    "not_after": RFC 3339        (when known: issued, renewed, expiring),
 *    "persist_until": RFC 3339    (persist_expiring: when the CA stops accepting the
 *                                  dns-persist-01 records),
 *    "error": {"type", "detail", "identifier",   (failed, deploy_failed)
 *              "subproblems": [{"type", "detail", "identifier"}, ...]},
 *    "record": {"name", "value"}  (dns_record_required, dns_record_removable)}
 * The order of the enum is the order of the CFG_EVENT_* bits (1 << type). */
enum notify_event_type {
    NOTIFY_EV_ISSUED,
    NOTIFY_EV_RENEWED,
    NOTIFY_EV_FAILED,
    NOTIFY_EV_EXPIRING,
    NOTIFY_EV_DEPLOY_FAILED,
    NOTIFY_EV_DNS_RECORD_REQUIRED,
    NOTIFY_EV_DNS_RECORD_REMOVABLE,
    NOTIFY_EV_PERSIST_EXPIRING,
    NOTIFY_EV_FLEET_CONFLICT, /* another instance declares the certificate differently */
    NOTIFY_EV__MAX
};

/* "issued", "renewed", "failed", "expiring", "deploy_failed",
 * "dns_record_required", "dns_record_removable", "persist_expiring"; NULL
 * out of range. */
const char *notify_event_name(enum notify_event_type t);
/* The reverse; 0 or -EINVAL. */
int notify_event_type_parse(const char *s, enum notify_event_type *out);

/* One of a CA problem document's subproblems (RFC 8555 §6.7.1); any
 * member may be NULL (left out). */
struct notify_subproblem {
    const char *type, *detail, *identifier;
};

/* What an event says. Every pointer is borrowed during the call. */
struct notify_event {
    enum notify_event_type type;
    const char *certificate;    /* required */
    const char *const *domains; /* may be NULL when n_domains == 0 */
    size_t n_domains;
    int64_t time;          /* unix seconds: when it happened */
    int64_t not_after;     /* unix seconds, 0 = left out */
    int64_t persist_until; /* unix seconds, 0 = left out (persist_expiring) */
    /* "error" object: written when any of the three is set (a CA problem
     * document's type, detail and the identifier it concerns) */
    const char *error_type, *error_detail, *error_identifier;
    const struct notify_subproblem *subproblems; /* in "error" when n_subproblems > 0 */
    size_t n_subproblems;
    /* "record" object for the dns events (both required there) */
    const char *record_name, *record_value;
    const char *id; /* NULL: a fresh random id (tests pass their own) */
};

#define NOTIFY_ID_LEN 32
/* Writes a fresh 128-bit random id (RAND_bytes) as NOTIFY_ID_LEN lowercase
 * hex digits plus NUL into out. 0 or ERR_CRYPTO (logged). */
int notify_id_new(char out[NOTIFY_ID_LEN + 1]);
/* True when s is usable as an event id: ids end up in file names and
 * headers, so 1 to 64 letters, digits, '-' and '_'. */
bool notify_id_ok(const char *s);

/* Builds the event's JSON text (compact, keys in the order above): 0 and
 * *out owned, -EINVAL (logged at error) when the type is out of range,
 * certificate is missing, a dns event lacks its record, or an id is not a
 * safe token, or ERR_CRYPTO when no random id could be made. Pure apart
 * from the random id. */
int notify_event_build(const struct notify_event *e, char **out);

/* The X-Certloop-Signature value for body under key: "sha256=" and the
 * lowercase hex HMAC-SHA256 of the exact body bytes. */
#define NOTIFY_SIG_LEN (7 + 64)
void notify_signature(const void *key, size_t key_len, const void *body, size_t body_len,
                      char out[NOTIFY_SIG_LEN + 1]);

/* Events for people ([notify.NAME] type email and slack), rendered from the
 * event's JSON text (borrowed). All pure; the results are owned, NULL when
 * event_json is not an event.
 * notify_event_subject: one line, e.g. "certloop: www renewed".
 * notify_event_text: a few lines (LF) saying what happened, the names,
 * not_after, the error or the DNS record, and the event's id and time.
 * notify_slack_body: a Slack incoming-webhook payload {"text": ...}.
 * notify_email_message: an RFC 5322 message (CRLF lines, UTF-8 text/plain)
 * from `from` to to[0..n_to) with the subject and text above, a Date of
 * now (unix seconds), Message-ID <DELIVERY@certloop> and the
 * X-Certloop-Event / X-Certloop-Delivery headers of the webhooks. */
char *notify_event_subject(const char *event_json);
char *notify_event_text(const char *event_json);
char *notify_slack_body(const char *event_json);
char *notify_email_message(const char *event_json, const char *from, const char *const *to,
                           size_t n_to, const char *delivery_id, int64_t now);

/* Expiry alerts: the default window and how often an alert repeats. */
#define NOTIFY_EXPIRING_WINDOW_S ((int64_t)14 * 86400)
#define NOTIFY_EXPIRING_REPEAT_S ((int64_t)86400)

/* Whether an "expiring" alert is due at `now` for a certificate valid until
 * not_after (all unix seconds). Inside the window (now >= not_after -
 * warn_window_s; <= 0 means NOTIFY_EXPIRING_WINDOW_S), also once expired,
 * it is due when no alert was sent yet (last_sent <= 0) or the last one is
 * at least NOTIFY_EXPIRING_REPEAT_S old. *next_check (may be NULL) gets when
 * to ask again: the window's start, or the next repeat. After a due answer
 * the caller sends the event and passes now as last_sent from then on. */
bool notify_expiring_due(int64_t now, int64_t not_after, int64_t warn_window_s, int64_t last_sent,
                         int64_t *next_check);

/* Webhook delivery. Each [notify.NAME] target subscribed to an event gets
 * its own delivery: STATE/outbox/DELIVERY.json (0600, written atomically
 * before the first attempt) holds the exact body, the target's name, the
 * attempt count and the time of the next attempt. A delivery is POSTed to
 * the target's url with
 *   Content-Type: application/json
 *   X-Certloop-Event: NAME            X-Certloop-Delivery: DELIVERY (32 hex)
 *   X-Certloop-Signature: sha256=HEX  (HMAC-SHA256 of the body keyed with
 *                                      the secret_file's bytes, one final
 *                                      newline removed; absent without a secret)
 * A 2xx answer removes the file. Anything else (or a transport failure)
 * counts as a failed attempt: retried after base_delay doubling per attempt
 * up to max_delay, each picked at random in [delay/2, delay] (a Retry-After
 * header is honoured up to max_delay); once the next attempt would fall
 * more than give_up after the delivery was created it moves to
 * STATE/outbox/dead/ with an error in the log. Deliveries survive restarts
 * (at least once: a delivery in flight at a crash is sent again; receivers
 * deduplicate on X-Certloop-Delivery). Deliveries whose target is no
 * longer configured stay on disk untouched until it comes back. */
struct notify;
struct http_client;

struct notify_opts {
    int64_t base_delay_ms; /* first retry; 0 = 10 s */
    int64_t max_delay_ms;  /* 0 = 1 h */
    int64_t give_up_ms;    /* 0 = 72 h */
    unsigned max_inflight; /* 0 = 8 */
    long timeout_ms;       /* per request; 0 = 10 s */
};

/* The retry delay after `attempts` failed attempts (>= 1) with rnd a random
 * number used for the jitter. Pure. o may be NULL (defaults). */
int64_t notify_backoff_ms(const struct notify_opts *o, unsigned attempts, uint32_t rnd);

/* Loads every delivery pending in store's outbox (store_outbox_load:
 * before the loop runs) and schedules it, and
 * takes the targets of cfg (url, events, the secret read now; cfg is
 * borrowed during the call): every [notify.NAME], and every [dns.NAME] of
 * type callback as a solver target (a namespace of its own, reached only
 * through notify_emit_solver). store (borrowed: outlives n) NULL: no
 * outbox, every delivery
 * is kept in memory only (for `certloop test`). http (borrowed) must stay
 * open until notify_close has been called. o (may be NULL) is copied.
 * Returns 0 and *out owned, or -errno when the outbox cannot be created or
 * read (logged). */
int notify_open(uv_loop_t *loop, struct http_client *http, struct store *store,
                const struct config *cfg, const struct notify_opts *o, struct notify **out);
/* Replaces the targets with those of cfg (secrets read again). Pending
 * deliveries keep their target by name; those of a vanished target wait. */
void notify_reload(struct notify *n, const struct config *cfg);
/* Queues an event (JSON text from notify_event_build, borrowed) for every
 * target subscribed to its type: each delivery is written to the outbox
 * and then sent. Returns the number of deliveries queued (0: nobody
 * subscribed), or -EINVAL (logged) when the text is not an event, or
 * -ECANCELED after notify_close. */
int notify_emit(struct notify *n, const char *event_json);

/* dns-01 callback solvers ([dns.NAME] type = "callback"): the event goes
 * to that solver's url only, signed with its secret_file, with the
 * webhook headers. persist: written to the outbox first (at least once,
 * survives a restart: for dns_record_removable); else kept in memory and
 * retried sooner (2 s doubling to 30 s, given up after 1 h) for as long as
 * the order waits (dns_record_required: replaying it after a restart would
 * ask for a record nobody waits for). key (copied, may be NULL) tags the
 * delivery for the two calls below. 1 when queued; -ENOENT (no such
 * solver), -EINVAL (not an event), -ECANCELED (closed), ERR_CRYPTO. */
int notify_emit_solver(struct notify *n, const char *solver, const char *event_json, bool persist,
                       const char *key);
/* Drops solver's in-memory deliveries tagged key that were not delivered
 * yet (a request in flight is cancelled); returns how many. */
size_t notify_solver_cancel(struct notify *n, const char *solver, const char *key);
/* Whether an in-memory delivery tagged key is still undelivered; if so
 * *attempts gets its failed attempts and *last_error (borrowed until the
 * next call into n; NULL before the first failure) why the last failed. */
bool notify_solver_pending(const struct notify *n, const char *solver, const char *key,
                           unsigned *attempts, const char **last_error);

typedef void (*notify_close_cb)(void *arg);
/* Cancels the requests in flight (their deliveries stay in the outbox and
 * are sent again after the next notify_open) and frees n once its timer is
 * closed and its outbox writes have finished; cb (may be NULL) runs then,
 * on the loop, never from inside notify_close. http may be closed right
 * after notify_close returns. */
void notify_close(struct notify *n, notify_close_cb cb, void *arg);

/* Waits until nothing is left to do right now: no delivery being written,
 * sent or removed, none due (deliveries waiting for a later retry stay in
 * the outbox and do not count). cb(true) then, or cb(false) after
 * timeout_ms; once, on the loop, never from inside notify_drain. For `run
 * --once` and a graceful stop, before notify_close (which silences a drain
 * still waiting). -EBUSY while another drain waits, -ECANCELED after
 * notify_close. */
typedef void (*notify_drain_cb)(bool drained, void *arg);
int notify_drain(struct notify *n, uint64_t timeout_ms, notify_drain_cb cb, void *arg);

struct notify_stats {
    size_t pending;     /* deliveries not yet delivered nor dead */
    size_t inflight;    /* requests running now */
    uint64_t delivered; /* 2xx answers since open */
    uint64_t failed;    /* failed attempts since open */
    uint64_t dead;      /* deliveries given up since open */
};
void notify_stats_get(const struct notify *n, struct notify_stats *out);

#endif
