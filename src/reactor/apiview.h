/* What the HTTPS API (src/api) asks of the reactor beyond status, renew and
 * reload: `certloop plan` of the configuration with a pasted change
 * (GET/POST /v1/plan) and `certloop test NAME` (POST …/test), each as a JSON
 * document. Both run on the threadpool: they read the configuration and
 * the state directory, and test runs its checks on a private loop there. */
#ifndef CERTLOOP_REACTOR_APIVIEW_H
#define CERTLOOP_REACTOR_APIVIEW_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

/* Exactly once, on the loop. status 0: doc (borrowed for the call).
 * ERR_CONFIG: errors[] are check's "FILE:LINE:COL: error: ..." lines.
 * -ENOENT: no such certificate (test). Another < 0: errors[0] says why. */
typedef void (*apiview_cb)(void *arg, int status, json_t *doc, const char *const *errors,
                           size_t n_errors);

/* The plan of config_path's configuration with text read last as one more
 * file whose tables replace those of the same name (config_overlay's
 * extra_text), checked as `certloop check` checks: {"warnings": [...],
 * "certificates": [{"name", "change", "plan"}]} where change is "added",
 * "reorder" (a new order: names, key, CA or challenge changed), "redeploy"
 * (deploy actions only) or "unchanged", and plan is what `certloop plan
 * NAME` prints. Only the certificates text declares or changes are listed;
 * every one when text is NULL. */
void apiview_plan(uv_loop_t *loop, const char *config_path, const char *text, apiview_cb cb,
                  void *arg);

/* `certloop test NAME` against config_path's configuration as it is on disk:
 * {"name", "ok", "lines": [...], "errors": [...]}: ok when every check
 * passed, lines what test prints ("test NAME: CHECK DOMAIN: ... PASS").
 * One test runs at a time; the others wait for it, in order. */
void apiview_test(uv_loop_t *loop, const char *config_path, const char *name, apiview_cb cb,
                  void *arg);

#endif
