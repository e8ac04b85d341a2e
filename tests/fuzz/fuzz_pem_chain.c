/* libFuzzer target: PEM chain splitting and certificate parsing of
 * arbitrary bytes (what a CA returns from the certificate URL), plus the
 * derived values: key match and ARI CertID. A chain that parses must parse
 * again, identically, from its own normalized PEM. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "acme/acme.h"
#include "util/err.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (acme_key_generate(CFG_KEY_EC_P256, &key) != 0)
        abort();
    return 0;
}

static char *join(const struct acme_chain *c, size_t *len)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += strlen(c->pem[i]);
    char *s = malloc(n + 1);
    if (s == NULL)
        abort();
    size_t o = 0;
    for (size_t i = 0; i < c->n; i++) {
        size_t l = strlen(c->pem[i]);
        memcpy(s + o, c->pem[i], l);
        o += l;
    }
    s[o] = '\0';
    *len = o;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct acme_chain c, again;

    int rc = acme_chain_parse((const char *)data, size, &c);
    if (rc != 0) {
        if (rc != ERR_PARSE || ERR_peek_error() != 0)
            abort();
        return 0;
    }
    if (c.n == 0 || c.issuer_cn == NULL || c.serial_hex == NULL)
        abort();
    (void)acme_chain_matches_key(&c, key);
    free(acme_ari_cert_id(&c));

    size_t len = 0;
    char *pem = join(&c, &len);
    if (acme_chain_parse(pem, len, &again) != 0)
        abort();
    if (again.n != c.n || again.not_after != c.not_after || again.not_before != c.not_before ||
        strcmp(again.serial_hex, c.serial_hex) != 0 || strcmp(again.issuer_cn, c.issuer_cn) != 0 ||
        again.n_sans != c.n_sans)
        abort();
    for (size_t i = 0; i < c.n; i++)
        if (strcmp(again.pem[i], c.pem[i]) != 0)
            abort();
    acme_chain_fini(&again);
    free(pem);
    acme_chain_fini(&c);
    if (ERR_peek_error() != 0)
        abort(); /* every path drains the OpenSSL error queue */
    return 0;
}
