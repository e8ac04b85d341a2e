/* What certloop's HTTP servers share: the request-head parser of the
 * http-01 listener (src/challenge) and the HTTPS API (src/api)
 * (httpd_parse.c), and the framing of a streamed answer of the API and the
 * control socket (src/reactor/control.c) (httpd_chunk.c). Pure: it touches
 * no libuv and never allocates, so the servers and their fuzz targets
 * apply the same rules and limits. */
#ifndef CERTLOOP_NET_HTTPD_H
#define CERTLOOP_NET_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/bodysrc.h"
#include "util/buf.h"

/* Hard limits on one request head (RFC 9112 leaves them to the server). */
#define HTTPD_HEAD_MAX 8192       /* request line + fields + the empty line */
#define HTTPD_LINE_MAX 2048       /* the request line, without its CRLF */
#define HTTPD_FIELDS_MAX 64       /* header field lines */
#define HTTPD_LEADING_EMPTY_MAX 4 /* empty lines tolerated before a request line */

enum httpd_method { HTTPD_GET, HTTPD_HEAD, HTTPD_OTHER };

/* Results of httpd_parse(). Negative values are the HTTP status code to
 * answer with, negated; the connection is closed after that answer. */
enum httpd_parse_status {
    HTTPD_PARSE_DONE = 1,            /* a complete head; *out is filled */
    HTTPD_PARSE_MORE = 0,            /* no complete head yet, none of it wrong */
    HTTPD_PARSE_BAD = -400,          /* malformed, a body announced, Host missing */
    HTTPD_PARSE_TOO_BIG = -413,      /* Content-Length above the caller's limit */
    HTTPD_PARSE_URI_TOO_LONG = -414, /* request line longer than HTTPD_LINE_MAX */
    HTTPD_PARSE_TOO_LARGE = -431,    /* head or field count past its limit */
    HTTPD_PARSE_BAD_VERSION = -505,  /* not HTTP/1.x */
};

/* One parsed request head. Every pointer is borrowed from the parser's input. */
struct httpd_req {
    enum httpd_method method;
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
     * NULL; a repeated Authorization is HTTPD_PARSE_BAD. The http-01
     * listener ignores it; the API (src/api) authenticates with it. */
    const uint8_t *authorization;
    size_t authorization_len;
    /* The body's length from Content-Length (httpd_parse_body); 0 without. */
    size_t content_length;
};

/* Parses the request head at the start of p[0..n). Pure and re-entrant: the
 * caller calls it again with more bytes after HTTPD_PARSE_MORE. Accepts LF
 * or CRLF line ends, skips up to HTTPD_LEADING_EMPTY_MAX leading empty lines
 * (RFC 9112 §2.2), rejects obsolete line folding, whitespace before a field
 * colon, control bytes, a Transfer-Encoding, a non-zero or malformed
 * Content-Length, a missing (HTTP/1.1) or repeated Host field, a repeated
 * Authorization field. Bytes after head_len are the next pipelined request
 * and are not looked at. */
int httpd_parse(const uint8_t *p, size_t n, struct httpd_req *out);

/* httpd_parse for a server that takes request bodies (the API's POSTs): one
 * Content-Length of at most max_body bytes is accepted (its value in
 * content_length; the body starts at head_len), a larger one is
 * HTTPD_PARSE_TOO_BIG, a repeated or malformed one HTTPD_PARSE_BAD.
 * Transfer-Encoding stays refused (400): only bodies of a known length. */
int httpd_parse_body(const uint8_t *p, size_t n, size_t max_body, struct httpd_req *out);

/* ---- a streamed answer (httpd_chunk.c) ---- */

/* The framing of one piece of a streamed answer: an HTTP/1.1 chunk (RFC
 * 9112 §7.1: the size in hex, CRLF, the data, CRLF; after the last piece
 * the last chunk "0" CRLF and the empty line that ends the trailer), or,
 * to an HTTP/1.0 client, the data as is (the end of the answer is the end
 * of the connection, RFC 9112 §6.3, so the server closes it then). A
 * server writes head, the piece, then tail. */
struct httpd_chunk {
    char head[24]; /* "<hex>\r\n", NUL-terminated; empty when head_len is 0 */
    size_t head_len;
    const char *tail; /* static: what follows the piece (maybe the last chunk) */
    size_t tail_len;
};

/* The header field line that announces the framing in the head of a
 * streamed answer: "Transfer-Encoding: chunked\r\n", or "" for an HTTP/1.0
 * client (http10), which gets the close-delimited body instead. Static. */
const char *httpd_chunk_field(bool http10);

/* Frames a piece of len bytes, the answer's last one if last. A piece of
 * 0 bytes that is not the last is not framed at all (a chunk of size 0
 * would end the answer); an empty last piece is the last chunk alone. */
void httpd_chunk_frame(size_t len, bool last, bool http10, struct httpd_chunk *out);

/* Empties piece (its memory is kept for the next), puts src's next piece
 * in it (about BODYSRC_PIECE bytes) and frames it in *out. Returns 1 for the last piece, 0 when
 * more follow, or the source's error (< 0: the server cuts the answer without a last chunk, so the
 * client sees it is incomplete; *out is not set). */
int httpd_chunk_next(struct body_src *src, struct buf *piece, bool http10, struct httpd_chunk *out);

#endif
