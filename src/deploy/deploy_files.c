/* The `files` deploy action: copies a stored generation to the paths a
 * service reads (PEM pieces, key + fullchain bundle, PKCS#12), each file
 * replaced atomically with its owner and mode, and the rollback journal
 * that keeps what they replaced until the whole deployment of the
 * certificate has succeeded (or puts it back when it has not). It does not
 * reload anything (that is an `exec` action) nor decide when a deployment
 * has failed (the manager does). */
#include "deploy/deploy.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

static const char *const file_names[DEPLOY_FILE__MAX] = {
    "key", "bundle", "pkcs12", "cert", "chain", "fullchain",
};

const char *deploy_file_name(enum deploy_file f)
{
    return f < DEPLOY_FILE__MAX ? file_names[f] : "?";
}

const char *deploy_file_path(const struct cfg_deploy *d, enum deploy_file f)
{
    switch (f) {
    case DEPLOY_FILE_KEY:
        return d->key;
    case DEPLOY_FILE_BUNDLE:
        return d->bundle;
    case DEPLOY_FILE_PKCS12:
        return d->pkcs12;
    case DEPLOY_FILE_CERT:
        return d->cert;
    case DEPLOY_FILE_CHAIN:
        return d->chain;
    case DEPLOY_FILE_FULLCHAIN:
        return d->fullchain;
    default:
        return NULL;
    }
}

bool deploy_file_is_secret(enum deploy_file f)
{
    return f == DEPLOY_FILE_KEY || f == DEPLOY_FILE_BUNDLE || f == DEPLOY_FILE_PKCS12;
}

mode_t deploy_file_mode(const struct cfg_deploy *d, enum deploy_file f)
{
    if (d->has_mode)
        return d->mode & 0777;
    if (!deploy_file_is_secret(f))
        return 0644;
    return d->gid != (gid_t)-1 ? 0640 : 0600;
}

int deploy_files_check(const struct cfg_deploy *d, char **err)
{
    for (int f = 0; f < DEPLOY_FILE__MAX; f++) {
        const char *path = deploy_file_path(d, (enum deploy_file)f);
        if (path == NULL)
            continue;
        mode_t m = deploy_file_mode(d, (enum deploy_file)f);
        /* a writable-by-others file can be swapped for anything between
         * two deploys; a readable-by-others key is a leaked key */
        if (m & S_IWOTH) {
            *err = xasprintf("%s: mode %04o would let any user write the %s file", path,
                             (unsigned)m, file_names[f]);
            return ERR_DEPLOY;
        }
        if (deploy_file_is_secret((enum deploy_file)f) && (m & (S_IRWXO | S_IWGRP))) {
            *err = xasprintf("%s: mode %04o would make the private key %s by others; use 0600, "
                             "or 0640 with a group",
                             path, (unsigned)m, (m & S_IRWXO) ? "readable" : "writable");
            return ERR_DEPLOY;
        }
    }
    return 0;
}

/* ---- PKCS#12 ------------------------------------------------------------- */

/* The OpenSSL error queue as one string (drained), for *err. */
static char *ssl_errors(void)
{
    char buf[256];
    unsigned long e = ERR_get_error();

    if (e == 0)
        return xstrdup("unknown OpenSSL error");
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return xstrdup(buf);
}

static void crypto_err(char **err, const char *path, const char *step)
{
    char *why = ssl_errors();

    *err = xasprintf("%s: %s: %s", path, step, why);
    free(why);
}

/* Builds the PKCS#12 (key, leaf, chain) in DER. The password is the first
 * line of the password file, or empty without one (etc/certloop.toml's
 * documented default; `openssl pkcs12 -passin pass:` opens it). Modern
 * encryption is OpenSSL 3's default (AES-256-CBC, PBKDF2, HMAC-SHA256);
 * legacy is 3DES + SHA-1 MAC for old Java and Windows. */
static int make_pkcs12(const struct cfg_deploy *d, const struct store_cert *c, const char *path,
                       unsigned char **der, size_t *der_len, char **err)
{
    char *pass = NULL;
    size_t pass_len = 0;
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = NULL;
    PKCS12 *p12 = NULL;
    int rc = ERR_CRYPTO;

    if (d->pkcs12_password_file == NULL) {
        pass = xstrdup("");
        pass_len = 1;
    } else {
        rc = store_read_file(d->pkcs12_password_file, &pass, &pass_len);
        if (rc < 0) {
            *err = xasprintf("%s: read: %s", d->pkcs12_password_file, err_str(rc));
            goto out;
        }
        pass[strcspn(pass, "\r\n")] = '\0';
    }
    rc = ERR_CRYPTO;

    bio = BIO_new_mem_buf(c->key_pem, -1);
    if (bio == NULL || (pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL) {
        crypto_err(err, path, "read key");
        goto out;
    }
    BIO_free(bio);
    bio = BIO_new_mem_buf(c->cert_pem, -1);
    if (bio == NULL || (leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
        crypto_err(err, path, "read certificate");
        goto out;
    }
    BIO_free(bio);
    chain = sk_X509_new_null();
    bio = BIO_new_mem_buf(c->chain_pem != NULL ? c->chain_pem : "", -1);
    if (chain == NULL || bio == NULL) {
        crypto_err(err, path, "read chain");
        goto out;
    }
    for (;;) {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x == NULL)
            break;
        if (!sk_X509_push(chain, x)) {
            X509_free(x);
            crypto_err(err, path, "read chain");
            goto out;
        }
    }
    ERR_clear_error(); /* the end of the chain reads as "no start line" */

    int nid_key = 0, nid_cert = 0, mac_iter = 0;
    if (d->pkcs12_legacy) {
        nid_key = NID_pbe_WithSHA1And3_Key_TripleDES_CBC;
        nid_cert = NID_pbe_WithSHA1And3_Key_TripleDES_CBC;
        mac_iter = -1; /* no MAC yet: set below with SHA-1 */
    }
    p12 = PKCS12_create(pass, NULL, pkey, leaf, chain, nid_key, nid_cert, 0, mac_iter, 0);
    if (p12 == NULL) {
        crypto_err(err, path, "PKCS12_create");
        goto out;
    }
    if (d->pkcs12_legacy && !PKCS12_set_mac(p12, pass, -1, NULL, 0, 2048, EVP_sha1())) {
        crypto_err(err, path, "PKCS12_set_mac");
        goto out;
    }
    unsigned char *buf = NULL;
    int n = i2d_PKCS12(p12, &buf);
    if (n <= 0) {
        crypto_err(err, path, "i2d_PKCS12");
        goto out;
    }
    *der = buf;
    *der_len = (size_t)n;
    rc = 0;
out:
    if (pass != NULL) {
        /* the whole file: the line was cut at its end, the rest is there too */
        explicit_bzero(pass, pass_len);
        free(pass);
    }
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    PKCS12_free(p12);
    return rc;
}

/* ---- writing ------------------------------------------------------------- */

/* key + fullchain, as haproxy and others read it; a newline between the two
 * if the key lacks one. */
static char *bundle_of(const struct store_cert *c, size_t *len)
{
    size_t kl = strlen(c->key_pem);
    bool nl = kl > 0 && c->key_pem[kl - 1] != '\n';
    char *s = xasprintf("%s%s%s", c->key_pem, nl ? "\n" : "", c->fullchain_pem);

    *len = strlen(s);
    return s;
}

static void free_secret(void *p, size_t len)
{
    if (p == NULL)
        return;
    explicit_bzero(p, len);
    free(p);
}

/* What one action replaces, staged before anything is renamed. */
struct staged {
    const char *path; /* borrowed from the action */
    char *tmp;        /* the complete new file beside it, or NULL */
    char *bak;        /* a hard link to the file it replaces, or NULL (none existed) */
    bool done;        /* renamed into place */
};

/* The data of file f for certificate c: *owned set when it was built here
 * (free with free_secret). NULL with *err set when c lacks it. */
static const void *file_data(const struct cfg_deploy *d, const struct store_cert *c,
                             enum deploy_file f, const char *path, void **owned, size_t *len,
                             int *rc, char **err)
{
    const char *data = NULL;

    *owned = NULL;
    *rc = 0;
    if (deploy_file_is_secret(f) && c->key_pem == NULL) {
        *err = xasprintf("%s: the generation's key was not loaded", path);
        *rc = ERR_DEPLOY;
        return NULL;
    }
    switch (f) {
    case DEPLOY_FILE_KEY:
        data = c->key_pem;
        break;
    case DEPLOY_FILE_BUNDLE:
        *owned = bundle_of(c, len);
        return *owned;
    case DEPLOY_FILE_PKCS12: {
        unsigned char *der = NULL;
        *rc = make_pkcs12(d, c, path, &der, len, err);
        if (*rc < 0)
            return NULL;
        /* copy into malloc memory so one free path serves all */
        *owned = xmemdup(der, *len);
        OPENSSL_clear_free(der, *len);
        return *owned;
    }
    case DEPLOY_FILE_CERT:
        data = c->cert_pem;
        break;
    case DEPLOY_FILE_CHAIN:
        data = c->chain_pem != NULL ? c->chain_pem : "";
        break;
    case DEPLOY_FILE_FULLCHAIN:
        data = c->fullchain_pem;
        break;
    default:
        break;
    }
    if (data == NULL) {
        *err = xasprintf("%s: nothing to write (the generation lacks it)", path);
        *rc = ERR_DEPLOY;
        return NULL;
    }
    *len = strlen(data);
    return data;
}

/* A copy of path beside it (".tmp-NAME-RANDOM": swept like any temp
 * file) with its mode, and its owner where we may set it: the backup of a
 * file we may not link (fs.protected_hardlinks stops a non-root daemon from
 * linking a file it does not own). */
static int backup_copy(const char *path, char **bak)
{
    struct stat st;
    char *data = NULL;
    size_t len = 0;
    const char *step = NULL;

    if (lstat(path, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EPERM;
    int rc = store_read_file(path, &data, &len);
    if (rc < 0)
        return rc;
    rc = store_stage_file(path, data, len, st.st_mode & 07777, (uid_t)-1, (gid_t)-1, bak, &step);
    free_secret(data, len);
    /* the owner too as root; else the restored file will be ours, with the
     * same bytes and mode */
    if (rc == 0)
        (void)!lchown(*bak, st.st_uid, st.st_gid);
    return rc;
}

/* A hard link to path beside it (".bak-NAME-RANDOM"), so a replaced file
 * can be put back (or a copy, see backup_copy): 0 and *bak owned, or 0 and
 * *bak NULL when path does not exist or is a directory (no file can be
 * renamed over one: the rename fails and says so), or -errno when it
 * exists but cannot be backed up. */
static int backup_link(const char *path, char **bak)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    int dlen = slash != NULL ? (int)(slash - path) : 1;
    const char *dir = slash != NULL ? path : ".";

    *bak = NULL;
    for (int tries = 0; tries < 16; tries++) {
        char rnd[9];
        store_rand_hex(rnd, 8);
        char *b = xasprintf("%.*s/.bak-%.200s-%s", dlen, dir, base, rnd);
        if (link(path, b) == 0) {
            *bak = b;
            return 0;
        }
        int e = errno;
        free(b);
        struct stat st;
        if (e == ENOENT || (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)))
            return 0;
        if (e == EPERM)
            return backup_copy(path, bak);
        if (e != EEXIST)
            return -e;
    }
    return -EEXIST;
}

/* ---- the journal --------------------------------------------------------- */

struct jentry {
    char *path; /* owned */
    char *bak;  /* owned: the backup, or NULL: path did not exist before */
};

struct deploy_journal {
    struct jentry *v; /* owned */
    size_t n;
};

struct deploy_journal *deploy_journal_new(void)
{
    return xcalloc(1, sizeof(struct deploy_journal));
}

static void journal_clear(struct deploy_journal *j)
{
    for (size_t i = 0; i < j->n; i++) {
        free(j->v[i].path);
        free(j->v[i].bak);
    }
    free(j->v);
    j->v = NULL;
    j->n = 0;
}

void deploy_journal_free(struct deploy_journal *j)
{
    if (j == NULL)
        return;
    journal_clear(j);
    free(j);
}

size_t deploy_journal_count(const struct deploy_journal *j)
{
    return j != NULL ? j->n : 0;
}

static bool journal_has(const struct deploy_journal *j, const char *path)
{
    for (size_t i = 0; i < j->n; i++)
        if (strcmp(j->v[i].path, path) == 0)
            return true;
    return false;
}

/* Takes bak (owned, may be NULL) as path's entry; a path already there
 * keeps its first entry and this later backup goes. */
static void journal_add(struct deploy_journal *j, const char *path, char *bak)
{
    if (journal_has(j, path)) {
        if (bak != NULL)
            unlink(bak);
        free(bak);
        return;
    }
    j->v = xrealloc(j->v, (j->n + 1) * sizeof(*j->v));
    j->v[j->n].path = xstrdup(path);
    j->v[j->n].bak = bak;
    j->n++;
}

static struct deploy_journal *journal_copy(const struct deploy_journal *j)
{
    struct deploy_journal *c = deploy_journal_new();

    if (j == NULL || j->n == 0)
        return c;
    c->v = xcalloc(j->n, sizeof(*c->v));
    for (size_t i = 0; i < j->n; i++) {
        c->v[i].path = xstrdup(j->v[i].path);
        c->v[i].bak = j->v[i].bak != NULL ? xstrdup(j->v[i].bak) : NULL;
    }
    c->n = j->n;
    return c;
}

/* The directory part of path ("/" for a file at the root). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return xstrdup(".");
    return xstrndup(path, slash > path ? (size_t)(slash - path) : 1);
}

int deploy_journal_rollback_sync(struct deploy_journal *j, size_t *done, char **err)
{
    size_t count = 0;
    int rc = 0;

    *err = NULL;
    /* newest first, as an undo log goes: a path written twice ends with
     * its first backup (journal_add keeps only that one anyway) */
    for (size_t k = j->n; k-- > 0;) {
        struct jentry *e = &j->v[k];
        int r = 0;
        if (e->bak != NULL)
            r = rename(e->bak, e->path) == 0 ? 0 : -errno;
        else if (unlink(e->path) < 0 && errno != ENOENT)
            r = -errno;
        if (r == 0) {
            count++;
            char *dir = dir_of(e->path);
            (void)store_fsync_dir(dir); /* in place either way; only durability */
            free(dir);
            continue;
        }
        if (rc == 0) {
            rc = r;
            *err = xasprintf("%s: restore: %s", e->path, err_str(r));
        }
    }
    journal_clear(j);
    *done = count;
    return rc;
}

int deploy_journal_commit_sync(struct deploy_journal *j)
{
    int count = 0;

    for (size_t k = 0; k < j->n; k++)
        if (j->v[k].bak != NULL && unlink(j->v[k].bak) == 0)
            count++;
    journal_clear(j);
    return count;
}

/* All or nothing: every file of the action is first written in full beside
 * its target and its current file linked to a backup (a missing directory,
 * a permission problem, a full disk fail here, with nothing replaced); then
 * they are renamed into place, secret files before certificates (enum
 * deploy_file order). Should a rename fail midway, the files already
 * replaced are put back from the backups, so a service never finds the new
 * key beside the old certificate after a failed deploy. Between two renames
 * of a successful deploy a reader can still see a new key with the old
 * certificate for an instant; the bundle and PKCS#12 files have no such
 * window, and a service reloaded by a later `exec` action sees only the
 * final state. With a journal the backups outlive the action, so that a
 * later failure of the same deployment can put these files back too. */
int deploy_journal_files_sync(struct deploy_journal *j, const struct cfg_deploy *d,
                              const struct store_cert *c, char **err)
{
    struct staged st[DEPLOY_FILE__MAX];
    const char *step = NULL;
    int rc = 0;

    *err = NULL;
    if (d->type != CFG_DEPLOY_FILES) {
        *err = xstrdup("not a files deploy action");
        return -EINVAL;
    }
    rc = deploy_files_check(d, err);
    if (rc < 0)
        return rc;
    memset(st, 0, sizeof(st));
    /* The staged files, and then their renames, are made durable with one
     * syncfs of each file system where that reports write-back errors
     * (issue 16: five fsyncs, each waiting for the disk, were a tenth of a
     * certificate's CPU); else each file and directory is synced. */
    struct store_fsset fs;
    bool one_sync = true;
    store_fsset_init(&fs);
    char *last_dir = NULL;
    for (int i = 0; i < DEPLOY_FILE__MAX && one_sync; i++) {
        const char *path = deploy_file_path(d, (enum deploy_file)i);
        char *dir = path != NULL ? dir_of(path) : NULL;
        if (dir == NULL || (last_dir != NULL && strcmp(dir, last_dir) == 0)) {
            free(dir); /* the usual case: all in one directory, added once */
            continue;
        }
        one_sync = store_fsset_add(&fs, dir);
        free(last_dir);
        last_dir = dir;
    }
    free(last_dir);
    /* 1. stage, and link what each file replaces */
    for (int i = 0; i < DEPLOY_FILE__MAX && rc == 0; i++) {
        enum deploy_file f = (enum deploy_file)i;
        void *owned = NULL;
        size_t len = 0;

        st[i].path = deploy_file_path(d, f);
        if (st[i].path == NULL)
            continue;
        const void *data = file_data(d, c, f, st[i].path, &owned, &len, &rc, err);
        if (data == NULL)
            break;
        rc = store_stage_file_opt(st[i].path, data, len, deploy_file_mode(d, f), d->uid, d->gid,
                                  !one_sync, &st[i].tmp, &step);
        free_secret(owned, len);
        if (rc < 0) {
            *err = xasprintf("%s: %s: %s", st[i].path, step, err_str(rc));
            break;
        }
        rc = backup_link(st[i].path, &st[i].bak);
        if (rc < 0)
            *err = xasprintf("%s: backup: %s", st[i].path, err_str(rc));
    }
    if (rc == 0 && one_sync) {
        rc = store_fsset_sync(&fs); /* every staged file complete on disk before any rename */
        if (rc < 0)
            *err = xasprintf("%s: syncfs: %s", st[0].path != NULL ? st[0].path : "deploy",
                             err_str(rc));
    }
    /* 2. replace, keeping what is replaced until every rename is done;
     * each directory (or file system) is synced once after its last
     * rename (not once per file: issue 16), before the action reports the
     * files written */
    int failed_at = -1;
    for (int i = 0; i < DEPLOY_FILE__MAX && rc == 0; i++) {
        if (st[i].tmp == NULL)
            continue;
        rc = store_rename_file(st[i].tmp, st[i].path, &step);
        free(st[i].tmp);
        st[i].tmp = NULL;
        if (rc < 0) {
            failed_at = i;
            *err = xasprintf("%s: %s: %s", st[i].path, step, err_str(rc));
            break;
        }
        st[i].done = true;
    }
    if (rc == 0 && one_sync)
        (void)store_fsset_sync(&fs); /* in place either way; only durability */
    store_fsset_close(&fs);
    for (int i = 0; i < DEPLOY_FILE__MAX && rc == 0 && !one_sync; i++) {
        if (!st[i].done)
            continue;
        char *dir = dir_of(st[i].path);
        bool synced = false;
        for (int k = 0; k < i && !synced; k++) {
            char *other = st[k].done ? dir_of(st[k].path) : NULL;
            synced = other != NULL && strcmp(other, dir) == 0;
            free(other);
        }
        if (!synced)
            (void)store_fsync_dir(dir); /* in place either way; only durability */
        free(dir);
    }
    /* 3. on failure put every replaced file back; on success the journal
     * keeps the backups; in any case drop the rest */
    for (int i = 0; i < DEPLOY_FILE__MAX; i++) {
        if (st[i].tmp != NULL)
            unlink(st[i].tmp);
        if (rc < 0 && (st[i].done || i == failed_at)) {
            if (st[i].bak != NULL) {
                if (rename(st[i].bak, st[i].path) == 0) {
                    free(st[i].bak);
                    st[i].bak = NULL;
                }
            } else if (st[i].done) {
                unlink(st[i].path); /* it did not exist before */
            }
        }
        if (rc == 0 && j != NULL && st[i].done) {
            journal_add(j, st[i].path, st[i].bak);
            st[i].bak = NULL;
        }
        if (st[i].bak != NULL)
            unlink(st[i].bak);
        free(st[i].tmp);
        free(st[i].bak);
    }
    if (failed_at >= 0) {
        char *e = xasprintf("%s (the files already replaced were put back)", *err);
        free(*err);
        *err = e;
    }
    return rc;
}

int deploy_files_sync(const struct cfg_deploy *d, const struct store_cert *c, char **err)
{
    return deploy_journal_files_sync(NULL, d, c, err);
}

/* ---- on the threadpool --------------------------------------------------- */

struct deploy_files {
    struct cfg_deploy d;        /* owned copies of the fields the writer reads */
    struct store_cert c;        /* owned copies */
    char *name;                 /* owned: the certificate, for the log */
    char *err;                  /* set by the worker */
    struct deploy_journal *jw;  /* owned: the worker's copy, or NULL */
    struct deploy_journal *dst; /* borrowed until the callback, or NULL */
    deploy_files_cb cb;         /* NULL once cancelled */
    void *arg;
};

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

static void files_free(struct deploy_files *op)
{
    char **strs[] = {&op->d.cert,   &op->d.chain,  &op->d.fullchain,           &op->d.key,
                     &op->d.bundle, &op->d.pkcs12, &op->d.pkcs12_password_file};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(*strs[i]);
    store_cert_fini(&op->c);
    deploy_journal_free(op->jw);
    free(op->name);
    free(op->err);
    free(op);
}

static int files_work(void *arg)
{
    struct deploy_files *op = arg;

    return deploy_journal_files_sync(op->jw, &op->d, &op->c, &op->err);
}

static void files_done(int status, void *arg)
{
    struct deploy_files *op = arg;

    if (op->cb != NULL) {
        if (op->dst != NULL) {
            /* the worker is done with its copy: the owner's journal takes it */
            struct deploy_journal t = *op->dst;
            *op->dst = *op->jw;
            *op->jw = t;
        }
        if (status < 0)
            log_error(LOG_DEPLOY, "deploy cert=%s files: %s", op->name,
                      op->err != NULL ? op->err : err_str(status));
        else
            log_info(LOG_DEPLOY, "deploy cert=%s files: written", op->name);
        op->cb(status, status < 0 ? (op->err != NULL ? op->err : err_str(status)) : NULL, op->arg);
    }
    files_free(op);
}

int deploy_files_start(uv_loop_t *loop, const char *name, const struct cfg_deploy *d,
                       const struct store_cert *c, struct deploy_journal *j, deploy_files_cb cb,
                       void *arg, struct deploy_files **out)
{
    struct deploy_files *op = xcalloc(1, sizeof(*op));

    op->d.type = d->type;
    op->d.cert = dup_or_null(d->cert);
    op->d.chain = dup_or_null(d->chain);
    op->d.fullchain = dup_or_null(d->fullchain);
    op->d.key = dup_or_null(d->key);
    op->d.bundle = dup_or_null(d->bundle);
    op->d.pkcs12 = dup_or_null(d->pkcs12);
    op->d.pkcs12_password_file = dup_or_null(d->pkcs12_password_file);
    op->d.pkcs12_legacy = d->pkcs12_legacy;
    op->d.uid = d->uid;
    op->d.gid = d->gid;
    op->d.mode = d->mode;
    op->d.has_mode = d->has_mode;
    op->c.cert_pem = dup_or_null(c->cert_pem);
    op->c.chain_pem = dup_or_null(c->chain_pem);
    op->c.fullchain_pem = dup_or_null(c->fullchain_pem);
    op->c.key_pem = dup_or_null(c->key_pem);
    op->name = xstrdup(name);
    if (j != NULL) {
        op->jw = journal_copy(j);
        op->dst = j;
    }
    op->cb = cb;
    op->arg = arg;
    int rc = store_job_start(loop, files_work, op, files_done);
    if (rc < 0) {
        log_error(LOG_DEPLOY, "deploy cert=%s files: queue work: %s", name, err_str(rc));
        files_free(op);
        return rc;
    }
    if (out != NULL)
        *out = op;
    return 0;
}

void deploy_files_cancel(struct deploy_files *op)
{
    if (op != NULL) {
        op->cb = NULL;
        op->dst = NULL;
    }
}

/* ".tmp-" BASE (at most 200 bytes of it, as store_stage_file keeps it) or
 * ".bak-" BASE (deploy_files_sync's backups), "-" and 8 lowercase hex
 * digits. */
static bool is_temp_of(const char *entry, const char *base)
{
    size_t bl = strnlen(base, 200);

    if ((strncmp(entry, ".tmp-", 5) != 0 && strncmp(entry, ".bak-", 5) != 0) ||
        strncmp(entry + 5, base, bl) != 0)
        return false;
    entry += 5 + bl;
    if (entry[0] != '-' || strlen(entry + 1) != 8)
        return false;
    for (const char *p = entry + 1; *p != '\0'; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* path's directory is dir (dl bytes) and its base is what follows. */
static bool in_dir(const char *path, const char *dir, size_t dl)
{
    return strncmp(path, dir, dl) == 0 && path[dl] == '/' && strchr(path + dl + 1, '/') == NULL;
}

int deploy_files_sweep(const struct cfg_deploy *d)
{
    bool done[DEPLOY_FILE__MAX] = {false};
    int count = 0;

    if (d->type != CFG_DEPLOY_FILES)
        return 0;
    /* one readdir per directory, checked against every base in it */
    for (int f = 0; f < DEPLOY_FILE__MAX; f++) {
        const char *path = deploy_file_path(d, (enum deploy_file)f);
        const char *slash = path != NULL ? strrchr(path, '/') : NULL;
        if (slash == NULL || done[f])
            continue; /* paths are absolute (the schema checks) */
        size_t dl = (size_t)(slash - path);
        char *dir = xstrndup(path, dl > 0 ? dl : 1);
        DIR *dh = opendir(dir);
        struct dirent *e;
        while (dh != NULL && (e = readdir(dh)) != NULL) {
            for (int g = f; g < DEPLOY_FILE__MAX; g++) {
                const char *p = deploy_file_path(d, (enum deploy_file)g);
                if (p == NULL || !in_dir(p, path, dl) || !is_temp_of(e->d_name, p + dl + 1))
                    continue;
                if (unlinkat(dirfd(dh), e->d_name, 0) < 0) {
                    log_warn(LOG_DEPLOY, "%s/%s: remove leftover temp file: %s", dir, e->d_name,
                             err_str(-errno));
                } else {
                    log_info(LOG_DEPLOY, "%s/%s: removed leftover temp file", dir, e->d_name);
                    count++;
                }
                break;
            }
        }
        if (dh != NULL)
            closedir(dh);
        /* the other files in the same directory were covered by this pass */
        for (int g = f; g < DEPLOY_FILE__MAX; g++) {
            const char *p = deploy_file_path(d, (enum deploy_file)g);
            if (p != NULL && in_dir(p, path, dl))
                done[g] = true;
        }
        free(dir);
    }
    return count;
}
