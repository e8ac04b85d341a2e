#!/usr/bin/env bash
# The CLI's control-socket clients end to end against the real control
# server with canned handlers (tools/ctl-fake): `status` table and --json,
# `renew` by name, --all, --force, --deploy-only and an unknown name,
# `reload` ok (0) and with an invalid configuration (78, error lines), the
# socket path from the config file, mode 0660, and exit 69 with a clear
# message when no daemon answers.
set -uo pipefail

. "$(dirname "$0")/lib.sh"
FAKE=${BUILD_DIR:-build}/ctl-fake
if [ ! -x "$FAKE" ]; then
  echo "test_control_cli: no binary at $FAKE" >&2
  exit 1
fi
tw_init_bare ctlcli
tmp=$TW

sock=$tmp/run/control.sock
cat >"$tmp/certloop.toml" <<EOT
[daemon]
state_dir = "$tmp/state"
control_socket = "$sock"
EOT

echo "== no daemon"
tw_run 69 status -c "$tmp/certloop.toml" &&
  tw_has "$tmp/err" "certloop: no daemon answers on $sock: No such file or directory"
mkdir -p "$tmp/run"
make_stale_socket() { # a stale socket file: bound, then its owner died
  "$FAKE" "$sock" >"$tmp/fake0.out" 2>&1 &
  local p=$!
  for _ in $(seq 50); do grep -q ready "$tmp/fake0.out" 2>/dev/null && break; sleep 0.1; done
  kill -9 "$p"; wait "$p" 2>/dev/null
}
make_stale_socket
[ -S "$sock" ] || tw_fail "no stale socket left behind by kill -9"
tw_run 69 reload --socket "$sock" &&
  tw_has "$tmp/err" "certloop: no daemon answers on $sock: Connection refused"

echo "== start the fake daemon (replaces the stale socket)"
"$FAKE" "$sock" >"$tmp/fake.out" 2>"$tmp/fake.err" &
pid=$!
TW_PIDS+=("$pid")
for _ in $(seq 50); do grep -q ready "$tmp/fake.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$tmp/fake.out" || tw_fail "ctl-fake did not start: $(cat "$tmp/fake.err")"
[ "$(stat -c %a "$sock")" = 660 ] || tw_fail "socket mode $(stat -c %a "$sock"), expected 660"
"$FAKE" "$sock" >/dev/null 2>"$tmp/second.err" && tw_fail "a second server started on a live socket"
grep -q "another daemon answers on it" "$tmp/second.err" || tw_fail "second server: $(cat "$tmp/second.err")"

echo "== status"
if tw_run 0 status -c "$tmp/certloop.toml"; then
  tw_has "$tmp/out" "NAME  STATE     NOT AFTER         NEXT RENEWAL      REASON/LAST ERROR"
  tw_has "$tmp/out" "www   valid     2026-01-01 00:00  2025-12-02 00:00  a third of the lifetime remaining"
  tw_has "$tmp/out" "api   retrying  -                 2025-11-24 16:00  error: name=api.test: authorization invalid: connection refused"
fi
CERTLOOP_CONFIG=$tmp/certloop.toml tw_run 0 status --json &&
  [ "$(grep -c '"name"' "$tmp/out")" = 2 ] || tw_fail "status --json: $(cat "$tmp/out")"
grep -q '"consecutive_failures": 3' "$tmp/out" || tw_fail "status --json lacks the extra members"

echo "== renew"
tw_run 0 renew www --socket "$sock" && tw_has "$tmp/out" "www: renewal queued"
tw_run 0 renew --all --force -c "$tmp/certloop.toml" && tw_has "$tmp/out" "api: renewal queued"
tw_run 0 renew api --deploy-only --socket "$sock" && tw_has "$tmp/out" "api: deploy queued"
tw_run 1 renew www nope --socket "$sock" && tw_has "$tmp/err" "certloop: nope: no certificate named 'nope'"
tw_has "$tmp/fake.out" "renew www force=0 deploy_only=0"
tw_has "$tmp/fake.out" "renew www force=1 deploy_only=0"
tw_has "$tmp/fake.out" "renew api force=1 deploy_only=0"
tw_has "$tmp/fake.out" "renew api force=0 deploy_only=1"

echo "== reload"
tw_run 0 reload --socket "$sock" && tw_has "$tmp/out" "reloaded: 2 certificates"
touch "$sock.invalid"
if tw_run 78 reload --socket "$sock"; then
  tw_has "$tmp/err" "/etc/certloop/certloop.toml:9:1: error: ca.x: unknown key 'directry'"
  tw_has "$tmp/err" "certloop: reload: the new configuration is invalid; keeping the old one"
fi

echo "== stop: the socket file goes away"
kill "$pid"
wait "$pid" || tw_fail "ctl-fake exited $?"
[ -e "$sock" ] && tw_fail "socket file left after a clean stop"

tw_done
