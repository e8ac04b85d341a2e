#!/usr/bin/env bash
# Crash safety of the daemon: `certloop run` with 100 certificates ordered at
# once (max_concurrent_orders 100) is killed with SIGKILL at a random moment
# while orders are in flight (0-0.6 s after the first order file appears in
# the first run, 0-0.3 s in the next ones), restarted, killed again, ... until every
# certificate is issued; then one last run without a kill. After each kill:
# nothing in the state directory or among the deployed keys is readable by
# others. After each restart: a certificate whose order file was left on disk
# is resumed (the same order URL) and never gets a second newOrder, unless
# the CA says the stored order is invalid or gone. At the end: every
# deployed key matches its certificate, every fullchain verifies against
# Pebble's root, no order file and no temp file is left in the state
# directory or the deploy directories.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init crash
TW_LOG_LEVEL=debug # "order cert=NAME: created URL" is a debug line
tw_start || exit 1

N=100
MAX_KILLS=${CRASH_KILLS:-6}
tw_config_many "$N" 'k%03d' 100


# world_readable: secrets readable by others: keys (stored and deployed),
# order files (they hold the pending key), account files, and the temp
# files and backups of any of them; and the state's subdirectories open to
# others (the test made $TW/state itself 0755). Temp files of certificates
# are 0644 like the certificates.
world_readable() {
  find "$TW/state" "$TW/out" -type f \( -name 'key.pem' -o -name '*.key' -o -name '*.json' \
    -o -name '.tmp-key.pem-*' -o -name '.tmp-*.key-*' -o -name '.bak-key.pem-*' \
    -o -name '.bak-*.key-*' -o -name '.tmp-*.json-*' \) \
    -perm /o+rwx 2>/dev/null | grep -Ev '/(\.tmp-)?meta\.json(-[0-9a-f]+)?$'
  find "$TW/state" -mindepth 1 -maxdepth 1 -type d -perm /o+rwx 2>/dev/null
}

# snapshot K: NAME URL for every order file on disk after kill K (a file that
# is not a complete order fails the test: writes are atomic)
snapshot() {
  python3 - "$TW/state/orders" >"$TW/orders.$1" 2>"$TW/snapshot.err" <<'PY'
import json, os, sys
d = sys.argv[1]
for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
    if not f.endswith(".json"):
        continue
    try:
        print(f[:-5], json.load(open(os.path.join(d, f)))["order"])
    except Exception as e:
        print(f"{f}: not a complete order file: {e}", file=sys.stderr)
PY
  [ -s "$TW/snapshot.err" ] && tw_fail "kill $1: $(cat "$TW/snapshot.err")"
}

# check_resumed K: run K (after kill K-1) resumed every order left by kill
# K-1 and sent no newOrder for those certificates, unless the CA said the
# stored order was invalid or gone.
check_resumed() {
  local k=$1 prev=$(($1 - 1)) log="$TW/err.$1" name url created renewed resumed
  [ -s "$TW/orders.$prev" ] || return 0
  while read -r name url; do
    created=$(grep -c "order cert=$name: created " "$log")
    renewed=$(grep -cE "order cert=$name: stored order (is invalid|.* is gone)" "$log")
    if [ "$created" -gt "$renewed" ]; then
      tw_fail "run $k: $name had order $url in flight and got $created new order(s)"
      grep -F "cert=$name" "$log" | sed 's/^/  | /' >&2
    fi
    if grep -qF "cert=$name: stored order not usable" "$log"; then
      tw_fail "run $k: $name: $(grep -F "cert=$name: stored order not usable" "$log" | head -1)"
    fi
    resumed=$(grep -oE "order cert=$name: resuming [^ ]+" "$log" | awk '{print $4}' | sort -u)
    if [ -n "$resumed" ] && [ "$resumed" != "$url" ]; then
      tw_fail "run $k: $name resumed $resumed, but the order file held $url"
    fi
  done <"$TW/orders.$prev"
  RESUMED_TOTAL=$((RESUMED_TOTAL + $(grep -c 'resuming the stored order\|did not finish: deploying it' "$log")))
}

has_orders() {
  [ "$(tw_n_orders)" -gt 0 ]
}

RESUMED_TOTAL=0
TEMPS_SEEN=0 # temp files left by the kills: the next start must remove them
kills=0
run=0
while [ "$kills" -lt "$MAX_KILLS" ] && [ "$(tw_n_deployed)" -lt "$N" ]; do
  tw_daemon_start "$TW/certloop.toml" "$TW/out.$run" "$TW/err.$run"
  # a random moment while orders are in flight: once an order file is on
  # disk, 0-0.6 s later in the first run, 0-0.3 s in the next ones (with
  # validation-aware polling 100 certificates take about 2 s, so a delay
  # counted from the start often came after the last order)
  tw_daemon_wait 15 has_orders
  delay_ms=$((RANDOM % (run == 0 ? 601 : 301)))
  sleep "$(printf '0.%03d' $((delay_ms % 1000)))"
  sleep $((delay_ms / 1000))
  kill -9 "$TW_DAEMON_PID" 2>/dev/null
  wait "$TW_DAEMON_PID" 2>/dev/null
  snapshot "$run"
  bad=$(world_readable)
  [ -z "$bad" ] || tw_fail "kill $run: readable by others: $bad"
  tmps=$(find "$TW/state" "$TW/out" -name '.tmp-*' 2>/dev/null | wc -l)
  TEMPS_SEEN=$((TEMPS_SEEN + tmps))
  tw_log "kill $run ${delay_ms} ms after the first order file: $(tw_n_orders) order files, $(tw_n_deployed) of $N deployed, $tmps temp files"
  [ "$run" -gt 0 ] && check_resumed "$run"
  kills=$((kills + 1))
  run=$((run + 1))
done
[ "$kills" -gt 0 ] || tw_fail "nothing was killed"

# the last run: no kill; wait until everything is deployed and no order is left
all_done() {
  [ "$(tw_n_deployed)" -ge "$N" ] && [ "$(tw_n_orders)" = 0 ] &&
    [ "$(grep -cE '^.*(issued|deployed) cert=|: valid, renewal at' "$TW/err.$run")" -ge "$N" ]
}
tw_daemon_start "$TW/certloop.toml" "$TW/out.$run" "$TW/err.$run" 120 all_done
tw_daemon_stop
rc=$?
[ "$rc" = 0 ] || tw_fail "the last run exited $rc after SIGTERM"
check_resumed "$run"
tw_log "$kills kills, $RESUMED_TOTAL orders resumed or stored generations redeployed, $TEMPS_SEEN temp files left by the kills"
[ "$RESUMED_TOTAL" -gt 0 ] || tw_fail "no kill left an order to resume (kill earlier?)"

[ "$(tw_n_deployed)" = "$N" ] || tw_fail "$(tw_n_deployed) of $N deployed"
[ "$(tw_n_orders)" = 0 ] || tw_fail "order files left: $(ls "$TW/state/orders")"
grep -h ' error ' "$TW"/err.* | head -5 >&2

# every stored generation and every deployed pair matches; chains verify
tw_check_generations
tw_check_many "$N" 'k%03d'

tmp=$(find "$TW/state" "$TW/out" -name '.tmp-*' -o -name '.bak-*' 2>/dev/null)
[ -z "$tmp" ] || tw_fail "temp files left: $tmp"
bad=$(world_readable)
[ -z "$bad" ] || tw_fail "readable by others at the end: $bad"
tw_done
