/* The API's TLS contexts: server contexts from PEM texts or objects, the
 * self-signed bootstrap certificate (kept by the store between starts, made
 * again before it ends), and the choice a new connection gets: the managed
 * certificate's current generation once there is one, else the bootstrap.
 * It neither accepts connections nor reads requests (api.c). */
#include "api/api_internal.h"
#include "api/server_internal.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "net/tls_mem.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#define BOOTSTRAP_DAYS 365
#define BOOTSTRAP_RENEW_S (7 * 86400) /* made again this long before it ends */

static SSL_CTX *ctx_new(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_num_tickets(ctx, 0); /* one request per connection: nothing to resume */
    return ctx;
}

int api_tls_ctx_from_obj(X509 *cert, EVP_PKEY *key, SSL_CTX **out)
{
    SSL_CTX *ctx = ctx_new();

    if (ctx == NULL || SSL_CTX_use_certificate(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return ERR_CRYPTO;
    }
    *out = ctx;
    return 0;
}

int api_tls_ctx_from_pem(const char *fullchain_pem, const char *key_pem, SSL_CTX **out)
{
    BIO *cb = BIO_new_mem_buf(fullchain_pem, -1);
    BIO *kb = BIO_new_mem_buf(key_pem, -1);
    X509 *leaf = NULL;
    EVP_PKEY *key = NULL;
    SSL_CTX *ctx = NULL;
    int rc = ERR_CRYPTO;

    if (cb == NULL || kb == NULL)
        goto out;
    leaf = PEM_read_bio_X509(cb, NULL, NULL, NULL);
    key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    if (leaf == NULL || key == NULL || api_tls_ctx_from_obj(leaf, key, &ctx) < 0)
        goto out;
    for (;;) {
        X509 *x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
        if (x == NULL)
            break;
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            X509_free(x);
            goto out;
        }
    }
    *out = ctx;
    ctx = NULL;
    rc = 0;
out:
    ERR_clear_error(); /* the chain loop ends on "no start line" */
    SSL_CTX_free(ctx);
    X509_free(leaf);
    EVP_PKEY_free(key);
    BIO_free(cb);
    BIO_free(kb);
    return rc;
}

/* A PEM text of x or k (owned), or NULL. */
static char *pem_of(X509 *x, EVP_PKEY *k)
{
    BIO *mb = BIO_new(BIO_s_mem());
    char *pem = NULL;

    if (mb != NULL &&
        (x != NULL ? PEM_write_bio_X509(mb, x)
                   : PEM_write_bio_PrivateKey(mb, k, NULL, NULL, 0, NULL, NULL)) == 1) {
        char *p;
        long l = BIO_get_mem_data(mb, &p);
        pem = xstrndup(p, (size_t)l);
        OPENSSL_cleanse(p, (size_t)l);
    }
    BIO_free(mb);
    ERR_clear_error();
    return pem;
}

/* The bootstrap the store kept (from the last start), when it still
 * serves: key and certificate match, it ends more than BOOTSTRAP_RENEW_S
 * from now, it names every one of sans[0..n). 0 with a->boot_ctx set. */
static int boot_load(struct api *a, const char *const *sans, size_t n)
{
    char *cert = NULL, *key = NULL;
    int rc = store_api_bootstrap_read(a->store, &cert, &key);
    BIO *b = rc == 0 ? BIO_new_mem_buf(cert, -1) : NULL;
    X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    SSL_CTX *ctx = NULL;
    int days = 0, secs = 0;

    if (rc == 0)
        rc = ERR_BAD_STATE;
    if (x != NULL && ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)) == 1 &&
        (int64_t)days * 86400 + secs > BOOTSTRAP_RENEW_S) {
        bool names = true;
        for (size_t i = 0; i < n && names; i++)
            names = i == 0 ? X509_check_host(x, sans[i], 0, 0, NULL) == 1
                           : X509_check_ip_asc(x, sans[i], 0) == 1;
        if (names && api_tls_ctx_from_pem(cert, key, &ctx) == 0) {
            SSL_CTX_free(a->boot_ctx);
            a->boot_ctx = ctx;
            a->boot_until = (int64_t)time(NULL) + (int64_t)days * 86400 + secs;
            rc = 0;
        }
    }
    ERR_clear_error();
    X509_free(x);
    BIO_free(b);
    if (key != NULL)
        OPENSSL_cleanse(key, strlen(key));
    free(cert);
    free(key);
    return rc;
}

/* The bootstrap: DNS:localhost and every listen address that is not a
 * wildcard, so a client pinning bootstrap.pem can check the name. The one
 * the store kept serves again unless fresh (it ends soon) or it no longer
 * fits; a new one is handed to the store (store_api_bootstrap_put). */
int api_boot_make(struct api *a, bool fresh)
{
    const char **sans = xcalloc(a->n_ls + 1, sizeof(*sans));
    char(*ips)[INET6_ADDRSTRLEN] = xcalloc(a->n_ls + 1, sizeof(*ips));
    size_t n = 0;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    SSL_CTX *ctx = NULL;
    char *pem = NULL, *kpem = NULL;
    int rc;

    sans[n++] = "localhost";
    for (size_t i = 0; i < a->n_ls; i++) {
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        if (uv_tcp_getsockname(&a->ls[i].tcp, (struct sockaddr *)&ss, &len) != 0)
            continue;
        const void *ad = ss.ss_family == AF_INET6
                             ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                             : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
        char *ip = ips[n];
        if (uv_inet_ntop(ss.ss_family, ad, ip, INET6_ADDRSTRLEN) != 0 ||
            strcmp(ip, "0.0.0.0") == 0 || strcmp(ip, "::") == 0)
            continue;
        bool dup = false;
        for (size_t j = 1; j < n; j++)
            dup = dup || strcmp(sans[j], ip) == 0;
        if (!dup)
            sans[n++] = ip;
    }
    if (!fresh && boot_load(a, sans, n) == 0) {
        log_info(LOG_API, "self-signed bootstrap certificate kept from the last start");
        rc = 0;
        goto out;
    }
    rc = tls_selfsigned_build("certloop api", sans, n, (long)BOOTSTRAP_DAYS * 86400, NULL, &x, &k);
    if (rc == 0)
        rc = api_tls_ctx_from_obj(x, k, &ctx);
    if (rc < 0) {
        log_error(LOG_API, "cannot make the self-signed bootstrap certificate");
        goto out;
    }
    pem = pem_of(x, NULL);
    kpem = pem_of(NULL, k);
    int wrc =
        pem != NULL && kpem != NULL ? store_api_bootstrap_put(a->store, pem, kpem) : ERR_CRYPTO;
    if (wrc == ERR_UNSUPPORTED)
        log_info(LOG_API, "the %s store keeps no bootstrap certificate: a new one at each start",
                 store_type(a->store));
    else if (wrc < 0)
        log_warn(LOG_API, "keeping the bootstrap certificate in %s: %s", store_type(a->store),
                 err_str(wrc));
    else
        log_info(LOG_API, "new self-signed bootstrap certificate, kept for the next start "
                          "(STATE/api/bootstrap.pem)");
    SSL_CTX_free(a->boot_ctx);
    a->boot_ctx = ctx;
    a->boot_until = (int64_t)time(NULL) + (int64_t)BOOTSTRAP_DAYS * 86400;
    ctx = NULL;
out:
    free(pem);
    if (kpem != NULL)
        OPENSSL_cleanse(kpem, strlen(kpem));
    free(kpem);
    SSL_CTX_free(ctx);
    X509_free(x);
    EVP_PKEY_free(k);
    free(sans);
    free(ips);
    return rc;
}

/* The context a new connection gets: the managed certificate's current
 * generation once there is one (loaded again when `current` moves), else
 * the bootstrap. Reads a link and, on a change, the PEM files: page-cache
 * work, as STYLE §5 allows on the loop. */
SSL_CTX *api_ctx_current(struct api *a)
{
    uint64_t now = uv_now(a->loop);

    /* at most once a second: a burst of connections reads the files once */
    if (a->certificate != NULL && (a->cert_checked == 0 || now - a->cert_checked >= 1000)) {
        struct store_cert cur = {0};
        a->cert_checked = now;
        if (store_cert_read_current(a->store, a->certificate, false, &cur) == 0 &&
            cur.generation != NULL &&
            (a->cert_gen == NULL || strcmp(a->cert_gen, cur.generation) != 0)) {
            struct store_cert sc = {0};
            SSL_CTX *ctx = NULL;
            int rc = store_cert_read_current(a->store, a->certificate, true, &sc);
            if (rc == 0)
                rc = api_tls_ctx_from_pem(sc.fullchain_pem, sc.key_pem, &ctx);
            if (sc.key_pem != NULL)
                OPENSSL_cleanse(sc.key_pem, strlen(sc.key_pem));
            free(a->cert_gen);
            a->cert_gen = xstrdup(sc.generation != NULL ? sc.generation : cur.generation);
            store_cert_fini(&sc);
            if (rc == 0) {
                SSL_CTX_free(a->cert_ctx);
                a->cert_ctx = ctx;
                log_info(LOG_API, "serving certificate %s (generation %s)", a->certificate,
                         a->cert_gen);
            } else {
                log_error(LOG_API,
                          "certificate %s generation %s: %s; still serving the previous "
                          "one",
                          a->certificate, a->cert_gen, err_str(rc));
            }
        }
        store_cert_fini(&cur);
    }
    if (a->cert_ctx != NULL)
        return a->cert_ctx;
    if (a->boot_ctx == NULL || (int64_t)time(NULL) > a->boot_until - BOOTSTRAP_RENEW_S)
        (void)api_boot_make(a, true); /* logged */
    return a->boot_ctx;
}
