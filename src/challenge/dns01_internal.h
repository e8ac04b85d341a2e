/* dns-01 internals shared by challenge/dns01_*.c and their unit tests and
 * fuzz targets: TSIG key files, the RFC 2136 UPDATE message and its signed
 * reply (pure functions), the UDP/TCP sender, the exec spawner. */
#ifndef CERTLOOP_CHALLENGE_DNS01_INTERNAL_H
#define CERTLOOP_CHALLENGE_DNS01_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <uv.h>

#include "config/config.h"

/* ---- TSIG keys (dns01_update.c) ---------------------------------------- */

struct dns01_key {
    char *name;      /* owned: lower case, with the trailing dot ("acme-key.") */
    char *algorithm; /* owned: "hmac-sha256." | "hmac-sha384." | "hmac-sha512." */
    char *secret;    /* owned: standard base64, whitespace removed (never logged) */
};

/* Parses the content of a TSIG secret file: either one line of base64 (the
 * secret alone; name and algorithm then come from `name` and `algorithm`),
 * or a BIND key file (`key "NAME" { algorithm hmac-sha256; secret "B64"; };`
 * with #, // and C comments; several key blocks allowed). In a BIND file the
 * block named `name` is used (case-insensitive, trailing dot optional); its
 * algorithm wins over `algorithm`. `name` and `algorithm` are borrowed,
 * `algorithm` may be NULL (hmac-sha256). Returns 0 and fills *out (release
 * with dns01_key_fini), or ERR_PARSE / -EINVAL with a reason in *why
 * (owned; never contains the secret). */
int dns01_key_parse(const uint8_t *data, size_t len, const char *name, const char *algorithm,
                    struct dns01_key *out, char **why);
void dns01_key_fini(struct dns01_key *k);
/* Reads t->secret_file (capped at 64 KiB) and parses it; logs why on error. */
int dns01_key_load(const struct cfg_tsig *t, struct dns01_key *out);

/* ---- UPDATE messages (dns01_update.c) ---------------------------------- */

/* A signed UPDATE message as sent, with what checking its reply needs. */
struct dns01_msg {
    uint8_t *wire; /* owned */
    size_t len;
    uint16_t id;
    uint8_t *mac; /* owned: the request MAC (TSIG MAC field, without length) */
    size_t mac_len;
};

void dns01_msg_fini(struct dns01_msg *m);

/* Builds an UPDATE for `zone` that adds (add = true: "add to an RRset",
 * RFC 2136 §2.5.1, class IN, ttl) or deletes exactly (add = false: "delete
 * an RR from an RRset", §2.5.4, class NONE) the TXT record `value` at
 * `fqdn`, so other values under the same name are untouched. Signs it with
 * key at `now` (fudge 300 s) when key is not NULL. Names may carry a
 * trailing dot or not; fqdn must be inside zone. value: 1..DNS01_TXT_MAX
 * bytes, written as character-strings of at most 255 (RFC 1035 §3.3.14).
 * Returns 0 or -EINVAL / ERR_CRYPTO with a reason in *why (owned). */
#define DNS01_TXT_MAX 2048
int dns01_update_build(const char *zone, const char *fqdn, const char *value, bool add,
                       uint32_t ttl, uint16_t id, const struct dns01_key *key, int64_t now,
                       struct dns01_msg *out, char **why);

/* Checks a reply to req: QR set, same id, opcode UPDATE, a TSIG record
 * that verifies with key (over the request MAC, RFC 8945 §5.3) and whose
 * time is within its fudge of `now`, rcode NOERROR. Returns 0, or ERR_DNS
 * with *why (owned) saying what the server refused and what to fix
 * (REFUSED, NOTAUTH, BADSIG, BADKEY, BADTIME, ...), or ERR_PARSE for bytes
 * that are no DNS message or the wrong reply. zone and key (may be NULL:
 * unsigned) are borrowed; zone is only used in messages. */
int dns01_reply_check(const uint8_t *wire, size_t len, const struct dns01_msg *req,
                      const struct dns01_key *key, const char *zone, int64_t now, char **why);

/* Fills *id with the message id and *tc with the TC bit; false if the bytes
 * are shorter than a header. */
bool dns01_wire_header(const uint8_t *wire, size_t len, uint16_t *id, bool *tc, bool *qr);

/* Whether the bytes are a well-formed message (header, questions, records
 * within bounds) with at most one TSIG record, placed last. */
bool dns01_wire_sane(const uint8_t *wire, size_t len);

/* ---- reading resolver answers (dns01_propagation.c), pure --------------- */

/* The target of the CNAME owned by `owner` in the answer section (owned, in
 * *out, NULL if none). 0, or ERR_PARSE for a malformed message. */
int dns01_answer_cname(const uint8_t *msg, size_t len, const char *owner, char **out);
/* The zone an SOA query for `qname` reveals for `name` (qname is name or an
 * ancestor): the owner of an answer-section SOA owned by qname, else of an
 * authority-section SOA that encloses name (RFC 2308 §2). *out owned, NULL
 * if neither. 0 or ERR_PARSE. */
int dns01_answer_zone(const uint8_t *msg, size_t len, const char *qname, const char *name,
                      char **out);
/* The NS targets of `zone` in the answer section, at most max (owned array
 * of owned names in *out, *n of them; NULL/0 if none). 0 or ERR_PARSE. */
int dns01_answer_ns(const uint8_t *msg, size_t len, const char *zone, size_t max, char ***out,
                    size_t *n);

/* ---- names (dns01_update.c) -------------------------------------------- */

/* Lower-cases and adds the trailing dot. Owned. */
char *dns01_name_fqdn(const char *name);
/* Whether `name` equals `zone` or lies below it (both absolute or both not). */
bool dns01_name_in_zone(const char *name, const char *zone);

/* ---- sending (dns01_send.c) -------------------------------------------- */

struct dns01_send;

/* status 0: a reply with the request's id came (reply borrowed during the
 * callback); ERR_TIMEOUT: no reply after every try; < 0 otherwise. */
typedef void (*dns01_send_cb)(int status, const uint8_t *reply, size_t len, void *arg);

/* Sends wire (copied) to server over UDP, retrying `tries` times with
 * timeout_ms each, and over TCP when the UDP reply is truncated (TC) or
 * the message does not fit 512 bytes. Async contract of STYLE §4. */
int dns01_send_start(uv_loop_t *loop, const struct sockaddr *server, const uint8_t *wire,
                     size_t len, unsigned timeout_ms, unsigned tries, dns01_send_cb cb, void *arg,
                     struct dns01_send **out);
void dns01_send_cancel(struct dns01_send *s);

/* ---- exec (dns01_exec.c) ----------------------------------------------- */

struct dns01_spawn;

/* status 0: exited 0; ERR_HOOK: exited non-zero or by a signal; ERR_TIMEOUT
 * (killed); output is what it printed (stdout and stderr, last 4 KiB,
 * borrowed during the callback). */
typedef void (*dns01_spawn_cb)(int status, const char *output, void *arg);

/* Runs argv[0] (searched in PATH) with argv (NULL-terminated, copied) and
 * the environment plus env (NULL-terminated "K=V" strings, copied, may be
 * NULL); stdin is /dev/null; SIGTERM at timeout_ms then SIGKILL 2 s later.
 * Async contract of STYLE §4. */
int dns01_spawn_start(uv_loop_t *loop, const char *const *argv, const char *const *env,
                      uint64_t timeout_ms, dns01_spawn_cb cb, void *arg, struct dns01_spawn **out);
void dns01_spawn_cancel(struct dns01_spawn *s);

/* ---- locating the record and checking propagation (dns01_propagation.c) */

struct dns_resolver;
struct dns01_locate;
struct dns01_prop;

/* status 0: fqdn (after CNAMEs, with the dot) and zone (NULL unless asked
 * for) are borrowed during the callback; else ERR_DNS / ERR_TIMEOUT with
 * why (borrowed). */
typedef void (*dns01_locate_cb)(int status, const char *fqdn, const char *zone, const char *why,
                                void *arg);

/* Follows CNAMEs from `name` (at most 8) through resolver, then, if
 * need_zone, finds the zone of the result: `zone_hint` when the name lies
 * inside it, else the owner of the SOA record in the answer or authority
 * section of an SOA query, walking up one label at a time. Async contract
 * of STYLE §4 (no uv handles of its own; cancel frees at once). */
int dns01_locate_start(struct dns_resolver *resolver, const char *name, const char *zone_hint,
                       bool need_zone, dns01_locate_cb cb, void *arg, struct dns01_locate **out);
void dns01_locate_cancel(struct dns01_locate *l);

/* status 0 (every server has it), ERR_TIMEOUT (some never did) or ERR_DNS
 * (no server to ask); report is the per-server line (borrowed). */
typedef void (*dns01_prop_cb)(int status, const char *report, void *arg);

struct dns01_prop_opts {
    const char *subject;        /* log prefix, e.g. "cert=www" (or NULL) */
    const char *const *servers; /* "IP:PORT" to ask; NULL/n 0: the zone's NS */
    size_t n_servers;
    unsigned ns_port;    /* port of discovered servers (0: 53) */
    unsigned timeout_ms; /* per query try (0: 2000) */
    int64_t total_s;     /* give up after (0: 120) */
    int64_t interval_s;  /* between rounds (0: 2) */
};

/* Waits until every authoritative server of zone serves the TXT value at
 * fqdn (both borrowed, copied), asking each server directly (RD=0).
 * Async contract of STYLE §4. */
int dns01_prop_start(uv_loop_t *loop, struct dns_resolver *resolver, const char *zone,
                     const char *fqdn, const char *value, const struct dns01_prop_opts *o,
                     dns01_prop_cb cb, void *arg, struct dns01_prop **out);
void dns01_prop_cancel(struct dns01_prop *p);

#endif
