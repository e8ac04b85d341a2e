/* The ACME client of one CA on the reactor: the nonce pool, the request
 * slots and JWS-signed requests with automatic badNonce retries, queued
 * until the account is ready; the setup before it (directory, account) is
 * client_setup.c. It knows nothing of orders or challenges; the order
 * machine (order.c) is built on acme_request_start. */
#include "acme/acme.h"
#include "acme/client_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

/* REQ_WAIT_SLOT: queued behind [ca.NAME] max_parallel_requests. */
enum req_state { REQ_WAIT_ACCOUNT, REQ_WAIT_SLOT, REQ_WAIT_NONCE, REQ_SENT };

struct acme_request {
    struct acme_client *c;                             /* borrowed */
    struct acme_request *prev, *next;                  /* in c->reqs */
    char *url, *resource, *payload, *accept, *subject; /* owned */
    size_t max_body;
    bool use_jwk;      /* account setup: sign with the JWK instead of the kid */
    bool add_profile;  /* newOrder: add the CA's profile to the payload when sending */
    bool acct_retried; /* already re-sent after an account reset */
    char *signed_kid;  /* owned: the kid of the last send (NULL: the JWK) */
    int retries;
    bool has_slot;     /* counts in c->inflight */
    uint64_t slot_seq; /* FIFO order while REQ_WAIT_SLOT */
    enum req_state state;
    struct http_req *http; /* child in flight, or NULL */
    acme_response_cb cb;
    void *arg;
};

static int req_send(struct acme_request *r);
static void req_resend(struct acme_request *r);

/* ---- nonces ---- */

void acme_client_nonce_push(struct acme_client *c, const char *n)
{
    if (n == NULL || *n == '\0')
        return;
    if (c->n_nonces == NONCE_POOL) {
        free(c->nonces[0]);
        memmove(c->nonces, c->nonces + 1, (NONCE_POOL - 1) * sizeof(c->nonces[0]));
        c->n_nonces--;
    }
    c->nonces[c->n_nonces++] = xstrdup(n);
}

static char *nonce_pop(struct acme_client *c)
{
    if (c->n_nonces == 0)
        return NULL;
    return c->nonces[--c->n_nonces];
}

/* ---- client ---- */

int acme_client_new(const struct acme_client_opts *o, struct acme_client **out)
{
    struct acme_client *c = xcalloc(1, sizeof(*c));

    c->loop = o->loop;
    c->http = o->http;
    c->cfg = config_ref(o->cfg);
    c->ca = o->ca;
    c->store = o->store;
    c->acct = ACCT_NONE;
    if (c->ca->max_parallel_requests > 0) {
        uv_timer_init(c->loop, &c->slot_timer);
        c->slot_timer.data = c;
        c->slot_timer_open = true;
    }
    *out = c;
    return 0;
}

static void slot_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void acme_client_free(struct acme_client *c)
{
    for (size_t i = 0; i < c->n_nonces; i++)
        free(c->nonces[i]);
    json_decref(c->dir);
    free(c->profile);
    acme_key_free(c->key);
    free(c->kid);
    free(c->thumb);
    config_unref(c->cfg);
    if (c->slot_timer_open)
        uv_close((uv_handle_t *)&c->slot_timer, slot_timer_closed); /* frees c */
    else
        free(c);
}

static void req_unlink(struct acme_request *r)
{
    struct acme_client *c = r->c;

    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void req_free(struct acme_request *r)
{
    free(r->url);
    free(r->resource);
    free(r->payload);
    free(r->accept);
    free(r->subject);
    free(r->signed_kid);
    free(r);
}

void acme_client_close(struct acme_client *c)
{
    if (c == NULL)
        return;
    c->closing = true;
    if (c->dir_req != NULL) {
        http_req_cancel(c->dir_req);
        c->dir_req = NULL;
    }
    while (c->reqs != NULL) {
        struct acme_request *r = c->reqs;
        req_unlink(r);
        if (r->http != NULL)
            http_req_cancel(r->http);
        req_free(r);
    }
    if (c->jobs == 0)
        acme_client_free(c);
}

uv_loop_t *acme_client_loop(const struct acme_client *c)
{
    return c->loop;
}

const struct cfg_ca *acme_client_ca(const struct acme_client *c)
{
    return c->ca;
}

const char *acme_client_thumbprint(const struct acme_client *c)
{
    return c->acct == ACCT_READY ? c->thumb : NULL;
}

const char *acme_client_account_url(const struct acme_client *c)
{
    return c->acct == ACCT_READY ? c->kid : NULL;
}

const char *acme_client_profile(const struct acme_client *c)
{
    return c->profile;
}

const char *acme_client_dir_url(const struct acme_client *c, const char *resource)
{
    if (c->dir == NULL)
        return NULL;
    return json_string_value(json_object_get(c->dir, resource));
}

const json_t *acme_client_dir_meta(const struct acme_client *c)
{
    const json_t *m = c->dir != NULL ? json_object_get(c->dir, "meta") : NULL;
    return json_is_object(m) ? m : NULL;
}

/* ---- dns-persist-01 issuer (draft-ietf-acme-dns-persist-02 §3) ---- */

/* 1 to 10 strings, each 1 to 253 octets */
static bool persist_names_ok(const json_t *a)
{
    size_t i;
    json_t *v;

    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > 10)
        return false;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 253)
            return false;
    }
    return true;
}

int acme_dns_persist_issuer(const json_t *chal, const json_t *meta, const char **issuer, char **why)
{
    const json_t *c = json_object_get(chal, "issuerDomainNames");
    const json_t *d = json_object_get(meta, "issuerDomainNames");
    size_t i, j;
    json_t *v, *w;

    *issuer = NULL;
    *why = NULL;
    if (!persist_names_ok(c)) {
        *why = xstrdup("the challenge's issuerDomainNames is not 1 to 10 names (draft-ietf-acme-"
                       "dns-persist-02 section 3.1: malformed)");
        return ERR_PARSE;
    }
    if (!persist_names_ok(d)) {
        *issuer = json_string_value(json_array_get(c, 0));
        return 0;
    }
    json_array_foreach(d, i, v)
    {
        bool found = false;
        json_array_foreach(c, j, w)
        {
            if (strcmp(json_string_value(v), json_string_value(w)) == 0)
                found = true;
        }
        if (!found) {
            char masked[128];
            log_mask(masked, sizeof(masked), json_string_value(v), json_string_length(v));
            *why = xasprintf("the directory's issuer domain name %s is missing from the "
                             "challenge's issuerDomainNames (draft-ietf-acme-dns-persist-02 "
                             "section 3.2: malformed)",
                             masked);
            return ERR_PARSE;
        }
    }
    *issuer = json_string_value(json_array_get(d, 0));
    return 0;
}

/* ---- profiles (draft-ietf-acme-profiles-00) ---- */

int acme_profile_choose(const json_t *dir, const char *want, bool fallback, const char **use,
                        char **why)
{
    const json_t *profiles = json_object_get(json_object_get(dir, "meta"), "profiles");
    struct buf b = BUF_INIT(4096);
    const char *name;
    json_t *v;
    size_t len;

    *use = NULL;
    *why = NULL;
    if (want == NULL)
        return 0;
    if (json_is_object(profiles) && json_object_get(profiles, want) != NULL) {
        *use = want;
        return 0;
    }
    json_object_foreach((json_t *)profiles, name, v)
    {
        char masked[128];
        (void)v;
        log_mask(masked, sizeof(masked), name, strlen(name));
        (void)buf_printf(&b, "%s%s", b.len > 0 ? ", " : "", masked);
    }
    if (b.len == 0)
        (void)buf_printf(&b, "none");
    char *offers = buf_steal(&b, &len);
    if (fallback) {
        *why = xasprintf("profile \"%s\" is not offered by the CA (it offers: %s): "
                         "profile_fallback = true, ordering without a profile",
                         want, offers);
        free(offers);
        return 0;
    }
    *why = xasprintf("profile \"%s\" is not offered by the CA (it offers: %s); choose one of "
                     "those or set profile_fallback = true",
                     want, offers);
    free(offers);
    return ERR_UNSUPPORTED;
}

/* ---- requests ---- */

/* Request slots: with [ca.NAME] max_parallel_requests = N, at most N
 * requests are in flight to the CA at once (a nonce fetch and the POST it
 * feeds count as one); the others wait in FIFO order. 0: no limit. */
static bool slot_take(struct acme_request *r)
{
    struct acme_client *c = r->c;
    unsigned max = c->ca->max_parallel_requests;

    if (r->has_slot)
        return true;
    if (max == 0 || c->inflight < max) {
        c->inflight++;
        r->has_slot = true;
        return true;
    }
    r->state = REQ_WAIT_SLOT;
    r->slot_seq = ++c->slot_seq;
    return false;
}

/* Sends the oldest waiting requests while slots are free. Runs from the
 * loop (never inside a request's callback chain): a send that fails ends
 * its request, whose callback may start, cancel or close anything, so the
 * scan restarts after each. */
static void slot_kick(uv_timer_t *t)
{
    struct acme_client *c = t->data;
    unsigned max = c->ca->max_parallel_requests;

    while (!c->closing && c->inflight < max) {
        struct acme_request *next = NULL;
        for (struct acme_request *r = c->reqs; r != NULL; r = r->next)
            if (r->state == REQ_WAIT_SLOT && (next == NULL || r->slot_seq < next->slot_seq))
                next = r;
        if (next == NULL)
            break;
        next->state = REQ_WAIT_NONCE;
        req_resend(next);
    }
}

static void slot_release(struct acme_request *r)
{
    struct acme_client *c = r->c;

    if (!r->has_slot)
        return;
    r->has_slot = false;
    c->inflight--;
    if (c->slot_timer_open && !c->closing)
        uv_timer_start(&c->slot_timer, slot_kick, 0, 0);
}

/* Ends a request: unlinks it and calls back (the callback may start new
 * requests or close the client; r is gone before it runs). */
static void req_finish(struct acme_request *r, int status, struct acme_response *resp)
{
    acme_response_cb cb = r->cb;
    void *arg = r->arg;
    struct acme_response empty = {0};

    slot_release(r);
    req_unlink(r);
    req_free(r);
    if (resp == NULL)
        resp = &empty;
    if (status != 0 && resp->error == NULL)
        resp->error = err_str(status);
    if (cb != NULL)
        cb(status, resp, arg);
}

static bool is_json_type(const char *ct)
{
    return ct != NULL && strstr(ct, "json") != NULL;
}

static void req_response(int status, const struct http_response *hr, void *arg)
{
    struct acme_request *r = arg;
    struct acme_client *c = r->c;
    struct acme_response resp = {0};
    struct acme_problem prob = {0};
    bool have_prob = false;
    char *msg = NULL;
    int rc;

    r->http = NULL;
    /* The answer is in: the slot goes to the next waiting request (a retry
     * of this one queues again). */
    slot_release(r);
    if (status != 0) {
        char *m = xasprintf("%s: %s", r->url, hr->error);
        log_debug(LOG_ACME, "%s: POST %s: %s", r->subject, r->url, err_str(status));
        resp.error = m;
        req_finish(r, status, &resp);
        free(m);
        return;
    }
    acme_client_nonce_push(c, hr->replay_nonce);
    resp.http_status = hr->status;
    resp.body = hr->body.data != NULL ? hr->body.data : "";
    resp.body_len = hr->body.len;
    resp.location = hr->location;
    resp.retry_after = hr->retry_after;
    resp.links = hr->links;
    resp.n_links = hr->n_links;
    if (is_json_type(hr->content_type) && resp.body_len > 0)
        resp.json = json_loadb(resp.body, resp.body_len, 0, NULL);
    log_debug(LOG_ACME, "%s: POST %s: HTTP %ld (%zu bytes)", r->subject, r->url, hr->status,
              resp.body_len);

    if (hr->status >= 200 && hr->status < 300) {
        req_finish(r, 0, &resp);
        json_decref(resp.json);
        return;
    }
    if (hr->content_type != NULL && strstr(hr->content_type, "problem+json") != NULL &&
        acme_problem_parse(resp.body, resp.body_len, &prob) == 0)
        have_prob = true;
    if (have_prob && acme_problem_is(&prob, "badNonce") && r->retries < ACME_BADNONCE_RETRIES) {
        /* RFC 8555 §6.5: the error response carries a fresh nonce (pushed
         * above); retry the same request with it. */
        r->retries++;
        log_debug(LOG_ACME, "%s: POST %s: badNonce, retry %d", r->subject, r->url, r->retries);
        acme_problem_fini(&prob);
        json_decref(resp.json);
        req_resend(r);
        return;
    }
    if (have_prob && !r->use_jwk && c->acct == ACCT_READY && r->signed_kid != NULL &&
        c->kid != NULL && strcmp(r->signed_kid, c->kid) != 0 &&
        acme_problem_is(&prob, "accountDoesNotExist")) {
        /* sent under the account URL the CA forgot, answered after the
         * account was set up again: send it once more, with the new kid */
        log_debug(LOG_ACME, "%s: POST %s: sent before the account was set up again: resent",
                  r->subject, r->url);
        acme_problem_fini(&prob);
        json_decref(resp.json);
        r->acct_retried = true;
        req_resend(r);
        return;
    }
    if (have_prob && !r->use_jwk && !r->acct_retried &&
        (acme_problem_is(&prob, "accountDoesNotExist") ||
         (hr->status == 401 && acme_problem_is(&prob, "unauthorized") && c->acct == ACCT_READY))) {
        /* The CA forgot our account (a test CA restarted, or it was
         * deactivated elsewhere): set the account up again, looking the key
         * up first, and send this request once more behind it. */
        log_warn(LOG_ACME, "acme ca=%s: account %s unknown to the CA: setting it up again",
                 c->ca->name, c->kid != NULL ? c->kid : "?");
        acme_problem_fini(&prob);
        json_decref(resp.json);
        r->acct_retried = true;
        r->state = REQ_WAIT_ACCOUNT;
        if (c->acct == ACCT_READY) {
            free(c->kid);
            c->kid = NULL;
            c->kid_stale = true;
            c->acct = ACCT_NONE;
        }
        if (c->acct == ACCT_NONE) {
            int rc2 = acme_client_setup_start(c);
            if (rc2 < 0) {
                struct acme_response fr = {.error = "account setup could not start"};
                req_finish(r, rc2, &fr);
            }
        }
        return;
    }
    if (have_prob) {
        char *ps = acme_problem_str(&prob);
        resp.problem = &prob;
        msg = xasprintf("%s", ps);
        free(ps);
        if (acme_problem_is(&prob, "badNonce"))
            rc = ERR_BAD_NONCE;
        else if (acme_problem_is(&prob, "rateLimited"))
            rc = ERR_RATE_LIMITED;
        else
            rc = ERR_ACME;
    } else {
        char masked[200];
        log_mask(masked, sizeof(masked), resp.body, resp.body_len);
        msg = xasprintf("HTTP %ld from %s: %s", hr->status, r->url, masked);
        rc = ERR_HTTP_STATUS;
    }
    resp.error = msg;
    req_finish(r, rc, &resp);
    free(msg);
    if (have_prob)
        acme_problem_fini(&prob);
    json_decref(resp.json);
}

/* Signs and posts r with nonce (consumed). < 0 when nothing was sent. */
static int req_post(struct acme_request *r, char *nonce)
{
    struct acme_client *c = r->c;
    char *body = NULL;
    struct http_header hdrs[2];
    size_t nh = 0;
    int rc;

    if (r->add_profile && c->profile != NULL && r->payload != NULL) {
        /* draft-ietf-acme-profiles-00 §4: the profile goes into newOrder;
         * it is only known once the directory has been read. */
        json_t *p = json_loads(r->payload, 0, NULL);
        if (json_is_object(p)) {
            json_object_set_new(p, "profile", json_string(c->profile));
            free(r->payload);
            r->payload = json_dumps(p, JSON_COMPACT);
        }
        json_decref(p);
        r->add_profile = false;
    }
    if (!r->use_jwk && c->acct != ACCT_READY) {
        /* The account is being set up again (the CA forgot it): a request
         * that waited for a slot or a nonce meanwhile has no kid to sign
         * with; signed with the JWK, a CA answers malformed (Pebble: "Key
         * ID (kid) in JWS header missing expected URL prefix"). It waits
         * for the account as a new request does; account_ready sends it. */
        acme_client_nonce_push(c, nonce);
        free(nonce);
        slot_release(r);
        r->state = REQ_WAIT_ACCOUNT;
        return c->acct == ACCT_NONE ? acme_client_setup_start(c) : 0;
    }
    free(r->signed_kid);
    r->signed_kid = r->use_jwk ? NULL : xstrdup(c->kid);
    rc = acme_jws_sign(c->key, r->use_jwk ? NULL : c->kid, nonce, r->url, r->payload, &body);
    free(nonce);
    if (rc < 0) {
        log_error(LOG_ACME, "%s: JWS for %s: %s", r->subject, r->url, err_str(rc));
        return rc;
    }
    hdrs[nh++] = (struct http_header){"Content-Type", "application/jose+json"};
    if (r->accept != NULL)
        hdrs[nh++] = (struct http_header){"Accept", r->accept};
    struct http_request_opts ho = {
        .method = "POST",
        .url = r->url,
        .headers = hdrs,
        .n_headers = nh,
        .body = body,
        .body_len = strlen(body),
        .trust_file = c->ca->trust,
        .max_body = r->max_body,
    };
    r->state = REQ_SENT;
    rc = http_req_start(c->http, &ho, req_response, r, &r->http);
    free(body);
    if (rc < 0)
        r->http = NULL;
    return rc;
}

static void nonce_response(int status, const struct http_response *hr, void *arg)
{
    struct acme_request *r = arg;
    struct acme_client *c = r->c;

    r->http = NULL;
    if (status != 0 || hr->replay_nonce == NULL) {
        struct acme_response resp = {0};
        char *m =
            xasprintf("newNonce: %s", status != 0 ? hr->error : "no Replay-Nonce in the response");
        log_debug(LOG_ACME, "%s: %s", r->subject, m);
        resp.error = m;
        req_finish(r, status != 0 ? status : ERR_PARSE, &resp);
        free(m);
        return;
    }
    acme_client_nonce_push(c, hr->replay_nonce);
    req_resend(r);
}

/* Sends r: with a pooled nonce at once, else after a HEAD newNonce (RFC
 * 8555 §7.2). < 0 when nothing was sent (r untouched otherwise). */
static int req_send(struct acme_request *r)
{
    struct acme_client *c = r->c;
    char *nonce;
    int rc;

    if (r->url == NULL) {
        const char *u = acme_client_dir_url(c, r->resource);
        if (u == NULL) {
            log_error(LOG_ACME, "%s: the directory has no %s", r->subject, r->resource);
            return ERR_UNSUPPORTED;
        }
        r->url = xstrdup(u);
    }
    if (!slot_take(r))
        return 0; /* queued: slot_kick sends it */
    nonce = nonce_pop(c);
    if (nonce != NULL)
        return req_post(r, nonce);
    const char *nn = acme_client_dir_url(c, "newNonce");
    if (nn == NULL)
        return ERR_UNSUPPORTED;
    struct http_request_opts ho = {
        .method = "HEAD",
        .url = nn,
        .trust_file = c->ca->trust,
    };
    r->state = REQ_WAIT_NONCE;
    rc = http_req_start(c->http, &ho, nonce_response, r, &r->http);
    if (rc < 0)
        r->http = NULL;
    return rc;
}

/* req_send from a callback: a failure ends the request. */
static void req_resend(struct acme_request *r)
{
    int rc = req_send(r);

    if (rc < 0) {
        char *m =
            xasprintf("%s: cannot send: %s", r->url != NULL ? r->url : r->resource, err_str(rc));
        struct acme_response resp = {.error = m};
        req_finish(r, rc, &resp);
        free(m);
    }
}

static struct acme_request *req_new(struct acme_client *c, const struct acme_request_opts *o,
                                    acme_response_cb cb, void *arg)
{
    struct acme_request *r = xcalloc(1, sizeof(*r));

    r->c = c;
    r->url = o->url != NULL ? xstrdup(o->url) : NULL;
    r->resource = o->resource != NULL ? xstrdup(o->resource) : NULL;
    r->payload = o->payload != NULL ? xstrdup(o->payload) : NULL;
    r->accept = o->accept != NULL ? xstrdup(o->accept) : NULL;
    r->subject = xasprintf("acme ca=%s%s%s", c->ca->name, o->subject != NULL ? " " : "",
                           o->subject != NULL ? o->subject : "");
    r->max_body = o->max_body;
    r->add_profile = o->add_profile;
    r->cb = cb;
    r->arg = arg;
    r->next = c->reqs;
    if (c->reqs != NULL)
        c->reqs->prev = r;
    c->reqs = r;
    return r;
}

int acme_request_start(struct acme_client *c, const struct acme_request_opts *o,
                       acme_response_cb cb, void *arg, struct acme_request **out)
{
    struct acme_request *r;
    int rc;

    if (c->closing || (o->url == NULL && o->resource == NULL))
        return -EINVAL;
    if (o->url != NULL) {
        char *why = NULL;
        rc = acme_url_check(c->ca->directory, c->ca->allow_other_hosts, o->url, o->url_from, &why);
        if (rc < 0) {
            log_error(LOG_ACME, "acme ca=%s%s%s: %s", c->ca->name, o->subject != NULL ? " " : "",
                      o->subject != NULL ? o->subject : "", why);
            free(why);
            return rc;
        }
    }
    r = req_new(c, o, cb, arg);
    r->state = REQ_WAIT_ACCOUNT;
    if (c->acct == ACCT_NONE) {
        rc = acme_client_setup_start(c);
        if (rc < 0) {
            req_unlink(r);
            req_free(r);
            return rc;
        }
    }
    if (c->acct == ACCT_READY) {
        rc = req_send(r);
        if (rc < 0) {
            req_unlink(r);
            req_free(r);
            return rc;
        }
    }
    if (out != NULL)
        *out = r;
    return 0;
}

void acme_request_cancel(struct acme_request *r)
{
    if (r == NULL)
        return;
    slot_release(r);
    if (r->http != NULL)
        http_req_cancel(r->http);
    r->http = NULL;
    req_unlink(r);
    req_free(r);
}

/* ---- the account setup's side of the queue (client_setup.c) ---- */

void acme_client_send_waiting(struct acme_client *c)
{
    /* Sends everything that queued behind the setup. A request's failure
     * callback may cancel others, so restart the scan after each send. */
    bool again = true;
    while (again && !c->closing) {
        again = false;
        for (struct acme_request *r = c->reqs; r != NULL; r = r->next) {
            if (r->state == REQ_WAIT_ACCOUNT && !r->use_jwk) {
                r->state = REQ_WAIT_NONCE;
                req_resend(r);
                again = true;
                break;
            }
        }
    }
}

void acme_client_fail_waiting(struct acme_client *c, int rc, const char *msg)
{
    struct acme_request *failed = NULL;

    /* Detach the waiting requests first: their callbacks may start new
     * requests, which then begin a fresh setup. */
    for (struct acme_request *r = c->reqs, *nx; r != NULL; r = nx) {
        nx = r->next;
        if (r->state == REQ_WAIT_ACCOUNT) {
            req_unlink(r);
            r->next = failed;
            failed = r;
        }
    }
    while (failed != NULL) {
        struct acme_request *r = failed;
        acme_response_cb cb = r->cb;
        void *arg = r->arg;
        struct acme_response resp = {.error = msg};

        failed = r->next;
        req_free(r);
        if (cb != NULL)
            cb(rc, &resp, arg);
    }
}

void acme_client_post_jwk(struct acme_client *c, const struct acme_request_opts *o,
                          acme_response_cb cb, void *arg)
{
    struct acme_request *r = req_new(c, o, cb, arg);

    r->use_jwk = true;
    r->state = REQ_WAIT_NONCE;
    req_resend(r);
}
