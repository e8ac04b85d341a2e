/* The authorizations of one order (RFC 8555 §7.5): fetch, present the
 * challenge through the caller's provider (http-01, tls-alpn-01, dns-01 and
 * its variants, dns-persist-01's check), respond, poll (early when our
 * listener saw the CA validate), and hand over to finalize when all are
 * valid. The order's lifetime and the rest of its life are order.c's. */
#include "acme/order_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

/* ---- authorizations ---- */

static void authz_check_all(struct acme_order *o);
static void authz_schedule(struct order_authz *a, const char *retry_after);
static void dns_present(struct order_authz *a, json_t *authz, const char *token, const char *curl,
                        const char *cst);
static void persist_check(struct order_authz *a, json_t *authz, json_t *chal, const char *curl,
                          const char *cst);

static void authz_timer_cb(uv_timer_t *t)
{
    struct order_authz *a = t->data;

    if (a->early == EARLY_ARMED)
        a->early = EARLY_DONE;
    acme_authz_fetch(a);
}

static void authz_order_response(int status, const struct acme_response *r, void *arg)
{
    struct acme_order *o = arg;

    o->req = NULL;
    if (status != 0) {
        acme_order_note_failure(o, r);
        acme_order_fail(o, status, "order poll: %s", r->error);
        return;
    }
    const char *st = acme_order_jstr(r->json, "status");
    log_debug(LOG_ACME, "order cert=%s: order %s is %s", o->name, o->order_url, st ? st : "?");
    for (size_t i = 0; i < o->n_az && o->state == ORD_AUTHZ; i++) {
        struct order_authz *a = &o->az[i];
        if (a->state != AZ_POLL)
            continue;
        if (st != NULL && strcmp(st, "ready") == 0) {
            /* RFC 8555 §7.1.6: ready once every authorization is valid */
            acme_authz_release(a);
            a->state = AZ_DONE;
            o->az_done++;
        } else if (st != NULL && strcmp(st, "pending") == 0) {
            authz_schedule(a, r->retry_after); /* each polled on its own from now */
        } else {
            acme_authz_fetch(a); /* invalid (or stranger): the authorizations say why */
        }
    }
    authz_check_all(o);
}

static void authz_order_timer_cb(uv_timer_t *t)
{
    struct acme_order *o = t->data;

    o->authz_early = ORDER_EARLY_DONE;
    for (size_t i = 0; i < o->n_az; i++) {
        if (o->az[i].state != AZ_WAIT)
            continue;
        o->az[i].early = EARLY_DONE;
        o->az[i].state = AZ_POLL;
    }
    int rc = acme_order_post(o, &o->req, o->order_url, "the newOrder Location", NULL, "poll",
                             authz_order_response, o);
    if (rc < 0)
        acme_order_fail(o, rc, "order poll: %s", err_str(rc));
}

/* Whether the order's early poll stands in for its authorizations': two or
 * more are left, and the CA has fetched every one of their challenges
 * while each waits for its next poll. One order object then says what
 * their polls would (ready: all valid), in one request instead of one per
 * authorization; once per order. */
static bool order_poll_instead(const struct acme_order *o)
{
    size_t left = 0;

    if (o->authz_early == ORDER_EARLY_DONE || o->order_url == NULL)
        return false;
    for (size_t i = 0; i < o->n_az; i++) {
        const struct order_authz *b = &o->az[i];
        if (b->state == AZ_DONE)
            continue;
        if (b->state != AZ_WAIT || !b->seen)
            return false;
        left++;
    }
    return left >= 2;
}

/* Arms the one early poll of a waiting authorization whose challenge the CA
 * was seen fetching: POLL_SEEN_MS from now (a later fetch moves it again,
 * but no further than POLL_FLOOR_MS after the first one, so a CA that keeps
 * fetching cannot hold the poll off), never before the CA's Retry-After.
 * When the CA has fetched the challenges of every authorization left, the
 * order object is polled instead, by the same rules over all of them. */
static void authz_poll_early(struct order_authz *a)
{
    struct acme_order *o = a->o;
    uint64_t now = uv_now(o->loop);
    uint64_t at = now + POLL_SEEN_MS;

    if (!order_poll_instead(o)) {
        if (at > a->seen_ms + POLL_FLOOR_MS)
            at = a->seen_ms + POLL_FLOOR_MS;
        if (at < now)
            at = now;
        if (at < a->not_before_ms)
            at = a->not_before_ms;
        a->early = EARLY_ARMED;
        uv_timer_start(&a->timer, authz_timer_cb, at - now, 0);
        return;
    }
    uint64_t cap = UINT64_MAX, not_before = 0;
    for (size_t i = 0; i < o->n_az; i++) {
        struct order_authz *b = &o->az[i];
        if (b->state != AZ_WAIT)
            continue;
        if (b->seen_ms + POLL_FLOOR_MS < cap)
            cap = b->seen_ms + POLL_FLOOR_MS;
        if (b->not_before_ms > not_before)
            not_before = b->not_before_ms;
        b->early = EARLY_ARMED;
        uv_timer_stop(&b->timer);
    }
    if (at > cap)
        at = cap;
    if (at < now)
        at = now;
    if (at < not_before)
        at = not_before;
    o->authz_early = ORDER_EARLY_ARMED;
    uv_timer_start(&o->timer, authz_order_timer_cb, at - now, 0);
}

static void authz_schedule(struct order_authz *a, const char *retry_after)
{
    struct acme_order *o = a->o;
    unsigned d = acme_order_next_delay(&a->delay_ms, retry_after);

    a->not_before_ms =
        http_retry_after_parse(retry_after, (int64_t)time(NULL)) >= 0 ? uv_now(o->loop) + d : 0;
    if (uv_now(o->loop) + d > o->deadline_ms) {
        acme_order_fail(o, ERR_TIMEOUT, "name=%s: authorization still pending after %d s",
                        a->ident != NULL ? a->ident : a->url, o->authz_timeout_s);
        return;
    }
    a->state = AZ_WAIT;
    if (a->seen && a->early == EARLY_NONE) {
        authz_poll_early(a); /* the CA fetched it while we were asking */
        return;
    }
    uv_timer_start(&a->timer, authz_timer_cb, d, 0);
}

void acme_order_chal_seen(struct acme_order *o, const char *what)
{
    if (o == NULL || o->state != ORD_AUTHZ)
        return;
    for (size_t i = 0; i < o->n_az; i++) {
        struct order_authz *a = &o->az[i];
        const char *mine = o->kind == CFG_CHAL_HTTP01      ? a->token
                           : o->kind == CFG_CHAL_TLSALPN01 ? a->dns_ident
                                                           : NULL;
        if (mine == NULL || strcmp(mine, what) != 0)
            continue;
        if (!a->seen)
            a->seen_ms = uv_now(o->loop);
        a->seen = true;
        /* waiting for a timed poll, or for the early one (a later fetch
         * from another vantage point moves it) */
        if (a->state != AZ_WAIT || a->early == EARLY_DONE)
            continue;
        if (a->early == EARLY_NONE)
            log_debug(LOG_ACME, "order cert=%s name=%s: the CA fetched the challenge: polling",
                      o->name, a->ident);
        authz_poll_early(a);
    }
}

static void chal_response(int status, const struct acme_response *r, void *arg)
{
    struct order_authz *a = arg;
    struct acme_order *o = a->o;

    a->req = NULL;
    if (status != 0) {
        acme_order_note_failure(o, r);
        acme_order_fail(o, status, "name=%s: responding to the challenge: %s", a->ident, r->error);
        return;
    }
    a->delay_ms = POLL_FIRST_MS;
    authz_schedule(a, r->retry_after);
}

/* An authorization object arrived (first fetch or a poll). */
static void authz_response(int status, const struct acme_response *r, void *arg)
{
    struct order_authz *a = arg;
    struct acme_order *o = a->o;
    json_t *chal = NULL;
    const char *st;
    int rc;

    a->req = NULL;
    if (status != 0) {
        acme_order_note_failure(o, r);
        acme_order_fail(o, status, "name=%s: authorization %s: %s", a->ident ? a->ident : "?",
                        a->url, r->error);
        return;
    }
    if (a->ident == NULL) {
        a->ident = acme_authz_identifier(r->json);
        if (a->ident == NULL)
            a->ident = xstrdup(a->url);
    }
    st = acme_order_jstr(r->json, "status");
    if (st == NULL) {
        acme_order_fail(o, ERR_PARSE, "name=%s: authorization %s: no status", a->ident, a->url);
        return;
    }
    /* Find our challenge (RFC 8555 §8.3 http-01, §8.4 dns-01). */
    const char *want = config_challenge_name(o->kind);
    chal = (json_t *)acme_authz_challenge(r->json, want);
    log_debug(LOG_ACME, "order cert=%s name=%s: authorization %s", o->name, a->ident, st);
    if (strcmp(st, "valid") == 0) {
        acme_authz_release(a);
        a->state = AZ_DONE;
        o->az_done++;
        authz_check_all(o);
        return;
    }
    if (strcmp(st, "invalid") == 0) {
        json_t *err = chal != NULL ? json_object_get(chal, "error") : NULL;
        char *p = acme_order_problem_of(err);
        struct acme_problem *pd = xcalloc(1, sizeof(*pd));
        if (err != NULL && acme_problem_from_json(err, pd) == 0)
            acme_order_keep_problem(o, pd);
        else
            acme_problem_free(pd);
        acme_authz_release(a);
        free(o->failed_ident);
        o->failed_ident = xstrdup(a->ident);
        acme_order_fail(o, ERR_CHALLENGE, "name=%s: authorization invalid: %s", a->ident, p);
        free(p);
        return;
    }
    if (strcmp(st, "pending") != 0) {
        char *w = acme_status_word(st);
        acme_order_fail(o, ERR_CHALLENGE, "name=%s: authorization %s", a->ident, w);
        free(w);
        return;
    }
    if (a->state == AZ_WAIT || a->state == AZ_POLL) {
        authz_schedule(a, r->retry_after);
        return;
    }
    /* First sight of a pending authorization: provision and respond. */
    if (chal == NULL) {
        acme_order_fail(o, ERR_UNSUPPORTED, "name=%s: the CA offers no %s challenge", a->ident,
                        want);
        return;
    }
    const char *token = acme_order_jstr(chal, "token");
    const char *curl = acme_order_jstr(chal, "url");
    const char *cst = acme_order_jstr(chal, "status");
    if (o->kind == CFG_CHAL_DNSPERSIST01 && curl != NULL) {
        persist_check(a, r->json, chal, curl, cst);
        return;
    }
    if (token == NULL || curl == NULL) {
        acme_order_fail(o, ERR_PARSE, "name=%s: %s challenge without token or url", a->ident, want);
        return;
    }
    if (o->kind != CFG_CHAL_HTTP01) {
        dns_present(a, r->json, token, curl, cst);
        return;
    }
    char *keyauth = acme_key_authorization(token, acme_client_thumbprint(o->c));
    rc = o->chal.present != NULL ? o->chal.present(o->chal.ctx, token, keyauth) : -ENOSYS;
    free(keyauth);
    if (rc < 0) {
        acme_order_fail(o, rc, "name=%s: cannot provision the http-01 token: %s", a->ident,
                        err_str(rc));
        return;
    }
    a->token = xstrdup(token);
    free(a->chal_url);
    a->chal_url = xstrdup(curl);
    if (cst != NULL && strcmp(cst, "pending") != 0) {
        /* Already answered (a resumed order): just wait for the result. */
        a->delay_ms = POLL_FIRST_MS;
        authz_schedule(a, r->retry_after);
        return;
    }
    a->state = AZ_RESPOND;
    rc = acme_order_post(o, &a->req, a->chal_url, FROM_CHAL, "{}", "challenge", chal_response, a);
    if (rc < 0)
        acme_order_fail(o, rc, "name=%s: cannot respond to the challenge: %s", a->ident,
                        err_str(rc));
}

static void persist_checked(int status, const char *detail, void *arg)
{
    struct order_authz *a = arg;
    struct acme_order *o = a->o;
    int rc;

    a->dns_handle = NULL;
    if (status != 0) {
        acme_order_fail(o, status,
                        "name=%s: dns-persist-01: add the TXT record %s \"%s\" (certloop "
                        "persist-record %s --publish puts it there with the dns solver): %s",
                        a->ident, a->dns_ident, a->keyauth, o->name,
                        detail != NULL ? detail : err_str(status));
        return;
    }
    log_debug(LOG_ACME, "order cert=%s name=%s: dns-persist-01 record in place", o->name, a->ident);
    a->state = AZ_RESPOND;
    rc = acme_order_post(o, &a->req, a->chal_url, FROM_CHAL, "{}", "challenge", chal_response, a);
    if (rc < 0)
        acme_order_fail(o, rc, "name=%s: cannot respond to the challenge: %s", a->ident,
                        err_str(rc));
}

/* dns-persist-01 (draft-ietf-acme-dns-persist-02): the challenge names the
 * issuer domain names (issuerDomainNames), the directory the prefix of the
 * hashed account URI (accountHashPrefix); the persistent record
 * _validation-persist.NAME "ISSUER; accounturi=HASHED-URI[; policy=wildcard]
 * [; persistUntil=T]" must be served by every authoritative server before
 * the challenge is answered. It is never removed. A wildcard's
 * authorization names the base domain, where its record is. */
static void persist_check(struct order_authz *a, json_t *authz, json_t *chal, const char *curl,
                          const char *cst)
{
    struct acme_order *o = a->o;
    const json_t *meta = acme_client_dir_meta(o->c);
    const char *issuer = NULL;
    const char *url = acme_client_account_url(o->c);
    const char *tp = acme_client_thumbprint(o->c);
    const char *prefix = json_string_value(json_object_get(meta, "accountHashPrefix"));
    bool wild = json_is_true(json_object_get(authz, "wildcard"));
    char *why = NULL;
    int rc;

    if (acme_dns_persist_issuer(chal, meta, &issuer, &why) != 0) {
        acme_order_fail(o, ERR_PARSE, "name=%s: dns-persist-01: %s", a->ident, why);
        free(why);
        return;
    }
    if (prefix == NULL || url == NULL || tp == NULL) {
        acme_order_fail(o, ERR_PARSE,
                        "name=%s: dns-persist-01: the CA's directory has no accountHashPrefix "
                        "(draft-ietf-acme-dns-persist-02 section 4.1)",
                        a->ident);
        return;
    }
    char *auri = acme_dns_persist_account_uri(prefix, a->ident, tp, url);
    if (auri == NULL) {
        acme_order_fail(o, ERR_PARSE, "name=%s: dns-persist-01: cannot compute the account URI",
                        a->ident);
        return;
    }
    free(a->chal_url);
    a->chal_url = xstrdup(curl);
    free(a->keyauth);
    a->keyauth = acme_dns_persist_value(issuer, auri, wild, o->persist_until);
    free(auri);
    free(a->dns_ident);
    a->dns_ident = xasprintf("_validation-persist.%s", a->ident);
    if (o->chal.persist_check_start == NULL) {
        acme_order_fail(o, ERR_UNSUPPORTED, "name=%s: no dns solver for dns-persist-01", a->ident);
        return;
    }
    if (cst != NULL && strcmp(cst, "pending") != 0) {
        a->delay_ms = POLL_FIRST_MS;
        authz_schedule(a, NULL);
        return;
    }
    a->state = AZ_PRESENT;
    rc = o->chal.persist_check_start(o->chal.ctx, a->dns_ident, a->keyauth, persist_checked, a,
                                     &a->dns_handle);
    if (rc < 0) {
        a->dns_handle = NULL;
        acme_order_fail(o, rc, "name=%s: dns-persist-01: cannot start: %s", a->ident, err_str(rc));
    }
}

static void dns_presented(int status, const char *detail, void *arg)
{
    struct order_authz *a = arg;
    struct acme_order *o = a->o;
    int rc;

    a->dns_handle = NULL;
    if (status != 0) {
        acme_order_fail(o, status, "name=%s: %s: %s", a->ident, config_challenge_name(o->kind),
                        detail != NULL ? detail : err_str(status));
        return;
    }
    log_debug(LOG_ACME, "order cert=%s name=%s: %s in place", o->name, a->ident,
              o->kind == CFG_CHAL_TLSALPN01 ? "tls-alpn-01 certificate" : "TXT record");
    a->state = AZ_RESPOND;
    rc = acme_order_post(o, &a->req, a->chal_url, FROM_CHAL, "{}", "challenge", chal_response, a);
    if (rc < 0)
        acme_order_fail(o, rc, "name=%s: cannot respond to the challenge: %s", a->ident,
                        err_str(rc));
}

/* dns-01: the provider puts the TXT record in place and waits until every
 * authoritative server serves it; only then is the challenge answered.
 * tls-alpn-01 (RFC 8737) goes the same way: the provider builds the
 * challenge certificate off the loop and serves it, then it is answered. */
static void dns_present(struct order_authz *a, json_t *authz, const char *token, const char *curl,
                        const char *cst)
{
    struct acme_order *o = a->o;
    int rc;

    free(a->keyauth);
    a->keyauth = acme_key_authorization(token, acme_client_thumbprint(o->c));
    free(a->chal_url);
    a->chal_url = xstrdup(curl);
    free(a->dns_ident);
    /* a wildcard's authorization names the base domain (RFC 8555 §7.1.4) */
    a->dns_ident = json_is_true(json_object_get(authz, "wildcard")) ? xasprintf("*.%s", a->ident)
                                                                    : xstrdup(a->ident);
    if (o->kind == CFG_CHAL_DNSACCOUNT01) {
        /* draft-ietf-acme-dns-account-label-03: the record is at
         * _LABEL._acme-challenge.NAME (the base name for a wildcard), the
         * value as dns-01's; the solvers take the full record name */
        const char *url = acme_client_account_url(o->c);
        char *label = url != NULL ? acme_dns_account_label(url) : NULL;
        free(a->dns_ident);
        a->dns_ident = label != NULL ? xasprintf("%s._acme-challenge.%s", label, a->ident) : NULL;
        free(label);
        if (a->dns_ident == NULL) {
            acme_order_fail(o, ERR_CRYPTO, "name=%s: dns-account-01: no account label", a->ident);
            return;
        }
    }
    int (*start)(void *, const char *, const char *, acme_chal_done_cb, void *, void **) =
        o->kind == CFG_CHAL_TLSALPN01 ? o->chal.tls_present_start : o->chal.dns_present_start;
    if (start == NULL) {
        free(a->dns_ident);
        a->dns_ident = NULL;
        acme_order_fail(o, ERR_UNSUPPORTED,
                        o->kind == CFG_CHAL_TLSALPN01
                            ? "name=%s: no tls-alpn-01 responder ([tlsalpn01] listen is empty)"
                            : "name=%s: no dns-01 solver",
                        a->ident);
        return;
    }
    a->state = AZ_PRESENT;
    rc = start(o->chal.ctx, a->dns_ident, a->keyauth, dns_presented, a, &a->dns_handle);
    if (rc < 0) {
        a->dns_handle = NULL;
        acme_order_fail(o, rc, "name=%s: %s: cannot start: %s", a->ident,
                        config_challenge_name(o->kind), err_str(rc));
        return;
    }
    if (cst != NULL && strcmp(cst, "pending") != 0) {
        /* already answered (a resumed order): the record is back in place,
         * now wait for the result */
        a->delay_ms = POLL_FIRST_MS;
    }
}

void acme_authz_fetch(struct order_authz *a)
{
    struct acme_order *o = a->o;
    int rc;

    if (a->state == AZ_WAIT)
        a->state = AZ_POLL;
    rc = acme_order_post(o, &a->req, a->url, "the order's authorizations", NULL, "authz",
                         authz_response, a);
    if (rc < 0)
        acme_order_fail(o, rc, "name=%s: authorization %s: %s", a->ident ? a->ident : "?", a->url,
                        err_str(rc));
}

static void authz_check_all(struct acme_order *o)
{
    if (o->state == ORD_AUTHZ && o->az_done == o->n_az)
        acme_order_finalize(o);
}

void acme_authz_start(struct acme_order *o, json_t *obj)
{
    json_t *list = json_object_get(obj, "authorizations");
    size_t n = json_array_size(list);

    o->state = ORD_AUTHZ;
    o->deadline_ms = uv_now(o->loop) + (uint64_t)o->authz_timeout_s * 1000;
    if (o->az == NULL) {
        if (n == 0) {
            acme_order_fail(o, ERR_PARSE, "order %s: no authorizations", o->order_url);
            return;
        }
        o->az = xcalloc(n, sizeof(*o->az));
        for (size_t i = 0; i < n; i++) {
            struct order_authz *a = &o->az[i];
            const char *u = json_string_value(json_array_get(list, i));
            a->o = o;
            a->url = xstrdup(u != NULL ? u : "");
            a->state = AZ_FETCH;
            a->delay_ms = POLL_FIRST_MS;
            uv_timer_init(o->loop, &a->timer);
            a->timer.data = a;
            o->refs++;
        }
        o->n_az = n;
    }
    /* Fetch all at once: one CA, many requests in flight. */
    for (size_t i = 0; i < o->n_az && o->state == ORD_AUTHZ; i++)
        acme_authz_fetch(&o->az[i]);
}
