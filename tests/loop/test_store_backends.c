/* The store's contract, run against every backend this build has: the file
 * backend (store/fs.c) and the in-memory fake (tests/support/store_fake.c),
 * so that a loop test that uses the fake sees what the daemon would. A new
 * backend (PostgreSQL, issue 14) adds itself to the table at the bottom.
 * Each case: the callback never runs inside _start, runs exactly once, and
 * what a write did is what the reads answer; uv_loop_close() == 0 after. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pg_world.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "test_fs.h"
#include "store_fake.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

struct backend {
    const char *name;
    struct store *(*open)(uv_loop_t *loop, const char *dir);
};

static struct store *open_fs(uv_loop_t *loop, const char *dir)
{
    struct store *s = NULL;
    char *sd = xasprintf("%s/state", dir);

    assert_int_equal(store_fs_open(loop, sd, 0, &s), 0);
    free(sd);
    return s;
}

static struct store *open_fake(uv_loop_t *loop, const char *dir)
{
    (void)dir;
    return store_fake_new(loop);
}

/* PostgreSQL (store/pg_store.c): a database of its own per case in the
 * binary's server (tests/support/pg_world). */
static struct store *open_pg(uv_loop_t *loop, const char *dir)
{
    static int n;
    struct store *s = NULL;
    struct pg_key key = pg_test_key();
    char db[32];

    snprintf(db, sizeof(db), "backends%d", n++);
    char *ci = pg_world_fresh_db(db);
    assert_int_equal(store_pg_open(loop, ci, &key, "contract", &s), 0);
    free(ci);
    /* the instance's state directory, as store_open_config gives it */
    char *sd = xasprintf("%s/state", dir);
    pg_store_local_set(s, sd);
    free(sd);
    return s;
}

struct fx {
    uv_loop_t loop;
    char dir[64];
    struct store *s;
    const struct backend *b;
};

static void fx_open(struct fx *f, const struct backend *b)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_store_backends.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->b = b;
    f->s = b->open(&f->loop, f->dir);
}

static void fx_close(struct fx *f)
{
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    store_close(f->s);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* a backend's handles close */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    test_rm_rf(f->dir);
}

struct got {
    int calls;
    int status;
    char generation[64];
    uint64_t fence;
};

static void got_cb(int status, const struct store_result *r, void *arg)
{
    struct got *g = arg;

    g->calls++;
    g->status = status;
    snprintf(g->generation, sizeof(g->generation), "%s",
             r->generation != NULL ? r->generation : "");
    g->fence = r->fence;
}

/* Starts nothing itself: checks the start, that no callback came from
 * inside it, runs the loop and returns the one callback's status. */
static int settle(struct fx *f, struct got *g, int start_rc)
{
    assert_int_equal(start_rc, 0);
    assert_int_equal(g->calls, 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(g->calls, 1);
    int status = g->status;
    memset(g, 0, sizeof(*g));
    return status;
}

static void case_issuance_records(const struct backend *b)
{
    struct fx f;
    struct got g = {0};
    char *json = NULL;
    struct store_cert c = {0};

    fx_open(&f, b);
    /* an issuance: order, generation, settle */
    assert_int_equal(store_order_read(f.s, "www", &json), -ENOENT);
    assert_int_equal(settle(&f, &g, store_order_put_start(f.s, "www", "{\"o\":1}", got_cb, &g)), 0);
    assert_int_equal(store_order_read(f.s, "www", &json), 0);
    assert_string_equal(json, "{\"o\":1}");
    free(json);
    struct store_cert_put p = {"www", "C\n", "I\n", "C\nI\n", "K\n", "{}", 3, false};
    assert_int_equal(store_cert_put_start(f.s, &p, got_cb, &g), 0);
    assert_int_equal(g.calls, 0);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 0);
    char gen[64];
    snprintf(gen, sizeof(gen), "%s", g.generation);
    assert_true(gen[0] != '\0');
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_cert_read_current(f.s, "www", true, &c), 0);
    assert_string_equal(c.generation, gen);
    assert_string_equal(c.fullchain_pem, "C\nI\n");
    assert_string_equal(c.key_pem, "K\n");
    store_cert_fini(&c);
    /* the current generation's name alone, and none for an unknown name */
    char *cur = NULL;
    assert_int_equal(store_cert_current_gen(f.s, "www", &cur), 0);
    assert_string_equal(cur, gen);
    free(cur);
    assert_int_equal(store_cert_current_gen(f.s, "nobody", &cur), -ENOENT);
    assert_null(cur);
    assert_false(store_redeploy_marked(f.s, "www"));
    assert_int_equal(settle(&f, &g, store_order_settle_start(f.s, "www", got_cb, &g)), 0);
    assert_int_equal(store_order_read(f.s, "www", &json), -ENOENT);
    /* a note with the generation, and none for one that is gone */
    assert_int_equal(
        settle(&f, &g, store_note_put_start(f.s, "www", gen, "ari", "{\"a\":1}", got_cb, &g)), 0);
    assert_int_equal(store_note_read(f.s, "www", gen, "ari", &json), 0);
    assert_string_equal(json, "{\"a\":1}");
    free(json);
    assert_int_equal(
        settle(&f, &g,
               store_note_put_start(f.s, "www", "19990101T000000Z-0000", "ari", "{}", got_cb, &g)),
        -ENOENT);
    /* an import's put leaves the redeploy mark; the settle clears it */
    p.mark_redeploy = true;
    assert_int_equal(settle(&f, &g, store_cert_put_start(f.s, &p, got_cb, &g)), 0);
    assert_true(store_redeploy_marked(f.s, "www"));
    assert_int_equal(settle(&f, &g, store_order_settle_start(f.s, "www", got_cb, &g)), 0);
    assert_false(store_redeploy_marked(f.s, "www"));
    fx_close(&f);
}

static bool only_www(const char *name, void *arg)
{
    (void)arg;
    return strcmp(name, "www") == 0;
}

static const char *keep_all(const char *id, const char *text, void *arg)
{
    (void)id;
    (void)text;
    (*(int *)arg)++;
    return NULL;
}

static void case_alerts_outbox_history(const struct backend *b)
{
    struct fx f;
    struct got g = {0};
    int64_t t = 0;
    int seen = 0;
    char *text = NULL;
    size_t len = 0;

    fx_open(&f, b);
    /* alerts: one record per certificate and kind; the sweep takes every
     * kind of a certificate gone; t <= 0 forgets one kind */
    const enum store_alert EXP = STORE_ALERT_EXPIRING, PERSIST = STORE_ALERT_PERSIST_EXPIRING;
    assert_int_equal(settle(&f, &g, store_alert_put_start(f.s, "www", EXP, 1700000000, got_cb, &g)),
                     0);
    assert_int_equal(
        settle(&f, &g, store_alert_put_start(f.s, "www", PERSIST, 1700000500, got_cb, &g)), 0);
    assert_int_equal(
        settle(&f, &g, store_alert_put_start(f.s, "gone", EXP, 1600000000, got_cb, &g)), 0);
    assert_int_equal(
        settle(&f, &g, store_alert_put_start(f.s, "gone", PERSIST, 1600000500, got_cb, &g)), 0);
    assert_int_equal(store_alerts_sweep(f.s, only_www, NULL), 2);
    assert_int_equal(store_alert_read(f.s, "www", EXP, &t), 0);
    assert_int_equal(t, 1700000000);
    assert_int_equal(store_alert_read(f.s, "www", PERSIST, &t), 0);
    assert_int_equal(t, 1700000500);
    assert_int_equal(store_alert_read(f.s, "gone", EXP, &t), -ENOENT);
    assert_int_equal(store_alert_read(f.s, "gone", PERSIST, &t), -ENOENT);
    assert_int_equal(settle(&f, &g, store_alert_put_start(f.s, "www", PERSIST, 0, got_cb, &g)), 0);
    assert_int_equal(store_alert_read(f.s, "www", PERSIST, &t), -ENOENT);
    assert_int_equal(store_alert_read(f.s, "www", EXP, &t), 0);
    assert_int_equal(t, 1700000000);

    assert_int_equal(store_outbox_load(f.s, keep_all, &seen), 0);
    assert_int_equal(settle(&f, &g, store_outbox_put_start(f.s, "d1", "one", got_cb, &g)), 0);
    assert_int_equal(settle(&f, &g, store_outbox_put_start(f.s, "d2", "two", got_cb, &g)), 0);
    assert_int_equal(settle(&f, &g, store_outbox_bury_start(f.s, "d2", "two", got_cb, &g)), 0);
    assert_int_equal(store_outbox_load(f.s, keep_all, &seen), 1);
    assert_int_equal(seen, 1);
    assert_int_equal(settle(&f, &g, store_outbox_remove_start(f.s, "d1", got_cb, &g)), 0);
    assert_int_equal(store_outbox_load(f.s, keep_all, &seen), 0);

    struct store_history_line v[] = {{"www", "x\n"}, {"www", "y\n"}};
    assert_int_equal(settle(&f, &g, store_history_append_start(f.s, v, 2, got_cb, &g)), 0);
    assert_int_equal(store_history_read(f.s, "www", &text, &len), 0);
    assert_string_equal(text, "x\ny\n");
    free(text);
    fx_close(&f);
}

static void case_accounts_and_leases(const struct backend *b)
{
    struct fx f;
    struct got g = {0};
    char *key = NULL, *json = NULL;

    fx_open(&f, b);
    assert_int_equal(store_account_read(f.s, "le", &key, &json), -ENOENT);
    assert_int_equal(settle(&f, &g, store_account_put_start(f.s, "le", "K1\n", "{}", got_cb, &g)),
                     0);
    assert_int_equal(settle(&f, &g, store_account_next_put_start(f.s, "le", "K2\n", got_cb, &g)),
                     0);
    assert_int_equal(
        settle(&f, &g, store_account_rollover_start(f.s, "le", "K2\n", "{}", got_cb, &g)), 0);
    assert_int_equal(store_account_read(f.s, "le", &key, &json), 0);
    assert_string_equal(key, "K2\n");
    free(key);
    free(json);
    assert_int_equal(store_account_next_read(f.s, "le", &key), -ENOENT);
    assert_int_equal(settle(&f, &g, store_account_retire_start(f.s, "le", 5, got_cb, &g)), 0);
    assert_int_equal(store_account_read(f.s, "le", &key, &json), -ENOENT);

    assert_int_equal(store_lease_take_start(f.s, "www", got_cb, &g), 0);
    assert_int_equal(g.calls, 0);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(g.status, 0);
    uint64_t fence = g.fence;
    memset(&g, 0, sizeof(g));
    assert_int_equal(settle(&f, &g, store_lease_take_start(f.s, "www", got_cb, &g)), ERR_LOCKED);
    assert_int_equal(settle(&f, &g, store_lease_renew_start(f.s, "www", fence, got_cb, &g)), 0);
    store_lease_release(f.s, "www", fence);
    assert_int_equal(settle(&f, &g, store_lease_take_start(f.s, "www", got_cb, &g)), 0);
    fx_close(&f);
}

/* A burst: many writes started in one go (as when many orders finish at
 * once): each answers once, in the order started for one name, and each
 * is what the reads show. The file backend writes the burst in a few
 * group-commit batches, not one job per write. */
#define BURST 24
static void case_burst(const struct backend *b)
{
    struct fx f;
    struct got g[BURST + 2];
    char name[BURST][16], *json = NULL;
    struct store_cert c = {0};

    fx_open(&f, b);
    long before = store_fs_group_batches(f.s);
    memset(g, 0, sizeof(g));
    for (int i = 0; i < BURST; i++) {
        snprintf(name[i], sizeof(name[i]), "c%d", i);
        assert_int_equal(store_order_put_start(f.s, name[i], "{\"o\":1}", got_cb, &g[i]), 0);
    }
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < BURST; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].status, 0);
        assert_int_equal(store_order_read(f.s, name[i], &json), 0);
        assert_string_equal(json, "{\"o\":1}");
        free(json);
    }
    /* generations (a mark on odd ones), history lines, and two puts of one
     * name at once: the second started is current */
    memset(g, 0, sizeof(g));
    struct store_history_line v[] = {{"c0", "x\n"}, {"c1", "y\n"}};
    for (int i = 0; i < BURST; i++) {
        struct store_cert_put p = {name[i], "C\n", "I\n", "C\nI\n", "K\n", "{}", 3, i % 2 == 1};
        assert_int_equal(store_cert_put_start(f.s, &p, got_cb, &g[i]), 0);
    }
    assert_int_equal(store_history_append_start(f.s, v, 2, got_cb, &g[BURST]), 0);
    struct store_cert_put p2 = {"c0", "C2\n", "I\n", "C2\nI\n", "K2\n", "{}", 3, false};
    assert_int_equal(store_cert_put_start(f.s, &p2, got_cb, &g[BURST + 1]), 0);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < BURST + 2; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].status, 0);
    }
    for (int i = 0; i < BURST; i++) {
        assert_int_equal(store_cert_read_current(f.s, name[i], true, &c), 0);
        assert_string_equal(c.generation, i == 0 ? g[BURST + 1].generation : g[i].generation);
        assert_string_equal(c.key_pem, i == 0 ? "K2\n" : "K\n");
        store_cert_fini(&c);
        assert_int_equal(store_redeploy_marked(f.s, name[i]), i % 2 == 1);
    }
    memset(g, 0, sizeof(g));
    for (int i = 0; i < BURST; i++)
        assert_int_equal(store_order_settle_start(f.s, name[i], got_cb, &g[i]), 0);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < BURST; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].status, 0);
        assert_int_equal(store_order_read(f.s, name[i], &json), -ENOENT);
        assert_false(store_redeploy_marked(f.s, name[i]));
    }
    long after = store_fs_group_batches(f.s);
    if (before >= 0) {
        /* 3 bursts: each a batch of its first write, then one of the rest
         * (c0's second put waits for a batch of its own) */
        assert_true(after - before >= 3);
        assert_true(after - before <= 8);
    }
    fx_close(&f);
}

/* The records of one instance alone: the API's bootstrap certificate and
 * the hub cursors. A backend that keeps its records on disk keeps these
 * across a close and open (PostgreSQL: in the instance's state directory,
 * the key 0600, whatever the database holds: the reopened store has a
 * database of its own). */
static void case_instance_records(const struct backend *b)
{
    struct fx f;
    struct got g = {0};
    char *cert = NULL, *key = NULL, *id = NULL;

    fx_open(&f, b);
    assert_int_equal(store_api_bootstrap_read(f.s, &cert, &key), -ENOENT);
    assert_int_equal(store_hub_cursor_read(f.s, "main", &id), -ENOENT);
    assert_int_equal(store_api_bootstrap_put(f.s, "C1\n", "K1\n"), 0);
    assert_int_equal(store_api_bootstrap_put(f.s, "C2\n", "K2\n"), 0);
    assert_int_equal(settle(&f, &g, store_hub_cursor_put_start(f.s, "main", "41", got_cb, &g)), 0);
    assert_int_equal(settle(&f, &g, store_hub_cursor_put_start(f.s, "main", "42", got_cb, &g)), 0);
    assert_int_equal(settle(&f, &g, store_hub_cursor_put_start(f.s, "edge", "7", got_cb, &g)), 0);
    if (b->open != open_fake) {
        char *kp = xasprintf("%s/state/api/bootstrap-key.pem", f.dir);
        struct stat st;
        assert_int_equal(stat(kp, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        free(kp);
        assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
        store_close(f.s);
        uv_run(&f.loop, UV_RUN_DEFAULT);
        f.s = b->open(&f.loop, f.dir);
    }
    assert_int_equal(store_api_bootstrap_read(f.s, &cert, &key), 0);
    assert_string_equal(cert, "C2\n");
    assert_string_equal(key, "K2\n");
    assert_int_equal(store_hub_cursor_read(f.s, "main", &id), 0);
    assert_string_equal(id, "42");
    free(id);
    assert_int_equal(store_hub_cursor_read(f.s, "edge", &id), 0);
    assert_string_equal(id, "7");
    free(id);
    assert_int_equal(store_hub_cursor_read(f.s, "other", &id), -ENOENT);
    free(cert);
    free(key);
    fx_close(&f);
}

static const struct backend backends[] = {
    {"files", open_fs},
    {"fake", open_fake},
    {"postgresql", open_pg}, /* last: left out when PostgreSQL is not installed */
};
static size_t nbackends = sizeof(backends) / sizeof(backends[0]);

static void test_issuance_records_every_backend(void **state)
{
    (void)state;
    for (size_t i = 0; i < nbackends; i++)
        case_issuance_records(&backends[i]);
}

static void test_alerts_outbox_history_every_backend(void **state)
{
    (void)state;
    for (size_t i = 0; i < nbackends; i++)
        case_alerts_outbox_history(&backends[i]);
}

static void test_accounts_and_leases_every_backend(void **state)
{
    (void)state;
    for (size_t i = 0; i < nbackends; i++)
        case_accounts_and_leases(&backends[i]);
}

static void test_instance_records_every_backend(void **state)
{
    (void)state;
    for (size_t i = 0; i < nbackends; i++)
        case_instance_records(&backends[i]);
}

static void test_burst_every_backend(void **state)
{
    (void)state;
    for (size_t i = 0; i < nbackends; i++)
        case_burst(&backends[i]);
}

/* The fake only: an injected failure reaches the callback and changes
 * nothing; calls are counted. */
static void test_fake_failure_injection_and_counts(void **state)
{
    struct fx f;
    struct got g = {0};
    char *json = NULL;

    (void)state;
    fx_open(&f, &backends[1]);
    store_fake_fail_next(f.s, "order_put", -EIO);
    assert_int_equal(settle(&f, &g, store_order_put_start(f.s, "www", "{}", got_cb, &g)), -EIO);
    assert_int_equal(store_order_read(f.s, "www", &json), -ENOENT);
    assert_int_equal(settle(&f, &g, store_order_put_start(f.s, "www", "{}", got_cb, &g)), 0);
    assert_int_equal(store_fake_calls(f.s, "order_put"), 2);
    assert_int_equal(store_fake_calls(f.s, "cert_put"), 0);
    store_fake_fail_next(f.s, "order_read", -EACCES);
    assert_int_equal(store_order_read(f.s, "www", &json), -EACCES);
    fx_close(&f);
}

/* The file backend only: history lines alone are held for the next other
 * write and share its batch (one batch, not two); held alone they are still
 * written and answered; a store closed while they are held writes them. */
static void test_fs_history_joins_the_next_batch(void **state)
{
    struct fx f;
    struct got g[2];
    char *text = NULL;
    size_t len = 0;
    struct store_history_line v[] = {{"www", "{\"a\":1}\n"}};

    (void)state;
    fx_open(&f, &backends[0]);
    long before = store_fs_group_batches(f.s);
    if (before < 0) { /* no syncfs here: each write runs alone */
        fx_close(&f);
        skip();
    }
    /* a history line, then a generation in the same loop turn: one batch */
    memset(g, 0, sizeof(g));
    assert_int_equal(store_history_append_start(f.s, v, 1, got_cb, &g[0]), 0);
    struct store_cert_put p = {"www", "C\n", "I\n", "C\nI\n", "K\n", "{}", 3, false};
    assert_int_equal(store_cert_put_start(f.s, &p, got_cb, &g[1]), 0);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(g[0].calls, 1);
    assert_int_equal(g[0].status, 0);
    assert_int_equal(g[1].calls, 1);
    assert_int_equal(g[1].status, 0);
    assert_int_equal(store_fs_group_batches(f.s) - before, 1);
    assert_int_equal(store_history_read(f.s, "www", &text, &len), 0);
    assert_non_null(strstr(text, "{\"a\":1}"));
    free(text);

    /* alone: written when the hold ends, in a batch of its own */
    memset(g, 0, sizeof(g));
    before = store_fs_group_batches(f.s);
    struct store_history_line v2[] = {{"www", "{\"b\":2}\n"}};
    assert_int_equal(store_history_append_start(f.s, v2, 1, got_cb, &g[0]), 0);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(g[0].calls, 1);
    assert_int_equal(g[0].status, 0);
    assert_int_equal(store_fs_group_batches(f.s) - before, 1);
    assert_int_equal(store_history_read(f.s, "www", &text, &len), 0);
    assert_non_null(strstr(text, "{\"b\":2}"));
    free(text);

    /* held when the store is closed: written all the same */
    memset(g, 0, sizeof(g));
    struct store_history_line v3[] = {{"www", "{\"c\":3}\n"}};
    assert_int_equal(store_history_append_start(f.s, v3, 1, got_cb, &g[0]), 0);
    store_close(f.s);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(g[0].calls, 1);
    assert_int_equal(g[0].status, 0);
    f.s = open_fs(&f.loop, f.dir);
    assert_int_equal(store_history_read(f.s, "www", &text, &len), 0);
    assert_non_null(strstr(text, "{\"c\":3}"));
    free(text);
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issuance_records_every_backend),
        cmocka_unit_test(test_alerts_outbox_history_every_backend),
        cmocka_unit_test(test_accounts_and_leases_every_backend),
        cmocka_unit_test(test_fake_failure_injection_and_counts),
        cmocka_unit_test(test_burst_every_backend),
        cmocka_unit_test(test_instance_records_every_backend),
        cmocka_unit_test(test_fs_history_joins_the_next_batch),
    };
    log_set_level(LOG_LVL_ERROR);
    int rc = pg_world_unavailable();
    if (rc == 1)
        return 1; /* CI must have it */
    if (rc == 77) {
        nbackends--;
        return cmocka_run_group_tests(tests, NULL, NULL);
    }
    return cmocka_run_group_tests(tests, pg_world_group_setup, pg_world_group_teardown);
}
