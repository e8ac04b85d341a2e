/* TOML 1.0.0 parser: turns a byte buffer into a tree of tables whose keys and
 * values remember their line and column. It owns syntax and the redefinition
 * rules of the specification; what the keys mean is config.c's business.
 * This file holds values, key/value lines, headers and the document; the
 * lexical layer is toml_lex.c, numbers and dates toml_scalar.c, storage
 * toml_tree.c. */
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

/* ---------- values ---------- */

static int parse_value(struct parser *p, struct toml_value *v, int depth);
static int parse_keyval(struct parser *p, struct toml_table *t, int depth);

static int parse_array(struct parser *p, struct toml_value *v, int depth)
{
    size_t start = p->off;
    char d[48];

    if (depth + 1 > TOML_MAX_DEPTH)
        return toml_fail(p, start, "nesting too deep (at most %d levels)", TOML_MAX_DEPTH);
    struct toml_array *a = toml_array_new(p);
    v->type = TOML_ARRAY;
    v->u.arr = a;
    p->off++;
    for (;;) {
        int rc = toml_skip_ws_nl(p);
        if (rc < 0)
            return rc;
        if (at(p, p->off, ']')) {
            p->off++;
            toml_array_shrink(a);
            return 0;
        }
        if (p->off >= p->len)
            return toml_fail(p, start, "unterminated array");
        a->items = toml_grow(a->items, &a->cap, a->n + 1, sizeof(*a->items), 2);
        struct toml_value *item = &a->items[a->n];
        memset(item, 0, sizeof(*item));
        item->type = TOML_BOOL;
        a->n++;
        size_t saved_plen = p->plen;
        if (at(p, p->off, '{') || at(p, p->off, '['))
            toml_index_render(p->prefix, sizeof(p->prefix), &p->plen, a->n - 1);
        rc = parse_value(p, item, depth + 1);
        p->plen = saved_plen;
        p->prefix[saved_plen] = '\0';
        if (rc < 0)
            return rc;
        rc = toml_skip_ws_nl(p);
        if (rc < 0)
            return rc;
        if (at(p, p->off, ',')) {
            p->off++;
            continue;
        }
        if (at(p, p->off, ']')) {
            p->off++;
            toml_array_shrink(a);
            return 0;
        }
        if (p->off >= p->len)
            return toml_fail(p, start, "unterminated array");
        return toml_fail(p, p->off, "expected ',' or ']' in array, found %s",
                         toml_describe(p, p->off, d, sizeof(d)));
    }
}

static int parse_inline(struct parser *p, struct toml_value *v, int depth)
{
    size_t start = p->off;
    char d[48];

    if (depth + 1 > TOML_MAX_DEPTH)
        return toml_fail(p, start, "nesting too deep (at most %d levels)", TOML_MAX_DEPTH);
    struct toml_table *t = toml_tab_new(p, TK_DOTTED);
    v->type = TOML_TABLE;
    v->u.tab = t;
    p->off++;
    toml_skip_ws(p);
    if (at(p, p->off, '}')) {
        p->off++;
        t->kind = TK_INLINE;
        toml_tab_shrink(t);
        return 0;
    }
    for (;;) {
        toml_skip_ws(p);
        if (p->off >= p->len)
            return toml_fail(p, start, "unterminated inline table");
        if (p->s[p->off] == '\n' || p->s[p->off] == '\r')
            return toml_fail(p, p->off, "newline not allowed in an inline table");
        if (p->s[p->off] == '}')
            return toml_fail(p, p->off, "trailing comma not allowed in an inline table");
        int rc = parse_keyval(p, t, depth + 1);
        if (rc < 0)
            return rc;
        toml_skip_ws(p);
        if (at(p, p->off, ',')) {
            p->off++;
            continue;
        }
        if (at(p, p->off, '}')) {
            p->off++;
            t->kind = TK_INLINE;
            toml_tab_shrink(t);
            return 0;
        }
        if (p->off >= p->len)
            return toml_fail(p, start, "unterminated inline table");
        if (p->s[p->off] == '\n' || p->s[p->off] == '\r')
            return toml_fail(p, p->off, "newline not allowed in an inline table");
        return toml_fail(p, p->off, "expected ',' or '}' in inline table, found %s",
                         toml_describe(p, p->off, d, sizeof(d)));
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

    v->pos = toml_pos_at(p, p->off);
    if (p->off >= p->len)
        return toml_fail(p, p->off, "expected a value, found end of file");
    uint8_t c = p->s[p->off];
    switch (c) {
    case '"':
    case '\'':
        rc = toml_parse_string(p, true);
        if (rc < 0)
            return rc;
        v->type = TOML_STRING;
        v->u.s.ptr = toml_arena_strdup(p, p->sbuf, p->slen);
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
        return toml_parse_number(p, v);
    default:
        if (is_digit(c)) {
            if (at(p, p->off + 2, ':') ||
                (toml_fixed_digits(p, p->off, 4) >= 0 && at(p, p->off + 4, '-')))
                return toml_parse_datetime(p, v);
            return toml_parse_number(p, v);
        }
        break;
    }
    return toml_fail(p, p->off, "expected a value, found %s",
                     toml_describe(p, p->off, d, sizeof(d)));
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
    int rc = toml_parse_key(p);

    if (rc < 0)
        return rc;
    if ((size_t)depth + p->nparts > TOML_MAX_DEPTH)
        return toml_fail(p, p->parts[0].src, "nesting too deep (at most %d levels)",
                         TOML_MAX_DEPTH);
    toml_skip_ws(p);
    if (!at(p, p->off, '='))
        return toml_fail(p, p->off, "expected '=' after key '%s', found %s",
                         toml_path_render(p, p->nparts - 1, path, sizeof(path)),
                         toml_describe(p, p->off, d, sizeof(d)));
    p->off++;
    toml_skip_ws(p);
    for (size_t i = 0; i + 1 < p->nparts; i++) {
        struct key_part *kp = &p->parts[i];
        const char *k = p->kbuf + kp->boff;
        struct toml_keyval *kv = toml_tab_find(t, k, kp->len);
        if (kv == NULL) {
            kv = toml_tab_add(p, t, k, kp->len, toml_pos_at(p, kp->src));
            kv->val.type = TOML_TABLE;
            kv->val.pos = kv->keypos;
            kv->val.u.tab = toml_tab_new(p, TK_DOTTED);
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
            return toml_fail(p, kp->src, "cannot add keys to inline table '%s' (defined at %u:%u)",
                             toml_path_render(p, i, path, sizeof(path)), kv->keypos.line,
                             kv->keypos.col);
        if (kv->val.type == TOML_TABLE)
            return toml_fail(p, kp->src,
                             "cannot add keys to table '%s' with a dotted key: it %s a [table] "
                             "header (at %u:%u)",
                             toml_path_render(p, i, path, sizeof(path)),
                             kv->val.u.tab->kind == TK_IMPLICIT ? "was created by"
                                                                : "is defined by",
                             kv->keypos.line, kv->keypos.col);
        return toml_fail(p, kp->src, "key '%s' is already %s (defined at %u:%u), not a table",
                         toml_path_render(p, i, path, sizeof(path)), kv_kind(kv), kv->keypos.line,
                         kv->keypos.col);
    }
    struct key_part *last = &p->parts[p->nparts - 1];
    const char *k = p->kbuf + last->boff;
    struct toml_keyval *dup = toml_tab_find(t, k, last->len);
    if (dup != NULL)
        return toml_fail(p, last->src, "duplicate key '%s' (first defined at %u:%u)",
                         toml_path_render(p, p->nparts - 1, path, sizeof(path)), dup->keypos.line,
                         dup->keypos.col);
    /* the key is copied before the value is parsed: nested inline tables reuse
     * the key scratch buffer */
    struct toml_pos kpos = toml_pos_at(p, last->src);
    size_t keylen = last->len;
    char *key = toml_arena_strdup(p, k, keylen);
    struct toml_value v;
    memset(&v, 0, sizeof(v));
    v.type = TOML_BOOL;
    size_t saved_plen = p->plen;
    if (at(p, p->off, '{') || at(p, p->off, '['))
        toml_parts_render(p, 0, p->nparts - 1, p->prefix, sizeof(p->prefix), &p->plen);
    rc = parse_value(p, &v, depth + (int)p->nparts);
    p->plen = saved_plen;
    p->prefix[saved_plen] = '\0';
    if (rc < 0) {
        toml_value_fini(&v);
        return rc;
    }
    struct toml_keyval *kv = toml_tab_add_key(t, key, keylen, kpos);
    kv->val = v;
    return 0;
}

/* [a.b.c] or [[a.b.c]] at '['. */
static int parse_header(struct parser *p)
{
    char path[160], d[48];
    size_t start = p->off;
    bool aot = at(p, p->off + 1, '[');
    struct toml_pos hpos = toml_pos_at(p, start);

    toml_tab_shrink(p->cur); /* the previous section is done (sub-tables may still add keys) */

    p->off += aot ? 2 : 1;
    toml_skip_ws(p);
    int rc = toml_parse_key(p);
    if (rc < 0)
        return rc;
    toml_skip_ws(p);
    if (!at(p, p->off, ']') || (aot && !at(p, p->off + 1, ']')))
        return toml_fail(p, p->off, "expected '%s' to close the table header, found %s",
                         aot ? "]]" : "]", toml_describe(p, p->off, d, sizeof(d)));
    p->off += aot ? 2 : 1;

    struct toml_table *t = p->root;
    int depth = 0;
    char pre[sizeof(p->prefix)];
    size_t pu = 0;
    pre[0] = '\0';
    for (size_t i = 0; i + 1 < p->nparts; i++) {
        struct key_part *kp = &p->parts[i];
        toml_parts_render(p, i, i, pre, sizeof(pre), &pu);
        const char *k = p->kbuf + kp->boff;
        struct toml_keyval *kv = toml_tab_find(t, k, kp->len);
        depth++;
        if (kv == NULL) {
            kv = toml_tab_add(p, t, k, kp->len, toml_pos_at(p, kp->src));
            kv->val.type = TOML_TABLE;
            kv->val.pos = kv->keypos;
            kv->val.u.tab = toml_tab_new(p, TK_IMPLICIT);
            t = kv->val.u.tab;
            continue;
        }
        if (kv->val.type == TOML_TABLE) {
            if (kv->val.u.tab->kind == TK_INLINE)
                return toml_fail(p, kp->src, "cannot extend inline table '%s' (defined at %u:%u)",
                                 toml_header_render(p, i, path, sizeof(path)), kv->keypos.line,
                                 kv->keypos.col);
            t = kv->val.u.tab;
            continue;
        }
        if (kv->val.type == TOML_ARRAY && kv->val.u.arr->aot) {
            struct toml_array *a = kv->val.u.arr;
            t = a->items[a->n - 1].u.tab;
            depth++;
            toml_index_render(pre, sizeof(pre), &pu, a->n - 1);
            continue;
        }
        if (kv->val.type == TOML_ARRAY)
            return toml_fail(p, kp->src, "cannot extend static array '%s' (defined at %u:%u)",
                             toml_header_render(p, i, path, sizeof(path)), kv->keypos.line,
                             kv->keypos.col);
        return toml_fail(p, kp->src, "key '%s' is already %s (defined at %u:%u), not a table",
                         toml_header_render(p, i, path, sizeof(path)), kv_kind(kv), kv->keypos.line,
                         kv->keypos.col);
    }
    if (depth + 1 > TOML_MAX_DEPTH)
        return toml_fail(p, start, "nesting too deep (at most %d levels)", TOML_MAX_DEPTH);
    size_t li = p->nparts - 1;
    struct key_part *last = &p->parts[li];
    const char *k = p->kbuf + last->boff;
    struct toml_keyval *kv = toml_tab_find(t, k, last->len);
    depth++;
    if (aot) {
        struct toml_array *a;
        if (kv == NULL) {
            kv = toml_tab_add(p, t, k, last->len, toml_pos_at(p, last->src));
            kv->val.type = TOML_ARRAY;
            kv->val.pos = hpos;
            a = toml_array_new(p);
            a->aot = true;
            kv->val.u.arr = a;
        } else if (kv->val.type == TOML_ARRAY && kv->val.u.arr->aot) {
            a = kv->val.u.arr;
        } else if (kv->val.type == TOML_ARRAY) {
            return toml_fail(
                p, last->src, "cannot append to static array '%s' with [[...]] (defined at %u:%u)",
                toml_header_render(p, li, path, sizeof(path)), kv->keypos.line, kv->keypos.col);
        } else {
            return toml_fail(p, last->src,
                             "'%s' is already %s (defined at %u:%u), not an array of tables",
                             toml_header_render(p, li, path, sizeof(path)), kv_kind(kv),
                             kv->keypos.line, kv->keypos.col);
        }
        a->items = toml_grow(a->items, &a->cap, a->n + 1, sizeof(*a->items), 2);
        struct toml_value *e = &a->items[a->n++];
        memset(e, 0, sizeof(*e));
        e->type = TOML_TABLE;
        e->pos = hpos;
        e->u.tab = toml_tab_new(p, TK_HEADER);
        p->cur = e->u.tab;
        p->cur_depth = depth + 1;
        toml_parts_render(p, li, li, pre, sizeof(pre), &pu);
        toml_index_render(pre, sizeof(pre), &pu, a->n - 1);
        memcpy(p->prefix, pre, pu + 1);
        p->plen = pu;
        return 0;
    }
    if (kv == NULL) {
        kv = toml_tab_add(p, t, k, last->len, toml_pos_at(p, last->src));
        kv->val.type = TOML_TABLE;
        kv->val.pos = hpos;
        kv->val.u.tab = toml_tab_new(p, TK_HEADER);
    } else if (kv->val.type == TOML_TABLE && kv->val.u.tab->kind == TK_IMPLICIT) {
        kv->val.u.tab->kind = TK_HEADER;
        kv->keypos = toml_pos_at(p, last->src);
        kv->val.pos = hpos;
    } else if (kv->val.type == TOML_TABLE && kv->val.u.tab->kind == TK_HEADER) {
        return toml_fail(p, last->src, "table '%s' defined twice (first defined at %u:%u)",
                         toml_header_render(p, li, path, sizeof(path)), kv->keypos.line,
                         kv->keypos.col);
    } else if (kv->val.type == TOML_TABLE && kv->val.u.tab->kind == TK_DOTTED) {
        return toml_fail(p, last->src, "table '%s' already defined by dotted keys (at %u:%u)",
                         toml_header_render(p, li, path, sizeof(path)), kv->keypos.line,
                         kv->keypos.col);
    } else if (kv->val.type == TOML_TABLE) {
        return toml_fail(p, last->src, "cannot redefine inline table '%s' (defined at %u:%u)",
                         toml_header_render(p, li, path, sizeof(path)), kv->keypos.line,
                         kv->keypos.col);
    } else {
        return toml_fail(p, last->src, "key '%s' is already %s (defined at %u:%u), not a table",
                         toml_header_render(p, li, path, sizeof(path)), kv_kind(kv),
                         kv->keypos.line, kv->keypos.col);
    }
    p->cur = kv->val.u.tab;
    p->cur_depth = depth;
    toml_parts_render(p, li, li, pre, sizeof(pre), &pu);
    memcpy(p->prefix, pre, pu + 1);
    p->plen = pu;
    return 0;
}

static int parse_document(struct parser *p)
{
    for (;;) {
        toml_skip_ws(p);
        if (p->off >= p->len)
            return 0;
        uint8_t c = p->s[p->off];
        int rc;
        if (c == '#') {
            rc = toml_skip_comment(p);
            if (rc < 0)
                return rc;
            rc = toml_expect_eol(p, "comment");
        } else if (c == '\n' || c == '\r') {
            rc = toml_eat_newline(p);
        } else if (c == '[') {
            rc = parse_header(p);
            if (rc < 0)
                return rc;
            rc = toml_expect_eol(p, "table header");
        } else {
            rc = parse_keyval(p, p->cur, p->cur_depth);
            if (rc < 0)
                return rc;
            rc = toml_expect_eol(p, "value");
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
    int rc = toml_check_utf8(&p);
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
