/* The authenticated HTTPS API ([api] listen): HTTP/1.1 over TLS on the
 * loop, Bearer tokens from [api] tokens_file, JSON resources under /v1/
 * (docs/API.md). The reactor opens it and hands it the callbacks that reach
 * the manager; it never touches the manager itself. */
#ifndef CERTLOOP_API_API_H
#define CERTLOOP_API_API_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <uv.h>

struct api;
struct store;
struct body_src;

typedef void (*api_view_cb)(void *cb_arg, int status, json_t *doc, const char *const *errors,
                            size_t n_errors);
typedef void (*api_dry_run_cb)(void *cb_arg, int status, int failed, const char *summary,
                               const char *message, const char *const *errors, size_t n_errors);

/* What the API asks of the daemon. Each runs on the loop. */
struct api_handlers {
    /* The status document (GET /v1/status of the control socket): an object
     * whose "certificates" array has one object per certificate with its
     * "name". *out owned. < 0 when the daemon is stopping. */
    int (*status)(void *arg, json_t **out);
    /* Optional, preferred by GET /v1/certificates: {"certificates":[...]}
     * (each the status object without "history" and "log"), compact with a
     * newline, as a source written piece by piece as the socket drains
     * (util/bodysrc.h). 0 and *out (owned by the API afterwards), or < 0
     * when the daemon is stopping. */
    int (*list)(void *arg, struct body_src *out);
    /* Optional, preferred by the routes of one certificate: its object of
     * the status document (with history and log), without the others. 0
     * and *out (owned), -ENOENT (no such certificate), other < 0: the
     * daemon is stopping. */
    int (*one)(void *arg, const char *name, json_t **out);
    /* Optional, preferred by GET /v1/fleet: the status document's "fleet"
     * member alone. 0 and *out (owned; NULL: the store is not shared), or
     * < 0 when the daemon is stopping. */
    int (*fleet)(void *arg, json_t **out);
    /* Queues a renewal of name, as `certloop renew NAME [--force]`. 0, or
     * < 0 with *err (owned) a sentence for the client. */
    int (*renew)(void *arg, const char *name, bool force, char **err);
    /* Reloads the configuration (as SIGHUP) and answers through cb: status
     * 0 (message says so), ERR_CONFIG with the errors' lines, or another
     * code with message. cb may run before reload returns. */
    void (*reload)(void *arg,
                   void (*cb)(void *cb_arg, int status, const char *message,
                              const char *const *errors, size_t n_errors),
                   void *cb_arg);
    /* GET/POST /v1/plan and POST …/test: cb (exactly once, on the loop, maybe
     * before the call returns) gets 0 and the document, ERR_CONFIG and
     * check's lines, -ENOENT (an unknown name) or another code and a line
     * saying why. text NULL: the configuration as it is. */
    void (*plan)(void *arg, const char *text, api_view_cb cb, void *cb_arg);
    void (*test)(void *arg, const char *name, api_view_cb cb, void *cb_arg);
    /* POST …/renew?dry_run=true: `certloop renew NAME --dry-run` in the
     * daemon (names[0..n)); cb as the control socket's dry-run answer: 0 with
     * how many failed and the summary lines, ERR_CONFIG with errors, -EBUSY
     * (another runs), -ECANCELED (stopping), another code with message. */
    void (*dry_run)(void *arg, const char *const *names, size_t n, api_dry_run_cb cb, void *cb_arg);
    void *arg;
};

struct api_limits {
    unsigned head_timeout_ms;  /* TLS handshake + request head; 0 = 10 s */
    unsigned write_timeout_ms; /* the answer, once queued; 0 = 30 s */
};

struct api_opts {
    uv_loop_t *loop;           /* borrowed */
    const char *const *listen; /* "IP:PORT" each; borrowed during the call */
    size_t n_listen;
    const char *tokens_file;      /* copied */
    const char *certificate;      /* copied; NULL: only the self-signed one */
    struct store *store;          /* borrowed: the certificates are read from it */
    const char *state_dir;        /* copied: STATE/api/bootstrap.pem is written there */
    const char *config_path;      /* copied: the main file; POST /v1/certificates writes
                                   * beside it in conf.d/api/ (config_api_dir) */
    unsigned max_connections;     /* from the fd budget; 0 = 256 */
    const struct api_handlers *h; /* copied */
    struct api_limits lim;        /* zero fields take the defaults */
};

/* Binds every address and starts serving. A self-signed bootstrap
 * certificate is made now (its PEM written to STATE/api/bootstrap.pem, so
 * clients can pin it) and serves until the managed [api] certificate has a
 * stored generation; each new connection checks which generation is
 * current, so a renewal takes over without a restart. 0 with *out, or < 0
 * (logged) with nothing left open. Before uv_run (it writes a file inline). */
int api_open(const struct api_opts *o, struct api **out);

/* Takes a reload's tokens_file and certificate (copied); the listen
 * addresses stay until a restart. */
void api_set_files(struct api *a, const char *tokens_file, const char *certificate);
/* Changes the connection cap (0: 256), e.g. when the daemon's fd budget
 * follows a reload; the excess goes as new connections arrive, oldest
 * first. a may be NULL. */
void api_set_max_connections(struct api *a, unsigned max_connections);

/* Publishes one event (the manager's JSON text, with "id" and "event";
 * borrowed) to every GET /v1/events stream, and keeps it among the last
 * 256 for clients resuming with Last-Event-ID. NULL a is fine. */
void api_event(struct api *a, const char *json);

/* Closes the listeners and every connection; closed_cb (may be NULL) runs
 * once everything is freed. NULL is fine. */
void api_close(struct api *a, void (*closed_cb)(void *arg), void *arg);

/* ---- tokens, for `certloop api-token` ---------------------------------- */

#define API_SCOPE_READ 1u
#define API_SCOPE_PULL 2u
#define API_SCOPE_MANAGE 4u

/* "read,pull,manage" (any non-empty subset, in any order) into API_SCOPE_*
 * bits. 0 or -EINVAL. */
int api_scopes_parse(const char *s, unsigned *out);

/* `certloop api-token create`: a new random secret (*secret owned; the
 * caller prints it once, it is stored nowhere), the line "NAME SCOPES
 * sha256:HEX" appended to path (created 0600 if missing; an existing file
 * keeps its owner, group and mode, at most 0640) with one atomic write.
 * -EEXIST if NAME is taken, -EINVAL for a bad file or name; *err (owned)
 * says why. Blocking: for the command line, not the loop. */
int api_token_create(const char *path, const char *name, unsigned scopes, char **secret,
                     char **err);
/* `certloop api-token revoke`: removes NAME's line (atomic write); the
 * daemon refuses the token from its next request on. -ENOENT if there is no
 * such token. */
int api_token_revoke(const char *path, const char *name, char **err);

/* The local port of listener i (tests bind port 0), or -1. */
int api_port(const struct api *a, size_t i);

#endif
