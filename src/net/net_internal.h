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

#endif
