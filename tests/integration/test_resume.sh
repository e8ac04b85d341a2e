#!/usr/bin/env bash
# Crash-resume: `run --once` for 50 certificates is killed with SIGKILL in the
# middle (orders in flight, some certificates stored), then run again: every
# certificate ends up issued, orders left behind are resumed (same key), no
# order file remains, and no key/certificate pair anywhere (state and
# deployed files) is mismatched.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init resume
tw_start || exit 1

N=50
{
  tw_config_head 64
  for ((i = 0; i < N; i++)); do
    name=$(printf 'r%02d' "$i")
    kt=ec-p256
    [ $((i % 10)) = 3 ] && kt=rsa2048
    tw_config_cert "$name" "$kt" "$name.test" "www.$name.test"
  done
} >"$TW/certloop.toml"

"$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out1.txt" 2>"$TW/err1.txt" &
pid=$!
# Kill once some orders are on disk (in flight), before everything is done.
killed=0
for ((t = 0; t < 300; t++)); do
  n_orders=$(ls "$TW/state/orders" 2>/dev/null | wc -l)
  n_certs=$(ls -d "$TW/state/certs"/*/current 2>/dev/null | wc -l)
  if [ "$n_certs" -ge 3 ] && [ "$n_orders" -ge 1 ]; then
    kill -9 "$pid" 2>/dev/null && killed=1
    break
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
wait "$pid" 2>/dev/null
n_orders=$(ls "$TW/state/orders" 2>/dev/null | wc -l)
n_certs=$(ls -d "$TW/state/certs"/*/current 2>/dev/null | wc -l)
tw_log "killed=$killed with $n_orders orders in flight and $n_certs certificates stored"
[ "$killed" = 1 ] || tw_fail "the first run ended before it could be killed"
[ "$n_orders" -gt 0 ] || tw_fail "no order file was left to resume"

timeout 300 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out2.txt" 2>"$TW/err2.txt"
rc=$?
[ "$rc" = 0 ] || { tw_fail "second run exited $rc"; grep ' error ' "$TW/err2.txt" | head >&2; }
resumed=$(grep -c 'resuming the stored order' "$TW/err2.txt")
tw_log "resumed $resumed orders"
[ "$resumed" -gt 0 ] || tw_fail "no order was resumed"
done_lines=$(grep -cE ': (issued, expires|ok, valid until) ' "$TW/out2.txt")
[ "$done_lines" = "$N" ] || tw_fail "second run: $done_lines of $N issued or ok"
if [ -n "$(ls -A "$TW/state/orders" 2>/dev/null)" ]; then
  tw_fail "order files left: $(ls "$TW/state/orders")"
fi

# every stored generation and every deployed pair matches
tw_check_generations
for ((i = 0; i < N; i++)); do
  tw_check_deployed "$(printf 'r%02d' "$i")"
done
tw_done
