/* CSRs for finalize, and what we need to know about issued chains: strict
 * PEM splitting, validity, issuer, SANs, whether the leaf matches our key
 * and the ARI CertID (RFC 9773). Pure functions; the CA's chain is untrusted
 * input and is rejected on anything but clean CERTIFICATE blocks. */
#include "acme/acme.h"

#include <arpa/inet.h>
#include "acme/crypto_internal.h"
#include "util/b64.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Longer chains than this are not something a CA sends. */
#define CHAIN_MAX_CERTS 16
/* RFC 1035: a name is at most 253 characters in text form. */
#define NAME_MAX_LEN 253

static bool name_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

/* An EC key's SubjectPublicKeyInfo put together from its named curve and
 * encoded point, as X509_PUBKEY_set would encode it, without OpenSSL 3's
 * encoder and decoder lookups (about 2 M instructions, several times a
 * signature). 1 on success, 0 on an OpenSSL failure, -1 when the key is not
 * an EC key on a named curve (the caller takes the general way). */
static int ec_spki_set(X509_PUBKEY *pk, EVP_PKEY *key)
{
    char group[64];
    unsigned char point[1 + 2 * 66]; /* uncompressed, up to P-521 */
    size_t plen = 0;

    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
        return -1;
    int curve = NID_undef;
    if (EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) == 1 &&
        EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                        sizeof(point), &plen) == 1)
        curve = OBJ_txt2nid(group);
    if (curve == NID_undef) {
        ERR_clear_error(); /* e.g. explicit curve parameters */
        return -1;
    }
    unsigned char *enc = OPENSSL_memdup(point, plen);
    if (enc == NULL)
        return 0;
    if (X509_PUBKEY_set0_param(pk, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
                               OBJ_nid2obj(curve), enc, (int)plen) != 1) {
        OPENSSL_free(enc);
        return 0;
    }
    return 1;
}

/* The CSR's SubjectPublicKeyInfo (ec_spki_set for EC keys). 1 on success,
 * like OpenSSL. */
static int csr_set_pubkey(X509_REQ *req, EVP_PKEY *key)
{
    int rc = ec_spki_set(X509_REQ_get_X509_PUBKEY(req), key);

    return rc >= 0 ? rc : X509_REQ_set_pubkey(req, key);
}

/* Subject left empty: RFC 8555 §7.4 puts the names in the SAN extension, and
 * the CN would be limited to 64 characters anyway. */
int acme_csr_build(EVP_PKEY *key, const char *const *domains, size_t n, char **b64url_der)
{
    X509_REQ *req = NULL;
    GENERAL_NAMES *gens = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    uint8_t *der = NULL;
    int rc = ERR_CRYPTO;

    if (key == NULL || n == 0) {
        log_error(LOG_ACME, "csr: no names");
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!name_ok(domains[i])) {
            log_error(LOG_ACME, "csr: invalid name #%zu", i);
            return -EINVAL;
        }
    }
    req = X509_REQ_new();
    gens = sk_GENERAL_NAME_new_null();
    if (req == NULL || gens == NULL || X509_REQ_set_version(req, 0) != 1 ||
        csr_set_pubkey(req, key) != 1)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (config_name_is_ip(domains[i])) {
            /* RFC 8738 §3: an ip identifier is an iPAddress SAN */
            GENERAL_NAME *g = GENERAL_NAME_new();
            ASN1_OCTET_STRING *ip = a2i_IPADDRESS(domains[i]);
            if (g == NULL || ip == NULL) {
                GENERAL_NAME_free(g);
                ASN1_OCTET_STRING_free(ip);
                goto fail;
            }
            GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
            if (sk_GENERAL_NAME_push(gens, g) <= 0) {
                GENERAL_NAME_free(g);
                goto fail;
            }
            continue;
        }
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
        if (g == NULL || ia5 == NULL ||
            ASN1_STRING_set(ia5, domains[i], (int)strlen(domains[i])) != 1) {
            GENERAL_NAME_free(g);
            ASN1_IA5STRING_free(ia5);
            goto fail;
        }
        GENERAL_NAME_set0_value(g, GEN_DNS, ia5);
        if (sk_GENERAL_NAME_push(gens, g) <= 0) {
            GENERAL_NAME_free(g);
            goto fail;
        }
    }
    if (X509V3_add1_i2d(&exts, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
        goto fail;
    if (X509_REQ_add_extensions(req, exts) != 1)
        goto fail;
    if (X509_REQ_sign(req, key, EVP_sha256()) <= 0)
        goto fail;
    int derlen = i2d_X509_REQ(req, &der);
    if (derlen <= 0)
        goto fail;
    *b64url_der = b64url_encode(der, (size_t)derlen);
    rc = 0;
    goto out;
fail:
    rc = acme_ossl_error(domains[0], "csr", true);
out:
    OPENSSL_free(der);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(gens);
    X509_REQ_free(req);
    return rc;
}

/* ---- chains ------------------------------------------------------------- */

static const char pem_begin[] = "-----BEGIN CERTIFICATE-----";
static const char pem_end[] = "-----END CERTIFICATE-----";

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *find(const char *p, const char *end, const char *needle)
{
    size_t nl = strlen(needle);

    if (nl == 0 || (size_t)(end - p) < nl)
        return NULL;
    return memmem(p, (size_t)(end - p), needle, nl);
}

static bool is_b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=' || is_space(c);
}

/* The library context certificates from a CA are parsed in: it holds only
 * OpenSSL's "null" provider. d2i_X509 decodes the public key of every
 * certificate on the spot, and OpenSSL 3 builds a provider decoder context
 * for that each time (1.2 M instructions, more than the rest of a chain's
 * handling: issue 16's profile); here it finds no decoder, so the key stays
 * encoded (X509_get0_pubkey answers NULL) and the parse costs a twelfth.
 * Nothing we do with these certificates needs the decoded key: names,
 * dates, serial, extensions and the PEM re-encoding read the ASN.1, and
 * acme_chain_matches_key compares the encoded key. NULL if the context
 * cannot be made: then the default one is used. */
static OSSL_LIB_CTX *parse_libctx;
static pthread_once_t parse_libctx_once = PTHREAD_ONCE_INIT;

static void parse_libctx_make(void)
{
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();

    if (ctx != NULL && OSSL_PROVIDER_load(ctx, "null") == NULL) {
        OSSL_LIB_CTX_free(ctx);
        ctx = NULL;
    }
    ERR_clear_error();
    parse_libctx = ctx;
}

/* DER → X509, requiring the whole buffer to be one certificate. */
static X509 *der_to_x509(const uint8_t *der, size_t len)
{
    if (len == 0 || len > LONG_MAX)
        return NULL;
    pthread_once(&parse_libctx_once, parse_libctx_make);
    const uint8_t *p = der;
    X509 *x =
        (X509 *)ASN1_item_d2i_ex(NULL, &p, (long)len, ASN1_ITEM_rptr(X509), parse_libctx, NULL);
    if (x != NULL && p != der + len) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static char *x509_to_pem(X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    char *out = NULL;

    if (bio != NULL && PEM_write_bio_X509(bio, x) == 1) {
        long n = BIO_get_mem_data(bio, &data);
        if (n > 0)
            out = xstrndup(data, (size_t)n);
    }
    BIO_free(bio);
    return out;
}

int acme_asn1_time_unix(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return ERR_PARSE;
    /* tm came from a valid ASN1_TIME, so every value timegm returns
     * (including -1 for 1969-12-31T23:59:59) is the real instant. */
    *out = (int64_t)timegm(&tm);
    return 0;
}

/* A copy of an untrusted ASN.1 text with non-printable bytes masked. */
static char *masked_copy(const unsigned char *data, int len)
{
    char *s = xmalloc((size_t)len + 1);
    for (int i = 0; i < len; i++)
        s[i] = (data[i] >= 0x20 && data[i] < 0x7f) ? (char)data[i] : '.';
    s[len] = '\0';
    return s;
}

static char *issuer_cn(X509 *x)
{
    const X509_NAME *name = X509_get_issuer_name(x);
    int idx = name != NULL ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;

    if (idx < 0)
        return xstrdup("");
    const ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char *utf8 = NULL;
    int n = d != NULL ? ASN1_STRING_to_UTF8(&utf8, d) : -1;
    if (n < 0) {
        ERR_clear_error();
        return xstrdup("");
    }
    char *s = masked_copy(utf8, n);
    OPENSSL_free(utf8);
    return s;
}

static char *serial_hex(X509 *x)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    char *out = NULL;

    if (hex != NULL) {
        out = xstrdup(hex);
        for (char *p = out; *p != '\0'; p++)
            if (*p >= 'A' && *p <= 'F')
                *p = (char)(*p - 'A' + 'a');
    }
    OPENSSL_free(hex);
    BN_free(bn);
    return out;
}

static void leaf_sans(X509 *x, struct acme_chain *c)
{
    int crit = 0;
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);

    if (gens == NULL) {
        ERR_clear_error(); /* absent or duplicated: no SANs we trust */
        return;
    }
    int n = sk_GENERAL_NAME_num(gens);
    c->sans = xcalloc(n > 0 ? (size_t)n : 1, sizeof(char *));
    for (int i = 0; i < n; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        int type = 0;
        const ASN1_STRING *s = GENERAL_NAME_get0_value(g, &type);
        if ((type != GEN_DNS && type != GEN_IPADD) || s == NULL)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(s);
        int len = ASN1_STRING_length(s);
        if (type == GEN_IPADD) {
            char txt[INET6_ADDRSTRLEN];
            if ((len == 4 || len == 16) &&
                inet_ntop(len == 4 ? AF_INET : AF_INET6, d, txt, sizeof(txt)) != NULL)
                c->sans[c->n_sans++] = xstrdup(txt);
            continue;
        }
        if (len <= 0 || memchr(d, '\0', (size_t)len) != NULL)
            continue;
        c->sans[c->n_sans++] = masked_copy(d, len);
    }
    GENERAL_NAMES_free(gens);
}

void acme_chain_fini(struct acme_chain *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->pem[i]);
    free(c->pem);
    for (size_t i = 0; i < c->n_sans; i++)
        free(c->sans[i]);
    free(c->sans);
    free(c->issuer_cn);
    free(c->serial_hex);
    X509_free(c->leaf);
    memset(c, 0, sizeof(*c));
}

/* The issuers above a leaf are the same few certificates in every chain a
 * CA sends, and parsing one costs more than the rest of the chain's
 * handling (OpenSSL 3 decodes its public key through the provider
 * decoders: issue 16's profile). The last few seen are kept by their exact
 * DER with what a chain needs of them: the re-encoded PEM and the issuer
 * CN. Shared by the loop and the threadpool, hence the lock. */
#define ISSUER_CACHE 4
static struct {
    uint8_t *der;
    size_t len;
    char *pem, *issuer_cn;
} issuer_cache[ISSUER_CACHE];
static size_t issuer_cache_next;
static pthread_mutex_t issuer_cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* A cached issuer's PEM and issuer CN (copies), or false. */
static bool issuer_cached(const uint8_t *der, size_t len, char **pem, char **cn)
{
    bool hit = false;

    pthread_mutex_lock(&issuer_cache_lock);
    for (size_t i = 0; i < ISSUER_CACHE && !hit; i++) {
        if (issuer_cache[i].der != NULL && issuer_cache[i].len == len &&
            memcmp(issuer_cache[i].der, der, len) == 0) {
            *pem = xstrdup(issuer_cache[i].pem);
            *cn = xstrdup(issuer_cache[i].issuer_cn);
            hit = true;
        }
    }
    pthread_mutex_unlock(&issuer_cache_lock);
    return hit;
}

static void issuer_remember(const uint8_t *der, size_t len, const char *pem, const char *cn)
{
    pthread_mutex_lock(&issuer_cache_lock);
    size_t i = issuer_cache_next++ % ISSUER_CACHE;
    free(issuer_cache[i].der);
    free(issuer_cache[i].pem);
    free(issuer_cache[i].issuer_cn);
    issuer_cache[i].der = xmemdup(der, len);
    issuer_cache[i].len = len;
    issuer_cache[i].pem = xstrdup(pem);
    issuer_cache[i].issuer_cn = xstrdup(cn);
    pthread_mutex_unlock(&issuer_cache_lock);
}

int acme_chain_parse(const char *pem, size_t len, struct acme_chain *out)
{
    struct acme_chain c;
    X509 *leaf = NULL;
    char *top_cn = NULL; /* the issuer CN of the topmost certificate above the leaf */
    const char *p = pem;
    const char *end = pem != NULL ? pem + len : NULL;
    int rc = ERR_PARSE;

    memset(&c, 0, sizeof(c));
    c.pem = xcalloc(CHAIN_MAX_CERTS, sizeof(char *));
    if (pem == NULL)
        goto out;
    for (;;) {
        while (p < end && is_space(*p))
            p++;
        if (p == end)
            break;
        /* Only whitespace may separate blocks: no text, no other block type. */
        if ((size_t)(end - p) < sizeof(pem_begin) - 1 ||
            memcmp(p, pem_begin, sizeof(pem_begin) - 1) != 0)
            goto out;
        const char *body = p + sizeof(pem_begin) - 1;
        const char *stop = find(body, end, pem_end);
        if (stop == NULL)
            goto out; /* truncated */
        /* The body is base64 only: no RFC 1421 headers, no stray text. */
        for (const char *q = body; q < stop; q++)
            if (!is_b64_char(*q))
                goto out;
        if (c.n == CHAIN_MAX_CERTS)
            goto out;
        uint8_t *der = NULL;
        size_t derlen = 0;
        if (b64_decode(body, (size_t)(stop - body), &der, &derlen) < 0)
            goto out;
        p = stop + sizeof(pem_end) - 1;
        char *cn = NULL;
        if (leaf != NULL && issuer_cached(der, derlen, &c.pem[c.n], &cn)) {
            free(der);
            free(top_cn);
            top_cn = cn;
            c.n++;
            continue;
        }
        X509 *x = der_to_x509(der, derlen);
        if (x == NULL) {
            free(der);
            goto out;
        }
        c.pem[c.n] = x509_to_pem(x);
        if (c.pem[c.n] == NULL) {
            free(der);
            X509_free(x);
            goto out;
        }
        if (leaf == NULL) {
            leaf = x;
        } else {
            free(top_cn);
            top_cn = issuer_cn(x);
            issuer_remember(der, derlen, c.pem[c.n], top_cn);
            X509_free(x);
        }
        free(der);
        c.n++;
    }
    if (leaf == NULL)
        goto out;
    if (acme_asn1_time_unix(X509_get0_notBefore(leaf), &c.not_before) < 0 ||
        acme_asn1_time_unix(X509_get0_notAfter(leaf), &c.not_after) < 0)
        goto out;
    if (top_cn != NULL) {
        c.issuer_cn = top_cn;
        top_cn = NULL;
    } else {
        c.issuer_cn = issuer_cn(leaf);
    }
    c.serial_hex = serial_hex(leaf);
    if (c.serial_hex == NULL)
        goto out;
    leaf_sans(leaf, &c);
    c.leaf = leaf;
    leaf = NULL;
    *out = c;
    memset(&c, 0, sizeof(c));
    rc = 0;
out:
    ERR_clear_error(); /* parse failures are ERR_PARSE; the caller logs them */
    X509_free(leaf);
    free(top_cn);
    acme_chain_fini(&c);
    return rc;
}

/* A new reference to the chain's leaf: the one acme_chain_parse kept, or
 * parsed from pem[0] for a chain put together by other means. */
static X509 *chain_leaf(const struct acme_chain *c)
{
    if (c != NULL && c->leaf != NULL && X509_up_ref(c->leaf) == 1)
        return c->leaf;
    if (c == NULL || c->n == 0 || c->pem[0] == NULL)
        return NULL;
    size_t len = strlen(c->pem[0]);
    if (len > INT_MAX)
        return NULL;
    BIO *bio = BIO_new_mem_buf(c->pem[0], (int)len);
    X509 *x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (x == NULL)
        ERR_clear_error();
    return x;
}

/* The DER of key's SubjectPublicKeyInfo for an EC key on a named curve
 * (OpenSSL-owned), or NULL (other keys, failures). */
static unsigned char *ec_spki_der(EVP_PKEY *key, int *len)
{
    X509_PUBKEY *pk = X509_PUBKEY_new();
    unsigned char *der = NULL;

    if (pk != NULL && ec_spki_set(pk, key) == 1)
        *len = i2d_X509_PUBKEY(pk, &der);
    X509_PUBKEY_free(pk);
    return der != NULL && *len > 0 ? der : NULL;
}

bool acme_chain_matches_key(const struct acme_chain *c, EVP_PKEY *key)
{
    X509 *leaf = chain_leaf(c);
    unsigned char *spki = NULL, *mine = NULL;
    int len = 0, mlen = 0;
    bool ok = false;

    if (leaf == NULL || key == NULL)
        goto out;
    len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(leaf), &spki);
    if (len <= 0)
        goto out;
    /* The same encoding is the same key. Anything else (another key type,
     * an encoding of the same key we did not produce) is decided by
     * OpenSSL on the decoded key. */
    mine = ec_spki_der(key, &mlen);
    if (mine != NULL && mlen == len && memcmp(mine, spki, (size_t)len) == 0) {
        ok = true;
        goto out;
    }
    const unsigned char *p = spki;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, len);
    ok = pub != NULL && EVP_PKEY_eq(pub, key) == 1;
    EVP_PKEY_free(pub);
out:
    ERR_clear_error(); /* a mismatch of key types queues an error */
    OPENSSL_free(mine);
    OPENSSL_free(spki);
    X509_free(leaf);
    return ok;
}

/* RFC 9773 §4.1: the serial part is the INTEGER's content octets as
 * encoded in DER, sign byte included, without tag and length. */
static char *serial_content_b64url(const ASN1_INTEGER *serial)
{
    uint8_t *der = NULL;
    int n = i2d_ASN1_INTEGER(serial, &der);
    char *out = NULL;

    if (n < 2 || der[0] != V_ASN1_INTEGER)
        goto out;
    size_t hdr = 2, clen = der[1];
    if (der[1] & 0x80) {
        size_t nlen = der[1] & 0x7f;
        if (nlen == 0 || nlen > sizeof(size_t) || (size_t)n < 2 + nlen)
            goto out;
        clen = 0;
        for (size_t i = 0; i < nlen; i++)
            clen = clen << 8 | der[2 + i];
        hdr = 2 + nlen;
    }
    if (clen == 0 || hdr + clen != (size_t)n)
        goto out;
    out = b64url_encode(der + hdr, clen);
out:
    OPENSSL_free(der);
    return out;
}

char *acme_ari_cert_id(const struct acme_chain *c)
{
    X509 *leaf = chain_leaf(c);
    char *out = NULL;

    if (leaf == NULL)
        return NULL;
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(leaf);
    if (aki == NULL || ASN1_STRING_length(aki) <= 0)
        goto out; /* no keyIdentifier: ARI cannot name this certificate */
    char *serial = serial_content_b64url(X509_get0_serialNumber(leaf));
    if (serial == NULL)
        goto out;
    char *keyid = b64url_encode(ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki));
    out = xasprintf("%s.%s", keyid, serial);
    free(keyid);
    free(serial);
out:
    ERR_clear_error();
    X509_free(leaf);
    return out;
}
