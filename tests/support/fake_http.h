/* A tiny HTTP/1.1 server for loop tests: listens on 127.0.0.1:0 on a uv
 * loop, keeps connections alive, and asks a handler how to answer each
 * request: status, headers, body, a delay, a huge body, closing without an
 * answer, or never answering at all. Not a real server: one request at a
 * time per connection, Content-Length bodies only. Its handles are
 * unreferenced: uv_run returns once the clients are done, so tests can run
 * the loop dry while the server still listens. */
#ifndef CERTLOOP_TESTS_FAKE_HTTP_H
#define CERTLOOP_TESTS_FAKE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "util/buf.h"

struct fake_http;

/* What the handler sees; every pointer is borrowed for the call. */
struct fake_http_request {
    unsigned seq;        /* 0 for the first request the server saw */
    unsigned conn_id;    /* 0 for the first accepted connection */
    const char *method;  /* "GET", "POST", ... */
    const char *target;  /* request target: path and query */
    const char *headers; /* raw header lines, each "Name: value\r\n" */
    const char *body;    /* NUL-terminated for convenience */
    size_t body_len;
};

/* What the handler fills in. Zeroed except the buffers, which are empty. */
struct fake_http_response {
    int status;                /* 0 means 200 */
    struct buf headers;        /* extra header lines; use fake_http_resp_header */
    struct buf body;           /* use fake_http_resp_body */
    size_t huge_body;          /* > 0: send this many 'x' bytes as the body instead */
    unsigned delay_ms;         /* answer after this many milliseconds */
    bool close_without_answer; /* drop the connection instead of answering */
    bool hang;                 /* never answer; the connection stays open */
    bool close_after;          /* send "Connection: close" and close after answering */
    bool no_length;            /* no Content-Length: the body ends when we close */
};

typedef void (*fake_http_handler_cb)(const struct fake_http_request *req,
                                     struct fake_http_response *resp, void *arg);

/* Starts listening on 127.0.0.1 with an ephemeral port. handler may be NULL
 * (every request gets an empty 200). Returns 0 or a libuv error. */
int fake_http_start(uv_loop_t *loop, fake_http_handler_cb handler, void *arg,
                    struct fake_http **out);
/* Closes the listener and every connection; freed once handles close. */
void fake_http_close(struct fake_http *s);

int fake_http_port(const struct fake_http *s);
/* "http://127.0.0.1:PORT" (no trailing slash); valid until close. */
const char *fake_http_url(const struct fake_http *s);
/* Requests answered or dropped so far, and connections accepted so far. */
unsigned fake_http_requests(const struct fake_http *s);
unsigned fake_http_connections(const struct fake_http *s);

void fake_http_resp_header(struct fake_http_response *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void fake_http_resp_body(struct fake_http_response *r, const char *text);

/* Copies the value of the first header `name` (case-insensitive) into out
 * (size n) and returns out, or NULL if absent. */
const char *fake_http_req_header(const struct fake_http_request *req, const char *name, char *out,
                                 size_t n);

/* Returns a TCP port on 127.0.0.1 that nothing listens on right now
 * (bound, then closed), for connection-refused tests and child servers. */
int fake_http_free_port(void);

#endif
