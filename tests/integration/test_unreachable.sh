#!/usr/bin/env bash
# Pebble validates http-01 on a port where nobody listens: `run --once` ends
# with exit 1, the error line names the certificate, the identifier and the
# CA's problem document (urn:ietf:params:acme:error:connection), the summary
# says failed, and nothing is stored or deployed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init unreachable
TW_HTTP_PORT=$(tw_port) # Pebble validates here; certloop listens elsewhere
tw_start || exit 1
listen=$(tw_port)
{
  tw_config_head 8 "$listen"
  tw_config_cert bad ec-p256 bad.test
} >"$TW/certloop.toml"

timeout 120 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
[ "$rc" = 1 ] || tw_fail "run --once exited $rc, expected 1"
line=$(grep ' error ' "$TW/err.txt" | grep 'cert=bad' | head -1)
tw_log "error line: $line"
case $line in
*"order cert=bad name=bad.test: authorization invalid: urn:ietf:params:acme:error:connection"*) ;;
*) tw_fail "error line does not name cert, identifier and problem: $line" ;;
esac
grep -q "^bad: failed: name=bad.test: authorization invalid: urn:ietf:params:acme:error:connection" \
  "$TW/out.txt" || tw_fail "summary: $(cat "$TW/out.txt")"
[ ! -e "$TW/out/bad/fullchain.pem" ] || tw_fail "something was deployed"
[ ! -e "$TW/state/certs/bad/current" ] || tw_fail "something was stored"
tw_done
