/* A deadline heap: many timers (one per managed certificate, thousands of
 * them) on ONE uv_timer_t armed for the earliest deadline, so the loop
 * never wakes between deadlines. Deadlines are int64 milliseconds on a
 * clock the owner chooses (default: Unix time in ms, the wall clock, since
 * renewal times are wall-clock instants); tests inject a fake clock and
 * call timerheap_run_due() instead of waiting. */
#ifndef CERTLOOP_REACTOR_TIMERHEAP_H
#define CERTLOOP_REACTOR_TIMERHEAP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct timerheap;
struct timerheap_entry;

/* Returns "now" in milliseconds on the heap's clock. */
typedef int64_t (*timerheap_clock_cb)(void *clock_arg);
/* A deadline has come. The entry is already freed: forget the handle. The
 * callback may add, cancel and reschedule any other entries. */
typedef void (*timerheap_cb)(void *arg);
typedef void (*timerheap_close_cb)(void *arg);

/* Unix time in milliseconds (CLOCK_REALTIME): the default clock. */
int64_t timerheap_clock_realtime(void *unused);

/* Creates a heap. loop may be NULL: then no uv timer exists and the owner
 * drives the heap with timerheap_run_due() (unit tests). clock NULL means
 * timerheap_clock_realtime. Owned: release with timerheap_close. */
int timerheap_open(uv_loop_t *loop, timerheap_clock_cb clock, void *clock_arg,
                   struct timerheap **out);
/* Schedules cb(arg) at when_ms (a time in the past fires on the next loop
 * iteration, never from inside this call). Entries with equal deadlines fire
 * in the order they were added. *out (optional) is a handle for
 * timerheap_cancel/timerheap_reschedule, valid until the callback starts or
 * the entry is cancelled. Never fails (allocation failure aborts). */
void timerheap_add(struct timerheap *h, int64_t when_ms, timerheap_cb cb, void *arg,
                   struct timerheap_entry **out);
/* Removes an entry; its callback never runs. O(log n). NULL is fine. */
void timerheap_cancel(struct timerheap_entry *e);
/* Moves an entry to a new deadline, keeping the handle. O(log n). */
void timerheap_reschedule(struct timerheap_entry *e, int64_t when_ms);
int64_t timerheap_entry_when(const struct timerheap_entry *e);
/* Number of pending entries. */
size_t timerheap_count(const struct timerheap *h);
/* The earliest deadline; 0 and *when_ms set, or -ENOENT when empty. */
int timerheap_next(const struct timerheap *h, int64_t *when_ms);
/* Fires every entry due on the clock now (deadline <= now), earliest first.
 * Entries added by those callbacks with a deadline already due fire on the
 * next round, so a callback that re-adds itself at "now" cannot spin.
 * Returns the number of callbacks run. The uv timer calls this; tests call it
 * directly after moving their fake clock. */
size_t timerheap_run_due(struct timerheap *h);
/* Wakes the loop at least every max_ms even without a deadline (0: never,
 * the default). With the wall clock this bounds how late a deadline fires
 * after a clock jump or a suspend, which the loop's monotonic timer does not
 * see. */
void timerheap_set_max_sleep(struct timerheap *h, int64_t max_ms);
/* Cancels every entry (no callback runs), closes the uv timer and frees the
 * heap; cb (optional) runs when that is done: on the loop after the timer's
 * close callback, or at once when the heap has no loop. */
void timerheap_close(struct timerheap *h, timerheap_close_cb cb, void *arg);

#endif
