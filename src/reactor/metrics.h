/* Prometheus text exposition (format 0.0.4) of the daemon's figures, as
 * pure functions over a snapshot the manager fills: per certificate the
 * expiry, the next renewal and the renewal outcomes, plus an order
 * duration histogram and the orders in flight. */
#ifndef CERTLOOP_REACTOR_METRICS_H
#define CERTLOOP_REACTOR_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Upper bounds (seconds) of certloop_order_duration_seconds, +Inf implied. */
#define METRICS_ORDER_BUCKETS                                                                      \
    {                                                                                              \
        1, 2, 5, 10, 30, 60, 120, 300, 600                                                         \
    }
#define METRICS_ORDER_NBUCKETS 9

/* The histogram the manager keeps: counts per bucket (not cumulative). */
struct metrics_hist {
    uint64_t bucket[METRICS_ORDER_NBUCKETS + 1]; /* the last one is +Inf */
    uint64_t count;
    double sum;
};

/* Adds one observation (an order's duration, in seconds). */
void metrics_hist_observe(struct metrics_hist *h, double seconds);

struct metrics_cert {
    const char *name;     /* borrowed */
    int64_t not_after;    /* Unix seconds; 0: no certificate (no sample) */
    int64_t next_renewal; /* Unix seconds; 0: none scheduled (no sample) */
    uint64_t renewals_ok; /* orders that ended with a stored certificate */
    uint64_t renewals_failed;
};

struct metrics_snapshot {
    const struct metrics_cert *certs; /* borrowed */
    size_t n_certs;
    const struct metrics_hist *order_duration; /* borrowed; NULL: all zero */
    unsigned orders_in_flight;
    const char *store_type;  /* "files", "postgresql" */
    bool store_up;           /* reachable now */
    uint64_t store_failures; /* connection failures and losses since start */
    unsigned store_waiting;  /* writes waiting for it */
};

/* The families with one sample per certificate, in the order they are
 * written: for a streamed answer, each family's head, then its sample of
 * every certificate, then the next family; metrics_write_rest last. */
enum metrics_family {
    METRICS_FAM_NOT_AFTER,    /* certloop_certificate_not_after_timestamp_seconds */
    METRICS_FAM_NEXT_RENEWAL, /* certloop_certificate_next_renewal_timestamp_seconds */
    METRICS_FAM_RENEWALS,     /* certloop_renewals_total */
    METRICS_FAM__MAX
};
/* The HELP and TYPE lines of family f. 0 or ERR_TOO_BIG. */
int metrics_family_head(struct buf *out, enum metrics_family f);
/* c's sample(s) of family f (none for a zero time). 0 or ERR_TOO_BIG. */
int metrics_family_sample(struct buf *out, enum metrics_family f, const struct metrics_cert *c);
/* Everything after the per-certificate families (the order histogram, the
 * orders in flight, the store); s->certs is not read. 0 or ERR_TOO_BIG. */
int metrics_write_rest(const struct metrics_snapshot *s, struct buf *out);

/* Appends the exposition text to out. Label values are escaped (\\, \",
 * \n). 0 or ERR_TOO_BIG when out's cap is reached (out then holds a prefix;
 * the caller answers 500). */
int metrics_write(const struct metrics_snapshot *s, struct buf *out);

/* Appends s as a label value, escaped per the exposition format. */
int metrics_label_escape(struct buf *out, const char *s);

#endif
