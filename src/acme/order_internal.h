/* Private to the order state machine (order.c: lifetime, helpers,
 * finalize, download, newOrder and resume; order_authz.c: authorizations
 * and their challenges) and its tests. */
#ifndef CERTLOOP_ACME_ORDER_INTERNAL_H
#define CERTLOOP_ACME_ORDER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "acme/acme.h"

#define POLL_FIRST_MS 1000
#define POLL_MAX_MS 5000
#define POLL_RETRY_AFTER_MAX_S 60
/* Issue 17: "Retry-After: 0" on a processing order made certloop poll ~22
 * times a second. No timed poll comes sooner than this after the response
 * that scheduled it, whatever the CA says. Two early polls are not timed
 * polls and may come sooner, each at most once per authorization or order
 * and never before a Retry-After the CA sent: an authorization's poll
 * driven by an event (our listener saw the CA fetch the http-01 token or
 * finish the tls-alpn-01 handshake: POLL_SEEN_MS after the last such
 * fetch, so that a CA validating from several vantage points is asked once
 * after all of them; when every authorization left, two or more, has been
 * fetched, one poll of the order object by the same rules stands in for
 * theirs, once per order), and the first poll of a `processing` order without a
 * Retry-After (POLL_EARLY_MS: issuance usually takes milliseconds). The cap
 * below bounds those too. */
#define POLL_FLOOR_MS 1000
#define POLL_SEEN_MS 30
#define POLL_EARLY_MS 50
/* Every request an order makes counts (newOrder, authorizations, challenge
 * responses, polls, finalize, downloads); past the cap the order fails
 * instead of asking again. With the floor and POLL_MAX_MS a good CA needs a
 * small fraction of this within authz_timeout_s. */
#define ORDER_REQUESTS_BASE 100
#define ORDER_REQUESTS_PER_NAME 40
#define CHAIN_MAX (1024 * 1024)
#define MAX_ALTERNATES 8

enum order_state {
    ORD_RESUME,
    ORD_NEW,
    ORD_WRITE, /* the order file is being written */
    ORD_AUTHZ,
    ORD_FINALIZE,
    ORD_PROCESSING,
    ORD_DOWNLOAD,
    ORD_ENDED
};

enum az_state { AZ_FETCH, AZ_PRESENT, AZ_RESPOND, AZ_POLL, AZ_WAIT, AZ_DONE };

struct order_authz {
    struct acme_order *o; /* borrowed: the owner */
    char *url;            /* owned */
    char *ident;          /* owned: the DNS name, once known */
    char *token;          /* owned: presented token, or NULL */
    char *chal_url;       /* owned */
    /* dns-01 */
    char *dns_ident;  /* owned: "a.test" or "*.a.test", once presented */
    char *keyauth;    /* owned */
    void *dns_handle; /* the provision in flight, or NULL */
    enum az_state state;
    struct acme_request *req; /* child in flight, or NULL */
    uv_timer_t timer;         /* timer.data = this */
    unsigned delay_ms;
    bool seen; /* the CA fetched the challenge (acme_order_chal_seen) */
    enum { EARLY_NONE, EARLY_ARMED, EARLY_DONE } early; /* the one event-driven poll */
    uint64_t not_before_ms; /* loop time: the CA's Retry-After, no poll before */
    uint64_t seen_ms;       /* loop time of the first fetch seen, or 0 */
};

struct acme_order {
    struct acme_client *c; /* borrowed: outlives every order */
    uv_loop_t *loop;
    char *name; /* owned: the certificate's name */
    char **domains;
    size_t n_domains;
    enum cfg_key_type key_type;
    char *ca_name, *directory, *preferred_chain; /* owned copies */
    char *replaces;                              /* ARI CertID, or NULL */
    char *profile;                               /* owned: the order object's "profile", or NULL */
    EVP_PKEY *key;                               /* ref */
    char *key_pem; /* owned: key as written to the order file, handed to the result */
    struct acme_chal_ops chal;
    enum cfg_challenge kind; /* http-01, dns-01 or tls-alpn-01 */
    int64_t persist_until;   /* dns-persist-01: persistUntil in the record (0: none) */
    bool starting;           /* inside acme_order_start: failures return, never call back */
    unsigned n_requests;     /* sent to the CA so far, against requests_max */
    unsigned requests_max;
    struct store *store;                       /* borrowed: outlives the order */
    char *order_url, *finalize_url, *cert_url; /* owned */
    struct order_authz *az;                    /* owned array */
    size_t n_az, az_done;
    uv_timer_t timer; /* order polls; timer.data = this */
    unsigned delay_ms;
    bool early_used; /* the early poll of a processing order is done */
    /* the one early poll of the order object in place of its authorizations'
     * (order_authz.c: all waiting ones seen fetched) */
    enum { ORDER_EARLY_NONE, ORDER_EARLY_ARMED, ORDER_EARLY_DONE } authz_early;
    uint64_t deadline_ms; /* loop time by which authorizations must be final */
    int authz_timeout_s;
    struct acme_request *req;     /* child in flight, or NULL */
    int refs;                     /* open handles + store job in flight */
    int64_t retry_after_s;        /* from a failing response, or 0 */
    char *failed_ident;           /* the identifier whose authorization went invalid */
    struct acme_problem *problem; /* the CA's problem document behind a failure, or NULL */
    enum order_state state;
    /* download */
    struct acme_chain *chains; /* parsed candidates, [0] the default */
    char **chain_pems;
    size_t n_chains;
    char **alt_urls;
    size_t n_alt, alt_next;
    acme_order_cb cb;
    void *arg;
};

/* where a challenge URL came from, for acme_order_post's refusals */
#define FROM_CHAL "a challenge in the authorization"

/* order.c */
void acme_order_keep_problem(struct acme_order *o, struct acme_problem *p);
void acme_authz_release(struct order_authz *a);
__attribute__((format(printf, 3, 4))) void acme_order_fail(struct acme_order *o, int status,
                                                           const char *fmt, ...);
int acme_order_post(struct acme_order *o, struct acme_request **slot, const char *url,
                    const char *from, const char *payload, const char *subject, acme_response_cb cb,
                    void *arg);
unsigned acme_order_next_delay(unsigned *delay_ms, const char *retry_after);
void acme_order_note_failure(struct acme_order *o, const struct acme_response *r);
const char *acme_order_jstr(json_t *obj, const char *key);
char *acme_order_problem_of(json_t *err);
void acme_order_finalize(struct acme_order *o);

/* order_authz.c */
void acme_authz_fetch(struct order_authz *a);
void acme_authz_start(struct acme_order *o, json_t *obj);

#endif
