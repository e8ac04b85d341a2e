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
#include <openssl/core_names.h>
#include <openssl/err.h>
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

int acme_key_to_pem(EVP_PKEY *key, char **pem, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    int rc;

    if (bio == NULL || PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
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
