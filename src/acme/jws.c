/* JOSE for ACME: the public JWK of an account key, its RFC 7638 thumbprint,
 * flattened JWS bodies (RFC 8555 §6.2), External Account Binding (§7.3.4)
 * and key authorizations. Pure functions (but for the kept signing context
 * of the last EC key, see signer); transport and nonces live in the state
 * machine, which only hands us strings. */
#include "acme/acme.h"
#include "acme/crypto_internal.h"
#include "util/b64.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>

/* The required JWK members, already base64url-encoded. For EC a = x, b = y;
 * for RSA a = n, b = e. */
struct jwk_parts {
    enum acme_key_kind kind;
    char *a;
    char *b;
};

static void jwk_parts_fini(struct jwk_parts *p)
{
    free(p->a);
    free(p->b);
    p->a = p->b = NULL;
}

static char *bn_b64url(const BIGNUM *bn, int pad)
{
    int n = pad > 0 ? pad : BN_num_bytes(bn);
    if (n <= 0)
        n = 1; /* a zero value still needs one octet (RFC 7518 §6.3.1.2) */
    uint8_t *bytes = xmalloc((size_t)n);
    if (BN_bn2binpad(bn, bytes, n) != n) {
        free(bytes);
        return NULL;
    }
    char *s = b64url_encode(bytes, (size_t)n);
    free(bytes);
    return s;
}

static int jwk_parts_get(EVP_PKEY *key, struct jwk_parts *out)
{
    BIGNUM *a = NULL, *b = NULL;
    int rc = ERR_CRYPTO;

    out->kind = acme_key_kind_of(key);
    out->a = out->b = NULL;
    switch (out->kind) {
    case ACME_KIND_P256:
    case ACME_KIND_P384: {
        /* RFC 7518 §6.2.1.2: x and y are the full field size, left-padded. */
        int field = out->kind == ACME_KIND_P256 ? 32 : 48;
        if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &a) != 1 ||
            EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &b) != 1)
            goto out;
        out->a = bn_b64url(a, field);
        out->b = bn_b64url(b, field);
        break;
    }
    case ACME_KIND_RSA:
        /* RFC 7518 §6.3.1: minimal big-endian octets, no leading zero. */
        if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &a) != 1 ||
            EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &b) != 1)
            goto out;
        out->a = bn_b64url(a, 0);
        out->b = bn_b64url(b, 0);
        break;
    default:
        rc = -EINVAL;
        goto out;
    }
    if (out->a == NULL || out->b == NULL) {
        jwk_parts_fini(out);
        goto out;
    }
    rc = 0;
out:
    BN_free(a);
    BN_free(b);
    return rc;
}

json_t *acme_jwk(EVP_PKEY *key)
{
    struct jwk_parts p;
    json_t *j = NULL;

    int rc = jwk_parts_get(key, &p);
    if (rc == -EINVAL) {
        log_error(LOG_ACME, "jwk: unsupported account key type");
        return NULL;
    }
    if (rc < 0) {
        acme_ossl_error("jwk", "public key parameters", true);
        return NULL;
    }
    if (p.kind == ACME_KIND_RSA)
        j = json_pack("{s:s, s:s, s:s}", "e", p.b, "kty", "RSA", "n", p.a);
    else
        j = json_pack("{s:s, s:s, s:s, s:s}", "crv", p.kind == ACME_KIND_P256 ? "P-256" : "P-384",
                      "kty", "EC", "x", p.a, "y", p.b);
    jwk_parts_fini(&p);
    if (j == NULL)
        abort(); /* json_pack only fails on allocation here */
    return j;
}

char *acme_jwk_thumbprint(EVP_PKEY *key)
{
    struct jwk_parts p;
    char *canon;
    uint8_t md[32];

    int rc = jwk_parts_get(key, &p);
    if (rc == -EINVAL) {
        log_error(LOG_ACME, "jwk thumbprint: unsupported account key type");
        return NULL;
    }
    if (rc < 0) {
        acme_ossl_error("jwk thumbprint", "public key parameters", true);
        return NULL;
    }
    /* RFC 7638 §3.2: required members only, lexicographic order, no
     * whitespace. Every value is base64url or a fixed name, so no JSON
     * escaping can occur and the string is built directly. */
    if (p.kind == ACME_KIND_RSA)
        canon = xasprintf("{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", p.b, p.a);
    else
        canon = xasprintf("{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                          p.kind == ACME_KIND_P256 ? "P-256" : "P-384", p.a, p.b);
    jwk_parts_fini(&p);
    rc = acme_sha256(canon, strlen(canon), md);
    free(canon);
    if (rc < 0) {
        log_error(LOG_ACME, "jwk thumbprint: sha256 failed");
        return NULL;
    }
    return b64url_encode(md, sizeof(md));
}

/* The account key signs almost every request, and setting up a signature
 * (EVP_DigestSignInit: fetching the algorithm, a key context) costs a tenth
 * of the signature itself (issue 16's profile). For EC the last key's
 * signing context and the fetched digests are kept: the input is hashed
 * with EVP_Digest and the hash signed with EVP_PKEY_sign on that context.
 * The entry holds a reference to its key, so a key pointer seen again is
 * that key. Shared by every thread that signs, hence the lock (held while
 * signing: a context signs one thing at a time). That reference would keep
 * a retired account key (after a rollover, another account, at shutdown) in
 * memory until some other key signs, which in a quiet daemon can be months:
 * its owners free it with acme_key_free, which drops the entry first. */
static struct {
    pthread_mutex_t lock;
    EVP_PKEY *key;     /* ref */
    EVP_PKEY_CTX *ctx; /* owned: EVP_PKEY_sign_init done for key */
    EVP_MD *md[2];     /* owned: SHA-256, SHA-384, fetched once */
} signer = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Forgets the kept signing context and its key reference; signer.lock held. */
static void signer_drop_locked(void)
{
    EVP_PKEY_CTX_free(signer.ctx);
    signer.ctx = NULL;
    EVP_PKEY_free(signer.key);
    signer.key = NULL;
}

void acme_key_free(EVP_PKEY *key)
{
    if (key == NULL)
        return;
    pthread_mutex_lock(&signer.lock);
    if (signer.key == key)
        signer_drop_locked();
    pthread_mutex_unlock(&signer.lock);
    EVP_PKEY_free(key);
}

bool acme_signer_holds(const EVP_PKEY *key)
{
    pthread_mutex_lock(&signer.lock);
    bool held = key != NULL && signer.key == key;
    pthread_mutex_unlock(&signer.lock);
    return held;
}

/* The DER ECDSA-Sig-Value of input's hash under key (kind P256 or P384);
 * called with signer.lock held. 0 or ERR_CRYPTO (OpenSSL's queue kept). */
static int ec_sign_locked(EVP_PKEY *key, enum acme_key_kind kind, const char *input, size_t len,
                          uint8_t **der, size_t *derlen)
{
    int i = kind == ACME_KIND_P384 ? 1 : 0;
    uint8_t hash[EVP_MAX_MD_SIZE];
    unsigned int hlen = 0;
    size_t n = 0;

    if (signer.md[i] == NULL)
        signer.md[i] = EVP_MD_fetch(NULL, i == 1 ? "SHA384" : "SHA256", NULL);
    if (signer.key != key) {
        signer_drop_locked();
        signer.ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
        if (signer.ctx == NULL || EVP_PKEY_sign_init(signer.ctx) != 1) {
            EVP_PKEY_CTX_free(signer.ctx);
            signer.ctx = NULL;
            return ERR_CRYPTO;
        }
        EVP_PKEY_up_ref(key);
        signer.key = key;
    }
    if (signer.md[i] == NULL || EVP_Digest(input, len, hash, &hlen, signer.md[i], NULL) != 1 ||
        EVP_PKEY_sign(signer.ctx, NULL, &n, hash, hlen) != 1)
        return ERR_CRYPTO;
    uint8_t *out = xmalloc(n);
    if (EVP_PKEY_sign(signer.ctx, out, &n, hash, hlen) != 1) {
        free(out);
        return ERR_CRYPTO;
    }
    *der = out;
    *derlen = n;
    return 0;
}

/* Signs input with key; for EC the DER ECDSA-Sig-Value is converted to the
 * JWS form r || s, each left-padded to the field size (RFC 7518 §3.4). */
static int sign_input(EVP_PKEY *key, enum acme_key_kind kind, const char *input, size_t len,
                      uint8_t **sig, size_t *siglen)
{
    EVP_MD_CTX *ctx = NULL;
    uint8_t *der = NULL;
    size_t derlen = 0;
    ECDSA_SIG *es = NULL;
    int rc = ERR_CRYPTO;

    if (kind == ACME_KIND_NONE) {
        rc = -EINVAL;
        goto out;
    }
    if (kind == ACME_KIND_RSA) {
        ctx = EVP_MD_CTX_new();
        if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1)
            goto out;
        /* one signature per context: OpenSSL need not copy it before the
         * final step (that copy was a tenth of a signature's cost) */
        EVP_MD_CTX_set_flags(ctx, EVP_MD_CTX_FLAG_FINALISE);
        if (EVP_DigestSign(ctx, NULL, &derlen, (const uint8_t *)input, len) != 1)
            goto out;
        der = xmalloc(derlen);
        if (EVP_DigestSign(ctx, der, &derlen, (const uint8_t *)input, len) != 1)
            goto out;
        *sig = der;
        *siglen = derlen;
        der = NULL;
        rc = 0;
        goto out;
    }
    pthread_mutex_lock(&signer.lock);
    rc = ec_sign_locked(key, kind, input, len, &der, &derlen);
    pthread_mutex_unlock(&signer.lock);
    if (rc < 0)
        goto out;
    rc = ERR_CRYPTO;
    int field = kind == ACME_KIND_P256 ? 32 : 48;
    const uint8_t *p = der;
    es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    if (es == NULL)
        goto out;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(es, &r, &s);
    uint8_t *raw = xmalloc((size_t)field * 2);
    if (BN_bn2binpad(r, raw, field) != field || BN_bn2binpad(s, raw + field, field) != field) {
        free(raw);
        goto out;
    }
    *sig = raw;
    *siglen = (size_t)field * 2;
    rc = 0;
out:
    ECDSA_SIG_free(es);
    free(der);
    EVP_MD_CTX_free(ctx);
    return rc;
}

static char *dump_compact(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    if (s == NULL)
        abort(); /* only on allocation failure (STYLE §3) */
    return s;
}

/* protected_b64 "." payload_b64 signed with key, assembled into the
 * flattened serialization: the compact JSON object with sorted members,
 * written directly since its three values are base64url (no escaping). */
static int flatten(EVP_PKEY *key, enum acme_key_kind kind, const json_t *protected_hdr,
                   const char *payload_b64, char **out)
{
    char *hdr = dump_compact(protected_hdr);
    char *hdr_b64 = b64url_encode(hdr, strlen(hdr));
    char *input = xasprintf("%s.%s", hdr_b64, payload_b64);
    uint8_t *sig = NULL;
    size_t siglen = 0;

    int rc = sign_input(key, kind, input, strlen(input), &sig, &siglen);
    if (rc == 0) {
        char *sig_b64 = b64url_encode(sig, siglen);
        *out = xasprintf("{\"payload\":\"%s\",\"protected\":\"%s\",\"signature\":\"%s\"}",
                         payload_b64, hdr_b64, sig_b64);
        free(sig_b64);
    }
    free(sig);
    free(input);
    free(hdr_b64);
    free(hdr);
    return rc;
}

static const char *kind_alg(enum acme_key_kind kind)
{
    switch (kind) {
    case ACME_KIND_P256:
        return "ES256";
    case ACME_KIND_P384:
        return "ES384";
    case ACME_KIND_RSA:
        return "RS256";
    default:
        return NULL;
    }
}

const char *acme_jws_alg(EVP_PKEY *key)
{
    return kind_alg(acme_key_kind_of(key));
}

int acme_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
                  const char *payload, char **out)
{
    enum acme_key_kind kind = acme_key_kind_of(key);
    const char *alg = kind_alg(kind);
    json_t *hdr = NULL;
    char *payload_b64 = NULL;
    int rc;

    if (alg == NULL || url == NULL) {
        log_error(LOG_ACME, "jws %s: unsupported account key or no url", url ? url : "?");
        return -EINVAL;
    }
    hdr = json_pack("{s:s, s:s}", "alg", alg, "url", url);
    if (hdr == NULL) {
        rc = -EINVAL; /* url not valid UTF-8 */
        log_error(LOG_ACME, "jws: url is not valid UTF-8");
        goto out;
    }
    /* The nonce is absent only in the inner JWS of a key change (§7.3.5). */
    if (nonce != NULL && json_object_set_new(hdr, "nonce", json_string(nonce)) != 0) {
        rc = -EINVAL;
        log_error(LOG_ACME, "jws %s: nonce is not valid UTF-8", url);
        goto out;
    }
    if (kid != NULL) {
        if (json_object_set_new(hdr, "kid", json_string(kid)) != 0) {
            rc = -EINVAL;
            log_error(LOG_ACME, "jws %s: kid is not valid UTF-8", url);
            goto out;
        }
    } else {
        json_t *jwk = acme_jwk(key);
        if (jwk == NULL) {
            rc = ERR_CRYPTO;
            goto out;
        }
        json_object_set_new(hdr, "jwk", jwk);
    }
    /* POST-as-GET (§6.3) signs an empty payload: "" rather than "e30" ({}). */
    payload_b64 = payload != NULL ? b64url_encode(payload, strlen(payload)) : xstrdup("");
    rc = flatten(key, kind, hdr, payload_b64, out);
    if (rc < 0) {
        acme_ossl_error(url, "jws sign", true);
        goto out;
    }
out:
    free(payload_b64);
    json_decref(hdr);
    return rc;
}

/* CAs hand out EAB HMAC keys as unpadded base64url (RFC 8555 §7.3.4), but
 * some use standard base64 with padding; accept both. */
static int eab_key_decode(const char *s, uint8_t **key, size_t *keylen)
{
    size_t len = strlen(s);
    size_t trimmed = len;

    while (trimmed > 0 && s[trimmed - 1] == '=')
        trimmed--;
    if (trimmed == 0)
        return ERR_PARSE;
    if (b64url_decode(s, trimmed, key, keylen) == 0)
        return 0;
    return b64_decode(s, len, key, keylen);
}

int acme_eab_sign(EVP_PKEY *account_key, const char *eab_kid, const char *hmac_key_b64url,
                  const char *url, json_t **out)
{
    uint8_t *hkey = NULL;
    size_t hkeylen = 0;
    json_t *hdr = NULL, *jwk = NULL;
    char *hdr_s = NULL, *hdr_b64 = NULL, *jwk_s = NULL, *payload_b64 = NULL, *input = NULL;
    uint8_t mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    int rc;

    if (eab_kid == NULL || url == NULL || hmac_key_b64url == NULL) {
        log_error(LOG_ACME, "eab: kid, url and hmac key are required");
        return -EINVAL;
    }
    rc = eab_key_decode(hmac_key_b64url, &hkey, &hkeylen);
    if (rc < 0 || hkeylen == 0) {
        rc = ERR_PARSE;
        log_error(LOG_ACME, "eab kid=%s: the HMAC key is not base64url", eab_kid);
        goto out;
    }
    jwk = acme_jwk(account_key);
    if (jwk == NULL) {
        rc = ERR_CRYPTO;
        goto out;
    }
    hdr = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "kid", eab_kid, "url", url);
    if (hdr == NULL) {
        rc = -EINVAL;
        log_error(LOG_ACME, "eab: kid or url is not valid UTF-8");
        goto out;
    }
    hdr_s = dump_compact(hdr);
    hdr_b64 = b64url_encode(hdr_s, strlen(hdr_s));
    jwk_s = dump_compact(jwk);
    payload_b64 = b64url_encode(jwk_s, strlen(jwk_s));
    input = xasprintf("%s.%s", hdr_b64, payload_b64);
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, hkey, hkeylen, (const uint8_t *)input,
                  strlen(input), mac, sizeof(mac), &maclen) == NULL) {
        rc = acme_ossl_error("eab", "HMAC-SHA256", true);
        goto out;
    }
    char *sig_b64 = b64url_encode(mac, maclen);
    *out = json_pack("{s:s, s:s, s:s}", "protected", hdr_b64, "payload", payload_b64, "signature",
                     sig_b64);
    free(sig_b64);
    if (*out == NULL)
        abort();
    rc = 0;
out:
    if (hkey != NULL)
        OPENSSL_cleanse(hkey, hkeylen);
    free(hkey);
    free(input);
    free(payload_b64);
    free(jwk_s);
    free(hdr_b64);
    free(hdr_s);
    json_decref(hdr);
    json_decref(jwk);
    return rc;
}

char *acme_key_authorization(const char *token, const char *thumbprint)
{
    return xasprintf("%s.%s", token, thumbprint);
}

char *acme_dns01_txt(const char *key_authorization)
{
    uint8_t md[32];

    /* RFC 8555 §8.4: the TXT value is base64url(SHA-256(key authorization)). */
    if (acme_sha256(key_authorization, strlen(key_authorization), md) < 0) {
        log_error(LOG_ACME, "dns-01: sha256 failed");
        return NULL;
    }
    return b64url_encode(md, sizeof(md));
}

/* RFC 8555 §7.3.5: the inner JWS of a key change is signed by the new key,
 * carries its JWK, the keyChange URL and no nonce; its payload names the
 * account and the old key. */
int acme_key_change_inner(EVP_PKEY *new_key, EVP_PKEY *old_key, const char *account_url,
                          const char *url, char **out)
{
    json_t *old_jwk = acme_jwk(old_key);
    char *payload = NULL;
    int rc;

    if (old_jwk == NULL || account_url == NULL || url == NULL) {
        json_decref(old_jwk);
        return -EINVAL;
    }
    json_t *p = json_pack("{s:s, s:o}", "account", account_url, "oldKey", old_jwk);
    payload = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    rc = acme_jws_sign(new_key, NULL, NULL, url, payload, out);
    free(payload);
    return rc;
}

/* draft-ietf-acme-dns-account-label-03 §3.1: "_" followed by the base32
 * (RFC 4648, lower case, no padding) of the first 10 bytes of SHA-256 of
 * the account URL: 16 characters. */
char *acme_dns_account_label(const char *account_url)
{
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned char md[32];
    unsigned mdlen = 0;
    char *out = xmalloc(1 + 16 + 1);
    size_t o = 0;

    out[o++] = '_';
    if (EVP_Digest(account_url, strlen(account_url), md, &mdlen, EVP_sha256(), NULL) != 1) {
        free(out);
        return NULL;
    }
    /* 10 bytes = 80 bits = 16 groups of 5 */
    for (size_t bit = 0; bit < 80; bit += 5) {
        size_t byte = bit / 8, off = bit % 8;
        unsigned v = (unsigned)md[byte] << 8 | (byte + 1 < 10 ? md[byte + 1] : 0);
        out[o++] = alpha[(v >> (11 - off)) & 0x1f];
    }
    out[o] = '\0';
    return out;
}

/* draft-ietf-acme-dns-persist-02 §4.1 item 3: the hashed account URI
 * PREFIX "sha-256/" base64url(SHA-256(len(domain) || domain || thumbprint
 * || account URL)), the length one octet, the thumbprint its 43 base64url
 * characters. */
char *acme_dns_persist_account_uri(const char *prefix, const char *domain, const char *thumbprint,
                                   const char *account_url)
{
    size_t dl = strlen(domain);
    unsigned char len = (unsigned char)dl, md[32];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx;
    bool ok;

    if (dl == 0 || dl > 255)
        return NULL;
    ctx = EVP_MD_CTX_new();
    ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
         EVP_DigestUpdate(ctx, &len, 1) == 1 && EVP_DigestUpdate(ctx, domain, dl) == 1 &&
         EVP_DigestUpdate(ctx, thumbprint, strlen(thumbprint)) == 1 &&
         EVP_DigestUpdate(ctx, account_url, strlen(account_url)) == 1 &&
         EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == sizeof(md);
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return NULL;
    char *h = b64url_encode(md, sizeof(md));
    char *out = xasprintf("%ssha-256/%s", prefix, h);
    free(h);
    return out;
}

/* draft-ietf-acme-dns-persist-02 §4.1: an RFC 8659 issue-value, the issuer
 * domain name then "; tag=value" parameters: accounturi (the hashed URI),
 * policy=wildcard for a wildcard, persistUntil (UNIX seconds) when set. */
char *acme_dns_persist_value(const char *issuer, const char *account_uri, bool wildcard,
                             int64_t persist_until)
{
    char until[48] = "";

    if (persist_until > 0)
        (void)snprintf(until, sizeof(until), "; persistUntil=%lld", (long long)persist_until);
    return xasprintf("%s; accounturi=%s%s%s", issuer, account_uri,
                     wildcard ? "; policy=wildcard" : "", until);
}
