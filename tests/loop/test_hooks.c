/* Hook directories on a real loop: which files are hooks, the order they
 * run in, the certbot-compatible environment they get, failures that do
 * not stop the others, an empty or missing directory, and cancel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_fs.h"
#include "deploy/deploy.h"
#include "store/store.h"
#include "util/err.h"
#include "util/xalloc.h"

struct fx {
    uv_loop_t loop;
    char *dir;   /* the hooks.d directory */
    char *trace; /* every hook appends a line here */
    int calls;
    int status;
    size_t run, failed;
    struct deploy_hooks *op; /* when the test asks for the first failure */
    char *error;             /* deploy_hooks_error's, copied in the callback */
};

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* A hook script that appends "TAG|$0-basename|name|domains|lineage|event". */
static void write_hook(struct fx *f, const char *phase, const char *name, const char *tag,
                       int exit_code, mode_t mode)
{
    char *path = xasprintf("%s/%s/%s", f->dir, phase, name);
    char *text = xasprintf("#!/bin/sh\n"
                           "printf '%%s|%%s|%%s|%%s|%%s|%%s\\n' '%s' \"$(basename \"$0\")\" "
                           "\"$CERTLOOP_NAME\" \"$RENEWED_DOMAINS\" \"$RENEWED_LINEAGE\" "
                           "\"$CERTLOOP_EVENT\" >> '%s'\n"
                           "exit %d\n",
                           tag, f->trace, exit_code);
    write_file(path, text, mode);
    free(text);
    free(path);
}

static int setup(void **state)
{
    char tmpl[] = "/tmp/test_hooks.XXXXXX";
    struct fx *f = xcalloc(1, sizeof(*f));

    assert_non_null(mkdtemp(tmpl));
    f->dir = xasprintf("%s/hooks.d", tmpl);
    f->trace = xasprintf("%s/trace", tmpl);
    for (int p = 0; p < DEPLOY_HOOK__MAX; p++) {
        char *d = xasprintf("%s/%s", f->dir, deploy_hook_phase_name((enum deploy_hook_phase)p));
        assert_int_equal(store_mkdirs(d, 0755), 0);
        free(d);
    }
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->status = 1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char *top = xstrndup(f->dir, strlen(f->dir) - strlen("/hooks.d"));

    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    test_rm_rf(top);
    free(top);
    free(f->dir);
    free(f->trace);
    free(f->error);
    free(f);
    return 0;
}

static void done(int status, size_t run, size_t failed, void *arg)
{
    struct fx *f = arg;

    f->calls++;
    f->status = status;
    f->run = run;
    f->failed = failed;
    if (f->op != NULL && deploy_hooks_error(f->op) != NULL)
        f->error = xstrdup(deploy_hooks_error(f->op));
}

static char *trace(struct fx *f)
{
    char *s = NULL;

    if (store_read_file(f->trace, &s, NULL) < 0)
        return xstrdup("");
    return s;
}

static void test_list_skips_non_hooks_and_sorts(void **state)
{
    struct fx *f = *state;
    char *d = xasprintf("%s/deploy", f->dir);
    char **v = NULL;
    size_t n = 0;

    write_hook(f, "deploy", "30-third", "c", 0, 0755);
    write_hook(f, "deploy", "10-first", "a", 0, 0700);
    write_hook(f, "deploy", "20-not-executable", "b", 0, 0644);
    write_hook(f, "deploy", ".hidden", "h", 0, 0755);
    write_hook(f, "deploy", "40-backup~", "k", 0, 0755);
    char *sub = xasprintf("%s/50-dir", d);
    assert_int_equal(mkdir(sub, 0755), 0);
    char *link = xasprintf("%s/25-link", d);
    char *target = xasprintf("%s/10-first", d);
    assert_int_equal(symlink(target, link), 0);
    char *dangling = xasprintf("%s/26-dangling", d);
    assert_int_equal(symlink("/nonexistent/x", dangling), 0);

    assert_int_equal(deploy_hooks_list(d, &v, &n), 0);
    assert_int_equal(n, 3);
    char *want0 = xasprintf("%s/10-first", d);
    char *want1 = xasprintf("%s/25-link", d);
    char *want2 = xasprintf("%s/30-third", d);
    assert_string_equal(v[0], want0);
    assert_string_equal(v[1], want1); /* a symlink to an executable counts */
    assert_string_equal(v[2], want2);
    assert_null(v[3]);
    deploy_hooks_list_free(v);

    /* a missing directory is an empty list */
    char *missing = xasprintf("%s/nope", f->dir);
    assert_int_equal(deploy_hooks_list(missing, &v, &n), 0);
    assert_int_equal(n, 0);
    assert_null(v[0]);
    deploy_hooks_list_free(v);
    /* a file where the directory should be is an error */
    assert_int_equal(deploy_hooks_list(want0, &v, &n), -ENOTDIR);

    free(missing);
    free(want0);
    free(want1);
    free(want2);
    free(sub);
    free(link);
    free(target);
    free(dangling);
    free(d);
}

static void test_deploy_phase_runs_in_order_with_env(void **state)
{
    struct fx *f = *state;
    const char *domains[] = {"example.org", "www.example.org"};
    struct deploy_env env = {
        .name = "www",
        .domains = domains,
        .n_domains = 2,
        .cert_dir = "/var/lib/certloop/certs/www/20261125T000000Z-abcd",
        .event = "renewed",
    };

    write_hook(f, "deploy", "30-third", "c", 0, 0755);
    write_hook(f, "deploy", "10-first", "a", 0, 0755);
    write_hook(f, "deploy", "20-skipped", "b", 0, 0644);
    write_hook(f, "pre", "10-pre", "p", 0, 0755); /* another phase: not run */

    assert_int_equal(
        deploy_hooks_start(&f->loop, f->dir, DEPLOY_HOOK_DEPLOY, &env, 10, done, f, &f->op), 0);
    assert_int_equal(f->calls, 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->run, 2);
    assert_int_equal(f->failed, 0);
    assert_null(f->error); /* deploy_hooks_error: no failure */
    char *t = trace(f);
    assert_string_equal(t, "a|10-first|www|example.org www.example.org|"
                           "/var/lib/certloop/certs/www/20261125T000000Z-abcd|renewed\n"
                           "c|30-third|www|example.org www.example.org|"
                           "/var/lib/certloop/certs/www/20261125T000000Z-abcd|renewed\n");
    free(t);
}

static void test_failing_hook_does_not_stop_the_rest(void **state)
{
    struct fx *f = *state;

    write_hook(f, "post", "10-a", "a", 0, 0755);
    write_hook(f, "post", "20-fails", "b", 3, 0755);
    write_hook(f, "post", "30-c", "c", 0, 0755);
    /* pre/post hooks have no certificate: empty variables */
    assert_int_equal(
        deploy_hooks_start(&f->loop, f->dir, DEPLOY_HOOK_POST, NULL, 0, done, f, &f->op), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->status, ERR_HOOK);
    assert_int_equal(f->run, 3);
    assert_int_equal(f->failed, 1);
    /* the first failure, named for the deployment's error */
    char *want = xasprintf("hook `%s/post/20-fails` exited 3", f->dir);
    assert_non_null(f->error);
    assert_string_equal(f->error, want);
    free(want);
    char *t = trace(f);
    assert_string_equal(t, "a|10-a||||\nb|20-fails||||\nc|30-c||||\n");
    free(t);
}

static void test_empty_phase_calls_back_later(void **state)
{
    struct fx *f = *state;
    char *top = xstrndup(f->dir, strlen(f->dir) - strlen("/hooks.d"));
    char *none = xasprintf("%s/no-such-hooks.d", top);

    assert_int_equal(deploy_hooks_start(&f->loop, f->dir, DEPLOY_HOOK_PRE, NULL, 0, done, f, NULL),
                     0);
    assert_int_equal(f->calls, 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->run, 0);
    /* the same for a hooks directory that does not exist */
    assert_int_equal(deploy_hooks_start(&f->loop, none, DEPLOY_HOOK_DEPLOY, NULL, 0, done, f, NULL),
                     0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->calls, 2);
    assert_int_equal(f->run, 0);
    free(none);
    free(top);
}

static void test_cancel_is_silent_and_stops_later_hooks(void **state)
{
    struct fx *f = *state;
    struct deploy_hooks *h = NULL;
    char *slow = xasprintf("%s/pre/10-slow", f->dir);

    write_file(slow, "#!/bin/sh\nexec sleep 30\n", 0755);
    write_hook(f, "pre", "20-after", "x", 0, 0755);
    assert_int_equal(deploy_hooks_start(&f->loop, f->dir, DEPLOY_HOOK_PRE, NULL, 0, done, f, &h),
                     0);
    /* let the first hook start, then cancel */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    deploy_hooks_cancel(h);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->calls, 0);
    char *t = trace(f);
    assert_string_equal(t, ""); /* 20-after never ran */
    free(t);
    free(slow);
}

static void test_cancel_before_start(void **state)
{
    struct fx *f = *state;
    struct deploy_hooks *h = NULL;

    write_hook(f, "deploy", "10-a", "a", 0, 0755);
    assert_int_equal(deploy_hooks_start(&f->loop, f->dir, DEPLOY_HOOK_DEPLOY, NULL, 0, done, f, &h),
                     0);
    deploy_hooks_cancel(h);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->calls, 0);
    char *t = trace(f);
    assert_string_equal(t, "");
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_skips_non_hooks_and_sorts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deploy_phase_runs_in_order_with_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_hook_does_not_stop_the_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_phase_calls_back_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_is_silent_and_stops_later_hooks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_before_start, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
