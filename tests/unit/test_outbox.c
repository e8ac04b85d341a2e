/* The pure parts of events and webhooks: the event JSON, ids, the
 * signature (RFC 4231 vectors), the retry schedule, the expiry-alert rule,
 * and once-per-round deduplication of exec actions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deploy/deploy.h"
#include "util/err.h"
#include "util/xalloc.h"

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *o = json_loads(text, 0, &e);

    assert_non_null(o);
    assert_true(json_is_object(o));
    return o;
}

static const char *get(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static bool is_hex_id(const char *s)
{
    if (s == NULL || strlen(s) != NOTIFY_ID_LEN)
        return false;
    for (size_t i = 0; i < NOTIFY_ID_LEN; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

/* ---- events -------------------------------------------------------------- */

static void test_event_issued_fields(void **state)
{
    const char *domains[] = {"example.org", "www.example.org"};
    struct notify_event e = {
        .type = NOTIFY_EV_ISSUED,
        .certificate = "www",
        .domains = domains,
        .n_domains = 2,
        .time = 951782400,              /* 2000-02-29T00:00:00Z */
        .not_after = 951782400 + 86399, /* the same day, 23:59:59 */
    };
    char *text = NULL;

    (void)state;
    assert_int_equal(notify_event_build(&e, &text), 0);
    /* the id comes first, so a receiver's log lines start with it */
    assert_int_equal(strncmp(text, "{\"id\":\"", 7), 0);
    json_t *o = parse(text);
    assert_true(is_hex_id(get(o, "id")));
    assert_string_equal(get(o, "event"), "issued");
    assert_string_equal(get(o, "certificate"), "www");
    json_t *d = json_object_get(o, "domains");
    assert_int_equal(json_array_size(d), 2);
    assert_string_equal(json_string_value(json_array_get(d, 0)), "example.org");
    assert_string_equal(json_string_value(json_array_get(d, 1)), "www.example.org");
    assert_string_equal(get(o, "time"), "2000-02-29T00:00:00Z");
    assert_string_equal(get(o, "not_after"), "2000-02-29T23:59:59Z");
    assert_null(json_object_get(o, "error"));
    assert_null(json_object_get(o, "record"));
    assert_int_equal(json_object_size(o), 6);
    json_decref(o);
    free(text);
}

static void test_event_failed_carries_problem(void **state)
{
    struct notify_event e = {
        .type = NOTIFY_EV_FAILED,
        .certificate = "api",
        .time = 0,
        .error_type = "urn:ietf:params:acme:error:unauthorized",
        .error_detail = "Invalid response from http://api.example.org/: 404",
        .error_identifier = "api.example.org",
        .id = "fixed-id_1",
    };
    char *text = NULL;

    (void)state;
    assert_int_equal(notify_event_build(&e, &text), 0);
    json_t *o = parse(text);
    assert_string_equal(get(o, "id"), "fixed-id_1");
    assert_string_equal(get(o, "event"), "failed");
    assert_string_equal(get(o, "time"), "1970-01-01T00:00:00Z");
    assert_int_equal(json_array_size(json_object_get(o, "domains")), 0);
    assert_null(json_object_get(o, "not_after"));
    json_t *err = json_object_get(o, "error");
    assert_non_null(err);
    assert_string_equal(get(err, "type"), "urn:ietf:params:acme:error:unauthorized");
    assert_string_equal(get(err, "detail"), "Invalid response from http://api.example.org/: 404");
    assert_string_equal(get(err, "identifier"), "api.example.org");
    json_decref(o);
    free(text);

    /* only the parts that are known are written */
    struct notify_event e2 = {.type = NOTIFY_EV_DEPLOY_FAILED,
                              .certificate = "api",
                              .error_detail = "/etc/x.pem: rename: Permission denied"};
    assert_int_equal(notify_event_build(&e2, &text), 0);
    o = parse(text);
    assert_string_equal(get(o, "event"), "deploy_failed");
    err = json_object_get(o, "error");
    assert_int_equal(json_object_size(err), 1);
    assert_string_equal(get(err, "detail"), "/etc/x.pem: rename: Permission denied");
    json_decref(o);
    free(text);
}

static void test_event_dns_records(void **state)
{
    const char *domains[] = {"*.example.org"};
    struct notify_event e = {
        .type = NOTIFY_EV_DNS_RECORD_REQUIRED,
        .certificate = "wild",
        .domains = domains,
        .n_domains = 1,
        .time = 86400,
        .record_name = "_acme-challenge.example.org",
        .record_value = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0",
    };
    char *text = NULL;

    (void)state;
    assert_int_equal(notify_event_build(&e, &text), 0);
    json_t *o = parse(text);
    assert_string_equal(get(o, "event"), "dns_record_required");
    assert_string_equal(get(o, "time"), "1970-01-02T00:00:00Z");
    json_t *r = json_object_get(o, "record");
    assert_string_equal(get(r, "name"), "_acme-challenge.example.org");
    assert_string_equal(get(r, "value"), "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0");
    json_decref(o);
    free(text);

    e.type = NOTIFY_EV_DNS_RECORD_REMOVABLE;
    assert_int_equal(notify_event_build(&e, &text), 0);
    o = parse(text);
    assert_string_equal(get(o, "event"), "dns_record_removable");
    json_decref(o);
    free(text);

    /* a dns event without its record is refused, and *out untouched */
    e.record_value = NULL;
    text = (char *)"untouched";
    assert_int_equal(notify_event_build(&e, &text), -EINVAL);
    assert_string_equal(text, "untouched");
}

/* dns-persist-01's persist_until warning carries the time it names, and
 * its mail text says what it means. */
static void test_event_persist_expiring(void **state)
{
    const char *domains[] = {"p.example.org"};
    struct notify_event e = {
        .type = NOTIFY_EV_PERSIST_EXPIRING,
        .certificate = "p",
        .domains = domains,
        .n_domains = 1,
        .time = 86400,
        .persist_until = 1721952000,
    };
    char *text = NULL;

    (void)state;
    assert_int_equal(notify_event_build(&e, &text), 0);
    json_t *o = parse(text);
    assert_string_equal(get(o, "event"), "persist_expiring");
    assert_string_equal(get(o, "persist_until"), "2024-07-26T00:00:00Z");
    assert_null(json_object_get(o, "error"));
    json_decref(o);
    char *mail = notify_event_text(text);
    assert_non_null(strstr(mail, "Certificate p has dns-persist-01 records about to expire."));
    assert_non_null(
        strstr(mail, "The CA accepts its dns-persist-01 records until: 2024-07-26T00:00:00Z"));
    free(mail);
    free(text);
}

static void test_event_rejects_bad_input(void **state)
{
    char *text = NULL;
    struct notify_event e = {.type = NOTIFY_EV_RENEWED, .certificate = NULL};

    (void)state;
    assert_int_equal(notify_event_build(&e, &text), -EINVAL);
    e.certificate = "";
    assert_int_equal(notify_event_build(&e, &text), -EINVAL);
    e.certificate = "www";
    e.type = NOTIFY_EV__MAX;
    assert_int_equal(notify_event_build(&e, &text), -EINVAL);
    e.type = NOTIFY_EV_RENEWED;
    e.id = "../../etc/passwd";
    assert_int_equal(notify_event_build(&e, &text), -EINVAL);
    e.id = "";
    assert_int_equal(notify_event_build(&e, &text), -EINVAL);
    e.id = NULL;
    e.certificate = "bad\xff\xfe";
    assert_int_equal(notify_event_build(&e, &text), -EINVAL);
    assert_null(text);
    /* special characters are escaped, not refused */
    e.certificate = "quote\"back\\slash\nnl";
    assert_int_equal(notify_event_build(&e, &text), 0);
    json_t *o = parse(text);
    assert_string_equal(get(o, "certificate"), "quote\"back\\slash\nnl");
    json_decref(o);
    free(text);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_event_ids_unique(void **state)
{
    enum { N = 5000 };
    char **ids = xcalloc(N, sizeof(char *));
    struct notify_event e = {.type = NOTIFY_EV_EXPIRING, .certificate = "www", .time = 1};

    (void)state;
    for (size_t i = 0; i < N; i++) {
        char *text = NULL;
        assert_int_equal(notify_event_build(&e, &text), 0);
        json_t *o = parse(text);
        assert_true(is_hex_id(get(o, "id")));
        ids[i] = xstrdup(get(o, "id"));
        json_decref(o);
        free(text);
    }
    qsort(ids, N, sizeof(char *), cmp_str);
    for (size_t i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    for (size_t i = 0; i < N; i++)
        free(ids[i]);
    free(ids);

    char a[NOTIFY_ID_LEN + 1], b[NOTIFY_ID_LEN + 1];
    assert_int_equal(notify_id_new(a), 0);
    assert_int_equal(notify_id_new(b), 0);
    assert_true(is_hex_id(a));
    assert_true(is_hex_id(b));
    assert_string_not_equal(a, b);
}

static void test_event_names_round_trip(void **state)
{
    enum notify_event_type t;

    (void)state;
    for (unsigned i = 0; i < NOTIFY_EV__MAX; i++) {
        const char *name = notify_event_name((enum notify_event_type)i);
        assert_non_null(name);
        assert_int_equal(notify_event_type_parse(name, &t), 0);
        assert_int_equal(t, i);
    }
    assert_string_equal(notify_event_name(NOTIFY_EV_DNS_RECORD_REMOVABLE), "dns_record_removable");
    assert_null(notify_event_name(NOTIFY_EV__MAX));
    assert_int_equal(notify_event_type_parse("Issued", &t), -EINVAL);
    assert_int_equal(notify_event_type_parse("", &t), -EINVAL);
    assert_int_equal(notify_event_type_parse(NULL, &t), -EINVAL);
}

/* ---- signature ----------------------------------------------------------- */

static void test_signature_rfc4231(void **state)
{
    char sig[NOTIFY_SIG_LEN + 1];
    unsigned char key1[20];

    (void)state;
    /* RFC 4231 test case 1: key 0x0b * 20, data "Hi There" */
    memset(key1, 0x0b, sizeof(key1));
    notify_signature(key1, sizeof(key1), "Hi There", 8, sig);
    assert_string_equal(sig,
                        "sha256=b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    /* test case 2: key "Jefe" */
    notify_signature("Jefe", 4, "what do ya want for nothing?", 28, sig);
    assert_string_equal(sig,
                        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assert_int_equal(strlen(sig), NOTIFY_SIG_LEN);
}

/* ---- retry schedule ------------------------------------------------------ */

static void test_backoff_doubles_with_jitter_and_cap(void **state)
{
    struct notify_opts o = {.base_delay_ms = 10000, .max_delay_ms = 3600000};

    (void)state;
    /* each delay lies in [d/2, d] for d = base * 2^(attempts-1), capped */
    int64_t d = 10000;
    for (unsigned a = 1; a <= 40; a++) {
        /* rnd 0 gives the lower end, rnd d/2 the upper one */
        assert_int_equal(notify_backoff_ms(&o, a, 0), d - d / 2);
        assert_int_equal(notify_backoff_ms(&o, a, (uint32_t)(d / 2)), d);
        for (uint32_t r = 0; r < 50; r++) {
            int64_t x = notify_backoff_ms(&o, a, r * 2654435761u);
            assert_true(x >= d - d / 2 && x <= d);
        }
        d = d * 2 > 3600000 ? 3600000 : d * 2;
    }
    /* the jitter reaches both ends */
    assert_int_equal(notify_backoff_ms(&o, 1, 0), 5000);
    assert_int_equal(notify_backoff_ms(&o, 1, 5000), 10000);
    assert_int_equal(notify_backoff_ms(&o, 2, 10000), 20000);
    /* defaults: 10 s doubling, capped at one hour */
    assert_int_equal(notify_backoff_ms(NULL, 1, 5000), 10000);
    assert_int_equal(notify_backoff_ms(NULL, 100, 1800000), 3600000);
    assert_true(notify_backoff_ms(NULL, UINT32_MAX, 0) >= 1800000);
    /* a test's fast schedule */
    struct notify_opts fast = {.base_delay_ms = 20, .max_delay_ms = 50};
    assert_int_equal(notify_backoff_ms(&fast, 1, 10), 20);
    assert_int_equal(notify_backoff_ms(&fast, 2, 20), 40);
    assert_int_equal(notify_backoff_ms(&fast, 3, 25), 50);
}

/* ---- expiry alerts ------------------------------------------------------- */

static void test_expiring_due(void **state)
{
    const int64_t day = 86400;
    const int64_t na = 1000 * day; /* not_after */
    int64_t next = 0;

    (void)state;
    /* outside the 14-day window: not due, ask again when it opens */
    assert_false(notify_expiring_due(na - 30 * day, na, 0, 0, &next));
    assert_int_equal(next, na - 14 * day);
    assert_false(notify_expiring_due(na - 14 * day - 1, na, 0, 0, &next));
    assert_int_equal(next, na - 14 * day);
    /* the window's first second, never alerted: due, next in a day */
    assert_true(notify_expiring_due(na - 14 * day, na, 0, 0, &next));
    assert_int_equal(next, na - 13 * day);
    /* alerted an hour ago: not due until the day is over */
    int64_t now = na - 10 * day;
    assert_false(notify_expiring_due(now, na, 0, now - 3600, &next));
    assert_int_equal(next, now - 3600 + day);
    /* alerted exactly a day ago: due again */
    assert_true(notify_expiring_due(now, na, 0, now - day, &next));
    assert_int_equal(next, now + day);
    /* an alert sent before the window opened (a previous certificate) */
    assert_true(notify_expiring_due(now, na, 0, now - 40 * day, &next));
    /* a custom window */
    assert_false(notify_expiring_due(na - 8 * day, na, 7 * day, 0, &next));
    assert_int_equal(next, na - 7 * day);
    assert_true(notify_expiring_due(na - 7 * day, na, 7 * day, 0, &next));
    /* expired: still alerted daily */
    assert_true(notify_expiring_due(na + 5, na, 0, na - day, &next));
    assert_int_equal(next, na + 5 + day);
    assert_false(notify_expiring_due(na + 5, na, 0, na, NULL));
}

/* ---- once per round ------------------------------------------------------ */

static struct cfg_deploy exec_action(char **argv, size_t n)
{
    struct cfg_deploy d;

    memset(&d, 0, sizeof(d));
    d.type = CFG_DEPLOY_EXEC;
    d.command.v = argv;
    d.command.n = n;
    return d;
}

static void test_exec_dedup(void **state)
{
    char *reload_nginx[] = {"systemctl", "reload", "nginx", NULL};
    char *reload_nginx2[] = {"systemctl", "reload", "nginx", NULL};
    char *reload_nginx_arg[] = {"systemctl", "reload", "nginx", "--no-block", NULL};
    char *reload_postfix[] = {"systemctl", "reload", "postfix", NULL};
    char *restart_nginx[] = {"systemctl", "restart", "nginx", NULL};
    struct cfg_deploy a = exec_action(reload_nginx, 3);
    struct cfg_deploy b = exec_action(reload_postfix, 3);
    struct cfg_deploy c = exec_action(reload_nginx2, 3); /* same argv, other strings */
    struct cfg_deploy d = exec_action(reload_nginx_arg, 4);
    struct cfg_deploy e = exec_action(restart_nginx, 3);
    struct cfg_deploy f;
    memset(&f, 0, sizeof(f));
    f.type = CFG_DEPLOY_FILES;
    const struct cfg_deploy *acts[] = {&a, &f, &b, &c, NULL, &d, &a, &e, &b};
    size_t idx[9];

    (void)state;
    assert_true(deploy_exec_same(&a, &c));
    assert_false(deploy_exec_same(&a, &d));
    assert_false(deploy_exec_same(&a, &e));
    assert_false(deploy_exec_same(&a, &f));
    size_t k = deploy_exec_dedup(acts, 9, idx);
    assert_int_equal(k, 4);
    assert_int_equal(idx[0], 0); /* reload nginx (first of 0, 3, 6) */
    assert_int_equal(idx[1], 2); /* reload postfix (first of 2, 8) */
    assert_int_equal(idx[2], 5); /* reload nginx --no-block */
    assert_int_equal(idx[3], 7); /* restart nginx */
    assert_int_equal(deploy_exec_dedup(acts, 0, idx), 0);
}

/* ---- the config keys these modules read ---------------------------------- */

static void put(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_config_keys(void **state)
{
    char tmpl[] = "/tmp/test_outbox.XXXXXX";
    struct config *cfg = NULL;
    struct config_diag diag;

    (void)state;
    assert_non_null(mkdtemp(tmpl));
    char *main_file = xasprintf("%s/certloop.toml", tmpl);
    char *secret = xasprintf("%s/wh.secret", tmpl);
    char *trust = xasprintf("%s/ca.pem", tmpl);
    put(secret, "k\n", 0600);
    put(trust, "", 0644);
    char *text = xasprintf("[daemon]\n"
                           "hooks_dir = \"%s/hooks.d\"\n"
                           "expiring_window = \"7d12h\"\n"
                           "[notify.ops]\n"
                           "url = \"https://hooks.example/x\"\n"
                           "secret_file = \"%s\"\n"
                           "trust = \"%s\"\n"
                           "events = [\"deploy_failed\", \"dns_record_required\", "
                           "\"dns_record_removable\", \"issued\"]\n"
                           "[notify.all]\n"
                           "url = \"http://127.0.0.1:9/y\"\n",
                           tmpl, secret, trust);
    put(main_file, text, 0644);
    config_diag_init(&diag);
    int rc = config_load(main_file, &cfg, &diag);
    for (size_t i = 0; i < diag.n; i++)
        fprintf(stderr, "%s\n", diag.lines[i]);
    assert_int_equal(rc, 0);
    char *hooks = xasprintf("%s/hooks.d", tmpl);
    assert_string_equal(cfg->daemon.hooks_dir, hooks);
    assert_int_equal(cfg->daemon.expiring_window_s, 7 * 86400 + 12 * 3600);
    const struct cfg_notify *ops = config_notify_find(cfg, "ops");
    assert_non_null(ops);
    assert_string_equal(ops->trust, trust);
    /* the bits are 1 << the event type */
    assert_int_equal(ops->events,
                     (1u << NOTIFY_EV_DEPLOY_FAILED) | (1u << NOTIFY_EV_DNS_RECORD_REQUIRED) |
                         (1u << NOTIFY_EV_DNS_RECORD_REMOVABLE) | (1u << NOTIFY_EV_ISSUED));
    const struct cfg_notify *all = config_notify_find(cfg, "all");
    assert_int_equal(all->events, (1u << NOTIFY_EV__MAX) - 1);
    assert_null(all->trust);
    config_unref(cfg);
    config_diag_fini(&diag);

    /* the defaults */
    put(main_file, "[notify.a]\nurl = \"http://127.0.0.1:9/\"\n", 0644);
    config_diag_init(&diag);
    assert_int_equal(config_load(main_file, &cfg, &diag), 0);
    assert_string_equal(cfg->daemon.hooks_dir, DEPLOY_HOOKS_DIR_DEFAULT);
    assert_int_equal(cfg->daemon.expiring_window_s, NOTIFY_EXPIRING_WINDOW_S);
    config_unref(cfg);
    config_diag_fini(&diag);

    /* a relative hooks_dir, a zero window and a missing trust file are errors */
    free(text);
    text = xasprintf("[daemon]\nhooks_dir = \"hooks.d\"\nexpiring_window = 0\n"
                     "[notify.a]\nurl = \"https://h.example/\"\ntrust = \"%s/none.pem\"\n",
                     tmpl);
    put(main_file, text, 0644);
    config_diag_init(&diag);
    assert_int_equal(config_load(main_file, &cfg, &diag), ERR_CONFIG);
    assert_int_equal(diag.n, 3);
    assert_non_null(strstr(diag.lines[0], "daemon.hooks_dir"));
    assert_non_null(strstr(diag.lines[1], "daemon.expiring_window"));
    assert_non_null(strstr(diag.lines[2], "notify.a.trust"));
    config_diag_fini(&diag);

    unlink(main_file);
    unlink(secret);
    unlink(trust);
    rmdir(tmpl);
    free(hooks);
    free(text);
    free(main_file);
    free(secret);
    free(trust);
}

/* Email and Slack render the event for people: subject, names, the error,
 * the RFC 5322 headers with CRLF lines. */
static void test_event_rendered_for_email_and_slack(void **state)
{
    static const char ev[] =
        "{\"id\":\"0123456789abcdef0123456789abcdef\",\"event\":\"failed\","
        "\"certificate\":\"www\",\"domains\":[\"a.example\",\"b.example\"],"
        "\"time\":\"2026-12-07T01:02:03Z\",\"error\":{\"type\":"
        "\"urn:ietf:params:acme:error:connection\",\"detail\":\"connection refused by "
        "127.0.0.1:80\",\"identifier\":\"a.example\"}}";
    const char *to[] = {"ops@example.org", "b@example.org"};

    (void)state;
    char *subj = notify_event_subject(ev);
    assert_string_equal(subj, "certloop: www could not be obtained");
    char *text = notify_event_text(ev);
    assert_non_null(strstr(text, "Names: a.example, b.example\n"));
    assert_non_null(strstr(text, "Error: connection refused by 127.0.0.1:80\n"));
    assert_non_null(strstr(text, "Problem type: urn:ietf:params:acme:error:connection\n"));
    char *slack = notify_slack_body(ev);
    json_t *j = json_loads(slack, 0, NULL);
    assert_non_null(j);
    const char *st = json_string_value(json_object_get(j, "text"));
    assert_non_null(st);
    assert_memory_equal(st, "*certloop: www could not be obtained*\n", 38);
    json_decref(j);
    char *msg = notify_email_message(ev, "certloop@example.org", to, 2, "d1", 0);
    assert_non_null(strstr(msg, "From: certloop@example.org\r\nTo: ops@example.org, "
                                "b@example.org\r\nSubject: certloop: www could not be "
                                "obtained\r\nDate: Thu, 01 Jan 1970 00:00:00 +0000\r\n"
                                "Message-ID: <d1@certloop>\r\n"));
    assert_non_null(strstr(msg, "X-Certloop-Event: failed\r\nX-Certloop-Delivery: d1\r\n\r\n"
                                "Certificate www could not be obtained.\r\n"));
    /* every line ends with CRLF, no bare LF */
    for (const char *p = strchr(msg, '\n'); p != NULL; p = strchr(p + 1, '\n'))
        assert_int_equal(p[-1], '\r');
    assert_null(notify_event_text("not json"));
    assert_null(notify_email_message("{}", "a@b", to, 1, "d", 0));
    free(subj);
    free(text);
    free(slack);
    free(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_issued_fields),
        cmocka_unit_test(test_event_rendered_for_email_and_slack),
        cmocka_unit_test(test_event_failed_carries_problem),
        cmocka_unit_test(test_event_dns_records),
        cmocka_unit_test(test_event_persist_expiring),
        cmocka_unit_test(test_event_rejects_bad_input),
        cmocka_unit_test(test_event_ids_unique),
        cmocka_unit_test(test_event_names_round_trip),
        cmocka_unit_test(test_signature_rfc4231),
        cmocka_unit_test(test_backoff_doubles_with_jitter_and_cap),
        cmocka_unit_test(test_expiring_due),
        cmocka_unit_test(test_exec_dedup),
        cmocka_unit_test(test_config_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
