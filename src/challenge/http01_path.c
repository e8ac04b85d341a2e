/* The http-01 challenge path: "/.well-known/acme-challenge/TOKEN" taken
 * apart, and what a token may hold. Pure. */
#include "challenge/http01_internal.h"

#include <string.h>

static bool is_b64url(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

bool http01_token_valid(const char *s, size_t n)
{
    if (n == 0 || n > HTTP01_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_b64url((uint8_t)s[i]))
            return false;
    }
    return true;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int http01_path_token(const uint8_t *path, size_t len, char *tok)
{
    size_t plen = sizeof(HTTP01_PREFIX) - 1;
    size_t n = 0;

    if (path == NULL || len <= plen || memcmp(path, HTTP01_PREFIX, plen) != 0)
        return -1;
    for (size_t i = plen; i < len; i++) {
        uint8_t c = path[i];
        if (c == '%') {
            if (len - i < 3 || hexval(path[i + 1]) < 0 || hexval(path[i + 2]) < 0)
                return -1;
            c = (uint8_t)(hexval(path[i + 1]) * 16 + hexval(path[i + 2]));
            i += 2;
        }
        if (!is_b64url(c) || n == HTTP01_TOKEN_MAX)
            return -1;
        tok[n++] = (char)c;
    }
    tok[n] = '\0';
    return (int)n;
}
