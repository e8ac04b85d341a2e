/* Network clients on the reactor: HTTP(S) through one libcurl multi handle
 * driven by libuv (uv_poll_t per socket + one uv_timer_t), and (later) DNS
 * through c-ares on the same loop. Used by acme (the CA), deploy (webhooks)
 * and challenge (DNS); it knows nothing of ACME. Never blocks the loop. */
#ifndef CERTLOOP_NET_NET_H
#define CERTLOOP_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/buf.h"

struct http_client;
struct http_req;

struct http_header {
    const char *name;  /* borrowed */
    const char *value; /* borrowed */
};

struct http_request_opts {
    const char *method;                /* "GET", "HEAD", "POST"; default GET */
    const char *url;                   /* http:// or https:// */
    const struct http_header *headers; /* extra request headers, or NULL */
    size_t n_headers;
    const void *body; /* copied by _start; NULL for none */
    size_t body_len;
    const char *trust_file; /* extra CA bundle (PEM) added to the system store, or NULL.
                             * Read and parsed once per client (again when the file
                             * changes); connections verified with it are never reused
                             * by requests without it. */
    size_t max_body;        /* response cap; 0 = 64 KiB. Past it: ERR_TOO_BIG */
    long timeout_ms;        /* whole request; 0 = 30 s */
    bool redact_url;        /* log lines show only "scheme://host[:port]/..." (webhook URLs
                             * often carry a secret in the path or the query) */
    const char *connect_to; /* "HOST:PORT:ADDR:PORT": connect there for the URL's host and
                             * port (curl's CONNECT_TO; Host and SNI stay the URL's), or
                             * NULL to resolve the host */
    bool insecure;          /* https without certificate checks: only for fetching as an
                             * http-01 validator does after a redirect (CAs do not check) */
    /* method "MAIL": send body (an RFC 5322 message, CRLF lines) over SMTP to
     * an smtp:// (STARTTLS, required unless smtp_plain) or smtps:// url; the
     * callback's resp->status is the server's last reply code (250). */
    const char *mail_from;        /* envelope sender */
    const char *const *mail_rcpt; /* envelope recipients, n_mail_rcpt of them */
    size_t n_mail_rcpt;
    bool smtp_plain;                 /* smtp:// without STARTTLS (tests, a local relay) */
    const char *username, *password; /* SMTP AUTH, or NULL */
    /* trust_only: the certificates of trust_file are the only trust
     * anchors (the system store is not consulted); one that is not a CA
     * (a server's own certificate) is trusted as it is (a pin). The
     * server's name is still checked against the URL's host. */
    bool trust_only;
    const char *header_name; /* one more response header to keep: resp->header */
    /* stream: a 2xx response's body is handed to stream as it arrives
     * instead of being kept (any other status is kept as usual, up to
     * max_body). It runs inside curl's callback: it must not call any
     * http_* function (defer such work to the loop); returning false
     * aborts the transfer (the callback then gets ERR_HTTP). With stream
     * the transfer has no overall time limit (timeout_ms bounds the
     * connection only): the caller watches for silence itself. It is
     * also called once with (NULL, 0) when a 2xx answer's head has come. */
    bool (*stream)(const char *data, size_t len, void *arg);
};

/* A response as the callback sees it: borrowed, valid only during the
 * callback. Header values are the last one seen, NULL if absent. */
struct http_response {
    long status;     /* HTTP status code */
    struct buf body; /* NUL-terminated */
    const char *content_type;
    const char *location;
    const char *replay_nonce;
    const char *retry_after;  /* raw header value */
    const char *const *links; /* every Link header value, NULL-terminated (never NULL) */
    size_t n_links;
    const char *effective_url;
    const char *header; /* the value of opts->header_name, or NULL */
    const char *error;  /* status != 0 only: the transport's reason, one line naming
                         * host:port, e.g. "TLS: unable to get local issuer
                         * certificate for 127.0.0.1:14000", "connection refused by
                         * 127.0.0.1:14000"; every other field is then empty */
};

/* status is 0 when an HTTP response arrived (whatever its code), or
 * ERR_HTTP (transport failure, logged with curl's message), ERR_TOO_BIG,
 * ERR_TIMEOUT; resp is never NULL, and on failure only resp->error is set. */
typedef void (*http_cb)(int status, const struct http_response *resp, void *arg);

/* Creates the client on `loop`. Owned; close with http_client_close. */
int http_client_open(uv_loop_t *loop, struct http_client **out);
/* Cancels every request still in flight (their callbacks never run) and
 * frees the client once its handles have closed (run the loop). */
void http_client_close(struct http_client *c);
/* Number of requests in flight (for metrics and tests). */
size_t http_client_inflight(const struct http_client *c);

/* Starts a request (async contract of STYLE §4): < 0 on synchronous failure
 * and no callback; otherwise cb runs exactly once, later, on the loop,
 * unless http_req_cancel is called first. *out (optional) is a handle for
 * cancelling; it is invalid after the callback has run. */
int http_req_start(struct http_client *c, const struct http_request_opts *o, http_cb cb, void *arg,
                   struct http_req **out);
void http_req_cancel(struct http_req *r);

/* Parses a Retry-After value (delta-seconds or HTTP-date) relative to `now`
 * (unix seconds). Returns seconds to wait (>= 0; a past date gives 0; more
 * than 366 days is clamped to 366 days) or -1 if absent/invalid. */
int64_t http_retry_after_parse(const char *value, int64_t now);
/* The reason phrase of an HTTP status code (RFC 9110 §15) for the codes
 * our servers send (http-01, control socket, API); "Error" for others. */
const char *http_reason(int status);

/* Extracts the URL of a Link header value with the given rel ("alternate",
 * "up", "index"). Owned string or NULL. A value may hold several
 * comma-separated links (the first match wins) and rel several
 * space-separated types, quoted or not, compared case-insensitively. */
char *http_link_url(const char *link_value, const char *rel);

/* ---- Server-Sent Events (sse.c): a text/event-stream body parser ---- */

struct sse_parser {
    struct buf line; /* the line not ended yet (capped: max_line) */
    struct buf data; /* the data lines of the event being read */
    char *type;      /* owned: its event field, or NULL */
    char *id;        /* owned: the last id field seen (kept across events), or NULL */
    bool started, after_cr, data_dropped;
    unsigned bom_n; /* bytes of a leading BOM seen */
};
/* One event (at each blank line): type ("message" unless an event field
 * said otherwise), its data lines joined by '\n' (len may be 0) and the
 * last event id (NULL if none yet); all borrowed for the call. */
typedef void (*sse_event_cb)(const char *type, const char *data, size_t len, const char *id,
                             void *arg);
void sse_init(struct sse_parser *p, size_t max_line);
void sse_fini(struct sse_parser *p);
/* Feeds len bytes (any piece of the stream; lines end in CRLF, LF or CR;
 * comments and retry are skipped; an id holding NUL is ignored; a leading
 * BOM is skipped). cb runs for each event completed.
 * 0, or ERR_TOO_BIG for a line longer than max_line: drop the stream then.
 * An event whose data grows past max_line is dropped whole. */
int sse_feed(struct sse_parser *p, const char *data, size_t len, sse_event_cb cb, void *arg);

/* ---- DNS: a c-ares channel on the loop (uv_poll_t per socket, one
 * uv_timer_t from ares_timeout). Queries are raw: any rcode is an answer. */

struct dns_resolver;
struct dns_query;

enum dns_rrtype {
    DNS_T_A = 1,
    DNS_T_NS = 2,
    DNS_T_CNAME = 5,
    DNS_T_SOA = 6,
    DNS_T_TXT = 16,
    DNS_T_AAAA = 28,
    DNS_T_CAA = 257,
};

struct dns_resolver_opts {
    const char *servers; /* "127.0.0.1:5353,[::1]:53", or NULL for /etc/resolv.conf */
    long timeout_ms;     /* per try; 0 = 2000 */
    int tries;           /* 0 = 3 */
    bool no_recurse;     /* RD=0: for asking authoritative servers directly */
    bool tcp;            /* TCP instead of UDP */
};

/* An answer as the callback sees it: borrowed, valid only during the callback. */
struct dns_answer {
    int rcode;                /* 0 NOERROR, 3 NXDOMAIN, ... */
    bool authoritative;       /* the AA bit */
    const unsigned char *msg; /* the whole response message (parse others with ldns) */
    size_t len;
    const char *const *txt; /* TXT: each record's strings joined; NULL-terminated */
    size_t n_txt;
    const char *const *addrs; /* A/AAAA: addresses as text; NULL-terminated */
    size_t n_addrs;
    const char *zone;         /* owner of the first SOA in the answer or authority
                               * section (the zone apex, also on NXDOMAIN), or NULL */
    const char *const *names; /* NS/CNAME targets in the answer; NULL-terminated */
    size_t n_names;
};

/* status is 0 when a response arrived (whatever its rcode), or ERR_TIMEOUT
 * (no server answered in time) or ERR_DNS (logged); ans is NULL unless 0. */
typedef void (*dns_cb)(int status, const struct dns_answer *ans, void *arg);

/* Creates a resolver on `loop` (o may be NULL for defaults). Owned; close
 * with dns_resolver_close. */
int dns_resolver_open(uv_loop_t *loop, const struct dns_resolver_opts *o,
                      struct dns_resolver **out);
/* Cancels every query (their callbacks never run) and frees the resolver
 * once its handles have closed (run the loop). */
void dns_resolver_close(struct dns_resolver *r);

/* Starts a query for `name` (class IN) with the async contract of STYLE
 * §4, like http_req_start. *out (optional) is valid until the callback. */
int dns_query_start(struct dns_resolver *r, const char *name, enum dns_rrtype type, dns_cb cb,
                    void *arg, struct dns_query **out);
void dns_query_cancel(struct dns_query *q);

#endif
