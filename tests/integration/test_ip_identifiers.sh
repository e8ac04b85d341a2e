#!/usr/bin/env bash
# RFC 8738 IP identifiers against Pebble 2.4 (which issues for them):
# domains = ["127.0.0.1", "::1"] (with a DNS name beside them) go into
# newOrder as ip identifiers and into the CSR as iPAddress SANs, http-01 is
# answered by the listener on both loopback addresses, and the deployed
# certificate holds IP:127.0.0.1, IP:0:0:0:0:0:0:0:1 and the name;
# `certloop test` checks an address without DNS or CAA lookups.
# Regression: "192.0.2.10" was sent as a dns identifier and the CA refused
# the order ("DNS identifier with an IP address value").
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init ip
tw_start || exit 1

# certloop test: an address needs no DNS and no CAA; the probe token is
# fetched from the address itself
{
  tw_config_head 64 | sed "s|^listen = .*|listen = [\"127.0.0.1:$TW_HTTP_PORT\"]\npublic_port = $TW_HTTP_PORT|"
  tw_config_cert iponly ec-p256 127.0.0.1
} >"$TW/test.toml"
out=$(timeout 60 "$CERTLOOP" test iponly -c "$TW/test.toml" 2>&1) || tw_fail "certloop test: $out"
grep -q "dns .*127.0.0.1: an IP address (RFC 8738): nothing to resolve ... PASS" <<<"$out" ||
  tw_fail "certloop test dns line: $out"
rm -rf "$TW/out/iponly"

{
  tw_config_head 64 | sed "s|^listen = .*|listen = [\"127.0.0.1:$TW_HTTP_PORT\", \"[::1]:$TW_HTTP_PORT\"]|"
  tw_config_cert ipcert ec-p256 127.0.0.1 ::1 ip.test
} >"$TW/certloop.toml"

"$CERTLOOP" check -c "$TW/certloop.toml" >"$TW/check.txt" 2>&1 ||
  tw_fail "check refused IP identifiers: $(cat "$TW/check.txt")"
timeout 120 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out.txt" 2>"$TW/err.txt" ||
  tw_fail "run --once failed: $(tail -5 "$TW/err.txt")"
if tw_check_deployed ipcert; then
  sans=$(openssl x509 -in "$TW/out/ipcert/cert.pem" -noout -ext subjectAltName | tail -n +2)
  for want in "IP Address:127.0.0.1" "IP Address:0:0:0:0:0:0:0:1" "DNS:ip.test"; do
    grep -qF "$want" <<<"$sans" || tw_fail "SAN $want missing: $sans"
  done
  tw_log "issued for: $sans"
fi
grep -q "DNS identifier with an IP address" "$TW/err.txt" && tw_fail "sent as a dns identifier"

tw_done
