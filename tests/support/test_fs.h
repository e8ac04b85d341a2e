/* File-system helpers for tests: a test's temporary tree, made and removed. */
#ifndef CERTLOOP_TESTS_TEST_FS_H
#define CERTLOOP_TESTS_TEST_FS_H

/* rm -rf path (no symlink is followed); errors are ignored. */
void test_rm_rf(const char *path);
/* cmocka setup and teardown: *state becomes a new empty directory under
 * /tmp (an owned path), removed with everything in it after the test. */
int test_dir_setup(void **state);
int test_dir_teardown(void **state);

#endif
