/* dns01-tool: runs one dns-01 operation of challenge.h from the command
 * line (for the integration tests and for trying a solver by hand):
 *
 *   dns01-tool present|cleanup|wait --name _acme-challenge.a.test --value V
 *       [--server IP:PORT --key-name N --key-file F [--algorithm A] [--zone Z]]
 *       [--exec PROG [--exec ARG]...] [--timeout S]
 *       [--resolver IP:PORT] [--nameserver IP:PORT]... [--ns-port P]
 *       [--propagation-timeout S] [--poll-interval S] [--debug]
 *
 * Prints the result's detail line on stdout; exits 0 on success, 1 on
 * failure (status name on stderr), 64 on usage errors. */
#include "challenge/challenge.h"
#include "config/config.h"
#include "net/net.h"
#include "util/err.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct result {
    int status;
    bool called;
};

static void done(int status, const struct chal_dns01_result *r, void *arg)
{
    struct result *res = arg;

    res->status = status;
    res->called = true;
    printf("%s\n", r->detail);
    if (r->fqdn != NULL)
        fprintf(stderr, "fqdn=%s zone=%s\n", r->fqdn, r->zone != NULL ? r->zone : "-");
}

static int usage(void)
{
    fprintf(stderr, "usage: dns01-tool present|cleanup|wait --name NAME --value V [options]\n");
    return 64;
}

static void push(struct cfg_strv *v, char *s)
{
    char **nv = realloc(v->v, (v->n + 2) * sizeof(*nv));

    if (nv == NULL)
        abort();
    v->v = nv;
    v->v[v->n++] = s;
    v->v[v->n] = NULL;
}

int main(int argc, char **argv)
{
    struct cfg_dns d;
    const char *name = NULL, *value = NULL, *resolver = NULL;
    unsigned ns_port = 0;
    struct chal_dns01_opts o = {.subject = NULL};
    struct result res = {0, false};
    struct dns_resolver *r = NULL;
    uv_loop_t loop;
    int rc;

    if (argc < 2)
        return usage();
    memset(&d, 0, sizeof(d));
    d.name = "tool";
    d.type = CFG_DNS_RFC2136;
    d.timeout_s = 60;
    d.propagation_timeout_s = 120;
    d.poll_interval_s = 2;
    log_init();
    log_set_level(LOG_LVL_INFO);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--debug") == 0) {
            log_set_level(LOG_LVL_DEBUG);
            continue;
        }
        if (v == NULL)
            return usage();
        i++;
        if (strcmp(a, "--name") == 0)
            name = v;
        else if (strcmp(a, "--value") == 0)
            value = v;
        else if (strcmp(a, "--server") == 0)
            d.server = (char *)v;
        else if (strcmp(a, "--zone") == 0)
            d.zone = (char *)v;
        else if (strcmp(a, "--key-name") == 0)
            d.tsig.name = (char *)v;
        else if (strcmp(a, "--key-file") == 0)
            d.tsig.secret_file = (char *)v;
        else if (strcmp(a, "--algorithm") == 0)
            d.tsig.algorithm = (char *)v;
        else if (strcmp(a, "--exec") == 0) {
            d.type = CFG_DNS_EXEC;
            push(&d.command, (char *)v);
        } else if (strcmp(a, "--timeout") == 0)
            d.timeout_s = strtol(v, NULL, 10);
        else if (strcmp(a, "--resolver") == 0)
            resolver = v;
        else if (strcmp(a, "--nameserver") == 0)
            push(&d.nameservers, (char *)v);
        else if (strcmp(a, "--ns-port") == 0)
            ns_port = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--propagation-timeout") == 0)
            d.propagation_timeout_s = strtol(v, NULL, 10);
        else if (strcmp(a, "--poll-interval") == 0)
            d.poll_interval_s = strtol(v, NULL, 10);
        else
            return usage();
    }
    if (name == NULL || value == NULL)
        return usage();
    o.ns_port = ns_port;
    o.dns_timeout_ms = 1000;
    if (uv_loop_init(&loop) != 0)
        return 1;
    struct dns_resolver_opts ro = {resolver, 1000, 2, false, false};
    rc = dns_resolver_open(&loop, &ro, &r);
    if (rc < 0) {
        fprintf(stderr, "dns01-tool: resolver: %s\n", err_str(rc));
        return 1;
    }
    if (strcmp(argv[1], "present") == 0)
        rc = chal_dns01_present_start(&loop, r, &d, name, value, &o, done, &res, NULL);
    else if (strcmp(argv[1], "cleanup") == 0)
        rc = chal_dns01_cleanup_start(&loop, r, &d, name, value, &o, done, &res, NULL);
    else if (strcmp(argv[1], "wait") == 0)
        rc = chal_dns01_wait_start(&loop, r, &d, name, value, &o, done, &res, NULL);
    else
        rc = -EINVAL;
    if (rc < 0) {
        fprintf(stderr, "dns01-tool: %s\n", err_str(rc));
        res.status = rc;
        res.called = true;
    }
    if (rc == 0)
        uv_run(&loop, UV_RUN_DEFAULT);
    dns_resolver_close(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "dns01-tool: handles left open\n");
        return 2;
    }
    free(d.command.v);
    free(d.nameservers.v);
    if (!res.called) {
        fprintf(stderr, "dns01-tool: no callback\n");
        return 2;
    }
    if (res.status != 0) {
        fprintf(stderr, "dns01-tool: %s\n", err_str(res.status));
        return 1;
    }
    return 0;
}
