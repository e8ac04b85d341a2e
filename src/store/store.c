/* The state directory's plumbing: crash-safe atomic file writes, the lock
 * that keeps a second daemon out, and the threadpool job wrapper that keeps
 * fsync off the loop. What lives in the directory (accounts, generations,
 * orders, the start-up sweep) is in store_state.c. */
#include "store/store.h"
#include "store/store_internal.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ------------------------------------------------------- */

void store_rand_hex(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[32];
    size_t need = (n + 1) / 2;

    if (need > sizeof(raw))
        need = sizeof(raw);
    ssize_t got = getrandom(raw, need, 0);
    if (got != (ssize_t)need) {
        /* getrandom cannot really fail for 16 bytes once the pool is up; a
         * name only has to be unlikely to collide (O_EXCL catches the rest) */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        unsigned long long x = (unsigned long long)ts.tv_nsec ^
                               ((unsigned long long)getpid() << 20) ^
                               (unsigned long long)(uintptr_t)out;
        for (size_t i = 0; i < need; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            raw[i] = (unsigned char)(x >> 56);
        }
    }
    for (size_t i = 0; i < n && i / 2 < need; i++)
        out[i] = hex[(i % 2 == 0) ? (raw[i / 2] >> 4) : (raw[i / 2] & 0xf)];
    out[n < need * 2 ? n : need * 2] = '\0';
}

bool store_name_ok(const char *s)
{
    size_t n = 0;

    if (s == NULL || s[0] == '\0' || s[0] == '.')
        return false;
    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c == '/' || c < 0x20 || c == 0x7f)
            return false;
    }
    return n <= 200;
}

int store_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int store_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return -errno;
    /* some filesystems cannot sync a directory and say EINVAL: nothing
     * more can be done there, the rename itself has happened */
    if (fsync(fd) < 0 && errno != EINVAL)
        rc = -errno;
    close(fd);
    return rc;
}

int store_mkdirs(const char *path, mode_t mode)
{
    char *p = xstrdup(path);
    size_t len = strlen(p);
    int rc = 0;
    struct stat st;

    while (len > 1 && p[len - 1] == '/')
        p[--len] = '\0';
    for (char *s = p + 1;; s++) {
        bool end = (*s == '\0');
        if (*s != '/' && !end)
            continue;
        *s = '\0';
        if (mkdir(p, mode) < 0) {
            if (errno != EEXIST) {
                rc = -errno;
                goto out;
            }
            if (stat(p, &st) < 0) {
                rc = -errno;
                goto out;
            }
            if (!S_ISDIR(st.st_mode)) {
                rc = -ENOTDIR;
                goto out;
            }
        }
        if (end)
            break;
        *s = '/';
    }
out:
    free(p);
    return rc;
}

int store_read_file(const char *path, char **out, size_t *len_out)
{
    struct buf b = BUF_INIT(STORE_FILE_MAX);
    int rc = buf_read_file(&b, path);

    if (rc < 0) {
        buf_fini(&b);
        return rc;
    }
    *out = buf_steal(&b, len_out);
    return 0;
}

/* depth bounds the recursion: the trees we remove (generations, stray temp
 * directories) are flat, so anything deeper is not ours to delete. */
static int remove_tree(int parent, const char *name, int depth)
{
    if (unlinkat(parent, name, 0) == 0)
        return 0;
    if (errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return -errno;
    if (depth <= 0)
        return -ENOTEMPTY;

    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int r = remove_tree(dirfd(d), e->d_name, depth - 1);
        if (r < 0 && rc == 0)
            rc = r;
    }
    closedir(d);
    if (rc == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = -errno;
    return rc;
}

int store_remove_tree_at(int parent, const char *name)
{
    return remove_tree(parent, name, 4);
}

/* ---- atomic write -------------------------------------------------------- */

static store_before_rename_fn before_rename_hook;
static void *before_rename_arg;

void store_test_set_before_rename(store_before_rename_fn fn, void *arg)
{
    before_rename_hook = fn;
    before_rename_arg = arg;
}

/* Splits path into an owned directory part ("." when there is none) and a
 * borrowed pointer to the last component. */
static char *split_path(const char *path, const char **base)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL) {
        *base = path;
        return xstrdup(".");
    }
    *base = slash + 1;
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

/* The temp file is created with the final mode (O_EXCL, so it is ours and
 * new), which the umask can only narrow: a key is never readable by anyone
 * else, not even for the moment before a chmod. fchown comes before fchmod
 * because chown clears set-id bits, and both come before the data so the
 * content only ever exists under its final owner and mode. fsync before
 * rename so the name never points at a file whose blocks are not on disk
 * (ext4 data=writeback, XFS), fsync of the directory after so the rename
 * itself survives a power cut. */
int store_stage_file(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
                     gid_t gid, char **tmp_out, const char **failed_step)
{
    const char *base;
    char *dir = split_path(path, &base);
    char *tmp = NULL;
    const char *step = "open";
    bool tmp_exists = false;
    int fd = -1;
    int rc;

    *tmp_out = NULL;
    mode &= 0777;
    if (base[0] == '\0') {
        rc = -EISDIR;
        goto out;
    }
    for (int tries = 0; tries < 16; tries++) {
        char rnd[9];
        store_rand_hex(rnd, 8);
        free(tmp);
        /* keep the temp name under NAME_MAX even for a long final name */
        tmp = xasprintf("%s/.tmp-%.200s-%s", dir, base, rnd);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    tmp_exists = true;
    if (uid != (uid_t)-1 || gid != (gid_t)-1) {
        step = "chown";
        if (fchown(fd, uid, gid) < 0) {
            rc = -errno;
            goto out;
        }
    }
    step = "chmod";
    if (fchmod(fd, mode) < 0) {
        rc = -errno;
        goto out;
    }
    step = "write";
    rc = store_write_all(fd, data, len);
    if (rc < 0)
        goto out;
    step = "fsync";
    if (fsync(fd) < 0) {
        rc = -errno;
        goto out;
    }
    step = "close";
    rc = close(fd);
    fd = -1;
    if (rc < 0) {
        rc = -errno;
        goto out;
    }
    *tmp_out = tmp;
    tmp = NULL;
    tmp_exists = false;
out:
    if (fd >= 0)
        close(fd);
    if (tmp_exists)
        unlink(tmp);
    if (rc < 0 && failed_step != NULL)
        *failed_step = step;
    free(tmp);
    free(dir);
    return rc;
}

int store_commit_file(const char *tmp, const char *path, const char **failed_step)
{
    const char *base;
    char *dir = split_path(path, &base);
    int rc;

    if (before_rename_hook != NULL)
        before_rename_hook(tmp, before_rename_arg);
    if (rename(tmp, path) < 0) {
        rc = -errno;
        unlink(tmp);
        if (failed_step != NULL)
            *failed_step = "rename";
        free(dir);
        return rc;
    }
    /* past this point the new file is in place; a failed directory sync is
     * still reported because durability is not guaranteed */
    rc = store_fsync_dir(dir);
    if (rc < 0 && failed_step != NULL)
        *failed_step = "fsync-dir";
    free(dir);
    return rc;
}

int store_write_atomic(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
                       gid_t gid, const char **failed_step)
{
    char *tmp = NULL;
    int rc = store_stage_file(path, data, len, mode, uid, gid, &tmp, failed_step);

    if (rc == 0)
        rc = store_commit_file(tmp, path, failed_step);
    free(tmp);
    return rc;
}

/* ---- the state directory and its lock ------------------------------------ */

struct store {
    char *dir;   /* owned */
    int lock_fd; /* holds the flock; O_CLOEXEC so hooks never inherit it */
};

static long lock_holder(int fd)
{
    char b[32];
    ssize_t n;

    do {
        n = pread(fd, b, sizeof(b) - 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -1;
    b[n] = '\0';
    char *end;
    long pid = strtol(b, &end, 10);
    if (end == b || pid <= 0)
        return -1;
    return pid;
}

int store_open(const char *state_dir, struct store **out)
{
    static const char *const subdirs[] = {"accounts", "certs", "orders"};
    char *lock_path = NULL;
    int fd = -1;
    int rc;
    struct stat st;

    rc = store_mkdirs(state_dir, 0700);
    if (rc < 0) {
        log_error(LOG_STORE, "state directory %s: mkdir: %s", state_dir, err_str(rc));
        goto out;
    }
    if (stat(state_dir, &st) < 0) {
        rc = -errno;
        log_error(LOG_STORE, "state directory %s: stat: %s", state_dir, err_str(rc));
        goto out;
    }
    /* anyone who can write here can swap a key or a `current` link */
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        rc = ERR_BAD_STATE;
        log_error(LOG_STORE,
                  "state directory %s is writable by group or others (mode %04o); "
                  "run chmod 700 on it",
                  state_dir, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (st.st_uid != geteuid())
        log_warn(LOG_STORE, "state directory %s is owned by uid %u, not by us (uid %u)", state_dir,
                 (unsigned)st.st_uid, (unsigned)geteuid());
    if (st.st_mode & (S_IRGRP | S_IROTH | S_IXGRP | S_IXOTH))
        log_warn(LOG_STORE, "state directory %s is readable by others (mode %04o); 0700 advised",
                 state_dir, (unsigned)(st.st_mode & 07777));

    lock_path = xasprintf("%s/lock", state_dir);
    fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = -errno;
        log_error(LOG_STORE, "%s: open: %s", lock_path, err_str(rc));
        goto out;
    }
    /* flock belongs to the open file description: a second open() of the
     * same file, in this process or another, conflicts */
    int r;
    do {
        r = flock(fd, LOCK_EX | LOCK_NB);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        rc = -errno;
        if (rc == -EWOULDBLOCK) {
            long pid = lock_holder(fd);
            rc = ERR_LOCKED;
            if (pid > 0)
                log_error(LOG_STORE,
                          "state directory %s is locked by pid %ld (another certloop is running)",
                          state_dir, pid);
            else
                log_error(LOG_STORE,
                          "state directory %s is locked by another process (another certloop is "
                          "running)",
                          state_dir);
        } else {
            log_error(LOG_STORE, "%s: flock: %s", lock_path, err_str(rc));
        }
        goto out;
    }
    char pidline[32];
    int n = snprintf(pidline, sizeof(pidline), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pidline, (size_t)n, 0) != n) {
        rc = errno ? -errno : -EIO;
        log_error(LOG_STORE, "%s: write pid: %s", lock_path, err_str(rc));
        goto out;
    }
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        char *sub = xasprintf("%s/%s", state_dir, subdirs[i]);
        if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
            rc = -errno;
            log_error(LOG_STORE, "%s: mkdir: %s", sub, err_str(rc));
            free(sub);
            goto out;
        }
        free(sub);
    }

    struct store *s = xcalloc(1, sizeof(*s));
    s->dir = xstrdup(state_dir);
    s->lock_fd = fd;
    fd = -1;
    *out = s;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(lock_path);
    return rc;
}

void store_close(struct store *s)
{
    if (s == NULL)
        return;
    /* still holding the lock: clearing the pid cannot race a new holder */
    if (ftruncate(s->lock_fd, 0) < 0)
        log_debug(LOG_STORE, "%s/lock: truncate: %s", s->dir, err_str(-errno));
    close(s->lock_fd);
    free(s->dir);
    free(s);
}

const char *store_dir(const struct store *s)
{
    return s->dir;
}

/* ---- off-loop jobs ------------------------------------------------------- */

struct store_job {
    uv_work_t req; /* req.data = self */
    store_work_fn fn;
    void *arg; /* kept until done */
    store_done_cb done;
    int status;
};

static void job_work(uv_work_t *req)
{
    struct store_job *j = req->data;

    j->status = j->fn(j->arg);
}

static void job_after(uv_work_t *req, int status)
{
    struct store_job *j = req->data;
    store_done_cb done = j->done;
    void *arg = j->arg;
    int rc = (status == UV_ECANCELED) ? UV_ECANCELED : j->status;

    free(j);
    done(rc, arg);
}

int store_job_start(uv_loop_t *loop, store_work_fn fn, void *arg, store_done_cb done)
{
    struct store_job *j = xcalloc(1, sizeof(*j));

    j->req.data = j;
    j->fn = fn;
    j->arg = arg;
    j->done = done;
    int rc = uv_queue_work(loop, &j->req, job_work, job_after);
    if (rc < 0)
        free(j);
    return rc;
}
