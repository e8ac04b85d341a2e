/* The framing of a streamed answer (struct body_src) for certloop's HTTP
 * servers, the HTTPS API and the control socket: HTTP/1.1 chunks, or the
 * bare data to an HTTP/1.0 client, which learns the end from the closed
 * connection. It writes nothing itself: each server sends head, piece and
 * tail its own way (uv_write on the control socket, TLS for the API). */
#include "net/httpd.h"

#include <stdio.h>

const char *httpd_chunk_field(bool http10)
{
    return http10 ? "" : "Transfer-Encoding: chunked\r\n";
}

void httpd_chunk_frame(size_t len, bool last, bool http10, struct httpd_chunk *out)
{
    /* the chunk's CRLF, then the last chunk and the empty line (no trailer
     * fields); the tail after an empty last piece is the last chunk alone */
    static const char end_piece[] = "\r\n0\r\n\r\n";

    out->head[0] = '\0';
    out->head_len = 0;
    out->tail = "";
    out->tail_len = 0;
    if (http10)
        return;
    if (len > 0) {
        int k = snprintf(out->head, sizeof(out->head), "%zx\r\n", len);
        out->head_len = (size_t)k;
        out->tail = end_piece;
        out->tail_len = last ? sizeof(end_piece) - 1 : 2;
    } else if (last) {
        out->tail = end_piece + 2;
        out->tail_len = sizeof(end_piece) - 3;
    }
}

int httpd_chunk_next(struct body_src *src, struct buf *piece, bool http10, struct httpd_chunk *out)
{
    buf_reset(piece);
    int rc = src->next(src->arg, piece, BODYSRC_PIECE);

    if (rc < 0)
        return rc;
    httpd_chunk_frame(piece->len, rc == 1, http10, out);
    return rc;
}
