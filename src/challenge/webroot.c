/* http-01 through an existing web server ([http01] webroot): each token
 * becomes the file DIR/.well-known/acme-challenge/TOKEN holding the key
 * authorization, which the web server serves; the file goes when the
 * authorization is final. It does not talk to the web server or check that
 * it serves the directory (`certloop test` does that).
 *
 * Why inline and without fsync (STYLE §5 sends atomic writes to the
 * threadpool for their fsync): a token file needs atomicity, so the web
 * server never serves half a key authorization, but no durability. After a
 * crash the authorization is void and a new order writes a new token, so
 * nothing here waits for the disk; the writes are a few hundred bytes into
 * the page cache, like the config reads done on the loop. */
#include "challenge/challenge.h"
#include "challenge/http01_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WEBROOT_SUBDIR ".well-known/acme-challenge"

static bool token_ok(const char *token)
{
    size_t n = strlen(token);

    if (n == 0 || n > HTTP01_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = token[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* mkdir DIR/.well-known and DIR/.well-known/acme-challenge when missing,
 * 0755 whatever the umask (the daemon's unit sets 0077; the web server's
 * user must traverse them). DIR itself must exist. */
static int make_dirs(const char *dir, uid_t uid, gid_t gid)
{
    static const char *const parts[] = {"/.well-known", "/" WEBROOT_SUBDIR};
    int rc = 0;

    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && rc == 0; i++) {
        char *p = xasprintf("%s%s", dir, parts[i]);
        if (mkdir(p, 0755) == 0) {
            if (chmod(p, 0755) < 0 ||
                ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(p, uid, gid) < 0))
                rc = -errno;
        } else if (errno != EEXIST) {
            rc = -errno;
        }
        if (rc < 0)
            log_error(LOG_CHAL, "webroot: mkdir %s: %s", p, err_str(rc));
        free(p);
    }
    return rc;
}

char *chal_webroot_path(const char *dir, const char *token)
{
    return xasprintf("%s/" WEBROOT_SUBDIR "/%s", dir, token);
}

int chal_webroot_put(const char *dir, uid_t uid, gid_t gid, const char *token,
                     const char *key_authorization)
{
    char *path = NULL, *tmp = NULL;
    const char *step = "open";
    size_t len = strlen(key_authorization);
    int fd = -1;
    int rc;

    if (!token_ok(token) || len == 0)
        return -EINVAL;
    rc = make_dirs(dir, uid, gid);
    if (rc < 0)
        return rc;
    path = chal_webroot_path(dir, token);
    /* A dot name the web server does not serve as a token: a temp file
     * left by a crash is never mistaken for one. */
    tmp = xasprintf("%s/" WEBROOT_SUBDIR "/.certloop-%s.tmp", dir, token);
    (void)unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    step = "write";
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, key_authorization + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = w < 0 ? -errno : -EIO;
            goto out;
        }
        off += (size_t)w;
    }
    step = "chmod"; /* 0644 whatever the umask: the web server reads it */
    if (fchmod(fd, 0644) < 0) {
        rc = -errno;
        goto out;
    }
    step = "chown";
    if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0) {
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
    step = "rename";
    if (rename(tmp, path) < 0) {
        rc = -errno;
        goto out;
    }
    log_debug(LOG_CHAL, "webroot: wrote %s", path);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0) {
        log_error(LOG_CHAL, "webroot: %s %s: %s", step, strcmp(step, "rename") == 0 ? path : tmp,
                  err_str(rc));
        (void)unlink(tmp);
    }
    free(tmp);
    free(path);
    return rc;
}

void chal_webroot_del(const char *dir, const char *token)
{
    if (!token_ok(token))
        return;
    char *path = chal_webroot_path(dir, token);
    if (unlink(path) < 0 && errno != ENOENT)
        log_warn(LOG_CHAL, "webroot: remove %s: %s", path, err_str(-errno));
    free(path);
}
