/* The state word a certificate shows in `certloop status` and the dates and
 * error shown with it, decided in one place so they cannot contradict each
 * other ("retrying" next to a renewal years away, "valid" next to an error
 * a later success made stale). Pure: the manager gathers the facts. */
#ifndef CERTLOOP_REACTOR_STATUSVIEW_H
#define CERTLOOP_REACTOR_STATUSVIEW_H

#include <stdbool.h>
#include <stdint.h>

enum statusview_phase {
    STATUSVIEW_IDLE,      /* nothing running: the word comes from the facts below */
    STATUSVIEW_QUEUED,    /* due, waiting for a slot */
    STATUSVIEW_ORDERING,  /* key generation or the ACME order */
    STATUSVIEW_STORING,   /* writing the generation */
    STATUSVIEW_DEPLOYING, /* deploy actions */
};

struct statusview_in {
    enum statusview_phase phase;
    bool deploy_waiting;    /* deployed, waiting for the round's reload commands */
    bool deploy_failed;     /* the last failure was a deployment's */
    unsigned failures;      /* consecutive */
    bool retry_scheduled;   /* next_at retries a failure (backoff, the CA's Retry-After, limits) */
    int64_t not_after;      /* of the stored certificate, 0 when none */
    int64_t next_at;        /* the next attempt scheduled, 0 when none */
    const char *last_error; /* borrowed, or NULL */
    int64_t last_error_at, last_success_at;
    bool revoked; /* the stored certificate was revoked (its note) */
};

struct statusview {
    const char *state;      /* static: "due", "ordering", "storing", "deploying", "deploy-failed",
                               "retrying", "no-certificate", "expired", "revoked", "valid" */
    int64_t next_renewal;   /* what to show as the next attempt: now while one runs, else
                               next_at (0: none) */
    const char *last_error; /* in->last_error unless a later success made it stale */
    int64_t last_error_at;  /* 0 with it */
};

/* Decides the word and what goes with it:
 * - a run in progress: its phase ("due", "ordering", "storing", "deploying")
 *   and now as the next attempt; waiting for reload commands: "deploying";
 * - after failures: "deploy-failed" when a deployment failed, "retrying"
 *   only when the next attempt is a retry of that failure; a failure whose
 *   next attempt is the ordinary renewal (a forced renewal that failed while
 *   the certificate is fine) shows the certificate's word;
 * - else "no-certificate", "expired" or "valid" by not_after;
 * - the last error shows unless a success came after it. */
void statusview_decide(const struct statusview_in *in, int64_t now, struct statusview *out);

#endif
