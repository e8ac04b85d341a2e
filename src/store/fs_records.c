/* The file backend's small records beside the generations: notes
 * (certs/NAME/GENERATION/NOTE.json: ARI state, revocation), per-certificate history
 * (history/NAME.jsonl), expiry alerts (alerts/NAME.KIND) and the
 * webhook outbox (outbox/ID.json, outbox/dead/ID.json). Writers
 * run off the loop and never log (they hand back "PATH: STEP: REASON");
 * readers and the start-up scans log. What a record means belongs to its
 * caller (reactor, deploy/outbox.c); this file only keeps it. */
#include "store/store.h"
#include "store/store_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
    *err = xasprintf("%s: %s: %s", path, step != NULL ? step : "write", err_str(rc));
}

static int put_file(const char *path, const char *data, size_t len, mode_t mode, char **err)
{
    const char *step = NULL;
    int rc = store_write_atomic(path, data, len, mode, (uid_t)-1, (gid_t)-1, &step);

    if (rc < 0)
        set_err(err, path, step, rc);
    return rc;
}

int store_fs_remove(const char *dir, const char *path, char **err)
{
    if (unlink(path) < 0) {
        if (errno == ENOENT)
            return 0;
        int rc = -errno;
        set_err(err, path, "unlink", rc);
        return rc;
    }
    int rc = store_fsync_dir(dir);
    if (rc < 0)
        set_err(err, dir, "fsync-dir", rc);
    return rc;
}

/* ---- notes beside a generation ------------------------------------------- */

static bool note_ok(const char *note)
{
    if (note == NULL || note[0] == '\0' || strlen(note) > 32)
        return false;
    for (const char *p = note; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || *p == '-'))
            return false;
    return true;
}

static char *note_path(const char *state_dir, const char *name, const char *generation,
                       const char *note)
{
    if (!store_name_ok(name) || !store_name_ok(generation) || !note_ok(note))
        return NULL;
    return xasprintf("%s/certs/%s/%s/%s.json", state_dir, name, generation, note);
}

int store_fs_note_read(const char *state_dir, const char *name, const char *generation,
                       const char *note, char **json)
{
    char *path = note_path(state_dir, name, generation, note);

    if (path == NULL)
        return -EINVAL;
    /* a missing or unreadable note is the caller's normal case (the ARI
     * window is fetched again, the generation is not revoked) */
    int rc = store_read_file(path, json, NULL);
    free(path);
    return rc;
}

int store_fs_note_write(const char *state_dir, const char *name, const char *generation,
                        const char *note, const char *json, char **err)
{
    char *path = note_path(state_dir, name, generation, note);

    if (path == NULL) {
        set_err(err, name ? name : "", "note name", -EINVAL);
        return -EINVAL;
    }
    int rc = put_file(path, json, strlen(json), 0644, err);
    free(path);
    return rc;
}

/* ---- per-certificate history --------------------------------------------- */

#define HIST_FILE_MAX (64 * 1024)  /* past this a history is trimmed ... */
#define HIST_FILE_KEEP (32 * 1024) /* ... to its newest lines within this */

static char *history_path(const char *state_dir, const char *name)
{
    return xasprintf("%s/history/%s.jsonl", state_dir, name);
}

int store_fs_history_read(const char *state_dir, const char *name, char **text, size_t *len)
{
    if (!store_name_ok(name))
        return -EINVAL;
    char *path = history_path(state_dir, name);
    int rc = store_read_file(path, text, len);
    if (rc < 0 && rc != -ENOENT)
        log_warn(LOG_STORE, "%s: %s (the certificate's history starts afresh)", path, err_str(rc));
    free(path);
    return rc;
}

/* Keeps the newest whole lines of path (open as fd, size bytes) within
 * HIST_FILE_KEEP, by an atomic rewrite. */
static int trim(const char *path, int fd, off_t size, const char **step)
{
    char *buf = xmalloc((size_t)size);
    ssize_t got = pread(fd, buf, (size_t)size, 0);
    int rc;

    *step = "read";
    if (got != size) {
        free(buf);
        return got < 0 ? -errno : -EIO;
    }
    size_t from = (size_t)size - HIST_FILE_KEEP;
    while (from < (size_t)size && buf[from - 1] != '\n')
        from++;
    *step = NULL;
    rc =
        store_write_atomic(path, buf + from, (size_t)size - from, 0600, (uid_t)-1, (gid_t)-1, step);
    free(buf);
    return rc;
}

/* Appends line to path and makes it durable when sync (or trims the file:
 * read and write, since the trim reads it back). */
static int append_line(const char *path, const char *line, bool sync, const char **step)
{
    *step = "open";
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    size_t len = strlen(line);
    *step = "write";
    int rc = write(fd, line, len) == (ssize_t)len ? 0 : -EIO;
    struct stat st;
    if (rc == 0 && fstat(fd, &st) == 0 && st.st_size > HIST_FILE_MAX) {
        rc = trim(path, fd, st.st_size, step);
    } else if (rc == 0 && sync) {
        *step = "fsync";
        rc = fdatasync(fd) < 0 ? -errno : 0;
    }
    close(fd);
    return rc;
}

int store_fs_history_append(const char *state_dir, char *const *names, char *const *lines, size_t n,
                            char **err)
{
    return store_fs_history_append_opt(state_dir, names, lines, n, true, err);
}

int store_fs_history_append_opt(const char *state_dir, char *const *names, char *const *lines,
                                size_t n, bool sync, char **err)
{
    char *dir = xasprintf("%s/history", state_dir);
    int rc = store_mkdirs(dir, 0700);

    if (rc < 0)
        set_err(err, dir, "mkdir", rc);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *step = NULL;
        if (!store_name_ok(names[i])) {
            rc = -EINVAL;
            set_err(err, names[i], "history name", rc);
            break;
        }
        char *path = history_path(state_dir, names[i]);
        rc = append_line(path, lines[i], sync, &step);
        if (rc < 0)
            set_err(err, path, step, rc);
        free(path);
    }
    free(dir);
    return rc;
}

/* ---- hub event cursors ----------------------------------------------------- */

static bool cursor_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 200)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x21 || (unsigned char)id[i] > 0x7e)
            return false;
    return true;
}

int store_fs_hub_cursor_read(const char *state_dir, const char *hub, char **id)
{
    if (!store_name_ok(hub))
        return -EINVAL;
    char *path = xasprintf("%s/hubs/%s.last-event-id", state_dir, hub);
    char *text = NULL;
    int rc = store_read_file(path, &text, NULL);

    if (rc == 0) {
        text[strcspn(text, "\n")] = '\0';
        if (cursor_ok(text)) {
            *id = text;
            text = NULL;
        } else {
            log_warn(LOG_STORE, "%s: not an event id; the stream starts without one", path);
            rc = ERR_PARSE;
        }
    }
    free(text);
    free(path);
    return rc;
}

int store_fs_hub_cursor_write(const char *state_dir, const char *hub, const char *id, char **err)
{
    if (!store_name_ok(hub) || !cursor_ok(id)) {
        set_err(err, hub, "event id", -EINVAL);
        return -EINVAL;
    }
    char *dir = xasprintf("%s/hubs", state_dir);
    char *path = xasprintf("%s/%s.last-event-id", dir, hub);
    char *text = xasprintf("%s\n", id);
    int rc = store_mkdirs(dir, 0700);

    if (rc < 0)
        set_err(err, path, "mkdir", rc);
    else
        rc = put_file(path, text, strlen(text), 0600, err);
    free(text);
    free(path);
    free(dir);
    return rc;
}

/* ---- expiry alerts ------------------------------------------------------- */

char *store_fs_alert_path(const char *state_dir, const char *name, enum store_alert kind)
{
    if (name == NULL)
        return xasprintf("%s/alerts", state_dir);
    return xasprintf("%s/alerts/%s.%s", state_dir, name, store_alert_name(kind));
}

int store_fs_alert_read(const char *state_dir, const char *name, enum store_alert kind, int64_t *t)
{
    if (!store_name_ok(name))
        return -EINVAL;
    char *path = store_fs_alert_path(state_dir, name, kind);
    char *text = NULL, *end = NULL;
    int rc = store_read_file(path, &text, NULL);

    if (rc == 0) {
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (errno == 0 && end != text && v > 0) {
            *t = (int64_t)v;
        } else {
            log_warn(LOG_STORE, "%s: not a time; the next %s alert goes out when due", path,
                     store_alert_name(kind));
            rc = ERR_PARSE;
        }
    } else if (rc != -ENOENT) {
        /* as before the store had an interface: unreadable is absent */
        rc = -ENOENT;
    }
    free(text);
    free(path);
    return rc;
}

int store_fs_alert_write(const char *state_dir, const char *name, enum store_alert kind, int64_t t,
                         char **err)
{
    char text[32];

    if (!store_name_ok(name)) {
        set_err(err, name ? name : "", "alert name", -EINVAL);
        return -EINVAL;
    }
    char *dir = store_fs_alert_path(state_dir, NULL, kind);
    char *path = store_fs_alert_path(state_dir, name, kind);
    int rc;

    if (t <= 0) {
        rc = store_fs_remove(dir, path, err);
        goto out;
    }
    rc = store_mkdirs(dir, 0700);
    if (rc < 0) {
        set_err(err, path, "mkdir", rc);
        goto out;
    }
    int n = snprintf(text, sizeof(text), "%" PRId64 "\n", t);
    rc = put_file(path, text, (size_t)n, 0600, err);
out:
    free(path);
    free(dir);
    return rc;
}

/* The length of the certificate name in alert file n (NAME.KIND), or 0
 * when n is no alert file. */
static size_t alert_name_len(const char *n)
{
    size_t len = strlen(n);

    for (int k = 0; k < STORE_ALERT__MAX; k++) {
        const char *kind = store_alert_name((enum store_alert)k);
        size_t kl = strlen(kind);
        if (len > kl + 1 && strcmp(n + len - kl, kind) == 0 && n[len - kl - 1] == '.')
            return len - kl - 1;
    }
    return 0;
}

int store_fs_alerts_sweep(const char *state_dir, bool (*known)(const char *name, void *arg),
                          void *arg)
{
    char *dir = store_fs_alert_path(state_dir, NULL, STORE_ALERT_EXPIRING);
    DIR *d = opendir(dir);
    struct dirent *e;
    int removed = 0;

    if (d == NULL) {
        if (errno != ENOENT)
            log_warn(LOG_STORE, "%s: %s", dir, strerror(errno));
        free(dir);
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        size_t len = alert_name_len(n);
        bool tmp = strncmp(n, ".tmp-", 5) == 0;
        if (!tmp && (n[0] == '.' || len == 0))
            continue;
        char *name = tmp ? NULL : xstrndup(n, len);
        if (name != NULL && known(name, arg)) {
            free(name);
            continue;
        }
        char *path = xasprintf("%s/%s", dir, n);
        if (unlink(path) == 0) {
            removed++;
            if (tmp)
                log_info(LOG_STORE, "%s: removed (an interrupted write)", path);
            else
                log_info(LOG_STORE, "%s: removed (certificate %s is no longer configured)", path,
                         name);
        } else if (errno != ENOENT) {
            log_warn(LOG_STORE, "%s: unlink: %s", path, strerror(errno));
        }
        free(path);
        free(name);
    }
    closedir(d);
    if (removed > 0)
        (void)store_fsync_dir(dir);
    free(dir);
    return removed;
}

/* ---- webhook outbox ------------------------------------------------------ */

char *store_fs_outbox_path(const char *state_dir, bool dead, const char *id)
{
    const char *sub = dead ? "outbox/dead" : "outbox";

    if (id == NULL)
        return xasprintf("%s/%s", state_dir, sub);
    return xasprintf("%s/%s/%s.json", state_dir, sub, id);
}

/* A record we cannot use goes to dead/ at once, so it is neither lost nor
 * retried forever. Inline: this runs before the loop does. */
static void bury_bad(const char *dir, const char *dead_dir, const char *file, const char *why)
{
    char *from = xasprintf("%s/%s", dir, file);
    char *to = xasprintf("%s/%s", dead_dir, file);

    if (rename(from, to) < 0)
        log_error(LOG_STORE, "webhook outbox %s: %s; rename to %s: %s", from, why, to,
                  strerror(errno));
    else
        log_warn(LOG_STORE, "webhook outbox %s: %s; moved to %s", from, why, dead_dir);
    free(from);
    free(to);
}

int store_fs_outbox_load(const char *state_dir, store_outbox_each_fn each, void *arg)
{
    char *dir = store_fs_outbox_path(state_dir, false, NULL);
    char *dead_dir = store_fs_outbox_path(state_dir, true, NULL);
    DIR *d = NULL;
    struct dirent *e;
    int count = 0;
    int rc = store_mkdirs(dead_dir, 0700);

    if (rc < 0) {
        log_error(LOG_STORE, "webhook outbox %s: mkdir: %s", dead_dir, err_str(rc));
        goto out;
    }
    d = opendir(dir);
    if (d == NULL) {
        rc = -errno;
        log_error(LOG_STORE, "webhook outbox %s: opendir: %s", dir, err_str(rc));
        goto out;
    }
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        size_t len = strlen(name);
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strcmp(name, "dead") == 0)
            continue;
        char *path = xasprintf("%s/%s", dir, name);
        if (strncmp(name, ".tmp-", 5) == 0) {
            /* a write interrupted by a crash: the record it replaced is intact */
            if (unlink(path) == 0)
                log_info(LOG_STORE, "webhook outbox: removed leftover %s", path);
            free(path);
            continue;
        }
        char *id = len > 5 && strcmp(name + len - 5, ".json") == 0 ? xstrndup(name, len - 5) : NULL;
        if (id == NULL || !store_name_ok(id)) {
            log_debug(LOG_STORE, "webhook outbox: ignoring %s", path);
            free(id);
            free(path);
            continue;
        }
        char *text = NULL;
        rc = store_read_file(path, &text, NULL);
        free(path);
        const char *why = rc < 0 ? err_str(rc) : each(id, text, arg);
        if (why != NULL)
            bury_bad(dir, dead_dir, name, why);
        else
            count++;
        free(text);
        free(id);
    }
    rc = count;
out:
    if (d != NULL)
        closedir(d);
    free(dir);
    free(dead_dir);
    return rc;
}

int store_fs_outbox_write(const char *state_dir, const char *id, const char *text, char **err)
{
    if (!store_name_ok(id)) {
        set_err(err, id ? id : "", "delivery id", -EINVAL);
        return -EINVAL;
    }
    char *path = store_fs_outbox_path(state_dir, false, id);
    int rc = put_file(path, text, strlen(text), 0600, err);
    free(path);
    return rc;
}

int store_fs_outbox_remove(const char *state_dir, const char *id, const char *dead_text, char **err)
{
    if (!store_name_ok(id)) {
        set_err(err, id ? id : "", "delivery id", -EINVAL);
        return -EINVAL;
    }
    char *dir = store_fs_outbox_path(state_dir, false, NULL);
    char *path = store_fs_outbox_path(state_dir, false, id);
    int rc = 0;

    if (dead_text != NULL) {
        /* the dead copy first: a crash between leaves both, never neither */
        char *dead = store_fs_outbox_path(state_dir, true, id);
        rc = put_file(dead, dead_text, strlen(dead_text), 0600, err);
        free(dead);
    }
    if (rc == 0)
        rc = store_fs_remove(dir, path, err);
    free(path);
    free(dir);
    return rc;
}
