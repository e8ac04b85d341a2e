/* TLS over memory BIOs on libuv streams, and self-signed certificates
 * (see tls_mem.h). It owns no connection and no listener: the tls-alpn-01
 * responder and the API server keep theirs and call these. */
#include "net/tls_mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "config/config.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

SSL *tls_mem_accept_new(SSL_CTX *ctx)
{
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem());
    BIO *wb = BIO_new(BIO_s_mem());

    if (ssl == NULL || rb == NULL || wb == NULL) {
        SSL_free(ssl);
        BIO_free(rb);
        BIO_free(wb);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_bio(ssl, rb, wb);
    SSL_set_accept_state(ssl);
    return ssl;
}

struct wreq {
    uv_write_t req; /* .data = the connection */
    char data[];
};

static void conn_handle_closed(uv_handle_t *h)
{
    struct tls_conn *c = h->data;

    if (--c->open_handles > 0)
        return;
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->list->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->freed_cb(c);
}

void tls_conn_init(uv_loop_t *loop, struct tls_conn_list *list, struct tls_conn *c,
                   void (*freed_cb)(struct tls_conn *c))
{
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->freed_cb = freed_cb;
    c->drained_cb = NULL;
    c->list = list;
    c->prev = NULL;
    c->next = list->head;
    if (list->head != NULL)
        list->head->prev = c;
    list->head = c;
    list->n++;
}

struct tls_conn *tls_conn_oldest(const struct tls_conn_list *list)
{
    struct tls_conn *c = list->head, *old = NULL;

    for (; c != NULL; c = c->next) {
        if (!c->closing)
            old = c;
    }
    return old;
}

void tls_conn_close_all(struct tls_conn_list *list)
{
    for (struct tls_conn *c = list->head; c != NULL; c = c->next)
        tls_conn_close(c);
}

int tls_listen(uv_tcp_t *h, const char *addr, int backlog, uv_connection_cb cb, int group,
               const char *what)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc = config_addr_parse(addr, -1, &ss, &sl);

    if (rc < 0) {
        log_error(group, "%s: listen %s: expected IP:PORT or [IPv6]:PORT", what, addr);
        return rc;
    }
    rc = uv_tcp_bind(h, (const struct sockaddr *)&ss,
                     ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)h, backlog, cb);
    if (rc < 0)
        log_error(group, "%s: listen %s: %s", what, addr, err_str(rc));
    return rc;
}

void tls_conn_close(struct tls_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->list->n--;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void write_done(uv_write_t *req, int status)
{
    struct tls_conn *c = req->data;

    free(req); /* the struct wreq, bytes included */
    c->writes--;
    if (status < 0 || (c->close_after_write && c->writes == 0))
        tls_conn_close(c);
    else if (c->writes == 0 && !c->closing && c->drained_cb != NULL)
        c->drained_cb(c);
}

void tls_conn_flush(struct tls_conn *c)
{
    BIO *wb = c->ssl != NULL ? SSL_get_wbio(c->ssl) : NULL;
    size_t pending;

    while (!c->closing && wb != NULL && (pending = BIO_ctrl_pending(wb)) > 0) {
        struct wreq *w = xmalloc(sizeof(*w) + pending);
        int n = BIO_read(wb, w->data, (int)pending);
        if (n <= 0) {
            free(w);
            break;
        }
        w->req.data = c;
        uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
        if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_done) < 0) {
            free(w);
            tls_conn_close(c);
            return;
        }
        c->writes++;
    }
    if (!c->closing && c->close_after_write && c->writes == 0)
        tls_conn_close(c);
}

int tls_mem_feed(SSL *ssl, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    return BIO_write(SSL_get_rbio(ssl), p, (int)n) == (int)n ? 0 : -EIO;
}

#define READ_CAP 16384

void tls_conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = xmalloc(READ_CAP);
    buf->len = READ_CAP;
}

bool tls_conn_read(struct tls_conn *c, ssize_t nread, const uv_buf_t *buf)
{
    bool go_on = nread > 0 && !c->closing;

    if (go_on && tls_mem_feed(c->ssl, buf->base, (size_t)nread) < 0)
        go_on = false;
    free(buf->base);
    if (nread < 0 || (nread > 0 && !go_on))
        tls_conn_close(c);
    return go_on;
}

static GENERAL_NAME *san_new(const char *s)
{
    GENERAL_NAME *g = GENERAL_NAME_new();
    unsigned char a[16];

    if (g == NULL)
        return NULL;
    if (inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1) {
        ASN1_OCTET_STRING *ip = a2i_IPADDRESS(s);
        if (ip == NULL)
            goto fail;
        GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
        return g;
    }
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    if (ia5 == NULL || ASN1_STRING_set(ia5, s, (int)strlen(s)) != 1) {
        ASN1_IA5STRING_free(ia5);
        goto fail;
    }
    GENERAL_NAME_set0_value(g, GEN_DNS, ia5);
    return g;
fail:
    GENERAL_NAME_free(g);
    return NULL;
}

int tls_selfsigned_build(const char *cn, const char *const *sans, size_t n, long valid_s,
                         X509_EXTENSION *ext, X509 **cert, EVP_PKEY **key)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    GENERAL_NAMES *gens = NULL;
    BIGNUM *bn = NULL;
    uint8_t serial[16];
    int rc = ERR_CRYPTO;

    if (k == NULL || x == NULL || X509_set_version(x, 2) != 1)
        goto out;
    if (RAND_bytes(serial, sizeof(serial)) != 1)
        goto out;
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto out;
    X509_NAME *nm = X509_get_subject_name(x);
    if (X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) !=
            1 ||
        X509_set_issuer_name(x, nm) != 1)
        goto out;
    if (X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), valid_s) == NULL || X509_set_pubkey(x, k) != 1)
        goto out;
    if (n > 0) {
        gens = sk_GENERAL_NAME_new_null();
        if (gens == NULL)
            goto out;
        for (size_t i = 0; i < n; i++) {
            GENERAL_NAME *g = san_new(sans[i]);
            if (g == NULL || sk_GENERAL_NAME_push(gens, g) <= 0) {
                GENERAL_NAME_free(g);
                goto out;
            }
        }
        if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
            goto out;
    }
    if (ext != NULL && X509_add_ext(x, ext, -1) != 1)
        goto out;
    if (X509_sign(x, k, EVP_sha256()) <= 0)
        goto out;
    *cert = x;
    *key = k;
    x = NULL;
    k = NULL;
    rc = 0;
out:
    BN_free(bn);
    GENERAL_NAMES_free(gens);
    X509_free(x);
    EVP_PKEY_free(k);
    if (rc < 0)
        ERR_clear_error();
    return rc;
}
