/* http01-serve: runs certloop's http-01 listener alone, answering one token,
 * for benchmarks and manual checks.
 *   http01-serve LISTEN TOKEN KEY_AUTHORIZATION [MAX_REQUESTS_PER_CONNECTION]
 * LISTEN is "IP:PORT" or "[IPv6]:PORT" (port 0: ephemeral). Prints the bound
 * port on stdout once listening, runs until SIGTERM or SIGINT, then closes
 * the listener, prints its counters on stderr and exits 0. */
#include "challenge/challenge.h"
#include "util/err.h"
#include "util/log.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct serve {
    struct chal_http01 *srv;
    uv_signal_t term, intr;
};

static void on_signal(uv_signal_t *sig, int signum)
{
    struct serve *s = sig->data;
    struct chal_http01_stats st;

    (void)signum;
    if (s->srv == NULL)
        return;
    chal_http01_get_stats(s->srv, &st);
    fprintf(
        stderr,
        "http01-serve: connections=%" PRIu64 " requests=%" PRIu64 " served=%" PRIu64
        " not_found=%" PRIu64 " rejected=%" PRIu64 " timeouts=%" PRIu64 " evicted=%" PRIu64 "\n",
        st.connections, st.requests, st.served, st.not_found, st.rejected, st.timeouts, st.evicted);
    chal_http01_close(s->srv, NULL, NULL);
    s->srv = NULL;
    uv_close((uv_handle_t *)&s->term, NULL);
    uv_close((uv_handle_t *)&s->intr, NULL);
}

int main(int argc, char **argv)
{
    struct serve s = {0};
    uv_loop_t *loop = uv_default_loop();
    int rc;

    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: http01-serve LISTEN TOKEN KEY_AUTHORIZATION [MAX_REQUESTS]\n");
        return 64;
    }
    signal(SIGPIPE, SIG_IGN); /* writes to a vanished peer fail with EPIPE */
    log_init();
    log_set_level(LOG_LVL_WARN);
    const char *listen[] = {argv[1]};
    rc = chal_http01_open(loop, listen, 1, &s.srv);
    if (rc < 0)
        return 1;
    if (argc == 5) {
        struct chal_http01_limits l = {0};
        l.max_requests = (unsigned)strtoul(argv[4], NULL, 10);
        chal_http01_set_limits(s.srv, &l);
    }
    rc = chal_http01_put(s.srv, argv[2], argv[3]);
    if (rc < 0) {
        fprintf(stderr, "http01-serve: token or key authorization: %s\n", err_str(rc));
        return 64;
    }
    uv_signal_init(loop, &s.term);
    uv_signal_init(loop, &s.intr);
    s.term.data = s.intr.data = &s;
    uv_signal_start(&s.term, on_signal, SIGTERM);
    uv_signal_start(&s.intr, on_signal, SIGINT);
    printf("%d\n", chal_http01_port(s.srv, 0));
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(loop);
    return rc == 0 ? 0 : 1;
}
