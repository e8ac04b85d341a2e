#!/usr/bin/env bash
# dns-account-01 (draft-ietf-acme-dns-account-label-03) end to end. Pebble
# 2.4 does not know it: ext_proxy.py in front of it offers it beside dns-01
# and validates it by a real DNS query to Knot for the account-labelled
# record _LABEL._acme-challenge.NAME (then lets Pebble's dns-01 check pass).
# Two accounts ([ca.one] and [ca.two], the same CA) validate the same name
# at once, each at its own label, with certloop's rfc2136 solver; both
# certificates are issued and every record is removed afterwards.
# `certloop test` presents its test record at the account label's name.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/knot.sh"

tw_knot_start dnsaccount
command -v knsupdate >/dev/null || tw_skip "knsupdate not found"

PROXY_PORT=$(tw_port)
python3 "$(dirname "$0")/ext_proxy.py" --listen "$PROXY_PORT" --pebble "$TW_ACME_PORT" \
  --cert "$TW/tls.pem" --key "$TW/tls.key" --ca "$TW/tls-ca.pem" \
  --dns-account "$KNOT_PORT:acme-key.:$KW/tsig.secret" --log "$TW/proxy.log" 2>"$TW/proxy.err" &
TW_PIDS+=($!)
DIR="https://127.0.0.1:$PROXY_PORT/dir"
tw_wait_http "$DIR" "$TW/tls-ca.pem" 20 || { tw_fail "proxy did not come up: $(cat "$TW/proxy.err")"; tw_done; }

{
  tw_knot_config_head 8 | sed "s|^directory = .*|directory = \"$DIR\"|; s|^\[ca.pebble\]|[ca.one]|"
  cat <<EOF2
[ca.two]
directory = "$DIR"
agree_tos = true
trust = "$TW/tls-ca.pem"
max_parallel_requests = 1

EOF2
  TW_CERT_EXTRA=$'challenge = "dns-account-01"\ndns = "knot"' tw_config_cert c1 ec-p256 shared.test |
    sed 's/^ca = "pebble"/ca = "one"/'
  TW_CERT_EXTRA=$'challenge = "dns-account-01"\ndns = "knot"' tw_config_cert c2 ec-p256 shared.test |
    sed 's/^ca = "pebble"/ca = "two"/'
} >"$TW/certloop.toml"
"$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null 2>"$TW/check.txt" ||
  { tw_fail "config invalid: $(cat "$TW/check.txt")"; tw_done; }

timeout 180 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out.txt" 2>"$TW/err.txt" ||
  tw_fail "run --once: $(grep -E ' (error|warn) ' "$TW/err.txt" | head -5)"
tw_check_deployed c1
tw_check_deployed c2
labels=$(awk '$1 == "dns-account-01" && $2 == "shared.test" && $4 == "found" {print $3}' "$TW/proxy.log" | sort -u)
[ "$(wc -l <<<"$labels")" = 2 ] || tw_fail "want two account labels found for shared.test: $(cat "$TW/proxy.log")"
grep -q "missing" "$TW/proxy.log" && tw_fail "a dns-account-01 record was missing: $(cat "$TW/proxy.log")"
for l in $labels; do
  left=$(kdig @127.0.0.1 -p "$KNOT_PORT" +short "$l._acme-challenge.shared.test" TXT 2>/dev/null)
  [ -z "$left" ] || tw_fail "TXT left behind at $l._acme-challenge.shared.test: $left"
done

# certloop test c1 presents its test record at the account's label (the
# label computed here as the draft defines it: "_" + base32 of the first 10
# bytes of SHA-256(account URL), lower case) and checks it on Knot
want=$(python3 -c 'import base64,hashlib,json,sys
u = json.load(open(sys.argv[1]))["url"]
print("_" + base64.b32encode(hashlib.sha256(u.encode()).digest()[:10]).decode().lower())' "$TW/state/accounts/one/account.json")
grep -qx -- "$want" <<<"$labels" || tw_fail "label $want (ca one) not among the CA's: $labels"
out=$("$CERTLOOP" test c1 -c "$TW/certloop.toml" 2>&1)
grep -qF "test c1: dns-account-01 label of ca=one's account" <<<"$out" &&
  grep -qF "test c1: dns-01  shared.test: test record at $want._acme-challenge.shared.test: " <<<"$out" &&
  grep -q "test record at $want._acme-challenge.shared.test: .* ... PASS$" <<<"$out" ||
  tw_fail "certloop test c1: $out"
left=$(kdig @127.0.0.1 -p "$KNOT_PORT" +short "$want._acme-challenge.shared.test" TXT 2>/dev/null)
[ -z "$left" ] || tw_fail "certloop test left its record: $left"
tw_done
