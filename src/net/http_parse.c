/* Pure parsers for HTTP response header values the rest of certloop needs:
 * Retry-After (RFC 9110 §10.2.3 and the HTTP-date forms of §5.6.7), Link
 * (RFC 8288) and raw header line splitting. No I/O, no loop, no allocation
 * except the returned URL; everything here is fuzzed. */
#include "net/net.h"
#include "net/net_internal.h"
#include "util/err.h"
#include "util/xalloc.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Waits longer than this are clamped: a CA asking for more than a year is
 * either broken or hostile, and the scheduler retries long before. */
#define RETRY_AFTER_MAX (366LL * 24 * 3600)

static bool is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* RFC 9110 tchar: the characters allowed in a token (header names, rel). */
static bool is_tchar(char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return true;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

int http_header_split(const char *line, size_t len, const char **name, size_t *name_len,
                      const char **value, size_t *value_len)
{
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    const char *colon = memchr(line, ':', len);
    if (colon == NULL || colon == line)
        return ERR_PARSE;
    size_t nlen = (size_t)(colon - line);
    for (size_t i = 0; i < nlen; i++) {
        if (!is_tchar(line[i]))
            return ERR_PARSE;
    }
    const char *v = colon + 1;
    const char *end = line + len;
    while (v < end && is_ows(*v))
        v++;
    while (end > v && is_ows(end[-1]))
        end--;
    *name = line;
    *name_len = nlen;
    *value = v;
    *value_len = (size_t)(end - v);
    return 0;
}

/* ---- Retry-After ---- */

static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const day_names[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const long_day_names[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                              "Thursday", "Friday", "Saturday"};

/* A tiny cursor over a NUL-terminated string; every helper fails (returns
 * false) without consuming anything it did not match. */
struct cur {
    const char *p;
};

static bool lit(struct cur *c, const char *s)
{
    size_t n = strlen(s);
    if (strncmp(c->p, s, n) != 0)
        return false;
    c->p += n;
    return true;
}

/* Exactly `n` digits (n <= 4). */
static bool digits(struct cur *c, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(c->p[i]))
            return false;
        v = v * 10 + (c->p[i] - '0');
    }
    c->p += n;
    *out = v;
    return true;
}

static bool name_in(struct cur *c, const char *const *names, int count, int *out)
{
    for (int i = 0; i < count; i++) {
        if (lit(c, names[i])) {
            *out = i;
            return true;
        }
    }
    return false;
}

/* "HH:MM:SS" */
static bool time_of_day(struct cur *c, struct tm *tm)
{
    int h, m, s;
    if (!digits(c, 2, &h) || !lit(c, ":") || !digits(c, 2, &m) || !lit(c, ":") || !digits(c, 2, &s))
        return false;
    tm->tm_hour = h;
    tm->tm_min = m;
    tm->tm_sec = s;
    return true;
}

static bool is_leap(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static bool date_valid(const struct tm *tm)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year = tm->tm_year + 1900;
    int max = mdays[tm->tm_mon] + (tm->tm_mon == 1 && is_leap(year) ? 1 : 0);

    /* tm_sec 60: a leap second is a valid HTTP-date second (RFC 9110). */
    return year >= 1900 && tm->tm_mday >= 1 && tm->tm_mday <= max && tm->tm_hour <= 23 &&
           tm->tm_min <= 59 && tm->tm_sec <= 60;
}

/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
static bool parse_imf(const char *s, struct tm *tm)
{
    struct cur c = {s};
    int wd, year;
    if (!name_in(&c, day_names, 7, &wd) || !lit(&c, ", ") || !digits(&c, 2, &tm->tm_mday) ||
        !lit(&c, " ") || !name_in(&c, month_names, 12, &tm->tm_mon) || !lit(&c, " ") ||
        !digits(&c, 4, &year) || !lit(&c, " ") || !time_of_day(&c, tm) || !lit(&c, " GMT"))
        return false;
    tm->tm_year = year - 1900;
    return *c.p == '\0';
}

/* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT". The two-digit year is the
 * most recent one in the past with those digits unless that is more than 50
 * years ago (RFC 9110 §5.6.7). */
static bool parse_rfc850(const char *s, struct tm *tm, int now_year)
{
    struct cur c = {s};
    int wd, yy;
    if (!name_in(&c, long_day_names, 7, &wd) || !lit(&c, ", ") || !digits(&c, 2, &tm->tm_mday) ||
        !lit(&c, "-") || !name_in(&c, month_names, 12, &tm->tm_mon) || !lit(&c, "-") ||
        !digits(&c, 2, &yy) || !lit(&c, " ") || !time_of_day(&c, tm) || !lit(&c, " GMT"))
        return false;
    int year = now_year - now_year % 100 + yy;
    if (year > now_year + 50)
        year -= 100;
    tm->tm_year = year - 1900;
    return *c.p == '\0';
}

/* asctime: "Sun Nov  6 08:49:37 1994" (day padded with a space). */
static bool parse_asctime(const char *s, struct tm *tm)
{
    struct cur c = {s};
    int wd, year;
    if (!name_in(&c, day_names, 7, &wd) || !lit(&c, " ") ||
        !name_in(&c, month_names, 12, &tm->tm_mon) || !lit(&c, " "))
        return false;
    if (c.p[0] == ' ' && is_digit(c.p[1])) {
        tm->tm_mday = c.p[1] - '0';
        c.p += 2;
    } else if (!digits(&c, 2, &tm->tm_mday)) {
        return false;
    }
    if (!lit(&c, " ") || !time_of_day(&c, tm) || !lit(&c, " ") || !digits(&c, 4, &year))
        return false;
    tm->tm_year = year - 1900;
    return *c.p == '\0';
}

int64_t http_retry_after_parse(const char *value, int64_t now)
{
    char tmp[64];

    if (value == NULL)
        return -1;
    while (is_ows(*value))
        value++;
    size_t len = strlen(value);
    while (len > 0 && is_ows(value[len - 1]))
        len--;
    if (len == 0 || len >= sizeof(tmp))
        return -1;
    memcpy(tmp, value, len);
    tmp[len] = '\0';

    /* delta-seconds: 1*DIGIT */
    if (is_digit(tmp[0])) {
        int64_t v = 0;
        for (size_t i = 0; i < len; i++) {
            if (!is_digit(tmp[i]))
                return -1;
            if (v < RETRY_AFTER_MAX)
                v = v * 10 + (tmp[i] - '0');
        }
        return v > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : v;
    }

    struct tm now_tm;
    time_t now_t = (time_t)now;
    if (gmtime_r(&now_t, &now_tm) == NULL)
        return -1;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!parse_imf(tmp, &tm) && !parse_rfc850(tmp, &tm, now_tm.tm_year + 1900) &&
        !parse_asctime(tmp, &tm))
        return -1;
    if (!date_valid(&tm))
        return -1;
    time_t when = timegm(&tm);
    if (when == (time_t)-1)
        return -1;
    int64_t delta = (int64_t)when - now;
    if (delta < 0)
        return 0;
    return delta > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : delta;
}

/* ---- Link (RFC 8288 §3) ----
 *   Link       = #link-value
 *   link-value = "<" URI-Reference ">" *( OWS ";" OWS link-param )
 *   link-param = token BWS [ "=" BWS ( token / quoted-string ) ]
 * rel holds one or more space-separated relation types, compared
 * case-insensitively (§2.1.1). */

static void skip_ows(const char **p)
{
    while (is_ows(**p))
        (*p)++;
}

/* Parses a token or quoted-string value at *p; the unescaped value goes to
 * out (size n, truncated values are reported as not matching by the caller
 * via *truncated). Returns false on malformed input. */
static bool param_value(const char **p, char *out, size_t n, bool *truncated)
{
    size_t o = 0;
    const char *s = *p;

    *truncated = false;
    if (*s == '"') {
        s++;
        for (;;) {
            char ch = *s;
            if (ch == '\0')
                return false;
            if (ch == '"') {
                s++;
                break;
            }
            if (ch == '\\') {
                s++;
                ch = *s;
                if (ch == '\0')
                    return false;
            }
            if (o + 1 < n)
                out[o++] = ch;
            else
                *truncated = true;
            s++;
        }
    } else {
        if (!is_tchar(*s))
            return false;
        while (is_tchar(*s)) {
            if (o + 1 < n)
                out[o++] = *s;
            else
                *truncated = true;
            s++;
        }
    }
    out[o] = '\0';
    *p = s;
    return true;
}

/* True if the space-separated list `rels` contains `want` (ASCII case-insensitive). */
static bool rel_list_has(const char *rels, const char *want)
{
    size_t wlen = strlen(want);
    const char *p = rels;

    while (*p != '\0') {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *start = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
        if ((size_t)(p - start) == wlen && wlen > 0 && strncasecmp(start, want, wlen) == 0)
            return true;
    }
    return false;
}

char *http_link_url(const char *link_value, const char *rel)
{
    char val[256];
    char pname[32];
    const char *p = link_value;

    if (link_value == NULL || rel == NULL)
        return NULL;
    for (;;) {
        while (is_ows(*p) || *p == ',')
            p++;
        if (*p == '\0')
            return NULL;
        if (*p != '<')
            return NULL;
        const char *url = ++p;
        const char *gt = strchr(url, '>');
        if (gt == NULL)
            return NULL;
        size_t url_len = (size_t)(gt - url);
        p = gt + 1;
        bool match = false;
        bool rel_seen = false;
        for (;;) {
            skip_ows(&p);
            if (*p != ';')
                break;
            p++;
            skip_ows(&p);
            size_t nl = 0;
            bool ntrunc = false;
            while (is_tchar(*p)) {
                if (nl + 1 < sizeof(pname))
                    pname[nl++] = *p;
                else
                    ntrunc = true;
                p++;
            }
            pname[nl] = '\0';
            if (nl == 0)
                return NULL;
            skip_ows(&p);
            if (*p != '=')
                continue; /* a parameter without a value */
            p++;
            skip_ows(&p);
            bool vtrunc;
            if (!param_value(&p, val, sizeof(val), &vtrunc))
                return NULL;
            /* Only the first rel parameter counts (RFC 8288 §3.3). */
            if (!ntrunc && strcasecmp(pname, "rel") == 0 && !rel_seen) {
                rel_seen = true;
                match = !vtrunc && rel_list_has(val, rel);
            }
        }
        if (*p != ',' && *p != '\0')
            return NULL;
        if (match) {
            for (size_t i = 0; i < url_len; i++) {
                if ((unsigned char)url[i] <= ' ')
                    return NULL; /* no whitespace or controls inside a URI */
            }
            return xstrndup(url, url_len);
        }
    }
}

const char *http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}
