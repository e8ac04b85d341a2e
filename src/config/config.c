/* The load of a configuration: certloop.toml plus its include files turned
 * into one immutable, reference-counted snapshot, every problem collected
 * (not just the first) and reported as "FILE:LINE:COL: error: KEY.PATH:
 * message", sorted by place. This file owns the files read, the error list,
 * duplicates across files and the snapshot's lifetime; the keys themselves
 * are schema.c's, their values values.c's, the checks against the system
 * checks.c's. Nothing here talks to the network or creates anything on disk. */
#include "config/config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config_internal.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/xalloc.h"

#define CONFIG_FILE_MAX (16u << 20)

void config_err(struct cctx *c, size_t file, struct toml_pos pos, const char *path, const char *fmt,
                ...)
{
    va_list ap;
    char msg[1024];
    const char *fname = c->cfg->files.v[file];

    if (c->n_errs >= CONFIG_MAX_ERRORS) {
        c->n_dropped++; /* counted, not kept: see flush_errors */
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    c->errs = xreallocarray_grow(c->errs, &c->cap_errs, c->n_errs + 1, sizeof(*c->errs));
    struct pending *p = &c->errs[c->n_errs++];
    p->file = file;
    p->line = pos.line;
    p->col = pos.col;
    p->seq = c->n_errs;
    if (pos.line == 0)
        p->text = xasprintf("%s: error: %s%s%s", fname, path ? path : "", path ? ": " : "", msg);
    else
        p->text = xasprintf("%s:%u:%u: error: %s%s%s", fname, (unsigned)pos.line, (unsigned)pos.col,
                            path ? path : "", path ? ": " : "", msg);
}

static int pending_cmp(const void *a, const void *b)
{
    const struct pending *x = a, *y = b;

    if (x->file != y->file)
        return x->file < y->file ? -1 : 1;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Copies s for a message: control characters escaped, long text cut. */
const char *config_show(char *buf, size_t cap, const char *s)
{
    size_t o = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (o + 8 >= cap) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (*p < 0x20 || *p == 0x7F || *p == '"' || *p == '\\')
            o += (size_t)snprintf(buf + o, cap - o, *p == '"' || *p == '\\' ? "\\%c" : "\\x%02X",
                                  *p);
        else
            buf[o++] = (char)*p;
    }
    buf[o] = '\0';
    return buf;
}

struct text_block {
    struct text_block *next; /* owned: the block filled before */
    size_t used, cap;
    char data[];
};

const char *config_pool_strdup(struct text_pool *pool, const char *s)
{
    size_t n = strlen(s) + 1;
    struct text_block *b = pool->head;

    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = xmalloc(sizeof(*b) + cap);
        b->next = pool->head;
        b->used = 0;
        b->cap = cap;
        pool->head = b;
    }
    char *p = b->data + b->used;
    memcpy(p, s, n);
    b->used += n;
    return p;
}

void config_pool_fini(struct text_pool *pool)
{
    for (struct text_block *b = pool->head, *nx; b != NULL; b = nx) {
        nx = b->next;
        free(b);
    }
    pool->head = NULL;
}

static bool bare_key(const char *k, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = k[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* "base.key", with the key quoted as TOML would need it. base may be NULL.
 * Called for every key read, so it avoids printf for the common case. */
char *config_path_join(const char *base, const char *key, size_t keylen)
{
    return config_path_join_in(NULL, 0, base, key, keylen);
}

char *config_path_join_in(char *buf, size_t cap, const char *base, const char *key, size_t keylen)
{
    char shown[256];

    if (bare_key(key, keylen)) {
        size_t bl = base != NULL ? strlen(base) : 0;
        char *p = bl + 1 + keylen + 1 <= cap ? buf : xmalloc(bl + 1 + keylen + 1);
        if (bl > 0) {
            memcpy(p, base, bl);
            p[bl++] = '.';
        }
        memcpy(p + bl, key, keylen);
        p[bl + keylen] = '\0';
        return p;
    }
    config_show(shown, sizeof(shown), key);
    if (base == NULL)
        return xasprintf("\"%s\"", shown);
    return xasprintf("%s.\"%s\"", base, shown);
}

static const char *article(const char *noun)
{
    return strchr("aeiou", noun[0]) != NULL ? "an" : "a";
}

void config_type_error(struct cctx *c, const struct toml_value *v, const char *path,
                       const char *want)
{
    const char *got = toml_type_name(v->type);
    ERR(c, v->pos, path, "expected %s, got %s %s", want, article(got), got);
}

/* "a, b, c or d" */
void config_join_names(char *buf, size_t cap, const char *const *names)
{
    size_t n = 0, o = 0;

    while (names[n] != NULL)
        n++;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++) {
        const char *sep = i == 0 ? "" : (i + 1 == n ? " or " : ", ");
        int w = snprintf(buf + o, cap - o, "%s%s", sep, names[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

const char *config_closest(const char *word, const char *const *names, size_t n)
{
    const char *best = NULL;
    unsigned bestd = 100;
    size_t len = strlen(word);

    for (size_t i = 0; i < n; i++) {
        unsigned d = config_edit_distance(word, names[i]);
        if (d < bestd) {
            bestd = d;
            best = names[i];
        }
    }
    if (best == NULL)
        return NULL;
    if (bestd == 0 || bestd <= (len >= 5 ? 2u : 1u))
        return best;
    return NULL;
}

static void deploy_fini(struct cfg_deploy *d)
{
    free(d->cert);
    free(d->chain);
    free(d->fullchain);
    free(d->key);
    free(d->bundle);
    free(d->pkcs12);
    free(d->pkcs12_password_file);
    free(d->owner);
    free(d->group);
    config_strv_free(&d->command);
}

static void ca_fini(struct cfg_ca *ca)
{
    free(ca->name);
    free(ca->directory);
    config_strv_free(&ca->contact);
    free(ca->trust);
    free(ca->eab_kid);
    free(ca->eab_hmac_key_file);
    free(ca->preferred_chain);
    free(ca->profile);
    free(ca->staging);
}

static void dns_fini(struct cfg_dns *d)
{
    free(d->name);
    free(d->server);
    free(d->zone);
    free(d->tsig.name);
    free(d->tsig.algorithm);
    free(d->tsig.secret_file);
    config_strv_free(&d->command);
    free(d->url);
    free(d->secret_file);
    free(d->trust);
    config_strv_free(&d->nameservers);
}

static void notify_fini(struct cfg_notify *n)
{
    free(n->name);
    free(n->url);
    free(n->secret_file);
    free(n->trust);
    free(n->server);
    free(n->username);
    free(n->password_file);
    free(n->from);
    config_strv_free(&n->to);
}

static void hub_fini(struct cfg_hub *h)
{
    free(h->name);
    free(h->url);
    free(h->token_file);
    free(h->trust);
}

static void cert_fini(struct cfg_cert *ct)
{
    free(ct->name);
    config_strv_free(&ct->domains);
    for (size_t i = 0; i < ct->n_deploy; i++)
        deploy_fini(&ct->deploy[i]);
    free(ct->deploy);
    free(ct->import_cert);
    free(ct->import_key);
}

static void cert_tmp_free(struct cert_tmp *ct)
{
    if (ct == NULL)
        return;
    free(ct->ca_name);
    free(ct->dns_name);
    free(ct->dom_pos);
    free(ct->path);
    free(ct->hub_name);
    free(ct);
}

size_t config_add_file(struct config *cfg, const char *path)
{
    size_t cap = cfg->files.n + 1;

    cfg->files.v = xrealloc(cfg->files.v, (cap + 1) * sizeof(char *));
    cfg->files.v[cfg->files.n] = xstrdup(path);
    cfg->files.v[cfg->files.n + 1] = NULL;
    return cfg->files.n++;
}

static const char *file_kind(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

/* Reads one configuration file into b. Only a regular file of at most
 * CONFIG_FILE_MAX bytes is read: a FIFO or a device (/dev/zero behind a
 * symlink, a terminal) would block or never end, so the file is opened
 * non-blocking (open(2) of a FIFO then returns at once) and refused by its
 * fstat before a byte is read. Reports its own errors; 0, -errno,
 * ERR_TOO_BIG or ERR_CONFIG (not a regular file). */
static int read_regular(struct cctx *c, size_t file, struct buf *b)
{
    const char *path = c->cfg->files.v[file];
    struct toml_pos nopos = {0, 0};
    struct stat st;
    int rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

    if (fd < 0 || fstat(fd, &st) < 0)
        rc = -errno;
    else if (!S_ISREG(st.st_mode))
        rc = ERR_CONFIG;
    else if ((uintmax_t)st.st_size > CONFIG_FILE_MAX)
        rc = ERR_TOO_BIG;
    else
        rc = buf_read_fd(b, fd); /* still capped: the file may grow meanwhile */
    if (rc == ERR_CONFIG)
        config_err(c, file, nopos, NULL, "cannot read: %s, not a regular file",
                   file_kind(st.st_mode));
    else if (rc == ERR_TOO_BIG)
        config_err(c, file, nopos, NULL, "cannot read: larger than %u MiB", CONFIG_FILE_MAX >> 20);
    else if (rc < 0)
        config_err(c, file, nopos, NULL, "cannot read: %s", strerror(-rc));
    if (fd >= 0)
        close(fd);
    return rc;
}

int config_parse_text(struct cctx *c, size_t file, const char *text, size_t len,
                      struct toml_table **root)
{
    struct toml_error terr;

    memset(&terr, 0, sizeof(terr));
    int rc = toml_parse((const uint8_t *)text, len, root, &terr);
    if (rc < 0) {
        terr.msg[sizeof(terr.msg) - 1] = '\0';
        for (char *p = terr.msg; *p != '\0'; p++) {
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        }
        if (terr.pos.line == 0)
            terr.pos.line = 1;
        if (terr.pos.col == 0)
            terr.pos.col = 1;
        config_err(c, file, terr.pos, NULL, "%s", terr.msg);
        return ERR_PARSE;
    }
    return 0;
}

int config_read_file(struct cctx *c, size_t file, struct toml_table **root)
{
    struct buf b = BUF_INIT(CONFIG_FILE_MAX);

    int rc = read_regular(c, file, &b);
    if (rc == 0)
        rc = config_parse_text(c, file, b.data != NULL ? b.data : "", b.len, root);
    buf_fini(&b);
    return rc;
}

static int strp_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_includes(struct cctx *c, const struct stat *main_st)
{
    const char *pattern = c->cfg->daemon.include;
    const char *mainp = c->cfg->path;
    char *full;
    glob_t g;

    if (pattern[0] == '/') {
        full = xstrdup(pattern);
    } else {
        const char *slash = strrchr(mainp, '/');
        if (slash == NULL)
            full = xstrdup(pattern);
        else if (slash == mainp)
            full = xasprintf("/%s", pattern);
        else
            full = xasprintf("%.*s/%s", (int)(slash - mainp), mainp, pattern);
    }
    memset(&g, 0, sizeof(g));
    int rc = glob(full, GLOB_NOSORT, NULL, &g);
    if (rc != 0 && rc != GLOB_NOMATCH) {
        struct toml_pos pos = c->include_set ? c->include_pos : (struct toml_pos){0, 0};
        config_err(c, 0, pos, "daemon.include", "cannot expand \"%s\"", full);
    }
    if (rc == 0) {
        qsort(g.gl_pathv, g.gl_pathc, sizeof(char *), strp_cmp);
        for (size_t i = 0; i < g.gl_pathc; i++) {
            struct stat st;
            if (stat(g.gl_pathv[i], &st) == 0 && st.st_dev == main_st->st_dev &&
                st.st_ino == main_st->st_ino)
                continue; /* the pattern also matches the main file */
            if (config_api_dir_holds(c, g.gl_pathv[i]))
                continue; /* read after the includes, as the API's own */
            struct toml_table *root = NULL;
            c->file = config_add_file(c->cfg, g.gl_pathv[i]);
            if (config_read_file(c, c->file, &root) == 0) {
                config_load_root(c, root, false);
                toml_table_free(root);
            }
        }
    }
    globfree(&g);
    free(full);
}

static int sortkey_cmp(const void *a, const void *b)
{
    const struct sortkey *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    if (r != 0)
        return r;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sorts definitions by name and reports every later definition of a name.
 * Returns the number kept; dropped duplicates have obj set to NULL after
 * being passed to drop. */
static size_t dedupe(struct cctx *c, struct sortkey *k, size_t n, const char *section,
                     void (*drop)(void *))
{
    size_t kept = 0;

    if (n == 0)
        return 0;
    qsort(k, n, sizeof(*k), sortkey_cmp);
    for (size_t i = 0; i < n; i++) {
        if (kept > 0 && strcmp(k[kept - 1].name, k[i].name) == 0 && c->preview_file > 0 &&
            k[i].file == c->preview_file) {
            drop(k[kept - 1].obj); /* a preview's table replaces the one on disk */
            k[kept - 1] = k[i];
            continue;
        }
        if (kept > 0 && strcmp(k[kept - 1].name, k[i].name) == 0) {
            const struct sortkey *first = &k[kept - 1];
            char *path = config_path_join(section, k[i].name, strlen(k[i].name));
            config_err(c, k[i].file, k[i].pos, path, "defined twice: also at %s:%u:%u",
                       c->cfg->files.v[first->file], (unsigned)first->pos.line,
                       (unsigned)first->pos.col);
            free(path);
            drop(k[i].obj);
            continue;
        }
        k[kept++] = k[i];
    }
    return kept;
}

static void drop_ca(void *p)
{
    ca_fini(p);
    free(p);
}

static void drop_dns(void *p)
{
    dns_fini(p);
    free(p);
}

static void drop_notify(void *p)
{
    notify_fini(p);
    free(p);
}

static void drop_hub(void *p)
{
    hub_fini(p);
    free(p);
}

static void drop_cert(void *p)
{
    struct cert_tmp *ct = p;
    cert_fini(&ct->c);
    cert_tmp_free(ct);
}

static void finish(struct cctx *c)
{
    struct config *cfg = c->cfg;

    config_check_outputs(c);

    size_t n = dedupe(c, c->cas, c->n_cas, "ca", drop_ca);
    cfg->cas = xcalloc(n ? n : 1, sizeof(*cfg->cas));
    for (size_t i = 0; i < n; i++) {
        cfg->cas[i] = *(struct cfg_ca *)c->cas[i].obj;
        free(c->cas[i].obj);
    }
    cfg->n_cas = n;
    c->n_cas = 0;

    n = dedupe(c, c->dns, c->n_dns, "dns", drop_dns);
    cfg->dns = xcalloc(n ? n : 1, sizeof(*cfg->dns));
    for (size_t i = 0; i < n; i++) {
        cfg->dns[i] = *(struct cfg_dns *)c->dns[i].obj;
        free(c->dns[i].obj);
    }
    cfg->n_dns = n;
    c->n_dns = 0;

    n = dedupe(c, c->notify, c->n_notify, "notify", drop_notify);
    cfg->notify = xcalloc(n ? n : 1, sizeof(*cfg->notify));
    for (size_t i = 0; i < n; i++) {
        cfg->notify[i] = *(struct cfg_notify *)c->notify[i].obj;
        free(c->notify[i].obj);
    }
    cfg->n_notify = n;
    c->n_notify = 0;

    n = dedupe(c, c->hubs, c->n_hubs, "hub", drop_hub);
    cfg->hubs = xcalloc(n ? n : 1, sizeof(*cfg->hubs));
    for (size_t i = 0; i < n; i++) {
        cfg->hubs[i] = *(struct cfg_hub *)c->hubs[i].obj;
        free(c->hubs[i].obj);
    }
    cfg->n_hubs = n;
    c->n_hubs = 0;

    n = dedupe(c, c->certs, c->n_certs, "certificate", drop_cert);
    cfg->certs = xcalloc(n ? n : 1, sizeof(*cfg->certs));
    for (size_t i = 0; i < n; i++) {
        struct cert_tmp *ct = c->certs[i].obj;
        config_resolve_cert(c, ct);
        ct->c.api_owned =
            c->api_first_file > 0 && ct->file >= c->api_first_file && ct->file != c->preview_file;
        cfg->certs[i] = ct->c;
        cert_tmp_free(ct);
    }
    cfg->n_certs = n;
    c->n_certs = 0;
    config_check_http01_answerable(c);
    config_check_api(c);
    config_check_tlsalpn01(c);
}

void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    free(cfg->api_dir);
    config_strv_free(&cfg->files);
    free(cfg->daemon.state_dir);
    free(cfg->daemon.control_socket);
    free(cfg->daemon.include);
    free(cfg->daemon.hooks_dir);
    config_strv_free(&cfg->daemon.resolvers);
    config_strv_free(&cfg->http01.listen);
    free(cfg->http01.webroot);
    free(cfg->http01.webroot_owner);
    free(cfg->http01.webroot_group);
    config_strv_free(&cfg->tlsalpn01.listen);
    config_strv_free(&cfg->api.listen);
    free(cfg->api.tokens_file);
    free(cfg->api.certificate);
    free(cfg->store.conninfo_file);
    free(cfg->store.encryption_key_file);
    free(cfg->store.instance);
    for (size_t i = 0; i < cfg->n_cas; i++)
        ca_fini(&cfg->cas[i]);
    free(cfg->cas);
    for (size_t i = 0; i < cfg->n_dns; i++)
        dns_fini(&cfg->dns[i]);
    free(cfg->dns);
    for (size_t i = 0; i < cfg->n_notify; i++)
        notify_fini(&cfg->notify[i]);
    free(cfg->notify);
    for (size_t i = 0; i < cfg->n_certs; i++)
        cert_fini(&cfg->certs[i]);
    free(cfg->certs);
    for (size_t i = 0; i < cfg->n_hubs; i++)
        hub_fini(&cfg->hubs[i]);
    free(cfg->hubs);
    free(cfg);
}

static void cctx_fini(struct cctx *c)
{
    for (size_t i = 0; i < c->n_cas; i++)
        drop_ca(c->cas[i].obj);
    for (size_t i = 0; i < c->n_dns; i++)
        drop_dns(c->dns[i].obj);
    for (size_t i = 0; i < c->n_notify; i++)
        drop_notify(c->notify[i].obj);
    for (size_t i = 0; i < c->n_certs; i++)
        drop_cert(c->certs[i].obj);
    for (size_t i = 0; i < c->n_hubs; i++)
        drop_hub(c->hubs[i].obj);
    free(c->hubs);
    free(c->cas);
    free(c->dns);
    free(c->notify);
    free(c->certs);
    for (size_t i = 0; i < c->n_errs; i++)
        free(c->errs[i].text);
    free(c->errs);
    for (size_t i = 0; i < c->n_users; i++)
        free(c->users[i].name);
    free(c->users);
    for (size_t i = 0; i < c->n_groups; i++)
        free(c->groups[i].name);
    free(c->groups);
    free(c->lastdir);
    free(c->outputs);
    config_pool_fini(&c->out_text);
}

static void flush_errors(struct cctx *c, struct config_diag *diag)
{
    if (c->n_errs > 0)
        qsort(c->errs, c->n_errs, sizeof(*c->errs), pending_cmp);
    for (size_t i = 0; i < c->n_errs; i++) {
        if (diag != NULL)
            config_diag_add(diag, "%s", c->errs[i].text);
    }
    if (c->n_dropped > 0 && diag != NULL)
        config_diag_add(diag, "%s: error: %zu more errors not shown (the first %d are)",
                        c->cfg->files.v[0], c->n_dropped, CONFIG_MAX_ERRORS);
}

int config_load(const char *path, struct config **out, struct config_diag *diag)
{
    return config_load_overlay(path, NULL, out, diag);
}

int config_load_overlay(const char *path, const struct config_overlay *ov, struct config **out,
                        struct config_diag *diag)
{
    struct cctx c;
    struct config *cfg = xcalloc(1, sizeof(*cfg));
    struct toml_table *root = NULL;
    struct stat main_st;
    int rc;

    memset(&c, 0, sizeof(c));
    c.cfg = cfg;
    c.overlay = ov;
    cfg->refs = 1;
    cfg->path = xstrdup(path);
    cfg->api_dir = config_api_dir(path);
    config_schema_defaults(cfg);
    cfg->files.v = xcalloc(1, sizeof(char *));

    c.file = config_add_file(cfg, path);
    rc = config_read_file(&c, 0, &root);
    if (rc < 0) {
        flush_errors(&c, diag);
        rc = rc == ERR_PARSE || rc == ERR_TOO_BIG ? ERR_CONFIG : rc;
        goto out;
    }
    if (stat(path, &main_st) < 0)
        memset(&main_st, 0, sizeof(main_st));
    config_load_root(&c, root, true);
    toml_table_free(root);
    /* With a webroot the web server owns port 80: no listener unless asked. */
    if (cfg->http01.webroot != NULL && !cfg->http01.listen_written) {
        config_strv_free(&cfg->http01.listen);
        cfg->http01.listen.v = xcalloc(1, sizeof(char *));
    }

    load_includes(&c, &main_st);
    config_load_api_dir(&c);
    if (ov != NULL && ov->extra_text != NULL) {
        struct toml_table *xr = NULL;
        c.file = c.preview_file = config_add_file(cfg, CONFIG_PREVIEW_FILE);
        if (config_parse_text(&c, c.file, ov->extra_text, strlen(ov->extra_text), &xr) == 0)
            config_load_root(&c, xr, false);
        toml_table_free(xr);
    }
    finish(&c);

    if (c.n_errs > 0) {
        flush_errors(&c, diag);
        rc = ERR_CONFIG;
        goto out;
    }
    *out = cfg;
    cfg = NULL;
    rc = 0;
out:
    cctx_fini(&c);
    config_free(cfg);
    return rc;
}

int config_peek_control_socket(const char *path, char **out)
{
    FILE *f = fopen(path, "re");
    struct toml_table *root = NULL;
    struct toml_error terr;
    size_t cap = 1024 * 1024, n;
    uint8_t *buf;
    int rc;

    if (f == NULL)
        return -errno;
    buf = xmalloc(cap);
    n = fread(buf, 1, cap, f);
    fclose(f);
    rc = n == cap ? -EFBIG : toml_parse(buf, n, &root, &terr) < 0 ? -EINVAL : 0;
    free(buf);
    if (rc < 0)
        return rc;
    const struct toml_keyval *d = toml_table_get(root, "daemon");
    const struct toml_keyval *s = d != NULL && d->val.type == TOML_TABLE
                                      ? toml_table_get(d->val.u.tab, "control_socket")
                                      : NULL;
    rc = -ENOENT;
    if (s != NULL && s->val.type == TOML_STRING && strlen(s->val.u.s.ptr) == s->val.u.s.len) {
        *out = xstrdup(s->val.u.s.ptr);
        rc = 0;
    }
    toml_table_free(root);
    return rc;
}

#define LE_PRODUCTION "https://acme-v02.api.letsencrypt.org/directory"
#define LE_STAGING "https://acme-staging-v02.api.letsencrypt.org/directory"

int config_dry_run(struct config *cfg, const char *const *names, size_t n, struct config_diag *diag)
{
    bool *keep = xcalloc(cfg->n_certs ? cfg->n_certs : 1, sizeof(*keep));
    int rc = 0;

    assert(cfg->refs == 1);
    for (size_t i = 0; i < n; i++) {
        const struct cfg_cert *c = config_cert_find(cfg, names[i]);
        if (c == NULL) {
            config_diag_add(diag, "no certificate named '%s' in %s", names[i], cfg->path);
            rc = -EINVAL;
        } else if (c->ca == NULL) {
            config_diag_add(diag, "%s: %s is never ordered here", names[i],
                            c->hub != NULL ? "a certificate pulled from a hub"
                                           : "an imported certificate without a CA");
            rc = -EINVAL;
        } else {
            keep[c - cfg->certs] = true;
        }
    }
    for (size_t i = 0; i < cfg->n_certs && n == 0; i++)
        keep[i] = cfg->certs[i].ca != NULL;
    for (size_t i = 0; i < cfg->n_cas; i++) {
        struct cfg_ca *ca = &cfg->cas[i];
        bool used = false;
        for (size_t k = 0; k < cfg->n_certs; k++)
            used |= keep[k] && cfg->certs[k].ca == ca;
        if (!used)
            continue;
        if (ca->staging == NULL && strcmp(ca->directory, LE_PRODUCTION) == 0)
            ca->staging = xstrdup(LE_STAGING);
        if (ca->staging == NULL) {
            config_diag_add(diag,
                            "%s:%u: ca.%s: no staging directory to dry-run against: set "
                            "staging = \"URL\" in [ca.%s]",
                            ca->where.file, ca->where.pos.line, ca->name, ca->name);
            rc = -EINVAL;
            continue;
        }
        free(ca->directory);
        ca->directory = xstrdup(ca->staging);
    }
    if (rc < 0) {
        free(keep);
        return rc;
    }
    size_t w = 0;
    for (size_t i = 0; i < cfg->n_certs; i++) {
        struct cfg_cert *c = &cfg->certs[i];
        if (!keep[i]) {
            cert_fini(c);
            continue;
        }
        for (size_t k = 0; k < c->n_deploy; k++)
            deploy_fini(&c->deploy[k]);
        free(c->deploy);
        c->deploy = NULL;
        c->n_deploy = 0;
        cfg->certs[w++] = *c; /* stays sorted by name */
    }
    cfg->n_certs = w;
    for (size_t i = 0; i < cfg->n_notify; i++)
        notify_fini(&cfg->notify[i]);
    cfg->n_notify = 0;
    char *sd = xasprintf("%s/dry-run", cfg->daemon.state_dir);
    free(cfg->daemon.hooks_dir);
    cfg->daemon.hooks_dir = xasprintf("%s/no-hooks", sd);
    free(cfg->daemon.state_dir);
    cfg->daemon.state_dir = sd;
    free(keep);
    return 0;
}

struct config *config_ref(struct config *cfg)
{
    if (cfg != NULL)
        cfg->refs++;
    return cfg;
}

void config_unref(struct config *cfg)
{
    if (cfg == NULL)
        return;
    if (--cfg->refs == 0)
        config_free(cfg);
}

struct config *config_unref_last(struct config *cfg)
{
    if (cfg == NULL || --cfg->refs > 0)
        return NULL;
    return cfg;
}

#define DEFINE_FIND(fn, type, arr, count)                                                          \
    const type *fn(const struct config *cfg, const char *name)                                     \
    {                                                                                              \
        size_t lo = 0, hi = cfg->count;                                                            \
        while (lo < hi) {                                                                          \
            size_t mid = lo + (hi - lo) / 2;                                                       \
            int r = strcmp(name, cfg->arr[mid].name);                                              \
            if (r == 0)                                                                            \
                return &cfg->arr[mid];                                                             \
            if (r < 0)                                                                             \
                hi = mid;                                                                          \
            else                                                                                   \
                lo = mid + 1;                                                                      \
        }                                                                                          \
        return NULL;                                                                               \
    }

DEFINE_FIND(config_cert_find, struct cfg_cert, certs, n_certs)

DEFINE_FIND(config_ca_find, struct cfg_ca, cas, n_cas)

DEFINE_FIND(config_dns_find, struct cfg_dns, dns, n_dns)

DEFINE_FIND(config_notify_find, struct cfg_notify, notify, n_notify)

DEFINE_FIND(config_hub_find, struct cfg_hub, hubs, n_hubs)

void config_diag_init(struct config_diag *d)
{
    d->lines = NULL;
    d->n = 0;
    d->cap = 0;
}

void config_diag_fini(struct config_diag *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->lines[i]);
    free(d->lines);
    config_diag_init(d);
}

void config_diag_add(struct config_diag *d, const char *fmt, ...)
{
    va_list ap, ap2;

    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    char *line = xmalloc((size_t)n + 1);
    vsnprintf(line, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    d->lines = xreallocarray_grow(d->lines, &d->cap, d->n + 1, sizeof(char *));
    d->lines[d->n++] = line;
}
