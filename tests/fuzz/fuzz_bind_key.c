/* libFuzzer target: TSIG secret files (one line of base64, or BIND's
 * `key "NAME" { algorithm ...; secret "..."; };`) through dns01_key_parse.
 * Never crashes or leaks; a parsed key is well-formed (absolute lower-case
 * name, one of the three HMAC algorithms, a non-empty base64 secret without
 * whitespace); a failure comes with a printable reason that never echoes
 * the input's secret. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "challenge/dns01_internal.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_key(const struct dns01_key *k)
{
    size_t n = strlen(k->name);

    if (n == 0 || k->name[n - 1] != '.')
        abort();
    for (const char *c = k->name; *c != '\0'; c++)
        if (isupper((unsigned char)*c))
            abort();
    if (strcmp(k->algorithm, "hmac-sha256.") != 0 && strcmp(k->algorithm, "hmac-sha384.") != 0 &&
        strcmp(k->algorithm, "hmac-sha512.") != 0)
        abort();
    if (k->secret[0] == '\0')
        abort();
    for (const char *c = k->secret; *c != '\0'; c++)
        if (isspace((unsigned char)*c))
            abort();
}

static void one(const uint8_t *data, size_t size, const char *name, const char *alg)
{
    struct dns01_key k;
    char *why = NULL;
    int rc = dns01_key_parse(data, size, name, alg, &k, &why);

    if (rc == 0) {
        if (why != NULL)
            abort();
        check_key(&k);
        dns01_key_fini(&k);
        return;
    }
    if ((rc != ERR_PARSE && rc != -EINVAL) || why == NULL)
        abort();
    for (const char *c = why; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            abort();
    free(why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size, "acme-key.", "hmac-sha256");
    one(data, size, "K", NULL);
    return 0;
}
