/* The other ACME clients' files as import-certbot and import-lego read them:
 * certbot's configobj renewal files, the names and key types of PEM
 * certificates and keys, a JWK account key as PEM; and the TOML quoting the
 * generated files use. Pure reads and formatting: no run state. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "config/config.h"
#include "reactor/migrate.h"
#include "reactor/migrate_internal.h"
#include "reactor/plan.h"
#include "store/store.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/xalloc.h"

char *migrate_trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    return s;
}

/* 0, or -errno when path cannot be read. */
int migrate_ini_read(const char *path, struct ini *f)
{
    char *text = NULL;
    char *section = xstrdup("");
    int rc = store_read_file(path, &text, NULL);

    memset(f, 0, sizeof(*f));
    if (rc < 0) {
        free(section);
        return rc;
    }
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *s = migrate_trim(line);
        if (*s == '#' || *s == '\0')
            continue;
        if (*s == '[') {
            char *name = s;
            while (*name == '[')
                name++;
            char *end = strchr(name, ']');
            if (end != NULL)
                *end = '\0';
            free(section);
            section = xstrdup(migrate_trim(name));
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        char *val = migrate_trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
            val[vl - 1] = '\0';
            val++;
        }
        f->e = xrealloc(f->e, (f->n + 1) * sizeof(*f->e));
        f->e[f->n].section = xstrdup(section);
        f->e[f->n].key = xstrdup(migrate_trim(s));
        f->e[f->n].val = xstrdup(val);
        f->n++;
    }
    free(section);
    free(text);
    return 0;
}

void migrate_ini_fini(struct ini *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->e[i].section);
        free(f->e[i].key);
        free(f->e[i].val);
    }
    free(f->e);
}

/* The value of key in section, or NULL. Borrowed. */
const char *migrate_ini_get(const struct ini *f, const char *section, const char *key)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->e[i].section, section) == 0 && strcmp(f->e[i].key, key) == 0)
            return f->e[i].val[0] != '\0' ? f->e[i].val : NULL;
    return NULL;
}

/* ---- TOML output */

void migrate_toml_str(struct buf *b, const char *s)
{
    buf_append_str(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            buf_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            buf_printf(b, "\\u%04X", *p);
        else
            buf_append(b, p, 1);
    }
    buf_append_str(b, "\"");
}

void migrate_toml_kv(struct buf *b, const char *key, const char *val)
{
    buf_printf(b, "%s = ", key);
    migrate_toml_str(b, val);
    buf_append_str(b, "\n");
}

/* A table name part: bare when TOML allows it, else quoted ("a.test"
 * would otherwise be two keys). */
void migrate_toml_key(struct buf *b, const char *k)
{
    for (const char *p = k; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-')) {
            migrate_toml_str(b, k);
            return;
        }
    }
    buf_append_str(b, k);
}

/* ---- certificates and keys */

/* The names of the first certificate in the PEM file at path (DNS and IP
 * SANs, in order), as a NULL-terminated owned array; NULL if unreadable. */
char **migrate_cert_names(const char *path, char **why)
{
    FILE *f = fopen(path, "re");
    X509 *x = NULL;
    GENERAL_NAMES *sans = NULL;
    char **names = NULL;
    size_t n = 0;

    if (f == NULL) {
        *why = xasprintf("%s: %s", path, strerror(errno));
        return NULL;
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL) {
        *why = xasprintf("%s: not a PEM certificate", path);
        return NULL;
    }
    sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    names = xcalloc((size_t)sk_GENERAL_NAME_num(sans) + 1, sizeof(*names));
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS) {
            const ASN1_IA5STRING *s = g->d.dNSName;
            names[n++] =
                xstrndup((const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
        } else if (g->type == GEN_IPADD) {
            char ip[INET6_ADDRSTRLEN];
            int len = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
            if ((len == 4 && inet_ntop(AF_INET, d, ip, sizeof(ip)) != NULL) ||
                (len == 16 && inet_ntop(AF_INET6, d, ip, sizeof(ip)) != NULL))
                names[n++] = xstrdup(ip);
        }
    }
    GENERAL_NAMES_free(sans);
    X509_free(x);
    if (n == 0) {
        free(names);
        *why = xasprintf("%s: the certificate names no DNS name or IP address", path);
        return NULL;
    }
    return names;
}

void migrate_names_free(char **names)
{
    for (size_t i = 0; names != NULL && names[i] != NULL; i++)
        free(names[i]);
    free(names);
}

/* certloop's key type for the PEM private key at path; NULL (and *why)
 * when it is unreadable or a type certloop does not make. */
const char *migrate_key_type_of_file(const char *path, char **why)
{
    FILE *f = fopen(path, "re");
    EVP_PKEY *k = f != NULL ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    const char *t = NULL;

    if (f != NULL)
        fclose(f);
    if (k == NULL) {
        *why = xasprintf("%s: not a readable PEM private key", path);
        return NULL;
    }
    if (EVP_PKEY_is_a(k, "RSA")) {
        int bits = EVP_PKEY_get_bits(k);
        t = bits == 2048 ? "rsa2048" : bits == 3072 ? "rsa3072" : bits == 4096 ? "rsa4096" : NULL;
    } else if (EVP_PKEY_is_a(k, "EC")) {
        char group[64] = "";
        EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL);
        t = strcmp(group, "prime256v1") == 0  ? "ec-p256"
            : strcmp(group, "secp384r1") == 0 ? "ec-p384"
                                              : NULL;
    }
    if (t == NULL)
        *why = xasprintf("%s: a key type certloop does not make", path);
    EVP_PKEY_free(k);
    return t;
}

/* certloop's key type for certbot's renewal parameters, else for the key
 * file itself; NULL (and *why) when certloop has no such type. */
const char *migrate_key_type(const struct ini *rc, const char *key_path, char **why)
{
    const char *kt = migrate_ini_get(rc, "renewalparams", "key_type");
    const char *curve = migrate_ini_get(rc, "renewalparams", "elliptic_curve");
    const char *size = migrate_ini_get(rc, "renewalparams", "rsa_key_size");

    if (kt != NULL && strcmp(kt, "ecdsa") == 0) {
        if (curve == NULL || strcmp(curve, "secp256r1") == 0)
            return "ec-p256";
        if (strcmp(curve, "secp384r1") == 0)
            return "ec-p384";
        *why = xasprintf("elliptic_curve = %s (certloop has ec-p256 and ec-p384)", curve);
        return NULL;
    }
    if (kt != NULL && strcmp(kt, "rsa") == 0) {
        if (size == NULL || strcmp(size, "2048") == 0)
            return "rsa2048";
        if (strcmp(size, "3072") == 0)
            return "rsa3072";
        if (strcmp(size, "4096") == 0)
            return "rsa4096";
        *why = xasprintf("rsa_key_size = %s (certloop has 2048, 3072 and 4096)", size);
        return NULL;
    }
    /* older renewal files say nothing: the key in use tells */
    return migrate_key_type_of_file(key_path, why);
}

/* A JWK member as a big number, or NULL. */
static BIGNUM *jwk_bn(const json_t *jwk, const char *member)
{
    const char *s = json_string_value(json_object_get(jwk, member));
    uint8_t *bin = NULL;
    size_t len = 0;
    BIGNUM *bn;

    if (s == NULL || b64url_decode(s, strlen(s), &bin, &len) < 0)
        return NULL;
    bn = BN_bin2bn(bin, (int)len, NULL);
    OPENSSL_clear_free(bin, len);
    return bn;
}

/* k as a PEM PKCS#8 private key (the form certloop stores); owned, or
 * NULL when OpenSSL fails. */
char *migrate_pkey_to_pem(EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;

    if (bio != NULL && PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) == 1) {
        char *data = NULL;
        long len = BIO_get_mem_data(bio, &data);
        pem = xstrndup(data, (size_t)len);
    }
    BIO_free(bio);
    return pem;
}

/* certbot's private_key.json (a JWK, RSA or EC P-256/P-384) as a PEM
 * PKCS#8 private key; owned, NULL if it is none of those. */
char *migrate_jwk_to_pem(const json_t *jwk)
{
    static const char *const rsa_members[] = {"n", "e", "d", "p", "q", "dp", "dq", "qi"};
    static const char *const rsa_params[] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
        OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
        OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bns[8] = {NULL};
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    uint8_t *pub = NULL;
    char *pem = NULL;
    bool ok = bld != NULL && kty != NULL;

    if (ok && strcmp(kty, "RSA") == 0) {
        for (size_t i = 0; ok && i < 8; i++) {
            bns[i] = jwk_bn(jwk, rsa_members[i]);
            ok = bns[i] != NULL && OSSL_PARAM_BLD_push_BN(bld, rsa_params[i], bns[i]) == 1;
        }
        ctx = ok ? EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL) : NULL;
    } else if (ok && strcmp(kty, "EC") == 0) {
        const char *crv = json_string_value(json_object_get(jwk, "crv"));
        const char *group = crv == NULL                 ? NULL
                            : strcmp(crv, "P-256") == 0 ? "prime256v1"
                            : strcmp(crv, "P-384") == 0 ? "secp384r1"
                                                        : NULL;
        size_t flen = group != NULL && strcmp(group, "secp384r1") == 0 ? 48 : 32;
        bns[0] = jwk_bn(jwk, "x");
        bns[1] = jwk_bn(jwk, "y");
        bns[2] = jwk_bn(jwk, "d");
        ok = group != NULL && bns[0] != NULL && bns[1] != NULL && bns[2] != NULL;
        if (ok) {
            pub = xmalloc(1 + 2 * flen);
            pub[0] = 0x04; /* uncompressed point */
            ok = BN_bn2binpad(bns[0], pub + 1, (int)flen) == (int)flen &&
                 BN_bn2binpad(bns[1], pub + 1 + flen, (int)flen) == (int)flen &&
                 OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) == 1 &&
                 OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                                  1 + 2 * flen) == 1 &&
                 OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bns[2]) == 1;
        }
        ctx = ok ? EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL) : NULL;
    } else {
        ok = false;
    }
    params = ok ? OSSL_PARAM_BLD_to_param(bld) : NULL;
    ok = params != NULL && ctx != NULL && EVP_PKEY_fromdata_init(ctx) == 1 &&
         EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) == 1;
    if (ok)
        pem = migrate_pkey_to_pem(pkey);
    ERR_clear_error();
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    for (size_t i = 0; i < 8; i++)
        BN_clear_free(bns[i]);
    free(pub);
    return pem;
}
