/* Internal to src/reactor: what the manager keeps on disk for its webhook
 * events (kept apart so that manager.c only carries call sites). */
#ifndef CERTLOOP_MANAGER_NOTIFY_H
#define CERTLOOP_MANAGER_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Expiry alerts: when the last "expiring" alert for certificate name went
 * out, kept in STATE/alerts/NAME.expiring (decimal unix seconds, 0600) so
 * that a restart does not repeat it before a day has passed. 0 when none
 * (or unreadable: then the next alert goes out when due). Reads inline (a
 * small local file, STYLE 5). state_dir and name are borrowed. */
int64_t mgr_expiring_last_read(const char *state_dir, const char *name);

/* Records t as that time (t <= 0 removes the file) with an atomic write on
 * the threadpool; done(arg) runs once on the loop afterwards (a failure is
 * logged there, naming the file). Returns 0, or < 0 (logged) and done
 * never runs. state_dir and name are copied. */
typedef void (*mgr_expiring_saved_cb)(void *arg);
int mgr_expiring_save(uv_loop_t *loop, const char *state_dir, const char *name, int64_t t,
                      mgr_expiring_saved_cb done, void *arg);

/* Removes STATE/alerts/NAME.expiring for every NAME that known(NAME, arg)
 * says is no longer configured (removed while certloop was stopped), and
 * leftover temp files. Blocking (a readdir): for start-up, before the loop
 * runs. Logs each removal; returns how many files were removed. */
int mgr_alerts_sweep(const char *state_dir, bool (*known)(const char *name, void *arg), void *arg);

#endif
