/* `certloop import-certbot` and `import-lego`: another client's
 * certificates become certloop configuration files, its account becomes
 * certloop's. It reads certbot's renewal/NAME.conf (configobj syntax), the
 * PEM files they name and the account's JWK, or lego's certificates/ and
 * accounts/; it writes new files only (never over an existing one) and
 * changes nothing of the other client's. It does not order, deploy or stop it:
 * the daemon imports the live files as the first generation when it next
 * loads the configuration.
 * This file holds the run both commands share (files written, CAs and
 * accounts, the notes); migrate_read.c reads the other clients' formats,
 * migrate_certbot.c and migrate_lego.c map their lineages. */
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

/* Creates path with data (O_EXCL: never over an existing file). */
int migrate_write_new(struct run *r, const char *path, const char *data, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    size_t len = strlen(data), off = 0;
    int rc = 0;

    if (fd < 0)
        return -errno;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        off += (size_t)n;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0) {
        unlink(path);
        return rc;
    }
    r->w.paths = xrealloc(r->w.paths, (r->w.n + 1) * sizeof(*r->w.paths));
    r->w.paths[r->w.n++] = xstrdup(path);
    return 0;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* A certloop NAME from s: other characters become '-'. Owned. */
char *migrate_safe_name(const char *s)
{
    char *n = xstrdup(s);

    for (char *p = n; *p != '\0'; p++)
        if (!name_char(*p))
            *p = '-';
    if (n[0] == '.')
        n[0] = '_';
    return n;
}

/* certloop's name for the CA with this directory: the configuration's
 * [ca.NAME] with the same URL, one this run already made, or a new one
 * (written to conf.d/certbot-ca-NAME.toml). Owned; NULL on a write error. */
char *migrate_ca_for(struct run *r, const char *directory, const json_t *regr)
{
    for (size_t i = 0; i < r->cfg->n_cas; i++)
        if (strcmp(r->cfg->cas[i].directory, directory) == 0)
            return xstrdup(r->cfg->cas[i].name);
    for (size_t i = 0; i < r->n_new_cas; i++) {
        const char *tab = strchr(r->new_cas[i], '\t');
        if (strcmp(tab + 1, directory) == 0)
            return xstrndup(r->new_cas[i], (size_t)(tab - r->new_cas[i]));
    }
    /* a new one, named after the CA */
    char *name;
    if (strstr(directory, "://acme-v02.api.letsencrypt.org/") != NULL)
        name = xstrdup("letsencrypt");
    else if (strstr(directory, "://acme-staging-v02.api.letsencrypt.org/") != NULL)
        name = xstrdup("letsencrypt-staging");
    else {
        const char *host = strstr(directory, "://");
        host = host != NULL ? host + 3 : directory;
        char *h = xstrndup(host, strcspn(host, "/"));
        name = migrate_safe_name(h);
        free(h);
    }
    for (size_t i = 0; i < r->cfg->n_cas; i++) {
        if (strcmp(r->cfg->cas[i].name, name) == 0) {
            char *n2 = xasprintf("%s-%s", r->prefix, name);
            free(name);
            name = n2;
            break;
        }
    }
    struct buf b = BUF_INIT(SIZE_MAX);
    buf_printf(&b,
               "# Written by `certloop %s %s`: the CA of %s's account.\n"
               "[ca.",
               r->cmd, r->dir, r->prefix);
    migrate_toml_key(&b, name);
    buf_append_str(&b, "]\n");
    migrate_toml_kv(&b, "directory", directory);
    const json_t *contact = json_object_get(json_object_get(regr, "body"), "contact");
    if (json_array_size(contact) > 0) {
        buf_append_str(&b, "contact = [");
        for (size_t i = 0; i < json_array_size(contact); i++) {
            const char *c = json_string_value(json_array_get(contact, i));
            if (c == NULL)
                continue;
            buf_append_str(&b, i > 0 ? ", " : "");
            migrate_toml_str(&b, c);
        }
        buf_append_str(&b, "]\n");
    }
    buf_printf(&b,
               "# %s's account agreed to the terms of service already\n"
               "agree_tos = true\n",
               r->prefix);
    char *path = xasprintf("%s/%s-ca-%s.toml", r->conf_d, r->prefix, name);
    char *text = buf_steal(&b, NULL);
    int rc = migrate_write_new(r, path, text, 0644);
    if (rc < 0) {
        fprintf(r->err, "certloop: %s: %s: %s\n", r->cmd, path, err_str(rc));
        free(name);
        name = NULL;
    } else {
        fprintf(r->out, "%s: [ca.%s] for %s\n", path, name, directory);
        r->new_cas = xrealloc(r->new_cas, (r->n_new_cas + 1) * sizeof(*r->new_cas));
        r->new_cas[r->n_new_cas++] = xasprintf("%s\t%s", name, directory);
    }
    free(text);
    free(path);
    return name;
}

/* Notes an account (key_pem owned, url its kid) for CA ca, to be stored
 * once the configuration validates, unless certloop has an account for
 * that CA already or this run noted one. */
void migrate_account_add(struct run *r, const char *ca, const char *directory, char *key_pem,
                         const char *url)
{
    char *have_key = NULL, *have_json = NULL;
    bool have = false;

    for (size_t i = 0; i < r->n_accounts; i++)
        have = have || strcmp(r->accounts[i].ca, ca) == 0;
    if (!have && store_account_read(r->store, ca, &have_key, &have_json) == 0) {
        char *where = store_where(r->store, STORE_WHERE_ACCOUNT, ca);
        fprintf(r->out, "ca=%s: certloop has an account already (%s): kept\n", ca, where);
        free(where);
        have = true;
    }
    free(have_key);
    free(have_json);
    if (have) {
        OPENSSL_cleanse(key_pem, strlen(key_pem));
        free(key_pem);
        return;
    }
    json_t *aj = json_pack("{s:s,s:s}", "directory", directory, "url", url);
    r->accounts = xrealloc(r->accounts, (r->n_accounts + 1) * sizeof(*r->accounts));
    r->accounts[r->n_accounts].ca = xstrdup(ca);
    r->accounts[r->n_accounts].key_pem = key_pem;
    r->accounts[r->n_accounts].json = json_dumps(aj, JSON_INDENT(2));
    r->n_accounts++;
    json_decref(aj);
}

/* certbot's account (DIR/accounts/HOST/PATH/ID: private_key.json, a JWK,
 * and regr.json with its URL) for CA ca. */
void migrate_account_take(struct run *r, const char *ca, const char *directory,
                          const char *acct_dir, const json_t *regr)
{
    const char *url = json_string_value(json_object_get(regr, "uri"));
    char *kpath = xasprintf("%s/private_key.json", acct_dir);
    json_t *jwk = json_load_file(kpath, 0, NULL);
    char *pem = jwk != NULL ? migrate_jwk_to_pem(jwk) : NULL;

    json_decref(jwk);
    if (pem == NULL || url == NULL) {
        fprintf(r->err, "certloop: %s: ca=%s: %s: %s; certloop will register its own account\n",
                r->cmd, ca, pem == NULL ? kpath : acct_dir,
                pem == NULL ? "not an RSA or EC P-256/P-384 JWK" : "regr.json has no uri");
        free(pem);
    } else {
        migrate_account_add(r, ca, directory, pem, url);
    }
    free(kpath);
}

/* Adds path (trailing slashes dropped) to a set of distinct paths. */
void migrate_path_set_add(char ***set, size_t *n, const char *path)
{
    char *p = xstrdup(path);
    size_t l = strlen(p);

    while (l > 1 && p[l - 1] == '/')
        p[--l] = '\0';
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*set)[i], p) == 0) {
            free(p);
            return;
        }
    }
    *set = xrealloc(*set, (*n + 1) * sizeof(**set));
    (*set)[(*n)++] = p;
}

static void path_set_free(char **set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(set[i]);
    free(set);
}

void migrate_webroot_add(struct run *r, const char *path)
{
    migrate_path_set_add(&r->webroots, &r->n_webroots, path);
}

/* Writes conf.d/PREFIX-NAME.toml. 0, or < 0 with *why. */
int migrate_emit_lineage(struct run *r, const struct lineage_out *l, char **why)
{
    struct buf b = BUF_INIT(SIZE_MAX);
    const char *import_cert = l->fullchain != NULL ? l->fullchain : l->cert;
    size_t n = 0;
    int rc;

    buf_printf(&b,
               "# Written by `certloop %s %s` from %s.\n"
               "# The files stay where they are: they are imported as the first generation\n"
               "# (no order) and each renewal writes them again.\n",
               r->cmd, r->dir, l->source);
    if (l->dns_tables != NULL)
        buf_append_str(&b, l->dns_tables);
    buf_append_str(&b, "\n[certificate.");
    migrate_toml_key(&b, l->name);
    buf_append_str(&b, "]\ndomains = [");
    for (n = 0; l->names[n] != NULL; n++) {
        buf_append_str(&b, n > 0 ? ", " : "");
        migrate_toml_str(&b, l->names[n]);
    }
    buf_append_str(&b, "]\n");
    migrate_toml_kv(&b, "ca", l->ca);
    migrate_toml_kv(&b, "key", l->key);
    migrate_toml_kv(&b, "challenge", l->challenge);
    if (strcmp(l->challenge, "dns-01") == 0)
        buf_printf(&b, "dns = \"%s-%s\"\n", l->prefix, l->name);
    if (l->renew_before_days > 0)
        buf_printf(&b, "renew_before = \"%ldd\"\n", l->renew_before_days);
    buf_append_str(&b, "import = { cert = ");
    migrate_toml_str(&b, import_cert);
    buf_append_str(&b, ", key = ");
    migrate_toml_str(&b, l->key_path);
    buf_append_str(&b, " }\n\n");
    buf_append_str(&b, "[[certificate.");
    migrate_toml_key(&b, l->name);
    buf_append_str(&b, ".deploy]]\ntype = \"files\"\n");
    if (l->cert != NULL)
        migrate_toml_kv(&b, "cert", l->cert);
    if (l->chain != NULL)
        migrate_toml_kv(&b, "chain", l->chain);
    if (l->fullchain != NULL)
        migrate_toml_kv(&b, "fullchain", l->fullchain);
    migrate_toml_kv(&b, "key", l->key_path);
    if (l->hook != NULL) {
        /* a shell command, with RENEWED_LINEAGE naming the tool's own
         * directory as the tool set it */
        char *env = xasprintf("RENEWED_LINEAGE=%s", l->hook_lineage);
        buf_append_str(&b, "\n# the deploy hook\n[[certificate.");
        migrate_toml_key(&b, l->name);
        buf_append_str(&b, ".deploy]]\ntype = \"exec\"\n");
        buf_append_str(&b, "command = [\"/usr/bin/env\", ");
        migrate_toml_str(&b, env);
        buf_append_str(&b, ", \"/bin/sh\", \"-c\", ");
        migrate_toml_str(&b, l->hook);
        buf_append_str(&b, "]\nper_certificate = true\n");
        free(env);
    }
    char *path = xasprintf("%s/%s-%s.toml", r->conf_d, l->prefix, l->name);
    char *text = buf_steal(&b, NULL);
    rc = migrate_write_new(r, path, text, 0644);
    if (rc < 0)
        *why = xasprintf("%s: %s", path,
                         rc == -EEXIST ? "exists (remove it to import again)" : err_str(rc));
    else {
        char *kd = xstrdup(l->key_path);
        migrate_path_set_add(&r->deploy_dirs, &r->n_deploy_dirs, dirname(kd));
        free(kd);
    }
    if (rc == 0)
        fprintf(r->out, "%s: [certificate.%s] %zu %s, %s, %s, ca=%s%s\n", path, l->name, n,
                n == 1 ? "name" : "names", l->key, l->challenge, l->ca,
                l->hook != NULL ? ", deploy hook" : "");
    free(text);
    free(path);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The systemd unit runs the daemon as certloop with ProtectSystem=strict:
 * the directories of the other client's files must be writable for it and
 * listed in ReadWritePaths=, or the first deployment fails. */
static void unit_user_note(struct run *r)
{
    struct passwd *pw = getpwnam("certloop");
    struct stat st;
    int n = 0;

    if (pw == NULL)
        return;
    for (size_t i = 0; i < r->n_deploy_dirs; i++)
        n += stat(r->deploy_dirs[i], &st) == 0 && st.st_uid != pw->pw_uid;
    if (n == 0)
        return;
    fprintf(r->out,
            "note: under systemd/certloop.service the daemon runs as certloop, with the file "
            "system read-only but for ReadWritePaths=; it must read and replace the imported "
            "files, so:\n");
    for (size_t i = 0; i < r->n_deploy_dirs; i++)
        if (stat(r->deploy_dirs[i], &st) == 0 && st.st_uid != pw->pw_uid)
            fprintf(r->out, "  chown -R certloop: %s\n", r->deploy_dirs[i]);
    for (size_t i = 0; i < r->n_read_dirs; i++)
        if (stat(r->read_dirs[i], &st) == 0 && st.st_uid != pw->pw_uid)
            fprintf(r->out, "  chown -R certloop: %s\n", r->read_dirs[i]);
    fprintf(r->out, "  systemctl edit certloop   # [Service] ReadWritePaths=");
    for (size_t i = 0; i < r->n_deploy_dirs; i++)
        fprintf(r->out, "%s%s", i > 0 ? " " : "", r->deploy_dirs[i]);
    fprintf(r->out, "\n");
}

/* Stores an account and waits for it (a command, not the daemon: the loop
 * is ours). 0 or < 0 with *error (owned, may be NULL). */
static int account_put(struct store *s, uv_loop_t *loop, const struct account *a, char **error)
{
    struct store_wait w;

    store_wait_init(&w);
    int rc = store_account_put_start(s, a->ca, a->key_pem, a->json, store_wait_cb, &w);
    if (rc == 0)
        rc = store_wait_run(loop, &w);
    *error = w.error;
    return rc;
}

void migrate_skipped(struct run *r, const char *lname, int ret, char *why)
{
    if (ret != 0)
        fprintf(r->err, "certloop: %s: %s: skipped: %s\n", r->cmd, lname,
                why != NULL ? why : "unreadable");
    free(why);
}

/* One import: the files DIR/SUBDIR/NAME.SUFFIX, each handed to fn, then
 * the validation, the accounts and the notes. */
int migrate_run(const char *config_path, const char *dir, const char *cmd, const char *prefix,
                const char *subdir, const char *suffix,
                int (*fn)(struct run *r, const char *path, const char *name), FILE *out, FILE *err)
{
    struct config *cfg = NULL;
    struct run r = {.dir = dir, .cmd = cmd, .prefix = prefix, .out = out, .err = err};
    uv_loop_t loop;
    char **confs = NULL;
    size_t n_confs = 0;
    int skipped = 0, imported = 0;
    int ret = 1;
    int rc = plan_load_config(config_path, err, &cfg);

    if (rc != 0)
        return rc;
    r.cfg = cfg;
    uv_loop_init(&loop);
    /* run as root for a daemon that runs as another user (the systemd
     * unit's certloop): the account written takes the state directory's
     * owner, else the daemon could not read it */
    rc = store_open_config(&loop, cfg, STORE_FS_SHARED | STORE_FS_AS_OWNER, &r.store);
    if (rc < 0) {
        fprintf(err, "certloop: %s: the store ([store] type = \"%s\"): %s\n", cmd,
                cfg->store.type == CFG_STORE_POSTGRESQL ? "postgresql" : "files", err_str(rc));
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        config_unref(cfg);
        return 69;
    }
    char *copy = xstrdup(cfg->path);
    r.conf_dir = xstrdup(dirname(copy));
    free(copy);
    r.conf_d = xasprintf("%s/conf.d", r.conf_dir);

    char *renewal = xasprintf("%s/%s", dir, subdir);
    size_t sl = strlen(suffix);
    DIR *d = opendir(renewal);
    if (d == NULL) {
        fprintf(err, "certloop: %s: %s: %s (is %s %s's directory?)\n", cmd, renewal,
                strerror(errno), dir, prefix);
        free(renewal);
        goto out;
    }
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        size_t l = strlen(de->d_name);
        if (l > sl && strcmp(de->d_name + l - sl, suffix) == 0 && de->d_name[0] != '.') {
            confs = xrealloc(confs, (n_confs + 1) * sizeof(*confs));
            confs[n_confs++] = xstrndup(de->d_name, l - sl);
        }
    }
    closedir(d);
    if (n_confs == 0) {
        fprintf(err, "certloop: %s: %s: no *%s: nothing to import\n", cmd, renewal, suffix);
        free(renewal);
        goto out;
    }
    qsort(confs, n_confs, sizeof(*confs), by_name);
    if (store_mkdirs(r.conf_d, 0755) < 0) {
        fprintf(err, "certloop: %s: %s: cannot create it\n", cmd, r.conf_d);
        free(renewal);
        goto out;
    }
    for (size_t i = 0; i < n_confs; i++) {
        char *p = xasprintf("%s/%s%s", renewal, confs[i], suffix);
        if (fn(&r, p, confs[i]) == 0)
            imported++;
        else
            skipped++;
        free(p);
    }
    free(renewal);

    /* the result must load as `check` loads it, else nothing stays */
    if (imported > 0) {
        struct config *check = NULL;
        struct config_diag diag;
        config_diag_init(&diag);
        rc = config_load(config_path, &check, &diag);
        if (rc != 0) {
            for (size_t i = 0; i < diag.n; i++)
                fprintf(err, "%s\n", diag.lines[i]);
            fprintf(err,
                    "certloop: %s: the configuration with the imported files is "
                    "invalid: they are removed again\n",
                    cmd);
            for (size_t i = 0; i < r.w.n; i++)
                unlink(r.w.paths[i]);
            config_diag_fini(&diag);
            ret = EXIT_CONFIG;
            goto out;
        }
        config_unref(check);
        config_diag_fini(&diag);
    }
    for (size_t i = 0; i < r.n_accounts; i++) {
        char *e = NULL;
        rc = account_put(r.store, &loop, &r.accounts[i], &e);
        if (rc < 0) {
            fprintf(err, "certloop: %s: ca=%s: account: %s\n", cmd, r.accounts[i].ca,
                    e != NULL ? e : err_str(rc));
            skipped++;
        } else {
            char *where = store_where(r.store, STORE_WHERE_ACCOUNT, r.accounts[i].ca);
            fprintf(out, "ca=%s: %s's account stored in %s\n", r.accounts[i].ca, prefix, where);
            free(where);
        }
        free(e);
    }
    if (strcmp(prefix, "certbot") == 0)
        migrate_certbot_hook_dirs(&r);
    unit_user_note(&r);
    if (r.n_webroots > 0) {
        const char *have = cfg->http01.webroot;
        if (r.n_webroots > 1)
            fprintf(out,
                    "note: %s used %zu webroots; certloop has one ([http01] webroot): serve "
                    "/.well-known/acme-challenge/ of every site from it\n",
                    prefix, r.n_webroots);
        if (have == NULL || strcmp(have, r.webroots[0]) != 0)
            fprintf(out,
                    "note: %s's webroot lineages need, in %s:\n  [http01]\n  webroot = "
                    "\"%s\"\n",
                    prefix, cfg->path, r.webroots[0]);
    }
    fprintf(out,
            "%d imported, %d skipped. Next: certloop check, then systemctl reload certloop; "
            "stop %s's own renewals (%s).\n",
            imported, skipped, prefix,
            strcmp(prefix, "certbot") == 0 ? "systemctl disable --now certbot.timer"
                                           : "its cron job or timer");
    ret = skipped > 0 ? 1 : 0;
out:
    for (size_t i = 0; i < n_confs; i++)
        free(confs[i]);
    free(confs);
    for (size_t i = 0; i < r.w.n; i++)
        free(r.w.paths[i]);
    free(r.w.paths);
    for (size_t i = 0; i < r.n_accounts; i++) {
        free(r.accounts[i].ca);
        OPENSSL_cleanse(r.accounts[i].key_pem, strlen(r.accounts[i].key_pem));
        free(r.accounts[i].key_pem);
        free(r.accounts[i].json);
    }
    free(r.accounts);
    for (size_t i = 0; i < r.n_new_cas; i++)
        free(r.new_cas[i]);
    free(r.new_cas);
    path_set_free(r.webroots, r.n_webroots);
    path_set_free(r.deploy_dirs, r.n_deploy_dirs);
    path_set_free(r.read_dirs, r.n_read_dirs);
    free(r.conf_d);
    free(r.conf_dir);
    store_close(r.store);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    config_unref(cfg);
    return ret;
}
