/* Unit tests of the state directory: atomic writes (modes, failure paths,
 * ENOSPC on a tiny tmpfs), the lock, certificate generations, pruning,
 * the start-up sweep, orders, accounts and the threadpool job wrapper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"
#include "test_fs.h"
#include "store/store_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

/* ---- helpers ------------------------------------------------------------- */

static int setup_dir(void **state)
{
    char tmpl[] = "/tmp/test_store.XXXXXX";
    char *d = mkdtemp(tmpl);

    assert_non_null(d);
    *state = xstrdup(d);
    return 0;
}

static int teardown_dir(void **state)
{
    /* a failed ENOSPC test may have left its tmpfs mounted */
    char *mnt = xasprintf("%s/tiny", (char *)*state);
    umount2(mnt, MNT_DETACH);
    free(mnt);
    test_rm_rf(*state);
    free(*state);
    return 0;
}

static char *path_in(const char *dir, const char *rel)
{
    return xasprintf("%s/%s", dir, rel);
}

static char *slurp(const char *path)
{
    char *s = NULL;
    int rc = store_read_file(path, &s, NULL);

    assert_int_equal(rc, 0);
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

/* Number of entries in dir whose name starts with prefix. */
static int count_prefix(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* The last error-level log line, captured through the log sink. */
static char last_error[2048];

static void capture_sink(enum log_level lvl, enum log_group g, const char *msg, void *arg)
{
    (void)g;
    (void)arg;
    if (lvl == LOG_LVL_ERROR)
        snprintf(last_error, sizeof(last_error), "%s", msg);
}

/* ---- atomic writes ------------------------------------------------------- */

static void test_write_atomic_sets_final_mode_whatever_the_umask(void **state)
{
    const char *dir = *state;
    char *key = path_in(dir, "a.key");
    char *crt = path_in(dir, "a.crt");
    const char *step = NULL;

    mode_t old = umask(0);
    assert_int_equal(store_write_atomic(key, "secret\n", 7, 0600, (uid_t)-1, (gid_t)-1, &step), 0);
    umask(077);
    assert_int_equal(store_write_atomic(crt, "public\n", 7, 0644, (uid_t)-1, (gid_t)-1, &step), 0);
    umask(old);

    assert_int_equal(mode_of(key), 0600);
    assert_int_equal(mode_of(crt), 0644);
    char *s = slurp(key);
    assert_string_equal(s, "secret\n");
    free(s);
    s = slurp(crt);
    assert_string_equal(s, "public\n");
    free(s);
    assert_int_equal(count_prefix(dir, ".tmp-"), 0);

    /* replacing keeps the path, changes content and mode */
    assert_int_equal(store_write_atomic(crt, "v2", 2, 0640, (uid_t)-1, (gid_t)-1, &step), 0);
    s = slurp(crt);
    assert_string_equal(s, "v2");
    free(s);
    assert_int_equal(mode_of(crt), 0640);
    free(key);
    free(crt);
}

struct seen_tmp {
    int calls;
    mode_t mode;
    off_t size;
    bool regular;
    char name[512];
};

static void record_tmp(const char *tmp_path, void *arg)
{
    struct seen_tmp *s = arg;
    struct stat st;

    s->calls++;
    if (lstat(tmp_path, &st) == 0) {
        s->mode = st.st_mode & 07777;
        s->size = st.st_size;
        s->regular = S_ISREG(st.st_mode);
    }
    const char *slash = strrchr(tmp_path, '/');
    snprintf(s->name, sizeof(s->name), "%s", slash ? slash + 1 : tmp_path);
}

static void test_write_atomic_key_never_wider_and_nothing_left_on_rename_failure(void **state)
{
    const char *dir = *state;
    char *target = path_in(dir, "www.key");
    struct seen_tmp seen = {0};
    const char *step = NULL;

    /* a directory at the target path makes rename(2) fail (EISDIR) after
     * the temp file is complete */
    assert_int_equal(mkdir(target, 0700), 0);
    mode_t old = umask(0);
    store_test_set_before_rename(record_tmp, &seen);
    int rc = store_write_atomic(target, "KEYDATA", 7, 0600, (uid_t)-1, (gid_t)-1, &step);
    store_test_set_before_rename(NULL, NULL);
    umask(old);

    assert_true(rc < 0);
    assert_int_equal(rc, -EISDIR);
    assert_string_equal(step, "rename");
    assert_int_equal(seen.calls, 1);
    assert_true(seen.regular);
    assert_int_equal(seen.mode, 0600); /* even with umask 0 */
    assert_int_equal(seen.size, 7);
    assert_true(strncmp(seen.name, ".tmp-www.key-", 13) == 0);
    /* the temp file is gone, the directory untouched */
    assert_int_equal(count_prefix(dir, ".tmp-"), 0);
    struct stat st;
    assert_int_equal(lstat(target, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    free(target);
}

static void test_write_atomic_missing_directory_reports_open(void **state)
{
    const char *dir = *state;
    char *target = path_in(dir, "nope/x.pem");
    const char *step = NULL;

    int rc = store_write_atomic(target, "x", 1, 0644, (uid_t)-1, (gid_t)-1, &step);
    assert_int_equal(rc, -ENOENT);
    assert_string_equal(step, "open");
    free(target);
}

static void test_write_atomic_owner_and_group(void **state)
{
    const char *dir = *state;
    char *target = path_in(dir, "owned.pem");
    const char *step = NULL;
    struct stat st;

    if (geteuid() != 0) {
        print_message("skipped: chown needs root\n");
        skip();
    }
    assert_int_equal(store_write_atomic(target, "x", 1, 0640, 65534, 65534, &step), 0);
    assert_int_equal(lstat(target, &st), 0);
    assert_int_equal(st.st_uid, 65534);
    assert_int_equal(st.st_gid, 65534);
    assert_int_equal(st.st_mode & 07777, 0640);
    /* group only: the owner stays */
    assert_int_equal(store_write_atomic(target, "y", 1, 0640, (uid_t)-1, 65534, &step), 0);
    assert_int_equal(lstat(target, &st), 0);
    assert_int_equal(st.st_uid, 0);
    assert_int_equal(st.st_gid, 65534);
    free(target);
}

/* A command run as root gives the account it wrote to the state
 * directory's owner; a chown that fails is reported with its path. */
static void test_account_chown(void **state)
{
    const char *dir = *state;
    char *err = NULL;
    struct stat st;

    if (geteuid() != 0) {
        print_message("skipped: chown needs root\n");
        skip();
    }
    assert_int_equal(store_fs_account_write(dir, "ca1", "KEY", "{}", &err), 0);
    assert_int_equal(store_fs_account_chown(dir, "ca1", 65534, 65534, &err), 0);
    assert_null(err);
    static const char *const parts[] = {"accounts", "accounts/ca1", "accounts/ca1/account.key",
                                        "accounts/ca1/account.json"};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        char *p = path_in(dir, parts[i]);
        assert_int_equal(lstat(p, &st), 0);
        assert_int_equal(st.st_uid, 65534);
        assert_int_equal(st.st_gid, 65534);
        free(p);
    }
    /* no such account: the first path that fails, and why */
    assert_int_equal(store_fs_account_chown(dir, "nope", 65534, 65534, &err), -ENOENT);
    assert_non_null(err);
    assert_non_null(strstr(err, "/accounts/nope: chown: "));
    free(err);
}

static void test_write_atomic_enospc_keeps_old_file(void **state)
{
    const char *dir = *state;
    char *mnt = path_in(dir, "tiny");
    const char *step = NULL;

    assert_int_equal(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k,mode=0700") < 0) {
        print_message("skipped: cannot mount a 64k tmpfs (%s); ENOSPC path untested\n",
                      strerror(errno));
        free(mnt);
        skip();
    }
    char *target = path_in(mnt, "www.key");
    assert_int_equal(store_write_atomic(target, "OLD KEY\n", 8, 0600, (uid_t)-1, (gid_t)-1, &step),
                     0);

    size_t big = 256 * 1024;
    char *data = xmalloc(big);
    memset(data, 'N', big);
    int rc = store_write_atomic(target, data, big, 0600, (uid_t)-1, (gid_t)-1, &step);
    free(data);

    assert_int_equal(rc, -ENOSPC);
    assert_string_equal(step, "write");
    char *s = slurp(target);
    assert_string_equal(s, "OLD KEY\n");
    free(s);
    assert_int_equal(mode_of(target), 0600);
    assert_int_equal(count_prefix(mnt, ".tmp-"), 0);

    /* and the space was given back: a small write works again */
    assert_int_equal(store_write_atomic(target, "NEW KEY\n", 8, 0600, (uid_t)-1, (gid_t)-1, &step),
                     0);
    s = slurp(target);
    assert_string_equal(s, "NEW KEY\n");
    free(s);

    free(target);
    assert_int_equal(umount2(mnt, MNT_DETACH), 0);
    free(mnt);
}

static void test_mkdirs_nested_and_not_a_directory(void **state)
{
    const char *dir = *state;
    char *deep = path_in(dir, "a/b/c/");
    char *file = path_in(dir, "f");
    char *under = path_in(dir, "f/g");

    assert_int_equal(store_mkdirs(deep, 0700), 0);
    assert_int_equal(store_mkdirs(deep, 0700), 0); /* idempotent */
    char *c = path_in(dir, "a/b/c");
    assert_int_equal(mode_of(c), 0700);
    free(c);
    int fd = open(file, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(store_mkdirs(under, 0700), -ENOTDIR);
    free(deep);
    free(file);
    free(under);
}

/* One descriptor per file system, whatever the number of directories on
 * it; a directory that cannot be opened, or CERTLOOP_NO_SYNCFS, makes the
 * writer sync each file itself. */
static void test_fsset_one_per_file_system(void **state)
{
    const char *dir = *state;
    char *a = path_in(dir, "a"), *b = path_in(dir, "b"), *none = path_in(dir, "none");
    struct store_fsset fs;

    assert_int_equal(mkdir(a, 0700), 0);
    assert_int_equal(mkdir(b, 0700), 0);
    store_fsset_init(&fs);
    if (!store_syncfs_reports()) {
        assert_false(store_fsset_add(&fs, a)); /* an old kernel: fsyncs as before */
        goto out;
    }
    assert_true(store_fsset_add(&fs, a));
    assert_true(store_fsset_add(&fs, b));
    assert_true(store_fsset_add(&fs, dir));
    assert_int_equal(fs.n, 1);
    assert_false(store_fsset_add(&fs, none));
    assert_int_equal(store_fsset_sync(&fs), 0);
    store_fsset_close(&fs);
    assert_int_equal(fs.n, 0);
    setenv("CERTLOOP_NO_SYNCFS", "1", 1);
    assert_false(store_syncfs_reports());
    assert_false(store_fsset_add(&fs, a));
    unsetenv("CERTLOOP_NO_SYNCFS");
out:
    store_fsset_close(&fs);
    free(a);
    free(b);
    free(none);
}

/* Reads are capped at STORE_FILE_MAX whatever the file says it holds; an
 * empty file and a file without a size (procfs) read too. */
static void test_read_file_cap_and_sizes(void **state)
{
    const char *dir = *state;
    char *path = xasprintf("%s/big", dir);
    char *data = xmalloc(STORE_FILE_MAX + 1);
    char *s = NULL;
    size_t len = 0;

    memset(data, 'k', STORE_FILE_MAX + 1);
    assert_int_equal(
        store_write_atomic(path, data, STORE_FILE_MAX, 0600, (uid_t)-1, (gid_t)-1, NULL), 0);
    assert_int_equal(store_read_file(path, &s, &len), 0);
    assert_int_equal(len, STORE_FILE_MAX);
    assert_int_equal(s[len], '\0');
    assert_memory_equal(s, data, len);
    free(s);
    s = NULL;
    assert_int_equal(
        store_write_atomic(path, data, STORE_FILE_MAX + 1, 0600, (uid_t)-1, (gid_t)-1, NULL), 0);
    assert_int_equal(store_read_file(path, &s, &len), ERR_TOO_BIG);
    assert_null(s);
    assert_int_equal(store_write_atomic(path, "", 0, 0600, (uid_t)-1, (gid_t)-1, NULL), 0);
    assert_int_equal(store_read_file(path, &s, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(s, "");
    free(s);
    assert_int_equal(store_read_file("/proc/self/status", &s, &len), 0);
    assert_true(len > 0);
    assert_non_null(strstr(s, "Name:"));
    free(s);
    free(data);
    free(path);
}

static void test_name_validation(void **state)
{
    (void)state;
    assert_true(store_name_ok("www"));
    assert_true(store_name_ok("example.org"));
    assert_false(store_name_ok(""));
    assert_false(store_name_ok(NULL));
    assert_false(store_name_ok(".."));
    assert_false(store_name_ok(".hidden"));
    assert_false(store_name_ok("a/b"));
    assert_false(store_name_ok("a\nb"));
}

/* ---- the lock ------------------------------------------------------------ */

/* Finds our fd open on path and returns its fdinfo flags, or -1. */
static long fd_flags_for(const char *path)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long flags = -1;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char link[300], target[4096];
        snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n < 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, path) != 0)
            continue;
        char info[300];
        snprintf(info, sizeof(info), "/proc/self/fdinfo/%s", e->d_name);
        FILE *f = fopen(info, "r");
        if (f == NULL)
            continue;
        char line[128];
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, "flags:", 6) == 0)
                flags = strtol(line + 6, NULL, 8);
        }
        fclose(f);
    }
    closedir(d);
    return flags;
}

static void test_open_creates_private_dir_and_writes_pid(void **state)
{
    const char *dir = *state;
    char *sd = path_in(dir, "var/lib/certloop");
    struct store *s = NULL;

    assert_int_equal(store_fs_open(NULL, sd, 0, &s), 0);
    assert_non_null(s);
    char *root = store_where(s, STORE_WHERE_ROOT, NULL);
    assert_string_equal(root, sd);
    free(root);
    assert_int_equal(mode_of(sd), 0700);
    static const char *const subs[] = {"accounts", "certs", "orders"};
    for (size_t i = 0; i < 3; i++) {
        char *p = path_in(sd, subs[i]);
        assert_int_equal(mode_of(p), 0700);
        free(p);
    }
    char *lock = path_in(sd, "lock");
    char *pid = slurp(lock);
    char want[32];
    snprintf(want, sizeof(want), "%ld\n", (long)getpid());
    assert_string_equal(pid, want);
    free(pid);
    assert_int_equal(mode_of(lock), 0600);
    /* the lock fd must not leak into hooks */
    long flags = fd_flags_for(lock);
    assert_true(flags >= 0);
    assert_true((flags & O_CLOEXEC) != 0);
    store_close(s);
    free(lock);
    free(sd);
}

static void test_open_refuses_second_open_in_same_process(void **state)
{
    const char *dir = *state;
    struct store *a = NULL, *b = NULL;

    assert_int_equal(store_fs_open(NULL, dir, 0, &a), 0);
    last_error[0] = '\0';
    log_set_sink(capture_sink, NULL);
    int rc = store_fs_open(NULL, dir, 0, &b);
    log_set_sink(NULL, NULL);
    assert_int_equal(rc, ERR_LOCKED);
    assert_null(b);
    char want[512];
    snprintf(want, sizeof(want),
             "state directory %s is locked by pid %ld (another certloop is running)", dir,
             (long)getpid());
    assert_string_equal(last_error, want);

    store_close(a);
    assert_int_equal(store_fs_open(NULL, dir, 0, &b), 0); /* released by close */
    store_close(b);
}

static void test_open_refuses_other_process(void **state)
{
    const char *dir = *state;
    struct store *a = NULL;

    assert_int_equal(store_fs_open(NULL, dir, 0, &a), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *b = NULL;
        int rc = store_fs_open(NULL, dir, 0, &b);
        _exit(rc == ERR_LOCKED ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    store_close(a);

    /* once released another process gets it */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *b = NULL;
        int rc = store_fs_open(NULL, dir, 0, &b);
        _exit(rc == 0 ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_open_refuses_world_writable_dir(void **state)
{
    const char *dir = *state;
    struct store *s = NULL;

    assert_int_equal(chmod(dir, 0777), 0);
    assert_int_equal(store_fs_open(NULL, dir, 0, &s), ERR_BAD_STATE);
    assert_null(s);
    assert_int_equal(chmod(dir, 0700), 0);
}

/* ---- certificate generations --------------------------------------------- */

static void write_gen(const char *sd, const char *name, int i, int keep, char **gen)
{
    char cert[64], chain[64], full[128], key[64], meta[64];
    char *err = NULL;

    snprintf(cert, sizeof(cert), "CERT-%d\n", i);
    snprintf(chain, sizeof(chain), "CHAIN-%d\n", i);
    snprintf(full, sizeof(full), "CERT-%d\nCHAIN-%d\n", i, i);
    snprintf(key, sizeof(key), "KEY-%d\n", i);
    snprintf(meta, sizeof(meta), "{\"n\":%d}", i);
    struct store_cert_put p = {name, cert, chain, full, key, meta, keep, false};
    int rc = store_fs_cert_write(sd, &p, NULL, gen, &err);
    if (rc != 0)
        fail_msg("write generation %d: %s", i, err ? err : err_str(rc));
    free(err);
}

static void test_generation_swap_and_read_current(void **state)
{
    const char *sd = *state;
    struct store_cert c = {0};
    char *g1 = NULL, *g2 = NULL;

    assert_int_equal(store_fs_cert_read_current(sd, "www", true, &c), -ENOENT);

    write_gen(sd, "www", 1, 3, &g1);
    assert_non_null(g1);
    assert_int_equal(strlen(g1), 21);
    assert_int_equal(store_fs_cert_read_current(sd, "www", true, &c), 0);
    assert_string_equal(c.generation, g1);
    char *want_dir = xasprintf("%s/certs/www/%s", sd, g1);
    assert_string_equal(c.dir, want_dir);
    assert_string_equal(c.cert_pem, "CERT-1\n");
    assert_string_equal(c.chain_pem, "CHAIN-1\n");
    assert_string_equal(c.fullchain_pem, "CERT-1\nCHAIN-1\n");
    assert_string_equal(c.key_pem, "KEY-1\n");
    assert_string_equal(c.meta_json, "{\"n\":1}");

    /* modes: private directory, private key, public certificates */
    assert_int_equal(mode_of(want_dir), 0700);
    char *p = path_in(want_dir, "key.pem");
    assert_int_equal(mode_of(p), 0600);
    free(p);
    p = path_in(want_dir, "cert.pem");
    assert_int_equal(mode_of(p), 0644);
    free(p);
    /* certbot-style privkey.pem -> key.pem */
    p = path_in(want_dir, "privkey.pem");
    char target[64];
    ssize_t n = readlink(p, target, sizeof(target) - 1);
    assert_int_equal(n, 7);
    target[n] = '\0';
    assert_string_equal(target, "key.pem");
    free(p);
    /* current is a relative link to the generation */
    char *cur = xasprintf("%s/certs/www/current", sd);
    n = readlink(cur, target, sizeof(target) - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_string_equal(target, g1);
    store_cert_fini(&c);
    free(want_dir);

    write_gen(sd, "www", 2, 3, &g2);
    assert_true(strcmp(g2, g1) > 0); /* sortable: newer sorts later */
    assert_int_equal(store_fs_cert_read_current(sd, "www", false, &c), 0);
    assert_string_equal(c.generation, g2);
    assert_string_equal(c.cert_pem, "CERT-2\n");
    assert_null(c.key_pem);
    store_cert_fini(&c);
    char *certs_dir = xasprintf("%s/certs/www", sd);
    assert_int_equal(count_prefix(certs_dir, ".tmp-"), 0);
    free(certs_dir);
    free(cur);
    free(g1);
    free(g2);
}

static void test_keep_prunes_old_generations(void **state)
{
    const char *sd = *state;
    char *gens[5] = {0};
    char *name_dir = xasprintf("%s/certs/api", sd);

    for (int i = 0; i < 5; i++)
        write_gen(sd, "api", i, 3, &gens[i]);
    for (int i = 0; i < 5; i++) {
        char *p = path_in(name_dir, gens[i]);
        /* the two oldest are gone, the newest three stay */
        assert_int_equal(exists(p), i >= 2);
        free(p);
    }
    struct store_cert c = {0};
    assert_int_equal(store_fs_cert_read_current(sd, "api", true, &c), 0);
    assert_string_equal(c.generation, gens[4]);
    assert_string_equal(c.key_pem, "KEY-4\n");
    store_cert_fini(&c);
    for (int i = 0; i < 5; i++)
        free(gens[i]);
    free(name_dir);
}

static void test_keep_never_removes_current(void **state)
{
    const char *sd = *state;
    char *g = NULL;
    char *name_dir = xasprintf("%s/certs/clock", sd);

    /* a generation from "the future" (the clock stepped back since): the
     * new one sorts before it, yet keep=1 must not remove the new current */
    assert_int_equal(store_mkdirs(name_dir, 0700), 0);
    char *future = path_in(name_dir, "29991231T235959Z-ffff");
    assert_int_equal(mkdir(future, 0700), 0);
    char *meta = path_in(future, "meta.json");
    assert_int_equal(store_write_atomic(meta, "{}", 2, 0644, (uid_t)-1, (gid_t)-1, NULL), 0);

    write_gen(sd, "clock", 7, 1, &g);
    struct store_cert c = {0};
    assert_int_equal(store_fs_cert_read_current(sd, "clock", false, &c), 0);
    assert_string_equal(c.generation, g);
    assert_string_equal(c.cert_pem, "CERT-7\n");
    store_cert_fini(&c);
    free(meta);
    free(future);
    free(name_dir);
    free(g);
}

struct race {
    const char *sd;
    int rounds;
    volatile int stop;
};

static void *race_writer(void *arg)
{
    struct race *r = arg;

    for (int i = 0; i < r->rounds; i++) {
        char *g = NULL;
        write_gen(r->sd, "race", i, 3, &g);
        free(g);
    }
    r->stop = 1;
    return NULL;
}

static void test_read_current_is_one_generation_during_swaps(void **state)
{
    const char *sd = *state;
    struct race r = {sd, 50, 0};
    pthread_t t;
    char *g = NULL;
    int reads = 0;

    write_gen(sd, "race", 1000, 3, &g);
    free(g);
    assert_int_equal(pthread_create(&t, NULL, race_writer, &r), 0);
    while (!r.stop) {
        struct store_cert c = {0};
        int rc = store_fs_cert_read_current(sd, "race", true, &c);
        assert_int_equal(rc, 0);
        int a, b, k;
        assert_int_equal(sscanf(c.cert_pem, "CERT-%d", &a), 1);
        assert_int_equal(sscanf(c.fullchain_pem, "CERT-%d", &b), 1);
        assert_int_equal(sscanf(c.key_pem, "KEY-%d", &k), 1);
        /* every file from the same generation */
        assert_int_equal(a, b);
        assert_int_equal(a, k);
        store_cert_fini(&c);
        reads++;
    }
    pthread_join(t, NULL);
    assert_true(reads > 0);
}

static void test_cert_write_rejects_bad_name(void **state)
{
    const char *sd = *state;
    char *err = NULL;
    char *g = NULL;

    struct store_cert_put p = {"../evil", "C", "", "C", "K", "{}", 3, false};
    int rc = store_fs_cert_write(sd, &p, NULL, &g, &err);
    assert_int_equal(rc, -EINVAL);
    assert_null(g);
    assert_non_null(err);
    free(err);
    char *evil = path_in(sd, "evil");
    assert_false(exists(evil));
    free(evil);
}

/* ---- sweep --------------------------------------------------------------- */

static void touch(const char *path, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    close(fd);
}

static void test_sweep_removes_temps_and_incomplete_generations(void **state)
{
    const char *sd = *state;
    struct store *s = NULL;
    char *g = NULL;

    assert_int_equal(store_fs_open(NULL, sd, 0, &s), 0);
    write_gen(sd, "www", 1, 3, &g);
    char *name_dir = xasprintf("%s/certs/www", sd);

    /* leftovers of a crash, one of each kind */
    char *t1 = xasprintf("%s/orders/.tmp-www.json-0123abcd", sd);
    touch(t1, 0600);
    char *acct = xasprintf("%s/accounts/le", sd);
    assert_int_equal(mkdir(acct, 0700), 0);
    char *t2 = xasprintf("%s/.tmp-account.key-deadbeef", acct);
    touch(t2, 0600);
    char *t3 = xasprintf("%s/.tmp-current-00ff00ff", name_dir);
    assert_int_equal(symlink(g, t3), 0);
    char *t4 = xasprintf("%s/%s/.tmp-cert.pem-11111111", name_dir, g);
    touch(t4, 0644);
    /* an incomplete generation (no meta.json) and a complete old one */
    char *inc = path_in(name_dir, "20200101T000000Z-abcd");
    assert_int_equal(mkdir(inc, 0700), 0);
    char *inc_key = path_in(inc, "key.pem");
    touch(inc_key, 0600);
    char *old = path_in(name_dir, "20190101T000000Z-abcd");
    assert_int_equal(mkdir(old, 0700), 0);
    char *old_meta = path_in(old, "meta.json");
    touch(old_meta, 0644);
    /* things that are not ours to remove */
    char *keep_order = xasprintf("%s/orders/www.json", sd);
    touch(keep_order, 0600);

    assert_int_equal(store_fs_sweep(sd), 5);
    assert_false(exists(t1));
    assert_false(exists(t2));
    assert_false(exists(t3));
    assert_false(exists(t4));
    assert_false(exists(inc));
    assert_true(exists(old));
    assert_true(exists(keep_order));
    struct store_cert c = {0};
    assert_int_equal(store_fs_cert_read_current(sd, "www", true, &c), 0);
    assert_string_equal(c.generation, g);
    store_cert_fini(&c);
    assert_int_equal(store_fs_sweep(sd), 0); /* nothing left */

    store_close(s);
    free(t1);
    free(t2);
    free(t3);
    free(t4);
    free(inc);
    free(inc_key);
    free(old);
    free(old_meta);
    free(keep_order);
    free(acct);
    free(name_dir);
    free(g);
}

/* ---- orders and accounts ------------------------------------------------- */

static void test_order_write_read_remove(void **state)
{
    const char *sd = *state;
    char *json = NULL;

    assert_int_equal(store_fs_order_read(sd, "www", &json), -ENOENT);
    assert_int_equal(store_fs_order_write(sd, "www", "{\"url\":\"https://ca/o/1\"}", NULL), 0);
    assert_int_equal(store_fs_order_read(sd, "www", &json), 0);
    assert_string_equal(json, "{\"url\":\"https://ca/o/1\"}");
    free(json);
    char *p = xasprintf("%s/orders/www.json", sd);
    assert_int_equal(mode_of(p), 0600);
    assert_int_equal(store_fs_order_write(sd, "www", "{\"url\":\"https://ca/o/2\"}", NULL), 0);
    assert_int_equal(store_fs_order_read(sd, "www", &json), 0);
    assert_string_equal(json, "{\"url\":\"https://ca/o/2\"}");
    free(json);
    assert_int_equal(store_fs_order_settle(sd, "www", NULL), 0);
    assert_false(exists(p));
    assert_int_equal(store_fs_order_read(sd, "www", &json), -ENOENT);
    assert_int_equal(store_fs_order_settle(sd, "www", NULL), 0);
    assert_int_equal(store_fs_order_write(sd, "../x", "{}", NULL), -EINVAL);
    free(p);
}

static void test_order_read_caps_size(void **state)
{
    const char *sd = *state;
    char *dir = xasprintf("%s/orders", sd);
    char *p = xasprintf("%s/orders/big.json", sd);
    size_t n = STORE_FILE_MAX + 1;
    char *data = xmalloc(n);
    char *json = NULL;

    memset(data, ' ', n);
    assert_int_equal(store_mkdirs(dir, 0700), 0);
    assert_int_equal(store_write_atomic(p, data, n, 0600, (uid_t)-1, (gid_t)-1, NULL), 0);
    assert_int_equal(store_fs_order_read(sd, "big", &json), ERR_TOO_BIG);
    assert_null(json);
    free(data);
    free(p);
    free(dir);
}

static void test_account_round_trip(void **state)
{
    const char *sd = *state;
    char *key = NULL, *json = NULL, *err = NULL;

    assert_int_equal(store_fs_account_read(sd, "letsencrypt", &key, &json), -ENOENT);
    assert_int_equal(store_fs_account_write(sd, "letsencrypt", "-----BEGIN KEY-----\n",
                                            "{\"url\":\"https://ca/acct/1\"}", &err),
                     0);
    assert_null(err);
    assert_int_equal(store_fs_account_read(sd, "letsencrypt", &key, &json), 0);
    assert_string_equal(key, "-----BEGIN KEY-----\n");
    assert_string_equal(json, "{\"url\":\"https://ca/acct/1\"}");
    free(key);
    free(json);
    char *dir = xasprintf("%s/accounts/letsencrypt", sd);
    assert_int_equal(mode_of(dir), 0700);
    char *p = path_in(dir, "account.key");
    assert_int_equal(mode_of(p), 0600);
    free(p);
    p = path_in(dir, "account.json");
    assert_int_equal(mode_of(p), 0600);
    /* without account.json the account is incomplete: absent */
    assert_int_equal(unlink(p), 0);
    key = json = NULL;
    assert_int_equal(store_fs_account_read(sd, "letsencrypt", &key, &json), -ENOENT);
    assert_null(key);
    free(p);
    free(dir);
}

static void test_write_err_names_path_and_step(void **state)
{
    const char *sd = *state;
    char *err = NULL;

    /* accounts is a file: mkdir of accounts/CA fails */
    char *acc = path_in(sd, "accounts");
    touch(acc, 0600);
    int rc = store_fs_account_write(sd, "le", "K", "{}", &err);
    assert_int_equal(rc, -ENOTDIR);
    assert_non_null(err);
    char *want = xasprintf("%s/accounts/le: mkdir: %s", sd, strerror(ENOTDIR));
    assert_string_equal(err, want);
    free(want);
    free(err);
    free(acc);
}

/* ---- jobs ---------------------------------------------------------------- */

struct job_arg {
    int ran;
    int done_calls;
    int status;
    pthread_t worker;
};

static int job_fn(void *arg)
{
    struct job_arg *j = arg;

    j->ran++;
    j->worker = pthread_self();
    return 42;
}

static void job_done(int status, void *arg)
{
    struct job_arg *j = arg;

    j->done_calls++;
    j->status = status;
}

static void test_job_runs_off_loop_and_calls_back_once(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct job_arg j = {0};

    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(store_job_start(&loop, job_fn, &j, job_done), 0);
    assert_int_equal(j.done_calls, 0); /* never from inside _start */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(j.ran, 1);
    assert_int_equal(j.done_calls, 1);
    assert_int_equal(j.status, 42);
    assert_false(pthread_equal(j.worker, pthread_self()));
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- the interface, on the file backend ---------------------------------- */

/* A store opened on the test's directory with its own loop. */
struct ifx {
    uv_loop_t loop;
    struct store *s;
    char *sd;
};

static void ifx_open(struct ifx *x, const char *dir)
{
    assert_int_equal(uv_loop_init(&x->loop), 0);
    x->sd = path_in(dir, "state");
    assert_int_equal(store_fs_open(&x->loop, x->sd, 0, &x->s), 0);
}

static void ifx_close(struct ifx *x)
{
    assert_int_equal(uv_run(&x->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&x->loop), 0);
    store_close(x->s);
    free(x->sd);
}

/* What one write's callback saw. */
struct got {
    int calls;
    int status;
    char *error, *generation, *lineage;
    int mark_status;
    uint64_t fence;
};

static void got_cb(int status, const struct store_result *r, void *arg)
{
    struct got *g = arg;

    g->calls++;
    g->status = status;
    free(g->error);
    free(g->generation);
    free(g->lineage);
    g->error = r->error != NULL ? xstrdup(r->error) : NULL;
    g->generation = r->generation != NULL ? xstrdup(r->generation) : NULL;
    g->lineage = r->lineage != NULL ? xstrdup(r->lineage) : NULL;
    g->mark_status = r->mark_status;
    g->fence = r->fence;
}

static void got_fini(struct got *g)
{
    free(g->error);
    free(g->generation);
    free(g->lineage);
    memset(g, 0, sizeof(*g));
}

/* Runs the loop until the write started with g has called back once;
 * returns its status. The callback never runs inside _start. */
static int wait_for(struct ifx *x, struct got *g, int start_rc)
{
    assert_int_equal(start_rc, 0);
    assert_int_equal(g->calls, 0);
    assert_int_equal(uv_run(&x->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(g->calls, 1);
    return g->status;
}

static struct store_cert_put put_of(const char *name, int i, char *buf, size_t n)
{
    snprintf(buf, n, "CERT-%d\n", i);
    struct store_cert_put p = {.name = name,
                               .cert_pem = buf,
                               .chain_pem = "CHAIN\n",
                               .fullchain_pem = buf,
                               .key_pem = "KEY\n",
                               .meta_json = "{\"m\":1}",
                               .keep = 2};
    return p;
}

static void test_iface_cert_put_read_list_prune(void **state)
{
    struct ifx x;
    struct got g = {0};
    char buf[32];
    struct store_cert c = {0};
    char **gens = NULL;
    size_t n = 0;

    ifx_open(&x, *state);
    assert_int_equal(store_cert_read_current(x.s, "www", true, &c), -ENOENT);
    assert_int_equal(store_cert_list(x.s, "www", &gens, &n), 0);
    assert_int_equal(n, 0);
    for (int i = 0; i < 4; i++) {
        struct store_cert_put p = put_of("www", i, buf, sizeof(buf));
        p.keep = 10;
        assert_int_equal(wait_for(&x, &g, store_cert_put_start(x.s, &p, got_cb, &g)), 0);
        assert_non_null(g.generation);
        char *want = xasprintf("%s/certs/www/%s", x.sd, g.generation);
        assert_string_equal(g.lineage, want); /* hooks' RENEWED_LINEAGE */
        free(want);
        if (i < 3)
            got_fini(&g);
    }
    assert_int_equal(store_cert_read_current(x.s, "www", true, &c), 0);
    assert_string_equal(c.generation, g.generation);
    assert_string_equal(c.cert_pem, "CERT-3\n");
    assert_string_equal(c.key_pem, "KEY\n");
    assert_string_equal(c.meta_json, "{\"m\":1}");
    store_cert_fini(&c);
    assert_int_equal(store_cert_list(x.s, "www", &gens, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(gens[3], g.generation); /* oldest first */
    store_list_free(gens, n);
    got_fini(&g);

    assert_int_equal(wait_for(&x, &g, store_cert_prune_start(x.s, "www", 1, got_cb, &g)), 0);
    assert_int_equal(store_cert_list(x.s, "www", &gens, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_cert_read_current(x.s, "www", false, &c), 0);
    assert_string_equal(c.generation, gens[0]);
    assert_null(c.key_pem);
    store_cert_fini(&c);
    store_list_free(gens, n);
    got_fini(&g);

    /* a failure names the record and the step */
    struct store_cert_put bad = put_of("../x", 0, buf, sizeof(buf));
    assert_int_equal(wait_for(&x, &g, store_cert_put_start(x.s, &bad, got_cb, &g)), -EINVAL);
    assert_non_null(g.error);
    got_fini(&g);
    ifx_close(&x);
}

static void test_iface_ari_beside_its_generation(void **state)
{
    struct ifx x;
    struct got g = {0};
    char buf[32];
    char *json = NULL;

    ifx_open(&x, *state);
    struct store_cert_put p = put_of("www", 1, buf, sizeof(buf));
    assert_int_equal(wait_for(&x, &g, store_cert_put_start(x.s, &p, got_cb, &g)), 0);
    char *gen = xstrdup(g.generation);
    got_fini(&g);
    assert_int_equal(store_note_read(x.s, "www", gen, "ari", &json), -ENOENT);
    assert_int_equal(
        wait_for(&x, &g, store_note_put_start(x.s, "www", gen, "ari", "{\"at\":5}", got_cb, &g)),
        0);
    got_fini(&g);
    assert_int_equal(store_note_read(x.s, "www", gen, "ari", &json), 0);
    assert_string_equal(json, "{\"at\":5}");
    free(json);
    /* a generation that is gone keeps no ARI state */
    assert_int_equal(wait_for(&x, &g,
                              store_note_put_start(x.s, "www", "20000101T000000Z-0000", "ari", "{}",
                                                   got_cb, &g)),
                     -ENOENT);
    got_fini(&g);
    free(gen);
    ifx_close(&x);
}

static void test_iface_order_mark_and_settle(void **state)
{
    struct ifx x;
    struct got g = {0};
    char *json = NULL;
    char buf[32];

    ifx_open(&x, *state);
    assert_int_equal(store_order_read(x.s, "www", &json), -ENOENT);
    assert_int_equal(wait_for(&x, &g, store_order_put_start(x.s, "www", "{\"o\":1}", got_cb, &g)),
                     0);
    got_fini(&g);
    assert_int_equal(store_order_read(x.s, "www", &json), 0);
    assert_string_equal(json, "{\"o\":1}");
    free(json);
    char *where = store_where(x.s, STORE_WHERE_ORDER, "www");
    assert_int_equal(mode_of(where), 0600); /* it holds the pending key */
    free(where);

    assert_false(store_redeploy_marked(x.s, "www"));
    assert_int_equal(wait_for(&x, &g, store_redeploy_mark_start(x.s, "www", got_cb, &g)), 0);
    got_fini(&g);
    assert_true(store_redeploy_marked(x.s, "www"));

    /* settle forgets both; settling again is fine */
    assert_int_equal(wait_for(&x, &g, store_order_settle_start(x.s, "www", got_cb, &g)), 0);
    got_fini(&g);
    assert_int_equal(store_order_read(x.s, "www", &json), -ENOENT);
    assert_false(store_redeploy_marked(x.s, "www"));
    assert_int_equal(wait_for(&x, &g, store_order_settle_start(x.s, "www", got_cb, &g)), 0);
    got_fini(&g);

    /* a put with mark_redeploy leaves the mark with the new generation */
    struct store_cert_put p = put_of("imp", 1, buf, sizeof(buf));
    p.mark_redeploy = true;
    assert_int_equal(wait_for(&x, &g, store_cert_put_start(x.s, &p, got_cb, &g)), 0);
    assert_int_equal(g.mark_status, 0);
    assert_true(store_redeploy_marked(x.s, "imp"));
    got_fini(&g);
    ifx_close(&x);
}

static void test_iface_account_round_trip(void **state)
{
    struct ifx x;
    struct got g = {0};
    char *key = NULL, *json = NULL;

    ifx_open(&x, *state);
    assert_int_equal(store_account_read(x.s, "le", &key, &json), -ENOENT);
    assert_int_equal(
        wait_for(&x, &g, store_account_put_start(x.s, "le", "K\n", "{\"url\":\"u\"}", got_cb, &g)),
        0);
    got_fini(&g);
    assert_int_equal(store_account_read(x.s, "le", &key, &json), 0);
    assert_string_equal(key, "K\n");
    assert_string_equal(json, "{\"url\":\"u\"}");
    free(key);
    free(json);
    char *where = store_where(x.s, STORE_WHERE_ACCOUNT, "le");
    char *want = xasprintf("%s/accounts/le", x.sd);
    assert_string_equal(where, want);
    free(want);
    free(where);
    ifx_close(&x);
}

static void test_iface_account_rollover_and_retire(void **state)
{
    struct ifx x;
    struct got g = {0};
    char *key = NULL, *json = NULL;

    ifx_open(&x, *state);
    assert_int_equal(
        wait_for(&x, &g,
                 store_account_put_start(x.s, "le", "OLD\n", "{\"url\":\"u\"}", got_cb, &g)),
        0);
    got_fini(&g);
    assert_int_equal(store_account_next_read(x.s, "le", &key), -ENOENT);
    assert_int_equal(wait_for(&x, &g, store_account_next_put_start(x.s, "le", "NEW\n", got_cb, &g)),
                     0);
    got_fini(&g);
    /* a crash here: the account still has the old key, the next one waits */
    assert_int_equal(store_account_next_read(x.s, "le", &key), 0);
    assert_string_equal(key, "NEW\n");
    free(key);
    assert_int_equal(store_account_read(x.s, "le", &key, &json), 0);
    assert_string_equal(key, "OLD\n");
    free(key);
    free(json);
    assert_int_equal(
        wait_for(&x, &g,
                 store_account_rollover_start(x.s, "le", "NEW\n", "{\"url\":\"u\"}", got_cb, &g)),
        0);
    got_fini(&g);
    assert_int_equal(store_account_read(x.s, "le", &key, &json), 0);
    assert_string_equal(key, "NEW\n");
    free(key);
    free(json);
    assert_int_equal(store_account_next_read(x.s, "le", &key), -ENOENT);
    /* retired: absent, but kept */
    assert_int_equal(wait_for(&x, &g, store_account_retire_start(x.s, "le", 1234, got_cb, &g)), 0);
    got_fini(&g);
    assert_int_equal(store_account_read(x.s, "le", &key, &json), -ENOENT);
    char *where = store_where(x.s, STORE_WHERE_ACCOUNT, "le");
    char *kept = path_in(where, "account.key.deactivated-1234");
    assert_true(exists(kept));
    free(kept);
    free(where);
    /* nothing to retire */
    assert_int_equal(wait_for(&x, &g, store_account_retire_start(x.s, "le", 1, got_cb, &g)),
                     -ENOENT);
    assert_non_null(g.error);
    got_fini(&g);
    ifx_close(&x);
}

static void test_iface_history_in_order_and_bounded(void **state)
{
    struct ifx x;
    struct got g = {0};
    char *text = NULL;
    size_t len = 0;

    ifx_open(&x, *state);
    assert_int_equal(store_history_read(x.s, "www", &text, &len), -ENOENT);
    struct store_history_line v[] = {{"www", "a\n"}, {"api", "b\n"}, {"www", "c\n"}};
    assert_int_equal(wait_for(&x, &g, store_history_append_start(x.s, v, 3, got_cb, &g)), 0);
    got_fini(&g);
    assert_int_equal(store_history_read(x.s, "www", &text, &len), 0);
    assert_string_equal(text, "a\nc\n");
    assert_int_equal(len, 4);
    free(text);
    /* past 64 KiB a history keeps its newest whole lines within 32 KiB */
    char line[1001];
    memset(line, 'x', 999);
    line[999] = '\n';
    line[1000] = '\0';
    struct store_history_line big[70];
    for (size_t i = 0; i < 70; i++)
        big[i] = (struct store_history_line){"www", line};
    assert_int_equal(wait_for(&x, &g, store_history_append_start(x.s, big, 70, got_cb, &g)), 0);
    got_fini(&g);
    assert_int_equal(store_history_read(x.s, "www", &text, &len), 0);
    assert_int_equal(len, 36 * 1000); /* cut to its newest 32 lines once, then 4 more */
    assert_true(len % 1000 == 0);     /* whole lines only */
    free(text);
    ifx_close(&x);
}

static bool known_www(const char *name, void *arg)
{
    (void)arg;
    return strcmp(name, "www") == 0;
}

static void test_iface_alerts(void **state)
{
    struct ifx x;
    struct got g = {0};
    int64_t t = 0;
    const enum store_alert EXP = STORE_ALERT_EXPIRING, PERSIST = STORE_ALERT_PERSIST_EXPIRING;

    ifx_open(&x, *state);
    assert_int_equal(store_alert_read(x.s, "www", EXP, &t), -ENOENT);
    assert_int_equal(
        wait_for(&x, &g, store_alert_put_start(x.s, "www", EXP, 1700000000, got_cb, &g)), 0);
    got_fini(&g);
    assert_int_equal(
        wait_for(&x, &g, store_alert_put_start(x.s, "old", EXP, 1600000000, got_cb, &g)), 0);
    got_fini(&g);
    assert_int_equal(
        wait_for(&x, &g, store_alert_put_start(x.s, "old", PERSIST, 1600000100, got_cb, &g)), 0);
    got_fini(&g);
    assert_int_equal(store_alert_read(x.s, "www", EXP, &t), 0);
    assert_int_equal(t, 1700000000);
    /* each kind is a record of its own */
    assert_int_equal(store_alert_read(x.s, "www", PERSIST, &t), -ENOENT);
    assert_int_equal(
        wait_for(&x, &g, store_alert_put_start(x.s, "www", PERSIST, 1700000500, got_cb, &g)), 0);
    got_fini(&g);
    assert_int_equal(store_alert_read(x.s, "www", PERSIST, &t), 0);
    assert_int_equal(t, 1700000500);
    assert_int_equal(store_alert_read(x.s, "www", EXP, &t), 0);
    assert_int_equal(t, 1700000000);
    /* the alerts (both kinds) of a certificate no longer configured go */
    assert_int_equal(store_alerts_sweep(x.s, known_www, NULL), 2);
    assert_int_equal(store_alert_read(x.s, "old", EXP, &t), -ENOENT);
    assert_int_equal(store_alert_read(x.s, "old", PERSIST, &t), -ENOENT);
    assert_int_equal(store_alert_read(x.s, "www", PERSIST, &t), 0);
    /* t <= 0 forgets that kind only */
    assert_int_equal(wait_for(&x, &g, store_alert_put_start(x.s, "www", EXP, 0, got_cb, &g)), 0);
    got_fini(&g);
    assert_int_equal(store_alert_read(x.s, "www", EXP, &t), -ENOENT);
    assert_int_equal(store_alert_read(x.s, "www", PERSIST, &t), 0);
    assert_int_equal(t, 1700000500);
    /* a damaged record is not a time */
    char *where = store_where(x.s, STORE_WHERE_ALERTS, "bad");
    assert_int_equal(store_mkdirs(x.sd, 0700), 0);
    assert_int_equal(store_write_atomic(where, "soon", 4, 0600, (uid_t)-1, (gid_t)-1, NULL), 0);
    free(where);
    assert_int_equal(store_alert_read(x.s, "bad", EXP, &t), ERR_PARSE);
    ifx_close(&x);
}

/* STATE/alerts/NAME.expiring as written before alerts had kinds (the
 * time and a newline) still reads as the "expiring" alert; the
 * "persist_expiring" alert is NAME.persist_expiring beside it, and the
 * sweep knows both names (a certificate named like a kind included). */
static void test_fs_alert_files_keep_their_format(void **state)
{
    struct ifx x;
    struct got g = {0};
    int64_t t = 0;

    ifx_open(&x, *state);
    char *dir = xasprintf("%s/alerts", x.sd);
    char *old = xasprintf("%s/www.expiring", dir);
    assert_int_equal(store_mkdirs(dir, 0700), 0);
    assert_int_equal(store_write_atomic(old, "1700000000\n", 11, 0600, (uid_t)-1, (gid_t)-1, NULL),
                     0);
    assert_int_equal(store_alert_read(x.s, "www", STORE_ALERT_EXPIRING, &t), 0);
    assert_int_equal(t, 1700000000);
    assert_int_equal(wait_for(&x, &g,
                              store_alert_put_start(x.s, "www", STORE_ALERT_PERSIST_EXPIRING,
                                                    1700000500, got_cb, &g)),
                     0);
    got_fini(&g);
    char *text = NULL;
    char *persist = xasprintf("%s/www.persist_expiring", dir);
    assert_int_equal(store_read_file(persist, &text, NULL), 0);
    assert_string_equal(text, "1700000500\n");
    free(text);
    struct stat st;
    assert_int_equal(stat(persist, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* "x.persist_expiring" is a certificate too: its own alerts, not www's */
    assert_int_equal(wait_for(&x, &g,
                              store_alert_put_start(x.s, "x.persist_expiring", STORE_ALERT_EXPIRING,
                                                    1700000900, got_cb, &g)),
                     0);
    got_fini(&g);
    assert_int_equal(store_alerts_sweep(x.s, known_www, NULL), 1);
    assert_int_equal(store_alert_read(x.s, "x.persist_expiring", STORE_ALERT_EXPIRING, &t),
                     -ENOENT);
    assert_int_equal(store_alert_read(x.s, "www", STORE_ALERT_EXPIRING, &t), 0);
    assert_int_equal(store_alert_read(x.s, "www", STORE_ALERT_PERSIST_EXPIRING, &t), 0);
    assert_int_equal(t, 1700000500);
    free(persist);
    free(old);
    free(dir);
    ifx_close(&x);
}

struct seen {
    int n;
    char ids[4][64];
};

static const char *take_all_but_junk(const char *id, const char *text, void *arg)
{
    struct seen *sn = arg;

    if (strcmp(text, "junk") == 0)
        return "not a record";
    snprintf(sn->ids[sn->n++ % 4], 64, "%s", id);
    return NULL;
}

static void test_iface_outbox(void **state)
{
    struct ifx x;
    struct got g = {0};
    struct seen sn = {0};

    ifx_open(&x, *state);
    assert_int_equal(store_outbox_load(x.s, take_all_but_junk, &sn), 0);
    assert_int_equal(wait_for(&x, &g, store_outbox_put_start(x.s, "aa", "one", got_cb, &g)), 0);
    got_fini(&g);
    assert_int_equal(wait_for(&x, &g, store_outbox_put_start(x.s, "bb", "two", got_cb, &g)), 0);
    got_fini(&g);
    assert_int_equal(wait_for(&x, &g, store_outbox_put_start(x.s, "cc", "junk", got_cb, &g)), 0);
    got_fini(&g);
    assert_int_equal(wait_for(&x, &g, store_outbox_remove_start(x.s, "aa", got_cb, &g)), 0);
    got_fini(&g);
    assert_int_equal(wait_for(&x, &g, store_outbox_bury_start(x.s, "bb", "two+", got_cb, &g)), 0);
    got_fini(&g);
    char *dead = store_where(x.s, STORE_WHERE_OUTBOX_DEAD, NULL);
    char *p = path_in(dead, "bb.json");
    char *text = slurp(p);
    assert_string_equal(text, "two+");
    assert_int_equal(mode_of(p), 0600);
    free(text);
    free(p);
    /* a restart finds none of the removed or buried, and buries the junk */
    assert_int_equal(store_outbox_load(x.s, take_all_but_junk, &sn), 0);
    assert_int_equal(sn.n, 0);
    p = path_in(dead, "cc.json");
    assert_true(exists(p));
    free(p);
    free(dead);
    ifx_close(&x);
}

static void test_iface_leases(void **state)
{
    struct ifx x;
    struct got g = {0}, g2 = {0};

    ifx_open(&x, *state);
    assert_int_equal(wait_for(&x, &g, store_lease_take_start(x.s, "www", got_cb, &g)), 0);
    uint64_t fence = g.fence;
    assert_true(fence > 0);
    /* held: a second take fails, renew with the token works, a stale one does not */
    assert_int_equal(wait_for(&x, &g2, store_lease_take_start(x.s, "www", got_cb, &g2)),
                     ERR_LOCKED);
    got_fini(&g2);
    assert_int_equal(wait_for(&x, &g2, store_lease_renew_start(x.s, "www", fence, got_cb, &g2)), 0);
    got_fini(&g2);
    assert_int_equal(wait_for(&x, &g2, store_lease_renew_start(x.s, "www", fence + 7, got_cb, &g2)),
                     ERR_LOCKED);
    got_fini(&g2);
    store_lease_release(x.s, "www", fence + 7); /* stale: ignored */
    assert_int_equal(wait_for(&x, &g2, store_lease_take_start(x.s, "www", got_cb, &g2)),
                     ERR_LOCKED);
    got_fini(&g2);
    store_lease_release(x.s, "www", fence);
    /* free again; the new token is larger (fencing) */
    assert_int_equal(wait_for(&x, &g2, store_lease_take_start(x.s, "www", got_cb, &g2)), 0);
    assert_true(g2.fence > fence);
    got_fini(&g2);
    got_fini(&g);
    ifx_close(&x);
}

static void test_iface_shared_open_creates_nothing_and_writes_need_a_loop(void **state)
{
    char *sd = path_in(*state, "absent");
    struct store *s = NULL;
    struct got g = {0};
    struct store_cert c = {0};

    assert_int_equal(store_fs_open(NULL, sd, STORE_FS_SHARED, &s), 0);
    assert_string_equal(store_type(s), "files");
    assert_false(exists(sd));
    assert_int_equal(store_cert_read_current(s, "www", false, &c), -ENOENT);
    assert_int_equal(store_order_put_start(s, "www", "{}", got_cb, &g), -EINVAL);
    assert_int_equal(g.calls, 0); /* a synchronous failure never calls back */
    store_close(s);
    free(sd);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_write_atomic_sets_final_mode_whatever_the_umask),
        T(test_write_atomic_key_never_wider_and_nothing_left_on_rename_failure),
        T(test_write_atomic_missing_directory_reports_open),
        T(test_write_atomic_owner_and_group),
        T(test_account_chown),
        T(test_read_file_cap_and_sizes),
        T(test_write_atomic_enospc_keeps_old_file),
        T(test_fsset_one_per_file_system),
        T(test_mkdirs_nested_and_not_a_directory),
        T(test_name_validation),
        T(test_open_creates_private_dir_and_writes_pid),
        T(test_open_refuses_second_open_in_same_process),
        T(test_open_refuses_other_process),
        T(test_open_refuses_world_writable_dir),
        T(test_generation_swap_and_read_current),
        T(test_keep_prunes_old_generations),
        T(test_keep_never_removes_current),
        T(test_read_current_is_one_generation_during_swaps),
        T(test_cert_write_rejects_bad_name),
        T(test_sweep_removes_temps_and_incomplete_generations),
        T(test_order_write_read_remove),
        T(test_order_read_caps_size),
        T(test_account_round_trip),
        T(test_write_err_names_path_and_step),
        T(test_job_runs_off_loop_and_calls_back_once),
        T(test_iface_cert_put_read_list_prune),
        T(test_iface_ari_beside_its_generation),
        T(test_iface_order_mark_and_settle),
        T(test_iface_account_round_trip),
        T(test_iface_account_rollover_and_retire),
        T(test_iface_alerts),
        T(test_fs_alert_files_keep_their_format),
        T(test_iface_history_in_order_and_bounded),
        T(test_iface_outbox),
        T(test_iface_leases),
        T(test_iface_shared_open_creates_nothing_and_writes_need_a_loop),
    };
    log_set_level(LOG_LVL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
