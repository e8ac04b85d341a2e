/* The dashboard's static files: web/ is turned into a C array at build time
 * (cmake/embed.cmake -> web_assets.c), so the binary serves them without
 * reading anything at run time. This file finds them and names the headers
 * they are served with; the data they show comes from the /v1/ routes,
 * behind a token or a session (session.c). */
#include "api/dashboard_internal.h"

#include <string.h>

/* script and style from this origin only (no inline code: the pages carry
 * none), connections only back to this origin (fetch, EventSource), no
 * plugins, no <base>, forms only here, never in a frame. */
const char api_asset_headers[] =
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'; frame-ancestors 'none'\r\n"
    "X-Frame-Options: DENY\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Cross-Origin-Opener-Policy: same-origin\r\n"
    "Cross-Origin-Resource-Policy: same-origin\r\n";

const struct api_asset *api_asset_find(const uint8_t *path, size_t len)
{
    for (size_t i = 0; i < api_web_assets_n; i++) {
        const struct api_asset *a = &api_web_assets[i];
        if (strlen(a->path) == len && memcmp(a->path, path, len) == 0)
            return a;
    }
    return NULL;
}
