/* libFuzzer target for the tls-alpn-01 ClientHello reader
 * (chal_tlsalpn_hello_parse): the first byte splits the input into the ALPN
 * extension body and the server_name extension body, as OpenSSL hands them
 * over from any client. On success the name must be a NUL-terminated,
 * printable, lower-case string shorter than the buffer, without a final
 * dot; the result must not depend on bytes past the two bodies. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "challenge/tlsalpn01_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[256];

    if (size < 1)
        return 0;
    size_t split = data[0];
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    if (split > n)
        split = n;
    /* copies, so that reads past either body are caught by ASan */
    uint8_t *alpn = malloc(split > 0 ? split : 1);
    uint8_t *sni = malloc(n - split > 0 ? n - split : 1);
    memcpy(alpn, rest, split);
    memcpy(sni, rest + split, n - split);
    int rc = chal_tlsalpn_hello_parse(split > 0 ? alpn : NULL, split, n - split > 0 ? sni : NULL,
                                      n - split, name, sizeof(name));
    if (rc == 0) {
        size_t l = strnlen(name, sizeof(name));
        if (l == 0 || l >= sizeof(name) || name[l - 1] == '.')
            abort();
        for (size_t i = 0; i < l; i++)
            if (!isprint((unsigned char)name[i]) || isupper((unsigned char)name[i]) ||
                name[i] == ' ')
                abort();
    } else if (rc != -EPROTO && rc != -ENOPROTOOPT && rc != -ENOENT && rc != -ENAMETOOLONG) {
        abort();
    }
    free(alpn);
    free(sni);
    return 0;
}
