/* tls-alpn-01 internals (challenge/tlsalpn01.c) shared with its unit tests
 * and fuzz target: pure functions over bytes and OpenSSL objects. */
#ifndef CERTLOOP_CHALLENGE_TLSALPN01_INTERNAL_H
#define CERTLOOP_CHALLENGE_TLSALPN01_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* The TLS server name that selects identifier's certificate: the name
 * itself (lower case) for a DNS identifier, the reverse-mapping name for an
 * IP address (RFC 8738 §6: "10.2.0.192.in-addr.arpa", nibbles for IPv6
 * under ip6.arpa). Owned. */
char *chal_tlsalpn_sni_name(const char *identifier);

/* Reads the ClientHello's ALPN (RFC 7301) and server_name (RFC 6066)
 * extension bodies (either may be NULL when absent). 0 when ALPN offers
 * "acme-tls/1" and SNI holds a host name, copied lower case without a final
 * dot into name (cap bytes with the NUL). -ENOPROTOOPT when acme-tls/1 is
 * not offered, -EPROTO for malformed bytes (or no ALPN at all), -ENOENT
 * without a host name, -ENAMETOOLONG. Pure. */
int chal_tlsalpn_hello_parse(const uint8_t *alpn, size_t alpn_len, const uint8_t *sni,
                             size_t sni_len, char *name, size_t cap);

/* The self-signed challenge certificate (RFC 8737 §3): a new P-256 key,
 * the identifier as the only subjectAltName (dNSName, or iPAddress for an
 * address literal), and the critical id-pe-acmeIdentifier extension holding
 * SHA-256 of key_authorization. *cert and *key owned. ERR_CRYPTO (OpenSSL's
 * error queue cleared). Pure and silent: runs on the threadpool. */
int chal_tlsalpn_cert_build(const char *identifier, const char *key_authorization, X509 **cert,
                            EVP_PKEY **key);

/* Whether cert is the challenge certificate for identifier and
 * key_authorization (RFC 8737 §3): a critical acmeIdentifier extension
 * holding SHA-256 of key_authorization, and the identifier as the only
 * subjectAltName. 0, or ERR_CHALLENGE (ERR_CRYPTO) with *why (owned)
 * saying what differs. Pure. */
int chal_tlsalpn_cert_check(X509 *cert, const char *identifier, const char *key_authorization,
                            char **why);

#endif
