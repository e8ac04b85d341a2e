#!/usr/bin/env bash
# dns-persist-01 (draft-ietf-acme-dns-persist-01) end to end. Pebble 2.4 does
# not know it: ext_proxy.py in front of it lists caaIdentities
# ["pebble.test"], offers dns-persist-01 beside dns-01 and validates it by a
# real DNS query to Knot for _validation-persist.NAME.
# - persist-record before any account: 69, nothing printed;
# - the first order registers the account and fails naming the exact record;
# - persist-record prints the records (policy=wildcard for *.p.test) and
#   --publish puts them in place with the rfc2136 solver;
# - the next order checks them on the authoritative server and is issued;
#   the records stay (persistent).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/knot.sh"

tw_knot_start dnspersist
command -v knsupdate >/dev/null || tw_skip "knsupdate not found"

PROXY_PORT=$(tw_port)
python3 "$(dirname "$0")/ext_proxy.py" --listen "$PROXY_PORT" --pebble "$TW_ACME_PORT" \
  --cert "$TW/tls.pem" --key "$TW/tls.key" --ca "$TW/tls-ca.pem" \
  --dns-account "$KNOT_PORT:acme-key.:$KW/tsig.secret" --dns-persist pebble.test \
  --log "$TW/proxy.log" 2>"$TW/proxy.err" &
TW_PIDS+=($!)
DIR="https://127.0.0.1:$PROXY_PORT/dir"
tw_wait_http "$DIR" "$TW/tls-ca.pem" 20 || { tw_fail "proxy did not come up: $(cat "$TW/proxy.err")"; tw_done; }

{
  tw_knot_config_head 8 "" 10s | sed "s|^directory = .*|directory = \"$DIR\"|"
  TW_CERT_EXTRA=$'challenge = "dns-persist-01"\ndns = "knot"' tw_config_cert p1 ec-p256 "*.p.test" p.test
} >"$TW/certloop.toml"
C=(-c "$TW/certloop.toml")
"$CERTLOOP" check "${C[@]}" >/dev/null 2>"$TW/check.txt" || { tw_fail "config invalid: $(cat "$TW/check.txt")"; tw_done; }

out=$("$CERTLOOP" persist-record p1 "${C[@]}" 2>&1)
[ $? = 69 ] || tw_fail "persist-record without an account: $out"

timeout 120 "$CERTLOOP" run --once "${C[@]}" >/dev/null 2>"$TW/err1" && tw_fail "issued without the record"
grep -q 'dns-persist-01: add the TXT record _validation-persist.p.test "pebble.test; accounturi=https://' "$TW/err1" ||
  tw_fail "first order's error: $(grep -E ' error ' "$TW/err1" | head -3)"
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$TW/state/accounts/pebble/account.json")

out=$("$CERTLOOP" persist-record p1 "${C[@]}" 2>&1) || tw_fail "persist-record: $out"
grep -qxF "_validation-persist.p.test. IN TXT \"pebble.test; accounturi=$url; policy=wildcard\"" <<<"$out" &&
  grep -qxF "_validation-persist.p.test. IN TXT \"pebble.test; accounturi=$url\"" <<<"$out" ||
  tw_fail "persist-record output: $out"
out=$("$CERTLOOP" persist-record p1 --publish "${C[@]}" 2>&1) || tw_fail "persist-record --publish: $out"
[ "$(knot_txt 127.0.0.1 _validation-persist.p.test | wc -l)" = 2 ] ||
  tw_fail "published records: $(knot_txt 127.0.0.1 _validation-persist.p.test)"

timeout 120 "$CERTLOOP" run --once "${C[@]}" >/dev/null 2>"$TW/err2" ||
  tw_fail "order with the records: $(grep -E ' error ' "$TW/err2" | head -3)"
tw_check_deployed p1
[ "$(grep -c '^dns-persist-01 p.test found$' "$TW/proxy.log")" = 2 ] ||
  tw_fail "proxy checks: $(cat "$TW/proxy.log")"
[ "$(knot_txt 127.0.0.1 _validation-persist.p.test | wc -l)" = 2 ] || tw_fail "the persistent records were removed"
tw_done
