/* The dns-01 operations of challenge.h: present, cleanup and wait for one
 * TXT value with one [dns.NAME] solver. Each follows the CNAME at the
 * record name first (dns01_propagation.c), then sends a signed RFC 2136
 * UPDATE (dns01_update.c, dns01_send.c), runs the exec program
 * (dns01_exec.c) or polls the authoritative servers. It logs the outcome
 * once, with the subject; it does not know about orders or authorizations. */
#include "challenge/challenge.h"
#include "challenge/dns01_internal.h"
#include "config/config.h"
#include "net/net.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define TXT_TTL 60

enum op_kind { OP_PRESENT, OP_CLEANUP, OP_WAIT };

struct chal_dns01_op {
    uv_loop_t *loop;           /* borrowed */
    struct dns_resolver *res;  /* borrowed */
    const struct cfg_dns *dns; /* borrowed: the caller holds the snapshot */
    enum op_kind kind;
    char *name, *value, *subject; /* owned */
    unsigned ns_port, dns_timeout_ms;
    chal_dns01_callback_fn callback; /* type callback */
    void *callback_ctx;
    struct dns01_key key; /* rfc2136 */
    struct sockaddr_storage server;
    char *fqdn, *zone; /* owned, once located */
    struct dns01_msg msg;
    struct dns01_locate *loc; /* children in flight, or NULL */
    struct dns01_send *send;
    struct dns01_spawn *spawn;
    struct dns01_prop *prop;
    bool ended;
    chal_dns01_cb cb; /* NULL once cancelled or ended */
    void *arg;
};

static const char *kind_name(enum op_kind k)
{
    return k == OP_PRESENT ? "present" : k == OP_CLEANUP ? "cleanup" : "wait";
}

char *chal_dns01_record_name(const char *domain)
{
    if (strncmp(domain, "*.", 2) == 0)
        domain += 2;
    size_t n = strlen(domain);
    if (n > 0 && domain[n - 1] == '.')
        n--;
    /* already a validation name (dns-account-01's _LABEL._acme-challenge.NAME,
     * dns-persist-01's _validation-persist.NAME) */
    bool full = domain[0] == '_' && (strstr(domain, "._acme-challenge.") != NULL ||
                                     strncmp(domain, "_validation-persist.", 20) == 0);
    char *s = full ? xasprintf("%.*s", (int)n, domain)
                   : xasprintf("_acme-challenge.%.*s", (int)n, domain);
    for (char *p = s; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    return s;
}

static void op_free(struct chal_dns01_op *op)
{
    free(op->name);
    free(op->value);
    free(op->subject);
    free(op->fqdn);
    free(op->zone);
    dns01_key_fini(&op->key);
    dns01_msg_fini(&op->msg);
    free(op);
}

static void op_cancel_children(struct chal_dns01_op *op)
{
    if (op->loc != NULL)
        dns01_locate_cancel(op->loc);
    if (op->send != NULL)
        dns01_send_cancel(op->send);
    if (op->spawn != NULL)
        dns01_spawn_cancel(op->spawn);
    if (op->prop != NULL)
        dns01_prop_cancel(op->prop);
    op->loc = NULL;
    op->send = NULL;
    op->spawn = NULL;
    op->prop = NULL;
}

/* The only way out: logs once, calls back, frees (no handles of our own). */
static void op_end(struct chal_dns01_op *op, int status, const char *detail)
{
    chal_dns01_cb cb = op->cb;
    const char *subj = op->subject != NULL ? op->subject : "";
    const char *sp = op->subject != NULL ? " " : "";
    const char *where = op->fqdn != NULL ? op->fqdn : op->name;
    char target[300] = "";

    if (op->ended)
        return;
    op->ended = true;
    op->cb = NULL;
    op_cancel_children(op);
    /* A CNAME-delegated record: say both names. */
    if (op->fqdn != NULL &&
        !(dns01_name_in_zone(op->name, op->fqdn) && dns01_name_in_zone(op->fqdn, op->name)))
        snprintf(target, sizeof(target), " target=%s", op->fqdn);
    if (status == -ECANCELED) {
        /* silent */
    } else if (status < 0) {
        log_error(LOG_CHAL, "dns %s%sname=%s%s: %s: %s", subj, sp, op->name, target,
                  kind_name(op->kind), detail != NULL ? detail : err_str(status));
    } else if (op->kind == OP_WAIT) {
        /* The propagation time is what an operator wants to see. */
        log_info(LOG_CHAL, "dns %s%sname=%s%s: %s", subj, sp, op->name, target, detail);
    } else {
        log_debug(LOG_CHAL, "dns %s%sname=%s%s: %s", subj, sp, op->name, target, detail);
    }
    if (cb != NULL) {
        struct chal_dns01_result r = {where, op->zone, detail != NULL ? detail : err_str(status)};
        cb(status, &r, op->arg);
    }
    op_free(op);
}

void chal_dns01_cancel(struct chal_dns01_op *op)
{
    if (op == NULL)
        return;
    op->cb = NULL;
    op_end(op, -ECANCELED, NULL);
}

static void on_prop(int status, const char *report, void *arg)
{
    struct chal_dns01_op *op = arg;

    op->prop = NULL;
    char *d = status == 0 ? xasprintf("every server has it: %s", report)
              : status == ERR_TIMEOUT
                  ? xasprintf("not on every authoritative server after %llds: %s",
                              (long long)(op->dns->propagation_timeout_s > 0
                                              ? op->dns->propagation_timeout_s
                                              : 120),
                              report)
                  : xstrdup(report);
    op_end(op, status, d);
    free(d);
}

static void on_sent(int status, const uint8_t *reply, size_t len, void *arg)
{
    struct chal_dns01_op *op = arg;
    char *why = NULL;
    char *d;

    op->send = NULL;
    if (status < 0) {
        d = xasprintf("UPDATE to %s: %s", op->dns->server,
                      status == ERR_TIMEOUT ? "no reply (timeout): check server and that it "
                                              "listens on UDP and TCP"
                                            : err_str(status));
        op_end(op, ERR_DNS, d);
        free(d);
        return;
    }
    int rc = dns01_reply_check(reply, len, &op->msg, &op->key, op->zone, (int64_t)time(NULL), &why);
    if (rc < 0) {
        d = xasprintf("UPDATE to %s zone %s: %s", op->dns->server, op->zone, why);
        op_end(op, ERR_DNS, d);
    } else {
        d = xasprintf("TXT %s via %s (zone %s, key %s)",
                      op->kind == OP_PRESENT ? "added" : "deleted", op->dns->server, op->zone,
                      op->key.name);
        op_end(op, 0, d);
    }
    free(d);
    free(why);
}

static void on_spawned(int status, const char *output, void *arg)
{
    struct chal_dns01_op *op = arg;
    const char *prog = op->dns->command.v[0];
    char *d;

    op->spawn = NULL;
    if (status == 0) {
        d = xasprintf("%s %s done", prog, kind_name(op->kind));
        op_end(op, 0, d);
        free(d);
        return;
    }
    /* The last non-empty line of output says most, masked for the log. */
    size_t n = strlen(output);
    while (n > 0 && (output[n - 1] == '\n' || output[n - 1] == '\r'))
        n--;
    size_t b = n;
    while (b > 0 && output[b - 1] != '\n')
        b--;
    char line[512];
    log_mask(line, sizeof(line), output + b, n - b);
    d = xasprintf("%s %s %s%s%s", prog, kind_name(op->kind),
                  status == ERR_TIMEOUT ? "timed out" : "failed (non-zero exit)", n > b ? ": " : "",
                  n > b ? line : "");
    op_end(op, status, d);
    free(d);
}

static int start_exec(struct chal_dns01_op *op)
{
    const struct cfg_strv *c = &op->dns->command;
    const char **argv = xcalloc(c->n + 4, sizeof(*argv));
    char *env[4];
    int rc;

    for (size_t i = 0; i < c->n; i++)
        argv[i] = c->v[i];
    argv[c->n] = kind_name(op->kind);
    argv[c->n + 1] = op->fqdn;
    argv[c->n + 2] = op->value;
    env[0] = xasprintf("CERTLOOP_DNS_ACTION=%s", kind_name(op->kind));
    env[1] = xasprintf("CERTLOOP_DNS_FQDN=%s", op->fqdn);
    env[2] = xasprintf("CERTLOOP_DNS_VALUE=%s", op->value);
    env[3] = NULL;
    rc = dns01_spawn_start(op->loop, argv, (const char *const *)env,
                           (uint64_t)(op->dns->timeout_s > 0 ? op->dns->timeout_s : 60) * 1000,
                           on_spawned, op, &op->spawn);
    for (int i = 0; i < 3; i++)
        free(env[i]);
    free(argv);
    return rc;
}

static int start_update(struct chal_dns01_op *op, char **why)
{
    uint16_t id = 0;
    int rc;

    if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
        id = (uint16_t)(uv_hrtime() ^ (uint64_t)(uintptr_t)op);
    rc = dns01_update_build(op->zone, op->fqdn, op->value, op->kind == OP_PRESENT, TXT_TTL, id,
                            &op->key, (int64_t)time(NULL), &op->msg, why);
    if (rc < 0)
        return rc;
    return dns01_send_start(op->loop, (const struct sockaddr *)&op->server, op->msg.wire,
                            op->msg.len, op->dns_timeout_ms, 3, on_sent, op, &op->send);
}

static void on_located(int status, const char *fqdn, const char *zone, const char *why, void *arg)
{
    struct chal_dns01_op *op = arg;
    char *err = NULL;
    int rc;

    op->loc = NULL;
    if (status < 0) {
        op_end(op, status, why);
        return;
    }
    op->fqdn = xstrdup(fqdn);
    op->zone = zone != NULL ? xstrdup(zone) : NULL;
    if (op->kind == OP_WAIT) {
        const struct cfg_strv *ns = &op->dns->nameservers;
        struct dns01_prop_opts o = {op->subject,
                                    (const char *const *)ns->v,
                                    ns->n,
                                    op->ns_port,
                                    op->dns_timeout_ms,
                                    op->dns->propagation_timeout_s,
                                    op->dns->poll_interval_s};
        rc = dns01_prop_start(op->loop, op->res, op->zone, op->fqdn, op->value, &o, on_prop, op,
                              &op->prop);
    } else if (op->dns->type == CFG_DNS_EXEC) {
        rc = start_exec(op);
    } else if (op->dns->type == CFG_DNS_CALLBACK) {
        rc = op->callback(op->callback_ctx, op->kind == OP_PRESENT, op->fqdn, op->value, &err);
        if (rc == 0) {
            char *d = xasprintf("asked the callback URL to %s the TXT record",
                                op->kind == OP_PRESENT ? "add" : "remove");
            op_end(op, 0, d);
            free(d);
            return;
        }
    } else {
        rc = start_update(op, &err);
    }
    if (rc < 0) {
        char *d = err != NULL ? xstrdup(err) : xasprintf("cannot start: %s", err_str(rc));
        op_end(op, rc, d);
        free(d);
    }
    free(err);
}

static int op_start(enum op_kind kind, uv_loop_t *loop, struct dns_resolver *resolver,
                    const struct cfg_dns *dns, const char *name, const char *value,
                    const struct chal_dns01_opts *opts, chal_dns01_cb cb, void *arg,
                    struct chal_dns01_op **out)
{
    struct chal_dns01_op *op;
    bool need_zone;
    int rc;

    if (loop == NULL || resolver == NULL || dns == NULL || name == NULL || value == NULL ||
        cb == NULL)
        return -EINVAL;
    if (kind != OP_WAIT && dns->type == CFG_DNS_CALLBACK &&
        (opts == NULL || opts->callback == NULL)) {
        log_error(LOG_CHAL, "dns %s: a callback solver needs the daemon's webhook outbox",
                  dns->name);
        return ERR_UNSUPPORTED;
    }
    if (kind != OP_WAIT && dns->type == CFG_DNS_EXEC && dns->command.n == 0) {
        log_error(LOG_CHAL, "dns %s: exec solver without command", dns->name);
        return -EINVAL;
    }
    op = xcalloc(1, sizeof(*op));
    op->loop = loop;
    op->res = resolver;
    op->dns = dns;
    op->kind = kind;
    op->name = xstrdup(name);
    op->value = xstrdup(value);
    op->subject = opts != NULL && opts->subject != NULL ? xstrdup(opts->subject) : NULL;
    op->ns_port = opts != NULL ? opts->ns_port : 0;
    op->dns_timeout_ms = opts != NULL && opts->dns_timeout_ms > 0 ? opts->dns_timeout_ms : 2000;
    op->callback = opts != NULL ? opts->callback : NULL;
    op->callback_ctx = opts != NULL ? opts->callback_ctx : NULL;
    if (kind != OP_WAIT && dns->type == CFG_DNS_RFC2136) {
        socklen_t sl;
        if (dns->server == NULL || config_addr_parse(dns->server, 53, &op->server, &sl) < 0) {
            log_error(LOG_CHAL, "dns %s: server \"%s\" is not IP:PORT", dns->name,
                      dns->server != NULL ? dns->server : "");
            rc = -EINVAL;
            goto fail;
        }
        rc = dns01_key_load(&dns->tsig, &op->key);
        if (rc < 0)
            goto fail;
    }
    if (kind == OP_WAIT)
        need_zone = dns->nameservers.n == 0;
    else
        need_zone = dns->type == CFG_DNS_RFC2136;
    rc = dns01_locate_start(resolver, name, dns->zone, need_zone, on_located, op, &op->loc);
    if (rc < 0) {
        log_error(LOG_CHAL, "dns %s: %s %s: %s", dns->name, kind_name(kind), name, err_str(rc));
        goto fail;
    }
    op->cb = cb;
    op->arg = arg;
    if (out != NULL)
        *out = op;
    return 0;
fail:
    op_free(op);
    return rc;
}

int chal_dns01_present_start(uv_loop_t *loop, struct dns_resolver *resolver,
                             const struct cfg_dns *dns, const char *name, const char *value,
                             const struct chal_dns01_opts *opts, chal_dns01_cb cb, void *arg,
                             struct chal_dns01_op **out)
{
    return op_start(OP_PRESENT, loop, resolver, dns, name, value, opts, cb, arg, out);
}

int chal_dns01_cleanup_start(uv_loop_t *loop, struct dns_resolver *resolver,
                             const struct cfg_dns *dns, const char *name, const char *value,
                             const struct chal_dns01_opts *opts, chal_dns01_cb cb, void *arg,
                             struct chal_dns01_op **out)
{
    return op_start(OP_CLEANUP, loop, resolver, dns, name, value, opts, cb, arg, out);
}

int chal_dns01_wait_start(uv_loop_t *loop, struct dns_resolver *resolver, const struct cfg_dns *dns,
                          const char *name, const char *value, const struct chal_dns01_opts *opts,
                          chal_dns01_cb cb, void *arg, struct chal_dns01_op **out)
{
    return op_start(OP_WAIT, loop, resolver, dns, name, value, opts, cb, arg, out);
}
