/* The TOML parser's storage: the arena that owns keys and strings, tables
 * with their hash index, arrays, and the public lookup and free functions.
 * It knows nothing of syntax. */
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

char *toml_arena_strdup(struct parser *p, const char *s, size_t n)
{
    char *d = arena_alloc(p, n + 1, 1);
    if (n > 0)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Grows an array to hold need elements, by half again each time (most
 * tables and arrays are small and stay so). */
void *toml_grow(void *ptr, size_t *cap, size_t need, size_t size, size_t min)
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
void toml_tab_shrink(struct toml_table *t)
{
    if (t->cap > t->n && t->n > 0) {
        t->items = xrealloc(t->items, t->n * sizeof(*t->items));
        t->cap = t->n;
    }
}

void toml_array_shrink(struct toml_array *a)
{
    if (a->cap > a->n && a->n > 0) {
        a->items = xrealloc(a->items, a->n * sizeof(*a->items));
        a->cap = a->n;
    }
}

/* ---------- tables ---------- */

uint64_t toml_key_hash(const char *k, size_t n)
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
    size_t h = (size_t)toml_key_hash(t->items[item].key, t->items[item].keylen) & mask;

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

struct toml_keyval *toml_tab_find(const struct toml_table *t, const char *k, size_t n)
{
    if (t->index != NULL) {
        size_t mask = t->index_cap - 1;
        size_t h = (size_t)toml_key_hash(k, n) & mask;
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
struct toml_keyval *toml_tab_add_key(struct toml_table *t, char *key, size_t n, struct toml_pos pos)
{
    if (t->n >= UINT32_MAX - 1)
        abort(); /* unreachable: documents are far smaller */
    t->items = toml_grow(t->items, &t->cap, t->n + 1, sizeof(*t->items), 4);
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

struct toml_keyval *toml_tab_add(struct parser *p, struct toml_table *t, const char *k, size_t n,
                                 struct toml_pos pos)
{
    return toml_tab_add_key(t, toml_arena_strdup(p, k, n), n, pos);
}

struct toml_table *toml_tab_new(struct parser *p, uint8_t kind)
{
    struct toml_table *t = arena_alloc(p, sizeof(*t), _Alignof(struct toml_table));
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    return t;
}

struct toml_array *toml_array_new(struct parser *p)
{
    struct toml_array *a = arena_alloc(p, sizeof(*a), _Alignof(struct toml_array));
    memset(a, 0, sizeof(*a));
    return a;
}

static void tab_fini(struct toml_table *t);

/* Frees what a value holds outside the arena (item arrays, indexes). */
void toml_value_fini(struct toml_value *v)
{
    if (v->type == TOML_ARRAY) {
        struct toml_array *a = v->u.arr;
        for (size_t i = 0; i < a->n; i++)
            toml_value_fini(&a->items[i]);
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
        toml_value_fini(&t->items[i].val);
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
    return toml_tab_find(t, key, len);
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
