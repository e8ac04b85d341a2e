/* `certloop import-certbot`: certbot's renewal/NAME.conf lineages (webroot,
 * standalone, dns-rfc2136, manual with DNS hooks) and its renewal-hooks/
 * mapped to certloop's keys; the run itself is migrate.c's. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "config/config.h"
#include "reactor/migrate.h"
#include "reactor/migrate_internal.h"
#include "reactor/plan.h"
#include "store/store.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/xalloc.h"

/* The [dns.certbot-NAME] exec solver for certbot's manual dns-01 hooks.
 * certloop calls an exec solver as PROGRAM... present|cleanup FQDN VALUE;
 * certbot called the hooks through the shell with CERTBOT_DOMAIN (the name
 * without _acme-challenge.) and CERTBOT_VALIDATION. A fixed shell script
 * translates, with the two hooks as its own arguments (no quoting games):
 * $1 the auth hook, $2 the cleanup hook, then certloop's three. */
static void manual_solver(const char *name, const struct ini *rc, struct buf *b)
{
    static const char script[] = "d=${4#_acme-challenge.}; d=${d%.}; "
                                 "export CERTBOT_DOMAIN=\"$d\" CERTBOT_VALIDATION=\"$5\" "
                                 "CERTBOT_ALL_DOMAINS=\"$d\" CERTBOT_REMAINING_CHALLENGES=0; "
                                 "if [ \"$3\" = present ]; then exec /bin/sh -c \"$1\"; fi; "
                                 "if [ -n \"$2\" ]; then exec /bin/sh -c \"$2\"; fi";
    const char *auth = migrate_ini_get(rc, "renewalparams", "manual_auth_hook");
    const char *cleanup = migrate_ini_get(rc, "renewalparams", "manual_cleanup_hook");
    char *solver = xasprintf("certbot-%s", name);

    buf_append_str(b, "\n# certbot's manual dns-01 hooks, called as certbot called them\n[dns.");
    migrate_toml_key(b, solver);
    buf_append_str(b, "]\ntype = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", ");
    migrate_toml_str(b, script);
    buf_append_str(b, ", \"certbot-manual-hook\", ");
    migrate_toml_str(b, auth);
    buf_append_str(b, ", ");
    migrate_toml_str(b, cleanup != NULL ? cleanup : "");
    buf_append_str(b, "]\n");
    free(solver);
}

/* The [dns.certbot-NAME] table for certbot's dns-rfc2136 credentials file,
 * its TSIG secret written to CONFDIR/certbot-NAME.tsig. 0 or -1 (*why). */
static int rfc2136_solver(struct run *r, const char *name, const struct ini *rc, struct buf *b,
                          char **why)
{
    const char *cred = migrate_ini_get(rc, "renewalparams", "dns_rfc2136_credentials");
    struct ini c;

    if (cred == NULL) {
        *why = xstrdup("dns-rfc2136 without dns_rfc2136_credentials");
        return -1;
    }
    int e = migrate_ini_read(cred, &c);
    if (e < 0) {
        *why = xasprintf("%s: %s", cred, err_str(e));
        return -1;
    }
    const char *server = migrate_ini_get(&c, "", "dns_rfc2136_server");
    const char *port = migrate_ini_get(&c, "", "dns_rfc2136_port");
    const char *kname = migrate_ini_get(&c, "", "dns_rfc2136_name");
    const char *secret = migrate_ini_get(&c, "", "dns_rfc2136_secret");
    const char *alg = migrate_ini_get(&c, "", "dns_rfc2136_algorithm");
    int ret = -1;
    if (server == NULL || kname == NULL || secret == NULL) {
        *why = xasprintf("%s: dns_rfc2136_server, _name and _secret are needed", cred);
        goto out;
    }
    char *lower = xstrdup(alg != NULL ? alg : "HMAC-SHA512"); /* certbot's default */
    for (char *p = lower; *p != '\0'; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    if (strcmp(lower, "hmac-sha256") != 0 && strcmp(lower, "hmac-sha384") != 0 &&
        strcmp(lower, "hmac-sha512") != 0) {
        *why = xasprintf("%s: TSIG algorithm %s (certloop has hmac-sha256, -sha384, -sha512)", cred,
                         alg);
        free(lower);
        goto out;
    }
    char *secret_path = xasprintf("%s/certbot-%s.tsig", r->conf_dir, name);
    char *secret_line = xasprintf("%s\n", secret);
    e = migrate_write_new(r, secret_path, secret_line, 0600);
    OPENSSL_cleanse(secret_line, strlen(secret_line));
    free(secret_line);
    /* the daemon runs as certloop: 0640 root:certloop, the form check
     * accepts for secrets, when that group exists and we are root */
    struct group *gr = e == 0 && geteuid() == 0 ? getgrnam("certloop") : NULL;
    if (gr != NULL && chown(secret_path, 0, gr->gr_gid) == 0)
        (void)chmod(secret_path, 0640);
    if (e < 0) {
        *why = xasprintf("%s: %s", secret_path, err_str(e));
        free(secret_path);
        free(lower);
        goto out;
    }
    char *addr = strchr(server, ':') != NULL && port != NULL
                     ? xasprintf("[%s]:%s", server, port)
                     : xasprintf("%s:%s", server, port != NULL ? port : "53");
    char *solver = xasprintf("certbot-%s", name);
    buf_printf(b, "\n# certbot's dns-rfc2136 credentials (%s)\n[dns.", cred);
    migrate_toml_key(b, solver);
    buf_append_str(b, "]\n");
    free(solver);
    migrate_toml_kv(b, "type", "rfc2136");
    migrate_toml_kv(b, "server", addr);
    buf_append_str(b, "tsig = { name = ");
    migrate_toml_str(b, kname);
    buf_append_str(b, ", algorithm = ");
    migrate_toml_str(b, lower);
    buf_append_str(b, ", secret_file = ");
    migrate_toml_str(b, secret_path);
    buf_append_str(b, " }\n");
    free(addr);
    free(secret_path);
    free(lower);
    ret = 0;
out:
    migrate_ini_fini(&c);
    return ret;
}

/* One renewal/NAME.conf. 0 imported, 1 skipped (said why on err). */
static int certbot_lineage(struct run *r, const char *conf_path, const char *lname)
{
    struct ini rc;
    struct buf dns = BUF_INIT(SIZE_MAX);
    char *why = NULL, *name = NULL, *ca = NULL, *acct_dir = NULL;
    char **names = NULL;
    json_t *regr = NULL;
    const char *challenge = "http-01";
    int ret = 1;
    int e = migrate_ini_read(conf_path, &rc);

    if (e < 0) {
        why = xasprintf("%s: %s", conf_path, err_str(e));
        goto out;
    }
    name = migrate_safe_name(lname);
    const char *cert = migrate_ini_get(&rc, "", "cert");
    const char *chain = migrate_ini_get(&rc, "", "chain");
    const char *fullchain = migrate_ini_get(&rc, "", "fullchain");
    const char *privkey = migrate_ini_get(&rc, "", "privkey");
    const char *server = migrate_ini_get(&rc, "renewalparams", "server");
    const char *auth = migrate_ini_get(&rc, "renewalparams", "authenticator");
    const char *account = migrate_ini_get(&rc, "renewalparams", "account");
    if (cert == NULL || chain == NULL || fullchain == NULL || privkey == NULL || server == NULL) {
        why = xstrdup("cert, chain, fullchain, privkey or renewalparams server missing");
        goto out;
    }
    for (size_t i = 0; i < r->cfg->n_certs; i++) {
        if (strcmp(r->cfg->certs[i].name, name) == 0) {
            why = xasprintf("the configuration has a [certificate.%s] already", name);
            goto out;
        }
    }
    names = migrate_cert_names(fullchain, &why);
    if (names == NULL)
        goto out;
    const char *kt = migrate_key_type(&rc, privkey, &why);
    if (kt == NULL)
        goto out;
    if (auth == NULL || strcmp(auth, "standalone") == 0) {
        challenge = "http-01";
    } else if (strcmp(auth, "webroot") == 0) {
        const char *wp = migrate_ini_get(&rc, "renewalparams", "webroot_path");
        bool any = false;
        for (size_t i = 0; i < rc.n; i++) {
            if (strcmp(rc.e[i].section, "webroot_map") == 0) {
                migrate_webroot_add(r, rc.e[i].val);
                any = true;
            }
        }
        if (!any && wp != NULL) {
            char *copy = xstrdup(wp), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
                if (*migrate_trim(t) != '\0')
                    migrate_webroot_add(r, migrate_trim(t));
            free(copy);
        }
    } else if (strcmp(auth, "dns-rfc2136") == 0) {
        challenge = "dns-01";
        if (rfc2136_solver(r, name, &rc, &dns, &why) < 0)
            goto out;
    } else if (strcmp(auth, "manual") == 0) {
        const char *pref = migrate_ini_get(&rc, "renewalparams", "pref_challs");
        if (migrate_ini_get(&rc, "renewalparams", "manual_auth_hook") == NULL || pref == NULL ||
            strstr(pref, "dns") == NULL) {
            why = xstrdup("a manual lineage is imported only with dns-01 and a "
                          "manual_auth_hook (certloop has no program for http-01 tokens)");
            goto out;
        }
        challenge = "dns-01";
        manual_solver(name, &rc, &dns);
    } else if (strcmp(auth, "nginx") == 0 || strcmp(auth, "apache") == 0) {
        fprintf(r->out,
                "%s: certbot's %s authenticator: http-01 through certloop's listener; give the "
                "web server the proxy snippet of /usr/share/doc/certloop/examples/ or set "
                "[http01] webroot\n",
                name, auth);
    } else {
        why = xasprintf("authenticator %s has no certloop counterpart (http-01 listener or "
                        "webroot, dns-01 rfc2136 or exec)",
                        auth);
        goto out;
    }

    /* the account, by certbot's layout: accounts/HOST[:PORT]/PATH/ID */
    const char *hostpath = strstr(server, "://");
    hostpath = hostpath != NULL ? hostpath + 3 : server;
    if (account != NULL) {
        acct_dir = xasprintf("%s/accounts/%s/%s", r->dir, hostpath, account);
        char *regr_path = xasprintf("%s/regr.json", acct_dir);
        regr = json_load_file(regr_path, 0, NULL);
        free(regr_path);
    }
    ca = migrate_ca_for(r, server, regr);
    if (ca == NULL) {
        why = xstrdup("cannot write the CA's file");
        goto out;
    }
    if (regr != NULL)
        migrate_account_take(r, ca, server, acct_dir, regr);
    else
        fprintf(r->out, "%s: no certbot account found under %s/accounts/%s\n", name, r->dir,
                hostpath);

    const char *rbe = migrate_ini_get(&rc, "", "renew_before_expiry");
    long days = rbe != NULL && strstr(rbe, "day") != NULL ? strtol(rbe, NULL, 10) : 0;
    const char *hook = migrate_ini_get(&rc, "renewalparams", "renew_hook");
    char *live = xstrdup(fullchain);
    struct lineage_out l = {
        .prefix = "certbot",
        .source = conf_path,
        .name = name,
        .names = names,
        .ca = ca,
        .key = kt,
        .challenge = challenge,
        .dns_tables = dns.data,
        .renew_before_days = days,
        .cert = cert,
        .chain = chain,
        .fullchain = fullchain,
        .key_path = privkey,
        .hook = hook,
        .hook_lineage = dirname(live),
    };
    e = migrate_emit_lineage(r, &l, &why);
    free(live);
    if (e < 0)
        goto out;
    /* the live files are links into archive/NAME until the first renewal */
    const char *archive = migrate_ini_get(&rc, "", "archive_dir");
    if (archive != NULL)
        migrate_path_set_add(&r->read_dirs, &r->n_read_dirs, archive);
    for (const char *k = "pre_hook"; k != NULL; k = strcmp(k, "pre_hook") == 0 ? "post_hook" : NULL)
        if (migrate_ini_get(&rc, "renewalparams", k) != NULL)
            fprintf(r->out,
                    "%s: certbot's %s is not imported: put it in [daemon] hooks_dir's %s/\n", name,
                    k, strcmp(k, "pre_hook") == 0 ? "pre" : "post");
    ret = 0;
out:
    migrate_skipped(r, lname, ret, why);
    free(name);
    free(ca);
    free(acct_dir);
    migrate_names_free(names);
    json_decref(regr);
    buf_fini(&dns);
    migrate_ini_fini(&rc);
    return ret;
}

/* certbot's DIR/renewal-hooks/{pre,deploy,post}/ has the layout of
 * certloop's [daemon] hooks_dir: say so when it holds hooks. */
void migrate_certbot_hook_dirs(struct run *r)
{
    static const char *const phases[] = {"pre", "deploy", "post"};
    int n = 0;

    for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
        char *p = xasprintf("%s/renewal-hooks/%s", r->dir, phases[i]);
        DIR *d = opendir(p);
        for (struct dirent *de; d != NULL && (de = readdir(d)) != NULL;)
            n += de->d_name[0] != '.';
        if (d != NULL)
            closedir(d);
        free(p);
    }
    if (n > 0 && (r->cfg->daemon.hooks_dir == NULL ||
                  strncmp(r->cfg->daemon.hooks_dir, r->dir, strlen(r->dir)) != 0))
        fprintf(r->out,
                "note: %s/renewal-hooks/ holds %d %s; certloop runs the same pre/, deploy/ and "
                "post/ layout from [daemon] hooks_dir (now %s): move them there, or set\n"
                "  hooks_dir = \"%s/renewal-hooks\"\n",
                r->dir, n, n == 1 ? "hook" : "hooks",
                r->cfg->daemon.hooks_dir != NULL ? r->cfg->daemon.hooks_dir : "unset", r->dir);
}

int migrate_certbot(const char *config_path, const char *dir, FILE *out, FILE *err)
{
    return migrate_run(config_path, dir, "import-certbot", "certbot", "renewal", ".conf",
                       certbot_lineage, out, err);
}
