#!/usr/bin/env bash
# Benchmark: the large answers at N certificates (issue 16: streamed as the
# socket drains): the control socket's GET /v1/status (what `status --json`
# reads) and GET /metrics, and the HTTPS API's GET /v1/certificates, on a
# state directory seeded once and kept (as bench/reload.sh does), so that
# builds can be compared interleaved without seeding again.
#
#   bench/stream.sh BUILD_DIR N KEEP_DIR
#
# KEEP_DIR is made on the first run: conf.d/certs-K.toml (bench/idle.sh's
# certificates, PER_FILE per file), a state directory seeded by
# tools/seed-state (valid 90 days: nothing due) whose CA's directory is a
# closed loopback port (no CA is asked), and an API token with the read
# scope. Each run starts `certloop run` with [api] on a free port, waits
# until every certificate is decided, then for each answer (read by curl
# as fast as it can, then the status again by a reader held to 2 MB/s):
# time to the first byte, total time, size, the daemon's CPU (user + sys)
# and its VmRSS before and the peak during it (VmHWM reset with clear_refs
# 5 first). Then, during one more GET /v1/status, a prober makes an
# http-01 request (a token nobody holds: 404) and a control request (POST
# renew of an unknown name: 404) every 20 ms: how many were answered
# meanwhile, the median and the slowest (the loop's longest stall, plus
# the prober's own scheduling on a loaded machine).
#
# Delete KEEP_DIR when done (100,000 certificates: ~1.5 GB).
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:?BUILD_DIR}
case "$build" in /*) ;; *) build=$PWD/$build ;; esac
N=${2:?N}
KEEP=${3:?KEEP_DIR}
PER_FILE=${PER_FILE:-1000}
CERTLOOP=$build/certloop
SEED=$build/seed-state
DIRECTORY=https://127.0.0.1:9/dir
for b in "$CERTLOOP" "$SEED"; do
  [ -x "$b" ] || { echo "build first: $b missing" >&2; exit 1; }
done
. bench/lib-bench.sh

HTTP_PORT=$(bw_free_port)
API_PORT=$(bw_free_port)
write_config() {
  bw_kept_config "$KEEP" "$HTTP_PORT" "$DIRECTORY"
  printf '\n[api]\nlisten = ["127.0.0.1:%s"]\ntokens_file = "%s/tokens"\n' "$API_PORT" "$KEEP"
}

if [ ! -f "$KEEP/seeded" ]; then
  bw_kept_seed "$KEEP" "$N" "$PER_FILE" "$SEED" "$DIRECTORY" "certloop stream bench CA" || exit 1
  KEEP=$(cd "$KEEP" && pwd)
  write_config >"$KEEP/certloop.toml"
  "$CERTLOOP" api-token create bench --scopes read -c "$KEEP/certloop.toml" >"$KEEP/read.tok"
  [ -s "$KEEP/read.tok" ] || { echo "no API token" >&2; exit 1; }
  echo "$N" >"$KEEP/seeded"
fi
KEEP=$(cd "$KEEP" && pwd)
[ "$(cat "$KEEP/seeded")" = "$N" ] || { echo "$KEEP holds $(cat "$KEEP/seeded") certificates" >&2; exit 1; }
write_config >"$KEEP/certloop.toml"
TOKEN=$(cat "$KEEP/read.tok")

pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid"; }
trap cleanup EXIT
t0=$(date +%s%N)
"$CERTLOOP" run -c "$KEEP/certloop.toml" >"$KEEP/out.txt" 2>"$KEEP/err.txt" &
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

# get WHAT [CURL OPTIONS...] -> a table row: first byte, total, size, CPU, RSS
get() {
  local what=$1 k0 k1 rb r
  shift
  echo 5 >"/proc/$pid/clear_refs"
  rb=$(status_kib "$pid" VmRSS)
  k0=$(bw_ticks "$pid")
  r=$(curl -sS -o "$KEEP/answer" -w '%{http_code} %{time_starttransfer} %{time_total} %{size_download}' "$@")
  k1=$(bw_ticks "$pid")
  read -r code ttfb total size <<<"$r"
  [ "$code" = 200 ] || echo "$what: HTTP $code" >&2
  echo "| $what | ${ttfb} s | ${total} s | $size | $(((k1 - k0) * 1000 / BW_HZ)) ms | $((rb / 1024)) -> $(($(status_kib "$pid" VmHWM) / 1024)) MiB |"
}
CTL=(--unix-socket "$KEEP/control.sock")
API=(--cacert "$KEEP/state/api/bootstrap.pem" --resolve "localhost:$API_PORT:127.0.0.1"
  -H "Authorization: Bearer $TOKEN")
rows=$(
  get "GET /v1/status (control)" "${CTL[@]}" http://localhost/v1/status
  get "GET /metrics (control)" "${CTL[@]}" http://localhost/metrics
  get "GET /v1/certificates (API, TLS)" "${API[@]}" "https://localhost:$API_PORT/v1/certificates"
  get "GET /v1/status, reader at 2 MB/s" --limit-rate 2M "${CTL[@]}" http://localhost/v1/status
)
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$KEEP/answer" || echo "the status is not JSON" >&2

# the loop meanwhile: http-01 and control requests every 20 ms during a status
python3 - "$HTTP_PORT" "$KEEP/control.sock" >"$KEEP/probe.txt" <<'PY' &
import signal, socket, sys, time
port, path, stop = int(sys.argv[1]), sys.argv[2], False
lat = {"h": [], "c": []}
def end(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, end)
def ask(kind):
    t = time.monotonic()
    if kind == "h":
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /.well-known/acme-challenge/probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    else:
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        s.sendall(b"POST /v1/certificates/bench-nosuch/renew HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    while s.recv(4096):
        pass
    s.close()
    lat[kind].append(time.monotonic() - t)
while not stop:
    ask("h")
    ask("c")
    time.sleep(0.02)
for k in ("h", "c"):
    v = sorted(lat[k])
    print(len(v), int(v[(len(v) - 1) // 2] * 1000) if v else -1, int(v[-1] * 1000) if v else -1)
PY
probe_pid=$!
sleep 0.2
s0=$(date +%s%N)
curl -sS "${CTL[@]}" -o /dev/null http://localhost/v1/status
s1=$(date +%s%N)
kill -TERM "$probe_pid" && wait "$probe_pid"
{ read -r hn hmed hmax; read -r cn cmed cmax; } <"$KEEP/probe.txt"
due=$(grep -c ': due: ' "$KEEP/err.txt")
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
cat <<EOF

stream benchmark: $N certificates, certloop $(git rev-parse --short HEAD 2>/dev/null) ($build), $(date -u +%Y-%m-%dT%H:%MZ), load $(bw_load)
start-up to READY ${ready_ms} ms; VmRSS idle $((rss_idle / 1024)) MiB; certificates due $due (want 0); exit status $rc
| answer | first byte | total | bytes | daemon CPU | VmRSS before -> peak |
| --- | --- | --- | --- | --- | --- |
$rows

During one more GET /v1/status ($((($s1 - $s0) / 1000000)) ms), one request of each kind every 20 ms:
| answered meanwhile | count | median | slowest |
| --- | --- | --- | --- |
| http-01 (404) | $hn | ${hmed} ms | ${hmax} ms |
| control socket (renew of an unknown name, 404) | $cn | ${cmed} ms | ${cmax} ms |
EOF
