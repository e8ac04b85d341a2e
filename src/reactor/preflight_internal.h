/* Internals of `certloop test NAME` shared by its files: preflight.c (the
 * run: names, CAA, the sequencing), preflight_http01.c,
 * preflight_tlsalpn01.c and preflight_dns01.c (each challenge's probe);
 * preflight_caa.c holds the pure helpers of preflight.h. */
#ifndef CERTLOOP_REACTOR_PREFLIGHT_INTERNAL_H
#define CERTLOOP_REACTOR_PREFLIGHT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

struct config;
struct cfg_cert;
struct dns_resolver;
struct http_client;
struct chal_http01;
struct chal_tlsalpn;
struct dns01_provider;
struct notify;

#define PF_CALLBACK_WAIT_MS 15000

struct pf;

struct pf_name {
    struct pf *pf;
    const char *domain; /* as configured: "*.a.test" or "a.test" (borrowed from cfg) */
    const char *base;   /* without "*." */
    bool wild;
    char **addrs; /* owned, n_addrs */
    size_t n_addrs;
    char *dns_err;      /* owned: first error, or NULL */
    int answers;        /* A/AAAA answers received */
    const char *caa_at; /* CAA: the name queried now (points into base) */
};

enum pf_phase { PH_DNS, PH_DIRECTORY, PH_CAA, PH_CHALLENGE, PH_CLEANUP, PH_DONE };

struct pf {
    uv_loop_t loop;
    struct config *cfg;
    const struct cfg_cert *cert;
    const char *cname;
    FILE *out, *err;
    struct dns_resolver *res;
    struct http_client *http;
    struct chal_http01 *chal;
    struct dns01_provider *dns01;
    struct notify *notify; /* callback solvers: in memory, no outbox */
    uint64_t cleanup_deadline;
    uv_timer_t poll;
    bool poll_open;
    struct pf_name *names;
    size_t n_names;
    char **ids; /* caaIdentities, owned; NULL-terminated */
    size_t n_ids;
    char *account_url; /* owned: the CA account's URL from the state directory, or NULL */
    char *thumbprint;  /* owned: that account key's JWK thumbprint, or NULL */
    void *dir_meta;    /* owned json_t: the CA directory's meta object, or NULL */
    bool ids_known;
    enum pf_phase phase;
    int pending;
    bool failed;
    /* http-01 */
    char *token, *keyauth;
    bool webroot_token; /* the probe token is in [http01] webroot: remove it */
    int http_mode;      /* enum pf_http_mode */
    char **keyauths;    /* dns-01: per name, owned */
    char **recnames;    /* dns-01: per name, where the test record goes (owned) */
    /* tls-alpn-01 */
    struct chal_tlsalpn *tls; /* our temporary responder, or NULL (the daemon's) */
    int tls_puts;             /* challenge certificates being built */
};

/* One line "test NAME: CHECK DOMAIN: detail ... PASS|FAIL"; a FAIL marks
 * the run failed. */
void pf_report(struct pf *pf, const char *check, const char *domain, bool pass, const char *fmt,
               ...) __attribute__((format(printf, 5, 6)));
/* A random probe token (base64url of 18 bytes). Owned. */
char *pf_random_token(void);
/* One pending check ended: the next phase starts when none is left. */
void pf_done_one(struct pf *pf);
/* The challenge phase, by the certificate's challenge type. */
void pf_start_http01(struct pf *pf);
void pf_start_tlsalpn01(struct pf *pf);
void pf_start_dns01(struct pf *pf);

#endif
