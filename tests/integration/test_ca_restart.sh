#!/usr/bin/env bash
# Pebble restarted under a running daemon forgets every account; certloop
# must set its account up again and renew without a failed order. The
# first request answered accountDoesNotExist starts the setup again (the
# directory first); requests waiting for a slot (max_parallel_requests = 1)
# or a nonce meanwhile used to be signed with no kid, which Pebble answers
# "malformed: Key ID (kid) in JWS header missing expected URL prefix": each
# such order failed and waited for its backoff. Now they wait for the account.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
tw_init carestart
tw_start || exit 1
PEBBLE_PID=${TW_PIDS[-1]}
N=16

{
  TW_CA_PARALLEL=1 tw_config_head
  for i in $(seq 1 $N); do tw_config_cert "c$i" ec-p256 "c$i.test"; done
} >"$TW/certloop.toml"

n_issued() { [ "$(grep -c 'info main: issued cert=' "$TW/d.err")" -ge "$1" ]; }
tw_daemon_start "$TW/certloop.toml" "$TW/d.out" "$TW/d.err" 120 n_issued $N ||
  { tw_fail "the first $N issuances did not happen"; tail -20 "$TW/d.err" >&2; exit 1; }

# the restarted Pebble knows no account
kill "$PEBBLE_PID"
wait "$PEBBLE_PID" 2>/dev/null
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
  pebble -config "$TW/pebble.json" -dnsserver "127.0.0.1:$TW_DNS_PORT" >"$TW/pebble2.log" 2>&1 &
TW_PIDS+=($!)
tw_wait_http "$TW_DIRECTORY" "$TW/tls-ca.pem" 30 || { tw_fail "Pebble did not come back"; exit 1; }

"$CERTLOOP" renew --force --all -c "$TW/certloop.toml" >"$TW/renew.out" 2>&1 || { tw_fail "renew --force --all failed"; cat "$TW/renew.out" >&2; }
n_failed() { grep -c 'error main: order cert=' "$TW/d.err"; }
renewed() { n_issued $((2 * N)) || [ "$(n_failed)" -gt 0 ]; }
tw_daemon_wait 120 renewed
if [ "$(n_failed)" -gt 0 ]; then
  tw_fail "$(n_failed) orders failed after the restart"
  grep 'error main: order cert=' "$TW/d.err" | head -5 >&2
fi
n_issued $((2 * N)) || tw_fail "not every certificate renewed after the restart"
grep -q 'unknown to the CA: setting it up again' "$TW/d.err" ||
  tw_fail "the forgotten account was not noticed"
[ "$(grep -c 'account registered' "$TW/d.err")" -eq 2 ] ||
  tw_fail "expected one registration before and one after the restart"
if grep -q 'malformed' "$TW/d.err"; then
  tw_fail "a request reached Pebble without the account's kid"
fi
"$CERTLOOP" status -c "$TW/certloop.toml" >"$TW/status" 2>&1
[ "$(grep -c ' valid ' "$TW/status")" -eq $N ] || { tw_fail "not every certificate valid"; cat "$TW/status" >&2; }
tw_daemon_stop || tw_fail "the daemon did not exit cleanly"
tw_done
