/* What lives in the state directory: account keys, certificate generations
 * behind a `current` symlink, orders in flight, and the start-up sweep of
 * what a crash left behind. Writers (*_sync) run off the loop and never
 * log; readers are inline page-cache reads and log their own failures. */
#include "store/store.h"
#include "store/store_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void set_err(char **err, const char *path, const char *step, int rc)
{
    if (err == NULL)
        return;
    free(*err);
    *err = xasprintf("%s: %s: %s", path, step, err_str(rc));
}

static void free_secret(char *s)
{
    if (s == NULL)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* Writes path atomically (private to us: uid/gid unchanged). */
static int put_file(const char *path, const char *data, mode_t mode, char **err)
{
    const char *step = NULL;
    int rc = store_write_atomic(path, data, strlen(data), mode, (uid_t)-1, (gid_t)-1, &step);

    if (rc < 0)
        set_err(err, path, step, rc);
    return rc;
}

static int make_dirs(const char *path, char **err)
{
    int rc = store_mkdirs(path, 0700);

    if (rc < 0)
        set_err(err, path, "mkdir", rc);
    return rc;
}

/* Reads path; -ENOENT silently (a normal answer), anything else logged. */
static int get_file(const char *path, char **out)
{
    int rc = store_read_file(path, out, NULL);

    if (rc < 0 && rc != -ENOENT)
        log_error(LOG_STORE, "%s: read: %s", path, err_str(rc));
    return rc;
}

/* ---- accounts ------------------------------------------------------------ */

int store_fs_account_read(const char *state_dir, const char *ca, char **key_pem,
                          char **account_json)
{
    char *kpath = NULL, *jpath = NULL, *key = NULL, *json = NULL;
    int rc;

    if (!store_name_ok(ca)) {
        log_error(LOG_STORE, "account: invalid CA name \"%s\"", ca ? ca : "");
        return -EINVAL;
    }
    kpath = xasprintf("%s/accounts/%s/account.key", state_dir, ca);
    jpath = xasprintf("%s/accounts/%s/account.json", state_dir, ca);
    /* account.json is written last: without it the account is incomplete */
    rc = get_file(jpath, &json);
    if (rc < 0)
        goto out;
    rc = get_file(kpath, &key);
    if (rc < 0)
        goto out;
    *key_pem = key;
    *account_json = json;
    key = json = NULL;
out:
    free_secret(key);
    free(json);
    free(kpath);
    free(jpath);
    return rc;
}

int store_fs_account_write(const char *state_dir, const char *ca, const char *key_pem,
                           const char *account_json, char **err)
{
    char *dir = NULL, *path = NULL;
    int rc;

    if (!store_name_ok(ca)) {
        rc = -EINVAL;
        set_err(err, ca ? ca : "", "account name", rc);
        return rc;
    }
    dir = xasprintf("%s/accounts/%s", state_dir, ca);
    rc = make_dirs(dir, err);
    if (rc < 0)
        goto out;
    path = xasprintf("%s/account.key", dir);
    rc = put_file(path, key_pem, 0600, err);
    if (rc < 0)
        goto out;
    free(path);
    path = xasprintf("%s/account.json", dir);
    rc = put_file(path, account_json, 0600, err);
out:
    free(path);
    free(dir);
    return rc;
}

static char *account_file(const char *state_dir, const char *ca, const char *file)
{
    return xasprintf("%s/accounts/%s/%s", state_dir, ca, file);
}

int store_fs_account_chown(const char *state_dir, const char *ca, uid_t uid, gid_t gid, char **err)
{
    static const char *const parts[] = {"", "/account.key", "/account.json"};
    struct stat st;
    int rc = 0;

    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && rc == 0; i++) {
        char *p = xasprintf("%s/accounts/%s%s", state_dir, ca, parts[i]);
        if (lchown(p, uid, gid) < 0) {
            rc = -errno;
            set_err(err, p, "chown", rc);
        }
        free(p);
    }
    char *accounts = xasprintf("%s/accounts", state_dir);
    if (rc == 0 && stat(accounts, &st) == 0 && st.st_uid == 0 && lchown(accounts, uid, gid) < 0) {
        rc = -errno;
        set_err(err, accounts, "chown", rc);
    }
    free(accounts);
    return rc;
}

int store_fs_account_next_read(const char *state_dir, const char *ca, char **key_pem)
{
    if (!store_name_ok(ca))
        return -EINVAL;
    char *path = account_file(state_dir, ca, "account.key.next");
    int rc = get_file(path, key_pem);
    free(path);
    return rc;
}

int store_fs_account_next_write(const char *state_dir, const char *ca, const char *key_pem,
                                char **err)
{
    if (!store_name_ok(ca)) {
        set_err(err, ca ? ca : "", "account name", -EINVAL);
        return -EINVAL;
    }
    char *dir = xasprintf("%s/accounts/%s", state_dir, ca);
    char *path = account_file(state_dir, ca, "account.key.next");
    int rc = make_dirs(dir, err);
    if (rc == 0)
        rc = put_file(path, key_pem, 0600, err);
    free(path);
    free(dir);
    return rc;
}

int store_fs_account_rollover(const char *state_dir, const char *ca, const char *key_pem,
                              const char *account_json, char **err)
{
    int rc = store_fs_account_write(state_dir, ca, key_pem, account_json, err);

    if (rc < 0)
        return rc;
    char *dir = xasprintf("%s/accounts/%s", state_dir, ca);
    char *path = account_file(state_dir, ca, "account.key.next");
    rc = store_fs_remove(dir, path, err);
    free(path);
    free(dir);
    return rc;
}

int store_fs_account_retire(const char *state_dir, const char *ca, int64_t t, char **err)
{
    /* the JSON first: without it the account is absent even if the key
     * could not be moved */
    static const char *const files[] = {"account.json", "account.key"};
    int rc = 0;

    if (!store_name_ok(ca)) {
        set_err(err, ca ? ca : "", "account name", -EINVAL);
        return -EINVAL;
    }
    for (size_t i = 0; i < 2 && rc == 0; i++) {
        char *from = account_file(state_dir, ca, files[i]);
        char *to = xasprintf("%s.deactivated-%lld", from, (long long)t);
        if (rename(from, to) < 0) {
            rc = -errno;
            set_err(err, from, "rename", rc);
        }
        free(from);
        free(to);
    }
    char *dir = xasprintf("%s/accounts/%s", state_dir, ca);
    int r = store_fsync_dir(dir);
    if (rc == 0 && r < 0) {
        rc = r;
        set_err(err, dir, "fsync-dir", rc);
    }
    free(dir);
    return rc;
}

/* ---- certificate generations --------------------------------------------- */

void store_cert_fini(struct store_cert *c)
{
    if (c == NULL)
        return;
    free(c->dir);
    free(c->generation);
    free(c->cert_pem);
    free(c->chain_pem);
    free(c->fullchain_pem);
    free_secret(c->key_pem);
    free(c->meta_json);
    memset(c, 0, sizeof(*c));
}

/* A generation name: 16 characters of UTC time, '-', 4 hex digits. */
static bool is_generation(const char *s)
{
    size_t n = strlen(s);

    return n == 21 && s[8] == 'T' && s[15] == 'Z' && s[16] == '-' && s[0] >= '0' && s[0] <= '9';
}

/* Reads the target of NAME's current link into buf; -ENOENT if none. A
 * target that is not a plain generation name is inconsistent state. */
static int read_current(const char *name_dir, char *buf, size_t size)
{
    char *link = xasprintf("%s/current", name_dir);
    ssize_t n = readlink(link, buf, size - 1);
    int rc = 0;

    if (n < 0)
        rc = -errno;
    else if ((size_t)n >= size - 1)
        rc = ERR_BAD_STATE;
    else
        buf[n] = '\0';
    if (rc == 0 && (!store_name_ok(buf) || strchr(buf, '/') != NULL))
        rc = ERR_BAD_STATE;
    free(link);
    return rc;
}

int store_fs_cert_current_gen(const char *state_dir, const char *name, char **gen)
{
    char target[NAME_MAX + 1];

    *gen = NULL;
    if (!store_name_ok(name)) {
        log_error(LOG_STORE, "certificate: invalid name \"%s\"", name ? name : "");
        return -EINVAL;
    }
    char *name_dir = xasprintf("%s/certs/%s", state_dir, name);
    int rc = read_current(name_dir, target, sizeof(target));
    if (rc < 0 && rc != -ENOENT)
        log_error(LOG_STORE, "%s/current: readlink: %s", name_dir, err_str(rc));
    free(name_dir);
    if (rc == 0)
        *gen = xstrdup(target);
    return rc;
}

int store_fs_cert_read_current(const char *state_dir, const char *name, bool with_key,
                               struct store_cert *out)
{
    struct store_cert c = {0};
    char target[NAME_MAX + 1];
    char *name_dir = NULL, *path = NULL;
    int rc;
    static const struct {
        const char *file;
        size_t off;
        bool key;
    } files[] = {
        {"cert.pem", offsetof(struct store_cert, cert_pem), false},
        {"chain.pem", offsetof(struct store_cert, chain_pem), false},
        {"fullchain.pem", offsetof(struct store_cert, fullchain_pem), false},
        {"key.pem", offsetof(struct store_cert, key_pem), true},
        {"meta.json", offsetof(struct store_cert, meta_json), false},
    };

    if (!store_name_ok(name)) {
        log_error(LOG_STORE, "certificate: invalid name \"%s\"", name ? name : "");
        return -EINVAL;
    }
    name_dir = xasprintf("%s/certs/%s", state_dir, name);
    /* resolve the link once: every file below comes from this generation
     * even if a new one is swapped in while we read */
    for (int attempt = 0;; attempt++) {
        rc = read_current(name_dir, target, sizeof(target));
        if (rc < 0) {
            if (rc != -ENOENT)
                log_error(LOG_STORE, "%s/current: readlink: %s", name_dir, err_str(rc));
            goto out;
        }
        c.generation = xstrdup(target);
        c.dir = xasprintf("%s/%s", name_dir, target);
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            if (files[i].key && !with_key)
                continue;
            free(path);
            path = xasprintf("%s/%s", c.dir, files[i].file);
            char **slot = (char **)((char *)&c + files[i].off);
            rc = store_read_file(path, slot, NULL);
            if (rc < 0)
                break;
        }
        if (rc == 0)
            break;
        /* a file of the generation we resolved vanished: if current moved
         * on meanwhile, the old one was pruned under us; read the new one */
        char again[NAME_MAX + 1];
        if (rc == -ENOENT && attempt < 3 && read_current(name_dir, again, sizeof(again)) == 0 &&
            strcmp(again, target) != 0) {
            store_cert_fini(&c);
            continue;
        }
        /* current points only at complete generations: a missing file
         * there is damage, not absence */
        log_error(LOG_STORE, "%s: read: %s", path, err_str(rc));
        if (rc == -ENOENT)
            rc = ERR_BAD_STATE;
        goto out;
    }
    *out = c;
    memset(&c, 0, sizeof(c));
    rc = 0;
out:
    store_cert_fini(&c);
    free(path);
    free(name_dir);
    return rc;
}

/* Creates a new file that nobody else can have open (O_EXCL) with its final
 * mode, writes it and (when sync) fsyncs it. Inside a generation directory
 * that `current` does not point to yet, so no temp + rename is needed. */
static int write_new(const char *path, const char *data, mode_t mode, bool sync, char **err)
{
    const char *step = "open";
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    int rc = 0;
    size_t len = strlen(data);

    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    rc = store_fd_fill(fd, mode, data, len, sync, &step);
out:
    if (rc < 0)
        set_err(err, path, step, rc);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The generation directories under name_dir, sorted oldest first. */
static int list_generations(const char *name_dir, char ***out, size_t *n_out)
{
    DIR *d = opendir(name_dir);
    char **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;

    if (d == NULL)
        return -errno;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (!is_generation(e->d_name))
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        v = xreallocarray_grow(v, &cap, n + 1, sizeof(*v));
        v[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_str);
    *out = v;
    *n_out = n;
    return 0;
}

static void free_list(char **v, size_t n)
{
    store_list_free(v, n);
}

int store_fs_cert_list(const char *state_dir, const char *name, char ***gens, size_t *n)
{
    if (!store_name_ok(name))
        return -EINVAL;
    char *name_dir = xasprintf("%s/certs/%s", state_dir, name);
    int rc = list_generations(name_dir, gens, n);
    free(name_dir);
    if (rc == -ENOENT) {
        *gens = NULL;
        *n = 0;
        rc = 0;
    }
    return rc;
}

/* A new generation name that sorts after every existing one of the same
 * second, so that "newest" by name is newest in fact. */
static char *new_generation_name(char **gens, size_t n)
{
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    char rnd[5];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    store_rand_hex(rnd, 4);
    if (n > 0 && strncmp(gens[n - 1], stamp, 16) == 0) {
        unsigned long last = strtoul(gens[n - 1] + 17, NULL, 16);
        if (last < 0xffff)
            snprintf(rnd, sizeof(rnd), "%04lx", last + 1);
    }
    return xasprintf("%s-%s", stamp, rnd);
}

/* Keeps the newest `keep` generations and the current one; removes the
 * rest. Failures here do not fail a write (the new generation is in
 * place); the next write, prune or sweep tries again. Returns the first
 * failure or 0. */
static int prune_generations(const char *name_dir, const char *current, int keep, bool sync)
{
    char **gens = NULL;
    size_t n = 0;
    int rc;

    if (keep < 1)
        keep = 1;
    rc = list_generations(name_dir, &gens, &n);
    if (rc < 0)
        return rc;
    int fd = open(name_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
    } else {
        bool removed = false;
        for (size_t i = 0; i + (size_t)keep < n; i++) {
            if (strcmp(gens[i], current) == 0)
                continue;
            int r = store_remove_tree_at(fd, gens[i]);
            if (r == 0)
                removed = true;
            else if (rc == 0)
                rc = r;
        }
        if (removed && sync)
            fsync(fd);
        close(fd);
    }
    free_list(gens, n);
    return rc;
}

int store_fs_cert_prune(const char *state_dir, const char *name, int keep, char **err)
{
    char target[NAME_MAX + 1];

    if (!store_name_ok(name)) {
        set_err(err, name ? name : "", "certificate name", -EINVAL);
        return -EINVAL;
    }
    char *name_dir = xasprintf("%s/certs/%s", state_dir, name);
    int rc = read_current(name_dir, target, sizeof(target));
    if (rc == -ENOENT)
        target[0] = '\0'; /* nothing current: keep the newest anyway */
    else if (rc < 0)
        set_err(err, name_dir, "readlink current", rc);
    if (rc == 0 || rc == -ENOENT) {
        rc = prune_generations(name_dir, target, keep, true);
        if (rc == -ENOENT)
            rc = 0;
        if (rc < 0)
            set_err(err, name_dir, "prune", rc);
    }
    free(name_dir);
    return rc;
}

void store_fs_gen_fini(struct store_fs_gen *g)
{
    free(g->name_dir);
    free(g->gen);
    free(g->gen_dir);
    memset(g, 0, sizeof(*g));
}

void store_fs_gen_abort(struct store_fs_gen *g)
{
    if (g->gen != NULL && g->name_dir != NULL) {
        int fd = open(g->name_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            store_remove_tree_at(fd, g->gen);
            close(fd);
        }
    }
    store_fs_gen_fini(g);
}

/* meta.json is written by the seal, last: its presence marks the generation
 * complete (store_fs_sweep removes a generation without it) */
static const struct {
    const char *file;
    mode_t mode;
} gen_files[] = {
    {"key.pem", 0600},
    {"cert.pem", 0644},
    {"chain.pem", 0644},
    {"fullchain.pem", 0644},
};

int store_fs_gen_stage(const char *state_dir, const struct store_cert_put *p, bool sync,
                       struct store_fs_gen *g, char **err)
{
    const char *name = p->name;
    const char *data[] = {p->key_pem, p->cert_pem, p->chain_pem ? p->chain_pem : "",
                          p->fullchain_pem};
    char *path = NULL;
    char **gens = NULL;
    size_t n_gens = 0;
    int rc;

    memset(g, 0, sizeof(*g));
    if (!store_name_ok(name)) {
        rc = -EINVAL;
        set_err(err, name ? name : "", "certificate name", rc);
        return rc;
    }
    if (p->cert_pem == NULL || p->fullchain_pem == NULL || p->key_pem == NULL) {
        rc = -EINVAL;
        set_err(err, name, "certificate write", rc);
        return rc;
    }
    g->name_dir = xasprintf("%s/certs/%s", state_dir, name);
    rc = make_dirs(g->name_dir, err);
    if (rc < 0)
        goto fail;
    rc = list_generations(g->name_dir, &gens, &n_gens);
    if (rc < 0) {
        set_err(err, g->name_dir, "opendir", rc);
        goto fail;
    }
    for (int tries = 0;; tries++) {
        g->gen = new_generation_name(gens, n_gens);
        g->gen_dir = xasprintf("%s/%s", g->name_dir, g->gen);
        if (mkdir(g->gen_dir, 0700) == 0)
            break;
        rc = -errno;
        free(g->gen);
        free(g->gen_dir);
        g->gen = g->gen_dir = NULL;
        if (rc != -EEXIST || tries >= 8) {
            set_err(err, g->name_dir, "mkdir", rc);
            goto fail;
        }
        /* somebody made that name meanwhile: look again so ours sorts last */
        free_list(gens, n_gens);
        gens = NULL;
        n_gens = 0;
        rc = list_generations(g->name_dir, &gens, &n_gens);
        if (rc < 0) {
            set_err(err, g->name_dir, "opendir", rc);
            goto fail;
        }
    }
    for (size_t i = 0; i < sizeof(gen_files) / sizeof(gen_files[0]); i++) {
        free(path);
        path = xasprintf("%s/%s", g->gen_dir, gen_files[i].file);
        rc = write_new(path, data[i], gen_files[i].mode, sync, err);
        if (rc < 0)
            goto fail;
    }
    /* certbot's layout names the key privkey.pem: hooks reading
     * $RENEWED_LINEAGE/privkey.pem find it through this link */
    free(path);
    path = xasprintf("%s/privkey.pem", g->gen_dir);
    if (symlink("key.pem", path) < 0) {
        rc = -errno;
        set_err(err, path, "symlink", rc);
        goto fail;
    }
    rc = 0;
    goto out;
fail:
    store_fs_gen_abort(g);
out:
    free_list(gens, n_gens);
    free(path);
    return rc;
}

int store_fs_gen_seal(const char *state_dir, const struct store_cert_put *p, bool sync,
                      struct store_fs_gen *g, int *mark_rc, char **err)
{
    char *path = xasprintf("%s/meta.json", g->gen_dir);
    int rc = write_new(path, p->meta_json ? p->meta_json : "{}", 0644, sync, err);

    free(path);
    if (rc == 0 && sync) {
        rc = store_fsync_dir(g->gen_dir);
        if (rc < 0)
            set_err(err, g->gen_dir, "fsync-dir", rc);
    }
    if (rc < 0) {
        store_fs_gen_abort(g);
        return rc;
    }
    /* the mark before the swap: no crash leaves this generation current
     * without it (its failure is reported apart and does not stop the put) */
    if (p->mark_redeploy && mark_rc != NULL)
        *mark_rc = store_fs_redeploy_mark_opt(state_dir, p->name, sync, NULL);
    return 0;
}

int store_fs_gen_publish(struct store_fs_gen *g, bool sync, char **err)
{
    char *link = xasprintf("%s/current", g->name_dir);
    char *tmp_link = NULL;
    int rc;

    /* swap: a fresh symlink renamed over `current` is atomic, unlike
     * unlink + symlink, so readers always see an old or a new target */
    for (int tries = 0;; tries++) {
        char rnd[9];
        store_rand_hex(rnd, 8);
        free(tmp_link);
        tmp_link = xasprintf("%s/.tmp-current-%s", g->name_dir, rnd);
        if (symlink(g->gen, tmp_link) == 0)
            break;
        rc = -errno;
        if (rc != -EEXIST || tries >= 8) {
            set_err(err, tmp_link, "symlink", rc);
            goto fail;
        }
    }
    if (rename(tmp_link, link) < 0) {
        rc = -errno;
        set_err(err, link, "rename", rc);
        unlink(tmp_link);
        goto fail;
    }
    g->published = true;
    rc = 0;
    if (sync) {
        rc = store_fsync_dir(g->name_dir);
        /* current already points at the new generation: keep it */
        if (rc < 0)
            set_err(err, g->name_dir, "fsync-dir", rc);
    }
    goto out;
fail:
    store_fs_gen_abort(g);
out:
    free(link);
    free(tmp_link);
    return rc;
}

void store_fs_gen_finish(struct store_fs_gen *g, int keep, bool sync, char **generation_out)
{
    (void)prune_generations(g->name_dir, g->gen, keep, sync);
    if (generation_out != NULL) {
        *generation_out = g->gen;
        g->gen = NULL;
    }
    store_fs_gen_fini(g);
}

int store_fs_cert_write(const char *state_dir, const struct store_cert_put *p, int *mark_rc,
                        char **generation_out, char **err)
{
    struct store_fs_gen g;
    int rc = store_fs_gen_stage(state_dir, p, true, &g, err);

    if (rc == 0)
        rc = store_fs_gen_seal(state_dir, p, true, &g, mark_rc, err);
    if (rc == 0)
        rc = store_fs_gen_publish(&g, true, err);
    if (rc == 0)
        store_fs_gen_finish(&g, p->keep, true, generation_out);
    store_fs_gen_fini(&g);
    return rc;
}

/* ---- orders in flight ---------------------------------------------------- */

int store_fs_order_read(const char *state_dir, const char *name, char **json)
{
    if (!store_name_ok(name)) {
        log_error(LOG_STORE, "order: invalid name \"%s\"", name ? name : "");
        return -EINVAL;
    }
    char *path = xasprintf("%s/orders/%s.json", state_dir, name);
    int rc = get_file(path, json);
    free(path);
    return rc;
}

int store_fs_order_write(const char *state_dir, const char *name, const char *json, char **err)
{
    char *tmp = NULL;
    int rc = store_fs_order_stage(state_dir, name, json, true, &tmp, err);

    if (rc == 0) {
        char *path = xasprintf("%s/orders/%s.json", state_dir, name);
        const char *step = NULL;
        rc = store_commit_file(tmp, path, &step);
        if (rc < 0)
            set_err(err, path, step, rc);
        free(path);
    }
    free(tmp);
    return rc;
}

int store_fs_order_stage(const char *state_dir, const char *name, const char *json, bool sync,
                         char **tmp_out, char **err)
{
    *tmp_out = NULL;
    if (!store_name_ok(name)) {
        set_err(err, name ? name : "", "order name", -EINVAL);
        return -EINVAL;
    }
    char *dir = xasprintf("%s/orders", state_dir);
    char *path = xasprintf("%s/%s.json", dir, name);
    const char *step = NULL;
    /* 0600: the order holds the pending certificate's private key */
    int rc = make_dirs(dir, err);

    if (rc == 0) {
        rc = store_stage_file_opt(path, json, strlen(json), 0600, (uid_t)-1, (gid_t)-1, sync,
                                  tmp_out, &step);
        if (rc < 0)
            set_err(err, path, step, rc);
    }
    free(path);
    free(dir);
    return rc;
}

int store_fs_order_create(const char *state_dir, const char *name, const char *json,
                          char **path_out, char **err)
{
    *path_out = NULL;
    if (!store_name_ok(name)) {
        set_err(err, name ? name : "", "order name", -EINVAL);
        return -EINVAL;
    }
    char *dir = xasprintf("%s/orders", state_dir);
    char *path = xasprintf("%s/%s.json", dir, name);
    const char *step = "open";
    int rc = make_dirs(dir, err);

    if (rc < 0)
        goto out;
    /* 0600: the order holds the pending certificate's private key */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = -errno;
        if (rc != -EEXIST)
            set_err(err, path, step, rc);
        goto out;
    }
    rc = store_fd_fill(fd, 0600, json, strlen(json), false, &step);
    if (rc < 0) {
        set_err(err, path, step, rc);
        unlink(path);
        goto out;
    }
    *path_out = path;
    path = NULL;
out:
    free(path);
    free(dir);
    return rc;
}

int store_fs_order_rename(const char *state_dir, const char *name, const char *tmp, char **err)
{
    char *path = xasprintf("%s/orders/%s.json", state_dir, name);
    const char *step = NULL;
    int rc = store_rename_file(tmp, path, &step);

    if (rc < 0)
        set_err(err, path, step, rc);
    free(path);
    return rc;
}

/* Removes STATE/orders/NAME SUFFIX; absent is fine. */
static int orders_remove(const char *state_dir, const char *name, const char *suffix, bool sync,
                         char **err)
{
    if (!store_name_ok(name)) {
        set_err(err, name ? name : "", "order name", -EINVAL);
        return -EINVAL;
    }
    char *dir = xasprintf("%s/orders", state_dir);
    char *path = xasprintf("%s/%s%s", dir, name, suffix);
    int rc = 0;

    if (sync) {
        rc = store_fs_remove(dir, path, err);
    } else if (unlink(path) < 0 && errno != ENOENT) {
        rc = -errno;
        set_err(err, path, "unlink", rc);
    }
    free(path);
    free(dir);
    return rc;
}

int store_fs_order_settle_opt(const char *state_dir, const char *name, bool sync, char **err)
{
    int rc = orders_remove(state_dir, name, ".json", sync, err);
    int rc2 = orders_remove(state_dir, name, ".redeploy", sync, rc < 0 ? NULL : err);

    return rc < 0 ? rc : rc2;
}

int store_fs_order_settle(const char *state_dir, const char *name, char **err)
{
    return store_fs_order_settle_opt(state_dir, name, true, err);
}

int store_fs_redeploy_mark(const char *state_dir, const char *name, char **err)
{
    return store_fs_redeploy_mark_opt(state_dir, name, true, err);
}

int store_fs_redeploy_mark_opt(const char *state_dir, const char *name, bool sync, char **err)
{
    if (!store_name_ok(name)) {
        set_err(err, name ? name : "", "redeploy mark", -EINVAL);
        return -EINVAL;
    }
    char *dir = xasprintf("%s/orders", state_dir);
    char *path = xasprintf("%s/%s.redeploy", dir, name);
    int rc = make_dirs(dir, err);
    if (rc == 0 && sync) {
        rc = put_file(path, "", 0600, err);
    } else if (rc == 0) {
        /* empty: a crash before the batch's sync leaves no mark or an
         * empty one, never a partial one */
        char *tmp = NULL;
        const char *step = NULL;
        rc = store_stage_file_opt(path, "", 0, 0600, (uid_t)-1, (gid_t)-1, false, &tmp, &step);
        if (rc == 0)
            rc = store_rename_file(tmp, path, &step);
        if (rc < 0)
            set_err(err, path, step, rc);
        free(tmp);
    }
    free(path);
    free(dir);
    return rc;
}

bool store_fs_redeploy_marked(const char *state_dir, const char *name)
{
    if (!store_name_ok(name))
        return false;
    char *path = xasprintf("%s/orders/%s.redeploy", state_dir, name);
    bool yes = access(path, F_OK) == 0;
    free(path);
    return yes;
}

/* ---- start-up sweep ------------------------------------------------------ */

static bool is_temp(const char *s)
{
    return strncmp(s, ".tmp-", 5) == 0;
}

/* Removes ".tmp-*" entries directly inside dir. */
static int sweep_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int count = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (!is_temp(e->d_name))
            continue;
        int rc = store_remove_tree_at(dirfd(d), e->d_name);
        if (rc < 0) {
            log_warn(LOG_STORE, "%s/%s: remove leftover temp file: %s", dir, e->d_name,
                     err_str(rc));
            continue;
        }
        log_info(LOG_STORE, "%s/%s: removed leftover temp file", dir, e->d_name);
        count++;
    }
    if (count > 0)
        fsync(dirfd(d));
    closedir(d);
    return count;
}

/* Calls fn for each subdirectory of dir (not following symlinks). */
static int each_subdir(const char *dir, int (*fn)(const char *sub))
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int count = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        char *sub = xasprintf("%s/%s", dir, e->d_name);
        count += fn(sub);
        free(sub);
    }
    closedir(d);
    return count;
}

/* certs/NAME: temp links, then every generation's temp files, then the
 * incomplete generations (no meta.json) that current does not name. */
static int sweep_cert(const char *name_dir)
{
    char target[NAME_MAX + 1];
    char **gens = NULL;
    size_t n = 0;
    int count = sweep_dir(name_dir);

    if (read_current(name_dir, target, sizeof(target)) < 0)
        target[0] = '\0';
    if (list_generations(name_dir, &gens, &n) < 0)
        return count;
    int fd = open(name_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (size_t i = 0; i < n && fd >= 0; i++) {
        char *gen_dir = xasprintf("%s/%s", name_dir, gens[i]);
        count += sweep_dir(gen_dir);
        free(gen_dir);
        if (strcmp(gens[i], target) == 0)
            continue;
        char *meta = xasprintf("%s/meta.json", gens[i]);
        struct stat st;
        bool complete = fstatat(fd, meta, &st, AT_SYMLINK_NOFOLLOW) == 0;
        free(meta);
        if (complete)
            continue;
        int rc = store_remove_tree_at(fd, gens[i]);
        if (rc < 0) {
            log_warn(LOG_STORE, "%s/%s: remove incomplete generation: %s", name_dir, gens[i],
                     err_str(rc));
            continue;
        }
        log_info(LOG_STORE, "%s/%s: removed incomplete generation", name_dir, gens[i]);
        count++;
    }
    if (fd >= 0)
        close(fd);
    free_list(gens, n);
    return count;
}

int store_fs_sweep(const char *state_dir)
{
    char *accounts = xasprintf("%s/accounts", state_dir);
    char *certs = xasprintf("%s/certs", state_dir);
    char *orders = xasprintf("%s/orders", state_dir);
    int count = 0;

    count += sweep_dir(state_dir);
    count += sweep_dir(accounts);
    count += each_subdir(accounts, sweep_dir);
    count += sweep_dir(certs);
    count += each_subdir(certs, sweep_cert);
    count += sweep_dir(orders);
    free(accounts);
    free(certs);
    free(orders);
    return count;
}
