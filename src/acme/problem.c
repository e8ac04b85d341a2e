/* RFC 7807 problem documents as ACME CAs send them (RFC 8555 §6.7), with
 * subproblems (§6.7.1). The CA's text is untrusted: strings are capped and
 * non-printable bytes masked at parse time so every consumer can log them. */
#include "acme/acme.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

#define PROBLEM_TYPE_MAX 256
#define PROBLEM_DETAIL_MAX 1024
#define PROBLEM_IDENT_MAX 300
#define PROBLEM_SUB_MAX 100
#define PROBLEM_STR_MAX 16384

static const char acme_urn[] = "urn:ietf:params:acme:error:";

/* A capped copy with everything outside printable ASCII masked as '.';
 * truncation is marked with "...". */
static char *clean(const char *s, size_t len, size_t cap)
{
    bool cut = len > cap;
    size_t n = cut ? cap : len;
    char *out = xmalloc(n + (cut ? 3 : 0) + 1);

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '.';
    }
    if (cut) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

static char *get_str(const json_t *obj, const char *key, size_t cap)
{
    const json_t *v = json_object_get(obj, key);

    if (!json_is_string(v))
        return NULL;
    return clean(json_string_value(v), json_string_length(v), cap);
}

static char *get_identifier(const json_t *obj)
{
    const json_t *id = json_object_get(obj, "identifier");

    if (!json_is_object(id))
        return NULL;
    const json_t *t = json_object_get(id, "type");
    const json_t *v = json_object_get(id, "value");
    if (!json_is_string(v))
        return NULL;
    char *type =
        json_is_string(t) ? clean(json_string_value(t), json_string_length(t), 32) : xstrdup("?");
    char *value = clean(json_string_value(v), json_string_length(v), PROBLEM_IDENT_MAX);
    char *out = xasprintf("%s:%s", type, value);
    free(type);
    free(value);
    return out;
}

void acme_problem_fini(struct acme_problem *p)
{
    if (p == NULL)
        return;
    free(p->type);
    free(p->detail);
    for (size_t i = 0; i < p->n_sub; i++) {
        free(p->sub[i].type);
        free(p->sub[i].detail);
        free(p->sub[i].identifier);
    }
    free(p->sub);
    memset(p, 0, sizeof(*p));
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

struct acme_problem *acme_problem_dup(const struct acme_problem *p)
{
    if (p == NULL)
        return NULL;
    struct acme_problem *d = xcalloc(1, sizeof(*d));
    d->type = dup_or_null(p->type);
    d->detail = dup_or_null(p->detail);
    d->status = p->status;
    if (p->n_sub > 0) {
        d->sub = xcalloc(p->n_sub, sizeof(*d->sub));
        for (size_t i = 0; i < p->n_sub; i++) {
            d->sub[i].type = dup_or_null(p->sub[i].type);
            d->sub[i].detail = dup_or_null(p->sub[i].detail);
            d->sub[i].identifier = dup_or_null(p->sub[i].identifier);
        }
        d->n_sub = p->n_sub;
    }
    return d;
}

void acme_problem_free(struct acme_problem *p)
{
    if (p == NULL)
        return;
    acme_problem_fini(p);
    free(p);
}

int acme_problem_from_json(const json_t *obj, struct acme_problem *out)
{
    struct acme_problem p;

    if (!json_is_object(obj))
        return ERR_PARSE;
    memset(&p, 0, sizeof(p));
    p.type = get_str(obj, "type", PROBLEM_TYPE_MAX);
    p.detail = get_str(obj, "detail", PROBLEM_DETAIL_MAX);
    const json_t *status = json_object_get(obj, "status");
    if (json_is_integer(status) && json_integer_value(status) >= 100 &&
        json_integer_value(status) <= 999)
        p.status = (long)json_integer_value(status);
    const json_t *subs = json_object_get(obj, "subproblems");
    if (json_is_array(subs) && json_array_size(subs) > 0) {
        size_t n = json_array_size(subs);
        if (n > PROBLEM_SUB_MAX)
            n = PROBLEM_SUB_MAX; /* the rest is noise for a log line */
        p.sub = xcalloc(n, sizeof(*p.sub));
        for (size_t i = 0; i < n; i++) {
            const json_t *s = json_array_get(subs, i);
            if (!json_is_object(s))
                continue;
            struct acme_subproblem *sp = &p.sub[p.n_sub++];
            sp->type = get_str(s, "type", PROBLEM_TYPE_MAX);
            sp->detail = get_str(s, "detail", PROBLEM_DETAIL_MAX);
            sp->identifier = get_identifier(s);
        }
    }
    *out = p;
    return 0;
}

int acme_problem_parse(const char *json, size_t len, struct acme_problem *out)
{
    json_error_t jerr;

    if (json == NULL)
        return ERR_PARSE;
    /* JSON_ALLOW_NUL: a "\u0000" in a detail is masked like any other control
     * character instead of failing the whole document. */
    json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, &jerr);
    if (root == NULL)
        return ERR_PARSE;
    int rc = acme_problem_from_json(root, out);
    json_decref(root);
    return rc;
}

char *acme_problem_str(const struct acme_problem *p)
{
    /* Room for everything: type and detail are capped at parse time and
     * subproblems stop (with "...") before the line reaches the cap. */
    struct buf b = BUF_INIT(PROBLEM_STR_MAX + PROBLEM_TYPE_MAX + PROBLEM_DETAIL_MAX + 16);

    /* RFC 7807 §4.2: a missing type means "about:blank". */
    buf_append_str(&b, p->type != NULL ? p->type : "about:blank");
    if (p->detail != NULL)
        buf_printf(&b, ": %s", p->detail);
    for (size_t i = 0; i < p->n_sub; i++) {
        const struct acme_subproblem *s = &p->sub[i];
        char *one =
            xasprintf("%s%s%s%s%s", s->identifier != NULL ? s->identifier : "",
                      s->identifier != NULL ? ": " : "", s->type != NULL ? s->type : "about:blank",
                      s->detail != NULL ? ": " : "", s->detail != NULL ? s->detail : "");
        bool fits = b.len + strlen(one) + 2 <= PROBLEM_STR_MAX;
        if (fits)
            buf_printf(&b, "%s%s", i == 0 ? " (subproblems: " : "; ", one);
        else
            buf_append_str(&b, i == 0 ? " (subproblems: ..." : "; ...");
        free(one);
        if (!fits)
            break;
    }
    if (p->n_sub > 0)
        buf_append_str(&b, ")");
    return buf_steal(&b, NULL);
}

bool acme_problem_is(const struct acme_problem *p, const char *name)
{
    size_t n = sizeof(acme_urn) - 1;

    if (p == NULL || p->type == NULL || name == NULL)
        return false;
    return strncmp(p->type, acme_urn, n) == 0 && strcmp(p->type + n, name) == 0;
}
