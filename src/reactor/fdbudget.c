/* The file-descriptor budget: raising the soft RLIMIT_NOFILE and sizing the
 * connection caps from what it allows. It sets no cap itself: the daemon
 * hands the figures to the http-01 listener and the control socket. */
#include "reactor/fdbudget.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "util/err.h"
#include "util/log.h"

#define NR_OPEN_MAX 1048576u /* the kernel's default fs.nr_open */

#define RESERVE_BASE 64u
#define RESERVE_PER_THREAD 8u
#define RESERVE_PER_ORDER 4u
#define REST_MIN 192u
#define HTTP01_MIN 32u
#define HTTP01_MAX 65536u
#define CONTROL_MIN 4u
#define CONTROL_MAX 256u
#define API_MIN 4u
#define API_MAX 4096u

unsigned fd_budget_raise(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        log_warn(LOG_MAIN, "getrlimit(RLIMIT_NOFILE): %s", err_str(-errno));
        return 1024;
    }
    rlim_t want = rl.rlim_max;
    if (want == RLIM_INFINITY || want > NR_OPEN_MAX)
        want = NR_OPEN_MAX;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        struct rlimit nrl = {.rlim_cur = want, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nrl) == 0)
            rl.rlim_cur = want;
        else
            log_warn(LOG_MAIN, "raising the open file limit from %llu to %llu: %s",
                     (unsigned long long)rl.rlim_cur, (unsigned long long)want, err_str(-errno));
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > NR_OPEN_MAX)
        return NR_OPEN_MAX;
    return (unsigned)rl.rlim_cur;
}

unsigned fd_budget_threadpool(void)
{
    const char *v = getenv("UV_THREADPOOL_SIZE");
    unsigned long n = 4;

    if (v != NULL && *v != '\0') {
        char *end;
        n = strtoul(v, &end, 10);
        if (*end != '\0' || n == 0)
            n = 4; /* libuv ignores what it cannot parse too */
    }
    return n > 1024 ? 1024 : (unsigned)n;
}

static unsigned clamp(unsigned v, unsigned lo, unsigned hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void fd_budget_plan(unsigned limit, const struct fd_budget_need *need, struct fd_budget *out)
{
    unsigned long long reserve =
        RESERVE_BASE + (unsigned long long)RESERVE_PER_THREAD * need->threadpool +
        (unsigned long long)RESERVE_PER_ORDER * need->max_concurrent_orders + need->listeners +
        need->tlsalpn_conns + need->notify_targets;
    unsigned long long rest = limit > reserve ? limit - reserve : 0;

    memset(out, 0, sizeof(*out));
    out->limit = limit;
    out->reserve = reserve > limit ? limit : (unsigned)reserve;
    out->tight = rest < REST_MIN;
    if (out->tight) {
        out->http01 = HTTP01_MIN;
        out->control = CONTROL_MIN;
        out->api = API_MIN;
        return;
    }
    out->http01 = clamp(rest * 3 / 4 > HTTP01_MAX ? HTTP01_MAX : (unsigned)(rest * 3 / 4),
                        HTTP01_MIN, HTTP01_MAX);
    out->control = clamp(rest / 16 > CONTROL_MAX ? CONTROL_MAX : (unsigned)(rest / 16), CONTROL_MIN,
                         CONTROL_MAX);
    out->api = clamp(rest / 16 > API_MAX ? API_MAX : (unsigned)(rest / 16), API_MIN, API_MAX);
}
