/* Deploy actions: the files writer (contents, modes, owners, order,
 * failures, PKCS#12) and the exec runner on a real loop (environment,
 * output logging, exit status, signals, timeout, cancel, spawn failure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "test_fs.h"
#include "deploy/deploy.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

/* ---- helpers ------------------------------------------------------------- */

static char *slurp(const char *path)
{
    char *s = NULL;

    assert_int_equal(store_read_file(path, &s, NULL), 0);
    return s;
}

static mode_t mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(lstat(path, &st), 0);
    return st.st_mode & 07777;
}

static bool exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

/* Every log line, captured through the sink. */
static struct {
    char **v;
    size_t n, cap;
} logged;

static void sink(enum log_level lvl, enum log_group g, const char *msg, void *arg)
{
    (void)lvl;
    (void)g;
    (void)arg;
    logged.v = xreallocarray_grow(logged.v, &logged.cap, logged.n + 1, sizeof(char *));
    logged.v[logged.n++] = xstrdup(msg);
}

static void log_capture_start(void)
{
    log_set_sink(sink, NULL);
}

static void log_capture_stop(void)
{
    log_set_sink(NULL, NULL);
    for (size_t i = 0; i < logged.n; i++)
        free(logged.v[i]);
    free(logged.v);
    memset(&logged, 0, sizeof(logged));
}

static bool log_has(const char *line)
{
    for (size_t i = 0; i < logged.n; i++) {
        if (strcmp(logged.v[i], line) == 0)
            return true;
    }
    return false;
}

static size_t log_count_prefix(const char *prefix)
{
    size_t n = 0;

    for (size_t i = 0; i < logged.n; i++) {
        if (strncmp(logged.v[i], prefix, strlen(prefix)) == 0)
            n++;
    }
    return n;
}

static struct cfg_deploy files_action(void)
{
    struct cfg_deploy d;

    memset(&d, 0, sizeof(d));
    d.type = CFG_DEPLOY_FILES;
    d.uid = (uid_t)-1;
    d.gid = (gid_t)-1;
    return d;
}

static struct store_cert fake_cert(void)
{
    struct store_cert c;

    memset(&c, 0, sizeof(c));
    c.cert_pem = "-----LEAF-----\n";
    c.chain_pem = "-----INTERMEDIATE-----\n";
    c.fullchain_pem = "-----LEAF-----\n-----INTERMEDIATE-----\n";
    c.key_pem = "-----KEY-----\n";
    return c;
}

/* ---- files --------------------------------------------------------------- */

static void test_files_writes_exactly_the_configured_files(void **state)
{
    const char *dir = *state;
    struct cfg_deploy d = files_action();
    struct store_cert c = fake_cert();
    char *err = NULL;

    d.cert = xasprintf("%s/www.crt", dir);
    d.chain = xasprintf("%s/www.chain", dir);
    d.fullchain = xasprintf("%s/www.fullchain", dir);
    d.key = xasprintf("%s/www.key", dir);
    d.bundle = xasprintf("%s/www.bundle", dir);
    mode_t old = umask(0);
    int rc = deploy_files_sync(&d, &c, &err);
    umask(old);
    assert_int_equal(rc, 0);
    assert_null(err);

    assert_int_equal(count_entries(dir), 5); /* no temp file left */
    char *s = slurp(d.cert);
    assert_string_equal(s, c.cert_pem);
    free(s);
    s = slurp(d.chain);
    assert_string_equal(s, c.chain_pem);
    free(s);
    s = slurp(d.fullchain);
    assert_string_equal(s, c.fullchain_pem);
    free(s);
    s = slurp(d.key);
    assert_string_equal(s, c.key_pem);
    free(s);
    s = slurp(d.bundle);
    char *want = xasprintf("%s%s", c.key_pem, c.fullchain_pem);
    assert_string_equal(s, want);
    free(want);
    free(s);

    assert_int_equal(mode_of(d.key), 0600);
    assert_int_equal(mode_of(d.bundle), 0600);
    assert_int_equal(mode_of(d.cert), 0644);
    assert_int_equal(mode_of(d.chain), 0644);
    assert_int_equal(mode_of(d.fullchain), 0644);

    /* a key without a final newline still makes a well-formed bundle */
    c.key_pem = "-----KEY2-----";
    assert_int_equal(deploy_files_sync(&d, &c, &err), 0);
    s = slurp(d.bundle);
    want = xasprintf("-----KEY2-----\n%s", c.fullchain_pem);
    assert_string_equal(s, want);
    free(want);
    free(s);

    free(d.cert);
    free(d.chain);
    free(d.fullchain);
    free(d.key);
    free(d.bundle);
}

static void test_files_only_fullchain_and_key(void **state)
{
    const char *dir = *state;
    struct cfg_deploy d = files_action();
    struct store_cert c = fake_cert();
    char *err = NULL;

    d.fullchain = xasprintf("%s/fc.pem", dir);
    d.key = xasprintf("%s/k.pem", dir);
    assert_int_equal(deploy_files_sync(&d, &c, &err), 0);
    assert_int_equal(count_entries(dir), 2);
    assert_true(exists(d.fullchain));
    assert_true(exists(d.key));
    free(d.fullchain);
    free(d.key);
}

static void test_files_configured_mode_applies_to_all(void **state)
{
    const char *dir = *state;
    struct cfg_deploy d = files_action();
    struct store_cert c = fake_cert();
    char *err = NULL;

    d.cert = xasprintf("%s/c.pem", dir);
    d.key = xasprintf("%s/k.pem", dir);
    d.has_mode = true;
    d.mode = 0640;
    assert_int_equal(deploy_files_sync(&d, &c, &err), 0);
    assert_int_equal(mode_of(d.cert), 0640);
    assert_int_equal(mode_of(d.key), 0640);
    free(d.cert);
    free(d.key);
}

static void test_files_refuses_world_readable_key(void **state)
{
    const char *dir = *state;
    struct cfg_deploy d = files_action();
    struct store_cert c = fake_cert();
    char *err = NULL;

    d.cert = xasprintf("%s/c.pem", dir);
    d.key = xasprintf("%s/k.pem", dir);
    d.has_mode = true;
    d.mode = 0644;
    int rc = deploy_files_sync(&d, &c, &err);
    assert_int_equal(rc, ERR_DEPLOY);
    assert_non_null(err);
    char *want = xasprintf("%s: mode 0644 would make the private key readable by others; use "
                           "0600, or 0640 with a group",
                           d.key);
    assert_string_equal(err, want);
    free(want);
    free(err);
    err = NULL;
    assert_int_equal(count_entries(dir), 0); /* refused before writing anything */

    /* group-writable key, and a world-writable certificate, are refused too */
    d.mode = 0660;
    assert_int_equal(deploy_files_sync(&d, &c, &err), ERR_DEPLOY);
    assert_non_null(strstr(err, "writable by others"));
    free(err);
    err = NULL;
    free(d.key);
    d.key = NULL;
    d.mode = 0666;
    assert_int_equal(deploy_files_sync(&d, &c, &err), ERR_DEPLOY);
    assert_non_null(strstr(err, "would let any user write"));
    free(err);
    free(d.cert);
}

static void test_files_owner_and_group(void **state)
{
    const char *dir = *state;
    struct cfg_deploy d = files_action();
    struct store_cert c = fake_cert();
    char *err = NULL;
    struct stat st;

    if (geteuid() != 0) {
        print_message("skipped: chown needs root\n");
        skip();
    }
    struct passwd *pw = getpwnam("nobody");
    struct group *gr = getgrnam("nogroup");
    assert_non_null(pw);
    assert_non_null(gr);
    d.uid = pw->pw_uid;
    d.gid = gr->gr_gid;
    d.key = xasprintf("%s/k.pem", dir);
    d.fullchain = xasprintf("%s/fc.pem", dir);
    assert_int_equal(deploy_files_sync(&d, &c, &err), 0);
    assert_int_equal(lstat(d.key, &st), 0);
    assert_int_equal(st.st_uid, pw->pw_uid);
    assert_int_equal(st.st_gid, gr->gr_gid);
    /* a group is named so that it can read the key */
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(lstat(d.fullchain, &st), 0);
    assert_int_equal(st.st_uid, pw->pw_uid);
    assert_int_equal(st.st_gid, gr->gr_gid);
    assert_int_equal(st.st_mode & 07777, 0644);

    /* group only: owner stays root */
    d.uid = (uid_t)-1;
    assert_int_equal(deploy_files_sync(&d, &c, &err), 0);
    assert_int_equal(lstat(d.key, &st), 0);
    assert_int_equal(st.st_uid, 0);
    assert_int_equal(st.st_gid, gr->gr_gid);
    free(d.key);
    free(d.fullchain);
}

/* The hook of the rename test: when the certificate's temp file is about
 * to be renamed, a non-empty directory takes its target's place, so that
 * rename fails after the key was already replaced. */
static void block_cert_rename(const char *tmp, void *arg)
{
    const char *cert = arg;

    if (strstr(tmp, "/.tmp-c.pem-") != NULL) {
        assert_int_equal(mkdir(cert, 0700), 0);
        char *inner = xasprintf("%s/x", cert);
        FILE *fp = fopen(inner, "w");
        assert_non_null(fp);
        fclose(fp);
        free(inner);
    }
}

static void test_files_all_or_nothing(void **state)
{
    const char *dir = *state;
    struct cfg_deploy d = files_action();
    struct store_cert c = fake_cert();
    char *err = NULL;

    /* the previous deployment */
    d.key = xasprintf("%s/k.pem", dir);
    d.fullchain = xasprintf("%s/fc.pem", dir);
    assert_int_equal(store_write_atomic(d.key, "OLD KEY\n", 8, 0600, (uid_t)-1, (gid_t)-1, NULL),
                     0);
    assert_int_equal(
        store_write_atomic(d.fullchain, "OLD CHAIN\n", 10, 0644, (uid_t)-1, (gid_t)-1, NULL), 0);

    /* 1. a file that cannot even be written: nothing is replaced */
    d.cert = xasprintf("%s/missing/c.pem", dir);
    int rc = deploy_files_sync(&d, &c, &err);
    assert_int_equal(rc, -ENOENT);
    char *want = xasprintf("%s: open: %s", d.cert, strerror(ENOENT));
    assert_string_equal(err, want);
    free(want);
    free(err);
    err = NULL;
    char *s = slurp(d.key);
    assert_string_equal(s, "OLD KEY\n");
    free(s);
    s = slurp(d.fullchain);
    assert_string_equal(s, "OLD CHAIN\n");
    free(s);
    assert_int_equal(count_entries(dir), 2); /* no temp file left */

    /* 2. a rename that fails after the key was replaced: the key is put back */
    free(d.cert);
    d.cert = xasprintf("%s/c.pem", dir);
    store_test_set_before_rename(block_cert_rename, d.cert);
    rc = deploy_files_sync(&d, &c, &err);
    store_test_set_before_rename(NULL, NULL);
    assert_true(rc < 0);
    assert_non_null(err);
    assert_non_null(strstr(err, "c.pem: rename: "));
    assert_non_null(strstr(err, "the files already replaced were put back"));
    free(err);
    s = slurp(d.key);
    assert_string_equal(s, "OLD KEY\n");
    free(s);
    assert_int_equal(mode_of(d.key), 0600);
    s = slurp(d.fullchain);
    assert_string_equal(s, "OLD CHAIN\n");
    free(s);
    assert_int_equal(count_entries(dir), 3); /* k.pem, fc.pem, the blocking c.pem/ */

    /* 3. once the obstacle is gone, everything is replaced */
    char *inner = xasprintf("%s/x", d.cert);
    assert_int_equal(unlink(inner), 0);
    assert_int_equal(rmdir(d.cert), 0);
    free(inner);
    assert_int_equal(deploy_files_sync(&d, &c, &err), 0);
    s = slurp(d.key);
    assert_string_equal(s, c.key_pem);
    free(s);
    s = slurp(d.cert);
    assert_string_equal(s, c.cert_pem);
    free(s);
    assert_int_equal(count_entries(dir), 3);
    free(d.key);
    free(d.cert);
    free(d.fullchain);
}

static void test_files_missing_directory_reports_path(void **state)
{
    const char *dir = *state;
    struct cfg_deploy d = files_action();
    struct store_cert c = fake_cert();
    char *err = NULL;

    d.key = xasprintf("%s/no/such/dir/www.key", dir);
    int rc = deploy_files_sync(&d, &c, &err);
    assert_int_equal(rc, -ENOENT);
    char *want = xasprintf("%s: open: %s", d.key, strerror(ENOENT));
    assert_string_equal(err, want);
    free(want);
    free(err);

    /* a secret file without a loaded key is an error, not an empty file */
    char *dk = d.key;
    d.key = xasprintf("%s/www.key", dir);
    c.key_pem = NULL;
    assert_int_equal(deploy_files_sync(&d, &c, &err), ERR_DEPLOY);
    assert_non_null(strstr(err, "key was not loaded"));
    assert_false(exists(d.key));
    free(err);
    free(d.key);
    free(dk);
}

/* A self-signed EC certificate, for the PKCS#12 test. */
static void make_real_cert(char **key_pem, char **cert_pem)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIO *b;
    BUF_MEM *m;

    assert_non_null(pkey);
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"test", -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_set_pubkey(x, pkey);
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);

    b = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL));
    BIO_get_mem_ptr(b, &m);
    *key_pem = xstrndup(m->data, m->length);
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_X509(b, x));
    BIO_get_mem_ptr(b, &m);
    *cert_pem = xstrndup(m->data, m->length);
    BIO_free(b);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

static void check_pkcs12(const char *path, const char *pass, const char *key_pem,
                         const char *cert_pem)
{
    char *der = NULL;
    size_t len = 0;
    EVP_PKEY *pk = NULL, *want_pk;
    X509 *x = NULL, *want_x;
    STACK_OF(X509) *ca = NULL;

    assert_int_equal(store_read_file(path, &der, &len), 0);
    const unsigned char *p = (const unsigned char *)der;
    PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
    assert_non_null(p12);
    assert_true(PKCS12_verify_mac(p12, pass, -1));
    assert_false(PKCS12_verify_mac(p12, "wrong", -1));
    assert_true(PKCS12_parse(p12, pass, &pk, &x, &ca));
    BIO *b = BIO_new_mem_buf(key_pem, -1);
    want_pk = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    b = BIO_new_mem_buf(cert_pem, -1);
    want_x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_int_equal(EVP_PKEY_eq(pk, want_pk), 1);
    assert_int_equal(X509_cmp(x, want_x), 0);
    EVP_PKEY_free(pk);
    EVP_PKEY_free(want_pk);
    X509_free(x);
    X509_free(want_x);
    sk_X509_pop_free(ca, X509_free);
    PKCS12_free(p12);
    free(der);
}

static void test_files_pkcs12_modern_and_legacy(void **state)
{
    const char *dir = *state;
    struct cfg_deploy d = files_action();
    struct store_cert c;
    char *key_pem = NULL, *cert_pem = NULL;
    char *err = NULL;

    make_real_cert(&key_pem, &cert_pem);
    memset(&c, 0, sizeof(c));
    c.cert_pem = cert_pem;
    c.chain_pem = "";
    c.fullchain_pem = cert_pem;
    c.key_pem = key_pem;
    d.pkcs12 = xasprintf("%s/www.p12", dir);
    d.pkcs12_password_file = xasprintf("%s/p12.pass", dir);
    assert_int_equal(
        store_write_atomic(d.pkcs12_password_file, "s3cret\n", 7, 0600, (uid_t)-1, (gid_t)-1, NULL),
        0);
    assert_int_equal(deploy_files_sync(&d, &c, &err), 0);
    assert_null(err);
    assert_int_equal(mode_of(d.pkcs12), 0600);
    check_pkcs12(d.pkcs12, "s3cret", key_pem, cert_pem);

    d.pkcs12_legacy = true;
    assert_int_equal(deploy_files_sync(&d, &c, &err), 0);
    check_pkcs12(d.pkcs12, "s3cret", key_pem, cert_pem);

    /* without a password file: an empty password (the documented default),
     * modern and legacy */
    free(d.pkcs12_password_file);
    d.pkcs12_password_file = NULL;
    assert_int_equal(deploy_files_sync(&d, &c, &err), 0);
    assert_null(err);
    check_pkcs12(d.pkcs12, "", key_pem, cert_pem);
    d.pkcs12_legacy = false;
    assert_int_equal(deploy_files_sync(&d, &c, &err), 0);
    check_pkcs12(d.pkcs12, "", key_pem, cert_pem);

    free(d.pkcs12);
    free(key_pem);
    free(cert_pem);
}

struct files_cb_state {
    int calls;
    int status;
};

static void files_cb(int status, const char *error, void *arg)
{
    struct files_cb_state *s = arg;

    assert_true((status == 0) == (error == NULL));
    s->calls++;
    s->status = status;
}

static void test_files_start_calls_back_once_and_cancel_is_silent(void **state)
{
    const char *dir = *state;
    struct cfg_deploy d = files_action();
    struct store_cert c = fake_cert();
    struct files_cb_state st = {0};
    struct deploy_files *op = NULL;
    uv_loop_t loop;

    assert_int_equal(uv_loop_init(&loop), 0);
    d.key = xasprintf("%s/k.pem", dir);
    d.fullchain = xasprintf("%s/fc.pem", dir);
    assert_int_equal(deploy_files_start(&loop, "www", &d, &c, NULL, files_cb, &st, &op), 0);
    /* inputs were copied: scribbling over them now changes nothing */
    char *saved_key = d.key;
    d.key = NULL;
    assert_int_equal(st.calls, 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(st.calls, 1);
    assert_int_equal(st.status, 0);
    char *s = slurp(saved_key);
    assert_string_equal(s, c.key_pem);
    free(s);

    /* a failure is reported through the callback, with the path logged */
    struct cfg_deploy bad = files_action();
    bad.key = xasprintf("%s/missing/k.pem", dir);
    log_capture_start();
    assert_int_equal(deploy_files_start(&loop, "www", &bad, &c, NULL, files_cb, &st, NULL), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(st.calls, 2);
    assert_int_equal(st.status, -ENOENT);
    char *want = xasprintf("deploy cert=www files: %s: open: %s", bad.key, strerror(ENOENT));
    assert_true(log_has(want));
    free(want);
    log_capture_stop();

    /* cancelled: no callback, and everything is freed */
    assert_int_equal(deploy_files_start(&loop, "www", &bad, &c, NULL, files_cb, &st, &op), 0);
    deploy_files_cancel(op);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(st.calls, 2);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(bad.key);
    free(saved_key);
    free(d.fullchain);
}

/* ---- the rollback journal ------------------------------------------------ */

/* A file as it was: bytes, mode, owner, inode (a restored backup is the
 * very file that was replaced). */
struct snap {
    char *data;
    struct stat st;
};

static void snap_take(const char *path, struct snap *s)
{
    s->data = slurp(path);
    assert_int_equal(lstat(path, &s->st), 0);
}

static void snap_check(const char *path, struct snap *s)
{
    struct stat st;
    char *now = slurp(path);

    assert_string_equal(now, s->data);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_mode, s->st.st_mode);
    assert_int_equal(st.st_uid, s->st.st_uid);
    assert_int_equal(st.st_gid, s->st.st_gid);
    assert_int_equal(st.st_ino, s->st.st_ino);
    free(now);
    free(s->data);
}

static void put_file(const char *path, const char *data, mode_t mode)
{
    assert_int_equal(store_write_atomic(path, data, strlen(data), mode, (uid_t)-1, (gid_t)-1, NULL),
                     0);
    assert_int_equal(chmod(path, mode), 0);
}

/* A group of ours other than the primary one, or -1 (then the owner check
 * still compares uid and gid with what they were). */
static gid_t other_group(void)
{
    gid_t groups[64];
    int n = getgroups(64, groups);

    for (int i = 0; i < n; i++)
        if (groups[i] != getegid())
            return groups[i];
    return (gid_t)-1;
}

static void run_files(uv_loop_t *loop, const struct cfg_deploy *d, const struct store_cert *c,
                      struct deploy_journal *j, struct files_cb_state *st)
{
    int calls = st->calls;

    assert_int_equal(deploy_files_start(loop, "www", d, c, j, files_cb, st, NULL), 0);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(st->calls, calls + 1);
}

static void test_journal_second_action_fails_first_is_rolled_back(void **state)
{
    const char *dir = *state;
    struct cfg_deploy d1 = files_action(), d2 = files_action();
    struct store_cert c = fake_cert();
    struct files_cb_state st = {0};
    struct snap key, fc;
    uv_loop_t loop;
    char *err = NULL;
    size_t n = 0;

    assert_int_equal(uv_loop_init(&loop), 0);
    d1.key = xasprintf("%s/www.key", dir);
    d1.fullchain = xasprintf("%s/www.fullchain", dir);
    d1.cert = xasprintf("%s/www.crt", dir); /* new: did not exist */
    put_file(d1.key, "-----OLD KEY-----\n", 0600);
    put_file(d1.fullchain, "-----OLD FULLCHAIN-----\n", 0640);
    gid_t g = other_group();
    if (g != (gid_t)-1)
        assert_int_equal(chown(d1.fullchain, (uid_t)-1, g), 0);
    snap_take(d1.key, &key);
    snap_take(d1.fullchain, &fc);
    d2.key = xasprintf("%s/missing/other.key", dir);

    struct deploy_journal *j = deploy_journal_new();
    run_files(&loop, &d1, &c, j, &st);
    assert_int_equal(st.status, 0);
    assert_int_equal(deploy_journal_count(j), 3);
    char *s = slurp(d1.fullchain);
    assert_string_equal(s, c.fullchain_pem); /* replaced for now */
    free(s);
    assert_int_equal(count_entries(dir), 5); /* three files, two backups */

    run_files(&loop, &d2, &c, j, &st);
    assert_int_equal(st.status, -ENOENT);
    assert_int_equal(deploy_journal_count(j), 3); /* a failed action adds nothing */

    assert_int_equal(deploy_journal_rollback_sync(j, &n, &err), 0);
    assert_null(err);
    assert_int_equal(n, 3);
    assert_int_equal(deploy_journal_count(j), 0);
    snap_check(d1.key, &key);
    snap_check(d1.fullchain, &fc);
    assert_false(exists(d1.cert));
    assert_int_equal(count_entries(dir), 2); /* no backup, no temp file */

    deploy_journal_free(j);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(d1.key);
    free(d1.fullchain);
    free(d1.cert);
    free(d2.key);
}

static void test_journal_keeps_the_first_backup_and_commit_removes_backups(void **state)
{
    const char *dir = *state;
    struct cfg_deploy d1 = files_action(), d2 = files_action();
    struct store_cert c1 = fake_cert(), c2 = fake_cert();
    struct files_cb_state st = {0};
    struct snap key;
    uv_loop_t loop;
    char *err = NULL;
    size_t n = 0;

    assert_int_equal(uv_loop_init(&loop), 0);
    /* two actions write the same key: rollback goes back to the state
     * before the first, not to what the first wrote */
    d1.key = xasprintf("%s/www.key", dir);
    d2.key = xasprintf("%s/www.key", dir);
    d2.bundle = xasprintf("%s/www.bundle", dir);
    c2.key_pem = "-----SECOND KEY-----\n";
    put_file(d1.key, "-----OLD KEY-----\n", 0600);
    snap_take(d1.key, &key);

    struct deploy_journal *j = deploy_journal_new();
    run_files(&loop, &d1, &c1, j, &st);
    assert_int_equal(st.status, 0);
    run_files(&loop, &d2, &c2, j, &st);
    assert_int_equal(st.status, 0);
    assert_int_equal(deploy_journal_count(j), 2); /* the key once, the bundle */
    assert_int_equal(count_entries(dir), 3);      /* key, bundle, one backup */
    assert_int_equal(deploy_journal_rollback_sync(j, &n, &err), 0);
    assert_int_equal(n, 2);
    snap_check(d1.key, &key);
    assert_false(exists(d2.bundle));
    assert_int_equal(count_entries(dir), 1);

    /* committed: the new files stay and the backups go */
    run_files(&loop, &d1, &c1, j, &st);
    run_files(&loop, &d2, &c2, j, &st);
    assert_int_equal(st.status, 0);
    assert_int_equal(deploy_journal_commit_sync(j), 1);
    assert_int_equal(deploy_journal_count(j), 0);
    assert_int_equal(count_entries(dir), 2);
    char *s = slurp(d1.key);
    assert_string_equal(s, c2.key_pem);
    free(s);

    /* a cancelled action leaves the owner's journal untouched */
    struct deploy_files *op = NULL;
    assert_int_equal(deploy_files_start(&loop, "www", &d1, &c1, j, files_cb, &st, &op), 0);
    deploy_files_cancel(op);
    deploy_journal_free(j); /* the worker has its own copy */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(d1.key);
    free(d2.key);
    free(d2.bundle);
}

static void test_journal_rollback_reports_a_file_it_cannot_restore(void **state)
{
    const char *dir = *state;
    struct cfg_deploy d = files_action();
    struct store_cert c = fake_cert();
    char *err = NULL;
    size_t n = 0;

    d.key = xasprintf("%s/www.key", dir);
    d.cert = xasprintf("%s/www.crt", dir);
    put_file(d.key, "-----OLD KEY-----\n", 0600);
    put_file(d.cert, "-----OLD CERT-----\n", 0644);
    struct deploy_journal *j = deploy_journal_new();
    assert_int_equal(deploy_journal_files_sync(j, &d, &c, &err), 0);
    /* someone removed the key's backup meanwhile */
    DIR *dh = opendir(dir);
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        if (strncmp(e->d_name, ".bak-www.key-", 13) == 0)
            assert_int_equal(unlinkat(dirfd(dh), e->d_name, 0), 0);
    }
    closedir(dh);
    assert_int_equal(deploy_journal_rollback_sync(j, &n, &err), -ENOENT);
    assert_int_equal(n, 1); /* the certificate went back all the same */
    char *want = xasprintf("%s: restore: %s", d.key, strerror(ENOENT));
    assert_string_equal(err, want);
    free(want);
    free(err);
    char *s = slurp(d.cert);
    assert_string_equal(s, "-----OLD CERT-----\n");
    free(s);
    deploy_journal_free(j);
    free(d.key);
    free(d.cert);
}

/* In a child dropped to nobody: deploys over a root-owned file in a
 * directory nobody may write (fs.protected_hardlinks forbids linking it),
 * then rolls back. The exit code says which step went wrong. */
static int journal_copy_child(const char *dir, const struct passwd *pw)
{
    struct cfg_deploy d = files_action();
    struct store_cert c = fake_cert();
    char *err = NULL;
    size_t n = 0;

    if (setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
        return 10;
    d.cert = xasprintf("%s/www.crt", dir);
    struct deploy_journal *j = deploy_journal_new();
    if (deploy_journal_files_sync(j, &d, &c, &err) != 0 || deploy_journal_count(j) != 1)
        return 11;
    if (deploy_journal_rollback_sync(j, &n, &err) != 0 || n != 1)
        return 12;
    char *s = NULL;
    if (store_read_file(d.cert, &s, NULL) < 0 || strcmp(s, "-----OLD CERT-----\n") != 0)
        return 13;
    struct stat st;
    if (lstat(d.cert, &st) < 0 || (st.st_mode & 07777) != 0644)
        return 14;
    free(s);
    deploy_journal_free(j);
    free(d.cert);
    return 0;
}

static void test_journal_copies_a_file_it_may_not_link(void **state)
{
    const char *dir = *state;
    struct passwd *pw = getpwnam("nobody");
    char *buf = NULL;

    if (geteuid() != 0 || pw == NULL ||
        store_read_file("/proc/sys/fs/protected_hardlinks", &buf, NULL) < 0 || buf[0] != '1') {
        free(buf);
        print_message("skipped: needs root, a nobody user and fs.protected_hardlinks = 1\n");
        return;
    }
    free(buf);
    char *path = xasprintf("%s/www.crt", dir);
    put_file(path, "-----OLD CERT-----\n", 0644); /* root's, and nobody may not write it */
    assert_int_equal(chown(dir, pw->pw_uid, pw->pw_gid), 0);
    assert_int_equal(chmod(dir, 0755), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(journal_copy_child(dir, pw));
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    assert_int_equal(count_entries(dir), 1); /* no backup or temp file left */
    free(path);
}

static void test_exec_describe_names_the_command_and_why(void **state)
{
    (void)state;
    char *argv[] = {"systemctl", "reload", "nginx", NULL};
    struct cfg_deploy d;
    struct deploy_exec_result res = {.exit_status = 1};

    memset(&d, 0, sizeof(d));
    d.type = CFG_DEPLOY_EXEC;
    d.command.v = argv;
    d.command.n = 3;
    char *s = deploy_exec_describe("reload command", &d, ERR_HOOK, &res);
    assert_string_equal(s, "reload command `systemctl reload nginx` exited 1");
    free(s);
    res.timed_out = true;
    res.term_signal = SIGTERM;
    d.timeout_s = 5;
    s = deploy_exec_describe(NULL, &d, ERR_TIMEOUT, &res);
    assert_string_equal(s, "command `systemctl reload nginx` timed out after 5 s");
    free(s);
    res.timed_out = false;
    res.term_signal = SIGKILL;
    s = deploy_exec_describe(NULL, &d, ERR_HOOK, &res);
    assert_string_equal(s, "command `systemctl reload nginx` killed by signal 9");
    free(s);
    s = deploy_exec_describe("hook", &d, ERR_HOOK, NULL);
    assert_string_equal(s, "hook `systemctl reload nginx` could not be started");
    free(s);
}

/* ---- exec ---------------------------------------------------------------- */

struct exec_cb_state {
    int calls;
    int status;
    struct deploy_exec_result res;
};

static void exec_cb(int status, const struct deploy_exec_result *res, void *arg)
{
    struct exec_cb_state *s = arg;

    s->calls++;
    s->status = status;
    s->res = *res;
}

static struct cfg_deploy exec_action(char **argv, int64_t timeout_s)
{
    struct cfg_deploy d;

    memset(&d, 0, sizeof(d));
    d.type = CFG_DEPLOY_EXEC;
    d.uid = (uid_t)-1;
    d.gid = (gid_t)-1;
    d.command.v = argv;
    while (argv[d.command.n] != NULL)
        d.command.n++;
    d.timeout_s = timeout_s;
    return d;
}

static const char *const test_domains[] = {"example.org", "www.example.org"};

static struct deploy_env test_env(const char *cert_dir)
{
    struct deploy_env e = {
        .name = "www",
        .domains = test_domains,
        .n_domains = 2,
        .cert_dir = cert_dir,
        .event = "renewed",
    };
    return e;
}

/* Runs argv to completion on a fresh loop; checks the loop closes. */
static void run_exec(char **argv, int64_t timeout_s, const char *cert_dir, struct exec_cb_state *st)
{
    uv_loop_t loop;
    struct cfg_deploy d = exec_action(argv, timeout_s);
    struct deploy_env env = test_env(cert_dir);

    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(deploy_exec_start(&loop, &d, &env, exec_cb, st, NULL), 0);
    assert_int_equal(st->calls, 0); /* never from inside _start */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(st->calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_exec_environment_reaches_the_command(void **state)
{
    const char *dir = *state;
    char *out = xasprintf("%s/env.txt", dir);
    char *script = xasprintf(
        "printf '%%s|%%s|%%s|%%s|%%s|%%s|%%s|%%s' \"$CERTLOOP_NAME\" \"$CERTLOOP_DOMAINS\" "
        "\"$CERTLOOP_CERT_DIR\" \"$RENEWED_LINEAGE\" \"$RENEWED_DOMAINS\" \"$CERTLOOP_EVENT\" "
        "\"$TEST_DEPLOY_PARENT\" \"$(readlink /proc/self/fd/0)\" > %s",
        out);
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    struct exec_cb_state st = {0};

    /* the parent's environment is passed on; a stale CERTLOOP_NAME is not */
    setenv("TEST_DEPLOY_PARENT", "inherited", 1);
    setenv("CERTLOOP_NAME", "stale", 1);
    run_exec(argv, 10, "/var/lib/certloop/certs/www/20261125T001500Z-abcd", &st);
    unsetenv("TEST_DEPLOY_PARENT");
    unsetenv("CERTLOOP_NAME");
    assert_int_equal(st.status, 0);
    assert_int_equal(st.res.exit_status, 0);
    char *s = slurp(out);
    assert_string_equal(s, "www|example.org www.example.org|"
                           "/var/lib/certloop/certs/www/20261125T001500Z-abcd|"
                           "/var/lib/certloop/certs/www/20261125T001500Z-abcd|"
                           "example.org www.example.org|renewed|inherited|/dev/null");
    free(s);
    free(script);
    free(out);
}

/* A certbot deploy hook reads $RENEWED_LINEAGE/{fullchain,privkey}.pem: a
 * stored generation has both, and deploy_files copies the same bytes. */
static void test_exec_certbot_hook_reads_stored_generation(void **state)
{
    const char *dir = *state;
    char *sd = xasprintf("%s/state", dir);
    char *gen = NULL;
    char *err = NULL;
    struct store_cert c = {0};

    struct store_cert_put p = {"www",   "LEAF\n", "INTER\n", "LEAF\nINTER\n",
                               "KEY\n", "{}",     3,         false};
    assert_int_equal(store_fs_cert_write(sd, &p, NULL, &gen, &err), 0);
    assert_int_equal(store_fs_cert_read_current(sd, "www", true, &c), 0);
    char *out = xasprintf("%s/hook.out", dir);
    char *script =
        xasprintf("cat \"$RENEWED_LINEAGE/privkey.pem\" \"$RENEWED_LINEAGE/fullchain.pem\" "
                  "> %s",
                  out);
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    struct exec_cb_state st = {0};
    run_exec(argv, 10, c.dir, &st);
    assert_int_equal(st.status, 0);
    char *s = slurp(out);
    assert_string_equal(s, "KEY\nLEAF\nINTER\n");
    free(s);

    /* and the files action deploys that generation as read */
    struct cfg_deploy d = files_action();
    d.bundle = xasprintf("%s/www.bundle", dir);
    assert_int_equal(deploy_files_sync(&d, &c, &err), 0);
    s = slurp(d.bundle);
    assert_string_equal(s, "KEY\nLEAF\nINTER\n");
    free(s);
    free(d.bundle);
    store_cert_fini(&c);
    free(script);
    free(out);
    free(gen);
    free(sd);
}

static void test_exec_output_is_logged_line_by_line(void **state)
{
    (void)state;
    char *argv[] = {"/bin/sh", "-c",
                    "echo hello; echo 'second line'; echo oops >&2; printf 'no newline'", NULL};
    struct exec_cb_state st = {0};

    log_capture_start();
    run_exec(argv, 10, "/tmp", &st);
    assert_int_equal(st.status, 0);
    assert_true(log_has("deploy cert=www cmd=sh: hello"));
    assert_true(log_has("deploy cert=www cmd=sh: second line"));
    assert_true(log_has("deploy cert=www cmd=sh: oops"));
    assert_true(log_has("deploy cert=www cmd=sh: no newline"));
    assert_true(log_has("deploy cert=www cmd=sh: exited with status 0"));
    log_capture_stop();
}

static void test_exec_output_is_capped(void **state)
{
    (void)state;
    /* 2000 lines of 100 bytes: 200 kB, three times the cap */
    char *argv[] = {"/bin/sh", "-c",
                    "i=0; while [ $i -lt 2000 ]; do printf '%099d\\n' $i; i=$((i+1)); done", NULL};
    struct exec_cb_state st = {0};

    log_capture_start();
    run_exec(argv, 30, "/tmp", &st);
    assert_int_equal(st.status, 0);
    size_t lines = log_count_prefix("deploy cert=www cmd=sh: 0");
    assert_true(lines > 0);
    assert_true(lines * 100 <= 64 * 1024 + 100);
    assert_true(lines < 2000);
    assert_true(log_has("deploy cert=www cmd=sh: output beyond 65536 bytes dropped"));
    log_capture_stop();
}

static void test_exec_nonzero_exit_is_a_hook_error(void **state)
{
    (void)state;
    char *argv[] = {"/bin/sh", "-c", "exit 3", NULL};
    struct exec_cb_state st = {0};

    log_capture_start();
    run_exec(argv, 10, "/tmp", &st);
    assert_int_equal(st.status, ERR_HOOK);
    assert_int_equal(st.res.exit_status, 3);
    assert_int_equal(st.res.term_signal, 0);
    assert_false(st.res.timed_out);
    assert_true(log_has("deploy cert=www cmd=sh: exited with status 3"));
    log_capture_stop();
}

static void test_exec_killed_by_signal_is_a_hook_error(void **state)
{
    (void)state;
    char *argv[] = {"/bin/sh", "-c", "kill -KILL $$", NULL};
    struct exec_cb_state st = {0};

    log_capture_start();
    run_exec(argv, 10, "/tmp", &st);
    assert_int_equal(st.status, ERR_HOOK);
    assert_int_equal(st.res.term_signal, SIGKILL);
    assert_true(log_has("deploy cert=www cmd=sh: killed by signal 9"));
    log_capture_stop();
}

static void test_exec_timeout_kills_the_command(void **state)
{
    (void)state;
    char *argv[] = {"sleep", "30", NULL}; /* found through PATH */
    struct exec_cb_state st = {0};

    run_exec(argv, 1, "/tmp", &st);
    assert_int_equal(st.status, ERR_TIMEOUT);
    assert_true(st.res.timed_out);
    assert_int_equal(st.res.term_signal, SIGTERM);
}

static void test_exec_timeout_escalates_to_sigkill(void **state)
{
    (void)state;
    /* the ignored SIGTERM survives exec: only SIGKILL ends this sleep */
    char *argv[] = {"/bin/sh", "-c", "trap '' TERM; exec sleep 30", NULL};
    struct exec_cb_state st = {0};

    run_exec(argv, 1, "/tmp", &st);
    assert_int_equal(st.status, ERR_TIMEOUT);
    assert_true(st.res.timed_out);
    assert_int_equal(st.res.term_signal, SIGKILL);
}

static void test_exec_timeout_kills_the_whole_group(void **state)
{
    const char *dir = *state;
    char *pidfile = xasprintf("%s/child.pid", dir);
    /* a shell whose child (not exec'd) holds the pipes open */
    char *script = xasprintf("sleep 30 & echo $! > %s; wait", pidfile);
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    struct exec_cb_state st = {0};

    run_exec(argv, 1, "/tmp", &st);
    assert_int_equal(st.status, ERR_TIMEOUT);
    char *s = slurp(pidfile);
    pid_t child = (pid_t)strtol(s, NULL, 10);
    free(s);
    assert_true(child > 0);
    /* the grandchild got the group's SIGTERM too (it may linger as a
     * zombie of its dead parent only briefly: poll for it to vanish) */
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/%d/stat", (int)child);
        FILE *f = fopen(proc, "r");
        if (f == NULL) {
            gone = true;
            break;
        }
        char buf[256] = "";
        if (fgets(buf, sizeof(buf), f) == NULL)
            buf[0] = '\0';
        fclose(f);
        char *rp = strrchr(buf, ')');
        if (rp != NULL && rp[1] == ' ' && rp[2] == 'Z')
            gone = true;
        else
            usleep(20000);
    }
    assert_true(gone);
    free(script);
    free(pidfile);
}

static void test_exec_background_child_does_not_hold_us(void **state)
{
    (void)state;
    /* the command exits at once but leaves a child holding stdout */
    char *argv[] = {"/bin/sh", "-c", "sleep 4 & echo started", NULL};
    struct exec_cb_state st = {0};

    log_capture_start();
    run_exec(argv, 10, "/tmp", &st);
    assert_int_equal(st.status, 0);
    assert_true(log_has("deploy cert=www cmd=sh: started"));
    log_capture_stop();
}

struct cancel_ctx {
    struct deploy_exec *op;
    uv_timer_t t;
};

static void cancel_later(uv_timer_t *t)
{
    struct cancel_ctx *c = t->data;

    deploy_exec_cancel(c->op);
    c->op = NULL;
    uv_close((uv_handle_t *)t, NULL);
}

static void test_exec_cancel_is_silent_and_frees(void **state)
{
    (void)state;
    char *argv[] = {"sleep", "30", NULL};
    struct cfg_deploy d = exec_action(argv, 60);
    struct deploy_env env = test_env("/tmp");
    struct exec_cb_state st = {0};
    struct cancel_ctx cc = {0};
    uv_loop_t loop;

    assert_int_equal(uv_loop_init(&loop), 0);

    /* cancelled at once */
    struct deploy_exec *op = NULL;
    assert_int_equal(deploy_exec_start(&loop, &d, &env, exec_cb, &st, &op), 0);
    assert_non_null(op);
    deploy_exec_cancel(op);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(st.calls, 0);

    /* cancelled while running, from a timer */
    assert_int_equal(deploy_exec_start(&loop, &d, &env, exec_cb, &st, &cc.op), 0);
    uv_timer_init(&loop, &cc.t);
    cc.t.data = &cc;
    uv_timer_start(&cc.t, cancel_later, 200, 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(st.calls, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_exec_spawn_failure_is_synchronous(void **state)
{
    (void)state;
    char *argv[] = {"/nonexistent/certloop-hook", NULL};
    struct cfg_deploy d = exec_action(argv, 10);
    struct deploy_env env = test_env("/tmp");
    struct exec_cb_state st = {0};
    struct deploy_exec *op = NULL;
    uv_loop_t loop;

    assert_int_equal(uv_loop_init(&loop), 0);
    log_capture_start();
    int rc = deploy_exec_start(&loop, &d, &env, exec_cb, &st, &op);
    assert_int_equal(rc, UV_ENOENT);
    assert_null(op);
    assert_true(log_has("deploy cert=www cmd=certloop-hook: spawn /nonexistent/certloop-hook: "
                        "no such file or directory"));
    log_capture_stop();
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(st.calls, 0);
    assert_int_equal(uv_loop_close(&loop), 0);

    /* an action without a command */
    char *empty[] = {NULL};
    struct cfg_deploy e = exec_action(empty, 10);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(deploy_exec_start(&loop, &e, &env, exec_cb, &st, NULL), -EINVAL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A descriptor a library opened without O_CLOEXEC (libcurl's sockets) must
 * not reach the command. */
static void test_exec_command_inherits_no_descriptor(void **state)
{
    int fds[2];
    (void)state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    assert_int_equal(fcntl(fds[0], F_GETFD) & FD_CLOEXEC, 0);
    char *script =
        xasprintf("test ! -e /proc/self/fd/%d && test ! -e /proc/self/fd/%d", fds[0], fds[1]);
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    struct exec_cb_state st = {0};

    run_exec(argv, 10, "/tmp", &st);
    assert_int_equal(st.status, 0);
    assert_int_equal(st.res.exit_status, 0);
    /* still open in the parent */
    assert_true(fcntl(fds[0], F_GETFD) >= 0);
    close(fds[0]);
    close(fds[1]);
    free(script);
}

/* Temp files a killed deploy left (".tmp-BASE-XXXXXXXX" beside each
 * configured file, in two directories) are removed; anything else, even
 * ".tmp-" names of other files or of another shape, stays. */
static void test_files_sweep_removes_only_our_leftovers(void **state)
{
    const char *dir = *state;
    char *sub = xasprintf("%s/keys", dir);
    struct cfg_deploy d = files_action();
    const char *const leftovers[] = {".tmp-fullchain.pem-0a1b2c3d", ".tmp-cert.pem-ffffffff",
                                     "keys/.tmp-www.key-12345678"};
    const char *const kept[] = {"fullchain.pem",
                                ".tmp-other.pem-0a1b2c3d",
                                ".tmp-fullchain.pem-0A1B2C3D",
                                ".tmp-fullchain.pem-0a1b2c3",
                                ".tmp-cert.pem-0a1b2c3d9",
                                "keys/.tmp-fullchain.pem-0a1b2c3d"};

    assert_int_equal(mkdir(sub, 0700), 0);
    d.fullchain = xasprintf("%s/fullchain.pem", dir);
    d.cert = xasprintf("%s/cert.pem", dir);
    d.key = xasprintf("%s/www.key", sub);
    for (size_t i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", dir, leftovers[i]);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
        assert_true(fd >= 0);
        close(fd);
        free(p);
    }
    for (size_t i = 0; i < 6; i++) {
        char *p = xasprintf("%s/%s", dir, kept[i]);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
        assert_true(fd >= 0);
        close(fd);
        free(p);
    }
    assert_int_equal(deploy_files_sweep(&d), 3);
    for (size_t i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", dir, leftovers[i]);
        assert_false(exists(p));
        free(p);
    }
    for (size_t i = 0; i < 6; i++) {
        char *p = xasprintf("%s/%s", dir, kept[i]);
        assert_true(exists(p));
        free(p);
    }
    assert_int_equal(deploy_files_sweep(&d), 0);
    free((char *)d.fullchain);
    free((char *)d.cert);
    free((char *)d.key);
    free(sub);
}

#define T(f) cmocka_unit_test_setup_teardown(f, test_dir_setup, test_dir_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_files_writes_exactly_the_configured_files),
        T(test_files_only_fullchain_and_key),
        T(test_files_configured_mode_applies_to_all),
        T(test_files_refuses_world_readable_key),
        T(test_files_owner_and_group),
        T(test_files_all_or_nothing),
        T(test_files_missing_directory_reports_path),
        T(test_files_pkcs12_modern_and_legacy),
        T(test_files_start_calls_back_once_and_cancel_is_silent),
        T(test_files_sweep_removes_only_our_leftovers),
        T(test_journal_second_action_fails_first_is_rolled_back),
        T(test_journal_keeps_the_first_backup_and_commit_removes_backups),
        T(test_journal_rollback_reports_a_file_it_cannot_restore),
        T(test_journal_copies_a_file_it_may_not_link),
        T(test_exec_describe_names_the_command_and_why),
        T(test_exec_environment_reaches_the_command),
        T(test_exec_certbot_hook_reads_stored_generation),
        T(test_exec_output_is_logged_line_by_line),
        T(test_exec_output_is_capped),
        T(test_exec_nonzero_exit_is_a_hook_error),
        T(test_exec_killed_by_signal_is_a_hook_error),
        T(test_exec_timeout_kills_the_command),
        T(test_exec_timeout_escalates_to_sigkill),
        T(test_exec_timeout_kills_the_whole_group),
        T(test_exec_background_child_does_not_hold_us),
        T(test_exec_cancel_is_silent_and_frees),
        T(test_exec_spawn_failure_is_synchronous),
        T(test_exec_command_inherits_no_descriptor),
    };
    log_set_level(LOG_LVL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
