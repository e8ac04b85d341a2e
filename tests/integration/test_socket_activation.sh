#!/usr/bin/env bash
# [http01] listen = [] with systemd socket activation: the http-01 port is
# bound by systemd-socket-activate (systemd's own tool, as certloop.socket
# would) and passed in as LISTEN_FDS; the daemon answers Pebble's
# validation on it and issues. `check` refuses listen = [] for an http-01
# certificate unless CERTLOOP_SOCKET_ACTIVATION=1 (set by
# systemd/certloop-socket.conf) says a socket unit serves it.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
tw_init sockact
command -v systemd-socket-activate >/dev/null 2>&1 || tw_skip "systemd-socket-activate not found"
tw_start || exit 1
{
  tw_config_head 4 | sed 's|^listen = .*|listen = []|'
  tw_config_cert sa ec-p256 sa.test
} >"$TW/certloop.toml"

"$CERTLOOP" check -c "$TW/certloop.toml" >"$TW/check.txt" 2>&1
rc=$?
[ "$rc" = 78 ] || tw_fail "check without socket activation: exit $rc, want 78"
grep -q "CERTLOOP_SOCKET_ACTIVATION=1" "$TW/check.txt" || tw_fail "check does not name the way out"
CERTLOOP_SOCKET_ACTIVATION=1 "$CERTLOOP" check -c "$TW/certloop.toml" >"$TW/check.txt" 2>&1 ||
  tw_fail "check with CERTLOOP_SOCKET_ACTIVATION=1: $(cat "$TW/check.txt")"
grep -q "Environment=CERTLOOP_SOCKET_ACTIVATION=1" "${SOURCE_DIR:-.}/systemd/certloop-socket.conf" ||
  tw_fail "certloop-socket.conf does not set CERTLOOP_SOCKET_ACTIVATION=1"

# systemd-socket-activate binds, and starts the daemon at the first connection
systemd-socket-activate -l "127.0.0.1:$TW_HTTP_PORT" "$CERTLOOP" run -c "$TW/certloop.toml" \
  >"$TW/d.out" 2>"$TW/d.err" &
TW_DAEMON_PID=$!
TW_PIDS+=("$TW_DAEMON_PID")
for ((t = 0; t < 50; t++)); do
  grep -q "Listening on" "$TW/d.err" && break
  sleep 0.1
done
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
  "http://127.0.0.1:$TW_HTTP_PORT/.well-known/acme-challenge/nothing")
[ "$code" = 404 ] || tw_fail "the first connection got $code, want certloop's 404"
deployed() { [ -s "$TW/out/sa/fullchain.pem" ]; }
tw_daemon_wait 60 deployed || { tw_fail "not issued through the passed socket"; tail -5 "$TW/d.err" >&2; }
tw_check_deployed sa
grep -q "http01: listening on 1 socket(s) from systemd" "$TW/d.err" ||
  tw_fail "the daemon did not adopt the socket: $(grep http01 "$TW/d.err")"
tw_daemon_stop >/dev/null || tw_fail "daemon exit status"
tw_done
