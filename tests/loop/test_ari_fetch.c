/* ARI end to end on a loop: the HTTP client fetches renewalInfo/CERTID
 * from the fake endpoint (tests/support/ari_fake), the answer is parsed,
 * a renewal time picked and the next poll computed from Retry-After, and
 * the renewal is armed on the timer heap. Garbage and error answers are
 * refused. Ends with uv_loop_close() == 0. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "acme/acme.h"
#include "ari_fake.h"
#include "net/net.h"
#include "reactor/timerheap.h"
#include "util/err.h"
#include "util/log.h"

#define NOW INT64_C(1735700000) /* 2025-01-01T02:53:20Z */

struct got {
    int calls;
    int parse_rc;
    long status;
    struct acme_ari_info ai;
    int64_t poll_at;
};

static void on_resp(int status, const struct http_response *r, void *arg)
{
    struct got *g = arg;

    g->calls++;
    assert_int_equal(status, 0);
    g->status = r->status;
    if (r->status == 200)
        g->parse_rc = acme_ari_parse(r->body.data, r->body.len, &g->ai);
    g->poll_at = acme_ari_next_poll(r->retry_after, NOW);
}

static void fetch(struct ari_fake *a, struct got *g)
{
    uv_loop_t loop;
    struct fake_http *srv;
    struct http_client *hc;
    char url[256];

    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(fake_http_start(&loop, ari_fake_handle, a, &srv), 0);
    assert_int_equal(http_client_open(&loop, &hc), 0);
    snprintf(url, sizeof(url), "%s%saGVsbG8.AIdlQyE", fake_http_url(srv), a->prefix);
    struct http_request_opts o = {.method = "GET", .url = url, .timeout_ms = 5000};
    assert_int_equal(http_req_start(hc, &o, on_resp, g, NULL), 0);
    assert_int_equal(g->calls, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(g->calls, 1);
    http_client_close(hc);
    fake_http_close(srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void fired(void *arg)
{
    (*(int *)arg)++;
}

static int64_t fake_now_ms(void *arg)
{
    return *(int64_t *)arg;
}

static void test_fetch_parse_pick_and_arm(void **state)
{
    struct ari_fake a = {.prefix = "/acme/renewal-info/",
                         .start = NOW + 86400,
                         .end = NOW + 2 * 86400,
                         .explanation_url = "https://ca.test/ari-explained",
                         .retry_after = "21600"};
    struct got g = {0};

    (void)state;
    fetch(&a, &g);
    assert_int_equal(a.hits, 1);
    assert_string_equal(a.last_cert_id, "aGVsbG8.AIdlQyE");
    assert_int_equal(g.status, 200);
    assert_int_equal(g.parse_rc, 0);
    assert_int_equal(g.ai.start, NOW + 86400);
    assert_int_equal(g.ai.end, NOW + 2 * 86400);
    assert_string_equal(g.ai.explanation_url, "https://ca.test/ari-explained");
    assert_int_equal(g.poll_at, NOW + 21600);
    int64_t when = acme_ari_pick(&g.ai, NOW, 43200);
    assert_int_equal(when, NOW + 86400 + 43200);

    /* arm the renewal and the re-poll on a heap with a fake clock */
    int64_t clock_ms = (int64_t)NOW * 1000;
    struct timerheap *h;
    int renewals = 0, polls = 0;
    assert_int_equal(timerheap_open(NULL, fake_now_ms, &clock_ms, &h), 0);
    timerheap_add(h, when * 1000, fired, &renewals, NULL);
    timerheap_add(h, g.poll_at * 1000, fired, &polls, NULL);
    clock_ms = (NOW + 21600) * 1000;
    assert_int_equal(timerheap_run_due(h), 1);
    assert_int_equal(polls, 1);
    assert_int_equal(renewals, 0);
    clock_ms = when * 1000;
    assert_int_equal(timerheap_run_due(h), 1);
    assert_int_equal(renewals, 1);
    timerheap_close(h, NULL, NULL);
    acme_ari_info_fini(&g.ai);
}

static void test_fetch_garbage_and_errors(void **state)
{
    struct ari_fake a = {.prefix = "/ari/", .raw_body = "{\"suggestedWindow\":\"soon\"}"};
    struct got g = {0};

    (void)state;
    fetch(&a, &g);
    assert_int_equal(g.parse_rc, ERR_PARSE);
    assert_int_equal(g.poll_at, NOW + ACME_ARI_POLL_DEFAULT_S); /* no Retry-After */

    /* an inverted window is garbage too */
    struct ari_fake b = {.prefix = "/ari/", .start = NOW + 100, .end = NOW, .retry_after = "5"};
    struct got g2 = {0};
    fetch(&b, &g2);
    assert_int_equal(g2.parse_rc, ERR_PARSE);
    assert_int_equal(g2.poll_at, NOW + ACME_ARI_POLL_MIN_S); /* 5 s clamped up to 1 min */

    struct ari_fake c = {.prefix = "/ari/", .status = 404, .retry_after = "200000"};
    struct got g3 = {0};
    fetch(&c, &g3);
    assert_int_equal(g3.status, 404);
    assert_int_equal(c.hits, 1);
    assert_int_equal(g3.poll_at, NOW + ACME_ARI_POLL_MAX_S);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetch_parse_pick_and_arm),
        cmocka_unit_test(test_fetch_garbage_and_errors),
    };

    log_init();
    log_set_level(LOG_LVL_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
