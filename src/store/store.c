/* The store's plumbing: crash-safe atomic file writes (for the file backend
 * and for deployed files alike), the threadpool job wrapper that keeps
 * fsync off the loop, and the public operations, which only dispatch to a
 * backend's vtable (store/fs.c is the file backend). */
#include "store/store.h"
#include "store/store_internal.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/utsname.h>
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

static bool kernel_at_least(int major, int minor)
{
    struct utsname u;
    char *end = NULL;

    if (uname(&u) < 0)
        return false;
    long ma = strtol(u.release, &end, 10);
    long mi = (end != NULL && *end == '.') ? strtol(end + 1, NULL, 10) : 0;
    return ma > major || (ma == major && mi >= minor);
}

static bool syncfs_kernel;
static pthread_once_t syncfs_kernel_once = PTHREAD_ONCE_INIT;

static void syncfs_kernel_check(void)
{
    syncfs_kernel = kernel_at_least(5, 8);
}

bool store_syncfs_reports(void)
{
    pthread_once(&syncfs_kernel_once, syncfs_kernel_check); /* one uname(2) per process */
    return syncfs_kernel && getenv("CERTLOOP_NO_SYNCFS") == NULL;
}

void store_fsset_init(struct store_fsset *s)
{
    s->n = 0;
}

bool store_fsset_add(struct store_fsset *s, const char *dir)
{
    struct stat st;

    if (!store_syncfs_reports() || stat(dir, &st) < 0)
        return false;
    for (size_t i = 0; i < s->n; i++)
        if (s->dev[i] == st.st_dev)
            return true;
    if (s->n == STORE_FSSET_MAX)
        return false;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    s->fd[s->n] = fd;
    s->dev[s->n++] = st.st_dev;
    return true;
}

int store_fsset_sync(struct store_fsset *s)
{
    int rc = 0;

    for (size_t i = 0; i < s->n; i++)
        if (syncfs(s->fd[i]) < 0 && rc == 0)
            rc = -errno;
    return rc;
}

void store_fsset_close(struct store_fsset *s)
{
    for (size_t i = 0; i < s->n; i++)
        close(s->fd[i]);
    s->n = 0;
}

int store_mkdirs(const char *path, mode_t mode)
{
    struct stat st;

    /* the usual case: it is there already (one stat instead of a mkdir
     * and a stat per component, issue 16) */
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    char *p = xstrdup(path);
    size_t len = strlen(p);
    int rc = 0;

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
int store_fd_complete(int fd, mode_t mode, const void *data, size_t len, const char **step)
{
    return store_fd_fill(fd, mode, data, len, true, step);
}

int store_fd_fill(int fd, mode_t mode, const void *data, size_t len, bool sync, const char **step)
{
    int rc;

    *step = "chmod";
    if (fchmod(fd, mode) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    *step = "write";
    rc = store_write_all(fd, data, len);
    if (rc == 0 && sync) {
        *step = "fsync";
        rc = fsync(fd) < 0 ? -errno : 0;
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    *step = "close";
    return close(fd) < 0 ? -errno : 0;
}

int store_stage_file(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
                     gid_t gid, char **tmp_out, const char **failed_step)
{
    return store_stage_file_opt(path, data, len, mode, uid, gid, true, tmp_out, failed_step);
}

int store_stage_file_opt(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
                         gid_t gid, bool sync, char **tmp_out, const char **failed_step)
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
    rc = store_fd_fill(fd, mode, data, len, sync, &step);
    fd = -1;
    if (rc < 0)
        goto out;
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

int store_rename_file(const char *tmp, const char *path, const char **failed_step)
{
    if (before_rename_hook != NULL)
        before_rename_hook(tmp, before_rename_arg);
    if (rename(tmp, path) < 0) {
        int rc = -errno;
        unlink(tmp);
        if (failed_step != NULL)
            *failed_step = "rename";
        return rc;
    }
    return 0;
}

int store_commit_file(const char *tmp, const char *path, const char **failed_step)
{
    const char *base;
    char *dir = split_path(path, &base);
    int rc = store_rename_file(tmp, path, failed_step);

    if (rc < 0) {
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

/* ---- deferred callbacks -------------------------------------------------- */

struct defer {
    int status;
    struct store_result r; /* strings below are copies */
    char *error, *generation, *lineage;
    store_cb cb;
    void *arg;
};

static int defer_work(void *arg)
{
    (void)arg;
    return 0;
}

static void defer_done(int status, void *arg)
{
    struct defer *d = arg;

    (void)status; /* nothing ran: the answer was known at start */
    d->cb(d->status, &d->r, d->arg);
    free(d->error);
    free(d->generation);
    free(d->lineage);
    free(d);
}

int store_defer(struct store *s, int status, const struct store_result *r, store_cb cb, void *arg)
{
    if (s->loop == NULL)
        return -EINVAL;
    struct defer *d = xcalloc(1, sizeof(*d));
    d->status = status;
    if (r != NULL) {
        d->r = *r;
        d->error = r->error != NULL ? xstrdup(r->error) : NULL;
        d->generation = r->generation != NULL ? xstrdup(r->generation) : NULL;
        d->lineage = r->lineage != NULL ? xstrdup(r->lineage) : NULL;
    }
    d->r.error = d->error;
    d->r.generation = d->generation;
    d->r.lineage = d->lineage;
    d->cb = cb;
    d->arg = arg;
    int rc = store_job_start(s->loop, defer_work, d, defer_done);
    if (rc < 0) {
        free(d->error);
        free(d->generation);
        free(d->lineage);
        free(d);
    }
    return rc;
}

/* ---- the operations: dispatch to the backend ------------------------------ */

void store_close(struct store *s)
{
    if (s != NULL)
        s->ops->close(s);
}

const char *store_type(const struct store *s)
{
    return s->ops->type;
}

char *store_where(struct store *s, enum store_what what, const char *name)
{
    return s->ops->where(s, what, name);
}

int store_sweep(struct store *s)
{
    return s->ops->sweep(s);
}

int store_alerts_sweep(struct store *s, bool (*known)(const char *name, void *arg), void *arg)
{
    return s->ops->alerts_sweep(s, known, arg);
}

int store_outbox_load(struct store *s, store_outbox_each_fn each, void *arg)
{
    return s->ops->outbox_load(s, each, arg);
}

int store_account_read(struct store *s, const char *ca, char **key_pem, char **account_json)
{
    return s->ops->account_read(s, ca, key_pem, account_json);
}

int store_account_put_start(struct store *s, const char *ca, const char *key_pem,
                            const char *account_json, store_cb cb, void *arg)
{
    return s->ops->account_put(s, ca, key_pem, account_json, cb, arg);
}

int store_account_next_read(struct store *s, const char *ca, char **key_pem)
{
    return s->ops->account_next_read(s, ca, key_pem);
}

int store_account_next_put_start(struct store *s, const char *ca, const char *key_pem, store_cb cb,
                                 void *arg)
{
    return s->ops->account_next_put(s, ca, key_pem, cb, arg);
}

int store_account_rollover_start(struct store *s, const char *ca, const char *key_pem,
                                 const char *account_json, store_cb cb, void *arg)
{
    return s->ops->account_rollover(s, ca, key_pem, account_json, cb, arg);
}

int store_account_retire_start(struct store *s, const char *ca, int64_t t, store_cb cb, void *arg)
{
    return s->ops->account_retire(s, ca, t, cb, arg);
}

int store_cert_read_current(struct store *s, const char *name, bool with_key,
                            struct store_cert *out)
{
    return s->ops->cert_read_current(s, name, with_key, out);
}

int store_cert_current_gen(struct store *s, const char *name, char **gen)
{
    struct store_cert sc = {0};
    int rc;

    *gen = NULL;
    if (s->ops->cert_current_gen != NULL)
        return s->ops->cert_current_gen(s, name, gen);
    rc = s->ops->cert_read_current(s, name, false, &sc);
    if (rc == 0 && sc.generation == NULL)
        rc = -ENOENT;
    if (rc == 0) {
        *gen = sc.generation;
        sc.generation = NULL;
    }
    store_cert_fini(&sc);
    return rc;
}

int store_cert_list(struct store *s, const char *name, char ***gens, size_t *n)
{
    return s->ops->cert_list(s, name, gens, n);
}

void store_list_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int store_cert_put_start(struct store *s, const struct store_cert_put *p, store_cb cb, void *arg)
{
    return s->ops->cert_put(s, p, cb, arg);
}

int store_cert_prune_start(struct store *s, const char *name, int keep, store_cb cb, void *arg)
{
    return s->ops->cert_prune(s, name, keep, cb, arg);
}

int store_lineage_start(struct store *s, const char *name, const struct store_cert *c, store_cb cb,
                        void *arg)
{
    if (s->ops->lineage == NULL)
        return -ENOTSUP;
    return s->ops->lineage(s, name, c, cb, arg);
}

int store_note_read(struct store *s, const char *name, const char *generation, const char *note,
                    char **json)
{
    return s->ops->note_read(s, name, generation, note, json);
}

int store_note_put_start(struct store *s, const char *name, const char *generation,
                         const char *note, const char *json, store_cb cb, void *arg)
{
    return s->ops->note_put(s, name, generation, note, json, cb, arg);
}

int store_order_read(struct store *s, const char *name, char **json)
{
    return s->ops->order_read(s, name, json);
}

int store_order_put_start(struct store *s, const char *name, const char *json, store_cb cb,
                          void *arg)
{
    return s->ops->order_put(s, name, json, cb, arg);
}

int store_order_settle_start(struct store *s, const char *name, store_cb cb, void *arg)
{
    return s->ops->order_settle(s, name, cb, arg);
}

bool store_redeploy_marked(struct store *s, const char *name)
{
    return s->ops->redeploy_marked(s, name);
}

int store_redeploy_mark_start(struct store *s, const char *name, store_cb cb, void *arg)
{
    return s->ops->redeploy_mark(s, name, cb, arg);
}

int store_history_read(struct store *s, const char *name, char **text, size_t *len)
{
    return s->ops->history_read(s, name, text, len);
}

int store_history_append_start(struct store *s, const struct store_history_line *v, size_t n,
                               store_cb cb, void *arg)
{
    return s->ops->history_append(s, v, n, cb, arg);
}

const char *store_alert_name(enum store_alert kind)
{
    static const char *const names[STORE_ALERT__MAX] = {
        [STORE_ALERT_EXPIRING] = "expiring",
        [STORE_ALERT_PERSIST_EXPIRING] = "persist_expiring",
    };

    return (unsigned)kind < STORE_ALERT__MAX ? names[kind] : "?";
}

int store_alert_read(struct store *s, const char *name, enum store_alert kind, int64_t *t)
{
    if ((unsigned)kind >= STORE_ALERT__MAX)
        return -EINVAL;
    return s->ops->alert_read(s, name, kind, t);
}

int store_alert_put_start(struct store *s, const char *name, enum store_alert kind, int64_t t,
                          store_cb cb, void *arg)
{
    if ((unsigned)kind >= STORE_ALERT__MAX)
        return -EINVAL;
    return s->ops->alert_put(s, name, kind, t, cb, arg);
}

int store_hub_cursor_read(struct store *s, const char *hub, char **id)
{
    if (s->ops->hub_cursor_read == NULL)
        return -ENOTSUP;
    return s->ops->hub_cursor_read(s, hub, id);
}

int store_hub_cursor_put_start(struct store *s, const char *hub, const char *id, store_cb cb,
                               void *arg)
{
    if (s->ops->hub_cursor_put == NULL)
        return -ENOTSUP;
    return s->ops->hub_cursor_put(s, hub, id, cb, arg);
}

int store_outbox_put_start(struct store *s, const char *id, const char *text, store_cb cb,
                           void *arg)
{
    return s->ops->outbox_put(s, id, text, cb, arg);
}

int store_outbox_remove_start(struct store *s, const char *id, store_cb cb, void *arg)
{
    return s->ops->outbox_remove(s, id, cb, arg);
}

int store_outbox_bury_start(struct store *s, const char *id, const char *text, store_cb cb,
                            void *arg)
{
    return s->ops->outbox_bury(s, id, text, cb, arg);
}

int store_lease_take_start(struct store *s, const char *name, store_cb cb, void *arg)
{
    return s->ops->lease_take(s, name, cb, arg);
}

int store_lease_renew_start(struct store *s, const char *name, uint64_t fence, store_cb cb,
                            void *arg)
{
    return s->ops->lease_renew(s, name, fence, cb, arg);
}

void store_lease_release(struct store *s, const char *name, uint64_t fence)
{
    s->ops->lease_release(s, name, fence);
}

/* ---- waiting, for commands ------------------------------------------------ */

void store_wait_init(struct store_wait *w)
{
    memset(w, 0, sizeof(*w));
}

void store_wait_cb(int status, const struct store_result *r, void *arg)
{
    struct store_wait *w = arg;

    w->done = true;
    w->status = status;
    free(w->error);
    w->error = r != NULL && r->error != NULL ? xstrdup(r->error) : NULL;
}

int store_wait_run(uv_loop_t *loop, struct store_wait *w)
{
    while (!w->done)
        uv_run(loop, UV_RUN_ONCE);
    return w->status;
}

void store_wait_fini(struct store_wait *w)
{
    free(w->error);
    w->error = NULL;
}

bool store_shared(const struct store *s)
{
    return s->shared;
}

void store_watch_set(struct store *s, store_watch_fn fn, void *arg)
{
    s->watch = fn;
    s->watch_arg = arg;
}

void store_back_set(struct store *s, store_back_fn fn, void *arg)
{
    s->back = fn;
    s->back_arg = arg;
}

void store_back_notify(struct store *s)
{
    if (s->back != NULL)
        s->back(s->back_arg);
}

void store_watch_notify(struct store *s, const char *name)
{
    if (s->watch != NULL)
        s->watch(name, s->watch_arg);
}

int store_deployed_read(struct store *s, const char *name, char **generation, bool *ok)
{
    if (s->ops->deployed_read == NULL)
        return ERR_UNSUPPORTED;
    return s->ops->deployed_read(s, name, generation, ok);
}

int store_deployed_put_start(struct store *s, const char *name, const char *generation, bool ok,
                             const char *error, store_cb cb, void *arg)
{
    if (s->ops->deployed_put == NULL)
        return ERR_UNSUPPORTED;
    return s->ops->deployed_put(s, name, generation, ok, error, cb, arg);
}

void store_health(struct store *s, struct store_health *out)
{
    memset(out, 0, sizeof(*out));
    if (s->ops->health != NULL)
        s->ops->health(s, out);
}

int store_api_bootstrap_read(struct store *s, char **cert_pem, char **key_pem)
{
    if (s->ops->api_bootstrap_read == NULL)
        return ERR_UNSUPPORTED;
    return s->ops->api_bootstrap_read(s, cert_pem, key_pem);
}

int store_api_bootstrap_put(struct store *s, const char *cert_pem, const char *key_pem)
{
    if (s->ops->api_bootstrap_put == NULL)
        return ERR_UNSUPPORTED;
    return s->ops->api_bootstrap_put(s, cert_pem, key_pem);
}
