/* The Prometheus text writer behind GET /metrics. It only formats what the
 * manager hands over; counting and timing stay with the manager. Families
 * are written with HELP and TYPE lines, one sample per certificate. */
#include "reactor/metrics.h"

#include <inttypes.h>

#include "util/err.h"

static const double bounds[METRICS_ORDER_NBUCKETS] = METRICS_ORDER_BUCKETS;

void metrics_hist_observe(struct metrics_hist *h, double seconds)
{
    size_t i = 0;

    if (seconds < 0)
        seconds = 0;
    while (i < METRICS_ORDER_NBUCKETS && seconds > bounds[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum += seconds;
}

int metrics_label_escape(struct buf *out, const char *s)
{
    int rc = 0;

    for (; *s != '\0' && rc == 0; s++) {
        if (*s == '\\')
            rc = buf_append(out, "\\\\", 2);
        else if (*s == '"')
            rc = buf_append(out, "\\\"", 2);
        else if (*s == '\n')
            rc = buf_append(out, "\\n", 2);
        else
            rc = buf_append(out, s, 1);
    }
    return rc;
}

static int header(struct buf *b, const char *name, const char *type, const char *help)
{
    return buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{name="LABEL"[,extra]} value */
static int sample(struct buf *b, const char *metric, const char *label, const char *extra,
                  int64_t value)
{
    int rc = buf_printf(b, "%s{name=\"", metric);

    if (rc == 0)
        rc = metrics_label_escape(b, label);
    if (rc == 0)
        rc = buf_printf(b, "\"%s} %" PRId64 "\n", extra != NULL ? extra : "", value);
    return rc;
}

static const struct family {
    const char *name, *type, *help;
} families[METRICS_FAM__MAX] = {
    [METRICS_FAM_NOT_AFTER] = {"certloop_certificate_not_after_timestamp_seconds", "gauge",
                               "Expiry of the current certificate (Unix time)."},
    [METRICS_FAM_NEXT_RENEWAL] = {"certloop_certificate_next_renewal_timestamp_seconds", "gauge",
                                  "When the next order for the certificate is scheduled (Unix "
                                  "time)."},
    [METRICS_FAM_RENEWALS] = {"certloop_renewals_total", "counter",
                              "Orders finished since the daemon started, by result."},
};

int metrics_family_head(struct buf *out, enum metrics_family f)
{
    return header(out, families[f].name, families[f].type, families[f].help);
}

int metrics_family_sample(struct buf *out, enum metrics_family f, const struct metrics_cert *c)
{
    int rc = 0;

    switch (f) {
    case METRICS_FAM_NOT_AFTER:
        if (c->not_after != 0)
            rc = sample(out, families[f].name, c->name, NULL, c->not_after);
        break;
    case METRICS_FAM_NEXT_RENEWAL:
        if (c->next_renewal != 0)
            rc = sample(out, families[f].name, c->name, NULL, c->next_renewal);
        break;
    case METRICS_FAM_RENEWALS:
        rc = sample(out, families[f].name, c->name, ",result=\"success\"", (int64_t)c->renewals_ok);
        if (rc == 0)
            rc = sample(out, families[f].name, c->name, ",result=\"failure\"",
                        (int64_t)c->renewals_failed);
        break;
    case METRICS_FAM__MAX:
        break;
    }
    return rc;
}

int metrics_write(const struct metrics_snapshot *s, struct buf *out)
{
    int rc = 0;

    for (int f = 0; rc == 0 && f < METRICS_FAM__MAX; f++) {
        rc = metrics_family_head(out, (enum metrics_family)f);
        for (size_t i = 0; rc == 0 && i < s->n_certs; i++)
            rc = metrics_family_sample(out, (enum metrics_family)f, &s->certs[i]);
    }
    if (rc == 0)
        rc = metrics_write_rest(s, out);
    return rc;
}

int metrics_write_rest(const struct metrics_snapshot *s, struct buf *out)
{
    static const struct metrics_hist empty;
    const struct metrics_hist *h = s->order_duration != NULL ? s->order_duration : &empty;
    int rc = header(out, "certloop_order_duration_seconds", "histogram",
                    "Time from new order to a stored certificate or a failure.");
    uint64_t cum = 0;
    for (size_t i = 0; rc == 0 && i < METRICS_ORDER_NBUCKETS; i++) {
        cum += h->bucket[i];
        rc = buf_printf(out, "certloop_order_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                        bounds[i], cum);
    }
    if (rc == 0)
        rc = buf_printf(out,
                        "certloop_order_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                        "certloop_order_duration_seconds_sum %.3f\n"
                        "certloop_order_duration_seconds_count %" PRIu64 "\n",
                        h->count, h->sum, h->count);
    if (rc == 0)
        rc = header(out, "certloop_orders_in_flight", "gauge", "Orders running now.");
    if (rc == 0)
        rc = buf_printf(out, "certloop_orders_in_flight %u\n", s->orders_in_flight);
    if (rc == 0 && s->store_type != NULL) {
        rc = header(out, "certloop_store_up", "gauge",
                    "1 when the store (the state directory or the database) can be reached.");
        if (rc == 0)
            rc = buf_printf(out, "certloop_store_up{type=\"%s\"} %d\n", s->store_type,
                            s->store_up ? 1 : 0);
        if (rc == 0)
            rc = header(out, "certloop_store_failures_total", "counter",
                        "Failed connections to the store and connections lost.");
        if (rc == 0)
            rc = buf_printf(out, "certloop_store_failures_total %" PRIu64 "\n", s->store_failures);
        if (rc == 0)
            rc = header(out, "certloop_store_writes_waiting", "gauge",
                        "Store writes waiting for the store to answer.");
        if (rc == 0)
            rc = buf_printf(out, "certloop_store_writes_waiting %u\n", s->store_waiting);
    }
    return rc;
}
