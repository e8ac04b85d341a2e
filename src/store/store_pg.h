/* The PostgreSQL backend's entries outside the store interface (issue 14):
 * the one-shot commands that work on the shared database itself, each on a
 * private loop with a deadline (never inside the daemon's loop). */
#ifndef CERTLOOP_STORE_STORE_PG_H
#define CERTLOOP_STORE_STORE_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg_store;
struct store;

/* `certloop store rotate-key`: seals every private key in the database
 * again with the key in new_key_file, in one transaction. The old key is
 * old_key_file, or NULL: [store] encryption_key_file. Keys already sealed
 * with the new key are skipped, so running it again (say, after an instance
 * still on the old key stored a generation) only reseals what needs it.
 * Returns 0 and *resealed, or: -EINVAL (a key file unreadable or not a key,
 * or the two keys are the same; logged), -EKEYREJECTED (a key opens with
 * neither: nothing written), ERR_CRYPTO (a key does not authenticate:
 * tampered), ERR_TIMEOUT (no answer from the database within timeout_ms),
 * ERR_DB (a statement failed: logged). */
int store_pg_rotate_key(const struct cfg_store *cfg, const char *old_key_file,
                        const char *new_key_file, unsigned timeout_ms, size_t *resealed);

/* ---- the fleet, on a store that several instances share -------------------------
 *
 * Each _start below follows STYLE §4 (< 0: no callback; otherwise exactly
 * one, later, on the loop) except that store_close silences the callbacks
 * still pending: an owner that outlives the store frees their contexts. All
 * strings are copied. On a store that is not shared every one returns
 * -ENOTSUP. */

/* True when s is the PostgreSQL backend (other instances may share it). */
bool store_pg_is(const struct store *s);

/* http-01 key authorizations every instance's listener answers (the
 * lease holder puts them before the CA is told, and removes them after):
 * put makes NOTIFY certloop_http01 reach every instance at commit, lookup
 * answers one token the listener does not know (-ENOENT: none, or
 * expired; key_authz borrowed for the call). */
int store_pg_http01_put_start(struct store *s, const char *token, const char *key_authz,
                              const char *cert, void (*cb)(int status, void *arg), void *arg);
int store_pg_http01_remove_start(struct store *s, const char *token,
                                 void (*cb)(int status, void *arg), void *arg);
struct pg_op;
int store_pg_http01_lookup_start(struct store *s, const char *token,
                                 void (*cb)(int status, const char *key_authz, void *arg),
                                 void *arg, struct pg_op **out);
/* Silences an operation started with an *out (its callback never runs). */
void store_pg_op_cancel(struct pg_op *op);
/* cb(token) for every token another instance (or this one) puts, from now
 * on (NULL: stop). Notifications sent while the connection was down are
 * lost: the listener's lookup on a miss covers them. */
void store_pg_http01_watch(struct store *s, void (*cb)(const char *token, void *arg), void *arg);

/* True while the connection to the database is up. */
bool store_pg_connected(const struct store *s);

/* This instance's name in the fleet ([store] instance, else the host's). */
const char *store_pg_instance(const struct store *s);

/* The fleet view: each instance's heartbeat (name, version, configuration
 * digest: registers it the first time), and the generation of each
 * certificate it deployed, with the outcome (error NULL when ok). */
int store_pg_beat_start(struct store *s, const char *version, const char *config_digest,
                        void (*cb)(int status, void *arg), void *arg);
int store_pg_deployed_start(struct store *s, const char *cert, const char *generation, bool ok,
                            const char *error, void (*cb)(int status, void *arg), void *arg);
/* One instance as the database sees it; strings borrowed for the callback. */
struct store_fleet_row {
    const char *name, *version, *config_digest;
    int64_t heartbeat_age_s;
    bool silent;                              /* no heartbeat for longer than silent_after_s */
    unsigned deployed;                        /* certificates it deployed or tried to */
    unsigned lagging;                         /* of those, an older generation than current */
    unsigned failed;                          /* of those, the last deployment failed */
    const char *lagging_certs, *failed_certs; /* their names, space-separated */
};
int store_pg_fleet_read_start(struct store *s, int64_t silent_after_s,
                              void (*cb)(int status, const struct store_fleet_row *rows, size_t n,
                                         void *arg),
                              void *arg);

/* What this instance declares of each certificate: its names
 * (space-separated) and key type, and their digest. Replaces what it
 * declared before. */
struct store_declaration {
    const char *cert, *digest, *names, *key;
};
int store_pg_declare_start(struct store *s, const struct store_declaration *d, size_t n,
                           void (*cb)(int status, void *arg), void *arg);
/* The certificates this instance declares that another live instance
 * declares differently: that instance, its names and key type (borrowed
 * for the callback). */
struct store_conflict {
    const char *cert, *instance, *names, *key;
};
int store_pg_conflicts_read_start(struct store *s, int64_t silent_after_s,
                                  void (*cb)(int status, const struct store_conflict *rows,
                                             size_t n, void *arg),
                                  void *arg);

#endif
