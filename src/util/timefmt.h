/* UTC time formatting shared by logs, state files, events and the CLI. */
#ifndef CERTLOOP_UTIL_TIMEFMT_H
#define CERTLOOP_UTIL_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* RFC 3339 in UTC with a Z, whole seconds: "2027-01-03T10:00:00Z". */
#define TIMEFMT_RFC3339 "%Y-%m-%dT%H:%M:%SZ"
#define TIMEFMT_DATE "%Y-%m-%d"

/* Formats unix time t in UTC with strftime's fmt into out (size n > 0).
 * A time that gmtime_r cannot represent, or a result that does not fit,
 * is written as "@T" (the raw seconds) instead. Returns out. */
char *timefmt_utc(char *out, size_t n, int64_t t, const char *fmt)
    __attribute__((format(strftime, 4, 0)));

#endif
