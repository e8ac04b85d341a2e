/* `certloop check` and `certloop plan`: offline views of the configuration
 * and the state directory. Reads only (config files, stored certificates);
 * takes no lock, opens no socket, and decides renewals with the same
 * sched_* policy the manager uses so the preview cannot drift from it. */
#include "reactor/plan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "challenge/challenge.h"
#include "deploy/deploy.h"
#include "reactor/sched.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/timefmt.h"
#include "util/xalloc.h"

int plan_load_config(const char *path, FILE *err, struct config **out)
{
    struct config_diag diag;
    struct config *cfg = NULL;
    int rc;

    config_diag_init(&diag);
    rc = config_load(path, &cfg, &diag);
    if (rc < 0) {
        for (size_t i = 0; i < diag.n; i++)
            fprintf(err, "%s\n", diag.lines[i]);
        if (diag.n == 0)
            fprintf(err, "%s: error: %s\n", path, err_str(rc));
        config_diag_fini(&diag);
        return EXIT_CONFIG;
    }
    config_diag_fini(&diag);
    *out = cfg;
    return 0;
}

static const char *plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* What config_load cannot judge alone: the TSIG key files of the rfc2136
 * solvers, parsed as the solver will (challenge's parser). Prints each
 * problem as a configuration error; the number found. */
static size_t check_tsig_keys(const struct config *cfg, FILE *err)
{
    size_t bad = 0;

    for (size_t i = 0; i < cfg->n_dns; i++) {
        const struct cfg_dns *d = &cfg->dns[i];
        char *why = NULL;

        if (d->type != CFG_DNS_RFC2136 || d->tsig.secret_file == NULL)
            continue;
        if (chal_dns01_key_check(&d->tsig, &why) < 0) {
            fprintf(err, "%s:%u:%u: error: dns.%s.tsig: %s\n", d->where.file,
                    (unsigned)d->where.pos.line, (unsigned)d->where.pos.col, d->name, why);
            bad++;
        }
        free(why);
    }
    return bad;
}

size_t plan_check_more(const struct config *cfg, FILE *err)
{
    size_t bad = check_tsig_keys(cfg, err);

    if (bad > 0)
        return bad;
    /* An import without `ca` is only deployed, even where a CA is
     * configured (any other certificate would default to it): say so, with
     * the key that changes it, so that nobody finds out at its expiry. */
    for (size_t i = 0; i < cfg->n_certs; i++) {
        const struct cfg_cert *cc = &cfg->certs[i];
        if (cc->import_cert == NULL || cc->ca != NULL || cfg->n_cas == 0)
            continue;
        const char *ca = cfg->n_cas == 1 ? cfg->cas[0].name : "NAME";
        fprintf(err,
                "%s:%" PRIu32 ":%" PRIu32 ": warning: certificate.%s: imported without ca: its "
                "files are deployed and alerted on before they expire, never renewed; add "
                "ca = \"%s\" to renew it from [ca.%s]\n",
                cc->where.file, cc->where.pos.line, cc->where.pos.col, cc->name, ca, ca);
    }
    /* dns-persist-01: a persist_until that has passed (or soon will) makes
     * the CA refuse the records (draft-ietf-acme-dns-persist-02 §9.4) */
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < cfg->n_certs; i++) {
        const struct cfg_cert *cc = &cfg->certs[i];
        int64_t window =
            cfg->daemon.expiring_window_s > 0 ? cfg->daemon.expiring_window_s : 14 * 86400;
        if (cc->challenge != CFG_CHAL_DNSPERSIST01 || cc->persist_until <= 0 ||
            cc->persist_until - window > now)
            continue;
        char when[40];
        timefmt_utc(when, sizeof(when), cc->persist_until, "%Y-%m-%d %H:%M UTC");
        fprintf(err,
                "%s:%" PRIu32 ":%" PRIu32 ": warning: certificate.%s: persist_until (%s) %s: "
                "set a later one and publish the records again (certloop persist-record %s "
                "--publish)\n",
                cc->where.file, cc->where.pos.line, cc->where.pos.col, cc->name, when,
                cc->persist_until <= now ? "has passed, so the CA refuses its dns-persist-01 "
                                           "records"
                                         : "is inside expiring_window",
                cc->name);
    }
    return 0;
}

int plan_check(const char *path, FILE *out, FILE *err)
{
    struct config *cfg = NULL;
    int rc = plan_load_config(path, err, &cfg);

    if (rc != 0)
        return rc;
    if (plan_check_more(cfg, err) > 0) {
        config_unref(cfg);
        return EXIT_CONFIG;
    }
    fprintf(out, "%s: OK: %zu %s, %zu %s, %zu %s, %zu %s\n", path, cfg->n_certs,
            plural(cfg->n_certs, "certificate", "certificates"), cfg->n_cas,
            plural(cfg->n_cas, "CA", "CAs"), cfg->n_dns,
            plural(cfg->n_dns, "DNS solver", "DNS solvers"), cfg->files.n,
            plural(cfg->files.n, "file", "files"));
    config_unref(cfg);
    return 0;
}

/* "2027-01-03 10:00 UTC" */
static void fmt_time(int64_t t, char *out, size_t n)
{
    timefmt_utc(out, n, t, "%Y-%m-%d %H:%M UTC");
}

static void fmt_date(int64_t t, char *out, size_t n)
{
    timefmt_utc(out, n, t, TIMEFMT_DATE);
}

/* "90 days", "6 days", "12 hours": whole units, rounded. */
static void fmt_span(int64_t s, char *out, size_t n)
{
    if (s < 0)
        s = -s;
    if (s >= 2 * 86400 || s % 86400 == 0) {
        int64_t d = (s + 43200) / 86400;
        snprintf(out, n, "%" PRId64 " %s", d, d == 1 ? "day" : "days");
    } else if (s >= 3600) {
        int64_t h = (s + 1800) / 3600;
        snprintf(out, n, "%" PRId64 " %s", h, h == 1 ? "hour" : "hours");
    } else {
        int64_t m = (s + 30) / 60;
        snprintf(out, n, "%" PRId64 " %s", m, m == 1 ? "minute" : "minutes");
    }
}

/* An argv element as a reader would type it: bare when it is plain,
 * single-quoted otherwise. */
static void put_arg(struct buf *b, const char *a)
{
    bool plain = a[0] != '\0';

    for (const char *p = a; *p != '\0'; p++) {
        if (strchr(" \t\n'\"\\$`*?[]{}()<>|&;#~!", *p) != NULL)
            plain = false;
    }
    if (plain) {
        buf_append_str(b, a);
        return;
    }
    buf_append_str(b, "'");
    for (const char *p = a; *p != '\0'; p++) {
        if (*p == '\'')
            buf_append_str(b, "'\\''");
        else
            buf_append(b, p, 1);
    }
    buf_append_str(b, "'");
}

#define LABEL_W 11

static void line_label(FILE *out, const char *label)
{
    fprintf(out, "  %-*s", LABEL_W, label);
}

static void file_entry(struct buf *b, bool *first, const char *what, const char *path, mode_t mode)
{
    if (path == NULL)
        return;
    buf_printf(b, "%s%s %s (%04o)", *first ? "" : ", ", what, path, (unsigned)mode);
    *first = false;
}

static void show_deploy(const struct cfg_deploy *d, FILE *out)
{
    struct buf b = BUF_INIT(64 * 1024);

    if (d->type == CFG_DEPLOY_FILES) {
        bool first = true;

        /* in the order deploy writes them: files holding the key first */
        buf_append_str(&b, "files: ");
        for (int f = 0; f < DEPLOY_FILE__MAX; f++)
            file_entry(&b, &first, deploy_file_name((enum deploy_file)f),
                       deploy_file_path(d, (enum deploy_file)f),
                       deploy_file_mode(d, (enum deploy_file)f));
        if (d->pkcs12 != NULL && d->pkcs12_password_file != NULL)
            buf_printf(&b, " password from %s%s", d->pkcs12_password_file,
                       d->pkcs12_legacy ? ", legacy encryption" : "");
        if (d->owner != NULL)
            buf_printf(&b, "; owner %s", d->owner);
        if (d->group != NULL)
            buf_printf(&b, "%s group %s", d->owner != NULL ? "," : ";", d->group);
    } else {
        buf_append_str(&b, "exec:");
        for (size_t i = 0; i < d->command.n; i++) {
            buf_append_str(&b, " ");
            put_arg(&b, d->command.v[i]);
        }
        if (d->timeout_s > 0)
            buf_printf(&b, " (timeout %" PRId64 "s)", d->timeout_s);
    }
    fprintf(out, "%s\n", b.data != NULL ? b.data : "");
    buf_fini(&b);
}

static void show_dns(const struct cfg_dns *dns, enum cfg_challenge ch, FILE *out)
{
    struct buf b = BUF_INIT(64 * 1024);

    if (dns == NULL) {
        fprintf(out, "%s\n", config_challenge_name(ch));
        return;
    }
    buf_printf(&b, "%s via %s (", config_challenge_name(ch), dns->name);
    switch (dns->type) {
    case CFG_DNS_RFC2136:
        buf_printf(&b, "rfc2136, server %s, zone %s", dns->server != NULL ? dns->server : "?",
                   dns->zone != NULL ? dns->zone : "found by SOA lookup");
        break;
    case CFG_DNS_EXEC:
        buf_append_str(&b, "exec:");
        for (size_t i = 0; i < dns->command.n; i++) {
            buf_append_str(&b, " ");
            put_arg(&b, dns->command.v[i]);
        }
        break;
    case CFG_DNS_CALLBACK:
        buf_printf(&b, "callback %s", dns->url != NULL ? dns->url : "?");
        break;
    }
    buf_append_str(&b, ")");
    fprintf(out, "%s\n", b.data);
    buf_fini(&b);
}

/* The DNS names of an imported certificate (a certificate without a CA may
 * leave `domains` out: they come from the certificate). */
static void show_import_names(const char *path, FILE *out)
{
    struct sched_meta m;
    char *pem = NULL;
    size_t len = 0;
    int rc = store_read_file(path, &pem, &len);

    memset(&m, 0, sizeof(m));
    if (rc < 0) {
        fprintf(out, "(%s: %s)", path, err_str(rc));
        return;
    }
    if (sched_meta_from_pem(pem, len, &m) < 0) {
        fprintf(out, "(%s: not a PEM certificate)", path);
    } else {
        for (size_t i = 0; i < m.n_domains; i++)
            fprintf(out, "%s%s", i > 0 ? ", " : "", m.domains[i]);
        fprintf(out, "%s(from the imported certificate)", m.n_domains > 0 ? " " : "");
    }
    sched_meta_fini(&m);
    free(pem);
}

/* Reads what is stored for cert name. 1 with *m set, 0 if nothing is
 * stored, < 0 (with *why set) if something is stored but unreadable. */
static int read_stored(struct store *store, const char *name, struct sched_meta *m,
                       char **generation, const char **why)
{
    struct store_cert sc;
    int rc;

    memset(&sc, 0, sizeof(sc));
    rc = store_cert_read_current(store, name, false, &sc);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0) {
        *why = err_str(rc);
        return rc;
    }
    rc = -1;
    if (sc.meta_json != NULL)
        rc = sched_meta_parse(sc.meta_json, strlen(sc.meta_json), m);
    if (rc < 0 && sc.cert_pem != NULL)
        rc = sched_meta_from_pem(sc.cert_pem, strlen(sc.cert_pem), m);
    if (rc < 0) {
        *why = "neither meta.json nor cert.pem could be parsed";
        store_cert_fini(&sc);
        return ERR_BAD_STATE;
    }
    *generation = sc.generation != NULL ? xstrdup(sc.generation) : NULL;
    store_cert_fini(&sc);
    return 1;
}

static bool meta_has(const struct sched_meta *m, const char *name)
{
    for (size_t i = 0; i < m->n_domains; i++) {
        if (strcasecmp(m->domains[i], name) == 0)
            return true;
    }
    return false;
}

static bool cert_has(const struct cfg_cert *c, const char *name)
{
    for (size_t i = 0; i < c->domains.n; i++) {
        if (strcasecmp(c->domains.v[i], name) == 0)
            return true;
    }
    return false;
}

static void show_next(const struct cfg_cert *c, const struct sched_meta *m, int64_t now, FILE *out)
{
    struct sched_decision d;
    char t1[40], t2[40], span[32];

    /* the daemon's own function, jitter included: plan shows the daemon's time */
    sched_decide_jittered(c->name, c, m, now, &d);
    line_label(out, "next order");
    switch (d.why) {
    case SCHED_NO_CERT:
        fprintf(out, "now: no certificate stored\n");
        return;
    case SCHED_NAMES_CHANGED: {
        struct buf b = BUF_INIT(64 * 1024);
        if (d.missing != NULL) {
            for (size_t i = 0; i < c->domains.n; i++) {
                if (!meta_has(m, c->domains.v[i]))
                    buf_printf(&b, "%s%s", b.len > 0 ? ", " : "", c->domains.v[i]);
            }
            fprintf(out, "now: stored certificate does not cover %s %s (configuration changed)\n",
                    strchr(b.data, ',') != NULL ? "names" : "name", b.data);
        } else {
            for (size_t i = 0; i < m->n_domains; i++) {
                if (!cert_has(c, m->domains[i]))
                    buf_printf(&b, "%s%s", b.len > 0 ? ", " : "", m->domains[i]);
            }
            fprintf(out,
                    "now: stored certificate has names no longer configured: %s "
                    "(configuration changed)\n",
                    b.data != NULL ? b.data : "?");
        }
        buf_fini(&b);
        return;
    }
    case SCHED_KEY_CHANGED:
        fprintf(out, "now: key type changed (stored %s, configured %s)\n", m->key,
                config_key_type_name(c->key));
        return;
    case SCHED_CA_CHANGED:
        fprintf(out, "now: CA changed (stored %s, configured %s)\n",
                m->directory != NULL ? m->directory : m->ca,
                m->directory != NULL ? c->ca->directory : c->ca->name);
        return;
    case SCHED_EXPIRED:
        fmt_time(m->not_after, t1, sizeof(t1));
        fprintf(out, "now: stored certificate expired %s\n", t1);
        return;
    case SCHED_NEVER:
        fprintf(out, "never: imported without ca: deployed and alerted on before expiry, "
                     "never renewed (ca = \"NAME\" renews it)\n");
        return;
    case SCHED_DUE:
    case SCHED_LATER:
        break;
    }

    int64_t when = 0;
    const char *reason = NULL;
    sched_renewal_time(c, m->not_before, m->not_after, &when, &reason);
    int64_t jitter = when - d.when;
    fmt_time(d.when, t1, sizeof(t1));
    if (d.why == SCHED_DUE)
        fprintf(out, "now: due since %s, ", t1);
    else
        fprintf(out, "%s: ", t1);
    if (strcmp(reason, "renew_before") == 0) {
        sched_duration_fmt(c->renew_before_s, span, sizeof(span));
        fmt_date(m->not_after, t2, sizeof(t2));
        fprintf(out, "renew_before %s before expiry %s", span, t2);
    } else {
        fmt_span(m->not_after - m->not_before, span, sizeof(span));
        fprintf(out, "%s (lifetime %s)", reason, span);
    }
    if (jitter > 0) {
        fmt_span(jitter, span, sizeof(span));
        fprintf(out, ", %s earlier (this certificate's jitter)", span);
    }
    fputc('\n', out);
}

/* Who answers the CA: certloop's listener, the web server's webroot, or both. */
static void show_http01(const struct cfg_http01 *h, FILE *out)
{
    fprintf(out, "http-01 (");
    if (h->listen.n > 0) {
        fprintf(out, "certloop's listener on ");
        for (size_t i = 0; i < h->listen.n; i++)
            fprintf(out, "%s%s", i > 0 ? ", " : "", h->listen.v[i]);
    }
    if (h->webroot != NULL)
        fprintf(out, "%stoken files in %s/.well-known/acme-challenge/", h->listen.n > 0 ? "; " : "",
                h->webroot);
    if (h->public_port != 80)
        fprintf(out, "; the CA connects to port %u", h->public_port);
    fprintf(out, ")\n");
}

static void show_cert(const struct config *cfg, struct store *store, const struct cfg_cert *c,
                      int64_t now, FILE *out)
{
    struct sched_meta m;
    char *generation = NULL;
    const char *why = NULL;
    char t[40], span[32];
    int st;

    memset(&m, 0, sizeof(m));
    fprintf(out, "%s\n", c->name);
    line_label(out, "domains");
    for (size_t i = 0; i < c->domains.n; i++)
        fprintf(out, "%s%s", i > 0 ? ", " : "", c->domains.v[i]);
    if (c->domains.n == 0 && c->import_cert != NULL)
        show_import_names(c->import_cert, out);
    fprintf(out, "\n");
    line_label(out, "ca");
    if (c->ca != NULL)
        fprintf(out, "%s (%s)\n", c->ca->name, c->ca->directory);
    else
        fprintf(out, "-\n");
    if (c->ca != NULL && c->ca->profile != NULL) {
        line_label(out, "profile");
        fprintf(out, "%s%s\n", c->ca->profile,
                c->ca->profile_fallback ? " (none if the CA does not offer it)" : "");
    }
    if (c->hub != NULL) {
        line_label(out, "from");
        fprintf(out, "hub.%s (%s; trust %s)\n", c->hub->name, c->hub->url,
                c->hub->trust != NULL ? c->hub->trust : "the system's CA store");
    }
    line_label(out, "key");
    fprintf(out, "%s\n",
            c->ca != NULL    ? config_key_type_name(c->key)
            : c->hub != NULL ? "the hub's key"
                             : "the imported key");
    line_label(out, "challenge");
    if (c->ca == NULL)
        fprintf(out, "-\n");
    else if (CFG_CHAL_IS_DNS(c->challenge))
        show_dns(c->dns, c->challenge, out);
    else if (c->challenge == CFG_CHAL_TLSALPN01)
        fprintf(out, "tls-alpn-01 ([tlsalpn01] listen %s)\n",
                cfg->tlsalpn01.listen.n > 0 ? cfg->tlsalpn01.listen.v[0] : "empty");
    else
        show_http01(&cfg->http01, out);
    if (c->import_cert != NULL) {
        line_label(out, "import");
        fprintf(out, "cert %s, key %s\n", c->import_cert,
                c->import_key != NULL ? c->import_key : "-");
    }
    line_label(out, "renew");
    if (c->hub != NULL) {
        fprintf(out, "by the hub: each new generation it announces is fetched and deployed\n");
    } else if (c->ca == NULL) {
        fprintf(out, "never (no ca)\n");
    } else if (c->renew_before_s > 0) {
        sched_duration_fmt(c->renew_before_s, span, sizeof(span));
        fprintf(out, "%s before expiry\n", span);
    } else {
        fprintf(out, "when a third of the lifetime remains (half for lifetimes up to 10 days)\n");
    }
    for (size_t i = 0; i < c->n_deploy; i++) {
        line_label(out, i == 0 ? "deploy" : "");
        show_deploy(&c->deploy[i], out);
    }
    if (c->n_deploy == 0) {
        line_label(out, "deploy");
        fprintf(out, "none (the certificate stays in the state directory)\n");
    }

    st = read_stored(store, c->name, &m, &generation, &why);
    line_label(out, "stored");
    if (st == 0) {
        fprintf(out, "none\n");
    } else if (st == -EACCES || st == -EPERM) {
        char *where = store_where(store, STORE_WHERE_CERT, c->name);
        fprintf(out, "unknown: %s: %s (run plan as the daemon's user)\n", where, why);
        free(where);
    } else if (st < 0) {
        fprintf(out, "unreadable: %s\n", why);
    } else {
        fmt_time(m.not_after, t, sizeof(t));
        fmt_span(m.not_after - now, span, sizeof(span));
        char prof[200] = "";
        if (m.profile != NULL)
            snprintf(prof, sizeof(prof), ", profile %.64s", m.profile);
        char *rreason = NULL;
        bool reissue = false;
        if (generation != NULL &&
            sched_revoked_read(store, c->name, generation, &rreason, &reissue) == 0) {
            size_t pl = strlen(prof);
            snprintf(prof + pl, sizeof(prof) - pl, ", REVOKED (%.40s)%s", rreason,
                     reissue ? ", replacement ordered at the next run" : "");
        }
        free(rreason);
        if (m.not_after > now)
            fprintf(out, "generation %s, expires %s (in %s)%s\n",
                    generation != NULL ? generation : "?", t, span, prof);
        else
            fprintf(out, "generation %s, expired %s (%s ago)%s\n",
                    generation != NULL ? generation : "?", t, span, prof);
    }
    if (st == -EACCES || st == -EPERM) {
        line_label(out, "next order");
        fprintf(out, "unknown (the state directory is not readable)\n");
    } else if (st < 0) {
        line_label(out, "next order");
        fprintf(out, "now: the stored certificate is unreadable\n");
    } else if (c->hub != NULL) {
        line_label(out, "next fetch");
        fprintf(out, "%s, then on each of hub.%s's events for it (and hourly)\n",
                st > 0 ? "at the start" : "now", c->hub->name);
    } else {
        show_next(c, st > 0 ? &m : NULL, now, out);
    }
    free(generation);
    sched_meta_fini(&m);
}

int plan_show(const struct config *cfg, char *const *names, size_t n, int64_t now, FILE *out,
              FILE *err)
{
    bool bad = false;

    for (size_t i = 0; i < n; i++) {
        if (config_cert_find(cfg, names[i]) == NULL) {
            fprintf(err, "certloop: plan: no certificate named %s\n", names[i]);
            bad = true;
        }
    }
    if (bad)
        return EXIT_USAGE;
    if (cfg->n_certs == 0) {
        fprintf(out, "%s: no certificates configured\n", cfg->path);
        return 0;
    }
    /* beside a running daemon: no lock, nothing created */
    struct store *store = NULL;
    int rc = store_open_config(NULL, cfg, STORE_FS_SHARED, &store);
    if (rc < 0) {
        if (cfg->store.type == CFG_STORE_POSTGRESQL)
            fprintf(err, "certloop: plan: the postgresql store: %s\n", err_str(rc));
        else
            fprintf(err, "certloop: plan: state directory %s: %s\n", cfg->daemon.state_dir,
                    err_str(rc));
        return EXIT_UNAVAILABLE;
    }
    bool first = true;
    for (size_t i = 0; i < cfg->n_certs; i++) {
        const struct cfg_cert *c = &cfg->certs[i];
        bool wanted = n == 0;
        for (size_t j = 0; j < n && !wanted; j++)
            wanted = strcmp(names[j], c->name) == 0;
        if (!wanted)
            continue;
        if (!first)
            fprintf(out, "\n");
        first = false;
        show_cert(cfg, store, c, now, out);
    }
    store_close(store);
    return 0;
}
