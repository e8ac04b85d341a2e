/* Names for certloop's error codes; errno values go through strerror. */
#include "util/err.h"

#include <string.h>

static const char *const names[] = {
    "certloop error",
    "invalid configuration",
    "malformed input",
    "cryptographic library failure",
    "HTTP transport failure",
    "unexpected HTTP status",
    "CA returned a problem",
    "bad nonce",
    "rate limited by the CA",
    "input too large",
    "timed out",
    "state directory locked by another process",
    "DNS failure",
    "challenge failed",
    "deploy failed",
    "command failed",
    "inconsistent state",
    "not supported by the peer",
    "canceled",
    "URL from the CA refused",
    "database error",
};

const char *err_str(int code)
{
    if (code == 0)
        return "success";
    if (code <= ERR_BASE && code > ERR__MIN)
        return names[ERR_BASE - code];
    if (code < 0 && code > -4096)
        return strerror(-code);
    return "unknown error";
}
