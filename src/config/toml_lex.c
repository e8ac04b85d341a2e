/* The TOML parser's lexical layer: positions and error messages, UTF-8
 * validation, scratch buffers, whitespace and comments, strings and keys.
 * It decodes tokens; where they go in the tree is toml.c's business. */
#include "config/toml_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/xalloc.h"

/* ---------- positions and errors ---------- */

struct toml_pos toml_pos_at(struct parser *p, size_t off)
{
    if (off > p->len)
        off = p->len;
    if (off < p->pc_off || p->pc_line == 0) {
        p->pc_off = p->bom;
        p->pc_line = 1;
        p->pc_col = 1;
    }
    uint32_t line = p->pc_line, col = p->pc_col;
    for (size_t i = p->pc_off; i < off; i++) {
        uint8_t c = p->s[i];
        if (c == '\n') {
            line++;
            col = 1;
        } else if ((c & 0xC0) != 0x80) {
            col++;
        }
    }
    p->pc_off = off;
    p->pc_line = line;
    p->pc_col = col;
    return (struct toml_pos){line, col};
}

__attribute__((format(printf, 3, 4))) int toml_fail(struct parser *p, size_t off, const char *fmt,
                                                    ...)
{
    va_list ap;

    p->err->pos = toml_pos_at(p, off);
    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
    va_end(ap);
    return ERR_PARSE;
}

/* Appends a key to out (cap bytes, always terminated) the way it would be
 * written in TOML: bare when it can be, else quoted with escapes; long keys
 * are cut with "...". */
static void key_render(char *out, size_t cap, size_t *used, const char *k, size_t n)
{
    size_t u = *used;
    bool bare = n > 0;

    if (u >= cap || cap - u < 16)
        return;
    for (size_t i = 0; i < n && bare; i++)
        bare = is_bare((uint8_t)k[i]);
    size_t limit = cap - 12 < u + 60 ? cap - 12 : u + 60;
    if (!bare)
        out[u++] = '"';
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)k[i];
        if (u >= limit && (c & 0xC0) != 0x80) {
            memcpy(out + u, "...", 3);
            u += 3;
            break;
        }
        if (c < 0x20 || c == 0x7f) {
            u += (size_t)snprintf(out + u, cap - u, "\\u%04x", c);
        } else if (c == '"' || c == '\\') {
            out[u++] = '\\';
            out[u++] = (char)c;
        } else {
            out[u++] = (char)c;
        }
    }
    if (!bare)
        out[u++] = '"';
    out[u] = '\0';
    *used = u;
}

/* Appends parts[from..upto] of the current key to out, dotted. */
void toml_parts_render(struct parser *p, size_t from, size_t upto, char *out, size_t cap,
                       size_t *used)
{
    for (size_t i = from; i <= upto && i < p->nparts; i++) {
        if (*used > 0 && *used + 2 < cap) {
            out[(*used)++] = '.';
            out[*used] = '\0';
        }
        key_render(out, cap, used, p->kbuf + p->parts[i].boff, p->parts[i].len);
    }
}

/* Full path of parts[0..upto] of a key in the current table: the table's
 * path (from its header and any enclosing inline tables or arrays) first. */
const char *toml_path_render(struct parser *p, size_t upto, char *out, size_t cap)
{
    size_t u = p->plen < cap ? p->plen : 0;

    memcpy(out, p->prefix, u);
    out[u] = '\0';
    toml_parts_render(p, 0, upto, out, cap, &u);
    return out;
}

/* Appends "[i]" (an array element) to a path. */
void toml_index_render(char *out, size_t cap, size_t *used, size_t i)
{
    if (*used < cap && cap - *used > 24)
        *used += (size_t)snprintf(out + *used, cap - *used, "[%zu]", i);
}

/* Path of parts[0..upto] of a [header] key (absolute). */
const char *toml_header_render(struct parser *p, size_t upto, char *out, size_t cap)
{
    size_t u = 0;

    out[0] = '\0';
    toml_parts_render(p, 0, upto, out, cap, &u);
    return out;
}

const char *toml_describe(struct parser *p, size_t off, char *buf, size_t cap)
{
    if (off >= p->len)
        return "end of file";
    uint8_t c = p->s[off];
    if (c == '\n' || (c == '\r' && off + 1 < p->len && p->s[off + 1] == '\n'))
        return "newline";
    if (c < 0x20 || c == 0x7f) {
        snprintf(buf, cap, "control character U+%04X", c);
        return buf;
    }
    if (c < 0x80) {
        snprintf(buf, cap, "'%c'", c);
        return buf;
    }
    size_t n = 1;
    while (off + n < p->len && n < 4 && (p->s[off + n] & 0xC0) == 0x80)
        n++;
    snprintf(buf, cap, "'%.*s'", (int)n, (const char *)p->s + off);
    return buf;
}

/* ---------- UTF-8 ---------- */

/* Returns the length of the valid UTF-8 sequence at s[0..n), or 0 when it is
 * malformed (overlong, surrogate, above U+10FFFF, truncated). */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];

    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80)
            return 0;
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && s[1] < 0xA0) /* overlong */
            return 0;
        if (c == 0xED && s[1] >= 0xA0) /* surrogate */
            return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) /* overlong */
            return 0;
        if (c == 0xF4 && s[1] >= 0x90) /* above U+10FFFF */
            return 0;
        return 4;
    }
    return 0;
}

int toml_check_utf8(struct parser *p)
{
    size_t i = 0;

    while (i < p->len) {
        if (p->s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq(p->s + i, p->len - i);
        if (n == 0)
            return toml_fail(p, i, "invalid UTF-8 (byte 0x%02x)", p->s[i]);
        i += n;
    }
    return 0;
}

/* ---------- scratch buffers ---------- */

static void sbuf_put(struct parser *p, const void *d, size_t n)
{
    if (p->slen + n + 1 > p->scap)
        p->sbuf = xreallocarray_grow(p->sbuf, &p->scap, p->slen + n + 1, 1);
    memcpy(p->sbuf + p->slen, d, n);
    p->slen += n;
}

void toml_sbuf_putc(struct parser *p, char c)
{
    sbuf_put(p, &c, 1);
}

static void sbuf_put_cp(struct parser *p, uint32_t cp)
{
    uint8_t b[4];
    size_t n;

    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | (cp >> 6));
        b[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | (cp >> 12));
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | (cp >> 18));
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sbuf_put(p, b, n);
}

/* ---------- lexical helpers ---------- */

static bool is_ctrl(uint8_t c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

void toml_skip_ws(struct parser *p)
{
    while (p->off < p->len && (p->s[p->off] == ' ' || p->s[p->off] == '\t'))
        p->off++;
}

/* At '#': consumes the comment up to (not including) the newline. */
int toml_skip_comment(struct parser *p)
{
    p->off++;
    while (p->off < p->len) {
        uint8_t c = p->s[p->off];
        if (c == '\n' || (c == '\r' && at(p, p->off + 1, '\n')))
            return 0;
        if (is_ctrl(c))
            return toml_fail(p, p->off, "control character U+%04X not allowed in a comment", c);
        p->off++;
    }
    return 0;
}

/* Consumes one newline if present: returns 1 if consumed, 0 if none, <0 on a
 * bare CR. */
int toml_eat_newline(struct parser *p)
{
    if (at(p, p->off, '\n')) {
        p->off++;
        return 1;
    }
    if (at(p, p->off, '\r')) {
        if (at(p, p->off + 1, '\n')) {
            p->off += 2;
            return 1;
        }
        return toml_fail(p, p->off, "carriage return not followed by a newline");
    }
    return 0;
}

/* Skips whitespace, comments and newlines (inside arrays). */
int toml_skip_ws_nl(struct parser *p)
{
    for (;;) {
        toml_skip_ws(p);
        if (at(p, p->off, '#')) {
            int rc = toml_skip_comment(p);
            if (rc < 0)
                return rc;
        }
        int rc = toml_eat_newline(p);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return 0;
    }
}

/* After a key/value or a header: spaces, an optional comment, then a newline
 * or the end of the document. */
int toml_expect_eol(struct parser *p, const char *after)
{
    char d[48];

    toml_skip_ws(p);
    if (at(p, p->off, '#')) {
        int rc = toml_skip_comment(p);
        if (rc < 0)
            return rc;
    }
    if (p->off >= p->len)
        return 0;
    int rc = toml_eat_newline(p);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return toml_fail(p, p->off, "expected newline after %s, found %s", after,
                         toml_describe(p, p->off, d, sizeof(d)));
    return 0;
}

/* ---------- strings ---------- */

int toml_hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* At a backslash inside a basic string: decodes one escape into sbuf. */
static int parse_escape(struct parser *p)
{
    size_t start = p->off;
    char d[48];

    if (p->off + 1 >= p->len)
        return toml_fail(p, start, "unterminated string");
    uint8_t c = p->s[p->off + 1];
    p->off += 2;
    switch (c) {
    case 'b':
        toml_sbuf_putc(p, '\b');
        return 0;
    case 't':
        toml_sbuf_putc(p, '\t');
        return 0;
    case 'n':
        toml_sbuf_putc(p, '\n');
        return 0;
    case 'f':
        toml_sbuf_putc(p, '\f');
        return 0;
    case 'r':
        toml_sbuf_putc(p, '\r');
        return 0;
    case '"':
        toml_sbuf_putc(p, '"');
        return 0;
    case '\\':
        toml_sbuf_putc(p, '\\');
        return 0;
    case 'u':
    case 'U': {
        int nd = c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int i = 0; i < nd; i++) {
            int h = p->off < p->len ? toml_hexval(p->s[p->off]) : -1;
            if (h < 0)
                return toml_fail(p, start, "\\%c escape needs %d hex digits", c, nd);
            cp = (cp << 4) | (uint32_t)h;
            p->off++;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF)
            return toml_fail(p, start, "\\%c escape is a surrogate (U+%04" PRIX32 ")", c, cp);
        if (cp > 0x10FFFF)
            return toml_fail(p, start, "\\%c escape is beyond U+10FFFF (U+%" PRIX32 ")", c, cp);
        sbuf_put_cp(p, cp);
        return 0;
    }
    default:
        if (c >= 0x21 && c < 0x7f)
            return toml_fail(p, start, "invalid escape sequence '\\%c'", c);
        return toml_fail(p, start, "invalid escape sequence: backslash followed by %s",
                         toml_describe(p, start + 1, d, sizeof(d)));
    }
}

/* Basic or literal string, single- or multi-line, at its opening quote.
 * The decoded bytes end up in sbuf[0..slen). */
int toml_parse_string(struct parser *p, bool allow_multi)
{
    size_t start = p->off;
    uint8_t q = p->s[p->off];
    bool literal = q == '\'';
    bool multi = at(p, p->off + 1, (char)q) && at(p, p->off + 2, (char)q);
    const char *what = literal ? "literal string" : "string";

    p->slen = 0;
    if (multi && !allow_multi)
        return toml_fail(p, start, "multi-line strings cannot be keys");
    if (multi) {
        p->off += 3;
        /* a newline right after the opening delimiter is trimmed */
        if (at(p, p->off, '\n'))
            p->off++;
        else if (at(p, p->off, '\r') && at(p, p->off + 1, '\n'))
            p->off += 2;
    } else {
        p->off++;
    }
    for (;;) {
        if (p->off >= p->len)
            return toml_fail(p, start, "unterminated %s", what);
        uint8_t c = p->s[p->off];
        if (c == q) {
            if (!multi) {
                p->off++;
                break;
            }
            size_t n = 0;
            while (p->off + n < p->len && p->s[p->off + n] == q)
                n++;
            if (n >= 3) {
                if (n > 5)
                    return toml_fail(p, p->off + 5, "too many quotes closing a multi-line %s",
                                     what);
                for (size_t i = 0; i < n - 3; i++)
                    toml_sbuf_putc(p, (char)q);
                p->off += n;
                break;
            }
            for (size_t i = 0; i < n; i++)
                toml_sbuf_putc(p, (char)q);
            p->off += n;
            continue;
        }
        if (c == '\\' && !literal) {
            if (multi && p->off + 1 < p->len &&
                (p->s[p->off + 1] == ' ' || p->s[p->off + 1] == '\t' || p->s[p->off + 1] == '\n' ||
                 p->s[p->off + 1] == '\r')) {
                /* line-ending backslash: only whitespace may follow it on the line;
                 * then all whitespace and newlines are trimmed */
                size_t bs = p->off;
                p->off++;
                toml_skip_ws(p);
                int rc = toml_eat_newline(p);
                if (rc < 0)
                    return rc;
                if (rc == 0)
                    return toml_fail(p, bs, "invalid escape: backslash followed by whitespace");
                for (;;) {
                    toml_skip_ws(p);
                    rc = toml_eat_newline(p);
                    if (rc < 0)
                        return rc;
                    if (rc == 0)
                        break;
                }
                continue;
            }
            int rc = parse_escape(p);
            if (rc < 0)
                return rc;
            continue;
        }
        if (c == '\n' || c == '\r') {
            if (!multi)
                return toml_fail(p, p->off, "newline in a single-line %s", what);
            if (c == '\r' && !at(p, p->off + 1, '\n'))
                return toml_fail(p, p->off, "carriage return not followed by a newline");
            /* a CRLF in the document becomes LF in the value */
            if (c == '\r')
                p->off++;
            toml_sbuf_putc(p, '\n');
            p->off++;
            continue;
        }
        if (is_ctrl(c))
            return toml_fail(p, p->off, "control character U+%04X not allowed in a %s; escape it",
                             c, what);
        /* copy a run of ordinary bytes at once */
        size_t e = p->off + 1;
        while (e < p->len) {
            uint8_t x = p->s[e];
            if (x == q || x == '\\' || x == '\n' || x == '\r' || is_ctrl(x))
                break;
            e++;
        }
        sbuf_put(p, p->s + p->off, e - p->off);
        p->off = e;
    }
    return 0;
}

/* ---------- keys ---------- */

/* Parses a (possibly dotted) key into parts[]. */
int toml_parse_key(struct parser *p)
{
    char d[48];

    p->nparts = 0;
    p->klen = 0;
    /* an empty first key ("" = 1) still needs a base: NULL + 0 is UB */
    if (p->kbuf == NULL)
        p->kbuf = xreallocarray_grow(p->kbuf, &p->kcap, 1, 1);
    for (;;) {
        size_t src = p->off;
        size_t boff = p->klen;
        if (p->off >= p->len)
            return toml_fail(p, p->off, "expected a key, found end of file");
        uint8_t c = p->s[p->off];
        if (c == '"' || c == '\'') {
            int rc = toml_parse_string(p, false);
            if (rc < 0)
                return rc;
            if (p->klen + p->slen > p->kcap)
                p->kbuf = xreallocarray_grow(p->kbuf, &p->kcap, p->klen + p->slen, 1);
            if (p->slen > 0)
                memcpy(p->kbuf + p->klen, p->sbuf, p->slen);
            p->klen += p->slen;
        } else if (is_bare(c)) {
            size_t e = p->off;
            while (e < p->len && is_bare(p->s[e]))
                e++;
            size_t n = e - p->off;
            if (p->klen + n > p->kcap)
                p->kbuf = xreallocarray_grow(p->kbuf, &p->kcap, p->klen + n, 1);
            memcpy(p->kbuf + p->klen, p->s + p->off, n);
            p->klen += n;
            p->off = e;
        } else {
            return toml_fail(p, p->off, "expected a key, found %s",
                             toml_describe(p, p->off, d, sizeof(d)));
        }
        if (p->nparts >= TOML_MAX_DEPTH)
            return toml_fail(p, src, "key has too many parts (at most %d)", TOML_MAX_DEPTH);
        p->parts = xreallocarray_grow(p->parts, &p->pcap, p->nparts + 1, sizeof(*p->parts));
        p->parts[p->nparts++] = (struct key_part){boff, p->klen - boff, src};
        size_t save = p->off;
        toml_skip_ws(p);
        if (!at(p, p->off, '.')) {
            p->off = save;
            return 0;
        }
        p->off++;
        toml_skip_ws(p);
    }
}
