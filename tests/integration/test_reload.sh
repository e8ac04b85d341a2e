#!/usr/bin/env bash
# The daemon under a stand-in for systemd: READY=1 after start, SIGHUP with a
# valid configuration (RELOADING=1 + MONOTONIC_USEC, then READY=1, log
# "reloaded"), SIGHUP with a broken one (FILE:LINE:COL in the log, the old
# configuration kept, still running), a second daemon refused by the state
# lock (75), SIGTERM (STOPPING=1, exit 0), SIGINT, and `run --once`.
set -uo pipefail

CERTLOOP=${CERTLOOP:-${BUILD_DIR:-build}/certloop}
LISTEN=${BUILD_DIR:-build}/notify-listen
for b in "$CERTLOOP" "$LISTEN"; do
  if [ ! -x "$b" ]; then
    echo "test_reload: missing $b (build first)" >&2
    exit 1
  fi
done

tmp=$(mktemp -d /tmp/certloop-reload-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null
  done
  wait 2>/dev/null
  python3 "$(dirname "$0")/port.py" --release "$tmp"
  rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}

# wait_for SECONDS COMMAND...: polls COMMAND every 50 ms until it succeeds
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  while ! "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      return 1
    fi
    sleep 0.05
  done
}
# count FILE STRING: how many lines of FILE contain STRING
count() { grep -cF -- "$2" "$1" 2>/dev/null || true; }
more_than() { [ "$(count "$1" "$2")" -gt "$3" ]; }
exited() { ! kill -0 "$1" 2>/dev/null; }

# a loopback port nobody listens on, reserved while $tmp exists
free_port() {
  python3 "$(dirname "$0")/port.py" "$tmp"
}

port=$(free_port)
cfg="$tmp/certloop.toml"
write_good() {
  cat >"$cfg" <<EOF
[daemon]
state_dir = "$tmp/state"
control_socket = "$tmp/control.sock"
log_level = "$1"

[http01]
listen = ["127.0.0.1:$port"]
EOF
}
write_good info

"$LISTEN" "$tmp/notify" >"$tmp/notify.out" 2>"$tmp/notify.err" &
pids+=($!)
wait_for 5 test -S "$tmp/notify" || fail "notify-listen did not bind"

NOTIFY_SOCKET="$tmp/notify" "$CERTLOOP" run -c "$cfg" 2>"$tmp/log" &
daemon=$!
pids+=("$daemon")

echo "== start: READY=1"
if ! wait_for 10 more_than "$tmp/notify.out" "READY=1" 0; then
  fail "no READY=1 within 10 s"
  sed 's/^/  log: /' "$tmp/log" >&2
fi
grep -qF 'READY=1\nSTATUS=managing 0 certificates' "$tmp/notify.out" || fail "READY without STATUS"
kill -0 "$daemon" 2>/dev/null || fail "daemon died after start"

echo "== a second daemon on the same state directory is refused"
"$CERTLOOP" run -c "$cfg" >"$tmp/second.out" 2>"$tmp/second.err"
rc=$?
[ "$rc" = 75 ] || fail "second daemon: exit $rc, expected 75"
grep -qF "another certloop holds $tmp/state/lock (pid $daemon)" "$tmp/second.err" || {
  fail "second daemon: no 'another certloop holds STATE/lock (pid N)'"
  sed 's/^/  | /' "$tmp/second.err" >&2
}

echo "== SIGHUP with a valid configuration"
write_good debug
# one certificate whose CA is unreachable: its order fails and is retried
# later, and the daemon keeps running
cat >>"$cfg" <<EOF

[ca.dead]
directory = "https://127.0.0.1:1/dir"
agree_tos = true

[certificate.www]
domains = ["www.example.org"]
ca = "dead"
EOF
kill -HUP "$daemon"
wait_for 10 more_than "$tmp/log" "reloaded: 1 certificate" 0 || fail "no 'reloaded' in the log"
wait_for 10 more_than "$tmp/notify.out" "READY=1" 1 || fail "no READY=1 after the reload"
grep -qE '^RELOADING=1\\nMONOTONIC_USEC=[0-9]+$' "$tmp/notify.out" ||
  fail "no RELOADING=1 with MONOTONIC_USEC"
# RELOADING comes before the second READY
order=$(grep -oE '^(READY|RELOADING)=1' "$tmp/notify.out" | tr '\n' ' ')
[ "$order" = "READY=1 RELOADING=1 READY=1 " ] || fail "notification order: $order"

echo "== SIGHUP with a broken configuration keeps the old one"
cat >"$cfg" <<EOF
[daemon]
state_dir = "$tmp/state"
log_level = "loud"
EOF
kill -HUP "$daemon"
wait_for 10 more_than "$tmp/log" "keeping the previous configuration" 0 ||
  fail "no 'keeping the previous configuration' in the log"
grep -qE "$cfg:3:13: error: daemon\.log_level" "$tmp/log" || {
  fail "the log lacks the FILE:LINE:COL error"
  sed 's/^/  log: /' "$tmp/log" >&2
}
wait_for 10 more_than "$tmp/notify.out" "READY=1" 2 || fail "no READY=1 after the failed reload"
grep -qF "STATUS=reload failed, keeping the previous configuration; managing 1 certificate" \
  "$tmp/notify.out" || fail "STATUS does not report the failed reload"
sleep 0.2
kill -0 "$daemon" 2>/dev/null || fail "daemon died after a bad reload"

# the order against the unreachable CA failed and did not take the daemon down
wait_for 10 more_than "$tmp/log" "cert=www" 0 || fail "no order attempt for www in the log"
kill -0 "$daemon" 2>/dev/null || fail "daemon died after a failed order"

echo "== SIGTERM: STOPPING=1 and exit 0"
kill -TERM "$daemon"
wait_for 30 exited "$daemon" || fail "daemon still running 30 s after SIGTERM"
wait "$daemon"
rc=$?
[ "$rc" = 0 ] || fail "daemon exit $rc after SIGTERM, expected 0"
grep -qx "STOPPING=1" "$tmp/notify.out" || fail "no STOPPING=1"
grep -qF "SIGTERM: stopping" "$tmp/log" || fail "no 'stopping' in the log"
grep -qF "handle still open" "$tmp/log" && fail "handles left open at shutdown"
# the lock is released: a new daemon can start
write_good info

echo "== SIGINT stops too"
: >"$tmp/notify.out"
NOTIFY_SOCKET="$tmp/notify" "$CERTLOOP" run -c "$cfg" 2>"$tmp/log2" &
daemon=$!
pids+=("$daemon")
wait_for 10 more_than "$tmp/notify.out" "READY=1" 0 || fail "second start: no READY=1"
kill -INT "$daemon"
wait_for 30 exited "$daemon" || fail "daemon still running 30 s after SIGINT"
wait "$daemon"
rc=$?
[ "$rc" = 0 ] || fail "daemon exit $rc after SIGINT, expected 0"

echo "== run --once with nothing to do"
"$CERTLOOP" run --once -c "$cfg" 2>"$tmp/log3" &
once=$!
pids+=("$once")
wait_for 30 exited "$once" || fail "run --once still running after 30 s"
wait "$once"
rc=$?
[ "$rc" = 0 ] || {
  fail "run --once exit $rc, expected 0"
  sed 's/^/  log: /' "$tmp/log3" >&2
}

echo "== run --once with an unreachable CA exits 1"
cat >>"$cfg" <<EOF

[ca.dead]
directory = "https://127.0.0.1:1/dir"
agree_tos = true

[certificate.www]
domains = ["www.example.org"]
ca = "dead"
EOF
"$CERTLOOP" run --once -c "$cfg" >"$tmp/once.out" 2>"$tmp/log4" &
once=$!
pids+=("$once")
wait_for 60 exited "$once" || fail "run --once still running after 60 s"
wait "$once"
rc=$?
[ "$rc" = 1 ] || {
  fail "run --once with a failing order: exit $rc, expected 1"
  sed 's/^/  log: /' "$tmp/log4" >&2
}
grep -qF "1 certificate failed" "$tmp/log4" || fail "run --once: no failure count in the log"

if [ "$fails" -ne 0 ]; then
  echo "--- daemon log" >&2
  cat "$tmp/log" >&2
  echo "--- notifications" >&2
  cat "$tmp/notify.out" >&2
  echo "test_reload: $fails failure(s)" >&2
  exit 1
fi
echo "test_reload: ok"
