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
        /* fmt is checked at every call site through the format(strftime)
         * attribute in timefmt.h; gcc still flags the forwarding itself. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    size_t len = (int64_t)tt == t && gmtime_r(&tt, &tm) != NULL ? strftime(out, n, fmt, &tm) : 0;
#pragma GCC diagnostic pop
    if (len == 0)
        snprintf(out, n, "@%" PRId64, t);
    return out;
}
