/* libFuzzer target: arbitrary bytes as a control-socket request through
 * control_parse_request, with small and default caps, then through the
 * router (control_route_decide) and the renew and dry-run body parsers. Never
 * crashes; the result is always "more", a parsed head inside the input and
 * within the caps, or one of the statuses the server answers with; a route
 * to renew (POST) or to one certificate (GET) names a printable certificate
 * without '/', a 405 says which
 * method to use, and the body is accepted only as a JSON object. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "reactor/control_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void route(const struct control_req *r, const char *body, size_t avail)
{
    char *path = strndup(r->path, r->path_len);
    char name[257];
    const char *allow = NULL;
    enum control_route rt = control_route_decide(r->method, path, name, sizeof(name), &allow);

    switch (rt) {
    case CONTROL_ROUTE_RENEW:
    case CONTROL_ROUTE_CERT:
        if (name[0] == '\0' || strlen(name) >= sizeof(name) ||
            strcmp(r->method, rt == CONTROL_ROUTE_RENEW ? "POST" : "GET") != 0)
            abort();
        for (const char *c = name; *c != '\0'; c++)
            if (*c <= 0x20 || *c >= 0x7f || *c == '/')
                abort();
        break;
    case CONTROL_ROUTE_METHOD:
        if (allow == NULL || (strcmp(allow, "GET") != 0 && strcmp(allow, "POST") != 0) ||
            strcmp(allow, r->method) == 0)
            abort();
        break;
    case CONTROL_ROUTE_STATUS:
    case CONTROL_ROUTE_METRICS:
        if (strcmp(r->method, "GET") != 0)
            abort();
        break;
    case CONTROL_ROUTE_RELOAD:
    case CONTROL_ROUTE_DRY_RUN:
        if (strcmp(r->method, "POST") != 0)
            abort();
        break;
    case CONTROL_ROUTE_NOT_FOUND:
        break;
    default:
        abort();
    }
    free(path);
    size_t blen = r->content_length < avail ? r->content_length : avail;
    bool force = true, deploy_only = true, new_key = true;
    const char *why = NULL;
    int rc = control_renew_body_parse(body, blen, &force, &deploy_only, &new_key, &why);
    if (rc == 0) {
        json_t *j = blen > 0 ? json_loadb(body, blen, 0, NULL) : NULL;
        if (blen > 0 && !json_is_object(j))
            abort();
        if (blen == 0 && (force || deploy_only))
            abort();
        json_decref(j);
    } else if (rc != -400 || why == NULL) {
        abort();
    }
    char **names = NULL;
    size_t nn = 0;
    why = NULL;
    rc = control_dry_run_body_parse(body, blen, &names, &nn, &why);
    if (rc == 0) {
        if ((nn == 0) != (names == NULL))
            abort();
        for (size_t i = 0; i < nn; i++) {
            size_t l = strlen(names[i]);
            if (l == 0 || l > 256)
                abort();
            for (size_t k = 0; k < l; k++)
                if (names[i][k] <= 0x20 || names[i][k] >= 0x7f)
                    abort();
            free(names[i]);
        }
        free(names);
    } else if (rc != -400 || why == NULL) {
        abort();
    }
}

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
        route(&r, p + r.head_len, n - r.head_len);
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
