/* Configuration: certloop.toml plus the *.toml files of conf.d/ parsed into one immutable,
 * reference-counted snapshot. Everything is validated before a snapshot
 * exists; every problem is reported as "FILE:LINE:COL: error: KEY.PATH: msg".
 * Readers never modify a snapshot; in-flight work holds a reference. */
#ifndef CERTLOOP_CONFIG_CONFIG_H
#define CERTLOOP_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "config/toml.h"
#include "util/log.h"

#define CONFIG_DEFAULT_PATH "/etc/certloop/certloop.toml"
#define CONFIG_MAX_DOMAINS 100

enum cfg_key_type {
    CFG_KEY_EC_P256,
    CFG_KEY_EC_P384,
    CFG_KEY_RSA2048,
    CFG_KEY_RSA3072,
    CFG_KEY_RSA4096,
    CFG_KEY__MAX
};

enum cfg_challenge {
    CFG_CHAL_HTTP01,
    CFG_CHAL_DNS01,
    CFG_CHAL_TLSALPN01,
    CFG_CHAL_DNSACCOUNT01, /* draft-ietf-acme-dns-account-label: dns-01 at an account label */
    CFG_CHAL_DNSPERSIST01  /* draft-ietf-acme-dns-persist: a persistent TXT record */
};
/* dns-01, dns-account-01 or dns-persist-01: a TXT record a [dns.NAME]
 * solver places (or, for dns-persist-01, checks). */
#define CFG_CHAL_IS_DNS(c)                                                                         \
    ((c) == CFG_CHAL_DNS01 || (c) == CFG_CHAL_DNSACCOUNT01 || (c) == CFG_CHAL_DNSPERSIST01)
enum cfg_dns_type { CFG_DNS_RFC2136, CFG_DNS_EXEC, CFG_DNS_CALLBACK };
enum cfg_deploy_type { CFG_DEPLOY_FILES, CFG_DEPLOY_EXEC };
enum cfg_notify_type { CFG_NOTIFY_WEBHOOK, CFG_NOTIFY_EMAIL, CFG_NOTIFY_SLACK };

/* Events a [notify.NAME] webhook subscribes to (bit mask). */
enum cfg_event {
    CFG_EVENT_ISSUED = 1u << 0,
    CFG_EVENT_RENEWED = 1u << 1,
    CFG_EVENT_FAILED = 1u << 2,
    CFG_EVENT_EXPIRING = 1u << 3,
    CFG_EVENT_DEPLOY_FAILED = 1u << 4,
    CFG_EVENT_DNS_RECORD_REQUIRED = 1u << 5,
    CFG_EVENT_DNS_RECORD_REMOVABLE = 1u << 6,
    CFG_EVENT_PERSIST_EXPIRING = 1u << 7,
    CFG_EVENT_FLEET_CONFLICT = 1u << 8,
    CFG_EVENT_ALL = 0x1ffu
};

/* Where something was written, for messages. For [x.NAME] sections the
 * position is that of NAME in the header; for [[...deploy]] the header's. */
struct cfg_where {
    const char *file; /* borrowed from the snapshot's file list */
    struct toml_pos pos;
};

struct cfg_strv {
    char **v; /* owned, NULL-terminated; NULL when n == 0 and the key was not written */
    size_t n;
};

struct cfg_daemon {
    char *state_dir;                /* default /var/lib/certloop */
    char *control_socket;           /* default /run/certloop/control.sock */
    unsigned max_concurrent_orders; /* default 64 */
    enum log_level log_level;       /* default info */
    char *include; /* glob relative to the main file's dir; default "conf.d/" "*.toml" */
    struct cfg_strv resolvers; /* "IP:PORT" (port 53 added if left out) for recursive
                                * lookups; empty: /etc/resolv.conf */
    char *hooks_dir;           /* pre/, deploy/, post/ hook directories; default
                                * /etc/certloop/hooks.d (a missing one is empty) */
    int64_t expiring_window_s; /* "expiring" alerts this long before not_after;
                                * default 14 days */
    int64_t backoff_max_s;     /* retries after failures: 60 s doubling up to this;
                                * default 6 hours */
};

struct cfg_http01 {
    struct cfg_strv listen; /* "[::]:80", "0.0.0.0:80"; default both ([] when webroot is
                             * set); [] = no listener */
    char *webroot;          /* document root a web server serves; token files go to
                             * WEBROOT/.well-known/acme-challenge/; NULL: none */
    char *webroot_owner, *webroot_group; /* as written, or NULL */
    uid_t webroot_uid;                   /* resolved, (uid_t)-1 if unset */
    gid_t webroot_gid;                   /* resolved, (gid_t)-1 if unset */
    unsigned public_port;                /* the port the CA connects to (`certloop test`
                                          * fetches through it); default 80 */
    bool listen_written;                 /* listen was in the file (not the default) */
};

struct cfg_tlsalpn01 {
    struct cfg_strv listen; /* tls-alpn-01 responder addresses; default none (off) */
    unsigned public_port;   /* the port the CA connects to (`certloop test` probes it);
                             * default 443 */
};

/* [api]: the authenticated HTTPS API (src/api). */
struct cfg_api {
    struct cfg_strv listen; /* "IP:PORT" addresses; default none (off) */
    char *tokens_file;      /* hashed tokens, one per line (certloop api-token); required
                             * with listen */
    char *certificate;      /* the managed certificate it serves, or NULL: a self-signed
                             * one made at start */
};

enum cfg_store_type { CFG_STORE_FILES = 0, CFG_STORE_POSTGRESQL };

/* [store]: where accounts, keys and generations live: the state directory
 * ("files") or a PostgreSQL database shared by several instances. */
struct cfg_store {
    int type;                  /* enum cfg_store_type */
    char *conninfo_file;       /* postgresql: a secret file with the libpq conninfo, or NULL */
    char *encryption_key_file; /* postgresql: the key that seals private keys, or NULL */
    int64_t lease_time_s;      /* postgresql: a certificate's lease lasts this long unless
                                * renewed (a crashed holder blocks its certificate as long) */
    char *instance;            /* postgresql: this daemon's name in leases, or NULL: the
                                * host's name */
};

struct cfg_ca {
    char *name; /* the NAME of [ca.NAME] */
    struct cfg_where where;
    char *directory; /* ACME directory URL */
    struct cfg_strv contact;
    bool agree_tos;
    char *trust;   /* extra trust anchors (PEM file) for the CA's HTTPS, or NULL */
    char *eab_kid; /* External Account Binding, or NULL */
    char *eab_hmac_key_file;
    char *preferred_chain;  /* issuer CN of the topmost certificate, or NULL */
    char *profile;          /* draft-ietf-acme-profiles: sent in newOrder, or NULL */
    bool profile_fallback;  /* a profile the CA does not offer: warn and order without */
    char *staging;          /* the CA's staging directory for dry runs, or NULL (then
                             * config_dry_run knows Let's Encrypt's) */
    bool is_public;         /* a publicly trusted CA (Let's Encrypt, ZeroSSL, GTS, Buypass) */
    bool allow_other_hosts; /* the CA's URLs may point at other hosts than the directory's */
    unsigned max_parallel_requests; /* requests in flight to the CA at once; 0: no limit */
    unsigned max_new_orders;        /* new orders per account per 3 hours; default 250, 0: none */
};

/* [hub.NAME]: another certloop's HTTPS API this one pulls certificates
 * from (certificate from = "hub.NAME"). */
struct cfg_hub {
    char *name; /* the NAME of [hub.NAME] */
    struct cfg_where where;
    char *url;        /* "https://HOST[:PORT]" (no path: /v1/... is appended) */
    char *token_file; /* secret file: the API token (scopes read and pull) */
    char *trust;      /* PEM file: the only anchors for the hub's certificate (a CA or
                       * the hub's own certificate), or NULL: the system store */
};

struct cfg_tsig {
    char *name;        /* key name, e.g. "certloop." */
    char *algorithm;   /* hmac-sha256 | hmac-sha384 | hmac-sha512 */
    char *secret_file; /* base64 secret, or a BIND key file */
};

struct cfg_dns {
    char *name; /* the NAME of [dns.NAME] */
    struct cfg_where where;
    enum cfg_dns_type type;
    char *server;                  /* rfc2136: "IP:PORT" (port 53 added if left out) */
    char *zone;                    /* rfc2136: or NULL (SOA lookup); lower case, no final dot */
    struct cfg_tsig tsig;          /* rfc2136 */
    struct cfg_strv command;       /* exec: argv prefix */
    char *url;                     /* callback: where dns_record_required/_removable go */
    char *secret_file;             /* callback: HMAC key for X-Certloop-Signature, or NULL */
    char *trust;                   /* callback: extra CA bundle for an https url, or NULL */
    int64_t timeout_s;             /* exec, callback: per-call timeout; default 60 */
    struct cfg_strv nameservers;   /* "IP:PORT": check these instead of discovered NS */
    int64_t propagation_timeout_s; /* default 120 */
    int64_t poll_interval_s;       /* default 2 */
};

struct cfg_deploy {
    enum cfg_deploy_type type;
    struct cfg_where where;
    /* files */
    char *cert, *chain, *fullchain, *key, *bundle; /* paths or NULL */
    char *pkcs12, *pkcs12_password_file;           /* no password file: an empty password */
    bool pkcs12_legacy;
    char *owner, *group; /* names (or numbers) as written, or NULL */
    uid_t uid;           /* resolved, (uid_t)-1 if unset */
    gid_t gid;           /* resolved, (gid_t)-1 if unset */
    mode_t mode;         /* if has_mode is false: 0644, and for files holding the key
                          * 0640 with a group, else 0600 (deploy_file_mode) */
    bool has_mode;
    /* exec */
    struct cfg_strv command;
    int64_t timeout_s;    /* default 60 */
    bool per_certificate; /* run for each certificate, not once per round of renewals */
};

struct cfg_cert {
    char *name; /* the NAME of [certificate.NAME] */
    struct cfg_where where;
    struct cfg_strv domains; /* normalised: lower case, A-labels, no trailing dot */
    struct cfg_ca *ca;       /* borrowed from this snapshot; NULL only for an import */
    enum cfg_key_type key;
    enum cfg_challenge challenge;
    struct cfg_dns *dns;       /* borrowed; set for dns-01 (unless an import without ca) */
    int64_t renew_before_s;    /* 0: default (a third of the lifetime) */
    bool reuse_key;            /* renewals keep the stored key (unless revoked for
                                * keyCompromise, or the key type changed) */
    int64_t persist_until;     /* dns-persist-01: the records' persistUntil (UNIX
                                * seconds), 0: none */
    struct cfg_deploy *deploy; /* owned array */
    size_t n_deploy;
    /* import = { cert = PATH, key = PATH }: an existing certificate and key
     * taken over as the first generation (both NULL if absent). An imported
     * certificate without `ca` is never renewed, only deployed; its domains
     * may then be left out (they come from the certificate). */
    char *import_cert;
    char *import_key;
    bool api_owned; /* declared in the API's folder (conf.d/api/NAME.toml): POST
                     * /v1/certificates wrote it and DELETE may remove it */
    /* from = "hub.NAME": pulled from that hub (same certificate name there),
     * never ordered here: ca and dns are NULL; borrowed from the snapshot */
    struct cfg_hub *hub;
};

struct cfg_notify {
    char *name; /* the NAME of [notify.NAME] */
    struct cfg_where where;
    enum cfg_notify_type type; /* default webhook */
    char *url;                 /* webhook, slack: http:// or https:// */
    char *secret_file;         /* webhook: HMAC key for the signature header, or NULL */
    unsigned events;           /* CFG_EVENT_* bits; default CFG_EVENT_ALL */
    char *trust;               /* extra trust anchors (PEM file) for https/smtps, or NULL */
    /* email */
    char *server;        /* "smtp://HOST[:PORT]" (STARTTLS) or "smtps://HOST[:PORT]" */
    bool starttls;       /* smtp://: require STARTTLS; default true */
    char *username;      /* SMTP AUTH user, or NULL */
    char *password_file; /* SMTP AUTH password (secret file), or NULL */
    char *from;          /* sender address */
    struct cfg_strv to;  /* recipient addresses */
};

struct config {
    int refs;
    char *path;            /* the main file */
    char *api_dir;         /* the API's folder: "conf.d/api" beside the main file */
    struct cfg_strv files; /* every file read, main first */
    struct cfg_daemon daemon;
    struct cfg_http01 http01;
    struct cfg_tlsalpn01 tlsalpn01;
    struct cfg_api api;
    struct cfg_store store;
    struct cfg_ca *cas; /* owned arrays */
    size_t n_cas;
    struct cfg_dns *dns;
    size_t n_dns;
    struct cfg_cert *certs; /* sorted by name */
    size_t n_certs;
    struct cfg_notify *notify; /* owned array, sorted by name */
    size_t n_notify;
    struct cfg_hub *hubs; /* owned array, sorted by name */
    size_t n_hubs;
};

/* The errors of one load, one formatted line each. */
struct config_diag {
    char **lines; /* owned */
    size_t n;
    size_t cap;
};

/* A change of the API's folder (conf.d/api/) seen only by one load: the
 * file NAME.toml of put_name holds put_text instead of what is on disk (or
 * is added), and del_name's file is left out. Either may be NULL. The file
 * names of the errors are the ones the files have (or would have) there. */
struct config_overlay {
    const char *put_name, *put_text;
    const char *del_name;
    /* A preview (/v1/plan): this text is read last as one more include file
     * named CONFIG_PREVIEW_FILE, and each of its tables replaces the one of
     * the same name and section (a duplicate is no error there). */
    const char *extra_text;
};
#define CONFIG_PREVIEW_FILE "(config)"

/* The API's folder for the main file path: "DIR/conf.d/api" (owned). */
char *config_api_dir(const char *path);

/* Loads `path` and the files its include pattern names, then the API's
 * folder (every "*.toml" in config_api_dir(path), in name order; files the
 * include pattern matches there are read only then). On success returns 0
 * and *out is a new snapshot with one reference. On failure returns
 * ERR_CONFIG (or -errno when the main file cannot be read) and every problem
 * found is appended to diag (may be NULL), one line each, ordered by file
 * (main first) and position; *out is untouched. Touches nothing on disk: it
 * only reads the files and stats the paths it validates. Only regular files
 * of at most 16 MiB are read (opened non-blocking: a FIFO or a device is
 * refused, never waited on). It shares no state with anything else, so it
 * may run on a worker thread (the daemon's reload does). path is borrowed. */
int config_load(const char *path, struct config **out, struct config_diag *diag);
/* config_load with a change of the API's folder that is not written (ov
 * may be NULL): what POST and DELETE /v1/certificates and /v1/plan check. */
int config_load_overlay(const char *path, const struct config_overlay *ov, struct config **out,
                        struct config_diag *diag);
/* [daemon] control_socket as written in the main file `path`, even when
 * the configuration does not validate (`reload -c FILE` must reach the
 * daemon that FILE names to have it report the errors). 0 and *out (owned),
 * -ENOENT when the file does not set it, or another < 0 when it cannot be
 * read or is not TOML. */
int config_peek_control_socket(const char *path, char **out);

/* Turns a snapshot the caller alone holds into the one a dry run uses
 * (`renew --dry-run`): only the certificates names[0..n) (every one with a
 * CA when n == 0) are kept, without deploy actions; every CA orders from
 * its staging directory (Let's Encrypt's known when not set); no
 * [notify.*] targets and no hooks; state_dir becomes STATE/dry-run (its own
 * accounts; nothing of the real state is touched). Returns 0, or -EINVAL
 * after adding one line per problem to diag (an unknown name, an imported
 * certificate without a CA, a CA without a staging directory). */
int config_dry_run(struct config *cfg, const char *const *names, size_t n,
                   struct config_diag *diag);

/* Adds a reference (NULL passes through). */
struct config *config_ref(struct config *cfg);
/* Drops a reference; the last one frees the snapshot. NULL is fine. */
void config_unref(struct config *cfg);
/* Drops a reference like config_unref, but when it was the last one the
 * snapshot is returned instead of freed (NULL otherwise): nothing else can
 * reach it any more, so the caller may free it with config_free on another
 * thread (100,000 certificates take ~50 ms to free: not on the loop). */
struct config *config_unref_last(struct config *cfg);
/* Frees a snapshot nobody holds (config_unref_last's). NULL is fine. */
void config_free(struct config *cfg);

/* Borrowed lookups, NULL if absent. */
const struct cfg_cert *config_cert_find(const struct config *cfg, const char *name);
const struct cfg_ca *config_ca_find(const struct config *cfg, const char *name);
const struct cfg_dns *config_dns_find(const struct config *cfg, const char *name);
const struct cfg_notify *config_notify_find(const struct config *cfg, const char *name);
const struct cfg_hub *config_hub_find(const struct config *cfg, const char *name);

/* For reload diffing. equal_order: same domains (in order), key type, CA
 * directory and profile, challenge and dns solver name; false means the
 * certificate must be reissued. equal_deploy: the same deploy actions. */
bool config_cert_equal_order(const struct cfg_cert *a, const struct cfg_cert *b);
bool config_cert_equal_deploy(const struct cfg_cert *a, const struct cfg_cert *b);
/* True when both lists hold the same strings in the same order. */
bool config_strv_equal(const struct cfg_strv *a, const struct cfg_strv *b);
/* "localhost", 127.0.0.0/8 or ::1 (a host without brackets). */
bool config_host_is_loopback(const char *host);

/* Parses "IP:PORT" or "[IPv6]:PORT" (no names, no lookups). When
 * default_port >= 0 the port may be left out ("192.0.2.1", "2001:db8::1").
 * Fills *ss and *len; 0 or -EINVAL. Strings stored in a snapshot (listen,
 * resolvers, server, nameservers) always carry a port. */
int config_addr_parse(const char *s, int default_port, struct sockaddr_storage *ss, socklen_t *len);

/* true if s (a normalised `domains` entry) is an IPv4 or IPv6 address
 * literal: an RFC 8738 ip identifier rather than a DNS name. */
bool config_name_is_ip(const char *s);

const char *config_key_type_name(enum cfg_key_type k);
const char *config_challenge_name(enum cfg_challenge c);
const char *config_dns_type_name(enum cfg_dns_type t);

/* Parses "90d", "12h", "30m", "45s" (and combinations like "1d12h", units
 * largest first, each at most once) into seconds. 0 or -EINVAL. */
int config_duration_parse(const char *s, int64_t *out);

/* Calls cb once for every key the configuration accepts, in schema order
 * (sections [daemon], [http01], [ca.NAME], [dns.NAME], [notify.NAME],
 * [certificate.NAME]), for documentation and its tests. The strings are
 * borrowed for the call only.
 *   path: the dotted key path, "NAME" standing for a name the user chooses:
 *         "daemon.state_dir", "ca.NAME.eab.kid", "certificate.NAME.domains".
 *         An inline table is a key of its own ("ca.NAME.eab", type "table")
 *         followed by its keys; an array of tables likewise
 *         ("certificate.NAME.deploy", type "array of tables") followed by the
 *         keys of each element as "certificate.NAME.deploy[].mode".
 *   type: "string", "path" (an absolute path), "boolean", "integer",
 *         "duration" ("90d", "12h", "1d12h" or seconds), "array of strings",
 *         "table", "array of tables", or for a key with a fixed set of words
 *         those words joined by '|' ("ec-p256|ec-p384|rsa2048|...").
 *   dflt: the default as TOML writes it ("\"/var/lib/certloop\"", "64",
 *         "false", "[]"); or a phrase in parentheses: "(required)",
 *         "(required with type = exec)", or how a computed default is found
 *         ("(when a third of the lifetime remains)"); or NULL: no default (the
 *         key is unset unless written). */
typedef void (*config_schema_cb)(const char *path, const char *type, const char *dflt, void *arg);
void config_schema_foreach(config_schema_cb cb, void *arg);

void config_diag_init(struct config_diag *d);
void config_diag_fini(struct config_diag *d);
void config_diag_add(struct config_diag *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
