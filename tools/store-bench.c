/* store-bench: the store's write path of N issuances, all at once on one
 * loop, through the interface (lease take, order put, certificate put with
 * a redeploy mark, settle, lease release), on the file backend or on
 * PostgreSQL; prints wall time and this process's CPU per certificate.
 * bench/store.sh runs it against a throwaway PostgreSQL.
 *   store-bench files DIR N
 *   store-bench postgresql CONNINFO N */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/pg_internal.h"
#include "store/store.h"
#include "util/log.h"
#include "util/xalloc.h"

#define KEY_PEM                                                                                    \
    "-----BEGIN PRIVATE KEY-----\n"                                                                \
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVGhpcyBpcyBub3QgYSBrZXk\n"                    \
    "-----END PRIVATE KEY-----\n"
#define CERT_PEM                                                                                   \
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUbm90IGEgY2VydGlmaWNhdGU\n"                   \
    "-----END CERTIFICATE-----\n"

struct job {
    struct store *s;
    char name[32];
    int stage;
    uint64_t fence;
    int *done, *failed;
};

static void step(int status, const struct store_result *r, void *arg);

static void go(struct job *j)
{
    int rc = 0;

    switch (j->stage) {
    case 0:
        rc = store_lease_take_start(j->s, j->name, step, j);
        break;
    case 1:
        rc = store_order_put_start(j->s, j->name, "{\"url\":\"https://ca.test/order/1\"}", step, j);
        break;
    case 2: {
        struct store_cert_put p = {.name = j->name,
                                   .cert_pem = CERT_PEM,
                                   .chain_pem = CERT_PEM,
                                   .fullchain_pem = CERT_PEM CERT_PEM,
                                   .key_pem = KEY_PEM,
                                   .meta_json = "{}",
                                   .keep = 1,
                                   .mark_redeploy = true};
        rc = store_cert_put_start(j->s, &p, step, j);
        break;
    }
    case 3:
        rc = store_order_settle_start(j->s, j->name, step, j);
        break;
    default:
        store_lease_release(j->s, j->name, j->fence);
        (*j->done)++;
        return;
    }
    if (rc < 0) {
        fprintf(stderr, "%s: stage %d: %s\n", j->name, j->stage, strerror(-rc));
        (*j->failed)++;
        (*j->done)++;
    }
}

static void step(int status, const struct store_result *r, void *arg)
{
    struct job *j = arg;

    if (status != 0) {
        fprintf(stderr, "%s: stage %d: %s\n", j->name, j->stage,
                r->error != NULL ? r->error : "failed");
        (*j->failed)++;
        (*j->done)++;
        return;
    }
    if (j->stage == 0)
        j->fence = r->fence;
    j->stage++;
    go(j);
}

static double secs(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_tick(uv_timer_t *t)
{
    (void)t; /* keeps UV_RUN_ONCE from sleeping for ever on an idle connection */
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: store-bench files DIR N | store-bench postgresql CONNINFO N\n");
        return 64;
    }
    int n = atoi(argv[3]);
    uv_loop_t loop;
    struct store *s = NULL;
    int rc;

    log_set_level(LOG_LVL_WARN);
    uv_loop_init(&loop);
    if (strcmp(argv[1], "files") == 0) {
        rc = store_fs_open(&loop, argv[2], 0, &s);
    } else {
        struct pg_key key;
        const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        pg_key_parse(hex, 64, &key);
        rc = store_pg_open(&loop, argv[2], &key, "bench", &s);
    }
    if (rc < 0 || n <= 0)
        return 1;
    struct job *jobs = xcalloc((size_t)n, sizeof(*jobs));
    int done = 0, failed = 0;
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 10, 10);
    double t0 = secs(CLOCK_MONOTONIC), c0 = secs(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < n; i++) {
        jobs[i] = (struct job){.s = s, .done = &done, .failed = &failed};
        snprintf(jobs[i].name, sizeof(jobs[i].name), "cert%d", i);
        go(&jobs[i]);
    }
    while (done < n)
        uv_run(&loop, UV_RUN_ONCE);
    double t1 = secs(CLOCK_MONOTONIC), c1 = secs(CLOCK_PROCESS_CPUTIME_ID);
    printf("%s: %d certificates (%d failed): %.2f s wall, %.0f us wall and %.0f us CPU per "
           "certificate\n",
           argv[1], n, failed, t1 - t0, (t1 - t0) / n * 1e6, (c1 - c0) / n * 1e6);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT); /* the writes' tails (lease releases) */
    store_close(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(jobs);
    return failed > 0;
}
