/* Runs a program for the dns-01 exec solver (`PROGRAM present|cleanup FQDN
 * VALUE`, lego's exec convention) with uv_spawn: argv only, never a shell,
 * stdin from /dev/null, stdout and stderr captured (last 4 KiB) for the
 * error message, SIGTERM at the timeout and SIGKILL two seconds later.
 * It knows nothing of DNS; dns01.c builds the argv. (challenge/ may not use
 * deploy/'s hook runner, so this small spawner is its own.) */
#include "challenge/dns01_internal.h"
#include "util/err.h"
#include "util/fd.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define OUTPUT_KEEP 4096
#define KILL_GRACE_MS 2000
#define DRAIN_MS 200

extern char **environ;

struct dns01_spawn {
    uv_process_t proc; /* embedded; data = self */
    uv_pipe_t out[2];  /* stdout and stderr of the child */
    uv_timer_t timer;
    unsigned open_handles;
    unsigned open_pipes; /* still being read */
    bool proc_open, out_open;
    bool exited, eof, ended, timed_out;
    int64_t exit_status;
    int term_signal;
    char obuf[OUTPUT_KEEP + 1]; /* the last OUTPUT_KEEP bytes */
    size_t olen;
    char rbuf[4096];
    char *name; /* owned: argv[0], for messages */
    dns01_spawn_cb cb;
    void *arg;
};

static void spawn_closed(uv_handle_t *h)
{
    struct dns01_spawn *s = h->data;

    if (--s->open_handles > 0)
        return;
    free(s->name);
    free(s);
}

static void close_all(struct dns01_spawn *s)
{
    if (!uv_is_closing((uv_handle_t *)&s->timer))
        uv_close((uv_handle_t *)&s->timer, spawn_closed);
    for (int i = 0; i < 2 && s->out_open; i++)
        if (!uv_is_closing((uv_handle_t *)&s->out[i]))
            uv_close((uv_handle_t *)&s->out[i], spawn_closed);
    if (s->proc_open && !uv_is_closing((uv_handle_t *)&s->proc))
        uv_close((uv_handle_t *)&s->proc, spawn_closed);
}

/* Ends once the child has exited and its output is drained. */
static void maybe_end(struct dns01_spawn *s)
{
    dns01_spawn_cb cb = s->cb;
    int status;

    if (s->ended || !s->exited || !s->eof)
        return;
    s->ended = true;
    s->cb = NULL;
    s->obuf[s->olen] = '\0';
    if (s->timed_out)
        status = ERR_TIMEOUT;
    else if (s->term_signal != 0 || s->exit_status != 0)
        status = ERR_HOOK;
    else
        status = 0;
    if (status != 0)
        log_debug(LOG_CHAL, "dns exec %s: exit %lld signal %d", s->name, (long long)s->exit_status,
                  s->term_signal);
    close_all(s);
    if (cb != NULL)
        cb(status, s->obuf, s->arg);
}

static void timer_fired(uv_timer_t *t);

static void on_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
    struct dns01_spawn *s = p->data;

    s->exited = true;
    s->exit_status = exit_status;
    s->term_signal = term_signal;
    /* Output still in the pipes is read for a moment; a grandchild that
     * keeps them open must not hold us up longer than that. */
    if (!s->eof)
        uv_timer_start(&s->timer, timer_fired, DRAIN_MS, 0);
    maybe_end(s);
}

static void out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct dns01_spawn *s = h->data;

    (void)suggested;
    *b = uv_buf_init(s->rbuf, sizeof(s->rbuf));
}

static void out_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct dns01_spawn *s = st->data;

    if (nread < 0) {
        uv_read_stop(st);
        if (s->open_pipes > 0 && --s->open_pipes == 0)
            s->eof = true;
        maybe_end(s);
        return;
    }
    size_t n = (size_t)nread;
    const char *p = b->base;
    if (n >= OUTPUT_KEEP) {
        p += n - OUTPUT_KEEP;
        n = OUTPUT_KEEP;
    }
    if (s->olen + n > OUTPUT_KEEP) {
        size_t drop = s->olen + n - OUTPUT_KEEP;
        memmove(s->obuf, s->obuf + drop, s->olen - drop);
        s->olen -= drop;
    }
    memcpy(s->obuf + s->olen, p, n);
    s->olen += n;
}

static void timer_fired(uv_timer_t *t)
{
    struct dns01_spawn *s = t->data;

    if (s->exited) {
        for (int i = 0; i < 2; i++)
            uv_read_stop((uv_stream_t *)&s->out[i]);
        s->eof = true;
        maybe_end(s);
        return;
    }
    if (!s->timed_out) {
        s->timed_out = true;
        log_warn(LOG_CHAL, "dns exec %s: timed out, sending SIGTERM", s->name);
        uv_process_kill(&s->proc, SIGTERM);
        uv_timer_start(&s->timer, timer_fired, KILL_GRACE_MS, 0);
        return;
    }
    uv_process_kill(&s->proc, SIGKILL);
}

void dns01_spawn_cancel(struct dns01_spawn *s)
{
    s->cb = NULL;
    if (s->ended)
        return;
    s->ended = true;
    if (!s->exited)
        uv_process_kill(&s->proc, SIGTERM);
    close_all(s);
}

int dns01_spawn_start(uv_loop_t *loop, const char *const *argv, const char *const *env,
                      uint64_t timeout_ms, dns01_spawn_cb cb, void *arg, struct dns01_spawn **out)
{
    struct dns01_spawn *s = xcalloc(1, sizeof(*s));
    uv_process_options_t po;
    uv_stdio_container_t stdio[3];
    char **envp = NULL;
    size_t n_env = 0, n_extra = 0;
    int rc;

    if (argv == NULL || argv[0] == NULL) {
        free(s);
        return -EINVAL;
    }
    s->name = xstrdup(argv[0]);
    s->cb = cb;
    s->arg = arg;
    while (environ[n_env] != NULL)
        n_env++;
    while (env != NULL && env[n_extra] != NULL)
        n_extra++;
    envp = xcalloc(n_env + n_extra + 1, sizeof(*envp));
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++) {
        /* Drop inherited variables that env overrides. */
        const char *eq = strchr(environ[i], '=');
        size_t klen = eq != NULL ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        bool over = false;
        for (size_t j = 0; j < n_extra && !over; j++)
            over = strncmp(env[j], environ[i], klen) == 0 && env[j][klen] == '=';
        if (!over)
            envp[k++] = environ[i];
    }
    for (size_t j = 0; j < n_extra; j++)
        envp[k++] = (char *)env[j];
    envp[k] = NULL;

    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->open_handles = 1;
    for (int i = 0; i < 2; i++) {
        uv_pipe_init(loop, &s->out[i], 0);
        s->out[i].data = s;
        s->open_handles++;
    }
    s->out_open = true;

    memset(&po, 0, sizeof(po));
    memset(stdio, 0, sizeof(stdio));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&s->out[0];
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&s->out[1];
    po.file = argv[0];
    po.args = (char **)argv; /* libuv copies argv and env before returning */
    po.env = envp;
    po.stdio = stdio;
    po.stdio_count = 3;
    po.exit_cb = on_exit_cb;
    s->proc.data = s;
    /* the hook gets its stdio and nothing else of ours (libcurl's sockets,
     * the control socket, the http-01 listener are not all close-on-exec) */
    int crc = fd_cloexec_all();
    if (crc < 0)
        log_warn(LOG_CHAL, "dns exec %s: close-on-exec: %s", s->name, err_str(crc));
    rc = uv_spawn(loop, &s->proc, &po);
    free(envp);
    if (rc < 0) {
        log_error(LOG_CHAL, "dns exec %s: spawn: %s", s->name, uv_strerror(rc));
        s->cb = NULL;
        s->ended = true;
        /* libuv initialises the process handle even when the spawn fails:
         * it must be closed like the others. */
        s->proc_open = true;
        s->open_handles++;
        close_all(s);
        return rc;
    }
    s->proc_open = true;
    s->open_handles++;
    for (int i = 0; i < 2; i++)
        if (uv_read_start((uv_stream_t *)&s->out[i], out_alloc, out_read) == 0)
            s->open_pipes++;
    if (s->open_pipes == 0)
        s->eof = true;
    uv_timer_start(&s->timer, timer_fired, timeout_ms > 0 ? timeout_ms : 60000, 0);
    if (out != NULL)
        *out = s;
    return 0;
}
