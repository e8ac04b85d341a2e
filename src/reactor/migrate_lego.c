/* `certloop import-lego`: lego's certificates/NAME.json with its PEM files
 * and its accounts/ mapped to certloop's keys; the run itself is
 * migrate.c's. */
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

/* The number of certificates in the PEM file at path (0 if unreadable). */
static int pem_count(const char *path)
{
    char *text = NULL;
    int n = 0;

    if (store_read_file(path, &text, NULL) < 0)
        return 0;
    for (const char *p = text; (p = strstr(p, "-----BEGIN CERTIFICATE-----")) != NULL; p++)
        n++;
    free(text);
    return n;
}

/* lego's account for the CA at host (lego's accounts/HOST_PORT/EMAIL/:
 * account.json with the registration URL, keys/EMAIL.key in PEM), the
 * first by e-mail address when there are several. */
static void lego_account(struct run *r, const char *ca, const char *directory, const char *host_dir)
{
    char *adir = xasprintf("%s/accounts/%s", r->dir, host_dir);
    DIR *d = opendir(adir);
    char *best = NULL;

    for (struct dirent *de; d != NULL && (de = readdir(d)) != NULL;)
        if (de->d_name[0] != '.' && (best == NULL || strcmp(de->d_name, best) < 0)) {
            free(best);
            best = xstrdup(de->d_name);
        }
    if (d != NULL)
        closedir(d);
    if (best == NULL) {
        fprintf(r->out, "ca=%s: no lego account under %s: certloop will register its own\n", ca,
                adir);
        free(adir);
        return;
    }
    char *jpath = xasprintf("%s/%s/account.json", adir, best);
    char *kpath = xasprintf("%s/%s/keys/%s.key", adir, best, best);
    json_t *acct = json_load_file(jpath, 0, NULL);
    const char *url =
        json_string_value(json_object_get(json_object_get(acct, "registration"), "uri"));
    FILE *f = fopen(kpath, "re");
    EVP_PKEY *k = f != NULL ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    char *pem = NULL;
    if (f != NULL)
        fclose(f);
    if (k != NULL)
        pem = migrate_pkey_to_pem(k);
    EVP_PKEY_free(k);
    ERR_clear_error();
    if (pem == NULL || url == NULL) {
        fprintf(r->err, "certloop: %s: ca=%s: %s: %s; certloop will register its own account\n",
                r->cmd, ca, pem == NULL ? kpath : jpath,
                pem == NULL ? "not a readable PEM private key" : "no registration uri");
        free(pem);
    } else {
        migrate_account_add(r, ca, directory, pem, url);
    }
    json_decref(acct);
    free(jpath);
    free(kpath);
    free(best);
    free(adir);
}

/* One lego certificates/NAME.json (lego's "resource": domain, certUrl). lego
 * records neither the CA's directory nor the challenge: the CA is the
 * configuration's [ca.NAME] on the certificate URL's host (Let's Encrypt's
 * is known), the challenge certloop's default, http-01. 0 imported, 1
 * skipped. */
static int lego_certificate(struct run *r, const char *json_path, const char *lname)
{
    char *why = NULL, *name = NULL, *ca = NULL, *base = NULL, *crt = NULL, *issuer = NULL,
         *key = NULL, *directory = NULL, *host = NULL;
    char **names = NULL;
    json_t *res = json_load_file(json_path, 0, NULL);
    const char *cert_url = json_string_value(json_object_get(res, "certUrl"));
    int ret = 1;

    if (res == NULL || cert_url == NULL || strncmp(cert_url, "https://", 8) != 0) {
        why = xasprintf("%s: not a lego certificate resource (no https certUrl)", json_path);
        goto out;
    }
    name = migrate_safe_name(lname);
    for (size_t i = 0; i < r->cfg->n_certs; i++) {
        if (strcmp(r->cfg->certs[i].name, name) == 0) {
            why = xasprintf("the configuration has a [certificate.%s] already", name);
            goto out;
        }
    }
    base = xstrndup(json_path, strlen(json_path) - 5); /* without ".json" */
    crt = xasprintf("%s.crt", base);
    issuer = xasprintf("%s.issuer.crt", base);
    key = xasprintf("%s.key", base);
    names = migrate_cert_names(crt, &why);
    if (names == NULL)
        goto out;
    const char *kt = migrate_key_type_of_file(key, &why);
    if (kt == NULL)
        goto out;
    /* the CA: the certificate URL's scheme and host[:port] */
    host = xstrndup(cert_url + 8, strcspn(cert_url + 8, "/"));
    for (size_t i = 0; directory == NULL && i < r->cfg->n_cas; i++) {
        const char *dirurl = r->cfg->cas[i].directory;
        size_t hl = strlen(host);
        if (strncmp(dirurl, "https://", 8) == 0 && strncmp(dirurl + 8, host, hl) == 0 &&
            (dirurl[8 + hl] == '/' || dirurl[8 + hl] == '\0'))
            directory = xstrdup(dirurl);
    }
    if (directory == NULL && strcmp(host, "acme-v02.api.letsencrypt.org") == 0)
        directory = xstrdup("https://acme-v02.api.letsencrypt.org/directory");
    if (directory == NULL && strcmp(host, "acme-staging-v02.api.letsencrypt.org") == 0)
        directory = xstrdup("https://acme-staging-v02.api.letsencrypt.org/directory");
    if (directory == NULL) {
        why = xasprintf("lego does not record its CA's directory URL: add a [ca.NAME] whose "
                        "directory is on https://%s/ and import again",
                        host);
        goto out;
    }
    ca = migrate_ca_for(r, directory, NULL);
    if (ca == NULL) {
        why = xstrdup("cannot write the CA's file");
        goto out;
    }
    char *host_dir = xstrdup(host); /* lego's accounts/ names it HOST_PORT */
    for (char *p = host_dir; *p != '\0'; p++)
        if (*p == ':')
            *p = '_';
    lego_account(r, ca, directory, host_dir);
    free(host_dir);

    /* lego bundles the issuer into NAME.crt unless run with --no-bundle */
    bool bundled = pem_count(crt) > 1;
    struct lineage_out l = {
        .prefix = "lego",
        .source = json_path,
        .name = name,
        .names = names,
        .ca = ca,
        .key = kt,
        .challenge = "http-01",
        .cert = bundled ? NULL : crt,
        .chain = access(issuer, F_OK) == 0 ? issuer : NULL,
        .fullchain = bundled ? crt : NULL,
        .key_path = key,
    };
    if (migrate_emit_lineage(r, &l, &why) < 0)
        goto out;
    fprintf(r->out,
            "%s: lego does not record the challenge or hooks: http-01 through certloop's "
            "listener (edit the file for webroot or dns-01, add exec deploy actions for "
            "lego's --run-hook)\n",
            name);
    ret = 0;
out:
    migrate_skipped(r, lname, ret, why);
    free(name);
    free(ca);
    free(base);
    free(crt);
    free(issuer);
    free(key);
    free(directory);
    free(host);
    migrate_names_free(names);
    json_decref(res);
    return ret;
}

int migrate_lego(const char *config_path, const char *dir, FILE *out, FILE *err)
{
    return migrate_run(config_path, dir, "import-lego", "lego", "certificates", ".json",
                       lego_certificate, out, err);
}
