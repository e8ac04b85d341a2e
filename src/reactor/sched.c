/* The renewal policy (when and why a certificate is ordered next) and the
 * parsing of what the store remembers about a stored certificate. Pure
 * functions only: no clock, no files, no loop; the manager and `plan` feed
 * them and act on the answer. */
#include "reactor/sched.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme/acme.h"
#include "store/store.h"
#include "util/err.h"
#include "util/xalloc.h"

int sched_renewal_time(const struct cfg_cert *c, int64_t not_before, int64_t not_after,
                       int64_t *when, const char **reason)
{
    int64_t lifetime;

    if (not_after <= not_before)
        return -EINVAL;
    lifetime = not_after - not_before;
    if (c != NULL && c->renew_before_s > 0 && c->renew_before_s < lifetime) {
        *when = not_after - c->renew_before_s;
        *reason = "renew_before";
        return 0;
    }
    if (lifetime <= SCHED_SHORT_LIFETIME_S) {
        *when = not_after - lifetime / 2;
        *reason = "half of the lifetime remaining";
    } else {
        *when = not_after - lifetime / 3;
        *reason = "a third of the lifetime remaining";
    }
    return 0;
}

void sched_meta_fini(struct sched_meta *m)
{
    if (m == NULL)
        return;
    if (m->domains != NULL) {
        for (size_t i = 0; i < m->n_domains; i++)
            free(m->domains[i]);
        free(m->domains);
    }
    free(m->ca);
    free(m->directory);
    free(m->key);
    free(m->profile);
    memset(m, 0, sizeof(*m));
}

static int meta_string(json_t *root, const char *key, char **out)
{
    json_t *v = json_object_get(root, key);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return ERR_PARSE;
    *out = xstrdup(json_string_value(v));
    return 0;
}

int sched_meta_parse(const char *json, size_t len, struct sched_meta *out)
{
    struct sched_meta m = {0};
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    json_t *v;
    int rc = ERR_PARSE;

    if (root == NULL || !json_is_object(root))
        goto out;
    v = json_object_get(root, "domains");
    if (v != NULL) {
        if (!json_is_array(v))
            goto out;
        m.domains = xcalloc(json_array_size(v) + 1, sizeof(char *));
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *d = json_array_get(v, i);
            if (!json_is_string(d))
                goto out;
            m.domains[m.n_domains++] = xstrdup(json_string_value(d));
        }
    }
    if (meta_string(root, "ca", &m.ca) < 0 || meta_string(root, "directory", &m.directory) < 0 ||
        meta_string(root, "key", &m.key) < 0 || meta_string(root, "profile", &m.profile) < 0)
        goto out;
    v = json_object_get(root, "not_before");
    if (!json_is_integer(v))
        goto out;
    m.not_before = (int64_t)json_integer_value(v);
    v = json_object_get(root, "not_after");
    if (!json_is_integer(v))
        goto out;
    m.not_after = (int64_t)json_integer_value(v);
    *out = m;
    memset(&m, 0, sizeof(m));
    rc = 0;
out:
    sched_meta_fini(&m);
    json_decref(root);
    return rc;
}

int sched_meta_from_pem(const char *pem, size_t len, struct sched_meta *out)
{
    struct sched_meta m = {0};
    BIO *bio = NULL;
    X509 *x = NULL;
    GENERAL_NAMES *sans = NULL;
    int rc = ERR_CRYPTO;

    if (len > INT32_MAX)
        return ERR_TOO_BIG;
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        goto out;
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (x == NULL) {
        rc = ERR_PARSE;
        goto out;
    }
    rc = acme_asn1_time_unix(X509_get0_notBefore(x), &m.not_before);
    if (rc < 0)
        goto out;
    rc = acme_asn1_time_unix(X509_get0_notAfter(x), &m.not_after);
    if (rc < 0)
        goto out;
    sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int n = sans != NULL ? sk_GENERAL_NAME_num(sans) : 0;
    m.domains = xcalloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; i < n; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type == GEN_IPADD) {
            /* RFC 8738: the text form config_domain_normalize gives */
            char txt[INET6_ADDRSTRLEN];
            int il = ASN1_STRING_length(gn->d.iPAddress);
            if ((il == 4 || il == 16) &&
                inet_ntop(il == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(gn->d.iPAddress), txt,
                          sizeof(txt)) != NULL)
                m.domains[m.n_domains++] = xstrdup(txt);
            continue;
        }
        if (gn->type != GEN_DNS)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(gn->d.dNSName);
        int dlen = ASN1_STRING_length(gn->d.dNSName);
        char *s = xstrndup((const char *)d, (size_t)dlen);
        for (char *p = s; *p != '\0'; p++) {
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        }
        m.domains[m.n_domains++] = s;
    }
    *out = m;
    memset(&m, 0, sizeof(m));
    rc = 0;
out:
    ERR_clear_error();
    GENERAL_NAMES_free(sans);
    X509_free(x);
    BIO_free(bio);
    sched_meta_fini(&m);
    return rc;
}

static bool has_name(char *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(v[i], name) == 0)
            return true;
    }
    return false;
}

void sched_decide(const struct cfg_cert *c, const struct sched_meta *stored, int64_t now,
                  struct sched_decision *out)
{
    memset(out, 0, sizeof(*out));
    out->when = now;
    if (c->ca == NULL) {
        out->why = SCHED_NEVER;
        out->when = INT64_MAX;
        return;
    }
    if (stored == NULL) {
        out->why = SCHED_NO_CERT;
        return;
    }
    for (size_t i = 0; i < c->domains.n; i++) {
        if (!has_name(stored->domains, stored->n_domains, c->domains.v[i])) {
            out->why = SCHED_NAMES_CHANGED;
            out->missing = c->domains.v[i];
            return;
        }
    }
    if (stored->n_domains != c->domains.n) {
        /* names were removed from the configuration: reissue without them */
        out->why = SCHED_NAMES_CHANGED;
        return;
    }
    if (stored->key != NULL && strcmp(stored->key, config_key_type_name(c->key)) != 0) {
        out->why = SCHED_KEY_CHANGED;
        return;
    }
    if ((stored->directory != NULL && c->ca->directory != NULL &&
         strcmp(stored->directory, c->ca->directory) != 0) ||
        (stored->directory == NULL && stored->ca != NULL && c->ca->name != NULL &&
         strcmp(stored->ca, c->ca->name) != 0)) {
        out->why = SCHED_CA_CHANGED;
        return;
    }
    if (stored->not_after <= now) {
        out->why = SCHED_EXPIRED;
        return;
    }
    int64_t when;
    const char *reason;
    if (sched_renewal_time(c, stored->not_before, stored->not_after, &when, &reason) < 0) {
        /* a nonsensical validity: treat like an expired certificate */
        out->why = SCHED_EXPIRED;
        return;
    }
    out->reason = reason;
    if (when <= now) {
        out->why = SCHED_DUE;
        return;
    }
    out->why = SCHED_LATER;
    out->when = when;
}

void sched_duration_fmt(int64_t s, char *out, size_t n)
{
    static const struct {
        int64_t secs;
        char unit;
    } units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
    size_t off = 0;

    if (n == 0)
        return;
    out[0] = '\0';
    if (s <= 0) {
        snprintf(out, n, "0s");
        return;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && off < n; i++) {
        int64_t q = s / units[i].secs;
        if (q == 0)
            continue;
        s -= q * units[i].secs;
        int w = snprintf(out + off, n - off, "%lld%c", (long long)q, units[i].unit);
        if (w < 0)
            return;
        off += (size_t)w;
    }
}

int64_t sched_jitter_s(const char *name, int64_t not_before, int64_t not_after, int64_t when)
{
    uint64_t h = 1469598103934665603ULL;
    int64_t span = (when - not_before) / 10;

    if (span > SCHED_JITTER_MAX_S)
        span = SCHED_JITTER_MAX_S;
    if (span <= 0)
        return 0;
    for (const char *p = name; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    for (int i = 0; i < 8; i++)
        h = (h ^ (uint8_t)((uint64_t)not_after >> (8 * i))) * 1099511628211ULL;
    return (int64_t)(h % (uint64_t)(span + 1));
}

void sched_decide_jittered(const char *name, const struct cfg_cert *c,
                           const struct sched_meta *stored, int64_t now, struct sched_decision *out)
{
    sched_decide(c, stored, now, out);
    if (stored != NULL && (out->why == SCHED_LATER || out->why == SCHED_DUE)) {
        out->when -= sched_jitter_s(name, stored->not_before, stored->not_after, out->when);
        if (out->why == SCHED_LATER && out->when <= now)
            out->why = SCHED_DUE;
    }
}

int sched_revoked_read(struct store *store, const char *name, const char *generation, char **reason,
                       bool *reissue)
{
    char *text = NULL;
    int rc = store_note_read(store, name, generation, "revoked", &text);

    if (rc < 0)
        return rc;
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    const char *r = json_string_value(json_object_get(j, "reason"));
    if (!json_is_object(j) || r == NULL) {
        json_decref(j);
        return ERR_PARSE;
    }
    *reason = xstrdup(r);
    *reissue = json_is_true(json_object_get(j, "reissue"));
    json_decref(j);
    return 0;
}
