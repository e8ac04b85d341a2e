/* The certificate manager: owns the work of the daemon on the loop. For
 * each certificate of the config snapshot it decides whether an order is
 * due, runs up to [daemon] max_concurrent_orders orders at once (ACME
 * account, order, challenges through the http-01 listener, store, deploy),
 * and schedules the next renewal. main.c creates it after loading the
 * config and taking the state lock, and talks to it on reload and stop. */
#ifndef CERTLOOP_REACTOR_MANAGER_H
#define CERTLOOP_REACTOR_MANAGER_H

#include <stdbool.h>
#include <jansson.h>
#include <uv.h>

#include "config/config.h"
#include "reactor/timerheap.h"
#include "store/store.h"
#include "util/bodysrc.h"
#include "util/buf.h"

struct manager;

/* once: process everything due now, then call done_cb.
 * Otherwise run until manager_stop. done_cb(failed_count, arg) runs exactly
 * once: in --once mode when all work finished, else after manager_stop
 * finished cleaning up (challenges removed, orders cancelled/recorded). */
typedef void (*manager_done_cb)(int failed, void *arg);
/* Each event (issued, renewed, failed, ...) as the JSON text the webhooks
 * get, with the same "id"; json is borrowed for the call. */
typedef void (*manager_event_cb)(const char *json, void *arg);

struct manager_opts {
    uv_loop_t *loop;
    struct config *cfg;  /* the manager takes its own reference */
    struct store *store; /* borrowed: outlives the manager */
    bool once;
    unsigned http01_max_connections; /* the http-01 listener's cap; 0: its default */
    manager_done_cb done;
    void *arg;
    manager_event_cb event; /* may be NULL; gets arg too */
    /* The wall clock (Unix milliseconds); NULL: the real one. Loop tests
     * inject theirs and move it by hand. */
    timerheap_clock_cb clock;
    void *clock_arg;
    /* A dry run inside the daemon (`renew --dry-run` over the control
     * socket): host is the daemon's manager, whose http-01 and tls-alpn-01
     * listeners answer this manager's challenges (borrowed: the host must
     * outlive this manager, so the daemon stops this one first). Such a
     * guest touches no process-wide state (log sink, clock). NULL: own
     * listeners. */
    struct manager *host;
    /* once: the end-of-run summary lines ("NAME: issued, expires ...") go
     * here instead of stdout; NULL: stdout. */
    struct buf *summary;
};

/* Opens the http-01 listener(s) and the HTTP client, then starts. < 0 on a
 * synchronous failure (listener cannot bind: logged), no callback then. */
int manager_start(const struct manager_opts *o, struct manager **out);
/* Swaps in a new snapshot (the manager takes a reference). Orders in
 * flight keep the snapshot they started with. */
void manager_reload(struct manager *m, struct config *cfg);
/* A reload's new [tlsalpn01] listen, before manager_reload: the new
 * addresses are bound before the old ones close (live challenges are kept;
 * an empty list closes every listener). 0, or < 0 with *why (owned) naming
 * the address that could not be bound and nothing changed: the reload is
 * then refused. */
int manager_tlsalpn_listen(struct manager *m, const struct cfg_strv *listen, char **why);
/* The http-01 listener's connection cap (the daemon's fd budget after a
 * reload); 0: its default. Nothing without a listener. */
void manager_set_http01_max_connections(struct manager *m, unsigned max_connections);
/* Graceful stop: cancels orders in flight, cleans challenges, closes every
 * handle; done_cb runs when all of that is finished. */
void manager_stop(struct manager *m);

/* For the control socket. manager_status: the GET /v1/status document
 * (control_status_json: per certificate state "valid", "due", "ordering",
 * "storing", "deploying", "retrying", "no-certificate", "expired", times,
 * the last error). Owned. */
json_t *manager_status(const struct manager *m);
/* The views written piece by piece as a socket drains (util/bodysrc.h):
 * STATUS is the text of manager_status (control_status_begin ... _end, a
 * newline last), METRICS the text of manager_metrics, LIST the HTTPS
 * API's GET /v1/certificates, {"certificates":[...]} compact with a
 * newline, each object the status one without "history" and "log".
 * What a stream shows: its head ("now", "orders_in_flight") as of its first
 * piece; then every certificate in the manager's order, each as it is when
 * its piece is made. A reload meanwhile keeps the order of the certificates
 * it keeps and appends those it adds: the stream leaves out the ones
 * removed before it reached them and shows the added ones; METRICS walks
 * the list once per family, as it is then. Nothing of a certificate is kept
 * between pieces (a cursor that mgr_cert_unlink moves on), so nothing a
 * reload frees is read. When the manager ends first, the next piece fails
 * (-ECANCELED): the server cuts the answer. *out owned (body_src_drop). */
enum manager_view { MANAGER_VIEW_STATUS, MANAGER_VIEW_METRICS, MANAGER_VIEW_LIST };
void manager_view_open(struct manager *m, enum manager_view view, struct body_src *out);
/* One certificate's object of the status document (with its history and
 * log), without the rest: 0 and *out (owned), or -ENOENT. */
int manager_status_one(const struct manager *m, const char *name, json_t **out);
/* The status document's "fleet" member alone (owned), or NULL when the
 * store is not shared with other instances. */
json_t *manager_fleet(const struct manager *m);
/* POST /v1/certificates/NAME/renew: force orders now; without force the
 * certificate is ordered only when due (then *err says when it will be);
 * deploy_only deploys the stored generation again. 0 (accepted), -ENOENT
 * (no such certificate), -EBUSY (already running, or stopping), -EINVAL
 * (nothing stored to deploy, or no CA). *err (owned) is for the client. */
int manager_renew(struct manager *m, const char *name, bool force, bool deploy_only, char **err);
/* manager_renew, and with new_key the order it queues makes a new private
 * key even with reuse_key. */
int manager_renew_new_key(struct manager *m, const char *name, bool force, bool deploy_only,
                          bool new_key, char **err);
/* GET /metrics: the Prometheus text of every certificate (expiry, next
 * renewal, renewals and failures), the order duration histogram and the
 * orders in flight, appended to out. 0 or ERR_TOO_BIG (metrics_write). */
int manager_metrics(const struct manager *m, struct buf *out);
/* The wall clock jumped (a resume from suspend, or a test's clock): runs
 * every deadline now due at once instead of at the next wake-up. */
void manager_clock_moved(struct manager *m);

#endif
