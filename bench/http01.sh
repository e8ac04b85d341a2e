#!/usr/bin/env bash
# Benchmark: certloop's http-01 listener (tools/http01-serve, one token in
# memory) against nginx (one worker, the same token as a static file, access
# log off), in the same run, on loopback, each loaded with
#   wrk -t2 -c100 -d10s --latency URL
# in interleaved rounds (ROUNDS, default 3) after a 2 s warm-up. nginx runs
# twice: with its default keepalive_requests (1000) and with 100, certloop's
# per-connection cap. Besides wrk's figures, each server's CPU time per
# request is taken from /proc.
# Usage: bench/http01.sh [BUILD_DIR] [DURATION]   (defaults: build, 10s)
# Set PIN=1 to pin each server to CPU 1 and wrk to CPU 0 (taskset).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
duration=${2:-10s}
serve=$PWD/$build/http01-serve
[ -x "$serve" ] || { echo "build first: $serve missing" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk missing (apt-get install wrk)" >&2; exit 1; }
command -v nginx >/dev/null || { echo "nginx missing (apt-get install nginx-light)" >&2; exit 1; }

token=LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0
keyauth=$token.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI
path=/.well-known/acme-challenge/$token

work=$(mktemp -d /tmp/certloop-bench-http01.XXXXXX)
chmod 755 "$work" # nginx's worker runs as nobody
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

srv_pin=() wrk_pin=()
if [ "${PIN:-0}" = 1 ]; then
  srv_pin=(taskset -c 1)
  wrk_pin=(taskset -c 0)
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_url() { # URL: until it answers the key authorization (5 s)
  for _ in $(seq 50); do
    [ "$(curl -s "$1" || true)" = "$keyauth" ] && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2
  return 1
}

rows=$work/rows
: >"$rows"
# measure NAME URL PID: one wrk run; one markdown row. Besides wrk's figures
# it records the server's CPU time (utime+stime from /proc) per request,
# which other load on the machine disturbs less than requests/s.
measure() {
  local name=$1 url=$2 pid=$3 out t0 t1
  t0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  out=$("${wrk_pin[@]}" wrk -t2 -c100 -d"$duration" --latency "$url")
  t1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  echo "--- $name" >&2
  echo "$out" >&2
  local rps avg p50 p99 errs n us
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
  avg=$(awk '$1 == "Latency" && NF >= 4 { print $2; exit }' <<<"$out")
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  n=$(awk '/requests in/ { print $1 }' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ { $1 = $1; printf "%s; ", $0 }' <<<"$out")
  us=$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v n="$n" \
    'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$round" "$name" "$rps" "$avg" "$p50" \
    "$p99" "$us" "${errs:-none}" >>"$rows"
  printf '%s\t%s\t%s\n' "$name" "$rps" "$us" >>"$rows.tsv"
}

# certloop
cl_port=$(free_port)
"${srv_pin[@]}" "$serve" "127.0.0.1:$cl_port" "$token" "$keyauth" >"$work/serve.out" \
  2>"$work/serve.err" &
cl_pid=$!
pids+=("$cl_pid")
wait_url "http://127.0.0.1:$cl_port$path"

# nginx, one worker, the token as a file
mkdir -p "$work/www/.well-known/acme-challenge" "$work/tmp" "$work/logs"
printf '%s' "$keyauth" >"$work/www$path"
chmod -R a+rX "$work/www"
nginx_conf() { # PORT KEEPALIVE_REQUESTS
  cat <<EOF
worker_processes 1;
daemon off;
pid $work/nginx-$1.pid;
error_log $work/logs/error-$1.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests $2;
  client_body_temp_path $work/tmp/body;
  proxy_temp_path $work/tmp/proxy;
  fastcgi_temp_path $work/tmp/fastcgi;
  uwsgi_temp_path $work/tmp/uwsgi;
  scgi_temp_path $work/tmp/scgi;
  server {
    listen 127.0.0.1:$1;
    root $work/www;
    location /.well-known/acme-challenge/ { default_type application/octet-stream; }
  }
}
EOF
}
ng_port=$(free_port)
nginx_conf "$ng_port" 1000 >"$work/nginx.conf"
"${srv_pin[@]}" nginx -e "$work/logs/error.log" -p "$work" -c "$work/nginx.conf" &
ng_pid=$!
pids+=("$ng_pid")
wait_url "http://127.0.0.1:$ng_port$path"
ng_worker=$(pgrep -P "$ng_pid" | head -1)

ng100_port=$(free_port)
nginx_conf "$ng100_port" 100 >"$work/nginx100.conf"
"${srv_pin[@]}" nginx -e "$work/logs/error100.log" -p "$work" -c "$work/nginx100.conf" &
ng100_pid=$!
pids+=("$ng100_pid")
wait_url "http://127.0.0.1:$ng100_port$path"
ng100_worker=$(pgrep -P "$ng100_pid" | head -1)

load0=$(cut -d' ' -f1-3 /proc/loadavg)
names=("certloop (keep-alive cap 100)" "nginx (keepalive_requests 1000)"
  "nginx (keepalive_requests 100)")
urls=("http://127.0.0.1:$cl_port$path" "http://127.0.0.1:$ng_port$path"
  "http://127.0.0.1:$ng100_port$path")
spids=("$cl_pid" "$ng_worker" "$ng100_worker")
for i in 0 1 2; do # warm-up
  "${wrk_pin[@]}" wrk -t2 -c100 -d2s "${urls[$i]}" >/dev/null
done
# servers interleaved round by round, so that load from elsewhere on the
# machine falls on all of them alike
for round in $(seq "${ROUNDS:-3}"); do
  for i in 0 1 2; do
    measure "${names[$i]}" "${urls[$i]}" "${spids[$i]}"
  done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

kill -TERM "$cl_pid"
wait "$cl_pid" || true
echo "certloop counters: $(cat "$work/serve.err")" >&2

echo
echo "wrk -t2 -c100 -d$duration --latency URL, ${ROUNDS:-3} interleaved rounds after a 2 s" \
  "warm-up each; $(nproc) CPUs; pinned: ${PIN:-0}; load average before: $load0, after: $load1"
echo
echo "| round | server | requests/s | latency avg | p50 | p99 | server CPU µs/request | errors |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
cat "$rows"
echo
echo "Medians over the rounds:"
echo
echo "| server | requests/s | server CPU µs/request |"
echo "| --- | --- | --- |"
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for i in 0 1 2; do
  r=$(awk -F'\t' -v n="${names[$i]}" '$1 == n { print $2 }' "$rows.tsv" | median)
  u=$(awk -F'\t' -v n="${names[$i]}" '$1 == n { print $3 }' "$rows.tsv" | median)
  echo "| ${names[$i]} | $r | $u |"
done
