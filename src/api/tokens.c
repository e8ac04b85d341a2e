/* API tokens: the tokens file ("NAME SCOPES sha256:HEX" per line; only the
 * hash of a secret is ever stored) and the server's set read from it again
 * when it changes, matching a presented secret in constant time, creating and
 * revoking tokens for the command line, and the limit on failed
 * authentications per address. It does not read HTTP: the server (api.c)
 * hands it the Bearer value. */
#include "api/api_internal.h"
#include "api/server_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "store/store.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#define TOKENS_FILE_MAX (1024 * 1024)

static const char *const scope_names[] = {"read", "pull", "manage"};

int api_scopes_parse(const char *s, unsigned *out)
{
    unsigned bits = 0;

    if (s == NULL || *s == '\0')
        return -EINVAL;
    while (*s != '\0') {
        size_t n = strcspn(s, ",");
        unsigned bit = 0;
        for (unsigned i = 0; i < 3; i++) {
            if (n == strlen(scope_names[i]) && memcmp(s, scope_names[i], n) == 0)
                bit = 1u << i;
        }
        if (bit == 0)
            return -EINVAL;
        bits |= bit;
        s += n;
        if (*s == ',') {
            s++;
            if (*s == '\0')
                return -EINVAL;
        }
    }
    *out = bits;
    return 0;
}

void api_scopes_format(unsigned scopes, char *out, size_t cap)
{
    size_t o = 0;

    out[0] = '\0';
    for (unsigned i = 0; i < 3; i++) {
        if ((scopes & (1u << i)) != 0 && o < cap)
            o += (size_t)snprintf(out + o, cap - o, "%s%s", o > 0 ? "," : "", scope_names[i]);
    }
}

bool api_token_name_ok(const char *s)
{
    return api_name_ok(s, API_TOKEN_NAME_MAX);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

void api_tokens_fini(struct api_tokens *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].name);
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

/* One non-comment line: three fields separated by single spaces or tabs. */
static int parse_line(char *line, struct api_token *out)
{
    char *save = NULL;
    char *name = strtok_r(line, " \t", &save);
    char *scopes = strtok_r(NULL, " \t", &save);
    char *hash = strtok_r(NULL, " \t", &save);

    if (name == NULL || scopes == NULL || hash == NULL || strtok_r(NULL, " \t", &save) != NULL)
        return -EINVAL;
    if (!api_token_name_ok(name) || api_scopes_parse(scopes, &out->scopes) < 0)
        return -EINVAL;
    if (strncmp(hash, "sha256:", 7) != 0 || strlen(hash) != 7 + 64)
        return -EINVAL;
    for (size_t i = 0; i < 32; i++) {
        int hi = hexval(hash[7 + 2 * i]), lo = hexval(hash[8 + 2 * i]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out->hash[i] = (uint8_t)(hi << 4 | lo);
    }
    out->name = xstrdup(name);
    return 0;
}

int api_tokens_parse(const char *text, size_t len, struct api_tokens *out, char **err)
{
    struct api_tokens t = {0};
    size_t cap = 0, lineno = 0;
    int rc = 0;

    for (size_t at = 0; at < len && rc == 0;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t e = nl != NULL ? (size_t)(nl - text) : len;
        size_t raw = e - at;
        char *line = xstrndup(text + at, raw);
        bool has_nul = strlen(line) != raw; /* xstrndup stops at a NUL byte */
        size_t ll = strlen(line);
        lineno++;
        at = e + 1;
        if (ll > 0 && line[ll - 1] == '\r')
            line[--ll] = '\0';
        if (!has_nul && (ll == 0 || line[0] == '#')) {
            free(line);
            continue;
        }
        struct api_token tok = {0};
        if (has_nul || parse_line(line, &tok) < 0) {
            *err = xasprintf("line %zu: expected NAME SCOPES sha256:HEX (SCOPES: read, pull, "
                             "manage, comma-separated)",
                             lineno);
            rc = -EINVAL;
        } else {
            for (size_t i = 0; i < t.n; i++) {
                if (strcmp(t.v[i].name, tok.name) == 0) {
                    *err = xasprintf("line %zu: token %s is defined twice", lineno, tok.name);
                    rc = -EINVAL;
                }
            }
            if (rc == 0) {
                if (t.n == cap) {
                    cap = cap ? cap * 2 : 8;
                    t.v = xrealloc(t.v, cap * sizeof(*t.v));
                }
                t.v[t.n++] = tok;
            } else {
                free(tok.name);
            }
        }
        free(line);
    }
    if (rc < 0) {
        api_tokens_fini(&t);
        return rc;
    }
    *out = t;
    return 0;
}

const struct api_token *api_tokens_match(const struct api_tokens *t, const char *secret, size_t len)
{
    uint8_t h[32];
    unsigned hl = 0;
    const struct api_token *found = NULL;

    if (EVP_Digest(secret, len, h, &hl, EVP_sha256(), NULL) != 1 || hl != 32)
        return NULL;
    for (size_t i = 0; i < t->n; i++) {
        /* no early exit: every line costs the same */
        bool eq = CRYPTO_memcmp(h, t->v[i].hash, 32) == 0;
        if (eq && found == NULL)
            found = &t->v[i];
    }
    OPENSSL_cleanse(h, sizeof(h));
    return found;
}

/* The token set of the file as it is now: read again when its inode, size
 * or mtime changed (so api-token create/revoke take effect at the next
 * request). A file that cannot be read or parsed gives no tokens: every
 * request is refused until it is fixed (logged once). */
const struct api_tokens *api_tokens_current(struct api *a)
{
    struct stat st;

    if (a->tokens_file == NULL || stat(a->tokens_file, &st) < 0) {
        if (!a->tokens_bad)
            log_error(LOG_API, "tokens_file %s: %s; every request is refused",
                      a->tokens_file != NULL ? a->tokens_file : "(none)",
                      err_str(a->tokens_file != NULL ? -errno : -ENOENT));
        a->tokens_bad = true;
        api_tokens_fini(&a->tokens);
        memset(&a->tokens_st, 0, sizeof(a->tokens_st));
        return &a->tokens;
    }
    if (st.st_ino == a->tokens_st.st_ino && st.st_dev == a->tokens_st.st_dev &&
        st.st_size == a->tokens_st.st_size && st.st_mtim.tv_sec == a->tokens_st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == a->tokens_st.st_mtim.tv_nsec)
        return &a->tokens;
    struct buf b = BUF_INIT(TOKENS_FILE_MAX);
    struct api_tokens t = {0};
    char *err = NULL;
    int rc = buf_read_file(&b, a->tokens_file);
    if (rc == 0)
        rc = api_tokens_parse(b.data != NULL ? b.data : "", b.len, &t, &err);
    buf_fini(&b);
    api_tokens_fini(&a->tokens);
    a->tokens_st = st;
    if (rc < 0) {
        log_error(LOG_API, "tokens_file %s: %s; every request is refused", a->tokens_file,
                  err != NULL ? err : err_str(rc));
        free(err);
        a->tokens_bad = true;
        return &a->tokens;
    }
    a->tokens = t;
    a->tokens_bad = false;
    log_info(LOG_API, "%zu %s from %s", t.n, t.n == 1 ? "token" : "tokens", a->tokens_file);
    return &a->tokens;
}

/* Reads the tokens file for create/revoke: 0 (an absent file is empty, with
 * *st zeroed), or -errno. */
static int read_tokens_file(const char *path, char **text, size_t *len, struct stat *st, char **err)
{
    struct buf b = BUF_INIT(TOKENS_FILE_MAX);
    int rc;

    memset(st, 0, sizeof(*st));
    if (stat(path, st) < 0) {
        if (errno == ENOENT) {
            memset(st, 0, sizeof(*st));
            *text = xstrdup("");
            *len = 0;
            return 0;
        }
        rc = -errno;
        *err = xasprintf("%s: %s", path, err_str(rc));
        return rc;
    }
    rc = buf_read_file(&b, path);
    if (rc < 0) {
        *err = xasprintf("%s: %s", path, err_str(rc));
        buf_fini(&b);
        return rc;
    }
    buf_append(&b, "", 1);
    *text = buf_steal(&b, len);
    (*len)--;
    return 0;
}

static int write_tokens_file(const char *path, const char *data, size_t len, const struct stat *st,
                             char **err)
{
    const char *step = NULL;
    bool existed = st->st_ino != 0;
    mode_t mode = existed ? (st->st_mode & 0640) | 0600 : 0600;
    int rc = store_write_atomic(path, data, len, mode, existed ? st->st_uid : (uid_t)-1,
                                existed ? st->st_gid : (gid_t)-1, &step);

    if (rc < 0)
        *err = xasprintf("%s: %s: %s", path, step != NULL ? step : "write", err_str(rc));
    return rc;
}

int api_token_create(const char *path, const char *name, unsigned scopes, char **secret, char **err)
{
    char *text = NULL, *line = NULL, *out = NULL, *sec = NULL;
    size_t len = 0;
    struct stat st;
    struct api_tokens t = {0};
    uint8_t raw[32], h[32];
    unsigned hl = 0;
    int rc;

    if (!api_token_name_ok(name)) {
        *err = xasprintf("bad token name '%s' (1 to %d of A-Z a-z 0-9 . _ -, not starting with "
                         "'.')",
                         name, API_TOKEN_NAME_MAX);
        return -EINVAL;
    }
    rc = read_tokens_file(path, &text, &len, &st, err);
    if (rc < 0)
        goto out;
    char *perr = NULL;
    rc = api_tokens_parse(text, len, &t, &perr);
    if (rc < 0) {
        *err = xasprintf("%s: %s", path, perr);
        free(perr);
        goto out;
    }
    for (size_t i = 0; i < t.n; i++) {
        if (strcmp(t.v[i].name, name) == 0) {
            *err = xasprintf("%s: a token named %s exists (revoke it first)", path, name);
            rc = -EEXIST;
            goto out;
        }
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        *err = xstrdup("no random bytes from OpenSSL");
        rc = ERR_CRYPTO;
        goto out;
    }
    char *b = b64url_encode(raw, sizeof(raw));
    sec = xasprintf(API_SECRET_PREFIX "%s", b);
    OPENSSL_cleanse(b, strlen(b));
    free(b);
    if (EVP_Digest(sec, strlen(sec), h, &hl, EVP_sha256(), NULL) != 1 || hl != 32) {
        *err = xstrdup("SHA-256 failed");
        rc = ERR_CRYPTO;
        goto out;
    }
    char hex[65], sc[32];
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    api_scopes_format(scopes, sc, sizeof(sc));
    line = xasprintf("%s %s sha256:%s\n", name, sc, hex);
    bool nl = len > 0 && text[len - 1] != '\n';
    out = xasprintf("%s%s%s", text, nl ? "\n" : "", line);
    rc = write_tokens_file(path, out, strlen(out), &st, err);
    if (rc < 0)
        goto out;
    *secret = sec;
    sec = NULL;
out:
    OPENSSL_cleanse(raw, sizeof(raw));
    if (sec != NULL)
        OPENSSL_cleanse(sec, strlen(sec));
    free(sec);
    api_tokens_fini(&t);
    free(text);
    free(line);
    free(out);
    return rc;
}

int api_token_revoke(const char *path, const char *name, char **err)
{
    char *text = NULL;
    size_t len = 0;
    struct stat st;
    struct buf b = BUF_INIT(TOKENS_FILE_MAX + 1);
    bool found = false;
    int rc = read_tokens_file(path, &text, &len, &st, err);

    if (rc < 0)
        goto out;
    /* keep every other line as written (comments too) */
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t e = nl != NULL ? (size_t)(nl - text) + 1 : len;
        size_t fl = strcspn(text + at, " \t\n");
        if (text[at] != '#' && fl == strlen(name) && fl <= e - at &&
            memcmp(text + at, name, fl) == 0) {
            found = true;
        } else {
            buf_append(&b, text + at, e - at);
        }
        at = e;
    }
    if (!found) {
        *err = xasprintf("%s: no token named %s", path, name);
        rc = -ENOENT;
        goto out;
    }
    rc = write_tokens_file(path, b.data != NULL ? b.data : "", b.len, &st, err);
out:
    buf_fini(&b);
    free(text);
    return rc;
}

/* ---- failed authentications -------------------------------------------- */

static struct api_fail_slot *fail_find(const struct api_faillimit *l, const char *addr)
{
    for (size_t i = 0; i < API_FAIL_SLOTS; i++) {
        if (l->slots[i].addr[0] != '\0' && strcmp(l->slots[i].addr, addr) == 0)
            return (struct api_fail_slot *)&l->slots[i];
    }
    return NULL;
}

uint64_t api_fail_wait(const struct api_faillimit *l, const char *addr, uint64_t now_ms)
{
    const struct api_fail_slot *s = fail_find(l, addr);

    if (s == NULL || now_ms >= s->start_ms + API_FAIL_WINDOW_MS || s->n < API_FAIL_MAX)
        return 0;
    return s->start_ms + API_FAIL_WINDOW_MS - now_ms;
}

void api_fail_add(struct api_faillimit *l, const char *addr, uint64_t now_ms)
{
    struct api_fail_slot *s = fail_find(l, addr);

    if (s == NULL) {
        s = &l->slots[0];
        for (size_t i = 0; i < API_FAIL_SLOTS; i++) {
            struct api_fail_slot *c = &l->slots[i];
            if (c->addr[0] == '\0') {
                s = c;
                break;
            }
            if (c->start_ms < s->start_ms)
                s = c;
        }
        snprintf(s->addr, sizeof(s->addr), "%s", addr);
        s->start_ms = now_ms;
        s->n = 0;
    }
    if (now_ms >= s->start_ms + API_FAIL_WINDOW_MS) {
        s->start_ms = now_ms;
        s->n = 0;
    }
    s->n++;
}
