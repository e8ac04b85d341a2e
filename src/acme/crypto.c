/* Private keys for accounts and certificates: generation (EC P-256/P-384,
 * RSA 2048/3072/4096), PEM in and out, and classifying an existing key.
 * Pure functions on OpenSSL 3 EVP objects; keygen is meant to run on a
 * uv_queue_work thread, so nothing here logs unless asked to. */
#include "acme/acme.h"
#include "acme/crypto_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

int acme_ossl_error(const char *subject, const char *what, bool log)
{
    unsigned long first = ERR_get_error();
    unsigned long e;

    /* Drain the rest so a later, unrelated failure does not report it. */
    while ((e = ERR_get_error()) != 0)
        ;
    if (log) {
        char reason[256];
        if (first != 0)
            ERR_error_string_n(first, reason, sizeof(reason));
        else
            memcpy(reason, "unknown OpenSSL error", sizeof("unknown OpenSSL error"));
        log_error(LOG_ACME, "%s: %s: %s", subject != NULL ? subject : "openssl", what, reason);
    }
    return ERR_CRYPTO;
}

int acme_sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 0;

    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return acme_ossl_error(NULL, "sha256", false);
    return 0;
}

/* One keygen for every algorithm: the parameters say which key. */
static int generate(const char *alg, const OSSL_PARAM *params, EVP_PKEY **out)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL);
    EVP_PKEY *key = NULL;
    int rc = ERR_CRYPTO;

    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1)
        goto out;
    if (EVP_PKEY_CTX_set_params(ctx, params) != 1)
        goto out;
    if (EVP_PKEY_generate(ctx, &key) != 1)
        goto out;
    *out = key;
    rc = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

static int generate_ec(const char *curve, EVP_PKEY **out)
{
    /* Named curve, uncompressed points: what every CA expects in a JWK. */
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)curve, 0),
        OSSL_PARAM_construct_end(),
    };

    return generate("EC", params, out);
}

static int generate_rsa(unsigned int bits, EVP_PKEY **out)
{
    unsigned int e = 65537;
    size_t nbits = bits;
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_size_t(OSSL_PKEY_PARAM_RSA_BITS, &nbits),
        OSSL_PARAM_construct_uint(OSSL_PKEY_PARAM_RSA_E, &e),
        OSSL_PARAM_construct_end(),
    };

    return generate("RSA", params, out);
}

int acme_key_generate(enum cfg_key_type type, EVP_PKEY **out)
{
    EVP_PKEY *key = NULL;
    int rc;

    switch (type) {
    case CFG_KEY_EC_P256:
        rc = generate_ec("P-256", &key);
        break;
    case CFG_KEY_EC_P384:
        rc = generate_ec("P-384", &key);
        break;
    case CFG_KEY_RSA2048:
        rc = generate_rsa(2048, &key);
        break;
    case CFG_KEY_RSA3072:
        rc = generate_rsa(3072, &key);
        break;
    case CFG_KEY_RSA4096:
        rc = generate_rsa(4096, &key);
        break;
    default:
        return -EINVAL;
    }
    if (rc < 0)
        return acme_ossl_error(NULL, "keygen", false); /* may run off the loop thread */
    *out = key;
    return 0;
}

/* The size of a DER tag and length (definite form, up to 65535). */
static size_t der_head_len(size_t len)
{
    return len < 0x80 ? 2 : len < 0x100 ? 3 : 4;
}

/* DER tag and length (definite, short or long form up to 65535) at out;
 * returns the bytes written (der_head_len). */
static size_t der_head(uint8_t *out, uint8_t tag, size_t len)
{
    out[0] = tag;
    if (len < 0x80) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len < 0x100) {
        out[1] = 0x81;
        out[2] = (uint8_t)len;
        return 3;
    }
    out[1] = 0x82;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    return 4;
}

/* The PKCS#8 PrivateKeyInfo (RFC 5208) of an EC key on a named curve, byte
 * for byte what PEM_write_bio_PKCS8PrivateKey writes: version 0,
 * AlgorithmIdentifier {id-ecPublicKey, the curve's OID}, and an OCTET
 * STRING holding the ECPrivateKey (RFC 5915: version 1, the private key
 * left-padded to the order's size, no parameters, [1] the public key). Put
 * together here because OpenSSL 3 builds an encoder context for every key
 * it writes (0.8 M instructions, three signatures' worth: issue 16's
 * profile). 1 with *der (owned, cleanse before freeing) and *len, or 0
 * when the key is not such a key (the caller lets OpenSSL write it). */
static int ec_pkcs8_der(EVP_PKEY *key, uint8_t **der, size_t *len)
{
    static const uint8_t ec_public_key[] = {0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
    char group[64];
    uint8_t pub[1 + 2 * 66], priv[66], curve_oid[32];
    size_t plen = 0;
    BIGNUM *d = NULL;
    int rc = 0;

    char encoding[32], form[32];
    int with_pub = 1;
    /* OpenSSL writes explicit curve parameters, a compressed point or no
     * public key for a key loaded that way: such keys are left to it. */
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
        EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) != 1 ||
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING, encoding, sizeof(encoding),
                                       NULL) != 1 ||
        strcmp(encoding, OSSL_PKEY_EC_ENCODING_GROUP) != 0 ||
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, form,
                                       sizeof(form), NULL) != 1 ||
        strcmp(form, OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED) != 0 ||
        (EVP_PKEY_get_int_param(key, OSSL_PKEY_PARAM_EC_INCLUDE_PUBLIC, &with_pub) == 1 &&
         with_pub == 0))
        goto out;
    int curve = OBJ_txt2nid(group);
    ASN1_OBJECT *obj = curve != NID_undef ? OBJ_nid2obj(curve) : NULL;
    int olen = obj != NULL ? i2d_ASN1_OBJECT(obj, NULL) : 0;
    int flen = (EVP_PKEY_get_bits(key) + 7) / 8;
    if (olen <= 0 || (size_t)olen > sizeof(curve_oid) || flen <= 0 || (size_t)flen > sizeof(priv))
        goto out;
    unsigned char *op = curve_oid;
    i2d_ASN1_OBJECT(obj, &op);
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub),
                                        &plen) != 1 ||
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1 ||
        BN_bn2binpad(d, priv, flen) != flen)
        goto out;               /* e.g. no private half: OpenSSL says why */
    size_t bits_len = 1 + plen; /* BIT STRING: the unused-bits octet, then the point */
    size_t pubf_len = der_head_len(bits_len) + bits_len;                        /* [1] */
    size_t ecpk_len = 3 + 2 + (size_t)flen + der_head_len(pubf_len) + pubf_len; /* ECPrivateKey */
    size_t ecpk_all = der_head_len(ecpk_len) + ecpk_len;
    size_t alg_len = sizeof(ec_public_key) + (size_t)olen;
    size_t body = 3 + der_head_len(alg_len) + alg_len + der_head_len(ecpk_all) + ecpk_all;
    uint8_t *b = xmalloc(der_head_len(body) + body);
    size_t n = der_head(b, 0x30, body);
    memcpy(b + n, "\x02\x01\x00", 3); /* version 0 */
    n += 3;
    n += der_head(b + n, 0x30, alg_len);
    memcpy(b + n, ec_public_key, sizeof(ec_public_key));
    n += sizeof(ec_public_key);
    memcpy(b + n, curve_oid, (size_t)olen);
    n += (size_t)olen;
    n += der_head(b + n, 0x04, ecpk_all);
    n += der_head(b + n, 0x30, ecpk_len);
    memcpy(b + n, "\x02\x01\x01", 3); /* ECPrivateKey version 1 */
    n += 3;
    n += der_head(b + n, 0x04, (size_t)flen);
    memcpy(b + n, priv, (size_t)flen);
    n += (size_t)flen;
    n += der_head(b + n, 0xa1, pubf_len);
    n += der_head(b + n, 0x03, bits_len);
    b[n++] = 0x00;
    memcpy(b + n, pub, plen);
    n += plen;
    *der = b;
    *len = n;
    rc = 1;
out:
    OPENSSL_cleanse(priv, sizeof(priv));
    BN_clear_free(d);
    ERR_clear_error();
    return rc;
}

int acme_key_to_pem(EVP_PKEY *key, char **pem, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    uint8_t *der = NULL;
    size_t derlen = 0;
    int rc;

    int ec = bio != NULL ? ec_pkcs8_der(key, &der, &derlen) : 0;
    if (ec == 1) {
        if (PEM_write_bio(bio, PEM_STRING_PKCS8INF, "", der, (long)derlen) <= 0) {
            rc = acme_ossl_error(NULL, "key to PEM", false);
            goto out;
        }
    } else if (bio == NULL ||
               PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
        rc = acme_ossl_error(NULL, "key to PEM", false);
        goto out;
    }
    long n = BIO_get_mem_data(bio, &data);
    if (n <= 0) {
        rc = acme_ossl_error(NULL, "key to PEM", false);
        goto out;
    }
    char *copy = xmalloc((size_t)n + 1);
    memcpy(copy, data, (size_t)n);
    copy[n] = '\0';
    *pem = copy;
    *len = (size_t)n;
    rc = 0;
out:
    if (der != NULL) {
        OPENSSL_cleanse(der, derlen);
        free(der);
    }
    BIO_free(bio);
    return rc;
}

/* Never prompt on a terminal for a passphrase: encrypted keys are an error. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

int acme_key_from_pem(const char *pem, size_t len, EVP_PKEY **out)
{
    if (pem == NULL || len == 0 || len > INT_MAX)
        return ERR_PARSE;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        return acme_ossl_error(NULL, "key from PEM", false);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
    BIO_free(bio);
    if (key == NULL) {
        acme_ossl_error(NULL, "key from PEM", false);
        return ERR_PARSE;
    }
    *out = key;
    return 0;
}

enum acme_key_kind acme_key_kind_of(EVP_PKEY *key)
{
    if (key == NULL)
        return ACME_KIND_NONE;
    if (EVP_PKEY_is_a(key, "RSA"))
        return ACME_KIND_RSA;
    if (!EVP_PKEY_is_a(key, "EC"))
        return ACME_KIND_NONE;
    char group[64];
    size_t glen = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &glen) != 1) {
        acme_ossl_error(NULL, "EC group", false);
        return ACME_KIND_NONE;
    }
    /* OpenSSL reports the SN ("prime256v1", "secp384r1"); accept the NIST
     * names too in case a provider prefers them. */
    if (strcasecmp(group, "prime256v1") == 0 || strcasecmp(group, "P-256") == 0 ||
        strcasecmp(group, "secp256r1") == 0)
        return ACME_KIND_P256;
    if (strcasecmp(group, "secp384r1") == 0 || strcasecmp(group, "P-384") == 0)
        return ACME_KIND_P384;
    return ACME_KIND_NONE;
}

int acme_key_type_of(EVP_PKEY *key, enum cfg_key_type *out)
{
    switch (acme_key_kind_of(key)) {
    case ACME_KIND_P256:
        *out = CFG_KEY_EC_P256;
        return 0;
    case ACME_KIND_P384:
        *out = CFG_KEY_EC_P384;
        return 0;
    case ACME_KIND_RSA:
        switch (EVP_PKEY_get_bits(key)) {
        case 2048:
            *out = CFG_KEY_RSA2048;
            return 0;
        case 3072:
            *out = CFG_KEY_RSA3072;
            return 0;
        case 4096:
            *out = CFG_KEY_RSA4096;
            return 0;
        default:
            return -EINVAL;
        }
    default:
        return -EINVAL;
    }
}
