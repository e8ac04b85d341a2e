/* The `exec` deploy action: one command (argv, never a shell) spawned on
 * the loop in its own process group, its output logged line by line, ended
 * by a timeout (SIGTERM, then SIGKILL). It does not decide which commands
 * run or deduplicate reloads; the caller does. */
#include "deploy/deploy.h"
#include "util/err.h"
#include "util/fd.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

#define EXEC_DEFAULT_TIMEOUT_S 60
#define EXEC_KILL_GRACE_MS 5000
/* after the command exits, how long we wait for its pipes to reach EOF (a
 * daemon it started may hold them open forever) */
#define EXEC_DRAIN_MS 2000
#define EXEC_OUTPUT_CAP (64 * 1024)
#define EXEC_LINE_MAX 1024

enum exec_state { EXEC_RUNNING, EXEC_ENDED };

struct exec_stream {
    uv_pipe_t pipe; /* pipe.data = the op */
    char line[EXEC_LINE_MAX];
    size_t len;
    char rbuf[4096];
    bool eof;
};

struct deploy_exec {
    uv_process_t proc; /* .data = self */
    struct exec_stream out, err;
    uv_timer_t timer; /* timeout, then kill grace, then drain */
    int pending;      /* handles still to close; free at zero */
    enum exec_state state;
    deploy_done_cb cb; /* NULL once cancelled or ended */
    void *arg;
    char *name; /* owned: certificate name, for the log */
    char *prog; /* owned: basename of argv[0], for the log */
    int64_t timeout_s;
    int kill_stage; /* 0: none sent, 1: SIGTERM, 2: SIGKILL */
    bool exited;
    bool cancelled;
    size_t logged; /* output bytes seen, against EXEC_OUTPUT_CAP */
    bool dropped;
    struct deploy_exec_result res;
};

/* ---- environment --------------------------------------------------------- */

static const char *const our_vars[] = {
    "CERTLOOP_NAME",  "CERTLOOP_DOMAINS", "CERTLOOP_CERT_DIR",
    "CERTLOOP_EVENT", "RENEWED_LINEAGE",  "RENEWED_DOMAINS",
};

static bool is_our_var(const char *entry)
{
    for (size_t i = 0; i < sizeof(our_vars) / sizeof(our_vars[0]); i++) {
        size_t n = strlen(our_vars[i]);
        if (strncmp(entry, our_vars[i], n) == 0 && entry[n] == '=')
            return true;
    }
    return false;
}

/* The parent's environment without our names, then ours. Owned array of
 * owned strings, NULL-terminated. */
static char **build_env(const struct deploy_env *env)
{
    size_t n = 0, k = 0;

    while (environ != NULL && environ[n] != NULL)
        n++;
    char **v = xcalloc(n + sizeof(our_vars) / sizeof(our_vars[0]) + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        if (!is_our_var(environ[i]))
            v[k++] = xstrdup(environ[i]);
    }

    size_t dl = 1;
    for (size_t i = 0; i < env->n_domains; i++)
        dl += strlen(env->domains[i]) + 1;
    char *domains = xcalloc(dl, 1);
    for (size_t i = 0, off = 0; i < env->n_domains; i++) {
        size_t l = strlen(env->domains[i]);
        if (i > 0)
            domains[off++] = ' ';
        memcpy(domains + off, env->domains[i], l);
        off += l;
    }
    const char *name = env->name != NULL ? env->name : "";
    const char *dir = env->cert_dir != NULL ? env->cert_dir : "";
    v[k++] = xasprintf("CERTLOOP_NAME=%s", name);
    v[k++] = xasprintf("CERTLOOP_DOMAINS=%s", domains);
    v[k++] = xasprintf("CERTLOOP_CERT_DIR=%s", dir);
    /* certbot's deploy-hook variables, so existing hooks work unchanged */
    v[k++] = xasprintf("RENEWED_LINEAGE=%s", dir);
    v[k++] = xasprintf("RENEWED_DOMAINS=%s", domains);
    if (env->event != NULL)
        v[k++] = xasprintf("CERTLOOP_EVENT=%s", env->event);
    v[k] = NULL;
    free(domains);
    return v;
}

static void free_env(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

/* ---- teardown ------------------------------------------------------------ */

static void exec_closed(uv_handle_t *h)
{
    struct deploy_exec *op = h->data;

    if (--op->pending > 0)
        return;
    free(op->name);
    free(op->prog);
    free(op);
}

static void close_all(struct deploy_exec *op)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&op->proc, (uv_handle_t *)&op->out.pipe,
                         (uv_handle_t *)&op->err.pipe, (uv_handle_t *)&op->timer};

    op->pending = 0;
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
        if (!uv_is_closing(hs[i])) {
            op->pending++;
            uv_close(hs[i], exec_closed);
        }
    }
}

/* ---- output -------------------------------------------------------------- */

static void emit_line(struct deploy_exec *op, struct exec_stream *s)
{
    char masked[EXEC_LINE_MAX + 1];
    size_t len = s->len;

    s->len = 0;
    if (len > 0 && s->line[len - 1] == '\r')
        len--;
    if (op->logged >= EXEC_OUTPUT_CAP) {
        if (!op->dropped)
            log_info(LOG_DEPLOY, "deploy cert=%s cmd=%s: output beyond %d bytes dropped", op->name,
                     op->prog, EXEC_OUTPUT_CAP);
        op->dropped = true;
        return;
    }
    op->logged += len + 1;
    /* hook output is untrusted text: no terminal escapes into the log */
    log_mask(masked, sizeof(masked), s->line, len);
    log_info(LOG_DEPLOY, "deploy cert=%s cmd=%s: %s", op->name, op->prog, masked);
}

static void feed(struct deploy_exec *op, struct exec_stream *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            emit_line(op, s);
            continue;
        }
        if (s->len == sizeof(s->line))
            emit_line(op, s); /* an overlong line is split */
        s->line[s->len++] = p[i];
    }
}

static void end(struct deploy_exec *op);
static void on_timer(uv_timer_t *t);

/* The command is gone: finish once both pipes are drained, or after a
 * short wait if something it started keeps them open. */
static void maybe_finish(struct deploy_exec *op)
{
    if (op->state != EXEC_RUNNING || !op->exited)
        return;
    if (op->out.eof && op->err.eof) {
        end(op);
        return;
    }
    /* replaces a pending kill timer: the process is gone */
    uv_timer_start(&op->timer, on_timer, EXEC_DRAIN_MS, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct deploy_exec *op = h->data;
    struct exec_stream *s = (h == (uv_handle_t *)&op->out.pipe) ? &op->out : &op->err;

    (void)suggested;
    buf->base = s->rbuf;
    buf->len = sizeof(s->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct deploy_exec *op = st->data;
    struct exec_stream *s = (st == (uv_stream_t *)&op->out.pipe) ? &op->out : &op->err;

    if (nread > 0) {
        feed(op, s, buf->base, (size_t)nread);
        return;
    }
    if (nread == 0)
        return; /* EAGAIN */
    if (nread != UV_EOF)
        log_debug(LOG_DEPLOY, "deploy cert=%s cmd=%s: read output: %s", op->name, op->prog,
                  uv_strerror((int)nread));
    if (s->len > 0)
        emit_line(op, s);
    s->eof = true;
    uv_read_stop(st);
    maybe_finish(op);
}

/* ---- the process --------------------------------------------------------- */

/* Signals the command's whole process group (it leads one: a shell script's
 * children die with it), or just the command if that fails. */
static void kill_group(struct deploy_exec *op, int sig)
{
    if (op->exited)
        return;
    if (kill(-op->proc.pid, sig) < 0)
        uv_process_kill(&op->proc, sig);
}

static void on_timer(uv_timer_t *t)
{
    struct deploy_exec *op = t->data;

    if (op->exited) {
        /* drain wait over: stop listening to whoever holds the pipes */
        end(op);
        return;
    }
    if (op->kill_stage == 0) {
        if (!op->cancelled) {
            op->res.timed_out = true;
            log_error(LOG_DEPLOY, "deploy cert=%s cmd=%s: timed out after %lld s, sending SIGTERM",
                      op->name, op->prog, (long long)op->timeout_s);
        }
        kill_group(op, SIGTERM);
        op->kill_stage = 1;
        uv_timer_start(&op->timer, on_timer, EXEC_KILL_GRACE_MS, 0);
    } else if (op->kill_stage == 1) {
        log_warn(LOG_DEPLOY,
                 "deploy cert=%s cmd=%s: still running %d ms after SIGTERM, sending "
                 "SIGKILL",
                 op->name, op->prog, EXEC_KILL_GRACE_MS);
        kill_group(op, SIGKILL);
        op->kill_stage = 2;
    }
}

static void on_proc_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    struct deploy_exec *op = p->data;

    op->exited = true;
    op->res.exit_status = exit_status;
    op->res.term_signal = term_signal;
    maybe_finish(op);
}

/* The only way out: logs the outcome, closes every handle (the op is freed
 * in the last close callback) and calls back unless cancelled. */
static void end(struct deploy_exec *op)
{
    deploy_done_cb cb = op->cb;
    int status = 0;

    if (op->state == EXEC_ENDED)
        return;
    op->state = EXEC_ENDED;
    op->cb = NULL;
    if (op->out.len > 0)
        emit_line(op, &op->out);
    if (op->err.len > 0)
        emit_line(op, &op->err);
    if (op->res.timed_out) {
        status = ERR_TIMEOUT;
        log_error(LOG_DEPLOY,
                  "deploy cert=%s cmd=%s: killed by signal %d after timing out (%lld s)", op->name,
                  op->prog, op->res.term_signal, (long long)op->timeout_s);
    } else if (op->res.term_signal != 0) {
        status = ERR_HOOK;
        if (op->cancelled)
            log_info(LOG_DEPLOY, "deploy cert=%s cmd=%s: cancelled, killed by signal %d", op->name,
                     op->prog, op->res.term_signal);
        else
            log_error(LOG_DEPLOY, "deploy cert=%s cmd=%s: killed by signal %d", op->name, op->prog,
                      op->res.term_signal);
    } else if (op->res.exit_status != 0) {
        status = ERR_HOOK;
        log_error(LOG_DEPLOY, "deploy cert=%s cmd=%s: exited with status %lld", op->name, op->prog,
                  (long long)op->res.exit_status);
    } else {
        log_info(LOG_DEPLOY, "deploy cert=%s cmd=%s: exited with status 0", op->name, op->prog);
    }
    close_all(op);
    if (cb != NULL)
        cb(status, &op->res, op->arg); /* op is freed only by the close callbacks */
}

int deploy_exec_start(uv_loop_t *loop, const struct cfg_deploy *d, const struct deploy_env *env,
                      deploy_done_cb cb, void *arg, struct deploy_exec **out)
{
    const char *name = env->name != NULL ? env->name : "";

    if (d->type != CFG_DEPLOY_EXEC || d->command.n == 0 || d->command.v == NULL ||
        d->command.v[0] == NULL || d->command.v[0][0] == '\0') {
        log_error(LOG_DEPLOY, "deploy cert=%s: exec action without a command", name);
        return -EINVAL;
    }

    struct deploy_exec *op = xcalloc(1, sizeof(*op));
    const char *slash = strrchr(d->command.v[0], '/');
    op->prog = xstrdup(slash != NULL && slash[1] != '\0' ? slash + 1 : d->command.v[0]);
    op->name = xstrdup(name);
    op->cb = cb;
    op->arg = arg;
    op->timeout_s = d->timeout_s > 0 ? d->timeout_s : EXEC_DEFAULT_TIMEOUT_S;
    op->state = EXEC_RUNNING;
    op->proc.data = op;
    op->out.pipe.data = op;
    op->err.pipe.data = op;
    op->timer.data = op;
    uv_pipe_init(loop, &op->out.pipe, 0);
    uv_pipe_init(loop, &op->err.pipe, 0);
    uv_timer_init(loop, &op->timer);

    char **envp = build_env(env);
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE; /* libuv puts /dev/null on fds 0-2 it is not given */
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&op->out.pipe;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&op->err.pipe;
    uv_process_options_t o;
    memset(&o, 0, sizeof(o));
    o.exit_cb = on_proc_exit;
    o.file = d->command.v[0];
    o.args = d->command.v;
    o.env = envp;
    /* DETACHED = setsid(): the command leads its own process group, so the
     * timeout can kill everything it started */
    o.flags = UV_PROCESS_DETACHED;
    o.stdio_count = 3;
    o.stdio = stdio;
    /* libcurl's sockets and anything inherited are not close-on-exec:
     * the command gets its stdio and nothing else of ours */
    int rc = fd_cloexec_all();
    if (rc < 0)
        log_warn(LOG_DEPLOY, "deploy cert=%s cmd=%s: close-on-exec: %s", name, op->prog,
                 err_str(rc));
    rc = uv_spawn(loop, &op->proc, &o);
    free_env(envp);
    if (rc < 0) {
        log_error(LOG_DEPLOY, "deploy cert=%s cmd=%s: spawn %s: %s", name, op->prog,
                  d->command.v[0], uv_strerror(rc));
        /* every handle was initialised (uv_spawn inits the process handle
         * even when it fails): close them all, no callback */
        op->cb = NULL;
        op->state = EXEC_ENDED;
        close_all(op);
        return rc;
    }
    log_debug(LOG_DEPLOY, "deploy cert=%s cmd=%s: started pid %d", name, op->prog,
              (int)op->proc.pid);
    uv_read_start((uv_stream_t *)&op->out.pipe, on_alloc, on_read);
    uv_read_start((uv_stream_t *)&op->err.pipe, on_alloc, on_read);
    uv_timer_start(&op->timer, on_timer, (uint64_t)op->timeout_s * 1000, 0);
    if (out != NULL)
        *out = op;
    return 0;
}

void deploy_exec_cancel(struct deploy_exec *op)
{
    if (op == NULL)
        return;
    op->cb = NULL;
    op->cancelled = true;
    if (op->state != EXEC_RUNNING)
        return;
    if (op->exited) {
        end(op); /* only the pipes were left */
        return;
    }
    /* stop the command; the op lingers (silently) until it is gone */
    if (op->kill_stage == 0) {
        kill_group(op, SIGTERM);
        op->kill_stage = 1;
        uv_timer_start(&op->timer, on_timer, EXEC_KILL_GRACE_MS, 0);
    }
}

char *deploy_exec_describe(const char *label, const struct cfg_deploy *d, int status,
                           const struct deploy_exec_result *res)
{
    char cmd[256];
    size_t len = 0;
    char *s;

    cmd[0] = '\0';
    for (size_t i = 0; i < d->command.n && len < sizeof(cmd) - 4; i++) {
        int n = snprintf(cmd + len, sizeof(cmd) - len, "%s%s", i > 0 ? " " : "", d->command.v[i]);
        if (n < 0)
            break;
        len += (size_t)n;
    }
    if (len >= sizeof(cmd) - 4)
        memcpy(cmd + sizeof(cmd) - 4, "...", 4); /* a long argv is cut for the log */
    label = label != NULL ? label : "command";
    if (res == NULL)
        s = xasprintf("%s `%s` could not be started", label, cmd);
    else if (res->timed_out || status == ERR_TIMEOUT)
        s = xasprintf("%s `%s` timed out after %lld s", label, cmd,
                      (long long)(d->timeout_s > 0 ? d->timeout_s : EXEC_DEFAULT_TIMEOUT_S));
    else if (res->term_signal != 0)
        s = xasprintf("%s `%s` killed by signal %d", label, cmd, res->term_signal);
    else
        s = xasprintf("%s `%s` exited %lld", label, cmd, (long long)res->exit_status);
    return s;
}
