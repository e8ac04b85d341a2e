/* Recent events per certificate for `certloop status` (and its --json):
 * a bounded ring of (time, event, detail) per certificate name, kept in
 * memory by the manager. Pure bookkeeping; the clock is the caller's. */
#ifndef CERTLOOP_REACTOR_HISTORY_H
#define CERTLOOP_REACTOR_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct history;

/* per_cert: events kept per certificate (the oldest are dropped); 0: 20. */
struct history *history_new(size_t per_cert);
void history_free(struct history *h);
/* Records an event: event is a short word ("scheduled", "ordering",
 * "issued", "renewed", "deployed", "failed", "rate-limited", ...), detail a
 * line (may be NULL; capped at 512 bytes; bytes outside printable ASCII
 * masked as '.'). */
void history_add(struct history *h, const char *name, int64_t t, const char *event,
                 const char *detail);
/* The events of name, oldest first, as a new JSON array of
 * {"time":N,"event":S,"detail":S|null}; an empty array if none. */
json_t *history_json(const struct history *h, const char *name);
/* Number of events kept for name. */
size_t history_count(const struct history *h, const char *name);
/* Drops the events of a certificate removed from the configuration. */
void history_forget(struct history *h, const char *name);

#endif
