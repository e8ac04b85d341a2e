/* certloop's schema and the per-certificate lease on a real PostgreSQL 15
 * (tests/support/pg_world, one server for the binary): migration creates
 * every table once, concurrent migrations serialize, a newer schema is
 * refused untouched; a version-3 database's alerts migrate; the lease rule in SQL agrees step by
 * step with the pure rule under a fake clock (take, renew, release, takeover after expiry with a
 * higher token, a stale holder's renew and write refused); a fenced generation write stores a
 * sealed key and notifies listeners. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_world.h"
#include "store/pg_internal.h"
#include "util/err.h"
#include "util/xalloc.h"

struct got {
    int calls, status, version;
    enum pg_lease_verdict v;
    uint64_t token;
};

static void on_barrier(int status, const struct pg_res *res, void *arg)
{
    (void)status;
    (void)res;
    (*(int *)arg)++; /* struct fl and struct got both begin with calls */
}

static void on_schema(int status, int version, void *arg)
{
    struct got *g = arg;

    g->calls++;
    g->status = status;
    g->version = version;
}

static void on_lease(int status, enum pg_lease_verdict v, uint64_t token, void *arg)
{
    struct got *g = arg;

    g->calls++;
    g->status = status;
    g->v = v;
    g->token = token;
}

static void migrate(struct pg_fx *f, struct pg_conn *c, struct got *g)
{
    int before = g->calls;

    assert_int_equal(pg_schema_migrate_start(c, on_schema, g, NULL), 0);
    pg_fx_wait(f, &g->calls, before + 1);
}

static void test_schema_created_once_and_idempotent(void **state)
{
    struct pg_fx *f = *state;
    struct got g = {0};
    char *ci = pg_world_fresh_db("schema_once");

    f->c = pg_fx_conn(f, ci);
    free(ci);
    migrate(f, f->c, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.version, PG_SCHEMA_VERSION);
    char *n =
        pg_world_query_db("schema_once", "SELECT count(*) FROM pg_tables WHERE tablename LIKE "
                                         "'certloop\\_%'");
    assert_string_equal(n, "17"); /* schema + the fifteen of version 1 + declarations (v2) */
    free(n);
    migrate(f, f->c, &g); /* again: nothing to do, no error */
    assert_int_equal(g.calls, 2);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.version, PG_SCHEMA_VERSION);
}

/* Two instances starting together: the advisory lock serializes them and
 * both end on the current version. */
static void test_concurrent_migrations_serialize(void **state)
{
    struct pg_fx *f = *state;
    struct got a = {0}, b = {0};
    char *ci = pg_world_fresh_db("schema_race");

    f->c = pg_fx_conn(f, ci);
    f->c2 = pg_fx_conn(f, ci);
    free(ci);
    assert_int_equal(pg_schema_migrate_start(f->c, on_schema, &a, NULL), 0);
    assert_int_equal(pg_schema_migrate_start(f->c2, on_schema, &b, NULL), 0);
    pg_fx_wait(f, &a.calls, 1);
    pg_fx_wait(f, &b.calls, 1);
    assert_int_equal(a.status, 0);
    assert_int_equal(b.status, 0);
    assert_int_equal(a.version, PG_SCHEMA_VERSION);
    assert_int_equal(b.version, PG_SCHEMA_VERSION);
}

/* A database migrated by a newer certloop: refused, nothing changed. */
static void test_newer_schema_is_refused_untouched(void **state)
{
    struct pg_fx *f = *state;
    struct got g = {0};
    char *ci = pg_world_fresh_db("schema_newer");

    f->c = pg_fx_conn(f, ci);
    free(ci);
    migrate(f, f->c, &g);
    assert_int_equal(g.status, 0);
    free(pg_world_query_db("schema_newer", "UPDATE certloop_schema SET version = 99; "
                                           "DROP TABLE certloop_history"));
    migrate(f, f->c, &g);
    assert_int_equal(g.status, ERR_UNSUPPORTED);
    char *v = pg_world_query_db("schema_newer", "SELECT version FROM certloop_schema");
    assert_string_equal(v, "99");
    free(v);
    v = pg_world_query_db("schema_newer", "SELECT to_regclass('certloop_history') IS NULL");
    assert_string_equal(v, "t"); /* not recreated: the newer schema is not ours to touch */
    free(v);
}

/* A database left at version 3 (alerts without kinds) migrates to the
 * current version: its alert rows become "expiring" alerts, and a
 * "persist_expiring" alert of the same certificate is a row beside them. */
static void test_version_3_alerts_become_expiring_alerts(void **state)
{
    struct pg_fx *f = *state;
    struct got g = {0};
    char *ci = pg_world_fresh_db("schema_v3");
    char *sql = xstrdup("CREATE TABLE certloop_schema (id integer PRIMARY KEY CHECK (id = 1),"
                        " version integer NOT NULL, updated_at timestamptz NOT NULL DEFAULT"
                        " now()); INSERT INTO certloop_schema (id, version) VALUES (1, 3);");

    for (int v = 1; v <= 3; v++)
        for (const char *const *s = pg_schema_migration(v); *s != NULL; s++) {
            char *next = xasprintf("%s %s;", sql, *s);
            free(sql);
            sql = next;
        }
    free(pg_world_query_db("schema_v3", sql));
    free(sql);
    free(pg_world_query_db("schema_v3", "INSERT INTO certloop_alerts (instance, cert, t)"
                                        " VALUES ('alpha', 'www', 1700000000)"));
    f->c = pg_fx_conn(f, ci);
    free(ci);
    migrate(f, f->c, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.version, PG_SCHEMA_VERSION);
    char *v = pg_world_query_db("schema_v3", "SELECT kind || ' ' || t FROM certloop_alerts");
    assert_string_equal(v, "expiring 1700000000");
    free(v);
    free(pg_world_query_db("schema_v3",
                           "INSERT INTO certloop_alerts (instance, cert, kind, t)"
                           " VALUES ('alpha', 'www', 'persist_expiring', 1700000500)"));
    v = pg_world_query_db("schema_v3", "SELECT count(*) FROM certloop_alerts WHERE cert = 'www'");
    assert_string_equal(v, "2");
    free(v);
}

enum act { TAKE, RENEW, RELEASE, WRITE };

struct step {
    enum act act;
    const char *holder;
    int tenure; /* which earlier grant's token to use (1-based), for all but TAKE */
    int64_t now;
    enum pg_lease_verdict want;
    uint64_t want_token; /* for grants */
};

#define TTL 300

/* One step on the database; returns the verdict and token it gave. */
static void db_step(struct pg_fx *f, const struct step *s, uint64_t token, int n, struct got *g)
{
    int before = g->calls;

    switch (s->act) {
    case TAKE:
        assert_int_equal(
            pg_lease_take_start(f->c, "www", s->holder, s->now, TTL, on_lease, g, NULL), 0);
        break;
    case RENEW:
        assert_int_equal(
            pg_lease_renew_start(f->c, "www", s->holder, token, s->now, TTL, on_lease, g, NULL), 0);
        break;
    case RELEASE:
        assert_int_equal(
            pg_lease_release_start(f->c, "www", s->holder, token, s->now, on_lease, g, NULL), 0);
        break;
    case WRITE: {
        struct pg_key k = pg_test_key();
        char gen[32];
        snprintf(gen, sizeof(gen), "gen-%d-%s", n, s->holder);
        const char *pem = "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n";
        uint8_t *sealed;
        size_t sealed_len;
        assert_int_equal(
            pg_seal(&k, "www", gen, (const uint8_t *)pem, strlen(pem), &sealed, &sealed_len), 0);
        struct pg_fence fence = {
            .cert = "www", .holder = s->holder, .token = token, .now_ms = s->now};
        struct pg_generation gn = {.cert = "www",
                                   .generation = gen,
                                   .cert_pem = "CERT",
                                   .chain_pem = "CHAIN",
                                   .fullchain_pem = "CERT CHAIN",
                                   .meta_json = "{}",
                                   .key_sealed = sealed,
                                   .key_sealed_len = sealed_len};
        assert_int_equal(pg_generation_put_start(f->c, &fence, &gn, on_lease, g, NULL), 0);
        free(sealed);
        break;
    }
    }
    pg_fx_wait(f, &g->calls, before + 1);
    assert_int_equal(g->status, 0);
}

/* The script: A takes, B is kept out, A renews and writes, A stalls past
 * its expiry, B takes over with a higher token, A's late renew and write
 * are refused, B writes and releases, A takes again (token 3), a renewal by
 * take keeps the token, an old token cannot release, and a holder whose
 * lease ran out cannot write even though nobody took it over. Each step
 * runs on the pure rule and in the database, which must agree. */
static void test_lease_sql_agrees_with_the_rule(void **state)
{
    struct pg_fx *f = *state;
    static const struct step script[] = {
        {TAKE, "a", 0, 1000, PG_LEASE_GRANTED, 1},
        {TAKE, "b", 0, 1100, PG_LEASE_BUSY, 0},
        {RENEW, "a", 1, 1200, PG_LEASE_GRANTED, 1}, /* until 1500 */
        {TAKE, "b", 0, 1499, PG_LEASE_BUSY, 0},
        {WRITE, "a", 1, 1499, PG_LEASE_GRANTED, 1},
        {TAKE, "b", 0, 1500, PG_LEASE_GRANTED, 2}, /* takeover after expiry */
        {RENEW, "a", 1, 1501, PG_LEASE_LOST, 0},
        {WRITE, "a", 1, 1501, PG_LEASE_LOST, 0}, /* the stale holder's write */
        {WRITE, "b", 2, 1600, PG_LEASE_GRANTED, 2},
        {RELEASE, "b", 2, 1700, PG_LEASE_GRANTED, 2},
        {RENEW, "b", 2, 1701, PG_LEASE_LOST, 0}, /* released is released */
        {TAKE, "a", 0, 1700, PG_LEASE_GRANTED, 3},
        {TAKE, "a", 0, 1750, PG_LEASE_GRANTED, 3}, /* own lease: renewed, same token */
        {RELEASE, "a", 1, 1760, PG_LEASE_LOST, 0}, /* an old token */
        {WRITE, "a", 3, 2050, PG_LEASE_LOST, 0},   /* ran out at 2050, nobody took it */
        {TAKE, "a", 0, 2100, PG_LEASE_GRANTED, 4}, /* a new tenure even for the same holder */
    };
    struct pg_lease model = {"", 0, 0};
    uint64_t tokens[16] = {0}; /* the token of each grant by TAKE, in order */
    int grants = 0;
    struct got g = {0}, mg = {0};
    char *ci = pg_world_fresh_db("lease_rule");

    f->c = pg_fx_conn(f, ci);
    free(ci);
    assert_int_equal(pg_conn_listen(f->c, PG_CHANNEL_GENERATION), 0);
    migrate(f, f->c, &mg);
    assert_int_equal(mg.status, 0);

    for (size_t i = 0; i < sizeof(script) / sizeof(script[0]); i++) {
        const struct step *s = &script[i];
        uint64_t token = s->tenure > 0 ? tokens[s->tenure - 1] : 0;
        enum pg_lease_verdict mv;
        uint64_t mtok = 0;

        switch (s->act) {
        case TAKE:
            mv = pg_lease_take(&model, s->holder, s->now, TTL, &mtok);
            break;
        case RENEW:
            mv = pg_lease_renew(&model, s->holder, token, s->now, TTL);
            mtok = token;
            break;
        case RELEASE:
            mv = pg_lease_release(&model, s->holder, token, s->now);
            mtok = token;
            break;
        default:
            mv = pg_lease_write_ok(&model, s->holder, token, s->now) ? PG_LEASE_GRANTED
                                                                     : PG_LEASE_LOST;
            mtok = token;
            break;
        }
        db_step(f, s, token, (int)i, &g);
        printf("step %zu: model %d/%llu database %d/%llu\n", i, mv, (unsigned long long)mtok, g.v,
               (unsigned long long)g.token);
        assert_int_equal(mv, s->want);
        assert_int_equal(g.v, s->want);
        if (s->want == PG_LEASE_GRANTED) {
            assert_int_equal(mtok, s->want_token);
            assert_int_equal(g.token, s->want_token);
        }
        if (s->act == TAKE && s->want == PG_LEASE_GRANTED && grants < 16 &&
            (grants == 0 || tokens[grants - 1] != g.token))
            tokens[grants++] = g.token;
    }
    /* exactly the two granted writes are stored; the current one is b's */
    char *v =
        pg_world_query_db("lease_rule", "SELECT string_agg(generation, ',' ORDER BY generation) "
                                        "FROM certloop_generations");
    assert_string_equal(v, "gen-4-a,gen-8-b");
    free(v);
    v = pg_world_query_db("lease_rule", "SELECT current_generation FROM certloop_certificates");
    assert_string_equal(v, "gen-8-b");
    free(v);
    pg_fx_wait(f, &f->notes, 2);
    assert_string_equal(f->note, PG_CHANNEL_GENERATION ":www gen-8-b");
}

/* The key column holds no PEM, and what comes back opens under the
 * generation it was sealed for. */
static void test_stored_key_is_sealed(void **state)
{
    struct pg_fx *f = *state;
    struct got g = {0}, mg = {0};
    struct pg_key k = pg_test_key();
    char *ci = pg_world_fresh_db("sealed");
    const char *pem =
        "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n";
    uint8_t *sealed, *pt;
    size_t sealed_len, ptlen;

    f->c = pg_fx_conn(f, ci);
    free(ci);
    migrate(f, f->c, &mg);
    /* the server's clock this time */
    assert_int_equal(pg_lease_take_start(f->c, "api", "a", -1, 60000, on_lease, &g, NULL), 0);
    pg_fx_wait(f, &g.calls, 1);
    assert_int_equal(g.v, PG_LEASE_GRANTED);
    assert_int_equal(pg_lease_take_start(f->c, "api", "b", -1, 60000, on_lease, &g, NULL), 0);
    pg_fx_wait(f, &g.calls, 2);
    assert_int_equal(g.v, PG_LEASE_BUSY);

    assert_int_equal(
        pg_seal(&k, "api", "g1", (const uint8_t *)pem, strlen(pem), &sealed, &sealed_len), 0);
    struct pg_fence fence = {.cert = "api", .holder = "a", .token = 1, .now_ms = -1};
    struct pg_generation gn = {"api", "g1", "C", "", "C", "{}", sealed, sealed_len};
    assert_int_equal(pg_generation_put_start(f->c, &fence, &gn, on_lease, &g, NULL), 0);
    free(sealed);
    pg_fx_wait(f, &g.calls, 3);
    assert_int_equal(g.v, PG_LEASE_GRANTED);

    char *hex =
        pg_world_query_db("sealed", "SELECT encode(key_sealed, 'hex') FROM certloop_generations");
    char *txt = pg_world_query_db("sealed", "SELECT position('PRIVATE'::bytea IN key_sealed) "
                                            "FROM certloop_generations");
    assert_string_equal(txt, "0");
    size_t n;
    uint8_t *blob = pg_hex_bytes(hex, &n);
    assert_non_null(blob);
    assert_int_equal(pg_unseal(&k, "api", "g1", blob, n, &pt, &ptlen), 0);
    assert_string_equal((char *)pt, pem);
    free(pt);
    assert_int_equal(pg_unseal(&k, "api", "g2", blob, n, &pt, &ptlen), ERR_CRYPTO);
    free(blob);
    free(hex);
    free(txt);
}

struct fl {
    int calls, status;
    char value[128];
    size_t n;
    struct {
        char name[16];
        bool silent;
        unsigned lagging, failed;
    } rows[4];
};

static void on_status(int status, void *arg)
{
    struct fl *x = arg;

    x->calls++;
    x->status = status;
}

static void on_authz(int status, const char *key_authz, void *arg)
{
    struct fl *x = arg;

    x->calls++;
    x->status = status;
    snprintf(x->value, sizeof(x->value), "%s", key_authz != NULL ? key_authz : "");
}

static void on_fleet(int status, const struct pg_fleet_row *rows, size_t n, void *arg)
{
    struct fl *x = arg;

    x->calls++;
    x->status = status;
    x->n = n;
    for (size_t i = 0; i < n && i < 4; i++) {
        snprintf(x->rows[i].name, sizeof(x->rows[i].name), "%s", rows[i].name);
        x->rows[i].silent = rows[i].silent;
        x->rows[i].lagging = rows[i].lagging;
        x->rows[i].failed = rows[i].failed;
    }
}

/* A token put by one instance reaches another's listener by NOTIFY and by
 * lookup; an expired or removed one is not found. */
static void test_http01_tokens_shared(void **state)
{
    struct pg_fx *f = *state;
    struct fl x = {0};
    struct got mg = {0};
    char *ci = pg_world_fresh_db("tokens");

    f->c = pg_fx_conn(f, ci);
    f->c2 = pg_fx_conn(f, ci);
    free(ci);
    migrate(f, f->c, &mg);
    assert_int_equal(pg_conn_listen(f->c2, PG_CHANNEL_HTTP01), 0);
    assert_int_equal(pg_query_start(f->c2, "SELECT 1", 0, NULL, on_barrier, &x, NULL), 0);
    pg_fx_wait(f, &x.calls, 1); /* c2 listens */
    assert_int_equal(
        pg_http01_put_start(f->c, "tok1", "tok1.thumb", "www", 60, on_status, &x, NULL), 0);
    assert_int_equal(pg_http01_put_start(f->c, "old", "old.thumb", "www", -1, on_status, &x, NULL),
                     0);
    pg_fx_wait(f, &x.calls, 3);
    assert_int_equal(x.status, 0);
    pg_fx_wait(f, &f->notes, 2);
    assert_string_equal(f->note, PG_CHANNEL_HTTP01 ":old");
    assert_int_equal(pg_http01_lookup_start(f->c2, "tok1", on_authz, &x, NULL), 0);
    pg_fx_wait(f, &x.calls, 4);
    assert_int_equal(x.status, 0);
    assert_string_equal(x.value, "tok1.thumb");
    assert_int_equal(pg_http01_lookup_start(f->c2, "old", on_authz, &x, NULL), 0);
    pg_fx_wait(f, &x.calls, 5);
    assert_int_equal(x.status, -ENOENT); /* expired */
    assert_int_equal(pg_http01_remove_start(f->c, "tok1", on_status, &x, NULL), 0);
    pg_fx_wait(f, &x.calls, 6); /* committed before the other connection looks */
    assert_int_equal(pg_http01_lookup_start(f->c2, "tok1", on_authz, &x, NULL), 0);
    pg_fx_wait(f, &x.calls, 7);
    assert_int_equal(x.status, -ENOENT);
}

/* The fleet view flags the instance that lags behind the current
 * generation, the one whose deployment failed, and the silent one. */
static void test_fleet_view_flags_lagging_and_silent(void **state)
{
    struct pg_fx *f = *state;
    struct fl x = {0};
    struct got mg = {0}, g = {0};
    char *ci = pg_world_fresh_db("fleetview");

    f->c = pg_fx_conn(f, ci);
    free(ci);
    migrate(f, f->c, &mg);
    const char *names[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            pg_instance_beat_start(f->c, names[i], "0.1.0", "digest", on_status, &x, NULL), 0);
    pg_fx_wait(f, &x.calls, 3);
    /* the current generation of www is g2 */
    struct pg_fence fence = {.cert = "www", .holder = "a", .token = 1, .now_ms = -1};
    assert_int_equal(pg_lease_take_start(f->c, "www", "a", -1, 60000, on_lease, &g, NULL), 0);
    uint8_t blob[PG_SEAL_OVERHEAD] = {0};
    struct pg_generation gn = {"www", "g2", "C", "", "C", "{}", blob, sizeof(blob)};
    assert_int_equal(pg_generation_put_start(f->c, &fence, &gn, on_lease, &g, NULL), 0);
    pg_fx_wait(f, &g.calls, 2);
    assert_int_equal(g.v, PG_LEASE_GRANTED);
    assert_int_equal(
        pg_deployment_put_start(f->c, "a", "www", "g2", true, NULL, on_status, &x, NULL), 0);
    assert_int_equal(
        pg_deployment_put_start(f->c, "b", "www", "g1", true, NULL, on_status, &x, NULL), 0);
    assert_int_equal(pg_deployment_put_start(f->c, "c", "www", "g2", false, "reload failed",
                                             on_status, &x, NULL),
                     0);
    pg_fx_wait(f, &x.calls, 6);
    assert_int_equal(x.status, 0);
    free(pg_world_query_db("fleetview", "UPDATE certloop_instances SET heartbeat_at = now() - "
                                        "interval '5 minutes' WHERE name = 'c'"));
    assert_int_equal(pg_fleet_read_start(f->c, 60, on_fleet, &x, NULL), 0);
    pg_fx_wait(f, &x.calls, 7);
    assert_int_equal(x.status, 0);
    assert_int_equal(x.n, 3);
    assert_string_equal(x.rows[0].name, "a");
    assert_false(x.rows[0].silent);
    assert_int_equal(x.rows[0].lagging + x.rows[0].failed, 0);
    assert_int_equal(x.rows[1].lagging, 1); /* b deployed g1 */
    assert_true(x.rows[2].silent);
    assert_int_equal(x.rows[2].failed, 1);
}

int main(void)
{
    int rc = pg_world_unavailable();
    if (rc >= 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_created_once_and_idempotent, pg_fx_setup,
                                        pg_fx_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_migrations_serialize, pg_fx_setup,
                                        pg_fx_teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_is_refused_untouched, pg_fx_setup,
                                        pg_fx_teardown),
        cmocka_unit_test_setup_teardown(test_version_3_alerts_become_expiring_alerts, pg_fx_setup,
                                        pg_fx_teardown),
        cmocka_unit_test_setup_teardown(test_lease_sql_agrees_with_the_rule, pg_fx_setup,
                                        pg_fx_teardown),
        cmocka_unit_test_setup_teardown(test_stored_key_is_sealed, pg_fx_setup, pg_fx_teardown),
        cmocka_unit_test_setup_teardown(test_http01_tokens_shared, pg_fx_setup, pg_fx_teardown),
        cmocka_unit_test_setup_teardown(test_fleet_view_flags_lagging_and_silent, pg_fx_setup,
                                        pg_fx_teardown),
    };
    return cmocka_run_group_tests(tests, pg_world_group_setup, pg_world_group_teardown);
}
