/* The fleet: what a daemon on a store shared with other instances
 * (PostgreSQL, issue 14) does beside its own certificates. fleet_http01.c:
 * every instance's http-01 listener answers the tokens of the fleet;
 * fleet_view.c: heartbeats, deployments and the view of every instance. */
#ifndef CERTLOOP_REACTOR_FLEET_H
#define CERTLOOP_REACTOR_FLEET_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct chal_http01;
struct store;

/* ---- shared http-01 tokens (fleet_http01.c) ----------------------------------------
 *
 * The run that holds a certificate's lease presents its http-01 tokens in
 * the listener of its own instance and in the database
 * (fleet_http01_present, before the CA is told); the others learn them by
 * NOTIFY and put them in their listener's table, and a request for a token
 * the table does not hold yet waits while it is looked up (the listener's
 * miss callback). Tokens learned from the database stay in the table after
 * the database goes away (an instance keeps answering what it knows) and
 * are dropped CACHE_TTL after they were learned. Nothing here blocks. */
struct fleet_http01;

struct fleet_http01_stats {
    uint64_t notified; /* tokens announced by NOTIFY */
    uint64_t lookups;  /* database lookups (NOTIFY or a miss) */
    uint64_t found;    /* tokens put in the table from the database */
    size_t cached;     /* tokens held now that came from the database */
};

/* NULL when store is not shared or chal is NULL (no listener): then the
 * other functions are no-ops. Both borrowed: call fleet_http01_stop before
 * closing either. */
struct fleet_http01 *fleet_http01_start(uv_loop_t *loop, struct store *store,
                                        struct chal_http01 *chal);
/* The token of cert goes to the database (a failure is logged: the local
 * listener still answers it). */
void fleet_http01_present(struct fleet_http01 *f, const char *token, const char *key_authz,
                          const char *cert);
void fleet_http01_cleanup(struct fleet_http01 *f, const char *token);
void fleet_http01_get_stats(const struct fleet_http01 *f, struct fleet_http01_stats *out);
/* Stops listening and looking up, and frees f (NULL is fine). */
void fleet_http01_stop(struct fleet_http01 *f);

/* ---- the fleet view (fleet_view.c) -------------------------------------------------
 *
 * Every FLEET_BEAT_S this instance writes its heartbeat (name, version, the
 * digest of its certificates' declarations) and then reads every
 * instance's row; what it read is the view GET /v1/fleet and `status
 * --fleet` show (a copy: answering never waits for the database). An
 * instance without a heartbeat for FLEET_SILENT_S is "silent"; one that
 * deployed an older generation of a certificate than the current one is
 * "lagging" on it; "failed" lists the certificates whose last deployment
 * there failed. Each deployment's outcome is written as it ends. */
#define FLEET_BEAT_S 5
#define FLEET_SILENT_S 20

struct config;
struct fleet_view;

/* Called for each new conflict (strings borrowed for the call). */
typedef void (*fleet_conflict_cb)(const char *cert, const char *instance, const char *names,
                                  const char *key, void *arg);

/* NULL when store is not shared (then the others are no-ops). store
 * borrowed: call fleet_view_stop before closing it. conflict (may be NULL)
 * hears of each conflicting declaration once, when it is first seen. */
struct fleet_view *fleet_view_start(uv_loop_t *loop, struct store *store, const struct config *cfg,
                                    fleet_conflict_cb conflict, void *arg);
/* A reload: the digest of the new declarations goes out with the next beat. */
void fleet_view_config(struct fleet_view *v, const struct config *cfg);
/* This instance deployed generation of cert (ok), or failed to (error);
 * generation NULL: the stored current one. */
void fleet_view_deployed(struct fleet_view *v, const char *cert, const char *generation, bool ok,
                         const char *error);
/* The view as last read: {"self", "database": "up"|"unreachable",
 * "as_of": N|null, "silent_after": N, "instances": [{"instance", "version",
 * "config_digest", "heartbeat_age", "silent", "deployed", "lagging": [S],
 * "failed": [S]}], "conflicts": [{"certificate", "instance", "names",
 * "key"}]}. Owned. */
json_t *fleet_view_json(const struct fleet_view *v);
/* The digest of cfg's certificate declarations (names, CA, key type, domains),
 * 16 hex digits, into out (17 bytes); and of one certificate's (its names
 * in order and key type: what two instances must agree on). */
void fleet_config_digest(const struct config *cfg, char out[17]);
struct cfg_cert;
void fleet_cert_digest(const struct cfg_cert *c, char out[17]);
/* True when another live instance declares cert with other names or
 * another key type, or when that is not known yet (the declarations were
 * just written): the manager then orders no certificate whose only reason
 * is that its names or key type differ from the stored one, so two
 * instances never undo each other's orders. Each new conflict is logged as
 * a warning; the view shows them ("conflicts"). */
bool fleet_view_conflict(const struct fleet_view *v, const char *cert);
void fleet_view_stop(struct fleet_view *v);

#endif
