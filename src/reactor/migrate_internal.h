/* Private to `certloop import-certbot` / `import-lego` (migrate.c, the
 * shared run; migrate_read.c, the other clients' file formats;
 * migrate_certbot.c; migrate_lego.c): one import run and what its files
 * share. */
#ifndef CERTLOOP_REACTOR_MIGRATE_INTERNAL_H
#define CERTLOOP_REACTOR_MIGRATE_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <uv.h>

#include "config/config.h"
#include "store/store.h"
#include "util/buf.h"

struct ini_entry {
    char *section; /* "" at the top, else the innermost section's name */
    char *key, *val;
};

struct ini {
    struct ini_entry *e;
    size_t n;
};

struct written {
    char **paths; /* files this run created, removed again if the result is invalid */
    size_t n;
};

struct account {
    char *ca;      /* certloop's CA name */
    char *key_pem; /* owned */
    char *json;    /* {"url", "directory"} */
};

struct run {
    const struct config *cfg;
    struct store *store; /* the daemon's, shared (no lock: it may be running) */
    const char *dir;     /* certbot's, e.g. /etc/letsencrypt */
    char *conf_d;        /* where the .toml files go */
    char *conf_dir;      /* the main file's directory (secret files) */
    const char *cmd;     /* "import-certbot" or "import-lego", for messages */
    FILE *out, *err;
    struct written w;
    struct account *accounts;
    size_t n_accounts;
    char **new_cas; /* "NAME\tDIRECTORY" of CAs written by this run */
    size_t n_new_cas;
    char **webroots; /* distinct webroot paths of the imported lineages */
    size_t n_webroots;
    char **deploy_dirs; /* distinct directories the files actions write to */
    size_t n_deploy_dirs;
    char **read_dirs; /* more directories the daemon must read (certbot's archive/) */
    size_t n_read_dirs;
    const char *prefix; /* "certbot" or "lego": conf.d/PREFIX-NAME.toml */
};

/* What one imported certificate becomes. */
struct lineage_out {
    const char *prefix; /* "certbot": conf.d/certbot-NAME.toml */
    const char *source; /* the file it came from, for the comment */
    const char *name;   /* [certificate.NAME] */
    char *const *names; /* NULL-terminated */
    const char *ca, *key, *challenge;
    const char *dns_tables; /* [dns.PREFIX-NAME] text, or NULL (dns = "PREFIX-NAME" with dns-01) */
    long renew_before_days; /* 0: certloop's default */
    const char *cert, *chain, *fullchain, *key_path; /* the files deployed; NULL: not written */
    const char *hook;         /* a shell command run after each deployment, or NULL */
    const char *hook_lineage; /* RENEWED_LINEAGE for it (the tool's live directory) */
};

/* migrate_read.c: configobj files, TOML output, certificates and keys */
char *migrate_trim(char *s);
int migrate_ini_read(const char *path, struct ini *f);
void migrate_ini_fini(struct ini *f);
const char *migrate_ini_get(const struct ini *f, const char *section, const char *key);
void migrate_toml_str(struct buf *b, const char *s);
void migrate_toml_kv(struct buf *b, const char *key, const char *val);
void migrate_toml_key(struct buf *b, const char *k);
char **migrate_cert_names(const char *path, char **why);
void migrate_names_free(char **names);
const char *migrate_key_type_of_file(const char *path, char **why);
const char *migrate_key_type(const struct ini *rc, const char *key_path, char **why);
char *migrate_pkey_to_pem(EVP_PKEY *k);
char *migrate_jwk_to_pem(const json_t *jwk);

/* migrate.c: the run shared by both commands */
int migrate_write_new(struct run *r, const char *path, const char *data, mode_t mode);
char *migrate_safe_name(const char *s);
char *migrate_ca_for(struct run *r, const char *directory, const json_t *regr);
void migrate_account_add(struct run *r, const char *ca, const char *directory, char *key_pem,
                         const char *url);
void migrate_account_take(struct run *r, const char *ca, const char *directory,
                          const char *acct_dir, const json_t *regr);
void migrate_path_set_add(char ***set, size_t *n, const char *path);
void migrate_webroot_add(struct run *r, const char *path);
int migrate_emit_lineage(struct run *r, const struct lineage_out *l, char **why);
int migrate_run(const char *config_path, const char *dir, const char *cmd, const char *prefix,
                const char *subdir, const char *suffix,
                int (*fn)(struct run *r, const char *path, const char *name), FILE *out, FILE *err);

/* Says on stderr that the lineage lname was skipped and why, when ret is
 * not 0; frees why (owned, may be NULL) either way. */
void migrate_skipped(struct run *r, const char *lname, int ret, char *why);

/* migrate_certbot.c */
void migrate_certbot_hook_dirs(struct run *r);

#endif
