/* File-system helpers for tests: removing a test's temporary tree. */
#ifndef CERTLOOP_TESTS_TEST_FS_H
#define CERTLOOP_TESTS_TEST_FS_H

/* rm -rf path (no symlink is followed); errors are ignored. */
void test_rm_rf(const char *path);

#endif
