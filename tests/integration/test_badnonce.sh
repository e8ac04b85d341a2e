#!/usr/bin/env bash
# Pebble rejects 30% of good nonces as badNonce (PEBBLE_WFE_NONCEREJECT=30):
# every request is retried with the nonce that came with the error, and all
# certificates are still issued; the retries are visible in the debug log.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init badnonce
PEBBLE_WFE_NONCEREJECT=30 tw_start || exit 1

N=20
{
  TW_LOG_LEVEL=debug tw_config_head 64
  for ((i = 0; i < N; i++)); do
    name=$(printf 'n%02d' "$i")
    tw_config_cert "$name" ec-p256 "$name.test" "www.$name.test"
  done
} >"$TW/certloop.toml"

timeout 300 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
[ "$rc" = 0 ] || { tw_fail "run --once exited $rc"; grep -E " error " "$TW/err.txt" | head >&2; }
issued=$(grep -c ': issued, expires ' "$TW/out.txt")
[ "$issued" = "$N" ] || tw_fail "$issued of $N issued"
retries=$(grep -c 'badNonce, retry' "$TW/err.txt")
[ "$retries" -gt 0 ] || tw_fail "no badNonce retry seen (is PEBBLE_WFE_NONCEREJECT honoured?)"
tw_log "badNonce retries: $retries"
for ((i = 0; i < N; i++)); do
  name=$(printf 'n%02d' "$i")
  tw_verify_fullchain "$TW/out/$name/fullchain.pem" || tw_fail "$name: chain does not verify"
  tw_check_pair "$TW/out/$name/fullchain.pem" "$TW/out/$name/key.pem" || tw_fail "$name: key mismatch"
done
tw_done
