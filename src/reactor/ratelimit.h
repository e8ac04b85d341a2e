/* CA politeness as pure functions over an injected clock (Unix seconds):
 * a sliding-window limiter for new orders per CA account, a failure
 * tracker per identifier (a CA refuses more than a few failed validations
 * per name per hour), and exponential backoff with jitter from an injected
 * random source. Nothing here reads a clock or touches libuv. */
#ifndef CERTLOOP_REACTOR_RATELIMIT_H
#define CERTLOOP_REACTOR_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Let's Encrypt allows 300 new orders per account per 3 hours; we stay
 * under it so that manual use of the same account keeps some room. */
#define RATELIMIT_ORDERS_DEFAULT 250
#define RATELIMIT_ORDERS_WINDOW_S (3 * 3600)
/* Let's Encrypt: 5 authorization failures per identifier per account per hour. */
#define RATELIMIT_FAILURES_DEFAULT 5
#define RATELIMIT_FAILURES_WINDOW_S 3600
/* Consecutive failures after which status shows the identifier as paused-ish. */
#define RATELIMIT_PAUSE_HINT_DEFAULT 10

/* ---- New orders per CA account: a sliding log of the last `limit` order
 * times (8 bytes each). */
struct ratelimit_window {
    int64_t *t; /* owned ring of `limit` times, oldest at head */
    uint32_t limit;
    uint32_t head, n;
    int64_t window_s;
};

/* limit 0 means no limit. */
void ratelimit_window_init(struct ratelimit_window *w, uint32_t limit, int64_t window_s);
void ratelimit_window_fini(struct ratelimit_window *w);
/* The earliest time >= now at which one more event fits: now when allowed. */
int64_t ratelimit_window_next(const struct ratelimit_window *w, int64_t now);
/* Records an event at now (call when the new-order request is sent).
 * Returns true if it was within the limit; false (still recorded) if the
 * caller went over it. */
bool ratelimit_window_take(struct ratelimit_window *w, int64_t now);
/* Events in (now - window, now]. */
uint32_t ratelimit_window_used(const struct ratelimit_window *w, int64_t now);
/* Pushes the next allowed time to at least `until` (a CA said rateLimited
 * with Retry-After): fills the window as if it were used up until then. */
void ratelimit_window_block_until(struct ratelimit_window *w, int64_t until);

/* ---- Failures per identifier (e.g. "example.org"; compared ASCII
 * case-insensitively). */
struct ratelimit_failures;

/* max_per_window failures per window_s; pause_hint: consecutive failures
 * from which ratelimit_failures_paused says true. Owned: _free. */
struct ratelimit_failures *ratelimit_failures_new(uint32_t max_per_window, int64_t window_s,
                                                  uint32_t pause_hint);
void ratelimit_failures_free(struct ratelimit_failures *f);
/* A validation for ident failed at now. */
void ratelimit_failures_record(struct ratelimit_failures *f, const char *ident, int64_t now);
/* A validation for ident succeeded: the consecutive count starts over (the
 * hourly window still counts the earlier failures, as the CA does). */
void ratelimit_failures_success(struct ratelimit_failures *f, const char *ident);
/* The earliest time >= now when ident may be tried again. */
int64_t ratelimit_failures_next(const struct ratelimit_failures *f, const char *ident, int64_t now);
uint32_t ratelimit_failures_consecutive(const struct ratelimit_failures *f, const char *ident);
bool ratelimit_failures_paused(const struct ratelimit_failures *f, const char *ident);
/* Drops what is known about ident (a certificate removed from the config). */
void ratelimit_failures_forget(struct ratelimit_failures *f, const char *ident);
/* Number of identifiers tracked. */
size_t ratelimit_failures_count(const struct ratelimit_failures *f);

/* The earliest time >= now at which a new order for a certificate with
 * these names may start: the CA account's window (w, may be NULL) and every
 * name's failure window (f, may be NULL) must all allow it. */
int64_t ratelimit_earliest(const struct ratelimit_window *w, const struct ratelimit_failures *f,
                           const char *const *names, size_t n, int64_t now);

/* ---- Backoff */

/* A source of 64 random bits. */
typedef uint64_t (*ratelimit_rand_cb)(void *arg);
/* getrandom(2)-backed default source (arg unused). */
uint64_t ratelimit_rand_os(void *arg);

/* Delay before retry number `attempt` (0 for the first retry): with
 * d = min(cap_s, base_s * 2^attempt), a value uniform in [d/2, d] ("equal
 * jitter": never much sooner than planned, and many certificates failing
 * together spread out). base_s <= 0 gives 0. rnd NULL: ratelimit_rand_os. */
int64_t backoff_delay(unsigned attempt, int64_t base_s, int64_t cap_s, ratelimit_rand_cb rnd,
                      void *rnd_arg);

#endif
