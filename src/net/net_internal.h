/* Internals of src/net shared with its unit tests and fuzz targets only. */
#ifndef CERTLOOP_NET_NET_INTERNAL_H
#define CERTLOOP_NET_NET_INTERNAL_H

#include <stddef.h>

/* Splits one raw response header line ("Name: value", CRLF optional) into a
 * name and a value with surrounding whitespace removed. The pointers point
 * into `line` (borrowed). Returns 0, or ERR_PARSE for a line that is not a
 * header (no colon, empty name, whitespace or control bytes in the name). */
int http_header_split(const char *line, size_t len, const char **name, size_t *name_len,
                      const char **value, size_t *value_len);

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
