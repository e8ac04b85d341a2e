/* A generation written out as files for hooks (RENEWED_LINEAGE,
 * CERTLOOP_CERT_DIR) by a backend that keeps generations elsewhere
 * (PostgreSQL): ROOT/NAME/GENERATION/ with the file backend's names, built
 * complete in a temp directory and renamed into place, the other
 * generations of NAME removed. It does not decide when one is needed (the
 * manager does) and never logs: the blocking writer runs on the threadpool. */
#include "store/store.h"
#include "store/store_internal.h"
#include "util/err.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void set_err(char **err, const char *path, const char *step, int rc)
{
    if (err == NULL)
        return;
    free(*err);
    *err = xasprintf("%s: %s: %s", path, step, err_str(rc));
}

/* A directory of ours, 0700 whatever it was: it holds private keys. */
static int private_dir(const char *path, char **err)
{
    struct stat st;
    const char *step = NULL;
    int rc = 0;

    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
        step = "mkdir";
        rc = -errno;
    } else if (lstat(path, &st) < 0) {
        step = "stat";
        rc = -errno;
    } else if (!S_ISDIR(st.st_mode)) {
        step = "not a directory";
        rc = -ENOTDIR;
    } else if ((st.st_mode & 07777) != 0700 && chmod(path, 0700) < 0) {
        step = "chmod";
        rc = -errno;
    }
    if (rc < 0)
        set_err(err, path, step, rc);
    return rc;
}

/* Removes every entry of dir but keep (NULL: all of them). How many went,
 * or -errno; deep: each entry is a directory of generations, and they are
 * what is counted. */
static int remove_others(const char *dir, const char *keep, bool deep)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return errno == ENOENT ? 0 : -errno;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (keep != NULL && strcmp(e->d_name, keep) == 0)
            continue;
        if (deep) {
            char *sub = xasprintf("%s/%s", dir, e->d_name);
            int k = remove_others(sub, NULL, false);
            free(sub);
            n += k > 0 ? k : 0;
        }
        if (store_remove_tree_at(dirfd(d), e->d_name) == 0 && !deep)
            n++;
    }
    closedir(d);
    return n;
}

static const struct {
    const char *file;
    mode_t mode;
} lineage_files[] = {
    {"key.pem", 0600},
    {"cert.pem", 0644},
    {"chain.pem", 0644},
    {"fullchain.pem", 0644},
};

/* The files of one generation in the new directory tmp: each created with
 * its final mode (O_EXCL: ours), written and synced, then privkey.pem ->
 * key.pem (certbot's name) and the directory's sync. */
static int fill(const char *tmp, const struct store_cert *c, char **err)
{
    const char *data[] = {c->key_pem, c->cert_pem, c->chain_pem != NULL ? c->chain_pem : "",
                          c->fullchain_pem};
    int rc = 0;

    for (size_t i = 0; i < sizeof(lineage_files) / sizeof(lineage_files[0]) && rc == 0; i++) {
        char *path = xasprintf("%s/%s", tmp, lineage_files[i].file);
        const char *step = "open";
        int fd =
            open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, lineage_files[i].mode);
        if (fd < 0)
            rc = -errno;
        else
            rc = store_fd_complete(fd, lineage_files[i].mode, data[i], strlen(data[i]), &step);
        if (rc < 0)
            set_err(err, path, step, rc);
        free(path);
    }
    if (rc == 0) {
        char *path = xasprintf("%s/privkey.pem", tmp);
        if (symlink("key.pem", path) < 0) {
            rc = -errno;
            set_err(err, path, "symlink", rc);
        }
        free(path);
    }
    if (rc == 0) {
        rc = store_fsync_dir(tmp);
        if (rc < 0)
            set_err(err, tmp, "fsync-dir", rc);
    }
    return rc;
}

int store_lineage_write(const char *root, const char *name, const struct store_cert *c,
                        char **dir_out, char **err)
{
    char *name_dir = NULL, *tmp = NULL, *dir = NULL;
    char hex[9];
    int rc;

    if (!store_name_ok(name) || c->generation == NULL || !store_name_ok(c->generation) ||
        c->cert_pem == NULL || c->fullchain_pem == NULL || c->key_pem == NULL) {
        rc = -EINVAL;
        set_err(err, name != NULL ? name : "", "generation for hooks", rc);
        return rc;
    }
    rc = private_dir(root, err);
    if (rc < 0)
        return rc;
    name_dir = xasprintf("%s/%s", root, name);
    rc = private_dir(name_dir, err);
    if (rc < 0)
        goto out;
    store_rand_hex(hex, sizeof(hex) - 1);
    tmp = xasprintf("%s/.tmp-%s", name_dir, hex);
    if (mkdir(tmp, 0700) < 0) {
        rc = -errno;
        set_err(err, tmp, "mkdir", rc);
        free(tmp);
        tmp = NULL;
        goto out;
    }
    rc = fill(tmp, c, err);
    if (rc < 0)
        goto out;
    dir = xasprintf("%s/%s", name_dir, c->generation);
    /* the same generation again (a deploy-only run): swapped whole, so a
     * reader sees the old files or the new ones, never a mix; tmp then
     * holds the old ones and goes below */
    if (rename(tmp, dir) == 0) {
        free(tmp);
        tmp = NULL;
    } else if (errno != EEXIST && errno != ENOTEMPTY) {
        rc = -errno;
        set_err(err, dir, "rename", rc);
        goto out;
    } else if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) < 0) {
        rc = -errno;
        set_err(err, dir, "rename (exchange)", rc);
        goto out;
    }
    rc = store_fsync_dir(name_dir);
    if (rc < 0) {
        set_err(err, name_dir, "fsync-dir", rc);
        goto out;
    }
    /* older generations (and what an interrupted write left): their keys
     * do not stay on disk once a newer one is here */
    (void)remove_others(name_dir, c->generation, false);
    free(tmp);
    tmp = NULL; /* removed with the others */
    *dir_out = dir;
    dir = NULL;
out:
    if (tmp != NULL) {
        int fd = open(name_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            store_remove_tree_at(fd, strrchr(tmp, '/') + 1);
            close(fd);
        }
    }
    free(tmp);
    free(dir);
    free(name_dir);
    return rc;
}

int store_lineage_clear(const char *root)
{
    return remove_others(root, NULL, true);
}

/* ---- the operation on the threadpool ---- */

struct lineage_job {
    char *root, *name;
    struct store_cert c; /* owned copies; the key wiped when freed */
    char *dir, *err;     /* set by the worker */
    store_cb cb;
    void *arg;
};

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

static int lineage_work(void *arg)
{
    struct lineage_job *j = arg;

    return store_lineage_write(j->root, j->name, &j->c, &j->dir, &j->err);
}

static void lineage_done(int status, void *arg)
{
    struct lineage_job *j = arg;
    struct store_result r = {.error = j->err, .generation = j->c.generation, .lineage = j->dir};

    j->cb(status, &r, j->arg);
    free(j->root);
    free(j->name);
    free(j->dir);
    free(j->err);
    store_cert_fini(&j->c); /* wipes the key */
    free(j);
}

int store_lineage_job_start(struct store *s, const char *root, const char *name,
                            const struct store_cert *c, store_cb cb, void *arg)
{
    if (s->loop == NULL)
        return -EINVAL;
    struct lineage_job *j = xcalloc(1, sizeof(*j));
    j->root = xstrdup(root);
    j->name = xstrdup(name);
    j->c.generation = dup_or_null(c->generation);
    j->c.cert_pem = dup_or_null(c->cert_pem);
    j->c.chain_pem = dup_or_null(c->chain_pem);
    j->c.fullchain_pem = dup_or_null(c->fullchain_pem);
    j->c.key_pem = dup_or_null(c->key_pem);
    j->cb = cb;
    j->arg = arg;
    int rc = store_job_start(s->loop, lineage_work, j, lineage_done);
    if (rc < 0) {
        store_cert_fini(&j->c);
        free(j->root);
        free(j->name);
        free(j);
    }
    return rc;
}
