/* Server-Sent Events: the parser of a text/event-stream body (HTML Living
 * Standard, "Interpreting an event stream"), fed in whatever pieces the
 * transport hands over. Pure: no I/O, no loop; the pull client
 * (reactor/pull.c) feeds it the hub's GET /v1/events. */
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "util/err.h"
#include "util/xalloc.h"

void sse_init(struct sse_parser *p, size_t max_line)
{
    memset(p, 0, sizeof(*p));
    buf_init(&p->line, max_line);
    buf_init(&p->data, max_line);
}

void sse_fini(struct sse_parser *p)
{
    buf_fini(&p->line);
    buf_fini(&p->data);
    free(p->type);
    free(p->id);
    memset(p, 0, sizeof(*p));
}

/* The blank line: dispatch (the id buffer stays for the next events). */
static void dispatch(struct sse_parser *p, sse_event_cb cb, void *arg)
{
    size_t n = p->data.len;

    if (n > 0 && p->data.data[n - 1] == '\n')
        n--; /* the last data line's newline is not part of the data */
    cb(p->type != NULL ? p->type : "message", p->data.data != NULL ? p->data.data : "", n, p->id,
       arg);
    buf_reset(&p->data);
    free(p->type);
    p->type = NULL;
}

static void field(struct sse_parser *p, const char *s, size_t n, sse_event_cb cb, void *arg)
{
    if (n == 0) {
        dispatch(p, cb, arg);
        return;
    }
    if (s[0] == ':')
        return; /* a comment (the keepalive) */
    const char *colon = memchr(s, ':', n);
    size_t fl = colon != NULL ? (size_t)(colon - s) : n;
    const char *v = colon != NULL ? colon + 1 : s + n;
    size_t vl = (size_t)(s + n - v);
    if (vl > 0 && v[0] == ' ') {
        v++;
        vl--;
    }
    if (fl == 4 && memcmp(s, "data", 4) == 0) {
        if (buf_append(&p->data, v, vl) < 0 || buf_append(&p->data, "\n", 1) < 0)
            p->data_dropped = true; /* past the cap: the event's data is dropped */
    } else if (fl == 5 && memcmp(s, "event", 5) == 0) {
        free(p->type);
        p->type = xstrndup(v, vl);
    } else if (fl == 2 && memcmp(s, "id", 2) == 0 && memchr(v, '\0', vl) == NULL) {
        free(p->id);
        p->id = xstrndup(v, vl);
    }
    /* "retry" and unknown fields are ignored */
}

int sse_feed(struct sse_parser *p, const char *data, size_t len, sse_event_cb cb, void *arg)
{
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (!p->started) {
            /* one U+FEFF (UTF-8 EF BB BF) at the start of the stream is
             * skipped, even when it arrives in pieces */
            static const char bom[] = "\xEF\xBB\xBF";
            if (c == bom[p->bom_n]) {
                if (++p->bom_n == 3)
                    p->started = true;
                continue;
            }
            p->started = true;
            if (buf_append(&p->line, bom, p->bom_n) < 0) /* not a BOM after all */
                return ERR_TOO_BIG;
        }
        if (c == '\n' && p->after_cr) { /* the LF of a CRLF: the line has ended */
            p->after_cr = false;
            continue;
        }
        p->after_cr = c == '\r';
        if (c == '\n' || c == '\r') {
            if (p->data_dropped && p->line.len == 0) {
                p->data_dropped = false; /* the oversized event ends unseen */
                buf_reset(&p->data);
                free(p->type);
                p->type = NULL;
                continue;
            }
            field(p, p->line.data != NULL ? p->line.data : "", p->line.len, cb, arg);
            buf_reset(&p->line);
            continue;
        }
        if (buf_append(&p->line, &c, 1) < 0)
            return ERR_TOO_BIG;
    }
    return 0;
}
