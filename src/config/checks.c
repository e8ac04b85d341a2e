/* Cross-checks of the configuration: values checked against the system
 * (files and directories that must exist, secret file modes, programs,
 * users and groups, unix socket path length) and against each other
 * (object names safe as file names, a certificate's CA and DNS solver,
 * names a public CA will not issue for, two deploys writing one file).
 * It only looks (stat, getpwnam): it never creates or changes anything. */
#include "config/config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/config_internal.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/xalloc.h"
#include <openssl/crypto.h>

#define NAME_MAX_CHARS 128

bool config_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

static const struct {
    const char *host;
    const char *name;
} public_cas[] = {
    {"acme-v02.api.letsencrypt.org", "Let's Encrypt"},
    {"acme-staging-v02.api.letsencrypt.org", "Let's Encrypt"},
    {"acme.zerossl.com", "ZeroSSL"},
    {"dv.acme-v02.api.pki.goog", "Google Trust Services"},
    {"dv.acme-v02.test-api.pki.goog", "Google Trust Services"},
    {"api.buypass.com", "Buypass"},
    {"api.test4.buypass.no", "Buypass"},
};

/* The operator's name of a publicly trusted CA, or NULL. */
static const char *public_ca_name(const char *directory)
{
    char host[256];
    bool https;

    if (directory == NULL || !config_url_split(directory, &https, host, sizeof(host)))
        return NULL;
    for (size_t i = 0; i < sizeof(public_cas) / sizeof(public_cas[0]); i++) {
        if (strcmp(host, public_cas[i].host) == 0)
            return public_cas[i].name;
    }
    return NULL;
}

/* Profiles of a public CA under which it issues for IP addresses (RFC 8738):
 * Let's Encrypt's "shortlived". Other public CAs: none known. */
static bool profile_allows_ip(const char *public_name, const char *profile)
{
    return profile != NULL && strcmp(public_name, "Let's Encrypt") == 0 &&
           strcmp(profile, "shortlived") == 0;
}

/* Why a public CA refuses this address ("a loopback address"), or NULL. */
static const char *private_ip_reason(const char *d)
{
    unsigned char a[16];

    if (inet_pton(AF_INET, d, a) == 1) {
        if (a[0] == 127)
            return "a loopback address";
        if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168))
            return "a private address (RFC 1918)";
        if ((a[0] == 169 && a[1] == 254) || (a[0] == 100 && (a[1] & 0xc0) == 64) || a[0] == 0 ||
            a[0] >= 224)
            return "a reserved address";
        if ((a[0] == 192 && a[1] == 0 && a[2] == 2) || (a[0] == 198 && a[1] == 51 && a[2] == 100) ||
            (a[0] == 203 && a[1] == 0 && a[2] == 113))
            return "a documentation address (RFC 5737)";
        return NULL;
    }
    if (inet_pton(AF_INET6, d, a) != 1)
        return NULL;
    static const unsigned char loop6[16] = {[15] = 1};
    if (memcmp(a, loop6, 16) == 0)
        return "a loopback address";
    if ((a[0] & 0xfe) == 0xfc)
        return "a unique local address (RFC 4193)";
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return "a link-local address";
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8)
        return "a documentation address (RFC 3849)";
    return NULL;
}

/* Why a public CA refuses this name ("a single-label name", ".local"), or
 * NULL if it is a public name. */
static const char *private_name_reason(const char *d)
{
    static const char *const suffixes[] = {".local", ".lan", ".internal", ".home.arpa",
                                           ".localhost"};
    size_t len;

    if (strncmp(d, "*.", 2) == 0)
        d += 2;
    if (strcmp(d, "localhost") == 0)
        return "localhost";
    if (strchr(d, '.') == NULL)
        return "a single-label name";
    len = strlen(d);
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t sl = strlen(suffixes[i]);
        if (len > sl && strcmp(d + len - sl, suffixes[i]) == 0)
            return suffixes[i];
        if (strcmp(d, suffixes[i] + 1) == 0)
            return suffixes[i];
    }
    return NULL;
}

static bool name_file_safe(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > NAME_MAX_CHARS || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

bool config_check_file_exists(struct cctx *c, const struct toml_keyval *kv, const char *path,
                              void *obj, void *field)
{
    const char *f = *(char **)field;
    struct stat st;
    char b[256];

    (void)obj;
    if (stat(f, &st) < 0) {
        if (errno == ENOENT)
            ERR(c, kv->val.pos, path, "%s does not exist", config_show(b, sizeof(b), f));
        else
            ERR(c, kv->val.pos, path, "%s: %s", config_show(b, sizeof(b), f), strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        ERR(c, kv->val.pos, path, "%s is not a regular file", config_show(b, sizeof(b), f));
        return false;
    }
    return true;
}

static bool lookup_id(struct cctx *c, bool user, const char *name, long *id);

/* A secret file may also be readable by the daemon's own group (0640
 * root:certloop, the usual Debian pattern): the group of this process (the
 * daemon, or `check` run as the daemon's user), one of its supplementary
 * groups, or the group certloop the systemd unit runs the daemon as. */
static bool daemon_group(struct cctx *c, gid_t gid)
{
    gid_t groups[256];
    long id;

    if (gid == getegid())
        return true;
    int n = getgroups(sizeof(groups) / sizeof(groups[0]), groups);
    for (int i = 0; i < n; i++) {
        if (groups[i] == gid)
            return true;
    }
    return lookup_id(c, false, "certloop", &id) && (gid_t)id == gid;
}

bool config_check_secret(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field)
{
    const char *f = *(char **)field;
    struct stat st;
    char b[256];

    if (!config_check_file_exists(c, kv, path, obj, field))
        return false;
    if (stat(f, &st) < 0)
        return true; /* reported by config_check_file_exists, or gone since */
    config_show(b, sizeof(b), f);
    if ((st.st_mode & 077) != 0 && !((st.st_mode & 077) == 040 && daemon_group(c, st.st_gid))) {
        ERR(c, kv->val.pos, path,
            "secret file %s is accessible by group or others (mode %04o); run chmod 600 %s, "
            "or chmod 640 with the daemon's group (chgrp certloop %s)",
            b, (unsigned)(st.st_mode & 07777), b, b);
        return false;
    }
    if (st.st_size == 0) {
        ERR(c, kv->val.pos, path, "secret file %s is empty", b);
        return false;
    }
    return true;
}

/* [store] encryption_key_file: a secret file holding the 32-byte key that
 * seals private keys (AES-256-GCM), as 64 hex digits or base64. */
bool config_check_key32_file(struct cctx *c, const struct toml_keyval *kv, const char *path,
                             void *obj, void *field)
{
    const char *f = *(char **)field;
    struct buf b = BUF_INIT(4096);
    uint8_t key[32];
    char shown[256];
    bool ok;

    if (!config_check_secret(c, kv, path, obj, field))
        return false;
    int rc = buf_read_file(&b, f);
    config_show(shown, sizeof(shown), f);
    if (rc < 0) {
        ERR(c, kv->val.pos, path, "%s: %s", shown, err_str(rc));
        ok = false;
    } else {
        ok = key32_parse(b.data, b.len, key) == 0;
        if (!ok)
            ERR(c, kv->val.pos, path,
                "%s does not hold a 32-byte key: write 64 hex digits or the base64 of 32 bytes "
                "(openssl rand -hex 32 > %s)",
                shown, shown);
    }
    OPENSSL_cleanse(key, sizeof(key));
    if (b.data != NULL)
        OPENSSL_cleanse(b.data, b.len);
    buf_fini(&b);
    return ok;
}

/* [store] instance: this daemon's name in leases and the fleet view. */
bool config_check_instance(struct cctx *c, const struct toml_keyval *kv, const char *path,
                           void *obj, void *field)
{
    const char *s = *(char **)field;

    (void)obj;
    if (strlen(s) > 63 || !name_file_safe(s)) {
        ERR(c, kv->val.pos, path,
            "instance must be 1 to 63 characters of letters, digits, '.', '_' and '-' "
            "(not starting with '.')");
        return false;
    }
    return true;
}

/* The directory a deploy file goes to must exist (we never create it). */
bool config_check_parent_dir(struct cctx *c, const struct toml_keyval *kv, const char *path,
                             void *obj, void *field)
{
    const char *f = *(char **)field;
    const char *slash = strrchr(f, '/');
    char b[256];

    (void)obj;
    if (slash[1] == '\0') {
        ERR(c, kv->val.pos, path, "%s names a directory, not a file", config_show(b, sizeof(b), f));
        return false;
    }
    size_t dl = slash == f ? 1 : (size_t)(slash - f);
    if (c->lastdir == NULL || c->lastdir_len != dl || memcmp(c->lastdir, f, dl) != 0) {
        struct stat st;
        if (dl + 1 > c->lastdir_cap) { /* a buffer kept, not a copy per certificate */
            free(c->lastdir);
            c->lastdir = xmalloc(dl + 1);
            c->lastdir_cap = dl + 1;
        }
        memcpy(c->lastdir, f, dl);
        c->lastdir[dl] = '\0';
        c->lastdir_len = dl;
        if (stat(c->lastdir, &st) < 0)
            c->lastdir_rc = -errno;
        else
            c->lastdir_rc = S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
    }
    if (c->lastdir_rc == -ENOENT) {
        ERR(c, kv->val.pos, path, "directory %s does not exist",
            config_show(b, sizeof(b), c->lastdir));
        return false;
    }
    if (c->lastdir_rc == -ENOTDIR) {
        ERR(c, kv->val.pos, path, "%s is not a directory", config_show(b, sizeof(b), c->lastdir));
        return false;
    }
    if (c->lastdir_rc < 0) {
        ERR(c, kv->val.pos, path, "%s: %s", config_show(b, sizeof(b), c->lastdir),
            strerror(-c->lastdir_rc));
        return false;
    }
    c->outputs =
        xreallocarray_grow(c->outputs, &c->cap_outputs, c->n_outputs + 1, sizeof(*c->outputs));
    struct output *o = &c->outputs[c->n_outputs++];
    o->file = config_pool_strdup(&c->out_text, f);
    o->keypath = config_pool_strdup(&c->out_text, path);
    o->src = c->file;
    o->pos = kv->val.pos;
    return true;
}

bool config_check_socket_path(struct cctx *c, const struct toml_keyval *kv, const char *path,
                              void *obj, void *field)
{
    struct sockaddr_un addr;

    (void)obj;
    if (strlen(*(char **)field) >= sizeof(addr.sun_path)) {
        ERR(c, kv->val.pos, path, "longer than %zu bytes, too long for a unix socket",
            sizeof(addr.sun_path) - 1);
        return false;
    }
    return true;
}

bool config_check_ca_url(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                         void *field)
{
    char host[256], b[256];
    bool https;
    const char *u = *(char **)field;
    struct cfg_ca *ca = obj;

    if (!config_url_split(u, &https, host, sizeof(host))) {
        ERR(c, kv->val.pos, path, "\"%s\" is not an https:// URL", config_show(b, sizeof(b), u));
        return false;
    }
    if (!https && !config_host_is_loopback(host)) {
        ERR(c, kv->val.pos, path,
            "the ACME directory must be an https:// URL (http:// only for 127.0.0.0/8, ::1 or "
            "localhost)");
        return false;
    }
    ca->is_public = public_ca_name(u) != NULL;
    return true;
}

/* [ca.NAME] staging: an ACME directory like `directory`, which alone says
 * whether the CA is public. */
bool config_check_staging_url(struct cctx *c, const struct toml_keyval *kv, const char *path,
                              void *obj, void *field)
{
    struct cfg_ca *ca = obj;
    bool pub = ca->is_public;
    bool ok = config_check_ca_url(c, kv, path, obj, field);

    ca->is_public = pub;
    return ok;
}

/* The PATH the daemon's commands are looked up in (execvp's): this
 * process's, or the usual default when it has none. */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* 0 when path is a regular file this process may execute, else -ENOENT,
 * -EISDIR (not a regular file) or -EACCES (not executable). */
static int program_usable(const char *path, mode_t *mode)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
    *mode = st.st_mode & 07777;
    if (!S_ISREG(st.st_mode))
        return -EISDIR;
    if ((st.st_mode & 0111) == 0 || access(path, X_OK) < 0)
        return -EACCES;
    return 0;
}

/* A command's program must exist and be executable now: an absolute path
 * as written, a bare name in PATH (the first match, as execvp takes it). */
static bool check_program(struct cctx *c, struct toml_pos pos, const char *path, const char *prog)
{
    char b[256], pb[512];
    mode_t mode = 0;
    int rc;

    if (prog[0] == '/') {
        rc = program_usable(prog, &mode);
        config_show(b, sizeof(b), prog);
        if (rc == -ENOENT)
            ERR(c, pos, path, "program %s does not exist", b);
        else if (rc == -EISDIR)
            ERR(c, pos, path, "program %s is not a regular file", b);
        else if (rc == -EACCES)
            ERR(c, pos, path, "program %s is not executable (mode %04o); run chmod +x %s", b,
                (unsigned)mode, b);
        else if (rc < 0)
            ERR(c, pos, path, "program %s: %s", b, strerror(-rc));
        return rc == 0;
    }
    const char *env = getenv("PATH");
    const char *search = env != NULL && env[0] != '\0' ? env : DEFAULT_PATH;
    char *first_bad = NULL;
    for (const char *p = search; p != NULL;) {
        const char *colon = strchr(p, ':');
        size_t dl = colon != NULL ? (size_t)(colon - p) : strlen(p);
        char *cand = dl == 0 ? xasprintf("./%s", prog) : xasprintf("%.*s/%s", (int)dl, p, prog);
        rc = program_usable(cand, &mode);
        if (rc == 0) {
            free(cand);
            free(first_bad);
            return true;
        }
        if (rc != -ENOENT && first_bad == NULL)
            first_bad = cand;
        else
            free(cand);
        p = colon != NULL ? colon + 1 : NULL;
    }
    config_show(b, sizeof(b), prog);
    if (first_bad != NULL)
        ERR(c, pos, path, "program \"%s\" in PATH is %s, not an executable file", b,
            config_show(pb, sizeof(pb), first_bad));
    else
        ERR(c, pos, path, "program \"%s\" is not found in PATH (%s)", b,
            config_show(pb, sizeof(pb), search));
    free(first_bad);
    return false;
}

/* hooks_dir: a missing directory has no hooks, and a non-executable file in
 * it is a disabled hook (certbot's convention), but a hooks_dir or phase
 * directory that is something else, or a hook that is a dangling symlink,
 * is a mistake that would silently run nothing. */
bool config_check_hooks_dir(struct cctx *c, const struct toml_keyval *kv, const char *path,
                            void *obj, void *field)
{
    static const char *const phases[] = {"pre", "deploy", "post"};
    const char *dir = *(char **)field;
    struct stat st;
    char b[512];
    bool ok = true;

    (void)obj;
    if (stat(dir, &st) < 0)
        return true;
    if (!S_ISDIR(st.st_mode)) {
        ERR(c, kv->val.pos, path, "%s is not a directory", config_show(b, sizeof(b), dir));
        return false;
    }
    for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
        char *pd = xasprintf("%s/%s", dir, phases[i]);
        DIR *d = NULL;
        if (stat(pd, &st) == 0 && !S_ISDIR(st.st_mode)) {
            ERR(c, kv->val.pos, path, "%s is not a directory", config_show(b, sizeof(b), pd));
            ok = false;
        } else if (stat(pd, &st) == 0) {
            d = opendir(pd);
        }
        for (struct dirent *e = d != NULL ? readdir(d) : NULL; e != NULL; e = readdir(d)) {
            if (e->d_name[0] == '.')
                continue;
            char *hook = xasprintf("%s/%s", pd, e->d_name);
            if (stat(hook, &st) < 0 && errno == ENOENT && lstat(hook, &st) == 0) {
                ERR(c, kv->val.pos, path, "hook %s is a symlink to nothing",
                    config_show(b, sizeof(b), hook));
                ok = false;
            }
            free(hook);
        }
        if (d != NULL)
            closedir(d);
        free(pd);
    }
    return ok;
}

bool config_check_command(struct cctx *c, const struct toml_keyval *kv, const char *path, void *obj,
                          void *field)
{
    const struct cfg_strv *v = field;
    char b[256];

    (void)obj;
    if (v->n == 0) {
        ERR(c, kv->val.pos, path, "must name a program: [\"PROGRAM\", \"ARG\", ...]");
        return false;
    }
    const char *prog = v->v[0];
    struct toml_pos p0 = kv->val.u.arr->items[0].pos;
    char *ep = xasprintf("%s[0]", path);
    bool ok = true;
    if (prog[0] == '\0') {
        ERR(c, p0, ep, "the program name must not be empty");
        ok = false;
    } else if (strchr(prog, '/') != NULL && prog[0] != '/') {
        ERR(c, p0, ep,
            "\"%s\": the program must be an absolute path or a bare name looked up in PATH",
            config_show(b, sizeof(b), prog));
        ok = false;
    } else {
        ok = check_program(c, p0, ep, prog);
    }
    free(ep);
    return ok;
}

static bool lookup_id(struct cctx *c, bool user, const char *name, long *id)
{
    struct idcache **cache = user ? &c->users : &c->groups;
    size_t *n = user ? &c->n_users : &c->n_groups;
    size_t *cap = user ? &c->cap_users : &c->cap_groups;

    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*cache)[i].name, name) == 0) {
            *id = (*cache)[i].id;
            return (*cache)[i].found;
        }
    }

    bool found = false;
    long val = -1;
    char *end;
    unsigned long num = strtoul(name, &end, 10);
    if (name[0] >= '0' && name[0] <= '9' && *end == '\0' && num < 0xFFFFFFFFul) {
        found = true;
        val = (long)num;
    } else {
        size_t bl = 16384;
        for (;;) {
            char *buf = xmalloc(bl);
            int rc;
            if (user) {
                struct passwd pw, *res = NULL;
                rc = getpwnam_r(name, &pw, buf, bl, &res);
                if (rc == 0 && res != NULL) {
                    found = true;
                    val = (long)pw.pw_uid;
                }
            } else {
                struct group gr, *res = NULL;
                rc = getgrnam_r(name, &gr, buf, bl, &res);
                if (rc == 0 && res != NULL) {
                    found = true;
                    val = (long)gr.gr_gid;
                }
            }
            free(buf);
            if (rc != ERANGE || bl > (1u << 24))
                break;
            bl *= 4;
        }
    }
    *cache = xreallocarray_grow(*cache, cap, *n + 1, sizeof(**cache));
    (*cache)[*n].name = xstrdup(name);
    (*cache)[*n].found = found;
    (*cache)[*n].id = val;
    (*n)++;
    *id = val;
    return found;
}

bool config_resolve_id(struct cctx *c, const struct toml_keyval *kv, const char *path, bool user,
                       const char *name, long *id)
{
    char b[128];

    if (lookup_id(c, user, name, id))
        return true;
    ERR(c, kv->val.pos, path, "unknown %s '%s'", user ? "user" : "group",
        config_show(b, sizeof(b), name));
    return false;
}

bool config_check_dir_exists(struct cctx *c, const struct toml_keyval *kv, const char *path,
                             void *obj, void *field)
{
    const char *f = *(char **)field;
    struct stat st;
    char b[256];

    (void)obj;
    if (stat(f, &st) < 0) {
        ERR(c, kv->val.pos, path, "%s: %s", config_show(b, sizeof(b), f), strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        ERR(c, kv->val.pos, path, "%s is not a directory", config_show(b, sizeof(b), f));
        return false;
    }
    return true;
}

void config_check_api(struct cctx *c)
{
    const struct config *cfg = c->cfg;
    const struct cfg_api *a = &cfg->api;
    char b[200];

    if (a->listen.n > 0 && a->tokens_file == NULL)
        config_err(c, c->api_file, c->api_pos, "api",
                   "listen needs tokens_file (create tokens with certloop api-token create)");
    if (a->certificate == NULL)
        return;
    if (a->listen.n == 0) {
        config_err(c, c->api_file, c->api_pos, "api.certificate",
                   "only used with [api] listen, which is empty");
        return;
    }
    const struct cfg_cert *cc = config_cert_find(cfg, a->certificate);
    if (cc == NULL)
        config_err(c, c->api_file, c->api_pos, "api.certificate", "no [certificate.%s] is defined",
                   config_show(b, sizeof(b), a->certificate));
}

/* public_port is where `certloop test` makes the CA's tls-alpn-01
 * handshake, and only a certificate with challenge = "tls-alpn-01" is
 * probed, which needs listen: without listen the key would do nothing. */
void config_check_tlsalpn01(struct cctx *c)
{
    if (!c->tlsalpn_port_set || c->cfg->tlsalpn01.listen.n > 0)
        return;
    config_err(c, c->tlsalpn_port_file, c->tlsalpn_port_pos, "tlsalpn01.public_port",
               "only used with [tlsalpn01] listen, which is empty: set listen to the "
               "responder's addresses (e.g. [\"0.0.0.0:443\"]) for challenge = "
               "\"tls-alpn-01\", or remove public_port");
}

void config_check_http01_answerable(struct cctx *c)
{
    const struct config *cfg = c->cfg;

    if (cfg->http01.listen.n > 0 || cfg->http01.webroot != NULL)
        return;
    /* systemd socket activation: the daemon gets its sockets (LISTEN_FDS),
     * and `check` under the same unit is told by systemd/certloop-socket.conf
     * (ExecStartPre does not receive the sockets) */
    const char *sa = getenv("CERTLOOP_SOCKET_ACTIVATION");
    if (getenv("LISTEN_FDS") != NULL || (sa != NULL && strcmp(sa, "1") == 0))
        return;
    for (size_t i = 0; i < cfg->n_certs; i++) {
        const struct cfg_cert *cc = &cfg->certs[i];
        if (cc->challenge != CFG_CHAL_HTTP01 || cc->ca == NULL)
            continue;
        size_t file = 0; /* where.file is borrowed from cfg->files */
        for (size_t f = 0; f < cfg->files.n; f++)
            if (cfg->files.v[f] == cc->where.file)
                file = f;
        char *path = xasprintf("certificate.%s", cc->name);
        config_err(c, file, cc->where.pos, path,
                   "http-01 has nothing to answer the CA: [http01] listen is [] and no "
                   "[http01] webroot is set; set webroot (a web server serves the token "
                   "files), listen (certloop's own listener), or challenge = \"dns-01\"; "
                   "with systemd/certloop.socket, the drop-in certloop-socket.conf sets "
                   "CERTLOOP_SOCKET_ACTIVATION=1");
        free(path);
    }
}

bool config_check_object_name(struct cctx *c, const char *section, const char *name,
                              const char *path, struct toml_pos pos)
{
    char b[256];

    if (name_file_safe(name))
        return true;
    ERR(c, pos, path,
        "%s name \"%s\" is not safe as a file name: use letters, digits, '.', '_' and '-' (at "
        "most %d, not starting with '.')",
        section, config_show(b, sizeof(b), name), NAME_MAX_CHARS);
    return false;
}

static const char *const *names_of_cas(const struct config *cfg, const char **buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_cas && n + 1 < cap; i++)
        buf[n++] = cfg->cas[i].name;
    buf[n] = NULL;
    return buf;
}

/* An ip identifier (RFC 8738): validated only by http-01 and tls-alpn-01
 * (§7: dns-01 has no reverse-name form); a public CA issues for one only
 * under a profile that allows it, and never for a private address. */
static void check_ip(struct cctx *c, struct cert_tmp *ct, size_t i, const char *p,
                     const char *public_name)
{
    const char *d = ct->c.domains.v[i];
    const struct cfg_ca *ca = ct->c.ca;

    if (CFG_CHAL_IS_DNS(ct->c.challenge)) {
        config_err(c, ct->file, ct->dom_pos[i], p,
                   "the IP address %s can be validated only by http-01 or tls-alpn-01 (RFC 8738 "
                   "section 7), not by dns-01",
                   d);
        return;
    }
    if (public_name == NULL)
        return;
    const char *why = private_ip_reason(d);
    if (why != NULL) {
        config_err(c, ct->file, ct->dom_pos[i], p,
                   "not a public address: %s cannot issue for %s (%s); use a private CA",
                   public_name, why, d);
        return;
    }
    if (!profile_allows_ip(public_name, ca->profile)) {
        if (strcmp(public_name, "Let's Encrypt") == 0)
            config_err(c, ct->file, ct->dom_pos[i], p,
                       "%s issues for IP addresses (%s) only under a profile that allows them: "
                       "set [ca.%s] profile = \"shortlived\"",
                       public_name, d, ca->name);
        else
            config_err(c, ct->file, ct->dom_pos[i], p,
                       "%s offers no profile that allows IP addresses (%s) as far as certloop "
                       "knows; use a CA that issues for them",
                       public_name, d);
    }
}

void config_resolve_cert(struct cctx *c, struct cert_tmp *ct)
{
    struct config *cfg = c->cfg;
    bool imported = ct->c.import_cert != NULL;
    char b[256];

    if (ct->hub_name != NULL) { /* pulled: no CA, no challenge (hub.c refused those keys) */
        config_resolve_from(c, ct);
        return;
    }
    if (ct->ca_name != NULL) {
        ct->c.ca = (struct cfg_ca *)config_ca_find(cfg, ct->ca_name);
        if (ct->c.ca == NULL) {
            const char *names[65];
            size_t n = 0;
            names_of_cas(cfg, names, 65);
            while (names[n] != NULL)
                n++;
            const char *best = config_closest(ct->ca_name, names, n);
            char *p = xasprintf("%s.ca", ct->path);
            if (best != NULL)
                config_err(c, ct->file, ct->ca_pos, p, "no [ca.%s] is defined; did you mean '%s'?",
                           config_show(b, sizeof(b), ct->ca_name), best);
            else
                config_err(c, ct->file, ct->ca_pos, p, "no [ca.%s] is defined",
                           config_show(b, sizeof(b), ct->ca_name));
            free(p);
        }
    } else if (!imported) {
        if (cfg->n_cas == 1)
            ct->c.ca = &cfg->cas[0];
        else if (cfg->n_cas == 0)
            config_err(c, ct->file, ct->c.where.pos, ct->path,
                       "no ca given and no [ca.NAME] is defined");
        else
            config_err(c, ct->file, ct->c.where.pos, ct->path,
                       "missing required key 'ca' (there is more than one [ca.NAME])");
    }

    bool issued = ct->c.ca != NULL || (!imported && ct->ca_name == NULL);
    if (CFG_CHAL_IS_DNS(ct->c.challenge) && issued) {
        if (ct->dns_name != NULL) {
            ct->c.dns = (struct cfg_dns *)config_dns_find(cfg, ct->dns_name);
            if (ct->c.dns == NULL) {
                char *p = xasprintf("%s.dns", ct->path);
                config_err(c, ct->file, ct->dns_pos, p, "no [dns.%s] is defined",
                           config_show(b, sizeof(b), ct->dns_name));
                free(p);
            }
        } else if (cfg->n_dns == 1) {
            ct->c.dns = &cfg->dns[0];
        } else {
            config_err(c, ct->file, ct->challenge_pos, ct->path,
                       cfg->n_dns == 0 ? "challenge = \"%s\" needs a [dns.NAME] solver"
                                       : "challenge = \"%s\" needs dns = NAME (there is more "
                                         "than one [dns.NAME])",
                       config_challenge_name(ct->c.challenge));
        }
    }
    if (ct->c.challenge == CFG_CHAL_TLSALPN01 && issued && cfg->tlsalpn01.listen.n == 0)
        config_err(c, ct->file, ct->challenge_pos, ct->path,
                   "challenge = \"tls-alpn-01\" needs [tlsalpn01] listen (the address the CA "
                   "connects to on port 443)");
    if (ct->domains_bad || !issued)
        return;

    const char *public_name = ct->c.ca != NULL ? public_ca_name(ct->c.ca->directory) : NULL;
    for (size_t i = 0; i < ct->c.domains.n; i++) {
        const char *d = ct->c.domains.v[i];
        char *p = NULL;
        if (d[0] == '*' && !CFG_CHAL_IS_DNS(ct->c.challenge)) {
            p = xasprintf("%s.domains[%zu]", ct->path, i);
            config_err(c, ct->file, ct->dom_pos[i], p,
                       "the wildcard name \"%s\" needs challenge = \"dns-01\"", d);
        }
        if (config_name_is_ip(d)) {
            if (p == NULL)
                p = xasprintf("%s.domains[%zu]", ct->path, i);
            check_ip(c, ct, i, p, public_name);
            free(p);
            continue;
        }
        const char *why = public_name != NULL ? private_name_reason(d) : NULL;
        if (why != NULL) {
            if (p == NULL)
                p = xasprintf("%s.domains[%zu]", ct->path, i);
            config_err(c, ct->file, ct->dom_pos[i], p,
                       "not a public name: %s cannot issue for %s; use a private CA", public_name,
                       why);
        }
        /* dns-01 puts the TXT record at _acme-challenge.NAME (RFC 8555
         * §8.4; a wildcard's at its base name), which must itself fit the
         * 253 characters of a DNS name */
        const char *base = d[0] == '*' ? d + 2 : d;
        size_t rlen = strlen("_acme-challenge.") + strlen(base);
        if (CFG_CHAL_IS_DNS(ct->c.challenge) && rlen > 253) {
            if (p == NULL)
                p = xasprintf("%s.domains[%zu]", ct->path, i);
            config_err(c, ct->file, ct->dom_pos[i], p,
                       "a %zu-character name: its dns-01 record _acme-challenge.%.20s... would be "
                       "%zu characters, more than the 253 a DNS name may have; use http-01 or a "
                       "shorter name",
                       strlen(base), base, rlen);
        }
        free(p);
    }
}

/* A file written twice: outputs[later] after outputs[first]. */
struct twice {
    const struct cctx *c;
    size_t first, later;
};

static int twice_cmp(const void *a, const void *b)
{
    const struct twice *x = a, *y = b;
    int r = strcmp(x->c->outputs[x->first].file, y->c->outputs[y->first].file);
    if (r != 0)
        return r;
    return x->later < y->later ? -1 : x->later > y->later;
}

/* Two deploy actions writing one file would overwrite each other. Each
 * later writer of a file is reported against its first, in the order of
 * the files' names; the writers are found with a hash of the names (a sort
 * of every name cost a reload at 100,000 certificates 0.1 s). */
void config_check_outputs(struct cctx *c)
{
    char b[256];
    size_t cap = 64, n_twice = 0, cap_twice = 0;
    struct twice *twice = NULL;

    if (c->n_outputs == 0)
        return;
    if (c->n_outputs >= UINT32_MAX)
        abort(); /* unreachable: each takes a line of a file read into memory */
    while (cap < 2 * c->n_outputs)
        cap *= 2;
    /* a first writer's index + 1 (0: a free slot) and its name's hash, so
     * that a probe reads a name only when the hashes agree */
    struct {
        uint32_t idx, tag;
    } *slot = xcalloc(cap, sizeof(*slot));
    for (size_t i = 0; i < c->n_outputs; i++) {
        const char *f = c->outputs[i].file;
        uint64_t hv = toml_key_hash(f, strlen(f));
        size_t h = (size_t)hv & (cap - 1);
        while (slot[h].idx != 0 && (slot[h].tag != (uint32_t)(hv >> 32) ||
                                    strcmp(c->outputs[slot[h].idx - 1].file, f) != 0))
            h = (h + 1) & (cap - 1);
        if (slot[h].idx == 0) {
            slot[h].idx = (uint32_t)(i + 1);
            slot[h].tag = (uint32_t)(hv >> 32);
            continue;
        }
        twice = xreallocarray_grow(twice, &cap_twice, n_twice + 1, sizeof(*twice));
        twice[n_twice++] = (struct twice){c, slot[h].idx - 1, i};
    }
    free(slot);
    if (n_twice > 1)
        qsort(twice, n_twice, sizeof(*twice), twice_cmp);
    for (size_t i = 0; i < n_twice; i++) {
        const struct output *o = &c->outputs[twice[i].later], *f = &c->outputs[twice[i].first];
        config_err(c, o->src, o->pos, o->keypath, "%s is also written by %s at %s:%u:%u",
                   config_show(b, sizeof(b), o->file), f->keypath, c->cfg->files.v[f->src],
                   (unsigned)f->pos.line, (unsigned)f->pos.col);
    }
    free(twice);
}
