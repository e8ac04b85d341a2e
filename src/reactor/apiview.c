/* The API's previews: `certloop plan` of a pasted configuration change and
 * `certloop test NAME`, run on the threadpool with the CLI's own functions
 * (plan_show, plan_check_more, preflight_run) writing to memory streams, so
 * the answers say exactly what the commands print. Touches nothing of the
 * running daemon: a fresh load of the configuration, the state directory
 * read as `plan` reads it (no lock). */
#include "reactor/apiview.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "reactor/plan.h"
#include "reactor/preflight.h"
#include "util/err.h"
#include "util/xalloc.h"

struct view {
    uv_work_t work; /* .data = self */
    uv_loop_t *loop;
    struct view *next; /* tests waiting for the one that runs */
    bool test;
    char *config_path, *text, *name; /* owned */
    apiview_cb cb;
    void *arg;
    int status;
    json_t *doc;
    struct config_diag diag; /* the errors */
};

/* A memory stream's text as an array of its lines (owned). */
static json_t *lines_of(char *text)
{
    json_t *arr = json_array();

    for (char *s = text, *e; s != NULL && *s != '\0'; s = e != NULL ? e + 1 : NULL) {
        e = strchr(s, '\n');
        json_array_append_new(arr, e != NULL ? json_stringn(s, (size_t)(e - s)) : json_string(s));
    }
    return arr;
}

/* What changed for c between cur (may be NULL) and the new snapshot. */
static const char *change_of(const struct config *cur, const struct cfg_cert *c)
{
    const struct cfg_cert *old = cur != NULL ? config_cert_find(cur, c->name) : NULL;

    if (old == NULL)
        return "added";
    if (!config_cert_equal_order(old, c))
        return "reorder";
    if (!config_cert_equal_deploy(old, c))
        return "redeploy";
    return "unchanged";
}

static void plan_work(struct view *v)
{
    struct config *cur = NULL, *cfg = NULL;
    struct config_overlay ov = {.extra_text = v->text};
    char *wtext = NULL, *ptext = NULL;
    size_t wlen = 0, plen = 0;

    v->status = config_load_overlay(v->config_path, &ov, &cfg, &v->diag);
    if (v->status < 0) {
        if (v->diag.n == 0)
            config_diag_add(&v->diag, "%s: %s", v->config_path, err_str(v->status));
        v->status = ERR_CONFIG;
        return;
    }
    FILE *w = open_memstream(&wtext, &wlen);
    size_t bad = w != NULL ? plan_check_more(cfg, w) : 0;
    if (w != NULL)
        fclose(w);
    if (bad > 0) {
        json_t *lines = lines_of(wtext);
        size_t i;
        json_t *l;
        json_array_foreach(lines, i, l)
        {
            if (strstr(json_string_value(l), ": error: ") != NULL)
                config_diag_add(&v->diag, "%s", json_string_value(l));
        }
        json_decref(lines);
        free(wtext);
        config_unref(cfg);
        v->status = ERR_CONFIG;
        return;
    }
    if (v->text != NULL)
        (void)config_load(v->config_path, &cur, NULL); /* what runs now, to compare */
    json_t *certs = json_array();
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < cfg->n_certs; i++) {
        const struct cfg_cert *c = &cfg->certs[i];
        const char *ch = change_of(cur, c);
        bool pasted = c->where.file != NULL && strcmp(c->where.file, CONFIG_PREVIEW_FILE) == 0;
        if (v->text != NULL && !pasted && strcmp(ch, "unchanged") == 0)
            continue;
        FILE *p = open_memstream(&ptext, &plen);
        if (p == NULL)
            continue;
        char *const names[1] = {c->name};
        (void)plan_show(cfg, names, 1, now, p, p);
        fclose(p);
        json_array_append_new(certs, json_pack("{s:s,s:s,s:s}", "name", c->name, "change",
                                               v->text != NULL ? ch : "unchanged", "plan",
                                               ptext != NULL ? ptext : ""));
        free(ptext);
        ptext = NULL;
    }
    v->doc = json_pack("{s:o,s:o}", "warnings", lines_of(wtext), "certificates", certs);
    free(wtext);
    config_unref(cur);
    config_unref(cfg);
    v->status = 0;
}

static void test_work(struct view *v)
{
    struct config *cfg = NULL;
    char *otext = NULL, *etext = NULL;
    size_t olen = 0, elen = 0;

    v->status = config_load(v->config_path, &cfg, &v->diag);
    if (v->status < 0) {
        if (v->diag.n == 0)
            config_diag_add(&v->diag, "%s: %s", v->config_path, err_str(v->status));
        v->status = ERR_CONFIG;
        return;
    }
    if (config_cert_find(cfg, v->name) == NULL) {
        config_unref(cfg);
        config_diag_add(&v->diag, "no certificate named %s", v->name);
        v->status = -ENOENT;
        return;
    }
    FILE *o = open_memstream(&otext, &olen);
    FILE *e = open_memstream(&etext, &elen);
    int rc = 1;
    if (o != NULL && e != NULL)
        rc = preflight_run(cfg, v->name, o, e);
    if (o != NULL)
        fclose(o);
    if (e != NULL)
        fclose(e);
    v->doc = json_pack("{s:s,s:b,s:o,s:o}", "name", v->name, "ok", rc == 0, "lines",
                       lines_of(otext), "errors", lines_of(etext));
    free(otext);
    free(etext);
    config_unref(cfg);
    v->status = 0;
}

static void work_cb(uv_work_t *w)
{
    struct view *v = w->data;

    if (v->test)
        test_work(v);
    else
        plan_work(v);
}

/* Tests run one at a time. A test holds a threadpool thread while its
 * private loop runs, and its tls-alpn-01 probes are threadpool work too:
 * with as many tests as threads (libuv's 4) running, the probes never start
 * and every thread waits for ever (the store's writes with them). One test
 * leaves the others free. Only touched on the daemon's loop. */
static struct {
    struct view *head, *tail; /* waiting */
    bool running;
} tests;

static void start(struct view *v);

static void after_cb(uv_work_t *w, int status)
{
    struct view *v = w->data;

    if (status < 0) {
        v->status = -ECANCELED;
        config_diag_add(&v->diag, "cancelled");
    }
    v->cb(v->arg, v->status, v->doc, (const char *const *)v->diag.lines, v->diag.n);
    json_decref(v->doc);
    config_diag_fini(&v->diag);
    free(v->config_path);
    free(v->text);
    bool test = v->test;
    free(v->name);
    free(v);
    if (test) {
        tests.running = false;
        struct view *next = tests.head;
        if (next != NULL) {
            tests.head = next->next;
            if (tests.head == NULL)
                tests.tail = NULL;
            start(next);
        }
    }
}

static void start(struct view *v)
{
    if (v->test) {
        if (tests.running) {
            if (tests.tail != NULL)
                tests.tail->next = v;
            else
                tests.head = v;
            tests.tail = v;
            return;
        }
        tests.running = true;
    }
    int rc = uv_queue_work(v->loop, &v->work, work_cb, after_cb);
    if (rc < 0) {
        v->status = rc;
        config_diag_add(&v->diag, "cannot start: %s", uv_strerror(rc));
        after_cb(&v->work, 0);
    }
}

void apiview_plan(uv_loop_t *loop, const char *config_path, const char *text, apiview_cb cb,
                  void *arg)
{
    struct view *v = xcalloc(1, sizeof(*v));

    v->loop = loop;
    v->work.data = v;
    config_diag_init(&v->diag);
    v->config_path = xstrdup(config_path);
    v->text = text != NULL ? xstrdup(text) : NULL;
    v->cb = cb;
    v->arg = arg;
    start(v);
}

void apiview_test(uv_loop_t *loop, const char *config_path, const char *name, apiview_cb cb,
                  void *arg)
{
    struct view *v = xcalloc(1, sizeof(*v));

    v->loop = loop;
    v->work.data = v;
    config_diag_init(&v->diag);
    v->test = true;
    v->config_path = xstrdup(config_path);
    v->name = xstrdup(name);
    v->cb = cb;
    v->arg = arg;
    start(v);
}
