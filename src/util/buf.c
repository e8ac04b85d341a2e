/* Capped byte buffers. Owns only memory; knows nothing of the loop. */
#include "util/buf.h"
#include "util/err.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void buf_fini(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int ensure(struct buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return ERR_TOO_BIG;
    size_t need = b->len + extra + 1;
    if (need > b->cap) {
        size_t c = b->cap ? b->cap : 64;
        while (c < need)
            c *= 2;
        b->data = xrealloc(b->data, c);
        b->cap = c;
    }
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    int rc = ensure(b, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_dump_cb(const char *p, size_t n, void *arg)
{
    return buf_append(arg, p, n) < 0 ? -1 : 0;
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list cp;

    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return -EINVAL;
    int rc = ensure(b, (size_t)n);
    if (rc < 0)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* Private keys and secrets are read through here: the stack copy is wiped
 * and a regular file's buffer is sized once from fstat, so no realloc
 * leaves a stray copy of the content in freed memory. */
int buf_read_fd(struct buf *b, int fd)
{
    char tmp[16384];
    struct stat st;
    int rc = 0;

    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uintmax_t)st.st_size <= b->max && ensure(b, (size_t)st.st_size) < 0)
        return ERR_TOO_BIG;
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        rc = buf_append(b, tmp, (size_t)n);
        if (rc < 0)
            break;
    }
    explicit_bzero(tmp, sizeof(tmp));
    if (rc == 0 && b->data == NULL) {
        rc = ensure(b, 0);
        if (rc == 0)
            b->data[0] = '\0';
    }
    return rc;
}

int buf_read_file(struct buf *b, const char *path)
{
    /* Non-blocking: a FIFO or a device where a file was expected (a
     * secret, a trust anchor, a state file) must not stop the reactor
     * (STYLE §5 reads such files inline). A FIFO then reads as empty or
     * -EAGAIN, /dev/zero as ERR_TOO_BIG at the cap, a directory -EISDIR;
     * regular files read as before. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return -errno;
    int rc = buf_read_fd(b, fd);
    close(fd);
    return rc;
}

void buf_move(struct buf *dst, struct buf *src)
{
    free(dst->data);
    *dst = *src;
    src->data = NULL;
    src->len = 0;
    src->cap = 0;
}

char *buf_steal(struct buf *b, size_t *len)
{
    if (b->data == NULL) {
        b->data = xmalloc(1);
        b->data[0] = '\0';
    }
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
