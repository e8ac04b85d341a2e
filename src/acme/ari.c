/* ACME Renewal Information (RFC 9773) as pure functions: parsing a
 * renewalInfo response, picking the renewal time inside the suggested
 * window, and deciding when to ask again. Fetching it (a plain GET of
 * renewalInfo/CERTID) and acting on it belong to the manager. */
#include "acme/acme.h"

#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "util/err.h"
#include "util/xalloc.h"

#define ARI_URL_MAX 2048

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (years 0..9999). */
static int64_t days_from_civil(int y, int m, int d)
{
    static const int before[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    int64_t yy = (int64_t)y - 1;
    /* days in the years 1..y-1, then shift the epoch from 0001-01-01 */
    int64_t days = yy * 365 + yy / 4 - yy / 100 + yy / 400;

    days += before[m - 1] + (m > 2 && leap(y) ? 1 : 0) + (d - 1);
    return days - 719162; /* 0001-01-01 .. 1970-01-01 */
}

int acme_rfc3339_parse(const char *s, size_t len, int64_t *unix_s, int64_t *unix_ms)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, oh = 0, om = 0;
    size_t i = 19;
    int ms = 0;
    int sign = 0;

    /* YYYY-MM-DDTHH:MM:SS is 19 bytes, then [.frac] and Z or +hh:mm */
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return ERR_PARSE;
    if (digits(s, 4, &y) < 0 || digits(s + 5, 2, &mo) < 0 || digits(s + 8, 2, &d) < 0 ||
        digits(s + 11, 2, &h) < 0 || digits(s + 14, 2, &mi) < 0 || digits(s + 17, 2, &sec) < 0)
        return ERR_PARSE;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60)
        return ERR_PARSE;
    if (d > mdays[mo - 1] + (mo == 2 && leap(y) ? 1 : 0))
        return ERR_PARSE;
    if (s[i] == '.') {
        size_t start = ++i;
        int scale = 100;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            ms += (s[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == start)
            return ERR_PARSE;
    }
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        sign = s[i] == '+' ? 1 : -1;
        if (len - i < 6 || s[i + 3] != ':' || digits(s + i + 1, 2, &oh) < 0 ||
            digits(s + i + 4, 2, &om) < 0 || oh > 23 || om > 59)
            return ERR_PARSE;
        i += 6;
    } else {
        return ERR_PARSE;
    }
    if (i != len)
        return ERR_PARSE;
    /* a leap second (sec 60) simply counts as the next second */
    int64_t t = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + mi * 60 + sec;
    t -= sign * ((int64_t)oh * 3600 + om * 60);
    if (unix_s != NULL)
        *unix_s = t;
    if (unix_ms != NULL)
        *unix_ms = t * 1000 + ms;
    return 0;
}

static int time_member(const json_t *win, const char *key, int64_t *s, int64_t *ms)
{
    const json_t *v = json_object_get(win, key);

    if (!json_is_string(v))
        return ERR_PARSE;
    return acme_rfc3339_parse(json_string_value(v), json_string_length(v), s, ms);
}

static bool printable_url(const char *s, size_t len)
{
    if (len == 0 || len > ARI_URL_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    }
    return true;
}

int acme_ari_parse(const char *json, size_t len, struct acme_ari_info *out)
{
    json_t *root = json_loadb(json, len, 0, NULL);
    struct acme_ari_info ai = {0};
    int64_t start_ms, end_ms;
    const json_t *win, *url;
    int rc = ERR_PARSE;

    if (!json_is_object(root))
        goto out;
    win = json_object_get(root, "suggestedWindow");
    if (!json_is_object(win))
        goto out;
    if (time_member(win, "start", &ai.start, &start_ms) < 0 ||
        time_member(win, "end", &ai.end, &end_ms) < 0)
        goto out;
    if (end_ms <= start_ms)
        goto out;
    /* a window shorter than a second ends in the second it starts: one
     * second, so that end > start holds in whole seconds too (found by
     * fuzz_acme_json) */
    if (ai.end <= ai.start)
        ai.end = ai.start + 1;
    url = json_object_get(root, "explanationURL");
    if (url != NULL) {
        if (!json_is_string(url) || !printable_url(json_string_value(url), json_string_length(url)))
            goto out;
        ai.explanation_url = xstrdup(json_string_value(url));
    }
    *out = ai;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

void acme_ari_info_fini(struct acme_ari_info *ai)
{
    if (ai == NULL)
        return;
    free(ai->explanation_url);
    ai->explanation_url = NULL;
}

int64_t acme_ari_pick(const struct acme_ari_info *ai, int64_t now, uint64_t rnd)
{
    int64_t t = ai->start;

    if (ai->end > ai->start)
        t += (int64_t)(rnd % (uint64_t)(ai->end - ai->start));
    return t < now ? now : t;
}

int64_t acme_ari_next_poll(const char *retry_after, int64_t now)
{
    int64_t d = retry_after != NULL ? http_retry_after_parse(retry_after, now) : -1;

    if (d < 0)
        d = ACME_ARI_POLL_DEFAULT_S;
    if (d < ACME_ARI_POLL_MIN_S)
        d = ACME_ARI_POLL_MIN_S;
    if (d > ACME_ARI_POLL_MAX_S)
        d = ACME_ARI_POLL_MAX_S;
    return now + d;
}
