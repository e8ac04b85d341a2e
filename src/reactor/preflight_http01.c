/* `certloop test NAME`, http-01: the probe token put where the CA's
 * request ends up and fetched from every address of every name as a CA's
 * validator does. The run around it is preflight.c's. */
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <uv.h>

#include "challenge/challenge.h"
#include "config/config.h"
#include "net/net.h"
#include "reactor/preflight.h"
#include "reactor/preflight_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

/* ---- 3: http-01 ----
 *
 * A probe token is put where the CA's request will end up (certloop's own
 * listener when the port is free, the webroot when one is set), then
 * fetched as a CA's validator does (RFC 8555 §8.3): http://NAME/.well-
 * known/acme-challenge/TOKEN on [http01] public_port, to every address of
 * the name, following redirects (at most 10, http or https, certificates
 * not checked; with public_port 80 only to ports 80 and 443, as Let's
 * Encrypt does), the body compared after trimming whitespace. With the
 * daemon running and no webroot, its listener cannot take the probe: an
 * unknown token must then come back as certloop's own 404. */

#define PF_MAX_REDIRECTS 10
#define HTTP_FETCH_TIMEOUT_MS 10000

/* One http-01 fetch (name x address). */
struct pf_fetch {
    struct pf *pf;
    struct pf_name *n;
    char *addr;  /* where to connect now (owned) */
    char *shown; /* http://NAME[:PORT]/.well-known/acme-challenge/TOKEN (owned) */
    char *url;   /* the URL fetched now, after redirects (owned) */
    char *trail; /* "301 URL, 302 URL" of the redirects followed, or NULL (owned) */
    int hops;
};

enum pf_http_mode {
    PF_TOKEN,      /* the probe token is served: expect 200 and the key authorization */
    PF_DAEMON_404, /* the daemon's listener: expect certloop's 404 for an unknown token */
};

static void fetch_free(struct pf_fetch *f)
{
    free(f->addr);
    free(f->shown);
    free(f->url);
    free(f->trail);
    free(f);
}

static void fetch_go(struct pf_fetch *f);

static void fetch_report(struct pf_fetch *f, bool pass, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fetch_report(struct pf_fetch *f, bool pass, const char *fmt, ...)
{
    va_list ap;
    char *what;

    va_start(ap, fmt);
    if (vasprintf(&what, fmt, ap) < 0)
        abort();
    va_end(ap);
    pf_report(f->pf, "http-01", f->n->base, pass, "%s via %s%s%s: %s", f->shown, f->addr,
              f->trail != NULL ? ", redirected: " : "", f->trail != NULL ? f->trail : "", what);
    free(what);
}

/* A body as the CA compares it: surrounding whitespace trimmed. */
static bool body_is(const struct http_response *resp, const char *want)
{
    const char *b = resp->body.data;
    size_t n = resp->body.len;

    while (n > 0 && (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n')) {
        b++;
        n--;
    }
    while (n > 0 && (b[n - 1] == ' ' || b[n - 1] == '\t' || b[n - 1] == '\r' || b[n - 1] == '\n'))
        n--;
    return n == strlen(want) && memcmp(b, want, n) == 0;
}

static void fetch_final(struct pf_fetch *f, const struct http_response *resp)
{
    struct pf *pf = f->pf;

    if (pf->http_mode == PF_TOKEN) {
        if (resp->status == 200 && body_is(resp, pf->keyauth)) {
            fetch_report(f, true, "token served");
            return;
        }
        if (resp->status == 200)
            fetch_report(f, false,
                         "answered HTTP 200 with another body: something else than %s serves "
                         "this path",
                         pf->cfg->http01.webroot != NULL ? "the webroot" : "certloop");
        else if (resp->status == 404 || resp->status == 403)
            fetch_report(f, false,
                         "answered HTTP %ld: the server on port %u does not serve the token; "
                         "have it serve /.well-known/acme-challenge/ from [http01] webroot or "
                         "proxy it to certloop's listener (etc/examples/nginx-acme.conf)",
                         resp->status, pf->cfg->http01.public_port);
        else
            fetch_report(f, false, "answered HTTP %ld, the CA needs 200 and the token",
                         resp->status);
        return;
    }
    /* certloop's listener answers an unknown token with exactly this */
    bool ok = resp->status == 404 && strcmp(resp->body.data, "404 Not Found\n") == 0;
    if (ok)
        fetch_report(f, true, "answered HTTP 404: the running daemon's listener is reachable");
    else
        fetch_report(f, false,
                     "answered HTTP %ld: not certloop's 404 for an unknown token (another "
                     "server on the port? have it proxy /.well-known/acme-challenge/ to "
                     "certloop's listener, etc/examples/nginx-acme.conf)",
                     resp->status);
}

static void on_redirect_addr(int status, const struct dns_answer *ans, void *arg)
{
    struct pf_fetch *f = arg;
    struct pf *pf = f->pf;

    if (status != 0 || ans->n_addrs == 0) {
        fetch_report(f, false, "the redirect's host does not resolve (%s)",
                     status != 0 ? err_str(status) : "no A record");
        fetch_free(f);
    } else {
        free(f->addr);
        f->addr = xstrdup(ans->addrs[0]);
        fetch_go(f);
    }
    pf_done_one(pf);
}

/* Follows a 3xx's Location as a validator does. Returns true when the
 * fetch goes on (f is kept), false when it ended (f reported). */
static bool fetch_redirect(struct pf_fetch *f, const struct http_response *resp)
{
    struct pf *pf = f->pf;
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *old_host = NULL, *next = NULL;
    bool going = false;

    if (u == NULL || curl_url_set(u, CURLUPART_URL, f->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &old_host, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_URL, resp->location, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &next, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        fetch_report(f, false, "answered HTTP %ld with an unusable Location '%s'", resp->status,
                     resp->location);
        goto out;
    }
    char *t = xasprintf("%s%s%ld %s", f->trail != NULL ? f->trail : "",
                        f->trail != NULL ? ", " : "", resp->status, next);
    free(f->trail);
    f->trail = t;
    if (++f->hops > PF_MAX_REDIRECTS) {
        fetch_report(f, false, "more than %d redirects: the CA gives up", PF_MAX_REDIRECTS);
        goto out;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        fetch_report(f, false, "a redirect to %s: the CA follows only http and https", scheme);
        goto out;
    }
    if (pf->cfg->http01.public_port == 80 && strcmp(port, "80") != 0 && strcmp(port, "443") != 0) {
        fetch_report(f, false, "a redirect to port %s: the CA follows only ports 80 and 443", port);
        goto out;
    }
    free(f->url);
    f->url = xstrdup(next);
    if (strcasecmp(host, old_host) == 0) {
        fetch_go(f);
        going = true;
        goto out;
    }
    /* another host: resolve it as the CA would (IPv4 first; IP literals as they are) */
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    const char *h = host;
    char bare[64];
    if (h[0] == '[' && strlen(h) < sizeof(bare) + 2) {
        snprintf(bare, sizeof(bare), "%.*s", (int)strlen(h) - 2, h + 1);
        h = bare;
    }
    if (uv_ip4_addr(h, 80, &a4) == 0 || uv_ip6_addr(h, 80, &a6) == 0) {
        free(f->addr);
        f->addr = xstrdup(h);
        fetch_go(f);
        going = true;
        goto out;
    }
    if (dns_query_start(pf->res, host, DNS_T_A, on_redirect_addr, f, NULL) < 0) {
        fetch_report(f, false, "cannot resolve the redirect's host %s", host);
        goto out;
    }
    pf->pending++;
    going = true;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(old_host);
    curl_free(next);
    curl_url_cleanup(u);
    return going;
}

static void on_fetch(int status, const struct http_response *resp, void *arg)
{
    struct pf_fetch *f = arg;
    struct pf *pf = f->pf;

    if (status != 0) {
        fetch_report(f, false, "%s%s", resp->error,
                     status == ERR_HTTP ? " (no answer: nothing listens there or it is blocked)"
                                        : "");
    } else if (resp->status >= 300 && resp->status < 400 && resp->location != NULL) {
        if (fetch_redirect(f, resp)) {
            pf_done_one(pf);
            return;
        }
    } else {
        fetch_final(f, resp);
    }
    fetch_free(f);
    pf_done_one(pf);
}

/* Fetches f->url, connecting to f->addr (the name as Host and SNI). */
static void fetch_go(struct pf_fetch *f)
{
    struct pf *pf = f->pf;
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *ct = NULL;
    int rc = -EINVAL;

    if (u != NULL && curl_url_set(u, CURLUPART_URL, f->url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        bool v6 = strchr(f->addr, ':') != NULL;
        ct = xasprintf("%s:%s:%s%s%s:%s", host, port, v6 ? "[" : "", f->addr, v6 ? "]" : "", port);
        struct http_request_opts o = {
            .url = f->url,
            .connect_to = ct,
            .insecure = true,
            .max_body = 4096,
            .timeout_ms = HTTP_FETCH_TIMEOUT_MS,
        };
        rc = http_req_start(pf->http, &o, on_fetch, f, NULL);
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    free(ct);
    if (rc < 0) {
        fetch_report(f, false, "%s", err_str(rc));
        fetch_free(f);
        return;
    }
    pf->pending++;
}

static void start_fetch(struct pf *pf, struct pf_name *n, const char *addr)
{
    struct pf_fetch *f = xcalloc(1, sizeof(*f));
    unsigned port = pf->cfg->http01.public_port;
    char *host = port == 80 ? xstrdup(n->base) : xasprintf("%s:%u", n->base, port);

    f->pf = pf;
    f->n = n;
    f->addr = xstrdup(addr);
    f->url = xasprintf("http://%s/.well-known/acme-challenge/%s", host, pf->token);
    f->shown = xstrdup(f->url);
    free(host);
    fetch_go(f);
}

void pf_start_http01(struct pf *pf)
{
    const struct cfg_http01 *h = &pf->cfg->http01;
    const struct cfg_strv *l = &h->listen;
    bool served = false;
    int rc;

    pf->token = pf_random_token();
    pf->keyauth = xasprintf("%s.certloop-preflight", pf->token);
    if (h->webroot != NULL) {
        rc = chal_webroot_put(h->webroot, h->webroot_uid, h->webroot_gid, pf->token, pf->keyauth);
        if (rc < 0) {
            pf_report(pf, "http-01", pf->cname, false, "cannot write the probe token under %s: %s",
                      h->webroot, err_str(rc));
            return;
        }
        pf->webroot_token = true;
        served = true;
        char *path = chal_webroot_path(h->webroot, pf->token);
        fprintf(pf->out, "test %s: http-01 probe token written to %s\n", pf->cname, path);
        free(path);
    }
    if (l->n > 0) {
        rc = chal_http01_open(&pf->loop, (const char *const *)l->v, l->n, &pf->chal);
        if (rc == 0 && pf->chal != NULL) {
            rc = chal_http01_put(pf->chal, pf->token, pf->keyauth);
            if (rc < 0) {
                pf_report(pf, "http-01", pf->cname, false, "cannot put the test token: %s",
                          err_str(rc));
                return;
            }
            served = true;
            fprintf(pf->out,
                    "test %s: http-01 temporary listener on %s%s (the daemon is not running)\n",
                    pf->cname, l->v[0], l->n > 1 ? " and more" : "");
        } else if (rc == UV_EADDRINUSE) {
            pf->chal = NULL;
            if (!served)
                fprintf(pf->out,
                        "test %s: http-01 %s is in use (the daemon is running?): fetching an "
                        "unknown token, which its listener answers with its own 404\n",
                        pf->cname, l->v[0]);
        } else {
            pf->chal = NULL;
            pf_report(pf, "http-01", pf->cname, false, "cannot listen on %s: %s", l->v[0],
                      err_str(rc));
            return;
        }
    } else if (!served) {
        pf_report(pf, "http-01", pf->cname, false,
                  "[http01] listen is [] and no webroot is set: nothing answers the CA");
        return;
    }
    pf->http_mode = served ? PF_TOKEN : PF_DAEMON_404;
    if (h->public_port != 80)
        fprintf(pf->out,
                "test %s: http-01 note: fetching port %u as [http01] public_port says; public "
                "CAs connect to port 80\n",
                pf->cname, h->public_port);
    for (size_t i = 0; i < pf->n_names; i++) {
        struct pf_name *n = &pf->names[i];
        if (n->n_addrs == 0) {
            pf_report(pf, "http-01", n->base, false, "no address to fetch from");
            continue;
        }
        for (size_t a = 0; a < n->n_addrs; a++)
            start_fetch(pf, n, n->addrs[a]);
    }
}
