/* libFuzzer target for the HTTP header helpers of src/net: Retry-After,
 * Link and raw header line splitting. Checks invariants, not just crashes:
 * a Retry-After is -1 or within [0, a year and a day]; a Link URL is a
 * piece of the input; a split header points inside the line. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "net/net_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const rels[] = {"alternate", "up", "index", "author"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    /* "now" comes from the input too, so date arithmetic is explored. */
    int64_t now = 0;
    for (size_t i = 0; i < size && i < 5; i++)
        now = (now << 8) | data[i];
    int64_t ra = http_retry_after_parse(s, now);
    assert(ra == -1 || (ra >= 0 && ra <= 366LL * 24 * 3600));

    for (size_t i = 0; i < sizeof(rels) / sizeof(rels[0]); i++) {
        char *url = http_link_url(s, rels[i]);
        if (url != NULL) {
            assert(strstr(s, url) != NULL);
            free(url);
        }
    }

    const char *name, *value;
    size_t nlen, vlen;
    if (http_header_split((const char *)data, size, &name, &nlen, &value, &vlen) == 0) {
        const char *base = (const char *)data;
        assert(name == base && nlen > 0 && nlen < size);
        assert(value >= base + nlen + 1 && value + vlen <= base + size);
        assert(memchr(name, ':', nlen) == NULL);
    }
    free(s);
    return 0;
}
