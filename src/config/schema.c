/* The configuration schema: one table of `struct spec` per section (every
 * key, its type, checks and default), the loaders of the sections ([daemon],
 * [http01], [ca.NAME], [dns.NAME], [notify.NAME], [certificate.NAME] and its
 * deploy list) and config_schema_foreach. The engine that applies a table is
 * spec.c's, value parsing values.c's, checks against the system and between
 * sections checks.c's. */
#include "config/config.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "util/xalloc.h"

static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};

static const char *const key_type_names[] = {"ec-p256", "ec-p384", "rsa2048",
                                             "rsa3072", "rsa4096", NULL};

static const char *const challenge_names[] = {"http-01",        "dns-01",         "tls-alpn-01",
                                              "dns-account-01", "dns-persist-01", NULL};

static const char *const dns_type_names[] = {"rfc2136", "exec", "callback", NULL};

static const char *const deploy_type_names[] = {"files", "exec", NULL};

#define DAEMON(f) offsetof(struct cfg_daemon, f)

static const struct spec daemon_specs[] = {
    {.key = "state_dir",
     .kind = SK_PATH,
     .off = DAEMON(state_dir),
     .dflt = "\"/var/lib/certloop\""},
    {.key = "control_socket",
     .kind = SK_PATH,
     .off = DAEMON(control_socket),
     .check = config_check_socket_path,
     .dflt = "\"/run/certloop/control.sock\""},
    {.key = "max_concurrent_orders",
     .kind = SK_UINT,
     .off = DAEMON(max_concurrent_orders),
     .min = 1,
     .max = 10000,
     .dflt = "64"},
    {.key = "log_level",
     .kind = SK_ENUM,
     .off = DAEMON(log_level),
     .names = log_level_names,
     .dflt = "\"info\""},
    {.key = "include", .kind = SK_STR, .off = DAEMON(include), .dflt = "\"conf.d/*.toml\""},
    {.key = "resolvers",
     .kind = SK_STRV,
     .off = DAEMON(resolvers),
     .check = config_check_dns_addrs,
     .dflt = "[]"},
    {.key = "hooks_dir",
     .kind = SK_PATH,
     .off = DAEMON(hooks_dir),
     .check = config_check_hooks_dir,
     .dflt = "\"/etc/certloop/hooks.d\""},
    {.key = "expiring_window",
     .kind = SK_DURATION,
     .off = DAEMON(expiring_window_s),
     .min = 1,
     .dflt = "\"14d\""},
    {.key = "backoff_max",
     .kind = SK_DURATION,
     .off = DAEMON(backoff_max_s),
     .min = 60,
     .dflt = "\"6h\""},
    {.key = NULL},
};

#define HTTP01(f) offsetof(struct cfg_http01, f)

static const struct spec http01_specs[] = {
    {.key = "listen",
     .kind = SK_STRV,
     .off = HTTP01(listen),
     .check = config_check_listen,
     .dflt = "[\"[::]:80\", \"0.0.0.0:80\"]"},
    {.key = "webroot", .kind = SK_PATH, .off = HTTP01(webroot), .check = config_check_dir_exists},
    {.key = "webroot_owner",
     .kind = SK_USER,
     .off = HTTP01(webroot_owner),
     .id_off = HTTP01(webroot_uid)},
    {.key = "webroot_group",
     .kind = SK_GROUP,
     .off = HTTP01(webroot_group),
     .id_off = HTTP01(webroot_gid)},
    {.key = "public_port",
     .kind = SK_UINT,
     .off = HTTP01(public_port),
     .min = 1,
     .max = 65535,
     .dflt = "80"},
    {.key = NULL},
};

static const struct spec tlsalpn01_specs[] = {
    {.key = "listen",
     .kind = SK_STRV,
     .off = offsetof(struct cfg_tlsalpn01, listen),
     .check = config_check_listen_addrs,
     .dflt = "[]"},
    {.key = "public_port",
     .kind = SK_UINT,
     .off = offsetof(struct cfg_tlsalpn01, public_port),
     .min = 1,
     .max = 65535,
     .dflt = "443"},
    {.key = NULL},
};

static const struct spec api_specs[] = {
    {.key = "listen",
     .kind = SK_STRV,
     .off = offsetof(struct cfg_api, listen),
     .check = config_check_listen_addrs,
     .dflt = "[]"},
    {.key = "tokens_file",
     .kind = SK_PATH,
     .off = offsetof(struct cfg_api, tokens_file),
     .check = config_check_parent_dir},
    {.key = "certificate", .kind = SK_STR, .off = offsetof(struct cfg_api, certificate)},
    {.key = NULL},
};

static const char *const store_type_names[] = {"files", "postgresql", NULL};

#define STORE(f) offsetof(struct cfg_store, f)
#define ONLY_PG (1u << CFG_STORE_POSTGRESQL)

static const struct spec store_specs[] = {
    {.key = "type",
     .kind = SK_ENUM,
     .off = STORE(type),
     .names = store_type_names,
     .dflt = "\"files\""},
    {.key = "conninfo_file",
     .kind = SK_PATH,
     .required = true,
     .types = ONLY_PG,
     .off = STORE(conninfo_file),
     .check = config_check_secret},
    {.key = "encryption_key_file",
     .kind = SK_PATH,
     .required = true,
     .types = ONLY_PG,
     .off = STORE(encryption_key_file),
     .check = config_check_key32_file},
    {.key = "lease_time",
     .kind = SK_DURATION,
     .types = ONLY_PG,
     .off = STORE(lease_time_s),
     .min = 5,
     .max = 3600,
     .dflt = "\"120s\""},
    {.key = "instance",
     .kind = SK_STR,
     .types = ONLY_PG,
     .off = STORE(instance),
     .check = config_check_instance},
    {.key = NULL},
};

#define CA(f) offsetof(struct cfg_ca, f)

static const struct spec eab_specs[] = {
    {.key = "kid", .kind = SK_STR, .required = true, .off = CA(eab_kid)},
    {.key = "hmac_key_file",
     .kind = SK_PATH,
     .required = true,
     .off = CA(eab_hmac_key_file),
     .check = config_check_secret},
    {.key = NULL},
};

static const struct spec ca_specs[] = {
    {.key = "directory",
     .kind = SK_STR,
     .required = true,
     .off = CA(directory),
     .check = config_check_ca_url},
    {.key = "contact", .kind = SK_STRV, .off = CA(contact), .check = config_check_contact},
    {.key = "agree_tos", .kind = SK_BOOL, .off = CA(agree_tos), .dflt = "false"},
    {.key = "trust", .kind = SK_PATH, .off = CA(trust), .check = config_check_file_exists},
    {.key = "eab", .kind = SK_SUB, .sub = eab_specs},
    {.key = "preferred_chain", .kind = SK_STR, .off = CA(preferred_chain)},
    {.key = "profile", .kind = SK_STR, .off = CA(profile)},
    {.key = "profile_fallback", .kind = SK_BOOL, .off = CA(profile_fallback), .dflt = "false"},
    {.key = "staging",
     .kind = SK_STR,
     .off = CA(staging),
     .check = config_check_staging_url,
     .dflt = "(Let's Encrypt's staging directory for Let's Encrypt, else none)"},
    {.key = "allow_other_hosts", .kind = SK_BOOL, .off = CA(allow_other_hosts), .dflt = "false"},
    {.key = "max_parallel_requests",
     .kind = SK_UINT,
     .off = CA(max_parallel_requests),
     .max = 1000,
     .dflt = "0"},
    /* Let's Encrypt allows 300 new orders per account per 3 hours */
    {.key = "max_new_orders",
     .kind = SK_UINT,
     .off = CA(max_new_orders),
     .max = 1000000,
     .dflt = "250"},
    {.key = NULL},
};

#define DNS(f) offsetof(struct cfg_dns, f)

#define T_RFC2136 (1u << CFG_DNS_RFC2136)

#define T_EXEC (1u << CFG_DNS_EXEC)

#define T_CALLBACK (1u << CFG_DNS_CALLBACK)

static const struct spec tsig_specs[] = {
    {.key = "name", .kind = SK_STR, .required = true, .off = DNS(tsig.name)},
    {.key = "algorithm",
     .kind = SK_STR,
     .off = DNS(tsig.algorithm),
     .check = config_check_tsig_alg,
     .dflt = "\"hmac-sha256\""},
    {.key = "secret_file",
     .kind = SK_PATH,
     .required = true,
     .off = DNS(tsig.secret_file),
     .check = config_check_secret},
    {.key = NULL},
};

static const struct spec dns_specs[] = {
    {.key = "type", .kind = SK_ENUM, .required = true, .off = DNS(type), .names = dns_type_names},
    {.key = "server",
     .kind = SK_STR,
     .required = true,
     .off = DNS(server),
     .check = config_check_dns_addr,
     .types = T_RFC2136},
    {.key = "zone",
     .kind = SK_STR,
     .off = DNS(zone),
     .check = config_check_zone,
     .types = T_RFC2136},
    {.key = "tsig", .kind = SK_SUB, .sub = tsig_specs, .types = T_RFC2136},
    {.key = "command",
     .kind = SK_STRV,
     .required = true,
     .off = DNS(command),
     .check = config_check_command,
     .types = T_EXEC},
    {.key = "url",
     .kind = SK_STR,
     .required = true,
     .off = DNS(url),
     .check = config_check_http_url,
     .types = T_CALLBACK},
    {.key = "secret_file",
     .kind = SK_PATH,
     .off = DNS(secret_file),
     .check = config_check_secret,
     .types = T_CALLBACK},
    {.key = "trust",
     .kind = SK_PATH,
     .off = DNS(trust),
     .check = config_check_file_exists,
     .types = T_CALLBACK},
    {.key = "timeout",
     .kind = SK_DURATION,
     .off = DNS(timeout_s),
     .types = T_EXEC | T_CALLBACK,
     .min = 1,
     .dflt = "\"60s\""},
    {.key = "nameservers",
     .kind = SK_STRV,
     .off = DNS(nameservers),
     .check = config_check_dns_addrs},
    {.key = "propagation_timeout",
     .kind = SK_DURATION,
     .off = DNS(propagation_timeout_s),
     .min = 1,
     .dflt = "\"120s\""},
    {.key = "poll_interval",
     .kind = SK_DURATION,
     .off = DNS(poll_interval_s),
     .min = 1,
     .dflt = "\"2s\""},
    {.key = NULL},
};

#define NOTIFY(f) offsetof(struct cfg_notify, f)

#define T_WEBHOOK (1u << CFG_NOTIFY_WEBHOOK)

#define T_EMAIL (1u << CFG_NOTIFY_EMAIL)

#define T_SLACK (1u << CFG_NOTIFY_SLACK)

static const char *const notify_type_names[] = {"webhook", "email", "slack", NULL};

static const struct spec notify_specs[] = {
    {.key = "type",
     .kind = SK_ENUM,
     .off = NOTIFY(type),
     .names = notify_type_names,
     .dflt = "\"webhook\""},
    {.key = "url",
     .kind = SK_STR,
     .required = true,
     .off = NOTIFY(url),
     .check = config_check_http_url,
     .types = T_WEBHOOK | T_SLACK},
    {.key = "secret_file",
     .kind = SK_PATH,
     .off = NOTIFY(secret_file),
     .check = config_check_secret,
     .types = T_WEBHOOK},
    {.key = "server",
     .kind = SK_STR,
     .required = true,
     .off = NOTIFY(server),
     .check = config_check_smtp_url,
     .types = T_EMAIL},
    {.key = "starttls", .kind = SK_BOOL, .off = NOTIFY(starttls), .types = T_EMAIL, .dflt = "true"},
    {.key = "username", .kind = SK_STR, .off = NOTIFY(username), .types = T_EMAIL},
    {.key = "password_file",
     .kind = SK_PATH,
     .off = NOTIFY(password_file),
     .check = config_check_secret,
     .types = T_EMAIL},
    {.key = "from",
     .kind = SK_STR,
     .required = true,
     .off = NOTIFY(from),
     .check = config_check_mail_addr,
     .types = T_EMAIL},
    {.key = "to",
     .kind = SK_STRV,
     .required = true,
     .off = NOTIFY(to),
     .check = config_check_mail_addrs,
     .types = T_EMAIL},
    {.key = "events",
     .kind = SK_CUSTOM,
     .off = NOTIFY(events),
     .check = config_conv_events,
     .type = "array of strings",
     .dflt = "(every event)"},
    {.key = "trust", .kind = SK_PATH, .off = NOTIFY(trust), .check = config_check_file_exists},
    {.key = NULL},
};

#define HUB(f) offsetof(struct cfg_hub, f)

static const struct spec hub_specs[] = {
    {.key = "url",
     .kind = SK_STR,
     .required = true,
     .off = HUB(url),
     .check = config_check_hub_url},
    {.key = "token_file",
     .kind = SK_PATH,
     .required = true,
     .off = HUB(token_file),
     .check = config_check_secret},
    {.key = "trust", .kind = SK_PATH, .off = HUB(trust), .check = config_check_hub_trust},
    {.key = NULL},
};

#define DEPLOY(f) offsetof(struct cfg_deploy, f)

#define T_FILES (1u << CFG_DEPLOY_FILES)

#define T_DEXEC (1u << CFG_DEPLOY_EXEC)

static const struct spec deploy_specs[] = {
    {.key = "type",
     .kind = SK_ENUM,
     .required = true,
     .off = DEPLOY(type),
     .names = deploy_type_names},
    {.key = "cert",
     .kind = SK_PATH,
     .off = DEPLOY(cert),
     .check = config_check_parent_dir,
     .types = T_FILES},
    {.key = "chain",
     .kind = SK_PATH,
     .off = DEPLOY(chain),
     .check = config_check_parent_dir,
     .types = T_FILES},
    {.key = "fullchain",
     .kind = SK_PATH,
     .off = DEPLOY(fullchain),
     .check = config_check_parent_dir,
     .types = T_FILES},
    {.key = "key",
     .kind = SK_PATH,
     .off = DEPLOY(key),
     .check = config_check_parent_dir,
     .types = T_FILES},
    {.key = "bundle",
     .kind = SK_PATH,
     .off = DEPLOY(bundle),
     .check = config_check_parent_dir,
     .types = T_FILES},
    {.key = "pkcs12",
     .kind = SK_PATH,
     .off = DEPLOY(pkcs12),
     .check = config_check_parent_dir,
     .types = T_FILES},
    {.key = "pkcs12_password_file",
     .kind = SK_PATH,
     .off = DEPLOY(pkcs12_password_file),
     .check = config_check_secret,
     .types = T_FILES},
    {.key = "pkcs12_legacy",
     .kind = SK_BOOL,
     .off = DEPLOY(pkcs12_legacy),
     .types = T_FILES,
     .dflt = "false"},
    {.key = "owner",
     .kind = SK_USER,
     .off = DEPLOY(owner),
     .id_off = DEPLOY(uid),
     .types = T_FILES},
    {.key = "group",
     .kind = SK_GROUP,
     .off = DEPLOY(group),
     .id_off = DEPLOY(gid),
     .types = T_FILES},
    {.key = "mode",
     .kind = SK_CUSTOM,
     .off = DEPLOY(mode),
     .check = config_conv_mode,
     .types = T_FILES,
     .type = "string",
     .dflt = "(\"0644\"; files holding the key \"0640\" with a group, else \"0600\")"},
    {.key = "command",
     .kind = SK_STRV,
     .required = true,
     .off = DEPLOY(command),
     .check = config_check_command,
     .types = T_DEXEC},
    {.key = "timeout",
     .kind = SK_DURATION,
     .off = DEPLOY(timeout_s),
     .types = T_DEXEC,
     .min = 1,
     .dflt = "\"60s\""},
    {.key = "per_certificate",
     .kind = SK_BOOL,
     .off = DEPLOY(per_certificate),
     .types = T_DEXEC,
     .dflt = "false"},
    {.key = NULL},
};

static bool conv_deploy(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                        void *field);

#define CERT(f) offsetof(struct cert_tmp, f)

static const struct spec import_specs[] = {
    {.key = "cert",
     .kind = SK_PATH,
     .required = true,
     .off = CERT(c.import_cert),
     .check = config_check_file_exists},
    {.key = "key",
     .kind = SK_PATH,
     .required = true,
     .off = CERT(c.import_key),
     .check = config_check_file_exists},
    {.key = NULL},
};

static const struct spec cert_specs[] = {
    {.key = "domains",
     .kind = SK_CUSTOM,
     .off = CERT(c.domains),
     .check = config_conv_domains,
     .type = "array of strings",
     .dflt = "(required unless import or from is given)"},
    {.key = "ca",
     .kind = SK_CUSTOM,
     .off = CERT(ca_name),
     .check = config_conv_cert_ca,
     .type = "string",
     .dflt = "(the only [ca.NAME], if there is one)"},
    {.key = "key",
     .kind = SK_ENUM,
     .off = CERT(c.key),
     .names = key_type_names,
     .dflt = "\"ec-p256\""},
    {.key = "challenge",
     .kind = SK_ENUM,
     .off = CERT(c.challenge),
     .check = config_check_challenge,
     .names = challenge_names,
     .dflt = "\"http-01\""},
    {.key = "dns",
     .kind = SK_CUSTOM,
     .off = CERT(dns_name),
     .check = config_conv_cert_dns,
     .type = "string",
     .dflt = "(the only [dns.NAME], if there is one)"},
    {.key = "renew_before",
     .kind = SK_DURATION,
     .off = CERT(c.renew_before_s),
     .min = 1,
     .dflt = "(when a third of the lifetime remains)"},
    {.key = "reuse_key", .kind = SK_BOOL, .off = CERT(c.reuse_key), .dflt = "false"},
    {.key = "persist_until",
     .kind = SK_CUSTOM,
     .off = CERT(c.persist_until),
     .check = config_conv_persist_until,
     .type = "date-time, date or integer",
     .dflt = "(none: the records do not expire)"},
    {.key = "deploy",
     .kind = SK_CUSTOM,
     .off = CERT(c.deploy),
     .check = conv_deploy,
     .type = "array of tables",
     .sub = deploy_specs},
    {.key = "import", .kind = SK_SUB, .sub = import_specs},
    {.key = "from",
     .kind = SK_CUSTOM,
     .off = CERT(hub_name),
     .check = config_conv_cert_from,
     .type = "string"},
    {.key = NULL},
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
        char epbuf[256];
        int epn = snprintf(epbuf, sizeof(epbuf), "%s[%zu]", path, i);
        char *ep = epn >= 0 && (size_t)epn < sizeof(epbuf) ? epbuf : xasprintf("%s[%zu]", path, i);
        if (e->type != TOML_TABLE) {
            config_type_error(c, e, ep, "a table");
            if (ep != epbuf)
                free(ep);
            ok = false;
            continue;
        }
        struct cfg_deploy *d = &ct->c.deploy[ct->c.n_deploy++];
        d->where.file = c->cfg->files.v[c->file];
        d->where.pos = e->pos;
        d->uid = (uid_t)-1;
        d->gid = (gid_t)-1;
        config_spec_defaults(deploy_specs, d);
        int type = config_spec_peek_type(e->u.tab, deploy_type_names);
        if (!config_spec_apply(c, e->u.tab, e->pos, ep, deploy_specs, d, type, deploy_type_names))
            ok = false;
        else if (!deploy_post(c, d, e->pos, ep, e->u.tab))
            ok = false;
        if (ep != epbuf)
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
    config_spec_defaults(ca_specs, ca);
    config_check_object_name(c, "CA", ca->name, path, kv->keypos);
    config_spec_apply(c, kv->val.u.tab, kv->keypos, path, ca_specs, ca, -1, NULL);
    sortkey_add(c, &c->cas, &c->n_cas, &c->cap_cas, ca->name, kv->keypos, ca);
}

static void load_dns(struct cctx *c, const struct toml_keyval *kv, const char *path)
{
    struct cfg_dns *d = xcalloc(1, sizeof(*d));

    d->name = xstrndup(kv->key, kv->keylen);
    d->where.file = c->cfg->files.v[c->file];
    d->where.pos = kv->keypos;
    config_spec_defaults(dns_specs, d);
    const struct toml_keyval *tsig = toml_table_get(kv->val.u.tab, "tsig");
    if (tsig != NULL && tsig->val.type == TOML_TABLE)
        config_spec_defaults(tsig_specs, d);
    int type = config_spec_peek_type(kv->val.u.tab, dns_type_names);
    if (config_spec_apply(c, kv->val.u.tab, kv->keypos, path, dns_specs, d, type, dns_type_names)) {
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
    n->events = CFG_EVENT_ALL; /* the default of `events` */
    config_spec_defaults(notify_specs, n);
    /* no type key: a webhook (an invalid one is reported by apply) */
    int type = toml_table_get(kv->val.u.tab, "type") == NULL
                   ? CFG_NOTIFY_WEBHOOK
                   : config_spec_peek_type(kv->val.u.tab, notify_type_names);
    if (config_spec_apply(c, kv->val.u.tab, kv->keypos, path, notify_specs, n, type,
                          notify_type_names) &&
        n->password_file != NULL && n->username == NULL) {
        const struct toml_keyval *p = toml_table_get(kv->val.u.tab, "password_file");
        ERR(c, p->keypos, path, "password_file needs username");
    }
    sortkey_add(c, &c->notify, &c->n_notify, &c->cap_notify, n->name, kv->keypos, n);
}

static void load_hub(struct cctx *c, const struct toml_keyval *kv, const char *path)
{
    struct cfg_hub *h = xcalloc(1, sizeof(*h));

    h->name = xstrndup(kv->key, kv->keylen);
    h->where.file = c->cfg->files.v[c->file];
    h->where.pos = kv->keypos;
    config_spec_defaults(hub_specs, h);
    config_check_object_name(c, "hub", h->name, path, kv->keypos);
    config_spec_apply(c, kv->val.u.tab, kv->keypos, path, hub_specs, h, -1, NULL);
    sortkey_add(c, &c->hubs, &c->n_hubs, &c->cap_hubs, h->name, kv->keypos, h);
}

static void load_cert(struct cctx *c, const struct toml_keyval *kv, const char *path)
{
    struct cert_tmp *ct = xcalloc(1, sizeof(*ct));
    const struct toml_table *t = kv->val.u.tab;

    ct->c.name = xstrndup(kv->key, kv->keylen);
    ct->c.where.file = c->cfg->files.v[c->file];
    ct->c.where.pos = kv->keypos;
    config_spec_defaults(cert_specs, ct);
    ct->file = c->file;
    ct->path = xstrdup(path);
    config_check_object_name(c, "certificate", ct->c.name, path, kv->keypos);
    config_spec_apply(c, t, kv->keypos, path, cert_specs, ct, -1, NULL);
    config_check_from_keys(c, ct, t);
    if (!ct->domains_given && ct->c.import_cert == NULL && toml_table_get(t, "import") == NULL &&
        toml_table_get(t, "from") == NULL) {
        ERR(c, kv->keypos, path, "missing required key 'domains'");
        ct->domains_bad = true;
    }
    if (ct->dns_name != NULL) {
        if (!ct->challenge_set) {
            ct->c.challenge = CFG_CHAL_DNS01;
        } else if (!CFG_CHAL_IS_DNS(ct->c.challenge)) {
            ERR(c, ct->dns_pos, ct->path,
                "dns = \"%s\" needs challenge = \"dns-01\", \"dns-account-01\" or "
                "\"dns-persist-01\"",
                ct->dns_name);
        }
    }
    const struct toml_keyval *pu = toml_table_get(t, "persist_until");
    if (pu != NULL && ct->c.challenge != CFG_CHAL_DNSPERSIST01)
        ERR(c, pu->keypos, path, "persist_until is only for challenge = \"dns-persist-01\"");
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
        char pbuf[256];
        char *path = config_path_join_in(pbuf, sizeof(pbuf), sect->key, kv->key, kv->keylen);
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
        if (path != pbuf)
            free(path);
    }
}

void config_load_root(struct cctx *c, const struct toml_table *root, bool is_main)
{
    static const char *const sections[] = {"daemon",      "http01", "tlsalpn01", "ca",  "dns",
                                           "certificate", "notify", "store",     "api", "hub"};

    for (size_t i = 0; i < root->n; i++) {
        const struct toml_keyval *kv = &root->items[i];
        const char *k = kv->key;

        if (strlen(k) != kv->keylen) {
            config_unknown_key(c, kv, NULL, sections, 10);
        } else if (strcmp(k, "daemon") == 0 || strcmp(k, "http01") == 0 ||
                   strcmp(k, "tlsalpn01") == 0 || strcmp(k, "store") == 0 ||
                   strcmp(k, "api") == 0) {
            if (!is_main) {
                ERR(c, kv->keypos, k, "[%s] is only allowed in the main file %s", k,
                    c->cfg->files.v[0]);
            } else if (kv->val.type != TOML_TABLE) {
                char want[32];
                snprintf(want, sizeof(want), "a table [%s]", k);
                config_type_error(c, &kv->val, k, want);
            } else if (k[0] == 'd') {
                config_spec_apply(c, kv->val.u.tab, kv->keypos, k, daemon_specs, &c->cfg->daemon,
                                  -1, NULL);
                if (toml_table_get(kv->val.u.tab, "include") != NULL) {
                    c->include_set = true;
                    c->include_pos = toml_table_get(kv->val.u.tab, "include")->val.pos;
                }
            } else if (k[0] == 's') {
                /* no type written is the default "files", so postgresql-only keys
                 * are refused rather than skipped */
                int type = toml_table_get(kv->val.u.tab, "type") == NULL
                               ? CFG_STORE_FILES
                               : config_spec_peek_type(kv->val.u.tab, store_type_names);
                config_spec_apply(c, kv->val.u.tab, kv->keypos, k, store_specs, &c->cfg->store,
                                  type, store_type_names);
            } else if (k[0] == 'a') {
                c->api_pos = kv->keypos;
                c->api_file = c->file;
                config_spec_apply(c, kv->val.u.tab, kv->keypos, k, api_specs, &c->cfg->api, -1,
                                  NULL);
            } else if (k[0] == 't') {
                const struct toml_keyval *pp = toml_table_get(kv->val.u.tab, "public_port");
                if (pp != NULL) {
                    c->tlsalpn_port_set = true;
                    c->tlsalpn_port_pos = pp->keypos;
                    c->tlsalpn_port_file = c->file;
                }
                config_spec_apply(c, kv->val.u.tab, kv->keypos, k, tlsalpn01_specs,
                                  &c->cfg->tlsalpn01, -1, NULL);
            } else {
                config_spec_apply(c, kv->val.u.tab, kv->keypos, k, http01_specs, &c->cfg->http01,
                                  -1, NULL);
            }
        } else if (strcmp(k, "ca") == 0) {
            load_named(c, kv, load_ca);
        } else if (strcmp(k, "dns") == 0) {
            load_named(c, kv, load_dns);
        } else if (strcmp(k, "notify") == 0) {
            load_named(c, kv, load_notify);
        } else if (strcmp(k, "certificate") == 0) {
            load_named(c, kv, load_cert);
        } else if (strcmp(k, "hub") == 0) {
            load_named(c, kv, load_hub);
        } else {
            config_unknown_key(c, kv, NULL, sections, 10);
        }
    }
}

void config_schema_defaults(struct config *cfg)
{
    config_spec_defaults(daemon_specs, &cfg->daemon);
    config_spec_defaults(http01_specs, &cfg->http01);
    cfg->http01.webroot_uid = (uid_t)-1; /* unset: the token files keep the daemon's ids */
    cfg->http01.webroot_gid = (gid_t)-1;
    config_spec_defaults(tlsalpn01_specs, &cfg->tlsalpn01);
    config_spec_defaults(api_specs, &cfg->api);
    config_spec_defaults(store_specs, &cfg->store);
}

/* The top-level sections: [NAME] or, when named, [NAME.X]. config_load_root
 * reads them; this list is what config_schema_foreach walks. */
static const struct {
    const char *name;
    bool named;
    const struct spec *specs;
} roots[] = {
    {"daemon", false, daemon_specs},
    {"http01", false, http01_specs},
    {"tlsalpn01", false, tlsalpn01_specs},
    {"api", false, api_specs},
    {"ca", true, ca_specs},
    {"dns", true, dns_specs},
    {"notify", true, notify_specs},
    {"certificate", true, cert_specs},
    {"store", false, store_specs},
    {"hub", true, hub_specs},
};

static const char *spec_type(const struct spec *sp, char *buf, size_t cap)
{
    switch (sp->kind) {
    case SK_STR:
    case SK_USER:
    case SK_GROUP:
        return "string";
    case SK_PATH:
        return "path";
    case SK_BOOL:
        return "boolean";
    case SK_UINT:
        return "integer";
    case SK_DURATION:
        return "duration";
    case SK_ENUM: {
        size_t o = 0;
        buf[0] = '\0';
        for (size_t i = 0; sp->names[i] != NULL && o < cap; i++)
            o += (size_t)snprintf(buf + o, cap - o, "%s%s", i > 0 ? "|" : "", sp->names[i]);
        return buf;
    }
    case SK_STRV:
        return "array of strings";
    case SK_SUB:
        return "table";
    case SK_CUSTOM:
        break;
    }
    assert(sp->type != NULL);
    return sp->type;
}

/* "(required)", or "(required with type = a or b)" for a key that only some
 * types of its table take. */
static const char *spec_required(const struct spec *specs, const struct spec *sp, char *buf,
                                 size_t cap)
{
    const struct spec *t = specs;
    size_t o;

    if (sp->types == 0)
        return "(required)";
    while (t->key != NULL && strcmp(t->key, "type") != 0)
        t++;
    assert(t->key != NULL && t->names != NULL);
    o = (size_t)snprintf(buf, cap, "(required with type =");
    for (unsigned i = 0, n = 0; t->names[i] != NULL && o < cap; i++) {
        if (sp->types & (1u << i))
            o += (size_t)snprintf(buf + o, cap - o, "%s %s", n++ > 0 ? " or" : "", t->names[i]);
    }
    if (o < cap)
        snprintf(buf + o, cap - o, ")");
    return buf;
}

static void foreach_specs(const struct spec *specs, const char *prefix, config_schema_cb cb,
                          void *arg)
{
    for (const struct spec *sp = specs; sp->key != NULL; sp++) {
        char tbuf[256], rbuf[128];
        char *path = xasprintf("%s.%s", prefix, sp->key);
        const char *dflt = sp->dflt;

        if (dflt == NULL && sp->required)
            dflt = spec_required(specs, sp, rbuf, sizeof(rbuf));
        cb(path, spec_type(sp, tbuf, sizeof(tbuf)), dflt, arg);
        if (sp->sub != NULL) {
            char *sub = sp->kind == SK_SUB ? xstrdup(path) : xasprintf("%s[]", path);
            foreach_specs(sp->sub, sub, cb, arg);
            free(sub);
        }
        free(path);
    }
}

void config_schema_foreach(config_schema_cb cb, void *arg)
{
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
        char *prefix =
            roots[i].named ? xasprintf("%s.NAME", roots[i].name) : xstrdup(roots[i].name);
        foreach_specs(roots[i].specs, prefix, cb, arg);
        free(prefix);
    }
}

const char *config_key_type_name(enum cfg_key_type k)
{
    return (unsigned)k < CFG_KEY__MAX ? key_type_names[k] : "?";
}

const char *config_challenge_name(enum cfg_challenge ch)
{
    return (unsigned)ch <= CFG_CHAL_DNSPERSIST01 ? challenge_names[ch] : "?";
}

const char *config_dns_type_name(enum cfg_dns_type t)
{
    return (unsigned)t <= CFG_DNS_CALLBACK ? dns_type_names[t] : "?";
}
