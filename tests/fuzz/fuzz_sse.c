/* libFuzzer target: a hub's GET /v1/events body (Server-Sent Events,
 * net/sse.c) from arbitrary bytes. The first byte picks where the rest is
 * cut in two pieces: the events (type, data, last id) and the result must
 * be the same as when it is fed at once, whatever the cut; no event's type
 * or id holds a line end, no data is longer than the line cap. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "util/buf.h"
#include "util/err.h"

#define MAX_LINE 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void collect(const char *type, const char *d, size_t len, const char *id, void *arg)
{
    struct buf *b = arg;

    if (strpbrk(type, "\r\n") != NULL || (id != NULL && strpbrk(id, "\r\n") != NULL))
        abort();
    if (len > MAX_LINE || strlen(type) > MAX_LINE)
        abort();
    /* lengths first: the transcript cannot be forged by the contents */
    (void)buf_printf(b, "%zu:%s|%zu:", strlen(type), type, len);
    (void)buf_append(b, d, len);
    (void)buf_printf(b, "|%s\n", id != NULL ? id : "(none)");
}

static int feed(const char *s, size_t n, size_t cut, struct buf *out)
{
    struct sse_parser p;
    int rc;

    sse_init(&p, MAX_LINE);
    rc = sse_feed(&p, s, cut, collect, out);
    if (rc == 0)
        rc = sse_feed(&p, s + cut, n - cut, collect, out);
    sse_fini(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    size_t cut = n > 0 ? (size_t)data[0] % (n + 1) : 0;
    struct buf whole = BUF_INIT((size_t)1 << 24), split = BUF_INIT((size_t)1 << 24);

    int a = feed(s, n, n, &whole);
    int b = feed(s, n, cut, &split);
    if (a != b || (a != 0 && a != ERR_TOO_BIG))
        abort();
    /* the same events, to the byte (a refused stream's before its long line) */
    if (whole.len != split.len || (whole.len > 0 && memcmp(whole.data, split.data, whole.len) != 0))
        abort();
    buf_fini(&whole);
    buf_fini(&split);
    return 0;
}
