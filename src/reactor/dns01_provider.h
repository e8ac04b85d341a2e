/* dns-01 for orders: adapts challenge.h's chal_dns01_* to what an order
 * needs per authorization (RFC 8555 §8.4): put the TXT value for an
 * identifier's key authorization in place, wait until every authoritative
 * server serves it, and later remove it. One provider per manager; it owns
 * the recursive resolver ([daemon] resolvers, else /etc/resolv.conf). */
#ifndef CERTLOOP_REACTOR_DNS01_PROVIDER_H
#define CERTLOOP_REACTOR_DNS01_PROVIDER_H

#include <stddef.h>
#include <uv.h>

struct config;
struct cfg_cert;
struct dns01_provider;
struct dns01_provision;

/* status 0: every authoritative server serves the value; otherwise the
 * challenge error (ERR_DNS, ERR_HOOK, ERR_TIMEOUT, ...). detail is the line
 * for the order's error and `status` (borrowed during the callback). */
typedef void (*dns01_provider_cb)(int status, const char *detail, void *arg);

/* Opens a provider on loop with cfg->daemon.resolvers (borrowed during the
 * call). Owned; release with dns01_provider_close. */
int dns01_provider_open(uv_loop_t *loop, const struct config *cfg, struct dns01_provider **out);
/* Cancels every provision and cleanup still running (their callbacks never
 * run; records being cleaned up may stay behind) and frees the provider
 * once its resolver has closed (run the loop). */
void dns01_provider_close(struct dns01_provider *p);
/* The webhook outbox callback solvers ([dns.NAME] type = "callback") send
 * their requests through (borrowed; NULL before it is open and before it
 * closes: such solvers then fail with a clear error). */
struct notify;
void dns01_provider_set_notify(struct dns01_provider *p, struct notify *n);
/* Provisions and cleanups in flight. */
size_t dns01_provider_inflight(const struct dns01_provider *p);

/* Presents the TXT value of keyauth ("TOKEN.THUMBPRINT") for identifier
 * ("a.test" or "*.a.test") with cert->dns, then waits for propagation.
 * cfg is referenced until the end; cert is borrowed from cfg. Async
 * contract of STYLE §4. Whatever the outcome (and after a cancel), the
 * caller calls dns01_provider_cleanup once for the same identifier and
 * keyauth: a record may have been added before a later step failed. */
int dns01_provider_present_start(struct dns01_provider *p, struct config *cfg,
                                 const struct cfg_cert *cert, const char *identifier,
                                 const char *keyauth, dns01_provider_cb cb, void *arg,
                                 struct dns01_provision **out);
void dns01_provider_present_cancel(struct dns01_provision *pv);

/* Removes exactly that TXT value (the other authorizations' values under the
 * same name stay). Runs in the background and logs its outcome; cfg is
 * referenced until it is done. */
void dns01_provider_cleanup(struct dns01_provider *p, struct config *cfg,
                            const struct cfg_cert *cert, const char *identifier,
                            const char *keyauth);

/* dns-persist-01: checks (publish false) that every authoritative server
 * serves the TXT `value` at the record `name` ("_validation-persist.NAME"),
 * or first puts it there once (publish true) through cert->dns; the record
 * is never removed. The same contract and cancel as present_start. */
#include <stdbool.h>
int dns01_provider_record_start(struct dns01_provider *p, struct config *cfg,
                                const struct cfg_cert *cert, const char *name, const char *value,
                                bool publish, dns01_provider_cb cb, void *arg,
                                struct dns01_provision **out);

/* Glue for struct acme_chal_ops (acme.h): the same calls as ctx-style
 * functions over a binding of the provider to one run, so a dns-01 order
 * can use .ctx = &binding, .dns_present_start = dns01_binding_present_start,
 * .dns_present_cancel = dns01_binding_present_cancel, .dns_cleanup =
 * dns01_binding_cleanup. The binding must outlive the order. */
struct dns01_binding {
    struct dns01_provider *provider; /* borrowed */
    struct config *cfg;              /* borrowed: the run's snapshot (the run holds a ref) */
    const struct cfg_cert *cert;     /* borrowed from cfg; its dns is the solver */
};
int dns01_binding_present_start(void *binding, const char *identifier, const char *keyauth,
                                dns01_provider_cb done, void *done_arg, void **handle);
void dns01_binding_present_cancel(void *binding, void *handle);
void dns01_binding_cleanup(void *binding, const char *identifier, const char *keyauth);

#endif
