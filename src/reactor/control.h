/* The control socket: a unix socket speaking a small subset of HTTP/1.1
 * with JSON bodies, one request per connection (Connection: close). The
 * server (control.c) runs on the daemon's loop and knows nothing of the
 * manager: each route calls a handler the owner passes in. The client
 * (ctlclient.c) is blocking code for the certloop CLI.
 *
 * Routes:
 *   GET  /v1/status                  handlers.status -> 200 JSON
 *   GET  /v1/certificates/NAME       handlers.cert -> 200 JSON (one certificate)
 *   POST /v1/certificates/NAME/renew handlers.renew  -> 202 JSON
 *        body (optional): {"force": bool, "deploy_only": bool}
 *   POST /v1/reload                  handlers.reload -> 200 / 422 JSON
 *   POST /v1/dry-run                 handlers.dry_run -> 200 JSON
 *        body (optional): {"names": [S...]} (absent or empty: all);
 *        answer {"ok": B, "failed": N, "summary": S}; 422 with "errors"
 *        when it cannot start, 409 while another dry run runs
 *   GET  /metrics                    handlers.metrics -> 200 text/plain
 * A large answer (status, metrics) is written piece by piece as the
 * client reads it, in HTTP/1.1 chunks: no Content-Length, and a client
 * that reads nothing for the request timeout (10 s) is dropped.
 * Errors are JSON {"error": "..."} with 400 (malformed), 404 (no route or
 * no such certificate), 405 (wrong method), 408 (too slow), 409 (busy),
 * 413 (head or body too large), 422 (invalid configuration), 500, 503
 * (too many connections) and 504 (no reply from the handler in time). */
#ifndef CERTLOOP_REACTOR_CONTROL_H
#define CERTLOOP_REACTOR_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <uv.h>

#include "util/bodysrc.h"
#include "util/buf.h"

#define CONTROL_DEFAULT_PATH "/run/certloop/control.sock"

/* How an asynchronous handler answers, exactly once (even after the client
 * went away or the server closed; the reply is then dropped). status 0:
 * success, message says what happened ("reloaded: 3 certificates").
 * ERR_CONFIG: the new configuration is invalid, errors[] are its
 * "FILE:LINE:COL: error: ..." lines (borrowed for the call). Any other
 * negative code: a failure described by message. */
typedef void (*control_reply_cb)(void *cb_arg, int status, const char *message,
                                 const char *const *errors, size_t n_errors);
/* How the dry-run handler answers, exactly once (dropped as above). status
 * 0: it ran, failed certificates failed, summary is their lines (200).
 * ERR_CONFIG: errors[] say why it could not start (422). -EBUSY: another dry
 * run (409). -ECANCELED: the daemon is stopping (503). Other: 500 with
 * message. Strings are borrowed for the call. */
typedef void (*control_dry_run_cb)(void *cb_arg, int status, int failed, const char *summary,
                                   const char *message, const char *const *errors, size_t n_errors);

/* The longest a dry run may take before the server answers 504 (its orders
 * go on to their end in the daemon). */
#define CONTROL_DRY_RUN_TIMEOUT_MS (30 * 60 * 1000)

/* What the routes call. Every handler runs on the loop thread and may be
 * NULL (the route then answers 501). arg is passed to each. */
struct control_handlers {
    /* *out: a JSON object (owned by the server afterwards). The CLI reads
     * {"certificates":[{"name":S, "state":S, "not_after":N|null,
     * "next_renewal":N|null, "reason":S|null, "last_error":S|null, ...}],
     * ...}, times in Unix seconds; further members are shown by --json. */
    int (*status)(void *arg, json_t **out);
    /* Optional, preferred by GET /v1/status: the same document's text
     * (control_status_begin ... _end, newline included) as a source the
     * server writes piece by piece as the socket drains, in HTTP/1.1 chunks
     * (to an HTTP/1.0 request: until the connection closes). 0 and *out
     * (owned by the server afterwards), or < 0 (500). */
    int (*status_stream)(void *arg, struct body_src *out);
    /* One certificate's object of the status document (what `certloop
     * status NAME` shows): 0 and *out (owned by the server afterwards),
     * -ENOENT (404), other < 0 (500). */
    int (*cert)(void *arg, const char *name, json_t **out);
    /* Queues a renewal of certificate name. 0: accepted (202). -ENOENT: no
     * such certificate (404). -EBUSY: refused for now (409), -EINVAL (400),
     * other codes 500. *err (optional, owned by the server afterwards) is
     * the message for the client. new_key (with force): the new order gets a
     * new private key even with reuse_key. */
    int (*renew)(void *arg, const char *name, bool force, bool deploy_only, bool new_key,
                 char **err);
    /* Reloads the configuration (as SIGHUP) and answers through cb, which
     * may run before reload returns. */
    void (*reload)(void *arg, control_reply_cb cb, void *cb_arg);
    /* Appends the Prometheus text (metrics_write) to out. */
    int (*metrics)(void *arg, struct buf *out);
    /* Optional, preferred by GET /metrics: that text as a source written
     * piece by piece, as status_stream. */
    int (*metrics_stream)(void *arg, struct body_src *out);
    /* Runs a dry run of names[0..n) (n == 0: every certificate with a CA)
     * and answers through cb, which may run before dry_run returns. names
     * are borrowed for the call. */
    void (*dry_run)(void *arg, const char *const *names, size_t n, control_dry_run_cb cb,
                    void *cb_arg);
    void *arg;
};

struct control_opts {
    uv_loop_t *loop;
    const char *path;                 /* copied */
    const struct control_handlers *h; /* copied */
    unsigned max_conns;               /* open connections at once; 0: 256 (more get 503) */
    uint64_t request_timeout_ms;      /* the whole request must arrive in this; 0: 10 s */
    uint64_t reply_timeout_ms;        /* async handler answer; 0: 120 s (then 504) */
    size_t head_max;                  /* 0: 16 KiB */
    size_t body_max;                  /* 0: 64 KiB */
};

/* One certificate as GET /v1/status shows it. Times are Unix seconds; 0
 * means "none" and becomes null. Strings are borrowed (NULL: null). */
struct control_cert_status {
    const char *name;
    const char *state;          /* the manager's word: "valid", "due", "ordering", "retrying",
                                   "rate-limited", "expired", "no-certificate", ... */
    const char *const *domains; /* n_domains names */
    size_t n_domains;
    const char *ca;      /* the [ca.NAME] it uses */
    const char *profile; /* the ACME profile the current certificate was issued under, or NULL */
    int64_t not_before, not_after;
    int64_t next_renewal;
    const char *reason; /* why next_renewal is what it is */
    const char *last_error;
    int64_t last_error_at;
    int64_t last_success_at;
    unsigned consecutive_failures;
    bool paused;       /* ratelimit_failures_paused for one of its names */
    int64_t ari_start; /* the CA's ARI window, 0 when none */
    int64_t ari_end;
    const char *ari_explanation_url;
    int64_t persist_until; /* dns-persist-01: persist_until, 0 when none */
    bool persist_expiring; /* inside expiring_window before it (or past it) */
    const char *from;      /* "hub.NAME" for a pulled certificate, or NULL */
    const char *hub_error; /* why that hub's event stream is down, or NULL */
    json_t *history;       /* optional array (history_json); the reference is taken */
    json_t *log;           /* optional array (history_log_json); the reference is taken */
};

/* Builds the status document {"version":S,"now":N,"orders_in_flight":N,
 * "certificates":[{"name","state","domains","ca","profile","not_before","not_after",
 * "next_renewal","reason","last_error","last_error_at","last_success_at",
 * "consecutive_failures","paused","ari":{"start","end","explanation_url"}|null,
 * "persist_until" (dns-persist-01 with persist_until only), "persist_expiring",
 * "from","hub_error" (pulled certificates only),
 * "history":[...], "log":[{"time","line"}...]}]} that the status handler hands
 * back. Owned. */
json_t *control_status_json(const struct control_cert_status *certs, size_t n, int64_t now,
                            unsigned orders_in_flight);
/* One certificate's object of that document (c->history and c->log are
 * taken). */
json_t *control_cert_json(const struct control_cert_status *c);
/* The same document written into out piece by piece, byte for byte what
 * dumping control_status_json (plus an optional last member) with
 * JSON_INDENT(2) | JSON_ENSURE_ASCII and a newline gives, but without a
 * tree of every certificate: begin, then each certificate's object
 * (control_cert_json, taken) with its index, then end with the count and
 * the members of extras after "certificates", in its order (taken; NULL:
 * none). */
void control_status_begin(struct buf *out, int64_t now, unsigned orders_in_flight);
void control_status_cert(struct buf *out, size_t index, json_t *cert);
void control_status_end(struct buf *out, size_t n, json_t *extras);

struct control;
typedef void (*control_close_cb)(void *arg);

/* Creates the socket at o->path with mode 0660 (bound under umask 0117 so it
 * is never wider) and listens. An existing socket file is replaced only if
 * nothing answers on it; -EADDRINUSE (logged) when another daemon answers,
 * -EEXIST when the path exists and is not a socket. Missing parent
 * directories are all created (0750, like mkdir -p); when one cannot be,
 * the error (logged) names it. The process must ignore SIGPIPE (the
 * daemon does): a client may leave before its answer is written. Owned:
 * release with control_close. */
int control_open(const struct control_opts *o, struct control **out);
/* Closes the listener and every connection, removes the socket file (if
 * it is still ours), and calls cb (optional) on the loop once every handle
 * has closed. */
void control_close(struct control *c, control_close_cb cb, void *arg);
/* Changes the cap on connections served at once (0: 256), e.g. when the
 * daemon's fd budget follows a reload; open connections are not closed. */
void control_set_max_conns(struct control *c, unsigned max_conns);
/* Connections open now (for tests). */
size_t control_conn_count(const struct control *c);

/* ---- Client (ctlclient.c): blocking, for the CLI ---- */

struct ctl_response {
    int status;         /* HTTP status */
    char *content_type; /* owned, or NULL */
    char *body;         /* owned, NUL-terminated */
    size_t body_len;
};

/* Sends one request (body NULL: none; with a body, Content-Type JSON) to the
 * daemon at path and reads the whole answer, all within timeout_ms. 0 and
 * *out, or a negative code with *err (owned) saying what failed, e.g.
 * "no daemon answers on PATH: Connection refused" (-ECONNREFUSED,
 * -ENOENT), "PATH: no answer within 10 s" (ERR_TIMEOUT), "PATH: malformed
 * answer" (ERR_PARSE), "PATH: answer too large" (ERR_TOO_BIG). */
int ctl_request(const char *path, const char *method, const char *target, const char *body,
                int timeout_ms, struct ctl_response *out, char **err);
void ctl_response_fini(struct ctl_response *r);

/* Prints the answer of GET /v1/status as a table: NAME, STATE, NOT AFTER,
 * NEXT RENEWAL (UTC, "-" when null) and REASON/LAST ERROR (the last error
 * when there is one, as "error: ...", else the reason). Strings are
 * printed with control characters masked. 0, or ERR_PARSE when json is not
 * {"certificates":[{...}]} (nothing printed). */
int ctl_status_table(const char *json, size_t len, FILE *out);
/* `status NAME`: one certificate of a /v1/status document as text, its
 * state, times, last error and its history (persisted across restarts,
 * oldest first); json prints the certificate's object instead. 0, -ENOENT
 * when the document has no certificate name, ERR_PARSE when it is not a
 * status document. */
int ctl_status_one(const char *json, size_t len, const char *name, bool as_json, FILE *out);
/* `status --fleet`: the "fleet" member of a /v1/status document (a daemon
 * on a shared store) as a table, one line per instance: name, version,
 * configuration digest, heartbeat age, certificates deployed, and SILENT,
 * LAGGING: NAMES, FAILED: NAMES or ok, then a CONFLICT line for each
 * certificate another live instance declares differently; as_json prints
 * the member instead.
 * 0, -ENOENT when the document has no fleet (a file store), ERR_PARSE. */
int ctl_fleet_table(const char *json, size_t len, bool as_json, FILE *out);

#endif
