/* A tls-alpn-01 validation as a CA makes it (RFC 8737 §3, RFC 8738 §6),
 * for `certloop test`: connect to an address and port, offer only ALPN
 * "acme-tls/1" with the identifier's server name, and check the presented
 * certificate: its only subjectAltName is the identifier and its critical
 * acmeIdentifier extension holds SHA-256 of the expected key authorization.
 * Blocking (connect, handshake): run it on the threadpool. */
#include "challenge/challenge.h"
#include "challenge/tlsalpn01_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "util/err.h"
#include "util/xalloc.h"

/* RFC 8737 §3: id-pe-acmeIdentifier */
#define OID_ACME_IDENTIFIER "1.3.6.1.5.5.7.1.31"

/* the SAN is exactly the identifier (dNSName, or iPAddress for a literal) */
static bool san_is(X509 *cert, const char *identifier)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    unsigned char ip[16];
    int iplen = inet_pton(AF_INET, identifier, ip) == 1    ? 4
                : inet_pton(AF_INET6, identifier, ip) == 1 ? 16
                                                           : 0;
    bool ok = false;

    if (gens != NULL && sk_GENERAL_NAME_num(gens) == 1) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, 0);
        int type = 0;
        const ASN1_STRING *s = GENERAL_NAME_get0_value(g, &type);
        const unsigned char *d = ASN1_STRING_get0_data(s);
        int len = ASN1_STRING_length(s);
        if (iplen > 0)
            ok = type == GEN_IPADD && len == iplen && memcmp(d, ip, (size_t)iplen) == 0;
        else
            ok = type == GEN_DNS && (size_t)len == strlen(identifier) &&
                 strncasecmp((const char *)d, identifier, (size_t)len) == 0;
    }
    GENERAL_NAMES_free(gens);
    return ok;
}

int chal_tlsalpn_cert_check(X509 *cert, const char *identifier, const char *key_authorization,
                            char **why)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(OID_ACME_IDENTIFIER, 1);
    uint8_t want[2 + 32];
    unsigned dlen = 0;
    int idx;

    *why = NULL;
    want[0] = 0x04; /* OCTET STRING (SIZE (32)) */
    want[1] = 32;
    if (obj == NULL || EVP_Digest(key_authorization, strlen(key_authorization), want + 2, &dlen,
                                  EVP_sha256(), NULL) != 1) {
        ASN1_OBJECT_free(obj);
        ERR_clear_error();
        *why = xstrdup("cannot compute the expected acmeIdentifier");
        return ERR_CRYPTO;
    }
    idx = X509_get_ext_by_OBJ(cert, obj, -1);
    ASN1_OBJECT_free(obj);
    if (idx < 0) {
        *why = xstrdup("the certificate has no acmeIdentifier extension: not a tls-alpn-01 "
                       "responder");
        return ERR_CHALLENGE;
    }
    X509_EXTENSION *ext = X509_get_ext(cert, idx);
    const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ext);
    if (!X509_EXTENSION_get_critical(ext)) {
        *why = xstrdup("the acmeIdentifier extension is not critical (RFC 8737 section 3)");
        return ERR_CHALLENGE;
    }
    if (ASN1_STRING_length(v) != (int)sizeof(want) ||
        memcmp(ASN1_STRING_get0_data(v), want, sizeof(want)) != 0) {
        *why = xstrdup("the acmeIdentifier extension holds another key authorization (another "
                       "responder, or another process's challenge)");
        return ERR_CHALLENGE;
    }
    if (!san_is(cert, identifier)) {
        *why = xasprintf("the certificate's subjectAltName is not exactly %s", identifier);
        return ERR_CHALLENGE;
    }
    return 0;
}

int chal_tlsalpn_probe(const char *addr, unsigned port, const char *identifier,
                       const char *key_authorization, int timeout_s, char **detail)
{
    static const unsigned char alpn[] = "\x0a"
                                        "acme-tls/1";
    char *sni = chal_tlsalpn_sni_name(identifier);
    char hostport[INET6_ADDRSTRLEN + 16];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    BIO *b = NULL;
    X509 *peer = NULL;
    int rc = ERR_CHALLENGE;

    *detail = NULL;
    (void)snprintf(hostport, sizeof(hostport), strchr(addr, ':') != NULL ? "[%s]:%u" : "%s:%u",
                   addr, port);
    b = BIO_new_connect(hostport);
    if (ctx == NULL || b == NULL) {
        *detail = xstrdup("cannot set up a TLS client");
        rc = ERR_CRYPTO;
        goto out;
    }
    /* a CA does not verify the challenge certificate's chain: it checks
     * the extension (RFC 8737 §3); the minimum is TLS 1.2 */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    (void)BIO_set_nbio(b, 0);
    if (BIO_do_connect(b) <= 0) {
        *detail = xasprintf("cannot connect to %s", hostport);
        goto out;
    }
    int fd = -1;
    (void)BIO_get_fd(b, &fd);
    if (fd >= 0) {
        struct timeval tv = {.tv_sec = timeout_s > 0 ? timeout_s : 10};
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    ssl = SSL_new(ctx);
    if (ssl == NULL) {
        *detail = xstrdup("cannot set up a TLS client");
        rc = ERR_CRYPTO;
        goto out;
    }
    SSL_set_bio(ssl, b, b);
    b = NULL;
    /* RFC 8738 §6: an IP address is named by its reverse-mapping name */
    (void)SSL_set_tlsext_host_name(ssl, sni);
    (void)SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1);
    if (SSL_connect(ssl) != 1) {
        unsigned long e = ERR_peek_last_error();
        char buf[160] = "the handshake failed";
        if (e != 0)
            ERR_error_string_n(e, buf, sizeof(buf));
        *detail =
            xasprintf("TLS handshake with %s (SNI %s, ALPN acme-tls/1): %s", hostport, sni, buf);
        rc = ERR_GET_REASON(e) == SSL_R_TLSV1_UNRECOGNIZED_NAME ? -ENOENT : ERR_CHALLENGE;
        goto out;
    }
    const unsigned char *sel = NULL;
    unsigned sl = 0;
    SSL_get0_alpn_selected(ssl, &sel, &sl);
    if (sl != sizeof(alpn) - 2 || memcmp(sel, alpn + 1, sl) != 0) {
        *detail = xasprintf("%s did not select ALPN acme-tls/1 (RFC 8737 section 3)", hostport);
        goto out;
    }
    peer = SSL_get1_peer_certificate(ssl);
    if (peer == NULL) {
        *detail = xasprintf("%s presented no certificate", hostport);
        goto out;
    }
    char *why = NULL;
    rc = chal_tlsalpn_cert_check(peer, identifier, key_authorization, &why);
    *detail = rc == 0 ? xasprintf("%s answered acme-tls/1 for %s with the probe's acmeIdentifier",
                                  hostport, sni)
                      : xasprintf("%s: %s", hostport, why);
    free(why);
    (void)SSL_shutdown(ssl);
out:
    ERR_clear_error();
    X509_free(peer);
    BIO_free_all(b);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    free(sni);
    return rc;
}
