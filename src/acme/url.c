/* Which URLs a CA may hand out (issue 17): every URL certloop follows
 * after the configured directory (directory resources, the account and
 * order Location, authorizations, challenges, finalize, certificate and
 * alternate chains) must be https on the directory's host and port, unless
 * [ca.NAME] allow_other_hosts says otherwise; plain http only when the
 * directory itself is http on loopback (a local test CA). Pure functions:
 * the client calls them at every place a CA URL is taken up. */
#include "acme/acme.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define URL_SHOW_MAX 200

struct origin {
    bool https;
    char host[256]; /* lowercase, without brackets or a trailing dot */
    unsigned port;
};

/* scheme://host[:port][/...]: no userinfo, no bytes outside printable ASCII
 * or a space anywhere. */
static bool origin_parse(const char *u, size_t len, struct origin *o)
{
    const char *p, *end = u + len;

    for (size_t i = 0; i < len; i++)
        if ((unsigned char)u[i] <= 0x20 || (unsigned char)u[i] >= 0x7f)
            return false;
    if (len >= 8 && strncasecmp(u, "https://", 8) == 0) {
        o->https = true;
        p = u + 8;
    } else if (len >= 7 && strncasecmp(u, "http://", 7) == 0) {
        o->https = false;
        p = u + 7;
    } else {
        return false;
    }
    const char *aend = p;
    while (aend < end && *aend != '/' && *aend != '?' && *aend != '#')
        aend++;
    if (memchr(p, '@', (size_t)(aend - p)) != NULL)
        return false;
    const char *hs = p, *he, *port = NULL;
    if (*p == '[') {
        he = memchr(p, ']', (size_t)(aend - p));
        if (he == NULL)
            return false;
        hs = p + 1;
        if (he + 1 < aend) {
            if (he[1] != ':')
                return false;
            port = he + 2;
        }
    } else {
        he = memchr(p, ':', (size_t)(aend - p));
        if (he != NULL)
            port = he + 1;
        else
            he = aend;
    }
    size_t hl = (size_t)(he - hs);
    if (hl > 0 && hs[hl - 1] == '.')
        hl--;
    if (hl == 0 || hl >= sizeof(o->host))
        return false;
    for (size_t i = 0; i < hl; i++) {
        char c = (char)tolower((unsigned char)hs[i]);
        if (!isalnum((unsigned char)c) && c != '-' && c != '.' && c != '_' &&
            !(c == ':' && *p == '['))
            return false;
        o->host[i] = c;
    }
    o->host[hl] = '\0';
    struct in6_addr a6;
    if (*p == '[' && inet_pton(AF_INET6, o->host, &a6) != 1)
        return false;
    o->port = o->https ? 443 : 80;
    if (port != NULL) {
        unsigned v = 0;
        if (port == aend)
            return false;
        for (const char *q = port; q < aend; q++) {
            if (*q < '0' || *q > '9')
                return false;
            v = v * 10 + (unsigned)(*q - '0');
            if (v > 65535)
                return false;
        }
        if (v == 0)
            return false;
        o->port = v;
    }
    return true;
}

int acme_url_check(const char *directory, bool allow_other_hosts, const char *url, const char *from,
                   char **why)
{
    struct origin d, o;
    char shown[URL_SHOW_MAX + 4];
    const char *reason = NULL;
    char *detail = NULL;
    size_t len = strlen(url);

    if (!origin_parse(directory, strlen(directory), &d))
        reason = "the configured directory URL is not usable";
    else if (!origin_parse(url, len, &o))
        reason = "not an http(s) URL with a host";
    else if (!o.https &&
             !(!d.https && config_host_is_loopback(d.host) && config_host_is_loopback(o.host)))
        reason = d.https ? "not https" : "not https (plain http only on loopback)";
    else if (!allow_other_hosts && (strcmp(o.host, d.host) != 0 || o.port != d.port))
        detail = xasprintf("host %s port %u is not the directory's (%s port %u); "
                           "[ca.NAME] allow_other_hosts = true permits it",
                           o.host, o.port, d.host, d.port);
    if (reason == NULL && detail == NULL)
        return 0;
    log_mask(shown, URL_SHOW_MAX + 1, url, len > URL_SHOW_MAX ? URL_SHOW_MAX : len);
    if (len > URL_SHOW_MAX)
        memcpy(shown + strlen(shown), "...", 4);
    *why = xasprintf("URL %s (%s) refused: %s", shown, from != NULL ? from : "from the CA",
                     detail != NULL ? detail : reason);
    free(detail);
    return ERR_URL_REFUSED;
}

/* ---- pieces of ACME objects (RFC 8555 §7.1.3, §7.1.4) ---- */

#define IDENT_MAX 255
#define WORD_MAX 32

char *acme_authz_identifier(const json_t *authz)
{
    const char *v =
        json_string_value(json_object_get(json_object_get(authz, "identifier"), "value"));
    if (v == NULL)
        return NULL;
    size_t len = strlen(v);
    char *out = xmalloc(IDENT_MAX + 1);
    return log_mask(out, IDENT_MAX + 1, v, len > IDENT_MAX ? IDENT_MAX : len);
}

const json_t *acme_authz_challenge(const json_t *authz, const char *type)
{
    const json_t *chals = json_object_get(authz, "challenges");
    size_t i;
    const json_t *ch;

    json_array_foreach(chals, i, ch)
    {
        const char *t = json_string_value(json_object_get(ch, "type"));
        if (t != NULL && strcmp(t, type) == 0)
            return ch;
    }
    return NULL;
}

char *acme_status_word(const char *status)
{
    char buf[WORD_MAX + 1];

    if (status == NULL)
        return NULL;
    size_t len = strlen(status);
    return xstrdup(log_mask(buf, sizeof(buf), status, len > WORD_MAX ? WORD_MAX : len));
}
