/* The configuration schema: certloop.toml plus its include files turned into
 * one immutable, reference-counted snapshot. Keys are described by tables of
 * `struct spec`; every problem found is collected (not just the first) and
 * reported as "FILE:LINE:COL: error: KEY.PATH: message", sorted by place.
 * TOML syntax lives in toml.c and name syntax in domain.c; this file does
 * not talk to the network or create anything on disk (it only looks). */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <glob.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/config_internal.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/xalloc.h"

#define CONFIG_FILE_MAX (16u << 20)
#define NAME_MAX_CHARS 128

/* ------------------------------------------------------------------------ */
/* Load context                                                              */

struct pending {
    size_t file;
    uint32_t line, col;
    size_t seq;
    char *text; /* owned */
};

struct idcache {
    char *name; /* owned */
    bool found;
    long id;
};

struct cert_tmp {
    struct cfg_cert c;
    size_t file;
    char *ca_name; /* owned, or NULL if `ca` was not written */
    struct toml_pos ca_pos;
    char *dns_name; /* owned, or NULL */
    struct toml_pos dns_pos;
    bool challenge_set;
    struct toml_pos challenge_pos;
    struct toml_pos *dom_pos; /* owned, one per domain */
    bool domains_given;
    bool domains_bad;
    char *path; /* owned: "certificate.NAME" */
};

/* A definition of [ca|dns|notify|certificate.NAME] seen while reading, for
 * the sort that finds duplicates across files. */
struct sortkey {
    const char *name; /* borrowed from obj */
    size_t file;
    struct toml_pos pos;
    size_t seq;
    void *obj;
};

struct output {
    char *file;    /* owned: the path written */
    char *keypath; /* owned: "certificate.NAME.deploy[I].KEY" */
    size_t src;    /* the config file */
    struct toml_pos pos;
    size_t seq;
};

struct cctx {
    struct config *cfg;
    size_t file; /* index into cfg->files of the file being read */
    struct pending *errs;
    size_t n_errs, cap_errs;
    struct sortkey *cas, *dns, *notify, *certs;
    size_t n_cas, cap_cas, n_dns, cap_dns, n_notify, cap_notify, n_certs, cap_certs;
    size_t seq;
    struct idcache *users, *groups;
    size_t n_users, cap_users, n_groups, cap_groups;
    char *lastdir; /* owned: the last parent directory checked */
    int lastdir_rc;
    struct output *outputs; /* every file a deploy writes, to find two writers */
    size_t n_outputs, cap_outputs;
    struct toml_pos include_pos;
    bool include_set;
};

static void cerr(struct cctx *c, size_t file, struct toml_pos pos, const char *path,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void cerr(struct cctx *c, size_t file, struct toml_pos pos, const char *path,
                 const char *fmt, ...)
{
    va_list ap;
    char msg[1024];
    const char *fname = c->cfg->files.v[file];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    c->errs = xreallocarray_grow(c->errs, &c->cap_errs, c->n_errs + 1, sizeof(*c->errs));
    struct pending *p = &c->errs[c->n_errs++];
    p->file = file;
    p->line = pos.line;
    p->col = pos.col;
    p->seq = c->n_errs;
    if (pos.line == 0)
        p->text = xasprintf("%s: error: %s%s%s", fname, path ? path : "", path ? ": " : "", msg);
    else
        p->text = xasprintf("%s:%u:%u: error: %s%s%s", fname, (unsigned)pos.line, (unsigned)pos.col,
                            path ? path : "", path ? ": " : "", msg);
}

/* Error in the file being read. */
#define ERR(c, pos, path, ...) cerr((c), (c)->file, (pos), (path), __VA_ARGS__)

static int pending_cmp(const void *a, const void *b)
{
    const struct pending *x = a, *y = b;

    if (x->file != y->file)
        return x->file < y->file ? -1 : 1;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Copies s for a message: control characters escaped, long text cut. */
static const char *show(char *buf, size_t cap, const char *s)
{
    size_t o = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (o + 8 >= cap) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (*p < 0x20 || *p == 0x7F || *p == '"' || *p == '\\')
            o += (size_t)snprintf(buf + o, cap - o, *p == '"' || *p == '\\' ? "\\%c" : "\\x%02X",
                                  *p);
        else
            buf[o++] = (char)*p;
    }
    buf[o] = '\0';
    return buf;
}

static bool bare_key(const char *k, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = k[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* "base.key", with the key quoted as TOML would need it. base may be NULL.
 * Called for every key read, so it avoids printf for the common case. */
static char *path_join(const char *base, const char *key, size_t keylen)
{
    char shown[256];

    if (bare_key(key, keylen)) {
        size_t bl = base != NULL ? strlen(base) : 0;
        char *p = xmalloc(bl + 1 + keylen + 1);
        if (bl > 0) {
            memcpy(p, base, bl);
            p[bl++] = '.';
        }
        memcpy(p + bl, key, keylen);
        p[bl + keylen] = '\0';
        return p;
    }
    show(shown, sizeof(shown), key);
    if (base == NULL)
        return xasprintf("\"%s\"", shown);
    return xasprintf("%s.\"%s\"", base, shown);
}

static const char *article(const char *noun)
{
    return strchr("aeiou", noun[0]) != NULL ? "an" : "a";
}

static void type_error(struct cctx *c, const struct toml_value *v, const char *path,
                       const char *want)
{
    const char *got = toml_type_name(v->type);
    ERR(c, v->pos, path, "expected %s, got %s %s", want, article(got), got);
}

/* "a, b, c or d" */
static void join_names(char *buf, size_t cap, const char *const *names)
{
    size_t n = 0, o = 0;

    while (names[n] != NULL)
        n++;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++) {
        const char *sep = i == 0 ? "" : (i + 1 == n ? " or " : ", ");
        int w = snprintf(buf + o, cap - o, "%s%s", sep, names[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

static const char *closest(const char *word, const char *const *names, size_t n)
{
    const char *best = NULL;
    unsigned bestd = 100;
    size_t len = strlen(word);

    for (size_t i = 0; i < n; i++) {
        unsigned d = config_edit_distance(word, names[i]);
        if (d < bestd) {
            bestd = d;
            best = names[i];
        }
    }
    if (best == NULL)
        return NULL;
    if (bestd == 0 || bestd <= (len >= 5 ? 2u : 1u))
        return best;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Small value checks                                                        */

int config_duration_parse(const char *s, int64_t *out)
{
    static const struct {
        char unit;
        int64_t secs;
    } units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
    int64_t total = 0;
    size_t next_unit = 0;
    const char *p = s;

    if (s == NULL || *s == '\0')
        return -EINVAL;
    while (*p != '\0') {
        int64_t v = 0;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (++digits > 9)
                return -EINVAL;
            v = v * 10 + (*p - '0');
            p++;
        }
        if (digits == 0)
            return -EINVAL;
        size_t u = next_unit;
        while (u < sizeof(units) / sizeof(units[0]) && units[u].unit != *p)
            u++;
        if (u == sizeof(units) / sizeof(units[0]))
            return -EINVAL; /* unknown unit, missing unit, or units out of order */
        total += v * units[u].secs;
        next_unit = u + 1;
        p++;
    }
    *out = total;
    return 0;
}

static int parse_port(const char *p, int *port)
{
    int v = 0;

    if (*p == '\0')
        return -EINVAL;
    for (int n = 0; *p != '\0'; p++, n++) {
        if (*p < '0' || *p > '9' || n >= 5)
            return -EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (v > 65535)
        return -EINVAL;
    *port = v;
    return 0;
}

int config_addr_parse(const char *s, int default_port, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *portstr = NULL;
    int port = default_port;
    bool v6;

    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || (size_t)(end - s - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        if (end[1] == ':')
            portstr = end + 2;
        else if (end[1] != '\0')
            return -EINVAL;
        v6 = true;
    } else {
        const char *colon = strchr(s, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            /* bare IPv6 address: no port can follow */
            if (strlen(s) >= sizeof(host))
                return -EINVAL;
            memcpy(host, s, strlen(s) + 1);
            v6 = true;
        } else {
            size_t hl = colon != NULL ? (size_t)(colon - s) : strlen(s);
            if (hl >= sizeof(host))
                return -EINVAL;
            memcpy(host, s, hl);
            host[hl] = '\0';
            if (colon != NULL)
                portstr = colon + 1;
            v6 = false;
        }
    }
    if (portstr != NULL) {
        if (parse_port(portstr, &port) < 0)
            return -EINVAL;
    } else if (default_port < 0) {
        return -EINVAL;
    }

    struct sockaddr_storage tmp;
    memset(&tmp, 0, sizeof(tmp));
    if (v6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&tmp;
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return -EINVAL;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&tmp;
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return -EINVAL;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof(*a4);
    }
    *ss = tmp;
    return 0;
}

/* Splits an http(s) URL: returns false if malformed. host is lower-cased. */
static bool url_split(const char *u, bool *https, char *host, size_t hostcap)
{
    const char *p;

    if (strncasecmp(u, "https://", 8) == 0) {
        *https = true;
        p = u + 8;
    } else if (strncasecmp(u, "http://", 7) == 0) {
        *https = false;
        p = u + 7;
    } else {
        return false;
    }
    size_t alen = strcspn(p, "/?#");
    if (memchr(p, '@', alen) != NULL)
        return false;
    const char *hend;
    const char *hstart = p;
    if (*p == '[') {
        hend = memchr(p, ']', alen);
        if (hend == NULL)
            return false;
        hstart = p + 1;
        if (hend + 1 < p + alen && hend[1] != ':')
            return false;
    } else {
        hend = memchr(p, ':', alen);
        if (hend == NULL)
            hend = p + alen;
    }
    size_t hl = (size_t)(hend - hstart);
    if (hl == 0 || hl >= hostcap)
        return false;
    for (size_t i = 0; i < hl; i++) {
        char ch = hstart[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch + 32);
        if ((unsigned char)ch <= 0x20)
            return false;
        host[i] = ch;
    }
    host[hl] = '\0';
    /* a port, if any, is digits only */
    const char *pe = p + alen;
    const char *colon = (*p == '[') ? hend + 1 : hend;
    if (colon < pe && *colon == ':') {
        if (colon + 1 == pe)
            return false;
        for (const char *q = colon + 1; q < pe; q++) {
            if (*q < '0' || *q > '9')
                return false;
        }
    }
    return true;
}

static bool host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

static const struct {
    const char *host;
    const char *name;
} public_cas[] = {
    {"acme-v02.api.letsencrypt.org", "Let's Encrypt"},
    {"acme-staging-v02.api.letsencrypt.org", "Let's Encrypt"},
    {"acme.zerossl.com", "ZeroSSL"},
    {"dv.acme-v02.api.pki.goog", "Google Trust Services"},
    {"dv.acme-v02.test-api.pki.goog", "Google Trust Services"},
    {"api.buypass.com", "Buypass"},
    {"api.test4.buypass.no", "Buypass"},
};

/* The operator's name of a publicly trusted CA, or NULL. */
static const char *public_ca_name(const char *directory)
{
    char host[256];
    bool https;

    if (directory == NULL || !url_split(directory, &https, host, sizeof(host)))
        return NULL;
    for (size_t i = 0; i < sizeof(public_cas) / sizeof(public_cas[0]); i++) {
        if (strcmp(host, public_cas[i].host) == 0)
            return public_cas[i].name;
    }
    return NULL;
}

/* Why a public CA refuses this name ("a single-label name", ".local"), or
 * NULL if it is a public name. */
static const char *private_name_reason(const char *d)
{
    static const char *const suffixes[] = {".local", ".lan", ".internal", ".home.arpa",
                                           ".localhost"};
    size_t len;

    if (strncmp(d, "*.", 2) == 0)
        d += 2;
    if (strcmp(d, "localhost") == 0)
        return "localhost";
    if (strchr(d, '.') == NULL)
        return "a single-label name";
    len = strlen(d);
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t sl = strlen(suffixes[i]);
        if (len > sl && strcmp(d + len - sl, suffixes[i]) == 0)
            return suffixes[i];
        if (strcmp(d, suffixes[i] + 1) == 0)
            return suffixes[i];
    }
    return NULL;
}

static bool name_file_safe(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > NAME_MAX_CHARS || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* The table-driven schema                                                   */

enum spec_kind {
    SK_STR,      /* char *: a non-empty string */
    SK_PATH,     /* char *: an absolute path */
    SK_BOOL,     /* bool */
    SK_UINT,     /* unsigned within [min, max] */
    SK_DURATION, /* int64_t seconds: "1d12h" or an integer of seconds, >= min */
    SK_ENUM,     /* int: index into names */
    SK_STRV,     /* struct cfg_strv: an array of strings */
    SK_SUB,      /* an inline table whose keys (sub) fill the same object */
    SK_CUSTOM,   /* check does the conversion itself */
};

/* A check runs after the conversion (or instead of it for SK_CUSTOM). It
 * reports its own errors and returns false if it reported any. kv is the
 * key/value as written, path its key path, obj the object being filled
 * and field the member at spec.off. */
typedef bool (*check_cb)(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field);

struct spec {
    const char *key;
    enum spec_kind kind;
    bool required;
    size_t off;
    check_cb check;
    const char *const *names; /* SK_ENUM: NULL-terminated */
    const struct spec *sub;   /* SK_SUB */
    unsigned types;           /* bits (1 << type) this key applies to; 0: every type */
    int64_t min, max;         /* SK_UINT, SK_DURATION */
};

static void strv_free(struct cfg_strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

static void strv_dup(struct cfg_strv *dst, const char *const *src)
{
    size_t n = 0;
    while (src[n] != NULL)
        n++;
    dst->v = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        dst->v[i] = xstrdup(src[i]);
    dst->n = n;
}

bool config_strv_equal(const struct cfg_strv *a, const struct cfg_strv *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->v[i], b->v[i]) != 0)
            return false;
    }
    return true;
}

static bool str_is_clean(struct cctx *c, const struct toml_value *v, const char *path)
{
    if (strlen(v->u.s.ptr) != v->u.s.len) {
        ERR(c, v->pos, path, "must not contain NUL characters");
        return false;
    }
    return true;
}

static bool conv_str(struct cctx *c, const struct toml_keyval *kv, const char *path, char **field,
                     bool abs_path)
{
    const struct toml_value *v = &kv->val;

    if (v->type != TOML_STRING) {
        type_error(c, v, path, "a string");
        return false;
    }
    if (!str_is_clean(c, v, path))
        return false;
    if (v->u.s.len == 0) {
        ERR(c, v->pos, path, "must not be empty");
        return false;
    }
    if (abs_path && v->u.s.ptr[0] != '/') {
        char b[256];
        ERR(c, v->pos, path, "\"%s\" is not an absolute path", show(b, sizeof(b), v->u.s.ptr));
        return false;
    }
    free(*field);
    *field = xstrdup(v->u.s.ptr);
    return true;
}

static bool conv_duration(struct cctx *c, const struct toml_value *v, const char *path, int64_t min,
                          int64_t *field)
{
    int64_t secs;

    if (v->type == TOML_INTEGER) {
        secs = v->u.i;
    } else if (v->type == TOML_STRING) {
        if (!str_is_clean(c, v, path))
            return false;
        if (config_duration_parse(v->u.s.ptr, &secs) < 0) {
            char b[128];
            ERR(c, v->pos, path,
                "\"%s\" is not a duration: expected a number with a unit d, h, m or s, "
                "largest first (\"90d\", \"12h\", \"30m\", \"45s\", \"1d12h\")",
                show(b, sizeof(b), v->u.s.ptr));
            return false;
        }
    } else {
        type_error(c, v, path, "a duration string (\"30d\", \"90s\")");
        return false;
    }
    if (secs < min) {
        ERR(c, v->pos, path, "must be at least %llds", (long long)min);
        return false;
    }
    *field = secs;
    return true;
}

static bool conv_strv(struct cctx *c, const struct toml_keyval *kv, const char *path,
                      struct cfg_strv *field)
{
    const struct toml_value *v = &kv->val;
    bool ok = true;

    if (v->type != TOML_ARRAY) {
        type_error(c, v, path, "an array of strings");
        return false;
    }
    const struct toml_array *a = v->u.arr;
    for (size_t i = 0; i < a->n; i++) {
        if (a->items[i].type != TOML_STRING) {
            char *ep = xasprintf("%s[%zu]", path, i);
            type_error(c, &a->items[i], ep, "a string");
            free(ep);
            ok = false;
        } else if (strlen(a->items[i].u.s.ptr) != a->items[i].u.s.len) {
            char *ep = xasprintf("%s[%zu]", path, i);
            ERR(c, a->items[i].pos, ep, "must not contain NUL characters");
            free(ep);
            ok = false;
        }
    }
    if (!ok)
        return false;
    strv_free(field);
    field->v = xcalloc(a->n + 1, sizeof(char *));
    for (size_t i = 0; i < a->n; i++)
        field->v[i] = xstrdup(a->items[i].u.s.ptr);
    field->n = a->n;
    return true;
}

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

static void unknown_key(struct cctx *c, const struct toml_keyval *kv, const char *path,
                        const char *const *known, size_t n_known)
{
    char b[256];
    const char *best = strlen(kv->key) == kv->keylen ? closest(kv->key, known, n_known) : NULL;

    show(b, sizeof(b), kv->key);
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
    unknown_key(c, kv, path, known, n);
}

static bool apply(struct cctx *c, const struct toml_table *t, struct toml_pos tpos,
                  const char *path, const struct spec *specs, void *obj, int type,
                  const char *const *type_names);

static bool convert(struct cctx *c, const struct spec *sp, const struct toml_keyval *kv,
                    const char *path, void *obj)
{
    void *field = (char *)obj + sp->off;
    const struct toml_value *v = &kv->val;
    bool ok = true;

    switch (sp->kind) {
    case SK_STR:
    case SK_PATH:
        ok = conv_str(c, kv, path, field, sp->kind == SK_PATH);
        break;
    case SK_BOOL:
        if (v->type != TOML_BOOL) {
            type_error(c, v, path, "a boolean (true or false)");
            return false;
        }
        *(bool *)field = v->u.b;
        break;
    case SK_UINT:
        if (v->type != TOML_INTEGER) {
            type_error(c, v, path, "an integer");
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
        ok = conv_duration(c, v, path, sp->min, field);
        break;
    case SK_ENUM: {
        char list[256];
        join_names(list, sizeof(list), sp->names);
        if (v->type != TOML_STRING) {
            char want[300];
            snprintf(want, sizeof(want), "a string (%s)", list);
            type_error(c, v, path, want);
            return false;
        }
        for (int i = 0; sp->names[i] != NULL; i++) {
            if (strlen(v->u.s.ptr) == v->u.s.len && strcmp(sp->names[i], v->u.s.ptr) == 0) {
                *(int *)field = i;
                goto enum_done;
            }
        }
        size_t nn = 0;
        while (sp->names[nn] != NULL)
            nn++;
        const char *best = closest(v->u.s.ptr, sp->names, nn);
        if (best != NULL)
            ERR(c, v->pos, path, "expected %s; did you mean '%s'?", list, best);
        else
            ERR(c, v->pos, path, "expected %s", list);
        return false;
    enum_done:
        break;
    }
    case SK_STRV:
        ok = conv_strv(c, kv, path, field);
        break;
    case SK_SUB:
        if (v->type != TOML_TABLE) {
            type_error(c, v, path, "a table");
            return false;
        }
        ok = apply(c, v->u.tab, kv->keypos, path, sp->sub, obj, -1, NULL);
        break;
    case SK_CUSTOM:
        return sp->check(c, kv, path, obj, field);
    }
    if (ok && sp->check != NULL)
        ok = sp->check(c, kv, path, obj, field);
    return ok;
}

/* Fills obj from table t (written at tpos, known as path) by specs. type is
 * the object's type index (for specs restricted by `types`), or -1. */
static bool apply(struct cctx *c, const struct toml_table *t, struct toml_pos tpos,
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
        char *kpath = path_join(path, kv->key, kv->keylen);
        if (!convert(c, sp, kv, kpath, obj))
            ok = false;
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

/* Reads the `type` of a table without reporting (apply reports). */
static int peek_type(const struct toml_table *t, const char *const *names)
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

/* ------------------------------------------------------------------------ */
/* Checks used by the specs                                                  */

static bool check_file_exists(struct cctx *c, const struct toml_keyval *kv, const char *path,
                              void *obj, void *field)
{
    const char *f = *(char **)field;
    struct stat st;
    char b[256];

    (void)obj;
    if (stat(f, &st) < 0) {
        if (errno == ENOENT)
            ERR(c, kv->val.pos, path, "%s does not exist", show(b, sizeof(b), f));
        else
            ERR(c, kv->val.pos, path, "%s: %s", show(b, sizeof(b), f), strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        ERR(c, kv->val.pos, path, "%s is not a regular file", show(b, sizeof(b), f));
        return false;
    }
    return true;
}

static bool check_secret(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field)
{
    const char *f = *(char **)field;
    struct stat st;
    char b[256];

    if (!check_file_exists(c, kv, path, obj, field))
        return false;
    if (stat(f, &st) == 0 && (st.st_mode & 077) != 0) {
        show(b, sizeof(b), f);
        ERR(c, kv->val.pos, path,
            "secret file %s is accessible by group or others (mode %04o); run chmod 600 %s", b,
            (unsigned)(st.st_mode & 07777), b);
        return false;
    }
    return true;
}

/* The directory a deploy file goes to must exist (we never create it). */
static bool check_parent_dir(struct cctx *c, const struct toml_keyval *kv, const char *path,
                             void *obj, void *field)
{
    const char *f = *(char **)field;
    const char *slash = strrchr(f, '/');
    char b[256];

    (void)obj;
    if (slash[1] == '\0') {
        ERR(c, kv->val.pos, path, "%s names a directory, not a file", show(b, sizeof(b), f));
        return false;
    }
    size_t dl = slash == f ? 1 : (size_t)(slash - f);
    if (c->lastdir == NULL || strlen(c->lastdir) != dl || memcmp(c->lastdir, f, dl) != 0) {
        struct stat st;
        free(c->lastdir);
        c->lastdir = xstrndup(f, dl);
        if (stat(c->lastdir, &st) < 0)
            c->lastdir_rc = -errno;
        else
            c->lastdir_rc = S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
    }
    if (c->lastdir_rc == -ENOENT) {
        ERR(c, kv->val.pos, path, "directory %s does not exist", show(b, sizeof(b), c->lastdir));
        return false;
    }
    if (c->lastdir_rc == -ENOTDIR) {
        ERR(c, kv->val.pos, path, "%s is not a directory", show(b, sizeof(b), c->lastdir));
        return false;
    }
    if (c->lastdir_rc < 0) {
        ERR(c, kv->val.pos, path, "%s: %s", show(b, sizeof(b), c->lastdir),
            strerror(-c->lastdir_rc));
        return false;
    }
    c->outputs =
        xreallocarray_grow(c->outputs, &c->cap_outputs, c->n_outputs + 1, sizeof(*c->outputs));
    struct output *o = &c->outputs[c->n_outputs];
    o->file = xstrdup(f);
    o->keypath = xstrdup(path);
    o->src = c->file;
    o->pos = kv->val.pos;
    o->seq = c->n_outputs++;
    return true;
}

/* Rewrites each element to "IP:PORT" form; default_port < 0: port required. */
static bool check_addrs(struct cctx *c, const struct toml_keyval *kv, const char *path,
                        struct cfg_strv *v, int default_port)
{
    bool ok = true;

    for (size_t i = 0; i < v->n; i++) {
        struct sockaddr_storage ss;
        socklen_t len;
        char b[128];

        if (config_addr_parse(v->v[i], default_port, &ss, &len) < 0) {
            char *ep = kv->val.type == TOML_ARRAY ? xasprintf("%s[%zu]", path, i) : xstrdup(path);
            struct toml_pos pos =
                kv->val.type == TOML_ARRAY ? kv->val.u.arr->items[i].pos : kv->val.pos;
            if (default_port < 0)
                ERR(c, pos, ep, "\"%s\" is not \"IP:PORT\" or \"[IPv6]:PORT\"",
                    show(b, sizeof(b), v->v[i]));
            else
                ERR(c, pos, ep, "\"%s\" is not an IP address (with an optional :PORT)",
                    show(b, sizeof(b), v->v[i]));
            free(ep);
            ok = false;
            continue;
        }
        bool has_port = v->v[i][0] == '[' ? strstr(v->v[i], "]:") != NULL
                                          : strchr(v->v[i], ':') != NULL &&
                                                strchr(v->v[i], ':') == strrchr(v->v[i], ':');
        if (!has_port) {
            char *n;
            if (ss.ss_family == AF_INET6 && v->v[i][0] != '[')
                n = xasprintf("[%s]:%d", v->v[i], default_port);
            else
                n = xasprintf("%s:%d", v->v[i], default_port);
            free(v->v[i]);
            v->v[i] = n;
        }
    }
    return ok;
}

static bool check_listen(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field)
{
    (void)obj;
    return check_addrs(c, kv, path, field, -1);
}

static bool check_dns_addrs(struct cctx *c, const struct toml_keyval *kv, const char *path,
                            void *obj, void *field)
{
    (void)obj;
    return check_addrs(c, kv, path, field, 53);
}

/* A single "IP[:PORT]" string (dns server). */
static bool check_dns_addr(struct cctx *c, const struct toml_keyval *kv, const char *path,
                           void *obj, void *field)
{
    char **s = field;
    struct cfg_strv one = {.v = (char *[]){*s, NULL}, .n = 1};

    (void)obj;
    if (!check_addrs(c, kv, path, &one, 53))
        return false;
    *s = one.v[0];
    return true;
}

static bool check_socket_path(struct cctx *c, const struct toml_keyval *kv, const char *path,
                              void *obj, void *field)
{
    struct sockaddr_un addr;

    (void)obj;
    if (strlen(*(char **)field) >= sizeof(addr.sun_path)) {
        ERR(c, kv->val.pos, path, "longer than %zu bytes, too long for a unix socket",
            sizeof(addr.sun_path) - 1);
        return false;
    }
    return true;
}

static bool check_ca_url(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field)
{
    char host[256], b[256];
    bool https;
    const char *u = *(char **)field;
    struct cfg_ca *ca = obj;

    if (!url_split(u, &https, host, sizeof(host))) {
        ERR(c, kv->val.pos, path, "\"%s\" is not an https:// URL", show(b, sizeof(b), u));
        return false;
    }
    if (!https && !host_is_loopback(host)) {
        ERR(c, kv->val.pos, path,
            "the ACME directory must be an https:// URL (http:// only for 127.0.0.0/8, ::1 or "
            "localhost)");
        return false;
    }
    ca->is_public = public_ca_name(u) != NULL;
    return true;
}

static bool check_http_url(struct cctx *c, const struct toml_keyval *kv, const char *path,
                           void *obj, void *field)
{
    char host[256], b[256];
    bool https;
    const char *u = *(char **)field;

    (void)obj;
    if (!url_split(u, &https, host, sizeof(host))) {
        ERR(c, kv->val.pos, path, "\"%s\" is not an http:// or https:// URL",
            show(b, sizeof(b), u));
        return false;
    }
    return true;
}

static bool check_contact(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                          void *field)
{
    const struct cfg_strv *v = field;
    bool ok = true;

    (void)obj;
    for (size_t i = 0; i < v->n; i++) {
        if (strncmp(v->v[i], "mailto:", 7) != 0 || v->v[i][7] == '\0' ||
            strchr(v->v[i] + 7, '@') == NULL) {
            char b[256];
            char *ep = xasprintf("%s[%zu]", path, i);
            ERR(c, kv->val.u.arr->items[i].pos, ep,
                "\"%s\" is not a contact URL; expected \"mailto:ADDRESS\"",
                show(b, sizeof(b), v->v[i]));
            free(ep);
            ok = false;
        }
    }
    return ok;
}

static bool check_command(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                          void *field)
{
    const struct cfg_strv *v = field;
    char b[256];

    (void)obj;
    if (v->n == 0) {
        ERR(c, kv->val.pos, path, "must name a program: [\"PROGRAM\", \"ARG\", ...]");
        return false;
    }
    const char *prog = v->v[0];
    struct toml_pos p0 = kv->val.u.arr->items[0].pos;
    char *ep = xasprintf("%s[0]", path);
    bool ok = true;
    if (prog[0] == '\0') {
        ERR(c, p0, ep, "the program name must not be empty");
        ok = false;
    } else if (strchr(prog, '/') != NULL && prog[0] != '/') {
        ERR(c, p0, ep,
            "\"%s\": the program must be an absolute path or a bare name looked up in PATH",
            show(b, sizeof(b), prog));
        ok = false;
    }
    free(ep);
    return ok;
}

static bool check_tsig_alg(struct cctx *c, const struct toml_keyval *kv, const char *path,
                           void *obj, void *field)
{
    static const char *const algs[] = {"hmac-sha256", "hmac-sha384", "hmac-sha512", NULL};
    const char *a = *(char **)field;
    char list[128];

    (void)obj;
    for (size_t i = 0; algs[i] != NULL; i++) {
        if (strcmp(a, algs[i]) == 0)
            return true;
    }
    join_names(list, sizeof(list), algs);
    ERR(c, kv->val.pos, path, "expected %s", list);
    return false;
}

static bool check_zone(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                       void *field)
{
    char **z = field;
    char why[300], *norm = NULL;

    (void)obj;
    if (config_domain_normalize(*z, strlen(*z), &norm, why, sizeof(why)) < 0 || norm[0] == '*') {
        ERR(c, kv->val.pos, path, "%s", norm != NULL ? "a zone cannot be a wildcard" : why);
        free(norm);
        return false;
    }
    free(*z);
    *z = norm;
    return true;
}

static bool lookup_id(struct cctx *c, bool user, const char *name, long *id)
{
    struct idcache **cache = user ? &c->users : &c->groups;
    size_t *n = user ? &c->n_users : &c->n_groups;
    size_t *cap = user ? &c->cap_users : &c->cap_groups;

    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*cache)[i].name, name) == 0) {
            *id = (*cache)[i].id;
            return (*cache)[i].found;
        }
    }

    bool found = false;
    long val = -1;
    char *end;
    unsigned long num = strtoul(name, &end, 10);
    if (name[0] >= '0' && name[0] <= '9' && *end == '\0' && num < 0xFFFFFFFFul) {
        found = true;
        val = (long)num;
    } else {
        size_t bl = 16384;
        for (;;) {
            char *buf = xmalloc(bl);
            int rc;
            if (user) {
                struct passwd pw, *res = NULL;
                rc = getpwnam_r(name, &pw, buf, bl, &res);
                if (rc == 0 && res != NULL) {
                    found = true;
                    val = (long)pw.pw_uid;
                }
            } else {
                struct group gr, *res = NULL;
                rc = getgrnam_r(name, &gr, buf, bl, &res);
                if (rc == 0 && res != NULL) {
                    found = true;
                    val = (long)gr.gr_gid;
                }
            }
            free(buf);
            if (rc != ERANGE || bl > (1u << 24))
                break;
            bl *= 4;
        }
    }
    *cache = xreallocarray_grow(*cache, cap, *n + 1, sizeof(**cache));
    (*cache)[*n].name = xstrdup(name);
    (*cache)[*n].found = found;
    (*cache)[*n].id = val;
    (*n)++;
    *id = val;
    return found;
}

static bool check_owner(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                        void *field)
{
    struct cfg_deploy *d = obj;
    long id;
    char b[128];

    (void)field;
    if (!lookup_id(c, true, d->owner, &id)) {
        ERR(c, kv->val.pos, path, "unknown user '%s'", show(b, sizeof(b), d->owner));
        return false;
    }
    d->uid = (uid_t)id;
    return true;
}

static bool check_group(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                        void *field)
{
    struct cfg_deploy *d = obj;
    long id;
    char b[128];

    (void)field;
    if (!lookup_id(c, false, d->group, &id)) {
        ERR(c, kv->val.pos, path, "unknown group '%s'", show(b, sizeof(b), d->group));
        return false;
    }
    d->gid = (gid_t)id;
    return true;
}

static bool conv_mode(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                      void *field)
{
    struct cfg_deploy *d = obj;
    const struct toml_value *v = &kv->val;
    char b[64];

    (void)field;
    if (v->type != TOML_STRING) {
        if (v->type == TOML_INTEGER)
            ERR(c, v->pos, path,
                "expected an octal string such as \"0640\" (an integer would be read as "
                "decimal)");
        else
            type_error(c, v, path, "an octal string such as \"0640\"");
        return false;
    }
    const char *s = v->u.s.ptr;
    size_t n = strlen(s);
    bool ok = n == v->u.s.len && n >= 3 && n <= 4 && (n == 3 || s[0] == '0');
    unsigned m = 0;
    for (size_t i = 0; ok && i < n; i++) {
        if (s[i] < '0' || s[i] > '7')
            ok = false;
        else
            m = m * 8 + (unsigned)(s[i] - '0');
    }
    if (!ok) {
        ERR(c, v->pos, path, "\"%s\" is not an octal mode such as \"0640\"", show(b, sizeof(b), s));
        return false;
    }
    d->mode = (mode_t)m;
    d->has_mode = true;
    return true;
}

static bool conv_events(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                        void *field)
{
    /* in the order of the CFG_EVENT_* bits */
    static const char *const names[] = {"issued",
                                        "renewed",
                                        "failed",
                                        "expiring",
                                        "deploy_failed",
                                        "dns_record_required",
                                        "dns_record_removable",
                                        NULL};
    struct cfg_notify *nt = obj;
    struct cfg_strv v = {0};
    bool ok = true;
    unsigned bits = 0;

    (void)field;
    if (!conv_strv(c, kv, path, &v))
        return false;
    if (v.n == 0) {
        ERR(c, kv->val.pos, path, "must name at least one event");
        ok = false;
    }
    for (size_t i = 0; i < v.n; i++) {
        size_t j = 0;
        while (names[j] != NULL && strcmp(names[j], v.v[i]) != 0)
            j++;
        if (names[j] == NULL) {
            char list[256], b[128];
            char *ep = xasprintf("%s[%zu]", path, i);
            join_names(list, sizeof(list), names);
            ERR(c, kv->val.u.arr->items[i].pos, ep, "unknown event \"%s\"; expected %s",
                show(b, sizeof(b), v.v[i]), list);
            free(ep);
            ok = false;
            continue;
        }
        bits |= 1u << j;
    }
    strv_free(&v);
    if (ok)
        nt->events = bits;
    return ok;
}

/* domains = [...]: normalised, counted, duplicates found by sorting. */
struct domidx {
    const char *name;
    size_t i;
};

static int domidx_cmp(const void *a, const void *b)
{
    const struct domidx *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    if (r != 0)
        return r;
    return x->i < y->i ? -1 : x->i > y->i;
}

static bool conv_domains(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field)
{
    struct cert_tmp *ct = obj;
    const struct toml_value *v = &kv->val;
    bool ok = true;

    (void)field;
    ct->domains_given = true;
    ct->domains_bad = true;
    if (v->type != TOML_ARRAY) {
        type_error(c, v, path, "an array of names");
        return false;
    }
    const struct toml_array *a = v->u.arr;
    if (a->n == 0) {
        ERR(c, v->pos, path, "must list at least one name");
        return false;
    }
    if (a->n > CONFIG_MAX_DOMAINS) {
        ERR(c, v->pos, path, "at most %d names per certificate, not %zu", CONFIG_MAX_DOMAINS, a->n);
        return false;
    }
    struct cfg_strv *d = &ct->c.domains;
    d->v = xcalloc(a->n + 1, sizeof(char *));
    ct->dom_pos = xcalloc(a->n, sizeof(*ct->dom_pos));
    for (size_t i = 0; i < a->n; i++) {
        const struct toml_value *e = &a->items[i];
        char why[400], *norm = NULL;

        if (e->type != TOML_STRING) {
            char *ep = xasprintf("%s[%zu]", path, i);
            type_error(c, e, ep, "a string");
            free(ep);
            ok = false;
            continue;
        }
        if (config_domain_normalize(e->u.s.ptr, e->u.s.len, &norm, why, sizeof(why)) < 0) {
            char *ep = xasprintf("%s[%zu]", path, i);
            ERR(c, e->pos, ep, "%s", why);
            free(ep);
            ok = false;
            continue;
        }
        ct->dom_pos[d->n] = e->pos;
        d->v[d->n++] = norm;
    }
    if (!ok)
        return false;

    struct domidx *idx = xcalloc(d->n, sizeof(*idx));
    for (size_t i = 0; i < d->n; i++) {
        idx[i].name = d->v[i];
        idx[i].i = i;
    }
    qsort(idx, d->n, sizeof(*idx), domidx_cmp);
    for (size_t i = 1; i < d->n; i++) {
        if (strcmp(idx[i].name, idx[i - 1].name) != 0)
            continue;
        size_t first = i - 1;
        while (first > 0 && strcmp(idx[first - 1].name, idx[i].name) == 0)
            first--;
        char *ep = xasprintf("%s[%zu]", path, idx[i].i);
        ERR(c, ct->dom_pos[idx[i].i], ep, "duplicate name \"%s\" (also %s[%zu])", idx[i].name, path,
            idx[first].i);
        free(ep);
        ok = false;
    }
    free(idx);
    ct->domains_bad = !ok;
    return ok;
}

static bool conv_ref(struct cctx *c, const struct toml_keyval *kv, const char *path, char **name,
                     struct toml_pos *pos)
{
    if (!conv_str(c, kv, path, name, false))
        return false;
    *pos = kv->val.pos;
    return true;
}

static bool conv_cert_ca(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field)
{
    struct cert_tmp *ct = obj;
    (void)field;
    return conv_ref(c, kv, path, &ct->ca_name, &ct->ca_pos);
}

static bool conv_cert_dns(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                          void *field)
{
    struct cert_tmp *ct = obj;
    (void)field;
    return conv_ref(c, kv, path, &ct->dns_name, &ct->dns_pos);
}

static bool check_challenge(struct cctx *c, const struct toml_keyval *kv, const char *path,
                            void *obj, void *field)
{
    struct cert_tmp *ct = obj;
    (void)c;
    (void)path;
    (void)field;
    ct->challenge_set = true;
    ct->challenge_pos = kv->val.pos;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Spec tables                                                               */

static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const key_type_names[] = {"ec-p256", "ec-p384", "rsa2048",
                                             "rsa3072", "rsa4096", NULL};
static const char *const challenge_names[] = {"http-01", "dns-01", NULL};
static const char *const dns_type_names[] = {"rfc2136", "exec", "callback", NULL};
static const char *const deploy_type_names[] = {"files", "exec", NULL};

#define DAEMON(f) offsetof(struct cfg_daemon, f)
static const struct spec daemon_specs[] = {
    {"state_dir", SK_PATH, false, DAEMON(state_dir), NULL, NULL, NULL, 0, 0, 0},
    {"control_socket", SK_PATH, false, DAEMON(control_socket), check_socket_path, NULL, NULL, 0, 0,
     0},
    {"max_concurrent_orders", SK_UINT, false, DAEMON(max_concurrent_orders), NULL, NULL, NULL, 0, 1,
     10000},
    {"log_level", SK_ENUM, false, DAEMON(log_level), NULL, log_level_names, NULL, 0, 0, 0},
    {"include", SK_STR, false, DAEMON(include), NULL, NULL, NULL, 0, 0, 0},
    {"resolvers", SK_STRV, false, DAEMON(resolvers), check_dns_addrs, NULL, NULL, 0, 0, 0},
    {"hooks_dir", SK_PATH, false, DAEMON(hooks_dir), NULL, NULL, NULL, 0, 0, 0},
    {"expiring_window", SK_DURATION, false, DAEMON(expiring_window_s), NULL, NULL, NULL, 0, 1, 0},
    {"backoff_max", SK_DURATION, false, DAEMON(backoff_max_s), NULL, NULL, NULL, 0, 60, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

static const struct spec http01_specs[] = {
    {"listen", SK_STRV, false, offsetof(struct cfg_http01, listen), check_listen, NULL, NULL, 0, 0,
     0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

#define CA(f) offsetof(struct cfg_ca, f)
static const struct spec eab_specs[] = {
    {"kid", SK_STR, true, CA(eab_kid), NULL, NULL, NULL, 0, 0, 0},
    {"hmac_key_file", SK_PATH, true, CA(eab_hmac_key_file), check_secret, NULL, NULL, 0, 0, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};
static const struct spec ca_specs[] = {
    {"directory", SK_STR, true, CA(directory), check_ca_url, NULL, NULL, 0, 0, 0},
    {"contact", SK_STRV, false, CA(contact), check_contact, NULL, NULL, 0, 0, 0},
    {"agree_tos", SK_BOOL, false, CA(agree_tos), NULL, NULL, NULL, 0, 0, 0},
    {"trust", SK_PATH, false, CA(trust), check_file_exists, NULL, NULL, 0, 0, 0},
    {"eab", SK_SUB, false, 0, NULL, NULL, eab_specs, 0, 0, 0},
    {"preferred_chain", SK_STR, false, CA(preferred_chain), NULL, NULL, NULL, 0, 0, 0},
    {"profile", SK_STR, false, CA(profile), NULL, NULL, NULL, 0, 0, 0},
    {"max_parallel_requests", SK_UINT, false, CA(max_parallel_requests), NULL, NULL, NULL, 0, 0,
     1000},
    {"max_new_orders", SK_UINT, false, CA(max_new_orders), NULL, NULL, NULL, 0, 0, 1000000},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

#define DNS(f) offsetof(struct cfg_dns, f)
#define T_RFC2136 (1u << CFG_DNS_RFC2136)
#define T_EXEC (1u << CFG_DNS_EXEC)
#define T_CALLBACK (1u << CFG_DNS_CALLBACK)
static const struct spec tsig_specs[] = {
    {"name", SK_STR, true, DNS(tsig.name), NULL, NULL, NULL, 0, 0, 0},
    {"algorithm", SK_STR, false, DNS(tsig.algorithm), check_tsig_alg, NULL, NULL, 0, 0, 0},
    {"secret_file", SK_PATH, true, DNS(tsig.secret_file), check_secret, NULL, NULL, 0, 0, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};
static const struct spec dns_specs[] = {
    {"type", SK_ENUM, true, DNS(type), NULL, dns_type_names, NULL, 0, 0, 0},
    {"server", SK_STR, true, DNS(server), check_dns_addr, NULL, NULL, T_RFC2136, 0, 0},
    {"zone", SK_STR, false, DNS(zone), check_zone, NULL, NULL, T_RFC2136, 0, 0},
    {"tsig", SK_SUB, false, 0, NULL, NULL, tsig_specs, T_RFC2136, 0, 0},
    {"command", SK_STRV, true, DNS(command), check_command, NULL, NULL, T_EXEC, 0, 0},
    {"url", SK_STR, true, DNS(url), check_http_url, NULL, NULL, T_CALLBACK, 0, 0},
    {"secret_file", SK_PATH, false, DNS(secret_file), check_secret, NULL, NULL, T_CALLBACK, 0, 0},
    {"trust", SK_PATH, false, DNS(trust), check_file_exists, NULL, NULL, T_CALLBACK, 0, 0},
    {"timeout", SK_DURATION, false, DNS(timeout_s), NULL, NULL, NULL, T_EXEC | T_CALLBACK, 1, 0},
    {"nameservers", SK_STRV, false, DNS(nameservers), check_dns_addrs, NULL, NULL, 0, 0, 0},
    {"propagation_timeout", SK_DURATION, false, DNS(propagation_timeout_s), NULL, NULL, NULL, 0, 1,
     0},
    {"poll_interval", SK_DURATION, false, DNS(poll_interval_s), NULL, NULL, NULL, 0, 1, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

#define NOTIFY(f) offsetof(struct cfg_notify, f)
static const struct spec notify_specs[] = {
    {"url", SK_STR, true, NOTIFY(url), check_http_url, NULL, NULL, 0, 0, 0},
    {"secret_file", SK_PATH, false, NOTIFY(secret_file), check_secret, NULL, NULL, 0, 0, 0},
    {"events", SK_CUSTOM, false, NOTIFY(events), conv_events, NULL, NULL, 0, 0, 0},
    {"trust", SK_PATH, false, NOTIFY(trust), check_file_exists, NULL, NULL, 0, 0, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

#define DEPLOY(f) offsetof(struct cfg_deploy, f)
#define T_FILES (1u << CFG_DEPLOY_FILES)
#define T_DEXEC (1u << CFG_DEPLOY_EXEC)
static const struct spec deploy_specs[] = {
    {"type", SK_ENUM, true, DEPLOY(type), NULL, deploy_type_names, NULL, 0, 0, 0},
    {"cert", SK_PATH, false, DEPLOY(cert), check_parent_dir, NULL, NULL, T_FILES, 0, 0},
    {"chain", SK_PATH, false, DEPLOY(chain), check_parent_dir, NULL, NULL, T_FILES, 0, 0},
    {"fullchain", SK_PATH, false, DEPLOY(fullchain), check_parent_dir, NULL, NULL, T_FILES, 0, 0},
    {"key", SK_PATH, false, DEPLOY(key), check_parent_dir, NULL, NULL, T_FILES, 0, 0},
    {"bundle", SK_PATH, false, DEPLOY(bundle), check_parent_dir, NULL, NULL, T_FILES, 0, 0},
    {"pkcs12", SK_PATH, false, DEPLOY(pkcs12), check_parent_dir, NULL, NULL, T_FILES, 0, 0},
    {"pkcs12_password_file", SK_PATH, false, DEPLOY(pkcs12_password_file), check_secret, NULL, NULL,
     T_FILES, 0, 0},
    {"pkcs12_legacy", SK_BOOL, false, DEPLOY(pkcs12_legacy), NULL, NULL, NULL, T_FILES, 0, 0},
    {"owner", SK_STR, false, DEPLOY(owner), check_owner, NULL, NULL, T_FILES, 0, 0},
    {"group", SK_STR, false, DEPLOY(group), check_group, NULL, NULL, T_FILES, 0, 0},
    {"mode", SK_CUSTOM, false, DEPLOY(mode), conv_mode, NULL, NULL, T_FILES, 0, 0},
    {"command", SK_STRV, true, DEPLOY(command), check_command, NULL, NULL, T_DEXEC, 0, 0},
    {"timeout", SK_DURATION, false, DEPLOY(timeout_s), NULL, NULL, NULL, T_DEXEC, 1, 0},
    {"per_certificate", SK_BOOL, false, DEPLOY(per_certificate), NULL, NULL, NULL, T_DEXEC, 0, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

static bool conv_deploy(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                        void *field);

#define CERT(f) offsetof(struct cert_tmp, f)
static const struct spec import_specs[] = {
    {"cert", SK_PATH, true, CERT(c.import_cert), check_file_exists, NULL, NULL, 0, 0, 0},
    {"key", SK_PATH, true, CERT(c.import_key), check_file_exists, NULL, NULL, 0, 0, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};
static const struct spec cert_specs[] = {
    {"domains", SK_CUSTOM, false, CERT(c.domains), conv_domains, NULL, NULL, 0, 0, 0},
    {"ca", SK_CUSTOM, false, CERT(ca_name), conv_cert_ca, NULL, NULL, 0, 0, 0},
    {"key", SK_ENUM, false, CERT(c.key), NULL, key_type_names, NULL, 0, 0, 0},
    {"challenge", SK_ENUM, false, CERT(c.challenge), check_challenge, challenge_names, NULL, 0, 0,
     0},
    {"dns", SK_CUSTOM, false, CERT(dns_name), conv_cert_dns, NULL, NULL, 0, 0, 0},
    {"renew_before", SK_DURATION, false, CERT(c.renew_before_s), NULL, NULL, NULL, 0, 1, 0},
    {"deploy", SK_CUSTOM, false, CERT(c.deploy), conv_deploy, NULL, NULL, 0, 0, 0},
    {"import", SK_SUB, false, 0, NULL, NULL, import_specs, 0, 0, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

/* ------------------------------------------------------------------------ */
/* Sections                                                                  */

static void deploy_fini(struct cfg_deploy *d)
{
    free(d->cert);
    free(d->chain);
    free(d->fullchain);
    free(d->key);
    free(d->bundle);
    free(d->pkcs12);
    free(d->pkcs12_password_file);
    free(d->owner);
    free(d->group);
    strv_free(&d->command);
}

static bool deploy_post(struct cctx *c, struct cfg_deploy *d, struct toml_pos pos, const char *path,
                        const struct toml_table *t)
{
    bool ok = true;

    if (d->type != CFG_DEPLOY_FILES)
        return true;
    if (d->cert == NULL && d->chain == NULL && d->fullchain == NULL && d->key == NULL &&
        d->bundle == NULL && d->pkcs12 == NULL) {
        ERR(c, pos, path,
            "a files deploy needs at least one of cert, chain, fullchain, key, bundle or pkcs12");
        ok = false;
    }
    if (d->pkcs12_password_file != NULL && d->pkcs12 == NULL) {
        ERR(c, toml_table_get(t, "pkcs12_password_file")->keypos, path,
            "pkcs12_password_file is set but pkcs12 is not");
        ok = false;
    }
    if (d->pkcs12_legacy && d->pkcs12 == NULL) {
        ERR(c, toml_table_get(t, "pkcs12_legacy")->keypos, path,
            "pkcs12_legacy is set but pkcs12 is not");
        ok = false;
    }
    if (d->has_mode && (d->mode & 0007) != 0 &&
        (d->key != NULL || d->bundle != NULL || d->pkcs12 != NULL)) {
        ERR(c, toml_table_get(t, "mode")->val.pos, path,
            "mode %04o would let everyone read the private key; use 0640 or 0600 (or deploy "
            "the key separately)",
            (unsigned)d->mode);
        ok = false;
    }
    return ok;
}

static bool conv_deploy(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                        void *field)
{
    struct cert_tmp *ct = obj;
    const struct toml_value *v = &kv->val;
    bool ok = true;

    (void)field;
    if (v->type != TOML_ARRAY) {
        type_error(c, v, path, "an array of tables ([[...deploy]])");
        return false;
    }
    const struct toml_array *a = v->u.arr;
    ct->c.deploy = xcalloc(a->n ? a->n : 1, sizeof(struct cfg_deploy));
    for (size_t i = 0; i < a->n; i++) {
        const struct toml_value *e = &a->items[i];
        char *ep = xasprintf("%s[%zu]", path, i);
        if (e->type != TOML_TABLE) {
            type_error(c, e, ep, "a table");
            free(ep);
            ok = false;
            continue;
        }
        struct cfg_deploy *d = &ct->c.deploy[ct->c.n_deploy++];
        d->where.file = c->cfg->files.v[c->file];
        d->where.pos = e->pos;
        d->uid = (uid_t)-1;
        d->gid = (gid_t)-1;
        d->timeout_s = 60;
        int type = peek_type(e->u.tab, deploy_type_names);
        if (!apply(c, e->u.tab, e->pos, ep, deploy_specs, d, type, deploy_type_names))
            ok = false;
        else if (!deploy_post(c, d, e->pos, ep, e->u.tab))
            ok = false;
        free(ep);
    }
    return ok;
}

static void ca_fini(struct cfg_ca *ca)
{
    free(ca->name);
    free(ca->directory);
    strv_free(&ca->contact);
    free(ca->trust);
    free(ca->eab_kid);
    free(ca->eab_hmac_key_file);
    free(ca->preferred_chain);
    free(ca->profile);
}

static void dns_fini(struct cfg_dns *d)
{
    free(d->name);
    free(d->server);
    free(d->zone);
    free(d->tsig.name);
    free(d->tsig.algorithm);
    free(d->tsig.secret_file);
    strv_free(&d->command);
    free(d->url);
    free(d->secret_file);
    free(d->trust);
    strv_free(&d->nameservers);
}

static void notify_fini(struct cfg_notify *n)
{
    free(n->name);
    free(n->url);
    free(n->secret_file);
    free(n->trust);
}

static void cert_fini(struct cfg_cert *ct)
{
    free(ct->name);
    strv_free(&ct->domains);
    for (size_t i = 0; i < ct->n_deploy; i++)
        deploy_fini(&ct->deploy[i]);
    free(ct->deploy);
    free(ct->import_cert);
    free(ct->import_key);
}

static void cert_tmp_free(struct cert_tmp *ct)
{
    if (ct == NULL)
        return;
    free(ct->ca_name);
    free(ct->dns_name);
    free(ct->dom_pos);
    free(ct->path);
    free(ct);
}

static void sortkey_add(struct cctx *c, struct sortkey **arr, size_t *n, size_t *cap,
                        const char *name, struct toml_pos pos, void *obj)
{
    *arr = xreallocarray_grow(*arr, cap, *n + 1, sizeof(**arr));
    struct sortkey *k = &(*arr)[(*n)++];
    k->name = name;
    k->file = c->file;
    k->pos = pos;
    k->seq = c->seq++;
    k->obj = obj;
}

static bool check_object_name(struct cctx *c, const char *section, const char *name,
                              const char *path, struct toml_pos pos)
{
    char b[256];

    if (name_file_safe(name))
        return true;
    ERR(c, pos, path,
        "%s name \"%s\" is not safe as a file name: use letters, digits, '.', '_' and '-' (at "
        "most %d, not starting with '.')",
        section, show(b, sizeof(b), name), NAME_MAX_CHARS);
    return false;
}

static void load_ca(struct cctx *c, const struct toml_keyval *kv, const char *path)
{
    struct cfg_ca *ca = xcalloc(1, sizeof(*ca));

    ca->name = xstrndup(kv->key, kv->keylen);
    ca->where.file = c->cfg->files.v[c->file];
    ca->where.pos = kv->keypos;
    ca->max_new_orders = 250; /* Let's Encrypt allows 300 per account per 3 hours */
    check_object_name(c, "CA", ca->name, path, kv->keypos);
    apply(c, kv->val.u.tab, kv->keypos, path, ca_specs, ca, -1, NULL);
    sortkey_add(c, &c->cas, &c->n_cas, &c->cap_cas, ca->name, kv->keypos, ca);
}

static void load_dns(struct cctx *c, const struct toml_keyval *kv, const char *path)
{
    struct cfg_dns *d = xcalloc(1, sizeof(*d));

    d->name = xstrndup(kv->key, kv->keylen);
    d->where.file = c->cfg->files.v[c->file];
    d->where.pos = kv->keypos;
    d->timeout_s = 60;
    d->propagation_timeout_s = 120;
    d->poll_interval_s = 2;
    int type = peek_type(kv->val.u.tab, dns_type_names);
    if (apply(c, kv->val.u.tab, kv->keypos, path, dns_specs, d, type, dns_type_names)) {
        if (d->tsig.secret_file != NULL && d->tsig.algorithm == NULL)
            d->tsig.algorithm = xstrdup("hmac-sha256");
        if (d->poll_interval_s > d->propagation_timeout_s) {
            const struct toml_keyval *p = toml_table_get(kv->val.u.tab, "poll_interval");
            ERR(c, p != NULL ? p->val.pos : kv->keypos, path,
                "poll_interval (%llds) is longer than propagation_timeout (%llds)",
                (long long)d->poll_interval_s, (long long)d->propagation_timeout_s);
        }
    }
    sortkey_add(c, &c->dns, &c->n_dns, &c->cap_dns, d->name, kv->keypos, d);
}

static void load_notify(struct cctx *c, const struct toml_keyval *kv, const char *path)
{
    struct cfg_notify *n = xcalloc(1, sizeof(*n));

    n->name = xstrndup(kv->key, kv->keylen);
    n->where.file = c->cfg->files.v[c->file];
    n->where.pos = kv->keypos;
    n->events = CFG_EVENT_ALL;
    apply(c, kv->val.u.tab, kv->keypos, path, notify_specs, n, -1, NULL);
    sortkey_add(c, &c->notify, &c->n_notify, &c->cap_notify, n->name, kv->keypos, n);
}

static void load_cert(struct cctx *c, const struct toml_keyval *kv, const char *path)
{
    struct cert_tmp *ct = xcalloc(1, sizeof(*ct));
    const struct toml_table *t = kv->val.u.tab;

    ct->c.name = xstrndup(kv->key, kv->keylen);
    ct->c.where.file = c->cfg->files.v[c->file];
    ct->c.where.pos = kv->keypos;
    ct->c.key = CFG_KEY_EC_P256;
    ct->c.challenge = CFG_CHAL_HTTP01;
    ct->file = c->file;
    ct->path = xstrdup(path);
    check_object_name(c, "certificate", ct->c.name, path, kv->keypos);
    apply(c, t, kv->keypos, path, cert_specs, ct, -1, NULL);
    if (!ct->domains_given && ct->c.import_cert == NULL && toml_table_get(t, "import") == NULL) {
        ERR(c, kv->keypos, path, "missing required key 'domains'");
        ct->domains_bad = true;
    }
    if (ct->dns_name != NULL) {
        if (!ct->challenge_set) {
            ct->c.challenge = CFG_CHAL_DNS01;
        } else if (ct->c.challenge != CFG_CHAL_DNS01) {
            ERR(c, ct->dns_pos, ct->path, "dns = \"%s\" needs challenge = \"dns-01\"",
                ct->dns_name);
        }
    }
    sortkey_add(c, &c->certs, &c->n_certs, &c->cap_certs, ct->c.name, kv->keypos, ct);
}

/* [ca.NAME], [dns.NAME], ...: a table of named tables. */
static void load_named(struct cctx *c, const struct toml_keyval *sect,
                       void (*load)(struct cctx *, const struct toml_keyval *, const char *))
{
    if (sect->val.type != TOML_TABLE) {
        char want[64];
        snprintf(want, sizeof(want), "a table [%s.NAME]", sect->key);
        type_error(c, &sect->val, sect->key, want);
        return;
    }
    const struct toml_table *t = sect->val.u.tab;
    for (size_t i = 0; i < t->n; i++) {
        const struct toml_keyval *kv = &t->items[i];
        char *path = path_join(sect->key, kv->key, kv->keylen);
        if (kv->val.type != TOML_TABLE) {
            char want[300], b[200];
            snprintf(want, sizeof(want), "a table [%s.%s]", sect->key, show(b, sizeof(b), kv->key));
            type_error(c, &kv->val, path, want);
        } else if (strlen(kv->key) != kv->keylen) {
            ERR(c, kv->keypos, path, "a name must not contain NUL characters");
        } else {
            load(c, kv, path);
        }
        free(path);
    }
}

static void load_root(struct cctx *c, const struct toml_table *root, bool is_main)
{
    static const char *const sections[] = {"daemon", "http01",      "ca",
                                           "dns",    "certificate", "notify"};

    for (size_t i = 0; i < root->n; i++) {
        const struct toml_keyval *kv = &root->items[i];
        const char *k = kv->key;

        if (strlen(k) != kv->keylen) {
            unknown_key(c, kv, NULL, sections, 6);
        } else if (strcmp(k, "daemon") == 0 || strcmp(k, "http01") == 0) {
            if (!is_main) {
                ERR(c, kv->keypos, k, "[%s] is only allowed in the main file %s", k,
                    c->cfg->files.v[0]);
            } else if (kv->val.type != TOML_TABLE) {
                char want[32];
                snprintf(want, sizeof(want), "a table [%s]", k);
                type_error(c, &kv->val, k, want);
            } else if (k[0] == 'd') {
                apply(c, kv->val.u.tab, kv->keypos, k, daemon_specs, &c->cfg->daemon, -1, NULL);
                if (toml_table_get(kv->val.u.tab, "include") != NULL) {
                    c->include_set = true;
                    c->include_pos = toml_table_get(kv->val.u.tab, "include")->val.pos;
                }
            } else {
                apply(c, kv->val.u.tab, kv->keypos, k, http01_specs, &c->cfg->http01, -1, NULL);
            }
        } else if (strcmp(k, "ca") == 0) {
            load_named(c, kv, load_ca);
        } else if (strcmp(k, "dns") == 0) {
            load_named(c, kv, load_dns);
        } else if (strcmp(k, "notify") == 0) {
            load_named(c, kv, load_notify);
        } else if (strcmp(k, "certificate") == 0) {
            load_named(c, kv, load_cert);
        } else {
            unknown_key(c, kv, NULL, sections, 6);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

static size_t add_file(struct config *cfg, const char *path)
{
    size_t cap = cfg->files.n + 1;

    cfg->files.v = xrealloc(cfg->files.v, (cap + 1) * sizeof(char *));
    cfg->files.v[cfg->files.n] = xstrdup(path);
    cfg->files.v[cfg->files.n + 1] = NULL;
    return cfg->files.n++;
}

/* Reads and parses one file; reports problems. Returns 0, -errno, or
 * ERR_PARSE. */
static int read_file(struct cctx *c, size_t file, struct toml_table **root)
{
    struct buf b = BUF_INIT(CONFIG_FILE_MAX);
    struct toml_error terr;
    const char *path = c->cfg->files.v[file];
    struct toml_pos nopos = {0, 0};

    int rc = buf_read_file(&b, path);
    if (rc < 0) {
        if (rc == ERR_TOO_BIG)
            cerr(c, file, nopos, NULL, "cannot read: larger than %u MiB", CONFIG_FILE_MAX >> 20);
        else
            cerr(c, file, nopos, NULL, "cannot read: %s", strerror(-rc));
        buf_fini(&b);
        return rc;
    }
    memset(&terr, 0, sizeof(terr));
    rc = toml_parse((const uint8_t *)(b.data != NULL ? b.data : ""), b.len, root, &terr);
    buf_fini(&b);
    if (rc < 0) {
        terr.msg[sizeof(terr.msg) - 1] = '\0';
        for (char *p = terr.msg; *p != '\0'; p++) {
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        }
        if (terr.pos.line == 0)
            terr.pos.line = 1;
        if (terr.pos.col == 0)
            terr.pos.col = 1;
        cerr(c, file, terr.pos, NULL, "%s", terr.msg);
        return ERR_PARSE;
    }
    return 0;
}

static int strp_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_includes(struct cctx *c, const struct stat *main_st)
{
    const char *pattern = c->cfg->daemon.include;
    const char *mainp = c->cfg->path;
    char *full;
    glob_t g;

    if (pattern[0] == '/') {
        full = xstrdup(pattern);
    } else {
        const char *slash = strrchr(mainp, '/');
        if (slash == NULL)
            full = xstrdup(pattern);
        else if (slash == mainp)
            full = xasprintf("/%s", pattern);
        else
            full = xasprintf("%.*s/%s", (int)(slash - mainp), mainp, pattern);
    }
    memset(&g, 0, sizeof(g));
    int rc = glob(full, GLOB_NOSORT, NULL, &g);
    if (rc != 0 && rc != GLOB_NOMATCH) {
        struct toml_pos pos = c->include_set ? c->include_pos : (struct toml_pos){0, 0};
        cerr(c, 0, pos, "daemon.include", "cannot expand \"%s\"", full);
    }
    if (rc == 0) {
        qsort(g.gl_pathv, g.gl_pathc, sizeof(char *), strp_cmp);
        for (size_t i = 0; i < g.gl_pathc; i++) {
            struct stat st;
            if (stat(g.gl_pathv[i], &st) == 0 && st.st_dev == main_st->st_dev &&
                st.st_ino == main_st->st_ino)
                continue; /* the pattern also matches the main file */
            struct toml_table *root = NULL;
            c->file = add_file(c->cfg, g.gl_pathv[i]);
            if (read_file(c, c->file, &root) == 0) {
                load_root(c, root, false);
                toml_table_free(root);
            }
        }
    }
    globfree(&g);
    free(full);
}

/* ------------------------------------------------------------------------ */
/* Cross-file checks                                                         */

static int sortkey_cmp(const void *a, const void *b)
{
    const struct sortkey *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    if (r != 0)
        return r;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sorts definitions by name and reports every later definition of a name.
 * Returns the number kept; dropped duplicates have obj set to NULL after
 * being passed to drop. */
static size_t dedupe(struct cctx *c, struct sortkey *k, size_t n, const char *section,
                     void (*drop)(void *))
{
    size_t kept = 0;

    if (n == 0)
        return 0;
    qsort(k, n, sizeof(*k), sortkey_cmp);
    for (size_t i = 0; i < n; i++) {
        if (kept > 0 && strcmp(k[kept - 1].name, k[i].name) == 0) {
            const struct sortkey *first = &k[kept - 1];
            char *path = path_join(section, k[i].name, strlen(k[i].name));
            cerr(c, k[i].file, k[i].pos, path, "defined twice: also at %s:%u:%u",
                 c->cfg->files.v[first->file], (unsigned)first->pos.line, (unsigned)first->pos.col);
            free(path);
            drop(k[i].obj);
            continue;
        }
        k[kept++] = k[i];
    }
    return kept;
}

static void drop_ca(void *p)
{
    ca_fini(p);
    free(p);
}

static void drop_dns(void *p)
{
    dns_fini(p);
    free(p);
}

static void drop_notify(void *p)
{
    notify_fini(p);
    free(p);
}

static void drop_cert(void *p)
{
    struct cert_tmp *ct = p;
    cert_fini(&ct->c);
    cert_tmp_free(ct);
}

static const char *const *names_of_cas(const struct config *cfg, const char **buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_cas && n + 1 < cap; i++)
        buf[n++] = cfg->cas[i].name;
    buf[n] = NULL;
    return buf;
}

static void resolve_cert(struct cctx *c, struct cert_tmp *ct)
{
    struct config *cfg = c->cfg;
    bool imported = ct->c.import_cert != NULL;
    char b[256];

    if (ct->ca_name != NULL) {
        ct->c.ca = (struct cfg_ca *)config_ca_find(cfg, ct->ca_name);
        if (ct->c.ca == NULL) {
            const char *names[65];
            size_t n = 0;
            names_of_cas(cfg, names, 65);
            while (names[n] != NULL)
                n++;
            const char *best = closest(ct->ca_name, names, n);
            char *p = xasprintf("%s.ca", ct->path);
            if (best != NULL)
                cerr(c, ct->file, ct->ca_pos, p, "no [ca.%s] is defined; did you mean '%s'?",
                     show(b, sizeof(b), ct->ca_name), best);
            else
                cerr(c, ct->file, ct->ca_pos, p, "no [ca.%s] is defined",
                     show(b, sizeof(b), ct->ca_name));
            free(p);
        }
    } else if (!imported) {
        if (cfg->n_cas == 1)
            ct->c.ca = &cfg->cas[0];
        else if (cfg->n_cas == 0)
            cerr(c, ct->file, ct->c.where.pos, ct->path, "no ca given and no [ca.NAME] is defined");
        else
            cerr(c, ct->file, ct->c.where.pos, ct->path,
                 "missing required key 'ca' (there is more than one [ca.NAME])");
    }

    bool issued = ct->c.ca != NULL || (!imported && ct->ca_name == NULL);
    if (ct->c.challenge == CFG_CHAL_DNS01 && issued) {
        if (ct->dns_name != NULL) {
            ct->c.dns = (struct cfg_dns *)config_dns_find(cfg, ct->dns_name);
            if (ct->c.dns == NULL) {
                char *p = xasprintf("%s.dns", ct->path);
                cerr(c, ct->file, ct->dns_pos, p, "no [dns.%s] is defined",
                     show(b, sizeof(b), ct->dns_name));
                free(p);
            }
        } else if (cfg->n_dns == 1) {
            ct->c.dns = &cfg->dns[0];
        } else {
            cerr(c, ct->file, ct->challenge_pos, ct->path,
                 cfg->n_dns == 0 ? "challenge = \"dns-01\" needs a [dns.NAME] solver"
                                 : "challenge = \"dns-01\" needs dns = NAME (there is more than "
                                   "one [dns.NAME])");
        }
    }
    if (ct->domains_bad || !issued)
        return;

    const char *public_name = ct->c.ca != NULL ? public_ca_name(ct->c.ca->directory) : NULL;
    for (size_t i = 0; i < ct->c.domains.n; i++) {
        const char *d = ct->c.domains.v[i];
        char *p = NULL;
        if (d[0] == '*' && ct->c.challenge != CFG_CHAL_DNS01) {
            p = xasprintf("%s.domains[%zu]", ct->path, i);
            cerr(c, ct->file, ct->dom_pos[i], p,
                 "the wildcard name \"%s\" needs challenge = \"dns-01\"", d);
        }
        const char *why = public_name != NULL ? private_name_reason(d) : NULL;
        if (why != NULL) {
            if (p == NULL)
                p = xasprintf("%s.domains[%zu]", ct->path, i);
            cerr(c, ct->file, ct->dom_pos[i], p,
                 "not a public name: %s cannot issue for %s; use a private CA", public_name, why);
        }
        free(p);
    }
}

static int output_cmp(const void *a, const void *b)
{
    const struct output *x = a, *y = b;
    int r = strcmp(x->file, y->file);
    if (r != 0)
        return r;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Two deploy actions writing one file would overwrite each other. */
static void check_outputs(struct cctx *c)
{
    char b[256];

    if (c->n_outputs == 0)
        return;
    qsort(c->outputs, c->n_outputs, sizeof(*c->outputs), output_cmp);
    for (size_t i = 1, first = 0; i < c->n_outputs; i++) {
        const struct output *o = &c->outputs[i];
        if (strcmp(o->file, c->outputs[first].file) != 0) {
            first = i;
            continue;
        }
        const struct output *f = &c->outputs[first];
        cerr(c, o->src, o->pos, o->keypath, "%s is also written by %s at %s:%u:%u",
             show(b, sizeof(b), o->file), f->keypath, c->cfg->files.v[f->src],
             (unsigned)f->pos.line, (unsigned)f->pos.col);
    }
}

static void finish(struct cctx *c)
{
    struct config *cfg = c->cfg;

    check_outputs(c);

    size_t n = dedupe(c, c->cas, c->n_cas, "ca", drop_ca);
    cfg->cas = xcalloc(n ? n : 1, sizeof(*cfg->cas));
    for (size_t i = 0; i < n; i++) {
        cfg->cas[i] = *(struct cfg_ca *)c->cas[i].obj;
        free(c->cas[i].obj);
    }
    cfg->n_cas = n;
    c->n_cas = 0;

    n = dedupe(c, c->dns, c->n_dns, "dns", drop_dns);
    cfg->dns = xcalloc(n ? n : 1, sizeof(*cfg->dns));
    for (size_t i = 0; i < n; i++) {
        cfg->dns[i] = *(struct cfg_dns *)c->dns[i].obj;
        free(c->dns[i].obj);
    }
    cfg->n_dns = n;
    c->n_dns = 0;

    n = dedupe(c, c->notify, c->n_notify, "notify", drop_notify);
    cfg->notify = xcalloc(n ? n : 1, sizeof(*cfg->notify));
    for (size_t i = 0; i < n; i++) {
        cfg->notify[i] = *(struct cfg_notify *)c->notify[i].obj;
        free(c->notify[i].obj);
    }
    cfg->n_notify = n;
    c->n_notify = 0;

    n = dedupe(c, c->certs, c->n_certs, "certificate", drop_cert);
    cfg->certs = xcalloc(n ? n : 1, sizeof(*cfg->certs));
    for (size_t i = 0; i < n; i++) {
        struct cert_tmp *ct = c->certs[i].obj;
        resolve_cert(c, ct);
        cfg->certs[i] = ct->c;
        cert_tmp_free(ct);
    }
    cfg->n_certs = n;
    c->n_certs = 0;
}

/* ------------------------------------------------------------------------ */
/* Snapshot                                                                  */

static void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    strv_free(&cfg->files);
    free(cfg->daemon.state_dir);
    free(cfg->daemon.control_socket);
    free(cfg->daemon.include);
    free(cfg->daemon.hooks_dir);
    strv_free(&cfg->daemon.resolvers);
    strv_free(&cfg->http01.listen);
    for (size_t i = 0; i < cfg->n_cas; i++)
        ca_fini(&cfg->cas[i]);
    free(cfg->cas);
    for (size_t i = 0; i < cfg->n_dns; i++)
        dns_fini(&cfg->dns[i]);
    free(cfg->dns);
    for (size_t i = 0; i < cfg->n_notify; i++)
        notify_fini(&cfg->notify[i]);
    free(cfg->notify);
    for (size_t i = 0; i < cfg->n_certs; i++)
        cert_fini(&cfg->certs[i]);
    free(cfg->certs);
    free(cfg);
}

static void cctx_fini(struct cctx *c)
{
    for (size_t i = 0; i < c->n_cas; i++)
        drop_ca(c->cas[i].obj);
    for (size_t i = 0; i < c->n_dns; i++)
        drop_dns(c->dns[i].obj);
    for (size_t i = 0; i < c->n_notify; i++)
        drop_notify(c->notify[i].obj);
    for (size_t i = 0; i < c->n_certs; i++)
        drop_cert(c->certs[i].obj);
    free(c->cas);
    free(c->dns);
    free(c->notify);
    free(c->certs);
    for (size_t i = 0; i < c->n_errs; i++)
        free(c->errs[i].text);
    free(c->errs);
    for (size_t i = 0; i < c->n_users; i++)
        free(c->users[i].name);
    free(c->users);
    for (size_t i = 0; i < c->n_groups; i++)
        free(c->groups[i].name);
    free(c->groups);
    free(c->lastdir);
    for (size_t i = 0; i < c->n_outputs; i++) {
        free(c->outputs[i].file);
        free(c->outputs[i].keypath);
    }
    free(c->outputs);
}

static void flush_errors(struct cctx *c, struct config_diag *diag)
{
    if (c->n_errs > 0)
        qsort(c->errs, c->n_errs, sizeof(*c->errs), pending_cmp);
    for (size_t i = 0; i < c->n_errs; i++) {
        if (diag != NULL)
            config_diag_add(diag, "%s", c->errs[i].text);
    }
}

int config_load(const char *path, struct config **out, struct config_diag *diag)
{
    static const char *const default_listen[] = {"[::]:80", "0.0.0.0:80", NULL};
    struct cctx c;
    struct config *cfg = xcalloc(1, sizeof(*cfg));
    struct toml_table *root = NULL;
    struct stat main_st;
    int rc;

    memset(&c, 0, sizeof(c));
    c.cfg = cfg;
    cfg->refs = 1;
    cfg->path = xstrdup(path);
    cfg->daemon.state_dir = xstrdup("/var/lib/certloop");
    cfg->daemon.control_socket = xstrdup("/run/certloop/control.sock");
    cfg->daemon.max_concurrent_orders = 64;
    cfg->daemon.log_level = LOG_LVL_INFO;
    cfg->daemon.include = xstrdup("conf.d/*.toml");
    cfg->daemon.hooks_dir = xstrdup("/etc/certloop/hooks.d");
    cfg->daemon.expiring_window_s = (int64_t)14 * 86400;
    cfg->daemon.backoff_max_s = (int64_t)6 * 3600;
    cfg->files.v = xcalloc(1, sizeof(char *));

    c.file = add_file(cfg, path);
    rc = read_file(&c, 0, &root);
    if (rc < 0) {
        flush_errors(&c, diag);
        rc = rc == ERR_PARSE || rc == ERR_TOO_BIG ? ERR_CONFIG : rc;
        goto out;
    }
    if (stat(path, &main_st) < 0)
        memset(&main_st, 0, sizeof(main_st));
    load_root(&c, root, true);
    toml_table_free(root);
    if (cfg->http01.listen.v == NULL)
        strv_dup(&cfg->http01.listen, default_listen);
    if (cfg->daemon.resolvers.v == NULL)
        cfg->daemon.resolvers.v = xcalloc(1, sizeof(char *));

    load_includes(&c, &main_st);
    finish(&c);

    if (c.n_errs > 0) {
        flush_errors(&c, diag);
        rc = ERR_CONFIG;
        goto out;
    }
    *out = cfg;
    cfg = NULL;
    rc = 0;
out:
    cctx_fini(&c);
    config_free(cfg);
    return rc;
}

struct config *config_ref(struct config *cfg)
{
    if (cfg != NULL)
        cfg->refs++;
    return cfg;
}

void config_unref(struct config *cfg)
{
    if (cfg == NULL)
        return;
    if (--cfg->refs == 0)
        config_free(cfg);
}

#define DEFINE_FIND(fn, type, arr, count)                                                          \
    const type *fn(const struct config *cfg, const char *name)                                     \
    {                                                                                              \
        size_t lo = 0, hi = cfg->count;                                                            \
        while (lo < hi) {                                                                          \
            size_t mid = lo + (hi - lo) / 2;                                                       \
            int r = strcmp(name, cfg->arr[mid].name);                                              \
            if (r == 0)                                                                            \
                return &cfg->arr[mid];                                                             \
            if (r < 0)                                                                             \
                hi = mid;                                                                          \
            else                                                                                   \
                lo = mid + 1;                                                                      \
        }                                                                                          \
        return NULL;                                                                               \
    }

DEFINE_FIND(config_cert_find, struct cfg_cert, certs, n_certs)
DEFINE_FIND(config_ca_find, struct cfg_ca, cas, n_cas)
DEFINE_FIND(config_dns_find, struct cfg_dns, dns, n_dns)
DEFINE_FIND(config_notify_find, struct cfg_notify, notify, n_notify)

const char *config_key_type_name(enum cfg_key_type k)
{
    return (unsigned)k < CFG_KEY__MAX ? key_type_names[k] : "?";
}

const char *config_challenge_name(enum cfg_challenge ch)
{
    return (unsigned)ch <= CFG_CHAL_DNS01 ? challenge_names[ch] : "?";
}

const char *config_dns_type_name(enum cfg_dns_type t)
{
    return (unsigned)t <= CFG_DNS_CALLBACK ? dns_type_names[t] : "?";
}

static bool str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

bool config_cert_equal_order(const struct cfg_cert *a, const struct cfg_cert *b)
{
    if (!config_strv_equal(&a->domains, &b->domains) || a->key != b->key ||
        a->challenge != b->challenge)
        return false;
    if ((a->ca == NULL) != (b->ca == NULL))
        return false;
    if (a->ca != NULL &&
        (!str_eq(a->ca->directory, b->ca->directory) || !str_eq(a->ca->profile, b->ca->profile)))
        return false;
    if ((a->dns == NULL) != (b->dns == NULL))
        return false;
    return a->dns == NULL || str_eq(a->dns->name, b->dns->name);
}

static bool deploy_eq(const struct cfg_deploy *a, const struct cfg_deploy *b)
{
    return a->type == b->type && str_eq(a->cert, b->cert) && str_eq(a->chain, b->chain) &&
           str_eq(a->fullchain, b->fullchain) && str_eq(a->key, b->key) &&
           str_eq(a->bundle, b->bundle) && str_eq(a->pkcs12, b->pkcs12) &&
           str_eq(a->pkcs12_password_file, b->pkcs12_password_file) &&
           a->pkcs12_legacy == b->pkcs12_legacy && str_eq(a->owner, b->owner) &&
           str_eq(a->group, b->group) && a->uid == b->uid && a->gid == b->gid &&
           a->has_mode == b->has_mode && (!a->has_mode || a->mode == b->mode) &&
           config_strv_equal(&a->command, &b->command) && a->timeout_s == b->timeout_s &&
           a->per_certificate == b->per_certificate;
}

bool config_cert_equal_deploy(const struct cfg_cert *a, const struct cfg_cert *b)
{
    if (a->n_deploy != b->n_deploy)
        return false;
    for (size_t i = 0; i < a->n_deploy; i++) {
        if (!deploy_eq(&a->deploy[i], &b->deploy[i]))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Diagnostics                                                               */

void config_diag_init(struct config_diag *d)
{
    d->lines = NULL;
    d->n = 0;
    d->cap = 0;
}

void config_diag_fini(struct config_diag *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->lines[i]);
    free(d->lines);
    config_diag_init(d);
}

void config_diag_add(struct config_diag *d, const char *fmt, ...)
{
    va_list ap, ap2;

    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    char *line = xmalloc((size_t)n + 1);
    vsnprintf(line, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    d->lines = xreallocarray_grow(d->lines, &d->cap, d->n + 1, sizeof(char *));
    d->lines[d->n++] = line;
}
