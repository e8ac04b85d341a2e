#!/usr/bin/env bash
# tls-alpn-01 (RFC 8737) against Pebble 2.4's tls-alpn-01 validation (its
# tlsPort is certloop's [tlsalpn01] listener): a DNS name and an IP address
# (RFC 8738 §6: Pebble names it by its reverse name in the SNI) are
# validated and issued; while no challenge is live, the responder refuses a
# client offering acme-tls/1 (unrecognized_name) and one offering only
# http/1.1 (no_application_protocol) without showing a certificate.
# `certloop test` makes the CA's handshake on [tlsalpn01] public_port: with
# its own temporary responder (PASS: the probe's acmeIdentifier came back),
# beside the running daemon (PASS: its responder refuses the unknown name),
# against a TLS server that is no tls-alpn-01 responder and against a closed
# port (FAIL, saying why).
# A reload applies a changed [tlsalpn01] listen: the responder moves to the
# new port (the old one closes); a port that cannot be bound refuses the
# reload naming it and the responder stays; moved back, a forced renewal
# is validated by Pebble through it.
# Six POST /v1/certificates/alpn/test at once all answer (each test holds a
# threadpool thread and its probes need another: with four at once they
# used to wait on each other for ever, and the daemon with them).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init tlsalpn
tw_start || exit 1
API_PORT=$(tw_port)

{
  TW_LOG_LEVEL=debug tw_config_head 64
  tw_config_api "$API_PORT" "$TW/api-tokens"
  cat <<EOF2
[tlsalpn01]
listen = ["127.0.0.1:$TW_TLS_PORT"]

EOF2
  TW_CERT_EXTRA='challenge = "tls-alpn-01"' tw_config_cert alpn ec-p256 alpn.test 127.0.0.1
} >"$TW/certloop.toml"

"$CERTLOOP" check -c "$TW/certloop.toml" >"$TW/check.txt" 2>&1 ||
  tw_fail "check: $(cat "$TW/check.txt")"
"$CERTLOOP" api-token create manager --scopes manage -c "$TW/certloop.toml" >"$TW/manager.tok" \
  2>"$TW/tok.err" || tw_fail "api-token create: $(cat "$TW/tok.err")"

# A challenge for a wildcard or without [tlsalpn01] listen is refused by check.
sed -e 's/^listen = \["127.0.0.1:'"$TW_TLS_PORT"'"\]$/listen = []/' "$TW/certloop.toml" >"$TW/nolisten.toml"
out=$("$CERTLOOP" check -c "$TW/nolisten.toml" 2>&1) && tw_fail "check accepted tls-alpn-01 without a listener"
grep -q 'needs \[tlsalpn01\] listen' <<<"$out" || tw_fail "no-listener message: $out"
# public_port (where `certloop test` probes the responder) without listen
# would do nothing: refused with status 78, saying what to set.
sed -e 's/^listen = \[\]$/&\npublic_port = 5001/' "$TW/nolisten.toml" >"$TW/portonly.toml"
out=$("$CERTLOOP" check -c "$TW/portonly.toml" 2>&1)
rc=$?
[ "$rc" = 78 ] || tw_fail "check of public_port without listen: exit $rc: $out"
line=$(grep -n '^public_port = 5001$' "$TW/portonly.toml" | cut -d: -f1)
grep -qF "portonly.toml:$line:1: error: tlsalpn01.public_port: only used with [tlsalpn01] listen, which is empty: set listen" <<<"$out" ||
  tw_fail "public_port-without-listen message: $out"

# certloop test, the daemon not running: an IP identifier (no DNS needed),
# its reverse name as SNI (RFC 8738 section 6)
sed -e "s/^listen = \[\"127.0.0.1:$TW_TLS_PORT\"\]$/&\npublic_port = $TW_TLS_PORT/" \
  -e 's/^domains = \["alpn.test", "127.0.0.1"\]$/domains = ["127.0.0.1"]/' "$TW/certloop.toml" >"$TW/test.toml"
out=$("$CERTLOOP" test alpn -c "$TW/test.toml" 2>&1) || tw_fail "certloop test (own responder): $out"
grep -qF "test alpn: tls-alpn-01 127.0.0.1: 127.0.0.1:$TW_TLS_PORT answered acme-tls/1 for 1.0.0.127.in-addr.arpa with the probe's acmeIdentifier ... PASS" <<<"$out" ||
  tw_fail "certloop test (own responder): $out"
# a TLS server that offers acme-tls/1 but is no responder
OTHER=$(tw_port)
openssl s_server -accept "127.0.0.1:$OTHER" -cert "$TW/tls.pem" -key "$TW/tls.key" -alpn acme-tls/1 \
  -quiet </dev/null >/dev/null 2>&1 &
TW_PIDS+=($!)
for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/"$OTHER") 2>/dev/null && break; sleep 0.1; done
sed -i "s/^public_port = $TW_TLS_PORT$/public_port = $OTHER/" "$TW/test.toml"
out=$("$CERTLOOP" test alpn -c "$TW/test.toml" 2>&1) && tw_fail "certloop test passed against openssl s_server: $out"
grep -qF "127.0.0.1:$OTHER: the certificate has no acmeIdentifier extension: not a tls-alpn-01 responder ... FAIL" <<<"$out" ||
  tw_fail "certloop test (s_server): $out"
CLOSED=$(tw_port)
sed -i "s/^public_port = $OTHER$/public_port = $CLOSED/" "$TW/test.toml"
out=$("$CERTLOOP" test alpn -c "$TW/test.toml" 2>&1) && tw_fail "certloop test passed on a closed port: $out"
grep -qF "cannot connect to 127.0.0.1:$CLOSED ... FAIL" <<<"$out" || tw_fail "certloop test (closed port): $out"
sed -i "s/^public_port = $CLOSED$/public_port = $TW_TLS_PORT/" "$TW/test.toml"

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

# certloop test beside the daemon: its responder holds the port and refuses
# the probe's name
out=$("$CERTLOOP" test alpn -c "$TW/test.toml" 2>&1) || tw_fail "certloop test (daemon): $out"
grep -q "test alpn: tls-alpn-01 127.0.0.1: TLS handshake with 127.0.0.1:$TW_TLS_PORT (SNI 1.0.0.127.in-addr.arpa, ALPN acme-tls/1): .*unrecognized name (certloop's responder, refusing a name without a live challenge: the daemon's) ... PASS" <<<"$out" ||
  tw_fail "certloop test (daemon): $out"

# POST .../test six times at once through the API: every one answers
for i in 1 2 3 4 5 6; do
  curl -sS --max-time 120 --cacert "$TW/state/api/bootstrap.pem" -X POST \
    -H "Authorization: Bearer $(cat "$TW/manager.tok")" -o "$TW/test$i.json" -w '%{http_code}' \
    "https://127.0.0.1:$API_PORT/v1/certificates/alpn/test" >"$TW/test$i.st" 2>&1 &
  pids[i]=$!
done
for i in 1 2 3 4 5 6; do
  wait "${pids[i]}"
  [ "$(cat "$TW/test$i.st")" = 200 ] && grep -q '"test alpn: tls-alpn-01 ' "$TW/test$i.json" ||
    tw_fail "concurrent API test $i: $(cat "$TW/test$i.st") $(head -c 300 "$TW/test$i.json" 2>/dev/null)"
done

# [tlsalpn01] listen changed by a reload (no restart)
NEW=$(tw_port)
sed -i "s/^listen = \[\"127.0.0.1:$TW_TLS_PORT\"\]$/listen = [\"127.0.0.1:$NEW\"]/" "$TW/certloop.toml"
out=$("$CERTLOOP" reload -c "$TW/certloop.toml" 2>&1) || tw_fail "reload to port $NEW: $out"
out=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$NEW" -servername alpn.test -alpn acme-tls/1 2>&1)
grep -q 'unrecognized name' <<<"$out" || tw_fail "the responder is not on the new port $NEW: $out"
(echo >/dev/tcp/127.0.0.1/"$TW_TLS_PORT") 2>/dev/null && tw_fail "the old port $TW_TLS_PORT still accepts"
grep -q "tlsalpn01: now listening on 127.0.0.1:$NEW" "$TW/err.txt" || tw_fail "no log line for the move"
# a port in use: the reload is refused, naming it; the responder stays
BUSY=$(tw_port)
python3 -c 'import socket,sys,time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); print("ok", flush=True); time.sleep(60)' "$BUSY" >"$TW/busy.txt" &
TW_PIDS+=($!)
tw_wait 30 grep -q ok "$TW/busy.txt" # (a python3 start takes seconds on a loaded machine)
sed -i "s/^listen = \[\"127.0.0.1:$NEW\"\]$/listen = [\"127.0.0.1:$BUSY\"]/" "$TW/certloop.toml"
out=$("$CERTLOOP" reload -c "$TW/certloop.toml" 2>&1) && tw_fail "reload to a busy port succeeded: $out"
grep -q "tlsalpn01.listen: cannot listen on 127.0.0.1:$BUSY: " <<<"$out" || tw_fail "busy port refusal: $out"
out=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$NEW" -servername alpn.test -alpn acme-tls/1 2>&1)
grep -q 'unrecognized name' <<<"$out" || tw_fail "the responder left port $NEW after a refused reload: $out"
# back to Pebble's tlsPort: a forced renewal is validated through it
sed -i "s/^listen = \[\"127.0.0.1:$BUSY\"\]$/listen = [\"127.0.0.1:$TW_TLS_PORT\"]/" "$TW/certloop.toml"
out=$("$CERTLOOP" reload -c "$TW/certloop.toml" 2>&1) || tw_fail "reload back: $out"
n=$(grep -c 'tlsalpn01: challenge certificate served for alpn.test' "$TW/err.txt")
before=$(sha256sum <"$TW/out/alpn/cert.pem")
"$CERTLOOP" renew alpn --force -c "$TW/certloop.toml" >/dev/null 2>&1 || tw_fail "renew --force"
cert_changed() { [ "$(sha256sum <"$TW/out/alpn/cert.pem")" != "$before" ]; }
tw_daemon_wait 60 cert_changed ||
  tw_fail "not renewed after the listener moved back: $(tail -5 "$TW/err.txt")"
[ "$(grep -c 'tlsalpn01: challenge certificate served for alpn.test' "$TW/err.txt")" -gt "$n" ] ||
  tw_fail "the renewal was not validated through the moved listener"

tw_daemon_stop
tw_done
