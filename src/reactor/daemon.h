/* `certloop run`: the daemon's life on the loop. Loads the configuration,
 * takes the state lock, starts the manager, and reacts to signals (SIGHUP
 * reload, SIGTERM/SIGINT graceful stop) while telling systemd what it does
 * over $NOTIFY_SOCKET. */
#ifndef CERTLOOP_REACTOR_DAEMON_H
#define CERTLOOP_REACTOR_DAEMON_H

#include <stdbool.h>

struct config;

struct daemon_opts {
    const char *config_path; /* borrowed */
    bool once;               /* issue/renew what is due, then exit */
    struct config *cfg;      /* borrowed: a snapshot to use instead of loading config_path
                              * (a reference is taken; `renew --dry-run`'s), or NULL */
};

/* Runs until a graceful stop (or, with once, until all due work ended) and
 * returns the process exit status: 0 clean stop / all orders succeeded,
 * 1 some order failed (once), 75 state directory locked by another
 * process, 73 state directory unusable, 78 invalid configuration. */
int daemon_run(const struct daemon_opts *o);

#endif
