/* Private to the TOML parser (toml.c, toml_lex.c, toml_scalar.c, toml_tree.c)
 * and its unit tests: the parser state and the helpers its files share. */
#ifndef CERTLOOP_CONFIG_TOML_INTERNAL_H
#define CERTLOOP_CONFIG_TOML_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/toml.h"

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

/* ---------- lexical predicates (toml_lex.c has the rest) ---------- */

static inline bool at(const struct parser *p, size_t off, char c)
{
    return off < p->len && p->s[off] == (uint8_t)c;
}

static inline bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static inline bool is_bare(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-';
}

/* toml_lex.c: positions, errors, UTF-8, scratch buffers, whitespace, strings, keys */
int toml_check_utf8(struct parser *p);
const char *toml_describe(struct parser *p, size_t off, char *buf, size_t cap);
__attribute__((format(printf, 3, 4))) int toml_fail(struct parser *p, size_t off, const char *fmt,
                                                    ...);
const char *toml_header_render(struct parser *p, size_t upto, char *out, size_t cap);
void toml_index_render(char *out, size_t cap, size_t *used, size_t i);
void toml_parts_render(struct parser *p, size_t from, size_t upto, char *out, size_t cap,
                       size_t *used);
const char *toml_path_render(struct parser *p, size_t upto, char *out, size_t cap);
struct toml_pos toml_pos_at(struct parser *p, size_t off);
void toml_sbuf_putc(struct parser *p, char c);
int toml_eat_newline(struct parser *p);
int toml_expect_eol(struct parser *p, const char *after);
int toml_hexval(uint8_t c);
int toml_parse_key(struct parser *p);
int toml_parse_string(struct parser *p, bool allow_multi);
int toml_skip_comment(struct parser *p);
void toml_skip_ws(struct parser *p);
int toml_skip_ws_nl(struct parser *p);

/* toml_scalar.c: numbers, dates and times */
int toml_fixed_digits(const struct parser *p, size_t off, int n);
int toml_parse_datetime(struct parser *p, struct toml_value *v);
int toml_parse_number(struct parser *p, struct toml_value *v);

/* toml_tree.c: the arena, tables and arrays */
char *toml_arena_strdup(struct parser *p, const char *s, size_t n);
struct toml_array *toml_array_new(struct parser *p);
void toml_array_shrink(struct toml_array *a);
void *toml_grow(void *ptr, size_t *cap, size_t need, size_t size, size_t min);
struct toml_keyval *toml_tab_add(struct parser *p, struct toml_table *t, const char *k, size_t n,
                                 struct toml_pos pos);
struct toml_keyval *toml_tab_add_key(struct toml_table *t, char *key, size_t n,
                                     struct toml_pos pos);
struct toml_keyval *toml_tab_find(const struct toml_table *t, const char *k, size_t n);
struct toml_table *toml_tab_new(struct parser *p, uint8_t kind);
void toml_tab_shrink(struct toml_table *t);
void toml_value_fini(struct toml_value *v);

#endif
