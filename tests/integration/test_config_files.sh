#!/usr/bin/env bash
# Configuration files that are not regular files, or too big (issue 17):
# a FIFO, a /dev/zero symlink, a directory named x.toml and a 50 MB file,
# as the main file or matched by the include pattern. `check` refuses each
# at once with a FILE: error (exit 78); it used to hang on the FIFO and
# /dev/zero. A daemon sent SIGHUP with each one in conf.d keeps answering
# the control socket and http-01 and keeps its configuration. A reload that
# takes long to read (30,000 include files) is read off the loop: status
# answers while it is being read, and SIGTERM during such a read stops the
# daemon.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init_bare config-files
tw_need curl python3

port=$(tw_port)
cfg="$TW/certloop.toml"
cat >"$cfg" <<EOF
[daemon]
state_dir = "$TW/state"
control_socket = "$TW/control.sock"

[http01]
listen = ["127.0.0.1:$port"]
EOF
mkdir -p "$TW/conf.d" "$TW/hostile"
mkfifo "$TW/hostile/fifo.toml"
ln -s /dev/zero "$TW/hostile/zero.toml"
mkdir "$TW/hostile/x.toml"
head -c 50000000 /dev/zero | tr '\0' '#' >"$TW/hostile/big.toml"

# what check and the reload say about each
declare -A why=(
  [fifo.toml]="cannot read: a FIFO, not a regular file"
  [zero.toml]="cannot read: a character device, not a regular file"
  [x.toml]="cannot read: a directory, not a regular file"
  [big.toml]="cannot read: larger than 16 MiB"
)

# check_refused FILE SHOWN: `check -c FILE` exits 78 within 5 s (timeout
# kills a hang with 124) and prints "SHOWN: error: WHY".
check_refused() {
  local start=$SECONDS rc
  timeout 5 "$CERTLOOP" check -c "$1" >"$TW/out" 2>"$TW/err"
  rc=$?
  if [ "$rc" != 78 ]; then
    tw_fail "check -c $1 (${3}): exit $rc, expected 78"
    sed 's/^/  | /' "$TW/err" >&2
    return
  fi
  [ $((SECONDS - start)) -le 2 ] || tw_fail "check -c $1 took $((SECONDS - start)) s"
  tw_has "$TW/err" "$2: error: ${why[$3]}"
}

echo "== check: each as the main file"
for f in fifo.toml zero.toml x.toml big.toml; do
  check_refused "$TW/hostile/$f" "$TW/hostile/$f" "$f"
done

echo "== check: each matched by the include pattern"
for f in fifo.toml zero.toml x.toml big.toml; do
  mv "$TW/hostile/$f" "$TW/conf.d/$f"
  check_refused "$cfg" "$TW/conf.d/$f" "$f"
  mv "$TW/conf.d/$f" "$TW/hostile/$f"
done
tw_run 0 check -c "$cfg"

echo "== the daemon keeps serving through SIGHUP with each"
"$CERTLOOP" run -c "$cfg" 2>"$TW/log" &
daemon=$!
TW_PIDS+=("$daemon")
up=0
for _ in $(seq 1 100); do
  if "$CERTLOOP" status --socket "$TW/control.sock" >/dev/null 2>&1; then
    up=1
    break
  fi
  sleep 0.1
done
[ "$up" = 1 ] || {
  tw_fail "the daemon did not answer its control socket"
  sed 's/^/  log: /' "$TW/log" >&2
  exit 1
}

# serving: the control socket and the http-01 listener answer within 3 s
serving() {
  timeout 3 "$CERTLOOP" status --socket "$TW/control.sock" >/dev/null 2>&1 || return 1
  local code
  code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' \
    "http://127.0.0.1:$port/.well-known/acme-challenge/none")
  [ "$code" = 404 ]
}

n=0
for f in fifo.toml zero.toml x.toml big.toml; do
  mv "$TW/hostile/$f" "$TW/conf.d/$f"
  kill -HUP "$daemon"
  serving || tw_fail "SIGHUP with conf.d/$f: the daemon stopped answering"
  n=$((n + 1))
  deadline=$((SECONDS + 10))
  while [ "$(grep -c 'keeping the previous configuration' "$TW/log")" -lt "$n" ] &&
    [ $SECONDS -lt $deadline ]; do
    sleep 0.05
  done
  grep -qF "$TW/conf.d/$f: error: ${why[$f]}" "$TW/log" ||
    tw_fail "SIGHUP with conf.d/$f: the log lacks '${why[$f]}'"
  serving || tw_fail "after SIGHUP with conf.d/$f: the daemon stopped answering"
  # the control socket's reload answers with the same error line
  timeout 5 "$CERTLOOP" reload --socket "$TW/control.sock" >"$TW/out" 2>"$TW/err"
  rc=$?
  [ "$rc" = 78 ] || tw_fail "reload with conf.d/$f: exit $rc, expected 78"
  grep -qF "$TW/conf.d/$f: error: ${why[$f]}" "$TW/err" "$TW/out" ||
    tw_fail "reload with conf.d/$f: no '${why[$f]}' in its output"
  n=$((n + 1))
  mv "$TW/conf.d/$f" "$TW/hostile/$f"
done
kill -0 "$daemon" 2>/dev/null || tw_fail "the daemon died"

echo "== a reload that takes long to read is read off the loop"
(cd "$TW/conf.d" && seq -f "%06g.toml" 30000 | xargs touch)
reloaded_before=$(grep -c 'reloaded: ' "$TW/log")
kill -HUP "$daemon"
# a status answered while the reload is still being read (the log has no
# new "reloaded:" yet) shows the loop was free; an inline read answers only
# after it
during=0
deadline=$((SECONDS + 60))
while [ "$(grep -c 'reloaded: ' "$TW/log")" -eq "$reloaded_before" ] && [ $SECONDS -lt $deadline ]; do
  if timeout 3 "$CERTLOOP" status --socket "$TW/control.sock" >/dev/null 2>&1 &&
    [ "$(grep -c 'reloaded: ' "$TW/log")" -eq "$reloaded_before" ]; then
    during=$((during + 1))
  fi
  kill -0 "$daemon" 2>/dev/null || break
done
[ "$during" -ge 1 ] || tw_fail "no status was answered while the reload was read"
tw_log "status answered $during times while 30,000 include files were read"
grep -qF "reloaded: 0 certificates" "$TW/log" || tw_fail "the long reload did not apply"

echo "== SIGTERM during a long reload stops the daemon"
kill -HUP "$daemon"
kill -TERM "$daemon"
stopped=0
for _ in $(seq 1 100); do
  if ! kill -0 "$daemon" 2>/dev/null; then
    stopped=1
    break
  fi
  sleep 0.1
done
[ "$stopped" = 1 ] || tw_fail "SIGTERM during a reload: still running after 10 s"
wait "$daemon"
rc=$?
[ "$rc" = 0 ] || tw_fail "SIGTERM during a reload: exit $rc, expected 0"
grep -qF "SIGTERM: stopping" "$TW/log" || tw_fail "no 'SIGTERM: stopping' in the log"

if [ "$TW_FAILS" -gt 0 ]; then
  sed 's/^/  log: /' "$TW/log" | tail -40 >&2
  exit 1
fi
echo "PASS"
