/* `certloop test NAME`'s pure CAA helpers (RFC 8659, RFC 8657): CAA
 * records parsed from RDATA and from a DNS answer, issue/issuewild values
 * and their parameters, and whether they let the CA issue. No I/O. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/net.h"
#include "reactor/preflight.h"

/* ---- pure helpers ---- */

int pf_caa_parse_rdata(const uint8_t *rd, size_t len, struct pf_caa *out)
{
    size_t tl, vl;

    if (len < 2)
        return -EBADMSG;
    tl = rd[1];
    if (tl == 0 || tl > PF_CAA_TAG_MAX || 2 + tl > len)
        return -EBADMSG;
    for (size_t i = 0; i < tl; i++) {
        uint8_t ch = rd[2 + i];
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum)
            return -EBADMSG;
        out->tag[i] = (char)ch;
    }
    out->tag[tl] = '\0';
    out->flags = rd[0];
    vl = len - 2 - tl;
    if (memchr(rd + 2 + tl, '\0', vl) != NULL)
        return -EBADMSG;
    if (vl > PF_CAA_VALUE_MAX)
        vl = PF_CAA_VALUE_MAX;
    memcpy(out->value, rd + 2 + tl, vl);
    out->value[vl] = '\0';
    return 0;
}

static unsigned be16(const uint8_t *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

/* Skips a (possibly compressed) name at *off. 0 or -EBADMSG. */
static int skip_name(const uint8_t *msg, size_t len, size_t *off)
{
    for (int labels = 0; labels < 128; labels++) {
        uint8_t c;
        if (*off >= len)
            return -EBADMSG;
        c = msg[*off];
        if (c == 0) {
            *off += 1;
            return 0;
        }
        if ((c & 0xC0) == 0xC0) {
            if (*off + 2 > len)
                return -EBADMSG;
            *off += 2;
            return 0;
        }
        if ((c & 0xC0) != 0)
            return -EBADMSG;
        *off += 1 + (size_t)c;
    }
    return -EBADMSG;
}

int pf_caa_from_msg(const uint8_t *msg, size_t len, struct pf_caa *out, size_t max)
{
    size_t off = 12;
    unsigned qd, an;
    int found = 0;

    if (len < 12)
        return -EBADMSG;
    qd = be16(msg + 4);
    an = be16(msg + 6);
    for (unsigned i = 0; i < qd; i++) {
        if (skip_name(msg, len, &off) != 0 || off + 4 > len)
            return -EBADMSG;
        off += 4;
    }
    for (unsigned i = 0; i < an; i++) {
        unsigned type, rdlen;
        if (skip_name(msg, len, &off) != 0 || off + 10 > len)
            return -EBADMSG;
        type = be16(msg + off);
        rdlen = be16(msg + off + 8);
        off += 10;
        if (off + rdlen > len)
            return -EBADMSG;
        if (type == DNS_T_CAA) {
            struct pf_caa tmp;
            if (pf_caa_parse_rdata(msg + off, rdlen, (size_t)found < max ? &out[found] : &tmp) != 0)
                return -EBADMSG;
            found++;
        }
        off += rdlen;
    }
    return found;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

void pf_caa_issuer_domain(const char *value, char *dom, size_t cap)
{
    const char *s = value, *e;
    size_t n;

    while (is_space(*s))
        s++;
    e = s;
    while (*e != '\0' && *e != ';' && !is_space(*e))
        e++;
    n = (size_t)(e - s);
    if (cap == 0)
        return;
    if (n >= cap)
        n = cap - 1;
    memcpy(dom, s, n);
    dom[n] = '\0';
}

static void set_why(const char **why, const char *s)
{
    if (why != NULL)
        *why = s;
}

bool pf_caa_param(const char *value, const char *key, char *out, size_t cap)
{
    const char *s = strchr(value, ';');
    size_t kl = strlen(key);

    while (s != NULL) {
        s++;
        while (is_space(*s))
            s++;
        const char *k = s;
        while (*s != '\0' && *s != '=' && *s != ';' && !is_space(*s))
            s++;
        size_t l = (size_t)(s - k);
        while (is_space(*s))
            s++;
        if (*s != '=') {
            s = strchr(s, ';');
            continue;
        }
        s++;
        while (is_space(*s))
            s++;
        const char *v = s;
        while (*s != '\0' && *s != ';' && !is_space(*s))
            s++;
        size_t vl = (size_t)(s - v);
        if (l == kl && strncasecmp(k, key, kl) == 0) {
            if (vl >= cap)
                return false;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return true;
        }
        s = strchr(s, ';');
    }
    return false;
}

/* RFC 8657 §3, §4: the parameters of one property that names the CA. */
static bool rfc8657_ok(const char *value, const char *account_url, const char *method,
                       const char **why)
{
    char p[PF_CAA_VALUE_MAX + 1];

    if (pf_caa_param(value, "accounturi", p, sizeof(p)) &&
        (account_url == NULL || strcmp(p, account_url) != 0)) {
        set_why(why, account_url == NULL
                         ? "the property naming the CA has an accounturi, and there is no "
                           "account yet (the first order registers one)"
                         : "the property naming the CA has an accounturi of another account");
        return false;
    }
    if (pf_caa_param(value, "validationmethods", p, sizeof(p))) {
        bool found = false;
        for (char *save = NULL, *m = strtok_r(p, ",", &save); m != NULL;
             m = strtok_r(NULL, ",", &save))
            if (method != NULL && strcmp(m, method) == 0)
                found = true;
        if (!found) {
            set_why(why, "the property naming the CA has validationmethods without the "
                         "challenge in use");
            return false;
        }
    }
    return true;
}

bool pf_caa_permits(const struct pf_caa *rrs, size_t n, bool wildcard, const char *const *ids,
                    size_t nids, const char **why)
{
    return pf_caa_permits_rfc8657(rrs, n, wildcard, ids, nids, NULL, NULL, why);
}

bool pf_caa_permits_rfc8657(const struct pf_caa *rrs, size_t n, bool wildcard,
                            const char *const *ids, size_t nids, const char *account_url,
                            const char *method, const char **why)
{
    const char *tag = "issue";
    bool any = false, check = method != NULL;
    const char *refused = NULL;

    for (size_t i = 0; i < n; i++) {
        bool known = strcasecmp(rrs[i].tag, "issue") == 0 ||
                     strcasecmp(rrs[i].tag, "issuewild") == 0 ||
                     strcasecmp(rrs[i].tag, "iodef") == 0;
        if ((rrs[i].flags & 0x80) != 0 && !known) {
            set_why(why, "a critical CAA property this checker does not know forbids issuance");
            return false;
        }
        if (wildcard && strcasecmp(rrs[i].tag, "issuewild") == 0)
            tag = "issuewild";
    }
    for (size_t i = 0; i < n; i++) {
        char dom[256];
        if (strcasecmp(rrs[i].tag, tag) != 0)
            continue;
        any = true;
        pf_caa_issuer_domain(rrs[i].value, dom, sizeof(dom));
        for (size_t j = 0; j < nids && dom[0] != '\0'; j++) {
            if (strcasecmp(dom, ids[j]) == 0) {
                if (check && !rfc8657_ok(rrs[i].value, account_url, method, &refused))
                    break;
                set_why(why, wildcard && strcmp(tag, "issuewild") == 0
                                 ? "an issuewild property names the CA"
                                 : "an issue property names the CA");
                return true;
            }
        }
    }
    if (refused != NULL) {
        set_why(why, refused);
        return false;
    }
    if (!any) {
        set_why(why, wildcard ? "CAA records without issue/issuewild properties (not restricted)"
                              : "CAA records without issue properties (not restricted)");
        return true;
    }
    set_why(why, strcmp(tag, "issuewild") == 0 ? "no issuewild property names the CA"
                                               : "no issue property names the CA");
    return false;
}
