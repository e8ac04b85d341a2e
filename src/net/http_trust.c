/* The extra trust files of the HTTP client's requests (`trust_file`):
 * each parsed once and shared by every request naming it, refreshed when
 * it changes on disk, and the X509 store of a TLS connection built from it
 * and OpenSSL's default locations (the default CA file read only on a
 * miss). Pure OpenSSL: it knows nothing of curl or the loop (http.c hands
 * it the SSL_CTX of each connection). */
#include "net/net_internal.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HTTP_MAX_TRUST_FILE ((size_t)1024 * 1024)

/* The certificates of one extra trust file, parsed once and shared by every
 * request naming that file. Refreshed when the file changes on disk. */
struct http_trust {
    struct http_trust *next; /* in the cache (the client's) while cached */
    char *path;              /* owned */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct buf pem;         /* the file as read */
    STACK_OF(X509) * certs; /* owned: parsed from pem */
    unsigned refs;          /* the cache holds one, each request one */
};

void http_trust_unref(struct http_trust *t)
{
    if (t == NULL || --t->refs > 0)
        return;
    sk_X509_pop_free(t->certs, X509_free);
    buf_fini(&t->pem);
    free(t->path);
    free(t);
}

static void log_ssl_errors(const char *subject)
{
    unsigned long e;
    char msg[256];

    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, msg, sizeof(msg));
        log_error(LOG_HTTP, "%s: %s", subject, msg);
    }
}

static int trust_load(const char *path, const struct stat *st, struct http_trust **out)
{
    struct http_trust *t = xcalloc(1, sizeof(*t));
    BIO *bio = NULL;
    int rc;

    t->refs = 1;
    t->path = xstrdup(path);
    t->dev = st->st_dev;
    t->ino = st->st_ino;
    t->size = st->st_size;
    t->mtime = st->st_mtim;
    buf_init(&t->pem, HTTP_MAX_TRUST_FILE);
    rc = buf_read_file(&t->pem, path);
    if (rc < 0) {
        log_error(LOG_HTTP, "%s: read: %s", path, err_str(rc));
        goto out;
    }
    t->certs = sk_X509_new_null();
    bio = BIO_new_mem_buf(t->pem.data, (int)t->pem.len);
    if (t->certs == NULL || bio == NULL) {
        rc = ERR_CRYPTO;
        log_ssl_errors(path);
        goto out;
    }
    ERR_clear_error();
    for (;;) {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x == NULL)
            break;
        if (sk_X509_push(t->certs, x) <= 0) {
            X509_free(x);
            rc = ERR_CRYPTO;
            log_ssl_errors(path);
            goto out;
        }
    }
    /* PEM_read_bio_X509 ends with "no start line" at EOF; anything else is
     * a broken certificate. */
    unsigned long e = ERR_peek_last_error();
    if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
        rc = ERR_CRYPTO;
        log_ssl_errors(path);
        goto out;
    }
    ERR_clear_error();
    if (sk_X509_num(t->certs) == 0) {
        rc = ERR_PARSE;
        log_error(LOG_HTTP, "%s: no PEM certificate found", path);
        goto out;
    }
    *out = t;
    t = NULL;
    rc = 0;
out:
    BIO_free(bio);
    http_trust_unref(t);
    return rc;
}

/* Reading a small local PEM inline is fine on the loop (STYLE §5). */
int http_trust_get(struct http_trust **cache, const char *path, struct http_trust **out)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        int rc = -errno;
        log_error(LOG_HTTP, "%s: stat: %s", path, err_str(rc));
        return rc;
    }
    for (struct http_trust **pp = cache; *pp != NULL; pp = &(*pp)->next) {
        struct http_trust *t = *pp;
        if (strcmp(t->path, path) != 0)
            continue;
        if (t->dev == st.st_dev && t->ino == st.st_ino && t->size == st.st_size &&
            t->mtime.tv_sec == st.st_mtim.tv_sec && t->mtime.tv_nsec == st.st_mtim.tv_nsec) {
            t->refs++;
            *out = t;
            return 0;
        }
        *pp = t->next; /* stale: requests still using it keep their reference */
        http_trust_unref(t);
        break;
    }
    struct http_trust *t = NULL;
    int rc = trust_load(path, &st, &t);
    if (rc < 0)
        return rc;
    t->next = *cache;
    *cache = t;
    t->refs++;
    *out = t;
    return 0;
}

/* OpenSSL's default CA file, read only when a verification needs an issuer
 * the store does not hold yet. X509_STORE_set_default_paths parses the whole
 * file (Debian: about 145 certificates, 240 M instructions, tens of
 * milliseconds) for every new TLS connection, even when the trust file alone
 * anchors the CA's certificate. Same file as OpenSSL's (SSL_CERT_FILE
 * honoured), loaded into the same store on the first miss; then each lookup
 * answers from the store, as X509_LOOKUP_hash_dir does. */
static int lazy_file_by_subject(X509_LOOKUP *lu, X509_LOOKUP_TYPE type, const X509_NAME *name,
                                X509_OBJECT *ret)
{
    X509_STORE *store = X509_LOOKUP_get_store(lu);

    if (X509_LOOKUP_get_method_data(lu) == NULL) {
        const char *file = getenv(X509_get_default_cert_file_env());
        (void)X509_LOOKUP_set_method_data(lu, lu); /* once per store: loaded */
        (void)X509_load_cert_crl_file(lu, file != NULL ? file : X509_get_default_cert_file(),
                                      X509_FILETYPE_PEM);
        ERR_clear_error(); /* a missing default file is no error (as set_default_paths) */
    }
    if (X509_STORE_lock(store) != 1)
        return 0;
    X509_OBJECT *o = X509_OBJECT_retrieve_by_subject(X509_STORE_get0_objects(store), type, name);
    int found = 0;
    /* The store keeps its reference: ret borrows the object, and the caller
     * takes its own reference (X509_STORE_CTX_get_by_subject). */
    if (o != NULL && type == X509_LU_X509) {
        X509 *x = X509_OBJECT_get0_X509(o);
        found = X509_OBJECT_set1_X509(ret, x);
        if (found == 1)
            X509_free(x);
    } else if (o != NULL && type == X509_LU_CRL) {
        X509_CRL *crl = X509_OBJECT_get0_X509_CRL(o);
        found = X509_OBJECT_set1_X509_CRL(ret, crl);
        if (found == 1)
            X509_CRL_free(crl);
    }
    X509_STORE_unlock(store);
    return found;
}

/* The method lives as long as the process: stores of connections curl
 * keeps in its pool refer to it. Created on the loop thread. */
static X509_LOOKUP_METHOD *lazy_file_method(void)
{
    static X509_LOOKUP_METHOD *m;

    if (m == NULL) {
        m = X509_LOOKUP_meth_new("certloop default CA file, on demand");
        if (m != NULL && X509_LOOKUP_meth_set_get_by_subject(m, lazy_file_by_subject) != 1) {
            X509_LOOKUP_meth_free(m);
            m = NULL;
        }
    }
    return m;
}

void http_trust_cache_clear(struct http_trust **cache)
{
    while (*cache != NULL) {
        struct http_trust *t = *cache;
        *cache = t->next;
        http_trust_unref(t);
    }
}

const struct buf *http_trust_pem(const struct http_trust *t)
{
    return &t->pem;
}

/* The trust file extends the system store, it does not replace it: we add OpenSSL's
 * default locations (what X509_STORE_set_default_paths adds, in its order:
 * the CA file, here read on demand, the hashed directory and the default
 * OSSL_STORE URI, both looked up on demand anyway) and the file's
 * certificates. */
int http_trust_apply(const struct http_trust *t, SSL_CTX *ctx)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509_LOOKUP_METHOD *lazy = lazy_file_method();
    X509_LOOKUP *file = lazy != NULL ? X509_STORE_add_lookup(store, lazy) : NULL;
    X509_LOOKUP *dir = X509_STORE_add_lookup(store, X509_LOOKUP_hash_dir());
    X509_LOOKUP *uri = X509_STORE_add_lookup(store, X509_LOOKUP_store());

    if (file == NULL || dir == NULL || uri == NULL) {
        log_ssl_errors(t->path);
        return ERR_CRYPTO;
    }
    /* As set_default_paths: a default location may be missing or unusable. */
    (void)X509_LOOKUP_add_dir(dir, NULL, X509_FILETYPE_DEFAULT);
    (void)X509_LOOKUP_add_store(uri, NULL);
    ERR_clear_error();
    for (int i = 0; i < sk_X509_num(t->certs); i++) {
        /* Adding a certificate already present succeeds in OpenSSL 3. */
        if (X509_STORE_add_cert(store, sk_X509_value(t->certs, i)) != 1) {
            log_ssl_errors(t->path);
            return ERR_CRYPTO;
        }
    }
    return 0;
}
