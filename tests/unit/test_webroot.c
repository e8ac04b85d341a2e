/* challenge/webroot.c: token files in a web server's document root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "challenge/challenge.h"

static char g_dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/certloop-webroot-XXXXXX");
    return mkdtemp(g_dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return WEXITSTATUS(system(cmd)) == 0 ? 0 : -1;
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return n;
}

/* Entries of the token directory other than . and .. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void test_webroot_put_writes_0644_file_under_strict_umask(void **state)
{
    char buf[256], sub[128];
    struct stat st;

    (void)state;
    mode_t old = umask(0077); /* the systemd unit's UMask */
    assert_int_equal(chal_webroot_put(g_dir, (uid_t)-1, (gid_t)-1, "tok_A-1", "tok_A-1.thumb"), 0);
    umask(old);
    char *p = chal_webroot_path(g_dir, "tok_A-1");
    snprintf(sub, sizeof(sub), "%s/.well-known/acme-challenge/tok_A-1", g_dir);
    assert_string_equal(p, sub);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(read_file(p, buf, sizeof(buf)), strlen("tok_A-1.thumb"));
    assert_string_equal(buf, "tok_A-1.thumb");
    /* the directories are traversable by the web server's user */
    snprintf(sub, sizeof(sub), "%s/.well-known", g_dir);
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    snprintf(sub, sizeof(sub), "%s/.well-known/acme-challenge", g_dir);
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    /* no temp file is left beside it */
    assert_int_equal(count_entries(sub), 1);
    free(p);
}

static void test_webroot_put_replaces_and_del_removes(void **state)
{
    char buf[256], sub[128];

    (void)state;
    assert_int_equal(chal_webroot_put(g_dir, (uid_t)-1, (gid_t)-1, "t", "first"), 0);
    assert_int_equal(chal_webroot_put(g_dir, (uid_t)-1, (gid_t)-1, "t", "second"), 0);
    char *p = chal_webroot_path(g_dir, "t");
    read_file(p, buf, sizeof(buf));
    assert_string_equal(buf, "second");
    chal_webroot_del(g_dir, "t");
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(errno, ENOENT);
    chal_webroot_del(g_dir, "t"); /* already gone: fine */
    snprintf(sub, sizeof(sub), "%s/.well-known/acme-challenge", g_dir);
    assert_int_equal(count_entries(sub), 0);
    free(p);
}

static void test_webroot_put_refuses_bad_tokens(void **state)
{
    char sub[128];

    (void)state;
    assert_int_equal(chal_webroot_put(g_dir, (uid_t)-1, (gid_t)-1, "../x", "k"), -EINVAL);
    assert_int_equal(chal_webroot_put(g_dir, (uid_t)-1, (gid_t)-1, "a/b", "k"), -EINVAL);
    assert_int_equal(chal_webroot_put(g_dir, (uid_t)-1, (gid_t)-1, "", "k"), -EINVAL);
    assert_int_equal(chal_webroot_put(g_dir, (uid_t)-1, (gid_t)-1, ".hidden", "k"), -EINVAL);
    assert_int_equal(chal_webroot_put(g_dir, (uid_t)-1, (gid_t)-1, "ok", ""), -EINVAL);
    /* nothing was created for them */
    snprintf(sub, sizeof(sub), "%s/.well-known", g_dir);
    assert_int_equal(access(sub, F_OK), -1);
}

static void test_webroot_put_fails_without_the_root(void **state)
{
    char missing[96];

    (void)state;
    snprintf(missing, sizeof(missing), "%s/nope", g_dir);
    assert_int_equal(chal_webroot_put(missing, (uid_t)-1, (gid_t)-1, "t", "k"), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_webroot_put_writes_0644_file_under_strict_umask, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_webroot_put_replaces_and_del_removes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webroot_put_refuses_bad_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webroot_put_fails_without_the_root, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
