/* TOML 1.0 parser: bytes in, a tree of tables out, every key and value
 * carrying its 1-based line and column (in characters) for error messages.
 * Pure functions; no I/O. Held to the toml-test suite.
 *
 * Ownership: the whole tree belongs to the root table that toml_parse
 * returns and goes away with toml_table_free(root). Every pointer inside it
 * ("tree-owned" below) is valid until then; copy what must outlive it and
 * never free or steal such a pointer. */
#ifndef CERTLOOP_CONFIG_TOML_H
#define CERTLOOP_CONFIG_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum toml_type {
    TOML_STRING,
    TOML_INTEGER,
    TOML_FLOAT,
    TOML_BOOL,
    TOML_DATETIME,       /* offset date-time */
    TOML_DATETIME_LOCAL, /* local date-time */
    TOML_DATE_LOCAL,
    TOML_TIME_LOCAL,
    TOML_ARRAY,
    TOML_TABLE,
};

struct toml_pos {
    uint32_t line; /* 1-based */
    uint32_t col;  /* 1-based, counted in Unicode code points */
};

struct toml_datetime {
    int year, month, day;     /* present for dates and date-times */
    int hour, minute, second; /* present for times and date-times */
    int nanosecond;           /* fractional seconds (truncated past 9 digits) */
    int frac_digits;          /* digits written for the fraction, 0 if none */
    int offset_minutes;       /* TOML_DATETIME only: offset east of UTC */
    bool offset_z;            /* TOML_DATETIME only: written as Z */
};

struct toml_table;
struct toml_array;
struct toml_arena;

struct toml_value {
    enum toml_type type;
    struct toml_pos pos; /* where the value starts; for a table made by a [header]
                          * the header's '[', for one made implicitly the key */
    union {
        struct {
            char *ptr; /* tree-owned, NUL-terminated, valid UTF-8 (may contain NUL) */
            size_t len;
        } s;
        int64_t i;
        double f;
        bool b;
        struct toml_datetime dt;
        struct toml_array *arr; /* tree-owned */
        struct toml_table *tab; /* tree-owned */
    } u;
};

struct toml_keyval {
    char *key; /* tree-owned, NUL-terminated (may contain NUL: see keylen) */
    size_t keylen;
    struct toml_pos keypos; /* where this key was written (the header for [tables]) */
    struct toml_value val;
};

struct toml_table {
    struct toml_keyval *items; /* tree-owned, in document order */
    size_t n;
    /* remaining fields are private to the parser */
    size_t cap;
    uint32_t *index; /* hash index for large tables, or NULL */
    size_t index_cap;
    uint8_t kind;             /* how the table came to be (implicit, header, dotted, inline) */
    struct toml_arena *arena; /* root only: storage of keys, strings, tables */
};

struct toml_array {
    struct toml_value *items; /* tree-owned */
    size_t n;
    size_t cap;
    bool aot; /* an array of tables made by [[headers]] */
};

struct toml_error {
    struct toml_pos pos;
    char msg[256];
};

/* Parses a whole TOML 1.0 document (data is borrowed for the call; a UTF-8
 * byte order mark is skipped). On success returns 0 and sets *out to an
 * owned root table (free with toml_table_free). On failure returns ERR_PARSE,
 * fills *err (position and one-line message naming the full key path, e.g.
 * "duplicate key 'a.b' (first defined at 3:1)") and sets nothing else.
 * Nesting deeper than 128 levels (key parts, arrays, inline tables) is an
 * error, so walking the tree recursively is safe. */
int toml_parse(const uint8_t *data, size_t len, struct toml_table **out, struct toml_error *err);
/* Frees a whole document given its root (NULL is fine). Does nothing for a
 * table that is not a root returned by toml_parse. */
void toml_table_free(struct toml_table *t);

/* Looks a key up in one table (no dotted paths). Borrowed result or NULL. */
const struct toml_keyval *toml_table_get(const struct toml_table *t, const char *key);
/* Same, for a key of len bytes that may contain NUL. */
const struct toml_keyval *toml_table_getn(const struct toml_table *t, const char *key, size_t len);
/* FNV-1a of n bytes: the hash the tables index their keys by (the schema
 * uses it for its own sets of names). */
uint64_t toml_key_hash(const char *k, size_t n);
/* Human name of a type for messages: "string", "integer", "table"… */
const char *toml_type_name(enum toml_type t);

#endif
