/* `certloop import-certbot` and `import-lego`: another client's
 * certificates become certloop configuration files, its account becomes
 * certloop's. It reads certbot's renewal/NAME.conf (configobj syntax), the
 * PEM files they name and the account's JWK, or lego's certificates/ and
 * accounts/; it writes new files only (never over an existing one) and
 * changes nothing of the other client's. It does not order, deploy or stop it:
 * the daemon imports the live files as the first generation when it next
 * loads the configuration. */
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
#include "reactor/plan.h"
#include "store/store.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/xalloc.h"

/* ---- configobj files: "key = value" lines under [section] / [[section]] */

struct ini_entry {
    char *section; /* "" at the top, else the innermost section's name */
    char *key, *val;
};

struct ini {
    struct ini_entry *e;
    size_t n;
};

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    return s;
}

/* 0, or -errno when path cannot be read. */
static int ini_read(const char *path, struct ini *f)
{
    char *text = NULL;
    char *section = xstrdup("");
    int rc = store_read_file(path, &text, NULL);

    memset(f, 0, sizeof(*f));
    if (rc < 0) {
        free(section);
        return rc;
    }
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *s = trim(line);
        if (*s == '#' || *s == '\0')
            continue;
        if (*s == '[') {
            char *name = s;
            while (*name == '[')
                name++;
            char *end = strchr(name, ']');
            if (end != NULL)
                *end = '\0';
            free(section);
            section = xstrdup(trim(name));
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        char *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
            val[vl - 1] = '\0';
            val++;
        }
        f->e = xrealloc(f->e, (f->n + 1) * sizeof(*f->e));
        f->e[f->n].section = xstrdup(section);
        f->e[f->n].key = xstrdup(trim(s));
        f->e[f->n].val = xstrdup(val);
        f->n++;
    }
    free(section);
    free(text);
    return 0;
}

static void ini_fini(struct ini *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->e[i].section);
        free(f->e[i].key);
        free(f->e[i].val);
    }
    free(f->e);
}

/* The value of key in section, or NULL. Borrowed. */
static const char *ini_get(const struct ini *f, const char *section, const char *key)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->e[i].section, section) == 0 && strcmp(f->e[i].key, key) == 0)
            return f->e[i].val[0] != '\0' ? f->e[i].val : NULL;
    return NULL;
}

/* ---- TOML output */

static void toml_str(struct buf *b, const char *s)
{
    buf_append_str(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            buf_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            buf_printf(b, "\\u%04X", *p);
        else
            buf_append(b, p, 1);
    }
    buf_append_str(b, "\"");
}

static void toml_kv(struct buf *b, const char *key, const char *val)
{
    buf_printf(b, "%s = ", key);
    toml_str(b, val);
    buf_append_str(b, "\n");
}

/* A table name part: bare when TOML allows it, else quoted ("a.test"
 * would otherwise be two keys). */
static void toml_key(struct buf *b, const char *k)
{
    for (const char *p = k; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-')) {
            toml_str(b, k);
            return;
        }
    }
    buf_append_str(b, k);
}

/* ---- certificates and keys */

/* The names of the first certificate in the PEM file at path (DNS and IP
 * SANs, in order), as a NULL-terminated owned array; NULL if unreadable. */
static char **cert_names(const char *path, char **why)
{
    FILE *f = fopen(path, "re");
    X509 *x = NULL;
    GENERAL_NAMES *sans = NULL;
    char **names = NULL;
    size_t n = 0;

    if (f == NULL) {
        *why = xasprintf("%s: %s", path, strerror(errno));
        return NULL;
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL) {
        *why = xasprintf("%s: not a PEM certificate", path);
        return NULL;
    }
    sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    names = xcalloc((size_t)sk_GENERAL_NAME_num(sans) + 1, sizeof(*names));
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS) {
            const ASN1_IA5STRING *s = g->d.dNSName;
            names[n++] =
                xstrndup((const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
        } else if (g->type == GEN_IPADD) {
            char ip[INET6_ADDRSTRLEN];
            int len = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
            if ((len == 4 && inet_ntop(AF_INET, d, ip, sizeof(ip)) != NULL) ||
                (len == 16 && inet_ntop(AF_INET6, d, ip, sizeof(ip)) != NULL))
                names[n++] = xstrdup(ip);
        }
    }
    GENERAL_NAMES_free(sans);
    X509_free(x);
    if (n == 0) {
        free(names);
        *why = xasprintf("%s: the certificate names no DNS name or IP address", path);
        return NULL;
    }
    return names;
}

static void names_free(char **names)
{
    for (size_t i = 0; names != NULL && names[i] != NULL; i++)
        free(names[i]);
    free(names);
}

/* certloop's key type for the PEM private key at path; NULL (and *why)
 * when it is unreadable or a type certloop does not make. */
static const char *key_type_of_file(const char *path, char **why)
{
    FILE *f = fopen(path, "re");
    EVP_PKEY *k = f != NULL ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    const char *t = NULL;

    if (f != NULL)
        fclose(f);
    if (k == NULL) {
        *why = xasprintf("%s: not a readable PEM private key", path);
        return NULL;
    }
    if (EVP_PKEY_is_a(k, "RSA")) {
        int bits = EVP_PKEY_get_bits(k);
        t = bits == 2048 ? "rsa2048" : bits == 3072 ? "rsa3072" : bits == 4096 ? "rsa4096" : NULL;
    } else if (EVP_PKEY_is_a(k, "EC")) {
        char group[64] = "";
        EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL);
        t = strcmp(group, "prime256v1") == 0  ? "ec-p256"
            : strcmp(group, "secp384r1") == 0 ? "ec-p384"
                                              : NULL;
    }
    if (t == NULL)
        *why = xasprintf("%s: a key type certloop does not make", path);
    EVP_PKEY_free(k);
    return t;
}

/* certloop's key type for certbot's renewal parameters, else for the key
 * file itself; NULL (and *why) when certloop has no such type. */
static const char *key_type(const struct ini *rc, const char *key_path, char **why)
{
    const char *kt = ini_get(rc, "renewalparams", "key_type");
    const char *curve = ini_get(rc, "renewalparams", "elliptic_curve");
    const char *size = ini_get(rc, "renewalparams", "rsa_key_size");

    if (kt != NULL && strcmp(kt, "ecdsa") == 0) {
        if (curve == NULL || strcmp(curve, "secp256r1") == 0)
            return "ec-p256";
        if (strcmp(curve, "secp384r1") == 0)
            return "ec-p384";
        *why = xasprintf("elliptic_curve = %s (certloop has ec-p256 and ec-p384)", curve);
        return NULL;
    }
    if (kt != NULL && strcmp(kt, "rsa") == 0) {
        if (size == NULL || strcmp(size, "2048") == 0)
            return "rsa2048";
        if (strcmp(size, "3072") == 0)
            return "rsa3072";
        if (strcmp(size, "4096") == 0)
            return "rsa4096";
        *why = xasprintf("rsa_key_size = %s (certloop has 2048, 3072 and 4096)", size);
        return NULL;
    }
    /* older renewal files say nothing: the key in use tells */
    return key_type_of_file(key_path, why);
}

/* A JWK member as a big number, or NULL. */
static BIGNUM *jwk_bn(const json_t *jwk, const char *member)
{
    const char *s = json_string_value(json_object_get(jwk, member));
    uint8_t *bin = NULL;
    size_t len = 0;
    BIGNUM *bn;

    if (s == NULL || b64url_decode(s, strlen(s), &bin, &len) < 0)
        return NULL;
    bn = BN_bin2bn(bin, (int)len, NULL);
    OPENSSL_clear_free(bin, len);
    return bn;
}

/* k as a PEM PKCS#8 private key (the form certloop stores); owned, or
 * NULL when OpenSSL fails. */
static char *pkey_to_pem(EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;

    if (bio != NULL && PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) == 1) {
        char *data = NULL;
        long len = BIO_get_mem_data(bio, &data);
        pem = xstrndup(data, (size_t)len);
    }
    BIO_free(bio);
    return pem;
}

/* certbot's private_key.json (a JWK, RSA or EC P-256/P-384) as a PEM
 * PKCS#8 private key; owned, NULL if it is none of those. */
static char *jwk_to_pem(const json_t *jwk)
{
    static const char *const rsa_members[] = {"n", "e", "d", "p", "q", "dp", "dq", "qi"};
    static const char *const rsa_params[] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
        OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
        OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bns[8] = {NULL};
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    uint8_t *pub = NULL;
    char *pem = NULL;
    bool ok = bld != NULL && kty != NULL;

    if (ok && strcmp(kty, "RSA") == 0) {
        for (size_t i = 0; ok && i < 8; i++) {
            bns[i] = jwk_bn(jwk, rsa_members[i]);
            ok = bns[i] != NULL && OSSL_PARAM_BLD_push_BN(bld, rsa_params[i], bns[i]) == 1;
        }
        ctx = ok ? EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL) : NULL;
    } else if (ok && strcmp(kty, "EC") == 0) {
        const char *crv = json_string_value(json_object_get(jwk, "crv"));
        const char *group = crv == NULL                 ? NULL
                            : strcmp(crv, "P-256") == 0 ? "prime256v1"
                            : strcmp(crv, "P-384") == 0 ? "secp384r1"
                                                        : NULL;
        size_t flen = group != NULL && strcmp(group, "secp384r1") == 0 ? 48 : 32;
        bns[0] = jwk_bn(jwk, "x");
        bns[1] = jwk_bn(jwk, "y");
        bns[2] = jwk_bn(jwk, "d");
        ok = group != NULL && bns[0] != NULL && bns[1] != NULL && bns[2] != NULL;
        if (ok) {
            pub = xmalloc(1 + 2 * flen);
            pub[0] = 0x04; /* uncompressed point */
            ok = BN_bn2binpad(bns[0], pub + 1, (int)flen) == (int)flen &&
                 BN_bn2binpad(bns[1], pub + 1 + flen, (int)flen) == (int)flen &&
                 OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) == 1 &&
                 OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                                  1 + 2 * flen) == 1 &&
                 OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bns[2]) == 1;
        }
        ctx = ok ? EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL) : NULL;
    } else {
        ok = false;
    }
    params = ok ? OSSL_PARAM_BLD_to_param(bld) : NULL;
    ok = params != NULL && ctx != NULL && EVP_PKEY_fromdata_init(ctx) == 1 &&
         EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) == 1;
    if (ok)
        pem = pkey_to_pem(pkey);
    ERR_clear_error();
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    for (size_t i = 0; i < 8; i++)
        BN_clear_free(bns[i]);
    free(pub);
    return pem;
}

/* ---- one import run */

struct written {
    char **paths; /* files this run created, removed again if the result is invalid */
    size_t n;
};

struct account {
    char *ca;      /* certloop's CA name */
    char *key_pem; /* owned */
    char *json;    /* {"url", "directory"} */
};

struct run {
    const struct config *cfg;
    struct store *store; /* the daemon's, shared (no lock: it may be running) */
    const char *dir; /* certbot's, e.g. /etc/letsencrypt */
    char *conf_d;    /* where the .toml files go */
    char *conf_dir;  /* the main file's directory (secret files) */
    const char *cmd; /* "import-certbot" or "import-lego", for messages */
    FILE *out, *err;
    struct written w;
    struct account *accounts;
    size_t n_accounts;
    char **new_cas; /* "NAME\tDIRECTORY" of CAs written by this run */
    size_t n_new_cas;
    char **webroots; /* distinct webroot paths of the imported lineages */
    size_t n_webroots;
    char **deploy_dirs; /* distinct directories the files actions write to */
    size_t n_deploy_dirs;
    char **read_dirs; /* more directories the daemon must read (certbot's archive/) */
    size_t n_read_dirs;
    const char *prefix; /* "certbot" or "lego": conf.d/PREFIX-NAME.toml */
};

/* Creates path with data (O_EXCL: never over an existing file). */
static int write_new(struct run *r, const char *path, const char *data, mode_t mode)
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
static char *safe_name(const char *s)
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
static char *ca_for(struct run *r, const char *directory, const json_t *regr)
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
        name = safe_name(h);
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
    toml_key(&b, name);
    buf_append_str(&b, "]\n");
    toml_kv(&b, "directory", directory);
    const json_t *contact = json_object_get(json_object_get(regr, "body"), "contact");
    if (json_array_size(contact) > 0) {
        buf_append_str(&b, "contact = [");
        for (size_t i = 0; i < json_array_size(contact); i++) {
            const char *c = json_string_value(json_array_get(contact, i));
            if (c == NULL)
                continue;
            buf_append_str(&b, i > 0 ? ", " : "");
            toml_str(&b, c);
        }
        buf_append_str(&b, "]\n");
    }
    buf_printf(&b,
               "# %s's account agreed to the terms of service already\n"
               "agree_tos = true\n",
               r->prefix);
    char *path = xasprintf("%s/%s-ca-%s.toml", r->conf_d, r->prefix, name);
    char *text = buf_steal(&b, NULL);
    int rc = write_new(r, path, text, 0644);
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
static void account_add(struct run *r, const char *ca, const char *directory, char *key_pem,
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
static void account_take(struct run *r, const char *ca, const char *directory, const char *acct_dir,
                         const json_t *regr)
{
    const char *url = json_string_value(json_object_get(regr, "uri"));
    char *kpath = xasprintf("%s/private_key.json", acct_dir);
    json_t *jwk = json_load_file(kpath, 0, NULL);
    char *pem = jwk != NULL ? jwk_to_pem(jwk) : NULL;

    json_decref(jwk);
    if (pem == NULL || url == NULL) {
        fprintf(r->err, "certloop: %s: ca=%s: %s: %s; certloop will register its own account\n",
                r->cmd, ca, pem == NULL ? kpath : acct_dir,
                pem == NULL ? "not an RSA or EC P-256/P-384 JWK" : "regr.json has no uri");
        free(pem);
    } else {
        account_add(r, ca, directory, pem, url);
    }
    free(kpath);
}

/* Adds path (trailing slashes dropped) to a set of distinct paths. */
static void path_set_add(char ***set, size_t *n, const char *path)
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

static void webroot_add(struct run *r, const char *path)
{
    path_set_add(&r->webroots, &r->n_webroots, path);
}

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
    const char *auth = ini_get(rc, "renewalparams", "manual_auth_hook");
    const char *cleanup = ini_get(rc, "renewalparams", "manual_cleanup_hook");
    char *solver = xasprintf("certbot-%s", name);

    buf_append_str(b, "\n# certbot's manual dns-01 hooks, called as certbot called them\n[dns.");
    toml_key(b, solver);
    buf_append_str(b, "]\ntype = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", ");
    toml_str(b, script);
    buf_append_str(b, ", \"certbot-manual-hook\", ");
    toml_str(b, auth);
    buf_append_str(b, ", ");
    toml_str(b, cleanup != NULL ? cleanup : "");
    buf_append_str(b, "]\n");
    free(solver);
}

/* The [dns.certbot-NAME] table for certbot's dns-rfc2136 credentials file,
 * its TSIG secret written to CONFDIR/certbot-NAME.tsig. 0 or -1 (*why). */
static int rfc2136_solver(struct run *r, const char *name, const struct ini *rc, struct buf *b,
                          char **why)
{
    const char *cred = ini_get(rc, "renewalparams", "dns_rfc2136_credentials");
    struct ini c;

    if (cred == NULL) {
        *why = xstrdup("dns-rfc2136 without dns_rfc2136_credentials");
        return -1;
    }
    int e = ini_read(cred, &c);
    if (e < 0) {
        *why = xasprintf("%s: %s", cred, err_str(e));
        return -1;
    }
    const char *server = ini_get(&c, "", "dns_rfc2136_server");
    const char *port = ini_get(&c, "", "dns_rfc2136_port");
    const char *kname = ini_get(&c, "", "dns_rfc2136_name");
    const char *secret = ini_get(&c, "", "dns_rfc2136_secret");
    const char *alg = ini_get(&c, "", "dns_rfc2136_algorithm");
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
    e = write_new(r, secret_path, secret_line, 0600);
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
    toml_key(b, solver);
    buf_append_str(b, "]\n");
    free(solver);
    toml_kv(b, "type", "rfc2136");
    toml_kv(b, "server", addr);
    buf_append_str(b, "tsig = { name = ");
    toml_str(b, kname);
    buf_append_str(b, ", algorithm = ");
    toml_str(b, lower);
    buf_append_str(b, ", secret_file = ");
    toml_str(b, secret_path);
    buf_append_str(b, " }\n");
    free(addr);
    free(secret_path);
    free(lower);
    ret = 0;
out:
    ini_fini(&c);
    return ret;
}

/* What one imported certificate becomes. */
struct lineage_out {
    const char *prefix; /* "certbot": conf.d/certbot-NAME.toml */
    const char *source; /* the file it came from, for the comment */
    const char *name;   /* [certificate.NAME] */
    char *const *names; /* NULL-terminated */
    const char *ca, *key, *challenge;
    const char *dns_tables; /* [dns.PREFIX-NAME] text, or NULL (dns = "PREFIX-NAME" with dns-01) */
    long renew_before_days; /* 0: certloop's default */
    const char *cert, *chain, *fullchain, *key_path; /* the files deployed; NULL: not written */
    const char *hook;         /* a shell command run after each deployment, or NULL */
    const char *hook_lineage; /* RENEWED_LINEAGE for it (the tool's live directory) */
};

/* Writes conf.d/PREFIX-NAME.toml. 0, or < 0 with *why. */
static int emit_lineage(struct run *r, const struct lineage_out *l, char **why)
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
    toml_key(&b, l->name);
    buf_append_str(&b, "]\ndomains = [");
    for (n = 0; l->names[n] != NULL; n++) {
        buf_append_str(&b, n > 0 ? ", " : "");
        toml_str(&b, l->names[n]);
    }
    buf_append_str(&b, "]\n");
    toml_kv(&b, "ca", l->ca);
    toml_kv(&b, "key", l->key);
    toml_kv(&b, "challenge", l->challenge);
    if (strcmp(l->challenge, "dns-01") == 0)
        buf_printf(&b, "dns = \"%s-%s\"\n", l->prefix, l->name);
    if (l->renew_before_days > 0)
        buf_printf(&b, "renew_before = \"%ldd\"\n", l->renew_before_days);
    buf_append_str(&b, "import = { cert = ");
    toml_str(&b, import_cert);
    buf_append_str(&b, ", key = ");
    toml_str(&b, l->key_path);
    buf_append_str(&b, " }\n\n");
    buf_append_str(&b, "[[certificate.");
    toml_key(&b, l->name);
    buf_append_str(&b, ".deploy]]\ntype = \"files\"\n");
    if (l->cert != NULL)
        toml_kv(&b, "cert", l->cert);
    if (l->chain != NULL)
        toml_kv(&b, "chain", l->chain);
    if (l->fullchain != NULL)
        toml_kv(&b, "fullchain", l->fullchain);
    toml_kv(&b, "key", l->key_path);
    if (l->hook != NULL) {
        /* a shell command, with RENEWED_LINEAGE naming the tool's own
         * directory as the tool set it */
        char *env = xasprintf("RENEWED_LINEAGE=%s", l->hook_lineage);
        buf_append_str(&b, "\n# the deploy hook\n[[certificate.");
        toml_key(&b, l->name);
        buf_append_str(&b, ".deploy]]\ntype = \"exec\"\n");
        buf_append_str(&b, "command = [\"/usr/bin/env\", ");
        toml_str(&b, env);
        buf_append_str(&b, ", \"/bin/sh\", \"-c\", ");
        toml_str(&b, l->hook);
        buf_append_str(&b, "]\nper_certificate = true\n");
        free(env);
    }
    char *path = xasprintf("%s/%s-%s.toml", r->conf_d, l->prefix, l->name);
    char *text = buf_steal(&b, NULL);
    rc = write_new(r, path, text, 0644);
    if (rc < 0)
        *why = xasprintf("%s: %s", path,
                         rc == -EEXIST ? "exists (remove it to import again)" : err_str(rc));
    else {
        char *kd = xstrdup(l->key_path);
        path_set_add(&r->deploy_dirs, &r->n_deploy_dirs, dirname(kd));
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
    int e = ini_read(conf_path, &rc);

    if (e < 0) {
        why = xasprintf("%s: %s", conf_path, err_str(e));
        goto out;
    }
    name = safe_name(lname);
    const char *cert = ini_get(&rc, "", "cert");
    const char *chain = ini_get(&rc, "", "chain");
    const char *fullchain = ini_get(&rc, "", "fullchain");
    const char *privkey = ini_get(&rc, "", "privkey");
    const char *server = ini_get(&rc, "renewalparams", "server");
    const char *auth = ini_get(&rc, "renewalparams", "authenticator");
    const char *account = ini_get(&rc, "renewalparams", "account");
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
    names = cert_names(fullchain, &why);
    if (names == NULL)
        goto out;
    const char *kt = key_type(&rc, privkey, &why);
    if (kt == NULL)
        goto out;
    if (auth == NULL || strcmp(auth, "standalone") == 0) {
        challenge = "http-01";
    } else if (strcmp(auth, "webroot") == 0) {
        const char *wp = ini_get(&rc, "renewalparams", "webroot_path");
        bool any = false;
        for (size_t i = 0; i < rc.n; i++) {
            if (strcmp(rc.e[i].section, "webroot_map") == 0) {
                webroot_add(r, rc.e[i].val);
                any = true;
            }
        }
        if (!any && wp != NULL) {
            char *copy = xstrdup(wp), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
                if (*trim(t) != '\0')
                    webroot_add(r, trim(t));
            free(copy);
        }
    } else if (strcmp(auth, "dns-rfc2136") == 0) {
        challenge = "dns-01";
        if (rfc2136_solver(r, name, &rc, &dns, &why) < 0)
            goto out;
    } else if (strcmp(auth, "manual") == 0) {
        const char *pref = ini_get(&rc, "renewalparams", "pref_challs");
        if (ini_get(&rc, "renewalparams", "manual_auth_hook") == NULL || pref == NULL ||
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
    ca = ca_for(r, server, regr);
    if (ca == NULL) {
        why = xstrdup("cannot write the CA's file");
        goto out;
    }
    if (regr != NULL)
        account_take(r, ca, server, acct_dir, regr);
    else
        fprintf(r->out, "%s: no certbot account found under %s/accounts/%s\n", name, r->dir,
                hostpath);

    const char *rbe = ini_get(&rc, "", "renew_before_expiry");
    long days = rbe != NULL && strstr(rbe, "day") != NULL ? strtol(rbe, NULL, 10) : 0;
    const char *hook = ini_get(&rc, "renewalparams", "renew_hook");
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
    e = emit_lineage(r, &l, &why);
    free(live);
    if (e < 0)
        goto out;
    /* the live files are links into archive/NAME until the first renewal */
    const char *archive = ini_get(&rc, "", "archive_dir");
    if (archive != NULL)
        path_set_add(&r->read_dirs, &r->n_read_dirs, archive);
    for (const char *k = "pre_hook"; k != NULL; k = strcmp(k, "pre_hook") == 0 ? "post_hook" : NULL)
        if (ini_get(&rc, "renewalparams", k) != NULL)
            fprintf(r->out,
                    "%s: certbot's %s is not imported: put it in [daemon] hooks_dir's %s/\n", name,
                    k, strcmp(k, "pre_hook") == 0 ? "pre" : "post");
    ret = 0;
out:
    if (ret != 0)
        fprintf(r->err, "certloop: %s: %s: skipped: %s\n", r->cmd, lname,
                why != NULL ? why : "unreadable");
    free(why);
    free(name);
    free(ca);
    free(acct_dir);
    names_free(names);
    json_decref(regr);
    buf_fini(&dns);
    ini_fini(&rc);
    return ret;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

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
        pem = pkey_to_pem(k);
    EVP_PKEY_free(k);
    ERR_clear_error();
    if (pem == NULL || url == NULL) {
        fprintf(r->err, "certloop: %s: ca=%s: %s: %s; certloop will register its own account\n",
                r->cmd, ca, pem == NULL ? kpath : jpath,
                pem == NULL ? "not a readable PEM private key" : "no registration uri");
        free(pem);
    } else {
        account_add(r, ca, directory, pem, url);
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
    name = safe_name(lname);
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
    names = cert_names(crt, &why);
    if (names == NULL)
        goto out;
    const char *kt = key_type_of_file(key, &why);
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
    ca = ca_for(r, directory, NULL);
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
    if (emit_lineage(r, &l, &why) < 0)
        goto out;
    fprintf(r->out,
            "%s: lego does not record the challenge or hooks: http-01 through certloop's "
            "listener (edit the file for webroot or dns-01, add exec deploy actions for "
            "lego's --run-hook)\n",
            name);
    ret = 0;
out:
    if (ret != 0)
        fprintf(r->err, "certloop: %s: %s: skipped: %s\n", r->cmd, lname,
                why != NULL ? why : "unreadable");
    free(why);
    free(name);
    free(ca);
    free(base);
    free(crt);
    free(issuer);
    free(key);
    free(directory);
    free(host);
    names_free(names);
    json_decref(res);
    return ret;
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

/* certbot's DIR/renewal-hooks/{pre,deploy,post}/ has the layout of
 * certloop's [daemon] hooks_dir: say so when it holds hooks. */
static void certbot_hook_dirs(struct run *r)
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

/* One import: the files DIR/SUBDIR/NAME.SUFFIX, each handed to fn, then
 * the validation, the accounts and the notes. */
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

static int migrate_run(const char *config_path, const char *dir, const char *cmd,
                       const char *prefix, const char *subdir, const char *suffix,
                       int (*fn)(struct run *r, const char *path, const char *name), FILE *out,
                       FILE *err)
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
    (void)store_fs_open(&loop, cfg->daemon.state_dir, STORE_FS_SHARED | STORE_FS_AS_OWNER,
                        &r.store);
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
        certbot_hook_dirs(&r);
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

int migrate_certbot(const char *config_path, const char *dir, FILE *out, FILE *err)
{
    return migrate_run(config_path, dir, "import-certbot", "certbot", "renewal", ".conf",
                       certbot_lineage, out, err);
}

int migrate_lego(const char *config_path, const char *dir, FILE *out, FILE *err)
{
    return migrate_run(config_path, dir, "import-lego", "lego", "certificates", ".json",
                       lego_certificate, out, err);
}
