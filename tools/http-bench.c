/* http-bench: a load generator built on certloop's own HTTP client, to
 * measure what the curl-multi-on-libuv glue sustains.
 *   http-bench URL TOTAL CONCURRENCY [TRUST_FILE]
 * keeps CONCURRENCY requests in flight until TOTAL have completed, then
 * prints requests/s and latency percentiles. */
#include "net/net.h"
#include "util/err.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bench {
    uv_loop_t *loop;
    struct http_client *client;
    const char *url;
    const char *trust;
    long total, started, done, errors, non2xx;
    uint64_t *lat_ns; /* one per completed request */
};

struct one {
    struct bench *b;
    uint64_t t0;
};

static void start_one(struct bench *b);

static void one_done(int status, const struct http_response *resp, void *arg)
{
    struct one *o = arg;
    struct bench *b = o->b;

    b->lat_ns[b->done++] = uv_hrtime() - o->t0;
    if (status != 0)
        b->errors++;
    else if (resp->status < 200 || resp->status > 299)
        b->non2xx++;
    free(o);
    if (b->started < b->total)
        start_one(b);
}

static void start_one(struct bench *b)
{
    struct one *o = xcalloc(1, sizeof(*o));
    struct http_request_opts opts = {.url = b->url, .trust_file = b->trust, .max_body = 1 << 20};

    o->b = b;
    o->t0 = uv_hrtime();
    b->started++;
    int rc = http_req_start(b->client, &opts, one_done, o, NULL);
    if (rc < 0) {
        fprintf(stderr, "http-bench: start: %s\n", err_str(rc));
        exit(1);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: http-bench URL TOTAL CONCURRENCY [TRUST_FILE]\n");
        return 2;
    }
    struct bench b = {0};
    uv_loop_t loop;
    uv_loop_init(&loop);
    b.loop = &loop;
    b.url = argv[1];
    b.total = strtol(argv[2], NULL, 10);
    long conc = strtol(argv[3], NULL, 10);
    b.trust = argc == 5 ? argv[4] : NULL;
    if (b.total <= 0 || conc <= 0) {
        fprintf(stderr, "http-bench: TOTAL and CONCURRENCY must be positive\n");
        return 2;
    }
    b.lat_ns = xcalloc((size_t)b.total, sizeof(uint64_t));
    if (http_client_open(&loop, &b.client) < 0)
        return 1;
    uint64_t t0 = uv_hrtime();
    for (long i = 0; i < conc && b.started < b.total; i++)
        start_one(&b);
    uv_run(&loop, UV_RUN_DEFAULT);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    http_client_close(b.client);
    uv_run(&loop, UV_RUN_DEFAULT);
    int closed = uv_loop_close(&loop);

    qsort(b.lat_ns, (size_t)b.done, sizeof(uint64_t), cmp_u64);
    double p50 = (double)b.lat_ns[b.done / 2] / 1e6;
    double p99 =
        (double)b.lat_ns[(b.done * 99) / 100 < b.done ? (b.done * 99) / 100 : b.done - 1] / 1e6;
    printf("requests=%ld concurrency=%ld errors=%ld non2xx=%ld time=%.3fs rate=%.0f/s "
           "p50=%.2fms p99=%.2fms loop_close=%d\n",
           b.done, conc, b.errors, b.non2xx, secs, (double)b.done / secs, p50, p99, closed);
    free(b.lat_ns);
    return b.errors == 0 && closed == 0 ? 0 : 1;
}
