/* `certloop test NAME`: pre-flight checks for one configured certificate
 * without ordering (DNS resolution, CAA, http-01 reachability or a dns-01
 * test record), run on a private uv loop in the CLI process. One line per
 * check: "test NAME: CHECK DOMAIN: detail ... PASS|FAIL". */
#ifndef CERTLOOP_REACTOR_PREFLIGHT_H
#define CERTLOOP_REACTOR_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct config;

/* Runs every check for certificate `name` of cfg (a reference is taken for
 * the run), printing results to out. Returns 0 when all pass, 1 when any
 * fails, 64 when cfg has no certificate `name`. */
int preflight_run(struct config *cfg, const char *name, FILE *out, FILE *err);

/* ---- pure helpers (exposed for tests) ---- */

#define PF_CAA_TAG_MAX 15
#define PF_CAA_VALUE_MAX 511

/* One CAA resource record (RFC 8659 §4.1). */
struct pf_caa {
    uint8_t flags;                    /* bit 128: issuer critical */
    char tag[PF_CAA_TAG_MAX + 1];     /* 1..15 ASCII letters/digits */
    char value[PF_CAA_VALUE_MAX + 1]; /* truncated past PF_CAA_VALUE_MAX */
};

/* Parses CAA RDATA (flags, tag length, tag, value). 0 or -EBADMSG (tag
 * length 0 or past 15 or past the data, a tag character not a letter or
 * digit, a NUL in the value). */
int pf_caa_parse_rdata(const uint8_t *rd, size_t len, struct pf_caa *out);

/* Collects the CAA records of a DNS response's answer section (any owner,
 * so records reached through a CNAME count) into out[0..max). Returns how
 * many were found (also counting those past max), or -EBADMSG for a
 * malformed message or record. */
int pf_caa_from_msg(const uint8_t *msg, size_t len, struct pf_caa *out, size_t max);

/* The URL of the account of cert's CA in the state directory (read
 * beside a running daemon, no lock), or NULL when there is none yet.
 * Owned. */
struct config;
struct cfg_cert;
char *pf_account_url(const struct config *cfg, const struct cfg_cert *cert);
/* The same, and the account key's JWK thumbprint in *thumbprint (owned,
 * NULL when the key does not load). */
char *pf_account(const struct config *cfg, const struct cfg_cert *cert, char **thumbprint);

/* The issuer domain of an issue/issuewild value ("ca.example; key=v" ->
 * "ca.example"; ";" -> ""), written to dom (cap bytes, truncated). */
void pf_caa_issuer_domain(const char *value, char *dom, size_t cap);

/* RFC 8659 §4: may the CA known by any of ids[0..nids) issue for a name
 * whose relevant CAA RRset is rrs[0..n) (n > 0)? wildcard selects
 * issuewild (falling back to issue when the set has no issuewild). An
 * unknown tag with the critical flag forbids issuance. *why (optional)
 * gets a static explanation. */
bool pf_caa_permits(const struct pf_caa *rrs, size_t n, bool wildcard, const char *const *ids,
                    size_t nids, const char **why);

/* The value of parameter key in an issue/issuewild value (RFC 8659 §4.2:
 * "ca.example; key1=v1; key2=v2", keys case-insensitive) copied to out
 * (cap bytes); false when absent or longer than cap - 1. */
bool pf_caa_param(const char *value, const char *key, char *out, size_t cap);

/* pf_caa_permits with RFC 8657 as well: a property naming the CA that has
 * an accounturi parameter permits only account_url (NULL: no account yet,
 * so none), one with validationmethods only the listed methods (method:
 * "http-01", "dns-01", "tls-alpn-01"). Issuance is permitted when any
 * property naming the CA permits it. */
bool pf_caa_permits_rfc8657(const struct pf_caa *rrs, size_t n, bool wildcard,
                            const char *const *ids, size_t nids, const char *account_url,
                            const char *method, const char **why);

#endif
