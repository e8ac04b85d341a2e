/* A response body made piece by piece while the socket drains (issue 16:
 * the status of 100,000 certificates is ~68 MB): the control socket and the
 * HTTPS API ask the source for the next piece once the previous one has
 * been written, so no whole text is ever built and a connection holds one
 * piece at a time. The servers frame the pieces as HTTP/1.1 chunks
 * (RFC 9112 §7.1; net/httpd.h httpd_chunk_next), so a client can tell a
 * complete answer from a cut one. */
#ifndef CERTLOOP_UTIL_BODYSRC_H
#define CERTLOOP_UTIL_BODYSRC_H

#include <stddef.h>

#include "util/buf.h"

/* The size of the pieces the servers ask for: about one loop turn of work
 * each (~25 certificates of the status document, ~1 ms of CPU). */
#define BODYSRC_PIECE (16 * 1024)

struct body_src {
    /* Appends the next piece (about want bytes; it may be more by one
     * certificate's text) to out. 1: that was the last piece; 0: more
     * follow; < 0: the source cannot go on (e.g. the daemon is stopping):
     * the server cuts the answer, which the client sees as incomplete. */
    int (*next)(void *arg, struct buf *out, size_t want);
    /* Releases arg, finished or not (called exactly once). */
    void (*free)(void *arg);
    void *arg;
};

/* Releases s (its free, if any) and clears it; a cleared one is fine. */
static inline void body_src_drop(struct body_src *s)
{
    if (s->free != NULL)
        s->free(s->arg);
    s->next = NULL;
    s->free = NULL;
    s->arg = NULL;
}

#endif
