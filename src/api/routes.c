/* The API's route table and the matcher that maps a request path onto it.
 * Pure: what a route does is api.c's; who may call it is the table's
 * scopes column, checked by api.c before the route runs. */
#include "api/api_internal.h"

#include <string.h>
#include <strings.h>

#include "util/xalloc.h"

const struct api_route api_routes[] = {
    {"GET", "/v1/certificates", API_SCOPE_READ, API_R_LIST},
    {"GET", "/v1/certificates/*", API_SCOPE_READ, API_R_GET},
    {"GET", "/v1/certificates/*/cert.pem", API_SCOPE_READ | API_SCOPE_PULL, API_R_PEM},
    {"GET", "/v1/certificates/*/chain.pem", API_SCOPE_READ | API_SCOPE_PULL, API_R_PEM},
    {"GET", "/v1/certificates/*/fullchain.pem", API_SCOPE_READ | API_SCOPE_PULL, API_R_PEM},
    {"GET", "/v1/certificates/*/key.pem", API_SCOPE_PULL, API_R_KEY},
    {"POST", "/v1/certificates/*/renew", API_SCOPE_MANAGE, API_R_RENEW},
    {"GET", "/v1/events", API_SCOPE_READ, API_R_EVENTS},
    {"POST", "/v1/certificates", API_SCOPE_MANAGE, API_R_CREATE},
    {"DELETE", "/v1/certificates/*", API_SCOPE_MANAGE, API_R_DELETE},
    {"GET", "/v1/fleet", API_SCOPE_READ, API_R_FLEET},
    {"GET", "/v1/plan", API_SCOPE_MANAGE, API_R_PLAN},
    {"POST", "/v1/plan", API_SCOPE_MANAGE, API_R_PLAN},
    {"POST", "/v1/certificates/*/test", API_SCOPE_MANAGE, API_R_TEST},
    {NULL, NULL, 0, API_R__MAX},
};

static bool name_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool api_name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!name_char((uint8_t)s[i]))
            return false;
    }
    return true;
}

/* Matches path against pattern; the '*' segment's bounds go to *ns, *nl. */
static bool match(const char *pattern, const uint8_t *path, size_t len, size_t *ns, size_t *nl)
{
    size_t i = 0;

    for (const char *p = pattern; *p != '\0'; p++) {
        if (*p == '*') {
            size_t s = i;
            while (i < len && path[i] != '/') {
                if (!name_char(path[i]))
                    return false;
                i++;
            }
            if (i == s || i - s > API_NAME_MAX || path[s] == '.')
                return false;
            *ns = s;
            *nl = i - s;
        } else {
            if (i >= len || path[i] != (uint8_t)*p)
                return false;
            i++;
        }
    }
    return i == len;
}

const struct api_route *api_route_find(const char *method, const uint8_t *path, size_t len,
                                       bool *method_ok, char **name, const char **file)
{
    const struct api_route *hit = NULL;
    size_t ns = 0, nl = 0;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

    *method_ok = false;
    for (const struct api_route *r = api_routes; r->pattern != NULL; r++) {
        size_t s = 0, l = 0;
        if (!match(r->pattern, path, len, &s, &l))
            continue;
        hit = r;
        ns = s;
        nl = l;
        if (strcmp(r->method, method) == 0 || (get && strcmp(r->method, "GET") == 0)) {
            *method_ok = true;
            break;
        }
    }
    if (hit == NULL)
        return NULL;
    *name = nl > 0 ? xstrndup((const char *)path + ns, nl) : NULL;
    *file = NULL;
    if (hit->kind == API_R_PEM || hit->kind == API_R_KEY)
        *file = strrchr(hit->pattern, '/') + 1;
    return hit;
}

void api_route_allow(const uint8_t *path, size_t len, char *out, size_t cap)
{
    size_t at = 0;

    out[0] = '\0';
    for (const struct api_route *r = api_routes; r->pattern != NULL; r++) {
        size_t s = 0, l = 0;
        if (!match(r->pattern, path, len, &s, &l))
            continue;
        bool get = strcmp(r->method, "GET") == 0;
        int n = snprintf(out + at, cap - at, "%s%s%s", at > 0 ? ", " : "", r->method,
                         get ? ", HEAD" : "");
        if (n < 0 || (size_t)n >= cap - at)
            break;
        at += (size_t)n;
    }
}

bool api_head_field(const uint8_t *head, size_t len, const char *name, const uint8_t **v,
                    size_t *vl)
{
    size_t nl = strlen(name);
    size_t at = 0;

    /* skip empty lines and the request line; then one field per line until
     * the empty one */
    while (at < len && (head[at] == '\r' || head[at] == '\n'))
        at++;
    while (at < len && head[at] != '\n')
        at++;
    at++;
    while (at < len) {
        size_t e = at;
        while (e < len && head[e] != '\n')
            e++;
        size_t le = e > at && head[e - 1] == '\r' ? e - 1 : e;
        if (le == at)
            break;
        if (le - at > nl && head[at + nl] == ':' &&
            strncasecmp((const char *)head + at, name, nl) == 0) {
            size_t s = at + nl + 1;
            while (s < le && (head[s] == ' ' || head[s] == '\t'))
                s++;
            while (le > s && (head[le - 1] == ' ' || head[le - 1] == '\t'))
                le--;
            *v = head + s;
            *vl = le - s;
            return true;
        }
        at = e + 1;
    }
    return false;
}
