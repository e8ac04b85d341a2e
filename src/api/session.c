/* Dashboard sessions: a login with a token (POST /v1/session with
 * Authorization: Bearer) opens one; its id travels in a cookie browsers keep
 * to this origin (__Host-, Secure, HttpOnly, SameSite=Strict), and every
 * change a cookie authenticates must also carry the session's CSRF token and
 * come from this origin. Pure: api.c reads the fields and answers. Sessions
 * live in memory only: a restart logs everybody out. */
#include "api/dashboard_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "util/b64.h"
#include "util/xalloc.h"

static void random_id(char out[API_SESSION_ID_LEN + 1])
{
    uint8_t raw[32];

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        abort(); /* no randomness: nothing safe to hand out */
    char *s = b64url_encode(raw, sizeof(raw));
    snprintf(out, API_SESSION_ID_LEN + 1, "%s", s);
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

static bool expired(const struct api_session *se, uint64_t now_ms)
{
    return now_ms - se->created_ms >= API_SESSION_LIFE_MS ||
           now_ms - se->used_ms >= API_SESSION_IDLE_MS;
}

struct api_session *api_session_new(struct api_sessions *s, const struct api_token *t,
                                    uint64_t now_ms)
{
    struct api_session *slot = NULL;

    for (size_t i = 0; i < API_SESSIONS_MAX; i++) {
        struct api_session *se = &s->v[i];
        if (se->id[0] != '\0' && expired(se, now_ms))
            api_session_drop(se);
        if (se->id[0] == '\0') {
            slot = se;
            break;
        }
        if (slot == NULL || se->used_ms < slot->used_ms)
            slot = se; /* the least recently used, if none is free */
    }
    api_session_drop(slot);
    random_id(slot->id);
    random_id(slot->csrf);
    snprintf(slot->token, sizeof(slot->token), "%s", t->name);
    memcpy(slot->token_hash, t->hash, sizeof(slot->token_hash));
    slot->created_ms = now_ms;
    slot->used_ms = now_ms;
    return slot;
}

/* Our cookie's value in a Cookie field ("a=1; __Host-certloop=ID; b=2",
 * RFC 6265 §5.4): true with *v, *vl borrowed. */
static bool cookie_value(const uint8_t *h, size_t len, const uint8_t **v, size_t *vl)
{
    static const char name[] = API_SESSION_COOKIE "=";
    size_t nl = sizeof(name) - 1, at = 0;

    while (at < len) {
        while (at < len && (h[at] == ' ' || h[at] == '\t'))
            at++;
        size_t e = at;
        while (e < len && h[e] != ';')
            e++;
        if (e - at > nl && memcmp(h + at, name, nl) == 0) {
            size_t end = e;
            while (end > at + nl && (h[end - 1] == ' ' || h[end - 1] == '\t'))
                end--;
            *v = h + at + nl;
            *vl = end - at - nl;
            return true;
        }
        at = e + 1;
    }
    return false;
}

struct api_session *api_session_find(struct api_sessions *s, const uint8_t *cookie, size_t len,
                                     uint64_t now_ms)
{
    const uint8_t *v;
    size_t vl;
    struct api_session *hit = NULL;

    if (cookie == NULL || !cookie_value(cookie, len, &v, &vl) || vl != API_SESSION_ID_LEN)
        return NULL;
    for (size_t i = 0; i < API_SESSIONS_MAX; i++) {
        struct api_session *se = &s->v[i];
        /* every slot, free ones too (their id is zeros): the time taken does
         * not say which one matched */
        if (CRYPTO_memcmp(se->id, v, API_SESSION_ID_LEN) == 0 && se->id[0] != '\0')
            hit = se;
    }
    if (hit == NULL)
        return NULL;
    if (expired(hit, now_ms)) {
        api_session_drop(hit);
        return NULL;
    }
    hit->used_ms = now_ms;
    return hit;
}

const struct api_token *api_session_token(const struct api_session *se,
                                          const struct api_tokens *tokens)
{
    for (size_t i = 0; i < tokens->n; i++) {
        const struct api_token *t = &tokens->v[i];
        if (strcmp(t->name, se->token) == 0 &&
            CRYPTO_memcmp(t->hash, se->token_hash, sizeof(t->hash)) == 0)
            return t;
    }
    return NULL;
}

void api_session_drop(struct api_session *se)
{
    if (se != NULL)
        OPENSSL_cleanse(se, sizeof(*se));
}

bool api_session_csrf_ok(const struct api_session *se, const uint8_t *csrf, size_t csrf_len,
                         const uint8_t *origin, size_t origin_len, const uint8_t *host,
                         size_t host_len, const uint8_t *fetch_site, size_t fetch_site_len,
                         const char **why)
{
    static const char https[] = "https://";
    size_t hl = sizeof(https) - 1;

    if (fetch_site != NULL &&
        ((fetch_site_len == 10 && strncasecmp((const char *)fetch_site, "cross-site", 10) == 0) ||
         (fetch_site_len == 9 && strncasecmp((const char *)fetch_site, "same-site", 9) == 0))) {
        *why = "a request from another site cannot change anything";
        return false;
    }
    if (origin != NULL &&
        (host == NULL || origin_len != hl + host_len || memcmp(origin, https, hl) != 0 ||
         strncasecmp((const char *)origin + hl, (const char *)host, host_len) != 0)) {
        *why = "the request's Origin is not this server";
        return false;
    }
    if (csrf == NULL || csrf_len != API_SESSION_ID_LEN ||
        CRYPTO_memcmp(csrf, se->csrf, API_SESSION_ID_LEN) != 0) {
        *why = "a change made with the session cookie needs the session's X-CSRF-Token";
        return false;
    }
    return true;
}

char *api_session_set_cookie(const struct api_session *se)
{
    if (se == NULL)
        return xasprintf("Set-Cookie: %s=; Path=/; Secure; HttpOnly; SameSite=Strict; "
                         "Max-Age=0\r\n",
                         API_SESSION_COOKIE);
    return xasprintf("Set-Cookie: %s=%s; Path=/; Secure; HttpOnly; SameSite=Strict; "
                     "Max-Age=%u\r\n",
                     API_SESSION_COOKIE, se->id, API_SESSION_LIFE_MS / 1000);
}
