/* Internals of the store shared by its .c files and its unit tests only. */
#ifndef CERTLOOP_STORE_STORE_INTERNAL_H
#define CERTLOOP_STORE_STORE_INTERNAL_H

#include <stddef.h>

/* Writes all of data to fd (short writes and EINTR retried). 0 or -errno. */
int store_write_all(int fd, const void *data, size_t len);

/* Removes the directory entry `name` under parent (a directory fd) and, when it is a
 * directory, everything in it (at most a few levels deep: generations are
 * flat). 0 or -errno. */
int store_remove_tree_at(int parent, const char *name);

/* Test hook: called by store_commit_file (so store_write_atomic too) after the temp file is
 * complete (written, synced, closed) and before the rename, with the temp path. Lets a unit test
 * stat the temp file. NULL removes it. Not thread-safe: tests only. */
typedef void (*store_before_rename_fn)(const char *tmp_path, void *arg);
void store_test_set_before_rename(store_before_rename_fn fn, void *arg);

#endif
