#!/usr/bin/env bash
# ACME profiles (draft-ietf-acme-profiles-00) end to end. Pebble 2.4 has no
# profiles, so ext_proxy.py stands in front of it and implements exactly
# the draft's server part: meta.profiles in the directory (classic,
# shortlived), the newOrder "profile" checked against them (invalidProfile
# otherwise) and echoed in the order object; everything else is Pebble.
# - [ca.NAME] profile = "shortlived" is sent in newOrder (regression: it was
#   never sent), stored in meta.json, shown by plan and by status;
# - a profile the CA does not offer fails the order naming the certificate,
#   the CA's profile and the offered ones, and no newOrder is sent; `check`
#   (which does not ask the CA) accepts it, `certloop test` reports it;
# - with profile_fallback = true: a warning and an order without a profile.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init profiles
tw_start || exit 1

PROXY_PORT=$(tw_port)
python3 "$(dirname "$0")/ext_proxy.py" --listen "$PROXY_PORT" --pebble "$TW_ACME_PORT" \
  --cert "$TW/tls.pem" --key "$TW/tls.key" --ca "$TW/tls-ca.pem" \
  --profiles "classic=90 days,shortlived=6 days" --log "$TW/proxy.log" 2>"$TW/proxy.err" &
TW_PIDS+=($!)
DIR="https://127.0.0.1:$PROXY_PORT/dir"
tw_wait_http "$DIR" "$TW/tls-ca.pem" 20 || { tw_fail "proxy did not come up: $(cat "$TW/proxy.err")"; tw_done; }
: >"$TW/proxy.log"

# config PROFILE [EXTRA]: one CA through the proxy, one certificate.
config() {
  tw_config_head 64 | sed "s|^directory = .*|directory = \"$DIR\"\nprofile = \"$1\"\n${2:-}|"
  tw_config_cert www ec-p256 www.test
}

# 1. offered: sent, stored, shown.
config shortlived >"$TW/certloop.toml"
timeout 120 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out1.txt" 2>"$TW/err1.txt" ||
  tw_fail "run with an offered profile: $(tail -3 "$TW/err1.txt")"
tw_check_deployed www
grep -qx "neworder profile=shortlived" "$TW/proxy.log" || tw_fail "newOrder without the profile: $(cat "$TW/proxy.log")"
grep -q '"profile": "shortlived"' "$TW"/state/certs/www/current/meta.json ||
  tw_fail "meta.json: $(cat "$TW"/state/certs/www/current/meta.json)"
plan=$("$CERTLOOP" plan -c "$TW/certloop.toml" 2>&1)
grep -q "profile *shortlived" <<<"$plan" || tw_fail "plan does not show the profile: $plan"
grep -q "stored.*, profile shortlived" <<<"$plan" || tw_fail "plan does not show the issued profile: $plan"
tw_daemon_start "$TW/certloop.toml" "$TW/d.out" "$TW/d.err"
status_has() {
  "$CERTLOOP" status -c "$TW/certloop.toml" --json 2>/dev/null |
    python3 -c 'import json,sys; c=json.load(sys.stdin)["certificates"][0]; sys.exit(c.get("profile")!="shortlived")' 2>/dev/null
}
tw_daemon_wait 20 status_has || tw_fail "status --json has no profile: $("$CERTLOOP" status -c "$TW/certloop.toml" --json 2>&1)"
grep -q "\[profile shortlived\]" <<<"$("$CERTLOOP" status -c "$TW/certloop.toml" 2>&1)" ||
  tw_fail "status table: $("$CERTLOOP" status -c "$TW/certloop.toml" 2>&1)"
tw_daemon_stop

# certloop test NAME asks the CA's directory (an IP identifier: no DNS)
ttest() {
  sed 's/^domains = \["www.test"\]$/domains = ["127.0.0.1"]/' "$1" >"$TW/test.toml"
  "$CERTLOOP" test www -c "$TW/test.toml" 2>&1
}
out=$(ttest "$TW/certloop.toml")
grep -qxF 'test www: profile pebble: "shortlived" is offered by the CA ... PASS' <<<"$out" ||
  tw_fail "certloop test, offered: $out"

# 2. not offered: an error naming the offered ones, no newOrder.
: >"$TW/proxy.log"
rm -rf "$TW/state/certs/www"
config tlsserver >"$TW/certloop2.toml"
timeout 120 "$CERTLOOP" run --once -c "$TW/certloop2.toml" >"$TW/out2.txt" 2>"$TW/err2.txt" &&
  tw_fail "an order with a profile the CA does not offer succeeded"
grep -q 'error main: order cert=www newOrder: directory https://[^ ]*: \[ca.pebble\] profile "tlsserver" is not offered by the CA (it offers: classic, shortlived); choose one of those or set profile_fallback = true' "$TW/err2.txt" ||
  tw_fail "error: $(cat "$TW/err2.txt")"
"$CERTLOOP" check -c "$TW/certloop2.toml" >/dev/null 2>&1 || tw_fail "check refused a profile (it cannot ask the CA)"
out=$(ttest "$TW/certloop2.toml") && tw_fail "certloop test passed a profile the CA does not offer: $out"
grep -qxF 'test www: profile pebble: [ca.pebble] profile "tlsserver" is not offered by the CA (it offers: classic, shortlived); choose one of those or set profile_fallback = true ... FAIL' <<<"$out" ||
  tw_fail "certloop test, not offered: $out"
[ -s "$TW/proxy.log" ] && tw_fail "a newOrder was sent: $(cat "$TW/proxy.log")"

# 3. not offered, profile_fallback = true: warning, order without a profile.
config tlsserver "profile_fallback = true" >"$TW/certloop3.toml"
timeout 120 "$CERTLOOP" run --once -c "$TW/certloop3.toml" >"$TW/out3.txt" 2>"$TW/err3.txt" ||
  tw_fail "fallback run: $(tail -3 "$TW/err3.txt")"
grep -q 'warn.*profile "tlsserver" is not offered.*ordering without a profile' "$TW/err3.txt" ||
  tw_fail "no fallback warning: $(cat "$TW/err3.txt")"
grep -qx "neworder profile=-" "$TW/proxy.log" || tw_fail "fallback newOrder: $(cat "$TW/proxy.log")"
out=$(ttest "$TW/certloop3.toml")
grep -qF 'test www: profile pebble: [ca.pebble] profile "tlsserver" is not offered by the CA (it offers: classic, shortlived): profile_fallback = true, ordering without a profile ... PASS' <<<"$out" ||
  tw_fail "certloop test, fallback: $out"

tw_done
