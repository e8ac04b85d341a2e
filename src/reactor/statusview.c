/* The status word and what is shown with it (statusview.h). It owns the
 * rules only; the manager gathers the facts and the control socket prints
 * them. */
#include "reactor/statusview.h"

#include <stddef.h>

void statusview_decide(const struct statusview_in *in, int64_t now, struct statusview *out)
{
    static const char *const running[] = {
        [STATUSVIEW_QUEUED] = "due",
        [STATUSVIEW_ORDERING] = "ordering",
        [STATUSVIEW_STORING] = "storing",
        [STATUSVIEW_DEPLOYING] = "deploying",
    };

    out->next_renewal = in->next_at;
    if (in->phase != STATUSVIEW_IDLE) {
        out->state = running[in->phase];
        out->next_renewal = now;
    } else if (in->deploy_waiting) {
        out->state = "deploying";
    } else if (in->failures > 0 && in->deploy_failed) {
        out->state = "deploy-failed";
    } else if (in->failures > 0 && in->retry_scheduled) {
        out->state = "retrying";
    } else if (in->not_after == 0) {
        out->state = "no-certificate";
    } else if (in->not_after <= now) {
        out->state = "expired";
    } else if (in->revoked) {
        out->state = "revoked";
    } else {
        out->state = "valid";
    }
    bool stale = in->last_success_at > 0 && in->last_error_at < in->last_success_at;
    out->last_error = in->last_error != NULL && !stale ? in->last_error : NULL;
    out->last_error_at = out->last_error != NULL ? in->last_error_at : 0;
}
