/* One asynchronous libpq connection on the libuv loop: connect (the
 * possibly-resolving PQconnectStart on the threadpool, PQconnectPoll on the
 * loop), pipeline mode with one sync per op, LISTEN/NOTIFY delivery, a
 * watchdog for a silent server, and reconnection with exponential backoff.
 * It knows nothing about certloop's tables; pg_schema.c and pg_lease.c
 * (and later the store backend) speak SQL through it. */
#include "store/pg_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define OP_TIMEOUT_MS 60000
#define WAIT_TIMEOUT_MS 30000
#define MAX_CHANNELS 32

enum phase {
    PH_BACKOFF,    /* no PGconn; the timer brings the next attempt */
    PH_STARTING,   /* PQconnectStart runs on the threadpool */
    PH_CONNECTING, /* PQconnectPoll driven by socket events; timer = deadline */
    PH_READY,      /* pipeline mode; ops flow; timer = watchdog */
    PH_CLOSED,     /* pg_conn_close was called */
};

struct stmt {
    char *sql; /* owned */
    int nparams;
    char **params; /* owned, entries owned or NULL */
};

struct pg_op {
    struct pg_conn *c;       /* borrowed */
    TAILQ_ENTRY(pg_op) link; /* in c->pending or c->sent */
    bool sent;
    bool internal; /* LISTEN: no owner, failures logged here */
    pg_op_cb cb;   /* NULL once cancelled */
    void *arg;
    void (*arg_free)(void *); /* frees arg with the op, or NULL */
    size_t n;
    struct stmt *st;          /* owned, n entries */
    PGresult **res;           /* owned, n entries */
    size_t cur;               /* next statement whose result we expect */
    int status;               /* 0 or ERR_DB once a statement failed */
    char *sqlstate, *message; /* owned: the first failure */
    uint64_t sent_at;         /* uv_now when put on the wire */
    uint64_t queued_at;       /* uv_now when started */
};

TAILQ_HEAD(op_list, pg_op);

/* The socket libpq gave us; a new one (another fd, or a reconnect) gets a
 * new handle. Freed in its close callback. */
struct pg_sock {
    uv_poll_t poll; /* poll.data = self */
    struct pg_conn *c;
    int fd;
};

struct pg_conn {
    uv_loop_t *loop;          /* borrowed */
    char *conninfo;           /* owned; may hold a password: never logged */
    struct pg_conn_opts opts; /* conninfo points at ours */
    enum phase phase;
    PGconn *pg;      /* owned, or NULL */
    PGconn *work_pg; /* the threadpool's result, handed over in after_connect */
    uv_work_t work;  /* work.data = self */
    bool work_busy;
    uv_timer_t timer;             /* backoff, connect deadline or watchdog */
    uv_timer_t expire;            /* ends ops that wait too long for a connection */
    uv_idle_t kick;               /* sends pending ops on the next loop turn */
    struct pg_sock *sock;         /* the watched socket, or NULL */
    unsigned handles;             /* handles not yet closed (timer, kick, sockets) */
    struct op_list pending;       /* not yet on the wire */
    struct op_list sent;          /* on the wire, in order */
    char *channels[MAX_CHANNELS]; /* owned */
    size_t nchannels;
    unsigned attempt; /* failures since the last successful connect */
    uint64_t rng;
    struct pg_conn_stats stats;
    pg_close_cb close_cb;
    void *close_arg;
};

static void conn_connect(struct pg_conn *c);
static void conn_lost(struct pg_conn *c, int status, const char *why);
static void conn_maybe_free(struct pg_conn *c);
static void refs(struct pg_conn *c);
static void on_kick(uv_idle_t *h);
static void drain_results(struct pg_conn *c);
static void drain_notifies(struct pg_conn *c);

/* ---- ops ------------------------------------------------------------------ */

static void op_free(struct pg_op *op)
{
    for (size_t i = 0; i < op->n; i++) {
        free(op->st[i].sql);
        for (int j = 0; j < op->st[i].nparams; j++)
            free(op->st[i].params[j]);
        free(op->st[i].params);
        if (op->res[i] != NULL)
            PQclear(op->res[i]);
    }
    free(op->st);
    free(op->res);
    free(op->sqlstate);
    free(op->message);
    if (op->arg_free != NULL)
        op->arg_free(op->arg);
    free(op);
}

/* A libpq message for one log line: trailing newline cut, inner ones folded. */
static char *one_line(const char *msg)
{
    char *s = xstrdup(msg != NULL ? msg : "");
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    for (char *p = s; *p != '\0'; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    return s;
}

/* Ends op (already unlinked) with status and frees it; the callback may
 * start ops or even close the connection. */
static void op_finish(struct pg_conn *c, struct pg_op *op, int status)
{
    pg_op_cb cb = op->cb;

    c->stats.ops++;
    if (op->internal && status != 0)
        log_warn(LOG_STORE, "database: LISTEN: %s%s%s", err_str(status),
                 op->message != NULL ? ": " : "", op->message != NULL ? op->message : "");
    op->cb = NULL;
    if (cb != NULL) {
        struct pg_res r = {op->n, op->res, op->sqlstate, op->message};
        bool has_res = status == 0 || status == ERR_DB;
        cb(status, has_res ? &r : NULL, op->arg);
    }
    op_free(op);
}

static struct pg_op *op_new(struct pg_conn *c, const struct pg_stmt *stmts, size_t n)
{
    struct pg_op *op = xcalloc(1, sizeof(*op));

    op->c = c;
    op->n = n;
    op->st = xcalloc(n, sizeof(*op->st));
    op->res = xcalloc(n, sizeof(*op->res));
    for (size_t i = 0; i < n; i++) {
        op->st[i].sql = xstrdup(stmts[i].sql);
        op->st[i].nparams = stmts[i].nparams;
        if (stmts[i].nparams > 0) {
            op->st[i].params = xcalloc((size_t)stmts[i].nparams, sizeof(char *));
            for (int j = 0; j < stmts[i].nparams; j++)
                if (stmts[i].params[j] != NULL)
                    op->st[i].params[j] = xstrdup(stmts[i].params[j]);
        }
    }
    return op;
}

/* The connection keeps the loop alive only while it has ops to run: an
 * idle one (listening, or retrying with nothing queued) does not hold up
 * uv_run, like a listener with no clients. The daemon's other handles keep
 * it running; a test's uv_run(UV_RUN_DEFAULT) returns once its ops are done. */
static void refs(struct pg_conn *c)
{
    bool busy = !TAILQ_EMPTY(&c->pending) || !TAILQ_EMPTY(&c->sent);

    if (c->phase == PH_CLOSED)
        return;
    if (busy) {
        uv_ref((uv_handle_t *)&c->expire);
        uv_ref((uv_handle_t *)&c->timer);
        if (c->sock != NULL)
            uv_ref((uv_handle_t *)&c->sock->poll);
    } else {
        uv_unref((uv_handle_t *)&c->expire);
        uv_unref((uv_handle_t *)&c->timer);
        if (c->sock != NULL)
            uv_unref((uv_handle_t *)&c->sock->poll);
    }
}

static void kick(struct pg_conn *c)
{
    if (c->phase == PH_READY && !TAILQ_EMPTY(&c->pending))
        uv_idle_start(&c->kick, on_kick); /* cannot fail on an initialized handle */
}

/* While the server is away, ops not yet sent end with ERR_TIMEOUT once
 * they have waited wait_timeout_ms: nothing of theirs reached the server,
 * so a caller can count on nothing written (and retry later). LISTEN ops
 * (internal) just wait for the next connection. */
static void on_expire(uv_timer_t *t)
{
    struct pg_conn *c = t->data;
    uint64_t now = uv_now(c->loop), next = 0;
    struct pg_op *op;

    if (c->phase == PH_READY || c->phase == PH_CLOSED)
        return;
    TAILQ_FOREACH(op, &c->pending, link)
    {
        if (op->internal)
            continue;
        uint64_t due = op->queued_at + c->opts.wait_timeout_ms;
        if (due <= now)
            break;
        if (next == 0 || due < next)
            next = due;
    }
    if (op != NULL) { /* one at a time: its callback may start or cancel others */
        TAILQ_REMOVE(&c->pending, op, link);
        c->stats.timeouts++;
        op_finish(c, op, ERR_TIMEOUT);
        if (c->phase != PH_READY && c->phase != PH_CLOSED) {
            uv_timer_start(&c->expire, on_expire, 0, 0);
            refs(c);
        }
        return;
    }
    if (next > 0)
        uv_timer_start(&c->expire, on_expire, next - now, 0);
    refs(c);
}

static void expire_arm(struct pg_conn *c)
{
    if (c->phase != PH_READY && c->phase != PH_CLOSED && !TAILQ_EMPTY(&c->pending) &&
        !uv_is_active((uv_handle_t *)&c->expire))
        uv_timer_start(&c->expire, on_expire, c->opts.wait_timeout_ms, 0);
}

/* The server could not be reached (or was lost): for status and metrics. */
static void note_down(struct pg_conn *c, const char *msg)
{
    if (c->stats.down_since == 0)
        c->stats.down_since = (int64_t)time(NULL);
    snprintf(c->stats.last_error, sizeof(c->stats.last_error), "%s", msg);
    expire_arm(c);
}

int pg_op_start(struct pg_conn *c, const struct pg_stmt *stmts, size_t n, pg_op_cb cb, void *arg,
                struct pg_op **out)
{
    return pg_op_start_owning(c, stmts, n, cb, arg, NULL, out);
}

int pg_op_start_owning(struct pg_conn *c, const struct pg_stmt *stmts, size_t n, pg_op_cb cb,
                       void *arg, void (*arg_free)(void *), struct pg_op **out)
{
    if (c->phase == PH_CLOSED || n == 0 || cb == NULL)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (stmts[i].sql == NULL || stmts[i].nparams < 0 ||
            (stmts[i].nparams > 0 && stmts[i].params == NULL))
            return -EINVAL;
    struct pg_op *op = op_new(c, stmts, n);
    op->cb = cb;
    op->arg = arg;
    op->arg_free = arg_free;
    op->queued_at = uv_now(c->loop);
    TAILQ_INSERT_TAIL(&c->pending, op, link);
    kick(c);
    expire_arm(c);
    refs(c);
    if (out != NULL)
        *out = op;
    return 0;
}

int pg_query_start(struct pg_conn *c, const char *sql, int nparams, const char *const *params,
                   pg_op_cb cb, void *arg, struct pg_op **out)
{
    struct pg_stmt st = {sql, nparams, params};

    return pg_op_start(c, &st, 1, cb, arg, out);
}

void pg_op_cancel(struct pg_op *op)
{
    if (op == NULL)
        return;
    op->cb = NULL;
    if (!op->sent) { /* never reached the server: forget it now */
        struct pg_conn *c = op->c;
        TAILQ_REMOVE(&c->pending, op, link);
        op_free(op);
        refs(c);
    }
    /* on the wire: its results are read and dropped (a tombstone) */
}

/* ---- the socket ------------------------------------------------------------ */

static void sock_closed(uv_handle_t *h)
{
    struct pg_sock *s = h->data;
    struct pg_conn *c = s->c;

    free(s);
    c->handles--;
    conn_maybe_free(c);
}

static void sock_drop(struct pg_conn *c)
{
    if (c->sock == NULL)
        return;
    uv_close((uv_handle_t *)&c->sock->poll, sock_closed); /* stops polling first */
    c->sock = NULL;
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Watches libpq's current socket for events. uv_poll_start re-registers
 * the fd each time, which also covers libpq closing a socket and opening
 * another under the same number while it tries the next address. */
static int sock_watch(struct pg_conn *c, int events)
{
    int fd = PQsocket(c->pg);

    if (fd < 0)
        return -EBADF;
    if (c->sock != NULL && c->sock->fd != fd)
        sock_drop(c);
    if (c->sock == NULL) {
        struct pg_sock *s = xcalloc(1, sizeof(*s));
        s->c = c;
        s->fd = fd;
        int rc = uv_poll_init(c->loop, &s->poll, fd);
        if (rc < 0) {
            free(s);
            return rc;
        }
        s->poll.data = s;
        c->handles++;
        c->sock = s;
    }
    int rc = uv_poll_start(&c->sock->poll, events, on_poll);
    refs(c);
    return rc;
}

/* ---- backoff and connecting ------------------------------------------------ */

static uint64_t rng_next(struct pg_conn *c)
{
    uint64_t x = c->rng; /* xorshift64: jitter only, nothing secret */

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return x;
}

static void on_backoff(uv_timer_t *t)
{
    struct pg_conn *c = t->data;

    if (c->phase == PH_BACKOFF)
        conn_connect(c);
}

/* The next attempt after min·2^attempt (capped), less up to a quarter of
 * jitter so a fleet that lost its database together does not return in step. */
static void schedule_reconnect(struct pg_conn *c)
{
    uint64_t d = c->opts.backoff_min_ms;

    for (unsigned i = 0; i < c->attempt && d < c->opts.backoff_max_ms; i++)
        d *= 2;
    if (d > c->opts.backoff_max_ms)
        d = c->opts.backoff_max_ms;
    d -= rng_next(c) % (d / 4 + 1);
    c->attempt++;
    c->phase = PH_BACKOFF;
    log_debug(LOG_STORE, "database: next connection attempt in %llu ms", (unsigned long long)d);
    uv_timer_start(&c->timer, on_backoff, d, 0);
}

static void work_connect(uv_work_t *w)
{
    struct pg_conn *c = w->data;

    /* Only the job's own fields: conninfo is immutable while we run. */
    c->work_pg = PQconnectStart(c->conninfo);
}

static void connect_failed(struct pg_conn *c, const char *why)
{
    char *msg = one_line(why);

    c->stats.failures++;
    log_warn(LOG_STORE, "database: connect: %s", msg);
    note_down(c, msg);
    free(msg);
    sock_drop(c);
    if (c->pg != NULL) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    schedule_reconnect(c);
}

static void on_ready(struct pg_conn *c);

/* Server notices ("relation already exists, skipping") go to our log at
 * debug instead of libpq's default, stderr. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    if (log_enabled(LOG_STORE, LOG_LVL_DEBUG)) {
        char *msg = one_line(message);
        log_debug(LOG_STORE, "database: %s", msg);
        free(msg);
    }
}

static void connect_step(struct pg_conn *c)
{
    PostgresPollingStatusType st = PQconnectPoll(c->pg);
    int rc;

    switch (st) {
    case PGRES_POLLING_READING:
        rc = sock_watch(c, UV_READABLE);
        break;
    case PGRES_POLLING_WRITING:
        rc = sock_watch(c, UV_WRITABLE);
        break;
    case PGRES_POLLING_OK:
        on_ready(c);
        return;
    default:
        connect_failed(c, PQerrorMessage(c->pg));
        return;
    }
    if (rc < 0)
        connect_failed(c, err_str(rc));
}

static void on_connect_deadline(uv_timer_t *t)
{
    struct pg_conn *c = t->data;

    if (c->phase == PH_CONNECTING)
        connect_failed(c, "timed out");
}

static void after_connect(uv_work_t *w, int status)
{
    struct pg_conn *c = w->data;
    PGconn *pg = c->work_pg;

    c->work_pg = NULL;
    c->work_busy = false;
    if (c->phase == PH_CLOSED) {
        if (pg != NULL)
            PQfinish(pg);
        conn_maybe_free(c);
        return;
    }
    if (pg == NULL) /* libpq could not allocate: like our own xmalloc */
        abort();
    c->pg = pg;
    PQsetNoticeProcessor(pg, on_notice, NULL);
    if (status < 0 || PQstatus(pg) == CONNECTION_BAD) {
        connect_failed(c, PQerrorMessage(pg));
        return;
    }
    c->phase = PH_CONNECTING;
    uv_timer_start(&c->timer, on_connect_deadline, c->opts.op_timeout_ms, 0);
    /* libpq: just after PQconnectStart, behave as if PQconnectPoll had
     * answered PGRES_POLLING_WRITING. */
    int rc = sock_watch(c, UV_WRITABLE);
    if (rc < 0)
        connect_failed(c, err_str(rc));
}

static void conn_connect(struct pg_conn *c)
{
    assert(c->pg == NULL && !c->work_busy);
    c->phase = PH_STARTING;
    c->work.data = c;
    int rc = uv_queue_work(c->loop, &c->work, work_connect, after_connect);
    if (rc < 0) { /* cannot happen with a valid loop; retry later anyway */
        log_warn(LOG_STORE, "database: connect: %s", err_str(rc));
        schedule_reconnect(c);
        return;
    }
    c->work_busy = true;
}

/* ---- ready: the pipeline ---------------------------------------------------- */

static void on_watchdog(uv_timer_t *t);

static void arm_watchdog(struct pg_conn *c)
{
    if (c->phase != PH_READY)
        return;
    struct pg_op *head = TAILQ_FIRST(&c->sent);
    if (head == NULL) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(c->loop);
    uint64_t due = head->sent_at + c->opts.op_timeout_ms;
    uv_timer_start(&c->timer, on_watchdog, due > now ? due - now : 0, 0);
}

static void on_watchdog(uv_timer_t *t)
{
    struct pg_conn *c = t->data;
    struct pg_op *head = TAILQ_FIRST(&c->sent);

    if (c->phase != PH_READY || head == NULL)
        return;
    if (uv_now(c->loop) - head->sent_at < c->opts.op_timeout_ms) {
        arm_watchdog(c);
        return;
    }
    conn_lost(c, ERR_TIMEOUT, "no answer within the op timeout");
}

/* Writes what libpq buffered; keeps reading always (notifications). */
static void flush_out(struct pg_conn *c)
{
    int r = PQflush(c->pg);

    if (r < 0) {
        conn_lost(c, -ECONNRESET, PQerrorMessage(c->pg));
        return;
    }
    int rc = sock_watch(c, r == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    if (rc < 0)
        conn_lost(c, -ECONNRESET, err_str(rc));
}

/* Puts every pending op on the wire: its statements, then one sync. */
static void send_pending(struct pg_conn *c)
{
    struct pg_op *op;

    while (c->phase == PH_READY && (op = TAILQ_FIRST(&c->pending)) != NULL) {
        for (size_t i = 0; i < op->n; i++) {
            const struct stmt *s = &op->st[i];
            if (PQsendQueryParams(c->pg, s->sql, s->nparams, NULL, (const char *const *)s->params,
                                  NULL, NULL, 0) != 1) {
                conn_lost(c, -ECONNRESET, PQerrorMessage(c->pg));
                return; /* op is still pending: it goes out after the reconnect */
            }
        }
        if (PQpipelineSync(c->pg) != 1) {
            conn_lost(c, -ECONNRESET, PQerrorMessage(c->pg));
            return;
        }
        TAILQ_REMOVE(&c->pending, op, link);
        op->sent = true;
        op->sent_at = uv_now(c->loop);
        c->stats.statements += op->n;
        TAILQ_INSERT_TAIL(&c->sent, op, link);
    }
    if (c->phase != PH_READY)
        return;
    flush_out(c);
    /* libpq reads the socket while it writes (so neither side blocks on a
     * full buffer): what it read then raises no readable event, so parse it
     * now, results and notifications alike */
    drain_results(c);
    drain_notifies(c);
    if (c->phase == PH_READY && uv_is_active((uv_handle_t *)&c->timer) == 0)
        arm_watchdog(c);
}

static void on_kick(uv_idle_t *h)
{
    struct pg_conn *c = h->data;

    uv_idle_stop(h);
    send_pending(c);
}

/* A statement's result: the first failure is remembered for the op. */
static void take_result(struct pg_op *op, PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);

    if (op->cur >= op->n) { /* more results than statements: not ours to keep */
        PQclear(r);
        return;
    }
    if (st == PGRES_FATAL_ERROR && op->status == 0) {
        op->status = ERR_DB;
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        op->sqlstate = xstrdup(state != NULL ? state : "");
        op->message = one_line(msg != NULL ? msg : PQresultErrorMessage(r));
        log_debug(LOG_STORE, "database: statement failed: %s %s", op->sqlstate, op->message);
    }
    if (st == PGRES_PIPELINE_ABORTED) { /* skipped after an earlier failure */
        PQclear(r);
        op->cur++;
        return;
    }
    op->res[op->cur++] = r;
}

/* Reads every complete result. Each statement yields one result then a
 * NULL; each op ends with PGRES_PIPELINE_SYNC. Two NULLs in a row mean
 * libpq has nothing complete for us yet. */
static void drain_results(struct pg_conn *c)
{
    int nulls = 0;

    while (c->phase == PH_READY && !TAILQ_EMPTY(&c->sent)) {
        if (PQisBusy(c->pg))
            break;
        PGresult *r = PQgetResult(c->pg);
        if (r == NULL) {
            if (++nulls >= 2)
                break;
            continue;
        }
        nulls = 0;
        struct pg_op *op = TAILQ_FIRST(&c->sent);
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            TAILQ_REMOVE(&c->sent, op, link);
            op_finish(c, op, op->status); /* may close c: the loop checks the phase */
            continue;
        }
        take_result(op, r);
    }
    refs(c);
}

static void drain_notifies(struct pg_conn *c)
{
    PGnotify *n;

    while (c->phase == PH_READY && (n = PQnotifies(c->pg)) != NULL) {
        if (c->opts.on_notify != NULL)
            c->opts.on_notify(n->relname, n->extra, c->opts.arg);
        PQfreemem(n);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct pg_sock *s = h->data;
    struct pg_conn *c = s->c;

    if (s != c->sock)
        return; /* a socket being replaced */
    if (c->phase == PH_CONNECTING) {
        connect_step(c);
        return;
    }
    if (c->phase != PH_READY)
        return;
    if (status < 0) {
        conn_lost(c, -ECONNRESET, uv_strerror(status));
        return;
    }
    if (events & UV_READABLE) {
        if (PQconsumeInput(c->pg) != 1) {
            conn_lost(c, -ECONNRESET, PQerrorMessage(c->pg));
            return;
        }
        drain_results(c);
        drain_notifies(c);
        if (c->phase != PH_READY)
            return;
        if (PQstatus(c->pg) == CONNECTION_BAD) {
            conn_lost(c, -ECONNRESET, PQerrorMessage(c->pg));
            return;
        }
        arm_watchdog(c);
    }
    if (events & UV_WRITABLE)
        flush_out(c);
}

static struct pg_op *listen_op(struct pg_conn *c, size_t from)
{
    struct pg_stmt st[MAX_CHANNELS] = {{0}};
    char *sql[MAX_CHANNELS] = {0};
    size_t n = 0;

    for (size_t i = from; i < c->nchannels; i++) {
        /* channels are checked identifiers: no quoting needed */
        sql[n] = xasprintf("LISTEN %s", c->channels[i]);
        st[n] = (struct pg_stmt){sql[n], 0, NULL};
        n++;
    }
    struct pg_op *op = op_new(c, st, n);
    for (size_t i = 0; i < n; i++)
        free(sql[i]);
    op->internal = true;
    return op;
}

static void on_ready(struct pg_conn *c)
{
    if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
        connect_failed(c, PQerrorMessage(c->pg));
        return;
    }
    c->phase = PH_READY;
    c->attempt = 0;
    c->stats.connects++;
    c->stats.down_since = 0;
    c->stats.last_error[0] = '\0';
    uv_timer_stop(&c->timer);
    uv_timer_stop(&c->expire);
    log_info(LOG_STORE, "database: connected (server %d, %s)", PQserverVersion(c->pg),
             c->stats.connects > 1 ? "reconnected" : "first connection");
    if (c->nchannels > 0) {                 /* first on the wire, before anything queued */
        struct pg_op *op = listen_op(c, 0); /* the TAILQ macros evaluate it more than once */
        TAILQ_INSERT_HEAD(&c->pending, op, link);
    }
    int rc = sock_watch(c, UV_READABLE);
    if (rc < 0) {
        conn_lost(c, -ECONNRESET, err_str(rc));
        return;
    }
    if (c->opts.on_state != NULL)
        c->opts.on_state(PG_CONN_UP, c->opts.arg);
    kick(c);
}

/* The connection broke (or the watchdog gave up on it): every op on the
 * wire ends with status, since nobody knows whether it committed; ops not
 * yet sent wait for the next connection. */
static void conn_lost(struct pg_conn *c, int status, const char *why)
{
    char *msg = one_line(why);
    struct op_list gone = TAILQ_HEAD_INITIALIZER(gone);
    struct pg_op *op;

    assert(c->phase == PH_READY);
    c->stats.failures++;
    log_warn(LOG_STORE, "database: connection lost: %s (%s); reconnecting", msg, err_str(status));
    note_down(c, msg);
    free(msg);
    sock_drop(c);
    PQfinish(c->pg);
    c->pg = NULL;
    uv_idle_stop(&c->kick);
    TAILQ_CONCAT(&gone, &c->sent, link);
    schedule_reconnect(c); /* phase is PH_BACKOFF from here on */
    if (c->opts.on_state != NULL)
        c->opts.on_state(PG_CONN_DOWN, c->opts.arg);
    while (c->phase != PH_CLOSED && (op = TAILQ_FIRST(&gone)) != NULL) {
        TAILQ_REMOVE(&gone, op, link);
        op_finish(c, op, status);
    }
    while ((op = TAILQ_FIRST(&gone)) != NULL) { /* closed from a callback: silence */
        TAILQ_REMOVE(&gone, op, link);
        op_free(op);
    }
    refs(c);
}

/* ---- public ------------------------------------------------------------------ */

static bool channel_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return !(s[0] >= '0' && s[0] <= '9');
}

int pg_conn_listen(struct pg_conn *c, const char *channel)
{
    if (!channel_ok(channel))
        return -EINVAL;
    for (size_t i = 0; i < c->nchannels; i++)
        if (strcmp(c->channels[i], channel) == 0)
            return 0;
    if (c->nchannels == MAX_CHANNELS)
        return -ENOSPC;
    c->channels[c->nchannels++] = xstrdup(channel);
    if (c->phase == PH_READY) {
        struct pg_op *op = listen_op(c, c->nchannels - 1);
        TAILQ_INSERT_TAIL(&c->pending, op, link);
        kick(c);
    }
    return 0;
}

int pg_conn_open(uv_loop_t *loop, const struct pg_conn_opts *opts, struct pg_conn **out)
{
    char *errmsg = NULL;
    PQconninfoOption *parsed = PQconninfoParse(opts->conninfo, &errmsg);

    if (parsed == NULL) {
        char *msg = one_line(errmsg != NULL ? errmsg : "out of memory");
        log_error(LOG_STORE, "database: conninfo: %s", msg);
        free(msg);
        PQfreemem(errmsg);
        return -EINVAL;
    }
    PQconninfoFree(parsed);

    struct pg_conn *c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->conninfo = xstrdup(opts->conninfo);
    c->opts = *opts;
    c->opts.conninfo = c->conninfo;
    if (c->opts.backoff_min_ms == 0)
        c->opts.backoff_min_ms = BACKOFF_MIN_MS;
    if (c->opts.backoff_max_ms == 0)
        c->opts.backoff_max_ms = BACKOFF_MAX_MS;
    if (c->opts.backoff_max_ms < c->opts.backoff_min_ms)
        c->opts.backoff_max_ms = c->opts.backoff_min_ms;
    if (c->opts.op_timeout_ms == 0)
        c->opts.op_timeout_ms = OP_TIMEOUT_MS;
    if (c->opts.wait_timeout_ms == 0)
        c->opts.wait_timeout_ms = WAIT_TIMEOUT_MS;
    c->rng = (uv_hrtime() ^ (uintptr_t)c) | 1;
    TAILQ_INIT(&c->pending);
    TAILQ_INIT(&c->sent);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_idle_init(loop, &c->kick);
    c->kick.data = c;
    uv_timer_init(loop, &c->expire);
    c->expire.data = c;
    c->handles = 3;
    conn_connect(c);
    *out = c;
    return 0;
}

enum pg_conn_state pg_conn_state(const struct pg_conn *c)
{
    return c->phase == PH_READY ? PG_CONN_UP : PG_CONN_DOWN;
}

void pg_conn_stats(const struct pg_conn *c, struct pg_conn_stats *out)
{
    const struct pg_op *op;

    *out = c->stats;
    out->waiting = 0;
    TAILQ_FOREACH(op, &c->pending, link)
    out->waiting++;
    TAILQ_FOREACH(op, &c->sent, link)
    out->waiting++;
}

/* Frees c once it is closed, its handles are closed and no threadpool job
 * still points at it; then tells the owner. */
static void conn_maybe_free(struct pg_conn *c)
{
    if (c->phase != PH_CLOSED || c->handles > 0 || c->work_busy)
        return;
    for (size_t i = 0; i < c->nchannels; i++)
        free(c->channels[i]);
    free(c->conninfo);
    pg_close_cb done = c->close_cb;
    void *done_arg = c->close_arg;
    free(c);
    if (done != NULL)
        done(done_arg);
}

static void handle_closed(uv_handle_t *h)
{
    struct pg_conn *c = h->data;

    c->handles--;
    conn_maybe_free(c);
}

void pg_conn_close(struct pg_conn *c, pg_close_cb cb, void *arg)
{
    struct pg_op *op;

    if (c == NULL)
        return;
    assert(c->phase != PH_CLOSED);
    c->phase = PH_CLOSED;
    c->close_cb = cb;
    c->close_arg = arg;
    while ((op = TAILQ_FIRST(&c->pending)) != NULL) {
        TAILQ_REMOVE(&c->pending, op, link);
        op_free(op);
    }
    while ((op = TAILQ_FIRST(&c->sent)) != NULL) {
        TAILQ_REMOVE(&c->sent, op, link);
        op_free(op);
    }
    sock_drop(c);
    if (c->pg != NULL) {
        PQfinish(c->pg); /* non-blocking: the Terminate message is best effort */
        c->pg = NULL;
    }
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    uv_close((uv_handle_t *)&c->kick, handle_closed);
    uv_close((uv_handle_t *)&c->expire, handle_closed);
}
