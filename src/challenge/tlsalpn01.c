/* The tls-alpn-01 responder (RFC 8737, and RFC 8738 §6 for IP addresses): a
 * TCP listener on the loop that completes a TLS handshake only for a client
 * offering ALPN "acme-tls/1" and naming (SNI) an identifier whose challenge
 * is live, with a self-signed certificate holding that identifier and the
 * acmeIdentifier extension. Certificates (and their keys) are built on the
 * threadpool. It serves no application data: it is not a web server, and a
 * client without acme-tls/1 gets a no_application_protocol alert. */
#include "challenge/challenge.h"
#include "challenge/tlsalpn01_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config/config.h"
#include "net/tls_mem.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#define BACKLOG 128
#define HANDSHAKE_TIMEOUT_MS 10000
#define MAX_CONNS CHAL_TLSALPN_MAX_CONNECTIONS
/* RFC 8737 §3: id-pe-acmeIdentifier */
#define OID_ACME_IDENTIFIER "1.3.6.1.5.5.7.1.31"
#define ALPN_ACME "acme-tls/1"

/* ---- pure parts ------------------------------------------------------------- */

char *chal_tlsalpn_sni_name(const char *identifier)
{
    unsigned char a[16];

    if (inet_pton(AF_INET, identifier, a) == 1)
        return xasprintf("%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
    if (inet_pton(AF_INET6, identifier, a) == 1) {
        /* 32 nibbles, least significant first (RFC 3596 §2.5) */
        char out[32 * 2 + sizeof("ip6.arpa")];
        size_t o = 0;
        static const char hex[] = "0123456789abcdef";
        for (int i = 15; i >= 0; i--) {
            out[o++] = hex[a[i] & 0xf];
            out[o++] = '.';
            out[o++] = hex[a[i] >> 4];
            out[o++] = '.';
        }
        memcpy(out + o, "ip6.arpa", sizeof("ip6.arpa"));
        return xstrdup(out);
    }
    char *s = xstrdup(identifier);
    for (char *p = s; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    return s;
}

int chal_tlsalpn_hello_parse(const uint8_t *alpn, size_t alpn_len, const uint8_t *sni,
                             size_t sni_len, char *name, size_t cap)
{
    bool acme = false;

    /* ALPN (RFC 7301 §3.1): ProtocolNameList <2..2^16-1>, each name <1..255> */
    if (alpn == NULL || alpn_len < 2 || (size_t)(alpn[0] << 8 | alpn[1]) != alpn_len - 2)
        return -EPROTO;
    for (size_t at = 2; at < alpn_len;) {
        size_t l = alpn[at];
        if (l == 0 || at + 1 + l > alpn_len)
            return -EPROTO;
        if (l == strlen(ALPN_ACME) && memcmp(alpn + at + 1, ALPN_ACME, l) == 0)
            acme = true;
        at += 1 + l;
    }
    if (!acme)
        return -ENOPROTOOPT;
    /* SNI (RFC 6066 §3): ServerNameList <1..2^16-1> of {type, HostName <1..2^16-1>};
     * the first host_name (type 0) entry is the name. */
    if (sni == NULL || sni_len < 2 || (size_t)(sni[0] << 8 | sni[1]) != sni_len - 2)
        return -ENOENT;
    for (size_t at = 2; at + 3 <= sni_len;) {
        unsigned type = sni[at];
        size_t l = (size_t)(sni[at + 1] << 8 | sni[at + 2]);
        if (l == 0 || at + 3 + l > sni_len)
            return -EPROTO;
        if (type == 0) {
            if (l >= cap)
                return -ENAMETOOLONG;
            for (size_t i = 0; i < l; i++) {
                unsigned char c = sni[at + 3 + i];
                if (c <= 0x20 || c >= 0x7f)
                    return -EPROTO;
                name[i] = (char)tolower(c);
            }
            if (name[l - 1] == '.')
                l--;
            name[l] = '\0';
            /* no empty label at either end */
            return l > 0 && name[0] != '.' && name[l - 1] != '.' ? 0 : -EPROTO;
        }
        at += 3 + l;
    }
    return -ENOENT;
}

int chal_tlsalpn_cert_build(const char *identifier, const char *key_authorization, X509 **cert,
                            EVP_PKEY **key)
{
    ASN1_OBJECT *obj = NULL;
    ASN1_OCTET_STRING *os = NULL;
    X509_EXTENSION *ext = NULL;
    uint8_t der[2 + 32];
    unsigned dlen = 0;
    int rc = ERR_CRYPTO;

    /* the critical acmeIdentifier extension: extnValue is the DER of
     * Authorization ::= OCTET STRING (SIZE (32)), SHA-256 of the key
     * authorization */
    der[0] = 0x04;
    der[1] = 32;
    if (EVP_Digest(key_authorization, strlen(key_authorization), der + 2, &dlen, EVP_sha256(),
                   NULL) != 1 ||
        dlen != 32)
        goto out;
    obj = OBJ_txt2obj(OID_ACME_IDENTIFIER, 1);
    os = ASN1_OCTET_STRING_new();
    if (obj == NULL || os == NULL || ASN1_OCTET_STRING_set(os, der, sizeof(der)) != 1)
        goto out;
    ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 1, os);
    if (ext == NULL)
        goto out;
    /* RFC 8737 §3 (and RFC 8738 §6): exactly the identifier in the SAN */
    rc = tls_selfsigned_build("certloop tls-alpn-01", &identifier, 1, 7 * 86400, ext, cert, key);
out:
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
    if (rc < 0)
        ERR_clear_error();
    return rc;
}

/* ---- the responder ---------------------------------------------------------- */

struct entry {
    char *identifier; /* owned: as the order names it */
    char *sni;        /* owned: the SNI that selects it (reverse name for IPs) */
    X509 *cert;       /* owned */
    EVP_PKEY *key;    /* owned */
    struct entry *next;
};

struct listener {
    struct chal_tlsalpn *s;
    uv_tcp_t tcp;
    char *addr;            /* as configured (owned) */
    struct listener *next; /* in the order of the configuration */
};

struct tconn {
    struct tls_conn t; /* first: its handles' data is this struct too */
    struct chal_tlsalpn *s;
    bool handshake_done;
};

struct put_job {
    struct chal_tlsalpn_put *p;  /* NULL once cancelled (tombstone) */
    struct chal_tlsalpn *s_tomb; /* the responder, for a cancelled job's end */
    char *identifier, *keyauth;  /* owned copies */
    X509 *cert;
    EVP_PKEY *key;
};

struct chal_tlsalpn_put {
    struct chal_tlsalpn *s;
    struct put_job *job;
    chal_tlsalpn_done_cb done;
    void *arg;
};

struct chal_tlsalpn {
    uv_loop_t *loop;
    SSL_CTX *ctx;
    struct listener *ls; /* list */
    size_t n_ls;
    int open_handles;
    struct entry *entries;
    struct tls_conn_list conns;
    unsigned jobs; /* put jobs in flight (the struct outlives close until they end) */
    bool closing;
    void (*closed_cb)(void *arg);
    void *closed_arg;
    chal_seen_cb seen_cb; /* a challenge certificate was served, or NULL */
    void *seen_arg;
    struct chal_tlsalpn_stats stats;
};

static void maybe_free(struct chal_tlsalpn *s)
{
    if (!s->closing || s->open_handles > 0 || s->conns.head != NULL || s->jobs > 0)
        return;
    void (*cb)(void *) = s->closed_cb;
    void *arg = s->closed_arg;
    SSL_CTX_free(s->ctx);
    free(s);
    if (cb != NULL)
        cb(arg);
}

static void entry_free(struct entry *e)
{
    free(e->identifier);
    free(e->sni);
    X509_free(e->cert);
    EVP_PKEY_free(e->key);
    free(e);
}

static struct entry *entry_find(struct chal_tlsalpn *s, const char *sni)
{
    for (struct entry *e = s->entries; e != NULL; e = e->next)
        if (strcmp(e->sni, sni) == 0)
            return e;
    return NULL;
}

/* ClientHello (OpenSSL calls this before anything else is decided): refuse
 * clients that do not offer acme-tls/1, and pick the certificate by SNI. */
static int client_hello_cb(SSL *ssl, int *alert, void *arg)
{
    struct chal_tlsalpn *s = arg;
    const unsigned char *alpn = NULL, *sni = NULL;
    size_t alpn_len = 0, sni_len = 0;
    char name[256];

    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &alpn,
                                  &alpn_len) != 1)
        alpn = NULL;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &sni, &sni_len) != 1)
        sni = NULL;
    int rc = chal_tlsalpn_hello_parse(alpn, alpn_len, sni, sni_len, name, sizeof(name));
    if (rc == -ENOPROTOOPT || (rc < 0 && alpn == NULL)) {
        s->stats.no_alpn++;
        *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
        return SSL_CLIENT_HELLO_ERROR;
    }
    struct entry *e = rc == 0 ? entry_find(s, name) : NULL;
    if (e == NULL) {
        s->stats.unknown_name++;
        log_debug(LOG_CHAL, "tlsalpn01: handshake for %s: no live challenge",
                  rc == 0 ? name : "(no SNI)");
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (SSL_use_certificate(ssl, e->cert) != 1 || SSL_use_PrivateKey(ssl, e->key) != 1) {
        ERR_clear_error();
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char want[] = "\x0a" ALPN_ACME;

    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto((unsigned char **)out, outlen, want, sizeof(want) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

static void conn_freed(struct tls_conn *t)
{
    struct tconn *c = (struct tconn *)t;
    struct chal_tlsalpn *s = c->s;

    free(c);
    maybe_free(s);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct tconn *c = st->data;

    if (!tls_conn_read(&c->t, nread, buf))
        return;
    if (!c->handshake_done) {
        int r = SSL_do_handshake(c->t.ssl);
        if (r == 1) {
            c->handshake_done = true;
            c->s->stats.handshakes++;
            const char *sni = SSL_get_servername(c->t.ssl, TLSEXT_NAMETYPE_host_name);
            log_debug(LOG_CHAL, "tlsalpn01: challenge certificate served for %s",
                      sni != NULL ? sni : "?");
            struct entry *e = sni != NULL ? entry_find(c->s, sni) : NULL;
            if (e != NULL && c->s->seen_cb != NULL)
                c->s->seen_cb(c->s->seen_arg, e->identifier);
        } else if (SSL_get_error(c->t.ssl, r) != SSL_ERROR_WANT_READ) {
            ERR_clear_error();
            c->s->stats.failed++;
            uv_read_stop(st);
            c->t.close_after_write = true;
            tls_conn_flush(&c->t); /* the alert, then close */
            return;
        }
        tls_conn_flush(&c->t);
        return;
    }
    /* After the handshake the validator only closes; drain what it sends
     * (close_notify, or data we do not serve) without answering. */
    char sink[1024];
    while (SSL_read(c->t.ssl, sink, sizeof(sink)) > 0)
        ;
    ERR_clear_error();
    tls_conn_flush(&c->t);
}

static void conn_timer_cb(uv_timer_t *t)
{
    tls_conn_close(t->data);
}

static void connection_cb(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    struct chal_tlsalpn *s = l->s;

    if (status < 0 || s->closing)
        return;
    struct tconn *c = xcalloc(1, sizeof(*c));
    c->s = s;
    tls_conn_init(s->loop, &s->conns, &c->t, conn_freed);
    if (uv_accept(server, (uv_stream_t *)&c->t.tcp) < 0) {
        tls_conn_close(&c->t);
        return;
    }
    s->stats.connections++;
    if (s->conns.n > MAX_CONNS)
        tls_conn_close(tls_conn_oldest(&s->conns)); /* there is one: c at least */
    c->t.ssl = tls_mem_accept_new(s->ctx);
    if (c->t.ssl == NULL) {
        tls_conn_close(&c->t);
        return;
    }
    uv_timer_start(&c->t.timer, conn_timer_cb, HANDSHAKE_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->t.tcp, tls_conn_alloc_cb, read_cb) < 0)
        tls_conn_close(&c->t);
}

static void listener_closed(uv_handle_t *h)
{
    struct listener *l = h->data;
    struct chal_tlsalpn *s = l->s;

    free(l->addr);
    free(l);
    s->open_handles--;
    maybe_free(s);
}

/* Binds and listens on addr: the listener, or NULL with *rc (logged; its
 * handle closes on the loop). */
static struct listener *listener_open(struct chal_tlsalpn *s, const char *addr, int *rc)
{
    struct listener *l = xcalloc(1, sizeof(*l));

    l->s = s;
    l->addr = xstrdup(addr);
    uv_tcp_init(s->loop, &l->tcp);
    l->tcp.data = l;
    s->open_handles++;
    *rc = tls_listen(&l->tcp, addr, BACKLOG, connection_cb, LOG_CHAL, "tlsalpn01");
    if (*rc < 0) {
        uv_close((uv_handle_t *)&l->tcp, listener_closed);
        return NULL;
    }
    return l;
}

static void listeners_close(struct listener *l)
{
    while (l != NULL) {
        struct listener *next = l->next;
        uv_close((uv_handle_t *)&l->tcp, listener_closed);
        l = next;
    }
}

int chal_tlsalpn_rebind(struct chal_tlsalpn *s, const char *const *listen, size_t n,
                        const char **failed)
{
    struct listener *fresh = NULL, **ft = &fresh, *nl = NULL, **nt = &nl;
    int rc = 0;

    *failed = NULL;
    /* bind every new address first: a failure leaves everything as it was */
    for (size_t i = 0; i < n; i++) {
        bool have = false;
        for (struct listener *l = s->ls; l != NULL && !have; l = l->next)
            have = strcmp(l->addr, listen[i]) == 0;
        for (struct listener *l = fresh; l != NULL && !have; l = l->next)
            have = strcmp(l->addr, listen[i]) == 0;
        if (have)
            continue;
        struct listener *l = listener_open(s, listen[i], &rc);
        if (l == NULL) {
            *failed = listen[i];
            listeners_close(fresh);
            return rc;
        }
        *ft = l;
        ft = &l->next;
    }
    /* the new list in the configured order, kept listeners untouched */
    for (size_t i = 0; i < n; i++) {
        struct listener **from[2] = {&s->ls, &fresh};
        for (size_t k = 0; k < 2; k++) {
            for (struct listener **pp = from[k]; *pp != NULL; pp = &(*pp)->next) {
                if (strcmp((*pp)->addr, listen[i]) == 0) {
                    struct listener *l = *pp;
                    *pp = l->next;
                    l->next = NULL;
                    *nt = l;
                    nt = &l->next;
                    k = 2;
                    break;
                }
            }
        }
    }
    listeners_close(s->ls); /* the addresses no longer configured */
    s->ls = nl;
    s->n_ls = 0;
    for (struct listener *l = nl; l != NULL; l = l->next)
        s->n_ls++;
    return 0;
}

int chal_tlsalpn_open(uv_loop_t *loop, const char *const *listen, size_t n,
                      struct chal_tlsalpn **out)
{
    struct chal_tlsalpn *s;
    int rc = 0;

    *out = NULL;
    if (n == 0)
        return 0;
    s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->ctx = SSL_CTX_new(TLS_server_method());
    if (s->ctx == NULL) {
        log_error(LOG_CHAL, "tlsalpn01: cannot create the TLS context");
        ERR_clear_error();
        free(s);
        return ERR_CRYPTO;
    }
    /* RFC 8737 §4: TLS 1.2 or later */
    SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION);
    SSL_CTX_set_client_hello_cb(s->ctx, client_hello_cb, s);
    SSL_CTX_set_alpn_select_cb(s->ctx, alpn_select_cb, s);
    SSL_CTX_set_session_cache_mode(s->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(s->ctx, SSL_OP_NO_TICKET);
    const char *failed = NULL;
    rc = chal_tlsalpn_rebind(s, listen, n, &failed);
    if (rc < 0) {
        chal_tlsalpn_close(s, NULL, NULL);
        return rc;
    }
    *out = s;
    return 0;
}

void chal_tlsalpn_close(struct chal_tlsalpn *s, void (*closed_cb)(void *arg), void *arg)
{
    if (s == NULL)
        return;
    s->closing = true;
    s->closed_cb = closed_cb;
    s->closed_arg = arg;
    while (s->entries != NULL) {
        struct entry *e = s->entries;
        s->entries = e->next;
        entry_free(e);
    }
    bool none = s->ls == NULL;
    listeners_close(s->ls);
    s->ls = NULL;
    s->n_ls = 0;
    tls_conn_close_all(&s->conns);
    if (none) {
        /* nothing to wait for but connections and jobs */
        maybe_free(s);
    }
}

int chal_tlsalpn_port(const struct chal_tlsalpn *s, size_t i)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    const struct listener *l = s != NULL ? s->ls : NULL;
    for (size_t k = 0; k < i && l != NULL; k++)
        l = l->next;
    if (l == NULL || uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void chal_tlsalpn_get_stats(const struct chal_tlsalpn *s, struct chal_tlsalpn_stats *out)
{
    *out = s->stats;
    out->active = s->conns.n;
}

size_t chal_tlsalpn_count(const struct chal_tlsalpn *s)
{
    size_t n = 0;

    for (const struct entry *e = s->entries; e != NULL; e = e->next)
        n++;
    return n;
}

static int put_work(void *arg)
{
    struct put_job *j = arg;

    return chal_tlsalpn_cert_build(j->identifier, j->keyauth, &j->cert, &j->key);
}

static void put_job_free(struct put_job *j)
{
    free(j->identifier);
    if (j->keyauth != NULL)
        OPENSSL_cleanse(j->keyauth, strlen(j->keyauth));
    free(j->keyauth);
    X509_free(j->cert);
    EVP_PKEY_free(j->key);
    free(j);
}

static void put_done(int status, void *arg)
{
    struct put_job *j = arg;
    struct chal_tlsalpn_put *p = j->p;
    struct chal_tlsalpn *s;

    if (p == NULL) {
        /* cancelled: the tombstone only frees; the responder may be closing */
        s = j->s_tomb;
        put_job_free(j);
        s->jobs--;
        maybe_free(s);
        return;
    }
    s = p->s;
    s->jobs--;
    if (status == 0) {
        struct entry *e = xcalloc(1, sizeof(*e));
        e->identifier = j->identifier;
        e->sni = chal_tlsalpn_sni_name(j->identifier);
        e->cert = j->cert;
        e->key = j->key;
        j->identifier = NULL;
        j->cert = NULL;
        j->key = NULL;
        chal_tlsalpn_del(s, e->identifier); /* put replaces */
        e->next = s->entries;
        s->entries = e;
    } else {
        log_error(LOG_CHAL, "tlsalpn01: %s: cannot build the challenge certificate", j->identifier);
    }
    put_job_free(j);
    chal_tlsalpn_done_cb done = p->done;
    void *darg = p->arg;
    free(p);
    done(status, darg);
}

int chal_tlsalpn_put_start(struct chal_tlsalpn *s, const char *identifier,
                           const char *key_authorization, chal_tlsalpn_done_cb done, void *arg,
                           struct chal_tlsalpn_put **out)
{
    if (s == NULL || s->closing || identifier == NULL || *identifier == '\0' ||
        identifier[0] == '*' || key_authorization == NULL || *key_authorization == '\0')
        return -EINVAL;
    struct chal_tlsalpn_put *p = xcalloc(1, sizeof(*p));
    struct put_job *j = xcalloc(1, sizeof(*j));
    p->s = s;
    p->job = j;
    p->done = done;
    p->arg = arg;
    j->p = p;
    j->s_tomb = s;
    j->identifier = xstrdup(identifier);
    j->keyauth = xstrdup(key_authorization);
    int rc = store_job_start(s->loop, put_work, j, put_done);
    if (rc < 0) {
        put_job_free(j);
        free(p);
        return rc;
    }
    s->jobs++;
    if (out != NULL)
        *out = p;
    return 0;
}

void chal_tlsalpn_put_cancel(struct chal_tlsalpn_put *p)
{
    if (p == NULL)
        return;
    p->job->p = NULL;
    free(p);
}

void chal_tlsalpn_del(struct chal_tlsalpn *s, const char *identifier)
{
    if (s == NULL)
        return;
    for (struct entry **pe = &s->entries; *pe != NULL;) {
        struct entry *e = *pe;
        if (strcmp(e->identifier, identifier) == 0) {
            *pe = e->next;
            entry_free(e);
        } else {
            pe = &e->next;
        }
    }
}

void chal_tlsalpn_set_seen_cb(struct chal_tlsalpn *s, chal_seen_cb cb, void *arg)
{
    s->seen_cb = cb;
    s->seen_arg = arg;
}
