#!/usr/bin/env bash
# dns-persist-01 (draft-ietf-acme-dns-persist-02, 20 September 2026) end to
# end. Pebble 2.4 does not know it: ext_proxy.py in front of it implements
# the CA side of draft -02 (its --self-test checks that against the draft's
# section 10.2 test vector first): the directory's issuerDomainNames
# ["pebble.test"] and accountHashPrefix, dns-persist-01 beside dns-01, and
# validation by a real DNS query to Knot for _validation-persist.NAME (the
# hashed accounturi recomputed from the account's registered JWK,
# persistUntil enforced).
# - persist-record before any account: 69, nothing printed;
# - the first order registers the account and fails naming the exact record;
# - persist-record prints the records (hashed accounturi, policy=wildcard for
#   *.p.test, persistUntil from persist_until) and --publish puts them in
#   place with the rfc2136 solver;
# - the next order checks them on the authoritative server and is issued;
#   the records stay (persistent); `certloop test` finds them; persist_until
#   inside expiring_window
#   raises the persist_expiring warning, once a day: the next run and the
#   daemon started after it send none, and status still shows the flag;
# - after an account key rollover, records made with the new key validate,
#   and the authorization expires no later than their persistUntil;
# - a persist_until in the past fails the order without asking the CA;
# - a record whose persistUntil has passed by the CA's clock (a second proxy
#   whose clock runs 2 h ahead) is refused by the CA (unauthorized) and the
#   order fails with the CA's reason.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/knot.sh"

python3 "$(dirname "$0")/ext_proxy.py" --self-test >/dev/null || tw_fail "ext_proxy.py --self-test"
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

# persist_until: 1 January two years ahead (PU in UNIX seconds), inside the
# 3000-year window below; check refuses one more than 10 years ahead (the
# value this test used before: 2100-01-01)
PU_DATE="$(($(date -u +%Y) + 2))-01-01"
PU=$(date -u -d "$PU_DATE" +%s)
{
  tw_knot_config_head 8 "" 10s | sed "s|^directory = .*|directory = \"$DIR\"|" |
    sed 's/^\[daemon\]$/[daemon]\nexpiring_window = "1100000d"/'
  TW_CERT_EXTRA=$'challenge = "dns-persist-01"\ndns = "knot"\npersist_until = '"$PU_DATE" \
    tw_config_cert p1 ec-p256 "*.p.test" p.test
} >"$TW/certloop.toml"
C=(-c "$TW/certloop.toml")
"$CERTLOOP" check "${C[@]}" >/dev/null 2>"$TW/check.txt" || { tw_fail "config invalid: $(cat "$TW/check.txt")"; tw_done; }
sed "s/^persist_until = $PU_DATE\$/persist_until = 2100-01-01/" "$TW/certloop.toml" >"$TW/far.toml"
out=$("$CERTLOOP" check -c "$TW/far.toml" 2>&1)
rc=$?
[ "$rc" = 78 ] && grep -qE "far\.toml:[0-9]+:17: error: certificate\.p1\.persist_until: 2100-01-01T00:00:00Z is more than 10 years ahead \(the latest accepted now is [0-9T:-]+Z\): .*; leave persist_until out for records that do not expire$" <<<"$out" ||
  tw_fail "persist_until 2100-01-01: exit $rc: $out"

out=$("$CERTLOOP" persist-record p1 "${C[@]}" 2>&1)
[ $? = 69 ] || tw_fail "persist-record without an account: $out"

timeout 120 "$CERTLOOP" run --once "${C[@]}" >/dev/null 2>"$TW/err1" && tw_fail "issued without the record"
H="https://127.0.0.1:$PROXY_PORT/account-hash/sha-256/[A-Za-z0-9_-]{43}"
grep -qE "dns-persist-01: add the TXT record _validation-persist.p.test \"pebble.test; accounturi=$H(; policy=wildcard)?; persistUntil=$PU\"" "$TW/err1" ||
  tw_fail "first order's error: $(grep -E ' error ' "$TW/err1" | head -3)"
grep -qF "warn main: cert=p1: the CA accepts its dns-persist-01 records until ${PU_DATE}T00:00:00Z (persist_until)" "$TW/err1" ||
  tw_fail "no persist_until warning: $(grep -i persist "$TW/err1" | head -3)"

out=$("$CERTLOOP" persist-record p1 "${C[@]}" 2>&1) || tw_fail "persist-record: $out"
grep -qxE "_validation-persist.p.test. IN TXT \"pebble.test; accounturi=$H; policy=wildcard; persistUntil=$PU\"" <<<"$out" &&
  grep -qxE "_validation-persist.p.test. IN TXT \"pebble.test; accounturi=$H; persistUntil=$PU\"" <<<"$out" ||
  tw_fail "persist-record output: $out"
out=$("$CERTLOOP" persist-record p1 --publish "${C[@]}" 2>&1) || tw_fail "persist-record --publish: $out"
[ "$(knot_txt 127.0.0.1 _validation-persist.p.test | wc -l)" = 2 ] ||
  tw_fail "published records: $(knot_txt 127.0.0.1 _validation-persist.p.test)"

# certloop test finds both records on the authoritative server
out=$("$CERTLOOP" test p1 "${C[@]}" 2>&1)
grep -qE "^test p1: dns-persist-01 \*\.p\.test: _validation-persist\.p\.test \"pebble\.test; accounturi=$H; policy=wildcard; persistUntil=$PU\": .* \.\.\. PASS$" <<<"$out" &&
  grep -qE "^test p1: dns-persist-01 p\.test: _validation-persist\.p\.test \"pebble\.test; accounturi=$H; persistUntil=$PU\": .* \.\.\. PASS$" <<<"$out" &&
  grep -qE "^test p1: dns-persist-01 p1: persist_until ${PU_DATE}T00:00:00Z: the CA accepts the records for [0-9]+ more days \.\.\. PASS$" <<<"$out" ||
  tw_fail "certloop test p1: $out"

timeout 120 "$CERTLOOP" run --once "${C[@]}" >/dev/null 2>"$TW/err2" ||
  tw_fail "order with the records: $(grep -E ' error ' "$TW/err2" | head -3)"
tw_check_deployed p1
[ "$(grep -c '^dns-persist-01 p.test found$' "$TW/proxy.log")" = 2 ] ||
  tw_fail "proxy checks: $(cat "$TW/proxy.log")"
[ "$(knot_txt 127.0.0.1 _validation-persist.p.test | wc -l)" = 2 ] || tw_fail "the persistent records were removed"
grep -q '"persist_expiring"' "$TW/state/history/p1.jsonl" ||
  tw_fail "persist_expiring not in the history: $(cat "$TW/state/history/p1.jsonl")"
# sent by the first run only: its time is kept (STATE/alerts/), so the
# second run, within the day, sends none
[ "$(grep -c '"persist_expiring"' "$TW/state/history/p1.jsonl")" = 1 ] ||
  tw_fail "persist_expiring sent again within the day: $(grep persist_expiring "$TW/state/history/p1.jsonl")"
grep -qF '(persist_until)' "$TW/err2" && tw_fail "the second run warned again: $(grep -F '(persist_until)' "$TW/err2")"
[ "$(stat -c %a "$TW/state/alerts/p1.persist_expiring" 2>/dev/null)" = 600 ] ||
  tw_fail "STATE/alerts/p1.persist_expiring: $(ls -l "$TW/state/alerts" 2>&1)"

# status shows it too (JSON and the table's note)
tw_daemon_start "$TW/certloop.toml" "$TW/d.out" "$TW/d.err"
persist_shown() {
  "$CERTLOOP" status "${C[@]}" --json 2>/dev/null | python3 -c 'import json,sys
c = json.load(sys.stdin)["certificates"][0]
sys.exit(not (c.get("persist_until") == int(sys.argv[1]) and c.get("persist_expiring") is True))' "$PU" 2>/dev/null
}
tw_daemon_wait 20 persist_shown || tw_fail "status --json: $("$CERTLOOP" status "${C[@]}" --json 2>&1 | head -30)"
grep -qF "[dns-persist-01 records expire $PU_DATE 00:00]" <<<"$("$CERTLOOP" status "${C[@]}" 2>&1)" ||
  tw_fail "status table: $("$CERTLOOP" status "${C[@]}" 2>&1)"
grep -qE "^  persist until +$PU_DATE 00:00 UTC\$" <<<"$("$CERTLOOP" status "${C[@]}" p1 2>&1)" ||
  tw_fail "status p1: $("$CERTLOOP" status "${C[@]}" p1 2>&1)"
tw_daemon_stop
[ "$(grep -c '"persist_expiring"' "$TW/state/history/p1.jsonl")" = 1 ] ||
  tw_fail "the daemon sent persist_expiring again within the day"

# a key rollover: the hashed accounturi changes (the thumbprint is hashed
# in); records made with the new key are validated (the CA follows the
# keyChange)
out=$("$CERTLOOP" account rollover pebble "${C[@]}" 2>&1) || tw_fail "rollover: $out"
grep -q '^keychange ' "$TW/proxy.log" || tw_fail "the CA did not see the keyChange: $(cat "$TW/proxy.log")"
# (persist_until 10 minutes ahead: the CA clamps the authorization's expiry)
u4=$(($(date +%s) + 600))
TW_CERT_EXTRA=$'challenge = "dns-persist-01"\ndns = "knot"\npersist_until = '"$u4" tw_config_cert p4 ec-p256 s.test >>"$TW/certloop.toml"
out=$("$CERTLOOP" persist-record p4 --publish "${C[@]}" 2>&1) || tw_fail "persist-record p4: $out"
timeout 120 "$CERTLOOP" run --once "${C[@]}" >/dev/null 2>"$TW/err6" ||
  tw_fail "order after the rollover: $(grep -E ' error ' "$TW/err6" | head -3)"
tw_check_deployed p4
grep -q '^dns-persist-01 s.test found$' "$TW/proxy.log" || tw_fail "proxy after the rollover: $(cat "$TW/proxy.log")"
grep -qx "authz s.test expires clamped to $(date -u -d "@$u4" +%Y-%m-%dT%H:%M:%SZ)" "$TW/proxy.log" ||
  tw_fail "authorization expiry not clamped to persistUntil: $(grep -i authz "$TW/proxy.log")"

# persist_until in the past: refused before any request to the CA
TW_CERT_EXTRA=$'challenge = "dns-persist-01"\ndns = "knot"\npersist_until = 2020-01-01' \
  tw_config_cert p2 ec-p256 q.test >>"$TW/certloop.toml"
out=$("$CERTLOOP" check "${C[@]}" 2>&1) || tw_fail "check: $out"
grep -qE ": warning: certificate\.p2: persist_until \(2020-01-01 00:00 UTC\) has passed, so the CA refuses its dns-persist-01 records: set a later one and publish the records again \(certloop persist-record p2 --publish\)$" <<<"$out" ||
  tw_fail "check's warning: $out"
n=$(wc -l <"$TW/proxy.log")
timeout 120 "$CERTLOOP" run --once "${C[@]}" >/dev/null 2>"$TW/err3" && tw_fail "ordered past persist_until"
grep -q 'order cert=p2 dns-persist-01: persist_until (2020-01-01T00:00:00Z) has passed, so the CA refuses the records' "$TW/err3" ||
  tw_fail "past persist_until: $(grep -E ' error ' "$TW/err3" | head -3)"
[ "$(wc -l <"$TW/proxy.log")" = "$n" ] || tw_fail "the CA was asked: $(tail -n +$((n + 1)) "$TW/proxy.log")"

# the CA refuses a record past its persistUntil (its clock 2 h ahead of ours);
# its issuer domain name is long, so the record (over 255 octets) is
# published as several character-strings and read back joined
LONG="$(printf 'a%.0s' $(seq 60)).$(printf 'b%.0s' $(seq 60)).$(printf 'c%.0s' $(seq 60)).pebble.test"
P2=$(tw_port)
python3 "$(dirname "$0")/ext_proxy.py" --listen "$P2" --pebble "$TW_ACME_PORT" \
  --cert "$TW/tls.pem" --key "$TW/tls.key" --ca "$TW/tls-ca.pem" \
  --dns-account "$KNOT_PORT:acme-key.:$KW/tsig.secret" --dns-persist "$LONG" --clock-offset 7200 \
  --log "$TW/proxy2.log" 2>"$TW/proxy2.err" &
TW_PIDS+=($!)
tw_wait_http "https://127.0.0.1:$P2/dir" "$TW/tls-ca.pem" 20 || tw_fail "proxy 2: $(cat "$TW/proxy2.err")"
until=$(($(date +%s) + 3600))
{
  tw_knot_config_head 8 "" 10s | sed "s|^directory = .*|directory = \"https://127.0.0.1:$P2/dir\"|; s|^state_dir = .*|state_dir = \"$TW/state2\"|"
  TW_CERT_EXTRA=$'challenge = "dns-persist-01"\ndns = "knot"\npersist_until = '"$until" tw_config_cert p3 ec-p256 r.test
} >"$TW/late.toml"
L=(-c "$TW/late.toml")
timeout 120 "$CERTLOOP" run --once "${L[@]}" >/dev/null 2>"$TW/err4" && tw_fail "issued without the record (late CA)"
out=$("$CERTLOOP" persist-record p3 --publish "${L[@]}" 2>&1) || tw_fail "persist-record (late CA): $out"
grep -qF "persistUntil=$until\"" <<<"$out" || tw_fail "persist-record (late CA): $out"
line=$(grep '^_validation-persist.r.test. IN TXT ' <<<"$out" | head -1)
[ "$(grep -o '"[^"]*"' <<<"$line" | wc -l)" = 2 ] || tw_fail "the long record is not printed as two strings: $line"
rec=$(grep -o '"[^"]*"' <<<"$line" | tr -d '"\n')
[ "${#rec}" -gt 255 ] || tw_fail "the long record is only ${#rec} octets"
[ "$(kdig @127.0.0.1 -p "$KNOT_PORT" +short _validation-persist.r.test TXT | grep -o '"[^"]*"' | tr -d '"\n')" = "$rec" ] ||
  tw_fail "Knot serves another record: $(kdig @127.0.0.1 -p "$KNOT_PORT" +short _validation-persist.r.test TXT)"
timeout 120 "$CERTLOOP" run --once "${L[@]}" >/dev/null 2>"$TW/err5" && tw_fail "the CA accepted a record past its persistUntil"
grep -q "dns-persist-01 r.test expired" "$TW/proxy2.log" || tw_fail "proxy 2: $(cat "$TW/proxy2.log")"
grep -q "order cert=p3 .*unauthorized.*persistUntil $until has passed" "$TW/err5" ||
  tw_fail "the CA's refusal: $(grep -E ' error ' "$TW/err5" | head -3)"
tw_done
