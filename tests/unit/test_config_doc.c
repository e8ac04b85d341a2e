/* config: certloop.toml(5) and the schema are one source of truth. Every
 * key config_schema_foreach lists has an entry in docs/man/certloop.toml.5.scd
 * with the same type and, where the schema has a literal default, that
 * default; every entry of the page is a key the schema has. An entry is a
 * line "*KEY* = _TYPE_" (the type underlined) under a "# [SECTION]" or "# [[SECTION]]" heading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/toml.h"
#include "util/buf.h"
#include "util/xalloc.h"

struct doc_key {
    char *path; /* "ca.NAME.eab.kid", "certificate.NAME.deploy[].mode" */
    char *type; /* as written, markup removed: "array of address", "enum" */
    char *dflt; /* the text after "Default: ", markup removed; or NULL */
    int line;
};

struct doc {
    struct doc_key *keys;
    size_t n;
};

struct schema_key {
    char *path, *type, *dflt;
};

struct schema {
    struct schema_key *keys;
    size_t n;
};

static char *read_file(const char *name)
{
    const char *src = getenv("SOURCE_DIR");
    struct buf b = BUF_INIT(1 << 20);
    char *path;

    assert_non_null(src);
    path = xasprintf("%s/%s", src, name);
    if (buf_read_file(&b, path) < 0)
        fail_msg("%s: cannot read", path);
    free(path);
    buf_append(&b, "", 1);
    return buf_steal(&b, NULL);
}

/* s without scdoc markup: '*' and '_' dropped, "\x" becomes x. Owned. */
static char *unmark(const char *s, size_t len)
{
    char *out = xcalloc(len + 1, 1);
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\' && i + 1 < len)
            out[o++] = s[++i];
        else if (s[i] != '*' && s[i] != '_')
            out[o++] = s[i];
    }
    return out;
}

static void doc_parse(const char *text, struct doc *d)
{
    char section[128] = "";
    int line = 0;

    memset(d, 0, sizeof(*d));
    for (const char *p = text; *p != '\0';) {
        const char *eol = strchr(p, '\n');
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        line++;
        if (len > 3 && strncmp(p, "# [", 3) == 0) {
            /* "# [ca.NAME]" or "# [[certificate.NAME.deploy]]" */
            bool array = p[3] == '[';
            const char *s = p + (array ? 4 : 3);
            const char *e = memchr(s, ']', len - (size_t)(s - p));
            assert_non_null(e);
            snprintf(section, sizeof(section), "%.*s%s", (int)(e - s), s, array ? "[]" : "");
        } else if (len > 2 && p[0] == '#') {
            section[0] = '\0'; /* NAME, DESCRIPTION, ...: no keys */
        } else if (section[0] != '\0' && p[0] == '*') {
            const char *e = memchr(p + 1, '*', len - 1);
            if (e != NULL && (size_t)(e - p) + 3 < len && strncmp(e + 1, " = _", 4) == 0) {
                d->keys = xrealloc(d->keys, (d->n + 1) * sizeof(*d->keys));
                struct doc_key *k = &d->keys[d->n++];
                k->path = xasprintf("%s.%.*s", section, (int)(e - p - 1), p + 1);
                k->type = unmark(e + 4, len - (size_t)(e + 4 - p));
                k->dflt = NULL;
                k->line = line;
            }
        } else if (d->n > 0 && strncmp(p, "\tDefault: ", 10) == 0 &&
                   d->keys[d->n - 1].dflt == NULL) {
            d->keys[d->n - 1].dflt = unmark(p + 10, len - 10);
        }
        p = eol != NULL ? eol + 1 : p + len;
    }
}

static void doc_fini(struct doc *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->keys[i].path);
        free(d->keys[i].type);
        free(d->keys[i].dflt);
    }
    free(d->keys);
}

static void schema_cb(const char *path, const char *type, const char *dflt, void *arg)
{
    struct schema *s = arg;

    s->keys = xrealloc(s->keys, (s->n + 1) * sizeof(*s->keys));
    s->keys[s->n].path = xstrdup(path);
    s->keys[s->n].type = xstrdup(type);
    s->keys[s->n].dflt = dflt != NULL ? xstrdup(dflt) : NULL;
    s->n++;
}

static void schema_fini(struct schema *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->keys[i].path);
        free(s->keys[i].type);
        free(s->keys[i].dflt);
    }
    free(s->keys);
}

struct world {
    char *text;
    struct doc doc;
    struct schema schema;
};

static int setup(void **state)
{
    struct world *w = xcalloc(1, sizeof(*w));

    w->text = read_file("docs/man/certloop.toml.5.scd");
    doc_parse(w->text, &w->doc);
    config_schema_foreach(schema_cb, &w->schema);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;

    doc_fini(&w->doc);
    schema_fini(&w->schema);
    free(w->text);
    free(w);
    return 0;
}

static const struct doc_key *doc_find(const struct doc *d, const char *path)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->keys[i].path, path) == 0)
            return &d->keys[i];
    return NULL;
}

static const struct schema_key *schema_find(const struct schema *s, const char *path)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->keys[i].path, path) == 0)
            return &s->keys[i];
    return NULL;
}

static void test_both_sides_are_read(void **state)
{
    struct world *w = *state;

    /* a parser that finds nothing would pass everything below */
    assert_true(w->schema.n >= 60);
    assert_true(w->doc.n >= 60);
    assert_non_null(doc_find(&w->doc, "daemon.state_dir"));
    assert_non_null(doc_find(&w->doc, "certificate.NAME.deploy[].mode"));
    assert_non_null(doc_find(&w->doc, "ca.NAME.eab.kid"));
}

static void test_every_schema_key_is_in_the_man_page(void **state)
{
    struct world *w = *state;
    int missing = 0;

    for (size_t i = 0; i < w->schema.n; i++) {
        if (doc_find(&w->doc, w->schema.keys[i].path) == NULL) {
            print_error("certloop.toml.5.scd: no entry for %s (%s, default %s)\n",
                        w->schema.keys[i].path, w->schema.keys[i].type,
                        w->schema.keys[i].dflt != NULL ? w->schema.keys[i].dflt : "none");
            missing++;
        }
    }
    assert_int_equal(missing, 0);
}

static void test_every_man_page_key_is_in_the_schema(void **state)
{
    struct world *w = *state;
    int extra = 0;

    for (size_t i = 0; i < w->doc.n; i++) {
        if (schema_find(&w->schema, w->doc.keys[i].path) == NULL) {
            print_error("certloop.toml.5.scd:%d: %s is not a configuration key\n",
                        w->doc.keys[i].line, w->doc.keys[i].path);
            extra++;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(w->doc.keys[j].path, w->doc.keys[i].path) == 0) {
                print_error("certloop.toml.5.scd:%d: %s documented twice\n", w->doc.keys[i].line,
                            w->doc.keys[i].path);
                extra++;
            }
        }
    }
    assert_int_equal(extra, 0);
}

/* The page's type words against the schema's: "address" is a string,
 * "array of X" an array of strings unless X is table, "enum" a string
 * whose words the schema lists or checks. */
static bool type_matches(const char *doc, const char *schema)
{
    if (strncmp(doc, "array of ", 9) == 0)
        return strcmp(schema,
                      strcmp(doc + 9, "table") == 0 ? "array of tables" : "array of strings") == 0;
    if (strcmp(doc, "address") == 0)
        return strcmp(schema, "string") == 0;
    if (strcmp(doc, "enum") == 0)
        return strchr(schema, '|') != NULL || strcmp(schema, "string") == 0;
    return strcmp(doc, schema) == 0;
}

static void test_types_match(void **state)
{
    struct world *w = *state;
    int wrong = 0;

    for (size_t i = 0; i < w->doc.n; i++) {
        const struct doc_key *d = &w->doc.keys[i];
        const struct schema_key *s = schema_find(&w->schema, d->path);
        if (s != NULL && !type_matches(d->type, s->type)) {
            print_error("certloop.toml.5.scd:%d: %s is documented as %s, the schema says %s\n",
                        d->line, d->path, d->type, s->type);
            wrong++;
        }
    }
    assert_int_equal(wrong, 0);
}

/* A literal default ("64", "\"info\"", "[]") opens the entry's
 * "Default: " line; a required key says "required" there. */
static void test_defaults_match(void **state)
{
    struct world *w = *state;
    int wrong = 0;

    for (size_t i = 0; i < w->doc.n; i++) {
        const struct doc_key *d = &w->doc.keys[i];
        const struct schema_key *s = schema_find(&w->schema, d->path);
        if (s == NULL)
            continue;
        if (d->dflt == NULL) {
            print_error("certloop.toml.5.scd:%d: %s has no \"Default:\" line\n", d->line, d->path);
            wrong++;
            continue;
        }
        if (s->dflt == NULL)
            continue;
        if (s->dflt[0] != '(') {
            size_t n = strlen(s->dflt);
            char next = d->dflt[strlen(d->dflt) >= n ? n : 0];
            if (strncmp(d->dflt, s->dflt, n) != 0 ||
                (next != '\0' && next != '.' && next != ',' && next != ' ' && next != ';')) {
                print_error("certloop.toml.5.scd:%d: %s: documented default '%s', the schema's "
                            "is %s\n",
                            d->line, d->path, d->dflt, s->dflt);
                wrong++;
            }
        } else if (strncmp(s->dflt, "(required", 9) == 0 && strstr(d->dflt, "required") == NULL) {
            /* the keys of an inline table are required only when the
             * table is given: their text says so, not the Default line */
            char *parent_path = xstrndup(d->path, (size_t)(strrchr(d->path, '.') - d->path));
            const struct schema_key *parent = schema_find(&w->schema, parent_path);
            free(parent_path);
            if (parent == NULL || strcmp(parent->type, "table") != 0) {
                print_error("certloop.toml.5.scd:%d: %s is required; its Default line says "
                            "'%s'\n",
                            d->line, d->path, d->dflt);
                wrong++;
            }
        }
    }
    assert_int_equal(wrong, 0);
}

/* roff takes a line starting with '.' or '\'' for a request and drops it:
 * scdoc passes such lines through, so the man pages must not have them. */
static void test_no_line_starts_with_a_roff_control_character(void **state)
{
    static const char *const pages[] = {"docs/man/certloop.toml.5.scd", "docs/man/certloop.8.scd"};
    int bad = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        char *text = read_file(pages[i]);
        int line = 1;
        bool in_literal = false;
        for (const char *p = text; *p != '\0'; line++) {
            const char *eol = strchr(p, '\n');
            const char *q = p;
            while (*q == '\t' || *q == ' ')
                q++;
            if (strncmp(q, "```", 3) == 0)
                in_literal = !in_literal;
            else if (!in_literal && (*q == '.' || *q == '\'')) {
                print_error("%s:%d: the line starts with '%c' (roff drops it)\n", pages[i], line,
                            *q);
                bad++;
            }
            if (eol == NULL)
                break;
            p = eol + 1;
        }
        free(text);
    }
    assert_int_equal(bad, 0);
}

/* The page's EXAMPLE is a TOML document that parses. */
static void test_example_parses(void **state)
{
    struct world *w = *state;
    const char *sec = strstr(w->text, "\n# EXAMPLE\n");
    const char *open = sec != NULL ? strstr(sec, "```\n") : NULL;
    const char *close = open != NULL ? strstr(open + 4, "\n```") : NULL;
    struct toml_table *t = NULL;
    struct toml_error e;

    assert_non_null(close);
    int rc = toml_parse((const uint8_t *)open + 4, (size_t)(close + 1 - (open + 4)), &t, &e);
    if (rc != 0)
        print_error("certloop.toml.5.scd EXAMPLE:%d:%d: %s\n", (int)e.pos.line, (int)e.pos.col,
                    e.msg);
    assert_int_equal(rc, 0);
    toml_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_sides_are_read),
        cmocka_unit_test(test_every_schema_key_is_in_the_man_page),
        cmocka_unit_test(test_every_man_page_key_is_in_the_schema),
        cmocka_unit_test(test_types_match),
        cmocka_unit_test(test_defaults_match),
        cmocka_unit_test(test_no_line_starts_with_a_roff_control_character),
        cmocka_unit_test(test_example_parses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
