/* libFuzzer target: ACME problem documents (RFC 7807 / RFC 8555 §6.7) from
 * arbitrary bytes. Checks that parsing never crashes or leaks and that the
 * rendered line stays printable ASCII whatever the CA sends. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acme/acme.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct acme_problem p;

    int rc = acme_problem_parse((const char *)data, size, &p);
    if (rc != 0) {
        if (rc != ERR_PARSE)
            abort();
        return 0;
    }
    char *line = acme_problem_str(&p);
    for (const char *c = line; *c != '\0'; c++)
        if (*c < 0x20 || *c > 0x7e)
            abort(); /* CA text must come out masked */
    if (acme_problem_is(&p, "badNonce") &&
        strcmp(p.type, "urn:ietf:params:acme:error:badNonce") != 0)
        abort();
    free(line);
    acme_problem_fini(&p);
    return 0;
}
