/* The engine behind the configuration schema: it applies a table of
 * `struct spec` to a TOML table (types, ranges, words, required keys, keys
 * that only some `type`s take, unknown keys with a suggestion) and fills an
 * object with a table's literal defaults. The tables themselves and the
 * sections they describe are schema.c's. */
#include "config/config.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "config/config_internal.h"
#include "util/xalloc.h"
static const struct spec *spec_find(const struct spec *specs, const struct toml_keyval *kv)
{
    if (strlen(kv->key) != kv->keylen)
        return NULL;
    for (const struct spec *s = specs; s->key != NULL; s++) {
        if (strcmp(s->key, kv->key) == 0)
            return s;
    }
    return NULL;
}

void config_unknown_key(struct cctx *c, const struct toml_keyval *kv, const char *path,
                        const char *const *known, size_t n_known)
{
    char b[256];

    if (c->n_errs >= CONFIG_MAX_ERRORS) {
        c->n_dropped++; /* as config_err would, without the suggestion's cost */
        return;
    }
    const char *best =
        strlen(kv->key) == kv->keylen ? config_closest(kv->key, known, n_known) : NULL;

    config_show(b, sizeof(b), kv->key);
    if (best != NULL)
        ERR(c, kv->keypos, path, "unknown key '%s'; did you mean '%s'?", b, best);
    else
        ERR(c, kv->keypos, path, "unknown key '%s'", b);
}

static void unknown_spec_key(struct cctx *c, const struct toml_keyval *kv, const char *path,
                             const struct spec *specs)
{
    const char *known[64];
    size_t n = 0;

    for (const struct spec *s = specs; s->key != NULL && n < 64; s++)
        known[n++] = s->key;
    config_unknown_key(c, kv, path, known, n);
}

static bool convert(struct cctx *c, const struct spec *sp, const struct toml_keyval *kv,
                    const char *path, void *obj)
{
    void *field = (char *)obj + sp->off;
    const struct toml_value *v = &kv->val;
    bool ok = true;

    switch (sp->kind) {
    case SK_STR:
    case SK_PATH:
        ok = config_conv_str(c, kv, path, field, sp->kind == SK_PATH);
        break;
    case SK_USER:
    case SK_GROUP: {
        long id;
        ok = config_conv_str(c, kv, path, field, false) &&
             config_resolve_id(c, kv, path, sp->kind == SK_USER, *(char **)field, &id);
        if (ok && sp->kind == SK_USER)
            *(uid_t *)((char *)obj + sp->id_off) = (uid_t)id;
        else if (ok)
            *(gid_t *)((char *)obj + sp->id_off) = (gid_t)id;
        break;
    }
    case SK_BOOL:
        if (v->type != TOML_BOOL) {
            config_type_error(c, v, path, "a boolean (true or false)");
            return false;
        }
        *(bool *)field = v->u.b;
        break;
    case SK_UINT:
        if (v->type != TOML_INTEGER) {
            config_type_error(c, v, path, "an integer");
            return false;
        }
        if (v->u.i < sp->min || v->u.i > sp->max) {
            ERR(c, v->pos, path, "must be between %lld and %lld, not %lld", (long long)sp->min,
                (long long)sp->max, (long long)v->u.i);
            return false;
        }
        *(unsigned *)field = (unsigned)v->u.i;
        break;
    case SK_DURATION:
        ok = config_conv_duration(c, v, path, sp->min, field);
        break;
    case SK_ENUM: {
        char list[256];
        if (v->type == TOML_STRING) {
            for (int i = 0; sp->names[i] != NULL; i++) {
                if (strlen(v->u.s.ptr) == v->u.s.len && strcmp(sp->names[i], v->u.s.ptr) == 0) {
                    *(int *)field = i;
                    goto enum_done;
                }
            }
        }
        /* the list of words is for the messages only (a reload at 100,000
         * certificates spent 30 ms building it for nothing) */
        config_join_names(list, sizeof(list), sp->names);
        if (v->type != TOML_STRING) {
            char want[300];
            snprintf(want, sizeof(want), "a string (%s)", list);
            config_type_error(c, v, path, want);
            return false;
        }
        size_t nn = 0;
        while (sp->names[nn] != NULL)
            nn++;
        const char *best = config_closest(v->u.s.ptr, sp->names, nn);
        if (best != NULL)
            ERR(c, v->pos, path, "expected %s; did you mean '%s'?", list, best);
        else
            ERR(c, v->pos, path, "expected %s", list);
        return false;
    enum_done:
        break;
    }
    case SK_STRV:
        ok = config_conv_strv(c, kv, path, field);
        break;
    case SK_SUB:
        if (v->type != TOML_TABLE) {
            config_type_error(c, v, path, "a table");
            return false;
        }
        ok = config_spec_apply(c, v->u.tab, kv->keypos, path, sp->sub, obj, -1, NULL);
        break;
    case SK_CUSTOM:
        return sp->check(c, kv, path, obj, field);
    }
    if (ok && sp->check != NULL)
        ok = sp->check(c, kv, path, obj, field);
    return ok;
}

bool config_spec_apply(struct cctx *c, const struct toml_table *t, struct toml_pos tpos,
                       const char *path, const struct spec *specs, void *obj, int type,
                       const char *const *type_names)
{
    bool ok = true;
    uint64_t seen = 0;

    for (size_t i = 0; i < t->n; i++) {
        const struct toml_keyval *kv = &t->items[i];
        const struct spec *sp = spec_find(specs, kv);

        if (sp == NULL) {
            unknown_spec_key(c, kv, path, specs);
            ok = false;
            continue;
        }
        seen |= UINT64_C(1) << (sp - specs);
        if (sp->types != 0) {
            if (type < 0)
                continue; /* the type itself is wrong; reported already */
            if (!(sp->types & (1u << type))) {
                ERR(c, kv->keypos, path, "'%s' does not apply to type = \"%s\"", sp->key,
                    type_names[type]);
                ok = false;
                continue;
            }
        }
        char kbuf[256];
        char *kpath = config_path_join_in(kbuf, sizeof(kbuf), path, kv->key, kv->keylen);
        if (!convert(c, sp, kv, kpath, obj))
            ok = false;
        if (kpath != kbuf)
            free(kpath);
    }
    for (const struct spec *sp = specs; sp->key != NULL; sp++) {
        if (!sp->required || (seen & (UINT64_C(1) << (sp - specs))))
            continue;
        if (sp->types != 0 && (type < 0 || !(sp->types & (1u << type))))
            continue;
        ERR(c, tpos, path, "missing required key '%s'", sp->key);
        ok = false;
    }
    return ok;
}

int config_spec_peek_type(const struct toml_table *t, const char *const *names)
{
    const struct toml_keyval *kv = toml_table_get(t, "type");

    if (kv == NULL || kv->val.type != TOML_STRING)
        return -1;
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], kv->val.u.s.ptr) == 0)
            return i;
    }
    return -1;
}

/* "\"text\"" -> "text": a default string as TOML writes it, unquoted. */
static char *dflt_unquote(const char *d)
{
    size_t n = strlen(d);

    assert(n >= 2 && d[0] == '"' && d[n - 1] == '"');
    return xstrndup(d + 1, n - 2);
}

void config_spec_defaults(const struct spec *specs, void *obj)
{
    for (const struct spec *sp = specs; sp->key != NULL; sp++) {
        void *field = (char *)obj + sp->off;
        const char *d = sp->dflt;
        char *s;

        if (d == NULL || d[0] == '(' || sp->kind == SK_SUB || sp->kind == SK_CUSTOM)
            continue;
        switch (sp->kind) {
        case SK_STR:
        case SK_PATH:
            free(*(char **)field);
            *(char **)field = dflt_unquote(d);
            break;
        case SK_BOOL:
            assert(strcmp(d, "true") == 0 || strcmp(d, "false") == 0);
            *(bool *)field = strcmp(d, "true") == 0;
            break;
        case SK_UINT:
            *(unsigned *)field = (unsigned)strtoul(d, NULL, 10);
            break;
        case SK_DURATION: {
            s = dflt_unquote(d);
            int rc = config_duration_parse(s, field);
            assert(rc == 0);
            (void)rc;
            free(s);
            break;
        }
        case SK_ENUM: {
            s = dflt_unquote(d);
            int i = 0;
            while (sp->names[i] != NULL && strcmp(sp->names[i], s) != 0)
                i++;
            assert(sp->names[i] != NULL);
            *(int *)field = i;
            free(s);
            break;
        }
        case SK_STRV: {
            /* ["a", "b"]: the strings between each pair of quotes */
            struct cfg_strv *v = field;
            config_strv_free(v);
            v->v = xcalloc(1, sizeof(char *));
            for (const char *q = strchr(d, '"'); q != NULL; q = strchr(q, '"')) {
                const char *e = strchr(q + 1, '"');
                assert(e != NULL);
                v->v = xrealloc(v->v, (v->n + 2) * sizeof(char *));
                v->v[v->n++] = xstrndup(q + 1, (size_t)(e - q - 1));
                v->v[v->n] = NULL;
                q = e + 1;
            }
            break;
        }
        case SK_USER:
        case SK_GROUP: /* ids are resolved while reading, never defaulted */
        case SK_SUB:
        case SK_CUSTOM:
            break;
        }
    }
}
