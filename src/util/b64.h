/* base64url without padding (RFC 4648 §5, as ACME and JOSE use it) and
 * standard base64 (for TSIG secrets and PEM bodies). */
#ifndef CERTLOOP_UTIL_B64_H
#define CERTLOOP_UTIL_B64_H

#include <stddef.h>
#include <stdint.h>

/* Returns a NUL-terminated owned string. */
char *b64url_encode(const void *data, size_t len);
/* Decodes unpadded base64url; ERR_PARSE on any invalid character or length.
 * *out is owned by the caller (NUL-terminated for convenience). */
int b64url_decode(const char *s, size_t len, uint8_t **out, size_t *outlen);
char *b64_encode(const void *data, size_t len);
/* Standard base64, padding optional, whitespace ignored. */
int b64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen);

/* The value of one hex digit (either case), or -1. */
int hex_digit(char ch);

/* A 32-byte secret written as text (an encryption key file): 64 hex digits
 * or the standard base64 of 32 bytes, optionally followed by line ends, no
 * other whitespace. 0 and out filled, or -EINVAL. Leaves no copy behind
 * but out (the caller wipes it). */
int key32_parse(const char *text, size_t len, uint8_t out[32]);

#endif
