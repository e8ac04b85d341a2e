/* certloop's tables in PostgreSQL and their versioned migration. One op
 * (so one transaction) takes a transaction advisory lock, creates the
 * version table, refuses a newer schema, applies every missing migration
 * in order and reads the version back; two instances starting together
 * serialize on the lock and the second finds nothing to do. Migrations are
 * append-only: a released one is never edited, a change is a new one. */
#include "store/pg_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* pg_advisory_xact_lock key: "certloop" in ASCII, as a bigint. */
#define SCHEMA_LOCK_KEY "7234307576302018672"

/* Version 1. Times that leases compare are bigint milliseconds so a test
 * can pass a fake clock; everything else is timestamptz. */
static const char *const v1[] = {
    /* Accounts per CA; the key sealed like a certificate key (pg_crypt.c,
     * name "@account/CA", generation ""). */
    "CREATE TABLE certloop_accounts ("
    " ca text PRIMARY KEY,"
    " key_sealed bytea NOT NULL,"
    " account_json text NOT NULL,"
    " updated_at timestamptz NOT NULL DEFAULT now())",
    /* A rollover's new key, stored before the CA hears of it (name
     * "@account-next/CA"), and deactivated accounts put aside. */
    "CREATE TABLE certloop_account_next ("
    " ca text PRIMARY KEY,"
    " key_sealed bytea NOT NULL)",
    "CREATE TABLE certloop_accounts_retired ("
    " ca text NOT NULL,"
    " t bigint NOT NULL,"
    " key_sealed bytea NOT NULL,"
    " account_json text NOT NULL,"
    " PRIMARY KEY (ca, t))",
    /* One row per certificate name the fleet knows. spec_digest is the
     * digest of what defines it (names, key type): two instances declaring
     * it differently are detected by comparing it, never flip-flopped. */
    "CREATE TABLE certloop_certificates ("
    " name text PRIMARY KEY,"
    " spec_digest text,"
    " current_generation text,"
    " updated_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE certloop_generations ("
    " cert text NOT NULL REFERENCES certloop_certificates (name) ON DELETE CASCADE,"
    " generation text NOT NULL,"
    " cert_pem text NOT NULL,"
    " chain_pem text NOT NULL,"
    " fullchain_pem text NOT NULL,"
    " key_sealed bytea NOT NULL,"
    " meta_json text NOT NULL,"
    " created_by text NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (cert, generation))",
    /* Notes kept with a generation ("ari", "revoked"), gone with it. */
    "CREATE TABLE certloop_notes ("
    " cert text NOT NULL,"
    " generation text NOT NULL,"
    " note text NOT NULL,"
    " json text NOT NULL,"
    " PRIMARY KEY (cert, generation, note),"
    " FOREIGN KEY (cert, generation) REFERENCES certloop_generations (cert, generation)"
    " ON DELETE CASCADE)",
    /* The order in flight, so the instance that takes the lease over
     * resumes it instead of ordering again. */
    "CREATE TABLE certloop_orders ("
    " cert text PRIMARY KEY,"
    " order_json text NOT NULL,"
    " holder text NOT NULL,"
    " token bigint NOT NULL,"
    " updated_at timestamptz NOT NULL DEFAULT now())",
    /* The per-certificate lease (pg_lease.c explains the rule). */
    "CREATE TABLE certloop_leases ("
    " cert text PRIMARY KEY,"
    " holder text NOT NULL,"
    " token bigint NOT NULL,"
    " expires_ms bigint NOT NULL)",
    /* http-01 key authorizations, served by every instance's listener. */
    "CREATE TABLE certloop_http01 ("
    " token text PRIMARY KEY,"
    " key_authz text NOT NULL,"
    " cert text NOT NULL,"
    " expires_at timestamptz NOT NULL)",
    /* Webhook deliveries to make once per fleet (at least once); dead ones
     * are kept for the operator. */
    "CREATE TABLE certloop_outbox ("
    " id text PRIMARY KEY,"
    " payload text NOT NULL,"
    " dead boolean NOT NULL DEFAULT false,"
    " created_at timestamptz NOT NULL DEFAULT now())",
    /* Per instance: a deployment still owed (the redeploy mark) and the
     * last expiry alert sent. */
    "CREATE TABLE certloop_redeploy ("
    " instance text NOT NULL,"
    " cert text NOT NULL,"
    " PRIMARY KEY (instance, cert))",
    "CREATE TABLE certloop_alerts ("
    " instance text NOT NULL,"
    " cert text NOT NULL,"
    " t bigint NOT NULL,"
    " PRIMARY KEY (instance, cert))",
    /* Each certificate's history lines (reactor/history_file.c's format),
     * shared by the fleet, with the instance that wrote each. */
    "CREATE TABLE certloop_history ("
    " id bigserial PRIMARY KEY,"
    " cert text NOT NULL,"
    " instance text NOT NULL,"
    " line text NOT NULL)",
    "CREATE INDEX certloop_history_cert ON certloop_history (cert, id)",
    /* The fleet: each instance's heartbeat and what it deployed. */
    "CREATE TABLE certloop_instances ("
    " name text PRIMARY KEY,"
    " version text NOT NULL,"
    " config_digest text NOT NULL,"
    " started_at timestamptz NOT NULL DEFAULT now(),"
    " heartbeat_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE certloop_deployments ("
    " instance text NOT NULL REFERENCES certloop_instances (name) ON DELETE CASCADE,"
    " cert text NOT NULL,"
    " generation text NOT NULL,"
    " ok boolean NOT NULL,"
    " error text NOT NULL DEFAULT '',"
    " redeploy boolean NOT NULL DEFAULT false,"
    " at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (instance, cert))",
    /* The fence: the first statement of every write made under a lease.
     * FOR SHARE holds the lease row until our commit, so a takeover (an
     * UPDATE of that row) waits for the write instead of racing it. */
    "CREATE FUNCTION certloop_fence(p_cert text, p_holder text, p_token bigint, p_now bigint)"
    " RETURNS void LANGUAGE plpgsql AS $f$ BEGIN"
    " PERFORM 1 FROM certloop_leases WHERE cert = p_cert AND holder = p_holder"
    " AND token = p_token AND expires_ms > COALESCE(p_now,"
    " (extract(epoch FROM clock_timestamp()) * 1000)::bigint) FOR SHARE;"
    " IF NOT FOUND THEN RAISE EXCEPTION USING ERRCODE = '" PG_SQLSTATE_LEASE_LOST "',"
    " MESSAGE = format('lease on %s is not held by %s with token %s', p_cert, p_holder,"
    " p_token); END IF; END $f$",
    /* New generations and http-01 tokens reach every instance through
     * NOTIFY, sent at commit. */
    "CREATE FUNCTION certloop_notify_generation() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN PERFORM pg_notify('" PG_CHANNEL_GENERATION "', NEW.cert || ' ' || NEW.generation);"
    " RETURN NULL; END $f$",
    "CREATE TRIGGER certloop_generations_notify AFTER INSERT ON certloop_generations"
    " FOR EACH ROW EXECUTE FUNCTION certloop_notify_generation()",
    "CREATE FUNCTION certloop_notify_http01() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN PERFORM pg_notify('" PG_CHANNEL_HTTP01 "', NEW.token); RETURN NULL; END $f$",
    "CREATE TRIGGER certloop_http01_notify AFTER INSERT ON certloop_http01"
    " FOR EACH ROW EXECUTE FUNCTION certloop_notify_http01()",
    NULL,
};

/* Version 2: what each instance declares of each certificate (its names and
 * key type, and their digest), so that two instances declaring one
 * certificate differently are found (reactor/fleet_view.c) instead of
 * ordering it in turn, each undoing the other. */
static const char *const v2[] = {
    "CREATE TABLE certloop_declarations ("
    " instance text NOT NULL,"
    " cert text NOT NULL,"
    " digest text NOT NULL,"
    " names text NOT NULL,"
    " key text NOT NULL,"
    " PRIMARY KEY (instance, cert))",
    NULL,
};

/* Version 3: the instance that delivers each webhook of the outbox (the
 * one whose event it is; another takes it over at its start when that one
 * is silent), so a delivery is made by one instance of the fleet. */
static const char *const v3[] = {
    "ALTER TABLE certloop_outbox ADD COLUMN instance text NOT NULL DEFAULT ''",
    NULL,
};

/* Version 4: an alert per kind (store_alert_name: "expiring", and
 * "persist_expiring" for dns-persist-01's persist_until); the rows kept
 * before are "expiring" alerts. */
static const char *const v4[] = {
    "ALTER TABLE certloop_alerts ADD COLUMN kind text NOT NULL DEFAULT 'expiring'",
    "ALTER TABLE certloop_alerts DROP CONSTRAINT certloop_alerts_pkey",
    "ALTER TABLE certloop_alerts ADD PRIMARY KEY (instance, cert, kind)",
    NULL,
};

static const char *const *const migrations[PG_SCHEMA_VERSION] = {v1, v2, v3, v4};

const char *const *pg_schema_migration(int v)
{
    return v >= 1 && v <= PG_SCHEMA_VERSION ? migrations[v - 1] : NULL;
}

struct migrate {
    pg_schema_cb cb;
    void *arg;
};

static void migrated(int status, const struct pg_res *res, void *arg)
{
    struct migrate *m = arg;
    pg_schema_cb cb = m->cb;
    void *cb_arg = m->arg;
    int version = -1;

    if (status == ERR_DB && strcmp(res->sqlstate, PG_SQLSTATE_NEWER_SCHEMA) == 0) {
        log_error(LOG_STORE, "database: %s; upgrade certloop (nothing was changed)", res->message);
        status = ERR_UNSUPPORTED;
    } else if (status == ERR_DB) {
        log_error(LOG_STORE, "database: schema migration failed (rolled back): %s %s",
                  res->sqlstate, res->message);
    } else if (status < 0) {
        log_error(LOG_STORE, "database: schema migration: %s", err_str(status));
    } else {
        PGresult *r = res->res[res->n - 1];
        version = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10); /* an int column: digits */
        if (version != PG_SCHEMA_VERSION) {
            log_error(LOG_STORE, "database: schema version %d after migration, expected %d",
                      version, PG_SCHEMA_VERSION);
            status = ERR_BAD_STATE;
        }
    }
    cb(status, version, cb_arg);
}

int pg_schema_migrate_start(struct pg_conn *c, pg_schema_cb cb, void *arg, struct pg_op **out)
{
    enum { HEAD = 4 };
    struct pg_stmt st[HEAD + PG_SCHEMA_VERSION + 1];
    char *owned[1 + PG_SCHEMA_VERSION] = {0};
    size_t n = 0;

    st[n++] = (struct pg_stmt){"SELECT pg_advisory_xact_lock(" SCHEMA_LOCK_KEY ")", 0, NULL};
    st[n++] = (struct pg_stmt){"CREATE TABLE IF NOT EXISTS certloop_schema ("
                               " id integer PRIMARY KEY CHECK (id = 1),"
                               " version integer NOT NULL,"
                               " updated_at timestamptz NOT NULL DEFAULT now())",
                               0, NULL};
    st[n++] = (struct pg_stmt){
        "INSERT INTO certloop_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING", 0,
        NULL};
    owned[0] = xasprintf(
        "DO $chk$ DECLARE v integer := (SELECT version FROM certloop_schema WHERE id = 1);"
        " BEGIN IF v > %d THEN RAISE EXCEPTION USING ERRCODE = '" PG_SQLSTATE_NEWER_SCHEMA "',"
        " MESSAGE = format('the database holds certloop schema version %%s, newer than this"
        " certloop''s %d', v); END IF; END $chk$",
        PG_SCHEMA_VERSION, PG_SCHEMA_VERSION);
    st[n++] = (struct pg_stmt){owned[0], 0, NULL};
    for (int v = 1; v <= PG_SCHEMA_VERSION; v++) {
        /* Each migration runs only where the version is below it. */
        char *body = xstrdup("");
        for (const char *const *s = pg_schema_migration(v); *s != NULL; s++) {
            char *next = xasprintf("%s %s;", body, *s);
            free(body);
            body = next;
        }
        owned[v] = xasprintf("DO $mig$ BEGIN IF (SELECT version FROM certloop_schema WHERE id = 1)"
                             " < %d THEN %s UPDATE certloop_schema SET version = %d,"
                             " updated_at = now() WHERE id = 1; END IF; END $mig$",
                             v, body, v);
        free(body);
        st[n++] = (struct pg_stmt){owned[v], 0, NULL};
    }
    st[n++] = (struct pg_stmt){"SELECT version FROM certloop_schema WHERE id = 1", 0, NULL};

    struct migrate *m = xcalloc(1, sizeof(*m));
    m->cb = cb;
    m->arg = arg;
    int rc = pg_op_start_owning(c, st, n, migrated, m, free, out);
    if (rc < 0)
        free(m);
    for (size_t i = 0; i <= PG_SCHEMA_VERSION; i++)
        free(owned[i]);
    return rc;
}
