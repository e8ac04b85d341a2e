/* Internals of the http-01 listener shared by http01.c, its unit tests and its
 * fuzz target: the pure request-head parser and the challenge-path matcher.
 * Nothing here touches libuv or allocates. */
#ifndef CERTLOOP_CHALLENGE_HTTP01_INTERNAL_H
#define CERTLOOP_CHALLENGE_HTTP01_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hard limits on one request head (RFC 9112 leaves them to the server). */
#define HTTP01_HEAD_MAX 8192       /* request line + fields + the empty line */
#define HTTP01_LINE_MAX 2048       /* the request line, without its CRLF */
#define HTTP01_FIELDS_MAX 64       /* header field lines */
#define HTTP01_LEADING_EMPTY_MAX 4 /* empty lines tolerated before a request line */
#define HTTP01_TOKEN_MAX 256       /* longest token we store or look up */

#define HTTP01_PREFIX "/.well-known/acme-challenge/"

enum http01_method { HTTP01_GET, HTTP01_HEAD, HTTP01_OTHER };

/* Results of http01_parse(). Negative values are the HTTP status code to
 * answer with, negated; the connection is closed after that answer. */
enum http01_parse_status {
    HTTP01_PARSE_DONE = 1,            /* a complete head; *out is filled */
    HTTP01_PARSE_MORE = 0,            /* no complete head yet, none of it wrong */
    HTTP01_PARSE_BAD = -400,          /* malformed, a body announced, Host missing */
    HTTP01_PARSE_URI_TOO_LONG = -414, /* request line longer than HTTP01_LINE_MAX */
    HTTP01_PARSE_TOO_LARGE = -431,    /* head or field count past its limit */
    HTTP01_PARSE_BAD_VERSION = -505,  /* not HTTP/1.x */
};

/* One parsed request head. Every pointer is borrowed from the parser's input. */
struct http01_req {
    enum http01_method method;
    const uint8_t *method_str; /* the method token as sent (for logs) */
    size_t method_len;
    const uint8_t *target; /* the request-target as sent (for logs) */
    size_t target_len;
    /* The path of an origin-form or absolute-form ("http://host/p") target,
     * with any query removed; NULL for other forms ("*", authority-form). */
    const uint8_t *path;
    size_t path_len;
    int minor;       /* HTTP/1.minor: 0 or 1 (1.2 and later count as 1) */
    bool keep_alive; /* what the client asked for: 1.1 unless "close", 1.0 if "keep-alive" */
    size_t head_len; /* bytes of input this head takes, the final empty line included */
    /* The Authorization field's value without surrounding whitespace, or
     * NULL; a repeated Authorization is HTTP01_PARSE_BAD. The http-01
     * listener ignores it; the API (src/api) authenticates with it. */
    const uint8_t *authorization;
    size_t authorization_len;
};

/* Parses the request head at the start of p[0..n). Pure and re-entrant: the
 * caller calls it again with more bytes after HTTP01_PARSE_MORE. Accepts LF
 * or CRLF line ends, skips up to HTTP01_LEADING_EMPTY_MAX leading empty lines
 * (RFC 9112 §2.2), rejects obsolete line folding, whitespace before a field
 * colon, control bytes, a Transfer-Encoding, a non-zero or malformed
 * Content-Length, a missing (HTTP/1.1) or repeated Host field, a repeated
 * Authorization field. The API's HTTPS listener (src/api) parses with it
 * too: the same rules and limits on both. Bytes after
 * head_len are the next pipelined request and are not looked at. */
int http01_parse(const uint8_t *p, size_t n, struct http01_req *out);

/* If path (as in struct http01_req) is "/.well-known/acme-challenge/TOKEN"
 * with TOKEN 1..HTTP01_TOKEN_MAX base64url characters (percent-encoded ones
 * are decoded first, RFC 3986 §6.2.2.2), copies TOKEN NUL-terminated into
 * tok (size HTTP01_TOKEN_MAX + 1) and returns its length; otherwise -1. */
int http01_path_token(const uint8_t *path, size_t len, char *tok);

/* True if s[0..n) is 1..HTTP01_TOKEN_MAX base64url characters. */
bool http01_token_valid(const char *s, size_t n);

/* The program holding a listening TCP socket on port (IPv4 or IPv6), from
 * /proc: 0 with its name (comm) in name and its lowest pid in *pid, or -1
 * when none can be seen (no permission, none listening). http01_owner.c. */
int http01_port_owner(unsigned port, char *name, size_t name_len, long *pid);

#endif
