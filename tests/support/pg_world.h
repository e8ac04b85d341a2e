/* A throwaway PostgreSQL 15 for tests (issue 14): initdb in a temp dir and
 * a server on a unix socket only (no TCP port), started once per test
 * binary. As root the server runs as the postgres user (PostgreSQL refuses
 * root); the temp dir is made traversable for it. Not fast to start (about
 * a second): share one per binary. */
#ifndef CERTLOOP_TESTS_PG_WORLD_H
#define CERTLOOP_TESTS_PG_WORLD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "store/pg_internal.h"

struct pg_world {
    char *dir;      /* owned: the temp dir (data in DIR/pg, socket in DIR) */
    char *conninfo; /* owned: "host=DIR dbname=postgres user=postgres" */
    bool running;
    int watch_fd; /* write end of the watchdog's pipe, or -1 */
    int watch_pid;
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

/* A database of its own in pg_test_world for one test (CREATE DATABASE
 * name): its conninfo, owned. And sql run on database db (as
 * pg_world_query; the test fails if it fails). */
char *pg_world_fresh_db(const char *name);
char *pg_world_query_db(const char *db, const char *sql);

/* A loop fixture for the PostgreSQL tests: a loop with a guard timer (so
 * UV_RUN_ONCE never blocks for ever), up to two connections closed at
 * teardown, and the notifications they received. */
struct pg_fx {
    uv_loop_t loop;
    uv_timer_t guard;
    struct pg_conn *c, *c2; /* closed by teardown when not NULL */
    int notes;              /* notifications seen, the last in note */
    char note[128];
};
int pg_fx_setup(void **state);
int pg_fx_teardown(void **state);
/* A connection on f's loop whose notifications land in f. */
struct pg_conn *pg_fx_conn(struct pg_fx *f, const char *conninfo);
/* Runs the loop until *flag reaches want; fails the test after 60 s. */
void pg_fx_wait(struct pg_fx *f, const int *flag, int want);
/* The tests' fixed encryption key (00 01 02 ... 1f). */
struct pg_key pg_test_key(void);

#endif
