/* TLS over libuv streams with OpenSSL memory BIOs, and self-signed
 * certificates: the pieces the tls-alpn-01 responder (src/challenge) and
 * the HTTPS API (src/api) share. The owner keeps the connection, reads into
 * the SSL's read BIO and calls tls_mem_flush after every OpenSSL call that
 * may have produced bytes. */
#ifndef CERTLOOP_NET_TLS_MEM_H
#define CERTLOOP_NET_TLS_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

/* A new server-side SSL on ctx with a memory read BIO and a memory write
 * BIO, in accept state. Owned (SSL_free), or NULL (OpenSSL's error queue
 * cleared). */
SSL *tls_mem_accept_new(SSL_CTX *ctx);

/* One TLS connection: a uv_tcp_t, a deadline timer and the SSL. The owner
 * embeds it as the first member of its connection struct (so the handles'
 * data, a struct tls_conn *, is also the owner's), starts the timer with its
 * own callback and reads with its own read callback. */
struct tls_conn_list {
    struct tls_conn *head; /* newest first */
    size_t n;              /* open, not closing (closing ones stay linked until freed) */
};

struct tls_conn {
    uv_tcp_t tcp;     /* .data = self */
    uv_timer_t timer; /* .data = self */
    SSL *ssl;         /* owned; NULL until the owner sets it */
    int open_handles; /* 2 until closed */
    unsigned writes;  /* uv_writes in flight */
    bool closing;
    bool close_after_write; /* close once the last write queued so far is out */
    /* Runs once both handles have closed, after the SSL was freed: the
     * owner unlinks and frees its struct. */
    void (*freed_cb)(struct tls_conn *c);
    /* Optional: runs when the last write in flight is out and the
     * connection stays open (a streamed answer makes its next piece). */
    void (*drained_cb)(struct tls_conn *c);
    struct tls_conn_list *list; /* borrowed: where it is linked */
    struct tls_conn *prev, *next;
};

/* Initialises both handles on loop and links c first into list;
 * freed_cb runs after it has been unlinked again. */
void tls_conn_init(uv_loop_t *loop, struct tls_conn_list *list, struct tls_conn *c,
                   void (*freed_cb)(struct tls_conn *c));
/* The oldest connection of list that is not closing yet, or NULL: the one a
 * full listener closes for a new one. */
struct tls_conn *tls_conn_oldest(const struct tls_conn_list *list);
/* Closes every connection of list. */
void tls_conn_close_all(struct tls_conn_list *list);
/* Closes both handles (once); freed_cb follows. */
void tls_conn_close(struct tls_conn *c);
/* Sends what OpenSSL has written into the write BIO (one uv_write each);
 * a refused write closes the connection, and with close_after_write the
 * connection closes once nothing is in flight any more. */
void tls_conn_flush(struct tls_conn *c);

/* Binds h (initialised by the caller) to addr ("IP:PORT" or "[IPv6]:PORT";
 * an IPv6 address only for IPv6) and listens. 0, or < 0 after one log line
 * for group that names what (e.g. "api"). */
int tls_listen(uv_tcp_t *h, const char *addr, int backlog, uv_connection_cb cb, int group,
               const char *what);

/* Hands n bytes read from the peer to OpenSSL. 0, or -EIO. */
int tls_mem_feed(SSL *ssl, const void *p, size_t n);

/* The uv_alloc_cb for tls_conn reads: 16 KiB, freed by tls_conn_read. */
void tls_conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
/* The start of every tls_conn read callback: feeds what arrived to OpenSSL
 * and frees buf. True when the owner should go on (bytes arrived on an open
 * connection); an error or EOF closes the connection and gives false. */
bool tls_conn_read(struct tls_conn *c, ssize_t nread, const uv_buf_t *buf);

/* A self-signed certificate with a new P-256 key: subject and issuer CN
 * cn, a random positive 128-bit serial, valid from an hour ago for
 * valid_s seconds, subjectAltName with every sans[i] (an IP literal as
 * iPAddress, anything else as dNSName), and ext added as is (may be NULL;
 * borrowed). *cert and *key owned. ERR_CRYPTO (the error queue cleared).
 * Pure and silent: may run on the threadpool. */
int tls_selfsigned_build(const char *cn, const char *const *sans, size_t n, long valid_s,
                         X509_EXTENSION *ext, X509 **cert, EVP_PKEY **key);

#endif
