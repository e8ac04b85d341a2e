/* libFuzzer target for dns_scan_message (src/net/dns.c): the walk over the
 * answer and authority sections of a DNS response from the network, with
 * compressed names. Checks that results are well-formed strings. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "net/net_internal.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dns_scan s;

    memset(&s, 0, sizeof(s));
    int rc = dns_scan_message(data, size, &s);
    assert(rc == 0 || rc == ERR_PARSE);
    if (s.zone != NULL)
        assert(strlen(s.zone) < 1024);
    for (size_t i = 0; i < s.n_names; i++)
        assert(s.names[i] != NULL && strlen(s.names[i]) < 1024);
    if (s.names != NULL)
        assert(s.names[s.n_names] == NULL);
    dns_scan_fini(&s);
    return 0;
}
