/* Loop tests of the certificate manager (src/reactor/manager.c) with a CA
 * that never answers (tests/support/fake_http, hanging): a due certificate
 * shows as "ordering" in the status document, a renew request for it is
 * refused as busy and one for an unknown name as not found, and
 * manager_stop cancels the order, reports no failure, calls done exactly
 * once and leaves a loop that closes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "fake_http.h"
#include "reactor/manager.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

static void hang(const struct fake_http_request *req, struct fake_http_response *resp, void *arg)
{
    unsigned *n = arg;

    (void)req;
    (*n)++;
    resp->hang = true;
}

struct done_rec {
    int calls;
    int failed;
};

static void done_cb(int failed, void *arg)
{
    struct done_rec *d = arg;

    d->calls++;
    d->failed = failed;
}

struct probe {
    struct manager *m;
    struct fake_http *srv;
    unsigned *requests;
    json_t *status;
    int renew_busy, renew_missing;
    char *busy_err;
};

static void probe_cb(uv_timer_t *t)
{
    struct probe *p = t->data;
    char *err = NULL;

    if (*p->requests == 0) {
        uv_timer_start(t, probe_cb, 20, 0); /* wait until the order reached the CA */
        return;
    }
    p->status = manager_status(p->m);
    p->renew_busy = manager_renew(p->m, "www", true, false, &p->busy_err);
    p->renew_missing = manager_renew(p->m, "nope", true, false, &err);
    free(err);
    manager_stop(p->m);
    fake_http_close(p->srv);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_stop_cancels_an_order_in_flight(void **state)
{
    uv_loop_t loop;
    struct fake_http *srv = NULL;
    unsigned requests = 0;
    char dir[] = "/tmp/certloop-mgrloop-XXXXXX";
    struct config *cfg = NULL;
    struct config_diag diag;
    struct store *st = NULL;
    struct manager *m = NULL;
    struct done_rec d = {0};
    struct probe p = {0};
    uv_timer_t t;

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(fake_http_start(&loop, hang, &requests, &srv), 0);
    assert_non_null(mkdtemp(dir));
    char *state_dir = xasprintf("%s/state", dir);
    char *path = xasprintf("%s/certloop.toml", dir);
    int port = fake_http_free_port();
    char *toml =
        xasprintf("[daemon]\nstate_dir = \"%s\"\n\n[http01]\nlisten = [\"127.0.0.1:%d\"]\n\n"
                  "[ca.t]\ndirectory = \"%s/dir\"\nagree_tos = true\n\n"
                  "[certificate.www]\ndomains = [\"x.test\"]\nca = \"t\"\n",
                  state_dir, port, fake_http_url(srv));
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(toml, fp);
    fclose(fp);
    config_diag_init(&diag);
    int rc = config_load(path, &cfg, &diag);
    for (size_t i = 0; i < diag.n; i++)
        fprintf(stderr, "%s\n", diag.lines[i]);
    assert_int_equal(rc, 0);
    config_diag_fini(&diag);
    assert_int_equal(store_fs_open(&loop, state_dir, 0, &st), 0);

    struct manager_opts o = {
        .loop = &loop, .cfg = cfg, .store = st, .once = false, .done = done_cb, .arg = &d};
    assert_int_equal(manager_start(&o, &m), 0);
    p.m = m;
    p.requests = &requests;
    uv_timer_init(&loop, &t);
    t.data = &p;
    p.srv = srv;
    uv_timer_start(&t, probe_cb, 20, 0);
    uv_run(&loop, UV_RUN_DEFAULT);

    assert_int_equal(d.calls, 1);
    assert_int_equal(d.failed, 0);
    assert_true(requests >= 1);
    assert_int_equal(p.renew_busy, -EBUSY);
    assert_non_null(p.busy_err);
    assert_int_equal(p.renew_missing, -ENOENT);
    /* the status document names the certificate and its state */
    assert_non_null(p.status);
    json_t *certs = json_object_get(p.status, "certificates");
    assert_int_equal(json_array_size(certs), 1);
    json_t *c0 = json_array_get(certs, 0);
    assert_string_equal(json_string_value(json_object_get(c0, "name")), "www");
    assert_string_equal(json_string_value(json_object_get(c0, "state")), "ordering");
    json_decref(p.status);
    free(p.busy_err);

    assert_int_equal(uv_loop_close(&loop), 0);
    store_close(st);
    config_unref(cfg);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", dir, (char *)NULL);
        _exit(127);
    }
    (void)waitpid(pid, NULL, 0);
    free(state_dir);
    free(path);
    free(toml);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_cancels_an_order_in_flight),
    };

    log_set_level(getenv("TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
