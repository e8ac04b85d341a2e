/* An in-memory store for loop tests: every operation of struct store_ops,
 * nothing on disk. Writes take effect when they start and call back on the
 * loop later (never from inside _start), like a backend that has already
 * answered; a test can make the next call of any operation fail and count
 * the calls of each. Generations are named "20260101T000000Z-NNNN" in
 * order; store_where answers "fake:WHAT/NAME". */
#ifndef CERTLOOP_TESTS_STORE_FAKE_H
#define CERTLOOP_TESTS_STORE_FAKE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "store/store.h"

/* A new empty fake on loop (borrowed). Free with store_close once every
 * callback has run. */
struct store *store_fake_new(uv_loop_t *loop);
/* The next call of op (a struct store_ops member name: "cert_put",
 * "order_put", "lease_take", ...) fails with status: a write through its
 * callback with nothing changed, a read by its return value. */
void store_fake_fail_next(struct store *s, const char *op, int status);
/* How many times op was called. */
unsigned store_fake_calls(const struct store *s, const char *op);
/* How many answers the fake has started and not yet delivered (0: every
 * callback has run): what a test waits for instead of a fixed time. */
unsigned store_fake_owed(const struct store *s);
/* The answers of op's next n calls (n <= 8) are held back, then delivered
 * together in one loop callback, in call order, once the nth call is made:
 * a test that needs them all to arrive before anything else happens (the
 * threadpool would deliver them in any order, at any time) gets that. */
void store_fake_hold(struct store *s, const char *op, unsigned n);

/* A store shared by several daemons (PostgreSQL's behaviour): leases last
 * lease_ms on the clock *now_ms points at (the test's fake clock, in ms)
 * unless renewed, and what this daemon deployed is recorded. */
void store_fake_share(struct store *s, int64_t lease_ms, const int64_t *now_ms);
/* Another instance holds name's lease until until_ms. */
void store_fake_lease_other(struct store *s, const char *name, int64_t until_ms);
/* Who holds name's lease now: "us", "other", or NULL (free or expired). */
const char *store_fake_lease_holder(const struct store *s, const char *name);
/* What store_health says: away (down) or reachable. Going from away to
 * reachable calls store_back_notify, as a database backend does once it
 * has reconnected and read its copy again. Writes are not affected (make
 * them fail with store_fake_fail_next). */
void store_fake_set_down(struct store *s, bool down);

#endif
