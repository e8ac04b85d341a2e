/* Internals of the HTTPS API (src/api) shared by its files and unit tests:
 * the tokens file (parse, match, create, revoke), the per-address limit on
 * failed authentications, the route table and the request router. Nothing
 * here touches libuv. */
#ifndef CERTLOOP_API_API_INTERNAL_H
#define CERTLOOP_API_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "api/api.h"
#include "util/buf.h"

#define API_SECRET_PREFIX "clt_"
#define API_TOKEN_NAME_MAX 64

/* One line of the tokens file: "NAME SCOPES sha256:HEX". */
struct api_token {
    char *name;      /* owned */
    unsigned scopes; /* API_SCOPE_* bits */
    uint8_t hash[32];
};

struct api_tokens {
    struct api_token *v; /* owned array */
    size_t n;
};

/* The scopes as "read,pull,manage" text into out (cap >= 18). */
void api_scopes_format(unsigned scopes, char *out, size_t cap);
/* A token name: 1..API_TOKEN_NAME_MAX of [A-Za-z0-9._-], not starting with '.'. */
bool api_token_name_ok(const char *s);

/* Parses the tokens file text[0..len). Blank lines and lines starting with
 * '#' are skipped. 0 with *out filled (owned), or -EINVAL with *err (owned)
 * naming the first bad line ("line 3: expected NAME SCOPES sha256:HEX").
 * A name given twice is an error too. Pure. */
int api_tokens_parse(const char *text, size_t len, struct api_tokens *out, char **err);
void api_tokens_fini(struct api_tokens *t);

/* The token whose hash is SHA-256 of secret[0..len), or NULL. Every line is
 * compared, each with CRYPTO_memcmp, so the time taken does not depend on
 * which line (if any) matches or on how many bytes of a hash agree. */
const struct api_token *api_tokens_match(const struct api_tokens *t, const char *secret,
                                         size_t len);

/* ---- failed authentications per address ------------------------------ */

#define API_FAIL_SLOTS 256
#define API_FAIL_MAX 10 /* failures allowed per window and address */
#define API_FAIL_WINDOW_MS 60000

struct api_fail_slot {
    char addr[48]; /* the peer's IP as text; "" = free */
    uint64_t start_ms;
    unsigned n;
};

struct api_faillimit {
    struct api_fail_slot slots[API_FAIL_SLOTS];
};

/* Milliseconds addr must still wait (its window holds API_FAIL_MAX
 * failures already), or 0 when it may try. */
uint64_t api_fail_wait(const struct api_faillimit *l, const char *addr, uint64_t now_ms);
/* Counts one failure of addr (the oldest slot is reused when all are taken). */
void api_fail_add(struct api_faillimit *l, const char *addr, uint64_t now_ms);

/* ---- routes ----------------------------------------------------------- */

enum api_route_kind {
    API_R_LIST,   /* GET /v1/certificates */
    API_R_GET,    /* GET /v1/certificates/NAME */
    API_R_PEM,    /* GET /v1/certificates/NAME/{cert,chain,fullchain}.pem */
    API_R_KEY,    /* GET /v1/certificates/NAME/key.pem */
    API_R_RENEW,  /* POST /v1/certificates/NAME/renew */
    API_R_EVENTS, /* GET /v1/events (Server-Sent Events) */
    API_R__MAX
};

struct api_route {
    const char *method;  /* "GET" (HEAD too) or "POST" */
    const char *pattern; /* '*' stands for one NAME segment */
    unsigned scopes;     /* any one of these scopes is enough */
    enum api_route_kind kind;
};

/* The route table, NULL-terminated (pattern == NULL): docs/API.md and the
 * security test walk the same list. */
extern const struct api_route api_routes[];

/* Matches path[0..len) against the table. Returns the route (*name owned:
 * the NAME segment, or NULL; *file: "cert.pem" etc. for API_R_PEM, else
 * NULL) or NULL when no pattern matches (404). *method_ok is false when the
 * path matches a pattern but not for this method (405). A NAME segment is
 * 1..200 of [A-Za-z0-9._-] not starting with '.': anything else (percent
 * escapes, "..", an empty segment) matches no route. */
const struct api_route *api_route_find(const char *method, const uint8_t *path, size_t len,
                                       bool *method_ok, char **name, const char **file);

/* The value of field name (case-insensitive) in a request head that
 * httpd_parse accepted (head[0..len)), without surrounding whitespace:
 * true with *v, *vl borrowed from head, false when absent. */
bool api_head_field(const uint8_t *head, size_t len, const char *name, const uint8_t **v,
                    size_t *vl);

/* ---- TLS ---------------------------------------------------------------- */

/* A server context from PEM texts: the leaf and its chain (fullchain) and
 * the key. *out owned. ERR_CRYPTO (queue cleared) when they do not parse
 * or do not match. */
int api_tls_ctx_from_pem(const char *fullchain_pem, const char *key_pem, SSL_CTX **out);
/* The same from objects (the bootstrap). */
int api_tls_ctx_from_obj(X509 *cert, EVP_PKEY *key, SSL_CTX **out);

#endif
