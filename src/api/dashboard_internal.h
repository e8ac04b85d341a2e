/* Internals of the dashboard on the HTTPS API (src/api), included by
 * src/api and its unit tests only: the static files built into the binary
 * (dashboard.c) and the sessions a login with a token opens (session.c: a
 * cookie and a CSRF token bound to it). Pure: no libuv, times are passed
 * in. */
#ifndef CERTLOOP_API_DASHBOARD_INTERNAL_H
#define CERTLOOP_API_DASHBOARD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api_internal.h"

/* ---- static files ------------------------------------------------------ */

/* One file of web/, embedded at build time (web_assets.c, generated). */
struct api_asset {
    const char *path;  /* "/", "/app.js", ... */
    const char *ctype; /* its Content-Type */
    const unsigned char *data;
    size_t len;
};

/* The files, generated from web/ by cmake/embed.cmake: index.html is
 * served at "/", every other file at "/" and its name. */
extern const struct api_asset api_web_assets[];
extern const size_t api_web_assets_n;

/* The asset served at path[0..len) (the query already removed), or NULL. */
const struct api_asset *api_asset_find(const uint8_t *path, size_t len);

/* The header fields every dashboard file is served with (CRLF after each):
 * the Content-Security-Policy (no inline script or style, nothing from
 * another origin, no framing) and its companions. */
extern const char api_asset_headers[];

/* ---- sessions ------------------------------------------------------------ */

/* The cookie's name: the __Host- prefix makes browsers refuse it unless it
 * is Secure, has Path=/ and no Domain (RFC 6265bis §4.1.3.2). */
#define API_SESSION_COOKIE "__Host-certloop"
#define API_SESSIONS_MAX 256
#define API_SESSION_IDLE_MS (60u * 60 * 1000)      /* unused this long: gone */
#define API_SESSION_LIFE_MS (12u * 60 * 60 * 1000) /* gone this long after the login */
#define API_SESSION_ID_LEN 43                      /* base64url of 32 random bytes */

struct api_session {
    char id[API_SESSION_ID_LEN + 1];   /* "" = a free slot */
    char csrf[API_SESSION_ID_LEN + 1]; /* the X-CSRF-Token its changes must carry */
    char token[API_TOKEN_NAME_MAX + 1];
    uint8_t token_hash[32]; /* the token as it was at the login: a revoke or a new
                               secret under the same name ends the session */
    uint64_t created_ms, used_ms;
};

struct api_sessions {
    struct api_session v[API_SESSIONS_MAX];
};

/* A new session for token t (the oldest one goes when every slot is
 * taken). The returned slot is borrowed from s. */
struct api_session *api_session_new(struct api_sessions *s, const struct api_token *t,
                                    uint64_t now_ms);

/* The session whose id is the value of our cookie in a Cookie field
 * (cookie[0..len), borrowed), or NULL (no such cookie, unknown id,
 * expired: an expired one is freed). Every slot is compared with
 * CRYPTO_memcmp. Marks it used at now_ms. */
struct api_session *api_session_find(struct api_sessions *s, const uint8_t *cookie, size_t len,
                                     uint64_t now_ms);

/* The token the session was made with, if it is still in tokens with the
 * same secret; else NULL (the session is over). */
const struct api_token *api_session_token(const struct api_session *se,
                                          const struct api_tokens *tokens);

/* Forgets a session (logout). */
void api_session_drop(struct api_session *se);

/* Whether a cookie-authenticated request that changes something may go
 * on: csrf[0..csrf_len) (the X-CSRF-Token field, NULL if absent) must be
 * the session's token, an Origin field (NULL if absent) must be
 * "https://" followed by the Host field, and a Sec-Fetch-Site field must
 * not say "cross-site" or "same-site". False with *why a sentence. */
bool api_session_csrf_ok(const struct api_session *se, const uint8_t *csrf, size_t csrf_len,
                         const uint8_t *origin, size_t origin_len, const uint8_t *host,
                         size_t host_len, const uint8_t *fetch_site, size_t fetch_site_len,
                         const char **why);

/* The Set-Cookie field (with its CRLF) that hands out se (NULL: the one
 * that clears the cookie). Owned. */
char *api_session_set_cookie(const struct api_session *se);

#endif
