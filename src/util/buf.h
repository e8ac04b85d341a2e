/* A growable byte buffer with a hard cap (like curl's dynbuf): appends past
 * the cap fail with ERR_TOO_BIG instead of growing without bound. The data
 * is always NUL-terminated so text can be used as a C string. */
#ifndef CERTLOOP_UTIL_BUF_H
#define CERTLOOP_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap; /* allocated bytes */
    size_t max; /* the hard cap on len */
};

#define BUF_INIT(maxlen)                                                                           \
    {                                                                                              \
        NULL, 0, 0, (maxlen)                                                                       \
    }

void buf_init(struct buf *b, size_t max);
void buf_fini(struct buf *b);
void buf_reset(struct buf *b);
/* Appends; 0 or ERR_TOO_BIG (the buffer is unchanged then). */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);

/* A sink for jansson's json_dump_callback: appends p[0..n) to the struct
 * buf at arg; -1 past its cap. */
int buf_dump_cb(const char *p, size_t n, void *arg);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Reads all of fd until EOF; ERR_TOO_BIG past the cap, -errno on error. */
int buf_read_fd(struct buf *b, int fd);
/* Reads a whole file (capped); -errno or ERR_TOO_BIG. Never waits: the
 * file is opened non-blocking, so a FIFO or a device is not a hang. */
int buf_read_file(struct buf *b, const char *path);
/* Moves the content of src into dst (dst's old content is freed). */
void buf_move(struct buf *dst, struct buf *src);
/* Takes ownership of the data (NUL-terminated, never NULL); b is reset. */
char *buf_steal(struct buf *b, size_t *len);

#endif
