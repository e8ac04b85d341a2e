/* The HTTP(S) client on the reactor: one libcurl multi handle driven by
 * libuv (a uv_poll_t per socket curl tells us about, one uv_timer_t for
 * curl's timeout), requests with capped bodies and headers, and the few
 * response headers ACME needs captured. It never blocks, never follows
 * redirects and knows nothing of what the bodies mean. A request's extra
 * trust file is parsed and applied by http_trust.c. */
#include "net/net.h"
#include "net/net_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_DEFAULT_MAX_BODY ((size_t)64 * 1024)
#define HTTP_DEFAULT_TIMEOUT_MS 30000L
#define HTTP_CONNECT_TIMEOUT_MS 10000L
#define HTTP_MAX_HEADER_LINES 100u
#define HTTP_MAX_HEADER_BYTES ((size_t)64 * 1024)
#define HTTP_USER_AGENT "certloop/" CERTLOOP_VERSION
#define HTTP_DEBUG_DUMP 512

/* One socket curl asked us to watch: freed in its close callback. */
struct sock_ctx {
    uv_poll_t poll;             /* embedded; poll.data = self */
    struct http_client *client; /* borrowed */
    curl_socket_t fd;
    struct sock_ctx *prev, *next; /* in client->socks */
};

enum req_state {
    REQ_ACTIVE,  /* added to the multi handle */
    REQ_DONE,    /* finished, waiting in client->done for its callback */
    REQ_CALLING, /* its callback is running */
};

struct http_req {
    struct http_client *client;   /* borrowed: outlives every request */
    struct http_req *prev, *next; /* in client->active or client->done */
    enum req_state state;
    bool aborting;            /* failed inside a curl callback: finished from the timer */
    CURL *easy;               /* owned */
    struct curl_slist *hdrs;  /* owned */
    struct http_trust *trust; /* ref, or NULL */
    const char *method;       /* static string */
    char *url;                /* owned */
    char *log_url;            /* owned: url as log lines show it (maybe redacted) */
    http_cb cb;               /* NULL once cancelled or called */
    void *arg;
    int status;   /* the result handed to cb */
    int err;      /* set by a curl callback that aborted the transfer */
    char why[96]; /* what that callback saw, for the log line */
    size_t max_body;
    unsigned hdr_lines;
    size_t hdr_bytes;
    struct buf body;
    char *content_type, *location, *replay_nonce, *retry_after; /* owned */
    char *header_name, *header;                                 /* owned, or NULL */
    bool (*stream)(const char *data, size_t len, void *arg);    /* or NULL */
    char **links; /* owned, NULL-terminated once non-NULL */
    size_t n_links, links_cap;
    struct http_response resp;
    char errbuf[CURL_ERROR_SIZE];
    char *reason;                  /* owned: the transport's reason handed to cb as resp.error */
    struct curl_slist *connect_to; /* owned */
    struct curl_slist *rcpt;       /* owned: SMTP recipients */
    char *upload;                  /* owned: the SMTP message */
    size_t upload_len, upload_off;
};

struct req_list {
    struct http_req *head, *tail;
};

struct http_client {
    uv_loop_t *loop;  /* borrowed */
    CURLM *multi;     /* owned; NULL once closing */
    uv_timer_t timer; /* embedded; curl's timeout and deferred work */
    struct req_list active;
    struct req_list done;
    struct http_req *calling; /* the request whose callback runs now */
    struct sock_ctx *socks;
    struct http_trust *trusts; /* the cache of trust files */
    size_t inflight;
    unsigned open_handles; /* timer + sockets; freed when 0 after close */
    bool closing;
    bool dispatching;
    bool abort_pending; /* some request has aborting set: keep the timer short */
};

static const char *const no_links[] = {NULL};

/* ---- lists ---- */

static void list_append(struct req_list *l, struct http_req *r)
{
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

static void list_remove(struct req_list *l, struct http_req *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->prev = r->next = NULL;
}

/* curl calls this with the SSL_CTX of each new TLS connection of a request
 * that names a trust file, after loading its own CA settings. */
static CURLcode ssl_ctx_cb(CURL *easy, void *sslctx, void *arg)
{
    (void)easy;
    return http_trust_apply(arg, sslctx) < 0 ? CURLE_SSL_CACERT_BADFILE : CURLE_OK;
}

/* ---- requests ---- */

/* curl opens its sockets without close-on-exec: a hook or reload command
 * spawned meanwhile would hold our connection to the CA. */
static int sockopt_cb(void *arg, curl_socket_t fd, curlsocktype purpose)
{
    int flags = fcntl(fd, F_GETFD);

    (void)arg;
    (void)purpose;
    if (flags >= 0 && !(flags & FD_CLOEXEC))
        (void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    return CURL_SOCKOPT_OK;
}

static void req_clear_headers(struct http_req *r)
{
    free(r->content_type);
    free(r->location);
    free(r->replay_nonce);
    free(r->retry_after);
    free(r->header);
    r->content_type = r->location = r->replay_nonce = r->retry_after = r->header = NULL;
    for (size_t i = 0; i < r->n_links; i++)
        free(r->links[i]);
    r->n_links = 0;
    if (r->links != NULL)
        r->links[0] = NULL;
}

static void req_free(struct http_req *r)
{
    if (r == NULL)
        return;
    if (r->easy != NULL)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    curl_slist_free_all(r->connect_to);
    curl_slist_free_all(r->rcpt);
    free(r->upload);
    http_trust_unref(r->trust);
    req_clear_headers(r);
    free(r->links);
    free(r->header_name);
    free(r->url);
    free(r->log_url);
    free(r->reason);
    buf_fini(&r->body);
    free(r);
}

static void req_fail_in_callback(struct http_req *r, int err, const char *why)
{
    if (r->err == 0) {
        r->err = err;
        snprintf(r->why, sizeof(r->why), "%s", why);
    }
}

static size_t read_cb(char *data, size_t size, size_t n, void *arg)
{
    struct http_req *r = arg;
    size_t want = size * n;
    size_t left = r->upload_len - r->upload_off;

    if (want > left)
        want = left;
    memcpy(data, r->upload + r->upload_off, want);
    r->upload_off += want;
    return want;
}

static size_t write_cb(char *data, size_t size, size_t n, void *arg)
{
    struct http_req *r = arg;
    size_t len = size * n;

    if (r->stream != NULL) {
        long code = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && code < 300) {
            if (!r->stream(data, len, r->arg)) {
                req_fail_in_callback(r, ERR_HTTP, "the stream's reader stopped it");
                return len == 0 ? 1 : 0;
            }
            return len;
        }
    }
    if (buf_append(&r->body, data, len) < 0) {
        char why[96];
        snprintf(why, sizeof(why), "response body exceeds %zu bytes", r->max_body);
        req_fail_in_callback(r, ERR_TOO_BIG, why);
        return len == 0 ? 1 : 0; /* anything but len aborts the transfer */
    }
    return len;
}

static void set_header(char **slot, const char *v, size_t len)
{
    free(*slot);
    *slot = xstrndup(v, len);
}

static size_t header_cb(char *data, size_t size, size_t n, void *arg)
{
    struct http_req *r = arg;
    size_t len = size * n;
    const char *name, *value;
    size_t nlen, vlen;

    r->hdr_lines++;
    r->hdr_bytes += len;
    if (r->hdr_lines > HTTP_MAX_HEADER_LINES || r->hdr_bytes > HTTP_MAX_HEADER_BYTES) {
        req_fail_in_callback(r, ERR_TOO_BIG, "response headers too large");
        return len == 0 ? 1 : 0;
    }
    /* A status line starts a new response (1xx interim or the final one):
     * only the final response's headers count. */
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        req_clear_headers(r);
        return len;
    }
    if (r->stream != NULL && (len == 2 || len == 1) && (data[0] == '\r' || data[0] == '\n')) {
        long code = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && code < 300) /* the head of a stream has arrived */
            (void)r->stream(NULL, 0, r->arg);
        return len;
    }
    if (http_header_split(data, len, &name, &nlen, &value, &vlen) < 0)
        return len; /* the blank end line, or junk curl accepted: ignore */
    if (nlen == 12 && strncasecmp(name, "content-type", nlen) == 0) {
        set_header(&r->content_type, value, vlen);
    } else if (nlen == 8 && strncasecmp(name, "location", nlen) == 0) {
        set_header(&r->location, value, vlen);
    } else if (nlen == 12 && strncasecmp(name, "replay-nonce", nlen) == 0) {
        set_header(&r->replay_nonce, value, vlen);
    } else if (nlen == 11 && strncasecmp(name, "retry-after", nlen) == 0) {
        set_header(&r->retry_after, value, vlen);
    } else if (r->header_name != NULL && nlen == strlen(r->header_name) &&
               strncasecmp(name, r->header_name, nlen) == 0) {
        set_header(&r->header, value, vlen);
    } else if (nlen == 4 && strncasecmp(name, "link", nlen) == 0) {
        r->links = xreallocarray_grow(r->links, &r->links_cap, r->n_links + 2, sizeof(char *));
        r->links[r->n_links++] = xstrndup(value, vlen);
        r->links[r->n_links] = NULL;
    }
    return len;
}

static bool header_ok(const struct http_header *h)
{
    if (h->name == NULL || h->value == NULL || h->name[0] == '\0')
        return false;
    for (const char *p = h->name; *p != '\0'; p++) {
        if (*p == ':' || (unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    }
    return strpbrk(h->value, "\r\n") == NULL;
}

/* Every curl_easy_setopt result is checked; the first failure wins. */
#define SETOPT(easy, opt, val)                                                                     \
    do {                                                                                           \
        if (cc == CURLE_OK)                                                                        \
            cc = curl_easy_setopt((easy), (opt), (val));                                           \
    } while (0)

/* The URL for log lines: whole, or cut after the authority when redacted. */
static char *url_for_log(const char *url, bool redact)
{
    const char *p = strstr(url, "://");

    if (!redact)
        return xstrdup(url);
    if (p == NULL)
        return xstrdup("(url redacted)");
    p += 3;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n); /* userinfo is a secret too */
    if (at != NULL) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    return xasprintf("%.*s%.*s/...", (int)(strstr(url, "://") + 3 - url), url, (int)n, p);
}

int http_req_start(struct http_client *c, const struct http_request_opts *o, http_cb cb, void *arg,
                   struct http_req **out)
{
    struct http_req *r = NULL;
    const char *method;
    int rc;

    if (c == NULL || o == NULL || o->url == NULL || cb == NULL)
        return -EINVAL;
    if (c->closing)
        return -ESHUTDOWN;
    char *logurl = url_for_log(o->url, o->redact_url);
    if (o->method == NULL || strcmp(o->method, "GET") == 0) {
        method = "GET";
    } else if (strcmp(o->method, "HEAD") == 0) {
        method = "HEAD";
    } else if (strcmp(o->method, "POST") == 0) {
        method = "POST";
    } else if (strcmp(o->method, "MAIL") == 0 && o->mail_from != NULL && o->n_mail_rcpt > 0) {
        method = "MAIL";
    } else {
        log_error(LOG_HTTP, "%s %s: unsupported method", o->method, logurl);
        free(logurl);
        return -EINVAL;
    }
    bool mail = strcmp(method, "MAIL") == 0;
    if (mail && strncasecmp(o->url, "smtp://", 7) != 0 && strncasecmp(o->url, "smtps://", 8) != 0) {
        log_error(LOG_HTTP, "%s %s: only smtp and smtps URLs are allowed", method, logurl);
        free(logurl);
        return -EINVAL;
    }
    if (!mail && strncasecmp(o->url, "http://", 7) != 0 &&
        strncasecmp(o->url, "https://", 8) != 0) {
        log_error(LOG_HTTP, "%s %s: only http and https URLs are allowed", method, logurl);
        free(logurl);
        return -EINVAL;
    }

    r = xcalloc(1, sizeof(*r));
    r->client = c;
    r->method = method;
    r->url = xstrdup(o->url);
    r->log_url = logurl;
    r->max_body = o->max_body != 0 ? o->max_body : HTTP_DEFAULT_MAX_BODY;
    buf_init(&r->body, r->max_body);
    r->cb = cb;
    r->arg = arg;
    r->stream = o->stream;
    r->header_name = o->header_name != NULL ? xstrdup(o->header_name) : NULL;

    for (size_t i = 0; i < o->n_headers; i++) {
        if (!header_ok(&o->headers[i])) {
            log_error(LOG_HTTP, "%s %s: invalid request header", method, r->log_url);
            rc = -EINVAL;
            goto fail;
        }
        /* "Name;" is curl's spelling of a header with an empty value. */
        char *line = o->headers[i].value[0] == '\0'
                         ? xasprintf("%s;", o->headers[i].name)
                         : xasprintf("%s: %s", o->headers[i].name, o->headers[i].value);
        struct curl_slist *l = curl_slist_append(r->hdrs, line);
        free(line);
        if (l == NULL) {
            log_error(LOG_HTTP, "%s %s: curl_slist_append failed", method, r->log_url);
            rc = ERR_HTTP;
            goto fail;
        }
        r->hdrs = l;
    }
    if (strcmp(method, "POST") == 0) {
        /* No "Expect: 100-continue" round trip: ACME bodies are small. */
        struct curl_slist *l = curl_slist_append(r->hdrs, "Expect:");
        if (l == NULL) {
            rc = ERR_HTTP;
            goto fail;
        }
        r->hdrs = l;
    }

    if (o->trust_file != NULL) {
        rc = http_trust_get(&c->trusts, o->trust_file, &r->trust);
        if (rc < 0)
            goto fail;
    }

    r->easy = curl_easy_init();
    if (r->easy == NULL) {
        log_error(LOG_HTTP, "%s %s: curl_easy_init failed", method, r->log_url);
        rc = ERR_HTTP;
        goto fail;
    }
    long timeout = o->timeout_ms > 0 ? o->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
    CURLcode cc = CURLE_OK;
    SETOPT(r->easy, CURLOPT_URL, o->url);
    SETOPT(r->easy, CURLOPT_PRIVATE, r);
    SETOPT(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
    SETOPT(r->easy, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700
    /* Without it, removing a transfer whose name is still being resolved
     * (our cancel, or curl's own timeout) joins the resolver thread: the
     * loop stalls until getaddrinfo returns (measured: the whole lookup).
     * With it the thread is detached and frees itself when done. */
    SETOPT(r->easy, CURLOPT_QUICK_EXIT, 1L);
#endif
    SETOPT(r->easy, CURLOPT_PROTOCOLS_STR, mail ? "smtp,smtps" : "http,https");
    SETOPT(r->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SETOPT(r->easy, CURLOPT_SOCKOPTFUNCTION, sockopt_cb);
    SETOPT(r->easy, CURLOPT_FOLLOWLOCATION, 0L); /* ACME wants to see redirects itself */
    SETOPT(r->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    if (strncasecmp(o->url, "https://", 8) == 0) /* wait to multiplex rather than open more */
        SETOPT(r->easy, CURLOPT_PIPEWAIT, 1L);
    SETOPT(r->easy, CURLOPT_TIMEOUT_MS, o->stream != NULL ? 0L : timeout);
    SETOPT(r->easy, CURLOPT_CONNECTTIMEOUT_MS,
           timeout < HTTP_CONNECT_TIMEOUT_MS ? timeout : HTTP_CONNECT_TIMEOUT_MS);
    SETOPT(r->easy, CURLOPT_USERAGENT, HTTP_USER_AGENT);
    SETOPT(r->easy, CURLOPT_HTTPHEADER, r->hdrs);
    SETOPT(r->easy, CURLOPT_WRITEFUNCTION, write_cb);
    SETOPT(r->easy, CURLOPT_WRITEDATA, r);
    SETOPT(r->easy, CURLOPT_HEADERFUNCTION, header_cb);
    SETOPT(r->easy, CURLOPT_HEADERDATA, r);
    if (strcmp(method, "HEAD") == 0) {
        SETOPT(r->easy, CURLOPT_NOBODY, 1L);
    } else {
        /* Refuse early when Content-Length already says too much. */
        SETOPT(r->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body);
    }
    if (strcmp(method, "POST") == 0) {
        SETOPT(r->easy, CURLOPT_POST, 1L);
        SETOPT(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        SETOPT(r->easy, CURLOPT_COPYPOSTFIELDS, o->body != NULL ? (const char *)o->body : "");
    }
    if (r->trust != NULL && o->trust_only) {
        /* The blob alone: curl's CA file and directory are replaced, so
         * the file's certificates are the only anchors (with curl's
         * default X509_V_FLAG_PARTIAL_CHAIN a server certificate in it is
         * trusted as it is). Its own connections stay apart as below. */
        const struct buf *pem = http_trust_pem(r->trust);
        struct curl_blob blob = {pem->data, pem->len, CURL_BLOB_NOCOPY};
        SETOPT(r->easy, CURLOPT_CAINFO_BLOB, &blob);
        SETOPT(r->easy, CURLOPT_CAPATH, NULL);
        SETOPT(r->easy, CURLOPT_CA_CACHE_TIMEOUT, 0L);
    } else if (r->trust != NULL) {
        /* The blob is what keeps this request's connections and TLS
         * sessions apart: curl matches them on the CA settings (blob
         * included), never on the SSL_CTX callback. A blob replaces curl's
         * CA file, so the callback puts the system store back. */
        const struct buf *pem = http_trust_pem(r->trust);
        struct curl_blob blob = {pem->data, pem->len, CURL_BLOB_NOCOPY};
        SETOPT(r->easy, CURLOPT_CAINFO_BLOB, &blob);
        SETOPT(r->easy, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
        SETOPT(r->easy, CURLOPT_SSL_CTX_DATA, r->trust);
        /* curl's shared CA store cache must not receive our extra anchors. */
        SETOPT(r->easy, CURLOPT_CA_CACHE_TIMEOUT, 0L);
    }
    if (mail) {
        /* SMTP (RFC 5321) through the same multi handle: the message is
         * uploaded from our copy; STARTTLS is required on smtp:// unless
         * the configuration says the relay speaks plain SMTP. */
        for (size_t i = 0; i < o->n_mail_rcpt; i++) {
            struct curl_slist *l = curl_slist_append(r->rcpt, o->mail_rcpt[i]);
            if (l == NULL) {
                rc = ERR_HTTP;
                goto fail;
            }
            r->rcpt = l;
        }
        r->upload = xmemdup(o->body != NULL ? o->body : "", o->body_len + 1);
        r->upload_len = o->body_len;
        SETOPT(r->easy, CURLOPT_MAIL_FROM, o->mail_from);
        SETOPT(r->easy, CURLOPT_MAIL_RCPT, r->rcpt);
        SETOPT(r->easy, CURLOPT_UPLOAD, 1L);
        SETOPT(r->easy, CURLOPT_READFUNCTION, read_cb);
        SETOPT(r->easy, CURLOPT_READDATA, r);
        SETOPT(r->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->upload_len);
        SETOPT(r->easy, CURLOPT_USE_SSL,
               o->smtp_plain ? (long)CURLUSESSL_NONE : (long)CURLUSESSL_ALL);
        if (o->username != NULL)
            SETOPT(r->easy, CURLOPT_USERNAME, o->username);
        if (o->password != NULL)
            SETOPT(r->easy, CURLOPT_PASSWORD, o->password);
    }
    if (o->connect_to != NULL) {
        r->connect_to = curl_slist_append(NULL, o->connect_to);
        if (r->connect_to == NULL) {
            rc = ERR_HTTP;
            goto fail;
        }
        SETOPT(r->easy, CURLOPT_CONNECT_TO, r->connect_to);
    }
    if (o->insecure) {
        SETOPT(r->easy, CURLOPT_SSL_VERIFYPEER, 0L);
        SETOPT(r->easy, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (cc != CURLE_OK) {
        log_error(LOG_HTTP, "%s %s: curl_easy_setopt: %s", method, r->log_url,
                  curl_easy_strerror(cc));
        rc = ERR_HTTP;
        goto fail;
    }

    /* curl only arms its timer here (our timer_cb); the transfer begins
     * when that timer fires on the loop, so no callback runs from _start. */
    CURLMcode mc = curl_multi_add_handle(c->multi, r->easy);
    if (mc != CURLM_OK) {
        log_error(LOG_HTTP, "%s %s: curl_multi_add_handle: %s", method, r->log_url,
                  curl_multi_strerror(mc));
        rc = ERR_HTTP;
        goto fail;
    }
    r->state = REQ_ACTIVE;
    list_append(&c->active, r);
    c->inflight++;
    log_debug(LOG_HTTP, "%s %s: started", method, r->log_url);
    if (out != NULL)
        *out = r;
    return 0;
fail:
    req_free(r);
    return rc;
}

void http_req_cancel(struct http_req *r)
{
    if (r == NULL)
        return;
    struct http_client *c = r->client;
    switch (r->state) {
    case REQ_ACTIVE:
        list_remove(&c->active, r);
        c->inflight--;
        if (c->multi != NULL)
            curl_multi_remove_handle(c->multi, r->easy);
        req_free(r);
        break;
    case REQ_DONE:
        list_remove(&c->done, r);
        c->inflight--;
        req_free(r);
        break;
    case REQ_CALLING:
        r->cb = NULL; /* freed once its callback returns */
        break;
    }
}

/* "host:port" of the request's URL, for messages. Owned. */
static char *url_hostport(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *out;

    if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
        (void)curl_url_get(u, CURLUPART_HOST, &host, 0);
        (void)curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    }
    out = xasprintf("%s:%s", host != NULL ? host : "?", port != NULL ? port : "?");
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return out;
}

/* The transport's real reason as one line an operator can act on, e.g.
 * "TLS: unable to get local issuer certificate for 127.0.0.1:14000" or
 * "connection refused by 127.0.0.1:14000", instead of a bare "HTTP
 * transport failure". Owned. */
static char *transport_reason(struct http_req *r, CURLcode res, const char *detail)
{
    char *hp = url_hostport(r->url);
    long oserr = 0;
    char *out;

    curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &oserr);
    switch (res) {
    case CURLE_COULDNT_RESOLVE_HOST:
        out = xasprintf("cannot resolve the host of %s (%s)", hp, detail);
        break;
    case CURLE_COULDNT_CONNECT:
        if (oserr == ECONNREFUSED)
            out = xasprintf("connection refused by %s", hp);
        else if (oserr != 0)
            out = xasprintf("cannot connect to %s: %s", hp, strerror((int)oserr));
        else
            out = xasprintf("cannot connect to %s: %s", hp, detail);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR: {
        /* curl says "SSL certificate problem: X" or "SSL: X" */
        const char *d = detail;
        static const char *const prefixes[] = {"SSL certificate problem: ", "SSL: "};
        for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
            if (strncmp(d, prefixes[i], strlen(prefixes[i])) == 0)
                d += strlen(prefixes[i]);
        out = xasprintf("TLS: %s for %s", d, hp);
        break;
    }
    case CURLE_OPERATION_TIMEDOUT:
        out = xasprintf("timeout talking to %s: %s", hp, detail);
        break;
    default: {
        long code = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
        if (strcmp(r->method, "MAIL") == 0 && code >= 400) /* the SMTP reply refused */
            out = xasprintf("SMTP server %s answered %ld (%s)", hp, code, detail);
        else
            out = xasprintf("%s (%s)", detail, hp);
        break;
    }
    }
    free(hp);
    return out;
}

/* Turns curl's verdict into our status plus one log line, and queues the
 * request for its callback. The easy handle has left the multi handle. */
static void req_finish(struct http_req *r, CURLcode res)
{
    struct http_client *c = r->client;
    const char *detail = r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(res);

    if (r->err != 0) {
        r->status = r->err;
        log_error(LOG_HTTP, "%s %s: %s", r->method, r->log_url, r->why);
    } else if (res == CURLE_FILESIZE_EXCEEDED) {
        r->status = ERR_TOO_BIG;
        log_error(LOG_HTTP, "%s %s: response body exceeds %zu bytes", r->method, r->log_url,
                  r->max_body);
    } else if (res == CURLE_OPERATION_TIMEDOUT) {
        r->status = ERR_TIMEOUT;
        r->reason = transport_reason(r, res, detail);
        log_error(LOG_HTTP, "%s %s: %s", r->method, r->log_url, detail);
    } else if (res != CURLE_OK) {
        r->status = ERR_HTTP;
        r->reason = transport_reason(r, res, detail);
        log_error(LOG_HTTP, "%s %s: %s", r->method, r->log_url, detail);
    } else {
        long code = 0;
        char *eff = NULL;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &eff);
        if (r->body.data == NULL)
            buf_append(&r->body, "", 0); /* the body is always a C string */
        r->status = 0;
        r->resp.status = code;
        r->resp.body = r->body;
        r->resp.content_type = r->content_type;
        r->resp.location = r->location;
        r->resp.replay_nonce = r->replay_nonce;
        r->resp.retry_after = r->retry_after;
        r->resp.links = r->links != NULL ? (const char *const *)r->links : no_links;
        r->resp.n_links = r->n_links;
        r->resp.effective_url = eff != NULL ? eff : r->url;
        r->resp.header = r->header;
        if (log_enabled(LOG_HTTP, LOG_LVL_DEBUG)) {
            char dump[HTTP_DEBUG_DUMP + 1];
            size_t n = r->body.len < HTTP_DEBUG_DUMP ? r->body.len : HTTP_DEBUG_DUMP;
            log_debug(LOG_HTTP, "%s %s: HTTP %ld, %zu bytes: %s%s", r->method, r->log_url, code,
                      r->body.len, log_mask(dump, sizeof(dump), r->body.data, n),
                      n < r->body.len ? "..." : "");
        }
    }
    r->state = REQ_DONE;
    list_append(&c->done, r);
}

/* Collects every finished transfer; called after each socket_action. */
static void collect(struct http_client *c)
{
    CURLMsg *msg;
    int left;

    for (;;) {
        msg = curl_multi_info_read(c->multi, &left);
        if (msg == NULL)
            break;
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode res = msg->data.result; /* msg dies with remove_handle */
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        struct http_req *r = (struct http_req *)priv;
        curl_multi_remove_handle(c->multi, easy);
        assert(r != NULL && r->state == REQ_ACTIVE);
        list_remove(&c->active, r);
        req_finish(r, res);
    }
}

static void client_maybe_free(struct http_client *c)
{
    if (!c->closing || c->open_handles > 0 || c->dispatching)
        return;
    http_trust_cache_clear(&c->trusts);
    free(c);
}

/* Runs the callbacks of finished requests, outside any curl callback. A
 * callback may start or cancel requests or close the client: requests
 * wait in c->done, so a cancel simply unlinks them. */
static void dispatch(struct http_client *c)
{
    if (c->dispatching)
        return;
    c->dispatching = true;
    for (;;) {
        struct http_req *r = c->done.head;
        if (r == NULL)
            break;
        list_remove(&c->done, r);
        c->inflight--;
        r->state = REQ_CALLING;
        c->calling = r;
        http_cb cb = r->cb;
        r->cb = NULL;
        if (cb != NULL) {
            struct http_response fail = {.error = err_str(r->status)};
            if (r->reason != NULL)
                fail.error = r->reason;
            else if (r->err != 0)
                fail.error = r->why;
            cb(r->status, r->status == 0 ? &r->resp : &fail, r->arg);
        }
        c->calling = NULL;
        req_free(r);
    }
    c->dispatching = false;
    client_maybe_free(c);
}

/* ---- libuv glue ---- */

static void sock_closed(uv_handle_t *h)
{
    struct sock_ctx *s = h->data;
    struct http_client *c = s->client;

    free(s);
    c->open_handles--;
    client_maybe_free(c);
}

static void sock_close(struct sock_ctx *s)
{
    struct http_client *c = s->client;

    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

/* Fails transfers that a curl callback could not fail itself (it must not
 * call curl_multi_*): run from the timer. */
static void abort_marked(struct http_client *c)
{
    struct http_req *next;

    if (!c->abort_pending)
        return;
    c->abort_pending = false;
    for (struct http_req *r = c->active.head; r != NULL; r = next) {
        next = r->next;
        if (!r->aborting)
            continue;
        curl_multi_remove_handle(c->multi, r->easy);
        list_remove(&c->active, r);
        req_finish(r, CURLE_ABORTED_BY_CALLBACK);
    }
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    struct sock_ctx *s = p->data;
    struct http_client *c = s->client;
    int flags = 0;
    int running;

    if (status < 0)
        flags = CURL_CSELECT_ERR | CURL_CSELECT_IN | CURL_CSELECT_OUT;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    CURLMcode mc = curl_multi_socket_action(c->multi, s->fd, flags, &running);
    if (mc != CURLM_OK)
        log_debug(LOG_HTTP, "curl_multi_socket_action: %s", curl_multi_strerror(mc));
    collect(c);
    dispatch(c);
}

static void timer_fired(uv_timer_t *t)
{
    struct http_client *c = t->data;
    int running;

    abort_marked(c);
    CURLMcode mc = curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    if (mc != CURLM_OK)
        log_debug(LOG_HTTP, "curl_multi_socket_action: %s", curl_multi_strerror(mc));
    collect(c);
    dispatch(c);
}

/* CURLMOPT_TIMERFUNCTION: only (re)arms our timer. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_client *c = userp;

    (void)multi;
    if (c->abort_pending)
        timeout_ms = 0; /* a failed request waits to be finished by the timer */
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
        return 0;
    }
    /* 0 means "now": go round the loop once rather than recurse into curl. */
    uv_timer_start(&c->timer, timer_fired, timeout_ms == 0 ? 1 : (uint64_t)timeout_ms, 0);
    return 0;
}

/* CURLMOPT_SOCKETFUNCTION: watch, re-watch or forget one socket. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct http_client *c = userp;
    struct sock_ctx *s = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            sock_close(s);
            curl_multi_assign(c->multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL) {
        s = xcalloc(1, sizeof(*s));
        s->client = c;
        s->fd = fd;
        int rc = uv_poll_init_socket(c->loop, &s->poll, fd);
        if (rc < 0) {
            char *priv = NULL;
            free(s);
            curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
            struct http_req *r = (struct http_req *)priv;
            if (r != NULL) {
                char why[96];
                snprintf(why, sizeof(why), "uv_poll_init: %s", uv_strerror(rc));
                req_fail_in_callback(r, ERR_HTTP, why);
                r->aborting = true;
                c->abort_pending = true;
                uv_timer_start(&c->timer, timer_fired, 1, 0);
            }
            return 0;
        }
        s->poll.data = s;
        c->open_handles++;
        s->next = c->socks;
        if (c->socks != NULL)
            c->socks->prev = s;
        c->socks = s;
        curl_multi_assign(c->multi, fd, s);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, poll_cb);
    return 0;
}

/* ---- client ---- */

int http_client_open(uv_loop_t *loop, struct http_client **out)
{
    static bool curl_ready;

    if (!curl_ready) {
        CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (cc != CURLE_OK) {
            log_error(LOG_HTTP, "curl_global_init: %s", curl_easy_strerror(cc));
            return ERR_HTTP;
        }
        curl_ready = true;
    }
    CURLM *multi = curl_multi_init();
    if (multi == NULL) {
        log_error(LOG_HTTP, "curl_multi_init failed");
        return ERR_HTTP;
    }
    struct http_client *c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->multi = multi;
    CURLMcode mc = curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, c);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(multi, CURLMOPT_TIMERDATA, c);
    if (mc == CURLM_OK) /* HTTP/2: many orders share one connection to the CA */
        mc = curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    if (mc == CURLM_OK) /* HTTP/1.1: no per-host limit, as many as requests */
        mc = curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    if (mc != CURLM_OK) {
        log_error(LOG_HTTP, "curl_multi_setopt: %s", curl_multi_strerror(mc));
        curl_multi_cleanup(multi);
        free(c);
        return ERR_HTTP;
    }
    int rc = uv_timer_init(loop, &c->timer);
    if (rc < 0) {
        log_error(LOG_HTTP, "uv_timer_init: %s", uv_strerror(rc));
        curl_multi_cleanup(multi);
        free(c);
        return rc;
    }
    c->timer.data = c;
    c->open_handles = 1;
    *out = c;
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    struct http_client *c = h->data;

    c->open_handles--;
    client_maybe_free(c);
}

void http_client_close(struct http_client *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    while (c->active.head != NULL)
        http_req_cancel(c->active.head);
    while (c->done.head != NULL)
        http_req_cancel(c->done.head);
    if (c->calling != NULL)
        c->calling->cb = NULL;
    /* From here curl must not call us back: we close every poll handle
     * ourselves before curl closes the sockets under them. */
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, NULL);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, NULL);
    while (c->socks != NULL)
        sock_close(c->socks);
    uv_close((uv_handle_t *)&c->timer, timer_closed);
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
}

size_t http_client_inflight(const struct http_client *c)
{
    return c->inflight;
}
