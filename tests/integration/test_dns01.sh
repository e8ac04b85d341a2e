#!/usr/bin/env bash
# dns-01 end to end: Pebble resolves through Knot, certloop's rfc2136 solver
# (TSIG) puts the TXT records in place, waits until the server serves them,
# answers the challenges; a wildcard certificate and a multi-name one are
# issued, their chains verify and keys match, and every TXT record is gone
# afterwards.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/knot.sh"

tw_knot_start dns01

{
  tw_knot_config_head 8
  TW_CERT_EXTRA=$TW_KNOT_DNS01 tw_config_cert wild ec-p256 "*.w.test" w.test
  TW_CERT_EXTRA=$TW_KNOT_DNS01 tw_config_cert multi rsa2048 m1.test m2.test m3.test
} >"$TW/certloop.toml"
"$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null 2>"$TW/check.txt" ||
  { tw_fail "config invalid: $(cat "$TW/check.txt")"; tw_done; }

timeout 180 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
[ "$rc" = 0 ] || { tw_fail "run --once exited $rc"; grep -E ' (error|warn) ' "$TW/err.txt" | head >&2; }
for n in wild multi; do
  tw_check_deployed "$n"
done
[ "$(tw_sans "$TW/out/wild/cert.pem" | tr '\n' ' ')" = "*.w.test w.test " ] ||
  tw_fail "wild: SANs $(tw_sans "$TW/out/wild/cert.pem" | tr '\n' ' ')"
# the records are cleaned up
for name in w.test m1.test m2.test m3.test; do
  left=$(kdig @127.0.0.1 -p "$KNOT_PORT" +short "_acme-challenge.$name" TXT 2>/dev/null)
  [ -z "$left" ] || tw_fail "TXT left behind at _acme-challenge.$name: $left"
done
tw_done
