/* The test world's PostgreSQL: initdb + pg_ctl on a unix socket in a temp
 * dir, as the postgres user when we are root. Durability is switched off
 * (fsync, synchronous_commit): a test database is thrown away anyway. */
#include "pg_world.h"

#include "util/xalloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG_BIN "/usr/lib/postgresql/15/bin"

extern char **environ;

/* Runs cmd with /bin/sh, as postgres when we are root. Exit status or -1. */
static int run_pg(const char *cmd)
{
    pid_t pid;
    int st;
    char *argv_root[] = {"su", "postgres", "-s", "/bin/sh", "-c", (char *)cmd, NULL};
    char *argv_user[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    char **argv = geteuid() == 0 ? argv_root : argv_user;

    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int server_start(struct pg_world *w)
{
    char *cmd = xasprintf("exec " PG_BIN "/pg_ctl -D %s/pg -l %s/server.log -w -s -o \"-k %s "
                          "-c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                          "-c full_page_writes=off -c max_connections=40\" start",
                          w->dir, w->dir, w->dir);
    int rc = run_pg(cmd);

    free(cmd);
    if (rc != 0) {
        fprintf(stderr, "pg_world: pg_ctl start failed (%d); see %s/server.log\n", rc, w->dir);
        return -1;
    }
    w->running = true;
    return 0;
}

/* A test binary that crashes or is killed (a ctest timeout) must not leave
 * a server behind on a shared machine: a watchdog process in its own
 * session waits for the pipe to close (the test process's end closes when
 * it exits, however it exits), then stops the server and removes the dir. */
static void watchdog_start(struct pg_world *w)
{
    int fds[2];

    w->watch_fd = -1;
    if (pipe2(fds, O_CLOEXEC) != 0)
        return;
    char *cmd =
        xasprintf("exec " PG_BIN "/pg_ctl -D %s/pg -s -m immediate stop >/dev/null 2>&1", w->dir);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        setsid();
        close(fds[1]);
        while (read(fds[0], &c, 1) < 0 && errno == EINTR)
            ;
        run_pg(cmd);
        char *argv[] = {"rm", "-rf", w->dir, NULL};
        execvp("rm", argv);
        _exit(0);
    }
    free(cmd);
    close(fds[0]);
    if (pid < 0) {
        close(fds[1]);
        return;
    }
    w->watch_fd = fds[1];
    w->watch_pid = pid;
}

bool pg_world_available(void)
{
    return access(PG_BIN "/initdb", X_OK) == 0 && access(PG_BIN "/pg_ctl", X_OK) == 0;
}

int pg_world_start(struct pg_world *w)
{
    memset(w, 0, sizeof(*w));
    w->watch_fd = -1;
    if (!pg_world_available())
        return -1;
    char tmpl[] = "/tmp/certloop-pg-XXXXXX";
    if (mkdtemp(tmpl) == NULL)
        return -1;
    w->dir = xstrdup(tmpl);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (pw == NULL || chown(w->dir, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "pg_world: no postgres user to run the server as\n");
            return -1;
        }
    }
    char *cmd = xasprintf("exec " PG_BIN "/initdb -D %s/pg --auth=trust -U postgres -E UTF8 "
                          "--locale=C --no-sync >%s/initdb.log 2>&1",
                          w->dir, w->dir);
    int rc = run_pg(cmd);
    free(cmd);
    if (rc != 0) {
        fprintf(stderr, "pg_world: initdb failed (%d); see %s/initdb.log\n", rc, w->dir);
        return -1;
    }
    w->conninfo = xasprintf("host=%s dbname=postgres user=postgres", w->dir);
    if (server_start(w) != 0)
        return -1;
    if (getenv("PG_WORLD_KEEP") == NULL) /* kept for a post-mortem otherwise */
        watchdog_start(w);
    return 0;
}

int pg_world_stop(struct pg_world *w, bool immediate)
{
    if (!w->running)
        return 0;
    char *cmd = xasprintf("exec " PG_BIN "/pg_ctl -D %s/pg -w -s -m %s stop", w->dir,
                          immediate ? "immediate" : "fast");
    int rc = run_pg(cmd);
    free(cmd);
    if (rc != 0)
        return -1;
    w->running = false;
    return 0;
}

int pg_world_restart(struct pg_world *w)
{
    return w->running ? 0 : server_start(w);
}

static int rm_tree(const char *dir)
{
    pid_t pid;
    int st;
    char *argv[] = {"rm", "-rf", (char *)dir, NULL};

    if (posix_spawnp(&pid, "rm", NULL, NULL, argv, environ) != 0)
        return -1;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

void pg_world_destroy(struct pg_world *w)
{
    if (w->dir == NULL)
        return;
    pg_world_stop(w, false);
    if (getenv("PG_WORLD_KEEP") == NULL)
        rm_tree(w->dir);
    if (w->watch_fd >= 0) { /* the watchdog finds nothing left to do */
        close(w->watch_fd);
        while (waitpid(w->watch_pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    free(w->dir);
    free(w->conninfo);
    memset(w, 0, sizeof(*w));
}

char *pg_world_query(const struct pg_world *w, const char *sql)
{
    PGconn *pg = PQconnectdb(w->conninfo);
    char *out = NULL;

    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "pg_world: connect: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        out = xstrdup(PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    else
        fprintf(stderr, "pg_world: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(pg);
    return out;
}

struct pg_world pg_test_world;

int pg_world_group_setup(void **state)
{
    (void)state;
    return pg_world_start(&pg_test_world) == 0 ? 0 : -1;
}

int pg_world_group_teardown(void **state)
{
    (void)state;
    pg_world_destroy(&pg_test_world);
    return 0;
}

int pg_world_unavailable(void)
{
    if (pg_world_available())
        return -1;
    const char *ci = getenv("CI");
    fprintf(stderr, "PostgreSQL 15 is not installed (scripts/deps.sh installs it)\n");
    return ci != NULL && strcmp(ci, "true") == 0 ? 1 : 77;
}

char *pg_world_fresh_db(const char *name)
{
    char *sql = xasprintf("CREATE DATABASE %s", name);
    char *r = pg_world_query(&pg_test_world, sql);

    assert_non_null(r);
    free(r);
    free(sql);
    return xasprintf("host=%s dbname=%s user=postgres", pg_test_world.dir, name);
}

char *pg_world_query_db(const char *db, const char *sql)
{
    struct pg_world w = pg_test_world;
    char *ci = xasprintf("host=%s dbname=%s user=postgres", pg_test_world.dir, db);

    w.conninfo = ci;
    char *r = pg_world_query(&w, sql);
    free(ci);
    assert_non_null(r);
    return r;
}

/* pg_fx_wait's bound. It ends as soon as what it waits for happens; a
 * write waiting for a reconnect after the server came back waits for the
 * next attempt, up to pg_conn's backoff cap (10 s) later: 10 s was too
 * short for that. */
#define PG_FX_WAIT_MS 60000

static void on_guard(uv_timer_t *t)
{
    (void)t;
}

static void on_note(const char *channel, const char *payload, void *arg)
{
    struct pg_fx *f = arg;

    f->notes++;
    snprintf(f->note, sizeof(f->note), "%s:%s", channel, payload);
}

int pg_fx_setup(void **state)
{
    struct pg_fx *f = xcalloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->guard);
    uv_timer_start(&f->guard, on_guard, 20, 20);
    *state = f;
    return 0;
}

int pg_fx_teardown(void **state)
{
    struct pg_fx *f = *state;

    if (f->c != NULL)
        pg_conn_close(f->c, NULL, NULL);
    if (f->c2 != NULL)
        pg_conn_close(f->c2, NULL, NULL);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

struct pg_conn *pg_fx_conn(struct pg_fx *f, const char *conninfo)
{
    struct pg_conn_opts o = {.conninfo = conninfo, .on_notify = on_note, .arg = f};
    struct pg_conn *c = NULL;

    assert_int_equal(pg_conn_open(&f->loop, &o, &c), 0);
    return c;
}

void pg_fx_wait(struct pg_fx *f, const int *flag, int want)
{
    uv_update_time(&f->loop); /* not the time before a blocking call (a store's open) */
    uint64_t end = uv_now(&f->loop) + PG_FX_WAIT_MS;

    while (*flag < want && uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(*flag >= want);
}

struct pg_key pg_test_key(void)
{
    static const char hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    struct pg_key k;

    assert_int_equal(pg_key_parse(hex, 64, &k), 0);
    return k;
}
