#!/usr/bin/env bash
# Benchmark: issuing N certificates with `certloop run --once` (all at once
# on one event loop) against Debian's lego and uacme run the way their users
# run them (one process per certificate; sequentially and 8 at once), all
# from a local Pebble on 127.0.0.1 with a mock DNS answering *.test.
#
#   bench/issue.sh [--quick] [--phases LIST] [--reps K] [--out FILE] [--build DIR]
#   bench/issue.sh --certloop-only N [--delay] [--max-orders M]   # certloop alone
#   CERTLOOP_WRAP="perf record -e cpu-clock --call-graph dwarf -o /tmp/p.data" \
#     bench/issue.sh --certloop-only 100            # (or valgrind --tool=callgrind)
#
# Certificates: EC P-256 keys; certificate i is for c<i>.test and, when i is
# odd, also www.c<i>.test (1.5 authorizations per certificate on average).
# Every phase gets a fresh Pebble (PEBBLE_AUTHZREUSE=0, no nonce rejection)
# and a fresh client state. Measured per phase: wall time; client CPU
# (user+sys; for the peers summed over their processes); Pebble's own CPU
# (utime+stime from /proc/PID/stat before and after); peak RSS (certloop:
# /usr/bin/time %M; peers: the largest process).
#
# certloop's runs are repeated (--reps, default 3, 1 with --quick) and the
# median by wall time is shown; the peers run once (they take minutes).
# Phases (--quick: only the first; --phases 1,2: only those, e.g. N=10 and
# N=100 with their peers):
#   1. no validation delay (PEBBLE_VA_NOSLEEP=1), N=10: certloop; lego and
#      uacme sequentially and 8 at once
#   2. no delay, N=100: certloop; lego and uacme 8 at once (sequential rows
#      are extrapolated from phase 1 and labelled so)
#   3. no delay, N=500: certloop (peer rows extrapolated, labelled)
#   4. Pebble's default validation delay, N=100: certloop (the default
#      max_concurrent_orders = 64, and 128 so all 100 orders run at once);
#      the peers 8 at once for N=16, and uacme sequentially for N=4
#   5. no delay, N=50 (issue 16's target: <= 1.0 s, <= 0.1 x the best peer):
#      certloop ($REPS runs, 5 by default here), lego and uacme 8 at once,
#      and the floor: Pebble alone answering 8.56 x N requests (certloop's
#      count per certificate) one at a time over one keep-alive connection
#      (curl GETs of the directory, the cheapest request Pebble serves)
# The peers serve http-01 tokens from a webroot (lego --http.webroot, a
# uacme hook) through `python3 -m http.server` on Pebble's http-01 port;
# certloop answers http-01 itself. The file server's CPU is not counted for
# the peers (it is noted per row); certloop's CPU includes its listener.
# Pebble 2.4's in-memory store can deadlock under many concurrent requests
# (seen at N=500): a watchdog notices Pebble's log standing still for 20 s,
# makes it dump its goroutines (kept beside --out, as are certloop's logs)
# and the certloop run is tried again with a fresh Pebble, at most 3
# attempts; the table and the list below it say so.
# Each row notes the 1-minute load average at its start: other work on the
# machine inflates wall times (CPU times much less).
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0
PHASES=1,2,3,4
ONLY=
DELAY=0
MAXO=64
REPS=
OUT=
BUILD=${BUILD_DIR:-$SRC/build}
while [ $# -gt 0 ]; do
  case $1 in
  --quick) QUICK=1 PHASES=1 ;;
  --phases) PHASES=$2; shift ;;
  --reps) REPS=$2; shift ;;
  --certloop-only) ONLY=$2; shift ;;
  --delay) DELAY=1 ;;
  --max-orders) MAXO=$2; shift ;;
  --out) OUT=$2; shift ;;
  --build) BUILD=$2; shift ;;
  -h | --help) sed -n '2,47p' "$0"; exit 0 ;;
  *) echo "unknown argument $1" >&2; exit 64 ;;
  esac
  shift
done
CERTLOOP=${CERTLOOP:-$BUILD/certloop}
[ -n "$REPS" ] || { [ "$QUICK" = 1 ] && REPS=1 || REPS=3; }
# phase K: whether --phases (comma-separated) names phase K.
phase() {
  case ",$PHASES," in *",$1,"*) return 0 ;; esac
  return 1
}
OUT=${OUT:-/tmp/certloop-bench-issue-$(date -u +%Y%m%d-%H%M%S).md}

. "$SRC/tests/integration/lib.sh"
. "$SRC/bench/lib-bench.sh"
if [ -n "$ONLY" ]; then tw_need /usr/bin/time bc; else tw_need lego uacme unshare /usr/bin/time bc; fi
tw_init bench-issue
bw_cleanup() {
  bw_pebble_stop
  tw_cleanup
}
trap bw_cleanup EXIT
trap 'exit 130' INT TERM
bw_world_init || exit 1
PEERS=$SRC/bench/issue-peers.sh
BW_DEADLOCKS=()
export BW_DIRECTORY=$TW_DIRECTORY BW_CA=$TW/tls-ca.pem BW_WEBROOT BW_PREFIX=c

now() { date +%s.%N; }

# run_certloop PHASE SLEEP N [MAX_CONCURRENT_ORDERS]: $REPS runs, the
# median one (by wall time) is recorded with every run's wall and CPU in its
# note. A run whose Pebble deadlocks (see bw_watchdog) is thrown away and
# tried again with a fresh Pebble, at most 3 attempts.
run_certloop() {
  local attempt rep note rc k saved=$BW_ROWS reps=$TW/reps.tsv
  BW_ROWS=$reps
  : >"$reps"
  for ((rep = 1; rep <= REPS; rep++)); do
    for attempt in 1 2 3; do
      certloop_once "$@"
      rc=$?
      [ "$rc" = 2 ] || break
      note="N=$3, run $rep, attempt $attempt: Pebble deadlocked (goroutine dump: ${OUT%.md}-pebble-deadlock-$3-$rep-$attempt.log)"
      BW_DEADLOCKS+=("$note")
      tw_log "$note; retrying"
    done
  done
  BW_ROWS=$saved
  k=$(wc -l <"$reps")
  [ "$k" -gt 0 ] || return 1
  local walls cpus users
  walls=$(cut -f6 "$reps" | xargs printf '%.2f, ' | sed 's/, $//')
  cpus=$(cut -f7 "$reps" | xargs printf '%.2f, ' | sed 's/, $//')
  users=$(cut -f10 "$reps" | sed -n 's/.*CPU user \([0-9.]*\) s.*/\1/p' | xargs printf '%.2f, ' | sed 's/, $//')
  sort -t$'\t' -k6,6g "$reps" | sed -n "$(((k + 1) / 2))p" |
    awk -F'\t' -v OFS='\t' -v x="median of $k runs by wall (wall s: $walls; CPU s: $cpus; user CPU s: $users)" \
      '{ $10 = $10 "; " x; print }' >>"$BW_ROWS"
}

# certloop_once ...: one attempt; returns 2 (and records nothing) when the
# watchdog found Pebble stuck.
certloop_once() {
  local phase=$1 sleep=$2 n=$3 maxc=${4:-64} i conf t0 t1 p0 p1 ok how="run --once" load
  [ "$maxc" = 64 ] || how="run --once, max_concurrent_orders = $maxc"
  tw_log "$phase: certloop $how, N=$n"
  bw_pebble_start "$sleep" "$BW_CL_PORT" || return 1
  # The previous run's files are moved aside, not deleted, until the end:
  # on an ext4 without a journal (this machine's /) every new inode is
  # allocated past the inodes deleted in the last 60-300 s one by one
  # (recently_deleted), so deleting ~2,000 files right before a run made
  # that run's openat/mkdir pay for them (31 % of certloop's CPU in one
  # profile). BW_RM_BETWEEN=1: delete them before each run, as before.
  if [ -n "${BW_RM_BETWEEN:-}" ]; then
    rm -rf "$TW/state" "$TW/out"
  else
    local aside
    aside=$(mktemp -d "$TW/old.XXXXXX")
    for d in state out; do [ ! -e "$TW/$d" ] || mv "$TW/$d" "$aside/"; done
  fi
  rm -rf "$TW/control.sock" "$TW/deadlock"
  conf=$TW/certloop.toml
  {
    # past 250 the default max_new_orders (a Let's Encrypt-like limit per
    # account and 3 hours) would hold the rest back
    local extra=
    [ "$n" -le 250 ] || extra="max_new_orders = $n"
    TW_CA_EXTRA=$extra TW_LOG_LEVEL=${BW_LOG_LEVEL:-info} tw_config_head "$maxc" "$BW_CL_PORT"
    bw_config_certs "$n"
  } >"$conf"
  "$CERTLOOP" check -c "$conf" >/dev/null || { echo "config invalid" >&2; return 1; }
  # what came before (the bench's own setup) is written out now, not by
  # this run's first syncfs (BW_NO_SYNC=1: as before)
  [ -n "${BW_NO_SYNC:-}" ] || sync
  load=$(bw_load)
  p0=$(bw_ticks "$BW_PEBBLE_PID")
  t0=$(now)
  timeout 900 /usr/bin/time -f '%e %U %S %M' -o "$TW/certloop.time" \
    ${CERTLOOP_WRAP:-} "$CERTLOOP" run --once -c "$conf" >"$TW/certloop.out" 2>"$TW/certloop.err" &
  local cl=$!
  bw_watchdog "$cl" "$TW/pebble.log" "$TW/deadlock" &
  local wd=$!
  wait "$cl"
  local rc=$?
  t1=$(now)
  p1=$(bw_ticks "$BW_PEBBLE_PID")
  kill "$wd" 2>/dev/null
  wait "$wd" 2>/dev/null
  mkdir -p "${OUT%.md}-logs"
  cp "$TW/certloop.err" "${OUT%.md}-logs/certloop-$n-delay$sleep-max$maxc-run$rep-attempt$attempt.log"
  cp "$TW/pebble.log" "${OUT%.md}-logs/pebble-$n-delay$sleep-max$maxc-run$rep-attempt$attempt.log"
  if [ -e "$TW/deadlock" ]; then
    sleep 1
    cp "$TW/pebble.log" "${OUT%.md}-pebble-deadlock-$n-$rep-$attempt.log"
    bw_pebble_stop
    return 2
  fi
  ok=$(grep -c ': issued, expires ' "$TW/certloop.out")
  # spot-check the first and last certificates against Pebble's root
  for i in 0 $((n - 1)); do
    tw_verify_fullchain "$TW/out/c$i/fullchain.pem" && tw_check_pair "$TW/out/c$i/cert.pem" "$TW/out/c$i/key.pem" ||
      { echo "c$i: deployed certificate does not verify" >&2; ok="$ok (c$i bad)"; }
  done
  note="exit $rc"
  [ "$maxc" = 64 ] && note="$note; max_concurrent_orders = 64 (default)"
  note="$note; [ca.pebble] max_parallel_requests = ${TW_CA_PARALLEL:-1}"
  [ "$n" -le 250 ] || note="$note, max_new_orders = $n"
  [ "$attempt" = 1 ] || note="$note; attempt $attempt (Pebble deadlocked before)"
  note="$note; load $load"
  [ "$rc" = 0 ] || grep -E 'error|warn' "$TW/certloop.err" | head -5 >&2
  read -r _ u s m < <(tail -1 "$TW/certloop.time")
  note="$note; CPU user $u s + sys $s s"
  bw_row "$phase" certloop "$how" "$n" "$ok" "$(echo "$t1 - $t0" | bc)" \
    "$(echo "$u + $s" | bc)" "$(bw_cpu_delta "$p0" "$p1")" "$m" "$note"
  bw_pebble_stop
}

# run_peer PHASE SLEEP CLIENT N PAR
run_peer() {
  local phase=$1 sleep=$2 client=$3 n=$4 par=$5 t0 t1 p0 p1 w0 w1 dir
  local how=sequential
  [ "$par" -gt 1 ] && how="$par at once"
  tw_log "$phase: $client $how, N=$n"
  bw_pebble_start "$sleep" "$BW_WEB_PORT" || return 1
  dir=$TW/peer-$client-$n-$par-$sleep
  rm -rf "$dir" "$dir.client"
  export BW_CLIENTDIR=$dir.client
  "$PEERS" register "$client" || { echo "$client: cannot register (see $BW_CLIENTDIR.register.log)" >&2; }
  local load
  load=$(bw_load)
  p0=$(bw_ticks "$BW_PEBBLE_PID")
  w0=$(bw_ticks "$BW_WEB_PID")
  t0=$(now)
  "$PEERS" run "$client" "$n" "$par" "$dir"
  t1=$(now)
  p1=$(bw_ticks "$BW_PEBBLE_PID")
  w1=$(bw_ticks "$BW_WEB_PID")
  local ok cpu rss
  ok=$(cat "$dir"/*.rc 2>/dev/null | grep -c '^0$')
  cpu=$(for f in "$dir"/*.time; do tail -1 "$f"; done | awk '{ c += $2 + $3 } END { printf "%.2f", c }')
  rss=$(for f in "$dir"/*.time; do tail -1 "$f"; done | awk '$4 > m { m = $4 } END { print m + 0 }')
  if [ "$ok" != "$n" ]; then
    local bad
    bad=$(grep -L '^0$' "$dir"/*.rc | head -1)
    echo "$client: $((n - ok)) failed; e.g. ${bad%.rc}.log:" >&2
    [ -n "$bad" ] && tail -5 "${bad%.rc}.log" >&2
  fi
  bw_row "$phase" "$client" "$how" "$n" "$ok" "$(echo "$t1 - $t0" | bc)" "$cpu" \
    "$(bw_cpu_delta "$p0" "$p1")" "$rss" \
    "file server CPU $(bw_cpu_delta "$w0" "$w1" | xargs printf '%.2f') s; load $load"
  bw_pebble_stop
}

# run_floor PHASE N: Pebble alone, 8.56 x N GETs of its directory one after
# the other over one connection (one curl process): the time and Pebble CPU
# below which no client sending that many requests one at a time can go.
run_floor() {
  local phase=$1 n=$2 k t0 t1 p0 p1 load urls=()
  k=$((n * 856 / 100))
  bw_pebble_start 0 "$BW_CL_PORT" || return 1
  for ((i = 0; i < k; i++)); do urls+=("$TW_DIRECTORY"); done
  load=$(bw_load)
  p0=$(bw_ticks "$BW_PEBBLE_PID")
  t0=$(now)
  curl -sS --cacert "$TW/tls-ca.pem" "${urls[@]}" >/dev/null
  t1=$(now)
  p1=$(bw_ticks "$BW_PEBBLE_PID")
  bw_row "$phase" "floor: Pebble alone" "$k GETs, one at a time" "$n" "–" "$(echo "$t1 - $t0" | bc)" \
    "" "$(bw_cpu_delta "$p0" "$p1")" "" "curl, one keep-alive connection; load $load"
  bw_pebble_stop
}

# extrapolate PHASE CLIENT MODE FROM_N TO_N: a row scaled per certificate
# from a measured one, labelled.
extrapolate() {
  local phase=$1 client=$2 mode=$3 from=$4 to=$5 w c p r
  w=$(bw_field "$client" "$mode" "$from" 6)
  [ -n "$w" ] || return 0
  c=$(bw_field "$client" "$mode" "$from" 7)
  p=$(bw_field "$client" "$mode" "$from" 8)
  r=$(bw_field "$client" "$mode" "$from" 9)
  bw_row "$phase" "$client" "$mode" "$to" "–" "$(echo "$w * $to / $from" | bc -l)" \
    "$(echo "$c * $to / $from" | bc -l)" "$(echo "$p * $to / $from" | bc -l)" "$r" \
    "**EXTRAPOLATED** ×$to/$from from the N=$from row, not measured"
}

START=$(now)
if [ -n "$ONLY" ]; then
  run_certloop "certloop alone, N=$ONLY, validation delay $DELAY" "$DELAY" "$ONLY" "$MAXO"
  PHASES=
fi
P1="Phase 1: no validation delay, N=10"
if phase 1; then
  run_certloop "$P1" 0 10
  for c in lego uacme; do run_peer "$P1" 0 "$c" 10 1; done
  for c in lego uacme; do run_peer "$P1" 0 "$c" 10 8; done
fi

if phase 2; then
  P2="Phase 2: no validation delay, N=100"
  run_certloop "$P2" 0 100
  for c in lego uacme; do run_peer "$P2" 0 "$c" 100 8; done
  for c in lego uacme; do extrapolate "$P2" "$c" sequential 10 100; done
fi

if phase 3; then
  P3="Phase 3: no validation delay, N=500"
  run_certloop "$P3" 0 500
  for c in lego uacme; do
    extrapolate "$P3" "$c" "8 at once" 100 500
    extrapolate "$P3" "$c" sequential 10 500
  done
fi

if phase 4; then
  P4="Phase 4: Pebble's default validation delay, N=100 (peers: smaller N)"
  run_certloop "$P4" 1 100
  run_certloop "$P4" 1 100 128
  for c in lego uacme; do run_peer "$P4" 1 "$c" 16 8; done
  run_peer "$P4" 1 uacme 4 1
fi
if phase 5; then
  P5="Phase 5: no validation delay, N=50 (issue 16 item 1)"
  saved_reps=$REPS
  [ "$REPS" = 3 ] && REPS=5
  run_certloop "$P5" 0 50
  REPS=$saved_reps
  run_floor "$P5" 50
  for c in uacme lego; do run_peer "$P5" 0 "$c" 50 8; done
fi
END=$(now)

{
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); $(uname -sr)"
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "Versions: certloop $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null)$(git -C "$SRC" diff --quiet HEAD -- src 2>/dev/null || echo '+dirty') ($("$CERTLOOP" --version 2>&1 | head -1)), pebble $(dpkg-query -W -f '${Version}' pebble 2>/dev/null), lego $(dpkg-query -W -f '${Version}' lego 2>/dev/null), uacme $(dpkg-query -W -f '${Version}' uacme 2>/dev/null)"
  echo "Command: \`bench/issue.sh$([ "$QUICK" = 1 ] && echo ' --quick')$([ "$QUICK" = 0 ] && [ -z "$ONLY" ] && [ "$PHASES" != 1,2,3,4 ] && echo " --phases $PHASES")$([ -n "$ONLY" ] && echo " --certloop-only $ONLY")$([ "$DELAY" = 1 ] && echo ' --delay')$([ "$MAXO" != 64 ] && echo " --max-orders $MAXO")$([ "$REPS" != 3 ] && [ "$QUICK" != 1 ] && echo " --reps $REPS")\` (build: $(basename "$BUILD"), total $(echo "$END - $START" | bc | xargs printf '%.0f') s)"
  bw_render
  if [ "${#BW_DEADLOCKS[@]}" -gt 0 ]; then
    echo
    echo "Pebble deadlocks (attempts thrown away and retried with a fresh Pebble):"
    printf -- '- %s\n' "${BW_DEADLOCKS[@]}"
  fi
} >"$OUT"
cat "$OUT"
echo >&2
echo "written to $OUT" >&2
