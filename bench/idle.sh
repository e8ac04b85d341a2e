#!/usr/bin/env bash
# Benchmark: the daemon idle with 10,000 managed certificates, all valid.
# A state directory is pre-seeded by tools/seed-state (one throwaway EC CA,
# 10,000 EC P-256 certificates valid for 90 days, so nothing is due for ~60
# days) beside a configuration of 10,000 [certificate.c<i>] tables (one or
# two names, a `files` deploy each: bench/lib-bench.sh's bw_config_certs),
# whose CA is a live Pebble. `certloop run` is started on it and measured:
#   - start-up: launch to the "started" log line, and to READY (the
#     "valid, renewal at" line of the last certificate);
#   - idle for IDLE seconds (default 60), after 2 s of settling: CPU time
#     (utime+stime of all threads, /proc/PID/stat), context switches of all
#     threads (/proc/PID/task/*/status, voluntary + involuntary: each is a
#     wake-up or a preemption), requests Pebble logged meanwhile (should
#     be 0); then STRACE_S more seconds (default 10) with strace -c -f
#     attached, counting epoll_wait returns (when strace can attach);
#   - memory: VmRSS when idle, VmRSS and VmHWM after the reloads;
#   - SIGHUP reload of the same 10,000-certificate configuration, RELOADS
#     times (default 5): the time from the "SIGHUP: reloading" log line to
#     the "reloaded:" line (both stamped by the daemon, ms), median and range;
#   - `certloop check` (wall, CPU, peak RSS), and the control socket's
#     GET /v1/status (what `status --json` shows) and GET /metrics: time,
#     size, and the daemon's VmHWM after them; then each again with the
#     peak RSS reset (first byte, total, CPU, RSS before -> peak), and how
#     fast http-01 and control requests are answered while a status is
#     being written (issue 16: streamed answers).
# The certificates are split over conf.d/certs-K.toml, PER_FILE (default
# 1,000) tables each, as a real user would (one file may be at most 16 MiB).
#
#   bench/idle.sh [BUILD_DIR] [N] [IDLE_SECONDS] [RELOADS]
#
# Needs: pebble, pebble-challtestsrv, openssl, curl, python3 (the test
# world of tests/integration/lib.sh); strace is optional. About 2 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
case "$build" in /*) ;; *) build=$PWD/$build ;; esac
N=${2:-10000}
IDLE=${3:-60}
RELOADS=${4:-5}
STRACE_S=${STRACE_S:-10}
CERTLOOP=$build/certloop
SEED=$build/seed-state
for b in "$CERTLOOP" "$SEED"; do
  [ -x "$b" ] || { echo "build first: $b missing" >&2; exit 1; }
done
. tests/integration/lib.sh
. bench/lib-bench.sh

tw_init idle
tw_start || exit 1
hz=$(getconf CLK_TCK)

PER_FILE=${PER_FILE:-1000}
t=$(date +%s%N)
tw_config_head 64 >"$TW/certloop.toml"
mkdir -p "$TW/conf.d"
bw_config_certs "$N" | awk -v dir="$TW/conf.d" -v per="$PER_FILE" '
  /^\[certificate\./ { k++; if ((k - 1) % per == 0) { if (f) close(f); f = sprintf("%s/certs-%06d.toml", dir, (k - 1) / per) } }
  { print > (f ? f : dir "/certs-000000.toml") }'
files=$(ls "$TW/conf.d" | wc -l)
chmod 700 "$TW/state"
"$SEED" "$TW/state" "$N" pebble "$TW_DIRECTORY" >/dev/null || exit 1
echo "seeded $N certificates and their configuration in $((($(date +%s%N) - t) / 1000000)) ms" >&2
/usr/bin/time -f '%e %U %S %M' -o "$TW/check.time" "$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null || exit 1
read -r check_wall check_u check_s check_rss <"$TW/check.time"

threads_ctxt() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^(non)?voluntary_ctxt_switches/ { s += $2 } END { print s + 0 }'
}
pebble_lines() { grep -c ' -> calling handler()' "$TW/pebble.log"; }

pebble0=$(pebble_lines)
t0=$(date +%s%N)
"$CERTLOOP" run -c "$TW/certloop.toml" >"$TW/out.txt" 2>"$TW/err.txt" &
pid=$!
TW_PIDS+=("$pid")
# READY: every certificate decided and the "started" line (at most 15
# minutes; polled every 50 ms, every 0.5 s past 10,000 certificates)
poll=0.05
[ "$N" -le 10000 ] || poll=0.5
while :; do
  grep -q 'main: certloop .* started' "$TW/err.txt" &&
    [ "$(grep -c ': valid, renewal at ' "$TW/err.txt")" -ge "$N" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "the daemon died:" >&2; tail "$TW/err.txt" >&2; exit 1; }
  [ $((($(date +%s%N) - t0) / 1000000000)) -lt 900 ] || { echo "not ready after 900 s" >&2; exit 1; }
  sleep "$poll"
done
ready_ms=$((($(date +%s%N) - t0) / 1000000))
started_ms=$(($(ms_of "$(grep -m1 'main: certloop .* started' "$TW/err.txt")") - t0 / 1000000))
due=$(grep -c ': due: ' "$TW/err.txt")
echo "start-up: 'started' logged ${started_ms} ms after launch; $due certificates due" >&2
[ "$due" = 0 ] || echo "WARNING: $due certificates due: the seeded state does not match" >&2
sleep 2

rss_idle=$(status_kib "$pid" VmRSS)
ticks0=$(bw_ticks "$pid")
ctxt0=$(threads_ctxt "$pid")
nthreads=$(ls /proc/"$pid"/task | wc -l)
pebble1=$(pebble_lines)
sleep "$IDLE"
ticks1=$(bw_ticks "$pid")
ctxt1=$(threads_ctxt "$pid")
pebble2=$(pebble_lines)
# a second window with strace attached (ptrace stops count as context
# switches, so it is kept apart from the figures above)
epoll="n/a"
if command -v strace >/dev/null; then
  timeout -s INT "$STRACE_S" strace -f -c -e trace=epoll_wait,epoll_pwait -p "$pid" \
    -o "$TW/strace.txt" 2>"$TW/strace.err"
  if grep -q 'attached' "$TW/strace.err"; then
    # "% time seconds usecs/call calls [errors] syscall"; no line when no call
    epoll=$(awk '$NF ~ /^epoll_(p)?wait$/ { s += $4 } END { print s + 0 }' "$TW/strace.txt")
  fi
fi
cpu_ms=$(((ticks1 - ticks0) * 1000 / hz))

# reloads
declare -a took wall
for ((r = 0; r < RELOADS; r++)); do
  before=$(grep -c 'main: reloaded: ' "$TW/err.txt")
  w0=$(date +%s%N)
  kill -HUP "$pid"
  for ((i = 0; i < 6000; i++)); do
    [ "$(grep -c 'main: reloaded: ' "$TW/err.txt")" -gt "$before" ] && break
    sleep 0.01
  done
  w1=$(date +%s%N)
  a=$(ms_of "$(grep 'main: SIGHUP: reloading' "$TW/err.txt" | tail -1)")
  b=$(ms_of "$(grep 'main: reloaded: ' "$TW/err.txt" | tail -1)")
  took+=($((b - a)))
  wall+=($(((w1 - w0) / 1000000)))
  sleep 0.5
done
rss_after=$(status_kib "$pid" VmRSS)
hwm=$(status_kib "$pid" VmHWM)
# what status --json and a Prometheus scrape cost: time, bytes, memory
ctl_get() { # PATH OUT -> "seconds bytes"
  curl -sS --unix-socket "$TW/control.sock" -o "$2" -w '%{time_total} %{size_download}' "http://localhost$1"
}
ticks_s0=$(bw_ticks "$pid")
read -r status_s status_b < <(ctl_get /v1/status "$TW/status.json")
ticks_s1=$(bw_ticks "$pid")
read -r metrics_s metrics_b < <(ctl_get /metrics "$TW/metrics.txt")
ticks_s2=$(bw_ticks "$pid")
hwm_ctl=$(status_kib "$pid" VmHWM)
rss_ctl=$(status_kib "$pid" VmRSS)
# Each answer again with the peak RSS reset first (clear_refs 5): first
# byte, total, size, daemon CPU, RSS before and peak during.
ctl_probe() { # PATH -> "ttfb_s total_s bytes cpu_ms rss_before_kib peak_kib"
  local t0 t1 r rb
  echo 5 >"/proc/$pid/clear_refs"
  rb=$(status_kib "$pid" VmRSS)
  t0=$(bw_ticks "$pid")
  r=$(curl -sS --unix-socket "$TW/control.sock" -o /dev/null \
    -w '%{time_starttransfer} %{time_total} %{size_download}' "http://localhost$1")
  t1=$(bw_ticks "$pid")
  echo "$r $(((t1 - t0) * 1000 / hz)) $rb $(status_kib "$pid" VmHWM)"
}
read -r st_ttfb st_total st_b st_cpu st_rss st_peak < <(ctl_probe /v1/status)
read -r me_ttfb me_total me_b me_cpu me_rss me_peak < <(ctl_probe /metrics)
# While a status is written (read at curl's pace): an http-01 request for
# a token nobody holds (404 from the listener) and a control request (POST
# renew of an unknown name: 404), one after the other, 50 ms apart: how
# soon the loop answers them meanwhile.
curl -sS --unix-socket "$TW/control.sock" -o /dev/null "http://localhost/v1/status" &
spid=$!
declare -a lat_h lat_c
while kill -0 "$spid" 2>/dev/null; do
  lat_h+=($(curl -sS -o /dev/null -w '%{time_total}' \
    "http://127.0.0.1:$TW_HTTP_PORT/.well-known/acme-challenge/bench-probe"))
  lat_c+=($(curl -sS --unix-socket "$TW/control.sock" -o /dev/null -w '%{time_total}' \
    -X POST "http://localhost/v1/certificates/bench-nosuch/renew"))
  sleep 0.05
done
wait "$spid"
ms_stats() { # seconds... -> "N median_ms max_ms"
  printf '%s\n' "$@" | sort -n |
    awk '{ a[NR] = $1 * 1000 } END { if (NR == 0) print "0 - -"; else printf "%d %.0f %.0f\n", NR, a[int((NR + 1) / 2)], a[NR] }'
}
read -r nh mh xh < <(ms_stats "${lat_h[@]}")
read -r nc mc xc < <(ms_stats "${lat_c[@]}")
due_after=$(grep -c ': due: ' "$TW/err.txt")
kill -TERM "$pid"
wait "$pid"
rc=$?

sorted=$(printf '%s\n' "${took[@]}" | sort -n | tr '\n' ' ')
cat <<EOF

idle benchmark: $N certificates in $files conf.d files, certloop $(git rev-parse --short HEAD 2>/dev/null), $(date -u +%Y-%m-%dT%H:%MZ), load $(bw_load)
| measure | value |
| --- | --- |
| \`certloop check\` (wall; user + sys; peak RSS) | ${check_wall} s; ${check_u} + ${check_s} s; $((check_rss / 1024)) MiB |
| start-up: launch to "started" log line; to READY (all decided, seen by the script) | ${started_ms} ms; ${ready_ms} ms |
| threads | $nthreads |
| RSS idle (VmRSS) | $((rss_idle / 1024)) MiB ($rss_idle KiB) |
| CPU while idle ${IDLE} s (user+sys, all threads) | ${cpu_ms} ms |
| context switches while idle ${IDLE} s (all threads) | $((ctxt1 - ctxt0)) |
| epoll_wait returns in a further ${STRACE_S} s idle (strace -c -f) | $epoll |
| requests to the CA (Pebble) while idle / during start-up | $((pebble2 - pebble1)) / $((pebble1 - pebble0)) |
| SIGHUP reload, log "reloading" -> "reloaded" (median of $RELOADS) | $(median "${took[@]}") ms (all: $sorted) |
| SIGHUP reload, kill -HUP -> "reloaded" seen by the script (median) | $(median "${wall[@]}") ms |
| RSS after the reloads (VmRSS / VmHWM) | $((rss_after / 1024)) / $((hwm / 1024)) MiB |
| GET /v1/status (status --json): time; size; daemon CPU | ${status_s} s; ${status_b} bytes; $(((ticks_s1 - ticks_s0) * 1000 / hz)) ms |
| GET /metrics: time; size; daemon CPU | ${metrics_s} s; ${metrics_b} bytes; $(((ticks_s2 - ticks_s1) * 1000 / hz)) ms |
| RSS after status and metrics (VmRSS / VmHWM) | $((rss_ctl / 1024)) / $((hwm_ctl / 1024)) MiB |
| GET /v1/status again: first byte; total; size; daemon CPU; RSS before -> peak (VmHWM reset) | ${st_ttfb} s; ${st_total} s; ${st_b} bytes; ${st_cpu} ms; $((st_rss / 1024)) -> $((st_peak / 1024)) MiB |
| GET /metrics again: first byte; total; size; daemon CPU; RSS before -> peak | ${me_ttfb} s; ${me_total} s; ${me_b} bytes; ${me_cpu} ms; $((me_rss / 1024)) -> $((me_peak / 1024)) MiB |
| during a GET /v1/status: http-01 requests answered; median; max | $nh; ${mh} ms; ${xh} ms |
| during a GET /v1/status: control requests (renew, 404) answered; median; max | $nc; ${mc} ms; ${xc} ms |
| certificates found due (start-up + reloads; want 0) | $due_after |
| exit status after SIGTERM | $rc |
EOF
