/* When the next order for one certificate starts, all things considered:
 * the configured policy (sched_decide), the CA's ARI window, backoff after
 * failures, a CA's rateLimited Retry-After, and our own limits (new orders
 * per CA account, failures per name). Pure: the manager gathers the inputs
 * and arms the timer heap at the answer. */
#ifndef CERTLOOP_REACTOR_RENEWPLAN_H
#define CERTLOOP_REACTOR_RENEWPLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "reactor/sched.h"

struct renewplan_in {
    int64_t now;                  /* Unix seconds */
    struct sched_decision policy; /* sched_decide() for the certificate */
    bool have_ari;                /* the CA gave a renewal window for the current cert */
    int64_t ari_at;               /* acme_ari_pick() within it, chosen once per window */
    int64_t retry_at;             /* after a failed order: its time + backoff_delay(); 0: none */
    int64_t ca_retry_at;          /* a CA's rateLimited/Retry-After as a time; 0: none */
    int64_t limits_at;            /* ratelimit_earliest() for the certificate's CA and names */
};

enum renewplan_why {
    RENEWPLAN_NEVER,      /* nothing to order (no CA): when is 0 */
    RENEWPLAN_POLICY,     /* the configured policy decides (incl. "now" reasons) */
    RENEWPLAN_ARI,        /* the CA's ARI window is earlier than the policy */
    RENEWPLAN_BACKOFF,    /* waiting after failures */
    RENEWPLAN_CA_LIMITED, /* the CA said rateLimited, Retry-After */
    RENEWPLAN_LIMITS,     /* our own per-account/per-name limits */
};

struct renewplan {
    int64_t when; /* >= now unless why == RENEWPLAN_NEVER */
    enum renewplan_why why;
    const char *reason; /* static text for status: "no certificate stored", "ARI window
                           suggested by the CA", "backoff after a failure", ... */
};

/* The earliest of policy and ARI (ARI can only bring a renewal forward: the
 * CA asks for it, e.g. before a mass revocation; the operator's policy stays
 * an upper bound), then pushed back by backoff, the CA's Retry-After and
 * our limits, and never before now. A policy "now" for a changed
 * configuration (names, key, CA) or a missing/expired certificate is
 * still subject to backoff and limits. */
void renewplan_decide(const struct renewplan_in *in, struct renewplan *out);

#endif
