/* Helpers shared by the pure-function files of src/acme/ (crypto.c, jws.c,
 * cert.c) and their unit tests; not part of the public interface. */
#ifndef CERTLOOP_ACME_CRYPTO_INTERNAL_H
#define CERTLOOP_ACME_CRYPTO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* Drains the OpenSSL error queue of this thread and returns ERR_CRYPTO.
 * When log is true the first queued error is logged once as
 * "SUBJECT: WHAT: <openssl reason>" (error level); when false nothing is
 * logged (use it off the loop thread, where logging is not allowed). */
int acme_ossl_error(const char *subject, const char *what, bool log);

/* The JWS "alg" family of a key: 1 = EC P-256, 2 = EC P-384, 3 = RSA;
 * 0 if the key is not one we sign with. */
enum acme_key_kind { ACME_KIND_NONE = 0, ACME_KIND_P256, ACME_KIND_P384, ACME_KIND_RSA };
enum acme_key_kind acme_key_kind_of(EVP_PKEY *key);

/* True when jws.c's kept EC signing context belongs to key (tests: a
 * retired key is let go, the one in use is kept). */
bool acme_signer_holds(const EVP_PKEY *key);

/* SHA-256 of data into out[32]. 0 or ERR_CRYPTO (drained, not logged). */
int acme_sha256(const void *data, size_t len, uint8_t out[32]);

#endif
