/* Unit tests for the TOML parser: positions, values, lookups, error
 * messages and the redefinition rules that toml-test checks only as
 * accept/reject. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/toml.h"
#include "util/err.h"

static struct toml_table *parse_ok(const char *doc)
{
    struct toml_table *t = NULL;
    struct toml_error err;

    memset(&err, 0, sizeof(err));
    int rc = toml_parse((const uint8_t *)doc, strlen(doc), &t, &err);
    if (rc != 0)
        fail_msg("unexpected parse error %u:%u: %s", err.pos.line, err.pos.col, err.msg);
    assert_non_null(t);
    return t;
}

/* Parses a document that must fail; returns the error. */
static struct toml_error parse_bad(const char *doc)
{
    struct toml_table *t = (struct toml_table *)&t; /* must stay untouched */
    struct toml_table *sentinel = t;
    struct toml_error err;

    memset(&err, 0, sizeof(err));
    int rc = toml_parse((const uint8_t *)doc, strlen(doc), &t, &err);
    assert_int_equal(rc, ERR_PARSE);
    assert_ptr_equal(t, sentinel);
    assert_true(err.msg[0] != '\0');
    assert_null(strchr(err.msg, '\n'));
    return err;
}

static void assert_error(const char *doc, uint32_t line, uint32_t col, const char *needle)
{
    struct toml_error e = parse_bad(doc);
    if (e.pos.line != line || e.pos.col != col || strstr(e.msg, needle) == NULL)
        fail_msg("got %u:%u: %s; wanted %u:%u containing \"%s\"", e.pos.line, e.pos.col, e.msg,
                 line, col, needle);
}

static const struct toml_keyval *get(const struct toml_table *t, const char *key)
{
    const struct toml_keyval *kv = toml_table_get(t, key);
    if (kv == NULL)
        fail_msg("key '%s' missing", key);
    return kv;
}

static const struct toml_table *get_table(const struct toml_table *t, const char *key)
{
    const struct toml_keyval *kv = get(t, key);
    assert_int_equal(kv->val.type, TOML_TABLE);
    return kv->val.u.tab;
}

static void assert_pos(struct toml_pos p, uint32_t line, uint32_t col)
{
    if (p.line != line || p.col != col)
        fail_msg("position %u:%u, wanted %u:%u", p.line, p.col, line, col);
}

/* ---------- positions ---------- */

static void test_positions_of_keys_and_values(void **state)
{
    (void)state;
    struct toml_table *t = parse_ok("# comment\n"
                                    "name = \"x\"\n"
                                    "  port=  8080 # trailing\n"
                                    "\n"
                                    "[server.tls]\n"
                                    "key = 'k'\n"
                                    "a.b.c = true\n");
    const struct toml_keyval *kv = get(t, "name");
    assert_pos(kv->keypos, 2, 1);
    assert_pos(kv->val.pos, 2, 8);
    kv = get(t, "port");
    assert_pos(kv->keypos, 3, 3);
    assert_pos(kv->val.pos, 3, 10);
    assert_int_equal(kv->val.u.i, 8080);

    const struct toml_table *server = get_table(t, "server");
    kv = get(server, "tls");
    assert_pos(kv->keypos, 5, 9); /* the key in the header */
    assert_pos(kv->val.pos, 5, 1);
    kv = get(kv->val.u.tab, "key");
    assert_pos(kv->keypos, 6, 1);
    assert_pos(kv->val.pos, 6, 7);

    const struct toml_table *tls = get_table(server, "tls");
    const struct toml_table *a = get_table(tls, "a");
    assert_pos(get(tls, "a")->keypos, 7, 1);
    const struct toml_table *b = get_table(a, "b");
    assert_pos(get(a, "b")->keypos, 7, 3);
    kv = get(b, "c");
    assert_pos(kv->keypos, 7, 5);
    assert_pos(kv->val.pos, 7, 9);
    toml_table_free(t);
}

static void test_positions_after_multiline_strings(void **state)
{
    (void)state;
    struct toml_table *t = parse_ok("s = \"\"\"\n"
                                    "one\n"
                                    "two\"\"\"\n"
                                    "x = 1\n"
                                    "lit = '''a\n"
                                    "b'''\n");
    const struct toml_keyval *kv = get(t, "s");
    assert_pos(kv->val.pos, 1, 5);
    assert_string_equal(kv->val.u.s.ptr, "one\ntwo");
    kv = get(t, "x");
    assert_pos(kv->keypos, 4, 1);
    assert_pos(kv->val.pos, 4, 5);
    toml_table_free(t);

    /* the error after the multi-line literal is on its last line */
    assert_error("lit = '''a\nb''' ; y = 2\n", 2, 6, "expected newline after value");
}

static void test_positions_with_crlf(void **state)
{
    (void)state;
    struct toml_table *t = parse_ok("a = 1\r\n"
                                    "b = \"\"\"x\r\n"
                                    "y\"\"\"\r\n"
                                    "\r\n"
                                    "  c = [\r\n"
                                    "    1,\r\n"
                                    "    2 ]\r\n");
    assert_pos(get(t, "a")->keypos, 1, 1);
    const struct toml_keyval *kv = get(t, "b");
    assert_pos(kv->keypos, 2, 1);
    /* CRLF inside a multi-line string reads as LF */
    assert_int_equal(kv->val.u.s.len, 3);
    assert_memory_equal(kv->val.u.s.ptr, "x\ny", 3);
    kv = get(t, "c");
    assert_pos(kv->keypos, 5, 3);
    assert_int_equal(kv->val.type, TOML_ARRAY);
    assert_pos(kv->val.u.arr->items[0].pos, 6, 5);
    assert_pos(kv->val.u.arr->items[1].pos, 7, 5);
    toml_table_free(t);

    assert_error("a = 1\r\nb = 2\rc = 3\r\n", 2, 6, "carriage return");
}

static void test_columns_count_code_points(void **state)
{
    (void)state;
    /* "é" is 2 bytes and "😀" 4 bytes, one column each */
    assert_error("\"é😀\" = \"ü\" ; x = 1\n", 1, 12, "expected newline after value, found ';'");
    struct toml_table *t = parse_ok("k = \"😀😀\"\nz = 3\n");
    assert_pos(get(t, "z")->val.pos, 2, 5);
    toml_table_free(t);
    /* a byte order mark is not a column */
    t = parse_ok("\xEF\xBB\xBFk = 1\n");
    assert_pos(get(t, "k")->keypos, 1, 1);
    assert_pos(get(t, "k")->val.pos, 1, 5);
    toml_table_free(t);
}

/* ---------- values ---------- */

static void test_value_types(void **state)
{
    (void)state;
    struct toml_table *t = parse_ok("i = -9_223_372_036_854_775_808\n"
                                    "imax = 9223372036854775807\n"
                                    "hex = 0xDEAD_beef\n"
                                    "oct = 0o755\n"
                                    "bin = 0b1010\n"
                                    "f = 6.02e+23\n"
                                    "fneg = -0.0\n"
                                    "finf = -inf\n"
                                    "fnan = nan\n"
                                    "yes = true\n"
                                    "odt = 1979-05-27T00:32:00.999999-07:30\n"
                                    "odtz = 1979-05-27 07:32:00z\n"
                                    "ldt = 1979-05-27T07:32:00.1234567891\n"
                                    "ld = 2024-02-29\n"
                                    "lt = 23:59:60\n"
                                    "s = \"tab\\there \\u00E9 \\U0001F600\"\n");
    assert_int_equal(get(t, "i")->val.u.i, INT64_MIN);
    assert_int_equal(get(t, "imax")->val.u.i, INT64_MAX);
    assert_int_equal(get(t, "hex")->val.u.i, 0xDEADBEEF);
    assert_int_equal(get(t, "oct")->val.u.i, 0755);
    assert_int_equal(get(t, "bin")->val.u.i, 10);
    assert_int_equal(get(t, "f")->val.type, TOML_FLOAT);
    assert_true(get(t, "f")->val.u.f == 6.02e23);
    assert_true(signbit(get(t, "fneg")->val.u.f));
    assert_true(isinf(get(t, "finf")->val.u.f) && get(t, "finf")->val.u.f < 0);
    assert_true(isnan(get(t, "fnan")->val.u.f));
    assert_int_equal(get(t, "yes")->val.type, TOML_BOOL);
    assert_true(get(t, "yes")->val.u.b);

    const struct toml_value *v = &get(t, "odt")->val;
    assert_int_equal(v->type, TOML_DATETIME);
    assert_int_equal(v->u.dt.year, 1979);
    assert_int_equal(v->u.dt.month, 5);
    assert_int_equal(v->u.dt.day, 27);
    assert_int_equal(v->u.dt.hour, 0);
    assert_int_equal(v->u.dt.minute, 32);
    assert_int_equal(v->u.dt.nanosecond, 999999000);
    assert_int_equal(v->u.dt.frac_digits, 6);
    assert_int_equal(v->u.dt.offset_minutes, -(7 * 60 + 30));
    assert_false(v->u.dt.offset_z);
    v = &get(t, "odtz")->val;
    assert_int_equal(v->type, TOML_DATETIME);
    assert_true(v->u.dt.offset_z);
    assert_int_equal(v->u.dt.hour, 7);
    v = &get(t, "ldt")->val;
    assert_int_equal(v->type, TOML_DATETIME_LOCAL);
    assert_int_equal(v->u.dt.nanosecond, 123456789); /* truncated past 9 digits */
    assert_int_equal(v->u.dt.frac_digits, 10);
    v = &get(t, "ld")->val;
    assert_int_equal(v->type, TOML_DATE_LOCAL);
    assert_int_equal(v->u.dt.day, 29);
    v = &get(t, "lt")->val;
    assert_int_equal(v->type, TOML_TIME_LOCAL);
    assert_int_equal(v->u.dt.second, 60);
    v = &get(t, "s")->val;
    assert_string_equal(v->u.s.ptr, "tab\there \xC3\xA9 \xF0\x9F\x98\x80");
    toml_table_free(t);
}

static void test_mixed_arrays_and_inline_tables(void **state)
{
    (void)state;
    struct toml_table *t = parse_ok("a = [1, 'two', [3.0], {x = 4}, ]\n"
                                    "it = { name = \"n\", sub.deep = 5 }\n"
                                    "[[aot]]\n"
                                    "k = 1\n"
                                    "[[aot]]\n"
                                    "[aot.sub]\n"
                                    "k = 2\n");
    const struct toml_array *a = get(t, "a")->val.u.arr;
    assert_int_equal(a->n, 4);
    assert_false(a->aot);
    assert_int_equal(a->items[0].type, TOML_INTEGER);
    assert_int_equal(a->items[1].type, TOML_STRING);
    assert_int_equal(a->items[2].type, TOML_ARRAY);
    assert_int_equal(a->items[3].type, TOML_TABLE);
    assert_int_equal(get(a->items[3].u.tab, "x")->val.u.i, 4);

    const struct toml_table *it = get_table(t, "it");
    assert_int_equal(get(get_table(it, "sub"), "deep")->val.u.i, 5);

    const struct toml_array *aot = get(t, "aot")->val.u.arr;
    assert_true(aot->aot);
    assert_int_equal(aot->n, 2);
    assert_int_equal(get(aot->items[0].u.tab, "k")->val.u.i, 1);
    assert_int_equal(get(get_table(aot->items[1].u.tab, "sub"), "k")->val.u.i, 2);
    assert_pos(aot->items[1].pos, 5, 1);
    toml_table_free(t);
}

/* ---------- lookups ---------- */

static void test_lookup_and_nul_in_keys(void **state)
{
    (void)state;
    struct toml_table *t = parse_ok("\"a\\u0000b\" = 1\n"
                                    "a = 2\n"
                                    "'a\\u0000b' = 3\n"
                                    "\"\" = 4\n");
    assert_int_equal(t->n, 4);
    const struct toml_keyval *kv = toml_table_getn(t, "a\0b", 3);
    assert_non_null(kv);
    assert_int_equal(kv->keylen, 3);
    assert_memory_equal(kv->key, "a\0b", 4); /* still NUL-terminated */
    assert_int_equal(kv->val.u.i, 1);
    /* the plain lookup stops at the NUL and finds "a" */
    assert_int_equal(get(t, "a")->val.u.i, 2);
    assert_int_equal(get(t, "a\\u0000b")->val.u.i, 3);
    assert_int_equal(get(t, "")->val.u.i, 4);
    assert_null(toml_table_get(t, "b"));
    assert_null(toml_table_get(t, "a.b"));
    assert_null(toml_table_get(NULL, "a"));
    assert_null(toml_table_get(t, NULL));
    toml_table_free(t);

    assert_error("\"a\\u0000b\" = 1\n\"a\\u0000b\" = 2\n", 2, 1,
                 "duplicate key '\"a\\u0000b\"' (first defined at 1:1)");
}

static void test_string_values_with_nul(void **state)
{
    (void)state;
    struct toml_table *t = parse_ok("s = \"x\\u0000y\"\n");
    const struct toml_keyval *kv = get(t, "s");
    assert_int_equal(kv->val.u.s.len, 3);
    assert_memory_equal(kv->val.u.s.ptr, "x\0y", 4);
    toml_table_free(t);
}

static void test_big_table_of_tables(void **state)
{
    (void)state;
    enum { N = 20000 };
    size_t cap = (size_t)N * 64, len = 0;
    char *doc = malloc(cap);
    assert_non_null(doc);
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(doc + len, cap - len, "[certificate.c%d]\nn = %d\n", i, i);

    struct toml_table *t = NULL;
    struct toml_error err;
    assert_int_equal(toml_parse((const uint8_t *)doc, len, &t, &err), 0);
    const struct toml_table *certs = get_table(t, "certificate");
    assert_int_equal(certs->n, N);
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof(key), "c%d", i);
        const struct toml_keyval *kv = get(certs, key);
        assert_pos(kv->keypos, (uint32_t)(2 * i + 1), 14);
        const struct toml_keyval *n = get(kv->val.u.tab, "n");
        assert_int_equal(n->val.u.i, i);
        assert_pos(n->keypos, (uint32_t)(2 * i + 2), 1);
        /* document order is kept */
        assert_ptr_equal(&certs->items[i], kv);
    }
    assert_null(toml_table_get(certs, "c20000"));
    toml_table_free(t);

    /* the hash index still catches duplicates far apart */
    len += (size_t)snprintf(doc + len, cap - len, "[certificate.c12345]\n");
    assert_int_equal(toml_parse((const uint8_t *)doc, len, &t, &err), ERR_PARSE);
    assert_int_equal(err.pos.line, 2 * N + 1);
    assert_non_null(strstr(err.msg, "table 'certificate.c12345' defined twice (first defined at "
                                    "24691:14)"));
    free(doc);
}

static void test_many_keys_in_one_table(void **state)
{
    (void)state;
    size_t cap = 1 << 20, len = 0;
    char *doc = malloc(cap);
    assert_non_null(doc);
    for (int i = 0; i < 5000; i++)
        len += (size_t)snprintf(doc + len, cap - len, "k%d = %d\n", i, i * 3);
    struct toml_table *t = NULL;
    struct toml_error err;
    assert_int_equal(toml_parse((const uint8_t *)doc, len, &t, &err), 0);
    assert_int_equal(t->n, 5000);
    for (int i = 0; i < 5000; i += 7) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(get(t, key)->val.u.i, i * 3);
    }
    toml_table_free(t);
    len += (size_t)snprintf(doc + len, cap - len, "k4321 = 0\n");
    assert_int_equal(toml_parse((const uint8_t *)doc, len, &t, &err), ERR_PARSE);
    assert_int_equal(err.pos.line, 5001);
    assert_string_equal(err.msg, "duplicate key 'k4321' (first defined at 4322:1)");
    free(doc);
}

/* ---------- errors ---------- */

static void test_error_messages(void **state)
{
    (void)state;
    assert_error("a = 1\nb = 2\n\n  a = 3\n", 4, 3, "duplicate key 'a' (first defined at 1:1)");
    assert_error("[t]\nx = 1\n[t]\n", 3, 2, "table 't' defined twice (first defined at 1:2)");
    assert_error("name \"x\"\n", 1, 6, "expected '=' after key 'name'");
    assert_error("s = \"abc\n", 1, 9, "newline in a single-line string");
    assert_error("s = \"abc", 1, 5, "unterminated string");
    assert_error("s = \"a\\qb\"\n", 1, 7, "invalid escape sequence '\\q'");
    assert_error("s = \"\\uD800\"\n", 1, 6, "surrogate");
    assert_error("s = \"\\U00110000\"\n", 1, 6, "beyond U+10FFFF");
    assert_error("n = 9223372036854775808\n", 1, 5, "integer out of range");
    assert_error("n = -9223372036854775809\n", 1, 5, "integer out of range");
    assert_error("n = 0x8000000000000000\n", 1, 5, "integer out of range");
    assert_error("n = 012\n", 1, 5, "leading zeros");
    assert_error("n = 1__2\n", 1, 5, "invalid number '1__2'");
    assert_error("n = +0x1\n", 1, 5, "sign is not allowed");
    assert_error("f = 1.\n", 1, 5, "invalid number '1.'");
    assert_error("d = 2023-02-29\n", 1, 13, "day 29 out of range for 2023-02");
    assert_error("d = 2024-13-01\n", 1, 10, "month 13 out of range");
    assert_error("t = 24:00:00\n", 1, 5, "hour 24 out of range");
    assert_error("t = 12:00\n", 1, 5, "seconds are required");
    assert_error("x = \n", 1, 5, "expected a value, found newline");
    assert_error("x = [1 2]\n", 1, 8, "expected ',' or ']' in array, found '2'");
    assert_error("x = {a = 1,}\n", 1, 12, "trailing comma not allowed in an inline table");
    assert_error("x = {a = 1\n}\n", 1, 11, "newline not allowed in an inline table");
    assert_error("x = 1 y = 2\n", 1, 7, "expected newline after value, found 'y'");
    assert_error("# ok\n# bad \x01 comment\n", 2, 7, "control character U+0001");
    assert_error("a = \"\xC3\x28\"\n", 1, 6, "invalid UTF-8");
    assert_error("a = \"\xED\xA0\x80\"\n", 1, 6, "invalid UTF-8");     /* surrogate */
    assert_error("a = \"\xC0\xAF\"\n", 1, 6, "invalid UTF-8");         /* overlong */
    assert_error("a = \"\xF4\x90\x80\x80\"\n", 1, 6, "invalid UTF-8"); /* > U+10FFFF */
    assert_error("a = \"\"\"x\"\"\"\"\"\"\n", 1, 14, "too many quotes");
    assert_error("\"\"\"k\"\"\" = 1\n", 1, 1, "multi-line strings cannot be keys");
}

static void test_error_paths_are_full(void **state)
{
    (void)state;
    /* the key path starts at the root, through headers, inline tables and
     * array elements, quoting keys that are not bare */
    assert_error("[a.b]\nc.d = 1\nc.d = 2\n", 3, 3,
                 "duplicate key 'a.b.c.d' (first defined at 2:3)");
    assert_error("[[x]]\n[[x]]\n[x.y]\nz = {q = [1, {w = 1, w = 2}]}\n", 4, 22,
                 "duplicate key 'x[1].y.z.q[1].w' (first defined at 4:15)");
    assert_error("[a]\n\"b c\".d = 1\n\"b c\".d = 2\n", 3, 7,
                 "duplicate key 'a.\"b c\".d' (first defined at 2:7)");
    assert_error("[t.\"x\\ty\"]\n[t.\"x\\ty\"]\n", 2, 4,
                 "table 't.\"x\\u0009y\"' defined twice (first defined at 1:4)");
}

static void test_redefinition_rules(void **state)
{
    (void)state;
    /* a dotted key may not reach into a table made by a header */
    assert_error("[a.b.c]\nz = 1\n[a]\nb.c.t = 2\n", 4, 1,
                 "cannot add keys to table 'a.b' with a dotted key");
    /* ... even one only implied by a longer header (toml-lang/toml#846) */
    assert_error("[a.b.c]\n[a]\nb.x = 1\n", 3, 1,
                 "table 'a.b' with a dotted key: it was created by a [table] header (at 1:4)");
    assert_error("[a.b]\n[a]\nb.x = 1\n", 3, 1,
                 "table 'a.b' with a dotted key: it is defined by a [table] header (at 1:4)");
    /* [table] after dotted keys defined it */
    assert_error("a.b = 1\n[a]\n", 2, 2, "table 'a' already defined by dotted keys (at 1:1)");
    /* but a sub-table of a dotted table may be made by a header */
    struct toml_table *t = parse_ok("[fruit]\napple.color = 'red'\n[fruit.apple.texture]\n"
                                    "smooth = true\n");
    assert_true(
        get(get_table(get_table(get_table(t, "fruit"), "apple"), "texture"), "smooth")->val.u.b);
    toml_table_free(t);
    /* inline tables are closed */
    assert_error("p = {x = 1}\np.y = 2\n", 2, 1, "cannot add keys to inline table 'p'");
    assert_error("p = {x = 1}\n[p.q]\n", 2, 2, "cannot extend inline table 'p'");
    assert_error("p = {x = 1}\n[p]\n", 2, 2, "cannot redefine inline table 'p'");
    assert_error("p = {a = {b = 1}, a.c = 2}\n", 1, 19, "cannot add keys to inline table 'p.a'");
    /* static arrays cannot be appended to or extended */
    assert_error("arr = [1]\n[[arr]]\n", 2, 3, "cannot append to static array 'arr'");
    assert_error("arr = [{}]\n[arr.x]\n", 2, 2, "cannot extend static array 'arr'");
    /* array of tables vs table */
    assert_error("[[a]]\n[a]\n", 2, 2, "key 'a' is already an array of tables");
    assert_error("[a]\n[[a]]\n", 2, 3, "'a' is already a table (defined at 1:2)");
    /* a value is not a table */
    assert_error("a = 1\n[a.b]\n", 2, 2, "key 'a' is already an integer (defined at 1:1)");
    assert_error("a = 1\na.b = 2\n", 2, 1, "key 'a' is already an integer");
    /* implicit tables may be defined once, later */
    t = parse_ok("[x.y.z]\n[x]\nk = 1\n[x.y]\nj = 2\n");
    const struct toml_keyval *x = get(t, "x");
    assert_pos(x->keypos, 2, 2); /* the header that defined it */
    assert_int_equal(get(get_table(get_table(t, "x"), "y"), "j")->val.u.i, 2);
    toml_table_free(t);
    assert_error("[x.y.z]\n[x]\n[x]\n", 3, 2, "table 'x' defined twice (first defined at 2:2)");
    /* sub-tables of array elements go to the last element */
    t = parse_ok("[[a]]\n[a.b]\nn = 1\n[[a]]\n[a.b]\nn = 2\n");
    const struct toml_array *a = get(t, "a")->val.u.arr;
    assert_int_equal(a->n, 2);
    assert_int_equal(get(get_table(a->items[1].u.tab, "b"), "n")->val.u.i, 2);
    toml_table_free(t);
}

static void test_nesting_is_capped(void **state)
{
    (void)state;
    enum { DEEP = 100000 };
    char *doc = malloc(2 * DEEP + 16);
    assert_non_null(doc);
    memcpy(doc, "a = ", 4);
    memset(doc + 4, '[', DEEP);
    memset(doc + 4 + DEEP, ']', DEEP);
    size_t len = 4 + 2 * (size_t)DEEP;
    struct toml_table *t = NULL;
    struct toml_error err;
    assert_int_equal(toml_parse((const uint8_t *)doc, len, &t, &err), ERR_PARSE);
    assert_non_null(strstr(err.msg, "nesting too deep"));
    assert_int_equal(err.pos.line, 1);

    /* 100 levels are fine */
    len = 4;
    memset(doc + len, '[', 100);
    len += 100;
    memset(doc + len, ']', 100);
    len += 100;
    assert_int_equal(toml_parse((const uint8_t *)doc, len, &t, &err), 0);
    const struct toml_value *v = &get(t, "a")->val;
    int depth = 0;
    while (v->type == TOML_ARRAY && v->u.arr->n == 1) {
        v = &v->u.arr->items[0];
        depth++;
    }
    assert_int_equal(depth, 99);
    toml_table_free(t);
    free(doc);
}

static void test_empty_and_type_names(void **state)
{
    (void)state;
    struct toml_table *t = NULL;
    struct toml_error err;
    assert_int_equal(toml_parse((const uint8_t *)"", 0, &t, &err), 0);
    assert_non_null(t);
    assert_int_equal(t->n, 0);
    toml_table_free(t);
    toml_table_free(NULL);
    assert_string_equal(toml_type_name(TOML_INTEGER), "integer");
    assert_string_equal(toml_type_name(TOML_TABLE), "table");
    assert_string_equal(toml_type_name(TOML_DATETIME), "offset date-time");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_positions_of_keys_and_values),
        cmocka_unit_test(test_positions_after_multiline_strings),
        cmocka_unit_test(test_positions_with_crlf),
        cmocka_unit_test(test_columns_count_code_points),
        cmocka_unit_test(test_value_types),
        cmocka_unit_test(test_mixed_arrays_and_inline_tables),
        cmocka_unit_test(test_lookup_and_nul_in_keys),
        cmocka_unit_test(test_string_values_with_nul),
        cmocka_unit_test(test_big_table_of_tables),
        cmocka_unit_test(test_many_keys_in_one_table),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_error_paths_are_full),
        cmocka_unit_test(test_redefinition_rules),
        cmocka_unit_test(test_nesting_is_capped),
        cmocka_unit_test(test_empty_and_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
