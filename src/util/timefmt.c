/* UTC time formatting; pure, no loop, no locale beyond strftime's "C". */
#include "util/timefmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

char *timefmt_utc(char *out, size_t n, int64_t t, const char *fmt)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (n == 0)
        return out;
    if ((int64_t)tt != t || gmtime_r(&tt, &tm) == NULL || strftime(out, n, fmt, &tm) == 0)
        snprintf(out, n, "@%" PRId64, t);
    return out;
}
