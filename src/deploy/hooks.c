/* Hook directories (certbot's renewal-hooks layout: pre, deploy, post):
 * listing the executables of one phase and running them one after the
 * other through deploy_exec; and the rule that identical reload commands
 * run once per round. It does not decide when a phase runs (the manager). */
#include "deploy/deploy.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const phase_names[DEPLOY_HOOK__MAX] = {
    [DEPLOY_HOOK_PRE] = "pre",
    [DEPLOY_HOOK_DEPLOY] = "deploy",
    [DEPLOY_HOOK_POST] = "post",
};

const char *deploy_hook_phase_name(enum deploy_hook_phase p)
{
    if ((unsigned)p >= DEPLOY_HOOK__MAX)
        return NULL;
    return phase_names[p];
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void deploy_hooks_list_free(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

int deploy_hooks_list(const char *dir, char ***out, size_t *n_out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **v = NULL;
    size_t n = 0, cap = 0;

    if (d == NULL) {
        int rc = -errno;
        if (rc == -ENOENT) {
            *out = xcalloc(1, sizeof(char *));
            *n_out = 0;
            return 0;
        }
        log_error(LOG_DEPLOY, "hooks %s: opendir: %s", dir, err_str(rc));
        return rc;
    }
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        size_t len = strlen(name);
        struct stat st;

        /* dot files and editor backups are never hooks */
        if (name[0] == '.' || (len > 0 && name[len - 1] == '~'))
            continue;
        char *path = xasprintf("%s/%s", dir, name);
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
            log_debug(LOG_DEPLOY, "hooks %s: skipping %s: not a regular file", dir, name);
            free(path);
            continue;
        }
        if (access(path, X_OK) < 0) {
            log_debug(LOG_DEPLOY, "hooks %s: skipping %s: not executable", dir, name);
            free(path);
            continue;
        }
        v = xreallocarray_grow(v, &cap, n + 2, sizeof(*v));
        v[n++] = path;
    }
    closedir(d);
    if (n > 0)
        qsort(v, n, sizeof(*v), cmp_str);
    if (v == NULL)
        v = xcalloc(1, sizeof(*v));
    v[n] = NULL;
    *out = v;
    *n_out = n;
    return 0;
}

/* ---- running a phase ----------------------------------------------------- */

enum hooks_state { HOOKS_RUNNING, HOOKS_ENDED };

struct deploy_hooks {
    uv_loop_t *loop;
    uv_timer_t start; /* defers the first step out of _start; .data = self */
    enum hooks_state state;
    deploy_hooks_cb cb; /* NULL once cancelled or ended */
    void *arg;
    char **paths; /* owned, NULL-terminated */
    size_t n, next;
    size_t run, failed;
    int status;
    char *error; /* owned: the first failure, or NULL */
    int64_t timeout_s;
    const char *phase;        /* static */
    struct deploy_exec *exec; /* child, or NULL */
    /* owned copies of the environment */
    char *name, *cert_dir, *event;
    char **domains;
    size_t n_domains;
};

static void hooks_closed(uv_handle_t *h)
{
    struct deploy_hooks *hk = h->data;

    deploy_hooks_list_free(hk->paths);
    free(hk->error);
    free(hk->name);
    free(hk->cert_dir);
    free(hk->event);
    for (size_t i = 0; i < hk->n_domains; i++)
        free(hk->domains[i]);
    free(hk->domains);
    free(hk);
}

static void hooks_end(struct deploy_hooks *hk)
{
    deploy_hooks_cb cb = hk->cb;

    if (hk->state == HOOKS_ENDED)
        return;
    hk->state = HOOKS_ENDED;
    hk->cb = NULL;
    if (hk->exec != NULL) {
        deploy_exec_cancel(hk->exec);
        hk->exec = NULL;
    }
    size_t run = hk->run, failed = hk->failed;
    int status = hk->status;
    void *arg = hk->arg;
    uv_close((uv_handle_t *)&hk->start, hooks_closed);
    if (cb != NULL)
        cb(status, run, failed, arg);
}

static void hooks_next(struct deploy_hooks *hk);

/* The exec action a hook runs as: argv [path] and the phase's timeout. */
static void hook_action(const struct deploy_hooks *hk, char *argv[2], struct cfg_deploy *d)
{
    memset(d, 0, sizeof(*d));
    d->type = CFG_DEPLOY_EXEC;
    d->command.v = argv;
    d->command.n = 1;
    d->timeout_s = hk->timeout_s;
    d->uid = (uid_t)-1;
    d->gid = (gid_t)-1;
}

/* Counts a failed hook; the first one's description is kept. */
static void hook_failed(struct deploy_hooks *hk, const char *path, int status,
                        const struct deploy_exec_result *res)
{
    hk->failed++;
    if (hk->status != 0)
        return;
    hk->status = status;
    char *argv[2] = {(char *)path, NULL};
    struct cfg_deploy d;
    hook_action(hk, argv, &d);
    hk->error = deploy_exec_describe("hook", &d, status, res);
}

static void hook_done(int status, const struct deploy_exec_result *res, void *arg)
{
    struct deploy_hooks *hk = arg;

    hk->exec = NULL;
    if (status < 0)
        hook_failed(hk, hk->paths[hk->next - 1], status, res);
    hooks_next(hk);
}

static void hooks_next(struct deploy_hooks *hk)
{
    while (hk->state == HOOKS_RUNNING && hk->next < hk->n) {
        const char *path = hk->paths[hk->next++];
        char *argv[2] = {(char *)path, NULL};
        struct cfg_deploy d;
        hook_action(hk, argv, &d);
        struct deploy_env env = {
            .name = hk->name,
            .domains = (const char *const *)hk->domains,
            .n_domains = hk->n_domains,
            .cert_dir = hk->cert_dir,
            .event = hk->event,
        };
        hk->run++;
        log_info(LOG_DEPLOY, "hooks %s: running %s", hk->phase, path);
        int rc = deploy_exec_start(hk->loop, &d, &env, hook_done, hk, &hk->exec);
        if (rc == 0)
            return; /* hook_done continues */
        hk->exec = NULL;
        hook_failed(hk, path, ERR_HOOK, NULL); /* logged by deploy_exec_start */
    }
    hooks_end(hk);
}

static void on_start(uv_timer_t *t)
{
    hooks_next(t->data);
}

int deploy_hooks_start(uv_loop_t *loop, const char *hooks_dir, enum deploy_hook_phase phase,
                       const struct deploy_env *env, int64_t timeout_s, deploy_hooks_cb cb,
                       void *arg, struct deploy_hooks **out)
{
    const char *phase_name = deploy_hook_phase_name(phase);
    char **paths = NULL;
    size_t n = 0;

    if (phase_name == NULL)
        return -EINVAL;
    char *dir =
        xasprintf("%s/%s", hooks_dir != NULL ? hooks_dir : DEPLOY_HOOKS_DIR_DEFAULT, phase_name);
    int rc = deploy_hooks_list(dir, &paths, &n);
    free(dir);
    if (rc < 0)
        return rc;

    struct deploy_hooks *hk = xcalloc(1, sizeof(*hk));
    hk->loop = loop;
    hk->state = HOOKS_RUNNING;
    hk->cb = cb;
    hk->arg = arg;
    hk->paths = paths;
    hk->n = n;
    hk->phase = phase_name;
    hk->timeout_s = timeout_s > 0 ? timeout_s : DEPLOY_HOOK_TIMEOUT_S;
    if (env != NULL) {
        hk->name = env->name != NULL ? xstrdup(env->name) : NULL;
        hk->cert_dir = env->cert_dir != NULL ? xstrdup(env->cert_dir) : NULL;
        hk->event = env->event != NULL ? xstrdup(env->event) : NULL;
        if (env->n_domains > 0) {
            hk->domains = xcalloc(env->n_domains + 1, sizeof(char *));
            for (size_t i = 0; i < env->n_domains; i++)
                hk->domains[i] = xstrdup(env->domains[i]);
            hk->n_domains = env->n_domains;
        }
    }
    hk->start.data = hk;
    uv_timer_init(loop, &hk->start);
    uv_timer_start(&hk->start, on_start, 0, 0);
    if (out != NULL)
        *out = hk;
    return 0;
}

void deploy_hooks_cancel(struct deploy_hooks *hk)
{
    if (hk == NULL)
        return;
    hk->cb = NULL;
    hooks_end(hk);
}

const char *deploy_hooks_error(const struct deploy_hooks *hk)
{
    return hk != NULL ? hk->error : NULL;
}

/* ---- once per round ------------------------------------------------------ */

bool deploy_exec_same(const struct cfg_deploy *a, const struct cfg_deploy *b)
{
    if (a->type != CFG_DEPLOY_EXEC || b->type != CFG_DEPLOY_EXEC || a->command.n != b->command.n)
        return false;
    for (size_t i = 0; i < a->command.n; i++) {
        if (strcmp(a->command.v[i], b->command.v[i]) != 0)
            return false;
    }
    return true;
}

size_t deploy_exec_dedup(const struct cfg_deploy *const *acts, size_t n, size_t *idx_out)
{
    size_t k = 0;

    /* quadratic, but a round holds a handful of reload commands */
    for (size_t i = 0; i < n; i++) {
        if (acts[i] == NULL || acts[i]->type != CFG_DEPLOY_EXEC)
            continue;
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++)
            dup = deploy_exec_same(acts[idx_out[j]], acts[i]);
        if (!dup)
            idx_out[k++] = i;
    }
    return k;
}
