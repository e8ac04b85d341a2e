#!/usr/bin/env bash
# Graceful stop: `certloop run` with 40 http-01 and 16 dns-01 certificates
# (RFC 2136 to Knot) gets SIGTERM while many orders are in flight (Pebble
# keeps its random validation delay, so authorizations stay pending). The
# daemon exits 0 within a generous bound (30 s; the measured time is
# printed), its http-01 listener is gone (no token is served any more), no
# _acme-challenge TXT record is left in the zone, and every certificate not
# yet issued has its order file on disk. A restart resumes those orders
# (same order URL, no second newOrder unless the CA dropped the stored one)
# and issues everything.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/knot.sh"

NH=40
ND=16
N=$((NH + ND))
STOP_BOUND_S=30

# Pebble's random 0-15 s validation delay keeps orders in flight
PEBBLE_VA_NOSLEEP= tw_knot_start stop
TW_LOG_LEVEL=debug # "order cert=NAME: created URL" and the challenge tokens

{
  tw_knot_config_head 64
  for ((i = 0; i < NH; i++)); do
    tw_config_cert "h$i" ec-p256 "h$i.test"
  done
  for ((i = 0; i < ND; i++)); do
    TW_CERT_EXTRA=$TW_KNOT_DNS01 tw_config_cert "d$i" ec-p256 "d$i.test"
  done
} >"$TW/certloop.toml"
"$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null 2>"$TW/check.txt" ||
  { tw_fail "config invalid: $(cat "$TW/check.txt")"; tw_done; }

names() {
  local i
  for ((i = 0; i < NH; i++)); do echo "h$i"; done
  for ((i = 0; i < ND; i++)); do echo "d$i"; done
}

# wait until many orders are in flight: order files on disk for most
# certificates and dns-01 TXT records in the zone
in_flight() {
  [ "$(tw_n_orders)" -ge $((N / 2)) ] && [ -n "$(knot_acme_txt)" ]
}
tw_daemon_start "$TW/certloop.toml" "$TW/out.1" "$TW/err.1" 60 in_flight
inflight=$(tw_n_orders)
txt_before=$(knot_acme_txt | wc -l)
tw_log "SIGTERM with $inflight order files, $txt_before TXT records, $(tw_n_deployed) of $N deployed"
[ "$inflight" -ge $((N / 2)) ] || tw_fail "only $inflight orders in flight when stopping"
[ "$txt_before" -gt 0 ] || tw_fail "no dns-01 record was in the zone when stopping"

t0=$(date +%s%N)
tw_daemon_stop "$STOP_BOUND_S"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
tw_log "stopped in $ms ms (exit $rc)"
[ "$rc" = 0 ] || tw_fail "exit $rc after SIGTERM, want 0"
grep -qF "handle still open" "$TW/err.1" && tw_fail "handles left open at shutdown"
grep -qF "SIGTERM: stopping" "$TW/err.1" || tw_fail "no 'SIGTERM: stopping' in the log"

# no token is served: the listener is closed
tokens=$(grep -oE '"token": "[A-Za-z0-9_-]+"' "$TW/err.1" | cut -d'"' -f4 | sort -u)
[ -n "$tokens" ] || tw_fail "no challenge token seen in the debug log"
for tok in $(head -5 <<<"$tokens"); do
  if curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$TW_HTTP_PORT/.well-known/acme-challenge/$tok"; then
    tw_fail "token $tok still answered on 127.0.0.1:$TW_HTTP_PORT after the stop"
  fi
done

# no TXT record left
left=$(knot_acme_txt)
[ -z "$left" ] || tw_fail "TXT left in the zone after the stop: $(head -3 <<<"$left")"

# every certificate not deployed yet has its order file (a restart resumes it)
missing=""
for n in $(names); do
  [ -s "$TW/out/$n/fullchain.pem" ] && continue
  if grep -q "order cert=$n: created " "$TW/err.1"; then
    [ -f "$TW/state/orders/$n.json" ] || missing="$missing $n"
  fi
done
[ -z "$missing" ] || tw_fail "orders created but no order file left for:$missing"
python3 - "$TW/state/orders" >"$TW/orders.stop" <<'PY'
import json, os, sys
d = sys.argv[1]
for f in sorted(os.listdir(d)):
    if f.endswith(".json"):
        print(f[:-5], json.load(open(os.path.join(d, f)))["order"])
PY

# the restart resumes them and issues everything
all_done() {
  [ "$(tw_n_deployed)" -ge "$N" ] && [ "$(tw_n_orders)" = 0 ]
}
tw_daemon_start "$TW/certloop.toml" "$TW/out.2" "$TW/err.2" 180 all_done
tw_daemon_stop
rc=$?
[ "$rc" = 0 ] || tw_fail "the restarted daemon exited $rc after SIGTERM"
[ "$(tw_n_deployed)" = "$N" ] || tw_fail "after the restart: $(tw_n_deployed) of $N deployed"
[ "$(tw_n_orders)" = 0 ] || tw_fail "order files left at the end: $(ls "$TW/state/orders")"
resumed=0
while read -r name url; do
  created=$(grep -c "order cert=$name: created " "$TW/err.2")
  renewed=$(grep -cE "order cert=$name: stored order (is invalid|.* is gone)" "$TW/err.2")
  [ "$created" -le "$renewed" ] ||
    tw_fail "$name: its order $url was recorded at the stop, yet the restart sent newOrder"
  grep -qF "order cert=$name: resuming $url " "$TW/err.2" && resumed=$((resumed + 1))
done <"$TW/orders.stop"
tw_log "restart: $resumed of $(wc -l <"$TW/orders.stop") recorded orders resumed by URL"
[ "$resumed" -gt 0 ] || tw_fail "no recorded order was resumed"
for n in $(names); do
  f="$TW/out/$n/fullchain.pem"
  [ -s "$f" ] || continue
  tw_check_pair "$f" "$TW/out/$n/key.pem" || tw_fail "$n: key mismatch"
  tw_verify_fullchain "$f" || tw_fail "$n: chain does not verify"
done
left=$(knot_acme_txt)
[ -z "$left" ] || tw_fail "TXT left in the zone at the end: $(head -3 <<<"$left")"
[ "$TW_FAILS" -gt 0 ] && grep -E ' (error|warn) ' "$TW/err.1" "$TW/err.2" | head -20 >&2
tw_done
