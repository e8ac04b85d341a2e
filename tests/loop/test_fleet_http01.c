/* A fleet's http-01 tokens (reactor/fleet_http01.c) on a real PostgreSQL 15:
 * two instances (two stores on one database, two listeners, one loop); a
 * token presented through instance A is answered by instance B's listener,
 * whether B learned it by NOTIFY or waits for it on a miss; with the
 * database stopped, B keeps answering the token it knows and answers an
 * unknown one 404 after the wait. The client is a thread with a blocking
 * socket; the loop runs on the test thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "challenge/challenge.h"
#include "pg_world.h"
#include "reactor/fleet.h"
#include "store/pg_internal.h"
#include "store/store.h"
#include "util/xalloc.h"

#define PATH "/.well-known/acme-challenge/"

struct inst {
    struct store *store;
    struct chal_http01 *chal;
    struct fleet_http01 *fleet;
    int port;
};

static void inst_open(struct pg_fx *f, const char *ci, const char *name, struct inst *in)
{
    static const char *const lo[] = {"127.0.0.1:0"};
    struct pg_key k = pg_test_key();
    struct chal_http01_limits l = {.miss_wait_ms = 1500};

    assert_int_equal(store_pg_open(&f->loop, ci, &k, name, &in->store), 0);
    assert_int_equal(chal_http01_open(&f->loop, lo, 1, &in->chal), 0);
    chal_http01_set_limits(in->chal, &l);
    in->port = chal_http01_port(in->chal, 0);
    in->fleet = fleet_http01_start(&f->loop, in->store, in->chal);
    assert_non_null(in->fleet);
}

static void inst_close(struct inst *in)
{
    if (in->store == NULL)
        return;
    fleet_http01_stop(in->fleet);
    chal_http01_close(in->chal, NULL, NULL);
    store_close(in->store);
    in->store = NULL;
}

/* A connection is up and listening: its first op on the wire after the
 * connect is the LISTEN (pg_conn puts it ahead of everything queued). */
static bool listening(struct inst *in)
{
    struct pg_conn *c = ((struct pg_store *)in->store)->conn;
    struct pg_conn_stats st;

    pg_conn_stats(c, &st);
    return pg_conn_state(c) == PG_CONN_UP && st.ops >= 1;
}

/* Both instances' connections are up and listening: a NOTIFY sent before
 * a listener listens is lost (the lookup on a miss covers that, not what
 * this test looks at). Waited for, not a time: under load the LISTEN may
 * take longer than the 200 ms this allowed. */
static void inst_wait_up(struct pg_fx *f, struct inst *a, struct inst *b)
{
    uv_update_time(&f->loop); /* the stores' opens blocked the loop */
    uint64_t end = uv_now(&f->loop) + 60000;

    while (!(listening(a) && listening(b)) && uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(listening(a));
    assert_true(listening(b));
}

static struct inst insts[2]; /* closed by the teardown too, should a check fail */

static int fleet_teardown(void **state)
{
    inst_close(&insts[0]);
    inst_close(&insts[1]);
    return pg_fx_teardown(state);
}

/* ---- a blocking client on its own thread --------------------------------------------- */

struct get {
    int port;
    char token[64];
    int status;
    char body[256];
    long ms;
    atomic_int done;
    pthread_t th;
};

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *get_main(void *arg)
{
    struct get *g = arg;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g->port)};
    struct timeval tv = {10, 0};
    char req[256], buf[2048];
    size_t n = 0;
    long t0 = now_ms();
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    g->status = -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        int len = snprintf(req, sizeof(req), "GET " PATH "%s HTTP/1.0\r\n\r\n", g->token);
        if (send(fd, req, (size_t)len, 0) == len) {
            ssize_t r;
            while (n < sizeof(buf) - 1 && (r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0)) > 0)
                n += (size_t)r;
            buf[n] = '\0';
            const char *body = strstr(buf, "\r\n\r\n");
            if (sscanf(buf, "HTTP/1.1 %d", &g->status) == 1 && body != NULL)
                snprintf(g->body, sizeof(g->body), "%s", body + 4);
        }
    }
    close(fd);
    g->ms = now_ms() - t0;
    atomic_store(&g->done, 1);
    return NULL;
}

static void get_start(struct get *g, int port, const char *token)
{
    memset(g, 0, sizeof(*g));
    g->port = port;
    snprintf(g->token, sizeof(g->token), "%s", token);
    assert_int_equal(pthread_create(&g->th, NULL, get_main, g), 0);
}

/* Runs the loop until the client thread has its answer. */
static void get_wait(struct pg_fx *f, struct get *g)
{
    long end = now_ms() + 15000;

    while (!atomic_load(&g->done) && now_ms() < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(atomic_load(&g->done));
    pthread_join(g->th, NULL);
}

static void run_for(struct pg_fx *f, long ms)
{
    long end = now_ms() + ms;

    while (now_ms() < end)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* A presents token as the lease holder's run does (run.c chal_present). */
static void present(struct inst *a, const char *token, const char *keyauth)
{
    assert_int_equal(chal_http01_put(a->chal, token, keyauth), 0);
    fleet_http01_present(a->fleet, token, keyauth, "www");
}

static void test_token_via_a_answered_by_b(void **state)
{
    struct pg_fx *f = *state;
    char *ci = pg_world_fresh_db("fleet_http01");
    struct inst *a = &insts[0], *b = &insts[1];
    struct fleet_http01_stats st;
    struct get g;

    inst_open(f, ci, "a", a);
    inst_open(f, ci, "b", b);
    free(ci);
    inst_wait_up(f, a, b);

    /* by NOTIFY: B holds the token before anybody asks */
    present(a, "tokNotify1", "tokNotify1.thumb");
    long end = now_ms() + 10000;
    do {
        uv_run(&f->loop, UV_RUN_ONCE);
        fleet_http01_get_stats(b->fleet, &st);
    } while (st.found < 1 && now_ms() < end);
    assert_true(st.notified >= 1);
    assert_int_equal(st.found, 1);
    get_start(&g, b->port, "tokNotify1");
    get_wait(f, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "tokNotify1.thumb");
    char *row = pg_world_query_db("fleet_http01",
                                  "SELECT cert FROM certloop_http01 WHERE token = 'tokNotify1'");
    assert_string_equal(row, "www");
    free(row);

    /* on a miss: B is asked first, A presents 200 ms later, B's request waits */
    get_start(&g, b->port, "tokMiss2");
    run_for(f, 200);
    assert_false(atomic_load(&g.done));
    present(a, "tokMiss2", "tokMiss2.thumb");
    get_wait(f, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "tokMiss2.thumb");
    assert_true(g.ms < 1500);

    /* a token whose NOTIFY B never got (written with triggers off): the
     * lookup on the miss finds it */
    free(pg_world_query_db("fleet_http01",
                           "SET session_replication_role = replica; INSERT INTO certloop_http01"
                           " (token, key_authz, cert, expires_at) VALUES ('tokQuiet4',"
                           " 'tokQuiet4.thumb', 'www', now() + interval '1 hour')"));
    get_start(&g, b->port, "tokQuiet4");
    get_wait(f, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "tokQuiet4.thumb");
    assert_true(g.ms < 1000);

    /* cleanup by the holder: the row goes */
    fleet_http01_cleanup(a->fleet, "tokMiss2");
    end = now_ms() + 60000; /* a write on A's connection: waited for, not 300 ms */
    for (row = NULL;; free(row)) {
        run_for(f, 20);
        row = pg_world_query_db("fleet_http01",
                                "SELECT count(*) FROM certloop_http01 WHERE token = 'tokMiss2'");
        if (strcmp(row, "0") == 0 || now_ms() >= end)
            break;
    }
    assert_string_equal(row, "0");
    free(row);

    /* the database goes away: B still answers what it knows */
    assert_int_equal(pg_world_stop(&pg_test_world, true), 0);
    get_start(&g, b->port, "tokNotify1");
    get_wait(f, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "tokNotify1.thumb");
    /* and an unknown token is a 404 once the wait is over */
    get_start(&g, b->port, "tokUnknown3");
    get_wait(f, &g);
    assert_int_equal(g.status, 404);
    assert_true(g.ms >= 1400);
    assert_int_equal(pg_world_restart(&pg_test_world), 0);

    inst_close(a);
    inst_close(b);
}

int main(void)
{
    int rc = pg_world_unavailable();
    if (rc >= 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_token_via_a_answered_by_b, pg_fx_setup,
                                        fleet_teardown),
    };
    return cmocka_run_group_tests(tests, pg_world_group_setup, pg_world_group_teardown);
}
