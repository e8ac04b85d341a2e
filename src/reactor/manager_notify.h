/* Internal to src/reactor: what the manager keeps in the store for its
 * webhook events (kept apart so that manager.c only carries call sites). */
#ifndef CERTLOOP_MANAGER_NOTIFY_H
#define CERTLOOP_MANAGER_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

/* Alerts that repeat daily ("expiring", "persist_expiring": enum
 * store_alert): when the last one of kind for certificate name went out,
 * kept in the store (store_alert_read) so that a restart does not repeat
 * it before a day has passed. 0 when none (or damaged: then the next alert
 * goes out when due). An inline read (STYLE 5). store and name are
 * borrowed. */
int64_t mgr_alert_last_read(struct store *store, const char *name, enum store_alert kind);

/* Records t as that time (t <= 0 forgets it) with the store's asynchronous
 * write; done(arg) runs once on the loop afterwards (a failure is logged
 * there, naming the record). Returns 0, or < 0 (logged) and done never
 * runs. name is copied. */
typedef void (*mgr_alert_saved_cb)(void *arg);
int mgr_alert_save(struct store *store, const char *name, enum store_alert kind, int64_t t,
                   mgr_alert_saved_cb done, void *arg);

#endif
