/* The PostgreSQL backend's building blocks (issue 14), private to src/store/
 * and its tests: an asynchronous libpq connection on the libuv loop, the
 * schema and its migrations, private keys sealed with AES-256-GCM, and the
 * per-certificate lease rule. The store vtable (store.h) is built on these. */
#ifndef CERTLOOP_STORE_PG_INTERNAL_H
#define CERTLOOP_STORE_PG_INTERNAL_H

#include <libpq-fe.h>

#include "store/store.h"
#include "util/buf.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* ---- the connection (pg_conn.c) ------------------------------------------ */

/* One libpq connection in pipeline mode, driven by a uv_poll_t on its socket.
 * Nothing on the loop thread blocks: PQconnectStart (which may resolve a host
 * name) runs on the threadpool, everything after it is PQconnectPoll,
 * PQsendQueryParams, PQflush and PQconsumeInput in non-blocking mode. When
 * the server goes away the connection is re-established with exponential
 * backoff; LISTEN channels are re-issued each time. */
struct pg_conn;
struct pg_op;

enum pg_conn_state { PG_CONN_DOWN = 0, PG_CONN_UP };

/* Called on the loop for each NOTIFY on a channel we listen on. channel
 * and payload are borrowed for the call. */
typedef void (*pg_notify_cb)(const char *channel, const char *payload, void *arg);
/* Called when the connection comes up (again) or goes down. After a
 * reconnect, notifications sent while we were away are lost: a listener
 * re-reads what it watches. */
typedef void (*pg_state_cb)(enum pg_conn_state state, void *arg);
/* Called once all handles are closed and the connection is freed. */
typedef void (*pg_close_cb)(void *arg);

struct pg_conn_opts {
    const char *conninfo;   /* borrowed: copied */
    pg_notify_cb on_notify; /* may be NULL */
    pg_state_cb on_state;   /* may be NULL */
    void *arg;
    uint64_t backoff_min_ms;  /* first retry delay; 0 means 100 ms */
    uint64_t backoff_max_ms;  /* delay cap; 0 means 10 s */
    uint64_t op_timeout_ms;   /* a sent op unanswered this long drops the connection
                                 (a silent server); 0 means 60 s */
    uint64_t wait_timeout_ms; /* an op not sent this long because the server is away
                                 ends with ERR_TIMEOUT (nothing was written); 0 means 30 s */
};

/* Starts connecting and returns at once; *out (owned) is freed by
 * pg_conn_close. Returns < 0 only for a conninfo libpq cannot parse. */
int pg_conn_open(uv_loop_t *loop, const struct pg_conn_opts *opts, struct pg_conn **out);
/* Silences every op still pending (their callbacks never run), closes the
 * socket and handles, and calls cb (may be NULL) once everything is freed. */
void pg_conn_close(struct pg_conn *c, pg_close_cb cb, void *arg);
enum pg_conn_state pg_conn_state(const struct pg_conn *c);
/* Listens on channel now (if up) and after every reconnect. channel must
 * be a plain identifier ([a-z0-9_], at most 63 bytes): -EINVAL otherwise. */
int pg_conn_listen(struct pg_conn *c, const char *channel);
/* Counters for status and metrics. */
struct pg_conn_stats {
    uint64_t connects; /* successful connections */
    uint64_t failures; /* failed attempts and lost connections */
    uint64_t ops;      /* ops completed (with any status) */
    uint64_t statements;
    uint64_t timeouts;  /* ops ended by wait_timeout_ms */
    unsigned waiting;   /* ops queued or on the wire now */
    int64_t down_since; /* unix seconds of the first failure since the last
                           connection, or 0 when up (or never failed) */
    char last_error[160];
};
void pg_conn_stats(const struct pg_conn *c, struct pg_conn_stats *out);

/* The results of one op: res[i] is statement i's result (NULL if the
 * statement was never run because an earlier one failed). Borrowed for the
 * duration of the callback. */
struct pg_res {
    size_t n;
    PGresult **res;
    const char *sqlstate; /* the failing statement's SQLSTATE, or NULL */
    const char *message;  /* its primary message, or NULL */
};
/* status: 0, ERR_DB (a statement failed: see res->sqlstate and message,
 * already logged at debug), -ECONNRESET (the connection broke after the op
 * was sent: it may or may not have committed) or ERR_TIMEOUT (see
 * op_timeout_ms; same uncertainty). res is NULL unless status is 0 or ERR_DB. */
typedef void (*pg_op_cb)(int status, const struct pg_res *res, void *arg);

/* One statement of an op: text parameters only ($1 … $n; NULL is SQL NULL). */
struct pg_stmt {
    const char *sql; /* borrowed: copied */
    int nparams;
    const char *const *params; /* borrowed: copied */
};

/* Runs n statements as one unit: they are pipelined and followed by one
 * sync, so they form one implicit transaction and commit together or not at
 * all (libpq "Pipeline Mode": after an error the rest is skipped and what
 * ran is rolled back). Ops run in the order they were started. An op started
 * while the connection is down waits for the reconnect.
 * Callback contract (STYLE §4): < 0 means no callback; otherwise exactly one
 * callback on the loop, never from inside this call; after pg_op_cancel
 * none. *out (optional) is valid until the callback or the cancel. */
int pg_op_start(struct pg_conn *c, const struct pg_stmt *stmts, size_t n, pg_op_cb cb, void *arg,
                struct pg_op **out);
/* The same, and the op owns arg: arg_free(arg) runs when the op is freed,
 * after its callback or on cancel (for wrappers whose context must not
 * outlive a cancelled op). On a synchronous failure the caller keeps arg. */
int pg_op_start_owning(struct pg_conn *c, const struct pg_stmt *stmts, size_t n, pg_op_cb cb,
                       void *arg, void (*arg_free)(void *), struct pg_op **out);
/* One statement; the common case. */
int pg_query_start(struct pg_conn *c, const char *sql, int nparams, const char *const *params,
                   pg_op_cb cb, void *arg, struct pg_op **out);
/* Silences op. A statement already on the wire still runs on the server
 * (libpq 15 has no non-blocking cancel); its results are read and dropped. */
void pg_op_cancel(struct pg_op *op);

/* ---- schema (pg_schema.c) ------------------------------------------------ */

/* The schema version this build writes. */
#define PG_SCHEMA_VERSION 4
/* An instance whose outbox deliveries another takes over at its start:
 * no heartbeat for this long. */
#define PG_OUTBOX_TAKEOVER_S "60"
/* SQLSTATEs our own functions raise: the database holds a newer schema
 * than we know; a write under a lease that is no longer ours. */
#define PG_SQLSTATE_NEWER_SCHEMA "CL001"
#define PG_SQLSTATE_LEASE_LOST "CL002"
/* NOTIFY channels (payload "CERT GENERATION", and the token). */
#define PG_CHANNEL_GENERATION "certloop_generation"
#define PG_CHANNEL_HTTP01 "certloop_http01"

/* Creates or migrates the schema to PG_SCHEMA_VERSION in one transaction,
 * serialized against other instances by a transaction advisory lock.
 * cb gets 0 and the version now in place (as the op result's single row),
 * or ERR_UNSUPPORTED when the database holds a newer schema (nothing is
 * changed), or the op's error. Contract as pg_op_start. */
typedef void (*pg_schema_cb)(int status, int version, void *arg);
int pg_schema_migrate_start(struct pg_conn *c, pg_schema_cb cb, void *arg, struct pg_op **out);
/* The statements of migration to version v (1 … PG_SCHEMA_VERSION), for
 * the tests: NULL-terminated array of static SQL. */
const char *const *pg_schema_migration(int v);

/* ---- private keys at rest (pg_crypt.c) ----------------------------------- */

#define PG_KEY_LEN 32
/* The data key from encryption_key_file. id is a fingerprint (the first 8
 * bytes of SHA-256 over a label and the key) stored with every sealed blob,
 * so a wrong key is named as such and a key rotation finds what to reseal. */
struct pg_key {
    uint8_t key[PG_KEY_LEN];
    uint8_t id[8];
};
/* Reads a key file: 64 hex digits or the base64 of 32 bytes, optionally
 * followed by a newline; anything else is -EINVAL. Logs its failures with
 * the path. The caller wipes the key with pg_key_wipe. */
int pg_key_load(const char *path, struct pg_key *out);
/* Parses the same formats from memory (for tests and the rotation command). */
int pg_key_parse(const char *text, size_t len, struct pg_key *out);
void pg_key_wipe(struct pg_key *k);

/* A sealed blob: "CLK1" | key id (8) | nonce (12) | ciphertext | tag (16).
 * The associated data binds it to the certificate name and generation, so a
 * key moved to another row or generation does not open. */
#define PG_SEAL_OVERHEAD (4 + 8 + 12 + 16)
/* Seals pt; *out (owned, *out_len bytes) on success, ERR_CRYPTO otherwise. */
int pg_seal(const struct pg_key *k, const char *cert, const char *generation, const uint8_t *pt,
            size_t len, uint8_t **out, size_t *out_len);
/* Opens a sealed blob; *out (owned, NUL-terminated, *out_len bytes) on
 * success. -EKEYREJECTED when the blob was sealed with another key,
 * ERR_CRYPTO when it does not authenticate (tampered, or bound to another
 * name or generation), ERR_PARSE when it is not a sealed blob. Logs nothing:
 * the caller knows which row it was. */
int pg_unseal(const struct pg_key *k, const char *cert, const char *generation, const uint8_t *blob,
              size_t len, uint8_t **out, size_t *out_len);

/* Seals every private key in the database again under new_key (those
 * sealed with old_key; any under new_key already are skipped), in one
 * transaction; a key that opens with neither stops it with nothing
 * written (-EKEYREJECTED: sealed by a third key; ERR_CRYPTO: tampered). cb gets 0 and how many were
 * resealed, or the error. Both keys are copied. -EINVAL when they are the same key. Exactly one
 * callback, none after pg_conn_close (no cancel: it is a one-shot command). */
typedef void (*pg_rotate_cb)(int status, size_t resealed, void *arg);
int pg_key_rotate_start(struct pg_conn *c, const struct pg_key *old_key,
                        const struct pg_key *new_key, pg_rotate_cb cb, void *arg);

/* bytea as libpq text parameters carry it ("\\x" and hex digits), owned;
 * and the bytes of a hex string (as encode(x, 'hex') returns it), owned,
 * or NULL when it is not hex. */
char *pg_bytea_hex(const uint8_t *p, size_t n);
uint8_t *pg_hex_bytes(const char *hex, size_t *n);

/* ---- per-certificate leases (pg_lease.c) --------------------------------- */

/* The lease rule, as pure functions over one lease row; the SQL in
 * pg_lease.c applies the same rule inside the database (one statement
 * each), and the tests hold the two against each other with a fake clock.
 * Times are milliseconds on the database's clock (or the fake one). */
struct pg_lease {
    char holder[64]; /* instance name; "" when nobody ever held it */
    uint64_t token;  /* fencing token: grows by one whenever the lease is taken afresh */
    int64_t expires; /* ms; the lease is free at and after this time */
};

enum pg_lease_verdict {
    PG_LEASE_GRANTED = 0, /* taken fresh (token + 1), renewed or released */
    PG_LEASE_BUSY,        /* another holder's unexpired lease */
    PG_LEASE_LOST,        /* renew/release/write by a holder whose lease is gone */
};

/* take: free (expired or never held) → granted with token + 1; our own
 * unexpired lease → renewed, same token; someone else's → busy. */
enum pg_lease_verdict pg_lease_take(struct pg_lease *l, const char *holder, int64_t now,
                                    int64_t ttl_ms, uint64_t *token_out);
/* renew: only the holder with the current token and an unexpired lease. */
enum pg_lease_verdict pg_lease_renew(struct pg_lease *l, const char *holder, uint64_t token,
                                     int64_t now, int64_t ttl_ms);
/* release: the holder with the current token and an unexpired lease ends
 * it now (never later than it would have ended). */
enum pg_lease_verdict pg_lease_release(struct pg_lease *l, const char *holder, uint64_t token,
                                       int64_t now);
/* A write under the lease is allowed only for the current holder and
 * token before expiry: a stale holder (crashed, paused, cut off) is refused
 * once its time has run out, even before anybody took the lease over. */
bool pg_lease_write_ok(const struct pg_lease *l, const char *holder, uint64_t token, int64_t now);

/* The same operations in the database. now_ms < 0 uses the server's clock
 * (production: one clock for the whole fleet); tests pass a fake one.
 * cb gets 0 and the verdict (and the token) or the op's error. Contract as
 * pg_op_start; cert and holder are copied. */
typedef void (*pg_lease_cb)(int status, enum pg_lease_verdict v, uint64_t token, void *arg);
int pg_lease_take_start(struct pg_conn *c, const char *cert, const char *holder, int64_t now_ms,
                        int64_t ttl_ms, pg_lease_cb cb, void *arg, struct pg_op **out);
int pg_lease_renew_start(struct pg_conn *c, const char *cert, const char *holder, uint64_t token,
                         int64_t now_ms, int64_t ttl_ms, pg_lease_cb cb, void *arg,
                         struct pg_op **out);
int pg_lease_release_start(struct pg_conn *c, const char *cert, const char *holder, uint64_t token,
                           int64_t now_ms, pg_lease_cb cb, void *arg, struct pg_op **out);

/* A write made under a lease: the statements of an op that begins with
 * SELECT certloop_fence(cert, holder, token, now) commit only while the
 * lease is held (the whole op fails with PG_SQLSTATE_LEASE_LOST otherwise).
 * fence fills the first statement; the parameters it points into live in
 * *f. */
struct pg_fence {
    const char *cert, *holder; /* borrowed */
    uint64_t token;
    int64_t now_ms; /* < 0: the server's clock */
    char token_s[24], now_s[24];
    const char *params[4];
};
void pg_fence_stmt(struct pg_fence *f, struct pg_stmt *out);

/* Stores a new generation of cert under the lease and makes it current, in
 * one transaction; NOTIFY PG_CHANNEL_GENERATION reaches every listener at
 * commit. key_sealed is pg_seal's output. cb gets 0, the verdict
 * PG_LEASE_LOST when the lease was not held (nothing written), or an
 * error. All strings are copied. */
struct pg_generation {
    const char *cert, *generation;
    const char *cert_pem, *chain_pem, *fullchain_pem, *meta_json;
    const uint8_t *key_sealed;
    size_t key_sealed_len;
};
int pg_generation_put_start(struct pg_conn *c, struct pg_fence *f, const struct pg_generation *g,
                            pg_lease_cb cb, void *arg, struct pg_op **out);

/* ---- http-01 tokens and the fleet view (pg_fleet.c) --------------------------- */

/* Contract of every _start here as pg_op_start; strings are copied. */

/* http-01 key authorizations for every instance's listener: put (NOTIFY
 * PG_CHANNEL_HTTP01 with the token reaches listeners at commit), remove,
 * and a lookup for a token the listener has not seen (-ENOENT if absent
 * or expired; key_authz borrowed for the call). */
typedef void (*pg_http01_cb)(int status, const char *key_authz, void *arg);
int pg_http01_put_start(struct pg_conn *c, const char *token, const char *key_authz,
                        const char *cert, int64_t ttl_s, void (*cb)(int status, void *arg),
                        void *arg, struct pg_op **out);
int pg_http01_remove_start(struct pg_conn *c, const char *token, void (*cb)(int status, void *arg),
                           void *arg, struct pg_op **out);
int pg_http01_lookup_start(struct pg_conn *c, const char *token, pg_http01_cb cb, void *arg,
                           struct pg_op **out);

/* Each instance's heartbeat (name, version, configuration digest) and the
 * generation of each certificate it deployed, with the outcome. */
int pg_instance_beat_start(struct pg_conn *c, const char *name, const char *version,
                           const char *config_digest, void (*cb)(int status, void *arg), void *arg,
                           struct pg_op **out);
int pg_deployment_put_start(struct pg_conn *c, const char *instance, const char *cert,
                            const char *generation, bool ok, const char *error,
                            void (*cb)(int status, void *arg), void *arg, struct pg_op **out);

/* One instance in the fleet view; strings borrowed for the callback. */
struct pg_fleet_row {
    const char *name, *version, *config_digest;
    int64_t heartbeat_age_s;
    bool silent;      /* no heartbeat for longer than silent_after_s */
    unsigned lagging; /* certificates it deployed an older generation of than current */
    unsigned failed;  /* certificates whose last deployment there failed */
    const char *lagging_certs, *failed_certs; /* their names, space-separated */
    unsigned deployed;                        /* certificates it deployed (or tried to) */
};
typedef void (*pg_fleet_cb)(int status, const struct pg_fleet_row *rows, size_t n, void *arg);
int pg_fleet_read_start(struct pg_conn *c, int64_t silent_after_s, pg_fleet_cb cb, void *arg,
                        struct pg_op **out);

/* What this instance declares of each certificate (replacing what it
 * declared before, in one transaction), and the certificates it declares
 * that another live instance (a heartbeat within silent_after_s) declares
 * with another digest; strings borrowed for the callback. */
struct pg_declaration {
    const char *cert, *digest, *names, *key;
};
int pg_declarations_put_start(struct pg_conn *c, const char *instance,
                              const struct pg_declaration *d, size_t n,
                              void (*cb)(int status, void *arg), void *arg);
struct pg_conflict {
    const char *cert, *instance, *names, *key;
};
typedef void (*pg_conflicts_cb)(int status, const struct pg_conflict *rows, size_t n, void *arg);
int pg_conflicts_read_start(struct pg_conn *c, const char *instance, int64_t silent_after_s,
                            pg_conflicts_cb cb, void *arg);

/* ---- the backend's in-memory copy (pg_cache.c) ------------------------------ */

/* One certificate as we know it. */
struct pcert {
    char *name;
    struct store_cert cur; /* generation NULL: none stored; key_pem NULL if it did not unseal */
    char **gens;           /* ascending (names sort by age) */
    size_t ngens;
    char **note_key, **note_json; /* notes per generation: key "GENERATION\nNOTE" */
    size_t nnotes;
    struct buf history;           /* its history lines, oldest first */
    char *order_json;             /* or NULL */
    bool redeploy;                /* ours: this instance owes a deployment */
    bool alert[STORE_ALERT__MAX]; /* ours: the last alert of each kind was kept */
    int64_t alert_t[STORE_ALERT__MAX];
    bool leased;
    uint64_t fence;
    char *deployed;   /* the generation this instance last deployed, or NULL */
    bool deployed_ok; /* and whether that deployment succeeded */
};

struct pacct {
    char *ca, *key_pem, *json; /* key_pem NULL: did not unseal (logged) */
};

/* A rollover's next key, kept apart from the account (it may exist alone). */
struct pnext {
    char *ca, *key_pem;
};

struct pbox {
    char *id, *text;
};

struct pg_store {
    struct store base; /* first: a struct store * is a struct pg_store * */
    struct pg_conn *conn;
    struct pg_key key;
    char *instance;
    struct pcert **certs;
    size_t ncerts, capcerts;
    struct pacct *accts;
    size_t naccts, capaccts;
    struct pnext *nexts;
    size_t nnexts, capnexts;
    struct pbox *boxes; /* the live outbox (store_outbox_load) */
    size_t nboxes, capboxes;
    /* NOTIFY certloop_http01: another instance put a token (store_pg.h) */
    void (*http01_cb)(const char *token, void *arg);
    void *http01_arg;
    /* owned: STATE/lineage, where generations are written out for hooks
     * (store_lineage_start), or NULL (a short command: none) */
    char *lineage_root;
    /* owned: the instance's state directory (STATE), where its own
     * records are kept through the file backend's code (pg_local.c: the
     * API's bootstrap certificate, hub cursors), or NULL (none kept) */
    char *local_dir;
};

/* pg_local.c: the records of this instance alone, kept in local_dir and
 * not in the database (store.h's hub cursors and API bootstrap);
 * pg_store_local_set gives the store its state directory (and
 * STATE/lineage, for a store with a loop). */
void pg_store_local_set(struct store *s, const char *state_dir);
int pg_hub_cursor_read(struct store *s, const char *hub, char **id);
int pg_hub_cursor_put(struct store *s, const char *hub, const char *id, store_cb cb, void *arg);
int pg_api_bootstrap_read(struct store *s, char **cert_pem, char **key_pem);
int pg_api_bootstrap_put(struct store *s, const char *cert_pem, const char *key_pem);

/* A certificate's history past HISTORY_MAX bytes is cut to its newest
 * whole lines within HISTORY_KEEP (the same rule as the file backend). */
#define HISTORY_MAX (64 * 1024)
#define HISTORY_KEEP (32 * 1024)
#define HISTORY_MAX_S "65536"
#define HISTORY_KEEP_S "32768"

/* The copy's records: find (NULL when absent) or get (created empty). All
 * strings are copied; keys are wiped when freed. */
void pg_cache_strv_free(char **v, size_t n);
void pg_cache_pcert_free(struct pcert *c);
struct pcert *pg_cache_cert_find(struct pg_store *p, const char *name);
struct pcert *pg_cache_cert_get(struct pg_store *p, const char *name);
/* Adds a generation name (kept ascending) / keeps the newest keep + 1 and
 * their notes. */
void pg_cache_gen_add(struct pcert *c, const char *gen);
void pg_cache_gens_prune(struct pcert *c, int keep);
char **pg_cache_note_find(struct pcert *c, const char *gen, const char *note);
void pg_cache_note_set(struct pcert *c, const char *gen, const char *note, const char *json);
struct pacct *pg_cache_acct_find(struct pg_store *p, const char *ca);
/* key_pem NULL: the key did not unseal (reads answer ERR_CRYPTO). */
void pg_cache_acct_set(struct pg_store *p, const char *ca, const char *key_pem, const char *json);
struct pnext *pg_cache_next_find(struct pg_store *p, const char *ca);
/* key_pem NULL forgets the next key. */
void pg_cache_acct_next_set(struct pg_store *p, const char *ca, const char *key_pem);
void pg_cache_history_add(struct pcert *c, const char *line);
/* The live outbox: a delivery put (text) or gone (NULL: removed or buried). */
void pg_cache_box_set(struct pg_store *p, const char *id, const char *text);
/* Wipes a secret string and frees it (NULL is fine). */
void pg_cache_wipe_free(char *secret);

/* pg_open.c for pg_store.c: each certificate's current generation (with
 * " WHERE c.name = $1": one) as PG_CURRENT_SQL selects it, into the copy;
 * another instance's generation is announced to the store's watch. */
#define PG_CURRENT_SQL                                                                             \
    "SELECT c.name, g.generation, g.cert_pem, g.chain_pem, g.fullchain_pem,"                       \
    " encode(g.key_sealed, 'hex'), g.meta_json FROM certloop_certificates c"                       \
    " LEFT JOIN certloop_generations g ON g.cert = c.name AND g.generation = c.current_generation"
void pg_open_current_rows(struct pg_store *p, PGresult *r);

/* pg_store.c for pg_open.c: the vtable, freeing a store, and the keys' AD. */
extern const struct store_ops pg_store_ops;
void pg_store_free(struct store *s);
char *pg_store_account_ad(const char *ca);
/* A key from encode(key_sealed, 'hex') unsealed for (cert, gen), owned, or
 * NULL (logged). */
char *pg_store_unseal_hex(struct pg_store *p, const char *cert, const char *gen, const char *hex);

/* ---- the store backend (pg_store.c) ------------------------------------------ */

/* How long a lease lasts unless renewed ([store] lease_time sets another). */
#define PG_LEASE_MS 120000

struct store;
/* Opens the PostgreSQL backend of the store interface: connects, migrates
 * the schema and loads this instance's view (blocking up to 10 s on a
 * private loop: call it before the daemon's loop runs), then keeps a
 * connection on loop (NULL: reads only) for the writes. key is copied;
 * instance names this daemon in leases, marks and alerts. Owned: store_close.
 */
int store_pg_open(uv_loop_t *loop, const char *conninfo, const struct pg_key *key,
                  const char *instance, struct store **out);
/* The same from [store]: reads conninfo_file and encryption_key_file
 * (their failures logged with the path); instance NULL names this daemon
 * by the host's name. store_open_config (store.h) calls it. */
struct cfg_store;
int store_pg_open_config(uv_loop_t *loop, const struct cfg_store *cfg, const char *instance,
                         struct store **out);
/* conninfo_file's text into *b (initialised here; trailing whitespace
 * cut), its failure logged with the path; pg_conninfo_wipe wipes and frees
 * it (it may carry a password), also after a failure. */
int pg_conninfo_read(const char *path, struct buf *b);
void pg_conninfo_wipe(struct buf *b);

#endif
