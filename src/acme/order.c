/* The order state machine of RFC 8555 §7.4 for one certificate: newOrder (or
 * resume from STATE/orders/NAME.json), authorizations through http-01,
 * finalize, polling and the certificate download with alternate chains. It
 * proves control through the challenge provider the caller passes in and
 * knows nothing of the listener, the store's certificate layout or deploys.
 * Authorizations and their challenges are order_authz.c's. */
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

/* Replaces the kept problem document with p (owned, may be NULL). */
void acme_order_keep_problem(struct acme_order *o, struct acme_problem *p)
{
    acme_problem_free(o->problem);
    o->problem = p;
}

static void order_new(struct acme_order *o);
static void order_dispatch(struct acme_order *o, json_t *obj);

/* ---- lifetime ---- */

static void order_unref(struct acme_order *o)
{
    if (--o->refs > 0)
        return;
    for (size_t i = 0; i < o->n_az; i++) {
        free(o->az[i].url);
        free(o->az[i].ident);
        free(o->az[i].token);
        free(o->az[i].chal_url);
        free(o->az[i].dns_ident);
        free(o->az[i].keyauth);
    }
    free(o->az);
    for (size_t i = 0; i < o->n_domains; i++)
        free(o->domains[i]);
    free(o->domains);
    for (size_t i = 0; i < o->n_chains; i++) {
        acme_chain_fini(&o->chains[i]);
        free(o->chain_pems[i]);
    }
    free(o->chains);
    free(o->chain_pems);
    for (size_t i = 0; i < o->n_alt; i++)
        free(o->alt_urls[i]);
    free(o->alt_urls);
    EVP_PKEY_free(o->key);
    free(o->name);
    free(o->ca_name);
    free(o->failed_ident);
    acme_order_keep_problem(o, NULL);
    free(o->directory);
    free(o->preferred_chain);
    free(o->replaces);
    free(o->profile);
    if (o->key_pem != NULL)
        OPENSSL_cleanse(o->key_pem, strlen(o->key_pem));
    free(o->key_pem);
    free(o->order_url);
    free(o->finalize_url);
    free(o->cert_url);
    free(o);
}

static void timer_closed(uv_handle_t *h)
{
    order_unref(h->data);
}

static void authz_timer_closed(uv_handle_t *h)
{
    struct order_authz *a = h->data;

    order_unref(a->o);
}

void acme_order_result_free(struct acme_order_result *r)
{
    if (r == NULL)
        return;
    free(r->cert_pem);
    free(r->chain_pem);
    free(r->fullchain_pem);
    acme_chain_fini(&r->chain);
    free(r->error);
    free(r->failed_identifier);
    acme_problem_free(r->problem);
    free(r->profile);
    if (r->key_pem != NULL)
        OPENSSL_cleanse(r->key_pem, strlen(r->key_pem));
    free(r->key_pem);
    free(r);
}

/* Removes what was provisioned for a: the http-01 token, or the dns-01
 * record (a provision still running is cancelled first; its record may have
 * been added already, so cleanup runs in any case). */
void acme_authz_release(struct order_authz *a)
{
    struct acme_order *o = a->o;

    if (a->token != NULL && o->chal.cleanup != NULL)
        o->chal.cleanup(o->chal.ctx, a->token);
    free(a->token);
    a->token = NULL;
    bool tls = o->kind == CFG_CHAL_TLSALPN01, persist = o->kind == CFG_CHAL_DNSPERSIST01;
    void (*cancel)(void *, void *) = tls       ? o->chal.tls_present_cancel
                                     : persist ? o->chal.persist_check_cancel
                                               : o->chal.dns_present_cancel;
    void (*cleanup)(void *, const char *, const char *) = tls       ? o->chal.tls_cleanup
                                                          : persist ? NULL
                                                                    : o->chal.dns_cleanup;
    if (a->dns_handle != NULL && cancel != NULL)
        cancel(o->chal.ctx, a->dns_handle);
    a->dns_handle = NULL;
    if (a->dns_ident != NULL && cleanup != NULL)
        cleanup(o->chal.ctx, a->dns_ident, a->keyauth);
    free(a->dns_ident);
    a->dns_ident = NULL;
}

/* The only way out: cancels children, removes challenge tokens, closes the
 * handles and calls back with res (ownership passes to the callee). */
static void order_end(struct acme_order *o, int status, struct acme_order_result *res)
{
    acme_order_cb cb = o->cb;

    if (o->state == ORD_ENDED) {
        acme_order_result_free(res);
        return;
    }
    o->state = ORD_ENDED;
    o->cb = NULL;
    if (o->req != NULL) {
        acme_request_cancel(o->req);
        o->req = NULL;
    }
    for (size_t i = 0; i < o->n_az; i++) {
        struct order_authz *a = &o->az[i];
        if (a->req != NULL) {
            acme_request_cancel(a->req);
            a->req = NULL;
        }
        acme_authz_release(a);
        uv_close((uv_handle_t *)&a->timer, authz_timer_closed);
    }
    uv_close((uv_handle_t *)&o->timer, timer_closed);
    if (cb != NULL)
        cb(status, res, o->arg);
    else
        acme_order_result_free(res);
}

void acme_order_fail(struct acme_order *o, int status, const char *fmt, ...)
{
    struct acme_order_result *res = xcalloc(1, sizeof(*res));
    struct buf b = BUF_INIT(8192);
    va_list ap;
    size_t len;

    va_start(ap, fmt);
    (void)buf_vprintf(&b, fmt, ap);
    va_end(ap);
    res->error = buf_steal(&b, &len);
    res->retry_after_s = o->retry_after_s;
    res->failed_identifier = o->failed_ident;
    o->failed_ident = NULL;
    res->problem = o->problem;
    o->problem = NULL;
    log_debug(LOG_ACME, "order cert=%s: failed: %s", o->name, res->error);
    order_end(o, status < 0 ? status : ERR_ACME, res);
}

void acme_order_cancel(struct acme_order *o)
{
    if (o == NULL)
        return;
    o->cb = NULL;
    order_end(o, -ECANCELED, NULL);
}

/* ---- helpers ---- */

/* One more request for this order; past the cap the order fails (never
 * while starting: the first request is far below it). */
static int count_request(struct acme_order *o)
{
    if (++o->n_requests <= o->requests_max || o->starting)
        return 0;
    acme_order_fail(
        o, ERR_TIMEOUT,
        "gave up after %u requests to the CA for this order (the CA keeps it pending or "
        "processing)",
        o->requests_max);
    return ERR_TIMEOUT;
}

/* A URL the CA handed out (from: where it came from) must pass
 * acme_url_check. Refused: the order fails naming the URL; while the order
 * is still starting (a resumed order's stored URL) only the log names it
 * and acme_order_start fails (STYLE §4: no callback from inside _start). */
static int url_ok(struct acme_order *o, const char *url, const char *from)
{
    const struct cfg_ca *ca = acme_client_ca(o->c);
    char *why = NULL;
    int rc = acme_url_check(ca->directory, ca->allow_other_hosts, url, from, &why);

    if (rc == 0)
        return count_request(o);
    if (o->starting)
        log_error(LOG_ACME, "order cert=%s: %s", o->name, why);
    else
        acme_order_fail(o, rc, "%s", why);
    free(why);
    return rc;
}

int acme_order_post(struct acme_order *o, struct acme_request **slot, const char *url,
                    const char *from, const char *payload, const char *subject, acme_response_cb cb,
                    void *arg)
{
    int rc = url_ok(o, url, from);

    if (rc < 0)
        return rc;
    char *subj = xasprintf("order cert=%s %s", o->name, subject);
    struct acme_request_opts ro = {
        .url = url,
        .url_from = from,
        .payload = payload,
        .subject = subj,
    };
    rc = acme_request_start(o->c, &ro, cb, arg, slot);

    free(subj);
    return rc;
}

/* The wait before the next poll: Retry-After when the CA sent one (within
 * [POLL_FLOOR_MS, POLL_RETRY_AFTER_MAX_S]), else the current interval,
 * which then grows by half up to POLL_MAX_MS. */
unsigned acme_order_next_delay(unsigned *delay_ms, const char *retry_after)
{
    int64_t ra = http_retry_after_parse(retry_after, (int64_t)time(NULL));
    unsigned d;

    if (ra >= 0) {
        if (ra > POLL_RETRY_AFTER_MAX_S)
            ra = POLL_RETRY_AFTER_MAX_S;
        return ra * 1000 < POLL_FLOOR_MS ? POLL_FLOOR_MS : (unsigned)ra * 1000;
    }
    d = *delay_ms;
    *delay_ms = d + d / 2 > POLL_MAX_MS ? POLL_MAX_MS : d + d / 2;
    return d;
}

/* A failing response's Retry-After (e.g. with rateLimited), kept for the
 * result so the owner waits at least that long before trying again, and
 * its problem document, for the owner's events. */
void acme_order_note_failure(struct acme_order *o, const struct acme_response *r)
{
    int64_t ra = http_retry_after_parse(r->retry_after, (int64_t)time(NULL));

    if (ra > 0)
        o->retry_after_s = ra;
    if (r->problem != NULL)
        acme_order_keep_problem(o, acme_problem_dup(r->problem));
}

const char *acme_order_jstr(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

char *acme_order_problem_of(json_t *err)
{
    struct acme_problem p = {0};
    char *s;

    if (err == NULL || acme_problem_from_json(err, &p) < 0)
        return xstrdup("no error detail from the CA");
    s = acme_problem_str(&p);
    acme_problem_fini(&p);
    return s;
}

/* ---- finalize, poll, download ---- */

static void order_poll_cb(uv_timer_t *t);

static void order_response(int status, const struct acme_response *r, void *arg)
{
    struct acme_order *o = arg;
    const char *step = o->state == ORD_FINALIZE ? "finalize" : "order";

    o->req = NULL;
    if (status != 0) {
        acme_order_note_failure(o, r);
        acme_order_fail(o, status, "%s: %s", step, r->error);
        return;
    }
    if (!json_is_object(r->json)) {
        acme_order_fail(o, ERR_PARSE, "%s: the response is not an order object", step);
        return;
    }
    if (o->state == ORD_PROCESSING || o->state == ORD_FINALIZE) {
        const char *st = acme_order_jstr(r->json, "status");
        if (st != NULL && strcmp(st, "processing") == 0) {
            unsigned d = acme_order_next_delay(&o->delay_ms, r->retry_after);
            if (!o->early_used && http_retry_after_parse(r->retry_after, (int64_t)time(NULL)) < 0) {
                /* no Retry-After: look once soon, then back off from the
                 * floor (the interval next_delay grew is kept) */
                o->early_used = true;
                o->delay_ms = d;
                d = POLL_EARLY_MS;
            }
            if (uv_now(o->loop) + d > o->deadline_ms) {
                acme_order_fail(o, ERR_TIMEOUT, "order still processing after %d s",
                                o->authz_timeout_s);
                return;
            }
            o->state = ORD_PROCESSING;
            uv_timer_start(&o->timer, order_poll_cb, d, 0);
            return;
        }
    }
    order_dispatch(o, r->json);
}

static void order_poll_cb(uv_timer_t *t)
{
    struct acme_order *o = t->data;
    int rc = acme_order_post(o, &o->req, o->order_url, "the newOrder Location", NULL, "poll",
                             order_response, o);

    if (rc < 0)
        acme_order_fail(o, rc, "order poll: %s", err_str(rc));
}

void acme_order_finalize(struct acme_order *o)
{
    char *csr = NULL;
    char *payload;
    int rc;

    o->state = ORD_FINALIZE;
    o->delay_ms = POLL_FIRST_MS;
    o->deadline_ms = uv_now(o->loop) + (uint64_t)o->authz_timeout_s * 1000;
    rc = acme_csr_build(o->key, (const char *const *)o->domains, o->n_domains, &csr);
    if (rc < 0) {
        acme_order_fail(o, rc, "finalize: cannot build the CSR: %s", err_str(rc));
        return;
    }
    json_t *p = json_pack("{s:s}", "csr", csr);
    payload = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    free(csr);
    rc = acme_order_post(o, &o->req, o->finalize_url, "the order's finalize", payload, "finalize",
                         order_response, o);
    free(payload);
    if (rc < 0)
        acme_order_fail(o, rc, "finalize: %s", err_str(rc));
}

static void download_next(struct acme_order *o);

static char *join_pems(char **pem, size_t from, size_t to)
{
    struct buf b = BUF_INIT(CHAIN_MAX * 2);
    size_t len;

    for (size_t i = from; i < to; i++) {
        size_t l = strlen(pem[i]);
        (void)buf_append(&b, pem[i], l);
        if (l > 0 && pem[i][l - 1] != '\n')
            (void)buf_append(&b, "\n", 1);
    }
    return buf_steal(&b, &len);
}

static void download_done(struct acme_order *o)
{
    size_t pick = 0;
    struct acme_order_result *res = xcalloc(1, sizeof(*res));

    if (o->preferred_chain != NULL) {
        for (size_t i = 0; i < o->n_chains; i++) {
            if (o->chains[i].issuer_cn != NULL &&
                strcmp(o->chains[i].issuer_cn, o->preferred_chain) == 0) {
                pick = i;
                break;
            }
        }
    }
    struct acme_chain *ch = &o->chains[pick];
    res->cert_pem = xstrdup(ch->pem[0]);
    res->chain_pem = join_pems(ch->pem, 1, ch->n);
    res->fullchain_pem = join_pems(ch->pem, 0, ch->n);
    res->chain = *ch;
    memset(ch, 0, sizeof(*ch));
    if (o->profile != NULL)
        res->profile = xstrdup(o->profile);
    else if (acme_client_profile(o->c) != NULL)
        res->profile = xstrdup(acme_client_profile(o->c));
    res->key_pem = o->key_pem; /* encoded once, for the order file (issue 16) */
    o->key_pem = NULL;
    log_debug(LOG_ACME, "order cert=%s: certificate downloaded (chain %zu of %zu, issuer %s)",
              o->name, pick + 1, o->n_chains, res->chain.issuer_cn ? res->chain.issuer_cn : "?");
    order_end(o, 0, res);
}

static void cert_response(int status, const struct acme_response *r, void *arg)
{
    struct acme_order *o = arg;
    struct acme_chain ch = {0};
    int rc;

    o->req = NULL;
    if (status != 0) {
        acme_order_note_failure(o, r);
        if (o->n_chains > 0) {
            /* An alternate failed: keep what we have. */
            log_warn(LOG_ACME, "order cert=%s: alternate chain: %s", o->name, r->error);
            acme_order_keep_problem(o, NULL);
            download_next(o);
            return;
        }
        acme_order_fail(o, status, "download %s: %s", o->cert_url, r->error);
        return;
    }
    rc = acme_chain_parse(r->body, r->body_len, &ch);
    if (rc < 0) {
        if (o->n_chains > 0) {
            log_warn(LOG_ACME, "order cert=%s: alternate chain unreadable", o->name);
            download_next(o);
            return;
        }
        acme_order_fail(o, rc, "download %s: not a PEM certificate chain", o->cert_url);
        return;
    }
    o->chains = xrealloc(o->chains, (o->n_chains + 1) * sizeof(*o->chains));
    o->chain_pems = xrealloc(o->chain_pems, (o->n_chains + 1) * sizeof(*o->chain_pems));
    o->chains[o->n_chains] = ch;
    o->chain_pems[o->n_chains] = xstrndup(r->body, r->body_len);
    o->n_chains++;
    if (o->n_chains == 1) {
        /* RFC 8555 §7.4.2: alternates come as Link: rel="alternate". */
        for (size_t i = 0; i < r->n_links && o->n_alt < MAX_ALTERNATES; i++) {
            char *u = http_link_url(r->links[i], "alternate");
            if (u == NULL)
                continue;
            o->alt_urls = xrealloc(o->alt_urls, (o->n_alt + 1) * sizeof(*o->alt_urls));
            o->alt_urls[o->n_alt++] = u;
        }
    }
    if (o->preferred_chain != NULL && ch.issuer_cn != NULL &&
        strcmp(ch.issuer_cn, o->preferred_chain) == 0) {
        download_done(o);
        return;
    }
    download_next(o);
}

static void download_next(struct acme_order *o)
{
    const char *url;
    int rc;

    if (o->n_chains == 0) {
        url = o->cert_url;
    } else if (o->preferred_chain != NULL && o->alt_next < o->n_alt) {
        url = o->alt_urls[o->alt_next++];
    } else {
        download_done(o);
        return;
    }
    const char *from = url == o->cert_url ? "the order's certificate" : "a Link rel=alternate";
    if (url_ok(o, url, from) < 0)
        return;
    char *subj = xasprintf("order cert=%s download", o->name);
    struct acme_request_opts ro = {
        .url = url,
        .url_from = from,
        .accept = "application/pem-certificate-chain",
        .max_body = CHAIN_MAX,
        .subject = subj,
    };
    rc = acme_request_start(o->c, &ro, cert_response, o, &o->req);
    free(subj);
    if (rc < 0)
        acme_order_fail(o, rc, "download %s: %s", url, err_str(rc));
}

/* Continues from an order object's status (RFC 8555 §7.1.6). */
static void order_dispatch(struct acme_order *o, json_t *obj)
{
    const char *st = acme_order_jstr(obj, "status");
    const char *fin = acme_order_jstr(obj, "finalize");

    const char *pf = acme_order_jstr(obj, "profile");

    if (fin != NULL && o->finalize_url == NULL)
        o->finalize_url = xstrdup(fin);
    if (pf != NULL) {
        free(o->profile);
        o->profile = xstrndup(pf, strnlen(pf, 128));
    }
    if (st == NULL) {
        acme_order_fail(o, ERR_PARSE, "order %s: no status", o->order_url);
        return;
    }
    log_debug(LOG_ACME, "order cert=%s: order %s is %s", o->name, o->order_url, st);
    if (strcmp(st, "pending") == 0) {
        if (o->state == ORD_AUTHZ) {
            acme_order_fail(o, ERR_CHALLENGE, "order still pending after its authorizations");
            return;
        }
        acme_authz_start(o, obj);
    } else if (strcmp(st, "ready") == 0) {
        if (o->finalize_url == NULL) {
            acme_order_fail(o, ERR_PARSE, "order %s: no finalize URL", o->order_url);
            return;
        }
        acme_order_finalize(o);
    } else if (strcmp(st, "processing") == 0) {
        o->state = ORD_PROCESSING;
        o->delay_ms = POLL_FIRST_MS;
        o->deadline_ms = uv_now(o->loop) + (uint64_t)o->authz_timeout_s * 1000;
        uv_timer_start(&o->timer, order_poll_cb, POLL_FIRST_MS, 0);
    } else if (strcmp(st, "valid") == 0) {
        const char *cu = acme_order_jstr(obj, "certificate");
        if (cu == NULL) {
            acme_order_fail(o, ERR_PARSE, "order %s: valid without a certificate URL",
                            o->order_url);
            return;
        }
        free(o->cert_url);
        o->cert_url = xstrdup(cu);
        o->state = ORD_DOWNLOAD;
        download_next(o);
    } else if (strcmp(st, "invalid") == 0) {
        if (o->state == ORD_RESUME) {
            log_info(LOG_ACME, "order cert=%s: stored order is invalid: starting a new one",
                     o->name);
            order_new(o);
            return;
        }
        char *p = acme_order_problem_of(json_object_get(obj, "error"));
        acme_order_fail(o, ERR_ACME, "order invalid: %s", p);
        free(p);
    } else {
        char *w = acme_status_word(st);
        acme_order_fail(o, ERR_PARSE, "order %s: unknown status %s", o->order_url, w);
        free(w);
    }
}

/* ---- newOrder and the order file ---- */

struct new_job {
    struct acme_order *o; /* ref held while the write runs */
    json_t *obj;          /* the order object, dispatched once written */
};

static void new_job_done(int status, const struct store_result *r, void *arg)
{
    struct new_job *j = arg;
    struct acme_order *o = j->o;

    (void)r;
    if (o->state == ORD_WRITE) {
        if (status < 0) {
            char *where = store_where(o->store, STORE_WHERE_ORDER, o->name);
            acme_order_fail(o, status, "writing %s: %s", where, err_str(status));
            free(where);
        } else {
            order_dispatch(o, j->obj);
        }
    }
    json_decref(j->obj);
    free(j);
    order_unref(o);
}

/* Stores the order in flight (URL, finalize, key, names) before any
 * challenge is answered, so a restart resumes with the same key. */
static void order_file_write(struct acme_order *o, json_t *obj)
{
    char *pem = NULL;
    size_t plen;
    int rc = acme_key_to_pem(o->key, &pem, &plen);

    if (rc < 0) {
        acme_order_fail(o, rc, "cannot encode the certificate key: %s", err_str(rc));
        return;
    }
    json_t *names = json_array();
    for (size_t i = 0; i < o->n_domains; i++)
        json_array_append_new(names, json_string(o->domains[i]));
    json_t *f = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s?, s:s}", "name", o->name, "ca",
                          o->ca_name, "directory", o->directory, "names", names, "key_type",
                          config_key_type_name(o->key_type), "order", o->order_url, "finalize",
                          o->finalize_url, "key", pem);
    (void)plen;
    if (o->key_pem != NULL)
        OPENSSL_cleanse(o->key_pem, strlen(o->key_pem));
    free(o->key_pem);
    o->key_pem = pem; /* the store's copy later: encoded once */
    struct new_job *j = xcalloc(1, sizeof(*j));
    j->o = o;
    j->obj = json_incref(obj);
    char *json = json_dumps(f, JSON_INDENT(2));
    json_decref(f);
    o->state = ORD_WRITE;
    rc = store_order_put_start(o->store, o->name, json, new_job_done, j);
    OPENSSL_cleanse(json, strlen(json));
    free(json);
    if (rc < 0) {
        json_decref(j->obj);
        free(j);
        acme_order_fail(o, rc, "cannot start the order file job: %s", err_str(rc));
        return;
    }
    o->refs++;
}

static void neworder_response(int status, const struct acme_response *r, void *arg)
{
    struct acme_order *o = arg;

    o->req = NULL;
    if (status != 0) {
        acme_order_note_failure(o, r);
        acme_order_fail(o, status, "newOrder: %s", r->error);
        return;
    }
    if (r->location == NULL || !json_is_object(r->json)) {
        acme_order_fail(o, ERR_PARSE, "newOrder: no order URL or object in the response");
        return;
    }
    free(o->order_url);
    o->order_url = xstrdup(r->location);
    free(o->finalize_url);
    o->finalize_url = NULL;
    const char *fin = acme_order_jstr(r->json, "finalize");
    if (fin != NULL)
        o->finalize_url = xstrdup(fin);
    log_debug(LOG_ACME, "order cert=%s: created %s", o->name, o->order_url);
    order_file_write(o, r->json);
}

/* Sends newOrder (RFC 8555 §7.4) with every name as a dns identifier, or an
 * ip identifier for an address literal (RFC 8738 §3); the
 * client adds the CA's profile once it has read the directory. */
static int order_new_send(struct acme_order *o)
{
    json_t *ids = json_array();
    char *payload, *subj;
    int rc;

    o->state = ORD_NEW;
    rc = count_request(o);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < o->n_domains; i++)
        json_array_append_new(ids, json_pack("{s:s, s:s}", "type",
                                             config_name_is_ip(o->domains[i]) ? "ip" : "dns",
                                             "value", o->domains[i]));
    json_t *p = json_pack("{s:o}", "identifiers", ids);
    if (o->replaces != NULL)
        json_object_set_new(p, "replaces", json_string(o->replaces));
    payload = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    subj = xasprintf("order cert=%s newOrder", o->name);
    struct acme_request_opts ro = {
        .resource = "newOrder", .payload = payload, .subject = subj, .add_profile = true};
    rc = acme_request_start(o->c, &ro, neworder_response, o, &o->req);
    free(subj);
    free(payload);
    return rc;
}

static void order_new(struct acme_order *o)
{
    int rc = order_new_send(o);

    if (rc < 0)
        acme_order_fail(o, rc, "newOrder: %s", err_str(rc));
}

static void resume_response(int status, const struct acme_response *r, void *arg)
{
    struct acme_order *o = arg;

    o->req = NULL;
    if (status != 0 || !json_is_object(r->json)) {
        acme_order_note_failure(o, r);
        if (status == 0 || r->http_status != 0) {
            /* 404, or an order the CA forgot: start afresh (same key). */
            log_info(LOG_ACME, "order cert=%s: stored order %s is gone (%s): starting a new one",
                     o->name, o->order_url, status != 0 ? r->error : "no order object");
            acme_order_keep_problem(o, NULL);
            order_new(o);
            return;
        }
        acme_order_fail(o, status, "resuming order %s: %s", o->order_url, r->error);
        return;
    }
    log_info(LOG_ACME, "order cert=%s: resuming %s (%s)", o->name, o->order_url,
             acme_order_jstr(r->json, "status") ? acme_order_jstr(r->json, "status") : "?");
    order_dispatch(o, r->json);
}

int acme_order_start(struct acme_client *c, const struct acme_order_opts *opts, acme_order_cb cb,
                     void *arg, struct acme_order **out)
{
    const struct cfg_cert *cert = opts->cert;
    const struct cfg_ca *ca = acme_client_ca(c);
    struct acme_order *o;
    int rc;

    if (cert->domains.n == 0 || opts->key == NULL)
        return -EINVAL;
    o = xcalloc(1, sizeof(*o));
    o->c = c;
    o->loop = NULL;
    o->name = xstrdup(cert->name);
    o->domains = xcalloc(cert->domains.n, sizeof(char *));
    for (size_t i = 0; i < cert->domains.n; i++)
        o->domains[i] = xstrdup(cert->domains.v[i]);
    o->n_domains = cert->domains.n;
    o->key_type = cert->key;
    o->ca_name = xstrdup(ca->name);
    o->directory = xstrdup(ca->directory);
    o->preferred_chain = ca->preferred_chain != NULL ? xstrdup(ca->preferred_chain) : NULL;
    o->replaces = opts->replaces != NULL ? xstrdup(opts->replaces) : NULL;
    EVP_PKEY_up_ref(opts->key);
    o->key = opts->key;
    if (opts->chal != NULL)
        o->chal = *opts->chal;
    o->kind = cert->challenge;
    o->persist_until = cert->persist_until;
    o->store = opts->store;
    o->authz_timeout_s = opts->authz_timeout_s > 0 ? opts->authz_timeout_s : 300;
    o->cb = cb;
    o->arg = arg;
    o->loop = acme_client_loop(c);
    uv_timer_init(o->loop, &o->timer);
    o->timer.data = o;
    o->refs = 1;
    o->requests_max = opts->max_requests > 0
                          ? opts->max_requests
                          : ORDER_REQUESTS_BASE + ORDER_REQUESTS_PER_NAME * (unsigned)o->n_domains;
    o->starting = true;
    if (opts->resume_url != NULL) {
        o->state = ORD_RESUME;
        o->order_url = xstrdup(opts->resume_url);
        rc = acme_order_post(o, &o->req, o->order_url, "the stored order", NULL, "resume",
                             resume_response, o);
    } else {
        rc = order_new_send(o);
    }
    o->starting = false;
    if (rc < 0) {
        o->cb = NULL;
        o->state = ORD_ENDED;
        uv_close((uv_handle_t *)&o->timer, timer_closed);
        return rc;
    }
    log_debug(LOG_ACME, "order cert=%s: started (%zu names)", o->name, o->n_domains);
    if (out != NULL)
        *out = o;
    return 0;
}

/* ---- resume ---- */

int acme_order_resume_load(struct store *store, const struct cfg_cert *cert, char **order_url,
                           EVP_PKEY **key)
{
    char *text = NULL;
    json_t *j = NULL;
    EVP_PKEY *k = NULL;
    int rc = store_order_read(store, cert->name, &text);

    if (rc < 0)
        return rc;
    j = json_loads(text, 0, NULL);
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    if (!json_is_object(j)) {
        rc = ERR_PARSE;
        goto out;
    }
    const char *url = acme_order_jstr(j, "order");
    const char *dir = acme_order_jstr(j, "directory");
    const char *kt = acme_order_jstr(j, "key_type");
    const char *pem = acme_order_jstr(j, "key");
    json_t *names = json_object_get(j, "names");
    if (url == NULL || dir == NULL || kt == NULL || pem == NULL || !json_is_array(names)) {
        rc = ERR_PARSE;
        goto out;
    }
    rc = -ESTALE;
    if (strcmp(dir, cert->ca->directory) != 0 || strcmp(kt, config_key_type_name(cert->key)) != 0)
        goto out;
    if (json_array_size(names) != cert->domains.n)
        goto out;
    for (size_t i = 0; i < cert->domains.n; i++) {
        const char *n = json_string_value(json_array_get(names, i));
        if (n == NULL || strcmp(n, cert->domains.v[i]) != 0)
            goto out;
    }
    rc = acme_key_from_pem(pem, strlen(pem), &k);
    if (rc < 0)
        goto out;
    *order_url = xstrdup(url);
    *key = k;
    rc = 0;
out:
    json_decref(j);
    return rc;
}
