/* toml-decode: TOML on stdin, toml-test's tagged JSON on stdout. The decoder
 * half of the toml-test protocol; invalid input exits 1 with "LINE:COL: msg"
 * on stderr. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/toml.h"
#include "util/xalloc.h"

static json_t *table_json(const struct toml_table *t);

static json_t *tagged(const char *type, const char *value)
{
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "value", json_string(value));
    return o;
}

/* Shortest "%.*g" that reads back as the same double. */
static void format_float(double f, char *buf, size_t cap)
{
    if (isnan(f)) {
        snprintf(buf, cap, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(buf, cap, "%s", f < 0 ? "-inf" : "inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, f);
        if (strtod(buf, NULL) == f)
            return;
    }
}

static void format_datetime(enum toml_type type, const struct toml_datetime *dt, char *buf,
                            size_t cap)
{
    size_t u = 0;

    if (type != TOML_TIME_LOCAL)
        u += (size_t)snprintf(buf + u, cap - u, "%04d-%02d-%02d", dt->year, dt->month, dt->day);
    if (type == TOML_DATE_LOCAL)
        return;
    if (type != TOML_TIME_LOCAL)
        buf[u++] = 'T';
    u += (size_t)snprintf(buf + u, cap - u, "%02d:%02d:%02d", dt->hour, dt->minute, dt->second);
    if (dt->frac_digits > 0) {
        int nd = dt->frac_digits > 9 ? 9 : dt->frac_digits;
        char frac[16];
        snprintf(frac, sizeof(frac), "%09d", dt->nanosecond);
        u += (size_t)snprintf(buf + u, cap - u, ".%.*s", nd, frac);
    }
    if (type != TOML_DATETIME)
        return;
    if (dt->offset_z) {
        snprintf(buf + u, cap - u, "Z");
    } else {
        int off = dt->offset_minutes;
        char sign = off < 0 ? '-' : '+';
        if (off < 0)
            off = -off;
        snprintf(buf + u, cap - u, "%c%02d:%02d", sign, off / 60, off % 60);
    }
}

static json_t *value_json(const struct toml_value *v)
{
    char buf[64];

    switch (v->type) {
    case TOML_STRING: {
        json_t *o = json_object();
        json_object_set_new(o, "type", json_string("string"));
        json_object_set_new(o, "value", json_stringn(v->u.s.ptr, v->u.s.len));
        return o;
    }
    case TOML_INTEGER:
        snprintf(buf, sizeof(buf), "%" PRId64, v->u.i);
        return tagged("integer", buf);
    case TOML_FLOAT:
        format_float(v->u.f, buf, sizeof(buf));
        return tagged("float", buf);
    case TOML_BOOL:
        return tagged("bool", v->u.b ? "true" : "false");
    case TOML_DATETIME:
        format_datetime(v->type, &v->u.dt, buf, sizeof(buf));
        return tagged("datetime", buf);
    case TOML_DATETIME_LOCAL:
        format_datetime(v->type, &v->u.dt, buf, sizeof(buf));
        return tagged("datetime-local", buf);
    case TOML_DATE_LOCAL:
        format_datetime(v->type, &v->u.dt, buf, sizeof(buf));
        return tagged("date-local", buf);
    case TOML_TIME_LOCAL:
        format_datetime(v->type, &v->u.dt, buf, sizeof(buf));
        return tagged("time-local", buf);
    case TOML_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; i < v->u.arr->n; i++)
            json_array_append_new(a, value_json(&v->u.arr->items[i]));
        return a;
    }
    case TOML_TABLE:
        return table_json(v->u.tab);
    }
    return json_null();
}

static json_t *table_json(const struct toml_table *t)
{
    json_t *o = json_object();

    for (size_t i = 0; i < t->n; i++)
        json_object_setn_new(o, t->items[i].key, t->items[i].keylen, value_json(&t->items[i].val));
    return o;
}

int main(void)
{
    size_t cap = 0, len = 0;
    uint8_t *data = NULL;
    size_t n;

    do {
        data = xreallocarray_grow(data, &cap, len + 65536, 1);
        n = fread(data + len, 1, cap - len, stdin);
        len += n;
    } while (n > 0);
    if (ferror(stdin)) {
        fprintf(stderr, "toml-decode: read error on stdin\n");
        free(data);
        return 2;
    }

    struct toml_table *root = NULL;
    struct toml_error err;
    if (toml_parse(data, len, &root, &err) < 0) {
        fprintf(stderr, "%u:%u: %s\n", err.pos.line, err.pos.col, err.msg);
        free(data);
        return 1;
    }
    free(data);
    json_t *j = table_json(root);
    toml_table_free(root);
    int rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    json_decref(j);
    fputc('\n', stdout);
    if (rc != 0 || fflush(stdout) != 0) {
        fprintf(stderr, "toml-decode: write error\n");
        return 2;
    }
    return 0;
}
