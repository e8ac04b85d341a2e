/* Network clients on the reactor: HTTP(S) through one libcurl multi handle
 * driven by libuv (uv_poll_t per socket + one uv_timer_t), and (later) DNS
 * through c-ares on the same loop. Used by acme (the CA), deploy (webhooks)
 * and challenge (DNS); it knows nothing of ACME. Never blocks the loop. */
#ifndef CERTLOOP_NET_NET_H
#define CERTLOOP_NET_NET_H

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
    const char *method;      /* "GET", "HEAD", "POST"; default GET */
    const char *url;         /* http:// or https:// */
    const struct http_header *headers; /* extra request headers, or NULL */
    size_t n_headers;
    const void *body;        /* copied by _start; NULL for none */
    size_t body_len;
    const char *trust_file;  /* extra CA bundle (PEM) added to the system store, or NULL */
    size_t max_body;         /* response cap; 0 = 64 KiB. Past it: ERR_TOO_BIG */
    long timeout_ms;         /* whole request; 0 = 30 s */
};

/* A response as the callback sees it: borrowed, valid only during the
 * callback. Header values are the last one seen, NULL if absent. */
struct http_response {
    long status;           /* HTTP status code */
    struct buf body;       /* NUL-terminated */
    const char *content_type;
    const char *location;
    const char *replay_nonce;
    const char *retry_after; /* raw header value */
    const char *const *links; /* every Link header value, NULL-terminated */
    size_t n_links;
    const char *effective_url;
};

/* status is 0 when an HTTP response arrived (whatever its code), or
 * ERR_HTTP (transport failure, logged with curl's message), ERR_TOO_BIG,
 * ERR_TIMEOUT; resp is NULL unless status == 0. */
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
 * (unix seconds). Returns seconds to wait (>= 0) or -1 if absent/invalid. */
int64_t http_retry_after_parse(const char *value, int64_t now);
/* Extracts the URL of a Link header value with the given rel ("alternate",
 * "up", "index"). Owned string or NULL. */
char *http_link_url(const char *link_value, const char *rel);

#endif
