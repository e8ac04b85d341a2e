/* The fleet: what a daemon on a store shared with other instances
 * (PostgreSQL, issue 14) does beside its own certificates. fleet_http01.c:
 * every instance's http-01 listener answers the tokens of the fleet. */
#ifndef CERTLOOP_REACTOR_FLEET_H
#define CERTLOOP_REACTOR_FLEET_H

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

#endif
