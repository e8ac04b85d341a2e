#!/usr/bin/env bash
# Benchmark: SIGHUP reload (and `certloop check`) at N certificates, on a
# state directory seeded once and kept, so that builds can be compared
# interleaved without seeding 100,000 certificates again for each.
#
#   bench/reload.sh BUILD_DIR N RELOADS KEEP_DIR
#
# KEEP_DIR is made on the first run: certloop.toml, conf.d/certs-K.toml
# (PER_FILE, default 1,000, [certificate.c<i>] tables each: what
# bench/idle.sh configures), the deploy directories out/c<i> and a state
# directory seeded by tools/seed-state (all valid for 90 days, nothing
# due). Its CA's directory URL points at a closed loopback port
# (127.0.0.1:9): a reload talks to no CA, and the seeded generations name
# that URL, so they match the configuration on every later run. Each run
# starts `certloop run` on KEEP_DIR, waits until every certificate is
# decided, sends RELOADS SIGHUPs one after the other and reports the time
# from the "SIGHUP: reloading" log line to the "reloaded:" line (both
# stamped by the daemon), the daemon's CPU (user + sys) per reload, VmRSS
# and VmHWM, the loop's longest stall meanwhile (the slowest of http-01
# requests made every 20 ms during the reloads), and `certloop check` (wall, user + sys, peak RSS) run twice:
# cold (after the state directory's daemon stopped) and warm.
#
# LABEL names the build in the report (default: this checkout's commit).
# PERF=FILE records `perf record -g` of the daemon during the reloads into
# FILE. Delete KEEP_DIR when done (100,000 certificates: ~1.5 GB).
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:?BUILD_DIR}
case "$build" in /*) ;; *) build=$PWD/$build ;; esac
N=${2:?N}
RELOADS=${3:-5}
KEEP=${4:?KEEP_DIR}
PER_FILE=${PER_FILE:-1000}
CERTLOOP=$build/certloop
SEED=$build/seed-state
DIRECTORY=https://127.0.0.1:9/dir
for b in "$CERTLOOP" "$SEED"; do
  [ -x "$b" ] || { echo "build first: $b missing" >&2; exit 1; }
done
. bench/lib-bench.sh

if [ ! -f "$KEEP/seeded" ]; then
  bw_kept_seed "$KEEP" "$N" "$PER_FILE" "$SEED" "$DIRECTORY" "certloop reload bench CA" || exit 1
  echo "$N" >"$KEEP/seeded"
fi
KEEP=$(cd "$KEEP" && pwd)
HTTP_PORT=$(bw_free_port)
[ "$(cat "$KEEP/seeded")" = "$N" ] || { echo "$KEEP holds $(cat "$KEEP/seeded") certificates" >&2; exit 1; }
bw_kept_config "$KEEP" "$HTTP_PORT" "$DIRECTORY" >"$KEEP/certloop.toml"

pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid"; }
trap cleanup EXIT

t0=$(date +%s%N)
# SETSID=1 starts the daemon in a session of its own, as a service would
# be (its own scheduling group: with autogroup, this script and the daemon
# otherwise share one group's CPU share)
${SETSID:+setsid} "$CERTLOOP" run -c "$KEEP/certloop.toml" >"$KEEP/out.txt" 2>"$KEEP/err.txt" &
pid=$!
while :; do
  grep -q 'main: certloop .* started' "$KEEP/err.txt" &&
    [ "$(grep -c ': valid, renewal at ' "$KEEP/err.txt")" -ge "$N" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "the daemon died:" >&2; tail "$KEEP/err.txt" >&2; exit 1; }
  [ $((($(date +%s%N) - t0) / 1000000000)) -lt 900 ] || { echo "not ready after 900 s" >&2; exit 1; }
  sleep 0.5
done
ready_ms=$((($(date +%s%N) - t0) / 1000000))
sleep 1
rss_idle=$(status_kib "$pid" VmRSS)
perf_pid=
if [ -n "${PERF:-}" ]; then
  perf record ${PERF_OPTS:--g} -o "$PERF" -p "$pid" 2>"$KEEP/perf.err" &
  perf_pid=$!
  sleep 1
fi
# what the loop does meanwhile: an http-01 request (an unknown token, 404)
# every 20 ms during the reloads; the slowest answer is the loop's longest
# stall (plus the probe's own scheduling delay on a loaded machine)
python3 - "$HTTP_PORT" >"$KEEP/probe.txt" <<'PY' &
import signal, socket, sys, time
port, worst, n, stop = int(sys.argv[1]), 0.0, 0, False
def end(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, end)
while not stop:
    t = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /.well-known/acme-challenge/probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    while s.recv(4096):
        pass
    s.close()
    worst, n = max(worst, time.monotonic() - t), n + 1
    time.sleep(0.02)
print(n, int(worst * 1000))
PY
probe_pid=$!
declare -a took cpu runq
# runq_wait_ms PID: the time all its threads spent runnable but waiting for
# a CPU (the second field of /proc/PID/task/*/schedstat, ns), in ms
runq_wait_ms() {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $2 } END { printf "%d\n", s / 1000000 }'
}
for ((r = 0; r < RELOADS; r++)); do
  before=$(grep -c 'main: reloaded: ' "$KEEP/err.txt")
  k0=$(bw_ticks "$pid")
  q0=$(runq_wait_ms "$pid")
  kill -HUP "$pid"
  # the times are the daemon's own log stamps: polled every 0.1 s (every
  # 10 ms, grep's fork and exec took CPU from the daemon it measured)
  for ((i = 0; i < 1200; i++)); do
    [ "$(grep -c 'main: reloaded: ' "$KEEP/err.txt")" -gt "$before" ] && break
    sleep 0.1
  done
  sleep 0.3 # the malloc_trim after "reloaded"
  k1=$(bw_ticks "$pid")
  q1=$(runq_wait_ms "$pid")
  runq+=($((q1 - q0)))
  a=$(ms_of "$(grep 'main: SIGHUP: reloading' "$KEEP/err.txt" | tail -1)")
  b=$(ms_of "$(grep 'main: reloaded: ' "$KEEP/err.txt" | tail -1)")
  took+=($((b - a)))
  cpu+=($(((k1 - k0) * 1000 / BW_HZ)))
  sleep 0.5
done
[ -n "$perf_pid" ] && kill -INT "$perf_pid" && wait "$perf_pid"
kill -TERM "$probe_pid" && wait "$probe_pid"
read -r probe_n probe_worst <"$KEEP/probe.txt"
rss_after=$(status_kib "$pid" VmRSS)
hwm=$(status_kib "$pid" VmHWM)
due=$(grep -c ': due: ' "$KEEP/err.txt")
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
# `certloop check`: wall, user + sys, peak RSS, and the time it waited
# for a CPU (read from /proc/PID/schedstat before the child is reaped)
timed_check() {
  python3 - "$CERTLOOP" check -c "$KEEP/certloop.toml" <<'PY'
import os, resource, sys, time
t = time.monotonic()
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.execv(sys.argv[1], sys.argv[1:])
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
wait_ns = int(open("/proc/%d/schedstat" % pid).read().split()[1])
_, status = os.waitpid(pid, 0)
wall = time.monotonic() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.2f s; %.2f + %.2f s; %d MiB; %.2f s; exit %d" % (wall, ru.ru_utime, ru.ru_stime,
      ru.ru_maxrss // 1024, wait_ns / 1e9, os.waitstatus_to_exitcode(status)))
PY
}
check1=$(timed_check)
check2=$(timed_check)
cat <<EOF

reload benchmark: $N certificates in $(ls "$KEEP/conf.d" | wc -l) conf.d files, certloop ${LABEL:-$(git rev-parse --short HEAD 2>/dev/null)} ($build), $(date -u +%Y-%m-%dT%H:%MZ), load $(bw_load)
| measure | value |
| --- | --- |
| start-up to READY (all decided) | ${ready_ms} ms |
| SIGHUP reload, "reloading" -> "reloaded" (median of $RELOADS) | $(median "${took[@]}") ms (in order: ${took[*]}) |
| daemon CPU per reload (user + sys, median) | $(median "${cpu[@]}") ms (in order: ${cpu[*]}) |
| daemon waiting for a CPU per reload (runnable, not running; median) | $(median "${runq[@]}") ms (in order: ${runq[*]}) |
| the loop meanwhile: http-01 requests answered; the slowest | ${probe_n}; ${probe_worst} ms |
| VmRSS idle; after the reloads; VmHWM | $((rss_idle / 1024)); $((rss_after / 1024)); $((hwm / 1024)) MiB |
| \`certloop check\` after the daemon (wall; user + sys; peak RSS; waiting for a CPU) | $check1 |
| \`certloop check\` again | $check2 |
| certificates found due (want 0); exit status after SIGTERM | $due; $rc |
EOF
