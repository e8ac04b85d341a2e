/* TOML 1.0.0 parser: turns a byte buffer into a tree of tables whose keys and
 * values remember their line and column. It owns syntax and the redefinition
 * rules of the specification; what the keys mean is config.c's business. */
#include "config/toml.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/xalloc.h"

/* How deep tables and arrays may nest (counting every key part, array and
 * inline table on the way down). Keeps recursion in the parser, in
 * toml_table_free and in tree walkers bounded. */
#define TOML_MAX_DEPTH 128
/* Tables switch from a linear scan to a hash index past this many keys. */
#define TOML_INDEX_MIN 16

/* struct toml_table.kind: how a table came to exist, which decides whether
 * a later [header] or dotted key may add to it (TOML 1.0 "Table" section). */
enum {
    TK_IMPLICIT = 0, /* created as a parent by a [a.b.c] header: [a] may still define it */
    TK_HEADER,       /* defined by a [header] or an [[array]] element */
    TK_DOTTED,       /* created by a dotted key: sub-tables by header allowed, [it] not */
    TK_INLINE,       /* an inline table: closed once its '}' is read */
    TK_ROOT,
};

struct key_part {
    size_t boff; /* offset of the decoded bytes in parser.kbuf */
    size_t len;
    size_t src; /* offset of the part in the document */
};

struct parser {
    const uint8_t *s;
    size_t len;
    size_t off;
    size_t bom; /* 3 if the document starts with a byte order mark */
    /* position cache: pos_at() moves forward from the last answer */
    size_t pc_off;
    uint32_t pc_line, pc_col;
    struct toml_table *root;
    struct toml_table *cur; /* table that key/value lines go to */
    int cur_depth;
    struct toml_error *err;
    /* scratch buffers, reused: decoded strings and key parts */
    char *sbuf;
    size_t slen, scap;
    char *kbuf;
    size_t klen, kcap;
    struct key_part *parts;
    size_t nparts, pcap;
    /* path of the table being filled, for messages ("a.b[2].c") */
    char prefix[160];
    size_t plen;
};

/* ---------- positions and errors ---------- */

static struct toml_pos pos_at(struct parser *p, size_t off)
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

__attribute__((format(printf, 3, 4))) static int fail(struct parser *p, size_t off, const char *fmt,
                                                      ...)
{
    va_list ap;

    p->err->pos = pos_at(p, off);
    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
    va_end(ap);
    return ERR_PARSE;
}

static bool is_bare(uint8_t c);

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
static void parts_render(struct parser *p, size_t from, size_t upto, char *out, size_t cap,
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
static const char *path_render(struct parser *p, size_t upto, char *out, size_t cap)
{
    size_t u = p->plen < cap ? p->plen : 0;

    memcpy(out, p->prefix, u);
    out[u] = '\0';
    parts_render(p, 0, upto, out, cap, &u);
    return out;
}

/* Appends "[i]" (an array element) to a path. */
static void index_render(char *out, size_t cap, size_t *used, size_t i)
{
    if (*used < cap && cap - *used > 24)
        *used += (size_t)snprintf(out + *used, cap - *used, "[%zu]", i);
}

/* Path of parts[0..upto] of a [header] key (absolute). */
static const char *header_render(struct parser *p, size_t upto, char *out, size_t cap)
{
    size_t u = 0;

    out[0] = '\0';
    parts_render(p, 0, upto, out, cap, &u);
    return out;
}

static const char *describe(struct parser *p, size_t off, char *buf, size_t cap)
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

static int check_utf8(struct parser *p)
{
    size_t i = 0;

    while (i < p->len) {
        if (p->s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq(p->s + i, p->len - i);
        if (n == 0)
            return fail(p, i, "invalid UTF-8 (byte 0x%02x)", p->s[i]);
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

static void sbuf_putc(struct parser *p, char c)
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

/* ---------- memory ---------- */

/* Keys, strings and the table and array headers of one document live in an
 * arena that the root table owns: a large config is dominated by the cost of
 * touching fresh heap, and per-allocation malloc headers and rounding would
 * double the footprint of the many short strings. Item arrays grow, so they
 * stay on malloc. */
struct toml_arena {
    struct toml_arena *next;
    size_t used, cap;
    max_align_t data[]; /* cap bytes */
};

#define ARENA_MIN 4096
#define ARENA_MAX (256 * 1024)

static void *arena_alloc(struct parser *p, size_t n, size_t align)
{
    struct toml_arena *a = p->root->arena;

    if (a != NULL) {
        size_t off = (a->used + align - 1) & ~(align - 1);
        if (off <= a->cap && a->cap - off >= n) {
            a->used = off + n;
            return (char *)a->data + off;
        }
    }
    size_t cap = a == NULL ? ARENA_MIN : a->cap * 2;
    if (cap > ARENA_MAX)
        cap = ARENA_MAX;
    if (n > cap / 4) {
        /* big: a chunk of its own, behind the current one so that the
         * current chunk keeps serving small requests */
        struct toml_arena *big = xmalloc(sizeof(*big) + n);
        big->used = n;
        big->cap = n;
        if (a == NULL) {
            big->next = NULL;
            p->root->arena = big;
        } else {
            big->next = a->next;
            a->next = big;
        }
        return big->data;
    }
    struct toml_arena *c = xmalloc(sizeof(*c) + cap);
    c->next = a;
    c->used = n;
    c->cap = cap;
    p->root->arena = c;
    return c->data;
}

static char *arena_strdup(struct parser *p, const char *s, size_t n)
{
    char *d = arena_alloc(p, n + 1, 1);
    if (n > 0)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Grows an array to hold need elements, by half again each time (most
 * tables and arrays are small and stay so). */
static void *grow(void *ptr, size_t *cap, size_t need, size_t size, size_t min)
{
    size_t c = *cap;

    if (need <= c)
        return ptr;
    if (c < min)
        c = min;
    while (c < need)
        c += c / 2;
    if (c > SIZE_MAX / size)
        abort();
    ptr = xrealloc(ptr, c * size);
    *cap = c;
    return ptr;
}

/* Gives back the unused capacity of a table or array that is complete (or
 * rarely grows again), while the space can still serve later allocations. */
static void tab_shrink(struct toml_table *t)
{
    if (t->cap > t->n && t->n > 0) {
        t->items = xrealloc(t->items, t->n * sizeof(*t->items));
        t->cap = t->n;
    }
}

static void array_shrink(struct toml_array *a)
{
    if (a->cap > a->n && a->n > 0) {
        a->items = xrealloc(a->items, a->n * sizeof(*a->items));
        a->cap = a->n;
    }
}

/* ---------- tables ---------- */

static uint64_t key_hash(const char *k, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)k[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void index_insert(struct toml_table *t, size_t item)
{
    size_t mask = t->index_cap - 1;
    size_t h = (size_t)key_hash(t->items[item].key, t->items[item].keylen) & mask;

    while (t->index[h] != 0)
        h = (h + 1) & mask;
    t->index[h] = (uint32_t)(item + 1);
}

static void index_rebuild(struct toml_table *t, size_t cap)
{
    free(t->index);
    t->index = xcalloc(cap, sizeof(*t->index));
    t->index_cap = cap;
    for (size_t i = 0; i < t->n; i++)
        index_insert(t, i);
}

static struct toml_keyval *tab_find(const struct toml_table *t, const char *k, size_t n)
{
    if (t->index != NULL) {
        size_t mask = t->index_cap - 1;
        size_t h = (size_t)key_hash(k, n) & mask;
        while (t->index[h] != 0) {
            struct toml_keyval *kv = &t->items[t->index[h] - 1];
            if (kv->keylen == n && memcmp(kv->key, k, n) == 0)
                return kv;
            h = (h + 1) & mask;
        }
        return NULL;
    }
    for (size_t i = 0; i < t->n; i++) {
        struct toml_keyval *kv = &t->items[i];
        if (kv->keylen == n && memcmp(kv->key, k, n) == 0)
            return kv;
    }
    return NULL;
}

/* Adds a key already copied to the arena (caller checked it is absent); the
 * value is left for the caller. */
static struct toml_keyval *tab_add_key(struct toml_table *t, char *key, size_t n,
                                       struct toml_pos pos)
{
    if (t->n >= UINT32_MAX - 1)
        abort(); /* unreachable: documents are far smaller */
    t->items = grow(t->items, &t->cap, t->n + 1, sizeof(*t->items), 4);
    struct toml_keyval *kv = &t->items[t->n++];
    memset(kv, 0, sizeof(*kv));
    kv->key = key;
    kv->keylen = n;
    kv->keypos = pos;
    if (t->index != NULL) {
        if (t->n * 2 > t->index_cap)
            index_rebuild(t, t->index_cap * 2);
        else
            index_insert(t, t->n - 1);
    } else if (t->n > TOML_INDEX_MIN) {
        index_rebuild(t, 64);
    }
    return kv;
}

static struct toml_keyval *tab_add(struct parser *p, struct toml_table *t, const char *k, size_t n,
                                   struct toml_pos pos)
{
    return tab_add_key(t, arena_strdup(p, k, n), n, pos);
}

static struct toml_table *tab_new(struct parser *p, uint8_t kind)
{
    struct toml_table *t = arena_alloc(p, sizeof(*t), _Alignof(struct toml_table));
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    return t;
}

static struct toml_array *array_new(struct parser *p)
{
    struct toml_array *a = arena_alloc(p, sizeof(*a), _Alignof(struct toml_array));
    memset(a, 0, sizeof(*a));
    return a;
}

static void tab_fini(struct toml_table *t);

/* Frees what a value holds outside the arena (item arrays, indexes). */
static void value_fini(struct toml_value *v)
{
    if (v->type == TOML_ARRAY) {
        struct toml_array *a = v->u.arr;
        for (size_t i = 0; i < a->n; i++)
            value_fini(&a->items[i]);
        free(a->items);
        a->items = NULL;
        a->n = 0;
    } else if (v->type == TOML_TABLE) {
        tab_fini(v->u.tab);
    }
    v->type = TOML_BOOL;
}

static void tab_fini(struct toml_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        value_fini(&t->items[i].val);
    free(t->items);
    free(t->index);
    t->items = NULL;
    t->index = NULL;
    t->n = 0;
}

void toml_table_free(struct toml_table *t)
{
    if (t == NULL || t->kind != TK_ROOT)
        return; /* only a root from toml_parse owns anything */
    tab_fini(t);
    struct toml_arena *a = t->arena;
    while (a != NULL) {
        struct toml_arena *next = a->next;
        free(a);
        a = next;
    }
    free(t);
}

const struct toml_keyval *toml_table_getn(const struct toml_table *t, const char *key, size_t len)
{
    if (t == NULL || key == NULL)
        return NULL;
    return tab_find(t, key, len);
}

const struct toml_keyval *toml_table_get(const struct toml_table *t, const char *key)
{
    if (key == NULL)
        return NULL;
    return toml_table_getn(t, key, strlen(key));
}

const char *toml_type_name(enum toml_type t)
{
    switch (t) {
    case TOML_STRING:
        return "string";
    case TOML_INTEGER:
        return "integer";
    case TOML_FLOAT:
        return "float";
    case TOML_BOOL:
        return "boolean";
    case TOML_DATETIME:
        return "offset date-time";
    case TOML_DATETIME_LOCAL:
        return "local date-time";
    case TOML_DATE_LOCAL:
        return "local date";
    case TOML_TIME_LOCAL:
        return "local time";
    case TOML_ARRAY:
        return "array";
    case TOML_TABLE:
        return "table";
    }
    return "unknown";
}

/* ---------- lexical helpers ---------- */

static bool at(const struct parser *p, size_t off, char c)
{
    return off < p->len && p->s[off] == (uint8_t)c;
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static bool is_bare(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-';
}

static bool is_ctrl(uint8_t c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

static void skip_ws(struct parser *p)
{
    while (p->off < p->len && (p->s[p->off] == ' ' || p->s[p->off] == '\t'))
        p->off++;
}

/* At '#': consumes the comment up to (not including) the newline. */
static int skip_comment(struct parser *p)
{
    p->off++;
    while (p->off < p->len) {
        uint8_t c = p->s[p->off];
        if (c == '\n' || (c == '\r' && at(p, p->off + 1, '\n')))
            return 0;
        if (is_ctrl(c))
            return fail(p, p->off, "control character U+%04X not allowed in a comment", c);
        p->off++;
    }
    return 0;
}

/* Consumes one newline if present: returns 1 if consumed, 0 if none, <0 on a
 * bare CR. */
static int eat_newline(struct parser *p)
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
        return fail(p, p->off, "carriage return not followed by a newline");
    }
    return 0;
}

/* Skips whitespace, comments and newlines (inside arrays). */
static int skip_ws_nl(struct parser *p)
{
    for (;;) {
        skip_ws(p);
        if (at(p, p->off, '#')) {
            int rc = skip_comment(p);
            if (rc < 0)
                return rc;
        }
        int rc = eat_newline(p);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return 0;
    }
}

/* After a key/value or a header: spaces, an optional comment, then a newline
 * or the end of the document. */
static int expect_eol(struct parser *p, const char *after)
{
    char d[48];

    skip_ws(p);
    if (at(p, p->off, '#')) {
        int rc = skip_comment(p);
        if (rc < 0)
            return rc;
    }
    if (p->off >= p->len)
        return 0;
    int rc = eat_newline(p);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return fail(p, p->off, "expected newline after %s, found %s", after,
                    describe(p, p->off, d, sizeof(d)));
    return 0;
}

/* ---------- strings ---------- */

static int hexval(uint8_t c)
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
        return fail(p, start, "unterminated string");
    uint8_t c = p->s[p->off + 1];
    p->off += 2;
    switch (c) {
    case 'b':
        sbuf_putc(p, '\b');
        return 0;
    case 't':
        sbuf_putc(p, '\t');
        return 0;
    case 'n':
        sbuf_putc(p, '\n');
        return 0;
    case 'f':
        sbuf_putc(p, '\f');
        return 0;
    case 'r':
        sbuf_putc(p, '\r');
        return 0;
    case '"':
        sbuf_putc(p, '"');
        return 0;
    case '\\':
        sbuf_putc(p, '\\');
        return 0;
    case 'u':
    case 'U': {
        int nd = c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int i = 0; i < nd; i++) {
            int h = p->off < p->len ? hexval(p->s[p->off]) : -1;
            if (h < 0)
                return fail(p, start, "\\%c escape needs %d hex digits", c, nd);
            cp = (cp << 4) | (uint32_t)h;
            p->off++;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF)
            return fail(p, start, "\\%c escape is a surrogate (U+%04" PRIX32 ")", c, cp);
        if (cp > 0x10FFFF)
            return fail(p, start, "\\%c escape is beyond U+10FFFF (U+%" PRIX32 ")", c, cp);
        sbuf_put_cp(p, cp);
        return 0;
    }
    default:
        if (c >= 0x21 && c < 0x7f)
            return fail(p, start, "invalid escape sequence '\\%c'", c);
        return fail(p, start, "invalid escape sequence: backslash followed by %s",
                    describe(p, start + 1, d, sizeof(d)));
    }
}

/* Basic or literal string, single- or multi-line, at its opening quote.
 * The decoded bytes end up in sbuf[0..slen). */
static int parse_string(struct parser *p, bool allow_multi)
{
    size_t start = p->off;
    uint8_t q = p->s[p->off];
    bool literal = q == '\'';
    bool multi = at(p, p->off + 1, (char)q) && at(p, p->off + 2, (char)q);
    const char *what = literal ? "literal string" : "string";

    p->slen = 0;
    if (multi && !allow_multi)
        return fail(p, start, "multi-line strings cannot be keys");
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
            return fail(p, start, "unterminated %s", what);
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
                    return fail(p, p->off + 5, "too many quotes closing a multi-line %s", what);
                for (size_t i = 0; i < n - 3; i++)
                    sbuf_putc(p, (char)q);
                p->off += n;
                break;
            }
            for (size_t i = 0; i < n; i++)
                sbuf_putc(p, (char)q);
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
                skip_ws(p);
                int rc = eat_newline(p);
                if (rc < 0)
                    return rc;
                if (rc == 0)
                    return fail(p, bs, "invalid escape: backslash followed by whitespace");
                for (;;) {
                    skip_ws(p);
                    rc = eat_newline(p);
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
                return fail(p, p->off, "newline in a single-line %s", what);
            if (c == '\r' && !at(p, p->off + 1, '\n'))
                return fail(p, p->off, "carriage return not followed by a newline");
            /* a CRLF in the document becomes LF in the value */
            if (c == '\r')
                p->off++;
            sbuf_putc(p, '\n');
            p->off++;
            continue;
        }
        if (is_ctrl(c))
            return fail(p, p->off, "control character U+%04X not allowed in a %s; escape it", c,
                        what);
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
static int parse_key(struct parser *p)
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
            return fail(p, p->off, "expected a key, found end of file");
        uint8_t c = p->s[p->off];
        if (c == '"' || c == '\'') {
            int rc = parse_string(p, false);
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
            return fail(p, p->off, "expected a key, found %s", describe(p, p->off, d, sizeof(d)));
        }
        if (p->nparts >= TOML_MAX_DEPTH)
            return fail(p, src, "key has too many parts (at most %d)", TOML_MAX_DEPTH);
        p->parts = xreallocarray_grow(p->parts, &p->pcap, p->nparts + 1, sizeof(*p->parts));
        p->parts[p->nparts++] = (struct key_part){boff, p->klen - boff, src};
        size_t save = p->off;
        skip_ws(p);
        if (!at(p, p->off, '.')) {
            p->off = save;
            return 0;
        }
        p->off++;
        skip_ws(p);
    }
}

/* ---------- numbers, dates and times ---------- */

/* Digits with single underscores between them, starting at s[i]. Returns the
 * end index, or (size_t)-1 if the underscore rule is broken or no digit. */
static size_t digit_run(const uint8_t *s, size_t i, size_t end, int base)
{
    size_t start = i;
    bool prev_digit = false;

    while (i < end) {
        uint8_t c = s[i];
        bool ok = base == 16 ? hexval(c) >= 0 : (c >= '0' && c < '0' + base);
        if (ok) {
            prev_digit = true;
        } else if (c == '_') {
            if (!prev_digit || i + 1 >= end)
                return (size_t)-1;
            uint8_t n = s[i + 1];
            bool nok = base == 16 ? hexval(n) >= 0 : (n >= '0' && n < '0' + base);
            if (!nok)
                return (size_t)-1;
            prev_digit = false;
        } else {
            break;
        }
        i++;
    }
    if (i == start)
        return (size_t)-1;
    return i;
}

static int parse_number(struct parser *p, struct toml_value *v)
{
    size_t start = p->off;
    size_t end = start;
    const uint8_t *s = p->s;
    char d[48];

    while (end < p->len && (is_bare(s[end]) || s[end] == '.' || s[end] == '+'))
        end++;
    size_t tlen = end - start;
    size_t i = start;
    bool neg = false;

    if (s[i] == '+' || s[i] == '-') {
        neg = s[i] == '-';
        i++;
    }
    /* inf and nan */
    if (end - i == 3 && (memcmp(s + i, "inf", 3) == 0 || memcmp(s + i, "nan", 3) == 0)) {
        v->type = TOML_FLOAT;
        if (s[i] == 'i')
            v->u.f = neg ? -INFINITY : INFINITY;
        else
            v->u.f = neg ? -NAN : NAN;
        p->off = end;
        return 0;
    }
    if (i >= end || !is_digit(s[i]))
        return fail(p, start, "expected a value, found %s", describe(p, start, d, sizeof(d)));
    /* prefixed integers */
    if (s[i] == '0' && i + 1 < end && (s[i + 1] == 'x' || s[i + 1] == 'o' || s[i + 1] == 'b')) {
        int base = s[i + 1] == 'x' ? 16 : s[i + 1] == 'o' ? 8 : 2;
        if (i != start)
            return fail(p, start, "a sign is not allowed on hexadecimal, octal or binary integers");
        size_t e = digit_run(s, i + 2, end, base);
        if (e == (size_t)-1 || e != end)
            return fail(p, start, "invalid %s integer '%.*s'",
                        base == 16  ? "hexadecimal"
                        : base == 8 ? "octal"
                                    : "binary",
                        (int)(tlen > 40 ? 40 : tlen), (const char *)s + start);
        uint64_t acc = 0;
        for (size_t k = i + 2; k < end; k++) {
            if (s[k] == '_')
                continue;
            uint64_t dv = (uint64_t)hexval(s[k]);
            if (acc > (INT64_MAX - dv) / (uint64_t)base)
                return fail(p, start, "integer out of range (64-bit)");
            acc = acc * (uint64_t)base + dv;
        }
        v->type = TOML_INTEGER;
        v->u.i = (int64_t)acc;
        p->off = end;
        return 0;
    }
    size_t ie = digit_run(s, i, end, 10);
    if (ie == (size_t)-1)
        goto bad;
    bool is_float = false;
    size_t k = ie;
    if (k < end && s[k] == '.') {
        size_t fe = digit_run(s, k + 1, end, 10);
        if (fe == (size_t)-1)
            goto bad;
        k = fe;
        is_float = true;
    }
    if (k < end && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < end && (s[k] == '+' || s[k] == '-'))
            k++;
        size_t ee = digit_run(s, k, end, 10);
        if (ee == (size_t)-1)
            goto bad;
        k = ee;
        is_float = true;
    }
    if (k != end)
        goto bad;
    if (s[i] == '0' && ie > i + 1)
        return fail(p, start, "leading zeros are not allowed in '%.*s'",
                    (int)(tlen > 40 ? 40 : tlen), (const char *)s + start);
    if (is_float) {
        p->slen = 0;
        for (size_t m = start; m < end; m++) {
            if (s[m] != '_')
                sbuf_putc(p, (char)s[m]);
        }
        p->sbuf[p->slen] = '\0';
        char *ep;
        errno = 0;
        double f = strtod(p->sbuf, &ep);
        if (*ep != '\0')
            goto bad;
        if (errno == ERANGE && isinf(f))
            return fail(p, start, "float out of range '%.*s'", (int)(tlen > 40 ? 40 : tlen),
                        (const char *)s + start);
        v->type = TOML_FLOAT;
        v->u.f = f;
        p->off = end;
        return 0;
    }
    uint64_t acc = 0;
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t m = i; m < end; m++) {
        if (s[m] == '_')
            continue;
        uint64_t dv = (uint64_t)(s[m] - '0');
        if (acc > (lim - dv) / 10)
            return fail(p, start, "integer out of range (64-bit)");
        acc = acc * 10 + dv;
    }
    v->type = TOML_INTEGER;
    v->u.i = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    p->off = end;
    return 0;
bad:
    return fail(p, start, "invalid number '%.*s'", (int)(tlen > 40 ? 40 : tlen),
                (const char *)s + start);
}

/* n fixed digits at s[off]; -1 if any is not a digit. */
static int fixed_digits(const struct parser *p, size_t off, int n)
{
    int v = 0;

    if (off + (size_t)n > p->len)
        return -1;
    for (int i = 0; i < n; i++) {
        if (!is_digit(p->s[off + (size_t)i]))
            return -1;
        v = v * 10 + (p->s[off + (size_t)i] - '0');
    }
    return v;
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

/* HH:MM:SS[.frac] at p->off. */
static int parse_time(struct parser *p, struct toml_datetime *dt)
{
    size_t start = p->off;
    int h = fixed_digits(p, start, 2);
    int mi = fixed_digits(p, start + 3, 2);
    int se = fixed_digits(p, start + 6, 2);

    if (h < 0 || !at(p, start + 2, ':') || mi < 0)
        return fail(p, start, "invalid time: expected HH:MM:SS");
    if (!at(p, start + 5, ':') || se < 0)
        return fail(p, start, "invalid time: seconds are required (HH:MM:SS)");
    if (h > 23)
        return fail(p, start, "invalid time: hour %02d out of range", h);
    if (mi > 59)
        return fail(p, start + 3, "invalid time: minute %02d out of range", mi);
    if (se > 60)
        return fail(p, start + 6, "invalid time: second %02d out of range", se);
    dt->hour = h;
    dt->minute = mi;
    dt->second = se;
    p->off = start + 8;
    if (at(p, p->off, '.')) {
        size_t f = p->off + 1;
        int nd = 0, ns = 0;
        while (f < p->len && is_digit(p->s[f])) {
            if (nd < 9)
                ns = ns * 10 + (p->s[f] - '0');
            nd++;
            f++;
        }
        if (nd == 0)
            return fail(p, p->off, "invalid time: digits must follow the decimal point");
        for (int k = nd; k < 9; k++)
            ns *= 10;
        dt->nanosecond = ns;
        dt->frac_digits = nd;
        p->off = f;
    }
    return 0;
}

static int parse_datetime(struct parser *p, struct toml_value *v)
{
    size_t start = p->off;
    struct toml_datetime dt;

    memset(&dt, 0, sizeof(dt));
    if (at(p, start + 2, ':')) {
        int rc = parse_time(p, &dt);
        if (rc < 0)
            return rc;
        v->type = TOML_TIME_LOCAL;
        v->u.dt = dt;
        return 0;
    }
    int y = fixed_digits(p, start, 4);
    int mo = fixed_digits(p, start + 5, 2);
    int da = fixed_digits(p, start + 8, 2);
    if (y < 0 || !at(p, start + 4, '-') || mo < 0 || !at(p, start + 7, '-') || da < 0)
        return fail(p, start, "invalid date: expected YYYY-MM-DD");
    if (mo < 1 || mo > 12)
        return fail(p, start + 5, "invalid date: month %02d out of range", mo);
    if (da < 1 || da > days_in_month(y, mo))
        return fail(p, start + 8, "invalid date: day %02d out of range for %04d-%02d", da, y, mo);
    dt.year = y;
    dt.month = mo;
    dt.day = da;
    p->off = start + 10;
    bool has_time = false;
    if (at(p, p->off, 'T') || at(p, p->off, 't')) {
        has_time = true;
    } else if (at(p, p->off, ' ') && p->off + 1 < p->len && is_digit(p->s[p->off + 1])) {
        has_time = true;
    }
    if (!has_time) {
        v->type = TOML_DATE_LOCAL;
        v->u.dt = dt;
        return 0;
    }
    p->off++;
    int rc = parse_time(p, &dt);
    if (rc < 0)
        return rc;
    if (at(p, p->off, 'Z') || at(p, p->off, 'z')) {
        dt.offset_z = true;
        p->off++;
        v->type = TOML_DATETIME;
    } else if (at(p, p->off, '+') || at(p, p->off, '-')) {
        size_t o = p->off;
        int oh = fixed_digits(p, o + 1, 2);
        int om = fixed_digits(p, o + 4, 2);
        if (oh < 0 || !at(p, o + 3, ':') || om < 0)
            return fail(p, o, "invalid offset: expected +HH:MM or -HH:MM");
        if (oh > 23 || om > 59)
            return fail(p, o, "invalid offset: %02d:%02d out of range", oh, om);
        dt.offset_minutes = (oh * 60 + om) * (p->s[o] == '-' ? -1 : 1);
        p->off = o + 6;
        v->type = TOML_DATETIME;
    } else {
        v->type = TOML_DATETIME_LOCAL;
    }
    v->u.dt = dt;
    return 0;
}

/* ---------- values ---------- */

static int parse_value(struct parser *p, struct toml_value *v, int depth);
static int parse_keyval(struct parser *p, struct toml_table *t, int depth);

static int parse_array(struct parser *p, struct toml_value *v, int depth)
{
    size_t start = p->off;
    char d[48];

    if (depth + 1 > TOML_MAX_DEPTH)
        return fail(p, start, "nesting too deep (at most %d levels)", TOML_MAX_DEPTH);
    struct toml_array *a = array_new(p);
    v->type = TOML_ARRAY;
    v->u.arr = a;
    p->off++;
    for (;;) {
        int rc = skip_ws_nl(p);
        if (rc < 0)
            return rc;
        if (at(p, p->off, ']')) {
            p->off++;
            array_shrink(a);
            return 0;
        }
        if (p->off >= p->len)
            return fail(p, start, "unterminated array");
        a->items = grow(a->items, &a->cap, a->n + 1, sizeof(*a->items), 2);
        struct toml_value *item = &a->items[a->n];
        memset(item, 0, sizeof(*item));
        item->type = TOML_BOOL;
        a->n++;
        size_t saved_plen = p->plen;
        if (at(p, p->off, '{') || at(p, p->off, '['))
            index_render(p->prefix, sizeof(p->prefix), &p->plen, a->n - 1);
        rc = parse_value(p, item, depth + 1);
        p->plen = saved_plen;
        p->prefix[saved_plen] = '\0';
        if (rc < 0)
            return rc;
        rc = skip_ws_nl(p);
        if (rc < 0)
            return rc;
        if (at(p, p->off, ',')) {
            p->off++;
            continue;
        }
        if (at(p, p->off, ']')) {
            p->off++;
            array_shrink(a);
            return 0;
        }
        if (p->off >= p->len)
            return fail(p, start, "unterminated array");
        return fail(p, p->off, "expected ',' or ']' in array, found %s",
                    describe(p, p->off, d, sizeof(d)));
    }
}

static int parse_inline(struct parser *p, struct toml_value *v, int depth)
{
    size_t start = p->off;
    char d[48];

    if (depth + 1 > TOML_MAX_DEPTH)
        return fail(p, start, "nesting too deep (at most %d levels)", TOML_MAX_DEPTH);
    struct toml_table *t = tab_new(p, TK_DOTTED);
    v->type = TOML_TABLE;
    v->u.tab = t;
    p->off++;
    skip_ws(p);
    if (at(p, p->off, '}')) {
        p->off++;
        t->kind = TK_INLINE;
        tab_shrink(t);
        return 0;
    }
    for (;;) {
        skip_ws(p);
        if (p->off >= p->len)
            return fail(p, start, "unterminated inline table");
        if (p->s[p->off] == '\n' || p->s[p->off] == '\r')
            return fail(p, p->off, "newline not allowed in an inline table");
        if (p->s[p->off] == '}')
            return fail(p, p->off, "trailing comma not allowed in an inline table");
        int rc = parse_keyval(p, t, depth + 1);
        if (rc < 0)
            return rc;
        skip_ws(p);
        if (at(p, p->off, ',')) {
            p->off++;
            continue;
        }
        if (at(p, p->off, '}')) {
            p->off++;
            t->kind = TK_INLINE;
            tab_shrink(t);
            return 0;
        }
        if (p->off >= p->len)
            return fail(p, start, "unterminated inline table");
        if (p->s[p->off] == '\n' || p->s[p->off] == '\r')
            return fail(p, p->off, "newline not allowed in an inline table");
        return fail(p, p->off, "expected ',' or '}' in inline table, found %s",
                    describe(p, p->off, d, sizeof(d)));
    }
}

static bool word_at(const struct parser *p, const char *w)
{
    size_t n = strlen(w);
    return p->len - p->off >= n && memcmp(p->s + p->off, w, n) == 0;
}

static int parse_value(struct parser *p, struct toml_value *v, int depth)
{
    char d[48];
    int rc;

    v->pos = pos_at(p, p->off);
    if (p->off >= p->len)
        return fail(p, p->off, "expected a value, found end of file");
    uint8_t c = p->s[p->off];
    switch (c) {
    case '"':
    case '\'':
        rc = parse_string(p, true);
        if (rc < 0)
            return rc;
        v->type = TOML_STRING;
        v->u.s.ptr = arena_strdup(p, p->sbuf, p->slen);
        v->u.s.len = p->slen;
        return 0;
    case '[':
        return parse_array(p, v, depth);
    case '{':
        return parse_inline(p, v, depth);
    case 't':
        if (word_at(p, "true")) {
            v->type = TOML_BOOL;
            v->u.b = true;
            p->off += 4;
            return 0;
        }
        break;
    case 'f':
        if (word_at(p, "false")) {
            v->type = TOML_BOOL;
            v->u.b = false;
            p->off += 5;
            return 0;
        }
        break;
    case 'i':
    case 'n':
    case '+':
    case '-':
        return parse_number(p, v);
    default:
        if (is_digit(c)) {
            if (at(p, p->off + 2, ':') ||
                (fixed_digits(p, p->off, 4) >= 0 && at(p, p->off + 4, '-')))
                return parse_datetime(p, v);
            return parse_number(p, v);
        }
        break;
    }
    return fail(p, p->off, "expected a value, found %s", describe(p, p->off, d, sizeof(d)));
}

/* ---------- structure: key/values and headers ---------- */

/* "an integer", "an array of tables"... for messages. */
static const char *kv_kind(const struct toml_keyval *kv)
{
    switch (kv->val.type) {
    case TOML_TABLE:
        return kv->val.u.tab->kind == TK_INLINE ? "an inline table" : "a table";
    case TOML_ARRAY:
        return kv->val.u.arr->aot ? "an array of tables" : "an array";
    case TOML_INTEGER:
        return "an integer";
    case TOML_DATETIME:
        return "an offset date-time";
    default:
        break;
    }
    static const char *const names[] = {
        [TOML_STRING] = "a string",         [TOML_FLOAT] = "a float",
        [TOML_BOOL] = "a boolean",          [TOML_DATETIME_LOCAL] = "a local date-time",
        [TOML_DATE_LOCAL] = "a local date", [TOML_TIME_LOCAL] = "a local time",
    };
    return names[kv->val.type];
}

/* key = value into table t (dotted keys create sub-tables of t). */
static int parse_keyval(struct parser *p, struct toml_table *t, int depth)
{
    char path[160], d[48];
    int rc = parse_key(p);

    if (rc < 0)
        return rc;
    if ((size_t)depth + p->nparts > TOML_MAX_DEPTH)
        return fail(p, p->parts[0].src, "nesting too deep (at most %d levels)", TOML_MAX_DEPTH);
    skip_ws(p);
    if (!at(p, p->off, '='))
        return fail(p, p->off, "expected '=' after key '%s', found %s",
                    path_render(p, p->nparts - 1, path, sizeof(path)),
                    describe(p, p->off, d, sizeof(d)));
    p->off++;
    skip_ws(p);
    for (size_t i = 0; i + 1 < p->nparts; i++) {
        struct key_part *kp = &p->parts[i];
        const char *k = p->kbuf + kp->boff;
        struct toml_keyval *kv = tab_find(t, k, kp->len);
        if (kv == NULL) {
            kv = tab_add(p, t, k, kp->len, pos_at(p, kp->src));
            kv->val.type = TOML_TABLE;
            kv->val.pos = kv->keypos;
            kv->val.u.tab = tab_new(p, TK_DOTTED);
            t = kv->val.u.tab;
            continue;
        }
        /* Dotted keys extend only tables that dotted keys made. Reaching into
         * a [header] table, even one only implied by [a.b.c], is refused:
         * toml-lang/toml#846, worded in #859 (every key/value of a table a
         * dotted key makes must sit under the current header); toml-test's
         * append-with-dotted-keys cases. Python's tomllib is laxer here. */
        if (kv->val.type == TOML_TABLE && kv->val.u.tab->kind == TK_DOTTED) {
            t = kv->val.u.tab;
            continue;
        }
        if (kv->val.type == TOML_TABLE && kv->val.u.tab->kind == TK_INLINE)
            return fail(p, kp->src, "cannot add keys to inline table '%s' (defined at %u:%u)",
                        path_render(p, i, path, sizeof(path)), kv->keypos.line, kv->keypos.col);
        if (kv->val.type == TOML_TABLE)
            return fail(p, kp->src,
                        "cannot add keys to table '%s' with a dotted key: it %s a [table] "
                        "header (at %u:%u)",
                        path_render(p, i, path, sizeof(path)),
                        kv->val.u.tab->kind == TK_IMPLICIT ? "was created by" : "is defined by",
                        kv->keypos.line, kv->keypos.col);
        return fail(p, kp->src, "key '%s' is already %s (defined at %u:%u), not a table",
                    path_render(p, i, path, sizeof(path)), kv_kind(kv), kv->keypos.line,
                    kv->keypos.col);
    }
    struct key_part *last = &p->parts[p->nparts - 1];
    const char *k = p->kbuf + last->boff;
    struct toml_keyval *dup = tab_find(t, k, last->len);
    if (dup != NULL)
        return fail(p, last->src, "duplicate key '%s' (first defined at %u:%u)",
                    path_render(p, p->nparts - 1, path, sizeof(path)), dup->keypos.line,
                    dup->keypos.col);
    /* the key is copied before the value is parsed: nested inline tables reuse
     * the key scratch buffer */
    struct toml_pos kpos = pos_at(p, last->src);
    size_t keylen = last->len;
    char *key = arena_strdup(p, k, keylen);
    struct toml_value v;
    memset(&v, 0, sizeof(v));
    v.type = TOML_BOOL;
    size_t saved_plen = p->plen;
    if (at(p, p->off, '{') || at(p, p->off, '['))
        parts_render(p, 0, p->nparts - 1, p->prefix, sizeof(p->prefix), &p->plen);
    rc = parse_value(p, &v, depth + (int)p->nparts);
    p->plen = saved_plen;
    p->prefix[saved_plen] = '\0';
    if (rc < 0) {
        value_fini(&v);
        return rc;
    }
    struct toml_keyval *kv = tab_add_key(t, key, keylen, kpos);
    kv->val = v;
    return 0;
}

/* [a.b.c] or [[a.b.c]] at '['. */
static int parse_header(struct parser *p)
{
    char path[160], d[48];
    size_t start = p->off;
    bool aot = at(p, p->off + 1, '[');
    struct toml_pos hpos = pos_at(p, start);

    tab_shrink(p->cur); /* the previous section is done (sub-tables may still add keys) */

    p->off += aot ? 2 : 1;
    skip_ws(p);
    int rc = parse_key(p);
    if (rc < 0)
        return rc;
    skip_ws(p);
    if (!at(p, p->off, ']') || (aot && !at(p, p->off + 1, ']')))
        return fail(p, p->off, "expected '%s' to close the table header, found %s",
                    aot ? "]]" : "]", describe(p, p->off, d, sizeof(d)));
    p->off += aot ? 2 : 1;

    struct toml_table *t = p->root;
    int depth = 0;
    char pre[sizeof(p->prefix)];
    size_t pu = 0;
    pre[0] = '\0';
    for (size_t i = 0; i + 1 < p->nparts; i++) {
        struct key_part *kp = &p->parts[i];
        parts_render(p, i, i, pre, sizeof(pre), &pu);
        const char *k = p->kbuf + kp->boff;
        struct toml_keyval *kv = tab_find(t, k, kp->len);
        depth++;
        if (kv == NULL) {
            kv = tab_add(p, t, k, kp->len, pos_at(p, kp->src));
            kv->val.type = TOML_TABLE;
            kv->val.pos = kv->keypos;
            kv->val.u.tab = tab_new(p, TK_IMPLICIT);
            t = kv->val.u.tab;
            continue;
        }
        if (kv->val.type == TOML_TABLE) {
            if (kv->val.u.tab->kind == TK_INLINE)
                return fail(p, kp->src, "cannot extend inline table '%s' (defined at %u:%u)",
                            header_render(p, i, path, sizeof(path)), kv->keypos.line,
                            kv->keypos.col);
            t = kv->val.u.tab;
            continue;
        }
        if (kv->val.type == TOML_ARRAY && kv->val.u.arr->aot) {
            struct toml_array *a = kv->val.u.arr;
            t = a->items[a->n - 1].u.tab;
            depth++;
            index_render(pre, sizeof(pre), &pu, a->n - 1);
            continue;
        }
        if (kv->val.type == TOML_ARRAY)
            return fail(p, kp->src, "cannot extend static array '%s' (defined at %u:%u)",
                        header_render(p, i, path, sizeof(path)), kv->keypos.line, kv->keypos.col);
        return fail(p, kp->src, "key '%s' is already %s (defined at %u:%u), not a table",
                    header_render(p, i, path, sizeof(path)), kv_kind(kv), kv->keypos.line,
                    kv->keypos.col);
    }
    if (depth + 1 > TOML_MAX_DEPTH)
        return fail(p, start, "nesting too deep (at most %d levels)", TOML_MAX_DEPTH);
    size_t li = p->nparts - 1;
    struct key_part *last = &p->parts[li];
    const char *k = p->kbuf + last->boff;
    struct toml_keyval *kv = tab_find(t, k, last->len);
    depth++;
    if (aot) {
        struct toml_array *a;
        if (kv == NULL) {
            kv = tab_add(p, t, k, last->len, pos_at(p, last->src));
            kv->val.type = TOML_ARRAY;
            kv->val.pos = hpos;
            a = array_new(p);
            a->aot = true;
            kv->val.u.arr = a;
        } else if (kv->val.type == TOML_ARRAY && kv->val.u.arr->aot) {
            a = kv->val.u.arr;
        } else if (kv->val.type == TOML_ARRAY) {
            return fail(p, last->src,
                        "cannot append to static array '%s' with [[...]] (defined at %u:%u)",
                        header_render(p, li, path, sizeof(path)), kv->keypos.line, kv->keypos.col);
        } else {
            return fail(p, last->src,
                        "'%s' is already %s (defined at %u:%u), not an array of tables",
                        header_render(p, li, path, sizeof(path)), kv_kind(kv), kv->keypos.line,
                        kv->keypos.col);
        }
        a->items = grow(a->items, &a->cap, a->n + 1, sizeof(*a->items), 2);
        struct toml_value *e = &a->items[a->n++];
        memset(e, 0, sizeof(*e));
        e->type = TOML_TABLE;
        e->pos = hpos;
        e->u.tab = tab_new(p, TK_HEADER);
        p->cur = e->u.tab;
        p->cur_depth = depth + 1;
        parts_render(p, li, li, pre, sizeof(pre), &pu);
        index_render(pre, sizeof(pre), &pu, a->n - 1);
        memcpy(p->prefix, pre, pu + 1);
        p->plen = pu;
        return 0;
    }
    if (kv == NULL) {
        kv = tab_add(p, t, k, last->len, pos_at(p, last->src));
        kv->val.type = TOML_TABLE;
        kv->val.pos = hpos;
        kv->val.u.tab = tab_new(p, TK_HEADER);
    } else if (kv->val.type == TOML_TABLE && kv->val.u.tab->kind == TK_IMPLICIT) {
        kv->val.u.tab->kind = TK_HEADER;
        kv->keypos = pos_at(p, last->src);
        kv->val.pos = hpos;
    } else if (kv->val.type == TOML_TABLE && kv->val.u.tab->kind == TK_HEADER) {
        return fail(p, last->src, "table '%s' defined twice (first defined at %u:%u)",
                    header_render(p, li, path, sizeof(path)), kv->keypos.line, kv->keypos.col);
    } else if (kv->val.type == TOML_TABLE && kv->val.u.tab->kind == TK_DOTTED) {
        return fail(p, last->src, "table '%s' already defined by dotted keys (at %u:%u)",
                    header_render(p, li, path, sizeof(path)), kv->keypos.line, kv->keypos.col);
    } else if (kv->val.type == TOML_TABLE) {
        return fail(p, last->src, "cannot redefine inline table '%s' (defined at %u:%u)",
                    header_render(p, li, path, sizeof(path)), kv->keypos.line, kv->keypos.col);
    } else {
        return fail(p, last->src, "key '%s' is already %s (defined at %u:%u), not a table",
                    header_render(p, li, path, sizeof(path)), kv_kind(kv), kv->keypos.line,
                    kv->keypos.col);
    }
    p->cur = kv->val.u.tab;
    p->cur_depth = depth;
    parts_render(p, li, li, pre, sizeof(pre), &pu);
    memcpy(p->prefix, pre, pu + 1);
    p->plen = pu;
    return 0;
}

static int parse_document(struct parser *p)
{
    for (;;) {
        skip_ws(p);
        if (p->off >= p->len)
            return 0;
        uint8_t c = p->s[p->off];
        int rc;
        if (c == '#') {
            rc = skip_comment(p);
            if (rc < 0)
                return rc;
            rc = expect_eol(p, "comment");
        } else if (c == '\n' || c == '\r') {
            rc = eat_newline(p);
        } else if (c == '[') {
            rc = parse_header(p);
            if (rc < 0)
                return rc;
            rc = expect_eol(p, "table header");
        } else {
            rc = parse_keyval(p, p->cur, p->cur_depth);
            if (rc < 0)
                return rc;
            rc = expect_eol(p, "value");
        }
        if (rc < 0)
            return rc;
    }
}

int toml_parse(const uint8_t *data, size_t len, struct toml_table **out, struct toml_error *err)
{
    struct parser p;
    struct toml_error scratch;

    memset(&p, 0, sizeof(p));
    p.s = data;
    p.len = data == NULL ? 0 : len;
    p.err = err != NULL ? err : &scratch;
    if (p.len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        p.bom = 3;
    p.off = p.bom;
    p.root = xcalloc(1, sizeof(*p.root));
    p.root->kind = TK_ROOT;
    p.cur = p.root;
    int rc = check_utf8(&p);
    if (rc == 0)
        rc = parse_document(&p);
    free(p.sbuf);
    free(p.kbuf);
    free(p.parts);
    if (rc < 0) {
        toml_table_free(p.root);
        return rc;
    }
    *out = p.root;
    return 0;
}
