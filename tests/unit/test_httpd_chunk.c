/* Unit tests for the framing of a streamed answer (net/httpd_chunk.c) that
 * the control socket and the HTTPS API both send: HTTP/1.1 chunks (RFC 9112
 * §7.1) with the last chunk after the last piece, the bare data to an
 * HTTP/1.0 client, no chunk of size 0 before the end, and a source's error
 * passed up without a frame. The wire bytes are compared whole. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/httpd.h"
#include "util/bodysrc.h"
#include "util/buf.h"

/* A source that hands out the pieces of a NULL-terminated list, one per
 * call ("" is an empty piece), then fails with fail_rc if it is not 0. */
struct list_src {
    const char *const *pieces;
    size_t at;
    int fail_rc;
    size_t wants; /* the last `want` asked for */
    int freed;
};

static int list_next(void *arg, struct buf *out, size_t want)
{
    struct list_src *s = arg;

    s->wants = want;
    if (s->pieces[s->at] == NULL)
        return s->fail_rc;
    assert_int_equal(buf_append_str(out, s->pieces[s->at]), 0);
    s->at++;
    return s->pieces[s->at] == NULL && s->fail_rc == 0 ? 1 : 0;
}

static void list_free(void *arg)
{
    struct list_src *s = arg;

    s->freed++;
}

/* Writes what a server writes for the whole answer (head, piece, tail per
 * piece) into wire, as the servers do: until the last piece or an error.
 * Returns the last result of httpd_chunk_next. */
static int drain(struct list_src *ls, bool http10, struct buf *wire)
{
    struct body_src src = {.next = list_next, .free = list_free, .arg = ls};
    struct buf piece = BUF_INIT(SIZE_MAX);
    int rc;

    buf_append_str(&piece, "left over from the last piece");
    do {
        struct httpd_chunk f;
        rc = httpd_chunk_next(&src, &piece, http10, &f);
        if (rc < 0)
            break;
        assert_int_equal(strlen(f.head), f.head_len);
        buf_append(wire, f.head, f.head_len);
        buf_append(wire, piece.data, piece.len);
        buf_append(wire, f.tail, f.tail_len);
    } while (rc == 0);
    buf_fini(&piece);
    body_src_drop(&src);
    buf_append(wire, "", 0); /* NUL-terminated, also when nothing was written */
    return rc;
}

/* Whole answers: the wire bytes a client gets. */
static void test_chunk_wire_of_whole_answers(void **state)
{
    static const char *const three[] = {"hello", "", "0123456789abcdef!", "end", NULL};
    static const char *const empty_last[] = {"abc", "", NULL};
    static const char *const only_empty[] = {"", NULL};
    static const struct {
        const char *const *pieces;
        bool http10;
        const char *want;
    } cases[] = {
        /* the empty piece in the middle is not framed: "0\r\n\r\n" there
         * would end the answer early */
        {three, false, "5\r\nhello\r\n11\r\n0123456789abcdef!\r\n3\r\nend\r\n0\r\n\r\n"},
        /* HTTP/1.0: the bare data, the end is the closed connection */
        {three, true, "hello0123456789abcdef!end"},
        /* an empty last piece is the last chunk alone */
        {empty_last, false, "3\r\nabc\r\n0\r\n\r\n"},
        {only_empty, false, "0\r\n\r\n"},
        {only_empty, true, ""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct list_src ls = {.pieces = cases[i].pieces};
        struct buf wire = BUF_INIT(SIZE_MAX);

        assert_int_equal(drain(&ls, cases[i].http10, &wire), 1);
        assert_string_equal(wire.data, cases[i].want);
        assert_int_equal(ls.wants, BODYSRC_PIECE);
        assert_int_equal(ls.freed, 1);
        buf_fini(&wire);
    }
}

static void test_chunk_source_error_has_no_last_chunk(void **state)
{
    static const char *const pieces[] = {"abc", NULL};
    struct list_src ls = {.pieces = pieces, .fail_rc = -ECANCELED};
    struct buf wire = BUF_INIT(SIZE_MAX);

    (void)state;
    assert_int_equal(drain(&ls, false, &wire), -ECANCELED);
    /* cut: the client sees no last chunk, so it knows the answer is incomplete */
    assert_string_equal(wire.data, "3\r\nabc\r\n");
    assert_int_equal(ls.freed, 1);
    buf_fini(&wire);
}

static void test_chunk_frame_sizes_in_hex(void **state)
{
    struct httpd_chunk f;

    (void)state;
    httpd_chunk_frame(BODYSRC_PIECE, false, false, &f);
    assert_string_equal(f.head, "4000\r\n");
    assert_int_equal(f.tail_len, 2);
    assert_memory_equal(f.tail, "\r\n", 2);
    httpd_chunk_frame(SIZE_MAX, true, false, &f);
    assert_int_equal(f.head_len, 2 * sizeof(size_t) + 2);
    assert_memory_equal(f.head, "ffffffff", 8);
    assert_int_equal(f.tail_len, 7);
    assert_memory_equal(f.tail, "\r\n0\r\n\r\n", 7);
    httpd_chunk_frame(0, false, false, &f);
    assert_int_equal(f.head_len + f.tail_len, 0);
    httpd_chunk_frame(10, true, true, &f);
    assert_int_equal(f.head_len + f.tail_len, 0);
}

static void test_chunk_field_names_the_framing(void **state)
{
    (void)state;
    assert_string_equal(httpd_chunk_field(false), "Transfer-Encoding: chunked\r\n");
    assert_string_equal(httpd_chunk_field(true), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_wire_of_whole_answers),
        cmocka_unit_test(test_chunk_source_error_has_no_last_chunk),
        cmocka_unit_test(test_chunk_frame_sizes_in_hex),
        cmocka_unit_test(test_chunk_field_names_the_framing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
