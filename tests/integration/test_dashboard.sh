#!/usr/bin/env bash
# The dashboard on the API listener (docs/API.md "Dashboard"), with curl:
# its files are served from the binary with a strict Content-Security-Policy
# and no token; a login with a token (POST /v1/session) sets a __Host-
# cookie that is Secure, HttpOnly and SameSite=Strict; the cookie reads
# like the token; a change made with the cookie is refused (403) without the
# session's X-CSRF-Token, from another Origin or from another site, and
# goes through with them; Bearer requests need none of it; logout and a
# revoked token end the session.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init dashboard
tw_start || exit 1
API_PORT=$(tw_port)
TOKENS=$TW/api-tokens
{
  tw_config_head 8
  tw_config_api "$API_PORT" "$TOKENS"
  tw_config_cert www ec-p256 www.test
} >"$TW/certloop.toml"
for t in admin:read,manage reader:read victim:read,manage; do
  "$CERTLOOP" api-token create "${t%%:*}" --scopes "${t#*:}" -c "$TW/certloop.toml" \
    >"$TW/${t%%:*}.tok" 2>"$TW/tok.err" || tw_fail "api-token create $t: $(cat "$TW/tok.err")"
done
tw_daemon_start "$TW/certloop.toml" "$TW/out.txt" "$TW/err.txt" 20 test -s "$TW/state/api/bootstrap.pem" ||
  tw_fail "no bootstrap.pem: $(tail -5 "$TW/err.txt")"
tw_daemon_wait 90 test -s "$TW/out/www/fullchain.pem" || tw_fail "www not issued"

URL=https://127.0.0.1:$API_PORT
CA=$TW/state/api/bootstrap.pem
# req METHOD PATH [curl args...]: prints the status; body in $TW/body, head in $TW/head
req() {
  local method=$1 path=$2
  shift 2
  curl -sS --max-time 15 --cacert "$CA" -X "$method" -D "$TW/head" -o "$TW/body" -w '%{http_code}' \
    "$@" "$URL$path" 2>"$TW/curl.err"
}
hdr() { tr -d '\r' <"$TW/head" | grep -i "^$1: " | head -1 | cut -d' ' -f2-; }

# ---- the files: no token needed, strict headers
for f in /:text/html /app.js:text/javascript /app.css:text/css /favicon.svg:image/svg+xml; do
  p=${f%%:*}
  [ "$(req GET "$p")" = 200 ] || tw_fail "GET $p: $(cat "$TW/body")"
  case "$(hdr Content-Type)" in "${f#*:}"*) ;; *) tw_fail "$p Content-Type: $(hdr Content-Type)" ;; esac
  csp=$(hdr Content-Security-Policy)
  for want in "default-src 'none'" "script-src 'self'" "style-src 'self'" "connect-src 'self'" \
    "frame-ancestors 'none'" "base-uri 'none'"; do
    grep -qF "$want" <<<"$csp" || tw_fail "$p: CSP without $want: $csp"
  done
  grep -q "unsafe" <<<"$csp" && tw_fail "$p: CSP allows unsafe code: $csp"
  [ "$(hdr X-Content-Type-Options)" = nosniff ] || tw_fail "$p: X-Content-Type-Options"
  [ "$(hdr X-Frame-Options)" = DENY ] || tw_fail "$p: X-Frame-Options"
  [ "$(hdr Cache-Control)" = no-store ] || tw_fail "$p: Cache-Control $(hdr Cache-Control)"
done
req GET / >/dev/null
cmp -s "$TW/body" "$(dirname "$0")/../../web/index.html" || tw_fail "/ is not web/index.html"
[ "$(req HEAD /app.js -I)" = 200 ] || tw_fail "HEAD /app.js"
[ "$(req GET /index.html)" = 401 ] || tw_fail "/index.html is not a file here"
[ "$(req POST /)" = 401 ] || tw_fail "POST / without a token"

# ---- the dashboard asking whether it is signed in is not a failed login
for i in $(seq 1 12); do
  [ "$(req GET /v1/session)" = 401 ] || tw_fail "GET /v1/session without a cookie $i"
done
[ "$(req GET /v1/certificates -H "Authorization: Bearer $(cat "$TW/reader.tok")")" = 200 ] ||
  tw_fail "GET /v1/session without credentials counted as failures"

# ---- login
[ "$(req POST /v1/session -H "Authorization: Bearer clt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")" = 401 ] ||
  tw_fail "a bad token logged in"
grep -qi '^set-cookie' "$TW/head" && tw_fail "a refused login set a cookie"
login() { # login TOKEN-NAME: sets COOKIE and CSRF
  [ "$(req POST /v1/session -H "Authorization: Bearer $(cat "$TW/$1.tok")")" = 201 ] ||
    { tw_fail "login $1: $(cat "$TW/body")"; return 1; }
  local sc re='^__Host-certloop=([A-Za-z0-9_-]{43}); Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=43200$'
  sc=$(hdr Set-Cookie)
  [[ $sc =~ $re ]] || tw_fail "Set-Cookie: $sc"
  COOKIE="Cookie: __Host-certloop=${BASH_REMATCH[1]}"
  CSRF=$(python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); print(o["csrf_token"])' "$TW/body")
  python3 - "$TW/body" "$1" <<'PY' || tw_fail "login body: $(cat "$TW/body")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["name"] == sys.argv[2] and len(o["csrf_token"]) == 43 and o["expires"] > 0, o
PY
}
login admin
[ "$(req GET /v1/session -H "$COOKIE")" = 200 ] || tw_fail "GET /v1/session with the cookie"
# a login again with the session's own cookie: the same session (200), nothing new (201)
[ "$(req POST /v1/session -H "$COOKIE" -H "X-CSRF-Token: $CSRF" -H "Origin: https://127.0.0.1:$API_PORT")" = 200 ] ||
  tw_fail "POST /v1/session with the cookie: $(cat "$TW/body")"
grep -q "\"csrf_token\":\"$CSRF\"" "$TW/body" || tw_fail "POST /v1/session with the cookie: another session"
grep -q "\"csrf_token\":\"$CSRF\"" "$TW/body" || tw_fail "GET /v1/session: $(cat "$TW/body")"
[ "$(req GET /v1/certificates -H "$COOKIE")" = 200 ] || tw_fail "list with the cookie"
grep -q '"name":"www"' "$TW/body" || tw_fail "list: $(cat "$TW/body")"
[ "$(req GET /v1/events -H "$COOKIE" --max-time 1)" = 200 ] || tw_fail "events with the cookie"
grep -q 'info api: 127.0.0.1 GET /v1/certificates token=admin (session) -> 200' "$TW/err.txt" ||
  tw_fail "no log line naming the session's token"

# ---- CSRF: changes made with the cookie
R='/v1/certificates/www/renew?force=true' # not due: unforced, nothing would be queued (200)
renews() { grep -c "POST $R .* -> 202" "$TW/err.txt"; }
[ "$(req POST $R -H "$COOKIE")" = 403 ] || tw_fail "renew with the cookie and no CSRF token: not 403"
grep -q 'X-CSRF-Token' "$TW/body" || tw_fail "403 body: $(cat "$TW/body")"
# the token with its last character changed (to A, or to B when it was A)
wrong=${CSRF%?}A
[ "$wrong" != "$CSRF" ] || wrong=${CSRF%?}B
[ "$(req POST $R -H "$COOKIE" -H "X-CSRF-Token: $wrong")" = 403 ] || tw_fail "a wrong CSRF token: not 403"
[ "$(req POST $R -H "$COOKIE" -H "X-CSRF-Token: ${COOKIE#*=}")" = 403 ] || tw_fail "the session id as CSRF token: not 403"
[ "$(req POST $R -H "$COOKIE" -H "X-CSRF-Token: $CSRF" -H "Origin: https://evil.example")" = 403 ] ||
  tw_fail "another Origin: not 403"
[ "$(req POST $R -H "$COOKIE" -H "X-CSRF-Token: $CSRF" -H "Sec-Fetch-Site: cross-site")" = 403 ] ||
  tw_fail "Sec-Fetch-Site cross-site: not 403"
# a form post from another site, as a browser would send it if SameSite were ignored
[ "$(req POST $R -H "$COOKIE" -H "Origin: https://evil.example" -H "Content-Type: application/x-www-form-urlencoded")" = 403 ] ||
  tw_fail "a cross-site form post: not 403"
[ "$(renews)" = 0 ] || tw_fail "a refused request renewed"
[ "$(req POST $R -H "$COOKIE" -H "X-CSRF-Token: $CSRF" -H "Origin: https://127.0.0.1:$API_PORT" \
  -H "Sec-Fetch-Site: same-origin")" = 202 ] || tw_fail "renew with the cookie and the CSRF token: $(cat "$TW/body")"
# Bearer requests need no CSRF token (and a cookie beside them changes nothing)
renew_bearer() { req POST $R -H "Authorization: Bearer $(cat "$TW/admin.tok")" "$@"; }
st=$(renew_bearer)
[ "$st" = 202 ] || [ "$st" = 409 ] || tw_fail "renew with Bearer: $st $(cat "$TW/body")"
st=$(renew_bearer -H "Cookie: __Host-certloop=nonsense")
[ "$st" = 202 ] || [ "$st" = 409 ] || tw_fail "renew with Bearer and a stale cookie: $st"
# a read session may not renew, CSRF token or not
COOKIE_ADMIN=$COOKIE CSRF_ADMIN=$CSRF
login reader
[ "$(req POST $R -H "$COOKIE" -H "X-CSRF-Token: $CSRF")" = 403 ] || tw_fail "a read session renewed"
grep -q 'lacks the scope' "$TW/body" || tw_fail "read session 403: $(cat "$TW/body")"
# one session's CSRF token is not another's
[ "$(req POST $R -H "$COOKIE" -H "X-CSRF-Token: $CSRF_ADMIN")" = 403 ] || tw_fail "another session's CSRF token"
grep -q 'X-CSRF-Token' "$TW/body" || tw_fail "another session's CSRF token: $(cat "$TW/body")"

# ---- logout
[ "$(req DELETE /v1/session -H "$COOKIE_ADMIN")" = 403 ] || tw_fail "logout without the CSRF token"
[ "$(req DELETE /v1/session -H "$COOKIE_ADMIN" -H "X-CSRF-Token: $CSRF_ADMIN")" = 200 ] || tw_fail "logout"
[ "$(hdr Set-Cookie)" = "__Host-certloop=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0" ] ||
  tw_fail "logout Set-Cookie: $(hdr Set-Cookie)"
[ "$(req GET /v1/certificates -H "$COOKIE_ADMIN")" = 401 ] || tw_fail "the cookie still works after logout"
grep -q 'session has ended' "$TW/body" || tw_fail "401 after logout: $(cat "$TW/body")"

# ---- a revoked token ends its sessions at once
login victim
[ "$(req GET /v1/certificates -H "$COOKIE")" = 200 ] || tw_fail "victim's session"
"$CERTLOOP" api-token revoke victim -c "$TW/certloop.toml" 2>/dev/null || tw_fail "api-token revoke"
[ "$(req GET /v1/certificates -H "$COOKIE")" = 401 ] || tw_fail "a revoked token's session still works"
grep -q 'clt_' "$TW/err.txt" && tw_fail "a secret in the log"
grep -qF "${CSRF:0:20}" "$TW/err.txt" && tw_fail "a CSRF token in the log"

tw_daemon_stop
tw_done
