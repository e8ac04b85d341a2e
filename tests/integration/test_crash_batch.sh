#!/usr/bin/env bash
# Crash safety in the middle of a batch (issue 16): 40 certificates ordered
# at once finish their orders within a few milliseconds of each other, so
# their generations are stored and their files deployed as one burst of
# threadpool jobs. `certloop run` is killed with SIGKILL at the first moment
# of that burst: once as soon as the first generation is stored (others are
# being written), once, after a restart, as soon as the first certificate is
# deployed (others are being deployed or stored). Then one run without a
# kill. At the end: every deployed key matches its certificate and the
# deployed fullchain is the current generation's, every stored generation is
# complete, no order file, temp file or backup is left.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init crash_batch
TW_LOG_LEVEL=debug # "cert=NAME: stored generation GEN" is a debug line
tw_start || exit 1

N=40
tw_config_many "$N" 'b%02d' 64

# kill_at RUN PATTERN: starts the daemon and kills it with SIGKILL as soon
# as its log has a line matching PATTERN (within 60 s)
kill_at() {
  local run=$1 pattern=$2 t
  tw_daemon_start "$TW/certloop.toml" "$TW/out.$run" "$TW/err.$run"
  for ((t = 0; t < 12000; t++)); do
    grep -qE "$pattern" "$TW/err.$run" && break
    kill -0 "$TW_DAEMON_PID" 2>/dev/null || break
    sleep 0.005
  done
  kill -9 "$TW_DAEMON_PID" 2>/dev/null
  wait "$TW_DAEMON_PID" 2>/dev/null
  grep -qE "$pattern" "$TW/err.$run" || tw_fail "run $run: never saw /$pattern/"
  tw_log "kill $run at /$pattern/: $(tw_n_orders) order files, $(tw_n_deployed) of $N deployed, $(find "$TW/state" "$TW/out" -name '.tmp-*' | wc -l) temp files"
}

kill_at 0 ': stored generation '
[ "$(tw_n_deployed)" -lt "$N" ] || tw_fail "kill 0 came after the whole batch"
kill_at 1 '(issued|deployed) cert='

all_done() {
  [ "$(tw_n_deployed)" -ge "$N" ] && [ "$(tw_n_orders)" = 0 ] &&
    [ "$(grep -cE '(issued|deployed) cert=|: valid, renewal at' "$TW/err.2")" -ge "$N" ]
}
tw_daemon_start "$TW/certloop.toml" "$TW/out.2" "$TW/err.2" 120 all_done
tw_daemon_stop || tw_fail "the last run did not stop cleanly"
grep -c 'did not finish: deploying it\|resuming the stored order' "$TW/err.1" "$TW/err.2" |
  sed 's/^/resumed or redeployed: /' >&2

[ "$(tw_n_deployed)" = "$N" ] || tw_fail "$(tw_n_deployed) of $N deployed"
[ "$(tw_n_orders)" = 0 ] || tw_fail "order files left: $(ls "$TW/state/orders")"
tw_check_generations
tw_check_many "$N" 'b%02d'
left=$(find "$TW/state" "$TW/out" -name '.tmp-*' -o -name '.bak-*' 2>/dev/null)
[ -z "$left" ] || tw_fail "temp files left: $left"
tw_done
