/* Internals of src/config shared between its files and its unit tests. Not
 * for other modules. The files of src/config and what each owns:
 *   config.c  the load: files and includes, the error list, duplicates across
 *             files, the snapshot's lifetime and lookups, diagnostics;
 *   schema.c  the key tables (struct spec) with their defaults, the sections
 *             ([daemon], [ca.NAME], ...) and config_schema_foreach;
 *   spec.c    the engine that applies a table of struct spec;
 *   values.c  value parsers: durations, addresses, URLs, strings, modes,
 *             events, domains (one value at a time, no system lookups);
 *   checks.c  cross-checks against the system and between keys: files,
 *             directories, secrets, commands, users and groups, public-CA
 *             names, references between sections, two deploys writing a file;
 *   diff.c    what a reload compares between two snapshots;
 *   domain.c  RFC 3492 punycode and domain-name normalisation;
 *   toml*.c   the TOML 1.0 parser (its internals: toml_internal.h). */
#ifndef CERTLOOP_CONFIG_CONFIG_INTERNAL_H
#define CERTLOOP_CONFIG_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "config/toml.h"

/* RFC 3492 encoding of n code points into out (capacity cap, NUL-terminated,
 * no "xn--" prefix). Basic code points are copied as written (case kept).
 * Returns the length written, or -1 on overflow or when out is too small. */
int config_punycode_encode(const uint32_t *cp, size_t n, char *out, size_t cap);

/* RFC 3492 decoding of len ASCII bytes into at most cap code points.
 * Returns the number of code points, or -1 when the input is not valid
 * punycode (bad digit, overflow, a basic code point produced) or too long. */
int config_punycode_decode(const char *in, size_t len, uint32_t *out, size_t cap);

/* Decodes UTF-8 into code points (strict: no overlongs, no surrogates, at
 * most U+10FFFF). Returns the count, or -1 if invalid or longer than cap. */
int config_utf8_decode(const char *s, size_t len, uint32_t *out, size_t cap);

/* Normalises one name from `domains`: trailing dot stripped, upper case
 * folded, internationalised labels converted to punycode A-labels, given
 * xn-- labels checked by decoding; a wildcard only as the whole leftmost
 * label. On success returns 0 and *out is an owned string. On failure
 * returns -EINVAL and a one-line reason is written into why (size why_cap). */
int config_domain_normalize(const char *in, size_t len, char **out, char *why, size_t why_cap);

/* Edit distance (Levenshtein, ASCII case-insensitive), capped at 100. */
unsigned config_edit_distance(const char *a, const char *b);

/* ------------------------------------------------------------------------ */
/* The load context, shared by the files of a load                           */

struct pending {
    size_t file;
    uint32_t line, col;
    size_t seq;
    char *text; /* owned */
};

struct idcache {
    char *name; /* owned */
    bool found;
    long id;
};

struct cert_tmp {
    struct cfg_cert c;
    size_t file;
    char *ca_name; /* owned, or NULL if `ca` was not written */
    struct toml_pos ca_pos;
    char *dns_name; /* owned, or NULL */
    struct toml_pos dns_pos;
    bool challenge_set;
    struct toml_pos challenge_pos;
    struct toml_pos *dom_pos; /* owned, one per domain */
    bool domains_given;
    bool domains_bad;
    char *path;     /* owned: "certificate.NAME" */
    char *hub_name; /* owned: NAME of from = "hub.NAME", or NULL */
    struct toml_pos from_pos;
};

/* A definition of [ca|dns|notify|certificate.NAME] seen while reading, for
 * the sort that finds duplicates across files. */
struct sortkey {
    const char *name; /* borrowed from obj */
    size_t file;
    struct toml_pos pos;
    size_t seq;
    void *obj;
};

/* Strings that live as long as one load, copied into 64 KiB blocks that
 * never move (a malloc and a free per string, or one buffer that grows by
 * copying, cost a reload at 100,000 certificates more than its checks). */
struct text_block;
struct text_pool {
    struct text_block *head; /* owned: the block being filled, then the older ones */
};

/* One file a deploy writes. */
struct output {
    const char *file;    /* in cctx.out_text: the path written */
    const char *keypath; /* in cctx.out_text: "certificate.NAME.deploy[I].KEY" */
    size_t src;          /* the config file */
    struct toml_pos pos;
};

/* Errors kept per load. A file of a million bad lines (16 MiB fit many)
 * must not cost gigabytes, nor a reload a million log lines on the loop:
 * past this many the rest are only counted. */
#define CONFIG_MAX_ERRORS 200

struct cctx {
    struct config *cfg;
    size_t file; /* index into cfg->files of the file being read */
    struct pending *errs;
    size_t n_errs, cap_errs;
    size_t n_dropped; /* errors past CONFIG_MAX_ERRORS, counted only */
    struct sortkey *cas, *dns, *notify, *certs, *hubs;
    size_t n_cas, cap_cas, n_dns, cap_dns, n_notify, cap_notify, n_certs, cap_certs;
    size_t n_hubs, cap_hubs;
    size_t seq;
    struct idcache *users, *groups;
    size_t n_users, cap_users, n_groups, cap_groups;
    char *lastdir; /* owned: the last parent directory checked */
    size_t lastdir_len, lastdir_cap;
    int lastdir_rc;
    struct output *outputs; /* every file a deploy writes, to find two writers */
    size_t n_outputs, cap_outputs;
    struct text_pool out_text; /* the outputs' strings */
    struct toml_pos include_pos;
    bool include_set;
    struct toml_pos api_pos; /* of the [api] table, for its cross-checks */
    size_t api_file;
    struct toml_pos tlsalpn_port_pos; /* of [tlsalpn01] public_port when written */
    size_t tlsalpn_port_file;
    bool tlsalpn_port_set;
    const struct config_overlay *overlay; /* borrowed, or NULL */
    size_t api_first_file; /* files from here on are the API's (conf.d/api/); 0: none */
    size_t preview_file;   /* the overlay's extra_text; 0: none */
};

/* Records one error at pos of file (line 0: no position) for path (may be
 * NULL), "FILE:LINE:COL: error: PATH: MESSAGE". Errors are sorted by place
 * when the load ends. */
void config_err(struct cctx *c, size_t file, struct toml_pos pos, const char *path, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

/* Error in the file being read. */
#define ERR(c, pos, path, ...) config_err((c), (c)->file, (pos), (path), __VA_ARGS__)

/* Message helpers (config.c): show() escapes and cuts a value for a message;
 * path_join() builds "base.key" (quoted when not bare); closest() suggests a
 * known word within a small edit distance, or NULL. */
/* config.c */
/* A copy of s in pool, freed with the pool by config_pool_fini. */
const char *config_pool_strdup(struct text_pool *pool, const char *s);
void config_pool_fini(struct text_pool *pool);
const char *config_show(char *buf, size_t cap, const char *s);
char *config_path_join(const char *base, const char *key, size_t keylen);
/* The same into buf when it fits (buf is returned), else an owned string. */
char *config_path_join_in(char *buf, size_t cap, const char *base, const char *key, size_t keylen);
void config_type_error(struct cctx *c, const struct toml_value *v, const char *path,
                       const char *want);
void config_join_names(char *buf, size_t cap, const char *const *names);
const char *config_closest(const char *word, const char *const *names, size_t n);

/* values.c */
bool config_url_split(const char *u, bool *https, char *host, size_t hostcap);
void config_strv_free(struct cfg_strv *v);
bool config_conv_str(struct cctx *c, const struct toml_keyval *kv, const char *path, char **field,
                     bool abs_path);
bool config_conv_duration(struct cctx *c, const struct toml_value *v, const char *path, int64_t min,
                          int64_t *field);
bool config_conv_strv(struct cctx *c, const struct toml_keyval *kv, const char *path,
                      struct cfg_strv *field);
bool config_check_listen(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field);
/* "IP:PORT" strings, the port required (a listener that is not [http01]'s). */
bool config_check_listen_addrs(struct cctx *c, const struct toml_keyval *kv, const char *path,
                               void *obj, void *field);
/* [api]: listen needs tokens_file; certificate names a [certificate.X]
 * that certloop issues, and needs listen. */
void config_check_api(struct cctx *c);
/* [tlsalpn01] public_port written while listen is empty: refused (only
 * the responder's probe uses it). */
void config_check_tlsalpn01(struct cctx *c);
bool config_check_dns_addrs(struct cctx *c, const struct toml_keyval *kv, const char *path,
                            void *obj, void *field);
bool config_check_dns_addr(struct cctx *c, const struct toml_keyval *kv, const char *path,
                           void *obj, void *field);
bool config_check_http_url(struct cctx *c, const struct toml_keyval *kv, const char *path,
                           void *obj, void *field);
bool config_check_contact(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                          void *field);
bool config_check_tsig_alg(struct cctx *c, const struct toml_keyval *kv, const char *path,
                           void *obj, void *field);
bool config_check_zone(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                       void *field);
bool config_conv_mode(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                      void *field);
bool config_conv_events(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                        void *field);
bool config_conv_persist_until(struct cctx *c, const struct toml_keyval *kv, const char *path,
                               void *obj, void *field);
bool config_conv_domains(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field);
bool config_conv_cert_ca(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field);
bool config_conv_cert_dns(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                          void *field);
bool config_check_challenge(struct cctx *c, const struct toml_keyval *kv, const char *path,
                            void *obj, void *field);

/* hub.c: [hub.NAME] and a certificate's from = "hub.NAME" */
bool config_check_hub_url(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                          void *field);
bool config_check_hub_trust(struct cctx *c, const struct toml_keyval *kv, const char *path,
                            void *obj, void *field);
bool config_conv_cert_from(struct cctx *c, const struct toml_keyval *kv, const char *path,
                           void *obj, void *field);
/* In load_cert: the keys a pulled certificate refuses, each with a sentence. */
void config_check_from_keys(struct cctx *c, struct cert_tmp *ct, const struct toml_table *t);
/* In config_resolve_cert: the [hub.NAME] a pulled certificate names. */
void config_resolve_from(struct cctx *c, struct cert_tmp *ct);

/* checks.c */
bool config_check_file_exists(struct cctx *c, const struct toml_keyval *kv, const char *path,
                              void *obj, void *field);
bool config_check_secret(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field);
/* A secret file (config_check_secret) holding a 32-byte key (hex or base64). */
bool config_check_key32_file(struct cctx *c, const struct toml_keyval *kv, const char *path,
                             void *obj, void *field);
/* [store] instance: a name of at most 63 safe characters. */
bool config_check_instance(struct cctx *c, const struct toml_keyval *kv, const char *path,
                           void *obj, void *field);
bool config_check_parent_dir(struct cctx *c, const struct toml_keyval *kv, const char *path,
                             void *obj, void *field);
bool config_check_socket_path(struct cctx *c, const struct toml_keyval *kv, const char *path,
                              void *obj, void *field);
bool config_check_ca_url(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field);
bool config_check_hooks_dir(struct cctx *c, const struct toml_keyval *kv, const char *path,
                            void *obj, void *field);
/* Resolves a user (user true) or group name, or a number, to its id through
 * the user database (cached per load); false after reporting "unknown user
 * 'NAME'" at kv's value. */
bool config_resolve_id(struct cctx *c, const struct toml_keyval *kv, const char *path, bool user,
                       const char *name, long *id);
bool config_check_command(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                          void *field);
bool config_check_staging_url(struct cctx *c, const struct toml_keyval *kv, const char *path,
                              void *obj, void *field);
bool config_check_smtp_url(struct cctx *c, const struct toml_keyval *kv, const char *path,
                           void *obj, void *field);
bool config_check_mail_addr(struct cctx *c, const struct toml_keyval *kv, const char *path,
                            void *obj, void *field);
bool config_check_mail_addrs(struct cctx *c, const struct toml_keyval *kv, const char *path,
                             void *obj, void *field);
bool config_check_dir_exists(struct cctx *c, const struct toml_keyval *kv, const char *path,
                             void *obj, void *field);
/* Every http-01 certificate that is ordered has something to answer the CA
 * ([http01] listen or webroot). */
void config_check_http01_answerable(struct cctx *c);
bool config_check_object_name(struct cctx *c, const char *section, const char *name,
                              const char *path, struct toml_pos pos);
void config_resolve_cert(struct cctx *c, struct cert_tmp *ct);
void config_check_outputs(struct cctx *c);

/* ------------------------------------------------------------------------ */
/* The schema: tables of struct spec (schema.c) and their engine (spec.c)     */

enum spec_kind {
    SK_STR,      /* char *: a non-empty string */
    SK_PATH,     /* char *: an absolute path */
    SK_BOOL,     /* bool */
    SK_UINT,     /* unsigned within [min, max] */
    SK_DURATION, /* int64_t seconds: "1d12h" or an integer of seconds, >= min */
    SK_ENUM,     /* int: index into names */
    SK_STRV,     /* struct cfg_strv: an array of strings */
    SK_USER,     /* char *: a user name or number; its uid_t goes to id_off */
    SK_GROUP,    /* char *: a group name or number; its gid_t goes to id_off */
    SK_SUB,      /* an inline table whose keys (sub) fill the same object */
    SK_CUSTOM,   /* check does the conversion itself */
};

/* A check runs after the conversion (or instead of it for SK_CUSTOM). It
 * reports its own errors and returns false if it reported any. kv is the
 * key/value as written, path its key path, obj the object being filled
 * and field the member at spec.off. */
typedef bool (*check_cb)(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field);

struct spec {
    const char *key;
    enum spec_kind kind;
    bool required;
    size_t off;
    check_cb check;
    const char *const *names; /* SK_ENUM: NULL-terminated */
    const struct spec *sub;   /* SK_SUB */
    unsigned types;           /* bits (1 << type) this key applies to; 0: every type */
    int64_t min, max;         /* SK_UINT, SK_DURATION */
    size_t id_off;            /* SK_USER, SK_GROUP: the uid_t or gid_t member */
    /* SK_CUSTOM: the value's type for config_schema_foreach (the other kinds
     * name their own); an SK_CUSTOM with sub is an array of tables of sub. */
    const char *type;
    /* The default as TOML writes it; a snapshot starts from it (spec_defaults)
     * for every kind but SK_SUB and SK_CUSTOM, so the default exists only here.
     * A phrase in parentheses documents a default the code computes; NULL:
     * none (absent means unset, or the key is required). */
    const char *dflt;
};

/* spec.c: the schema engine */
/* Fills obj from table t (written at tpos, known as path) by specs, reporting
 * every problem; false if it reported any. type is the object's type index
 * (for specs restricted by `types`; type_names names them), or -1. */
bool config_spec_apply(struct cctx *c, const struct toml_table *t, struct toml_pos tpos,
                       const char *path, const struct spec *specs, void *obj, int type,
                       const char *const *type_names);
/* Reads the `type` of a table (an index into names, or -1) without reporting:
 * config_spec_apply reports. */
int config_spec_peek_type(const struct toml_table *t, const char *const *names);
/* Fills obj's fields with the literal defaults of specs (SK_SUB and
 * SK_CUSTOM excepted: their loaders set those). The defaults are constants
 * of schema.c, so a bad one is a programming error (assert). */
void config_spec_defaults(const struct spec *specs, void *obj);
/* Reports an unknown key, suggesting the closest of known. */
void config_unknown_key(struct cctx *c, const struct toml_keyval *kv, const char *path,
                        const char *const *known, size_t n_known);

/* schema.c */
/* Sets cfg->daemon and cfg->http01 to their defaults (from the schema). */
void config_schema_defaults(struct config *cfg);
void config_load_root(struct cctx *c, const struct toml_table *root, bool is_main);

/* config.c: one more entry in cfg->files (its index); one file read and
 * parsed, or text parsed as file (problems reported): 0, -errno,
 * ERR_TOO_BIG, ERR_CONFIG (not a regular file) or ERR_PARSE. */
size_t config_add_file(struct config *cfg, const char *path);
int config_read_file(struct cctx *c, size_t file, struct toml_table **root);
int config_parse_text(struct cctx *c, size_t file, const char *text, size_t len,
                      struct toml_table **root);

/* apidir.c: true when path is in the API's folder (cfg->api_dir), so the
 * include pattern leaves it to config_load_api_dir. */
bool config_api_dir_holds(const struct cctx *c, const char *path);
/* Reads the API's files (cfg->api_dir, "*.toml" sorted, with c->overlay
 * applied), each of which may hold only [certificate.NAME] for its NAME.toml. */
void config_load_api_dir(struct cctx *c);

#endif
