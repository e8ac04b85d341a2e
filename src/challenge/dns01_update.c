/* RFC 2136 DNS UPDATE with RFC 8945 TSIG, as pure functions over bytes:
 * TSIG key files (plain base64 or BIND syntax), building and signing the
 * UPDATE that adds or deletes one TXT record, and checking the signed reply.
 * libldns does the wire format; the TSIG MAC is ours (OpenSSL HMAC), because
 * ldns 1.8.3 knows hmac-sha384 only under a misspelt name ("hmac-shac384.")
 * that it would also put on the wire. Nothing here does I/O except
 * dns01_key_load reading the secret file. */
#include "challenge/challenge.h"
#include "challenge/dns01_internal.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TSIG_FUDGE 300
#define KEY_FILE_MAX (64 * 1024)

/* RFC 8945 §5.3 TSIG error codes (in the TSIG record's Error field). */
enum { TSIG_BADSIG = 16, TSIG_BADKEY = 17, TSIG_BADTIME = 18, TSIG_BADTRUNC = 22 };

/* ---- names --------------------------------------------------------------- */

char *dns01_name_fqdn(const char *name)
{
    size_t n = strlen(name);
    char *s = xmalloc(n + 2);

    for (size_t i = 0; i < n; i++)
        s[i] = (char)tolower((unsigned char)name[i]);
    if (n == 0 || s[n - 1] != '.')
        s[n++] = '.';
    s[n] = '\0';
    return s;
}

bool dns01_name_in_zone(const char *name, const char *zone)
{
    char *n = dns01_name_fqdn(name);
    char *z = dns01_name_fqdn(zone);
    size_t nl = strlen(n), zl = strlen(z);
    bool in;

    if (strcmp(z, ".") == 0)
        in = true;
    else if (nl == zl)
        in = strcmp(n, z) == 0;
    else
        in = nl > zl && n[nl - zl - 1] == '.' && strcmp(n + nl - zl, z) == 0;
    free(n);
    free(z);
    return in;
}

/* ---- TSIG keys ------------------------------------------------------------ */

void dns01_key_fini(struct dns01_key *k)
{
    if (k == NULL)
        return;
    free(k->name);
    if (k->secret != NULL)
        explicit_bzero(k->secret, strlen(k->secret));
    free(k->secret);
    free(k->algorithm);
    memset(k, 0, sizeof(*k));
}

/* "hmac-sha256" or "HMAC-SHA256." -> "hmac-sha256."; NULL if unsupported. */
static const char *alg_norm(const char *a, size_t n)
{
    static const char *const algs[] = {"hmac-sha256.", "hmac-sha384.", "hmac-sha512."};

    if (n > 0 && a[n - 1] == '.')
        n--;
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (n == strlen(algs[i]) - 1 && strncasecmp(a, algs[i], n) == 0)
            return algs[i];
    return NULL;
}

static bool names_equal(const char *a, size_t an, const char *b, size_t bn)
{
    if (an > 0 && a[an - 1] == '.')
        an--;
    if (bn > 0 && b[bn - 1] == '.')
        bn--;
    return an == bn && strncasecmp(a, b, an) == 0;
}

/* Checks that s[0..n) is base64 of 1..512 bytes; returns it without
 * whitespace (owned) or NULL. */
static char *secret_norm(const char *s, size_t n)
{
    uint8_t *raw = NULL;
    size_t rawlen = 0;
    char *out;
    size_t j = 0;

    if (b64_decode(s, n, &raw, &rawlen) < 0)
        return NULL;
    explicit_bzero(raw, rawlen);
    free(raw);
    if (rawlen == 0 || rawlen > 512)
        return NULL;
    out = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i]))
            out[j++] = s[i];
    out[j] = '\0';
    return out;
}

/* A tokenizer for named.conf syntax: words, "strings", { } ; and comments. */
enum tok_kind { TOK_END, TOK_WORD, TOK_STRING, TOK_PUNCT, TOK_BAD };

struct tok {
    enum tok_kind kind;
    const char *p; /* into the input (the inside of a string) */
    size_t n;
    unsigned line;
};

struct lexer {
    const char *s;
    size_t len, pos;
    unsigned line;
};

static struct tok lex_next(struct lexer *lx)
{
    struct tok t = {TOK_END, NULL, 0, 0};

    for (;;) {
        while (lx->pos < lx->len && isspace((unsigned char)lx->s[lx->pos])) {
            if (lx->s[lx->pos] == '\n')
                lx->line++;
            lx->pos++;
        }
        if (lx->pos >= lx->len)
            break;
        char c = lx->s[lx->pos];
        bool slash2 = c == '/' && lx->pos + 1 < lx->len && lx->s[lx->pos + 1] == '/';
        if (c == '#' || slash2) {
            while (lx->pos < lx->len && lx->s[lx->pos] != '\n')
                lx->pos++;
            continue;
        }
        if (c == '/' && lx->pos + 1 < lx->len && lx->s[lx->pos + 1] == '*') {
            size_t i = lx->pos + 2;
            while (i + 1 < lx->len && !(lx->s[i] == '*' && lx->s[i + 1] == '/')) {
                if (lx->s[i] == '\n')
                    lx->line++;
                i++;
            }
            if (i + 1 >= lx->len) {
                t.kind = TOK_BAD;
                t.line = lx->line;
                lx->pos = lx->len;
                return t;
            }
            lx->pos = i + 2;
            continue;
        }
        break;
    }
    t.line = lx->line;
    if (lx->pos >= lx->len)
        return t;
    char c = lx->s[lx->pos];
    if (c == '{' || c == '}' || c == ';') {
        t.kind = TOK_PUNCT;
        t.p = lx->s + lx->pos++;
        t.n = 1;
        return t;
    }
    if (c == '"') {
        size_t i = lx->pos + 1;
        while (i < lx->len && lx->s[i] != '"' && lx->s[i] != '\n' && lx->s[i] != '\\')
            i++;
        if (i >= lx->len || lx->s[i] != '"') {
            t.kind = TOK_BAD; /* unterminated, or escapes (never needed in a key file) */
            lx->pos = lx->len;
            return t;
        }
        t.kind = TOK_STRING;
        t.p = lx->s + lx->pos + 1;
        t.n = i - lx->pos - 1;
        lx->pos = i + 1;
        return t;
    }
    size_t i = lx->pos;
    while (i < lx->len && !isspace((unsigned char)lx->s[i]) && lx->s[i] != '{' && lx->s[i] != '}' &&
           lx->s[i] != ';' && lx->s[i] != '"' && lx->s[i] != '#')
        i++;
    for (size_t k = lx->pos; k < i; k++) {
        unsigned char b = (unsigned char)lx->s[k];
        if (b < 0x21 || b > 0x7e) {
            t.kind = TOK_BAD;
            lx->pos = lx->len;
            return t;
        }
    }
    t.kind = TOK_WORD;
    t.p = lx->s + lx->pos;
    t.n = i - lx->pos;
    lx->pos = i;
    return t;
}

static bool tok_is(const struct tok *t, const char *w)
{
    return (t->kind == TOK_WORD || t->kind == TOK_PUNCT) && t->n == strlen(w) &&
           strncasecmp(t->p, w, t->n) == 0;
}

static int bind_fail(char **why, const struct tok *t, const char *what)
{
    *why = xasprintf("line %u: %s", t->line, what);
    return ERR_PARSE;
}

/* BIND: key NAME { algorithm ALG; secret "B64"; }; ... */
static int parse_bind(const char *s, size_t len, const char *name, struct dns01_key *out,
                      char **why)
{
    struct lexer lx = {s, len, 0, 1};
    struct dns01_key found = {NULL, NULL, NULL};
    char *first = NULL; /* name of the first key seen, for the message */
    int rc = 0;

    for (;;) {
        struct tok t = lex_next(&lx);
        if (t.kind == TOK_END)
            break;
        if (!tok_is(&t, "key")) {
            rc = bind_fail(why, &t, "expected 'key'");
            goto out;
        }
        struct tok nm = lex_next(&lx);
        if (nm.kind != TOK_STRING && nm.kind != TOK_WORD) {
            rc = bind_fail(why, &nm, "expected a key name after 'key'");
            goto out;
        }
        if (nm.n == 0 || nm.n > 253) {
            rc = bind_fail(why, &nm, "key name must be 1..253 characters");
            goto out;
        }
        for (size_t i = 0; i < nm.n; i++) {
            char c = nm.p[i];
            if (!isalnum((unsigned char)c) && c != '-' && c != '_' && c != '.') {
                rc =
                    bind_fail(why, &nm, "key name may hold only letters, digits, '-', '_' and '.'");
                goto out;
            }
        }
        t = lex_next(&lx);
        if (!tok_is(&t, "{")) {
            rc = bind_fail(why, &t, "expected '{' after the key name");
            goto out;
        }
        const char *alg = NULL;
        struct tok secret = {TOK_END, NULL, 0, 0};
        for (;;) {
            t = lex_next(&lx);
            if (tok_is(&t, "}"))
                break;
            if (tok_is(&t, "algorithm")) {
                struct tok a = lex_next(&lx);
                if (a.kind != TOK_WORD && a.kind != TOK_STRING) {
                    rc = bind_fail(why, &a, "expected an algorithm name");
                    goto out;
                }
                alg = alg_norm(a.p, a.n);
                if (alg == NULL) {
                    rc = bind_fail(why, &a,
                                   "algorithm not supported (use hmac-sha256, hmac-sha384 or "
                                   "hmac-sha512)");
                    goto out;
                }
            } else if (tok_is(&t, "secret")) {
                secret = lex_next(&lx);
                if (secret.kind != TOK_STRING) {
                    rc = bind_fail(why, &secret, "expected a quoted secret");
                    goto out;
                }
            } else {
                rc = bind_fail(why, &t,
                               t.kind == TOK_END ? "missing '}'"
                                                 : "expected 'algorithm', 'secret' or '}'");
                goto out;
            }
            t = lex_next(&lx);
            if (!tok_is(&t, ";")) {
                rc = bind_fail(why, &t, "expected ';'");
                goto out;
            }
        }
        t = lex_next(&lx);
        if (!tok_is(&t, ";")) {
            rc = bind_fail(why, &t, "expected ';' after '}'");
            goto out;
        }
        if (alg == NULL || secret.kind != TOK_STRING) {
            rc = bind_fail(why, &t, alg == NULL ? "key has no algorithm" : "key has no secret");
            goto out;
        }
        if (first == NULL)
            first = xstrndup(nm.p, nm.n);
        if (found.name == NULL && (name == NULL || names_equal(nm.p, nm.n, name, strlen(name)))) {
            char *sec = secret_norm(secret.p, secret.n);
            if (sec == NULL) {
                rc = bind_fail(why, &secret, "secret is not base64 of 1..512 bytes");
                goto out;
            }
            char *raw = xstrndup(nm.p, nm.n);
            found.name = dns01_name_fqdn(raw);
            free(raw);
            found.algorithm = xstrdup(alg);
            found.secret = sec;
        }
    }
    if (first == NULL) {
        *why = xstrdup("no key in the file");
        rc = ERR_PARSE;
    } else if (found.name == NULL) {
        *why = xasprintf("no key named '%s' in the file (it holds '%s')", name, first);
        rc = -EINVAL;
    }
out:
    free(first);
    if (rc == 0)
        *out = found;
    else
        dns01_key_fini(&found);
    return rc;
}

int dns01_key_parse(const uint8_t *data, size_t len, const char *name, const char *algorithm,
                    struct dns01_key *out, char **why)
{
    const char *s = (const char *)data;
    struct lexer lx = {s, len, 0, 1};
    struct tok first;

    *why = NULL;
    if (memchr(data, '\0', len) != NULL) {
        *why = xstrdup("file contains a NUL byte");
        return ERR_PARSE;
    }
    first = lex_next(&lx);
    if (tok_is(&first, "key"))
        return parse_bind(s, len, name, out, why);

    /* One line of base64. */
    const char *alg = alg_norm(algorithm != NULL ? algorithm : "hmac-sha256",
                               strlen(algorithm != NULL ? algorithm : "hmac-sha256"));
    if (alg == NULL) {
        *why = xstrdup("algorithm not supported (use hmac-sha256, hmac-sha384 or hmac-sha512)");
        return -EINVAL;
    }
    if (name == NULL || name[0] == '\0' || strlen(name) > 253) {
        *why = xstrdup("a key name is needed");
        return -EINVAL;
    }
    size_t b = 0, e = len;
    while (b < e && isspace((unsigned char)s[b]))
        b++;
    while (e > b && isspace((unsigned char)s[e - 1]))
        e--;
    for (size_t i = b; i < e; i++) {
        if (s[i] == '\n') {
            *why = xstrdup("expected the base64 secret on one line, or a BIND key file");
            return ERR_PARSE;
        }
    }
    char *sec = secret_norm(s + b, e - b);
    if (sec == NULL) {
        *why = xstrdup("not base64 of 1..512 bytes, and not a BIND key file");
        return ERR_PARSE;
    }
    out->name = dns01_name_fqdn(name);
    out->algorithm = xstrdup(alg);
    out->secret = sec;
    return 0;
}

/* Reads and parses t->secret_file into *out. On failure returns < 0 and
 * *why (owned) says why, naming the file. */
static int key_read(const struct cfg_tsig *t, struct dns01_key *out, char **why)
{
    struct buf b = BUF_INIT(KEY_FILE_MAX);
    char *reason = NULL;
    int rc;

    *why = NULL;
    if (t->secret_file == NULL) {
        *why = xstrdup("tsig: no secret_file configured");
        return -EINVAL;
    }
    rc = buf_read_file(&b, t->secret_file);
    if (rc < 0) {
        *why = xasprintf("%s: read: %s", t->secret_file, err_str(rc));
        goto out;
    }
    rc = dns01_key_parse((const uint8_t *)b.data, b.len, t->name, t->algorithm, out, &reason);
    if (rc < 0)
        *why = xasprintf("%s: TSIG key: %s", t->secret_file, reason);
out:
    free(reason);
    if (b.data != NULL)
        explicit_bzero(b.data, b.len);
    buf_fini(&b);
    return rc;
}

int dns01_key_load(const struct cfg_tsig *t, struct dns01_key *out)
{
    char *why = NULL;
    int rc = key_read(t, out, &why);

    if (rc < 0) {
        log_error(LOG_CHAL, "%s", why);
        free(why);
        return rc;
    }
    if (t->algorithm != NULL && alg_norm(t->algorithm, strlen(t->algorithm)) != NULL &&
        strcmp(alg_norm(t->algorithm, strlen(t->algorithm)), out->algorithm) != 0)
        log_warn(LOG_CHAL, "%s: key '%s' uses %.*s (the key file wins over tsig.algorithm)",
                 t->secret_file, out->name, (int)strlen(out->algorithm) - 1, out->algorithm);
    return 0;
}

int chal_dns01_key_check(const struct cfg_tsig *t, char **why)
{
    struct dns01_key k = {NULL, NULL, NULL};
    int rc = key_read(t, &k, why);

    dns01_key_fini(&k);
    return rc;
}

/* ---- UPDATE messages ------------------------------------------------------ */

static int tsig_sign(const struct dns01_key *key, const uint8_t *msg, size_t len, int64_t now,
                     uint8_t **out, size_t *out_len, uint8_t *mac, unsigned *mac_len);
static bool tsig_verify(const struct dns01_key *key, const uint8_t *w, size_t len,
                        const struct dns01_msg *req);

void dns01_msg_fini(struct dns01_msg *m)
{
    if (m == NULL)
        return;
    free(m->wire);
    free(m->mac);
    memset(m, 0, sizeof(*m));
}

bool dns01_wire_header(const uint8_t *wire, size_t len, uint16_t *id, bool *tc, bool *qr)
{
    if (len < 12)
        return false;
    *id = (uint16_t)(wire[0] << 8 | wire[1]);
    *tc = (wire[2] & 0x02) != 0;
    *qr = (wire[2] & 0x80) != 0;
    return true;
}

static ldns_rdf *dname(const char *s)
{
    char *f = dns01_name_fqdn(s);
    ldns_rdf *r = ldns_dname_new_frm_str(f);

    free(f);
    return r;
}

int dns01_update_build(const char *zone, const char *fqdn, const char *value, bool add,
                       uint32_t ttl, uint16_t id, const struct dns01_key *key, int64_t now,
                       struct dns01_msg *out, char **why)
{
    ldns_rdf *zone_rdf = NULL, *owner = NULL, *txt = NULL;
    ldns_rr *rr = NULL;
    ldns_rr_list *up = NULL;
    ldns_pkt *pkt = NULL;
    uint8_t *wire = NULL;
    size_t wlen = 0;
    size_t vlen = strlen(value);
    ldns_status st;
    int rc = -EINVAL;

    *why = NULL;
    if (vlen == 0 || vlen > DNS01_TXT_MAX) {
        *why = xasprintf("TXT value must be 1..%d bytes", DNS01_TXT_MAX);
        goto out;
    }
    if (!dns01_name_in_zone(fqdn, zone)) {
        *why = xasprintf("%s is not inside zone %s", fqdn, zone);
        goto out;
    }
    zone_rdf = dname(zone);
    owner = dname(fqdn);
    if (zone_rdf == NULL || owner == NULL) {
        *why = xasprintf("bad name: %s", zone_rdf == NULL ? zone : fqdn);
        goto out;
    }
    rr = ldns_rr_new();
    if (rr == NULL)
        abort(); /* ldns allocation failure: abort like xmalloc */
    ldns_rr_set_owner(rr, owner);
    owner = NULL;
    ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
    /* RFC 2136 §2.5.1 add: class = zone class, TTL; §2.5.4 delete one RR:
     * class NONE, TTL 0, the exact RDATA. */
    ldns_rr_set_class(rr, add ? LDNS_RR_CLASS_IN : LDNS_RR_CLASS_NONE);
    ldns_rr_set_ttl(rr, add ? ttl : 0);
    /* RFC 1035 §3.3.14: one or more character-strings of at most 255
     * octets; a longer value (a dns-persist-01 record, draft-ietf-acme-dns-
     * persist-02 §9.1) is split, and resolvers join the strings again */
    for (size_t off = 0; off < vlen; off += 255) {
        size_t n = vlen - off < 255 ? vlen - off : 255;
        uint8_t str[256];
        str[0] = (uint8_t)n;
        memcpy(str + 1, value + off, n);
        txt = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, n + 1, str);
        if (txt == NULL)
            abort();
        ldns_rr_push_rdf(rr, txt);
        txt = NULL;
    }
    up = ldns_rr_list_new();
    ldns_rr_list_push_rr(up, rr);
    rr = NULL;
    pkt = ldns_update_pkt_new(zone_rdf, LDNS_RR_CLASS_IN, NULL, up, NULL);
    zone_rdf = NULL; /* the packet owns it */
    if (pkt == NULL)
        abort();
    ldns_pkt_set_id(pkt, id);
    st = ldns_pkt2wire(&wire, pkt, &wlen);
    if (st != LDNS_STATUS_OK) {
        *why = xasprintf("encode: %s", ldns_get_errorstr_by_id(st));
        rc = ERR_PARSE;
        goto out;
    }
    memset(out, 0, sizeof(*out));
    out->id = id;
    if (key != NULL) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned mac_len = 0;
        rc = tsig_sign(key, wire, wlen, now, &out->wire, &out->len, mac, &mac_len);
        if (rc < 0) {
            *why = xasprintf("TSIG sign (%.*s): %s", (int)strlen(key->algorithm) - 1,
                             key->algorithm, err_str(rc));
            rc = ERR_CRYPTO;
            goto out;
        }
        out->mac = xmemdup(mac, mac_len);
        out->mac_len = mac_len;
    } else {
        out->wire = xmemdup(wire, wlen);
        out->len = wlen;
    }
    rc = 0;
out:
    free(wire);
    ldns_pkt_free(pkt);
    ldns_rr_list_deep_free(up);
    ldns_rr_free(rr);
    ldns_rdf_deep_free(txt);
    ldns_rdf_deep_free(owner);
    ldns_rdf_deep_free(zone_rdf);
    return rc;
}

static const char *rcode_name(unsigned rc)
{
    static const char *const names[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                        "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
                                        "NXRRSET", "NOTAUTH", "NOTZONE"};
    return rc < sizeof(names) / sizeof(names[0]) ? names[rc] : "RCODE";
}

/* A name rdf as lower-case text with the trailing dot (owned), or NULL. */
static char *rdf_name_str(const ldns_rdf *r)
{
    char *t, *n;

    if (r == NULL || ldns_rdf_get_type(r) != LDNS_RDF_TYPE_DNAME)
        return NULL;
    t = ldns_rdf2str(r);
    if (t == NULL)
        return NULL;
    n = dns01_name_fqdn(t);
    free(t);
    return n;
}

/* Reads an INT16 / TSIGTIME rdf as an integer; -1 if missing or malformed. */
static int64_t rdf_uint(const ldns_rr *rr, size_t i, size_t size)
{
    const ldns_rdf *r = ldns_rr_rdf(rr, i);
    int64_t v = 0;

    if (r == NULL || ldns_rdf_size(r) != size)
        return -1;
    for (size_t k = 0; k < size; k++)
        v = v << 8 | ldns_rdf_data(r)[k];
    return v;
}

/* What the server said, and what to do about it. */
static char *explain(unsigned rcode, int64_t tsig_err, const struct dns01_key *key,
                     const char *zone, int64_t skew)
{
    const char *kn = key != NULL ? key->name : "(none)";
    int al = key != NULL ? (int)strlen(key->algorithm) - 1 : 1; /* without the dot */
    const char *alg = key != NULL ? key->algorithm : "?";

    if (tsig_err == TSIG_BADSIG)
        return xasprintf("NOTAUTH/BADSIG: the server knows key '%s' but the signature does not "
                         "verify: the secret (or algorithm %.*s) differs from the server's",
                         kn, al, alg);
    if (tsig_err == TSIG_BADKEY)
        return xasprintf("NOTAUTH/BADKEY: the server does not know key '%s' (algorithm %.*s): "
                         "check the key name and algorithm against the server's key list",
                         kn, al, alg);
    if (tsig_err == TSIG_BADTIME)
        return xasprintf("NOTAUTH/BADTIME: our clock and the server's differ by more than %d s: "
                         "fix the time (NTP) on one of them",
                         TSIG_FUDGE);
    if (tsig_err > 0)
        return xasprintf("%s with TSIG error %lld", rcode_name(rcode), (long long)tsig_err);
    switch (rcode) {
    case LDNS_RCODE_REFUSED:
        return xasprintf("REFUSED: the server refuses updates to zone '%s' with key '%s': check "
                         "its update ACL (allowed key, record type TXT, names) and that it is "
                         "the primary for the zone",
                         zone, kn);
    case LDNS_RCODE_NOTAUTH:
        return xasprintf("NOTAUTH: the server does not accept updates signed with key '%s' for "
                         "zone '%s': check the key name and the server's ACL, and that it is "
                         "authoritative for the zone",
                         kn, zone);
    case LDNS_RCODE_NOTZONE:
        return xasprintf("NOTZONE: the name is not inside zone '%s': check dns zone", zone);
    case LDNS_RCODE_SERVFAIL:
        return xasprintf("SERVFAIL: the server failed to apply the update to zone '%s': see its "
                         "log",
                         zone);
    case LDNS_RCODE_NOTIMPL:
        return xstrdup("NOTIMP: the server does not implement DNS UPDATE");
    case LDNS_RCODE_FORMERR:
        return xstrdup("FORMERR: the server could not parse the update");
    default:
        break;
    }
    (void)skew;
    return xasprintf("%s: the update was not applied", rcode_name(rcode));
}

/* Skips a possibly compressed name at *at; false if it runs off the end. */
static bool skip_name(const uint8_t *w, size_t len, size_t *at)
{
    size_t i = *at;

    for (;;) {
        if (i >= len)
            return false;
        uint8_t l = w[i];
        if ((l & 0xc0) == 0xc0) {
            if (i + 2 > len)
                return false;
            *at = i + 2;
            return true;
        }
        if ((l & 0xc0) != 0)
            return false;
        i += 1u + l;
        if (l == 0) {
            *at = i;
            return true;
        }
    }
}

/* ---- TSIG (RFC 8945) ------------------------------------------------------ */

static const EVP_MD *tsig_md(const char *alg)
{
    if (strcmp(alg, "hmac-sha256.") == 0)
        return EVP_sha256();
    if (strcmp(alg, "hmac-sha384.") == 0)
        return EVP_sha384();
    if (strcmp(alg, "hmac-sha512.") == 0)
        return EVP_sha512();
    return NULL;
}

/* Appends the canonical wire form (lower case, uncompressed) of a name
 * that ends in a dot. false if a label is empty or too long. */
static bool put_name(struct buf *b, const char *fqdn)
{
    const char *s = fqdn;

    while (*s != '\0' && strcmp(s, ".") != 0) {
        const char *dot = strchr(s, '.');
        size_t l = dot != NULL ? (size_t)(dot - s) : strlen(s);
        uint8_t lab[64];
        if (l == 0 || l > 63)
            return false;
        lab[0] = (uint8_t)l;
        for (size_t i = 0; i < l; i++)
            lab[1 + i] = (uint8_t)tolower((unsigned char)s[i]);
        (void)buf_append(b, lab, l + 1);
        s += l + (dot != NULL ? 1 : 0);
    }
    (void)buf_append(b, "", 1);
    return true;
}

static void put_u16(struct buf *b, unsigned v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};

    (void)buf_append(b, x, 2);
}

static void put_u48(struct buf *b, int64_t v)
{
    uint8_t x[6];

    for (int i = 5; i >= 0; i--) {
        x[i] = (uint8_t)v;
        v >>= 8;
    }
    (void)buf_append(b, x, 6);
}

/* The TSIG fields a MAC covers after the message, in the order of RFC 8945
 * §4.3.3; also the tail of the TSIG RDATA would differ, so kept apart. */
struct tsig_vars {
    int64_t time_signed;
    unsigned fudge, error;
    const uint8_t *other;
    size_t other_len;
};

/* RFC 8945 §4.3: HMAC over [prior MAC with its length (replies)] + the
 * message without its TSIG record + the TSIG variables. mac holds
 * EVP_MAX_MD_SIZE bytes. ERR_CRYPTO when the secret does not decode or
 * HMAC fails. */
static int tsig_mac(const struct dns01_key *key, const uint8_t *prior, size_t prior_len,
                    bool with_prior, const uint8_t *msg, size_t msg_len, const struct tsig_vars *v,
                    uint8_t *mac, unsigned *mac_len)
{
    const EVP_MD *md = tsig_md(key->algorithm);
    struct buf b = BUF_INIT(64 * 1024 + 1024);
    uint8_t *secret = NULL;
    size_t slen = 0;
    int rc = ERR_CRYPTO;

    if (md == NULL || b64_decode(key->secret, strlen(key->secret), &secret, &slen) < 0)
        goto out;
    if (with_prior) {
        put_u16(&b, (unsigned)prior_len);
        if (prior_len > 0)
            (void)buf_append(&b, prior, prior_len);
    }
    (void)buf_append(&b, msg, msg_len);
    if (!put_name(&b, key->name))
        goto out;
    put_u16(&b, LDNS_RR_CLASS_ANY);
    (void)buf_append(&b, "\0\0\0\0", 4); /* TTL */
    if (!put_name(&b, key->algorithm))
        goto out;
    put_u48(&b, v->time_signed);
    put_u16(&b, v->fudge);
    put_u16(&b, v->error);
    put_u16(&b, (unsigned)v->other_len);
    if (v->other_len > 0)
        (void)buf_append(&b, v->other, v->other_len);
    if (HMAC(md, secret, (int)slen, (const uint8_t *)b.data, b.len, mac, mac_len) == NULL)
        goto out;
    rc = 0;
out:
    if (secret != NULL)
        OPENSSL_cleanse(secret, slen);
    free(secret);
    buf_fini(&b);
    return rc;
}

/* Signs an unsigned message: appends the TSIG record (RFC 8945 §4.2) and
 * counts it in ARCOUNT. *out owned; the MAC goes to mac/mac_len. */
static int tsig_sign(const struct dns01_key *key, const uint8_t *msg, size_t len, int64_t now,
                     uint8_t **out, size_t *out_len, uint8_t *mac, unsigned *mac_len)
{
    struct tsig_vars v = {.time_signed = now, .fudge = TSIG_FUDGE};
    struct buf b = BUF_INIT(64 * 1024 + 1024);
    struct buf rd = BUF_INIT(1024);
    size_t n;
    int rc;

    if (len < 12)
        return -EINVAL;
    rc = tsig_mac(key, NULL, 0, false, msg, len, &v, mac, mac_len);
    if (rc < 0)
        goto out;
    (void)buf_append(&b, msg, len);
    unsigned ar = (unsigned)(msg[10] << 8 | msg[11]) + 1;
    ((uint8_t *)b.data)[10] = (uint8_t)(ar >> 8);
    ((uint8_t *)b.data)[11] = (uint8_t)ar;
    rc = -EINVAL;
    if (!put_name(&b, key->name) || !put_name(&rd, key->algorithm))
        goto out;
    put_u16(&b, LDNS_RR_TYPE_TSIG);
    put_u16(&b, LDNS_RR_CLASS_ANY);
    (void)buf_append(&b, "\0\0\0\0", 4);
    put_u48(&rd, v.time_signed);
    put_u16(&rd, v.fudge);
    put_u16(&rd, *mac_len);
    (void)buf_append(&rd, mac, *mac_len);
    put_u16(&rd, (unsigned)(msg[0] << 8 | msg[1])); /* original ID */
    put_u16(&rd, 0);                                /* error */
    put_u16(&rd, 0);                                /* other len */
    put_u16(&b, (unsigned)rd.len);
    (void)buf_append(&b, rd.data, rd.len);
    *out = (uint8_t *)buf_steal(&b, &n);
    *out_len = n;
    rc = 0;
out:
    buf_fini(&b);
    buf_fini(&rd);
    return rc;
}

/* Verifies the TSIG record that ends a reply (dns01_wire_sane checked the
 * layout) against req's MAC (RFC 8945 §5.3 and §4.3.1). true if it
 * verifies; a MAC of another length than the full one (truncation,
 * §5.2.2.1) does not. */
static bool tsig_verify(const struct dns01_key *key, const uint8_t *w, size_t len,
                        const struct dns01_msg *req)
{
    size_t at = 12, start = 0;
    uint8_t *msg = NULL;
    bool good = false;

    unsigned qd = (unsigned)(w[4] << 8 | w[5]);
    unsigned rrs = (unsigned)(w[6] << 8 | w[7]) + (unsigned)(w[8] << 8 | w[9]) +
                   (unsigned)(w[10] << 8 | w[11]);
    unsigned ar = (unsigned)(w[10] << 8 | w[11]);
    if (rrs == 0 || ar == 0)
        return false;
    for (unsigned i = 0; i < qd; i++) {
        if (!skip_name(w, len, &at) || at + 4 > len)
            return false;
        at += 4;
    }
    for (unsigned i = 0; i < rrs; i++) {
        start = at;
        if (!skip_name(w, len, &at) || at + 10 > len)
            return false;
        size_t rdlen = (size_t)(w[at + 8] << 8 | w[at + 9]);
        at += 10 + rdlen;
        if (at > len)
            return false;
    }
    /* The RDATA of the last record: algorithm name, then the fixed fields. */
    size_t p = start;
    if (!skip_name(w, len, &p) || p + 10 > len || (w[p] << 8 | w[p + 1]) != LDNS_RR_TYPE_TSIG)
        return false;
    p += 10;
    if (!skip_name(w, len, &p) || p + 10 > at)
        return false;
    struct tsig_vars v = {0};
    for (int i = 0; i < 6; i++)
        v.time_signed = v.time_signed << 8 | w[p + (size_t)i];
    v.fudge = (unsigned)(w[p + 6] << 8 | w[p + 7]);
    size_t mlen = (size_t)(w[p + 8] << 8 | w[p + 9]);
    p += 10;
    if (p + mlen + 6 > at)
        return false;
    const uint8_t *their = w + p;
    p += mlen;
    unsigned orig_id = (unsigned)(w[p] << 8 | w[p + 1]);
    v.error = (unsigned)(w[p + 2] << 8 | w[p + 3]);
    v.other_len = (size_t)(w[p + 4] << 8 | w[p + 5]);
    p += 6;
    if (p + v.other_len != at)
        return false;
    v.other = w + p;
    /* The message as it was before the TSIG record was added. */
    msg = xmemdup(w, start);
    msg[0] = (uint8_t)(orig_id >> 8);
    msg[1] = (uint8_t)orig_id;
    ar--;
    msg[10] = (uint8_t)(ar >> 8);
    msg[11] = (uint8_t)ar;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    if (tsig_mac(key, req->mac, req->mac_len, true, msg, start, &v, mac, &mac_len) == 0 &&
        mac_len == mlen && CRYPTO_memcmp(mac, their, mlen) == 0)
        good = true;
    OPENSSL_cleanse(mac, sizeof(mac));
    free(msg);
    return good;
}

/* Walks the records of a message: it must be well-formed and hold at most
 * one TSIG record, as the last one (RFC 8945 §5.1). ldns 1.8.3 leaks every
 * TSIG record but the last, so such input never reaches it. */
bool dns01_wire_sane(const uint8_t *w, size_t len)
{
    size_t at = 12, n_tsig = 0;

    if (len < 12)
        return false;
    unsigned qd = (unsigned)(w[4] << 8 | w[5]);
    unsigned rrs = (unsigned)(w[6] << 8 | w[7]) + (unsigned)(w[8] << 8 | w[9]) +
                   (unsigned)(w[10] << 8 | w[11]);
    for (unsigned i = 0; i < qd; i++) {
        if (!skip_name(w, len, &at) || at + 4 > len)
            return false;
        at += 4;
    }
    for (unsigned i = 0; i < rrs; i++) {
        if (!skip_name(w, len, &at) || at + 10 > len)
            return false;
        unsigned type = (unsigned)(w[at] << 8 | w[at + 1]);
        size_t rdlen = (size_t)(w[at + 8] << 8 | w[at + 9]);
        at += 10;
        if (at + rdlen > len)
            return false;
        at += rdlen;
        if (type == LDNS_RR_TYPE_TSIG && (++n_tsig > 1 || i + 1 != rrs))
            return false;
    }
    return true;
}

int dns01_reply_check(const uint8_t *wire, size_t len, const struct dns01_msg *req,
                      const struct dns01_key *key, const char *zone, int64_t now, char **why)
{
    ldns_pkt *pkt = NULL;
    int rc = ERR_PARSE;

    *why = NULL;
    if (!dns01_wire_sane(wire, len) || ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK ||
        pkt == NULL) {
        *why = xstrdup("reply is not a DNS message");
        goto out;
    }
    if (!ldns_pkt_qr(pkt) || ldns_pkt_id(pkt) != req->id ||
        ldns_pkt_get_opcode(pkt) != LDNS_PACKET_UPDATE) {
        *why = xasprintf("reply does not answer our UPDATE (id %u, qr %d, opcode %d)",
                         (unsigned)ldns_pkt_id(pkt), (int)ldns_pkt_qr(pkt),
                         (int)ldns_pkt_get_opcode(pkt));
        goto out;
    }
    unsigned rcode = ldns_pkt_get_rcode(pkt);
    const ldns_rr *tsig = ldns_pkt_tsig(pkt);
    int64_t tsig_err = 0, skew = 0;
    rc = ERR_DNS;
    if (tsig != NULL) {
        tsig_err = rdf_uint(tsig, 5, 2);
        int64_t signed_at = rdf_uint(tsig, 1, 6);
        int64_t fudge = rdf_uint(tsig, 2, 2);
        if (tsig_err < 0 || signed_at < 0 || fudge < 0) {
            *why = xstrdup("reply has a malformed TSIG record");
            goto out;
        }
        skew = now - signed_at;
        if (tsig_err != 0 || rcode != LDNS_RCODE_NOERROR) {
            /* Error replies to a bad signature are unsigned (RFC 8945 §5.3.2). */
            *why = explain(rcode, tsig_err, key, zone, skew);
            goto out;
        }
        if (key == NULL) {
            *why = xstrdup("reply is signed but our request was not");
            goto out;
        }
        /* RFC 8945 §5.3: the reply uses the request's key and algorithm. */
        char *rk = rdf_name_str(ldns_rr_owner(tsig));
        char *ra = rdf_name_str(ldns_rr_rdf(tsig, 0));
        bool same = rk != NULL && ra != NULL && strcmp(rk, key->name) == 0 &&
                    strcmp(ra, key->algorithm) == 0;
        free(rk);
        free(ra);
        if (!same) {
            *why = xasprintf("the server's reply is signed with another key or algorithm than "
                             "'%s' (%.*s)",
                             key->name, (int)strlen(key->algorithm) - 1, key->algorithm);
            goto out;
        }
        bool good = tsig_verify(key, wire, len, req);
        if (!good) {
            *why = xasprintf("the server's reply does not verify with key '%s': the update may "
                             "have been applied, but the reply cannot be trusted",
                             key->name);
            goto out;
        }
        if (skew > fudge || -skew > fudge) {
            *why = xasprintf("BADTIME: the reply was signed %lld s from our clock (fudge %lld s): "
                             "fix the time (NTP) on one of the hosts",
                             (long long)skew, (long long)fudge);
            goto out;
        }
        rc = 0;
        goto out;
    }
    if (rcode != LDNS_RCODE_NOERROR) {
        *why = explain(rcode, 0, key, zone, 0);
        goto out;
    }
    if (key != NULL) {
        /* RFC 8945 §5.3: a reply to a signed request must be signed. */
        *why = xstrdup("the server's reply is not signed (TSIG missing)");
        goto out;
    }
    rc = 0;
out:
    ldns_pkt_free(pkt);
    return rc;
}
