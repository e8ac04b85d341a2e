#!/usr/bin/env bash
# The CLI's control-socket clients end to end against the real control
# server with canned handlers (tools/ctl-fake): `status` table and --json,
# `renew` by name, --all, --force, --deploy-only and an unknown name,
# `reload` ok (0) and with an invalid configuration (78, error lines), the
# socket path from the config file, mode 0660, and exit 69 with a clear
# message when no daemon answers.
set -uo pipefail

CERTLOOP=${CERTLOOP:-${BUILD_DIR:-build}/certloop}
FAKE=${BUILD_DIR:-build}/ctl-fake
for b in "$CERTLOOP" "$FAKE"; do
  if [ ! -x "$b" ]; then
    echo "test_control_cli: no binary at $b" >&2
    exit 1
  fi
done

tmp=$(mktemp -d /tmp/certloop-ctlcli-XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}

# run EXPECTED_CODE ARGS...: output in $tmp/out and $tmp/err
run() {
  local want=$1
  shift
  "$CERTLOOP" "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" != "$want" ]; then
    fail "certloop $*: exit $got, expected $want"
    sed 's/^/  stdout: /' "$tmp/out" >&2
    sed 's/^/  stderr: /' "$tmp/err" >&2
    return 1
  fi
  return 0
}

has() {
  if ! grep -qxF -- "$2" "$1"; then
    fail "expected line in $(basename "$1"): $2"
    sed 's/^/  | /' "$1" >&2
  fi
}

sock=$tmp/run/control.sock
cat >"$tmp/certloop.toml" <<EOT
[daemon]
state_dir = "$tmp/state"
control_socket = "$sock"
EOT

echo "== no daemon"
run 69 status -c "$tmp/certloop.toml" &&
  has "$tmp/err" "certloop: no daemon answers on $sock: No such file or directory"
mkdir -p "$tmp/run"
make_stale_socket() { # a stale socket file: bound, then its owner died
  "$FAKE" "$sock" >"$tmp/fake0.out" 2>&1 &
  local p=$!
  for _ in $(seq 50); do grep -q ready "$tmp/fake0.out" 2>/dev/null && break; sleep 0.1; done
  kill -9 "$p"; wait "$p" 2>/dev/null
}
make_stale_socket
[ -S "$sock" ] || fail "no stale socket left behind by kill -9"
run 69 reload --socket "$sock" &&
  has "$tmp/err" "certloop: no daemon answers on $sock: Connection refused"

echo "== start the fake daemon (replaces the stale socket)"
"$FAKE" "$sock" >"$tmp/fake.out" 2>"$tmp/fake.err" &
pid=$!
for _ in $(seq 50); do grep -q ready "$tmp/fake.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$tmp/fake.out" || fail "ctl-fake did not start: $(cat "$tmp/fake.err")"
[ "$(stat -c %a "$sock")" = 660 ] || fail "socket mode $(stat -c %a "$sock"), expected 660"
"$FAKE" "$sock" >/dev/null 2>"$tmp/second.err" && fail "a second server started on a live socket"
grep -q "another daemon answers on it" "$tmp/second.err" || fail "second server: $(cat "$tmp/second.err")"

echo "== status"
if run 0 status -c "$tmp/certloop.toml"; then
  has "$tmp/out" "NAME  STATE     NOT AFTER         NEXT RENEWAL      REASON/LAST ERROR"
  has "$tmp/out" "www   valid     2026-01-01 00:00  2025-12-02 00:00  a third of the lifetime remaining"
  has "$tmp/out" "api   retrying  -                 2025-11-24 16:00  error: name=api.test: authorization invalid: connection refused"
fi
CERTLOOP_CONFIG=$tmp/certloop.toml run 0 status --json &&
  [ "$(grep -c '"name"' "$tmp/out")" = 2 ] || fail "status --json: $(cat "$tmp/out")"
grep -q '"consecutive_failures": 3' "$tmp/out" || fail "status --json lacks the extra members"

echo "== renew"
run 0 renew www --socket "$sock" && has "$tmp/out" "www: renewal queued"
run 0 renew --all --force -c "$tmp/certloop.toml" && has "$tmp/out" "api: renewal queued"
run 0 renew api --deploy-only --socket "$sock" && has "$tmp/out" "api: deploy queued"
run 1 renew www nope --socket "$sock" && has "$tmp/err" "certloop: nope: no certificate named 'nope'"
has "$tmp/fake.out" "renew www force=0 deploy_only=0"
has "$tmp/fake.out" "renew www force=1 deploy_only=0"
has "$tmp/fake.out" "renew api force=1 deploy_only=0"
has "$tmp/fake.out" "renew api force=0 deploy_only=1"

echo "== reload"
run 0 reload --socket "$sock" && has "$tmp/out" "reloaded: 2 certificates"
touch "$sock.invalid"
if run 78 reload --socket "$sock"; then
  has "$tmp/err" "/etc/certloop/certloop.toml:9:1: error: ca.x: unknown key 'directry'"
  has "$tmp/err" "certloop: reload: the new configuration is invalid; keeping the old one"
fi

echo "== stop: the socket file goes away"
kill "$pid"
wait "$pid" || fail "ctl-fake exited $?"
pid=
[ -e "$sock" ] && fail "socket file left after a clean stop"

if [ "$fails" -gt 0 ]; then
  echo "test_control_cli: $fails failure(s)" >&2
  exit 1
fi
echo "test_control_cli: ok"
