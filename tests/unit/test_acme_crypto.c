/* Unit tests for the pure ACME crypto: keys, JWK/thumbprint, JWS, EAB,
 * key authorizations, CSRs, chain parsing, key matching and ARI CertIDs.
 * Every signature is checked with OpenSSL independently of the code under
 * test, and the fixed vectors come from RFC 7638 and RFC 9773. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme/acme.h"
#include "acme/crypto_internal.h"
#include "util/b64.h"
#include "util/err.h"

/* ---- helpers ------------------------------------------------------------ */

static uint8_t *unb64url(const char *s, size_t *len)
{
    uint8_t *out = NULL;
    assert_int_equal(b64url_decode(s, strlen(s), &out, len), 0);
    return out;
}

static json_t *load_json(const char *s)
{
    json_error_t jerr;
    json_t *j = json_loads(s, 0, &jerr);
    assert_non_null(j);
    return j;
}

static const char *obj_str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

/* The key of type ctx (freed) from what bld holds (freed). */
static EVP_PKEY *pkey_fromdata(EVP_PKEY_CTX *ctx, OSSL_PARAM_BLD *bld, int selection)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY *pk = NULL;

    assert_non_null(params);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &pk, selection, params), 1);
    OSSL_PARAM_free(params);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_BLD_free(bld);
    return pk;
}

/* An EVP_PKEY holding only the public key that a JWK describes, built from
 * its members with OSSL_PARAM_BLD (independent of acme_jwk's code path). */
static EVP_PKEY *pkey_from_jwk(const json_t *jwk)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pk = NULL;
    BIGNUM *n = NULL, *e = NULL;
    uint8_t *a = NULL, *b = NULL, *point = NULL;
    size_t alen = 0, blen = 0;
    const char *kty = obj_str(jwk, "kty");

    assert_non_null(bld);
    if (strcmp(kty, "RSA") == 0) {
        a = unb64url(obj_str(jwk, "n"), &alen);
        b = unb64url(obj_str(jwk, "e"), &blen);
        n = BN_bin2bn(a, (int)alen, NULL);
        e = BN_bin2bn(b, (int)blen, NULL);
        assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n), 1);
        assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e), 1);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    } else {
        assert_string_equal(kty, "EC");
        const char *crv = obj_str(jwk, "crv");
        a = unb64url(obj_str(jwk, "x"), &alen);
        b = unb64url(obj_str(jwk, "y"), &blen);
        assert_int_equal(alen, blen);
        point = malloc(1 + alen + blen);
        point[0] = 0x04;
        memcpy(point + 1, a, alen);
        memcpy(point + 1 + alen, b, blen);
        assert_int_equal(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, crv, 0),
                         1);
        assert_int_equal(
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + alen + blen),
            1);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    }
    pk = pkey_fromdata(ctx, bld, EVP_PKEY_PUBLIC_KEY);
    BN_free(n);
    BN_free(e);
    free(a);
    free(b);
    free(point);
    return pk;
}

/* Verifies a JWS signature (r||s for EC, converted back to DER). */
static int jws_verify(EVP_PKEY *pub, const char *alg, const char *input, const uint8_t *sig,
                      size_t siglen)
{
    const EVP_MD *md = strcmp(alg, "ES384") == 0 ? EVP_sha384() : EVP_sha256();
    uint8_t *der = NULL;
    size_t derlen = siglen;
    const uint8_t *use = sig;

    if (alg[0] == 'E') {
        size_t half = strcmp(alg, "ES256") == 0 ? 32 : 48;
        assert_int_equal(siglen, 2 * half);
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, (int)half, NULL);
        BIGNUM *s = BN_bin2bn(sig + half, (int)half, NULL);
        assert_int_equal(ECDSA_SIG_set0(es, r, s), 1);
        int n = i2d_ECDSA_SIG(es, &der);
        assert_true(n > 0);
        derlen = (size_t)n;
        use = der;
        ECDSA_SIG_free(es);
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, md, NULL, pub), 1);
    int ok = EVP_DigestVerify(ctx, use, derlen, (const uint8_t *)input, strlen(input));
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ERR_clear_error();
    return ok;
}

static EVP_PKEY *gen(enum cfg_key_type t)
{
    EVP_PKEY *k = NULL;
    assert_int_equal(acme_key_generate(t, &k), 0);
    assert_non_null(k);
    return k;
}

/* ---- keys --------------------------------------------------------------- */

static void check_key_type(enum cfg_key_type t, const char *openssl_name, int bits)
{
    EVP_PKEY *k = gen(t);
    enum cfg_key_type got = CFG_KEY__MAX;
    char *pem = NULL;
    size_t len = 0;
    EVP_PKEY *back = NULL;

    assert_true(EVP_PKEY_is_a(k, openssl_name));
    assert_int_equal(EVP_PKEY_get_bits(k), bits);
    assert_int_equal(acme_key_type_of(k, &got), 0);
    assert_int_equal(got, t);

    assert_int_equal(acme_key_to_pem(k, &pem, &len), 0);
    assert_int_equal(strlen(pem), len);
    assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----")); /* PKCS#8 */
    assert_int_equal(acme_key_from_pem(pem, len, &back), 0);
    assert_int_equal(EVP_PKEY_eq(k, back), 1);
    got = CFG_KEY__MAX;
    assert_int_equal(acme_key_type_of(back, &got), 0);
    assert_int_equal(got, t);

    if (EVP_PKEY_is_a(k, "RSA")) {
        BIGNUM *e = NULL;
        assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e), 1);
        assert_int_equal(BN_get_word(e), 65537);
        BN_free(e);
    }
    free(pem);
    EVP_PKEY_free(back);
    EVP_PKEY_free(k);
}

static void test_key_ec_p256_roundtrip(void **state)
{
    (void)state;
    check_key_type(CFG_KEY_EC_P256, "EC", 256);
}

static void test_key_ec_p384_roundtrip(void **state)
{
    (void)state;
    check_key_type(CFG_KEY_EC_P384, "EC", 384);
}

static void test_key_rsa_roundtrips(void **state)
{
    (void)state;
    check_key_type(CFG_KEY_RSA2048, "RSA", 2048);
    check_key_type(CFG_KEY_RSA3072, "RSA", 3072);
    check_key_type(CFG_KEY_RSA4096, "RSA", 4096);
}

/* OpenSSL's own PKCS#8 PEM of k. */
static char *openssl_pkcs8(EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL), 1);
    long n = BIO_get_mem_data(bio, &data);
    char *s = strndup(data, (size_t)n);
    BIO_free(bio);
    return s;
}

/* An EC key on curve with the private key d (and its public point). */
static EVP_PKEY *ec_key_with(const char *curve, unsigned long d_word)
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name(OBJ_sn2nid(curve));
    EC_POINT *pt = EC_POINT_new(g);
    BIGNUM *d = BN_new();
    unsigned char pub[133];
    assert_int_equal(BN_set_word(d, d_word), 1);
    assert_int_equal(EC_POINT_mul(g, pt, d, NULL, NULL, NULL), 1);
    size_t plen = EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof(pub), NULL);
    assert_true(plen > 0);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    assert_int_equal(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curve, 0), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, plen), 1);
    EVP_PKEY *k =
        pkey_fromdata(EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL), bld, EVP_PKEY_KEYPAIR);
    BN_free(d);
    EC_POINT_free(pt);
    EC_GROUP_free(g);
    return k;
}

/* acme_key_to_pem(k) is OpenSSL's PKCS#8 PEM of k, to the byte, and loads
 * back as k. */
static void check_pem_is_openssls(EVP_PKEY *k)
{
    char *pem = NULL;
    size_t len = 0;
    EVP_PKEY *back = NULL;

    assert_int_equal(acme_key_to_pem(k, &pem, &len), 0);
    char *want = openssl_pkcs8(k);
    assert_string_equal(pem, want);
    assert_int_equal(acme_key_from_pem(pem, len, &back), 0);
    assert_int_equal(EVP_PKEY_eq(k, back), 1);
    EVP_PKEY_free(back);
    free(want);
    free(pem);
}

/* EC keys are written without OpenSSL's encoder (issue 16): the PEM must be
 * OpenSSL's to the byte, also for a private key with leading zero octets;
 * keys OpenSSL writes otherwise (compressed points, no public key,
 * explicit curve parameters) the way it writes them. */
static void test_key_ec_pem_is_openssls(void **state)
{
    (void)state;
    static const char *const curves[] = {"prime256v1", "secp384r1"};
    for (int c = 0; c < 2; c++) {
        for (int i = 0; i < 40; i++) {
            EVP_PKEY *k = gen(c == 0 ? CFG_KEY_EC_P256 : CFG_KEY_EC_P384);
            check_pem_is_openssls(k);
            EVP_PKEY_free(k);
        }
        EVP_PKEY *k = ec_key_with(curves[c], 0x1234567UL); /* 4 octets of 32 or 48 */
        check_pem_is_openssls(k);
        assert_int_equal(EVP_PKEY_set_utf8_string_param(
                             k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"),
                         1);
        check_pem_is_openssls(k);
        assert_int_equal(EVP_PKEY_set_int_param(k, OSSL_PKEY_PARAM_EC_INCLUDE_PUBLIC, 0), 1);
        check_pem_is_openssls(k);
        assert_int_equal(EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_ENCODING, "explicit"),
                         1);
        check_pem_is_openssls(k);
        EVP_PKEY_free(k);
    }
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_key_from_pem_rejects_garbage(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    const char junk[] =
        "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n";
    assert_int_equal(acme_key_from_pem(junk, strlen(junk), &k), ERR_PARSE);
    assert_null(k);
    assert_int_equal(acme_key_from_pem("", 0, &k), ERR_PARSE);
    assert_int_equal(ERR_peek_error(), 0); /* the queue is drained */
}

static void test_key_traditional_pem_and_other_curve(void **state)
{
    (void)state;
    /* A traditional "EC PRIVATE KEY" on a curve we do not support loads,
     * but acme_key_type_of reports it as unsupported. */
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp521r1");
    assert_non_null(k);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, k, NULL, NULL, 0, NULL, NULL), 1);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    assert_non_null(
        memmem(data, (size_t)n, "BEGIN EC PRIVATE KEY", strlen("BEGIN EC PRIVATE KEY")));
    EVP_PKEY *back = NULL;
    assert_int_equal(acme_key_from_pem(data, (size_t)n, &back), 0);
    enum cfg_key_type t;
    assert_int_equal(acme_key_type_of(back, &t), -EINVAL);
    assert_null(acme_jws_alg(back));
    assert_null(acme_jwk(back));
    EVP_PKEY_free(back);
    BIO_free(bio);
    EVP_PKEY_free(k);

    /* RSA of an unlisted size is not a cfg type but still signs RS256. */
    EVP_PKEY *r = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_non_null(r);
    assert_int_equal(acme_key_type_of(r, &t), -EINVAL);
    assert_string_equal(acme_jws_alg(r), "RS256");
    EVP_PKEY_free(r);
}

/* Keys are generated on uv_queue_work threads: several at once must each
 * yield a distinct, usable key. */
struct keygen_job {
    enum cfg_key_type type;
    int ok;
    char *thumb[20];
};

static void *keygen_thread(void *arg)
{
    struct keygen_job *j = arg;
    for (int i = 0; i < 20; i++) {
        EVP_PKEY *k = NULL;
        enum cfg_key_type t;
        if (acme_key_generate(j->type, &k) != 0 || acme_key_type_of(k, &t) != 0 || t != j->type)
            return NULL;
        char *pem = NULL;
        size_t len = 0;
        EVP_PKEY *back = NULL;
        if (acme_key_to_pem(k, &pem, &len) != 0 || acme_key_from_pem(pem, len, &back) != 0 ||
            EVP_PKEY_eq(k, back) != 1)
            return NULL;
        j->thumb[i] = acme_jwk_thumbprint(back);
        free(pem);
        EVP_PKEY_free(back);
        EVP_PKEY_free(k);
    }
    j->ok = 1;
    return NULL;
}

static void test_key_generate_concurrent_threads(void **state)
{
    (void)state;
    struct keygen_job jobs[4] = {{CFG_KEY_EC_P256, 0, {0}},
                                 {CFG_KEY_EC_P384, 0, {0}},
                                 {CFG_KEY_EC_P256, 0, {0}},
                                 {CFG_KEY_EC_P384, 0, {0}}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, keygen_thread, &jobs[i]), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(jobs[i].ok, 1);
        for (int k = 0; k < 20; k++) {
            assert_non_null(jobs[i].thumb[k]);
            /* No two keys alike across all threads. */
            for (int i2 = 0; i2 < 4; i2++)
                for (int k2 = 0; k2 < 20; k2++)
                    if (i2 != i || k2 != k)
                        assert_string_not_equal(jobs[i].thumb[k], jobs[i2].thumb[k2]);
        }
    }
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 20; k++)
            free(jobs[i].thumb[k]);
}

/* ---- JWK and thumbprint ------------------------------------------------- */

/* RFC 7638 §3.1 (the RSA key of RFC 7517 appendix A.1). */
static const char rfc7638_n[] = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu"
                                "1RK7aPFFxuhDR1L6tSoc_BJECPebWKR"
                                "XjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_"
                                "RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAt"
                                "aSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
                                "bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPk"
                                "sINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

static void test_thumbprint_rfc7638_example(void **state)
{
    (void)state;
    json_t *jwk_in = json_pack("{s:s, s:s, s:s}", "kty", "RSA", "n", rfc7638_n, "e", "AQAB");
    EVP_PKEY *k = pkey_from_jwk(jwk_in);

    char *tp = acme_jwk_thumbprint(k);
    assert_non_null(tp);
    assert_string_equal(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");

    /* The JWK we produce has exactly the required members, same values. */
    json_t *jwk = acme_jwk(k);
    assert_non_null(jwk);
    assert_int_equal(json_object_size(jwk), 3);
    assert_true(json_equal(jwk, jwk_in));
    assert_string_equal(acme_jws_alg(k), "RS256");

    json_decref(jwk);
    json_decref(jwk_in);
    free(tp);
    EVP_PKEY_free(k);
}

/* Coordinates are always the full field size, including when the top byte
 * is zero (which a minimal encoding would drop): loop until we meet one. */
static void check_ec_jwk(enum cfg_key_type t, const char *crv, size_t field)
{
    int leading_zero_seen = 0;

    for (int i = 0; i < 4000 && !leading_zero_seen; i++) {
        EVP_PKEY *k = gen(t);
        json_t *jwk = acme_jwk(k);
        assert_non_null(jwk);
        assert_int_equal(json_object_size(jwk), 4);
        assert_string_equal(obj_str(jwk, "kty"), "EC");
        assert_string_equal(obj_str(jwk, "crv"), crv);
        size_t xl = 0, yl = 0;
        uint8_t *x = unb64url(obj_str(jwk, "x"), &xl);
        uint8_t *y = unb64url(obj_str(jwk, "y"), &yl);
        assert_int_equal(xl, field);
        assert_int_equal(yl, field);
        if (x[0] == 0 || y[0] == 0)
            leading_zero_seen = 1;
        /* The JWK describes this very key. */
        EVP_PKEY *pub = pkey_from_jwk(jwk);
        assert_int_equal(EVP_PKEY_eq(pub, k), 1);

        /* Thumbprint = SHA-256 of the RFC 7638 canonical form. */
        if (i < 3) {
            char canon[512];
            snprintf(canon, sizeof(canon),
                     "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", crv,
                     obj_str(jwk, "x"), obj_str(jwk, "y"));
            uint8_t md[32];
            unsigned int mdlen = 0;
            assert_int_equal(EVP_Digest(canon, strlen(canon), md, &mdlen, EVP_sha256(), NULL), 1);
            char *want = b64url_encode(md, mdlen);
            char *tp = acme_jwk_thumbprint(k);
            assert_string_equal(tp, want);
            free(want);
            free(tp);
        }
        free(x);
        free(y);
        EVP_PKEY_free(pub);
        json_decref(jwk);
        EVP_PKEY_free(k);
    }
    assert_true(leading_zero_seen);
}

static void test_jwk_ec_p256_padded(void **state)
{
    (void)state;
    check_ec_jwk(CFG_KEY_EC_P256, "P-256", 32);
}

static void test_jwk_ec_p384_padded(void **state)
{
    (void)state;
    check_ec_jwk(CFG_KEY_EC_P384, "P-384", 48);
}

/* ---- JWS ---------------------------------------------------------------- */

struct decoded_jws {
    json_t *body;
    json_t *hdr;
    char *payload;
    size_t payload_len;
    uint8_t *sig;
    size_t siglen;
    char *input;
};

static void decode_jws(const char *text, struct decoded_jws *d)
{
    d->body = load_json(text);
    assert_int_equal(json_object_size(d->body), 3);
    const char *p64 = obj_str(d->body, "protected");
    const char *pl64 = obj_str(d->body, "payload");
    size_t hl = 0;
    char *hdr = (char *)unb64url(p64, &hl);
    d->hdr = load_json(hdr);
    free(hdr);
    d->payload = (char *)unb64url(pl64, &d->payload_len);
    d->sig = unb64url(obj_str(d->body, "signature"), &d->siglen);
    size_t n = strlen(p64) + strlen(pl64) + 2;
    d->input = malloc(n);
    snprintf(d->input, n, "%s.%s", p64, pl64);
}

static void decoded_jws_fini(struct decoded_jws *d)
{
    json_decref(d->body);
    json_decref(d->hdr);
    free(d->payload);
    free(d->sig);
    free(d->input);
}

static void check_jws(enum cfg_key_type t, const char *alg)
{
    EVP_PKEY *k = gen(t);
    char *out = NULL;
    struct decoded_jws d;

    /* With a kid (the usual request). */
    const char *payload = "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"example.org\"}]}";
    assert_int_equal(acme_jws_sign(k, "https://ca.test/acct/1", "NONCE-1",
                                   "https://ca.test/new-order", payload, &out),
                     0);
    decode_jws(out, &d);
    assert_int_equal(json_object_size(d.hdr), 4);
    assert_string_equal(obj_str(d.hdr, "alg"), alg);
    assert_string_equal(obj_str(d.hdr, "nonce"), "NONCE-1");
    assert_string_equal(obj_str(d.hdr, "url"), "https://ca.test/new-order");
    assert_string_equal(obj_str(d.hdr, "kid"), "https://ca.test/acct/1");
    assert_null(json_object_get(d.hdr, "jwk"));
    assert_int_equal(d.payload_len, strlen(payload));
    assert_memory_equal(d.payload, payload, d.payload_len);
    assert_int_equal(jws_verify(k, alg, d.input, d.sig, d.siglen), 1);
    /* A flipped bit in the signing input must not verify. */
    d.input[3] ^= 1;
    assert_int_not_equal(jws_verify(k, alg, d.input, d.sig, d.siglen), 1);
    decoded_jws_fini(&d);
    free(out);

    /* With the jwk (newAccount), POST-as-GET style empty payload; the
     * signature verifies with the key rebuilt from the embedded JWK. */
    assert_int_equal(acme_jws_sign(k, NULL, "NONCE-2", "https://ca.test/new-acct", NULL, &out), 0);
    decode_jws(out, &d);
    assert_string_equal(obj_str(d.body, "payload"), "");
    assert_int_equal(d.payload_len, 0);
    assert_null(json_object_get(d.hdr, "kid"));
    const json_t *jwk = json_object_get(d.hdr, "jwk");
    assert_true(json_is_object(jwk));
    EVP_PKEY *pub = pkey_from_jwk(jwk);
    assert_int_equal(EVP_PKEY_eq(pub, k), 1);
    assert_int_equal(jws_verify(pub, alg, d.input, d.sig, d.siglen), 1);
    EVP_PKEY_free(pub);
    decoded_jws_fini(&d);
    free(out);
    EVP_PKEY_free(k);
}

static void test_jws_es256_verifies(void **state)
{
    (void)state;
    for (int i = 0; i < 20; i++) /* r or s with a leading zero byte now and then */
        check_jws(CFG_KEY_EC_P256, "ES256");
}

static void test_jws_es384_verifies(void **state)
{
    (void)state;
    for (int i = 0; i < 20; i++)
        check_jws(CFG_KEY_EC_P384, "ES384");
}

static void test_jws_rs256_verifies(void **state)
{
    (void)state;
    check_jws(CFG_KEY_RSA2048, "RS256");
}

static void test_jws_post_as_get_payload_is_empty_string(void **state)
{
    (void)state;
    EVP_PKEY *k = gen(CFG_KEY_EC_P256);
    char *out = NULL;
    assert_int_equal(acme_jws_sign(k, "kid", "n", "https://ca.test/order/1", NULL, &out), 0);
    json_t *body = load_json(out);
    assert_string_equal(obj_str(body, "payload"), "");
    json_decref(body);
    free(out);
    /* An explicit "{}" is a different thing (e30). */
    assert_int_equal(acme_jws_sign(k, "kid", "n", "https://ca.test/chall/1", "{}", &out), 0);
    body = load_json(out);
    assert_string_equal(obj_str(body, "payload"), "e30");
    json_decref(body);
    free(out);
    EVP_PKEY_free(k);
}

static void test_jws_without_nonce_for_key_change(void **state)
{
    (void)state;
    EVP_PKEY *k = gen(CFG_KEY_EC_P256);
    char *out = NULL;
    struct decoded_jws d;
    assert_int_equal(acme_jws_sign(k, NULL, NULL, "https://ca.test/key-change", "{}", &out), 0);
    decode_jws(out, &d);
    assert_null(json_object_get(d.hdr, "nonce"));
    assert_int_equal(json_object_size(d.hdr), 3); /* alg, url, jwk */
    assert_int_equal(jws_verify(k, "ES256", d.input, d.sig, d.siglen), 1);
    decoded_jws_fini(&d);
    free(out);
    EVP_PKEY_free(k);
}

/* An EVP_PKEY's ex_data is freed only when its last reference goes: the
 * free callback counts keys that really left memory. */
static int freed_keys;

static void count_freed(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (ptr != NULL)
        freed_keys++;
}

static int freed_idx = -1;

/* A generated key whose final free is counted in freed_keys. */
static EVP_PKEY *gen_counted(enum cfg_key_type t)
{
    if (freed_idx < 0)
        freed_idx = EVP_PKEY_get_ex_new_index(0, NULL, NULL, NULL, count_freed);
    assert_true(freed_idx >= 0);
    EVP_PKEY *k = gen(t);
    assert_int_equal(EVP_PKEY_set_ex_data(k, freed_idx, &freed_idx), 1);
    return k;
}

static void sign_once(EVP_PKEY *k)
{
    char *out = NULL;
    assert_int_equal(
        acme_jws_sign(k, "https://ca.test/acct/1", "N", "https://ca.test/x", "{}", &out), 0);
    free(out);
}

/* A rollover: the old account key signs the keyChange, the new key takes
 * over. The kept EC signing context must not hold the old key once its
 * owner retires it (it did until another key signed), and must stay with
 * the key in use when some other key is retired (the context is kept so
 * that each signature does not rebuild it). */
static void test_jws_retired_key_leaves_memory(void **state)
{
    (void)state;
    EVP_PKEY *old_key = gen_counted(CFG_KEY_EC_P256);
    EVP_PKEY *new_key = gen_counted(CFG_KEY_EC_P384);
    EVP_PKEY *other = gen_counted(CFG_KEY_EC_P256);
    char *inner = NULL;

    freed_keys = 0;
    sign_once(new_key);
    assert_true(acme_signer_holds(new_key));
    assert_int_equal(acme_key_change_inner(new_key, old_key, "https://ca.test/acct/1",
                                           "https://ca.test/key-change", &inner),
                     0);
    free(inner);
    sign_once(old_key); /* the outer JWS: the old key signs last */
    assert_true(acme_signer_holds(old_key));

    acme_key_free(old_key);
    assert_int_equal(freed_keys, 1);
    assert_false(acme_signer_holds(old_key));

    sign_once(new_key);
    sign_once(new_key);
    assert_true(acme_signer_holds(new_key));
    acme_key_free(other); /* never signed: the context stays with new_key */
    assert_int_equal(freed_keys, 2);
    assert_true(acme_signer_holds(new_key));
    sign_once(new_key);

    acme_key_free(new_key); /* shutdown */
    assert_int_equal(freed_keys, 3);
    assert_false(acme_signer_holds(new_key));
    acme_key_free(NULL);
}

/* A key that is not the kept one is freed as EVP_PKEY_free would, and a
 * second reference (another owner) keeps the key alive. */
static void test_jws_key_free_drops_one_reference(void **state)
{
    (void)state;
    EVP_PKEY *k = gen_counted(CFG_KEY_EC_P256);

    freed_keys = 0;
    sign_once(k);
    assert_int_equal(EVP_PKEY_up_ref(k), 1);
    acme_key_free(k);
    assert_int_equal(freed_keys, 0);
    sign_once(k); /* the other owner still signs with it */
    acme_key_free(k);
    assert_int_equal(freed_keys, 1);
}

/* ---- EAB ---------------------------------------------------------------- */

static void check_eab(EVP_PKEY *acct, const char *hmac_key_text, const uint8_t *raw_key,
                      size_t raw_len)
{
    json_t *eab = NULL;
    assert_int_equal(
        acme_eab_sign(acct, "kid-123", hmac_key_text, "https://ca.test/new-acct", &eab), 0);
    char *text = json_dumps(eab, JSON_COMPACT);
    struct decoded_jws d;
    decode_jws(text, &d);
    assert_int_equal(json_object_size(d.hdr), 3);
    assert_string_equal(obj_str(d.hdr, "alg"), "HS256");
    assert_string_equal(obj_str(d.hdr, "kid"), "kid-123");
    assert_string_equal(obj_str(d.hdr, "url"), "https://ca.test/new-acct");
    assert_null(json_object_get(d.hdr, "nonce"));
    /* The payload is the account's public JWK. */
    json_t *payload = json_loadb(d.payload, d.payload_len, 0, NULL);
    json_t *jwk = acme_jwk(acct);
    assert_true(json_equal(payload, jwk));
    /* HMAC-SHA256 computed here with the one-shot HMAC(). */
    uint8_t mac[32];
    unsigned int maclen = 0;
    assert_non_null(HMAC(EVP_sha256(), raw_key, (int)raw_len, (const uint8_t *)d.input,
                         strlen(d.input), mac, &maclen));
    assert_int_equal(maclen, 32);
    assert_int_equal(d.siglen, 32);
    assert_memory_equal(d.sig, mac, 32);
    json_decref(payload);
    json_decref(jwk);
    decoded_jws_fini(&d);
    free(text);
    json_decref(eab);
}

static void test_eab_hs256_verifies(void **state)
{
    (void)state;
    EVP_PKEY *acct = gen(CFG_KEY_EC_P256);
    /* Bytes chosen so base64 and base64url differ (0xfb 0xff -> "+/" vs "-_"). */
    uint8_t raw[32];
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (uint8_t)(0xfb + i * 37);
    raw[0] = 0xfb;
    raw[1] = 0xff;
    raw[2] = 0xbf;
    char *url = b64url_encode(raw, sizeof(raw));
    char *std = b64_encode(raw, sizeof(raw)); /* padded, "+" and "/" */
    assert_non_null(strchr(std, '='));
    assert_string_not_equal(url, std);
    check_eab(acct, url, raw, sizeof(raw));
    check_eab(acct, std, raw, sizeof(raw));

    json_t *eab = NULL;
    assert_int_equal(acme_eab_sign(acct, "kid", "not*base64", "https://ca.test/na", &eab),
                     ERR_PARSE);
    assert_int_equal(acme_eab_sign(acct, "kid", "", "https://ca.test/na", &eab), ERR_PARSE);
    assert_null(eab);
    free(url);
    free(std);
    EVP_PKEY_free(acct);
}

/* ---- key authorization and dns-01 -------------------------------------- */

static void test_key_authorization_and_dns01(void **state)
{
    (void)state;
    char *ka = acme_key_authorization("tok-EN_1", "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    assert_string_equal(ka, "tok-EN_1.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");

    /* FIPS 180-2 vector: SHA-256("abc"). */
    static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                    0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
                                    0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    char *want = b64url_encode(abc, sizeof(abc));
    char *txt = acme_dns01_txt("abc");
    assert_string_equal(txt, want);
    assert_int_equal(strlen(txt), 43);
    free(txt);
    free(want);

    txt = acme_dns01_txt(ka);
    uint8_t md[32];
    unsigned int mdlen = 0;
    assert_int_equal(EVP_Digest(ka, strlen(ka), md, &mdlen, EVP_sha256(), NULL), 1);
    want = b64url_encode(md, mdlen);
    assert_string_equal(txt, want);
    free(txt);
    free(want);
    free(ka);
}

/* ---- CSR ---------------------------------------------------------------- */

static void check_csr(enum cfg_key_type t)
{
    EVP_PKEY *k = gen(t);
    const char *names[] = {"example.org", "www.example.org", "*.api.example.org"};
    char *b64 = NULL;

    assert_int_equal(acme_csr_build(k, names, 3, &b64), 0);
    assert_null(strchr(b64, '='));
    size_t derlen = 0;
    uint8_t *der = unb64url(b64, &derlen);
    const uint8_t *p = der;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)derlen);
    assert_non_null(req);
    assert_ptr_equal(p, der + derlen);
    assert_int_equal(X509_REQ_verify(req, k), 1);
    assert_int_equal(X509_NAME_entry_count(X509_REQ_get_subject_name(req)), 0);
    EVP_PKEY *pub = X509_REQ_get_pubkey(req);
    assert_int_equal(EVP_PKEY_eq(pub, k), 1);
    EVP_PKEY_free(pub);
    assert_int_equal(X509_REQ_get_signature_nid(req),
                     EVP_PKEY_is_a(k, "RSA") ? NID_sha256WithRSAEncryption : NID_ecdsa_with_SHA256);

    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    assert_non_null(exts);
    GENERAL_NAMES *gens = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
    assert_non_null(gens);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 3);
    for (int i = 0; i < 3; i++) {
        int type = 0;
        const ASN1_STRING *s = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens, i), &type);
        assert_int_equal(type, GEN_DNS);
        assert_int_equal(ASN1_STRING_length(s), strlen(names[i]));
        assert_memory_equal(ASN1_STRING_get0_data(s), names[i], strlen(names[i]));
    }
    GENERAL_NAMES_free(gens);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    free(der);
    free(b64);
    EVP_PKEY_free(k);
}

static void test_csr_parses_back(void **state)
{
    (void)state;
    check_csr(CFG_KEY_EC_P256);
    check_csr(CFG_KEY_EC_P384);
    check_csr(CFG_KEY_RSA2048);
}

/* draft-ietf-acme-dns-persist-02 §10.2's test vector: the hashed account
 * URI for example.com and for the domain-omitted form "*", and the records
 * of §10.1, §10.4 and §10.6. */
static void test_dns_persist_value(void **state)
{
    const char *tp = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    const char *pre = "https://ca.example/account-hash/";
    (void)state;
    char *u = acme_dns_persist_account_uri(pre, "example.com", tp, "https://ca.example/acct/123");
    assert_string_equal(u, "https://ca.example/account-hash/sha-256/"
                           "5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw");
    char *star = acme_dns_persist_account_uri(pre, "*", tp, "https://ca.example/acct/123");
    assert_string_equal(star, "https://ca.example/account-hash/sha-256/"
                              "NpDnSwUthQK8zCgFdefYxAdAVPnygMLbs9US6oO-5ug");
    assert_null(acme_dns_persist_account_uri(pre, "", tp, "https://ca.example/acct/123"));
    char *v = acme_dns_persist_value("authority.example", u, false, 0);
    assert_string_equal(v, "authority.example; accounturi=https://ca.example/account-hash/"
                           "sha-256/5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw");
    free(v);
    v = acme_dns_persist_value("authority.example", u, true, 1721952000);
    assert_string_equal(v, "authority.example; accounturi=https://ca.example/account-hash/"
                           "sha-256/5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw; "
                           "policy=wildcard; persistUntil=1721952000");
    free(v);
    free(u);
    free(star);
}

/* draft-ietf-acme-dns-account-label-03's example account URL and label. */
static void test_dns_account_label(void **state)
{
    (void)state;
    char *l = acme_dns_account_label("https://example.com/acme/acct/ExampleAccount");
    assert_string_equal(l, "_ujmmovf2vn55tgye");
    free(l);
}

static void test_csr_ip_sans(void **state)
{
    EVP_PKEY *k = gen(CFG_KEY_EC_P256);
    const char *names[] = {"192.0.2.10", "2001:db8::1", "a.example"};
    static const uint8_t v4[4] = {192, 0, 2, 10};
    static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    char *b64 = NULL;
    size_t derlen = 0;

    (void)state;
    assert_int_equal(acme_csr_build(k, names, 3, &b64), 0);
    uint8_t *der = unb64url(b64, &derlen);
    const uint8_t *p = der;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)derlen);
    assert_non_null(req);
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    GENERAL_NAMES *gens = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 3);
    int type = 0;
    const ASN1_STRING *s = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens, 0), &type);
    assert_int_equal(type, GEN_IPADD);
    assert_int_equal(ASN1_STRING_length(s), 4);
    assert_memory_equal(ASN1_STRING_get0_data(s), v4, 4);
    s = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens, 1), &type);
    assert_int_equal(type, GEN_IPADD);
    assert_int_equal(ASN1_STRING_length(s), 16);
    assert_memory_equal(ASN1_STRING_get0_data(s), v6, 16);
    s = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens, 2), &type);
    assert_int_equal(type, GEN_DNS);
    GENERAL_NAMES_free(gens);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    free(der);
    free(b64);
    EVP_PKEY_free(k);
}

static void test_csr_rejects_bad_names(void **state)
{
    (void)state;
    EVP_PKEY *k = gen(CFG_KEY_EC_P256);
    char *b64 = NULL;
    const char *empty[] = {""};
    const char *space[] = {"ok.example", "bad name.example"};
    assert_int_equal(acme_csr_build(k, empty, 0, &b64), -EINVAL);
    assert_int_equal(acme_csr_build(k, empty, 1, &b64), -EINVAL);
    assert_int_equal(acme_csr_build(k, space, 2, &b64), -EINVAL);
    assert_null(b64);
    EVP_PKEY_free(k);
}

/* ---- certificates made for the tests ------------------------------------ */

struct certspec {
    EVP_PKEY *key;        /* subject public key */
    const char *cn;       /* subject CN or NULL */
    X509 *issuer;         /* NULL: self-signed */
    EVP_PKEY *issuer_key; /* signs */
    const uint8_t *serial;
    size_t serial_len;
    const char *const *sans;
    size_t n_sans;
    const uint8_t *aki;
    size_t aki_len;
    time_t not_before;
    time_t not_after;
};

static X509 *make_cert(const struct certspec *s)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    BIGNUM *bn = BN_bin2bn(s->serial, (int)s->serial_len, NULL);
    ASN1_INTEGER *ser = BN_to_ASN1_INTEGER(bn, NULL);
    assert_int_equal(X509_set_serialNumber(x, ser), 1);
    ASN1_INTEGER_free(ser);
    BN_free(bn);
    X509_NAME *name = X509_NAME_new();
    if (s->cn != NULL)
        assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                    (const unsigned char *)s->cn, -1, -1, 0),
                         1);
    assert_int_equal(X509_set_subject_name(x, name), 1);
    assert_int_equal(
        X509_set_issuer_name(x, s->issuer != NULL ? X509_get_subject_name(s->issuer) : name), 1);
    X509_NAME_free(name);
    assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), s->not_before));
    assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), s->not_after));
    assert_int_equal(X509_set_pubkey(x, s->key), 1);
    if (s->n_sans > 0) {
        GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
        for (size_t i = 0; i < s->n_sans; i++) {
            GENERAL_NAME *g = GENERAL_NAME_new();
            ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
            ASN1_STRING_set(ia5, s->sans[i], -1);
            GENERAL_NAME_set0_value(g, GEN_DNS, ia5);
            sk_GENERAL_NAME_push(gens, g);
        }
        assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT),
                         1);
        GENERAL_NAMES_free(gens);
    }
    if (s->aki_len > 0) {
        AUTHORITY_KEYID *aki = AUTHORITY_KEYID_new();
        aki->keyid = ASN1_OCTET_STRING_new();
        ASN1_OCTET_STRING_set(aki->keyid, s->aki, (int)s->aki_len);
        assert_int_equal(
            X509_add1_ext_i2d(x, NID_authority_key_identifier, aki, 0, X509V3_ADD_DEFAULT), 1);
        AUTHORITY_KEYID_free(aki);
    }
    assert_true(X509_sign(x, s->issuer_key, EVP_sha256()) > 0);
    return x;
}

static char *cert_pem(X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509(bio, x), 1);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(bio);
    return out;
}

static char *concat(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);
    snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

/* A root, an intermediate and a leaf, as a CA would return leaf+intermediate. */
struct testchain {
    EVP_PKEY *root_key, *int_key, *leaf_key;
    X509 *root, *inter, *leaf;
    char *root_pem, *int_pem, *leaf_pem;
    char *chain; /* leaf + intermediate */
};

static const uint8_t leaf_serial[] = {0x03, 0xab, 0xcd, 0xef, 0x01, 0x23};
static const char *const leaf_sans[] = {"example.org", "www.example.org"};
#define LEAF_NB ((time_t)1767225600) /* 2026-01-01T00:00:00Z */
#define LEAF_NA ((time_t)1774915200) /* 2026-03-31T00:00:00Z */

static void testchain_init(struct testchain *t)
{
    static const uint8_t one[] = {1}, two[] = {2};
    t->root_key = gen(CFG_KEY_EC_P384);
    t->int_key = gen(CFG_KEY_EC_P256);
    t->leaf_key = gen(CFG_KEY_EC_P256);
    struct certspec root = {.key = t->root_key,
                            .cn = "Certloop Test Root X1",
                            .issuer_key = t->root_key,
                            .serial = one,
                            .serial_len = 1,
                            .not_before = 1700000000,
                            .not_after = 2000000000};
    t->root = make_cert(&root);
    struct certspec inter = {.key = t->int_key,
                             .cn = "Certloop Test Intermediate E1",
                             .issuer = t->root,
                             .issuer_key = t->root_key,
                             .serial = two,
                             .serial_len = 1,
                             .not_before = 1700000000,
                             .not_after = 1900000000};
    t->inter = make_cert(&inter);
    static const uint8_t aki[] = {1, 2, 3, 4};
    struct certspec leaf = {.key = t->leaf_key,
                            .issuer = t->inter,
                            .issuer_key = t->int_key,
                            .serial = leaf_serial,
                            .serial_len = sizeof(leaf_serial),
                            .sans = leaf_sans,
                            .n_sans = 2,
                            .aki = aki,
                            .aki_len = sizeof(aki),
                            .not_before = LEAF_NB,
                            .not_after = LEAF_NA};
    t->leaf = make_cert(&leaf);
    t->root_pem = cert_pem(t->root);
    t->int_pem = cert_pem(t->inter);
    t->leaf_pem = cert_pem(t->leaf);
    t->chain = concat(t->leaf_pem, "\n", t->int_pem);
}

static void testchain_fini(struct testchain *t)
{
    EVP_PKEY_free(t->root_key);
    EVP_PKEY_free(t->int_key);
    EVP_PKEY_free(t->leaf_key);
    X509_free(t->root);
    X509_free(t->inter);
    X509_free(t->leaf);
    free(t->root_pem);
    free(t->int_pem);
    free(t->leaf_pem);
    free(t->chain);
}

static int chain_setup(void **state)
{
    struct testchain *t = calloc(1, sizeof(*t));
    testchain_init(t);
    *state = t;
    return 0;
}

static int chain_teardown(void **state)
{
    testchain_fini(*state);
    free(*state);
    return 0;
}

/* ---- chain parsing ------------------------------------------------------ */

static void expect_parse_error(const char *text, size_t len);

static void test_chain_parse_leaf_and_intermediate(void **state)
{
    struct testchain *t = *state;
    struct acme_chain c;

    assert_int_equal(acme_chain_parse(t->chain, strlen(t->chain), &c), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.pem[0], t->leaf_pem);
    assert_string_equal(c.pem[1], t->int_pem);
    assert_int_equal(c.not_before, (int64_t)LEAF_NB);
    assert_int_equal(c.not_after, (int64_t)LEAF_NA);
    /* The topmost certificate given is the intermediate: its issuer. */
    assert_string_equal(c.issuer_cn, "Certloop Test Root X1");
    assert_string_equal(c.serial_hex, "03abcdef0123");
    assert_int_equal(c.n_sans, 2);
    assert_string_equal(c.sans[0], "example.org");
    assert_string_equal(c.sans[1], "www.example.org");
    acme_chain_fini(&c);

    /* Leaf alone: the issuer is the leaf's own issuer. */
    assert_int_equal(acme_chain_parse(t->leaf_pem, strlen(t->leaf_pem), &c), 0);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.issuer_cn, "Certloop Test Intermediate E1");
    acme_chain_fini(&c);

    /* Three certificates, CRLF line ends and surrounding whitespace. */
    char *three = concat(t->chain, "\r\n\r\n", t->root_pem);
    size_t n3 = strlen(three);
    char *crlf = malloc(2 * n3 + 8);
    size_t o = 0;
    crlf[o++] = ' ';
    crlf[o++] = '\n';
    for (size_t i = 0; i < n3; i++) {
        if (three[i] == '\n' && (i == 0 || three[i - 1] != '\r'))
            crlf[o++] = '\r';
        crlf[o++] = three[i];
    }
    crlf[o++] = '\t';
    crlf[o] = '\0';
    assert_int_equal(acme_chain_parse(crlf, o, &c), 0);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.pem[2], t->root_pem);
    assert_string_equal(c.issuer_cn, "Certloop Test Root X1"); /* self-signed root */
    acme_chain_fini(&c);
    free(crlf);
    free(three);

    /* The issuers are remembered by their DER: a second parse answers the
     * same, and the leaf alone is still the leaf's issuer. */
    for (int round = 0; round < 2; round++) {
        assert_int_equal(acme_chain_parse(t->chain, strlen(t->chain), &c), 0);
        assert_int_equal(c.n, 2);
        assert_string_equal(c.pem[1], t->int_pem);
        assert_string_equal(c.issuer_cn, "Certloop Test Root X1");
        assert_string_equal(c.serial_hex, "03abcdef0123");
        acme_chain_fini(&c);
    }
    /* a cached issuer followed by garbage is still refused */
    char *bad =
        concat(t->chain, "\n", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    expect_parse_error(bad, strlen(bad));
    free(bad);
}

static void expect_parse_error(const char *text, size_t len)
{
    struct acme_chain c;
    memset(&c, 0x5a, sizeof(c));
    assert_int_equal(acme_chain_parse(text, len, &c), ERR_PARSE);
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_chain_parse_rejects_garbage(void **state)
{
    struct testchain *t = *state;
    const char pk[] = "-----BEGIN PRIVATE KEY-----\n"
                      "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n"
                      "-----END PRIVATE KEY-----\n";

    expect_parse_error("", 0);
    expect_parse_error(" \n\t\r\n", 5);
    expect_parse_error("hello", 5);

    char *s = concat("garbage\n", t->chain, "");
    expect_parse_error(s, strlen(s));
    free(s);
    s = concat(t->leaf_pem, "text between blocks\n", t->int_pem);
    expect_parse_error(s, strlen(s));
    free(s);
    s = concat(t->chain, "trailing", "");
    expect_parse_error(s, strlen(s));
    free(s);
    /* A private key block is not part of a chain. */
    s = concat(t->chain, "\n", pk);
    expect_parse_error(s, strlen(s));
    free(s);
    s = concat(pk, t->chain, "");
    expect_parse_error(s, strlen(s));
    free(s);
    /* Truncated: at every tenth byte of the second block, and inside the
     * END line of the first. */
    size_t full = strlen(t->chain);
    size_t first = strlen(t->leaf_pem);
    for (size_t cut = first + 2; cut < full - 1; cut += 10)
        expect_parse_error(t->chain, cut);
    expect_parse_error(t->chain, first - 5);
    /* A NUL byte inside is garbage too. */
    s = strdup(t->chain);
    s[first + 40] = '\0';
    expect_parse_error(s, full);
    free(s);
    /* A damaged base64 body (a byte of the DER changed into a '*'). */
    s = strdup(t->chain);
    s[40] = '*';
    expect_parse_error(s, full);
    free(s);
    /* Valid base64 that is not a certificate. */
    const char notcert[] = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
    expect_parse_error(notcert, strlen(notcert));
    /* RFC 1421 headers inside the block. */
    s = concat("-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n",
               t->leaf_pem + strlen("-----BEGIN CERTIFICATE-----\n"), "");
    expect_parse_error(s, strlen(s));
    free(s);
}

static void test_chain_parse_rejects_trailing_der(void **state)
{
    struct testchain *t = *state;
    uint8_t *der = NULL;
    int n = i2d_X509(t->leaf, &der);
    assert_true(n > 0);
    uint8_t *longer = malloc((size_t)n + 3);
    memcpy(longer, der, (size_t)n);
    memcpy(longer + n, "\x01\x02\x03", 3);
    char *b64 = b64_encode(longer, (size_t)n + 3);
    char *s = concat("-----BEGIN CERTIFICATE-----\n", b64, "\n-----END CERTIFICATE-----\n");
    expect_parse_error(s, strlen(s));
    /* The same without the extra bytes parses. */
    char *b64ok = b64_encode(der, (size_t)n);
    char *ok = concat("-----BEGIN CERTIFICATE-----\n", b64ok, "\n-----END CERTIFICATE-----\n");
    struct acme_chain c;
    assert_int_equal(acme_chain_parse(ok, strlen(ok), &c), 0);
    assert_string_equal(c.pem[0], t->leaf_pem); /* re-encoded in 64-column lines */
    acme_chain_fini(&c);
    free(ok);
    free(b64ok);
    free(s);
    free(b64);
    free(longer);
    OPENSSL_free(der);
}

static void test_chain_matches_key(void **state)
{
    struct testchain *t = *state;
    struct acme_chain c;

    assert_int_equal(acme_chain_parse(t->chain, strlen(t->chain), &c), 0);
    assert_true(acme_chain_matches_key(&c, t->leaf_key));
    assert_false(acme_chain_matches_key(&c, t->int_key)); /* same type, other key */
    EVP_PKEY *rsa = gen(CFG_KEY_RSA2048);
    assert_false(acme_chain_matches_key(&c, rsa)); /* other type */
    EVP_PKEY_free(rsa);
    /* The public half alone matches too (e.g. a key loaded from a cert). */
    assert_true(acme_chain_matches_key(&c, X509_get0_pubkey(t->leaf)));
    assert_int_equal(ERR_peek_error(), 0);
    acme_chain_fini(&c);
}

/* RFC 9773 §4.1 example: AKI keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:
 * 7B:A0:AE:2C:DE:01:C8:D4 and serial 0x0087654321. */
static void test_ari_cert_id_rfc9773_example(void **state)
{
    struct testchain *t = *state;
    static const uint8_t aki[] = {0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3,
                                  0x7B, 0x84, 0x7B, 0xA0, 0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4};
    static const uint8_t serial[] = {0x87, 0x65, 0x43, 0x21};
    static const char *const sans[] = {"example.com"};
    struct certspec spec = {.key = t->leaf_key,
                            .issuer = t->inter,
                            .issuer_key = t->int_key,
                            .serial = serial,
                            .serial_len = sizeof(serial),
                            .sans = sans,
                            .n_sans = 1,
                            .aki = aki,
                            .aki_len = sizeof(aki),
                            .not_before = LEAF_NB,
                            .not_after = LEAF_NA};
    X509 *x = make_cert(&spec);
    char *pem = cert_pem(x);
    struct acme_chain c;
    assert_int_equal(acme_chain_parse(pem, strlen(pem), &c), 0);
    assert_string_equal(c.serial_hex, "87654321");
    char *id = acme_ari_cert_id(&c);
    assert_non_null(id);
    assert_string_equal(id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    free(id);
    acme_chain_fini(&c);
    free(pem);
    X509_free(x);

    /* A serial without the sign byte, from the shared test chain. */
    assert_int_equal(acme_chain_parse(t->chain, strlen(t->chain), &c), 0);
    id = acme_ari_cert_id(&c);
    char *want_serial = b64url_encode(leaf_serial, sizeof(leaf_serial));
    static const uint8_t chain_aki[] = {1, 2, 3, 4};
    char *want_aki = b64url_encode(chain_aki, sizeof(chain_aki));
    char want[128];
    snprintf(want, sizeof(want), "%s.%s", want_aki, want_serial);
    assert_string_equal(id, want);
    free(want_aki);
    free(want_serial);
    free(id);
    acme_chain_fini(&c);

    /* No AKI: no CertID. */
    spec.aki_len = 0;
    x = make_cert(&spec);
    pem = cert_pem(x);
    assert_int_equal(acme_chain_parse(pem, strlen(pem), &c), 0);
    assert_null(acme_ari_cert_id(&c));
    acme_chain_fini(&c);
    free(pem);
    X509_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_ec_p256_roundtrip),
        cmocka_unit_test(test_key_ec_p384_roundtrip),
        cmocka_unit_test(test_key_rsa_roundtrips),
        cmocka_unit_test(test_key_ec_pem_is_openssls),
        cmocka_unit_test(test_key_from_pem_rejects_garbage),
        cmocka_unit_test(test_key_traditional_pem_and_other_curve),
        cmocka_unit_test(test_key_generate_concurrent_threads),
        cmocka_unit_test(test_thumbprint_rfc7638_example),
        cmocka_unit_test(test_jwk_ec_p256_padded),
        cmocka_unit_test(test_jwk_ec_p384_padded),
        cmocka_unit_test(test_jws_es256_verifies),
        cmocka_unit_test(test_jws_es384_verifies),
        cmocka_unit_test(test_jws_rs256_verifies),
        cmocka_unit_test(test_jws_post_as_get_payload_is_empty_string),
        cmocka_unit_test(test_jws_without_nonce_for_key_change),
        cmocka_unit_test(test_jws_retired_key_leaves_memory),
        cmocka_unit_test(test_jws_key_free_drops_one_reference),
        cmocka_unit_test(test_eab_hs256_verifies),
        cmocka_unit_test(test_key_authorization_and_dns01),
        cmocka_unit_test(test_csr_parses_back),
        cmocka_unit_test(test_dns_account_label),
        cmocka_unit_test(test_dns_persist_value),
        cmocka_unit_test(test_csr_ip_sans),
        cmocka_unit_test(test_csr_rejects_bad_names),
        cmocka_unit_test_setup_teardown(test_chain_parse_leaf_and_intermediate, chain_setup,
                                        chain_teardown),
        cmocka_unit_test_setup_teardown(test_chain_parse_rejects_garbage, chain_setup,
                                        chain_teardown),
        cmocka_unit_test_setup_teardown(test_chain_parse_rejects_trailing_der, chain_setup,
                                        chain_teardown),
        cmocka_unit_test_setup_teardown(test_chain_matches_key, chain_setup, chain_teardown),
        cmocka_unit_test_setup_teardown(test_ari_cert_id_rfc9773_example, chain_setup,
                                        chain_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
