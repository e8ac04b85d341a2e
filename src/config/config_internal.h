/* Internals of src/config shared between its files and its unit tests:
 * RFC 3492 punycode and domain-name normalisation. Not for other modules. */
#ifndef CERTLOOP_CONFIG_CONFIG_INTERNAL_H
#define CERTLOOP_CONFIG_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 3492 encoding of n code points into out (capacity cap, NUL-terminated,
 * no "xn--" prefix). Basic code points are copied as written (case kept).
 * Returns the length written, or -1 on overflow or when out is too small. */
int config_punycode_encode(const uint32_t *cp, size_t n, char *out, size_t cap);

/* RFC 3492 decoding of len ASCII bytes into at most cap code points.
 * Returns the number of code points, or -1 when the input is not valid
 * punycode (bad digit, overflow, a basic code point produced) or too long. */
int config_punycode_decode(const char *in, size_t len, uint32_t *out, size_t cap);

/* Decodes UTF-8 into code points (strict: no overlongs, no surrogates, at
 * most U+10FFFF). Returns the count, or -1 if invalid or longer than cap. */
int config_utf8_decode(const char *s, size_t len, uint32_t *out, size_t cap);

/* Normalises one name from `domains`: trailing dot stripped, upper case
 * folded, internationalised labels converted to punycode A-labels, given
 * xn-- labels checked by decoding; a wildcard only as the whole leftmost
 * label. On success returns 0 and *out is an owned string. On failure
 * returns -EINVAL and a one-line reason is written into why (size why_cap). */
int config_domain_normalize(const char *in, size_t len, char **out, char *why, size_t why_cap);

/* Edit distance (Levenshtein, ASCII case-insensitive), capped at 100. */
unsigned config_edit_distance(const char *a, const char *b);

#endif
