/* Recent events per certificate for `certloop status` (and its --json):
 * a bounded ring of (time, event, detail) per certificate name, kept in
 * memory by the manager. Pure bookkeeping; the clock is the caller's. */
#ifndef CERTLOOP_REACTOR_HISTORY_H
#define CERTLOOP_REACTOR_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

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
/* The log lines of a certificate's current (or last) run: the manager
 * clears them when a run begins and adds every log line that names the
 * certificate ("cert=NAME"); the newest 40 are kept, in memory only, and
 * only for names that already have events. As a JSON array of
 * {"time":N,"line":S}. */
void history_log_line(struct history *h, const char *name, int64_t t, const char *line);
void history_log_clear(struct history *h, const char *name);
json_t *history_log_json(const struct history *h, const char *name);
/* Number of events kept for name. */
size_t history_count(const struct history *h, const char *name);
/* Drops the events of a certificate removed from the configuration. */
void history_forget(struct history *h, const char *name);

/* ---- persisted (history_file.c): the certificate's history in the store ---- */

struct store;

/* One event as the file holds it: {"time":N,"event":S,"detail":S|null}
 * and a newline. Owned. */
char *history_line(int64_t t, const char *event, const char *detail);
/* Adds the events of text (lines as history_line writes them; others are
 * skipped) to name's ring. Returns how many. */
size_t history_load_text(struct history *h, const char *name, const char *text, size_t len);
/* Fills name's ring from its history in the store (store_history_read:
 * an inline read). Returns the number of events, 0 when there is none,
 * < 0 (logged by the store) when it cannot be read. */
int history_file_load(struct history *h, struct store *store, const char *name);

/* Appends events to the store (store_history_append_start), one batch at a
 * time (a certificate's lines stay in order; the store bounds each
 * certificate's history). Failures are logged and the lines dropped. */
struct history_writer;
typedef void (*history_writer_idle_cb)(void *arg);
/* idle(arg) runs on the loop when a batch ends with nothing more queued.
 * store is borrowed and outlives the writer. */
struct history_writer *history_writer_new(struct store *store, history_writer_idle_cb idle,
                                          void *arg);
/* Queues the line; true when this started a batch (the writer went busy:
 * the owner then waits for idle before it frees the writer). */
bool history_writer_add(struct history_writer *w, const char *name, int64_t t, const char *event,
                        const char *detail);
bool history_writer_busy(const struct history_writer *w);
/* Frees w, which must not be busy; NULL is fine. */
void history_writer_free(struct history_writer *w);

#endif
