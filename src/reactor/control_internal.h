/* Internals of the control socket server shared with its tests and fuzz
 * target: the pure request-head parser. No libuv, no allocation. */
#ifndef CERTLOOP_REACTOR_CONTROL_INTERNAL_H
#define CERTLOOP_REACTOR_CONTROL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

/* The longest certificate name a request may carry. */
#define CONTROL_NAME_MAX 256

/* One parsed request head; pointers are borrowed from the parser's input. */
struct control_req {
    char method[16];  /* the method token, NUL-terminated */
    const char *path; /* the target's path (query removed), not NUL-terminated */
    size_t path_len;
    size_t head_len;       /* bytes of the head, the empty line included */
    size_t content_length; /* 0 when absent */
    bool http10;           /* HTTP/1.0: no chunked answer (RFC 9112 §7.1) */
};

/* Parses the request head at the start of p[0..n): the request line
 * "METHOD SP /TARGET SP HTTP/1.x" and header fields (CRLF or LF line ends;
 * no obsolete folding; no control characters; Content-Length digits only
 * and not repeated with another value; no Transfer-Encoding). Returns 1
 * with *out filled when a whole head is there, 0 when more bytes are needed,
 * or the HTTP status to answer, negated (-400, -413 for a head past
 * head_max or a Content-Length past body_max, -505 for HTTP/2 and up) with
 * *why set to a static message. */
int control_parse_request(const char *p, size_t n, size_t head_max, size_t body_max,
                          struct control_req *out, const char **why);

/* What a parsed request asks for (the router, pure so it can be fuzzed). */
enum control_route {
    CONTROL_ROUTE_STATUS,    /* GET /v1/status */
    CONTROL_ROUTE_METRICS,   /* GET /metrics */
    CONTROL_ROUTE_RELOAD,    /* POST /v1/reload */
    CONTROL_ROUTE_RENEW,     /* POST /v1/certificates/NAME/renew */
    CONTROL_ROUTE_DRY_RUN,   /* POST /v1/dry-run */
    CONTROL_ROUTE_CERT,      /* GET /v1/certificates/NAME */
    CONTROL_ROUTE_METHOD,    /* a known path with another method: 405 */
    CONTROL_ROUTE_NOT_FOUND, /* 404 */
};

/* Routes method and path (both NUL-terminated). For CONTROL_ROUTE_RENEW and
 * CONTROL_ROUTE_CERT the
 * percent-decoded NAME (printable, no '/', shorter than n) is in name; for
 * CONTROL_ROUTE_METHOD *allow is the method to use ("GET" or "POST"). */
enum control_route control_route_decide(const char *method, const char *path, char *name, size_t n,
                                        const char **allow);

/* A renew request's body: empty, or a JSON object whose optional "force",
 * "deploy_only" and "new_key" are booleans. 0 with the flags set, or -400
 * with *why a static message. */
int control_renew_body_parse(const char *body, size_t len, bool *force, bool *deploy_only,
                             bool *new_key, const char **why);

/* A dry run's body: empty (every certificate), or a JSON object whose
 * optional "names" is an array of at most 1,000 certificate names
 * (printable, 1 to 256 bytes). 0 with *names (owned, NULL when none) and *n,
 * or -400 with *why a static message. */
int control_dry_run_body_parse(const char *body, size_t len, char ***names, size_t *n,
                               const char **why);

#endif
