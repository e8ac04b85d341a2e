/* The API's write side: POST /v1/certificates writes conf.d/api/NAME.toml
 * (never an administrator's file) and DELETE /v1/certificates/NAME removes
 * one of those; each then has the daemon reload. The whole configuration
 * the change leads to is loaded first (config_load_overlay, the load
 * `certloop check` does) on the threadpool, and nothing is written when it
 * does not validate. One change runs at a time, in arrival order, so that
 * two requests with the same request_identifier create one certificate. */
#include "api/api_internal.h"

#include <errno.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#define IDENT_MAX 200
#define IDENT_TAG "# request_identifier: "

struct wreq {
    struct api_wait w;
    struct api *a;
    uv_work_t work;                                 /* .data = self */
    bool del;                                       /* DELETE, else POST */
    bool running;                                   /* the running configuration has name */
    char *name, *ident, *text, *path, *config_path; /* owned */
    /* what the work found */
    int status;  /* the answer when not 0; 0: written, reload next */
    char *msg;   /* owned: the sentence of a refusal */
    char *found; /* owned: the certificate a known request_identifier created */
    char *old;   /* owned: a deleted file's text, put back if the reload fails */
    struct config_diag diag;
    struct wreq *next;
};

struct api_writes {
    struct wreq *head, *tail; /* head runs; the rest wait */
};

static void wreq_free(struct wreq *q)
{
    free(q->name);
    free(q->ident);
    free(q->text);
    free(q->path);
    free(q->config_path);
    free(q->msg);
    free(q->found);
    free(q->old);
    config_diag_fini(&q->diag);
    free(q);
}

void api_writes_free(struct api_writes *w)
{
    free(w);
}

static bool ident_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > IDENT_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    }
    return true;
}

/* A TOML basic string: quotes, backslashes and control bytes escaped. */
static void toml_str(struct buf *b, const char *s)
{
    buf_append_str(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            buf_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            buf_printf(b, "\\u%04x", *p);
        else
            buf_append(b, p, 1);
    }
    buf_append_str(b, "\"");
}

/* The body as the file's text, or NULL with *why (a sentence) and *st. */
static char *body_to_toml(json_t *j, char **name, char **ident, int *st, char **why)
{
    static const char *const known[] = {
        "name", "domains", "key", "challenge", "ca", "auto_renew", "request_identifier", NULL};
    const char *k;
    json_t *v;

    *st = 422;
    json_object_foreach(j, k, v)
    {
        bool ok = false;
        for (size_t i = 0; known[i] != NULL; i++)
            ok = ok || strcmp(k, known[i]) == 0;
        if (!ok) {
            *why = xasprintf("unknown field \"%.64s\": the fields are name, domains, key, "
                             "challenge, ca, auto_renew and request_identifier",
                             k);
            return NULL;
        }
    }
    const char *n = json_string_value(json_object_get(j, "name"));
    json_t *doms = json_object_get(j, "domains");
    if (n == NULL || !api_name_ok(n, API_NAME_MAX)) {
        *why = xstrdup("name must be 1 to 200 of A-Z a-z 0-9 . _ - not starting with '.'");
        return NULL;
    }
    if (!json_is_array(doms) || json_array_size(doms) == 0) {
        *why = xstrdup("domains must be a non-empty array of names");
        return NULL;
    }
    static const char *const strs[] = {"key", "challenge", "ca"};
    for (size_t i = 0; i < 3; i++) {
        json_t *s = json_object_get(j, strs[i]);
        if (s != NULL && !json_is_string(s)) {
            *why = xasprintf("%s must be a string", strs[i]);
            return NULL;
        }
    }
    json_t *ar = json_object_get(j, "auto_renew");
    if (ar != NULL && !json_is_boolean(ar)) {
        *why = xstrdup("auto_renew must be true or false");
        return NULL;
    }
    if (json_is_false(ar)) {
        *why = xstrdup("auto_renew = false is not offered: certloop renews every certificate it "
                       "manages (leave it out or send true)");
        return NULL;
    }
    json_t *id = json_object_get(j, "request_identifier");
    if (id != NULL && (!json_is_string(id) || !ident_ok(json_string_value(id)))) {
        *why = xstrdup("request_identifier must be 1 to 200 printable ASCII characters");
        return NULL;
    }

    struct buf b = BUF_INIT(API_BODY_MAX * 2);
    buf_printf(&b,
               "# Written by the certloop API (POST /v1/certificates); DELETE\n"
               "# /v1/certificates/%s removes it. Not to be edited by hand.\n",
               n);
    if (id != NULL)
        buf_printf(&b, IDENT_TAG "%s\n", json_string_value(id));
    /* a name with a dot is a quoted key: [certificate.a.b] would be a
     * table b inside a inside certificate */
    buf_append_str(&b, "[certificate.");
    if (strchr(n, '.') != NULL)
        toml_str(&b, n);
    else
        buf_append_str(&b, n);
    buf_append_str(&b, "]\ndomains = [");
    size_t i;
    json_t *d;
    json_array_foreach(doms, i, d)
    {
        if (!json_is_string(d)) {
            *why = xstrdup("domains must be a non-empty array of names");
            buf_fini(&b);
            return NULL;
        }
        if (i > 0)
            buf_append_str(&b, ", ");
        toml_str(&b, json_string_value(d));
    }
    buf_append_str(&b, "]\n");
    for (size_t s = 0; s < 3; s++) {
        const char *val = json_string_value(json_object_get(j, strs[s]));
        if (val == NULL)
            continue;
        buf_printf(&b, "%s = ", strs[s]);
        toml_str(&b, val);
        buf_append_str(&b, "\n");
    }
    *name = xstrdup(n);
    *ident = id != NULL ? xstrdup(json_string_value(id)) : NULL;
    return b.data; /* owned by the caller now */
}

/* The certificate an API file records ident for, or NULL (owned). */
static char *ident_find(const char *dir, const char *ident)
{
    char *pattern = xasprintf("%s/*.toml", dir);
    char *want = xasprintf(IDENT_TAG "%s\n", ident);
    char *found = NULL;
    glob_t g;

    memset(&g, 0, sizeof(g));
    if (glob(pattern, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc && found == NULL; i++) {
            char *text = NULL;
            size_t len = 0;
            if (store_read_file(g.gl_pathv[i], &text, &len) < 0)
                continue;
            /* in the head comment, before the table */
            char *tab = strstr(text, "\n[");
            char *at = strstr(text, want);
            if (at != NULL && (tab == NULL || at < tab) && (at == text || at[-1] == '\n')) {
                const char *b = strrchr(g.gl_pathv[i], '/') + 1;
                found = xstrndup(b, strlen(b) - 5);
            }
            free(text);
        }
    }
    globfree(&g);
    free(pattern);
    free(want);
    return found;
}

static void refuse(struct wreq *q, int status, char *msg)
{
    q->status = status;
    q->msg = msg;
}

/* The threadpool part: every check that reads files, then the write. */
static void work_cb(uv_work_t *w)
{
    struct wreq *q = w->data;
    char *dir = config_api_dir(q->config_path);
    struct config *cfg = NULL;
    bool exists = access(q->path, F_OK) == 0;
    const char *step = NULL;
    int rc;

    if (q->del) {
        if (!exists) {
            if (q->running)
                refuse(q, 403,
                       xasprintf("%s is declared by the administrator's configuration, not "
                                 "through the API: only certificates POST /v1/certificates "
                                 "created can be deleted",
                                 q->name));
            else
                refuse(q, 404, xasprintf("no certificate named %s", q->name));
            goto out;
        }
        struct config_overlay ov = {.del_name = q->name};
        rc = config_load_overlay(q->config_path, &ov, &cfg, &q->diag);
        if (rc < 0) {
            refuse(q, 409, xasprintf("removing %s would leave the configuration invalid", q->name));
            goto out;
        }
        size_t len = 0;
        (void)store_read_file(q->path, &q->old, &len);
        if (unlink(q->path) < 0) {
            refuse(q, 500, xasprintf("%s: unlink: %s", q->path, err_str(-errno)));
            goto out;
        }
        goto out;
    }
    if (q->ident != NULL && (q->found = ident_find(dir, q->ident)) != NULL) {
        /* the same request again: what it created; the identifier with
         * another body is a client's mistake, not the same request */
        char *fpath = xasprintf("%s/%s.toml", dir, q->found), *ftext = NULL;
        size_t flen = 0;
        bool same = store_read_file(fpath, &ftext, &flen) == 0 && strcmp(ftext, q->text) == 0;
        free(fpath);
        free(ftext);
        if (same)
            q->status = 200;
        else
            refuse(q, 409,
                   xasprintf("request_identifier %s created %s with another body: send the "
                             "same body again, or a new request_identifier",
                             q->ident, q->found));
        goto out;
    }
    if (q->running && !exists) {
        refuse(q, 409,
               xasprintf("%s is declared by the administrator's configuration: choose another "
                         "name",
                         q->name));
        goto out;
    }
    if (exists) {
        refuse(q, 409,
               xasprintf("%s was created through the API already%s: DELETE it first or choose "
                         "another name",
                         q->name, q->ident != NULL ? " by another request_identifier" : ""));
        goto out;
    }
    struct config_overlay ov = {.put_name = q->name, .put_text = q->text};
    rc = config_load_overlay(q->config_path, &ov, &cfg, &q->diag);
    if (rc < 0) {
        if (q->diag.n == 0)
            config_diag_add(&q->diag, "%s: %s", q->config_path, err_str(rc));
        refuse(q, 422, xasprintf("the configuration with %s would not be valid", q->name));
        goto out;
    }
    rc = store_mkdirs(dir, 0750);
    if (rc == 0)
        rc = store_write_atomic(q->path, q->text, strlen(q->text), 0640, (uid_t)-1, (gid_t)-1,
                                &step);
    if (rc < 0)
        refuse(q, 500,
               xasprintf("%s: %s: %s", q->path, step != NULL ? step : "mkdir", err_str(rc)));
out:
    config_unref(cfg);
    free(dir);
}

static void start_next(struct api_writes *ws);

/* q (the head) has answered: the next change runs. */
static void finish(struct wreq *q)
{
    struct api *a = q->a;
    struct api_writes *ws = *api_writes_slot(a);

    ws->head = q->next;
    if (ws->head == NULL)
        ws->tail = NULL;
    wreq_free(q);
    start_next(ws);
    api_job_end(a); /* last: may free a */
}

/* The status document's object for name (a new reference), or NULL. A
 * name can be there twice: a certificate removed by a reload while its run
 * was in flight stays listed until the run ends, beside the one a later
 * reload added under the same name (appended: the last one is the running
 * configuration's). */
static json_t *resource(struct api *a, const char *name)
{
    const struct api_handlers *h = api_handlers_of(a);
    json_t *doc = NULL, *one = NULL;
    size_t i;
    json_t *o;

    if (h->status == NULL || h->status(h->arg, &doc) < 0 || doc == NULL)
        return NULL;
    json_array_foreach(json_object_get(doc, "certificates"), i, o)
    {
        const char *n = json_string_value(json_object_get(o, "name"));
        if (n != NULL && strcmp(n, name) == 0) {
            json_decref(one);
            one = json_incref(o);
        }
    }
    json_decref(doc);
    return one;
}

static void answer_resource(struct wreq *q, int status, const char *name)
{
    json_t *one = resource(q->a, name);

    if (one == NULL)
        one = json_pack("{s:s}", "name", name);
    if (q->w.c != NULL)
        api_reply_json(q->w.c, status, one);
    api_wait_end(&q->w, status);
    json_decref(one);
}

static void reload_cb(void *arg, int status, const char *message, const char *const *errors,
                      size_t n_errors)
{
    struct wreq *q = arg;
    int st;

    if (status == 0) {
        log_info(LOG_API, "%s %s: %s", q->del ? "deleted" : "created", q->path,
                 message != NULL ? message : "reloaded");
        if (q->del) {
            json_t *j = json_pack("{s:s,s:b}", "name", q->name, "deleted", 1);
            if (q->w.c != NULL)
                api_reply_json(q->w.c, 200, j);
            api_wait_end(&q->w, 200);
            json_decref(j);
        } else {
            answer_resource(q, 201, q->name);
        }
        finish(q);
        return;
    }
    /* the file is what it was before: the running configuration stays true */
    const char *step = NULL;
    int rc = q->del ? store_write_atomic(q->path, q->old != NULL ? q->old : "",
                                         q->old != NULL ? strlen(q->old) : 0, 0640, (uid_t)-1,
                                         (gid_t)-1, &step)
                    : (unlink(q->path) < 0 ? -errno : 0);
    if (rc < 0)
        log_error(LOG_API, "%s: putting it back after the failed reload: %s", q->path, err_str(rc));
    st = status == -ECANCELED ? 503 : 500;
    if (q->w.c != NULL) {
        const char *none[1] = {message != NULL ? message : err_str(status)};
        api_reply_errors(q->w.c, st,
                         status == -ECANCELED ? "the daemon is stopping; nothing was changed"
                                              : "the reload failed; nothing was changed",
                         n_errors > 0 ? errors : none, n_errors > 0 ? n_errors : 1);
    }
    api_wait_end(&q->w, st);
    finish(q);
}

static void after_cb(uv_work_t *w, int status)
{
    struct wreq *q = w->data;
    const struct api_handlers *h = api_handlers_of(q->a);

    if (status < 0 && q->status == 0)
        refuse(q, 503, xstrdup("the daemon is stopping"));
    if (q->status == 200 && q->found != NULL) {
        answer_resource(q, 200, q->found);
        finish(q);
        return;
    }
    if (q->status != 0) {
        if (q->w.c != NULL) {
            if (q->diag.n > 0)
                api_reply_errors(q->w.c, q->status, q->msg, (const char *const *)q->diag.lines,
                                 q->diag.n);
            else
                api_reply_error(q->w.c, q->status, "%s", q->msg);
        }
        api_wait_end(&q->w, q->status);
        finish(q);
        return;
    }
    if (h->reload == NULL || api_closing(q->a)) {
        reload_cb(q, -ECANCELED, "the daemon is stopping", NULL, 0);
        return;
    }
    h->reload(h->arg, reload_cb, q);
}

static void start_next(struct api_writes *ws)
{
    struct wreq *q = ws->head;

    if (q == NULL)
        return;
    if (api_closing(q->a)) {
        /* nobody to answer: drop the waiting changes */
        refuse(q, 503, xstrdup("the daemon is stopping"));
        after_cb(&q->work, 0);
        return;
    }
    int rc = uv_queue_work(api_loop(q->a), &q->work, work_cb, after_cb);
    if (rc < 0) {
        refuse(q, 500, xasprintf("cannot start the change: %s", uv_strerror(rc)));
        after_cb(&q->work, 0);
    }
}

/* Queues q (its request waits for it) and starts it when nothing runs. */
static int enqueue(struct aconn *c, struct wreq *q)
{
    struct api *a = api_of(c);
    struct api_writes **slot = api_writes_slot(a);

    if (*slot == NULL)
        *slot = xcalloc(1, sizeof(**slot));
    struct api_writes *ws = *slot;
    q->a = a;
    q->work.data = q;
    q->config_path = xstrdup(api_config_path(a));
    char *dir = config_api_dir(q->config_path);
    q->path = xasprintf("%s/%s.toml", dir, q->name);
    free(dir);
    config_diag_init(&q->diag);
    api_wait_begin(c, &q->w, 0);
    bool idle = ws->head == NULL;
    if (ws->tail != NULL)
        ws->tail->next = q;
    else
        ws->head = q;
    ws->tail = q;
    if (idle)
        start_next(ws);
    return 0;
}

/* Whether the running configuration has a certificate named name. */
static bool running_has(struct api *a, const char *name)
{
    json_t *one = resource(a, name);
    bool has = one != NULL;

    json_decref(one);
    return has;
}

int api_route_create(struct aconn *c, const char *body, size_t len)
{
    struct api *a = api_of(c);
    json_error_t jerr;
    int st = 0;
    char *why = NULL, *name = NULL, *ident = NULL;

    if (api_config_path(a) == NULL) {
        api_reply_error(c, 501, "this daemon was started without a configuration file");
        return 501;
    }
    json_t *j = body != NULL ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!json_is_object(j)) {
        api_reply_error(c, 400, "the body must be a JSON object: %s",
                        j == NULL && body != NULL ? jerr.text : "none sent");
        json_decref(j);
        return 400;
    }
    char *text = body_to_toml(j, &name, &ident, &st, &why);
    json_decref(j);
    if (text == NULL) {
        api_reply_error(c, st, "%s", why);
        free(why);
        return st;
    }
    struct wreq *q = xcalloc(1, sizeof(*q));
    q->name = name;
    q->ident = ident;
    q->text = text;
    q->running = running_has(a, name);
    return enqueue(c, q);
}

int api_route_delete(struct aconn *c, const char *name)
{
    struct api *a = api_of(c);

    if (api_config_path(a) == NULL) {
        api_reply_error(c, 501, "this daemon was started without a configuration file");
        return 501;
    }
    struct wreq *q = xcalloc(1, sizeof(*q));
    q->del = true;
    q->name = xstrdup(name);
    q->running = running_has(a, name);
    return enqueue(c, q);
}
