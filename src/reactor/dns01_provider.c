/* The dns-01 challenge provider for orders: per authorization it runs
 * chal_dns01_present then chal_dns01_wait, and later chal_dns01_cleanup,
 * with the certificate's [dns.NAME] solver and the TXT value derived from
 * the key authorization (acme_dns01_txt). It holds the config snapshot each
 * operation began with. It does not talk to the CA; the order does. */
#include "reactor/dns01_provider.h"
#include "acme/acme.h"
#include "challenge/challenge.h"
#include "config/config.h"
#include "deploy/deploy.h"
#include "net/net.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum pv_state { PV_PRESENT, PV_WAIT, PV_ENDED };

struct dns01_provision {
    struct dns01_provider *p; /* borrowed: outlives every provision */
    struct dns01_provision *prev, *next;
    struct config *cfg;           /* ref */
    const struct cfg_dns *dns;    /* borrowed from cfg */
    const struct cfg_cert *cert;  /* borrowed from cfg */
    char *key;                    /* owned: "FQDN VALUE", tags callback deliveries */
    char *name, *value, *subject; /* owned */
    struct chal_dns01_op *op;     /* child in flight, or NULL */
    enum pv_state state;
    bool cleanup; /* a background cleanup: no callback */
    dns01_provider_cb cb;
    void *arg;
};

struct dns01_provider {
    uv_loop_t *loop;
    struct dns_resolver *res;     /* owned */
    struct dns01_provision *list; /* provisions and cleanups in flight */
    size_t n;
    struct notify *notify; /* borrowed: for callback solvers, or NULL */
};

static void pv_unlink(struct dns01_provision *pv)
{
    struct dns01_provider *p = pv->p;

    if (pv->prev != NULL)
        pv->prev->next = pv->next;
    else
        p->list = pv->next;
    if (pv->next != NULL)
        pv->next->prev = pv->prev;
    p->n--;
}

static void pv_free(struct dns01_provision *pv)
{
    config_unref(pv->cfg);
    free(pv->name);
    free(pv->value);
    free(pv->subject);
    free(pv->key);
    free(pv);
}

/* The only way out (no handles of our own: freed at once). */
static void pv_end(struct dns01_provision *pv, int status, const char *detail)
{
    dns01_provider_cb cb = pv->cb;

    if (pv->state == PV_ENDED)
        return;
    pv->state = PV_ENDED;
    pv->cb = NULL;
    if (pv->op != NULL)
        chal_dns01_cancel(pv->op);
    pv->op = NULL;
    pv_unlink(pv);
    if (cb != NULL)
        cb(status, detail, pv->arg);
    pv_free(pv);
}

void dns01_provider_present_cancel(struct dns01_provision *pv)
{
    if (pv == NULL)
        return;
    pv->cb = NULL;
    pv_end(pv, -ECANCELED, NULL);
}

/* A callback solver's record did not appear: say what the receiver did. */
static char *callback_detail(const struct dns01_provision *pv, const char *detail)
{
    unsigned attempts = 0;
    const char *last = NULL;

    if (pv->p->notify == NULL || pv->key == NULL)
        return xstrdup(detail);
    if (!notify_solver_pending(pv->p->notify, pv->dns->name, pv->key, &attempts, &last))
        return xasprintf("%s; the callback URL accepted the request (2xx) but the record is "
                         "not served",
                         detail);
    if (attempts == 0 || last == NULL)
        return xasprintf("%s; the callback URL has not answered yet", detail);
    return xasprintf("%s; the callback URL refused the request %u time%s, last: %s", detail,
                     attempts, attempts == 1 ? "" : "s", last);
}

static void pv_waited(int status, const struct chal_dns01_result *r, void *arg)
{
    struct dns01_provision *pv = arg;

    pv->op = NULL;
    if (status < 0 && status != -ECANCELED && pv->dns->type == CFG_DNS_CALLBACK) {
        char *d = callback_detail(pv, r->detail);
        pv_end(pv, status, d);
        free(d);
        return;
    }
    pv_end(pv, status, r->detail);
}

/* chal_dns01_callback_fn for type callback: dns_record_required (in memory,
 * while the order waits) or dns_record_removable (through the outbox) to
 * the solver's url, and a copy to the [notify.*] webhooks subscribed. */
static int pv_callback(void *ctx, bool present, const char *fqdn, const char *value, char **why)
{
    struct dns01_provision *pv = ctx;
    struct notify *n = pv->p->notify;
    char *json = NULL;
    int rc;

    if (n == NULL) {
        *why = xstrdup("the webhook outbox is not available");
        return ERR_UNSUPPORTED;
    }
    size_t len = strlen(fqdn);
    char *name = xstrndup(fqdn, len > 0 && fqdn[len - 1] == '.' ? len - 1 : len);
    struct notify_event e = {
        .type = present ? NOTIFY_EV_DNS_RECORD_REQUIRED : NOTIFY_EV_DNS_RECORD_REMOVABLE,
        .certificate = pv->cert->name,
        .domains = (const char *const *)pv->cert->domains.v,
        .n_domains = pv->cert->domains.n,
        .time = (int64_t)time(NULL),
        .record_name = name,
        .record_value = value,
    };
    free(pv->key);
    pv->key = xasprintf("%s %s", name, value);
    rc = notify_event_build(&e, &json);
    free(name);
    if (rc < 0) {
        *why = xstrdup("cannot build the event");
        return rc;
    }
    /* a request not delivered yet must not arrive after the removal */
    if (!present)
        notify_solver_cancel(n, pv->dns->name, pv->key);
    rc = notify_emit_solver(n, pv->dns->name, json, !present, pv->key);
    if (rc >= 0)
        (void)notify_emit(n, json); /* observers; their failures are logged */
    else
        *why = xasprintf("cannot queue the request for %s: %s", pv->dns->name, err_str(rc));
    free(json);
    return rc < 0 ? rc : 0;
}

static void pv_presented(int status, const struct chal_dns01_result *r, void *arg)
{
    struct dns01_provision *pv = arg;
    struct chal_dns01_opts o = {.subject = pv->subject};
    int rc;

    pv->op = NULL;
    if (status < 0 || pv->cleanup) {
        pv_end(pv, status, r->detail);
        return;
    }
    pv->state = PV_WAIT;
    rc = chal_dns01_wait_start(pv->p->loop, pv->p->res, pv->dns, pv->name, pv->value, &o, pv_waited,
                               pv, &pv->op);
    if (rc < 0) {
        pv->op = NULL;
        pv_end(pv, rc, "cannot start the propagation check");
    }
}

enum pv_mode { PV_MODE_PRESENT, PV_MODE_CLEANUP, PV_MODE_CHECK, PV_MODE_PUBLISH };

/* mode PRESENT/CLEANUP: identifier and the dns-01 value of keyauth;
 * CHECK (wait only) and PUBLISH (present and wait): a record name and its
 * literal TXT value (dns-persist-01). */
static struct dns01_provision *pv_start(struct dns01_provider *p, struct config *cfg,
                                        const struct cfg_cert *cert, const char *identifier,
                                        const char *keyauth, enum pv_mode mode, int *rc);

static struct dns01_provision *pv_new(struct dns01_provider *p, struct config *cfg,
                                      const struct cfg_cert *cert, const char *identifier,
                                      const char *keyauth, bool cleanup, int *rc)
{
    return pv_start(p, cfg, cert, identifier, keyauth, cleanup ? PV_MODE_CLEANUP : PV_MODE_PRESENT,
                    rc);
}

static struct dns01_provision *pv_start(struct dns01_provider *p, struct config *cfg,
                                        const struct cfg_cert *cert, const char *identifier,
                                        const char *keyauth, enum pv_mode mode, int *rc)
{
    bool cleanup = mode == PV_MODE_CLEANUP;
    struct dns01_provision *pv;
    struct chal_dns01_opts o = {.subject = NULL};

    if (cert->dns == NULL || identifier == NULL || keyauth == NULL) {
        *rc = -EINVAL;
        return NULL;
    }
    pv = xcalloc(1, sizeof(*pv));
    pv->p = p;
    pv->cfg = config_ref(cfg);
    pv->dns = cert->dns;
    pv->cert = cert;
    pv->name = chal_dns01_record_name(identifier);
    pv->value = mode == PV_MODE_CHECK || mode == PV_MODE_PUBLISH ? xstrdup(keyauth)
                                                                 : acme_dns01_txt(keyauth);
    pv->subject = xasprintf("cert=%s", cert->name);
    pv->cleanup = cleanup;
    pv->state = PV_PRESENT;
    o.subject = pv->subject;
    o.callback = pv_callback;
    o.callback_ctx = pv;
    if (cleanup) {
        *rc = chal_dns01_cleanup_start(p->loop, p->res, pv->dns, pv->name, pv->value, &o,
                                       pv_presented, pv, &pv->op);
    } else if (mode == PV_MODE_CHECK) {
        pv->state = PV_WAIT;
        *rc = chal_dns01_wait_start(p->loop, p->res, pv->dns, pv->name, pv->value, &o, pv_waited,
                                    pv, &pv->op);
    } else
        *rc = chal_dns01_present_start(p->loop, p->res, pv->dns, pv->name, pv->value, &o,
                                       pv_presented, pv, &pv->op);
    if (*rc < 0) {
        pv_free(pv);
        return NULL;
    }
    pv->next = p->list;
    if (p->list != NULL)
        p->list->prev = pv;
    p->list = pv;
    p->n++;
    return pv;
}

int dns01_provider_present_start(struct dns01_provider *p, struct config *cfg,
                                 const struct cfg_cert *cert, const char *identifier,
                                 const char *keyauth, dns01_provider_cb cb, void *arg,
                                 struct dns01_provision **out)
{
    int rc = 0;
    struct dns01_provision *pv;

    if (cb == NULL)
        return -EINVAL;
    pv = pv_new(p, cfg, cert, identifier, keyauth, false, &rc);
    if (pv == NULL)
        return rc;
    pv->cb = cb;
    pv->arg = arg;
    if (out != NULL)
        *out = pv;
    return 0;
}

void dns01_provider_cleanup(struct dns01_provider *p, struct config *cfg,
                            const struct cfg_cert *cert, const char *identifier,
                            const char *keyauth)
{
    int rc = 0;

    /* The outcome is logged by chal_dns01 (subject cert=NAME). */
    if (pv_new(p, cfg, cert, identifier, keyauth, true, &rc) == NULL)
        log_warn(LOG_CHAL, "dns cert=%s name=%s: cleanup not started: %s", cert->name,
                 identifier != NULL ? identifier : "?", err_str(rc));
}

void dns01_provider_set_notify(struct dns01_provider *p, struct notify *n)
{
    if (p != NULL)
        p->notify = n;
}

size_t dns01_provider_inflight(const struct dns01_provider *p)
{
    return p->n;
}

int dns01_provider_open(uv_loop_t *loop, const struct config *cfg, struct dns01_provider **out)
{
    struct dns01_provider *p = xcalloc(1, sizeof(*p));
    struct buf servers = BUF_INIT(4096);
    const struct cfg_strv *r = &cfg->daemon.resolvers;
    int rc;

    for (size_t i = 0; i < r->n; i++) {
        rc = buf_printf(&servers, "%s%s", i > 0 ? "," : "", r->v[i]);
        if (rc < 0) {
            log_error(LOG_CHAL, "daemon.resolvers: too long");
            goto fail;
        }
    }
    struct dns_resolver_opts o = {servers.data, 0, 0, false, false};
    p->loop = loop;
    rc = dns_resolver_open(loop, &o, &p->res);
    if (rc < 0)
        goto fail;
    buf_fini(&servers);
    *out = p;
    return 0;
fail:
    buf_fini(&servers);
    free(p);
    return rc;
}

void dns01_provider_close(struct dns01_provider *p)
{
    if (p == NULL)
        return;
    while (p->list != NULL) {
        p->list->cb = NULL;
        pv_end(p->list, -ECANCELED, NULL);
    }
    dns_resolver_close(p->res);
    free(p);
}

int dns01_binding_present_start(void *binding, const char *identifier, const char *keyauth,
                                dns01_provider_cb done, void *done_arg, void **handle)
{
    struct dns01_binding *b = binding;
    struct dns01_provision *pv = NULL;
    int rc = dns01_provider_present_start(b->provider, b->cfg, b->cert, identifier, keyauth, done,
                                          done_arg, &pv);

    if (rc == 0 && handle != NULL)
        *handle = pv;
    return rc;
}

void dns01_binding_present_cancel(void *binding, void *handle)
{
    (void)binding;
    dns01_provider_present_cancel(handle);
}

void dns01_binding_cleanup(void *binding, const char *identifier, const char *keyauth)
{
    struct dns01_binding *b = binding;

    dns01_provider_cleanup(b->provider, b->cfg, b->cert, identifier, keyauth);
}

int dns01_provider_record_start(struct dns01_provider *p, struct config *cfg,
                                const struct cfg_cert *cert, const char *name, const char *value,
                                bool publish, dns01_provider_cb cb, void *arg,
                                struct dns01_provision **out)
{
    int rc = 0;
    struct dns01_provision *pv;

    if (cb == NULL)
        return -EINVAL;
    pv = pv_start(p, cfg, cert, name, value, publish ? PV_MODE_PUBLISH : PV_MODE_CHECK, &rc);
    if (pv == NULL)
        return rc;
    pv->cb = cb;
    pv->arg = arg;
    if (out != NULL)
        *out = pv;
    return 0;
}
