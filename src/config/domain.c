/* Domain names as written in `domains`: syntax checks, case folding, and
 * RFC 3492 punycode so internationalised names become A-labels. It does not
 * implement full IDNA2008/UTS 46 mapping (no NFC normalisation, case folding
 * only for Latin, Greek and Cyrillic); names outside that are passed on as
 * written and left for the CA to judge. */
#include "config/config.h"
#include "config/config_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

/* RFC 3492 section 5: the parameter values for IDNA. */
enum {
    PC_BASE = 36,
    PC_TMIN = 1,
    PC_TMAX = 26,
    PC_SKEW = 38,
    PC_DAMP = 700,
    PC_INITIAL_BIAS = 72,
    PC_INITIAL_N = 128,
};

#define LABEL_MAX 63
#define NAME_MAX_LEN 253

/* RFC 3492 section 6.1: bias adaptation after each delta. */
static uint32_t pc_adapt(uint32_t delta, uint32_t numpoints, bool first)
{
    uint32_t k = 0;

    delta = first ? delta / PC_DAMP : delta / 2;
    delta += delta / numpoints;
    while (delta > ((PC_BASE - PC_TMIN) * PC_TMAX) / 2) {
        delta /= PC_BASE - PC_TMIN;
        k += PC_BASE;
    }
    return k + ((PC_BASE - PC_TMIN + 1) * delta) / (delta + PC_SKEW);
}

static uint32_t pc_threshold(uint32_t k, uint32_t bias)
{
    if (k <= bias)
        return PC_TMIN;
    if (k >= bias + PC_TMAX)
        return PC_TMAX;
    return k - bias;
}

static char pc_digit(uint32_t d)
{
    return d < 26 ? (char)('a' + d) : (char)('0' + (d - 26));
}

/* Returns the digit value of c, or PC_BASE if c is not a digit. */
static uint32_t pc_value(char c)
{
    if (c >= 'a' && c <= 'z')
        return (uint32_t)(c - 'a');
    if (c >= 'A' && c <= 'Z')
        return (uint32_t)(c - 'A');
    if (c >= '0' && c <= '9')
        return (uint32_t)(c - '0') + 26;
    return PC_BASE;
}

int config_punycode_encode(const uint32_t *cp, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    uint32_t basic = 0;

    if (n > UINT32_MAX / 2)
        return -1;
    for (size_t j = 0; j < n; j++) {
        if (cp[j] < 0x80) {
            if (o + 1 >= cap)
                return -1;
            out[o++] = (char)cp[j];
            basic++;
        }
    }
    if (basic > 0) {
        if (o + 1 >= cap)
            return -1;
        out[o++] = '-';
    }

    uint32_t next = PC_INITIAL_N, delta = 0, bias = PC_INITIAL_BIAS, h = basic;
    while (h < n) {
        uint32_t m = UINT32_MAX;
        for (size_t j = 0; j < n; j++) {
            if (cp[j] >= next && cp[j] < m)
                m = cp[j];
        }
        if ((uint64_t)(m - next) * (h + 1) > UINT32_MAX - delta)
            return -1;
        delta += (m - next) * (h + 1);
        next = m;
        for (size_t j = 0; j < n; j++) {
            if (cp[j] < next) {
                if (delta == UINT32_MAX)
                    return -1;
                delta++;
            }
            if (cp[j] != next)
                continue;
            uint32_t q = delta;
            for (uint32_t k = PC_BASE;; k += PC_BASE) {
                uint32_t t = pc_threshold(k, bias);
                if (q < t)
                    break;
                if (o + 1 >= cap)
                    return -1;
                out[o++] = pc_digit(t + (q - t) % (PC_BASE - t));
                q = (q - t) / (PC_BASE - t);
            }
            if (o + 1 >= cap)
                return -1;
            out[o++] = pc_digit(q);
            bias = pc_adapt(delta, h + 1, h == basic);
            delta = 0;
            h++;
        }
        delta++;
        next++;
    }
    if (cap == 0)
        return -1;
    out[o] = '\0';
    return (int)o;
}

int config_punycode_decode(const char *in, size_t len, uint32_t *out, size_t cap)
{
    size_t b = 0, nout = 0, pos;

    for (size_t j = 0; j < len; j++) {
        if (in[j] == '-')
            b = j;
    }
    /* Everything before the last delimiter is copied as basic code points. */
    for (size_t j = 0; j < b; j++) {
        if ((unsigned char)in[j] >= 0x80 || nout >= cap)
            return -1;
        out[nout++] = (unsigned char)in[j];
    }
    pos = b > 0 ? b + 1 : 0;

    uint32_t n = PC_INITIAL_N, i = 0, bias = PC_INITIAL_BIAS;
    while (pos < len) {
        uint32_t oldi = i, w = 1;
        for (uint32_t k = PC_BASE;; k += PC_BASE) {
            if (pos >= len)
                return -1;
            uint32_t digit = pc_value(in[pos++]);
            if (digit >= PC_BASE)
                return -1;
            if (digit > (UINT32_MAX - i) / w)
                return -1;
            i += digit * w;
            uint32_t t = pc_threshold(k, bias);
            if (digit < t)
                break;
            if (w > UINT32_MAX / (PC_BASE - t))
                return -1;
            w *= PC_BASE - t;
        }
        uint32_t count = (uint32_t)nout + 1;
        bias = pc_adapt(i - oldi, count, oldi == 0);
        if (i / count > UINT32_MAX - n)
            return -1;
        n += i / count;
        i %= count;
        if (n < 0x80 || n > 0x10FFFF || (n >= 0xD800 && n <= 0xDFFF))
            return -1;
        if (nout >= cap)
            return -1;
        memmove(out + i + 1, out + i, (nout - i) * sizeof(*out));
        out[i] = n;
        nout++;
        i++;
    }
    return (int)nout;
}

int config_utf8_decode(const char *s, size_t len, uint32_t *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;

    for (size_t j = 0; j < len;) {
        uint32_t c = p[j], min;
        int more;

        if (c < 0x80) {
            more = 0;
            min = 0;
        } else if ((c & 0xE0) == 0xC0) {
            more = 1;
            c &= 0x1F;
            min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            more = 2;
            c &= 0x0F;
            min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            more = 3;
            c &= 0x07;
            min = 0x10000;
        } else {
            return -1;
        }
        if ((size_t)more > len - j - 1)
            return -1;
        for (int k = 1; k <= more; k++) {
            if ((p[j + (size_t)k] & 0xC0) != 0x80)
                return -1;
            c = (c << 6) | (p[j + (size_t)k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return -1;
        if (n >= cap)
            return -1;
        out[n++] = c;
        j += (size_t)more + 1;
    }
    return (int)n;
}

/* Simple lower-case mapping for the scripts where it is common in names. */
static uint32_t fold(uint32_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c + 32;
    if (c < 0xC0)
        return c;
    if (c <= 0xDE && c != 0xD7)
        return c + 32;
    if (c >= 0x100 && c <= 0x137)
        return c | 1;
    if (c >= 0x139 && c <= 0x148 && (c & 1))
        return c + 1;
    if (c >= 0x14A && c <= 0x177)
        return c | 1;
    if (c == 0x178)
        return 0xFF;
    if (c >= 0x179 && c <= 0x17E && (c & 1))
        return c + 1;
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2)
        return c + 32;
    if (c == 0x386)
        return 0x3AC;
    if (c >= 0x388 && c <= 0x38A)
        return c + 37;
    if (c == 0x38C)
        return 0x3CC;
    if (c == 0x38E || c == 0x38F)
        return c + 63;
    if (c >= 0x410 && c <= 0x42F)
        return c + 32;
    if (c >= 0x400 && c <= 0x40F)
        return c + 80;
    return c;
}

static bool is_ldh(uint32_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Code points never valid in a host name label, whatever the script:
 * controls, spaces, invisible formatting, private use. */
static bool cp_allowed(uint32_t c)
{
    if (c < 0x80)
        return is_ldh(c);
    if (c <= 0xA0 || c == 0xAD)
        return false;
    if ((c >= 0x2000 && c <= 0x206F) || c == 0x3000 || (c >= 0xFE00 && c <= 0xFE0F))
        return false;
    if (c == 0xFEFF || (c >= 0xFFF0 && c <= 0xFFFF) || (c >= 0xE000 && c <= 0xF8FF))
        return false;
    if (c >= 0xE0000)
        return false;
    return true;
}

static bool is_separator(uint32_t c)
{
    /* UTS 46 maps the ideographic and fullwidth full stops to '.'. */
    return c == '.' || c == 0x3002 || c == 0xFF0E || c == 0xFF61;
}

static void describe_cp(uint32_t c, char *buf, size_t cap)
{
    if (c > 0x20 && c < 0x7F)
        snprintf(buf, cap, "'%c'", (char)c);
    else
        snprintf(buf, cap, "U+%04X", (unsigned)c);
}

static void label_str(const uint32_t *cp, size_t n, char *buf, size_t cap)
{
    size_t o = 0;

    for (size_t j = 0; j < n && o + 8 < cap; j++) {
        uint32_t c = cp[j];
        if (c >= 0x20 && c < 0x7F) {
            buf[o++] = (char)c;
        } else if (c < 0x80) {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02X", (unsigned)c);
        } else if (c < 0x800) {
            buf[o++] = (char)(0xC0 | (c >> 6));
            buf[o++] = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            buf[o++] = (char)(0xE0 | (c >> 12));
            buf[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            buf[o++] = (char)(0x80 | (c & 0x3F));
        } else {
            buf[o++] = (char)(0xF0 | (c >> 18));
            buf[o++] = (char)(0x80 | ((c >> 12) & 0x3F));
            buf[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            buf[o++] = (char)(0x80 | (c & 0x3F));
        }
    }
    buf[o] = '\0';
}

/* Checks an ASCII label that claims to be an A-label ("xn--…"): it must
 * decode, hold at least one non-ASCII code point, only allowed lower-case
 * code points, and re-encode to exactly the same text. */
static bool alabel_valid(const char *lab, size_t len)
{
    uint32_t cps[LABEL_MAX + 1];
    char again[LABEL_MAX + 2];
    bool nonascii = false;

    int n = config_punycode_decode(lab + 4, len - 4, cps, LABEL_MAX + 1);
    if (n <= 0)
        return false;
    for (int j = 0; j < n; j++) {
        if (cps[j] >= 0x80)
            nonascii = true;
        if (!cp_allowed(cps[j]) || fold(cps[j]) != cps[j])
            return false;
    }
    if (!nonascii)
        return false;
    int m = config_punycode_encode(cps, (size_t)n, again, sizeof(again));
    return m == (int)(len - 4) && memcmp(again, lab + 4, len - 4) == 0;
}

bool config_name_is_ip(const char *s)
{
    unsigned char a[16];

    return s != NULL && (inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1);
}

/* An IPv4 or IPv6 literal as RFC 8738 §3 wants it in an ip identifier:
 * dotted quad, and for IPv6 the RFC 5952 text form (what inet_ntop
 * writes). NULL if in is no address literal. */
static char *ip_canonical(const char *in, size_t len)
{
    char tmp[INET6_ADDRSTRLEN + 1], out[INET6_ADDRSTRLEN];
    unsigned char a[16];

    if (len == 0 || len >= sizeof(tmp))
        return NULL;
    memcpy(tmp, in, len);
    tmp[len] = '\0';
    if (inet_pton(AF_INET, tmp, a) == 1)
        return inet_ntop(AF_INET, a, out, sizeof(out)) != NULL ? xstrdup(out) : NULL;
    if (inet_pton(AF_INET6, tmp, a) == 1)
        return inet_ntop(AF_INET6, a, out, sizeof(out)) != NULL ? xstrdup(out) : NULL;
    return NULL;
}

int config_domain_normalize(const char *in, size_t len, char **out, char *why, size_t why_cap)
{
    char name[NAME_MAX_LEN + 1 + 70];
    char what[16], shown[200];
    size_t o = 0, n, start;
    uint32_t *cp = NULL;
    int rc = -EINVAL;

    char *ip = ip_canonical(in, len);
    if (ip != NULL) {
        *out = ip; /* an ip identifier (RFC 8738) */
        return 0;
    }
    cp = xcalloc(len + 1, sizeof(*cp));
    int r = config_utf8_decode(in, len, cp, len + 1);
    if (r < 0) {
        snprintf(why, why_cap, "not valid UTF-8");
        goto out;
    }
    n = (size_t)r;
    for (size_t j = 0; j < n; j++) {
        cp[j] = fold(cp[j]);
        if (is_separator(cp[j]))
            cp[j] = '.';
    }
    if (n > 0 && cp[n - 1] == '.')
        n--;
    if (n == 0) {
        snprintf(why, why_cap, "empty name");
        goto out;
    }
    label_str(cp, n, shown, sizeof(shown));

    start = 0;
    for (size_t label = 0; start <= n; label++) {
        size_t end = start;
        bool ascii = true, star = false;

        while (end < n && cp[end] != '.') {
            if (cp[end] >= 0x80)
                ascii = false;
            if (cp[end] == '*')
                star = true;
            end++;
        }
        size_t ln = end - start;
        const uint32_t *lab = cp + start;

        if (ln == 0) {
            snprintf(why, why_cap, "empty label in \"%s\"", shown);
            goto out;
        }
        if (star) {
            if (ln != 1 || label != 0 || end == n) {
                snprintf(why, why_cap,
                         "'*' is allowed only as the whole leftmost label (\"*.example.org\"), "
                         "not in \"%s\"",
                         shown);
                goto out;
            }
            name[o++] = '*';
        } else {
            for (size_t j = 0; j < ln; j++) {
                if (!cp_allowed(lab[j])) {
                    describe_cp(lab[j], what, sizeof(what));
                    snprintf(why, why_cap, "invalid character %s in \"%s\"", what, shown);
                    goto out;
                }
            }
            if (lab[0] == '-' || lab[ln - 1] == '-') {
                char l[200];
                label_str(lab, ln, l, sizeof(l));
                snprintf(why, why_cap, "label \"%s\" %s with a hyphen", l,
                         lab[0] == '-' ? "starts" : "ends");
                goto out;
            }
            if (ascii) {
                if (ln > LABEL_MAX) {
                    snprintf(why, why_cap, "a label of \"%s\" is longer than 63 characters", shown);
                    goto out;
                }
                for (size_t j = 0; j < ln; j++)
                    name[o + j] = (char)lab[j];
                if (ln >= 4 && memcmp(name + o, "xn--", 4) == 0 && !alabel_valid(name + o, ln)) {
                    char l[80];
                    label_str(lab, ln, l, sizeof(l));
                    snprintf(why, why_cap, "\"%s\" is not a valid punycode label", l);
                    goto out;
                }
                o += ln;
            } else {
                char enc[LABEL_MAX + 2];
                int m = config_punycode_encode(lab, ln, enc, LABEL_MAX - 4 + 1); /* + NUL */
                if (m < 0) {
                    snprintf(why, why_cap,
                             "a label of \"%s\" is longer than 63 characters in punycode", shown);
                    goto out;
                }
                memcpy(name + o, "xn--", 4);
                memcpy(name + o + 4, enc, (size_t)m);
                o += 4 + (size_t)m;
            }
        }
        if (o > NAME_MAX_LEN) {
            snprintf(why, why_cap, "\"%s\" is longer than 253 characters", shown);
            goto out;
        }
        if (end == n)
            break;
        name[o++] = '.';
        start = end + 1;
    }
    name[o] = '\0';
    *out = xstrndup(name, o);
    rc = 0;
out:
    free(cp);
    return rc;
}

unsigned config_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned row[65];

    if (la > 64 || lb > 64)
        return 100;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            char ca = a[i - 1], cb = b[j - 1];
            if (ca >= 'A' && ca <= 'Z')
                ca = (char)(ca + 32);
            if (cb >= 'A' && cb <= 'Z')
                cb = (char)(cb + 32);
            unsigned best = diag + (ca == cb ? 0 : 1);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = row[j];
            row[j] = best;
        }
    }
    return row[lb];
}
