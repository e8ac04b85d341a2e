/* Renewal scheduling policy: pure functions that say when a certificate
 * should next be ordered and why. Used by `certloop plan` (offline preview)
 * and by the manager, so both always agree. No I/O, no clock reads: the
 * caller passes "now". */
#ifndef CERTLOOP_REACTOR_SCHED_H
#define CERTLOOP_REACTOR_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct store;

/* Lifetimes up to this many seconds renew at half the lifetime instead of a
 * third (short-lived certificates, e.g. 6-day profiles). */
#define SCHED_SHORT_LIFETIME_S (10 * 86400)

/* Computes when a certificate valid [not_before, not_after] (Unix seconds)
 * should be renewed under c's policy:
 *   - renew_before set (and shorter than the lifetime): not_after - renew_before;
 *   - lifetime <= 10 days: when half of the lifetime remains;
 *   - otherwise: when a third of the lifetime remains.
 * A renew_before at least as long as the lifetime falls back to the default
 * so that a fresh certificate is not renewed at once, forever.
 * Returns 0 and sets *when and *reason (a static string: "renew_before",
 * "a third of the lifetime remaining" or "half of the lifetime remaining");
 * -EINVAL if not_after <= not_before. *when may be in the past (expired or
 * overdue certificates); comparing with the clock is the caller's job. */
int sched_renewal_time(const struct cfg_cert *c, int64_t not_before, int64_t not_after,
                       int64_t *when, const char **reason);

/* What the store's meta.json says about a stored certificate:
 * {"domains":[...],"ca":"NAME","directory":URL,"key":"ec-p256",
 *  "not_before":N,"not_after":N}. */
struct sched_meta {
    char **domains; /* owned, NULL-terminated */
    size_t n_domains;
    char *ca;        /* owned, or NULL */
    char *directory; /* owned, or NULL */
    char *key;       /* owned, or NULL */
    char *profile;   /* owned: the ACME profile it was issued under, or NULL */
    int64_t not_before;
    int64_t not_after;
};

/* Parses meta.json (len bytes). 0, or ERR_PARSE when it is not JSON or a
 * field has the wrong type; not_before/not_after are required. */
int sched_meta_parse(const char *json, size_t len, struct sched_meta *out);
/* Fills domains, not_before and not_after from a certificate PEM (first
 * certificate: subjectAltName DNS names and IP addresses, validity); for when meta.json is
 * missing. 0 or ERR_CRYPTO/ERR_PARSE. */
int sched_meta_from_pem(const char *pem, size_t len, struct sched_meta *out);
void sched_meta_fini(struct sched_meta *m);

/* A generation's revocation note ("revoked", store_note_read), written by
 * `certloop revoke`: {"reason": WORD, "revoked_at": UNIX, "reissue": BOOL}.
 * 0 with *reason (owned) and *reissue; -ENOENT when the generation is not
 * revoked; ERR_PARSE when the note is not such an object. store is
 * borrowed; an inline read (STYLE 5). */
int sched_revoked_read(struct store *store, const char *name, const char *generation, char **reason,
                       bool *reissue);

enum sched_why {
    SCHED_NO_CERT,       /* nothing stored: order now */
    SCHED_NAMES_CHANGED, /* the stored certificate misses configured names: now */
    SCHED_KEY_CHANGED,   /* the key type changed: now */
    SCHED_CA_CHANGED,    /* the CA directory changed: now */
    SCHED_EXPIRED,       /* the stored certificate has expired: now */
    SCHED_DUE,           /* the renewal time has passed: now */
    SCHED_LATER,         /* renew at .when */
    SCHED_NEVER,         /* no CA configured (an imported certificate): never ordered */
};

struct sched_decision {
    enum sched_why why;
    int64_t when;        /* Unix seconds; <= now for every "now" reason */
    const char *reason;  /* from sched_renewal_time for SCHED_DUE/SCHED_LATER, else NULL */
    const char *missing; /* SCHED_NAMES_CHANGED: the first configured name not covered
                            (borrowed from c) */
};

/* At most this much earlier than the policy's time (stable per certificate
 * and generation, see sched_decide_jittered). */
#define SCHED_JITTER_MAX_S (6 * 3600)

/* A stable jitter in [0, min(SCHED_JITTER_MAX_S, a tenth of the time from
 * not_before to the planned renewal `when`)] for the certificate `name` and
 * its generation (FNV-1a of the name and not_after): spreads renewals of
 * certificates issued together, never enough to make a fresh one due at
 * once. Pure. */
int64_t sched_jitter_s(const char *name, int64_t not_before, int64_t not_after, int64_t when);

/* sched_decide, then for SCHED_DUE/SCHED_LATER the time moved earlier by
 * sched_jitter_s (SCHED_LATER becoming SCHED_DUE when that is past): the
 * one function the daemon and `plan` both use, so they agree. name is the
 * certificate's. Pure. */
void sched_decide_jittered(const char *name, const struct cfg_cert *c,
                           const struct sched_meta *stored, int64_t now,
                           struct sched_decision *out);

/* Decides the next order for c given the stored certificate's meta (NULL
 * when nothing is stored) at time now. Pure. */
void sched_decide(const struct cfg_cert *c, const struct sched_meta *stored, int64_t now,
                  struct sched_decision *out);

/* Formats a duration of seconds as "90d", "12h", "1d12h", "45s" into out. */
void sched_duration_fmt(int64_t s, char *out, size_t n);

#endif
