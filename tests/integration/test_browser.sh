#!/usr/bin/env bash
# The dashboard in a real browser: Debian's chromium, headless, driven by
# puppeteer-core (npm, installed into the build tree) running
# tests/browser/dashboard.js against a Pebble-backed daemon with 20
# certificates (one of them failing its deployment): a bad token is
# rejected; a login shows the 20 certificates, 19 green and 1 red;
# a renewal started from the page is watched live (its state changes, the
# event stream says "renewed"); its log opens; a POST without the CSRF token
# and a form posted from another site are refused. Screenshots go to
# BUILD_DIR/test-artifacts/browser/ (their paths are printed). Without
# chromium, node or npm, or when npm cannot fetch puppeteer-core, the test
# is skipped, and fails under CI=true.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

PUPPETEER_VERSION=24.43.1 # the last line that runs on Debian 12's node 18
N=20
RENEW=cert-07
BROKEN=cert-19

tw_need chromium node npm
tw_init browser
BUILD=${BUILD_DIR:-$(dirname "$CERTLOOP")}
PUPPETEER_DIR=$BUILD/browser-test
ARTIFACTS=$BUILD/test-artifacts/browser
if [ "$(node -p "try { require('$PUPPETEER_DIR/node_modules/puppeteer-core/package.json').version } catch (e) { '' }")" != "$PUPPETEER_VERSION" ]; then
  mkdir -p "$PUPPETEER_DIR"
  tw_log "npm: installing puppeteer-core@$PUPPETEER_VERSION into $PUPPETEER_DIR"
  PUPPETEER_SKIP_DOWNLOAD=1 timeout 300 npm install --prefix "$PUPPETEER_DIR" --no-save --no-package-lock \
    --no-audit --no-fund --loglevel=error "puppeteer-core@$PUPPETEER_VERSION" >"$TW/npm.log" 2>&1 ||
    tw_skip "npm could not install puppeteer-core@$PUPPETEER_VERSION: $(tail -3 "$TW/npm.log")"
fi
rm -rf "$ARTIFACTS"

tw_start || exit 1
API_PORT=$(tw_port)
{
  tw_config_head 8
  tw_config_api "$API_PORT" "$TW/api-tokens"
  for ((i = 0; i < N; i++)); do
    name=$(printf 'cert-%02d' "$i")
    tw_config_cert "$name" ec-p256 "$name.test" "www.$name.test"
  done
  # one certificate whose deployment fails: the page shows it red
  printf '[[certificate.%s.deploy]]\ntype = "exec"\ncommand = ["/bin/false"]\n\n' "$BROKEN"
} >"$TW/certloop.toml"
"$CERTLOOP" api-token create ops --scopes read,manage -c "$TW/certloop.toml" >"$TW/ops.tok" 2>"$TW/tok.err" ||
  tw_fail "api-token create: $(cat "$TW/tok.err")"
tw_daemon_start "$TW/certloop.toml" "$TW/out.txt" "$TW/err.txt" 20 test -s "$TW/state/api/bootstrap.pem" ||
  tw_fail "no bootstrap.pem: $(tail -5 "$TW/err.txt")"
all_deployed() { [ "$(tw_n_deployed)" -ge $((N - 1)) ] && grep -q "cert=$BROKEN: .*deploy" "$TW/err.txt"; }
tw_daemon_wait 180 all_deployed || tw_fail "$(tw_n_deployed) of $((N - 1)) certificates deployed"
broken_state() { "$CERTLOOP" status -c "$TW/certloop.toml" 2>/dev/null | grep -q "^$BROKEN  *deploy-failed "; }
tw_daemon_wait 60 broken_state || tw_fail "$BROKEN is not deploy-failed: $("$CERTLOOP" status -c "$TW/certloop.toml" 2>&1 | grep "$BROKEN")"
tw_log "$N certificates issued, $((N - 1)) deployed, $BROKEN's deployment failed"

# a page on another site (http, another port) with a form aimed at the API;
# dashboard.js has it fetch and post
mkdir -p "$TW/attacker"
cat >"$TW/attacker/attack.html" <<'EOF'
<!doctype html><title>elsewhere</title>
<form id="f" method="POST"><input type="hidden" name="force" value="true"></form>
<script>
document.getElementById('f').action = new URLSearchParams(location.search).get('target');
</script>
EOF
ATTACK_PORT=$(tw_port)
python3 -m http.server "$ATTACK_PORT" --bind 127.0.0.1 --directory "$TW/attacker" >"$TW/attacker.log" 2>&1 &
TW_PIDS+=($!)
tw_wait_http "http://127.0.0.1:$ATTACK_PORT/attack.html" "" 10 || tw_fail "the attacker page does not serve"

SPKI=$(openssl x509 -in "$TW/state/api/bootstrap.pem" -pubkey -noout | openssl pkey -pubin -outform der |
  openssl dgst -sha256 -binary | base64)
start=$(date +%s.%N)
PUPPETEER_DIR=$PUPPETEER_DIR CHROMIUM=$(command -v chromium) URL="https://127.0.0.1:$API_PORT" SPKI=$SPKI \
  TOKEN=$(cat "$TW/ops.tok") BAD_TOKEN=clt_notavalidtokennotavalidtokennotavalidtok RENEW=$RENEW N=$N BROKEN=$BROKEN \
  ATTACKER="http://127.0.0.1:$ATTACK_PORT/attack.html" ARTIFACTS=$ARTIFACTS \
  timeout 600 node "$(dirname "$0")/../browser/dashboard.js" >"$TW/browser.txt" 2>&1 ||
  tw_fail "the browser run failed"
cat "$TW/browser.txt"
tw_log "browser run: $(echo "$(date +%s.%N) - $start" | bc) s"

# what the daemon saw: one renewal (the dashboard's, with its session); the
# page without the CSRF token got 403, the other site's fetch 401
# (SameSite=Strict: the cookie was not sent) and its form 400 (a body)
grep -qx 1 <<<"$(grep -c "POST /v1/certificates/$RENEW/renew?force=true token=ops (session) -> 202" "$TW/err.txt")" ||
  tw_fail "the dashboard's renewal is not logged once: $(grep "renew" "$TW/err.txt")"
grep -q "POST /v1/certificates/$RENEW/renew token=ops (session) -> 403" "$TW/err.txt" ||
  tw_fail "no refused POST without the CSRF token"
grep -q "POST /v1/certificates/$RENEW/renew token=- -> 401" "$TW/err.txt" ||
  tw_fail "the other site's fetch: $(grep "renew" "$TW/err.txt")"
grep -qx 1 <<<"$(grep -c "POST /v1/certificates/[^ ]*/renew.* -> 202" "$TW/err.txt")" ||
  tw_fail "more than one renewal was accepted: $(grep "renew" "$TW/err.txt")"
grep -q 'clt_' "$TW/err.txt" && tw_fail "a token in the log"
n=$(ls "$ARTIFACTS"/*.png 2>/dev/null | wc -l)
[ "$n" -ge 8 ] || tw_fail "$n screenshots in $ARTIFACTS"

tw_daemon_stop
tw_done
