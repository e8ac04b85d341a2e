/* The status history: rings per certificate, oldest dropped, masking,
 * JSON shape, many certificates, forget. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/history.h"

static void test_ring_and_json(void **state)
{
    struct history *h = history_new(3);
    char detail[32];

    (void)state;
    assert_int_equal(history_count(h, "www"), 0);
    json_t *empty = history_json(h, "www");
    assert_int_equal(json_array_size(empty), 0);
    json_decref(empty);
    for (int i = 0; i < 5; i++) {
        snprintf(detail, sizeof(detail), "attempt %d", i);
        history_add(h, "www", 1000 + i, i == 4 ? "issued" : "failed", detail);
    }
    history_add(h, "api", 7, "scheduled", NULL);
    assert_int_equal(history_count(h, "www"), 3);
    json_t *a = history_json(h, "www");
    assert_int_equal(json_array_size(a), 3);
    /* oldest first: attempts 2, 3, 4 */
    for (size_t i = 0; i < 3; i++) {
        json_t *ev = json_array_get(a, i);
        assert_int_equal(json_integer_value(json_object_get(ev, "time")), 1002 + (int)i);
        snprintf(detail, sizeof(detail), "attempt %zu", i + 2);
        assert_string_equal(json_string_value(json_object_get(ev, "detail")), detail);
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 2), "event")),
                        "issued");
    json_decref(a);
    json_t *b = history_json(h, "api");
    assert_true(json_is_null(json_object_get(json_array_get(b, 0), "detail")));
    json_decref(b);
    history_forget(h, "www");
    assert_int_equal(history_count(h, "www"), 0);
    assert_int_equal(history_count(h, "api"), 1);
    history_free(h);
    history_free(NULL);
}

static void test_masking_and_cap(void **state)
{
    struct history *h = history_new(0);
    char big[2000];

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    history_add(h, "n", 1, "failed", "line1\nline2\t\xff\xfe end");
    history_add(h, "n", 2, "failed", big);
    json_t *a = history_json(h, "n");
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "detail")),
                        "line1.line2... end");
    assert_int_equal(strlen(json_string_value(json_object_get(json_array_get(a, 1), "detail"))),
                     512);
    json_decref(a);
    /* the default keeps 20, the newest, in order (the ring grows, then wraps) */
    for (int i = 0; i < 50; i++)
        history_add(h, "n", i, "scheduled", NULL);
    assert_int_equal(history_count(h, "n"), 20);
    a = history_json(h, "n");
    for (size_t i = 0; i < 20; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(a, i), "time")),
                         30 + (int)i);
    json_decref(a);
    /* 40 log lines, the newest, in order */
    char line[32];
    for (int i = 0; i < 100; i++) {
        snprintf(line, sizeof(line), "line %d", i);
        history_log_line(h, "n", i, line);
    }
    a = history_log_json(h, "n");
    assert_int_equal(json_array_size(a), 40);
    for (size_t i = 0; i < 40; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(a, i), "time")),
                         60 + (int)i);
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 39), "line")),
                        "line 99");
    json_decref(a);
    history_free(h);
}

static void test_many_certificates(void **state)
{
    struct history *h = history_new(2);
    char name[32];

    (void)state;
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof(name), "cert%d", i);
        for (int k = 0; k < i % 4; k++)
            history_add(h, name, k, "failed", name);
    }
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof(name), "cert%d", i);
        size_t want = (size_t)(i % 4 > 2 ? 2 : i % 4);
        assert_int_equal(history_count(h, name), want);
    }
    history_free(h);
}

/* The file format round-trips through history_line and history_load_text;
 * bytes outside printable ASCII are masked; other lines are skipped. */
static void test_file_lines_round_trip(void **state)
{
    (void)state;
    struct history *h = history_new(5);
    char *a = history_line(100, "issued", "not_after 2031-01-01T00:00:00Z");
    char *b = history_line(200, "failed", "bad \xff\n byte");
    char *c = history_line(300, "scheduled", NULL);
    assert_string_equal(a, "{\"time\":100,\"event\":\"issued\",\"detail\":\"not_after "
                           "2031-01-01T00:00:00Z\"}\n");
    assert_string_equal(b, "{\"time\":200,\"event\":\"failed\",\"detail\":\"bad .. byte\"}\n");
    assert_string_equal(c, "{\"time\":300,\"event\":\"scheduled\",\"detail\":null}\n");
    char text[512];
    snprintf(text, sizeof(text), "%snot json\n%s%s{\"event\":\"no time\"}", a, b, c);
    assert_int_equal(history_load_text(h, "www", text, strlen(text)), 3);
    assert_int_equal(history_count(h, "www"), 3);
    json_t *j = history_json(h, "www");
    assert_int_equal(json_array_size(j), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 1), "detail")),
                        "bad .. byte");
    assert_true(json_is_null(json_object_get(json_array_get(j, 2), "detail")) ||
                json_object_get(json_array_get(j, 2), "detail") == NULL);
    json_decref(j);
    /* log lines: only for known names, cleared by history_log_clear */
    history_log_line(h, "www", 400, "order cert=www: started");
    history_log_line(h, "other", 400, "order cert=other: started");
    j = history_log_json(h, "www");
    assert_int_equal(json_array_size(j), 1);
    json_decref(j);
    j = history_log_json(h, "other");
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
    history_log_clear(h, "www");
    j = history_log_json(h, "www");
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
    free(a);
    free(b);
    free(c);
    history_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_and_json),
        cmocka_unit_test(test_file_lines_round_trip),
        cmocka_unit_test(test_masking_and_cap),
        cmocka_unit_test(test_many_certificates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
