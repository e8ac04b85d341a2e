/* libFuzzer target for domain-name normalisation and RFC 3492 punycode:
 * any input must be refused or turned into a lower-case ASCII name (or an
 * IP address in its canonical text form) of at most 253 characters that normalises to itself again
 * (idempotence), and whatever punycode decodes must encode and decode back to the same code points.
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *in, size_t len)
{
    char why[400], *out = NULL, *again = NULL;

    if (config_domain_normalize(in, len, &out, why, sizeof(why)) != 0) {
        assert(why[0] != '\0');
        return;
    }
    size_t n = strlen(out);
    assert(n > 0 && n <= 253);
    /* an IP literal (RFC 8738) comes out in its canonical text form */
    bool ip = config_name_is_ip(out);
    for (size_t i = 0; i < n; i++) {
        char c = out[i];
        if (ip)
            assert((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' || c == '.');
        else
            assert((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                   (c == '*' && i == 0));
    }
    assert(config_domain_normalize(out, n, &again, why, sizeof(why)) == 0);
    assert(strcmp(out, again) == 0);
    free(again);
    free(out);
}

static void check_punycode(const char *in, size_t len)
{
    uint32_t cps[256], back[256];
    char enc[1024];

    int n = config_punycode_decode(in, len, cps, 256);
    if (n < 0)
        return;
    int m = config_punycode_encode(cps, (size_t)n, enc, sizeof(enc));
    assert(m >= 0);
    int k = config_punycode_decode(enc, (size_t)m, back, 256);
    assert(k == n);
    assert(memcmp(cps, back, (size_t)n * sizeof(uint32_t)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1024)
        return 0;
    check_name((const char *)data, size);
    check_punycode((const char *)data, size);
    return 0;
}
