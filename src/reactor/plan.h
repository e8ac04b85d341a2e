/* The offline subcommands of the CLI: `certloop check` and `certloop plan`.
 * They read the configuration (and, for plan, the state directory) and
 * print; they never start the loop, take the state lock or write. */
#ifndef CERTLOOP_REACTOR_PLAN_H
#define CERTLOOP_REACTOR_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"

/* sysexits.h values used by the CLI */
#define EXIT_USAGE 64
#define EXIT_UNAVAILABLE 69
#define EXIT_TEMPFAIL 75
#define EXIT_CONFIG 78

/* Loads the configuration at path. On failure prints every diagnostic line
 * (or one line naming the unreadable file) to err and returns EXIT_CONFIG;
 * on success sets *out (owned reference) and returns 0. */
int plan_load_config(const char *path, FILE *err, struct config **out);

/* What check adds to a load: the TSIG key files parsed (errors), then the
 * warnings (an import without ca, a dns-persist-01 persist_until that has
 * passed or soon will). Each printed to err as one
 * "FILE:LINE:COL: error|warning: ..." line; returns the number of errors. */
size_t plan_check_more(const struct config *cfg, FILE *err);

/* `certloop check`: prints "PATH: OK: N certificates, N CAs, N DNS solvers,
 * N files" to out and returns 0, or prints the errors to err and returns
 * EXIT_CONFIG. */
int plan_check(const char *path, FILE *out, FILE *err);

/* `certloop plan`: for each certificate of cfg (or only the n named ones;
 * an unknown name is reported to err and EXIT_USAGE returned before
 * anything is printed) prints its names, CA, key, challenge, deploy actions,
 * the stored certificate's expiry (read from cfg's state directory) and when
 * and why it will next be ordered, judged at time now. Returns 0. */
int plan_show(const struct config *cfg, char *const *names, size_t n, int64_t now, FILE *out,
              FILE *err);

#endif
