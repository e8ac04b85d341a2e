/* Internals of the HTTPS API (src/api) shared by its files and unit tests:
 * the tokens file (parse, match, create, revoke), the per-address limit on
 * failed authentications, the route table and the request router. Nothing
 * here touches libuv. */
#ifndef CERTLOOP_API_API_INTERNAL_H
#define CERTLOOP_API_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/ssl.h>
#include <uv.h>

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

/* A name the API takes (a token's, a certificate's in a route or a body):
 * 1..max of [A-Za-z0-9._-], not starting with '.'. routes.c. */
bool api_name_ok(const char *s, size_t max);
#define API_NAME_MAX 200 /* a certificate's NAME */

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
    API_R_CREATE, /* POST /v1/certificates (write.c) */
    API_R_DELETE, /* DELETE /v1/certificates/NAME (write.c) */
    API_R_PLAN,   /* GET or POST /v1/plan (preview.c) */
    API_R_TEST,   /* POST /v1/certificates/NAME/test (preview.c) */
    API_R_FLEET,  /* GET /v1/fleet (a store shared by several instances) */
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

/* The methods path[0..len) answers to, "GET, HEAD, POST" (for Allow). */
void api_route_allow(const uint8_t *path, size_t len, char *out, size_t cap);

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

/* ---- the routes in their own files --------------------------------------- */

#define API_BODY_MAX (64 * 1024) /* the largest request body (POST) taken */

struct aconn; /* one connection (api.c) */
struct api_writes;

/* Work that answers a request later (a threadpool job, a reload): c is
 * cleared when the connection goes first. */
struct api_wait {
    struct aconn *c;
};

/* Answers (api.c): JSON, {"error": fmt}, {"error": msg, "errors": [lines]}. */
void api_reply_json(struct aconn *c, int status, json_t *j);
void api_reply_error(struct aconn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void api_reply_errors(struct aconn *c, int status, const char *msg, const char *const *lines,
                      size_t n);
/* The request will be answered by w's owner: reading stops, the write time
 * limit (or ms, when not 0) starts, the API stays open (one job counted)
 * until api_job_end. */
void api_wait_begin(struct aconn *c, struct api_wait *w, unsigned ms);
/* After answering through w->c (when it was not NULL): logs the status. */
void api_wait_end(struct api_wait *w, int status);
/* One job counted by api_wait_begin has ended (the API may be freed now). */
void api_job_end(struct api *a);
struct api *api_of(const struct aconn *c);
/* The request's bytes: its head (struct httpd_req's pointers are into it). */
const uint8_t *api_conn_head(const struct aconn *c);
uv_loop_t *api_loop(const struct api *a);
const struct api_handlers *api_handlers_of(const struct api *a);
const char *api_config_path(const struct api *a);
struct api_writes **api_writes_slot(struct api *a);
bool api_closing(const struct api *a);

/* write.c: POST /v1/certificates (body[0..len), NULL without one) and
 * DELETE /v1/certificates/NAME. Each returns the status it answered with,
 * or 0 when it answers later. */
int api_route_create(struct aconn *c, const char *body, size_t len);
int api_route_delete(struct aconn *c, const char *name);
void api_writes_free(struct api_writes *w);

/* preview.c: GET /v1/plan?config=TEXT and POST /v1/plan (the body: the
 * TOML text, or {"config": TEXT} as application/json), POST …/NAME/test,
 * POST …/NAME/renew?dry_run=true. Returns as api_route_create. */
struct httpd_req;
int api_route_plan(struct aconn *c, const struct httpd_req *r, const char *body, size_t len);
int api_route_test(struct aconn *c, const char *name);
int api_route_dry_run(struct aconn *c, const char *name);

#endif
