/* libFuzzer target: arbitrary bytes as a control-socket request through
 * control_parse_request, with small and default caps. Never crashes; the
 * result is always "more", a parsed head inside the input and within the
 * caps, or one of the statuses the server answers with. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/control_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const char *p, size_t n, size_t head_max, size_t body_max)
{
    struct control_req r;
    const char *why = NULL;
    int rc = control_parse_request(p, n, head_max, body_max, &r, &why);

    if (rc == 1) {
        if (r.head_len == 0 || r.head_len > n || r.head_len > head_max)
            abort();
        if (r.path < p || r.path + r.path_len > p + r.head_len || r.path_len == 0 ||
            r.path[0] != '/')
            abort();
        if (r.method[0] == '\0' || strlen(r.method) >= sizeof(r.method))
            abort();
        if (r.content_length > body_max)
            abort();
    } else if (rc == 0) {
        if (n > head_max)
            abort(); /* an unfinished head past the cap must be refused */
    } else if (rc != -400 && rc != -413 && rc != -505) {
        abort();
    } else if (why == NULL || why[0] == '\0') {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy without a terminator, so reads past the end are caught */
    char *p = malloc(size > 0 ? size : 1);

    if (size > 0)
        memcpy(p, data, size);
    one(p, size, 16 * 1024, 64 * 1024);
    one(p, size, 64, 10);
    free(p);
    return 0;
}
