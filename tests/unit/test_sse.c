/* Unit tests for the Server-Sent Events parser (net/sse.c) the pull
 * client reads a hub's GET /v1/events with: the examples of the HTML
 * Living Standard's "Interpreting an event stream", every line ending,
 * the stream cut at every byte, comments, ids kept across events, and the
 * caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/net.h"
#include "util/buf.h"
#include "util/err.h"

/* Every event as "TYPE|DATA|ID\n" (ID "-" when none). */
static void collect(const char *type, const char *data, size_t len, const char *id, void *arg)
{
    struct buf *b = arg;

    assert_int_equal(buf_printf(b, "%s|%.*s|%s\n", type, (int)len, data, id ? id : "-"), 0);
}

/* Feeds s in pieces of `piece` bytes (0: at once); returns the events. */
static char *run(const char *s, size_t piece, int *rc)
{
    struct sse_parser p;
    struct buf out = BUF_INIT(1 << 16);
    size_t len = strlen(s), n;

    sse_init(&p, 64);
    *rc = 0;
    for (size_t i = 0; i < len && *rc == 0; i += n) {
        n = piece == 0 || len - i < piece ? len - i : piece;
        *rc = sse_feed(&p, s + i, n, collect, &out);
    }
    sse_fini(&p);
    buf_append(&out, "", 0);
    size_t l;
    return buf_steal(&out, &l);
}

static void expect(const char *stream, const char *want)
{
    for (size_t piece = 0; piece <= 3; piece++) {
        int rc;
        char *got = run(stream, piece, &rc);
        assert_int_equal(rc, 0);
        assert_string_equal(got, want);
        free(got);
    }
}

static void test_sse_hub_event(void **state)
{
    (void)state;
    expect(": keepalive\n\nid: 5f0c\nevent: renewed\ndata: {\"certificate\":\"www\"}\n\n",
           "message||-\nrenewed|{\"certificate\":\"www\"}|5f0c\n");
}

/* The standard's examples: data lines joined by LF, a field without a
 * colon, a single leading space removed, ids kept for later events. */
static void test_sse_standard_examples(void **state)
{
    (void)state;
    expect("data: YHOO\ndata: +2\ndata: 10\n\n", "message|YHOO\n+2\n10|-\n");
    expect(": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third "
           "event\n\n",
           "message||-\nmessage|first event|1\nmessage|second event|\nmessage| third event|\n");
    expect("data\n\ndata\ndata\n\ndata:", "message||-\nmessage|\n|-\n");
    expect("data:test\n\ndata: test\n\n", "message|test|-\nmessage|test|-\n");
}

static void test_sse_line_endings(void **state)
{
    (void)state;
    expect("id: 1\r\ndata: a\r\n\r\nid: 2\rdata: b\r\rdata: c\n\n",
           "message|a|1\nmessage|b|2\nmessage|c|2\n");
}

static void test_sse_bom_comment_retry_unknown(void **state)
{
    (void)state;
    expect("\xEF\xBB\xBF"
           "data: x\nretry: 10\nfoo: bar\n: comment\n\n",
           "message|x|-\n");
}

static void test_sse_id_with_nul_ignored(void **state)
{
    (void)state;
    struct sse_parser p;
    struct buf out = BUF_INIT(1024);
    static const char s[] = "id: 7\n\nid: a\0b\ndata: x\n\n";

    sse_init(&p, 64);
    assert_int_equal(sse_feed(&p, s, sizeof(s) - 1, collect, &out), 0);
    assert_int_equal(buf_append(&out, "", 0), 0);
    assert_string_equal(out.data, "message||7\nmessage|x|7\n");
    buf_fini(&out);
    sse_fini(&p);
}

static void test_sse_caps(void **state)
{
    (void)state;
    char line[200];
    int rc;

    /* a line past max_line: the stream is refused */
    snprintf(line, sizeof(line), "data: %0100d\n\n", 0);
    char *got = run(line, 7, &rc);
    assert_int_equal(rc, ERR_TOO_BIG);
    free(got);
    /* data past the cap over several lines: that event is dropped, the next comes */
    char big[400];
    snprintf(big, sizeof(big), "data: %040d\ndata: %040d\n\ndata: ok\n\n", 1, 2);
    got = run(big, 0, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(got, "message|ok|-\n");
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_hub_event),
        cmocka_unit_test(test_sse_standard_examples),
        cmocka_unit_test(test_sse_line_endings),
        cmocka_unit_test(test_sse_bom_comment_retry_unknown),
        cmocka_unit_test(test_sse_id_with_nul_ignored),
        cmocka_unit_test(test_sse_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
