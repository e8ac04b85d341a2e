/* toml-test-compare: compares two toml-test tagged JSON documents the way
 * toml-test does (same structure and types; integers and floats compared as
 * numbers, nan equal to nan, date-times compared after normalising).
 * Carries its own small JSON reader because the expected files use keys with
 * NUL bytes ("\u0000"), which jansson refuses to load. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

enum jtype { J_OBJECT, J_ARRAY, J_STRING, J_OTHER };

struct jv {
    enum jtype type;
    char *s; /* owned: string bytes, or the raw token for J_OTHER */
    size_t len;
    struct jv *items; /* owned: members or elements */
    char **keys;      /* owned: member names (J_OBJECT) */
    size_t *klens;
    size_t n, cap, kcap;
};

/* Where mismatch reasons go: stderr, or a buffer per case in batch mode. */
static FILE *report;

struct reader {
    const char *s;
    size_t len, off;
    const char *err;
};

static void jv_fini(struct jv *v)
{
    for (size_t i = 0; i < v->n; i++) {
        jv_fini(&v->items[i]);
        if (v->keys != NULL)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->klens);
    free(v->s);
}

static void ws(struct reader *r)
{
    while (r->off < r->len && isspace((unsigned char)r->s[r->off]))
        r->off++;
}

static int hex4(struct reader *r, uint32_t *out)
{
    uint32_t v = 0;

    if (r->off + 4 > r->len)
        return -1;
    for (int i = 0; i < 4; i++) {
        char c = r->s[r->off++];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

static void put(char **b, size_t *len, size_t *cap, const void *d, size_t n)
{
    *b = xreallocarray_grow(*b, cap, *len + n + 1, 1);
    memcpy(*b + *len, d, n);
    *len += n;
    (*b)[*len] = '\0';
}

static void put_cp(char **b, size_t *len, size_t *cap, uint32_t cp)
{
    unsigned char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | cp >> 6);
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | cp >> 12);
        u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | cp >> 18);
        u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    put(b, len, cap, u, n);
}

static int read_string(struct reader *r, char **out, size_t *outlen)
{
    char *b = NULL;
    size_t len = 0, cap = 0;

    put(&b, &len, &cap, "", 0);
    r->off++; /* opening quote */
    while (r->off < r->len && r->s[r->off] != '"') {
        char c = r->s[r->off++];
        if (c != '\\') {
            put(&b, &len, &cap, &c, 1);
            continue;
        }
        if (r->off >= r->len)
            break;
        c = r->s[r->off++];
        char e;
        switch (c) {
        case 'b':
            e = '\b';
            break;
        case 'f':
            e = '\f';
            break;
        case 'n':
            e = '\n';
            break;
        case 'r':
            e = '\r';
            break;
        case 't':
            e = '\t';
            break;
        case 'u': {
            uint32_t cp, lo;
            if (hex4(r, &cp) < 0)
                goto bad;
            if (cp >= 0xD800 && cp < 0xDC00) {
                if (r->off + 2 > r->len || r->s[r->off] != '\\' || r->s[r->off + 1] != 'u')
                    goto bad;
                r->off += 2;
                if (hex4(r, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                    goto bad;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            put_cp(&b, &len, &cap, cp);
            continue;
        }
        default:
            e = c;
            break;
        }
        put(&b, &len, &cap, &e, 1);
    }
    if (r->off >= r->len)
        goto bad;
    r->off++;
    *out = b;
    *outlen = len;
    return 0;
bad:
    free(b);
    r->err = "bad string";
    return -1;
}

static int read_value(struct reader *r, struct jv *v, int depth)
{
    memset(v, 0, sizeof(*v));
    v->type = J_OTHER;
    ws(r);
    if (r->off >= r->len || depth > 1000) {
        r->err = "unexpected end or too deep";
        return -1;
    }
    char c = r->s[r->off];
    if (c == '"') {
        v->type = J_STRING;
        return read_string(r, &v->s, &v->len);
    }
    if (c == '[' || c == '{') {
        bool obj = c == '{';
        char close = obj ? '}' : ']';
        v->type = obj ? J_OBJECT : J_ARRAY;
        r->off++;
        ws(r);
        if (r->off < r->len && r->s[r->off] == close) {
            r->off++;
            return 0;
        }
        for (;;) {
            char *key = NULL;
            size_t klen = 0;
            ws(r);
            if (obj) {
                if (r->off >= r->len || r->s[r->off] != '"' || read_string(r, &key, &klen) < 0) {
                    r->err = "expected a member name";
                    return -1;
                }
                ws(r);
                if (r->off >= r->len || r->s[r->off] != ':') {
                    free(key);
                    r->err = "expected ':'";
                    return -1;
                }
                r->off++;
                v->keys = xreallocarray_grow(v->keys, &v->kcap, v->n + 1, sizeof(*v->keys));
                size_t kc = v->kcap;
                v->klens = xrealloc(v->klens, kc * sizeof(*v->klens));
                v->keys[v->n] = key;
                v->klens[v->n] = klen;
            }
            v->items = xreallocarray_grow(v->items, &v->cap, v->n + 1, sizeof(*v->items));
            v->n++;
            if (read_value(r, &v->items[v->n - 1], depth + 1) < 0)
                return -1;
            ws(r);
            if (r->off < r->len && r->s[r->off] == ',') {
                r->off++;
                continue;
            }
            if (r->off < r->len && r->s[r->off] == close) {
                r->off++;
                return 0;
            }
            r->err = "expected ',' or a closing bracket";
            return -1;
        }
    }
    size_t e = r->off;
    while (e < r->len && (isalnum((unsigned char)r->s[e]) || strchr("+-.", r->s[e]) != NULL))
        e++;
    if (e == r->off) {
        r->err = "unexpected character";
        return -1;
    }
    v->s = xstrndup(r->s + r->off, e - r->off);
    v->len = e - r->off;
    r->off = e;
    return 0;
}

static int load(const char *path, struct jv *v)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char *data = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL) {
        fprintf(report, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    do {
        data = xreallocarray_grow(data, &cap, len + 65536, 1);
        n = fread(data + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    if (f != stdin)
        fclose(f);
    struct reader r = {data, len, 0, NULL};
    int rc = read_value(&r, v, 0);
    if (rc == 0) {
        ws(&r);
        if (r.off != r.len) {
            r.err = "trailing data";
            rc = -1;
        }
    }
    if (rc < 0)
        fprintf(report, "%s: invalid JSON at byte %zu: %s\n", path, r.off, r.err);
    free(data);
    return rc;
}

static const struct jv *member(const struct jv *o, const char *k, size_t klen)
{
    for (size_t i = 0; i < o->n; i++) {
        if (o->klens[i] == klen && memcmp(o->keys[i], k, klen) == 0)
            return &o->items[i];
    }
    return NULL;
}

static bool is_leaf(const struct jv *v)
{
    if (v->type != J_OBJECT || v->n != 2)
        return false;
    const struct jv *t = member(v, "type", 4), *val = member(v, "value", 5);
    return t != NULL && val != NULL && t->type == J_STRING && val->type == J_STRING;
}

struct dt {
    int y, mo, d, h, mi, s;
    long ns;
    bool has_off;
    int off; /* minutes */
};

static int num(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (*(*p)++ - '0');
    }
    return v;
}

/* Reads any of toml-test's date/time spellings into parts. */
static bool parse_dt(const char *s, struct dt *out)
{
    memset(out, 0, sizeof(*out));
    const char *p = s;
    if (strlen(s) >= 10 && s[4] == '-') {
        out->y = num(&p, 4);
        p++;
        out->mo = num(&p, 2);
        p++;
        out->d = num(&p, 2);
        if (out->y < 0 || out->mo < 0 || out->d < 0)
            return false;
        if (*p == '\0')
            return true;
        if (*p != 'T' && *p != 't' && *p != ' ')
            return false;
        p++;
    }
    out->h = num(&p, 2);
    if (*p++ != ':')
        return false;
    out->mi = num(&p, 2);
    if (*p++ != ':')
        return false;
    out->s = num(&p, 2);
    if (out->h < 0 || out->mi < 0 || out->s < 0)
        return false;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (isdigit((unsigned char)*p)) {
            if (nd < 9) {
                out->ns = out->ns * 10 + (*p - '0');
                nd++;
            }
            p++;
        }
        for (; nd < 9; nd++)
            out->ns *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        out->has_off = true;
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int oh = num(&p, 2);
        if (*p++ != ':')
            return false;
        int om = num(&p, 2);
        if (oh < 0 || om < 0)
            return false;
        out->has_off = true;
        out->off = sign * (oh * 60 + om);
    }
    return *p == '\0';
}

static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool leaf_equal(const char *type, const struct jv *want, const struct jv *have)
{
    if (strcmp(type, "integer") == 0) {
        char *e1, *e2;
        errno = 0;
        long long a = strtoll(want->s, &e1, 10);
        long long b = strtoll(have->s, &e2, 10);
        if (*e1 == '\0' && *e2 == '\0' && errno == 0)
            return a == b;
    } else if (strcmp(type, "float") == 0) {
        char *e1, *e2;
        double a = strtod(want->s, &e1);
        double b = strtod(have->s, &e2);
        if (*e1 == '\0' && *e2 == '\0') {
            if (isnan(a) || isnan(b))
                return isnan(a) && isnan(b);
            return a == b;
        }
    } else if (strncmp(type, "datetime", 8) == 0 || strcmp(type, "date-local") == 0 ||
               strcmp(type, "time-local") == 0) {
        struct dt a, b;
        if (parse_dt(want->s, &a) && parse_dt(have->s, &b)) {
            if (a.has_off != b.has_off)
                return false;
            int64_t sa = (days_from_civil(a.y, a.mo, a.d) * 86400 + a.h * 3600 + a.mi * 60 + a.s -
                          (int64_t)a.off * 60);
            int64_t sb = (days_from_civil(b.y, b.mo, b.d) * 86400 + b.h * 3600 + b.mi * 60 + b.s -
                          (int64_t)b.off * 60);
            return sa == sb && a.ns == b.ns;
        }
    }
    return want->len == have->len && memcmp(want->s, have->s, want->len) == 0;
}

static void path_print(FILE *f, const char *path)
{
    fprintf(f, "%s", path[0] ? path : "(root)");
}

static bool equal(const struct jv *want, const struct jv *have, char *path, size_t plen)
{
    bool wl = is_leaf(want), hl = is_leaf(have);

    if (wl || hl) {
        if (!wl || !hl) {
            path_print(report, path);
            fprintf(report, ": expected %s, got %s\n", wl ? "a value" : "a table or array",
                    hl ? "a value" : "a table or array");
            return false;
        }
        const struct jv *wt = member(want, "type", 4), *ht = member(have, "type", 4);
        const struct jv *wv = member(want, "value", 5), *hv = member(have, "value", 5);
        if (strcmp(wt->s, ht->s) != 0) {
            path_print(report, path);
            fprintf(report, ": expected type %s, got %s\n", wt->s, ht->s);
            return false;
        }
        if (!leaf_equal(wt->s, wv, hv)) {
            path_print(report, path);
            fprintf(report, ": expected %s \"%s\", got \"%s\"\n", wt->s, wv->s, hv->s);
            return false;
        }
        return true;
    }
    if (want->type != have->type) {
        path_print(report, path);
        fprintf(report, ": expected %s, got %s\n", want->type == J_ARRAY ? "an array" : "a table",
                have->type == J_ARRAY ? "an array" : "a table");
        return false;
    }
    if (want->type == J_ARRAY) {
        if (want->n != have->n) {
            path_print(report, path);
            fprintf(report, ": expected %zu array elements, got %zu\n", want->n, have->n);
            return false;
        }
        for (size_t i = 0; i < want->n; i++) {
            size_t l = strlen(path);
            snprintf(path + l, plen - l, "[%zu]", i);
            bool ok = equal(&want->items[i], &have->items[i], path, plen);
            path[l] = '\0';
            if (!ok)
                return false;
        }
        return true;
    }
    if (want->type == J_OBJECT) {
        if (want->n != have->n) {
            path_print(report, path);
            fprintf(report, ": expected %zu keys, got %zu\n", want->n, have->n);
            return false;
        }
        for (size_t i = 0; i < want->n; i++) {
            size_t l = strlen(path);
            snprintf(path + l, plen - l, "%s%.*s", l ? "." : "", (int)want->klens[i],
                     want->keys[i]);
            const struct jv *h = member(have, want->keys[i], want->klens[i]);
            bool ok = h != NULL;
            if (!ok) {
                path_print(report, path);
                fprintf(report, ": missing key\n");
            } else {
                ok = equal(&want->items[i], h, path, plen);
            }
            path[l] = '\0';
            if (!ok)
                return false;
        }
        return true;
    }
    return want->len == have->len && memcmp(want->s, have->s, want->len) == 0;
}

static int compare_files(const char *want_path, const char *have_path)
{
    struct jv want, have;
    char path[4096] = "";

    if (load(want_path, &want) < 0)
        return 2;
    if (load(have_path, &have) < 0) {
        jv_fini(&want);
        return 1;
    }
    bool ok = equal(&want, &have, path, sizeof(path));
    jv_fini(&want);
    jv_fini(&have);
    return ok ? 0 : 1;
}

/* Batch mode: stdin has lines "NAME<TAB>EXPECTED<TAB>ACTUAL"; prints "ok NAME"
 * or "FAIL NAME: reason" for each, so that a run spawns one comparer. */
static int batch(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int failed = 0;

    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n')
            line[n - 1] = '\0';
        char *name = line;
        char *want = strchr(name, '\t');
        char *have = want != NULL ? strchr(want + 1, '\t') : NULL;
        if (have == NULL) {
            fprintf(stderr, "toml-test-compare: bad batch line: %s\n", line);
            failed++;
            continue;
        }
        *want++ = '\0';
        *have++ = '\0';
        char *msg = NULL;
        size_t msglen = 0;
        report = open_memstream(&msg, &msglen);
        if (report == NULL) {
            perror("open_memstream");
            free(line);
            return 2;
        }
        int rc = compare_files(want, have);
        fclose(report);
        report = stderr;
        if (rc == 0) {
            printf("ok %s\n", name);
        } else {
            for (size_t i = 0; i < msglen; i++) {
                if (msg[i] == '\n')
                    msg[i] = i + 1 < msglen ? ';' : '\0';
            }
            printf("FAIL %s: output differs: %s\n", name, msglen ? msg : "unreadable output");
            failed++;
        }
        free(msg);
    }
    free(line);
    return failed > 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    report = stderr;
    if (argc == 2 && strcmp(argv[1], "--batch") == 0)
        return batch();
    if (argc != 3) {
        fprintf(stderr,
                "usage: toml-test-compare EXPECTED.json ACTUAL.json\n"
                "       toml-test-compare --batch < lines of NAME TAB EXPECTED TAB ACTUAL\n");
        return 2;
    }
    return compare_files(argv[1], argv[2]);
}
