/* Unit tests of store/lineage.c: a generation written out for hooks by a
 * backend that keeps none on disk (modes, the same generation written again
 * swapped whole, older ones removed, the start-up clear). */
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

#include "store/store.h"
#include "store/store_internal.h"
#include "test_fs.h"
#include "util/xalloc.h"

static char *slurp(const char *dir, const char *file)
{
    char *path = xasprintf("%s/%s", dir, file);
    char *s = NULL;
    size_t len;

    assert_int_equal(store_read_file(path, &s, &len), 0);
    free(path);
    return s;
}

static mode_t mode_of(const char *dir, const char *file)
{
    char *path = file != NULL ? xasprintf("%s/%s", dir, file) : xstrdup(dir);
    struct stat st;

    assert_int_equal(lstat(path, &st), 0);
    free(path);
    return st.st_mode & 07777;
}

/* The names in dir, sorted, joined with ' ' (owned). */
static char *entries(const char *dir)
{
    struct dirent **v;
    int n = scandir(dir, &v, NULL, alphasort);
    char *s = xstrdup("");

    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        if (strcmp(v[i]->d_name, ".") != 0 && strcmp(v[i]->d_name, "..") != 0) {
            char *t = xasprintf("%s%s%s", s, s[0] != '\0' ? " " : "", v[i]->d_name);
            free(s);
            s = t;
        }
        free(v[i]);
    }
    free(v);
    return s;
}

static struct store_cert gen(const char *g, const char *tag)
{
    struct store_cert c = {
        .generation = xstrdup(g),
        .cert_pem = xasprintf("cert %s\n", tag),
        .chain_pem = xasprintf("chain %s\n", tag),
        .fullchain_pem = xasprintf("cert %s\nchain %s\n", tag, tag),
        .key_pem = xasprintf("key %s\n", tag),
    };
    return c;
}

static void test_lineage_private_then_replaced(void **state)
{
    const char *base = *state;
    char *root = xasprintf("%s/lineage", base);
    struct store_cert a = gen("20261207T140000Z-aaaa", "a");
    struct store_cert a2 = gen("20261207T140000Z-aaaa", "a2");
    struct store_cert b = gen("20261207T150000Z-bbbb", "b");
    char *dir = NULL, *err = NULL, *s;

    umask(022);
    assert_int_equal(store_lineage_write(root, "www", &a, &dir, &err), 0);
    assert_null(err);
    char *want = xasprintf("%s/www/%s", root, a.generation);
    assert_string_equal(dir, want);
    assert_int_equal(mode_of(root, NULL), 0700);
    assert_int_equal(mode_of(root, "www"), 0700);
    assert_int_equal(mode_of(dir, NULL), 0700);
    assert_int_equal(mode_of(dir, "key.pem"), 0600);
    assert_int_equal(mode_of(dir, "fullchain.pem"), 0644);
    s = slurp(dir, "privkey.pem"); /* certbot's name, through the link */
    assert_string_equal(s, "key a\n");
    free(s);
    s = entries(dir);
    assert_string_equal(s, "cert.pem chain.pem fullchain.pem key.pem privkey.pem");
    free(s);

    /* the same generation again: swapped whole, nothing else left */
    free(dir);
    dir = NULL;
    assert_int_equal(store_lineage_write(root, "www", &a2, &dir, &err), 0);
    assert_string_equal(dir, want);
    s = slurp(dir, "fullchain.pem");
    assert_string_equal(s, "cert a2\nchain a2\n");
    free(s);
    char *www = xasprintf("%s/www", root);
    s = entries(www);
    assert_string_equal(s, a.generation);
    free(s);

    /* a newer one: the older goes with its key */
    free(dir);
    dir = NULL;
    assert_int_equal(store_lineage_write(root, "www", &b, &dir, &err), 0);
    s = entries(www);
    assert_string_equal(s, b.generation);
    free(s);

    /* a directory someone opened up is made private again */
    assert_int_equal(chmod(www, 0755), 0);
    free(dir);
    dir = NULL;
    assert_int_equal(store_lineage_write(root, "www", &b, &dir, &err), 0);
    assert_int_equal(mode_of(www, NULL), 0700);

    /* the start-up clear */
    free(dir);
    dir = NULL;
    assert_int_equal(store_lineage_write(root, "api", &a, &dir, &err), 0);
    assert_int_equal(store_lineage_clear(root), 2);
    s = entries(root);
    assert_string_equal(s, "");
    free(s);
    assert_int_equal(store_lineage_clear(root), 0);

    /* a name the store refuses */
    assert_int_equal(store_lineage_write(root, "../x", &a, &dir, &err), -EINVAL);
    assert_non_null(err);
    free(err);
    free(dir);
    free(www);
    free(want);
    free(root);
    store_cert_fini(&a);
    store_cert_fini(&a2);
    store_cert_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lineage_private_then_replaced, test_dir_setup,
                                        test_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
