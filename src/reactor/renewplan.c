/* The renewal decision for one certificate as a pure function over what
 * the manager knows; see renewplan.h. It does not count, fetch or arm
 * anything. */
#include "reactor/renewplan.h"

static const char *policy_reason(const struct sched_decision *d)
{
    switch (d->why) {
    case SCHED_NO_CERT:
        return "no certificate stored";
    case SCHED_NAMES_CHANGED:
        return "the configured names changed";
    case SCHED_KEY_CHANGED:
        return "the key type changed";
    case SCHED_CA_CHANGED:
        return "the CA changed";
    case SCHED_EXPIRED:
        return "the certificate has expired";
    case SCHED_DUE:
    case SCHED_LATER:
        return d->reason != NULL ? d->reason : "renewal time";
    case SCHED_NEVER:
    default:
        return "no CA configured";
    }
}

void renewplan_decide(const struct renewplan_in *in, struct renewplan *out)
{
    const struct sched_decision *d = &in->policy;
    int64_t when;

    if (d->why == SCHED_NEVER) {
        out->when = 0;
        out->why = RENEWPLAN_NEVER;
        out->reason = policy_reason(d);
        return;
    }
    when = d->when;
    out->why = RENEWPLAN_POLICY;
    out->reason = policy_reason(d);
    /* ARI only where the policy is time-driven: a changed configuration
     * or a missing certificate is ordered now anyway */
    if (in->have_ari && (d->why == SCHED_DUE || d->why == SCHED_LATER) && in->ari_at < when) {
        when = in->ari_at;
        out->why = RENEWPLAN_ARI;
        out->reason = "ARI window suggested by the CA";
    }
    if (when < in->now)
        when = in->now;
    if (in->retry_at > when) {
        when = in->retry_at;
        out->why = RENEWPLAN_BACKOFF;
        out->reason = "backoff after a failure";
    }
    if (in->ca_retry_at > when) {
        when = in->ca_retry_at;
        out->why = RENEWPLAN_CA_LIMITED;
        out->reason = "the CA asked to wait (rateLimited, Retry-After)";
    }
    if (in->limits_at > when) {
        when = in->limits_at;
        out->why = RENEWPLAN_LIMITS;
        out->reason = "rate limit: new orders per CA account or failures per name";
    }
    out->when = when;
}
