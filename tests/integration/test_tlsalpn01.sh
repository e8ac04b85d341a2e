#!/usr/bin/env bash
# tls-alpn-01 (RFC 8737) against Pebble 2.4's tls-alpn-01 validation (its
# tlsPort is certloop's [tlsalpn01] listener): a DNS name and an IP address
# (RFC 8738 §6: Pebble names it by its reverse name in the SNI) are
# validated and issued; while no challenge is live, the responder refuses a
# client offering acme-tls/1 (unrecognized_name) and one offering only
# http/1.1 (no_application_protocol) without showing a certificate.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init tlsalpn
tw_start || exit 1

{
  TW_LOG_LEVEL=debug tw_config_head 64
  cat <<EOF2
[tlsalpn01]
listen = ["127.0.0.1:$TW_TLS_PORT"]

EOF2
  TW_CERT_EXTRA='challenge = "tls-alpn-01"' tw_config_cert alpn ec-p256 alpn.test 127.0.0.1
} >"$TW/certloop.toml"

"$CERTLOOP" check -c "$TW/certloop.toml" >"$TW/check.txt" 2>&1 ||
  tw_fail "check: $(cat "$TW/check.txt")"

# A challenge for a wildcard or without [tlsalpn01] listen is refused by check.
sed -e 's/^listen = \["127.0.0.1:'"$TW_TLS_PORT"'"\]$/listen = []/' "$TW/certloop.toml" >"$TW/nolisten.toml"
out=$("$CERTLOOP" check -c "$TW/nolisten.toml" 2>&1) && tw_fail "check accepted tls-alpn-01 without a listener"
grep -q 'needs \[tlsalpn01\] listen' <<<"$out" || tw_fail "no-listener message: $out"

tw_daemon_start "$TW/certloop.toml" "$TW/out.txt" "$TW/err.txt" 60 test -s "$TW/out/alpn/fullchain.pem" ||
  tw_fail "not issued: $(tail -5 "$TW/err.txt")"
if tw_check_deployed alpn; then
  sans=$(openssl x509 -in "$TW/out/alpn/cert.pem" -noout -ext subjectAltName | tail -n +2)
  grep -qF "DNS:alpn.test" <<<"$sans" && grep -qF "IP Address:127.0.0.1" <<<"$sans" ||
    tw_fail "SANs: $sans"
  tw_log "issued over tls-alpn-01: $sans"
fi
# Pebble's validations reached the responder: once per vantage point and name.
grep -q 'tlsalpn01: challenge certificate served for alpn.test' "$TW/err.txt" ||
  tw_fail "Pebble did not validate alpn.test with tls-alpn-01"
grep -q 'tlsalpn01: challenge certificate served for 1.0.0.127.in-addr.arpa' "$TW/err.txt" ||
  tw_fail "Pebble did not validate 127.0.0.1 with tls-alpn-01 (reverse name)"

# The order is done, no challenge is live: nothing is served.
out=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$TW_TLS_PORT" -servername alpn.test \
  -alpn acme-tls/1 2>&1)
grep -q 'unrecognized name' <<<"$out" || tw_fail "after the order: $out"
grep -q 'BEGIN CERTIFICATE' <<<"$out" && tw_fail "a certificate was shown after the order"
out=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$TW_TLS_PORT" -servername alpn.test \
  -alpn http/1.1 2>&1)
grep -q 'no application protocol' <<<"$out" || tw_fail "without acme-tls/1: $out"

tw_daemon_stop
tw_done
