/* The configuration schema: one table of `struct spec` per section, the
 * engine that applies a table to a TOML table (types, required keys, keys
 * restricted to a `type`, unknown keys with a suggestion), and the loaders
 * of the sections ([daemon], [http01], [ca.NAME], [dns.NAME],
 * [notify.NAME], [certificate.NAME] and its deploy list). Value parsing is
 * values.c's, checks against the system and between sections checks.c's. */
#include "config/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "util/xalloc.h"

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
        ok = config_conv_str(c, kv, path, field, sp->kind == SK_PATH);
        break;
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
        config_join_names(list, sizeof(list), sp->names);
        if (v->type != TOML_STRING) {
            char want[300];
            snprintf(want, sizeof(want), "a string (%s)", list);
            config_type_error(c, v, path, want);
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
        char *kpath = config_path_join(path, kv->key, kv->keylen);
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

static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};

static const char *const key_type_names[] = {"ec-p256", "ec-p384", "rsa2048",
                                             "rsa3072", "rsa4096", NULL};

static const char *const challenge_names[] = {"http-01", "dns-01", NULL};

static const char *const dns_type_names[] = {"rfc2136", "exec", "callback", NULL};

static const char *const deploy_type_names[] = {"files", "exec", NULL};

#define DAEMON(f) offsetof(struct cfg_daemon, f)

static const struct spec daemon_specs[] = {
    {"state_dir", SK_PATH, false, DAEMON(state_dir), NULL, NULL, NULL, 0, 0, 0},
    {"control_socket", SK_PATH, false, DAEMON(control_socket), config_check_socket_path, NULL, NULL,
     0, 0, 0},
    {"max_concurrent_orders", SK_UINT, false, DAEMON(max_concurrent_orders), NULL, NULL, NULL, 0, 1,
     10000},
    {"log_level", SK_ENUM, false, DAEMON(log_level), NULL, log_level_names, NULL, 0, 0, 0},
    {"include", SK_STR, false, DAEMON(include), NULL, NULL, NULL, 0, 0, 0},
    {"resolvers", SK_STRV, false, DAEMON(resolvers), config_check_dns_addrs, NULL, NULL, 0, 0, 0},
    {"hooks_dir", SK_PATH, false, DAEMON(hooks_dir), NULL, NULL, NULL, 0, 0, 0},
    {"expiring_window", SK_DURATION, false, DAEMON(expiring_window_s), NULL, NULL, NULL, 0, 1, 0},
    {"backoff_max", SK_DURATION, false, DAEMON(backoff_max_s), NULL, NULL, NULL, 0, 60, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

static const struct spec http01_specs[] = {
    {"listen", SK_STRV, false, offsetof(struct cfg_http01, listen), config_check_listen, NULL, NULL,
     0, 0, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

#define CA(f) offsetof(struct cfg_ca, f)

static const struct spec eab_specs[] = {
    {"kid", SK_STR, true, CA(eab_kid), NULL, NULL, NULL, 0, 0, 0},
    {"hmac_key_file", SK_PATH, true, CA(eab_hmac_key_file), config_check_secret, NULL, NULL, 0, 0,
     0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

static const struct spec ca_specs[] = {
    {"directory", SK_STR, true, CA(directory), config_check_ca_url, NULL, NULL, 0, 0, 0},
    {"contact", SK_STRV, false, CA(contact), config_check_contact, NULL, NULL, 0, 0, 0},
    {"agree_tos", SK_BOOL, false, CA(agree_tos), NULL, NULL, NULL, 0, 0, 0},
    {"trust", SK_PATH, false, CA(trust), config_check_file_exists, NULL, NULL, 0, 0, 0},
    {"eab", SK_SUB, false, 0, NULL, NULL, eab_specs, 0, 0, 0},
    {"preferred_chain", SK_STR, false, CA(preferred_chain), NULL, NULL, NULL, 0, 0, 0},
    {"profile", SK_STR, false, CA(profile), NULL, NULL, NULL, 0, 0, 0},
    {"profile_fallback", SK_BOOL, false, CA(profile_fallback), NULL, NULL, NULL, 0, 0, 0},
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
    {"algorithm", SK_STR, false, DNS(tsig.algorithm), config_check_tsig_alg, NULL, NULL, 0, 0, 0},
    {"secret_file", SK_PATH, true, DNS(tsig.secret_file), config_check_secret, NULL, NULL, 0, 0, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

static const struct spec dns_specs[] = {
    {"type", SK_ENUM, true, DNS(type), NULL, dns_type_names, NULL, 0, 0, 0},
    {"server", SK_STR, true, DNS(server), config_check_dns_addr, NULL, NULL, T_RFC2136, 0, 0},
    {"zone", SK_STR, false, DNS(zone), config_check_zone, NULL, NULL, T_RFC2136, 0, 0},
    {"tsig", SK_SUB, false, 0, NULL, NULL, tsig_specs, T_RFC2136, 0, 0},
    {"command", SK_STRV, true, DNS(command), config_check_command, NULL, NULL, T_EXEC, 0, 0},
    {"url", SK_STR, true, DNS(url), config_check_http_url, NULL, NULL, T_CALLBACK, 0, 0},
    {"secret_file", SK_PATH, false, DNS(secret_file), config_check_secret, NULL, NULL, T_CALLBACK,
     0, 0},
    {"trust", SK_PATH, false, DNS(trust), config_check_file_exists, NULL, NULL, T_CALLBACK, 0, 0},
    {"timeout", SK_DURATION, false, DNS(timeout_s), NULL, NULL, NULL, T_EXEC | T_CALLBACK, 1, 0},
    {"nameservers", SK_STRV, false, DNS(nameservers), config_check_dns_addrs, NULL, NULL, 0, 0, 0},
    {"propagation_timeout", SK_DURATION, false, DNS(propagation_timeout_s), NULL, NULL, NULL, 0, 1,
     0},
    {"poll_interval", SK_DURATION, false, DNS(poll_interval_s), NULL, NULL, NULL, 0, 1, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

#define NOTIFY(f) offsetof(struct cfg_notify, f)

static const struct spec notify_specs[] = {
    {"url", SK_STR, true, NOTIFY(url), config_check_http_url, NULL, NULL, 0, 0, 0},
    {"secret_file", SK_PATH, false, NOTIFY(secret_file), config_check_secret, NULL, NULL, 0, 0, 0},
    {"events", SK_CUSTOM, false, NOTIFY(events), config_conv_events, NULL, NULL, 0, 0, 0},
    {"trust", SK_PATH, false, NOTIFY(trust), config_check_file_exists, NULL, NULL, 0, 0, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

#define DEPLOY(f) offsetof(struct cfg_deploy, f)

#define T_FILES (1u << CFG_DEPLOY_FILES)

#define T_DEXEC (1u << CFG_DEPLOY_EXEC)

static const struct spec deploy_specs[] = {
    {"type", SK_ENUM, true, DEPLOY(type), NULL, deploy_type_names, NULL, 0, 0, 0},
    {"cert", SK_PATH, false, DEPLOY(cert), config_check_parent_dir, NULL, NULL, T_FILES, 0, 0},
    {"chain", SK_PATH, false, DEPLOY(chain), config_check_parent_dir, NULL, NULL, T_FILES, 0, 0},
    {"fullchain", SK_PATH, false, DEPLOY(fullchain), config_check_parent_dir, NULL, NULL, T_FILES,
     0, 0},
    {"key", SK_PATH, false, DEPLOY(key), config_check_parent_dir, NULL, NULL, T_FILES, 0, 0},
    {"bundle", SK_PATH, false, DEPLOY(bundle), config_check_parent_dir, NULL, NULL, T_FILES, 0, 0},
    {"pkcs12", SK_PATH, false, DEPLOY(pkcs12), config_check_parent_dir, NULL, NULL, T_FILES, 0, 0},
    {"pkcs12_password_file", SK_PATH, false, DEPLOY(pkcs12_password_file), config_check_secret,
     NULL, NULL, T_FILES, 0, 0},
    {"pkcs12_legacy", SK_BOOL, false, DEPLOY(pkcs12_legacy), NULL, NULL, NULL, T_FILES, 0, 0},
    {"owner", SK_STR, false, DEPLOY(owner), config_check_owner, NULL, NULL, T_FILES, 0, 0},
    {"group", SK_STR, false, DEPLOY(group), config_check_group, NULL, NULL, T_FILES, 0, 0},
    {"mode", SK_CUSTOM, false, DEPLOY(mode), config_conv_mode, NULL, NULL, T_FILES, 0, 0},
    {"command", SK_STRV, true, DEPLOY(command), config_check_command, NULL, NULL, T_DEXEC, 0, 0},
    {"timeout", SK_DURATION, false, DEPLOY(timeout_s), NULL, NULL, NULL, T_DEXEC, 1, 0},
    {"per_certificate", SK_BOOL, false, DEPLOY(per_certificate), NULL, NULL, NULL, T_DEXEC, 0, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

static bool conv_deploy(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                        void *field);

#define CERT(f) offsetof(struct cert_tmp, f)

static const struct spec import_specs[] = {
    {"cert", SK_PATH, true, CERT(c.import_cert), config_check_file_exists, NULL, NULL, 0, 0, 0},
    {"key", SK_PATH, true, CERT(c.import_key), config_check_file_exists, NULL, NULL, 0, 0, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

static const struct spec cert_specs[] = {
    {"domains", SK_CUSTOM, false, CERT(c.domains), config_conv_domains, NULL, NULL, 0, 0, 0},
    {"ca", SK_CUSTOM, false, CERT(ca_name), config_conv_cert_ca, NULL, NULL, 0, 0, 0},
    {"key", SK_ENUM, false, CERT(c.key), NULL, key_type_names, NULL, 0, 0, 0},
    {"challenge", SK_ENUM, false, CERT(c.challenge), config_check_challenge, challenge_names, NULL,
     0, 0, 0},
    {"dns", SK_CUSTOM, false, CERT(dns_name), config_conv_cert_dns, NULL, NULL, 0, 0, 0},
    {"renew_before", SK_DURATION, false, CERT(c.renew_before_s), NULL, NULL, NULL, 0, 1, 0},
    {"deploy", SK_CUSTOM, false, CERT(c.deploy), conv_deploy, NULL, NULL, 0, 0, 0},
    {"import", SK_SUB, false, 0, NULL, NULL, import_specs, 0, 0, 0},
    {NULL, 0, false, 0, NULL, NULL, NULL, 0, 0, 0},
};

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
        config_type_error(c, v, path, "an array of tables ([[...deploy]])");
        return false;
    }
    const struct toml_array *a = v->u.arr;
    ct->c.deploy = xcalloc(a->n ? a->n : 1, sizeof(struct cfg_deploy));
    for (size_t i = 0; i < a->n; i++) {
        const struct toml_value *e = &a->items[i];
        char *ep = xasprintf("%s[%zu]", path, i);
        if (e->type != TOML_TABLE) {
            config_type_error(c, e, ep, "a table");
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

static void load_ca(struct cctx *c, const struct toml_keyval *kv, const char *path)
{
    struct cfg_ca *ca = xcalloc(1, sizeof(*ca));

    ca->name = xstrndup(kv->key, kv->keylen);
    ca->where.file = c->cfg->files.v[c->file];
    ca->where.pos = kv->keypos;
    ca->max_new_orders = 250; /* Let's Encrypt allows 300 per account per 3 hours */
    config_check_object_name(c, "CA", ca->name, path, kv->keypos);
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
    config_check_object_name(c, "certificate", ct->c.name, path, kv->keypos);
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
        config_type_error(c, &sect->val, sect->key, want);
        return;
    }
    const struct toml_table *t = sect->val.u.tab;
    for (size_t i = 0; i < t->n; i++) {
        const struct toml_keyval *kv = &t->items[i];
        char *path = config_path_join(sect->key, kv->key, kv->keylen);
        if (kv->val.type != TOML_TABLE) {
            char want[300], b[200];
            snprintf(want, sizeof(want), "a table [%s.%s]", sect->key,
                     config_show(b, sizeof(b), kv->key));
            config_type_error(c, &kv->val, path, want);
        } else if (strlen(kv->key) != kv->keylen) {
            ERR(c, kv->keypos, path, "a name must not contain NUL characters");
        } else {
            load(c, kv, path);
        }
        free(path);
    }
}

void config_load_root(struct cctx *c, const struct toml_table *root, bool is_main)
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
                config_type_error(c, &kv->val, k, want);
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
