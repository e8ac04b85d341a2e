/* base64 and base64url codecs; pure functions. */
#include "util/b64.h"
#include "util/err.h"
#include "util/xalloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

static const char std_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *encode(const void *data, size_t len, const char *alpha, int pad)
{
    const uint8_t *p = data;
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);
    size_t o = 0, i = 0;

    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        out[o++] = alpha[v >> 6 & 63];
        out[o++] = alpha[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        if (i + 1 < len)
            out[o++] = alpha[v >> 6 & 63];
        else if (pad)
            out[o++] = '=';
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

char *b64url_encode(const void *data, size_t len)
{
    return encode(data, len, url_alpha, 0);
}

char *b64_encode(const void *data, size_t len)
{
    return encode(data, len, std_alpha, 1);
}

static int val(char c, int url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (url ? c == '-' : c == '+')
        return 62;
    if (url ? c == '_' : c == '/')
        return 63;
    return -1;
}

static int decode(const char *s, size_t len, int url, uint8_t **out, size_t *outlen)
{
    uint8_t *o = xmalloc(len / 4 * 3 + 4);
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0, pads = 0;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!url && (c == ' ' || c == '\n' || c == '\r' || c == '\t'))
            continue;
        if (!url && c == '=') {
            pads++;
            continue;
        }
        if (pads)
            goto bad; /* data after padding */
        int v = val(c, url);
        if (v < 0)
            goto bad;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[n++] = (uint8_t)(acc >> bits);
        }
    }
    /* leftover bits must be fewer than a byte and zero (canonical form) */
    if (bits >= 6 || (acc & ((1u << bits) - 1)) != 0 || pads > 2)
        goto bad;
    o[n] = 0;
    *out = o;
    *outlen = n;
    return 0;
bad:
    free(o);
    return ERR_PARSE;
}

int b64url_decode(const char *s, size_t len, uint8_t **out, size_t *outlen)
{
    return decode(s, len, 1, out, outlen);
}

int b64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen)
{
    return decode(s, len, 0, out, outlen);
}

int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int key32_parse(const char *text, size_t len, uint8_t out[32])
{
    uint8_t *raw = NULL;
    size_t rawlen = 0;
    int rc = -EINVAL;

    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    if (len == 64) {
        for (size_t i = 0; i < 32; i++) {
            int hi = hex_digit(text[2 * i]), lo = hex_digit(text[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                OPENSSL_cleanse(out, 32);
                return -EINVAL;
            }
            out[i] = (uint8_t)(hi << 4 | lo);
        }
        return 0;
    }
    for (size_t i = 0; i < len; i++) /* b64_decode skips whitespace: we do not */
        if (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')
            return -EINVAL;
    if (len > 0 && b64_decode(text, len, &raw, &rawlen) == 0 && rawlen == 32) {
        memcpy(out, raw, 32);
        rc = 0;
    }
    if (raw != NULL)
        OPENSSL_cleanse(raw, rawlen);
    free(raw);
    return rc;
}
