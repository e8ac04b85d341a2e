/* The TOML parser's numbers, dates and times (TOML 1.0 "Integer", "Float",
 * "Offset Date-Time" ... "Local Time"): syntax and range checks of one
 * scalar value. */
#include "config/toml_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/xalloc.h"

/* ---------- numbers, dates and times ---------- */

/* Digits with single underscores between them, starting at s[i]. Returns the
 * end index, or (size_t)-1 if the underscore rule is broken or no digit. */
static size_t digit_run(const uint8_t *s, size_t i, size_t end, int base)
{
    size_t start = i;
    bool prev_digit = false;

    while (i < end) {
        uint8_t c = s[i];
        bool ok = base == 16 ? toml_hexval(c) >= 0 : (c >= '0' && c < '0' + base);
        if (ok) {
            prev_digit = true;
        } else if (c == '_') {
            if (!prev_digit || i + 1 >= end)
                return (size_t)-1;
            uint8_t n = s[i + 1];
            bool nok = base == 16 ? toml_hexval(n) >= 0 : (n >= '0' && n < '0' + base);
            if (!nok)
                return (size_t)-1;
            prev_digit = false;
        } else {
            break;
        }
        i++;
    }
    if (i == start)
        return (size_t)-1;
    return i;
}

int toml_parse_number(struct parser *p, struct toml_value *v)
{
    size_t start = p->off;
    size_t end = start;
    const uint8_t *s = p->s;
    char d[48];

    while (end < p->len && (is_bare(s[end]) || s[end] == '.' || s[end] == '+'))
        end++;
    size_t tlen = end - start;
    size_t i = start;
    bool neg = false;

    if (s[i] == '+' || s[i] == '-') {
        neg = s[i] == '-';
        i++;
    }
    /* inf and nan */
    if (end - i == 3 && (memcmp(s + i, "inf", 3) == 0 || memcmp(s + i, "nan", 3) == 0)) {
        v->type = TOML_FLOAT;
        if (s[i] == 'i')
            v->u.f = neg ? -INFINITY : INFINITY;
        else
            v->u.f = neg ? -NAN : NAN;
        p->off = end;
        return 0;
    }
    if (i >= end || !is_digit(s[i]))
        return toml_fail(p, start, "expected a value, found %s",
                         toml_describe(p, start, d, sizeof(d)));
    /* prefixed integers */
    if (s[i] == '0' && i + 1 < end && (s[i + 1] == 'x' || s[i + 1] == 'o' || s[i + 1] == 'b')) {
        int base = s[i + 1] == 'x' ? 16 : s[i + 1] == 'o' ? 8 : 2;
        if (i != start)
            return toml_fail(p, start,
                             "a sign is not allowed on hexadecimal, octal or binary integers");
        size_t e = digit_run(s, i + 2, end, base);
        if (e == (size_t)-1 || e != end)
            return toml_fail(p, start, "invalid %s integer '%.*s'",
                             base == 16  ? "hexadecimal"
                             : base == 8 ? "octal"
                                         : "binary",
                             (int)(tlen > 40 ? 40 : tlen), (const char *)s + start);
        uint64_t acc = 0;
        for (size_t k = i + 2; k < end; k++) {
            if (s[k] == '_')
                continue;
            uint64_t dv = (uint64_t)toml_hexval(s[k]);
            if (acc > (INT64_MAX - dv) / (uint64_t)base)
                return toml_fail(p, start, "integer out of range (64-bit)");
            acc = acc * (uint64_t)base + dv;
        }
        v->type = TOML_INTEGER;
        v->u.i = (int64_t)acc;
        p->off = end;
        return 0;
    }
    size_t ie = digit_run(s, i, end, 10);
    if (ie == (size_t)-1)
        goto bad;
    bool is_float = false;
    size_t k = ie;
    if (k < end && s[k] == '.') {
        size_t fe = digit_run(s, k + 1, end, 10);
        if (fe == (size_t)-1)
            goto bad;
        k = fe;
        is_float = true;
    }
    if (k < end && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < end && (s[k] == '+' || s[k] == '-'))
            k++;
        size_t ee = digit_run(s, k, end, 10);
        if (ee == (size_t)-1)
            goto bad;
        k = ee;
        is_float = true;
    }
    if (k != end)
        goto bad;
    if (s[i] == '0' && ie > i + 1)
        return toml_fail(p, start, "leading zeros are not allowed in '%.*s'",
                         (int)(tlen > 40 ? 40 : tlen), (const char *)s + start);
    if (is_float) {
        p->slen = 0;
        for (size_t m = start; m < end; m++) {
            if (s[m] != '_')
                toml_sbuf_putc(p, (char)s[m]);
        }
        p->sbuf[p->slen] = '\0';
        char *ep;
        errno = 0;
        double f = strtod(p->sbuf, &ep);
        if (*ep != '\0')
            goto bad;
        if (errno == ERANGE && isinf(f))
            return toml_fail(p, start, "float out of range '%.*s'", (int)(tlen > 40 ? 40 : tlen),
                             (const char *)s + start);
        v->type = TOML_FLOAT;
        v->u.f = f;
        p->off = end;
        return 0;
    }
    uint64_t acc = 0;
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t m = i; m < end; m++) {
        if (s[m] == '_')
            continue;
        uint64_t dv = (uint64_t)(s[m] - '0');
        if (acc > (lim - dv) / 10)
            return toml_fail(p, start, "integer out of range (64-bit)");
        acc = acc * 10 + dv;
    }
    v->type = TOML_INTEGER;
    v->u.i = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    p->off = end;
    return 0;
bad:
    return toml_fail(p, start, "invalid number '%.*s'", (int)(tlen > 40 ? 40 : tlen),
                     (const char *)s + start);
}

/* n fixed digits at s[off]; -1 if any is not a digit. */
int toml_fixed_digits(const struct parser *p, size_t off, int n)
{
    int v = 0;

    if (off + (size_t)n > p->len)
        return -1;
    for (int i = 0; i < n; i++) {
        if (!is_digit(p->s[off + (size_t)i]))
            return -1;
        v = v * 10 + (p->s[off + (size_t)i] - '0');
    }
    return v;
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

/* HH:MM:SS[.frac] at p->off. */
static int parse_time(struct parser *p, struct toml_datetime *dt)
{
    size_t start = p->off;
    int h = toml_fixed_digits(p, start, 2);
    int mi = toml_fixed_digits(p, start + 3, 2);
    int se = toml_fixed_digits(p, start + 6, 2);

    if (h < 0 || !at(p, start + 2, ':') || mi < 0)
        return toml_fail(p, start, "invalid time: expected HH:MM:SS");
    if (!at(p, start + 5, ':') || se < 0)
        return toml_fail(p, start, "invalid time: seconds are required (HH:MM:SS)");
    if (h > 23)
        return toml_fail(p, start, "invalid time: hour %02d out of range", h);
    if (mi > 59)
        return toml_fail(p, start + 3, "invalid time: minute %02d out of range", mi);
    if (se > 60)
        return toml_fail(p, start + 6, "invalid time: second %02d out of range", se);
    dt->hour = h;
    dt->minute = mi;
    dt->second = se;
    p->off = start + 8;
    if (at(p, p->off, '.')) {
        size_t f = p->off + 1;
        int nd = 0, ns = 0;
        while (f < p->len && is_digit(p->s[f])) {
            if (nd < 9)
                ns = ns * 10 + (p->s[f] - '0');
            nd++;
            f++;
        }
        if (nd == 0)
            return toml_fail(p, p->off, "invalid time: digits must follow the decimal point");
        for (int k = nd; k < 9; k++)
            ns *= 10;
        dt->nanosecond = ns;
        dt->frac_digits = nd;
        p->off = f;
    }
    return 0;
}

int toml_parse_datetime(struct parser *p, struct toml_value *v)
{
    size_t start = p->off;
    struct toml_datetime dt;

    memset(&dt, 0, sizeof(dt));
    if (at(p, start + 2, ':')) {
        int rc = parse_time(p, &dt);
        if (rc < 0)
            return rc;
        v->type = TOML_TIME_LOCAL;
        v->u.dt = dt;
        return 0;
    }
    int y = toml_fixed_digits(p, start, 4);
    int mo = toml_fixed_digits(p, start + 5, 2);
    int da = toml_fixed_digits(p, start + 8, 2);
    if (y < 0 || !at(p, start + 4, '-') || mo < 0 || !at(p, start + 7, '-') || da < 0)
        return toml_fail(p, start, "invalid date: expected YYYY-MM-DD");
    if (mo < 1 || mo > 12)
        return toml_fail(p, start + 5, "invalid date: month %02d out of range", mo);
    if (da < 1 || da > days_in_month(y, mo))
        return toml_fail(p, start + 8, "invalid date: day %02d out of range for %04d-%02d", da, y,
                         mo);
    dt.year = y;
    dt.month = mo;
    dt.day = da;
    p->off = start + 10;
    bool has_time = false;
    if (at(p, p->off, 'T') || at(p, p->off, 't')) {
        has_time = true;
    } else if (at(p, p->off, ' ') && p->off + 1 < p->len && is_digit(p->s[p->off + 1])) {
        has_time = true;
    }
    if (!has_time) {
        v->type = TOML_DATE_LOCAL;
        v->u.dt = dt;
        return 0;
    }
    p->off++;
    int rc = parse_time(p, &dt);
    if (rc < 0)
        return rc;
    if (at(p, p->off, 'Z') || at(p, p->off, 'z')) {
        dt.offset_z = true;
        p->off++;
        v->type = TOML_DATETIME;
    } else if (at(p, p->off, '+') || at(p, p->off, '-')) {
        size_t o = p->off;
        int oh = toml_fixed_digits(p, o + 1, 2);
        int om = toml_fixed_digits(p, o + 4, 2);
        if (oh < 0 || !at(p, o + 3, ':') || om < 0)
            return toml_fail(p, o, "invalid offset: expected +HH:MM or -HH:MM");
        if (oh > 23 || om > 59)
            return toml_fail(p, o, "invalid offset: %02d:%02d out of range", oh, om);
        dt.offset_minutes = (oh * 60 + om) * (p->s[o] == '-' ? -1 : 1);
        p->off = o + 6;
        v->type = TOML_DATETIME;
    } else {
        v->type = TOML_DATETIME_LOCAL;
    }
    v->u.dt = dt;
    return 0;
}
