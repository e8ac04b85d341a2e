/* The file-descriptor budget: the process's RLIMIT_NOFILE shared between
 * the connections strangers open (http-01, control, later the API) and what
 * certloop itself needs to do its work (the state store, deploy files, curl
 * and c-ares sockets, hook pipes). Without it a flood of idle connections on
 * the http-01 port could take every descriptor and make storing an issued
 * certificate fail with EMFILE. */
#ifndef CERTLOOP_REACTOR_FDBUDGET_H
#define CERTLOOP_REACTOR_FDBUDGET_H

#include <stdbool.h>

struct fd_budget {
    unsigned limit;   /* the soft RLIMIT_NOFILE in force */
    unsigned reserve; /* kept for certloop's own work (see fd_budget_plan) */
    unsigned http01;  /* http-01 connections open at once */
    unsigned control; /* control connections served at once (each may hold
                       * one more answered with 503: up to 2x descriptors) */
    unsigned api;     /* HTTPS API connections open at once ([api] listen) */
    bool tight;       /* the limit leaves less than the reserve wants */
};

/* Raises the soft RLIMIT_NOFILE to the hard limit (at most 1048576, the
 * kernel's usual nr_open) and returns the soft limit now in force (the old
 * one if raising fails; that failure is logged at warn). */
unsigned fd_budget_raise(void);

/* What the configuration makes certloop hold besides the connections
 * strangers open. The daemon fills it from each snapshot (at start and at
 * every reload), so the caps follow the configuration. */
struct fd_budget_need {
    unsigned max_concurrent_orders;
    unsigned threadpool;     /* fd_budget_threadpool() */
    unsigned listeners;      /* listening sockets: http-01, tls-alpn-01, API addresses */
    unsigned tlsalpn_conns;  /* the tls-alpn-01 responder's connection cap when it
                              * listens (its connections are not capped by the budget) */
    unsigned notify_targets; /* [notify.*]: a delivery in flight each */
};

/* Splits limit between certloop's own work and the connection caps:
 *   reserve = 64 (stdio, epoll, signals, the state lock, the control
 *             socket, the sd_notify socket, inherited sockets)
 *           + 8 per threadpool thread (each store write or deploy file job
 *             holds a temp file, the target and its directory)
 *           + 4 per concurrent order (a curl connection, a c-ares socket, a
 *             hook's pipes, a webhook)
 *           + 1 per listening socket
 *           + the tls-alpn-01 responder's connections
 *           + 1 per notify target
 *   rest    = limit - reserve
 *   http01  = 3/4 of rest (at least 32, at most 65536)
 *   control = 1/16 of rest (at least 4, at most 256; with its 503 overflow
 *             it holds up to 1/8)
 *   api     = 1/16 of rest (at least 4, at most 4096)
 * and the last 1/16 of rest is slack. When the reserve leaves less than 192
 * descriptors, tight is set and the caps take their minimums. Pure: tests
 * call it with any figures. */
void fd_budget_plan(unsigned limit, const struct fd_budget_need *need, struct fd_budget *out);

/* UV_THREADPOOL_SIZE as libuv reads it (default 4, 1..1024). */
unsigned fd_budget_threadpool(void);

#endif
