/* Private keys at rest in the database (issue 14): AES-256-GCM with the
 * data key from encryption_key_file, bound to the certificate name and
 * generation by the associated data, so a dump reveals no key and a sealed
 * key copied to another row does not open. Pure functions; the key file is
 * read once at start. Key rotation (reseal everything under a new key) is
 * the store's job: the key id in each blob says which key sealed it. */
#include "store/pg_internal.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "CLK1"
#define MAGIC_LEN 4
#define ID_LEN 8
#define NONCE_LEN                                                                                  \
    12 /* GCM's natural nonce size (NIST SP 800-38D): random, never reused in practice */
#define TAG_LEN 16
#define KEY_FILE_MAX 4096
#define AD_LABEL "certloop private key v1"

/* The key id: SHA-256("certloop key id" || key), first 8 bytes. It names
 * the key without revealing it. */
static int key_id(struct pg_key *k)
{
    static const char label[] = "certloop key id";
    uint8_t md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, label, sizeof(label) - 1) == 1 &&
             EVP_DigestUpdate(ctx, k->key, PG_KEY_LEN) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &mdlen) == 1;

    EVP_MD_CTX_free(ctx);
    if (!ok) {
        ERR_clear_error();
        return ERR_CRYPTO;
    }
    memcpy(k->id, md, ID_LEN);
    OPENSSL_cleanse(md, sizeof(md));
    return 0;
}

int pg_key_parse(const char *text, size_t len, struct pg_key *out)
{
    struct pg_key k;
    int rc = key32_parse(text, len, k.key);

    if (rc < 0)
        goto out;
    rc = key_id(&k);
    if (rc == 0)
        *out = k;
out:
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

int pg_key_load(const char *path, struct pg_key *out)
{
    struct buf b = BUF_INIT(KEY_FILE_MAX);
    int rc = buf_read_file(&b, path);

    if (rc < 0) {
        log_error(LOG_STORE, "%s: encryption key: %s", path, err_str(rc));
        goto out;
    }
    rc = pg_key_parse(b.data, b.len, out);
    if (rc < 0)
        log_error(LOG_STORE,
                  "%s: encryption key: expected 64 hex digits or the base64 of 32 bytes "
                  "(e.g. from `openssl rand -hex 32`)",
                  path);
out:
    if (b.data != NULL)
        OPENSSL_cleanse(b.data, b.len);
    buf_fini(&b);
    return rc;
}

void pg_key_wipe(struct pg_key *k)
{
    OPENSSL_cleanse(k, sizeof(*k));
}

/* AD = label NUL cert NUL generation: the NULs keep ("a","bc") and
 * ("ab","c") apart. */
static uint8_t *make_ad(const char *cert, const char *generation, size_t *len)
{
    size_t a = sizeof(AD_LABEL), c = strlen(cert) + 1, g = strlen(generation);
    uint8_t *ad = xmalloc(a + c + g);

    memcpy(ad, AD_LABEL, a);
    memcpy(ad + a, cert, c);
    memcpy(ad + a + c, generation, g);
    *len = a + c + g;
    return ad;
}

/* One GCM pass. enc: in → out and tag written; !enc: tag checked. */
static int gcm(bool enc, const struct pg_key *k, const uint8_t *nonce, const uint8_t *ad,
               size_t adlen, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, ok = ctx != NULL;

    if (len > INT32_MAX || adlen > INT32_MAX)
        ok = 0;
    ok = ok && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1;
    ok = ok && EVP_CipherInit_ex(ctx, NULL, NULL, k->key, nonce, enc) == 1;
    ok = ok && EVP_CipherUpdate(ctx, NULL, &n, ad, (int)adlen) == 1;
    ok = ok && (len == 0 || EVP_CipherUpdate(ctx, out, &n, in, (int)len) == 1);
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1;
    ok = ok && EVP_CipherFinal_ex(ctx, out + (len == 0 ? 0 : n), &n) == 1;
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    ERR_clear_error(); /* a failed tag check is an answer, not a library fault */
    return ok ? 0 : ERR_CRYPTO;
}

int pg_seal(const struct pg_key *k, const char *cert, const char *generation, const uint8_t *pt,
            size_t len, uint8_t **out, size_t *out_len)
{
    size_t total = PG_SEAL_OVERHEAD + len, adlen;
    uint8_t *blob = xmalloc(total);
    uint8_t *nonce = blob + MAGIC_LEN + ID_LEN;
    uint8_t *ct = nonce + NONCE_LEN;
    uint8_t *ad = make_ad(cert, generation, &adlen);
    int rc;

    memcpy(blob, MAGIC, MAGIC_LEN);
    memcpy(blob + MAGIC_LEN, k->id, ID_LEN);
    if (RAND_bytes(nonce, NONCE_LEN) != 1) {
        log_error(LOG_STORE, "seal cert=%s: RAND_bytes failed", cert);
        ERR_clear_error();
        rc = ERR_CRYPTO;
        goto out;
    }
    rc = gcm(true, k, nonce, ad, adlen, pt, len, ct, ct + len);
    if (rc < 0) {
        log_error(LOG_STORE, "seal cert=%s: AES-256-GCM failed", cert);
        goto out;
    }
    *out = blob;
    *out_len = total;
    blob = NULL;
out:
    free(ad);
    free(blob);
    return rc;
}

int pg_unseal(const struct pg_key *k, const char *cert, const char *generation, const uint8_t *blob,
              size_t len, uint8_t **out, size_t *out_len)
{
    if (len < PG_SEAL_OVERHEAD || memcmp(blob, MAGIC, MAGIC_LEN) != 0)
        return ERR_PARSE;
    if (CRYPTO_memcmp(blob + MAGIC_LEN, k->id, ID_LEN) != 0)
        return -EKEYREJECTED;

    size_t ptlen = len - PG_SEAL_OVERHEAD, adlen;
    const uint8_t *nonce = blob + MAGIC_LEN + ID_LEN;
    const uint8_t *ct = nonce + NONCE_LEN;
    uint8_t tag[TAG_LEN];
    uint8_t *pt = xmalloc(ptlen + 1);
    uint8_t *ad = make_ad(cert, generation, &adlen);

    memcpy(tag, ct + ptlen, TAG_LEN);
    int rc = gcm(false, k, nonce, ad, adlen, ct, ptlen, pt, tag);
    free(ad);
    if (rc < 0) { /* nothing of an unauthenticated plaintext leaves here */
        OPENSSL_cleanse(pt, ptlen + 1);
        free(pt);
        return ERR_CRYPTO;
    }
    pt[ptlen] = '\0';
    *out = pt;
    *out_len = ptlen;
    return 0;
}

char *pg_bytea_hex(const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *s = xmalloc(2 * n + 3);

    s[0] = '\\';
    s[1] = 'x';
    for (size_t i = 0; i < n; i++) {
        s[2 + 2 * i] = digits[p[i] >> 4];
        s[3 + 2 * i] = digits[p[i] & 15];
    }
    s[2 * n + 2] = '\0';
    return s;
}

uint8_t *pg_hex_bytes(const char *hex, size_t *n)
{
    size_t len = strlen(hex);

    if (len % 2 != 0)
        return NULL;
    uint8_t *b = xmalloc(len / 2 + 1);
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return NULL;
        }
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    *n = len / 2;
    return b;
}
