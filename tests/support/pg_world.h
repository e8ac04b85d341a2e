/* A throwaway PostgreSQL 15 for tests (issue 14): initdb in a temp dir and
 * a server on a unix socket only (no TCP port), started once per test
 * binary. As root the server runs as the postgres user (PostgreSQL refuses
 * root); the temp dir is made traversable for it. Not fast to start (about
 * a second): share one per binary. */
#ifndef CERTLOOP_TESTS_PG_WORLD_H
#define CERTLOOP_TESTS_PG_WORLD_H

#include <stdbool.h>

struct pg_world {
    char *dir;      /* owned: the temp dir (data in DIR/pg, socket in DIR) */
    char *conninfo; /* owned: "host=DIR dbname=postgres user=postgres" */
    bool running;
};

/* True when PostgreSQL 15's initdb and pg_ctl are installed; a test binary
 * without them exits 77 (skipped), or fails when CI=true. */
bool pg_world_available(void);
/* Creates the cluster and starts it. Returns 0, or -1 (printed). */
int pg_world_start(struct pg_world *w);
/* Stops the server: immediate = a crash (pg_ctl -m immediate), otherwise
 * a fast shutdown. The data stays. 0 or -1. */
int pg_world_stop(struct pg_world *w, bool immediate);
/* Starts the stopped server again. 0 or -1. */
int pg_world_restart(struct pg_world *w);
/* Stops the server if running and removes the temp dir. */
void pg_world_destroy(struct pg_world *w);
/* Runs sql synchronously on a new blocking connection (the test's own
 * checks, never the code under test) and returns the first field of the
 * first row as an owned string ("" if none), or NULL on failure (printed). */
char *pg_world_query(const struct pg_world *w, const char *sql);

/* For a cmocka binary sharing one server: the world, group setup and
 * teardown for cmocka_run_group_tests, and main's first line:
 *   int rc = pg_world_unavailable(); if (rc >= 0) return rc;
 * (77 = skipped off CI, 1 = failed under CI=true, -1 = go ahead). */
extern struct pg_world pg_test_world;
int pg_world_group_setup(void **state);
int pg_world_group_teardown(void **state);
int pg_world_unavailable(void);

#endif
