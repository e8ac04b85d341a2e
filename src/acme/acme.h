/* ACME (RFC 8555) client: keys, JWS, CSRs, certificate parsing and problem
 * documents as pure functions (this first part), and the account and order
 * state machines on the reactor (second part). */
#ifndef CERTLOOP_ACME_ACME_H
#define CERTLOOP_ACME_ACME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "config/config.h"

struct store;

/* ---- Keys (acme/crypto.c) ------------------------------------------------ */

/* Generates a private key of the given type (RSA with e = 65537). Pure and
 * silent; safe to call from a uv_queue_work thread. *out is owned
 * (EVP_PKEY_free). ERR_CRYPTO on failure (the OpenSSL error queue is
 * drained; the caller logs), -EINVAL for an unknown type. */
int acme_key_generate(enum cfg_key_type type, EVP_PKEY **out);
/* PKCS#8 PEM of a private key. Owned, NUL-terminated. */
int acme_key_to_pem(EVP_PKEY *key, char **pem, size_t *len);
/* Reads a private key from PEM (PKCS#8 or traditional). ERR_PARSE on garbage
 * and on encrypted keys (never prompts). Silent, like the two above. */
int acme_key_from_pem(const char *pem, size_t len, EVP_PKEY **out);
/* The cfg key type of an existing key, or -EINVAL if none matches. */
int acme_key_type_of(EVP_PKEY *key, enum cfg_key_type *out);
/* Frees one reference to key (EVP_PKEY_free), after dropping the signing
 * context acme_jws_sign keeps for the last EC key that signed when it is
 * this key, so a retired account key (rollover, another account, shutdown)
 * leaves memory now and not when another key next signs. Use it for every
 * key that may have signed a JWS. NULL is fine. (acme/jws.c) */
void acme_key_free(EVP_PKEY *key);

/* ---- JOSE (acme/jws.c) --------------------------------------------------- */

/* The public JWK of an account key (EC P-256/P-384 or RSA) as a JSON object
 * with only the required members (RFC 7638 order is not needed here). Owned. */
json_t *acme_jwk(EVP_PKEY *key);
/* RFC 7638 JWK thumbprint, base64url (SHA-256). Owned. */
char *acme_jwk_thumbprint(EVP_PKEY *key);
/* "ES256", "ES384" or "RS256" for an account key; NULL if unsupported. */
const char *acme_jws_alg(EVP_PKEY *key);
/* A flattened JWS (RFC 8555 §6.2): protected = {alg, nonce, url, kid} when
 * kid != NULL, else {alg, nonce, url, jwk}. payload NULL means POST-as-GET
 * (payload "", not "e30"). nonce NULL omits it (only for the inner JWS of a
 * key change, §7.3.5). ES256/ES384 signatures are r||s (RFC 7518 §3.4).
 * Returns the serialized JSON body, owned. -EINVAL for an unsupported key or
 * non-UTF-8 strings, ERR_CRYPTO if signing fails (logged). */
int acme_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
                  const char *payload, char **out);
/* External Account Binding (RFC 8555 §7.3.4): a JWS with alg HS256, kid =
 * eab_kid, url = newAccount URL, payload = the account's JWK; the HMAC key
 * is base64url as CAs hand it out (standard base64 with padding is accepted
 * too). Returns the JSON object (owned) to put in the newAccount payload as
 * "externalAccountBinding". ERR_PARSE (logged) if the key does not decode. */
int acme_eab_sign(EVP_PKEY *account_key, const char *eab_kid, const char *hmac_key_b64url,
                  const char *url, json_t **out);
/* The keyChange request's payload (RFC 8555 §7.3.5): a JWS signed by
 * new_key (its JWK in the header, no nonce, url = the keyChange URL) over
 * {"account": account_url, "oldKey": JWK of old_key}. Owned JSON text, to
 * be sent kid-signed by the old key. -EINVAL, or acme_jws_sign's errors. */
int acme_key_change_inner(EVP_PKEY *new_key, EVP_PKEY *old_key, const char *account_url,
                          const char *url, char **out);
/* The dns-account-01 label of an account (draft-ietf-acme-dns-account-
 * label-03): "_" + base32 (lower case, unpadded) of SHA-256(account_url)
 * truncated to 10 bytes. The record is LABEL._acme-challenge.NAME. Owned,
 * NULL when hashing fails. */
char *acme_dns_account_label(const char *account_url);
/* dns-persist-01 (draft-ietf-acme-dns-persist-02 §4.1): the hashed
 * account URI for the record at _validation-persist.DOMAIN: the directory's
 * accountHashPrefix, "sha-256/", then base64url of SHA-256 over one length
 * octet, DOMAIN, the account key's JWK thumbprint (base64url) and the
 * account URL. Owned; NULL when DOMAIN is empty or longer than 255. */
char *acme_dns_persist_account_uri(const char *prefix, const char *domain, const char *thumbprint,
                                   const char *account_url);
/* The TXT value: "ISSUER; accounturi=URI", then "; policy=wildcard" for a
 * wildcard and "; persistUntil=SECONDS" when persist_until > 0. Owned. */
char *acme_dns_persist_value(const char *issuer, const char *account_uri, bool wildcard,
                             int64_t persist_until);
/* Key authorization "TOKEN.THUMBPRINT" (owned) and its dns-01 TXT value,
 * base64url(SHA-256(keyauth)) (owned). */
char *acme_key_authorization(const char *token, const char *thumbprint);
char *acme_dns01_txt(const char *key_authorization);

/* ---- CSR and certificates (acme/cert.c) ---------------------------------- */

/* A DER CSR for `domains` (as DNS SANs in order, address literals as
 * iPAddress SANs (RFC 8738 §3); the subject is left
 * empty, no CN: §7.4 puts names in the SAN and a CN caps them at 64
 * characters), signed SHA-256 with key, returned base64url-encoded as
 * finalize wants it. Owned. -EINVAL (logged) if n == 0 or a name is empty,
 * longer than 253 or has bytes outside printable ASCII; ERR_CRYPTO (logged). */
int acme_csr_build(EVP_PKEY *key, const char *const *domains, size_t n, char **b64url_der);

/* A parsed PEM chain: leaf first, then intermediates in the order given.
 * Text from the certificates (issuer_cn, sans) has non-printable bytes
 * masked as '.'. */
struct acme_chain {
    char **pem; /* owned, one PEM block each (re-encoded: LF, 64 columns) */
    size_t n;
    int64_t not_before; /* of the leaf, unix seconds */
    int64_t not_after;
    char *issuer_cn;  /* issuer CN of the topmost certificate in the chain
                         (owned; "" if that issuer has no CN) */
    char *serial_hex; /* leaf serial, lowercase hex without separators */
    char **sans;      /* leaf DNS and IP SANs (IPs as text) in certificate order, owned */
    size_t n_sans;
    X509 *leaf; /* owned: the parsed leaf, so that key and ARI checks need not parse it again */
};
/* Splits and parses a PEM chain (capped by the caller). Only whitespace may
 * surround "-----BEGIN CERTIFICATE-----" blocks; ERR_PARSE on anything else
 * (text, other block types, PEM headers, truncation, bad base64, DER that is
 * not exactly one certificate), on an empty chain and past 16 certificates.
 * Silent: the caller logs. */
int acme_chain_parse(const char *pem, size_t len, struct acme_chain *out);
void acme_chain_fini(struct acme_chain *c);
/* An ASN.1 time (a certificate's notBefore/notAfter) as unix seconds.
 * ERR_PARSE when t is NULL or not a valid time; silent. */
int acme_asn1_time_unix(const ASN1_TIME *t, int64_t *out);
/* true if the leaf's public key is the public half of key. */
bool acme_chain_matches_key(const struct acme_chain *c, EVP_PKEY *key);
/* ARI CertID (RFC 9773 §4.1): base64url(AKI keyIdentifier) "." base64url(the
 * serial INTEGER's DER content octets, sign byte included). Owned, or NULL
 * when the leaf has no AKI keyIdentifier. */
char *acme_ari_cert_id(const struct acme_chain *c);

/* ---- Problem documents (acme/problem.c) ----------------------------------- */

struct acme_subproblem {
    char *type;
    char *detail;
    char *identifier; /* "dns:example.org" or NULL */
};

struct acme_problem {
    char *type;                  /* e.g. urn:ietf:params:acme:error:badNonce; owned, may be NULL */
    char *detail;                /* owned, may be NULL */
    long status;                 /* HTTP status in the document, or 0 */
    struct acme_subproblem *sub; /* owned */
    size_t n_sub;
};

/* Parses an RFC 7807 problem document. Missing or mistyped members are left
 * NULL/0; strings are capped (type 256, detail 1024 bytes, at most 100
 * subproblems) and non-printable bytes masked as '.'. ERR_PARSE if the
 * input is not a JSON object. */
int acme_problem_parse(const char *json, size_t len, struct acme_problem *out);
/* Same from an already parsed JSON object (e.g. a challenge's "error"). */
int acme_problem_from_json(const json_t *obj, struct acme_problem *out);
void acme_problem_fini(struct acme_problem *p);
/* A deep copy (owned, release with acme_problem_free); NULL in, NULL out. */
struct acme_problem *acme_problem_dup(const struct acme_problem *p);
/* fini and free; NULL is ignored. */
void acme_problem_free(struct acme_problem *p);
/* One printable line for logs: "TYPE: DETAIL (subproblems: IDENT: TYPE:
 * DETAIL; IDENT: TYPE: DETAIL)"; a missing type reads "about:blank", a
 * missing detail is left out. Owned. */
char *acme_problem_str(const struct acme_problem *p);
/* true if type is urn:ietf:params:acme:error:NAME (NAME like "badNonce"). */
bool acme_problem_is(const struct acme_problem *p, const char *name);

/* ---- Client and orders (acme/client.c, client_setup.c, order.c) ---- */

/* One client per CA: the directory, a nonce pool fed by every Replay-Nonce,
 * the account (loaded from the store, else registered; the key is stored
 * before newAccount so a crash cannot lose a registered key) and signed
 * requests. Requests are concurrent; the first one triggers the directory
 * and account setup and every request queues behind it. badNonce is retried
 * with the nonce that came with the error (ACME_BADNONCE_RETRIES times). */
#include <uv.h>

#define ACME_BADNONCE_RETRIES 10

struct http_client;
struct acme_client;
struct acme_request;

struct acme_client_opts {
    uv_loop_t *loop;
    struct http_client *http; /* borrowed: outlives the client */
    struct config *cfg;       /* the client takes a reference */
    const struct cfg_ca *ca;  /* borrowed from cfg */
    struct store *store;      /* borrowed: outlives the client (accounts) */
};

/* Creates a client; nothing is sent until the first request. Owned: free
 * with acme_client_close. */
int acme_client_new(const struct acme_client_opts *o, struct acme_client **out);
/* Cancels every request (their callbacks never run) and frees the client
 * once its store jobs (if any) have finished; run the loop. */
void acme_client_close(struct acme_client *c);
const struct cfg_ca *acme_client_ca(const struct acme_client *c);
uv_loop_t *acme_client_loop(const struct acme_client *c);
/* The account key's JWK thumbprint; NULL before the account is ready. */
const char *acme_client_thumbprint(const struct acme_client *c);
/* The account URL; NULL before the account is ready. */
const char *acme_client_account_url(const struct acme_client *c);
/* The profile newOrder requests carry (the configured one when the
 * directory offers it); NULL before the directory is read or when none. */
const char *acme_client_profile(const struct acme_client *c);
/* The directory's meta object; NULL before the directory is read or when
 * it has none. Borrowed from the client. */
const json_t *acme_client_dir_meta(const struct acme_client *c);
/* draft-ietf-acme-dns-persist-02 §3.1-3.2: the issuer domain name to write
 * in the record, given the challenge object and the directory's meta (may
 * be NULL). The challenge's issuerDomainNames must hold 1 to 10 strings of
 * at most 253 octets, and every name of a conforming directory
 * issuerDomainNames among them; the directory's first name is chosen (the
 * one `certloop persist-record` publishes first), else the challenge's
 * first. 0 with *issuer borrowed from chal or meta, else ERR_PARSE with
 * *why (owned). Pure, silent. */
int acme_dns_persist_issuer(const json_t *chal, const json_t *meta, const char **issuer,
                            char **why);
/* draft-ietf-acme-profiles-00 §3: which profile to ask for, given the
 * directory object (its meta.profiles maps names to descriptions) and the
 * configured profile `want` (NULL: none). 0 with *use = want when offered
 * or NULL (want NULL, or not offered and fallback: *why is then a warning
 * to log, owned); ERR_UNSUPPORTED with *why (owned) naming the profiles the
 * CA offers when it is not offered and fallback is false. Pure, silent. */
int acme_profile_choose(const json_t *dir, const char *want, bool fallback, const char **use,
                        char **why);
/* Whether the CA may send certloop to url (acme/url.c): https, on the host
 * and port of the configured directory URL unless allow_other_hosts; plain
 * http only when the directory is http on loopback and url is on loopback
 * too. No userinfo, no spaces or control bytes. 0 when acceptable, else
 * ERR_URL_REFUSED with *why (owned): "URL U (FROM) refused: REASON", the URL
 * masked and capped at 200 bytes. from says where the URL came from ("the
 * order's finalize"); NULL reads "from the CA". Pure, silent. */
int acme_url_check(const char *directory, bool allow_other_hosts, const char *url, const char *from,
                   char **why);
/* An authorization's identifier value as it may be logged and shown: non-
 * printable bytes masked, capped at 255 bytes. Owned, NULL when absent. */
char *acme_authz_identifier(const json_t *authz);
/* The first member of an authorization's "challenges" whose "type" is type,
 * or NULL. Borrowed from authz. */
const json_t *acme_authz_challenge(const json_t *authz, const char *type);
/* A status word from the CA for messages: masked, capped at 32 bytes.
 * Owned, NULL for NULL. */
char *acme_status_word(const char *status);
/* The URL of a directory resource ("newOrder"); NULL if unknown/not fetched. */
const char *acme_client_dir_url(const struct acme_client *c, const char *resource);

/* A response as the callback sees it: borrowed, valid during the callback. */
struct acme_response {
    long http_status;
    const char *body; /* NUL-terminated */
    size_t body_len;
    json_t *json; /* the parsed body when it is JSON, else NULL (borrowed) */
    const char *location;
    const char *retry_after;
    const char *const *links;
    size_t n_links;
    const struct acme_problem *problem; /* a problem document came back, else NULL */
    const char *error;                  /* when status != 0: one line saying what failed */
};

/* r is never NULL. status: 0 (2xx), ERR_ACME / ERR_RATE_LIMITED /
 * ERR_BAD_NONCE (a problem document, r->problem set; badNonce only after the
 * retries), ERR_HTTP_STATUS (an error status without a problem document), a
 * transport error from net (ERR_HTTP, ERR_TIMEOUT, ERR_TOO_BIG; http_status
 * 0), or an account setup failure (http_status 0, logged by the client).
 * On failure r->error is a one-line description. */
typedef void (*acme_response_cb)(int status, const struct acme_response *r, void *arg);

struct acme_request_opts {
    const char *url;      /* the target, or NULL to use resource */
    const char *resource; /* a directory resource name ("newOrder") */
    const char *payload;  /* JSON text; NULL = POST-as-GET */
    const char *accept;   /* Accept header, or NULL */
    size_t max_body;      /* 0: 64 KiB */
    const char *subject;  /* for debug logs, e.g. "order cert=www"; copied */
    const char *url_from; /* where url came from ("the order's finalize"), named when
                           * acme_url_check refuses it; NULL: "from the CA" */
    bool add_profile;     /* newOrder: the client adds "profile" (acme_client_profile) to the
                           * JSON payload when it sends the request */
};

/* A POST signed with the account key (kid) to url (STYLE §4 contract). The
 * account is set up first when needed. *out (optional) for cancelling. */
int acme_request_start(struct acme_client *c, const struct acme_request_opts *o,
                       acme_response_cb cb, void *arg, struct acme_request **out);
void acme_request_cancel(struct acme_request *r);

/* The challenge provider an order uses (the manager wires it to the http-01
 * listener and the dns-01 provider). http-01: present makes TOKEN answer
 * KEYAUTH until cleanup(TOKEN). dns-01 (certificates with challenge =
 * "dns-01"): dns_present_start puts the TXT value of KEYAUTH in place for
 * IDENTIFIER ("a.test" or "*.a.test") and calls done(status, detail,
 * done_arg) once it is served everywhere (STYLE §4; *handle for
 * dns_present_cancel, after which done never runs); dns_cleanup(IDENTIFIER,
 * KEYAUTH) is called exactly once for every started provision, whatever its
 * outcome. Strings are borrowed during the calls. */
typedef void (*acme_chal_done_cb)(int status, const char *detail, void *done_arg);
struct acme_chal_ops {
    int (*present)(void *ctx, const char *token, const char *keyauth);
    void (*cleanup)(void *ctx, const char *token);
    int (*dns_present_start)(void *ctx, const char *identifier, const char *keyauth,
                             acme_chal_done_cb done, void *done_arg, void **handle);
    void (*dns_present_cancel)(void *ctx, void *handle);
    void (*dns_cleanup)(void *ctx, const char *identifier, const char *keyauth);
    /* tls-alpn-01 (certificates with challenge = "tls-alpn-01"), the same
     * contract as dns-01: serve the challenge certificate for IDENTIFIER
     * ("a.test" or an IP address), done once it is served. */
    int (*tls_present_start)(void *ctx, const char *identifier, const char *keyauth,
                             acme_chal_done_cb done, void *done_arg, void **handle);
    void (*tls_present_cancel)(void *ctx, void *handle);
    void (*tls_cleanup)(void *ctx, const char *identifier, const char *keyauth);
    /* dns-persist-01: done once every authoritative server serves the TXT
     * VALUE at NAME ("_validation-persist.a.test"); nothing is removed. */
    int (*persist_check_start)(void *ctx, const char *name, const char *value,
                               acme_chal_done_cb done, void *done_arg, void **handle);
    void (*persist_check_cancel)(void *ctx, void *handle);
    void *ctx;
};

struct acme_order;

struct acme_order_opts {
    const struct cfg_cert *cert;      /* borrowed during _start: names are copied */
    EVP_PKEY *key;                    /* the certificate key; the order takes a reference */
    const struct acme_chal_ops *chal; /* copied */
    const char *resume_url;           /* an order URL from the stored order, or NULL */
    struct store *store;              /* where the order in flight is kept; borrowed:
                                         outlives the order */
    int authz_timeout_s;              /* overall deadline for authorizations; 0: 300 */
    const char *replaces;             /* RFC 9773 §5: the ARI CertID of the certificate this order
                                         renews (sent in newOrder), or NULL; copied */
    unsigned max_requests;            /* requests to the CA before the order gives up; 0: 100
                                         plus 40 per name (tests set a small one) */
};

/* What a finished order hands back. On success cert/chain/fullchain and the
 * parsed chain are set; on failure only error. Owned by the callee: free
 * with acme_order_result_free. */
struct acme_order_result {
    char *cert_pem;      /* the leaf */
    char *chain_pem;     /* the intermediates */
    char *fullchain_pem; /* leaf + intermediates as the CA sent them */
    struct acme_chain chain;
    char *error;                  /* "name=a.test: authorization invalid: TYPE: DETAIL" etc. */
    int64_t retry_after_s;        /* failure: the CA's Retry-After (rateLimited), else 0 */
    char *failed_identifier;      /* failure: the name whose authorization went invalid, or NULL */
    struct acme_problem *problem; /* failure: the CA's problem document (with its
                                   * subproblems), or NULL when none came */
    char *profile;                /* success: the order's profile (as the CA named it in
                                   * the order object, else as requested), or NULL */
    char *key_pem; /* success: the certificate key as PEM (PKCS#8) when the order encoded it
                    * for the order file, else NULL (a resumed order); cleansed when freed */
};
void acme_order_result_free(struct acme_order_result *r);

typedef void (*acme_order_cb)(int status, struct acme_order_result *res, void *arg);

/* Runs an order to the end (STYLE §4): newOrder (or resume), authorizations
 * via http-01, finalize with a CSR from key, poll, download the certificate
 * (alternate chains and preferred_chain honoured). Writes the order in
 * flight to the store before answering any challenge. Against a broken or
 * hostile CA: every URL it hands out passes acme_url_check (else the order
 * fails naming it), timed polls wait at least 1 s whatever Retry-After
 * says, and past max_requests the order fails. */
int acme_order_start(struct acme_client *c, const struct acme_order_opts *o, acme_order_cb cb,
                     void *arg, struct acme_order **out);
/* Silences the order: cleans its challenge tokens, cancels its requests. */
void acme_order_cancel(struct acme_order *o);
/* Tells the order that the CA was seen fetching a challenge: what is the
 * http-01 token (our listener served it) or the tls-alpn-01 identifier (a
 * handshake with the challenge certificate finished). The authorization
 * that presented it is then polled once soon instead of after the timed
 * wait (not before a Retry-After the CA sent); anything else is ignored. o
 * may be NULL; what is borrowed. */
void acme_order_chal_seen(struct acme_order *o, const char *what);

/* Reads the stored order in flight of cert. When it belongs to
 * cert (same names, same CA directory), returns 0 with the order URL and
 * the key (both owned); -ENOENT when absent, -ESTALE when it does not
 * match (the caller starts afresh), ERR_PARSE when unreadable. */
int acme_order_resume_load(struct store *store, const struct cfg_cert *cert, char **order_url,
                           EVP_PKEY **key);

/* ---- ARI (acme/ari.c) ---- */

/* RFC 9773 renewal information: the CA's suggested renewal window. Fetch it
 * with a GET of renewalInfo/CERTID (acme_ari_cert_id). */
struct acme_ari_info {
    int64_t start;         /* suggestedWindow.start, Unix seconds */
    int64_t end;           /* suggestedWindow.end; always after start */
    char *explanation_url; /* owned, or NULL */
};

/* Parses a renewalInfo response {"suggestedWindow":{"start":T,"end":T},
 * "explanationURL":URL}: T are RFC 3339 date-times, end must be after
 * start, explanationURL is optional (a printable string up to 2048 bytes).
 * Unknown members are ignored. ERR_PARSE on anything else. Silent. */
int acme_ari_parse(const char *json, size_t len, struct acme_ari_info *out);
void acme_ari_info_fini(struct acme_ari_info *ai);
/* Parses an RFC 3339 date-time ("2025-01-02T03:04:05Z", fraction and
 * +hh:mm/-hh:mm offsets allowed, 't'/'z' too) into Unix seconds (the
 * fraction is dropped) and, optionally, milliseconds. ERR_PARSE otherwise. */
int acme_rfc3339_parse(const char *s, size_t len, int64_t *unix_s, int64_t *unix_ms);
/* The renewal time: uniform in [start, end) from rnd (64 random bits, so
 * tests can choose); a time in the past, including any when the window has
 * ended, gives now (RFC 9773 §4.2: renew at once). */
int64_t acme_ari_pick(const struct acme_ari_info *ai, int64_t now, uint64_t rnd);
/* When to fetch renewalInfo again (Unix seconds): now plus the response's
 * Retry-After (delta-seconds or HTTP-date; NULL or invalid: 6 hours),
 * clamped to [1 minute, 24 hours] (RFC 9773 §4.3 leaves the bounds to us). */
int64_t acme_ari_next_poll(const char *retry_after, int64_t now);

#define ACME_ARI_POLL_DEFAULT_S (6 * 3600)
#define ACME_ARI_POLL_MIN_S 60
#define ACME_ARI_POLL_MAX_S (24 * 3600)

#endif
