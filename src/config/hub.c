/* [hub.NAME] (another certloop's HTTPS API) and a certificate's
 * from = "hub.NAME": the checks of their values, the keys a pulled
 * certificate refuses, and the reference's resolution. The key tables are
 * schema.c's; what the daemon does with them is reactor/pull.c's. */
#include "config/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"
#include "util/xalloc.h"

/* https://HOST[:PORT] only: the token travels in every request, so never
 * over plain HTTP; no path, query or user, since /v1/... is appended. */
bool config_check_hub_url(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                          void *field)
{
    char **u = field;
    char host[256], b[256];
    bool https = false;

    (void)obj;
    size_t n = strlen(*u);
    while (n > 8 && (*u)[n - 1] == '/') /* "https://hub:8443/" is the same */
        (*u)[--n] = '\0';
    if (!config_url_split(*u, &https, host, sizeof(host)) || !https ||
        strpbrk(*u + 8, "/?#") != NULL) {
        ERR(c, kv->val.pos, path,
            "\"%s\" is not https://HOST[:PORT] (the hub's API: https only, since the token goes "
            "with every request; no path)",
            config_show(b, sizeof(b), *u));
        return false;
    }
    return true;
}

/* A PEM file holding at least one certificate (and no private key: the
 * trust file is not a secret, a key in it is a mistake worth saying). */
bool config_check_hub_trust(struct cctx *c, const struct toml_keyval *kv, const char *path,
                            void *obj, void *field)
{
    const char *f = *(char **)field;
    size_t cap = 1024 * 1024;
    char b[256];

    if (!config_check_file_exists(c, kv, path, obj, field))
        return false;
    FILE *fp = fopen(f, "re");
    if (fp == NULL) {
        ERR(c, kv->val.pos, path, "%s cannot be read", config_show(b, sizeof(b), f));
        return false;
    }
    char *text = xmalloc(cap + 1);
    size_t n = fread(text, 1, cap, fp);
    fclose(fp);
    text[n] = '\0';
    bool ok = strstr(text, "-----BEGIN CERTIFICATE-----") != NULL;
    bool key = strstr(text, "PRIVATE KEY-----") != NULL;
    free(text);
    if (!ok) {
        ERR(c, kv->val.pos, path,
            "%s holds no PEM certificate (trust is the CA certificate that issued the hub's "
            "certificate, or the hub's certificate itself)",
            config_show(b, sizeof(b), f));
        return false;
    }
    if (key) {
        ERR(c, kv->val.pos, path,
            "%s holds a private key: trust needs certificates only (never copy a key here)",
            config_show(b, sizeof(b), f));
        return false;
    }
    return true;
}

bool config_conv_cert_from(struct cctx *c, const struct toml_keyval *kv, const char *path,
                           void *obj, void *field)
{
    struct cert_tmp *ct = obj;
    char *v = NULL;
    char b[256];

    (void)field;
    if (!config_conv_str(c, kv, path, &v, false))
        return false;
    if (strncmp(v, "hub.", 4) != 0 || v[4] == '\0') {
        ERR(c, kv->val.pos, path, "\"%s\" is not \"hub.NAME\" (a [hub.NAME] section)",
            config_show(b, sizeof(b), v));
        free(v);
        ct->hub_name = xstrdup(""); /* pulled all the same: no "no ca given" error besides */
        return false;
    }
    ct->hub_name = xstrdup(v + 4);
    ct->from_pos = kv->val.pos;
    free(v);
    return true;
}

/* Keys a pulled certificate cannot use: the hub orders it, this host
 * only deploys what the hub hands out. */
static const struct {
    const char *key, *why;
} refused[] = {
    {"ca", "the hub orders it: this host needs no CA"},
    {"key", "the hub chooses the key type"},
    {"challenge", "the hub proves control of the names"},
    {"dns", "the hub proves control of the names (no DNS credentials here)"},
    {"renew_before", "the hub decides when it renews (set it there)"},
    {"reuse_key", "the hub decides whether renewals keep the key (set it there)"},
    {"import", "a certificate is either pulled or imported"},
};

void config_check_from_keys(struct cctx *c, struct cert_tmp *ct, const struct toml_table *t)
{
    if (ct->hub_name == NULL)
        return;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        const struct toml_keyval *kv = toml_table_get(t, refused[i].key);
        if (kv == NULL)
            continue;
        char *p = xasprintf("%s.%s", ct->path, refused[i].key);
        ERR(c, kv->keypos, p, "not allowed with from = \"hub.%s\": %s", ct->hub_name,
            refused[i].why);
        free(p);
    }
}

void config_resolve_from(struct cctx *c, struct cert_tmp *ct)
{
    char b[256];

    ct->c.hub = (struct cfg_hub *)config_hub_find(c->cfg, ct->hub_name);
    if (ct->c.hub != NULL || ct->hub_name[0] == '\0') /* "" : from itself was refused */
        return;
    char *p = xasprintf("%s.from", ct->path);
    config_err(c, ct->file, ct->from_pos, p, "no [hub.%s] is defined",
               config_show(b, sizeof(b), ct->hub_name));
    free(p);
}
