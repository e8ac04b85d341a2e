/* The Prometheus text writer: families, escaped label values, the
 * cumulative histogram, and the cap of the output buffer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "reactor/metrics.h"
#include "util/err.h"

static void has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (len == n && memcmp(p, line, n) == 0)
            return;
        p = nl != NULL ? nl + 1 : NULL;
    }
    fail_msg("missing line: %s\n%s", line, text);
}

static void test_write_families(void **state)
{
    struct metrics_hist h = {0};
    struct metrics_cert certs[] = {
        {.name = "www",
         .not_after = 1700000000,
         .next_renewal = 1690000000,
         .renewals_ok = 3,
         .renewals_failed = 1},
        {.name = "we\"ird\\na\nme", .not_after = 0, .next_renewal = 1695000000},
    };
    struct metrics_snapshot s = {
        .certs = certs, .n_certs = 2, .order_duration = &h, .orders_in_flight = 4};
    struct buf b = BUF_INIT(1 << 20);

    (void)state;
    metrics_hist_observe(&h, 0.5);
    metrics_hist_observe(&h, 1.0); /* le is inclusive */
    metrics_hist_observe(&h, 7);
    metrics_hist_observe(&h, 599.9);
    metrics_hist_observe(&h, 4000);
    assert_int_equal(metrics_write(&s, &b), 0);
    has_line(b.data, "# TYPE certloop_certificate_not_after_timestamp_seconds gauge");
    has_line(b.data, "certloop_certificate_not_after_timestamp_seconds{name=\"www\"} 1700000000");
    /* no certificate yet: no sample for it */
    assert_null(strstr(b.data, "certloop_certificate_not_after_timestamp_seconds{name=\"we"));
    has_line(b.data,
             "certloop_certificate_next_renewal_timestamp_seconds{name=\"www\"} 1690000000");
    has_line(b.data, "certloop_certificate_next_renewal_timestamp_seconds"
                     "{name=\"we\\\"ird\\\\na\\nme\"} 1695000000");
    has_line(b.data, "# TYPE certloop_renewals_total counter");
    has_line(b.data, "certloop_renewals_total{name=\"www\",result=\"success\"} 3");
    has_line(b.data, "certloop_renewals_total{name=\"www\",result=\"failure\"} 1");
    has_line(b.data, "# TYPE certloop_order_duration_seconds histogram");
    has_line(b.data, "certloop_order_duration_seconds_bucket{le=\"1\"} 2");
    has_line(b.data, "certloop_order_duration_seconds_bucket{le=\"5\"} 2");
    has_line(b.data, "certloop_order_duration_seconds_bucket{le=\"10\"} 3");
    has_line(b.data, "certloop_order_duration_seconds_bucket{le=\"300\"} 3");
    has_line(b.data, "certloop_order_duration_seconds_bucket{le=\"600\"} 4");
    has_line(b.data, "certloop_order_duration_seconds_bucket{le=\"+Inf\"} 5");
    has_line(b.data, "certloop_order_duration_seconds_count 5");
    has_line(b.data, "certloop_order_duration_seconds_sum 4608.400");
    has_line(b.data, "certloop_orders_in_flight 4");
    /* every line is a comment or "name{...} value" / "name value" */
    assert_int_equal(b.data[b.len - 1], '\n');
    buf_fini(&b);
}

static void test_write_cap_and_empty(void **state)
{
    struct metrics_snapshot s = {.certs = NULL};
    struct buf b = BUF_INIT(1 << 16);

    (void)state;
    assert_int_equal(metrics_write(&s, &b), 0);
    has_line(b.data, "certloop_order_duration_seconds_bucket{le=\"+Inf\"} 0");
    has_line(b.data, "certloop_orders_in_flight 0");
    buf_fini(&b);
    struct buf small = BUF_INIT(100);
    assert_int_equal(metrics_write(&s, &small), ERR_TOO_BIG);
    assert_true(small.len <= 100);
    buf_fini(&small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_families),
        cmocka_unit_test(test_write_cap_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
