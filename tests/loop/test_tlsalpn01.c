/* Loop tests of the tls-alpn-01 responder (src/challenge/tlsalpn01.c) and
 * unit tests of its pure parts: a client offering acme-tls/1 with the SNI
 * of a live challenge gets the self-signed certificate with the identifier
 * and the critical acmeIdentifier extension (RFC 8737 §3), also for an IP
 * address through its reverse name (RFC 8738 §6); a client without
 * acme-tls/1, or naming no live challenge, gets no certificate; the put
 * calls back exactly once, cancel means silence; uv_loop_close() == 0.
 * The TLS clients are blocking OpenSSL clients on a thread, so the loop
 * keeps running while they connect. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "challenge/challenge.h"
#include "challenge/tlsalpn01_internal.h"
#include "net/tls_mem.h"
#include "util/err.h"
#include "util/xalloc.h"

#define KEYAUTH "tok.thumb"

/* ---- pure parts ---- */

static void test_sni_names(void **state)
{
    char *s;

    (void)state;
    s = chal_tlsalpn_sni_name("A.Example");
    assert_string_equal(s, "a.example");
    free(s);
    s = chal_tlsalpn_sni_name("192.0.2.10");
    assert_string_equal(s, "10.2.0.192.in-addr.arpa");
    free(s);
    s = chal_tlsalpn_sni_name("2001:db8::1");
    assert_string_equal(s,
                        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    free(s);
}

static void test_hello_parse(void **state)
{
    static const uint8_t alpn_acme[] = "\x00\x0e\x02h2\x0a"
                                       "acme-tls/1";
    static const uint8_t alpn_h2[] = "\x00\x03\x02h2";
    static const uint8_t sni[] = "\x00\x09\x00\x00\x06"
                                 "A.Test";
    static const uint8_t sni_bad[] = "\x00\x09\x00\x00\x09"
                                     "A.Test";
    char name[64];

    (void)state;
    assert_int_equal(chal_tlsalpn_hello_parse(alpn_acme, sizeof(alpn_acme) - 1, sni,
                                              sizeof(sni) - 1, name, sizeof(name)),
                     0);
    assert_string_equal(name, "a.test");
    assert_int_equal(chal_tlsalpn_hello_parse(alpn_h2, sizeof(alpn_h2) - 1, sni, sizeof(sni) - 1,
                                              name, sizeof(name)),
                     -ENOPROTOOPT);
    assert_int_equal(chal_tlsalpn_hello_parse(NULL, 0, sni, sizeof(sni) - 1, name, sizeof(name)),
                     -EPROTO);
    assert_int_equal(
        chal_tlsalpn_hello_parse(alpn_acme, sizeof(alpn_acme) - 1, NULL, 0, name, sizeof(name)),
        -ENOENT);
    assert_int_equal(chal_tlsalpn_hello_parse(alpn_acme, sizeof(alpn_acme) - 1, sni_bad,
                                              sizeof(sni_bad) - 1, name, sizeof(name)),
                     -EPROTO);
    assert_int_equal(
        chal_tlsalpn_hello_parse(alpn_acme, sizeof(alpn_acme) - 1, sni, sizeof(sni) - 1, name, 4),
        -ENAMETOOLONG);
}

/* The acmeIdentifier extension of x: critical, extnValue = DER OCTET
 * STRING of SHA-256(keyauth). */
static void check_acme_ext(X509 *x, const char *keyauth)
{
    ASN1_OBJECT *obj = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    int at = X509_get_ext_by_OBJ(x, obj, -1);
    uint8_t want[34] = {0x04, 0x20};
    unsigned dl = 0;

    ASN1_OBJECT_free(obj);
    assert_true(at >= 0);
    X509_EXTENSION *ext = X509_get_ext(x, at);
    assert_int_equal(X509_EXTENSION_get_critical(ext), 1);
    ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ext);
    assert_int_equal(EVP_Digest(keyauth, strlen(keyauth), want + 2, &dl, EVP_sha256(), NULL), 1);
    assert_int_equal(ASN1_STRING_length(v), 34);
    assert_memory_equal(ASN1_STRING_get0_data(v), want, 34);
}

static void test_cert_build(void **state)
{
    X509 *x = NULL;
    EVP_PKEY *k = NULL;

    (void)state;
    assert_int_equal(chal_tlsalpn_cert_build("a.test", KEYAUTH, &x, &k), 0);
    check_acme_ext(x, KEYAUTH);
    assert_int_equal(X509_check_host(x, "a.test", 0, 0, NULL), 1);
    assert_int_equal(X509_verify(x, k), 1);
    X509_free(x);
    EVP_PKEY_free(k);
    assert_int_equal(chal_tlsalpn_cert_build("192.0.2.10", KEYAUTH, &x, &k), 0);
    assert_int_equal(X509_check_ip_asc(x, "192.0.2.10", 0), 1);
    check_acme_ext(x, KEYAUTH);
    X509_free(x);
    EVP_PKEY_free(k);
}

/* chal_tlsalpn_cert_check, what `certloop test` asks of the presented
 * certificate: our own challenge certificates pass; another key
 * authorization, another name or a certificate without the extension does
 * not. */
static void test_cert_check(void **state)
{
    X509 *x = NULL, *y = NULL;
    EVP_PKEY *k = NULL;
    char *why = NULL;

    (void)state;
    assert_int_equal(chal_tlsalpn_cert_build("a.test", KEYAUTH, &x, &k), 0);
    EVP_PKEY_free(k);
    assert_int_equal(chal_tlsalpn_cert_check(x, "a.test", KEYAUTH, &why), 0);
    assert_null(why);
    assert_int_equal(chal_tlsalpn_cert_check(x, "A.TEST", KEYAUTH, &why), 0);
    assert_int_equal(chal_tlsalpn_cert_check(x, "a.test", "other.keyauth", &why), ERR_CHALLENGE);
    assert_non_null(strstr(why, "another key authorization"));
    free(why);
    assert_int_equal(chal_tlsalpn_cert_check(x, "b.test", KEYAUTH, &why), ERR_CHALLENGE);
    assert_non_null(strstr(why, "subjectAltName is not exactly b.test"));
    free(why);
    assert_int_equal(chal_tlsalpn_cert_build("192.0.2.10", KEYAUTH, &y, &k), 0);
    EVP_PKEY_free(k);
    assert_int_equal(chal_tlsalpn_cert_check(y, "192.0.2.10", KEYAUTH, &why), 0);
    assert_int_equal(chal_tlsalpn_cert_check(y, "192.0.2.11", KEYAUTH, &why), ERR_CHALLENGE);
    free(why);
    X509_free(y);
    /* a plain self-signed certificate: no acmeIdentifier */
    const char *name = "a.test";
    assert_int_equal(tls_selfsigned_build("plain", &name, 1, 86400, NULL, &y, &k), 0);
    EVP_PKEY_free(k);
    assert_int_equal(chal_tlsalpn_cert_check(y, "a.test", KEYAUTH, &why), ERR_CHALLENGE);
    assert_non_null(strstr(why, "no acmeIdentifier extension"));
    free(why);
    X509_free(y);
    X509_free(x);
}

/* ---- the responder on a loop ---- */

struct client {
    int port;
    const char *sni;
    const char *alpn; /* wire form, or NULL */
    size_t alpn_len;
    X509 *peer;        /* out */
    char selected[32]; /* out: the ALPN the server chose */
    int ok;            /* out: 1 handshake completed */
    uv_async_t *done;
};

static void *client_main(void *arg)
{
    struct client *cl = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    BIO *b = NULL;
    char addr[32];

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", cl->port);
    b = BIO_new_connect(addr);
    if (ctx == NULL || b == NULL || BIO_do_connect(b) <= 0)
        goto out;
    ssl = SSL_new(ctx);
    SSL_set_bio(ssl, b, b);
    b = NULL;
    if (cl->sni != NULL)
        SSL_set_tlsext_host_name(ssl, cl->sni);
    if (cl->alpn != NULL)
        SSL_set_alpn_protos(ssl, (const unsigned char *)cl->alpn, (unsigned)cl->alpn_len);
    if (SSL_connect(ssl) == 1) {
        const unsigned char *sel = NULL;
        unsigned sl = 0;
        cl->ok = 1;
        cl->peer = SSL_get1_peer_certificate(ssl);
        SSL_get0_alpn_selected(ssl, &sel, &sl);
        if (sl < sizeof(cl->selected)) {
            memcpy(cl->selected, sel, sl);
            cl->selected[sl] = '\0';
        }
        SSL_shutdown(ssl);
    }
out:
    ERR_clear_error();
    BIO_free_all(b);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    uv_async_send(cl->done);
    return NULL;
}

struct fx {
    uv_loop_t loop;
    struct chal_tlsalpn *s;
    uv_async_t async;
    int puts, put_status, closed;
};

static void async_cb(uv_async_t *a)
{
    uv_stop(a->loop);
}

static void put_cb(int status, void *arg)
{
    struct fx *f = arg;

    f->puts++;
    f->put_status = status;
    if (f->puts == 2)
        uv_stop(&f->loop);
}

static void closed_cb(void *arg)
{
    struct fx *f = arg;

    f->closed++;
}

static void run_client(struct fx *f, struct client *cl)
{
    pthread_t th;

    cl->port = chal_tlsalpn_port(f->s, 0);
    cl->done = &f->async;
    assert_int_equal(pthread_create(&th, NULL, client_main, cl), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* until the client's async */
    pthread_join(th, NULL);
}

static void test_responder_serves_only_acme_tls(void **state)
{
    struct fx f;
    const char *listen[] = {"127.0.0.1:0"};
    static const char alpn[] = "\x0a"
                               "acme-tls/1";
    static const char alpn_h2[] = "\x02h2\x08http/1.1";

    (void)state;
    memset(&f, 0, sizeof(f));
    assert_int_equal(uv_loop_init(&f.loop), 0);
    assert_int_equal(uv_async_init(&f.loop, &f.async, async_cb), 0);
    assert_int_equal(chal_tlsalpn_open(&f.loop, listen, 1, &f.s), 0);
    assert_true(chal_tlsalpn_port(f.s, 0) > 0);
    assert_int_equal(chal_tlsalpn_put_start(f.s, "a.test", KEYAUTH, put_cb, &f, NULL), 0);
    assert_int_equal(chal_tlsalpn_put_start(f.s, "127.0.0.1", KEYAUTH, put_cb, &f, NULL), 0);
    assert_int_equal(f.puts, 0); /* never from inside _start */
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(f.puts, 2);
    assert_int_equal(f.put_status, 0);
    assert_int_equal(chal_tlsalpn_count(f.s), 2);

    /* acme-tls/1 and the SNI of a live challenge: its certificate */
    struct client c1 = {.sni = "a.test", .alpn = alpn, .alpn_len = sizeof(alpn) - 1};
    run_client(&f, &c1);
    assert_int_equal(c1.ok, 1);
    assert_string_equal(c1.selected, "acme-tls/1");
    assert_non_null(c1.peer);
    assert_int_equal(X509_check_host(c1.peer, "a.test", 0, 0, NULL), 1);
    check_acme_ext(c1.peer, KEYAUTH);
    X509_free(c1.peer);

    /* an IP address: selected by its reverse name */
    struct client c2 = {
        .sni = "1.0.0.127.in-addr.arpa", .alpn = alpn, .alpn_len = sizeof(alpn) - 1};
    run_client(&f, &c2);
    assert_int_equal(c2.ok, 1);
    assert_int_equal(X509_check_ip_asc(c2.peer, "127.0.0.1", 0), 1);
    X509_free(c2.peer);

    /* no acme-tls/1, no ALPN, unknown name: no handshake */
    struct client c3 = {.sni = "a.test", .alpn = alpn_h2, .alpn_len = sizeof(alpn_h2) - 1};
    run_client(&f, &c3);
    assert_int_equal(c3.ok, 0);
    assert_null(c3.peer);
    struct client c4 = {.sni = "a.test"};
    run_client(&f, &c4);
    assert_int_equal(c4.ok, 0);
    struct client c5 = {.sni = "b.test", .alpn = alpn, .alpn_len = sizeof(alpn) - 1};
    run_client(&f, &c5);
    assert_int_equal(c5.ok, 0);

    /* deleted: no longer served */
    chal_tlsalpn_del(f.s, "a.test");
    struct client c6 = {.sni = "a.test", .alpn = alpn, .alpn_len = sizeof(alpn) - 1};
    run_client(&f, &c6);
    assert_int_equal(c6.ok, 0);

    struct chal_tlsalpn_stats st;
    chal_tlsalpn_get_stats(f.s, &st);
    assert_int_equal(st.handshakes, 2);
    assert_int_equal(st.no_alpn, 2);
    assert_int_equal(st.unknown_name, 2);

    chal_tlsalpn_close(f.s, closed_cb, &f);
    uv_close((uv_handle_t *)&f.async, NULL);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f.closed, 1);
    assert_int_equal(uv_loop_close(&f.loop), 0);
}

static void test_put_cancel_is_silent(void **state)
{
    struct fx f;
    const char *listen[] = {"127.0.0.1:0"};
    struct chal_tlsalpn_put *p = NULL;

    (void)state;
    memset(&f, 0, sizeof(f));
    assert_int_equal(uv_loop_init(&f.loop), 0);
    assert_int_equal(chal_tlsalpn_open(&f.loop, listen, 1, &f.s), 0);
    assert_int_equal(chal_tlsalpn_put_start(f.s, "a.test", KEYAUTH, put_cb, &f, &p), 0);
    chal_tlsalpn_put_cancel(p);
    /* closing while the job runs: freed after it ends */
    chal_tlsalpn_close(f.s, closed_cb, &f);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f.puts, 0);
    assert_int_equal(f.closed, 1);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    assert_int_equal(chal_tlsalpn_put_start(NULL, "a.test", KEYAUTH, put_cb, &f, NULL), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sni_names),
        cmocka_unit_test(test_hello_parse),
        cmocka_unit_test(test_cert_build),
        cmocka_unit_test(test_cert_check),
        cmocka_unit_test(test_responder_serves_only_acme_tls),
        cmocka_unit_test(test_put_cancel_is_silent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
