/* The API's previews, which change nothing: GET/POST /v1/plan (`certloop
 * plan` of the configuration with a pasted change), POST …/NAME/test
 * (`certloop test NAME`) and POST …/NAME/renew?dry_run=true (`certloop renew
 * NAME --dry-run`, run by the daemon against the staging CAs). Each is
 * handed to the daemon's handler and answered when it calls back. */
#include "api/api_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/httpd.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#define TEST_TIMEOUT_MS (5 * 60 * 1000) /* DNS checks may wait for propagation */
#define DRY_RUN_TIMEOUT_MS (10 * 60 * 1000)

struct pview {
    struct api_wait w;
    struct api *a;
    char *name; /* owned, or NULL */
};

static struct pview *pview_new(struct aconn *c, const char *name, unsigned ms)
{
    struct pview *p = xcalloc(1, sizeof(*p));

    p->a = api_of(c);
    p->name = name != NULL ? xstrdup(name) : NULL;
    api_wait_begin(c, &p->w, ms);
    return p;
}

static void pview_end(struct pview *p, int status)
{
    struct api *a = p->a;

    api_wait_end(&p->w, status);
    free(p->name);
    free(p);
    api_job_end(a); /* last: may free a */
}

/* A handler's outcome as the answer's status. */
static int http_status(int status)
{
    switch (status) {
    case 0:
        return 200;
    case ERR_CONFIG:
        return 422;
    case -ENOENT:
        return 404;
    case -EBUSY:
        return 409;
    case -ECANCELED:
        return 503;
    default:
        return 500;
    }
}

static void view_cb(void *arg, int status, json_t *doc, const char *const *errors, size_t n)
{
    struct pview *p = arg;
    struct aconn *c = p->w.c;
    int st = http_status(status);

    if (c != NULL) {
        if (st == 200)
            api_reply_json(c, 200, doc);
        else if (st == 422)
            api_reply_errors(c, 422, "the configuration is not valid", errors, n);
        else
            api_reply_error(c, st, "%s", n > 0 ? errors[0] : err_str(status));
    }
    pview_end(p, st);
}

/* Percent-decodes a query value ('+' is a space, as forms send it). NULL
 * for a bad escape or a NUL. */
static char *unescape(const uint8_t *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        uint8_t ch = s[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            char hex[3] = {0};
            char *end = NULL;
            if (n - i < 3)
                goto bad;
            memcpy(hex, s + i + 1, 2);
            unsigned long v = strtoul(hex, &end, 16);
            if (end != hex + 2 || v == 0)
                goto bad;
            ch = (uint8_t)v;
            i += 2;
        }
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

/* The text to preview: ?config= of a GET, the body of a POST. *st set and
 * answered when the request is refused (returns NULL then); NULL with
 * *st == 0 is "no change: the configuration as it is". */
static char *plan_text(struct aconn *c, const struct httpd_req *r, const char *body, size_t len,
                       int *st)
{
    const uint8_t *q = memchr(r->target, '?', r->target_len);

    *st = 0;
    if (body != NULL) {
        const uint8_t *ct = NULL;
        size_t ctl = 0;
        if (q != NULL) {
            api_reply_error(c, 400, "POST /v1/plan takes its configuration in the body only");
            *st = 400;
            return NULL;
        }
        if (memchr(body, '\0', len) != NULL) {
            api_reply_error(c, 400, "the body holds a NUL byte");
            *st = 400;
            return NULL;
        }
        if (api_head_field(api_conn_head(c), r->head_len, "Content-Type", &ct, &ctl) && ctl >= 16 &&
            strncasecmp((const char *)ct, "application/json", 16) == 0) {
            json_error_t jerr;
            json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
            const char *t = json_string_value(json_object_get(j, "config"));
            char *out = t != NULL && json_object_size(j) == 1 ? xstrdup(t) : NULL;
            json_decref(j);
            if (out == NULL) {
                api_reply_error(c, 400, "a JSON body is {\"config\": \"TOML text\"}");
                *st = 400;
            }
            return out;
        }
        return xstrndup(body, len);
    }
    if (q == NULL)
        return NULL;
    q++;
    size_t ql = r->target_len - (size_t)(q - r->target);
    if (ql < 7 || memcmp(q, "config=", 7) != 0 || memchr(q, '&', ql) != NULL) {
        api_reply_error(c, 400, "GET /v1/plan takes one parameter, config=TOML (url-encoded)");
        *st = 400;
        return NULL;
    }
    char *t = unescape(q + 7, ql - 7);
    if (t == NULL) {
        api_reply_error(c, 400, "config= holds a bad percent escape");
        *st = 400;
    }
    return t;
}

int api_route_plan(struct aconn *c, const struct httpd_req *r, const char *body, size_t len)
{
    const struct api_handlers *h = api_handlers_of(api_of(c));
    int st;

    if (h->plan == NULL) {
        api_reply_error(c, 501, "this daemon offers no plan");
        return 501;
    }
    char *text = plan_text(c, r, body, len, &st);
    if (st != 0)
        return st;
    struct pview *p = pview_new(c, NULL, 0);
    h->plan(h->arg, text, view_cb, p);
    free(text);
    return 0;
}

int api_route_test(struct aconn *c, const char *name)
{
    const struct api_handlers *h = api_handlers_of(api_of(c));

    if (h->test == NULL) {
        api_reply_error(c, 501, "this daemon offers no test");
        return 501;
    }
    struct pview *p = pview_new(c, name, TEST_TIMEOUT_MS);
    h->test(h->arg, name, view_cb, p);
    return 0;
}

static void dry_cb(void *arg, int status, int failed, const char *summary, const char *message,
                   const char *const *errors, size_t n)
{
    struct pview *p = arg;
    struct aconn *c = p->w.c;
    int st = http_status(status);

    if (c != NULL) {
        if (st == 200) {
            json_t *lines = json_array();
            for (const char *s = summary, *e; s != NULL && *s != '\0';
                 s = e != NULL ? e + 1 : NULL) {
                e = strchr(s, '\n');
                json_array_append_new(lines, e != NULL ? json_stringn(s, (size_t)(e - s))
                                                       : json_string(s));
            }
            json_t *j = json_pack("{s:s,s:b,s:b,s:i,s:o}", "name", p->name, "dry_run", 1, "ok",
                                  failed == 0, "failed", failed, "summary", lines);
            api_reply_json(c, 200, j);
            json_decref(j);
        } else if (st == 422) {
            api_reply_errors(c, 422, "the dry run cannot start", errors, n);
        } else {
            api_reply_error(c, st, "%s",
                            message != NULL ? message
                            : n > 0         ? errors[0]
                                            : err_str(status));
        }
    }
    log_info(LOG_API, "dry run of %s: %s", p->name,
             st == 200 ? (failed == 0 ? "ok" : "failed") : "not run");
    pview_end(p, st);
}

int api_route_dry_run(struct aconn *c, const char *name)
{
    const struct api_handlers *h = api_handlers_of(api_of(c));

    if (h->dry_run == NULL) {
        api_reply_error(c, 501, "this daemon offers no dry run");
        return 501;
    }
    struct pview *p = pview_new(c, name, DRY_RUN_TIMEOUT_MS);
    const char *names[1] = {p->name};
    h->dry_run(h->arg, names, 1, dry_cb, p);
    return 0;
}
