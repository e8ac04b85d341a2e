/* challenge: proving control of names to the CA. The http-01 listener
 * (RFC 8555 §8.3) answers GET/HEAD /.well-known/acme-challenge/TOKEN from an
 * in-memory table; the ACME layer (through the reactor) puts a token before
 * it tells the CA to validate and deletes it when the authorization is final. */
#ifndef CERTLOOP_CHALLENGE_CHALLENGE_H
#define CERTLOOP_CHALLENGE_CHALLENGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

/* ---- http-01 listener ------------------------------------------------------
 *
 * Behaviour, for operators and for the CA:
 * - GET or HEAD of /.well-known/acme-challenge/TOKEN with a live TOKEN: 200,
 *   Content-Type application/octet-stream, the key authorization as body (none
 *   for HEAD). A token is served as often as asked until it is deleted (CAs
 *   fetch from several vantage points). Unknown token or other path: 404.
 *   Other methods: 405 with "Allow: GET, HEAD". Malformed head: 400; request
 *   line over 2 KiB: 414; head over 8 KiB or over 64 field lines: 431; not
 *   HTTP/1.x: 505. After an error status the connection is closed.
 * - Any Host; HTTP/1.0 and 1.1; absolute-form targets ("GET http://host/...")
 *   as proxies send them. A query string is ignored, not rejected: tokens have
 *   none, and a proxy or load balancer that appends one must not break
 *   validation.
 * - No request body: Transfer-Encoding, or Content-Length other than 0, is 400.
 * - Keep-alive as the client asks (HTTP/1.1 by default), at most
 *   max_requests per connection; pipelined requests are answered in order.
 * - A complete request head must arrive within header_timeout_ms of the
 *   connection (or of the first byte of a later keep-alive request), else a
 *   408 is attempted and the connection closed; an idle keep-alive connection
 *   is closed after idle_timeout_ms; a response the peer does not read within
 *   header_timeout_ms closes the connection.
 * - After the last response the write side is shut down and what the peer
 *   still sends is read and dropped for up to linger_timeout_ms, so that the
 *   peer sees the response and not a reset.
 * - At max_connections, accepting one more closes the oldest of: a lingering
 *   connection, else an idle keep-alive one, else the one waiting longest for
 *   its request head. New connections are thus never refused (a slow-client
 *   flood cannot lock the CA out; it must outpace the CA's own round trip).
 *   The daemon sizes max_connections from the file-descriptor budget
 *   (reactor/fdbudget.h). Should accept still fail with EMFILE or ENFILE
 *   (libuv then drops that connection), the 16 oldest connections in the
 *   same order are closed, so that the next one finds a descriptor.
 * - With a miss callback set (chal_http01_set_miss_cb: the token table shared
 *   by a fleet of instances), a GET or HEAD for a token the table does not
 *   hold waits up to miss_wait_ms for it (the callback looks it up
 *   elsewhere and puts it), then is answered with what the table holds:
 *   200, or 404. At most max_waiting requests wait at once; more are
 *   answered at once. A waiting connection reads nothing more until then.
 */
struct chal_http01;

struct chal_http01_limits {
    unsigned header_timeout_ms; /* complete request head, or a stalled write (10000) */
    unsigned idle_timeout_ms;   /* keep-alive connection without a request (30000) */
    unsigned linger_timeout_ms; /* draining the peer after the last response (2000) */
    unsigned max_connections;   /* open at once (1024; the daemon: from the fd budget) */
    unsigned max_requests;      /* per keep-alive connection (100) */
    unsigned miss_wait_ms;      /* an unknown token waits for the miss callback (3000) */
    unsigned max_waiting;       /* requests waiting at once (256) */
};

struct chal_http01_stats {
    uint64_t connections; /* accepted */
    uint64_t requests;    /* request heads answered, whatever the status */
    uint64_t served;      /* 200 */
    uint64_t not_found;   /* 404 */
    uint64_t rejected;    /* 400, 405, 414, 431, 505 and header timeouts */
    uint64_t timeouts;    /* of those, header timeouts and stalled writes */
    uint64_t evicted;     /* closed to make room at max_connections (or when out of fds) */
    uint64_t shed;        /* of those, closed because accept failed with EMFILE/ENFILE */
    uint64_t waited;      /* requests that waited for the miss callback */
    size_t active;        /* connections open now */
};

/* Default limits (the values in parentheses above). */
void chal_http01_limits_default(struct chal_http01_limits *l);

/* Opens the listener: binds and listens on every address of listen[0..n)
 * ("IP:PORT" or "[IPv6]:PORT"; port 0 picks an ephemeral port, see
 * chal_http01_port()). IPv6 sockets are IPV6_V6ONLY, so "[::]:80" and
 * "0.0.0.0:80" coexist. When systemd socket activation passes sockets
 * (LISTEN_PID is our pid and LISTEN_FDS > 0) the inherited listening TCP
 * sockets among fds 3.. are used instead of listen[] (other fds are left
 * alone); the LISTEN_* variables are then removed from the environment, so
 * this works once per process.
 * The process must ignore SIGPIPE (the daemon does): a peer that vanishes
 * makes a write fail with EPIPE, which closes that connection.
 * With n == 0 and no socket activation there is nothing to open: returns 0
 * and sets *out to NULL. An address in use is logged with the program that
 * holds it (from /proc, when visible) and the ways to share the port.
 * Returns 0 and sets *out (owned: release with chal_http01_close()), or < 0
 * after logging the failing address; handles already opened are then closed
 * on the loop, so run the loop before uv_loop_close(). listen is borrowed. */
int chal_http01_open(uv_loop_t *loop, const char *const *listen, size_t n,
                     struct chal_http01 **out);

/* Closes the listeners and every connection; s is freed after its last
 * handle has closed, and then closed_cb(arg) runs (on the loop, never from
 * inside this call; closed_cb may be NULL). Tokens are dropped. */
void chal_http01_close(struct chal_http01 *s, void (*closed_cb)(void *arg), void *arg);

/* Replaces the limits (zero fields keep their defaults); applies to
 * deadlines set from now on. l is borrowed. */
void chal_http01_set_limits(struct chal_http01 *s, const struct chal_http01_limits *l);
/* Changes only max_connections (0: its default); below the connections
 * open it closes the excess at once (lingering, then idle, then waiting
 * ones, oldest first). */
void chal_http01_set_max_connections(struct chal_http01 *s, unsigned max_connections);

/* The number of listening sockets, and the port listener i is bound to
 * (< 0 if i is out of range or the socket cannot tell). */
size_t chal_http01_listeners(const struct chal_http01 *s);
int chal_http01_port(const struct chal_http01 *s, size_t i);

/* Makes token (1..256 base64url characters) answer key_authorization
 * (1..1024 visible ASCII characters), replacing what token answered before.
 * Both strings are copied. Returns 0 or -EINVAL. */
int chal_http01_put(struct chal_http01 *s, const char *token, const char *key_authorization);

/* Stops answering token (404 from now on); unknown tokens are ignored. */
void chal_http01_del(struct chal_http01 *s, const char *token);

/* Live tokens. */
size_t chal_http01_count(const struct chal_http01 *s);

/* Called on the loop when someone (the CA) was just served a live
 * challenge: the http-01 token (a 200), or the tls-alpn-01 identifier
 * (a finished acme-tls/1 handshake). what is borrowed for the call; the
 * callback must not close the listener. */
typedef void (*chal_seen_cb)(void *arg, const char *what);

/* Sets (cb NULL: clears) the callback for every token served from now on. */
void chal_http01_set_seen_cb(struct chal_http01 *s, chal_seen_cb cb, void *arg);

/* Called on the loop when a request asks for a token the table does not
 * hold (token borrowed for the call): the callback may look it up (in the
 * fleet's shared store) and chal_http01_put it, now or later; the request
 * waits up to miss_wait_ms for that. It must not close the listener. */
typedef void (*chal_miss_cb)(void *arg, const char *token);

/* Sets (cb NULL: clears) the miss callback. */
void chal_http01_set_miss_cb(struct chal_http01 *s, chal_miss_cb cb, void *arg);

/* Copies the counters into *out, for status and metrics. */
void chal_http01_get_stats(const struct chal_http01 *s, struct chal_http01_stats *out);

/* ---- http-01 through a web server's document root (challenge/webroot.c) ----
 *
 * For a web server that already owns port 80: the token is served as a
 * static file DIR/.well-known/acme-challenge/TOKEN. */

/* Writes key_authorization as DIR/.well-known/acme-challenge/TOKEN: the two
 * directories are created when missing (0755; DIR must exist), the file is
 * a temp file renamed into place (the web server never sees half of it),
 * mode 0644, owned by uid/gid where they are not -1. token must be
 * base64url (1..256 characters). Synchronous, no fsync (see webroot.c).
 * Returns 0, or < 0 after logging the path and the failing step; -EINVAL
 * (not logged) for a bad token or an empty key authorization. */
int chal_webroot_put(const char *dir, uid_t uid, gid_t gid, const char *token,
                     const char *key_authorization);

/* Removes the token's file; a missing one is fine, other errors are logged
 * as warnings. */
void chal_webroot_del(const char *dir, const char *token);

/* DIR/.well-known/acme-challenge/TOKEN (owned: free it). */
char *chal_webroot_path(const char *dir, const char *token);

/* ---- tls-alpn-01 responder (challenge/tlsalpn01.c) -------------------------
 *
 * RFC 8737: a TLS listener that answers only clients offering ALPN
 * "acme-tls/1" whose SNI names a live challenge (RFC 8738 §6: the
 * reverse-mapping name for an IP address), with a self-signed certificate
 * holding the identifier and the acmeIdentifier extension; any other client
 * gets a fatal alert (no_application_protocol or unrecognized_name). No
 * application data is served. A handshake must finish within 10 s; at most
 * 256 connections are open (the oldest is closed for a new one). */
struct chal_tlsalpn;
struct chal_tlsalpn_put;

struct chal_tlsalpn_stats {
    uint64_t connections;  /* accepted */
    uint64_t handshakes;   /* completed: a challenge certificate was served */
    uint64_t no_alpn;      /* refused: acme-tls/1 not offered */
    uint64_t unknown_name; /* refused: no live challenge for the SNI */
    uint64_t failed;       /* handshakes that failed otherwise */
    size_t active;
};

/* The tls-alpn-01 responder's connections open at once (the oldest goes
 * beyond it); the daemon's fd budget keeps room for them. */
#define CHAL_TLSALPN_MAX_CONNECTIONS 256

/* Binds and listens on listen[0..n) ("IP:PORT" or "[IPv6]:PORT", port 0 for
 * an ephemeral one). n == 0: nothing to open, 0 and *out NULL. 0 and *out
 * (owned: chal_tlsalpn_close), or < 0 after logging the failing address
 * (handles already opened close on the loop). listen is borrowed. */
int chal_tlsalpn_open(uv_loop_t *loop, const char *const *listen, size_t n,
                      struct chal_tlsalpn **out);
/* Closes listeners and connections and drops the certificates; s is freed
 * once its handles have closed and its certificate jobs have ended, then
 * closed_cb(arg) runs on the loop (may be NULL). */
void chal_tlsalpn_close(struct chal_tlsalpn *s, void (*closed_cb)(void *arg), void *arg);
/* Changes the addresses to listen[0..n) (n == 0: none, the responder
 * stays with its challenges): the new addresses are bound first, and only
 * when all of them are listening are the ones no longer listed closed;
 * addresses in both are kept as they are, and so are live challenges and
 * connections. 0, or < 0 with *failed (borrowed from listen) naming the
 * address that could not be bound (logged), and nothing changed. */
int chal_tlsalpn_rebind(struct chal_tlsalpn *s, const char *const *listen, size_t n,
                        const char **failed);
/* The port of listener i (in the order of listen), or < 0. */
int chal_tlsalpn_port(const struct chal_tlsalpn *s, size_t i);

/* Builds identifier's challenge certificate for key_authorization on the
 * threadpool (the key generation must not block the loop), then serves it
 * for identifier's SNI (replacing an earlier one) and calls done(status,
 * arg) on the loop (STYLE §4; status ERR_CRYPTO when it could not be
 * built). *out (optional) for chal_tlsalpn_put_cancel, after which done
 * never runs and nothing is served. -EINVAL for an empty or wildcard
 * identifier. Strings are copied. */
typedef void (*chal_tlsalpn_done_cb)(int status, void *arg);
int chal_tlsalpn_put_start(struct chal_tlsalpn *s, const char *identifier,
                           const char *key_authorization, chal_tlsalpn_done_cb done, void *arg,
                           struct chal_tlsalpn_put **out);
void chal_tlsalpn_put_cancel(struct chal_tlsalpn_put *p);
/* A tls-alpn-01 validation as a CA makes it (challenge/tlsalpn01_probe.c):
 * a TCP connection to addr (an IP literal) and port, a TLS handshake
 * offering only ALPN "acme-tls/1" with identifier's server name (RFC 8738
 * §6 for an address), and the presented certificate checked: the only
 * subjectAltName is identifier, the critical acmeIdentifier holds SHA-256
 * of key_authorization. BLOCKING (connect and handshake, each read and
 * write bounded by timeout_s): run it on the threadpool. 0 when it
 * matches; -ENOENT when the server refused the name (unrecognized_name:
 * a certloop responder without that challenge); ERR_CHALLENGE or
 * ERR_CRYPTO otherwise. *detail (owned) says what happened. */
int chal_tlsalpn_probe(const char *addr, unsigned port, const char *identifier,
                       const char *key_authorization, int timeout_s, char **detail);
/* Stops serving identifier; unknown ones are ignored. */
void chal_tlsalpn_del(struct chal_tlsalpn *s, const char *identifier);
/* Sets (cb NULL: clears) the callback for every handshake that served a
 * live challenge certificate from now on (chal_seen_cb, above). */
void chal_tlsalpn_set_seen_cb(struct chal_tlsalpn *s, chal_seen_cb cb, void *arg);
/* Identifiers served now. */
size_t chal_tlsalpn_count(const struct chal_tlsalpn *s);
void chal_tlsalpn_get_stats(const struct chal_tlsalpn *s, struct chal_tlsalpn_stats *out);

/* ---- dns-01 (challenge/dns01_*.c) ---- */

/* dns-01 solvers (RFC 8555 §8.4) for a [dns.NAME] solver: rfc2136 sends an
 * RFC 2136 UPDATE signed with TSIG to the configured primary; exec runs
 * `COMMAND... present|cleanup FQDN. VALUE` (lego's exec convention; FQDN
 * with its trailing dot). Both first follow a CNAME at the record name (the
 * acme-dns pattern): the record goes to the CNAME target, and the zone is
 * then the target's. present adds one TXT value and cleanup deletes exactly
 * that value, so the wildcard's and the apex's values under one name
 * coexist. wait checks that every authoritative server of the zone (the NS
 * records and their A/AAAA, or the solver's `nameservers`) serves the
 * value, querying each directly, every poll_interval_s, for at most
 * propagation_timeout_s. */
struct cfg_dns;
struct cfg_tsig;
struct dns_resolver;
struct chal_dns01_op;

/* Type callback: asks someone else (the daemon's webhook outbox) to add
 * (present true) or remove the TXT `value` at fqdn (after the CNAME, with
 * its trailing dot). Called on the loop, once per present or cleanup; it
 * only queues the request: the record's arrival is what wait checks.
 * 0, or < 0 with *why (owned, may stay NULL) when it cannot be asked. */
typedef int (*chal_dns01_callback_fn)(void *ctx, bool present, const char *fqdn, const char *value,
                                      char **why);

struct chal_dns01_opts {
    const char *subject;             /* log prefix, e.g. "cert=www" (borrowed; NULL: none) */
    unsigned ns_port;                /* port of discovered authoritative servers (0: 53; tests) */
    unsigned dns_timeout_ms;         /* per DNS query or UPDATE try (0: 2000) */
    chal_dns01_callback_fn callback; /* type callback (required there), else unused */
    void *callback_ctx;              /* borrowed: must outlive the operation */
};

/* What an operation found, borrowed during the callback only. */
struct chal_dns01_result {
    const char *fqdn;   /* where the record lives (after the CNAME), with the dot */
    const char *zone;   /* the zone updated or checked; NULL when not needed */
    const char *detail; /* one line for the log and `status`: the error and what to
                         * fix, or wait's per-server report, e.g. "127.0.0.1:5353
                         * has it; 127.0.0.1:5354 answers NXDOMAIN (waited 6 s)" */
};

/* status: 0; ERR_DNS (the server refused the update, or DNS lookups failed:
 * detail says which and what to fix); ERR_HOOK (exec exited non-zero);
 * ERR_TIMEOUT (propagation or the program took too long); the callback's
 * error (type callback). res is never NULL. */
typedef void (*chal_dns01_cb)(int status, const struct chal_dns01_result *res, void *arg);

/* "_acme-challenge.NAME" for a certificate name ("*.a.test" -> the same name
 * as "a.test"), lower case, without a trailing dot. A name that already is
 * a validation name ("_LABEL._acme-challenge.NAME", dns-account-01) is
 * returned as is (lower case). Owned. */
char *chal_dns01_record_name(const char *domain);

/* Starts putting (present), removing (cleanup) or waiting for (wait) the TXT
 * `value` at `name` (the _acme-challenge name) with solver `dns`.
 * loop, resolver (recursive lookups: CNAME, SOA, NS, A/AAAA) and dns are
 * borrowed and must outlive the operation (the caller holds a config
 * reference); name, value and opts are copied; the TSIG key is read from
 * its file now. Async contract of STYLE §4: < 0 on a synchronous failure
 * (logged) and no callback; otherwise cb runs exactly once, later, unless
 * chal_dns01_cancel is called first. *out (optional) is valid until then. */
int chal_dns01_present_start(uv_loop_t *loop, struct dns_resolver *resolver,
                             const struct cfg_dns *dns, const char *name, const char *value,
                             const struct chal_dns01_opts *opts, chal_dns01_cb cb, void *arg,
                             struct chal_dns01_op **out);
int chal_dns01_cleanup_start(uv_loop_t *loop, struct dns_resolver *resolver,
                             const struct cfg_dns *dns, const char *name, const char *value,
                             const struct chal_dns01_opts *opts, chal_dns01_cb cb, void *arg,
                             struct chal_dns01_op **out);
int chal_dns01_wait_start(uv_loop_t *loop, struct dns_resolver *resolver, const struct cfg_dns *dns,
                          const char *name, const char *value, const struct chal_dns01_opts *opts,
                          chal_dns01_cb cb, void *arg, struct chal_dns01_op **out);
/* Silences op (its callback never runs); it frees itself once its handles
 * have closed. A present in flight may still reach the server. */
void chal_dns01_cancel(struct chal_dns01_op *op);

/* Reads and parses the TSIG key of t as an rfc2136 solver will (a base64
 * secret, or a BIND key file holding a key named t->name), for `check`.
 * 0, or < 0 with *why (owned) a sentence naming the file: a key file
 * without that key name, bad base64, an unsupported algorithm. Logs
 * nothing; never puts the secret in *why. t is borrowed. */
int chal_dns01_key_check(const struct cfg_tsig *t, char **why);

#endif
