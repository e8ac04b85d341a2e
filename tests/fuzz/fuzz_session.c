/* libFuzzer target for the dashboard's session checks (src/api/session.c),
 * fed what a client controls. The input is split at its first two NUL
 * bytes into a Cookie field, an X-CSRF-Token field and an Origin field
 * (the Host is fixed). Invariants: a Cookie field finds the one session only
 * when it carries that session's id; the CSRF rule passes only with that
 * session's CSRF token and an Origin that is absent or https:// followed
 * by the Host; Sec-Fetch-Site "cross-site" always fails. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/dashboard_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct api_sessions *sessions;
static struct api_session *se;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char host[] = "127.0.0.1:8443";
    const char *why = NULL;

    if (sessions == NULL) {
        struct api_token t = {.name = (char *)"fuzz", .scopes = API_SCOPE_READ};
        sessions = calloc(1, sizeof(*sessions));
        se = api_session_new(sessions, &t, 1);
    }
    uint8_t *p = malloc(size + 1); /* a copy: reads past the end are caught */
    memcpy(p, data, size);
    const uint8_t *part[3] = {p, NULL, NULL};
    size_t len[3] = {size, 0, 0};
    for (int k = 1; k < 3; k++) {
        const uint8_t *z = memchr(part[k - 1], 0, len[k - 1]);
        if (z == NULL)
            break;
        part[k] = z + 1;
        len[k] = len[k - 1] - (size_t)(part[k] - part[k - 1]);
        len[k - 1] = (size_t)(z - part[k - 1]);
    }

    struct api_session *hit = api_session_find(sessions, part[0], len[0], 2);
    if (hit != NULL && (hit != se || memmem(part[0], len[0], se->id, API_SESSION_ID_LEN) == NULL))
        abort();

    if (part[1] != NULL) {
        bool ok = api_session_csrf_ok(se, part[1], len[1], part[2], len[2], (const uint8_t *)host,
                                      strlen(host), NULL, 0, &why);
        if (ok) {
            if (len[1] != API_SESSION_ID_LEN || memcmp(part[1], se->csrf, len[1]) != 0)
                abort();
            if (part[2] != NULL &&
                (len[2] != 8 + strlen(host) || memcmp(part[2], "https://", 8) != 0 ||
                 strncasecmp((const char *)part[2] + 8, host, strlen(host)) != 0))
                abort();
        } else if (why == NULL) {
            abort();
        }
        if (api_session_csrf_ok(se, part[1], len[1], part[2], len[2], (const uint8_t *)host,
                                strlen(host), (const uint8_t *)"cross-site", 10, &why))
            abort();
    }
    free(p);
    return 0;
}
