/* The file backend of the store: the state directory of DESIGN.md, its lock
 * (one daemon per directory) and the in-process lease table. It turns each
 * write operation into one job on the libuv threadpool that calls the
 * blocking layer (store_state.c, fs_records.c) and answers on the loop;
 * reads call that layer inline (small page-cache reads, STYLE §5). It
 * knows nothing of what the records mean. */
#include "store/store.h"
#include "store/store_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct lease {
    struct lease *next;
    char *name; /* owned */
    uint64_t fence;
};

struct fs_store {
    struct store base; /* first: a struct store * is a struct fs_store * */
    char *dir;         /* owned */
    int lock_fd;       /* holds the flock (-1 when shared); O_CLOEXEC so hooks never inherit it */
    struct lease *leases;
    uint64_t fence;               /* the last token handed out */
    uid_t own_uid;                /* STORE_FS_AS_OWNER: accounts written take this owner, */
    gid_t own_gid;                /* else (uid_t)-1 */
    struct fs_group_queue *group; /* owned (or handed to its batch on close) */
};

static struct fs_store *fs_of(struct store *s)
{
    return (struct fs_store *)s;
}

/* ---- the lock ------------------------------------------------------------ */

/* The pid holding a flock on path, from /proc/locks (flock locks are not
 * visible through fcntl F_GETLK). 0 if unknown. */
static long lock_holder_pid(const char *path)
{
    struct stat st;
    FILE *f;
    char line[256];
    long pid = 0;

    if (stat(path, &st) < 0)
        return 0;
    f = fopen("/proc/locks", "re");
    if (f == NULL)
        return 0;
    while (pid == 0 && fgets(line, sizeof(line), f) != NULL) {
        char *save = NULL;
        char *prev = NULL;
        for (char *tok = strtok_r(line, " \t\n", &save); tok != NULL;
             tok = strtok_r(NULL, " \t\n", &save)) {
            unsigned int maj, min;
            unsigned long long ino;
            char tail;
            if (sscanf(tok, "%x:%x:%llu%c", &maj, &min, &ino, &tail) == 3) {
                if (prev != NULL && maj == major(st.st_dev) && min == minor(st.st_dev) &&
                    ino == (unsigned long long)st.st_ino)
                    pid = strtol(prev, NULL, 10);
                break;
            }
            prev = tok;
        }
    }
    fclose(f);
    return pid;
}

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

static int lock_and_create(const char *state_dir, int *lock_fd_out)
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
            /* the holder's pid as the kernel sees it (the pid in the file
             * may be stale), then the one it wrote */
            long kpid = lock_holder_pid(lock_path);
            if (kpid > 0)
                log_error(LOG_STORE, "another certloop holds %s (pid %ld)", lock_path, kpid);
            else
                log_error(LOG_STORE, "another certloop holds %s", lock_path);
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

    *lock_fd_out = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(lock_path);
    return rc;
}

/* ---- write jobs ---------------------------------------------------------- */

enum fs_op {
    FS_ACCOUNT,
    FS_ACCOUNT_NEXT,
    FS_ACCOUNT_ROLLOVER,
    FS_ACCOUNT_RETIRE,
    FS_CERT,
    FS_PRUNE,
    FS_NOTE,
    FS_ORDER,
    FS_SETTLE,
    FS_MARK,
    FS_ALERT,
    FS_HUB_CURSOR,
    FS_HISTORY,
    FS_OUTBOX_PUT,
    FS_OUTBOX_REMOVE,
    FS_OUTBOX_BURY,
};

/* Everything the thread touches is in here (copies, STYLE §5). */
struct fs_job {
    enum fs_op op;
    char *dir;  /* owned: the state directory */
    char *name; /* owned: certificate, CA or delivery id */
    char *text; /* owned: the record (secret for accounts and orders) */
    char *gen;  /* owned: a note's generation; cert put's result */
    char *note; /* owned: the note's name */
    char *cert, *chain, *fullchain, *key, *meta; /* owned: cert put */
    int keep;
    bool mark;
    int64_t t;
    enum store_alert alert;
    char **names, **lines; /* owned: history lines (n_lines) */
    size_t n_lines;
    int mark_rc;
    uid_t uid; /* accounts: their owner, or (uid_t)-1 */
    gid_t gid;
    char *err; /* owned: "PATH: STEP: REASON" */
    store_cb cb;
    void *arg;
    /* the group commit (below) */
    struct fs_job *next;   /* in its queue */
    struct store_fs_gen g; /* a generation between its steps */
    char *tmp;             /* owned: an order's staged temp file */
    char *created;         /* owned: a new order file written in place (one step) */
    int status;            /* its result so far */
    bool live, wrote;      /* steps left; wrote in this step */
};

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

static void free_secret(char *s)
{
    if (s == NULL)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

static void job_free(struct fs_job *j)
{
    free(j->dir);
    free(j->name);
    free_secret(j->text);
    free(j->gen);
    free(j->note);
    free(j->cert);
    free(j->chain);
    free(j->fullchain);
    free_secret(j->key);
    free(j->meta);
    free(j->err);
    store_fs_gen_fini(&j->g);
    free(j->tmp);
    free(j->created);
    for (size_t i = 0; i < j->n_lines; i++) {
        free(j->names[i]);
        free(j->lines[i]);
    }
    free(j->names);
    free(j->lines);
    free(j);
}

static struct store_cert_put job_cert_put(const struct fs_job *j)
{
    struct store_cert_put p = {
        .name = j->name,
        .cert_pem = j->cert,
        .chain_pem = j->chain,
        .fullchain_pem = j->fullchain,
        .key_pem = j->key,
        .meta_json = j->meta,
        .keep = j->keep,
        .mark_redeploy = j->mark,
    };
    return p;
}

static int job_work(void *arg)
{
    struct fs_job *j = arg;

    switch (j->op) {
    case FS_ACCOUNT: {
        int rc = store_fs_account_write(j->dir, j->name, j->key, j->text, &j->err);
        /* the account is stored, but a daemon running as the owner could
         * not read it: the put fails and says why */
        if (rc == 0 && j->uid != (uid_t)-1)
            rc = store_fs_account_chown(j->dir, j->name, j->uid, j->gid, &j->err);
        return rc;
    }
    case FS_ACCOUNT_NEXT:
        return store_fs_account_next_write(j->dir, j->name, j->key, &j->err);
    case FS_ACCOUNT_ROLLOVER:
        return store_fs_account_rollover(j->dir, j->name, j->key, j->text, &j->err);
    case FS_ACCOUNT_RETIRE:
        return store_fs_account_retire(j->dir, j->name, j->t, &j->err);
    case FS_CERT: {
        struct store_cert_put p = job_cert_put(j);
        return store_fs_cert_write(j->dir, &p, &j->mark_rc, &j->gen, &j->err);
    }
    case FS_PRUNE:
        return store_fs_cert_prune(j->dir, j->name, j->keep, &j->err);
    case FS_NOTE:
        return store_fs_note_write(j->dir, j->name, j->gen, j->note, j->text, &j->err);
    case FS_ORDER:
        return store_fs_order_write(j->dir, j->name, j->text, &j->err);
    case FS_SETTLE:
        return store_fs_order_settle(j->dir, j->name, &j->err);
    case FS_MARK:
        return store_fs_redeploy_mark(j->dir, j->name, &j->err);
    case FS_ALERT:
        return store_fs_alert_write(j->dir, j->name, j->alert, j->t, &j->err);
    case FS_HUB_CURSOR:
        return store_fs_hub_cursor_write(j->dir, j->name, j->text, &j->err);
    case FS_HISTORY:
        return store_fs_history_append(j->dir, j->names, j->lines, j->n_lines, &j->err);
    case FS_OUTBOX_PUT:
        return store_fs_outbox_write(j->dir, j->name, j->text, &j->err);
    case FS_OUTBOX_REMOVE:
        return store_fs_outbox_remove(j->dir, j->name, NULL, &j->err);
    case FS_OUTBOX_BURY:
        return store_fs_outbox_remove(j->dir, j->name, j->text, &j->err);
    }
    return -EINVAL;
}

static void job_done(int status, void *arg)
{
    struct fs_job *j = arg;
    char *lineage = NULL;
    struct store_result r = {
        .error = j->err,
        .mark_status = j->mark_rc,
    };

    if (status < 0 && j->err == NULL)
        r.error = j->err = xasprintf("%s: queue: %s", j->dir, err_str(status));
    if (status == 0 && j->op == FS_CERT && j->gen != NULL) {
        r.generation = j->gen;
        r.lineage = lineage = xasprintf("%s/certs/%s/%s", j->dir, j->name, j->gen);
    }
    j->cb(status, &r, j->arg);
    free(lineage);
    job_free(j);
}

static struct fs_job *job_new(struct store *s, enum fs_op op, const char *name, store_cb cb,
                              void *arg)
{
    struct fs_job *j = xcalloc(1, sizeof(*j));

    j->op = op;
    j->dir = xstrdup(fs_of(s)->dir);
    j->uid = fs_of(s)->own_uid;
    j->gid = fs_of(s)->own_gid;
    j->name = dup_or_null(name);
    j->cb = cb;
    j->arg = arg;
    return j;
}

/* ---- group commit -------------------------------------------------------
 *
 * The writes every issuance makes (the generation, the order, the redeploy
 * mark, the settle, the history lines) do not run as one job each with an fsync per file and
 * per directory. They queue, and one job at a time takes the whole queue
 * through three steps, with one syncfs(2) of the state directory's file
 * system after each step that wrote something:
 *
 *   step 0: generations: directory, key, cert, chain, fullchain, privkey.pem;
 *           orders: their temp files; settles: the unlinks;
 *           history: the appended lines                             -> sync
 *   step 1: generations: meta.json and the redeploy mark;
 *           orders: the renames over orders/NAME.json               -> sync
 *   step 2: generations: `current` renamed to the new generation    -> sync
 *
 * Each step's writes are durable before the next step starts, which is the
 * order the per-file fsyncs gave (docs/ARCHITECTURE.md, "Group commit",
 * has the crash argument); a callback runs only after the last sync. While
 * the job runs, new writes queue behind it, so a burst of completions
 * shares three syncs. syncfs is used only where it reports write-back
 * errors (Linux 5.8 and later) and where the records' directories are on
 * the state directory's file system; otherwise each write runs alone with
 * its own fsyncs, as before.
 *
 * History lines alone (nobody waits for them) are held up to
 * GROUP_HISTORY_HOLD_MS for the next other write, so that they share its
 * batch and its sync instead of a sync of their own (a burst of issuances
 * made one batch in three of history lines only); they are still durable
 * before their callback, and a store being closed writes them at once. */

#define GROUP_HISTORY_HOLD_MS 25

struct fs_group_queue {
    uv_loop_t *loop;
    char *dir;                   /* owned: the state directory */
    struct fs_job *head, **tail; /* queued, not started */
    uv_timer_t *hold;            /* owned (freed when closed): history lines held, or NULL */
    bool busy;                   /* a batch is on the threadpool */
    bool orphan;                 /* the store was closed: free when idle */
    bool syncfs_ok;              /* the kernel reports syncfs errors */
    unsigned long batches;       /* started (tests) */
};

struct fs_group_batch {
    struct fs_group_queue *q;
    char *dir;            /* owned: the state directory */
    struct fs_job *items; /* linked by next, in queue order */
};

static bool is_group_op(enum fs_op op)
{
    return op == FS_CERT || op == FS_ORDER || op == FS_MARK || op == FS_SETTLE || op == FS_HISTORY;
}

/* Whether every directory a batch writes in is on the state directory's file system (a mount
 * point under it would not be covered by its syncfs). */
static bool one_file_system(const char *dir, struct fs_job *items)
{
    static const char *const subs[] = {"certs", "orders", "history"};
    struct stat root, st;
    bool ok = stat(dir, &root) == 0;

    for (size_t i = 0; ok && i < sizeof(subs) / sizeof(subs[0]); i++) {
        char *sub = xasprintf("%s/%s", dir, subs[i]);
        ok = stat(sub, &st) < 0 || st.st_dev == root.st_dev;
        free(sub);
    }
    for (struct fs_job *j = items; ok && j != NULL; j = j->next) {
        if (j->op != FS_CERT || j->name == NULL)
            continue;
        char *sub = xasprintf("%s/certs/%s", dir, j->name);
        ok = stat(sub, &st) < 0 || st.st_dev == root.st_dev;
        free(sub);
    }
    return ok;
}

/* One item's step without syncing; sets j->wrote when the step's sync must follow, clears
 * j->live when the item has no step left (done or failed). */
static void group_step(const char *dir, struct fs_job *j, int step)
{
    struct store_cert_put p = job_cert_put(j);
    int rc = 0;

    j->wrote = false;
    switch (j->op) {
    case FS_CERT:
        if (step == 0)
            rc = store_fs_gen_stage(dir, &p, false, &j->g, &j->err);
        else if (step == 1)
            rc = store_fs_gen_seal(dir, &p, false, &j->g, &j->mark_rc, &j->err);
        else
            rc = store_fs_gen_publish(&j->g, false, &j->err);
        j->wrote = true;
        j->live = rc == 0 && step < 2;
        break;
    case FS_MARK: /* empty: a crash leaves no mark or an empty one */
        rc = store_fs_redeploy_mark_opt(dir, j->name, false, &j->err);
        j->wrote = rc == 0;
        j->live = false;
        break;
    case FS_ORDER:
        if (step == 0) {
            /* a new order file needs no temp: an incomplete one is no order */
            rc = store_fs_order_create(dir, j->name, j->text, &j->created, &j->err);
            if (rc == 0) {
                j->wrote = true;
                j->live = false;
                break;
            }
            if (rc == -EEXIST)
                rc = store_fs_order_stage(dir, j->name, j->text, false, &j->tmp, &j->err);
        } else {
            rc = store_fs_order_rename(dir, j->name, j->tmp, &j->err);
            free(j->tmp); /* renamed, or removed by the failed rename */
            j->tmp = NULL;
        }
        j->wrote = rc == 0;
        j->live = rc == 0 && step < 1;
        break;
    case FS_HISTORY: /* appends: in queue order, whatever the names */
        rc = store_fs_history_append_opt(dir, j->names, j->lines, j->n_lines, false, &j->err);
        j->wrote = true;
        j->live = false;
        break;
    case FS_SETTLE:
        rc = store_fs_order_settle_opt(dir, j->name, false, &j->err);
        j->wrote = rc == 0;
        j->live = false;
        break;
    default:
        rc = job_work(j);
        j->live = false;
        break;
    }
    if (rc < 0)
        j->status = rc;
}

/* The sync after a step failed: what that step wrote may not be on disk. */
static void group_sync_failed(const char *dir, struct fs_job *j, int rc)
{
    free(j->err);
    j->err = xasprintf("%s: syncfs: %s", dir, err_str(rc));
    j->status = rc;
    j->live = false;
    if (j->tmp != NULL) {
        unlink(j->tmp); /* staged, never renamed */
        free(j->tmp);
        j->tmp = NULL;
    }
    if (j->created != NULL) {
        unlink(j->created); /* not known to be on disk: the put failed */
        free(j->created);
        j->created = NULL;
    }
    if (j->op == FS_CERT && !j->g.published)
        store_fs_gen_abort(&j->g); /* never made current: nothing refers to it */
}

static int group_work(void *arg)
{
    struct fs_group_batch *b = arg;
    int fd = -1;

    if (b->q->syncfs_ok && one_file_system(b->dir, b->items))
        fd = open(b->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        /* each write alone with its fsyncs */
        for (struct fs_job *j = b->items; j != NULL; j = j->next)
            j->status = job_work(j);
        return 0;
    }
    for (struct fs_job *j = b->items; j != NULL; j = j->next)
        j->live = true;
    for (int step = 0; step < 3; step++) {
        bool wrote = false;
        for (struct fs_job *j = b->items; j != NULL; j = j->next) {
            if (!j->live)
                continue;
            group_step(b->dir, j, step);
            wrote = wrote || j->wrote;
        }
        if (!wrote)
            continue;
        int rc = syncfs(fd) < 0 ? -errno : 0;
        for (struct fs_job *j = b->items; j != NULL; j = j->next) {
            if (rc < 0 && j->wrote)
                group_sync_failed(b->dir, j, rc);
            j->wrote = false;
        }
    }
    close(fd);
    for (struct fs_job *j = b->items; j != NULL; j = j->next) {
        if (j->op == FS_CERT && j->status == 0 && j->g.published)
            store_fs_gen_finish(&j->g, j->keep, false, &j->gen);
    }
    return 0;
}

static void group_kick(struct fs_group_queue *q, bool now);

static void group_done(int status, void *arg)
{
    struct fs_group_batch *b = arg;
    struct fs_group_queue *q = b->q;

    q->busy = false;
    while (b->items != NULL) {
        struct fs_job *j = b->items;
        b->items = j->next;
        j->next = NULL;
        job_done(status < 0 ? status : j->status, j);
    }
    free(b->dir);
    free(b);
    /* the callbacks may have queued more */
    group_kick(q, false);
}

static void hold_closed(uv_handle_t *h)
{
    free(h);
}

/* Ends a hold (its timer is closed, the queue no longer refers to it). */
static void hold_end(struct fs_group_queue *q)
{
    if (q->hold == NULL)
        return;
    uv_timer_stop(q->hold);
    uv_close((uv_handle_t *)q->hold, hold_closed);
    q->hold = NULL;
}

static void hold_fired(uv_timer_t *t)
{
    struct fs_group_queue *q = t->data;

    hold_end(q);
    group_kick(q, true);
}

static void group_free(struct fs_group_queue *q)
{
    free(q->dir);
    free(q);
}

/* Starts a batch with everything queued unless one runs (or, unless now, holds history lines
 * that are all there is). One write per certificate name in a batch: a second one for the
 * same name waits for the next batch. */
static void group_kick(struct fs_group_queue *q, bool now)
{
    if (q->busy)
        return;
    if (q->head == NULL) {
        if (q->orphan)
            group_free(q);
        return;
    }
    bool history_only = true;
    for (struct fs_job *j = q->head; j != NULL && history_only; j = j->next)
        history_only = j->op == FS_HISTORY;
    if (history_only && !now && !q->orphan) {
        if (q->hold == NULL) {
            q->hold = xcalloc(1, sizeof(*q->hold));
            if (uv_timer_init(q->loop, q->hold) == 0) {
                q->hold->data = q;
                uv_timer_start(q->hold, hold_fired, GROUP_HISTORY_HOLD_MS, 0);
                return;
            }
            free(q->hold);
            q->hold = NULL;
        } else {
            return; /* already held */
        }
    }
    hold_end(q);
    struct fs_group_batch *b = xcalloc(1, sizeof(*b));
    struct fs_job **bt = &b->items;
    b->q = q;
    b->dir = xstrdup(q->dir);
    while (q->head != NULL) {
        struct fs_job *j = q->head;
        bool dup = false;
        for (struct fs_job *k = b->items; k != NULL && !dup; k = k->next)
            dup = j->op != FS_HISTORY && k->op != FS_HISTORY &&
                  (k->name == NULL || j->name == NULL || strcmp(k->name, j->name) == 0);
        if (dup)
            break;
        q->head = j->next;
        j->next = NULL;
        *bt = j;
        bt = &j->next;
    }
    if (q->head == NULL)
        q->tail = &q->head;
    q->busy = true;
    q->batches++;
    int rc = store_job_start(q->loop, group_work, b, group_done);
    if (rc < 0) {
        /* the threadpool refused: answer each write with the failure */
        q->busy = false;
        group_done(rc, b);
    }
}

static int job_start(struct store *s, struct fs_job *j)
{
    struct fs_group_queue *q = fs_of(s)->group;

    if (s->loop != NULL && q->syncfs_ok && is_group_op(j->op)) {
        *q->tail = j;
        q->tail = &j->next;
        group_kick(q, false);
        return 0;
    }
    int rc = s->loop != NULL ? store_job_start(s->loop, job_work, j, job_done) : -EINVAL;

    if (rc < 0)
        job_free(j);
    return rc;
}

/* A write of one record's text under name. */
static int start_text(struct store *s, enum fs_op op, const char *name, const char *text,
                      store_cb cb, void *arg)
{
    struct fs_job *j = job_new(s, op, name, cb, arg);

    j->text = xstrdup(text);
    return job_start(s, j);
}

/* ---- the operations ------------------------------------------------------ */

static char *fs_where(struct store *s, enum store_what what, const char *name)
{
    const char *dir = fs_of(s)->dir;

    if (name == NULL)
        name = "";
    switch (what) {
    case STORE_WHERE_ROOT:
        break;
    case STORE_WHERE_ACCOUNT:
        return xasprintf("%s/accounts/%s", dir, name);
    case STORE_WHERE_CERT:
        return xasprintf("%s/certs/%s", dir, name);
    case STORE_WHERE_ORDER:
        return xasprintf("%s/orders/%s.json", dir, name);
    case STORE_WHERE_REDEPLOY:
        return xasprintf("%s/orders/%s.redeploy", dir, name);
    case STORE_WHERE_ALERTS:
        return store_fs_alert_path(dir, name[0] != '\0' ? name : NULL, STORE_ALERT_EXPIRING);
    case STORE_WHERE_OUTBOX:
        return store_fs_outbox_path(dir, false, NULL);
    case STORE_WHERE_OUTBOX_DEAD:
        return store_fs_outbox_path(dir, true, NULL);
    }
    return xstrdup(dir);
}

static int fs_sweep(struct store *s)
{
    return store_fs_sweep(fs_of(s)->dir);
}

static int fs_account_read(struct store *s, const char *ca, char **key_pem, char **account_json)
{
    return store_fs_account_read(fs_of(s)->dir, ca, key_pem, account_json);
}

/* A write of an account's key (and JSON, or NULL). */
static int start_account(struct store *s, enum fs_op op, const char *ca, const char *key_pem,
                         const char *account_json, store_cb cb, void *arg)
{
    struct fs_job *j = job_new(s, op, ca, cb, arg);

    j->key = dup_or_null(key_pem);
    j->text = dup_or_null(account_json);
    return job_start(s, j);
}

static int fs_account_put(struct store *s, const char *ca, const char *key_pem,
                          const char *account_json, store_cb cb, void *arg)
{
    return start_account(s, FS_ACCOUNT, ca, key_pem, account_json, cb, arg);
}

static int fs_account_next_read(struct store *s, const char *ca, char **key_pem)
{
    return store_fs_account_next_read(fs_of(s)->dir, ca, key_pem);
}

static int fs_account_next_put(struct store *s, const char *ca, const char *key_pem, store_cb cb,
                               void *arg)
{
    return start_account(s, FS_ACCOUNT_NEXT, ca, key_pem, NULL, cb, arg);
}

static int fs_account_rollover(struct store *s, const char *ca, const char *key_pem,
                               const char *account_json, store_cb cb, void *arg)
{
    return start_account(s, FS_ACCOUNT_ROLLOVER, ca, key_pem, account_json, cb, arg);
}

static int fs_account_retire(struct store *s, const char *ca, int64_t t, store_cb cb, void *arg)
{
    struct fs_job *j = job_new(s, FS_ACCOUNT_RETIRE, ca, cb, arg);

    j->t = t;
    return job_start(s, j);
}

static int fs_cert_read_current(struct store *s, const char *name, bool with_key,
                                struct store_cert *out)
{
    return store_fs_cert_read_current(fs_of(s)->dir, name, with_key, out);
}

static int fs_cert_current_gen(struct store *s, const char *name, char **gen)
{
    return store_fs_cert_current_gen(fs_of(s)->dir, name, gen);
}

static int fs_cert_list(struct store *s, const char *name, char ***gens, size_t *n)
{
    return store_fs_cert_list(fs_of(s)->dir, name, gens, n);
}

static int fs_cert_put(struct store *s, const struct store_cert_put *p, store_cb cb, void *arg)
{
    struct fs_job *j = job_new(s, FS_CERT, p->name, cb, arg);

    j->cert = dup_or_null(p->cert_pem);
    j->chain = dup_or_null(p->chain_pem);
    j->fullchain = dup_or_null(p->fullchain_pem);
    j->key = dup_or_null(p->key_pem);
    j->meta = dup_or_null(p->meta_json);
    j->keep = p->keep;
    j->mark = p->mark_redeploy;
    return job_start(s, j);
}

static int fs_cert_prune(struct store *s, const char *name, int keep, store_cb cb, void *arg)
{
    struct fs_job *j = job_new(s, FS_PRUNE, name, cb, arg);

    j->keep = keep;
    return job_start(s, j);
}

static int fs_note_read(struct store *s, const char *name, const char *generation, const char *note,
                        char **json)
{
    return store_fs_note_read(fs_of(s)->dir, name, generation, note, json);
}

static int fs_note_put(struct store *s, const char *name, const char *generation, const char *note,
                       const char *json, store_cb cb, void *arg)
{
    struct fs_job *j = job_new(s, FS_NOTE, name, cb, arg);

    j->gen = dup_or_null(generation);
    j->note = dup_or_null(note);
    j->text = xstrdup(json);
    return job_start(s, j);
}

static int fs_order_read(struct store *s, const char *name, char **json)
{
    return store_fs_order_read(fs_of(s)->dir, name, json);
}

static int fs_order_put(struct store *s, const char *name, const char *json, store_cb cb, void *arg)
{
    return start_text(s, FS_ORDER, name, json, cb, arg);
}

static int fs_order_settle(struct store *s, const char *name, store_cb cb, void *arg)
{
    return job_start(s, job_new(s, FS_SETTLE, name, cb, arg));
}

static bool fs_redeploy_marked(struct store *s, const char *name)
{
    return store_fs_redeploy_marked(fs_of(s)->dir, name);
}

static int fs_redeploy_mark(struct store *s, const char *name, store_cb cb, void *arg)
{
    return job_start(s, job_new(s, FS_MARK, name, cb, arg));
}

static int fs_history_read(struct store *s, const char *name, char **text, size_t *len)
{
    return store_fs_history_read(fs_of(s)->dir, name, text, len);
}

static int fs_history_append(struct store *s, const struct store_history_line *v, size_t n,
                             store_cb cb, void *arg)
{
    struct fs_job *j = job_new(s, FS_HISTORY, NULL, cb, arg);

    j->names = xcalloc(n > 0 ? n : 1, sizeof(*j->names));
    j->lines = xcalloc(n > 0 ? n : 1, sizeof(*j->lines));
    j->n_lines = n;
    for (size_t i = 0; i < n; i++) {
        j->names[i] = xstrdup(v[i].name);
        j->lines[i] = xstrdup(v[i].line);
    }
    return job_start(s, j);
}

static int fs_alert_read(struct store *s, const char *name, enum store_alert kind, int64_t *t)
{
    return store_fs_alert_read(fs_of(s)->dir, name, kind, t);
}

static int fs_alert_put(struct store *s, const char *name, enum store_alert kind, int64_t t,
                        store_cb cb, void *arg)
{
    struct fs_job *j = job_new(s, FS_ALERT, name, cb, arg);

    j->t = t;
    j->alert = kind;
    return job_start(s, j);
}

static int fs_hub_cursor_read(struct store *s, const char *hub, char **id)
{
    return store_fs_hub_cursor_read(fs_of(s)->dir, hub, id);
}

static int fs_hub_cursor_put(struct store *s, const char *hub, const char *id, store_cb cb,
                             void *arg)
{
    return start_text(s, FS_HUB_CURSOR, hub, id, cb, arg);
}

static int fs_alerts_sweep(struct store *s, bool (*known)(const char *name, void *arg), void *arg)
{
    return store_fs_alerts_sweep(fs_of(s)->dir, known, arg);
}

static int fs_outbox_load(struct store *s, store_outbox_each_fn each, void *arg)
{
    return store_fs_outbox_load(fs_of(s)->dir, each, arg);
}

static int fs_outbox_put(struct store *s, const char *id, const char *text, store_cb cb, void *arg)
{
    return start_text(s, FS_OUTBOX_PUT, id, text, cb, arg);
}

static int fs_outbox_remove(struct store *s, const char *id, store_cb cb, void *arg)
{
    return job_start(s, job_new(s, FS_OUTBOX_REMOVE, id, cb, arg));
}

static int fs_outbox_bury(struct store *s, const char *id, const char *text, store_cb cb, void *arg)
{
    return start_text(s, FS_OUTBOX_BURY, id, text, cb, arg);
}

/* ---- leases: the directory lock makes them ours; this table keeps one run
 * per certificate inside the process ---------------------------------------- */

static struct lease **lease_find(struct fs_store *f, const char *name)
{
    struct lease **pp = &f->leases;

    while (*pp != NULL && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    return pp;
}

static int fs_lease_take(struct store *s, const char *name, store_cb cb, void *arg)
{
    struct fs_store *f = fs_of(s);
    struct store_result r = {0};
    int status = 0;

    if (!store_name_ok(name)) {
        status = -EINVAL;
    } else if (*lease_find(f, name) != NULL) {
        status = ERR_LOCKED;
    } else {
        struct lease *l = xcalloc(1, sizeof(*l));
        l->name = xstrdup(name);
        l->fence = ++f->fence;
        l->next = f->leases;
        f->leases = l;
        r.fence = l->fence;
    }
    int rc = store_defer(s, status, &r, cb, arg);
    if (rc < 0 && status == 0)
        store_lease_release(s, name, r.fence);
    return rc;
}

static int fs_lease_renew(struct store *s, const char *name, uint64_t fence, store_cb cb, void *arg)
{
    struct lease *l = store_name_ok(name) ? *lease_find(fs_of(s), name) : NULL;
    struct store_result r = {.fence = fence};

    return store_defer(s, l != NULL && l->fence == fence ? 0 : ERR_LOCKED, &r, cb, arg);
}

static void fs_lease_release(struct store *s, const char *name, uint64_t fence)
{
    if (!store_name_ok(name))
        return;
    struct lease **pp = lease_find(fs_of(s), name);
    struct lease *l = *pp;
    if (l == NULL || l->fence != fence)
        return;
    *pp = l->next;
    free(l->name);
    free(l);
}

/* ---- open and close ------------------------------------------------------ */

static void fs_close(struct store *s)
{
    struct fs_store *f = fs_of(s);

    if (f->lock_fd >= 0) {
        /* still holding the lock: clearing the pid cannot race a new holder */
        if (ftruncate(f->lock_fd, 0) < 0)
            log_debug(LOG_STORE, "%s/lock: truncate: %s", f->dir, err_str(-errno));
        close(f->lock_fd);
    }
    while (f->leases != NULL) {
        struct lease *l = f->leases;
        f->leases = l->next;
        free(l->name);
        free(l);
    }
    /* held history lines are written now; a batch on the threadpool frees
     * the queue when it is done */
    f->group->orphan = true;
    group_kick(f->group, true);
    free(f->dir);
    free(f);
}

static int fs_api_bootstrap_read(struct store *s, char **cert_pem, char **key_pem)
{
    return store_fs_api_bootstrap_read(fs_of(s)->dir, cert_pem, key_pem);
}

static int fs_api_bootstrap_put(struct store *s, const char *cert_pem, const char *key_pem)
{
    return store_fs_api_bootstrap_put(fs_of(s)->dir, cert_pem, key_pem);
}

static const struct store_ops fs_ops = {
    .type = "files",
    .close = fs_close,
    .where = fs_where,
    .sweep = fs_sweep,
    .account_read = fs_account_read,
    .account_put = fs_account_put,
    .account_next_read = fs_account_next_read,
    .account_next_put = fs_account_next_put,
    .account_rollover = fs_account_rollover,
    .account_retire = fs_account_retire,
    .cert_read_current = fs_cert_read_current,
    .cert_list = fs_cert_list,
    .cert_current_gen = fs_cert_current_gen,
    .cert_put = fs_cert_put,
    .cert_prune = fs_cert_prune,
    .note_read = fs_note_read,
    .note_put = fs_note_put,
    .order_read = fs_order_read,
    .order_put = fs_order_put,
    .order_settle = fs_order_settle,
    .redeploy_marked = fs_redeploy_marked,
    .redeploy_mark = fs_redeploy_mark,
    .history_read = fs_history_read,
    .history_append = fs_history_append,
    .alert_read = fs_alert_read,
    .alert_put = fs_alert_put,
    .alerts_sweep = fs_alerts_sweep,
    .hub_cursor_read = fs_hub_cursor_read,
    .hub_cursor_put = fs_hub_cursor_put,
    .outbox_load = fs_outbox_load,
    .outbox_put = fs_outbox_put,
    .outbox_remove = fs_outbox_remove,
    .outbox_bury = fs_outbox_bury,
    .lease_take = fs_lease_take,
    .lease_renew = fs_lease_renew,
    .lease_release = fs_lease_release,
    .api_bootstrap_read = fs_api_bootstrap_read,
    .api_bootstrap_put = fs_api_bootstrap_put,
};

long store_fs_group_batches(struct store *s)
{
    if (s == NULL || s->ops != &fs_ops)
        return -1;
    return fs_of(s)->group->syncfs_ok ? (long)fs_of(s)->group->batches : -1;
}

int store_fs_open(uv_loop_t *loop, const char *state_dir, unsigned flags, struct store **out)
{
    int fd = -1;

    if (!(flags & STORE_FS_SHARED)) {
        int rc = lock_and_create(state_dir, &fd);
        if (rc < 0)
            return rc;
    }
    struct fs_store *f = xcalloc(1, sizeof(*f));
    f->base.ops = &fs_ops;
    f->base.loop = loop;
    f->dir = xstrdup(state_dir);
    f->lock_fd = fd;
    f->own_uid = (uid_t)-1;
    f->own_gid = (gid_t)-1;
    f->group = xcalloc(1, sizeof(*f->group));
    f->group->loop = loop;
    f->group->dir = xstrdup(state_dir);
    f->group->tail = &f->group->head;
    f->group->syncfs_ok = store_syncfs_reports();
    struct stat st;
    if ((flags & STORE_FS_AS_OWNER) && geteuid() == 0 && stat(state_dir, &st) == 0 &&
        st.st_uid != 0) {
        f->own_uid = st.st_uid;
        f->own_gid = st.st_gid;
    }
    *out = &f->base;
    return 0;
}
