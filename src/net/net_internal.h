/* Internals of src/net shared between its files (http.c and http_trust.c)
 * and with its unit tests and fuzz targets only. */
#ifndef CERTLOOP_NET_NET_INTERNAL_H
#define CERTLOOP_NET_NET_INTERNAL_H

#include <stddef.h>

#include <openssl/types.h>

#include "util/buf.h"

/* Splits one raw response header line ("Name: value", CRLF optional) into a
 * name and a value with surrounding whitespace removed. The pointers point
 * into `line` (borrowed). Returns 0, or ERR_PARSE for a line that is not a
 * header (no colon, empty name, whitespace or control bytes in the name). */
int http_header_split(const char *line, size_t len, const char **name, size_t *name_len,
                      const char **value, size_t *value_len);

/* One extra trust file of the HTTP client (http_request_opts.trust_file),
 * parsed once and shared by every request naming it (http_trust.c). */
struct http_trust;

/* Sets *out to a new reference to the parsed trust file at path from
 * *cache (a list the caller keeps, NULL when empty), reading and parsing
 * it when it is not cached or has changed on disk since (a stale entry
 * leaves the cache; requests holding it keep their reference). Returns 0,
 * or < 0 (logged) for a file that cannot be read or holds no certificate. */
int http_trust_get(struct http_trust **cache, const char *path, struct http_trust **out);
/* Drops one reference; the last frees t. NULL is fine. */
void http_trust_unref(struct http_trust *t);
/* Drops the cache's references and empties it. */
void http_trust_cache_clear(struct http_trust **cache);
/* The file as read (borrowed: lives as long as t). */
const struct buf *http_trust_pem(const struct http_trust *t);
/* Adds t's certificates and OpenSSL's default locations (the default CA
 * file read only when a verification misses an issuer) to ctx's store, so
 * the file extends the system store. Returns 0, or ERR_CRYPTO (logged). */
int http_trust_apply(const struct http_trust *t, SSL_CTX *ctx);

/* What dns.c reads from a DNS response beyond TXT and addresses: the owner
 * of the first SOA record in the answer or authority section (the apex of
 * the zone holding the name, also for NXDOMAIN/NODATA answers) and the
 * targets of NS and CNAME records in the answer section. */
struct dns_scan {
    char *zone;   /* owned, or NULL */
    char **names; /* owned, NULL-terminated once non-NULL */
    size_t n_names, names_cap;
};

/* Scans a response message; ERR_PARSE if it is malformed (what was found
 * before the error is kept, so the caller frees with dns_scan_fini). */
int dns_scan_message(const unsigned char *msg, size_t len, struct dns_scan *out);
void dns_scan_fini(struct dns_scan *s);

#endif
