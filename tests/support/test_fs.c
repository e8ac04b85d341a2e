/* See test_fs.h. */
#include "test_fs.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void test_rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int test_dir_setup(void **state)
{
    char tmpl[] = "/tmp/certloop-test.XXXXXX";
    char *d = mkdtemp(tmpl);

    if (d == NULL)
        return -1; /* cmocka fails the test */
    *state = strdup(d);
    return *state != NULL ? 0 : -1;
}

int test_dir_teardown(void **state)
{
    test_rm_rf(*state);
    free(*state);
    return 0;
}
