/* Unit tests for the configuration schema (src/config/config.c, domain.c):
 * each test writes its files into a fresh temporary directory, loads them
 * with config_load and checks either the snapshot's values or the exact
 * "FILE:LINE:COL: error: KEY.PATH: message" lines. Punycode is checked
 * against the samples of RFC 3492 section 7.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "config/config_internal.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/xalloc.h"

/* ---- helpers ------------------------------------------------------------ */

struct tdir {
    char path[64];
    struct config *cfg;
    struct config_diag diag;
    int rc;
};

static struct tdir *tdir_new(void)
{
    struct tdir *t = xcalloc(1, sizeof(*t));
    snprintf(t->path, sizeof(t->path), "/tmp/certloop-config-XXXXXX");
    assert_non_null(mkdtemp(t->path));
    config_diag_init(&t->diag);
    return t;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void tdir_free(struct tdir *t)
{
    config_unref(t->cfg);
    config_diag_fini(&t->diag);
    nftw(t->path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(t);
}

/* Replaces every "@T@" in tmpl by the directory. */
static char *subst(const struct tdir *t, const char *tmpl)
{
    size_t n = 0;
    for (const char *p = strstr(tmpl, "@T@"); p != NULL; p = strstr(p + 3, "@T@"))
        n++;
    char *out = xmalloc(strlen(tmpl) + n * strlen(t->path) + 1);
    char *o = out;
    while (*tmpl != '\0') {
        if (strncmp(tmpl, "@T@", 3) == 0) {
            memcpy(o, t->path, strlen(t->path));
            o += strlen(t->path);
            tmpl += 3;
        } else {
            *o++ = *tmpl++;
        }
    }
    *o = '\0';
    return out;
}

static char *tpath(const struct tdir *t, const char *rel)
{
    return xasprintf("%s/%s", t->path, rel);
}

static void mkdir_in(const struct tdir *t, const char *rel)
{
    char *p = tpath(t, rel);
    assert_int_equal(mkdir(p, 0755), 0);
    free(p);
}

/* Writes rel (with @T@ substituted) and sets its mode. */
static void write_file(const struct tdir *t, const char *rel, const char *tmpl, mode_t mode)
{
    char *p = tpath(t, rel);
    char *body = subst(t, tmpl);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(body, 1, strlen(body), f), strlen(body));
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(p, mode), 0);
    free(body);
    free(p);
}

static int load_main(struct tdir *t, const char *tmpl)
{
    char *p = tpath(t, "certloop.toml");
    write_file(t, "certloop.toml", tmpl, 0644);
    config_unref(t->cfg);
    t->cfg = NULL;
    config_diag_fini(&t->diag);
    t->rc = config_load(p, &t->cfg, &t->diag);
    free(p);
    return t->rc;
}

static void dump(const struct tdir *t)
{
    for (size_t i = 0; i < t->diag.n; i++)
        fprintf(stderr, "  diag[%zu]: %s\n", i, t->diag.lines[i]);
}

/* Asserts a line "DIR/rel:LINE:COL: error: " + msg (exact whole line). */
static void expect_line(const struct tdir *t, const char *rel, unsigned line, unsigned col,
                        const char *msg)
{
    char *want = xasprintf("%s/%s:%u:%u: error: %s", t->path, rel, line, col, msg);
    for (size_t i = 0; i < t->diag.n; i++) {
        if (strcmp(t->diag.lines[i], want) == 0) {
            free(want);
            return;
        }
    }
    fprintf(stderr, "missing: %s\n", want);
    dump(t);
    free(want);
    fail();
}

/* Asserts a line starting with "DIR/rel:LINE:COL: error: " that contains frag. */
static void expect_frag(const struct tdir *t, const char *rel, unsigned line, unsigned col,
                        const char *frag)
{
    char *prefix = xasprintf("%s/%s:%u:%u: error: ", t->path, rel, line, col);
    for (size_t i = 0; i < t->diag.n; i++) {
        if (strncmp(t->diag.lines[i], prefix, strlen(prefix)) == 0 &&
            strstr(t->diag.lines[i], frag) != NULL) {
            free(prefix);
            return;
        }
    }
    fprintf(stderr, "missing: %s...%s\n", prefix, frag);
    dump(t);
    free(prefix);
    fail();
}

/* expect_line with the message formatted. */
static void expect_linef(const struct tdir *t, const char *rel, unsigned line, unsigned col,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void expect_linef(const struct tdir *t, const char *rel, unsigned line, unsigned col,
                         const char *fmt, ...)
{
    va_list ap;
    char msg[2048];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    expect_line(t, rel, line, col, msg);
}

static void expect_ok(struct tdir *t)
{
    if (t->rc != 0)
        dump(t);
    assert_int_equal(t->rc, 0);
    assert_non_null(t->cfg);
    assert_int_equal(t->diag.n, 0);
}

static void expect_errors(const struct tdir *t, size_t n)
{
    if (t->rc != ERR_CONFIG || t->diag.n != n)
        dump(t);
    assert_int_equal(t->rc, ERR_CONFIG);
    assert_null(t->cfg);
    assert_int_equal(t->diag.n, n);
}

/* A CA defined after the lines under test, so line numbers stay small. */
#define LOCAL_CA "[ca.local]\ndirectory = \"https://127.0.0.1:14000/dir\"\n"
#define LE_CA "[ca.le]\ndirectory = \"https://acme-v02.api.letsencrypt.org/directory\"\n"

/* ---- a complete configuration ------------------------------------------- */

static const char full_config[] =
    "[daemon]\n"
    "state_dir = \"@T@/state\"\n"
    "control_socket = \"@T@/control.sock\"\n"
    "max_concurrent_orders = 8\n"
    "log_level = \"debug\"\n"
    "resolvers = [\"127.0.0.1:5353\", \"::1\"]\n"
    "\n"
    "[http01]\n"
    "listen = [\"127.0.0.1:0\", \"[::1]:8080\"]\n"
    "\n"
    "[ca.local]\n"
    "directory = \"https://127.0.0.1:14000/dir\"\n"
    "contact = [\"mailto:admin@example.org\"]\n"
    "agree_tos = true\n"
    "trust = \"@T@/pebble.pem\"\n"
    "eab = { kid = \"kid-1\", hmac_key_file = \"@T@/eab.key\" }\n"
    "preferred_chain = \"Pebble Root\"\n"
    "profile = \"shortlived\"\n"
    "\n"
    "[ca.le]\n"
    "directory = \"https://acme-v02.api.letsencrypt.org/directory\"\n"
    "\n"
    "[dns.knot]\n"
    "type = \"rfc2136\"\n"
    "server = \"127.0.0.1:5300\"\n"
    "zone = \"Example.ORG.\"\n"
    "tsig = { name = \"certloop.\", secret_file = \"@T@/tsig.secret\" }\n"
    "nameservers = [\"127.0.0.1\"]\n"
    "propagation_timeout = \"5m\"\n"
    "poll_interval = \"1s\"\n"
    "\n"
    "[dns.hook]\n"
    "type = \"exec\"\n"
    "command = [\"@T@/dns-hook\", \"--verbose\"]\n"
    "timeout = \"30s\"\n"
    "\n"
    "[notify.ops]\n"
    "url = \"https://hooks.example.org/certloop\"\n"
    "secret_file = \"@T@/hook.secret\"\n"
    "events = [\"failed\", \"expiring\"]\n"
    "\n"
    "[certificate.www]\n"
    "domains = [\"Example.ORG.\", \"www.example.org\", \"b\xc3\xbc"
    "cher.example.org\"]\n"
    "ca = \"local\"\n"
    "key = \"rsa3072\"\n"
    "renew_before = \"1d12h\"\n"
    "\n"
    "[[certificate.www.deploy]]\n"
    "type = \"files\"\n"
    "fullchain = \"@T@/deploy/www.fullchain.pem\"\n"
    "key = \"@T@/deploy/www.key\"\n"
    "mode = \"0640\"\n"
    "owner = \"root\"\n"
    "group = \"root\"\n"
    "\n"
    "[[certificate.www.deploy]]\n"
    "type = \"exec\"\n"
    "command = [\"systemctl\", \"reload\", \"nginx\"]\n"
    "timeout = \"2m\"\n"
    "\n"
    "[certificate.wild]\n"
    "domains = [\"*.example.org\"]\n"
    "ca = \"le\"\n"
    "dns = \"knot\"\n"
    "\n"
    "[certificate.imported]\n"
    "import = { cert = \"@T@/old.pem\", key = \"@T@/old.key\" }\n";

static void write_full_fixtures(struct tdir *t)
{
    mkdir_in(t, "deploy");
    write_file(t, "pebble.pem", "not checked here\n", 0644);
    write_file(t, "eab.key", "c2VjcmV0\n", 0600);
    write_file(t, "tsig.secret", "c2VjcmV0\n", 0600);
    write_file(t, "hook.secret", "secret\n", 0400);
    write_file(t, "old.pem", "pem\n", 0644);
    write_file(t, "old.key", "key\n", 0600);
    write_file(t, "dns-hook", "#!/bin/sh\n", 0755);
}

static void test_full_config_values(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    write_full_fixtures(t);
    load_main(t, full_config);
    expect_ok(t);
    const struct config *cfg = t->cfg;
    char *p;

    assert_int_equal(cfg->refs, 1);
    assert_int_equal(cfg->files.n, 1);
    p = tpath(t, "state");
    assert_string_equal(cfg->daemon.state_dir, p);
    free(p);
    assert_int_equal(cfg->daemon.max_concurrent_orders, 8);
    assert_int_equal(cfg->daemon.log_level, LOG_LVL_DEBUG);
    assert_string_equal(cfg->daemon.include, "conf.d/*.toml");
    assert_int_equal(cfg->daemon.resolvers.n, 2);
    assert_string_equal(cfg->daemon.resolvers.v[0], "127.0.0.1:5353");
    assert_string_equal(cfg->daemon.resolvers.v[1], "[::1]:53");
    assert_int_equal(cfg->http01.listen.n, 2);
    assert_string_equal(cfg->http01.listen.v[1], "[::1]:8080");

    assert_int_equal(cfg->n_cas, 2);
    const struct cfg_ca *ca = config_ca_find(cfg, "local");
    assert_non_null(ca);
    assert_string_equal(ca->directory, "https://127.0.0.1:14000/dir");
    assert_int_equal(ca->contact.n, 1);
    assert_string_equal(ca->contact.v[0], "mailto:admin@example.org");
    assert_true(ca->agree_tos);
    assert_string_equal(ca->eab_kid, "kid-1");
    assert_non_null(strstr(ca->eab_hmac_key_file, "/eab.key"));
    assert_string_equal(ca->preferred_chain, "Pebble Root");
    assert_string_equal(ca->profile, "shortlived");
    assert_false(ca->is_public);
    assert_int_equal(ca->where.pos.line, 11);
    assert_true(config_ca_find(cfg, "le")->is_public);
    assert_null(config_ca_find(cfg, "nope"));

    const struct cfg_dns *knot = config_dns_find(cfg, "knot");
    assert_non_null(knot);
    assert_int_equal(knot->type, CFG_DNS_RFC2136);
    assert_string_equal(knot->server, "127.0.0.1:5300");
    assert_string_equal(knot->zone, "example.org");
    assert_string_equal(knot->tsig.name, "certloop.");
    assert_string_equal(knot->tsig.algorithm, "hmac-sha256");
    assert_string_equal(knot->nameservers.v[0], "127.0.0.1:53");
    assert_int_equal(knot->propagation_timeout_s, 300);
    assert_int_equal(knot->poll_interval_s, 1);
    const struct cfg_dns *hook = config_dns_find(cfg, "hook");
    assert_int_equal(hook->type, CFG_DNS_EXEC);
    assert_int_equal(hook->command.n, 2);
    char *hookp = tpath(t, "dns-hook");
    assert_string_equal(hook->command.v[0], hookp);
    free(hookp);
    assert_int_equal(hook->timeout_s, 30);
    assert_int_equal(hook->propagation_timeout_s, 120);

    const struct cfg_notify *ops = config_notify_find(cfg, "ops");
    assert_non_null(ops);
    assert_int_equal(ops->events, CFG_EVENT_FAILED | CFG_EVENT_EXPIRING);

    /* sorted by name */
    assert_int_equal(cfg->n_certs, 3);
    assert_string_equal(cfg->certs[0].name, "imported");
    assert_string_equal(cfg->certs[1].name, "wild");
    assert_string_equal(cfg->certs[2].name, "www");

    const struct cfg_cert *www = config_cert_find(cfg, "www");
    assert_ptr_equal(www, &cfg->certs[2]);
    assert_int_equal(www->domains.n, 3);
    assert_string_equal(www->domains.v[0], "example.org");
    assert_string_equal(www->domains.v[2], "xn--bcher-kva.example.org");
    assert_ptr_equal(www->ca, config_ca_find(cfg, "local"));
    assert_int_equal(www->key, CFG_KEY_RSA3072);
    assert_string_equal(config_key_type_name(www->key), "rsa3072");
    assert_int_equal(www->challenge, CFG_CHAL_HTTP01);
    assert_null(www->dns);
    assert_int_equal(www->renew_before_s, 36 * 3600);
    assert_int_equal(www->where.pos.line, 42);
    assert_int_equal(www->n_deploy, 2);
    const struct cfg_deploy *d = &www->deploy[0];
    assert_int_equal(d->type, CFG_DEPLOY_FILES);
    assert_non_null(strstr(d->fullchain, "/deploy/www.fullchain.pem"));
    assert_non_null(strstr(d->key, "/deploy/www.key"));
    assert_null(d->cert);
    assert_true(d->has_mode);
    assert_int_equal(d->mode, 0640);
    assert_int_equal(d->uid, 0);
    assert_int_equal(d->gid, 0);
    assert_int_equal(d->where.pos.line, 48);
    d = &www->deploy[1];
    assert_int_equal(d->type, CFG_DEPLOY_EXEC);
    assert_int_equal(d->command.n, 3);
    assert_string_equal(d->command.v[2], "nginx");
    assert_int_equal(d->timeout_s, 120);

    const struct cfg_cert *wild = config_cert_find(cfg, "wild");
    assert_string_equal(wild->domains.v[0], "*.example.org");
    assert_int_equal(wild->challenge, CFG_CHAL_DNS01);
    assert_ptr_equal(wild->dns, knot);
    assert_int_equal(wild->key, CFG_KEY_EC_P256);

    const struct cfg_cert *imp = config_cert_find(cfg, "imported");
    assert_null(imp->ca);
    assert_int_equal(imp->domains.n, 0);
    assert_non_null(strstr(imp->import_cert, "/old.pem"));
    assert_non_null(strstr(imp->import_key, "/old.key"));
    assert_null(config_cert_find(cfg, "zzz"));
    tdir_free(t);
}

static void test_defaults(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[certificate.a]\n"
                 "domains = [\"a.example\"]\n" LOCAL_CA);
    expect_ok(t);
    const struct config *cfg = t->cfg;
    assert_string_equal(cfg->daemon.state_dir, "/var/lib/certloop");
    assert_string_equal(cfg->daemon.control_socket, "/run/certloop/control.sock");
    assert_int_equal(cfg->daemon.max_concurrent_orders, 64);
    assert_int_equal(cfg->daemon.log_level, LOG_LVL_INFO);
    assert_int_equal(cfg->daemon.resolvers.n, 0);
    assert_int_equal(cfg->http01.listen.n, 2);
    assert_string_equal(cfg->http01.listen.v[0], "[::]:80");
    assert_string_equal(cfg->http01.listen.v[1], "0.0.0.0:80");
    const struct cfg_cert *a = config_cert_find(cfg, "a");
    /* the only CA is the default */
    assert_ptr_equal(a->ca, &cfg->cas[0]);
    assert_int_equal(a->key, CFG_KEY_EC_P256);
    assert_int_equal(a->challenge, CFG_CHAL_HTTP01);
    assert_int_equal(a->renew_before_s, 0);
    assert_int_equal(a->n_deploy, 0);
    tdir_free(t);
}

/* ---- syntax, unknown keys, many errors ---------------------------------- */

static void test_toml_syntax_error(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[daemon]\nlog_level = \"info\n");
    expect_errors(t, 1);
    char *prefix = xasprintf("%s/certloop.toml:2:", t->path);
    assert_memory_equal(t->diag.lines[0], prefix, strlen(prefix));
    assert_non_null(strstr(t->diag.lines[0], ": error: "));
    /* no key path for syntax errors: the parser's message follows directly */
    assert_null(strstr(t->diag.lines[0], "daemon.log_level"));
    free(prefix);
    tdir_free(t);
}

static void test_main_file_missing(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    char *p = tpath(t, "nope.toml");
    struct config *cfg = NULL;
    int rc = config_load(p, &cfg, &t->diag);
    assert_int_equal(rc, -ENOENT);
    assert_null(cfg);
    assert_int_equal(t->diag.n, 1);
    char *want = xasprintf("%s: error: cannot read: %s", p, strerror(ENOENT));
    assert_string_equal(t->diag.lines[0], want);
    free(want);
    free(p);
    tdir_free(t);
}

static void test_unknown_key_suggests(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[certificate.www]\n"
                 "domain = [\"example.org\"]\n"
                 "colour = 1\n"
                 "[certificates.x]\n" LOCAL_CA);
    expect_errors(t, 4);
    expect_line(t, "certloop.toml", 1, 14, "certificate.www: missing required key 'domains'");
    expect_line(t, "certloop.toml", 2, 1,
                "certificate.www: unknown key 'domain'; did you mean 'domains'?");
    expect_line(t, "certloop.toml", 3, 1, "certificate.www: unknown key 'colour'");
    expect_line(t, "certloop.toml", 4, 2,
                "unknown key 'certificates'; did you mean 'certificate'?");
    tdir_free(t);
}

static void test_key_type_enum(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[certificate.www]\n"
                 "domains = [\"example.org\"]\n"
                 "key = \"rsa\"\n"
                 "challenge = \"dns01\"\n" LOCAL_CA);
    expect_errors(t, 2);
    expect_line(t, "certloop.toml", 3, 7,
                "certificate.www.key: expected ec-p256, ec-p384, rsa2048, rsa3072 or rsa4096");
    expect_line(t, "certloop.toml", 4, 13,
                "certificate.www.challenge: expected http-01, dns-01, tls-alpn-01, dns-account-01 "
                "or dns-persist-01; did you mean 'dns-01'?");
    tdir_free(t);
}

static void test_all_errors_at_once(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[daemon]\n"
                 "max_concurrent_orders = 0\n"
                 "log_level = \"loud\"\n"
                 "[certificate.www]\n"
                 "domains = [\"-bad.example\"]\n" LOCAL_CA);
    expect_errors(t, 3);
    /* sorted by position */
    expect_line(t, "certloop.toml", 2, 25,
                "daemon.max_concurrent_orders: must be between 1 and 10000, not 0");
    expect_line(t, "certloop.toml", 3, 13, "daemon.log_level: expected error, warn, info or debug");
    expect_line(t, "certloop.toml", 5, 12,
                "certificate.www.domains[0]: label \"-bad\" starts with a hyphen");
    assert_non_null(strstr(t->diag.lines[0], ":2:25:"));
    assert_non_null(strstr(t->diag.lines[1], ":3:13:"));
    assert_non_null(strstr(t->diag.lines[2], ":5:12:"));
    tdir_free(t);
}

static void test_wrong_value_types(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[daemon]\n"
                 "state_dir = 5\n"
                 "resolvers = \"127.0.0.1\"\n"
                 "[http01]\n"
                 "listen = [\"127.0.0.1:80\", 443]\n"
                 "[ca]\n"
                 "directory = \"https://x.example/dir\"\n");
    expect_errors(t, 4);
    expect_line(t, "certloop.toml", 2, 13, "daemon.state_dir: expected a string, got an integer");
    expect_line(t, "certloop.toml", 3, 13,
                "daemon.resolvers: expected an array of strings, got a string");
    expect_line(t, "certloop.toml", 5, 27, "http01.listen[1]: expected a string, got an integer");
    expect_line(t, "certloop.toml", 7, 13,
                "ca.directory: expected a table [ca.directory], got a string");
    tdir_free(t);
}

/* ---- files: conf.d, include, duplicates --------------------------------- */

static const char cert_a[] = "[certificate.a]\ndomains = [\"a.example\"]\n";
static const char cert_b[] = "[certificate.b]\ndomains = [\"b.example\"]\n";

static void test_conf_d_sorted(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    mkdir_in(t, "conf.d");
    write_file(t, "conf.d/20-b.toml", cert_b, 0644);
    write_file(t, "conf.d/10-a.toml", cert_a, 0644);
    write_file(t, "conf.d/30-ignored.txt", "this is not toml = = =", 0644);
    load_main(t, LOCAL_CA);
    expect_ok(t);
    assert_int_equal(t->cfg->files.n, 3);
    char *p = tpath(t, "conf.d/10-a.toml");
    assert_string_equal(t->cfg->files.v[1], p);
    assert_string_equal(config_cert_find(t->cfg, "a")->where.file, p);
    free(p);
    p = tpath(t, "conf.d/20-b.toml");
    assert_string_equal(t->cfg->files.v[2], p);
    free(p);
    assert_int_equal(t->cfg->n_certs, 2);
    tdir_free(t);
}

static void test_missing_conf_d_is_fine(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[certificate.a]\ndomains = [\"a.example\"]\n" LOCAL_CA);
    expect_ok(t);
    assert_int_equal(t->cfg->files.n, 1);
    tdir_free(t);
}

static void test_include_pattern(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    mkdir_in(t, "conf.d");
    mkdir_in(t, "sites");
    write_file(t, "conf.d/a.toml", cert_a, 0644); /* not read: the pattern changed */
    write_file(t, "sites/b.conf", cert_b, 0644);
    load_main(t, "[daemon]\ninclude = \"sites/*.conf\"\n" LOCAL_CA);
    expect_ok(t);
    assert_int_equal(t->cfg->files.n, 2);
    assert_null(config_cert_find(t->cfg, "a"));
    assert_non_null(config_cert_find(t->cfg, "b"));
    assert_string_equal(t->cfg->daemon.include, "sites/*.conf");
    tdir_free(t);
}

static void test_conf_d_errors_and_main_only_sections(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    mkdir_in(t, "conf.d");
    write_file(t, "conf.d/a.toml",
               "[daemon]\n"
               "log_level = \"debug\"\n"
               "[http01]\n"
               "listen = []\n",
               0644);
    write_file(t, "conf.d/b.toml", "[certificate.b\n", 0644);
    write_file(t, "conf.d/c.toml", "[certificate.c]\ndomains = [\"c.example\"]\nkey = 1\n", 0644);
    load_main(t, LOCAL_CA);
    expect_errors(t, 4);
    char *main = tpath(t, "certloop.toml");
    char *msg = xasprintf("daemon: [daemon] is only allowed in the main file %s", main);
    expect_line(t, "conf.d/a.toml", 1, 2, msg);
    free(msg);
    msg = xasprintf("http01: [http01] is only allowed in the main file %s", main);
    expect_line(t, "conf.d/a.toml", 3, 2, msg);
    free(msg);
    free(main);
    /* a syntax error in one file does not hide the others */
    char *prefix = xasprintf("%s/conf.d/b.toml:1:", t->path);
    assert_memory_equal(t->diag.lines[2], prefix, strlen(prefix));
    free(prefix);
    expect_frag(t, "conf.d/c.toml", 3, 7, "certificate.c.key: expected a string (ec-p256");
    tdir_free(t);
}

static void test_duplicate_certificate_across_files(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    mkdir_in(t, "conf.d");
    write_file(t, "conf.d/a.toml", "\n\n[certificate.www]\ndomains = [\"a.example\"]\n", 0644);
    load_main(t, "[certificate.www]\ndomains = [\"b.example\"]\n" LOCAL_CA
                 "[ca.local.eab]\nkid = \"k\"\n");
    expect_errors(t, 2);
    char *msg = xasprintf("certificate.www: defined twice: also at %s/certloop.toml:1:14", t->path);
    expect_line(t, "conf.d/a.toml", 3, 14, msg);
    free(msg);
    expect_line(t, "certloop.toml", 5, 11, "ca.local.eab: missing required key 'hmac_key_file'");
    tdir_free(t);
}

static void test_duplicate_ca_across_files(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    mkdir_in(t, "conf.d");
    write_file(t, "conf.d/x.toml", LOCAL_CA, 0644);
    load_main(t, LOCAL_CA);
    expect_errors(t, 1);
    char *msg = xasprintf("ca.local: defined twice: also at %s/certloop.toml:1:5", t->path);
    expect_line(t, "conf.d/x.toml", 1, 5, msg);
    free(msg);
    tdir_free(t);
}

/* ---- references and defaults -------------------------------------------- */

static void test_undefined_references(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[certificate.a]\n"
                 "domains = [\"a.example\"]\n"
                 "ca = \"locl\"\n"
                 "[certificate.b]\n"
                 "domains = [\"b.example\"]\n"
                 "dns = \"primary\"\n"
                 "[certificate.c]\n"
                 "domains = [\"c.example\"]\n"
                 "challenge = \"dns-01\"\n"
                 "[certificate.d]\n"
                 "domains = [\"d.example\"]\n"
                 "challenge = \"http-01\"\n"
                 "dns = \"x\"\n" LOCAL_CA);
    expect_errors(t, 4);
    expect_line(t, "certloop.toml", 3, 6,
                "certificate.a.ca: no [ca.locl] is defined; did you mean 'local'?");
    expect_line(t, "certloop.toml", 6, 7, "certificate.b.dns: no [dns.primary] is defined");
    expect_line(t, "certloop.toml", 9, 13,
                "certificate.c: challenge = \"dns-01\" needs a [dns.NAME] solver");
    expect_line(t, "certloop.toml", 13, 7,
                "certificate.d: dns = \"x\" needs challenge = \"dns-01\", \"dns-account-01\" or "
                "\"dns-persist-01\"");
    tdir_free(t);
}

static void test_ca_required_with_several(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[certificate.a]\ndomains = [\"a.example\"]\n" LOCAL_CA LE_CA);
    expect_errors(t, 1);
    expect_line(t, "certloop.toml", 1, 14,
                "certificate.a: missing required key 'ca' (there is more than one [ca.NAME])");
    tdir_free(t);
}

static void test_no_ca_defined(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    write_file(t, "c.pem", "x", 0644);
    write_file(t, "c.key", "x", 0600);
    load_main(t, "[certificate.a]\n"
                 "domains = [\"a.example\"]\n"
                 "[certificate.imp]\n"
                 "import = { cert = \"@T@/c.pem\", key = \"@T@/c.key\" }\n");
    expect_errors(t, 1);
    expect_line(t, "certloop.toml", 1, 14,
                "certificate.a: no ca given and no [ca.NAME] is defined");
    /* an imported certificate needs no CA */
    load_main(t, "[certificate.imp]\n"
                 "import = { cert = \"@T@/c.pem\", key = \"@T@/c.key\" }\n");
    expect_ok(t);
    assert_null(t->cfg->certs[0].ca);
    load_main(t, "[certificate.imp]\n"
                 "domains = [\"x.example\"]\n"
                 "import = { cert = \"@T@/missing.pem\", key = \"@T@/c.key\" }\n");
    char *msg = xasprintf("certificate.imp.import.cert: %s/missing.pem does not exist", t->path);
    expect_line(t, "certloop.toml", 3, 19, msg);
    free(msg);
    tdir_free(t);
}

static void test_single_dns_solver_is_default(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[certificate.a]\n"
                 "domains = [\"*.a.example\"]\n"
                 "challenge = \"dns-01\"\n"
                 "[dns.hook]\n"
                 "type = \"exec\"\n"
                 "command = [\"/bin/true\"]\n" LOCAL_CA);
    expect_ok(t);
    assert_ptr_equal(t->cfg->certs[0].dns, config_dns_find(t->cfg, "hook"));
    tdir_free(t);
}

/* ---- names -------------------------------------------------------------- */

static void test_domain_syntax(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[certificate.a]\n"
                 "domains = [\n"
                 "  \"a-.example\",\n"
                 "  \"a..example\",\n"
                 "  \"a_b.example\",\n"
                 "  \"www.*.example\",\n"
                 "  \"w*.example\",\n"
                 "  \"xn--zz.example\",\n"
                 "  \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example\",\n"
                 "  \"\",\n"
                 "]\n" LOCAL_CA);
    expect_errors(t, 8);
    expect_line(t, "certloop.toml", 3, 3,
                "certificate.a.domains[0]: label \"a-\" ends with a hyphen");
    expect_line(t, "certloop.toml", 4, 3,
                "certificate.a.domains[1]: empty label in \"a..example\"");
    expect_line(t, "certloop.toml", 5, 3,
                "certificate.a.domains[2]: invalid character '_' in \"a_b.example\"");
    expect_line(t, "certloop.toml", 6, 3,
                "certificate.a.domains[3]: '*' is allowed only as the whole leftmost label "
                "(\"*.example.org\"), not in \"www.*.example\"");
    expect_frag(t, "certloop.toml", 7, 3, "certificate.a.domains[4]: '*' is allowed only");
    expect_line(t, "certloop.toml", 8, 3,
                "certificate.a.domains[5]: \"xn--zz\" is not a valid punycode label");
    expect_frag(t, "certloop.toml", 9, 3, "is longer than 63 characters");
    expect_line(t, "certloop.toml", 10, 3, "certificate.a.domains[7]: empty name");
    tdir_free(t);
}

static void test_domain_name_too_long(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    /* 4 labels of 63 + 3 dots = 255 > 253 */
    char label[64];
    memset(label, 'a', 63);
    label[63] = '\0';
    char *body = xasprintf("[certificate.a]\ndomains = [\"%s.%s.%s.%s\"]\n" LOCAL_CA, label, label,
                           label, label);
    load_main(t, body);
    free(body);
    expect_errors(t, 1);
    expect_frag(t, "certloop.toml", 2, 12, "is longer than 253 characters");

    /* 3 x 63 + 61 + 3 dots = 253: allowed */
    char l61[62];
    memset(l61, 'b', 61);
    l61[61] = '\0';
    body = xasprintf("[certificate.a]\ndomains = [\"%s.%s.%s.%s.\"]\n" LOCAL_CA, label, label,
                     label, l61);
    load_main(t, body);
    free(body);
    expect_ok(t);
    assert_int_equal(strlen(t->cfg->certs[0].domains.v[0]), 253);
    tdir_free(t);
}

static void test_domain_normalisation(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[certificate.a]\n"
                 "domains = [\"WWW.Example.ORG.\", \"B\xc3\x9c"
                 "CHER.example\", "
                 "\"xn--bcher-kva.example.net\", \"\xe4\xbe\x8b\xe3\x80\x82jp\"]\n" LOCAL_CA);
    expect_ok(t);
    const struct cfg_strv *d = &t->cfg->certs[0].domains;
    assert_int_equal(d->n, 4);
    assert_string_equal(d->v[0], "www.example.org");
    assert_string_equal(d->v[1], "xn--bcher-kva.example");
    assert_string_equal(d->v[2], "xn--bcher-kva.example.net");
    /* U+4F8B then the ideographic full stop, a label separator */
    assert_string_equal(d->v[3], "xn--fsq.jp");
    tdir_free(t);
}

static void test_duplicate_domains(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t,
              "[certificate.a]\n"
              "domains = [\"a.example\", \"b.example\", \"A.example.\", \"b.example\"]\n" LOCAL_CA);
    expect_errors(t, 2);
    expect_line(t, "certloop.toml", 2, 38,
                "certificate.a.domains[2]: duplicate name \"a.example\" (also "
                "certificate.a.domains[0])");
    expect_line(t, "certloop.toml", 2, 52,
                "certificate.a.domains[3]: duplicate name \"b.example\" (also "
                "certificate.a.domains[1])");
    tdir_free(t);
}

static void test_too_many_domains(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    struct buf_s {
        char *p;
        size_t n;
    } b = {xstrdup("[certificate.a]\ndomains = ["), 0};
    for (int i = 0; i < 101; i++) {
        char *n = xasprintf("%s\"n%d.example\",", b.p, i);
        free(b.p);
        b.p = n;
    }
    char *body = xasprintf("%s]\n" LOCAL_CA, b.p);
    free(b.p);
    load_main(t, body);
    free(body);
    expect_errors(t, 1);
    expect_line(t, "certloop.toml", 2, 11,
                "certificate.a.domains: at most 100 names per certificate, not 101");
    tdir_free(t);
}

static void test_wildcard_needs_dns01(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[certificate.a]\n"
                 "domains = [\"a.example\", \"*.a.example\"]\n" LOCAL_CA);
    expect_errors(t, 1);
    expect_line(t, "certloop.toml", 2, 25,
                "certificate.a.domains[1]: the wildcard name \"*.a.example\" needs challenge = "
                "\"dns-01\"");
    tdir_free(t);
}

/* dns-persist-01's persist_until (draft-ietf-acme-dns-persist-02 §4.1
 * item 5): a date-time with offset, a date (midnight UTC) or UNIX seconds,
 * kept as UNIX seconds; refused with another challenge or another type. */
static void test_persist_until(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(
        t, "[dns.d]\ntype = \"exec\"\ncommand = [\"/bin/true\"]\n"
           "[certificate.a]\ndomains = [\"a.example\"]\nchallenge = \"dns-persist-01\"\n"
           "persist_until = 2027-06-30T02:00:00+02:00\n"
           "[certificate.b]\ndomains = [\"b.example\"]\nchallenge = \"dns-persist-01\"\n"
           "persist_until = 2027-06-30\n"
           "[certificate.c]\ndomains = [\"c.example\"]\nchallenge = \"dns-persist-01\"\n"
           "persist_until = 1721952000\n"
           "[certificate.d]\ndomains = [\"d.example\"]\nchallenge = \"dns-persist-01\"\n" LOCAL_CA);
    expect_ok(t);
    assert_int_equal(config_cert_find(t->cfg, "a")->persist_until, 1814313600);
    assert_int_equal(config_cert_find(t->cfg, "b")->persist_until, 1814313600);
    assert_int_equal(config_cert_find(t->cfg, "c")->persist_until, 1721952000);
    assert_int_equal(config_cert_find(t->cfg, "d")->persist_until, 0);
    tdir_free(t);

    t = tdir_new();
    load_main(t, "[dns.d]\ntype = \"exec\"\ncommand = [\"/bin/true\"]\n"
                 "[certificate.a]\ndomains = [\"a.example\"]\nchallenge = \"dns-01\"\n"
                 "persist_until = 2027-06-30\n"
                 "[certificate.b]\ndomains = [\"b.example\"]\nchallenge = \"dns-persist-01\"\n"
                 "persist_until = \"soon\"\n" LOCAL_CA);
    expect_errors(t, 2);
    expect_line(t, "certloop.toml", 7, 1,
                "certificate.a: persist_until is only for challenge = \"dns-persist-01\"");
    expect_line(t, "certloop.toml", 11, 17,
                "certificate.b.persist_until: expected a date-time with its offset "
                "(2027-06-30T00:00:00Z), a date (2027-06-30) or UNIX seconds, got a string");
    tdir_free(t);
}

/* One dns-persist-01 certificate with persist_until = value (line 7, col 17). */
static void load_persist_until(struct tdir *t, const char *value)
{
    char *text = xasprintf("[dns.d]\ntype = \"exec\"\ncommand = [\"/bin/true\"]\n"
                           "[certificate.a]\ndomains = [\"a.example\"]\n"
                           "challenge = \"dns-persist-01\"\npersist_until = %s\n" LOCAL_CA,
                           value);
    load_main(t, text);
    free(text);
}

/* persist_until at most 10 years ahead: further is refused as a likely
 * mistake (a year typo, milliseconds), and so is anything past what UNIX
 * time and the RFC 3339 output carry; up to the bound it is taken. */
static void test_persist_until_upper_bound(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    /* a year typo, milliseconds, the last TOML date, the largest integer */
    const char *bad[] = {"2207-06-30", "2207-06-30T02:00:00+02:00", "1814313600000",
                         "9999-12-31T23:59:59Z", "9223372036854775807"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        load_persist_until(t, bad[i]);
        expect_errors(t, 1);
        expect_frag(t, "certloop.toml", 7, 17, "certificate.a.persist_until: ");
        expect_frag(t, "certloop.toml", 7, 17,
                    "is more than 10 years ahead (the latest accepted now is ");
        expect_frag(t, "certloop.toml", 7, 17,
                    "leave persist_until out for records that do not expire");
    }
    load_persist_until(t, "2207-06-30");
    expect_frag(t, "certloop.toml", 7, 17,
                "certificate.a.persist_until: 2207-06-30T00:00:00Z is more than 10 years ahead");
    load_persist_until(t, "1814313600000");
    expect_frag(t, "certloop.toml", 7, 17, "certificate.a.persist_until: 1814313600000 (");
    expect_frag(t, "certloop.toml", 7, 17, "(UNIX seconds, not milliseconds)");

    /* around the bound, in UNIX seconds: 9 years ahead is taken, 11 not */
    int64_t soon = (int64_t)time(NULL) + 9 * 365 * 86400LL;
    char v[32];
    snprintf(v, sizeof(v), "%lld", (long long)soon);
    load_persist_until(t, v);
    expect_ok(t);
    assert_int_equal(config_cert_find(t->cfg, "a")->persist_until, soon);
    snprintf(v, sizeof(v), "%lld", (long long)(soon + 2 * 365 * 86400LL));
    load_persist_until(t, v);
    expect_errors(t, 1);
    expect_frag(t, "certloop.toml", 7, 17, "is more than 10 years ahead");
    assert_null(strstr(t->diag.lines[0], "milliseconds")); /* seconds: no such hint */
    tdir_free(t);
}

/* RFC 8738: IP literals are ip identifiers; dns-01 cannot validate them,
 * and a public CA issues for them only under a profile that allows them.
 * (Regression: "192.0.2.10" passed check and the CA refused the order.) */
static void test_ip_identifier_checks(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[dns.d]\ntype = \"exec\"\ncommand = [\"/bin/true\"]\n"
                 "[certificate.a]\n"
                 "domains = [\"192.0.2.10\"]\nchallenge = \"dns-01\"\n" LOCAL_CA);
    expect_errors(t, 1);
    expect_line(t, "certloop.toml", 5, 12,
                "certificate.a.domains[0]: the IP address 192.0.2.10 can be validated only by "
                "http-01 or tls-alpn-01 (RFC 8738 section 7), not by dns-01");
    tdir_free(t);

    t = tdir_new();
    load_main(t, "[certificate.a]\n"
                 "domains = [\"8.8.4.4\", \"10.0.0.1\"]\n" LE_CA);
    expect_errors(t, 2);
    expect_line(t, "certloop.toml", 2, 12,
                "certificate.a.domains[0]: Let's Encrypt issues for IP addresses (8.8.4.4) only "
                "under a profile that allows them: set [ca.le] profile = \"shortlived\"");
    expect_line(t, "certloop.toml", 2, 23,
                "certificate.a.domains[1]: not a public address: Let's Encrypt cannot issue for "
                "a private address (RFC 1918) (10.0.0.1); use a private CA");
    tdir_free(t);

    t = tdir_new();
    load_main(t, "[certificate.a]\n"
                 "domains = [\"8.8.4.4\", \"2001:4860:4860::8888\"]\n" LE_CA
                 "profile = \"shortlived\"\n");
    expect_ok(t);
    tdir_free(t);
}

static void test_tlsalpn01_needs_listen(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[certificate.a]\n"
                 "domains = [\"a.example\"]\nchallenge = \"tls-alpn-01\"\n" LOCAL_CA);
    expect_errors(t, 1);
    expect_frag(t, "certloop.toml", 3, 13, "needs [tlsalpn01] listen");
    tdir_free(t);
    t = tdir_new();
    load_main(t,
              "[tlsalpn01]\nlisten = [\"127.0.0.1:0\"]\n[certificate.a]\n"
              "domains = [\"a.example\", \"*.a.example\"]\nchallenge = \"tls-alpn-01\"\n" LOCAL_CA);
    expect_errors(t, 1);
    expect_frag(t, "certloop.toml", 4, 25, "needs challenge = \"dns-01\"");
    tdir_free(t);
    t = tdir_new();
    load_main(t, "[tlsalpn01]\nlisten = [\"127.0.0.1:0\"]\n[certificate.a]\n"
                 "domains = [\"a.example\"]\nchallenge = \"tls-alpn-01\"\n" LOCAL_CA);
    expect_ok(t);
    assert_int_equal(t->cfg->certs[0].challenge, CFG_CHAL_TLSALPN01);
    tdir_free(t);
}

/* [tlsalpn01] public_port only says where `certloop test` probes the
 * responder: written without listen (absent or []) it would do nothing, so
 * check refuses it and says what to set; with listen it is taken. */
static void test_tlsalpn01_public_port_needs_listen(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[tlsalpn01]\npublic_port = 5001\n");
    expect_errors(t, 1);
    expect_line(t, "certloop.toml", 2, 1,
                "tlsalpn01.public_port: only used with [tlsalpn01] listen, which is empty: set "
                "listen to the responder's addresses (e.g. [\"0.0.0.0:443\"]) for challenge = "
                "\"tls-alpn-01\", or remove public_port");
    load_main(t, "[tlsalpn01]\nlisten = []\npublic_port = 443\n");
    expect_errors(t, 1);
    expect_frag(t, "certloop.toml", 3, 1, "tlsalpn01.public_port: only used with");
    load_main(t, "[tlsalpn01]\nlisten = [\"127.0.0.1:0\"]\npublic_port = 5001\n[certificate.a]\n"
                 "domains = [\"a.example\"]\nchallenge = \"tls-alpn-01\"\n" LOCAL_CA);
    expect_ok(t);
    assert_int_equal(t->cfg->tlsalpn01.public_port, 5001);
    /* not written: the default 443, nothing to refuse */
    load_main(t, "[tlsalpn01]\n");
    expect_ok(t);
    assert_int_equal(t->cfg->tlsalpn01.public_port, 443);
    tdir_free(t);
}

/* [store]: "files" is the default; "postgresql" needs its two secret files
 * (present, private, not empty; the key a 32-byte key in hex or base64) and
 * takes an instance name; its keys are refused with "files". */
static void test_store_postgresql(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[store]\ntype = \"files\"\n");
    expect_ok(t);
    assert_int_equal(t->cfg->store.type, CFG_STORE_FILES);
    tdir_free(t);

    t = tdir_new();
    write_file(t, "ci", "host=/run/postgresql dbname=certloop\n", 0600);
    write_file(t, "key", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
               0600);
    load_main(t, "[store]\ntype = \"postgresql\"\nconninfo_file = \"@T@/ci\"\n"
                 "encryption_key_file = \"@T@/key\"\ninstance = \"web-1\"\n");
    expect_ok(t);
    assert_int_equal(t->cfg->store.type, CFG_STORE_POSTGRESQL);
    assert_string_equal(t->cfg->store.instance, "web-1");
    /* base64 of 32 bytes is a key too */
    write_file(t, "key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", 0600);
    load_main(t, "[store]\ntype = \"postgresql\"\nconninfo_file = \"@T@/ci\"\n"
                 "encryption_key_file = \"@T@/key\"\n");
    expect_ok(t);
    assert_null(t->cfg->store.instance);
    /* a short key, a world-readable one, an empty conninfo, a bad instance */
    write_file(t, "key", "0001020304\n", 0600);
    write_file(t, "ci", "", 0600);
    load_main(t, "[store]\ntype = \"postgresql\"\nconninfo_file = \"@T@/ci\"\n"
                 "encryption_key_file = \"@T@/key\"\ninstance = \"a b\"\n");
    expect_errors(t, 3);
    expect_frag(t, "certloop.toml", 3, 17, "is empty");
    expect_frag(t, "certloop.toml", 4, 23, "does not hold a 32-byte key");
    expect_frag(t, "certloop.toml", 5, 12, "instance must be 1 to 63 characters");
    write_file(t, "key", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
               0644);
    write_file(t, "ci", "dbname=certloop\n", 0600);
    load_main(t, "[store]\ntype = \"postgresql\"\nconninfo_file = \"@T@/ci\"\n"
                 "encryption_key_file = \"@T@/key\"\n");
    expect_errors(t, 1);
    expect_frag(t, "certloop.toml", 4, 23, "accessible by group or others");
    /* both files are required */
    load_main(t, "[store]\ntype = \"postgresql\"\nconninfo_file = \"@T@/ci\"\n");
    expect_errors(t, 1);
    tdir_free(t);

    t = tdir_new();
    load_main(t, "[store]\nconninfo_file = \"/etc/hostname\"\n");
    expect_errors(t, 1);
    expect_line(t, "certloop.toml", 2, 1,
                "store: 'conninfo_file' does not apply to type = \"files\"");
    tdir_free(t);
}

static void test_public_ca_refuses_private_names(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[certificate.a]\n"
                 "domains = [\"printer.local\", \"intranet\", \"localhost\", \"nas.home.arpa\", "
                 "\"x.test\", \"www.example.org\"]\n" LE_CA);
    expect_errors(t, 4);
    expect_line(t, "certloop.toml", 2, 12,
                "certificate.a.domains[0]: not a public name: Let's Encrypt cannot issue for "
                ".local; use a private CA");
    expect_line(t, "certloop.toml", 2, 29,
                "certificate.a.domains[1]: not a public name: Let's Encrypt cannot issue for a "
                "single-label name; use a private CA");
    expect_line(t, "certloop.toml", 2, 41,
                "certificate.a.domains[2]: not a public name: Let's Encrypt cannot issue for "
                "localhost; use a private CA");
    expect_line(t, "certloop.toml", 2, 54,
                "certificate.a.domains[3]: not a public name: Let's Encrypt cannot issue for "
                ".home.arpa; use a private CA");

    /* ZeroSSL is public too; .lan and .internal are private suffixes */
    load_main(t, "[certificate.a]\n"
                 "domains = [\"a.lan\", \"b.internal\", \"c.localhost\"]\n"
                 "[ca.z]\n"
                 "directory = \"https://ACME.ZeroSSL.com/v2/DV90\"\n");
    expect_errors(t, 3);
    expect_frag(t, "certloop.toml", 2, 12, "ZeroSSL cannot issue for .lan");
    expect_frag(t, "certloop.toml", 2, 21, "ZeroSSL cannot issue for .internal");
    expect_frag(t, "certloop.toml", 2, 35, "ZeroSSL cannot issue for .localhost");
    assert_true(t->diag.n == 3);

    /* a private CA may issue them all */
    load_main(t,
              "[certificate.a]\n"
              "domains = [\"printer.local\", \"intranet\", \"localhost\", \"x.test\"]\n" LOCAL_CA);
    expect_ok(t);
    assert_false(t->cfg->cas[0].is_public);
    tdir_free(t);
}

static void test_certificate_name_must_be_file_safe(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[certificate.\"../etc\"]\n"
                 "domains = [\"a.example\"]\n"
                 "[certificate.\"ok.name_1-x\"]\n"
                 "domains = [\"b.example\"]\n"
                 "[certificate.\".hidden\"]\n"
                 "domains = [\"c.example\"]\n" LOCAL_CA);
    expect_errors(t, 2);
    expect_frag(t, "certloop.toml", 1, 14,
                "certificate.\"../etc\": certificate name \"../etc\" is not safe as a file name");
    expect_frag(t, "certloop.toml", 5, 14, "certificate.\".hidden\": certificate name");
    tdir_free(t);
}

/* ---- values ------------------------------------------------------------- */

static void test_durations(void **state)
{
    (void)state;
    int64_t s = -1;
    assert_int_equal(config_duration_parse("90d", &s), 0);
    assert_int_equal(s, 90 * 86400);
    assert_int_equal(config_duration_parse("12h", &s), 0);
    assert_int_equal(s, 12 * 3600);
    assert_int_equal(config_duration_parse("30m", &s), 0);
    assert_int_equal(s, 1800);
    assert_int_equal(config_duration_parse("45s", &s), 0);
    assert_int_equal(s, 45);
    assert_int_equal(config_duration_parse("1d12h", &s), 0);
    assert_int_equal(s, 86400 + 12 * 3600);
    assert_int_equal(config_duration_parse("1d2h3m4s", &s), 0);
    assert_int_equal(s, 86400 + 7200 + 180 + 4);
    s = 7;
    assert_int_equal(config_duration_parse("", &s), -EINVAL);
    assert_int_equal(config_duration_parse("90", &s), -EINVAL);
    assert_int_equal(config_duration_parse("d", &s), -EINVAL);
    assert_int_equal(config_duration_parse("12h1d", &s), -EINVAL);
    assert_int_equal(config_duration_parse("1h1h", &s), -EINVAL);
    assert_int_equal(config_duration_parse("5w", &s), -EINVAL);
    assert_int_equal(config_duration_parse("1 d", &s), -EINVAL);
    assert_int_equal(config_duration_parse("-1d", &s), -EINVAL);
    assert_int_equal(config_duration_parse("9999999999s", &s), -EINVAL);
    assert_int_equal(s, 7);

    struct tdir *t = tdir_new();
    load_main(t, "[certificate.a]\n"
                 "domains = [\"a.example\"]\n"
                 "renew_before = \"30 days\"\n"
                 "[certificate.b]\n"
                 "domains = [\"b.example\"]\n"
                 "renew_before = \"0s\"\n"
                 "[certificate.c]\n"
                 "domains = [\"c.example\"]\n"
                 "renew_before = 3600\n" LOCAL_CA);
    expect_errors(t, 2);
    expect_frag(t, "certloop.toml", 3, 16,
                "certificate.a.renew_before: \"30 days\" is not a duration");
    expect_line(t, "certloop.toml", 6, 16, "certificate.b.renew_before: must be at least 1s");
    tdir_free(t);
}

static void test_secret_files(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    write_file(t, "open.secret", "x", 0644);
    write_file(t, "ok.secret", "x", 0600);
    load_main(t,
              "[dns.a]\n"
              "type = \"rfc2136\"\n"
              "server = \"127.0.0.1\"\n"
              "tsig = { name = \"k.\", secret_file = \"@T@/open.secret\" }\n"
              "[dns.b]\n"
              "type = \"rfc2136\"\n"
              "server = \"127.0.0.1\"\n"
              "tsig = { name = \"k.\", secret_file = \"@T@/none.secret\", algorithm = \"md5\" }\n"
              "[notify.n]\n"
              "url = \"http://127.0.0.1:9/hook\"\n"
              "secret_file = \"@T@/ok.secret\"\n"
              "[ca.x]\n"
              "directory = \"https://127.0.0.1/dir\"\n"
              "eab = { kid = \"k\", hmac_key_file = \"@T@/open.secret\" }\n");
    expect_errors(t, 4);
    char *f = tpath(t, "open.secret");
    char *msg = xasprintf("dns.a.tsig.secret_file: secret file %s is accessible by group or "
                          "others (mode 0644); run chmod 600 %s, or chmod 640 with the daemon's "
                          "group (chgrp certloop %s)",
                          f, f, f);
    expect_line(t, "certloop.toml", 4, 37, msg);
    free(msg);
    msg = xasprintf("ca.x.eab.hmac_key_file: secret file %s is accessible by group or others "
                    "(mode 0644); run chmod 600 %s, or chmod 640 with the daemon's group (chgrp "
                    "certloop %s)",
                    f, f, f);
    expect_line(t, "certloop.toml", 14, 36, msg);
    free(msg);
    free(f);
    f = tpath(t, "none.secret");
    msg = xasprintf("dns.b.tsig.secret_file: %s does not exist", f);
    expect_line(t, "certloop.toml", 8, 37, msg);
    free(msg);
    free(f);
    /* the value after `secret_file = "PATH", algorithm = ` */
    expect_line(t, "certloop.toml", 8, 53 + (unsigned)strlen(t->path) + 12,
                "dns.b.tsig.algorithm: expected hmac-sha256, hmac-sha384 or hmac-sha512");

    /* pkcs12 password file in a deploy */
    mkdir_in(t, "out");
    load_main(t, "[certificate.a]\n"
                 "domains = [\"a.example\"]\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"files\"\n"
                 "pkcs12 = \"@T@/out/a.p12\"\n"
                 "pkcs12_password_file = \"@T@/open.secret\"\n" LOCAL_CA);
    expect_errors(t, 1);
    expect_frag(t, "certloop.toml", 6, 24,
                "certificate.a.deploy[0].pkcs12_password_file: secret file");
    tdir_free(t);
}

static void test_deploy_files_checks(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    mkdir_in(t, "out");
    load_main(t, "[certificate.a]\n"
                 "domains = [\"a.example\"]\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"files\"\n"
                 "fullchain = \"@T@/nodir/a.pem\"\n"
                 "key = \"relative/a.key\"\n"
                 "mode = \"640\"\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"files\"\n"
                 "cert = \"@T@/out/a.pem\"\n"
                 "mode = 640\n"
                 "owner = \"no-such-user-xyz\"\n"
                 "group = \"no-such-group-xyz\"\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"files\"\n"
                 "key = \"@T@/out/a.key\"\n"
                 "mode = \"0644\"\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"files\"\n"
                 "mode = \"0600\"\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"copy\"\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"files\"\n"
                 "cert = \"@T@/out/x.pem\"\n"
                 "command = [\"x\"]\n" LOCAL_CA);
    char *msg =
        xasprintf("certificate.a.deploy[0].fullchain: directory %s/nodir does not exist", t->path);
    expect_line(t, "certloop.toml", 5, 13, msg);
    free(msg);
    expect_line(t, "certloop.toml", 6, 7,
                "certificate.a.deploy[0].key: \"relative/a.key\" is not an absolute path");
    expect_line(t, "certloop.toml", 11, 8,
                "certificate.a.deploy[1].mode: expected an octal string such as \"0640\" (an "
                "integer would be read as decimal)");
    expect_line(t, "certloop.toml", 12, 9,
                "certificate.a.deploy[1].owner: unknown user 'no-such-user-xyz'");
    expect_line(t, "certloop.toml", 13, 9,
                "certificate.a.deploy[1].group: unknown group 'no-such-group-xyz'");
    expect_frag(t, "certloop.toml", 17, 8,
                "certificate.a.deploy[2]: mode 0644 would let everyone read the private key");
    expect_line(t, "certloop.toml", 18, 1,
                "certificate.a.deploy[3]: a files deploy needs at least one of cert, chain, "
                "fullchain, key, bundle or pkcs12");
    expect_line(t, "certloop.toml", 22, 8, "certificate.a.deploy[4].type: expected files or exec");
    expect_line(t, "certloop.toml", 26, 1,
                "certificate.a.deploy[5]: 'command' does not apply to type = \"files\"");
    expect_errors(t, 9);

    /* "640" (three digits) is fine, as is a numeric owner */
    load_main(t, "[certificate.a]\n"
                 "domains = [\"a.example\"]\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"files\"\n"
                 "bundle = \"@T@/out/a.pem\"\n"
                 "mode = \"600\"\n"
                 "owner = \"1234\"\n" LOCAL_CA);
    expect_ok(t);
    assert_int_equal(t->cfg->certs[0].deploy[0].mode, 0600);
    assert_int_equal(t->cfg->certs[0].deploy[0].uid, 1234);
    assert_int_equal(t->cfg->certs[0].deploy[0].gid, (gid_t)-1);
    tdir_free(t);
}

static void test_deploy_file_written_twice(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    mkdir_in(t, "out");
    mkdir_in(t, "conf.d");
    write_file(t, "conf.d/b.toml",
               "[certificate.b]\n"
               "domains = [\"b.example\"]\n"
               "[[certificate.b.deploy]]\n"
               "type = \"files\"\n"
               "fullchain = \"@T@/out/a.pem\"\n",
               0644);
    load_main(t, "[certificate.a]\n"
                 "domains = [\"a.example\"]\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"files\"\n"
                 "fullchain = \"@T@/out/a.pem\"\n"
                 "cert = \"@T@/out/c.pem\"\n"
                 "chain = \"@T@/out/c.pem\"\n" LOCAL_CA);
    expect_errors(t, 2);
    char *msg = xasprintf("certificate.a.deploy[0].chain: %s/out/c.pem is also written by "
                          "certificate.a.deploy[0].cert at %s/certloop.toml:6:8",
                          t->path, t->path);
    expect_line(t, "certloop.toml", 7, 9, msg);
    free(msg);
    msg = xasprintf("certificate.b.deploy[0].fullchain: %s/out/a.pem is also written by "
                    "certificate.a.deploy[0].fullchain at %s/certloop.toml:5:13",
                    t->path, t->path);
    expect_line(t, "conf.d/b.toml", 5, 13, msg);
    free(msg);
    tdir_free(t);
}

static void test_exec_command(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[certificate.a]\n"
                 "domains = [\"a.example\"]\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"exec\"\n"
                 "command = []\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"exec\"\n"
                 "command = [\"./reload.sh\"]\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"exec\"\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"exec\"\n"
                 "command = [\"true\", \"\"]\n"
                 "fullchain = \"/tmp/x\"\n" LOCAL_CA);
    expect_errors(t, 4);
    expect_line(
        t, "certloop.toml", 5, 11,
        "certificate.a.deploy[0].command: must name a program: [\"PROGRAM\", \"ARG\", ...]");
    expect_line(t, "certloop.toml", 8, 12,
                "certificate.a.deploy[1].command[0]: \"./reload.sh\": the program must be an "
                "absolute path or a bare name looked up in PATH");
    expect_line(t, "certloop.toml", 9, 1,
                "certificate.a.deploy[2]: missing required key 'command'");
    expect_line(t, "certloop.toml", 14, 1,
                "certificate.a.deploy[3]: 'fullchain' does not apply to type = \"exec\"");
    tdir_free(t);
}

/* Commands run later (deploy exec, the dns exec solver) must name a program
 * that exists and is executable now: as an absolute path, or in PATH. */
static void test_exec_programs_must_exist(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    char *old_path = getenv("PATH") != NULL ? xstrdup(getenv("PATH")) : NULL;
    mkdir_in(t, "bin");
    mkdir_in(t, "bin2");
    write_file(t, "bin/good", "#!/bin/sh\n", 0755);
    write_file(t, "bin/plain", "#!/bin/sh\n", 0644);
    write_file(t, "bin/dup", "#!/bin/sh\n", 0644);
    write_file(t, "bin2/dup", "#!/bin/sh\n", 0755);
    char *path = xasprintf("%s/bin:%s/bin2", t->path, t->path);
    assert_int_equal(setenv("PATH", path, 1), 0);
    load_main(t, "[certificate.a]\n"
                 "domains = [\"a.example\"]\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"exec\"\n"
                 "command = [\"@T@/missing\"]\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"exec\"\n"
                 "command = [\"@T@/bin/plain\", \"x\"]\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"exec\"\n"
                 "command = [\"@T@/bin\"]\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"exec\"\n"
                 "command = [\"nothere\"]\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"exec\"\n"
                 "command = [\"plain\"]\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"exec\"\n"
                 "command = [\"good\", \"--flag\"]\n"
                 "[[certificate.a.deploy]]\n"
                 "type = \"exec\"\n"
                 "command = [\"dup\"]\n"
                 "[dns.h]\n"
                 "type = \"exec\"\n"
                 "command = [\"@T@/dns-hook\"]\n" LOCAL_CA);
    if (old_path != NULL)
        setenv("PATH", old_path, 1);
    else
        unsetenv("PATH");
    expect_errors(t, 6);
    char *m =
        xasprintf("certificate.a.deploy[0].command[0]: program %s/missing does not exist", t->path);
    expect_line(t, "certloop.toml", 5, 12, m);
    free(m);
    expect_linef(t, "certloop.toml", 8, 12,
                 "certificate.a.deploy[1].command[0]: program %s/bin/plain is not executable "
                 "(mode 0644); run chmod +x %s/bin/plain",
                 t->path, t->path);
    expect_linef(t, "certloop.toml", 11, 12,
                 "certificate.a.deploy[2].command[0]: program %s/bin is not a regular file",
                 t->path);
    expect_linef(t, "certloop.toml", 14, 12,
                 "certificate.a.deploy[3].command[0]: program \"nothere\" is not found in PATH "
                 "(%s)",
                 path);
    /* as execvp, a match that cannot run is passed over ("dup" is found in
     * bin2), but it is named when nothing else is found */
    expect_linef(t, "certloop.toml", 17, 12,
                 "certificate.a.deploy[4].command[0]: program \"plain\" in PATH is %s/bin/plain, "
                 "not an executable file",
                 t->path);
    expect_linef(t, "certloop.toml", 26, 12, "dns.h.command[0]: program %s/dns-hook does not exist",
                 t->path);
    free(path);
    free(old_path);
    tdir_free(t);
}

/* A file of many bad lines costs neither gigabytes nor a million lines: the
 * first CONFIG_MAX_ERRORS are kept (in place order), the rest counted. */
static void test_errors_capped(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    struct buf b = BUF_INIT(1 << 20);
    assert_int_equal(buf_append(&b, "[daemon]\n", 9), 0);
    for (int i = 0; i < CONFIG_MAX_ERRORS + 100; i++) {
        char line[32];
        int n = snprintf(line, sizeof(line), "bad%d = 1\n", i);
        assert_int_equal(buf_append(&b, line, (size_t)n), 0);
    }
    assert_int_equal(buf_append(&b, "", 1), 0);
    load_main(t, b.data);
    buf_fini(&b);
    assert_int_equal(t->rc, ERR_CONFIG);
    assert_int_equal(t->diag.n, CONFIG_MAX_ERRORS + 1);
    expect_line(t, "certloop.toml", 2, 1, "daemon: unknown key 'bad0'");
    char *main_file = tpath(t, "certloop.toml");
    char *last = xasprintf("%s: error: 100 more errors not shown (the first %d are)", main_file,
                           CONFIG_MAX_ERRORS);
    assert_string_equal(t->diag.lines[t->diag.n - 1], last);
    free(last);
    free(main_file);
    tdir_free(t);
}

/* hooks_dir: missing is fine and a non-executable hook is disabled, but a
 * file where a directory belongs or a dangling hook symlink is refused. */
static void test_hooks_dir(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    mkdir_in(t, "hooks");
    mkdir_in(t, "hooks/deploy");
    write_file(t, "hooks/deploy/10-off", "#!/bin/sh\n", 0644);
    write_file(t, "hooks/post", "not a directory\n", 0644);
    write_file(t, "plain", "x\n", 0644);
    char *dead = tpath(t, "hooks/deploy/20-gone");
    char *gone = tpath(t, "nowhere/hook.sh");
    assert_int_equal(symlink(gone, dead), 0);
    load_main(t, "[daemon]\n"
                 "hooks_dir = \"@T@/hooks\"\n" LOCAL_CA);
    expect_errors(t, 2);
    expect_linef(t, "certloop.toml", 2, 13, "daemon.hooks_dir: %s/hooks/post is not a directory",
                 t->path);
    expect_linef(t, "certloop.toml", 2, 13, "daemon.hooks_dir: hook %s is a symlink to nothing",
                 dead);
    assert_int_equal(unlink(dead), 0);
    char *post = tpath(t, "hooks/post");
    assert_int_equal(unlink(post), 0);
    load_main(t, "[daemon]\n"
                 "hooks_dir = \"@T@/hooks\"\n" LOCAL_CA);
    expect_ok(t);
    load_main(t, "[daemon]\n"
                 "hooks_dir = \"@T@/no-hooks\"\n" LOCAL_CA);
    expect_ok(t);
    load_main(t, "[daemon]\n"
                 "hooks_dir = \"@T@/plain\"\n" LOCAL_CA);
    expect_errors(t, 1);
    expect_linef(t, "certloop.toml", 2, 13, "daemon.hooks_dir: %s/plain is not a directory",
                 t->path);
    free(post);
    free(gone);
    free(dead);
    tdir_free(t);
}

/* Secret files: 0600, or 0640/0440 when the group is the daemon's own (the
 * process's group here); never readable by others or writable by the
 * group, never empty. */
static void test_secret_file_modes(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    write_file(t, "own.secret", "c2VjcmV0\n", 0640);
    write_file(t, "ro.secret", "c2VjcmV0\n", 0440);
    write_file(t, "gw.secret", "c2VjcmV0\n", 0660);
    write_file(t, "foreign.secret", "c2VjcmV0\n", 0640);
    write_file(t, "empty.secret", "", 0600);
    char *foreign = tpath(t, "foreign.secret");
    /* a group that is neither ours nor certloop's */
    gid_t other = 54321;
    struct group *cg = getgrnam("certloop");
    while (other == getegid() || (cg != NULL && cg->gr_gid == other))
        other++;
    assert_int_equal(chown(foreign, (uid_t)-1, other), 0);
    load_main(t, "[notify.a]\n"
                 "url = \"http://127.0.0.1:9/a\"\n"
                 "secret_file = \"@T@/own.secret\"\n"
                 "[notify.b]\n"
                 "url = \"http://127.0.0.1:9/b\"\n"
                 "secret_file = \"@T@/ro.secret\"\n"
                 "[notify.c]\n"
                 "url = \"http://127.0.0.1:9/c\"\n"
                 "secret_file = \"@T@/gw.secret\"\n"
                 "[notify.d]\n"
                 "url = \"http://127.0.0.1:9/d\"\n"
                 "secret_file = \"@T@/foreign.secret\"\n"
                 "[notify.e]\n"
                 "url = \"http://127.0.0.1:9/e\"\n"
                 "secret_file = \"@T@/empty.secret\"\n" LOCAL_CA);
    expect_errors(t, 3);
    expect_frag(t, "certloop.toml", 9, 15, "notify.c.secret_file: secret file ");
    expect_linef(t, "certloop.toml", 12, 15,
                 "notify.d.secret_file: secret file %s is accessible by group or others "
                 "(mode 0640); run chmod 600 %s, or chmod 640 with the daemon's group "
                 "(chgrp certloop %s)",
                 foreign, foreign, foreign);
    char *empty = tpath(t, "empty.secret");
    expect_linef(t, "certloop.toml", 15, 15, "notify.e.secret_file: secret file %s is empty",
                 empty);
    free(empty);
    free(foreign);
    tdir_free(t);
}

/* dns-01 proves NAME at _acme-challenge.NAME, which must fit in 253
 * characters too: a 240-character name fits http-01 only. */
static void test_dns01_record_name_length(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    char l63[64];
    memset(l63, 'a', 63);
    l63[63] = '\0';
    /* 63 + 1 + 63 + 1 + 63 + 1 + 40 + 8 (".example") = 240 */
    char *name = xasprintf("%s.%s.%s.%.40s.example", l63, l63, l63, l63);
    assert_int_equal(strlen(name), 240);
    char *body = xasprintf("[certificate.h]\n"
                           "domains = [\"%s\"]\n"
                           "[certificate.d]\n"
                           "domains = [\"ok.example\", \"%s\"]\n"
                           "challenge = \"dns-01\"\n"
                           "[dns.x]\n"
                           "type = \"exec\"\n"
                           "command = [\"/bin/true\"]\n" LOCAL_CA,
                           name, name);
    load_main(t, body);
    expect_errors(t, 1);
    expect_frag(t, "certloop.toml", 4, 26,
                "certificate.d.domains[1]: a 240-character name: its dns-01 record "
                "_acme-challenge.aaaaaaaaaaaaaaaaaaaa... would be 256 characters, more than the "
                "253 a DNS name may have; use http-01 or a shorter name");
    free(body);
    free(name);
    tdir_free(t);
}

static void test_dns_solver_checks(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[dns.a]\n"
                 "type = \"rfc2136\"\n"
                 "server = \"ns.example.org:53\"\n"
                 "command = [\"x\"]\n"
                 "[dns.b]\n"
                 "type = \"callback\"\n"
                 "url = \"ftp://x\"\n"
                 "[dns.d]\n"
                 "type = \"exec\"\n"
                 "command = [\"/bin/true\"]\n"
                 "poll_interval = \"10m\"\n"
                 "[dns.c]\n"
                 "type = \"carrier-pigeon\"\n");
    expect_errors(t, 5);
    expect_line(
        t, "certloop.toml", 3, 10,
        "dns.a.server: \"ns.example.org:53\" is not an IP address (with an optional :PORT)");
    expect_line(t, "certloop.toml", 4, 1, "dns.a: 'command' does not apply to type = \"rfc2136\"");
    expect_line(t, "certloop.toml", 7, 7,
                "dns.b.url: \"ftp://x\" is not an http:// or https:// URL");
    expect_line(t, "certloop.toml", 11, 17,
                "dns.d: poll_interval (600s) is longer than propagation_timeout (120s)");
    expect_line(t, "certloop.toml", 13, 8, "dns.c.type: expected rfc2136, exec or callback");
    tdir_free(t);
}

static void test_dns_callback_solver(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    write_file(t, "cb.secret", "k\n", 0600);
    write_file(t, "open.secret", "k\n", 0644);
    load_main(t, "[dns.api]\n"
                 "type = \"callback\"\n"
                 "url = \"https://dns.example.org/hook\"\n"
                 "secret_file = \"@T@/cb.secret\"\n"
                 "timeout = \"15s\"\n");
    expect_ok(t);
    assert_int_equal(t->cfg->n_dns, 1);
    const struct cfg_dns *d = &t->cfg->dns[0];
    assert_int_equal(d->type, CFG_DNS_CALLBACK);
    assert_string_equal(d->url, "https://dns.example.org/hook");
    assert_non_null(strstr(d->secret_file, "/cb.secret"));
    assert_null(d->trust);
    assert_int_equal(d->timeout_s, 15);
    /* a readable secret, a url left out, secret_file on another type */
    load_main(t, "[dns.api]\n"
                 "type = \"callback\"\n"
                 "url = \"http://127.0.0.1:8080/\"\n"
                 "secret_file = \"@T@/open.secret\"\n"
                 "[dns.nourl]\n"
                 "type = \"callback\"\n"
                 "[dns.x]\n"
                 "type = \"exec\"\n"
                 "command = [\"/bin/true\"]\n"
                 "secret_file = \"@T@/cb.secret\"\n");
    expect_errors(t, 3);
    expect_frag(t, "certloop.toml", 4, 15, "is accessible by group or others (mode 0644)");
    expect_line(t, "certloop.toml", 5, 6, "dns.nourl: missing required key 'url'");
    expect_line(t, "certloop.toml", 10, 1,
                "dns.x: 'secret_file' does not apply to type = \"exec\"");
    tdir_free(t);
}

static void test_ca_directory_url(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[ca.a]\n"
                 "directory = \"http://acme.example.org/dir\"\n"
                 "[ca.b]\n"
                 "directory = \"acme.example.org\"\n"
                 "[ca.c]\n"
                 "directory = \"http://127.0.0.5:14000/dir\"\n"
                 "[ca.d]\n"
                 "directory = \"http://[::1]:14000/dir\"\n"
                 "[ca.e]\n"
                 "directory = \"http://localhost/dir\"\n"
                 "[ca.f]\n"
                 "contact = [\"admin@example.org\"]\n"
                 "[ca.\"bad/name\"]\n"
                 "directory = \"https://x.example/\"\n");
    expect_errors(t, 5);
    expect_line(t, "certloop.toml", 2, 13,
                "ca.a.directory: the ACME directory must be an https:// URL (http:// only for "
                "127.0.0.0/8, ::1 or localhost)");
    expect_line(t, "certloop.toml", 4, 13,
                "ca.b.directory: \"acme.example.org\" is not an https:// URL");
    expect_line(t, "certloop.toml", 11, 5, "ca.f: missing required key 'directory'");
    expect_line(t, "certloop.toml", 12, 12,
                "ca.f.contact[0]: \"admin@example.org\" is not a contact URL; expected "
                "\"mailto:ADDRESS\"");
    expect_frag(t, "certloop.toml", 13, 5, "ca.\"bad/name\": CA name \"bad/name\" is not safe");
    tdir_free(t);
}

static void test_listen_and_resolvers(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(
        t, "[daemon]\n"
           "resolvers = [\"1.2.3.4:53\", \"[2001:db8::1]:5353\", \"dns.example\"]\n"
           "control_socket = \"/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\"\n"
           "[http01]\n"
           "listen = [\"0.0.0.0:80\", \"[::]:80\", \"0.0.0.0\", \"::1:80\", \"1.2.3.4:99999\"]\n");
    expect_errors(t, 5);
    expect_line(t, "certloop.toml", 2, 50,
                "daemon.resolvers[2]: \"dns.example\" is not an IP address (with an optional "
                ":PORT)");
    expect_line(t, "certloop.toml", 3, 18,
                "daemon.control_socket: longer than 107 bytes, too long for a unix socket");
    expect_line(t, "certloop.toml", 5, 36,
                "http01.listen[2]: \"0.0.0.0\" is not \"IP:PORT\" or \"[IPv6]:PORT\"");
    expect_line(t, "certloop.toml", 5, 47,
                "http01.listen[3]: \"::1:80\" is not \"IP:PORT\" or \"[IPv6]:PORT\"");
    expect_frag(t, "certloop.toml", 5, 57, "http01.listen[4]: \"1.2.3.4:99999\"");

    struct sockaddr_storage ss;
    socklen_t len = 0;
    assert_int_equal(config_addr_parse("[::1]:853", -1, &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 853);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(config_addr_parse("192.0.2.1", 53, &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 53);
    assert_int_equal(config_addr_parse("192.0.2.1", -1, &ss, &len), -EINVAL);
    assert_int_equal(config_addr_parse("192.0.2.1:", 53, &ss, &len), -EINVAL);
    assert_int_equal(config_addr_parse("[192.0.2.1]:53", 53, &ss, &len), -EINVAL);
    tdir_free(t);
}

static void test_http01_webroot_and_answerable(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    mkdir_in(t, "www");
    write_file(t, "file", "x", 0644);
    /* webroot: listen defaults to [], owner and group resolved */
    load_main(t, "[http01]\n"
                 "webroot = \"@T@/www\"\n"
                 "webroot_owner = \"root\"\n"
                 "webroot_group = \"0\"\n"
                 "public_port = 5002\n"
                 "[certificate.a]\n"
                 "domains = [\"a.example\"]\n" LOCAL_CA);
    expect_ok(t);
    char *www = tpath(t, "www");
    assert_string_equal(t->cfg->http01.webroot, www);
    free(www);
    assert_int_equal(t->cfg->http01.listen.n, 0);
    assert_int_equal(t->cfg->http01.webroot_uid, 0);
    assert_int_equal(t->cfg->http01.webroot_gid, 0);
    assert_int_equal(t->cfg->http01.public_port, 5002);
    /* defaults: no webroot, port 80, ids unset */
    load_main(t, "[certificate.a]\ndomains = [\"a.example\"]\n" LOCAL_CA);
    expect_ok(t);
    assert_null(t->cfg->http01.webroot);
    assert_int_equal(t->cfg->http01.public_port, 80);
    assert_int_equal(t->cfg->http01.webroot_uid, (uid_t)-1);
    /* bad values */
    load_main(t, "[http01]\n"
                 "webroot = \"@T@/file\"\n"
                 "webroot_owner = \"no-such-user-x\"\n"
                 "public_port = 0\n");
    expect_errors(t, 3);
    expect_frag(t, "certloop.toml", 2, 11, "http01.webroot: ");
    expect_frag(t, "certloop.toml", 2, 11, "/file is not a directory");
    expect_line(t, "certloop.toml", 3, 17, "http01.webroot_owner: unknown user 'no-such-user-x'");
    expect_frag(t, "certloop.toml", 4, 15, "http01.public_port: must be between 1 and 65535");
    /* listen = [] and no webroot: an http-01 certificate has nothing to
     * answer the CA; dns-01 and imports are fine */
    write_file(t, "c.pem", "x", 0644);
    write_file(t, "c.key", "x", 0600);
    load_main(t, "[http01]\n"
                 "listen = []\n"
                 "[certificate.a]\n"
                 "domains = [\"a.example\"]\n"
                 "[certificate.imp]\n"
                 "import = { cert = \"@T@/c.pem\", key = \"@T@/c.key\" }\n" LOCAL_CA);
    expect_errors(t, 1);
    expect_frag(t, "certloop.toml", 3, 14,
                "certificate.a: http-01 has nothing to answer the CA: [http01] listen is [] and "
                "no [http01] webroot is set");
    tdir_free(t);
}

static void test_dry_run_derivation(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    struct config_diag d;
    mkdir_in(t, "out");
    const char *conf = "[daemon]\nstate_dir = \"@T@/state\"\n"
                       "[notify.ops]\nurl = \"https://hooks.example.org/x\"\n"
                       "[certificate.a]\ndomains = [\"a.example.org\"]\nca = \"le\"\n"
                       "[[certificate.a.deploy]]\ntype = \"files\"\n"
                       "fullchain = \"@T@/out/a.pem\"\n"
                       "[certificate.b]\ndomains = [\"b.example.org\"]\nca = \"local\"\n" LE_CA
                       "[ca.local]\ndirectory = \"https://127.0.0.1:14000/dir\"\n"
                       "staging = \"https://127.0.0.1:14001/dir\"\n";
    /* a: Let's Encrypt's staging is known; b stays out */
    load_main(t, conf);
    expect_ok(t);
    struct config *cfg = t->cfg;
    t->cfg = NULL;
    config_diag_init(&d);
    const char *names[] = {"a"};
    assert_int_equal(config_dry_run(cfg, names, 1, &d), 0);
    assert_int_equal(d.n, 0);
    assert_int_equal(cfg->n_certs, 1);
    assert_string_equal(cfg->certs[0].name, "a");
    assert_int_equal(cfg->certs[0].n_deploy, 0);
    assert_string_equal(cfg->certs[0].ca->directory,
                        "https://acme-staging-v02.api.letsencrypt.org/directory");
    assert_int_equal(cfg->n_notify, 0);
    char *sd = xasprintf("%s/state/dry-run", t->path);
    assert_string_equal(cfg->daemon.state_dir, sd);
    free(sd);
    config_unref(cfg);
    /* every certificate: the local CA orders from its staging */
    load_main(t, conf);
    expect_ok(t);
    cfg = t->cfg;
    t->cfg = NULL;
    assert_int_equal(config_dry_run(cfg, NULL, 0, &d), 0);
    assert_int_equal(cfg->n_certs, 2);
    assert_string_equal(config_cert_find(cfg, "b")->ca->directory, "https://127.0.0.1:14001/dir");
    config_unref(cfg);
    /* an unknown name and a CA without staging are refused */
    load_main(t, "[certificate.c]\ndomains = [\"c.example\"]\n" LOCAL_CA);
    expect_ok(t);
    cfg = t->cfg;
    t->cfg = NULL;
    const char *two[] = {"c", "nosuch"};
    assert_int_equal(config_dry_run(cfg, two, 2, &d), -EINVAL);
    assert_int_equal(d.n, 2);
    assert_non_null(strstr(d.lines[0], "no certificate named 'nosuch'"));
    assert_non_null(strstr(d.lines[1], "ca.local: no staging directory to dry-run against"));
    config_unref(cfg);
    config_diag_fini(&d);
    tdir_free(t);
}

static void test_notify_events(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[notify.a]\n"
                 "url = \"https://h.example/x\"\n"
                 "[notify.b]\n"
                 "url = \"https://h.example/y\"\n"
                 "events = [\"issued\", \"exploded\"]\n"
                 "[notify.c]\n"
                 "events = []\n");
    expect_errors(t, 3);
    expect_line(t, "certloop.toml", 5, 21,
                "notify.b.events[1]: unknown event \"exploded\"; expected issued, renewed, failed, "
                "expiring, deploy_failed, dns_record_required, dns_record_removable, "
                "persist_expiring or fleet_conflict");
    expect_line(t, "certloop.toml", 6, 9, "notify.c: missing required key 'url'");
    expect_line(t, "certloop.toml", 7, 10, "notify.c.events: must name at least one event");
    load_main(t, "[notify.a]\nurl = \"https://h.example/x\"\n");
    expect_ok(t);
    assert_int_equal(t->cfg->notify[0].events, CFG_EVENT_ALL);
    assert_null(t->cfg->notify[0].secret_file);
    tdir_free(t);
}

static void test_more_checks(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    mkdir_in(t, "out");
    load_main(t, "[ca.local]\n"
                 "directory = \"https://127.0.0.1:14000/dir\"\n"
                 "trust = \"@T@/missing-ca.pem\"\n"
                 "eab = { hmac_key_file = \"@T@/missing.key\" }\n"
                 "[certificate.a]\n"
                 "domains = [\"a.example\"]\n"
                 "deploy = { type = \"exec\", command = [\"x\"] }\n"
                 "[certificate.b]\n"
                 "domains = [\"b.example\"]\n"
                 "[[certificate.b.deploy]]\n"
                 "type = \"files\"\n"
                 "cert = \"@T@/out/b.pem\"\n"
                 "pkcs12_legacy = true\n");
    expect_errors(t, 5);
    char *msg = xasprintf("ca.local.trust: %s/missing-ca.pem does not exist", t->path);
    expect_line(t, "certloop.toml", 3, 9, msg);
    free(msg);
    expect_line(t, "certloop.toml", 4, 1, "ca.local.eab: missing required key 'kid'");
    expect_frag(t, "certloop.toml", 4, 25, "ca.local.eab.hmac_key_file: ");
    expect_line(t, "certloop.toml", 7, 10,
                "certificate.a.deploy: expected an array of tables ([[...deploy]]), got a table");
    expect_line(t, "certloop.toml", 13, 1,
                "certificate.b.deploy[0]: pkcs12_legacy is set but pkcs12 is not");

    /* an include pattern that also matches the main file reads it once;
     * listen = [] turns the listener off (a dns-01 certificate needs none) */
    load_main(t, "[daemon]\n"
                 "include = \"*.toml\"\n"
                 "[http01]\n"
                 "listen = []\n"
                 "[dns.hook]\ntype = \"exec\"\ncommand = [\"/bin/true\"]\n"
                 "[certificate.a]\n"
                 "domains = [\"a.example\"]\n"
                 "challenge = \"dns-01\"\n" LOCAL_CA);
    expect_ok(t);
    assert_int_equal(t->cfg->files.n, 1);
    assert_int_equal(t->cfg->http01.listen.n, 0);
    assert_non_null(t->cfg->http01.listen.v);
    tdir_free(t);
}

/* ---- snapshot ----------------------------------------------------------- */

static void test_refcounting(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    load_main(t, "[certificate.a]\ndomains = [\"a.example\"]\n" LOCAL_CA);
    expect_ok(t);
    struct config *cfg = t->cfg;
    assert_ptr_equal(config_ref(cfg), cfg);
    assert_int_equal(cfg->refs, 2);
    config_unref(cfg);
    assert_int_equal(cfg->refs, 1);
    /* still usable with one reference left */
    assert_string_equal(config_cert_find(cfg, "a")->domains.v[0], "a.example");
    assert_null(config_ref(NULL));
    config_unref(NULL);
    tdir_free(t); /* the last unref frees everything (checked by ASan/valgrind runs) */
}

static void test_equal_order_and_deploy(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    mkdir_in(t, "out");
    static const char tmpl[] = "[certificate.a]\n"
                               "domains = [\"a.example\", \"b.example\"]\n"
                               "[[certificate.a.deploy]]\n"
                               "type = \"files\"\n"
                               "cert = \"@T@/out/a.pem\"\n"
                               "[certificate.c]\n"
                               "domains = [\"a.example\", \"b.example\"]\n"
                               "key = \"ec-p384\"\n"
                               "[[certificate.c.deploy]]\n"
                               "type = \"files\"\n"
                               "cert = \"@T@/out/c.pem\"\n"
                               "[certificate.d]\n"
                               "domains = [\"b.example\", \"a.example\"]\n" LOCAL_CA;
    load_main(t, tmpl);
    expect_ok(t);
    struct config *one = config_ref(t->cfg);
    const struct cfg_cert *a = config_cert_find(one, "a");
    const struct cfg_cert *c = config_cert_find(one, "c"), *d = config_cert_find(one, "d");
    assert_true(config_cert_equal_order(a, a));
    assert_true(config_cert_equal_deploy(a, a));
    assert_false(config_cert_equal_order(a, c)); /* key type */
    assert_false(config_cert_equal_deploy(a, c));
    assert_false(config_cert_equal_order(a, d)); /* order of names (the first is the CN) */
    assert_false(config_cert_equal_deploy(a, d));

    /* the same file loaded again: a new snapshot, equal certificates */
    load_main(t, tmpl);
    expect_ok(t);
    assert_ptr_not_equal(t->cfg, one);
    const struct cfg_cert *a1 = config_cert_find(t->cfg, "a");
    assert_true(config_cert_equal_order(a, a1));
    assert_true(config_cert_equal_deploy(a, a1));

    /* another CA directory means a reissue; another mode another deploy */
    static const char tmpl2[] = "[certificate.a]\n"
                                "domains = [\"a.example\", \"b.example\"]\n"
                                "[[certificate.a.deploy]]\n"
                                "type = \"files\"\n"
                                "cert = \"@T@/out/a.pem\"\n"
                                "mode = \"0600\"\n"
                                "[ca.local]\n"
                                "directory = \"https://127.0.0.1:14001/dir\"\n";
    load_main(t, tmpl2);
    expect_ok(t);
    const struct cfg_cert *a2 = config_cert_find(t->cfg, "a");
    assert_false(config_cert_equal_order(a, a2));
    assert_false(config_cert_equal_deploy(a, a2));
    config_unref(one);
    tdir_free(t);
}

/* ---- punycode (RFC 3492 section 7.1) ------------------------------------ */

struct pc_sample {
    const char *name;
    uint32_t cp[48];
    size_t n;
    const char *ascii;
};

#define CPS(...) {__VA_ARGS__}, sizeof((uint32_t[]){__VA_ARGS__}) / sizeof(uint32_t)

static const struct pc_sample samples[] = {
    {"(A) Arabic (Egyptian)",
     CPS(0x0644, 0x064A, 0x0647, 0x0645, 0x0627, 0x0628, 0x062A, 0x0643, 0x0644, 0x0645, 0x0648,
         0x0634, 0x0639, 0x0631, 0x0628, 0x064A, 0x061F),
     "egbpdaj6bu4bxfgehfvwxn"},
    {"(B) Chinese (simplified)",
     CPS(0x4ED6, 0x4EEC, 0x4E3A, 0x4EC0, 0x4E48, 0x4E0D, 0x8BF4, 0x4E2D, 0x6587),
     "ihqwcrb4cv8a8dqg056pqjye"},
    {"(C) Chinese (traditional)",
     CPS(0x4ED6, 0x5011, 0x7232, 0x4EC0, 0x9EBD, 0x4E0D, 0x8AAA, 0x4E2D, 0x6587),
     "ihqwctvzc91f659drss3x8bo0yb"},
    {"(D) Czech",
     CPS(0x0050, 0x0072, 0x006F, 0x010D, 0x0070, 0x0072, 0x006F, 0x0073, 0x0074, 0x011B, 0x006E,
         0x0065, 0x006D, 0x006C, 0x0075, 0x0076, 0x00ED, 0x010D, 0x0065, 0x0073, 0x006B, 0x0079),
     "Proprostnemluvesky-uyb24dma41a"},
    {"(E) Hebrew",
     CPS(0x05DC, 0x05DE, 0x05D4, 0x05D4, 0x05DD, 0x05E4, 0x05E9, 0x05D5, 0x05D8, 0x05DC, 0x05D0,
         0x05DE, 0x05D3, 0x05D1, 0x05E8, 0x05D9, 0x05DD, 0x05E2, 0x05D1, 0x05E8, 0x05D9, 0x05EA),
     "4dbcagdahymbxekheh6e0a7fei0b"},
    {"(F) Hindi (Devanagari)",
     CPS(0x092F, 0x0939, 0x0932, 0x094B, 0x0917, 0x0939, 0x093F, 0x0928, 0x094D, 0x0926, 0x0940,
         0x0915, 0x094D, 0x092F, 0x094B, 0x0902, 0x0928, 0x0939, 0x0940, 0x0902, 0x092C, 0x094B,
         0x0932, 0x0938, 0x0915, 0x0924, 0x0947, 0x0939, 0x0948, 0x0902),
     "i1baa7eci9glrd9b2ae1bj0hfcgg6iyaf8o0a1dig0cd"},
    {"(G) Japanese (kanji and hiragana)",
     CPS(0x306A, 0x305C, 0x307F, 0x3093, 0x306A, 0x65E5, 0x672C, 0x8A9E, 0x3092, 0x8A71, 0x3057,
         0x3066, 0x304F, 0x308C, 0x306A, 0x3044, 0x306E, 0x304B),
     "n8jok5ay5dzabd5bym9f0cm5685rrjetr6pdxa"},
    {"(H) Korean (Hangul syllables)",
     CPS(0xC138, 0xACC4, 0xC758, 0xBAA8, 0xB4E0, 0xC0AC, 0xB78C, 0xB4E4, 0xC774, 0xD55C, 0xAD6D,
         0xC5B4, 0xB97C, 0xC774, 0xD574, 0xD55C, 0xB2E4, 0xBA74, 0xC5BC, 0xB9C8, 0xB098, 0xC88B,
         0xC744, 0xAE4C),
     "989aomsvi5e83db1d2a355cv1e0vak1dwrv93d5xbh15a0dt30a5jpsd879ccm6fea98c"},
    {"(I) Russian (Cyrillic)",
     CPS(0x043F, 0x043E, 0x0447, 0x0435, 0x043C, 0x0443, 0x0436, 0x0435, 0x043E, 0x043D, 0x0438,
         0x043D, 0x0435, 0x0433, 0x043E, 0x0432, 0x043E, 0x0440, 0x044F, 0x0442, 0x043F, 0x043E,
         0x0440, 0x0443, 0x0441, 0x0441, 0x043A, 0x0438),
     "b1abfaaepdrnnbgefbaDotcwatmq2g4l"},
    {"(J) Spanish",
     CPS(0x0050, 0x006F, 0x0072, 0x0071, 0x0075, 0x00E9, 0x006E, 0x006F, 0x0070, 0x0075, 0x0065,
         0x0064, 0x0065, 0x006E, 0x0073, 0x0069, 0x006D, 0x0070, 0x006C, 0x0065, 0x006D, 0x0065,
         0x006E, 0x0074, 0x0065, 0x0068, 0x0061, 0x0062, 0x006C, 0x0061, 0x0072, 0x0065, 0x006E,
         0x0045, 0x0073, 0x0070, 0x0061, 0x00F1, 0x006F, 0x006C),
     "PorqunopuedensimplementehablarenEspaol-fmd56a"},
    {"(K) Vietnamese",
     CPS(0x0054, 0x1EA1, 0x0069, 0x0073, 0x0061, 0x006F, 0x0068, 0x1ECD, 0x006B, 0x0068, 0x00F4,
         0x006E, 0x0067, 0x0074, 0x0068, 0x1EC3, 0x0063, 0x0068, 0x1EC9, 0x006E, 0x00F3, 0x0069,
         0x0074, 0x0069, 0x1EBF, 0x006E, 0x0067, 0x0056, 0x0069, 0x1EC7, 0x0074),
     "TisaohkhngthchnitingVit-kjcr8268qyxafd2f1b9g"},
    {"(L) 3<nen>B<gumi><kinpachi><sensei>",
     CPS(0x0033, 0x5E74, 0x0042, 0x7D44, 0x91D1, 0x516B, 0x5148, 0x751F),
     "3B-ww4c5e180e575a65lsy2b"},
    {"(M) <amuro><namie>-with-SUPER-MONKEYS",
     CPS(0x5B89, 0x5BA4, 0x5948, 0x7F8E, 0x6075, 0x002D, 0x0077, 0x0069, 0x0074, 0x0068, 0x002D,
         0x0053, 0x0055, 0x0050, 0x0045, 0x0052, 0x002D, 0x004D, 0x004F, 0x004E, 0x004B, 0x0045,
         0x0059, 0x0053),
     "-with-SUPER-MONKEYS-pc58ag80a8qai00g7n9n"},
    {"(N) Hello-Another-Way-<sorezore><no><basho>",
     CPS(0x0048, 0x0065, 0x006C, 0x006C, 0x006F, 0x002D, 0x0041, 0x006E, 0x006F, 0x0074, 0x0068,
         0x0065, 0x0072, 0x002D, 0x0057, 0x0061, 0x0079, 0x002D, 0x305D, 0x308C, 0x305E, 0x308C,
         0x306E, 0x5834, 0x6240),
     "Hello-Another-Way--fc4qua05auwb3674vfr0b"},
    {"(O) <hitotsu><yane><no><shita>2",
     CPS(0x3072, 0x3068, 0x3064, 0x5C4B, 0x6839, 0x306E, 0x4E0B, 0x0032), "2-u9tlzr9756bt3uc0v"},
    {"(P) Maji<de>Koi<suru>5<byou><mae>",
     CPS(0x004D, 0x0061, 0x006A, 0x0069, 0x3067, 0x004B, 0x006F, 0x0069, 0x3059, 0x308B, 0x0035,
         0x79D2, 0x524D),
     "MajiKoi5-783gue6qz075azm5e"},
    {"(Q) <pafii>de<runba>",
     CPS(0x30D1, 0x30D5, 0x30A3, 0x30FC, 0x0064, 0x0065, 0x30EB, 0x30F3, 0x30D0),
     "de-jg4avhby1noc0d"},
    {"(R) <sono><supiido><de>", CPS(0x305D, 0x306E, 0x30B9, 0x30D4, 0x30FC, 0x30C9, 0x3067),
     "d9juau41awczczp"},
};

static void test_punycode_rfc3492_samples(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        const struct pc_sample *s = &samples[i];
        char out[128];
        uint32_t cps[64];

        int n = config_punycode_encode(s->cp, s->n, out, sizeof(out));
        if (n < 0 || strcasecmp(out, s->ascii) != 0)
            fprintf(stderr, "%s: encoded \"%s\", want \"%s\"\n", s->name, n < 0 ? "" : out,
                    s->ascii);
        assert_int_equal(n, (int)strlen(s->ascii));
        /* sample (I) carries an upper-case mixed-case annotation; we emit lower case */
        assert_int_equal(strcasecmp(out, s->ascii), 0);

        int m = config_punycode_decode(s->ascii, strlen(s->ascii), cps, 64);
        assert_int_equal(m, (int)s->n);
        assert_memory_equal(cps, s->cp, s->n * sizeof(uint32_t));
    }
    /* too small an output buffer fails cleanly */
    char tiny[8];
    assert_int_equal(config_punycode_encode(samples[1].cp, samples[1].n, tiny, sizeof(tiny)), -1);
    /* invalid input: bad digit, truncated delta */
    uint32_t cps[16];
    assert_int_equal(config_punycode_decode("ab!c", 4, cps, 16), -1);
    assert_int_equal(config_punycode_decode("zz", 2, cps, 16), -1);
}

static void test_punycode_domain_examples(void **state)
{
    (void)state;
    char why[300], *out = NULL;
    static const struct {
        const char *in, *want;
    } ok[] = {
        {"b\xc3\xbc"
         "cher.example",
         "xn--bcher-kva.example"},
        {"B\xc3\x9c"
         "CHER.EXAMPLE.",
         "xn--bcher-kva.example"},
        /* (B) as a label */
        {"\xe4\xbb\x96\xe4\xbb\xac\xe4\xb8\xba\xe4\xbb\x80\xe4\xb9\x88\xe4\xb8\x8d\xe8\xaf\xb4"
         "\xe4\xb8\xad\xe6\x96\x87.example",
         "xn--ihqwcrb4cv8a8dqg056pqjye.example"},
        /* (L), lower-cased as a host name */
        {"3\xe5\xb9\xb4"
         "B\xe7\xb5\x84\xe9\x87\x91\xe5\x85\xab\xe5\x85\x88\xe7\x94\x9f.jp",
         "xn--3b-ww4c5e180e575a65lsy2b.jp"},
        {"\xd0\x9f\xd0\xa0\xd0\x98\xd0\x9c\xd0\x95\xd0\xa0.\xd1\x80\xd1\x84",
         "xn--e1afmkfd.xn--p1ai"},
        {"*.Example.COM", "*.example.com"},
        {"xn--bcher-kva.example", "xn--bcher-kva.example"},
        /* RFC 8738 ip identifiers: IPv6 in its RFC 5952 form */
        {"192.0.2.10", "192.0.2.10"},
        {"2001:DB8:0:0::1", "2001:db8::1"},
        {"::1", "::1"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int rc = config_domain_normalize(ok[i].in, strlen(ok[i].in), &out, why, sizeof(why));
        if (rc != 0)
            fprintf(stderr, "%s: %s\n", ok[i].in, why);
        assert_int_equal(rc, 0);
        assert_string_equal(out, ok[i].want);
        free(out);
        out = NULL;
    }
    /* the 63-character limit applies to the A-label: 55 x 'a' + U+00FC gives
     * "xn--" + 59 characters (63, allowed), 56 x 'a' gives 64 (refused) */
    char lab[80];
    memset(lab, 'a', 55);
    memcpy(lab + 55, "\xc3\xbc.example", 11);
    assert_int_equal(config_domain_normalize(lab, 65, &out, why, sizeof(why)), 0);
    assert_int_equal(strlen(out), 63 + 8);
    assert_memory_equal(out + 59, "-8yf.example", 12);
    free(out);
    out = NULL;
    memset(lab, 'a', 56);
    memcpy(lab + 56, "\xc3\xbc.example", 11);
    assert_int_equal(config_domain_normalize(lab, 66, &out, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "longer than 63 characters in punycode"));
    static const char *const bad[] = {
        "xn--bcher-kva-.example", /* ends with a hyphen */
        "xn--abc.example",        /* not punycode */
        "xn--example-.org",       /* decodes to plain ASCII */
        "\xff\xfe.example",       /* not UTF-8 */
        "a b.example",            /* space */
        "*",                      /* a wildcard needs a base name */
        ".",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(config_domain_normalize(bad[i], strlen(bad[i]), &out, why, sizeof(why)),
                         -EINVAL);
        assert_true(why[0] != '\0');
    }
}

static void test_edit_distance(void **state)
{
    (void)state;
    assert_int_equal(config_edit_distance("domain", "domains"), 1);
    assert_int_equal(config_edit_distance("Domains", "domains"), 0);
    assert_int_equal(config_edit_distance("kitten", "sitting"), 3);
    assert_int_equal(config_edit_distance("", "abc"), 3);
}

/* ---- the shipped example ------------------------------------------------ */

static void test_shipped_example_loads(void **state)
{
    (void)state;
    const char *src = getenv("SOURCE_DIR");
    if (src == NULL)
        src = ".";
    char *p = xasprintf("%s/etc/certloop.toml", src);
    struct config *cfg = NULL;
    struct config_diag diag;
    config_diag_init(&diag);
    int rc = config_load(p, &cfg, &diag);
    for (size_t i = 0; i < diag.n; i++)
        fprintf(stderr, "  %s\n", diag.lines[i]);
    assert_int_equal(rc, 0);
    assert_non_null(cfg);
    /* the default configuration: Let's Encrypt behind nginx, nothing ordered
     * until the operator agrees to the terms and adds a certificate */
    const struct cfg_ca *le = config_ca_find(cfg, "letsencrypt");
    assert_non_null(le);
    assert_string_equal(le->directory, "https://acme-v02.api.letsencrypt.org/directory");
    assert_false(le->agree_tos);
    assert_int_equal(cfg->n_certs, 0);
    assert_int_equal(cfg->http01.listen.n, 1);
    assert_string_equal(cfg->http01.listen.v[0], "127.0.0.1:8402");
    config_unref(cfg);
    config_diag_fini(&diag);
    free(p);
}

/* ---- the schema as documentation --------------------------------------- */

struct schema_row {
    char *path, *type, *dflt;
};

struct schema_rows {
    struct schema_row *v;
    size_t n, cap;
};

static void schema_collect(const char *path, const char *type, const char *dflt, void *arg)
{
    struct schema_rows *r = arg;

    r->v = xreallocarray_grow(r->v, &r->cap, r->n + 1, sizeof(*r->v));
    r->v[r->n].path = xstrdup(path);
    r->v[r->n].type = xstrdup(type);
    r->v[r->n].dflt = dflt != NULL ? xstrdup(dflt) : NULL;
    r->n++;
}

static const struct schema_row *schema_row(const struct schema_rows *r, const char *path)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->v[i].path, path) == 0)
            return &r->v[i];
    }
    fail_msg("config_schema_foreach did not name %s", path);
    return NULL;
}

static void expect_row(const struct schema_rows *r, const char *path, const char *type,
                       const char *dflt)
{
    const struct schema_row *row = schema_row(r, path);

    assert_string_equal(row->type, type);
    if (dflt == NULL)
        assert_null(row->dflt);
    else
        assert_string_equal(row->dflt, dflt);
}

static void schema_rows_free(struct schema_rows *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].path);
        free(r->v[i].type);
        free(r->v[i].dflt);
    }
    free(r->v);
}

static void test_schema_foreach_shape(void **state)
{
    struct schema_rows r = {0};

    (void)state;
    config_schema_foreach(schema_collect, &r);
    assert_true(r.n > 50);
    for (size_t i = 0; i < r.n; i++) {
        for (size_t j = i + 1; j < r.n; j++)
            assert_string_not_equal(r.v[i].path, r.v[j].path);
    }
    expect_row(&r, "daemon.state_dir", "path", "\"/var/lib/certloop\"");
    expect_row(&r, "daemon.max_concurrent_orders", "integer", "64");
    expect_row(&r, "daemon.log_level", "error|warn|info|debug", "\"info\"");
    expect_row(&r, "daemon.resolvers", "array of strings", "[]");
    expect_row(&r, "daemon.backoff_max", "duration", "\"6h\"");
    expect_row(&r, "http01.listen", "array of strings", "[\"[::]:80\", \"0.0.0.0:80\"]");
    expect_row(&r, "ca.NAME.directory", "string", "(required)");
    expect_row(&r, "ca.NAME.agree_tos", "boolean", "false");
    expect_row(&r, "ca.NAME.eab", "table", NULL);
    expect_row(&r, "ca.NAME.eab.hmac_key_file", "path", "(required)");
    expect_row(&r, "dns.NAME.type", "rfc2136|exec|callback", "(required)");
    expect_row(&r, "dns.NAME.server", "string", "(required with type = rfc2136)");
    expect_row(&r, "dns.NAME.tsig.algorithm", "string", "\"hmac-sha256\"");
    expect_row(&r, "dns.NAME.timeout", "duration", "\"60s\"");
    expect_row(&r, "notify.NAME.events", "array of strings", "(every event)");
    expect_row(&r, "certificate.NAME.domains", "array of strings",
               "(required unless import or from is given)");
    expect_row(&r, "certificate.NAME.key", "ec-p256|ec-p384|rsa2048|rsa3072|rsa4096",
               "\"ec-p256\"");
    expect_row(&r, "certificate.NAME.deploy", "array of tables", NULL);
    expect_row(&r, "certificate.NAME.deploy[].type", "files|exec", "(required)");
    expect_row(&r, "certificate.NAME.deploy[].command", "array of strings",
               "(required with type = exec)");
    expect_row(&r, "certificate.NAME.deploy[].mode", "string",
               "(\"0644\"; files holding the key \"0640\" with a group, else \"0600\")");
    expect_row(&r, "certificate.NAME.import.cert", "path", "(required)");
    schema_rows_free(&r);
}

/* Every literal default is a value the key accepts when written out. */
static void test_schema_defaults_are_accepted(void **state)
{
    struct schema_rows r = {0};
    struct tdir *t = tdir_new();
    size_t tried = 0;

    (void)state;
    config_schema_foreach(schema_collect, &r);
    for (size_t i = 0; i < r.n; i++) {
        const char *p = r.v[i].path, *d = r.v[i].dflt;
        const char *dot = strrchr(p, '.');
        char *body = NULL;

        if (d == NULL || d[0] == '(')
            continue;
        if (strncmp(p, "daemon.", 7) == 0 || strncmp(p, "http01.", 7) == 0)
            body =
                xasprintf("[%.*s]\n%s = %s\n[certificate.a]\ndomains = [\"a.example\"]\n" LOCAL_CA,
                          (int)(strchr(p, '.') - p), p, dot + 1, d);
        else if (strncmp(p, "ca.NAME.", 8) == 0 && strchr(p + 8, '.') == NULL)
            body = xasprintf("[certificate.a]\ndomains = [\"a.example\"]\n" LOCAL_CA "%s = %s\n",
                             dot + 1, d);
        else if (strncmp(p, "certificate.NAME.", 17) == 0 && strchr(p + 17, '.') == NULL)
            body = xasprintf("[certificate.a]\ndomains = [\"a.example\"]\n%s = %s\n" LOCAL_CA,
                             dot + 1, d);
        else if (strncmp(p, "dns.NAME.", 9) == 0 && strchr(p + 9, '.') == NULL)
            body = xasprintf("[dns.d]\ntype = \"exec\"\ncommand = [\"/bin/true\"]\n%s = %s\n"
                             "[certificate.a]\ndomains = [\"a.example\"]\n" LOCAL_CA,
                             dot + 1, d);
        if (body == NULL)
            continue;
        if (load_main(t, body) != 0) {
            dump(t);
            fail_msg("%s = %s is refused", p, d);
        }
        free(body);
        tried++;
    }
    assert_true(tried >= 15);
    schema_rows_free(&r);
    tdir_free(t);
}

/* etc/certloop.toml is the reference: it shows every key (set or commented). */
static void test_schema_keys_in_shipped_example(void **state)
{
    struct schema_rows r = {0};
    const char *src = getenv("SOURCE_DIR");
    char *p = xasprintf("%s/etc/certloop.toml", src != NULL ? src : ".");
    FILE *f = fopen(p, "r");
    char *text = xcalloc(1, 1 << 20);

    (void)state;
    assert_non_null(f);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    fclose(f);
    text[n] = '\0';
    config_schema_foreach(schema_collect, &r);
    for (size_t i = 0; i < r.n; i++) {
        const char *k = strrchr(r.v[i].path, '.') + 1;
        char *pat = xasprintf("%s =", k);
        char *pat2 = xasprintf("%s.", k); /* a table key shown as [x.k] or k.sub */
        bool found = false;
        for (const char *q = strstr(text, pat); q != NULL && !found; q = strstr(q + 1, pat))
            found = q == text || !((q[-1] >= 'a' && q[-1] <= 'z') || q[-1] == '_');
        if (!found && strcmp(r.v[i].type, "table") == 0)
            found = strstr(text, pat2) != NULL;
        if (!found && strcmp(r.v[i].type, "array of tables") == 0)
            found = strstr(text, pat2) != NULL || strstr(text, "deploy]]") != NULL;
        if (!found)
            fail_msg("etc/certloop.toml does not show %s", r.v[i].path);
        free(pat);
        free(pat2);
    }
    schema_rows_free(&r);
    free(text);
    free(p);
}

/* ---- scale -------------------------------------------------------------- */

static void test_ten_thousand_certificates(void **state)
{
    (void)state;
    struct tdir *t = tdir_new();
    mkdir_in(t, "conf.d");
    mkdir_in(t, "deploy");
    int n = 0;
    for (int f = 0; f < 100; f++) {
        size_t cap = 100 * 512, len = 0;
        char *body = xmalloc(cap);
        for (int i = 0; i < 100; i++) {
            n++;
            len +=
                (size_t)snprintf(body + len, cap - len,
                                 "[certificate.site%d]\n"
                                 "domains = [\"site%d.example.org\", \"www.site%d.example.org\"]\n"
                                 "ca = \"local\"\n"
                                 "renew_before = \"30d\"\n"
                                 "[[certificate.site%d.deploy]]\n"
                                 "type = \"files\"\n"
                                 "fullchain = \"@T@/deploy/site%d.pem\"\n"
                                 "key = \"@T@/deploy/site%d.key\"\n"
                                 "owner = \"root\"\n\n",
                                 n, n, n, n, n, n);
        }
        char rel[64];
        snprintf(rel, sizeof(rel), "conf.d/%03d.toml", f);
        write_file(t, rel, body, 0644);
        free(body);
    }
    /* Correctness at scale only: speed is measured in bench/config_load.sh. */
    load_main(t, LOCAL_CA);
    expect_ok(t);
    assert_int_equal(t->cfg->n_certs, 10000);
    assert_int_equal(t->cfg->files.n, 101);
    assert_non_null(config_cert_find(t->cfg, "site7777"));
    assert_string_equal(config_cert_find(t->cfg, "site9999")->domains.v[1],
                        "www.site9999.example.org");
    tdir_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_config_values),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_persist_until),
        cmocka_unit_test(test_persist_until_upper_bound),
        cmocka_unit_test(test_http01_webroot_and_answerable),
        cmocka_unit_test(test_dry_run_derivation),
        cmocka_unit_test(test_toml_syntax_error),
        cmocka_unit_test(test_main_file_missing),
        cmocka_unit_test(test_unknown_key_suggests),
        cmocka_unit_test(test_key_type_enum),
        cmocka_unit_test(test_all_errors_at_once),
        cmocka_unit_test(test_wrong_value_types),
        cmocka_unit_test(test_conf_d_sorted),
        cmocka_unit_test(test_missing_conf_d_is_fine),
        cmocka_unit_test(test_include_pattern),
        cmocka_unit_test(test_conf_d_errors_and_main_only_sections),
        cmocka_unit_test(test_duplicate_certificate_across_files),
        cmocka_unit_test(test_duplicate_ca_across_files),
        cmocka_unit_test(test_undefined_references),
        cmocka_unit_test(test_ca_required_with_several),
        cmocka_unit_test(test_no_ca_defined),
        cmocka_unit_test(test_single_dns_solver_is_default),
        cmocka_unit_test(test_domain_syntax),
        cmocka_unit_test(test_domain_name_too_long),
        cmocka_unit_test(test_domain_normalisation),
        cmocka_unit_test(test_duplicate_domains),
        cmocka_unit_test(test_too_many_domains),
        cmocka_unit_test(test_wildcard_needs_dns01),
        cmocka_unit_test(test_ip_identifier_checks),
        cmocka_unit_test(test_tlsalpn01_needs_listen),
        cmocka_unit_test(test_tlsalpn01_public_port_needs_listen),
        cmocka_unit_test(test_public_ca_refuses_private_names),
        cmocka_unit_test(test_certificate_name_must_be_file_safe),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_secret_files),
        cmocka_unit_test(test_deploy_files_checks),
        cmocka_unit_test(test_deploy_file_written_twice),
        cmocka_unit_test(test_exec_command),
        cmocka_unit_test(test_exec_programs_must_exist),
        cmocka_unit_test(test_hooks_dir),
        cmocka_unit_test(test_errors_capped),
        cmocka_unit_test(test_secret_file_modes),
        cmocka_unit_test(test_dns01_record_name_length),
        cmocka_unit_test(test_dns_solver_checks),
        cmocka_unit_test(test_dns_callback_solver),
        cmocka_unit_test(test_ca_directory_url),
        cmocka_unit_test(test_listen_and_resolvers),
        cmocka_unit_test(test_notify_events),
        cmocka_unit_test(test_more_checks),
        cmocka_unit_test(test_refcounting),
        cmocka_unit_test(test_equal_order_and_deploy),
        cmocka_unit_test(test_punycode_rfc3492_samples),
        cmocka_unit_test(test_punycode_domain_examples),
        cmocka_unit_test(test_edit_distance),
        cmocka_unit_test(test_shipped_example_loads),
        cmocka_unit_test(test_schema_foreach_shape),
        cmocka_unit_test(test_schema_defaults_are_accepted),
        cmocka_unit_test(test_schema_keys_in_shipped_example),
        cmocka_unit_test(test_ten_thousand_certificates),
        cmocka_unit_test(test_store_postgresql),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
