/* ctl-fake: certloop's control socket server with canned handlers, so the
 * CLI (status, renew, reload) can be tested end to end without a CA.
 *   ctl-fake SOCKET
 * Certificates "www" (valid) and "api" (failing); renew accepts those two
 * (and logs "renew NAME force=B deploy_only=B" on stdout), answers 404 for
 * others; reload answers ERR_CONFIG with two error lines while the file
 * SOCKET.invalid exists, else success. Prints "ready" once listening; runs
 * until SIGTERM or SIGINT. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reactor/control.h"
#include "reactor/metrics.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

struct fake {
    struct control *srv;
    const char *path;
    uv_signal_t term, intr;
};

static int f_status(void *arg, json_t **out)
{
    static const char *const www_names[] = {"www.test", "example.test"};
    struct control_cert_status c[] = {
        {.name = "www",
         .state = "valid",
         .domains = www_names,
         .n_domains = 2,
         .ca = "pebble",
         .not_after = 1767225600,
         .next_renewal = 1764633600,
         .reason = "a third of the lifetime remaining"},
        {.name = "api",
         .state = "retrying",
         .ca = "pebble",
         .next_renewal = 1764000000,
         .reason = "no certificate stored",
         .last_error = "name=api.test: authorization invalid: connection refused",
         .consecutive_failures = 3},
    };

    (void)arg;
    *out = control_status_json(c, 2, 1763990000, 1);
    return 0;
}

static int f_renew(void *arg, const char *name, bool force, bool deploy_only, bool new_key,
                   char **err)
{
    (void)arg;
    (void)new_key;
    if (strcmp(name, "www") != 0 && strcmp(name, "api") != 0)
        return -ENOENT;
    printf("renew %s force=%d deploy_only=%d\n", name, force, deploy_only);
    fflush(stdout);
    *err = xstrdup(deploy_only ? "deploy queued" : "renewal queued");
    return 0;
}

static void f_reload(void *arg, control_reply_cb cb, void *cb_arg)
{
    struct fake *f = arg;
    char *flag = xasprintf("%s.invalid", f->path);
    static const char *const lines[] = {
        "/etc/certloop/certloop.toml:3:7: error: certificate.www.key: expected ec-p256, "
        "ec-p384, rsa2048, rsa3072 or rsa4096",
        "/etc/certloop/certloop.toml:9:1: error: ca.x: unknown key 'directry'",
    };

    if (access(flag, F_OK) == 0)
        cb(cb_arg, ERR_CONFIG, NULL, lines, 2);
    else
        cb(cb_arg, 0, "reloaded: 2 certificates", NULL, 0);
    free(flag);
}

static int f_metrics(void *arg, struct buf *out)
{
    struct metrics_cert c[] = {{.name = "www", .not_after = 1767225600}, {.name = "api"}};
    struct metrics_snapshot s = {.certs = c, .n_certs = 2};

    (void)arg;
    return metrics_write(&s, out);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct fake *f = sig->data;

    (void)signum;
    if (f->srv == NULL)
        return;
    control_close(f->srv, NULL, NULL);
    f->srv = NULL;
    uv_close((uv_handle_t *)&f->term, NULL);
    uv_close((uv_handle_t *)&f->intr, NULL);
}

int main(int argc, char **argv)
{
    struct fake f = {0};
    struct control_handlers h = {
        .status = f_status, .renew = f_renew, .reload = f_reload, .metrics = f_metrics, .arg = &f};
    uv_loop_t *loop = uv_default_loop();
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: ctl-fake SOCKET\n");
        return 64;
    }
    log_init();
    signal(SIGPIPE, SIG_IGN); /* as the daemon does: a client may leave early */
    f.path = argv[1];
    struct control_opts o = {.loop = loop, .path = f.path, .h = &h};
    rc = control_open(&o, &f.srv);
    if (rc < 0)
        return 1;
    uv_signal_init(loop, &f.term);
    uv_signal_init(loop, &f.intr);
    f.term.data = f.intr.data = &f;
    uv_signal_start(&f.term, on_signal, SIGTERM);
    uv_signal_start(&f.intr, on_signal, SIGINT);
    printf("ready\n");
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
