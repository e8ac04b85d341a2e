/* Internal to the manager's files in src/reactor: the per-certificate
 * entry (struct mcert), the manager itself, and the functions the pieces
 * share. Nothing else includes it (loop tests of the lifecycle do).
 *
 * The files, top to bottom. A file calls only files below it, with one
 * exception: a completion hands control back up through the scheduler's
 * entry points mgr_decide, mgr_run_end and mgr_pump (due.c) and
 * mgr_maybe_finish (manager.c), always as the last thing it does.
 * scripts/check-layers.sh (run by scripts/checksrc.sh) checks this.
 *
 *   manager.c     wiring: start, reload, stop, teardown, renew requests
 *   status.c      read-only views: GET /v1/status, /metrics, --once summary
 *   due.c         the scheduler: when each certificate runs (decide), the
 *                 run slots (pump), the end of a run (its outcome, what
 *                 next) and of an entry (unlink, free)
 *   run.c         one run: key generation -> order -> store
 *   pull.c        pulled certificates (from = "hub.NAME"): each hub's event
 *                 stream, when to fetch, the fetch and its checks
 *   imports.c     imported certificates: when to read them, reading them
 *   round.c       deployment of a run, and the round around all of them
 *   ari_sched.c   per CA account state, and the ARI (RFC 9773) window
 *   lifecycle.c   the state machine of an entry, its deadline and queue
 *   events.c      clock, history, webhook events, expiring alerts
 */
#ifndef CERTLOOP_REACTOR_MANAGER_INTERNAL_H
#define CERTLOOP_REACTOR_MANAGER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <uv.h>

#include "acme/acme.h"
#include "challenge/challenge.h"
#include "config/config.h"
#include "deploy/deploy.h"
#include "net/net.h"
#include "reactor/dns01_provider.h"
#include "reactor/history.h"
#include "reactor/manager.h"
#include "reactor/metrics.h"
#include "reactor/ratelimit.h"
#include "reactor/timerheap.h"
#include "store/store.h"

#define RETRY_FIRST_S 60
/* The heap's wall clock is checked at least this often (suspend, clock
 * steps), so a deadline is never missed by more than this. */
#define HEAP_MAX_SLEEP_MS (15 * 60 * 1000)
/* Imported certificates ([certificate.NAME] import = {cert, key}): their
 * files are checked this often, deployed again when they change. */
#define IMPORT_CHECK_S 3600
/* Pulled certificates (from = "hub.NAME"): fetched on the hub's events,
 * and at least this often besides. */
#define PULL_CHECK_S 3600
/* ARI (RFC 9773): renewalInfo fetches in flight at once (the others try
 * again within a minute), and how long after a failed fetch or directory
 * read to ask again. */
#define ARI_MAX_INFLIGHT 8
#define ARI_RETRY_S 3600
#define KEEP_GENERATIONS 3
/* RSA keys generated at once. The threadpool (4 threads by default) also
 * runs every atomic write; were it full of RSA 4096 key generations, the
 * order files and certificates of orders already running would wait behind
 * them. */
#define RSA_KEYGEN_MAX 2

/* The lifecycle of one certificate entry (lifecycle.c changes it, through
 * mgr_state_set only; the table of legal transitions is there). A run is
 * every state from MC_START to MC_DEPLOY; it always ends in mgr_run_end,
 * back in MC_IDLE. */
enum mc_state {
    MC_IDLE,    /* no run; maybe a deadline armed (tentry) */
    MC_QUEUED,  /* due: in the FIFO queue, waiting for a run slot */
    MC_START,   /* a run has begun; its first step is being chosen (synchronous) */
    MC_KEYWAIT, /* waiting for an RSA key generation slot */
    MC_KEYGEN,  /* key generation job in flight */
    MC_ORDER,   /* ACME order in flight */
    MC_MARK,    /* a deploy-only run: its redeploy mark is being written */
    MC_STORE,   /* store job in flight */
    MC_DEPLOY,  /* deploy actions and hooks.d/deploy running */
    MC_DEAD,    /* unlinked from the manager, freed from the loop */
    MC_LEASE,   /* a shared store: taking the certificate's lease before ordering */
    MC_STATE__MAX
};

/* The outcome of the last run: what --once prints (DEPLOYED: with a shared
 * store, a generation deployed here without ordering it), and (DEPLOY_FAILED)
 * status's "deploy-failed": the certificate is stored, its deployment
 * failed and was rolled back, and a deploy-only retry is armed. HELD: due,
 * but its CA account's max_new_orders window was full (--once only; counted
 * as not fine, next_at says when it may be ordered). */
enum mc_summary {
    SUM_NONE,
    SUM_ISSUED,
    SUM_FAILED,
    SUM_DEPLOY_FAILED,
    SUM_OK,
    SUM_DEPLOYED,
    SUM_HELD
};

struct mclient {
    char *ca_name;   /* owned */
    char *directory; /* owned */
    struct acme_client *c;
};

struct mcert {
    struct manager *m;
    struct mcert *next;         /* in m->certs */
    struct mcert *qnext;        /* in the FIFO queue */
    struct mcert *dead_next;    /* unlinked, waiting to be freed */
    char *name;                 /* owned */
    const struct cfg_cert *cfg; /* borrowed from m->cfg (the current snapshot); NULL: removed */
    /* the run in progress */
    struct config *run_snap;        /* ref, or NULL */
    const struct cfg_cert *run_cfg; /* borrowed from run_snap */
    EVP_PKEY *key;                  /* owned */
    char *resume_url;               /* owned */
    struct acme_order *order;       /* child, or NULL */
    struct acme_order_result *res;  /* owned */
    struct deploy_exec *exec;       /* child, or NULL */
    struct deploy_files *files;     /* child, or NULL */
    struct deploy_hooks *hooks;     /* hooks.d/deploy running, or NULL */
    char *key_pem;                  /* owned: the stored key, for deploys */
    char *generation, *gen_dir;     /* owned: the stored generation */
    /* The flags beside the state: each is independent of it and of the
     * others (a run in flight may have a shared deployment pending from
     * an earlier one, or its deploy actions changed by a reload). */
    bool had_cert;        /* a certificate was stored before this run: "renewed", not "issued" */
    bool deploy_only;     /* the next run only deploys the stored generation */
    bool run_deploy_only; /* the run in flight only deploys (no order, nothing counted) */
    bool run_unchanged;   /* ... and found the stored generation unchanged: nothing to do */
    size_t deploy_idx;
    struct deploy_journal *journal; /* owned: what this round's deployment replaced, or NULL */
    bool journal_shared;            /* that deployment waits for the round's reload commands */
    bool forced;                    /* queued by renew --force: starts even over the window */
    bool redeploy_after;            /* deploy actions changed during a run: deploy again after it */
    enum mc_state state;            /* mgr_state_set only */
    struct timerheap_entry *tentry; /* the armed deadline, or NULL */
    int failures;                   /* consecutive, for the backoff */
    int64_t retry_after_s;          /* the CA asked us to wait this long (rateLimited) */
    int64_t retry_at;               /* backoff: not before this (0: none) */
    int64_t ca_retry_at;            /* the CA's Retry-After as a time (0: none) */
    char *failed_ident;             /* the last run's invalid authorization, or NULL */
    struct acme_problem *problem;   /* the failing order's problem document, until run_end */
    uint64_t renewals_ok, renewals_failed; /* for /metrics */
    /* when the last "expiring" and "persist_expiring" events went out (0:
     * none), kept in the store (mgr_alert_set) */
    int64_t alert_sent[STORE_ALERT__MAX];
    int64_t import_checked_at; /* an import's files were last read then */
    int64_t pull_checked_at;   /* a pulled certificate was last fetched then */
    bool pull_due;             /* the hub announced a new generation */
    struct mpull *pull;        /* pull.c: the fetch in flight, or NULL */
    /* ARI for the current generation */
    char *ari_id;                                 /* its CertID, or NULL */
    char *ari_gen;                                /* the generation ari_* describe, or NULL */
    int64_t ari_start, ari_end, ari_at, ari_poll; /* window, chosen time, next fetch */
    char *ari_expl;                               /* explanationURL, or NULL */
    char *profile; /* owned: the ACME profile the stored certificate was issued under, or NULL */
    bool new_key_once;         /* renew --new-key: the next order makes a new key (reuse_key) */
    char *revoked_reason;      /* owned: the stored certificate was revoked ("keyCompromise",
                                * "unspecified", ...), from its revoked.json; NULL if not */
    struct http_req *ari_req;  /* renewalInfo GET in flight, or NULL */
    bool ari_replaces_refused; /* the CA refused `replaces`: orders go without */
    bool sent_replaces;        /* the order in flight carries `replaces` */
    int64_t started;           /* unix seconds the run began */
    /* A shared store (PostgreSQL): one instance orders at a time. */
    bool leased;              /* this run holds the certificate's lease */
    uint64_t fence;           /* its token */
    int64_t lease_renew_at;   /* unix seconds: renew it then */
    bool lease_renewing;      /* a renewal in flight */
    char *decided_gen;        /* owned: the current generation when mgr_decide last ran, or NULL */
    bool run_forced;          /* this run was asked for with renew --force */
    bool lease_waiting;       /* another instance orders it: waiting for its generation */
    int64_t lease_wait_until; /* until then (unix seconds), then due again */
    bool store_failed;        /* the last run failed because the store was away: decided
                                 again when it is back (manager.c store_back), not at the
                                 backoff */
    /* what --once prints */
    enum mc_summary summary;
    char *error; /* owned */
    int64_t not_after, renew_at;
    /* what status shows */
    int64_t not_before, next_at; /* next_at: the armed timer, 0 when none */
    const char *reason;          /* static: why next_at is what it is */
    bool next_is_retry;          /* next_at retries a failure (status says "retrying") */
    bool decided_once;           /* a time was decided in this process (history file after) */
    char *last_error;            /* owned */
    int64_t last_error_at, last_success_at;
};

/* A walk over m->certs that a reload cannot break (status.c's streamed
 * views): mgr_cert_unlink moves a cursor standing on the entry it takes
 * out to the next one, and the teardown detaches every cursor (m NULL). */
struct mgr_cursor {
    struct manager *m;              /* borrowed; NULL once the manager is torn down */
    struct mcert *at;               /* the next entry to visit, or NULL: the end */
    struct mgr_cursor *prev, *next; /* in m->cursors */
};

struct manager {
    uv_loop_t *loop;
    struct config *cfg;  /* ref: the current snapshot */
    struct store *store; /* borrowed */
    bool once;
    manager_done_cb done;
    manager_event_cb event; /* or NULL: events for the API's stream */
    void *arg;
    struct chal_http01 *chal;   /* owned (borrowed from host in a guest) */
    struct chal_tlsalpn *tls;   /* owned: the tls-alpn-01 responder, or NULL (off) */
    struct manager *host;       /* a guest's (a dry run's) host, or NULL */
    struct manager *guest;      /* the host's guest running now, or NULL */
    struct buf *summary;        /* borrowed: the --once summary's lines, or NULL: stdout */
    struct http_client *http;   /* owned */
    struct dns01_provider *dns; /* owned, or NULL when no certificate uses dns-01 */
    int dns_drain_ticks;        /* waits for background dns-01 cleanups at the end */

    struct fleet_http01 *fleet_http01; /* owned: a fleet's shared http-01 tokens, or NULL */
    struct fleet_view *fleet_view;     /* owned: heartbeats and deployments, or NULL */

    struct mclient *clients;
    size_t n_clients;
    struct mcert *certs;
    struct mcert *dead;         /* unlinked entries, freed from the loop */
    struct mgr_cursor *cursors; /* the streamed views in progress (status.c) */
    struct mcert *qhead, *qtail;
    unsigned running;
    unsigned jobs;               /* store jobs in flight */
    unsigned rsa_keygens;        /* RSA key generations in flight */
    struct mcert *khead, *ktail; /* waiting for an RSA key generation slot */
    int failed;
    int held; /* --once: certificates held back by max_new_orders (in failed too) */
    bool stopping, torn_down;
    struct timerheap *heap;           /* every certificate's deadline */
    struct history *hist;             /* recent events per certificate */
    struct history_writer *hw;        /* owned: appends to the store's history */
    struct ratelimit_failures *fails; /* failed validations per name */
    struct mlimit {
        struct manager *m;
        char *ca_name; /* owned */
        struct ratelimit_window win;
        /* ARI: the directory's renewalInfo URL, fetched once per CA */
        enum { DIR_UNKNOWN, DIR_FETCHING, DIR_KNOWN, DIR_FAILED } dir_state;
        char *renewal_info;   /* owned, or NULL: the CA has no ARI */
        int64_t dir_retry_at; /* DIR_FAILED: try again then */
        struct http_req *dir_req;
        const struct cfg_ca *ca; /* borrowed from the snapshot that asked, during a fetch */
    } * *limits;                 /* per CA account: new orders, ARI */
    size_t n_limits;
    unsigned ari_inflight;          /* renewalInfo fetches in flight */
    struct metrics_hist order_hist; /* order durations */
    struct notify *notify;          /* webhooks ([notify.*]) and their outbox, or NULL */
    /* A round: from the first run after an idle time until every run has
     * ended (in --once mode, the whole run). hooks.d/pre runs before its
     * first run, exec deploy actions are collected and each distinct argv
     * runs once when the runs have ended, then hooks.d/post. */
    enum { ROUND_IDLE, ROUND_PRE, ROUND_ACTIVE, ROUND_END } round;
    struct rexec {
        struct config *snap;        /* ref: the action lives in it */
        const struct cfg_deploy *d; /* borrowed from snap */
        char *name, *gen_dir;       /* the first certificate that asked, for the env */
        const char *event;          /* its CERTLOOP_EVENT: "issued" or "renewed" */
        const struct cfg_cert *cc;  /* borrowed from snap */
        char **certs;               /* every certificate that asked (owned) */
        size_t n_certs;
        char *why; /* owned: how it failed, or NULL */
    } * rexecs;
    size_t n_rexecs, rexec_idx;
    int settling;                 /* rollbacks and commits of the round's deployments in flight */
    struct deploy_hooks *hooks;   /* the pre or post hooks running, or NULL */
    struct deploy_exec *rexec_op; /* the deferred exec running, or NULL */
    bool notify_draining, notify_drained;
    struct mhub **hubs; /* pull.c: the event stream of each [hub.NAME] in use */
    size_t n_hubs, cap_hubs;
    uv_timer_t kick; /* the first pump, from the loop */
    /* a shared store: renews held leases, ends waits (manager.c) */
    uv_timer_t lease_tick;
    bool lease_tick_open;
    unsigned leases_held, lease_waiting;
    bool kick_open, started;
    int closing; /* handles (and the listener) still closing */
};

/* ---- manager.c ---- */
/* Ends the manager once its work is done (--once, or stopping). */
void mgr_maybe_finish(struct manager *m);
/* events.c: the log sink the manager installs (log_set_sink) while it runs. */
void mgr_log_sink(enum log_level lvl, enum log_group g, const char *msg, void *arg);

/* ---- status.c ---- */
/* The --once summary, a line per certificate, to m->summary or stdout. */
void mgr_print_summary(struct manager *m);
/* Detaches every cursor of the streamed views (the teardown): their
 * streams end with an error at their next piece. */
void mgr_cursors_detach(struct manager *m);

/* ---- due.c: the scheduler ---- */
/* Whether mc is due now (queued) or later (its deadline armed). */
void mgr_decide(struct mcert *mc);
/* Starts queued runs while slots are free, then mgr_maybe_finish. */
void mgr_pump(struct manager *m);
/* Every run ends here exactly once (status 0, or < 0 with error): the
 * outcome is recorded, the run released (back to MC_IDLE), and what comes
 * next is decided. */
void mgr_run_end(struct mcert *mc, int status, const char *error);
bool mgr_names_paused(const struct mcert *mc);
void mgr_cert_free(struct mcert *mc);
/* Takes mc out of the manager (MC_DEAD); freed later by mgr_free_dead. */
void mgr_cert_unlink(struct mcert *mc);
void mgr_free_dead(struct manager *m);

/* ---- run.c: one run ---- */
/* Starts mc's run (mc in MC_START); it ends in mgr_run_end. */
void mgr_run_start(struct mcert *mc);
/* True when key is the key of the stored certificate sc. */
bool mgr_stored_key_is(const struct store_cert *sc, EVP_PKEY *key);
/* How orders run: acme_order_start and acme_order_cancel, or what a loop
 * test injects (a fake order). NULL restores the real ones. */
struct mgr_order_ops {
    int (*start)(struct acme_client *c, const struct acme_order_opts *o, acme_order_cb cb,
                 void *arg, struct acme_order **out);
    void (*cancel)(struct acme_order *o);
};
void mgr_order_ops_set(const struct mgr_order_ops *ops);
void mgr_order_cancel(struct acme_order *o);
/* chal_seen_cb of the http-01 and tls-alpn-01 listeners (arg: the
 * manager): hands what the CA fetched to the orders in flight, so the one
 * that presented it polls its authorization now (acme_order_chal_seen). */
void mgr_chal_seen(void *arg, const char *what);

/* ---- pull.c ---- */
/* mgr_decide for a pulled certificate: fetch now (queued: at start, after
 * the hub's event, hourly, when a retry is due) or arm the next time. */
void mgr_pull_decide(struct mcert *mc, int64_t now);
/* The run of a pulled certificate, its first step: fetches the hub's
 * current generation and checks it (mc->key, and mc->res when it
 * changed). cb gets < 0 and a message (borrowed), or MGR_IMPORT_CHANGED,
 * MGR_IMPORT_SAME or MGR_IMPORT_REDEPLOY as from mgr_import_read; it runs
 * exactly once unless mgr_pull_cancel. < 0 (*err owned): nothing started. */
typedef void (*mgr_pull_cb)(struct mcert *mc, int rc, const char *err);
int mgr_pull_start(struct mcert *mc, mgr_pull_cb cb, char **err);
void mgr_pull_cancel(struct mcert *mc);
/* Follows the event stream of each [hub.NAME] a certificate uses, after
 * the start and after a reload (nothing in --once mode); _close at the end. */
void mgr_pull_hubs_sync(struct manager *m);
void mgr_pull_hubs_close(struct manager *m);
/* Why hub's event stream is down, or NULL (for status). */
const char *mgr_pull_hub_error(const struct manager *m, const char *hub);

/* ---- imports.c ---- */
/* Inside the expiring window, the daily "expiring" event of an import;
 * returns when to look again (0: not inside it). */
int64_t mgr_import_expiring(struct mcert *mc, int64_t now);
/* mgr_decide for an import: read its files now (queued) or arm the hourly check. */
void mgr_import_decide(struct mcert *mc, int64_t now);
/* Arms mc at next, or earlier for its daily "expiring" event (an import's
 * or a pulled certificate's), with reason (static) for status. */
void mgr_import_arm(struct mcert *mc, int64_t now, int64_t next, const char *reason);
/* Reads the import's files for its run (mc->key set). < 0 (*err owned):
 * unusable. Else MGR_IMPORT_CHANGED (mc->res holds them: store and
 * deploy), MGR_IMPORT_SAME (nothing to do), MGR_IMPORT_REDEPLOY (the same,
 * but the last deployment did not finish). */
enum { MGR_IMPORT_CHANGED, MGR_IMPORT_SAME, MGR_IMPORT_REDEPLOY };
int mgr_import_read(struct mcert *mc, char **err);
/* The checks of mgr_import_read on a chain and key from elsewhere (both
 * borrowed): the key parses (mc->key) and is the leaf's, the leaf covers
 * every configured name; then the comparison with the current generation.
 * Messages begin with prefix and name the files by their labels. */
int mgr_import_take(struct mcert *mc, const struct acme_chain *ch, const char *key,
                    const char *prefix, const char *cert_label, const char *key_label, char **err);

/* ---- round.c: deployments and rounds ---- */
void mgr_deploy_begin(struct mcert *mc);
void mgr_settle_start(struct manager *m, struct mcert *mc, bool round, const char *name,
                      struct deploy_journal *journal, int status, const char *why);
bool mgr_round_begin(struct manager *m);
bool mgr_round_end(struct manager *m);
void mgr_round_free_execs(struct manager *m);

/* ---- ari_sched.c: per CA account, and the ARI window ---- */
struct mlimit *mgr_ca_state(struct manager *m, const struct cfg_ca *ca);
struct ratelimit_window *mgr_ca_window(struct manager *m, const struct cfg_ca *ca);
void mgr_ari_consider(struct mcert *mc, const struct store_cert *sc, int64_t now);

/* ---- lifecycle.c: the state machine, the deadline and the queue ---- */
/* Moves mc to state to. A transition the table in lifecycle.c does not
 * list is refused: logged (log_error), counted, mc->state unchanged, and
 * -EINVAL; in a debug build (CERTLOOP_DEBUG) it aborts. */
int mgr_state_set(struct mcert *mc, enum mc_state to);
bool mgr_state_legal(enum mc_state from, enum mc_state to);
const char *mgr_state_name(enum mc_state s);
/* For loop tests: every transition made (trace) and refused (count). */
typedef void (*mgr_state_trace_cb)(const char *name, enum mc_state from, enum mc_state to,
                                   void *arg);
void mgr_state_trace_set(mgr_state_trace_cb cb, void *arg);
unsigned long mgr_state_refused(void);
/* True when the certificate is gone from the configuration (a run in
 * flight finishes, then the entry is unlinked). */
static inline bool mgr_removed(const struct mcert *mc)
{
    return mc->cfg == NULL;
}
/* When the backoff after mc's latest failure ends (exponential, with jitter). */
int64_t mgr_backoff_at(const struct mcert *mc, int64_t now);
/* Arms mc's deadline at t (unix seconds); nothing in --once mode or when
 * stopping. When it comes, an idle mc is decided again (or queued for a
 * deploy retry). */
void mgr_arm(struct mcert *mc, int64_t at);
void mgr_disarm(struct mcert *mc);
/* Queues an idle mc for a run slot (FIFO); MC_QUEUED. */
void mgr_enqueue(struct mcert *mc);
/* Takes a queued mc off the queue; MC_IDLE. */
void mgr_dequeue(struct mcert *mc);

/* ---- events.c ---- */
/* The manager's wall clock: time(2), or the one manager_opts injects (loop
 * tests move it by hand). One manager per process. */
void mgr_clock_set(timerheap_clock_cb clock, void *arg);
int64_t mgr_now(void);
void mgr_fmt_date(int64_t t, char *out, size_t n);
void mgr_fmt_time(int64_t t, char *out, size_t n);
void mgr_hist_add(struct mcert *mc, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* mgr_hist_add shown by status but not appended to the history file. */
void mgr_hist_add_mem(struct mcert *mc, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records t as the time the last alert of kind went out for mc (t <= 0:
 * its series ended), in mc->alert_sent and in the store, so that a restart
 * keeps the daily pace. */
void mgr_alert_set(struct mcert *mc, enum store_alert kind, int64_t t);
/* dns-persist-01 with persist_until: inside the expiring window before it
 * the "persist_expiring" event goes out daily (a warning, a history line,
 * webhooks; its time kept by mgr_alert_set); before the window (persist_until
 * moved later) or without persist_until the series ends. Returns when to
 * look again (0: never). */
int64_t mgr_persist_expiring(struct mcert *mc, int64_t now);
void mgr_emit(struct mcert *mc, enum notify_event_type type, const char *error,
              const char *identifier);

#endif
