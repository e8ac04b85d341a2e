/* Private to the ACME client of one CA: its request queue (client.c) and
 * its account setup (client_setup.c: the directory, then the account),
 * which meet in struct acme_client. Included by those two files only. */
#ifndef CERTLOOP_ACME_CLIENT_INTERNAL_H
#define CERTLOOP_ACME_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <uv.h>

#include "acme/acme.h"

#define NONCE_POOL 64

enum acct_state { ACCT_NONE, ACCT_SETUP, ACCT_READY };

struct acme_client {
    uv_loop_t *loop;
    struct http_client *http; /* borrowed */
    struct config *cfg;       /* ref */
    const struct cfg_ca *ca;  /* borrowed from cfg */
    struct store *store;      /* borrowed: outlives the client */
    json_t *dir;              /* owned: the directory object */
    char *nonces[NONCE_POOL]; /* owned */
    size_t n_nonces;
    EVP_PKEY *key; /* owned: the account key */
    char *kid;     /* owned: the account URL */
    char *thumb;   /* owned */
    enum acct_state acct;
    bool only_existing;        /* the pending newAccount is onlyReturnExisting */
    bool kid_stale;            /* the stored account URL is unknown to the CA */
    bool push_contacts;        /* the configured contacts differ from account.json's */
    char *profile;             /* owned: the profile newOrder asks for, decided from the
                                * directory's meta.profiles; NULL: none */
    struct http_req *dir_req;  /* directory GET in flight, or NULL */
    struct acme_request *reqs; /* every live request */
    int jobs;                  /* store jobs in flight */
    unsigned inflight;         /* requests holding a slot */
    uint64_t slot_seq;         /* last queue ticket handed out */
    uv_timer_t slot_timer;     /* sends queued requests from the loop */
    bool slot_timer_open;      /* only with max_parallel_requests > 0 */
    bool closing;
};

/* client.c: the queue */

/* Frees c and everything it owns (its slot timer closes first, if open). */
void acme_client_free(struct acme_client *c);

/* Keeps n (copied; NULL or empty is ignored) in c's nonce pool, dropping
 * the oldest when it is full. */
void acme_client_nonce_push(struct acme_client *c, const char *n);

/* The setup is done: sends every request that waited for the account
 * (state READY already set). Stops if a callback closes the client. */
void acme_client_send_waiting(struct acme_client *c);

/* The setup failed: fails every request that waited for the account with
 * rc and msg (borrowed). Their callbacks may start a new setup. */
void acme_client_fail_waiting(struct acme_client *c, int rc, const char *msg);

/* Sends o signed with the account's JWK instead of its kid (newAccount,
 * RFC 8555 §6.2), without waiting for the account. The callback runs
 * exactly once, also when the send fails. */
void acme_client_post_jwk(struct acme_client *c, const struct acme_request_opts *o,
                          acme_response_cb cb, void *arg);

/* client_setup.c: the directory, then the account */

/* Fetches the directory, then loads or registers the account; requests
 * queued meanwhile are sent (acme_client_send_waiting) or failed
 * (acme_client_fail_waiting) at its end. < 0: nothing started. */
int acme_client_setup_start(struct acme_client *c);

#endif
