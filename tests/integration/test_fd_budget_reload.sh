#!/usr/bin/env bash
# The file-descriptor budget follows a reload (issue 17 item 1). The daemon
# runs at `ulimit -Sn 1024 -Hn 1024` with max_concurrent_orders = 4 while 600
# idle connections are held on its http-01 port (its cap is ~680: all are
# kept). A reload to max_concurrent_orders = 100 keeps 4 x 96 more
# descriptors for orders: the http-01 cap drops below 400 and the excess
# connections are closed at once, the oldest first; the control socket still
# answers. A reload back gives the room back. Before, the caps were sized
# once at start and a reload kept them.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
tw_need python3
tw_init_bare fdreload
PORT=$(tw_port)
CONF="$TW/certloop.toml"
conf() { # MAX_CONCURRENT_ORDERS
  printf '[daemon]\nstate_dir = "%s"\ncontrol_socket = "%s"\nmax_concurrent_orders = %s\n' \
    "$TW/state" "$TW/control.sock" "$1"
  printf '\n[http01]\nlisten = ["127.0.0.1:%s"]\n' "$PORT"
}
mkdir -p "$TW/state"
conf 4 >"$CONF"

bash -c 'ulimit -Sn 1024 -Hn 1024 && exec "$@"' limit "$CERTLOOP" run -c "$CONF" \
  >"$TW/out.txt" 2>"$TW/err.txt" &
TW_DAEMON_PID=$!
TW_PIDS+=("$TW_DAEMON_PID")
tw_daemon_wait 10 test -S "$TW/control.sock" || { tw_fail "the daemon did not start"; tw_done; }
# the http-01 cap from the budget's last log line
cap() { sed -n 's/.*http01: at most \([0-9]*\) connections.*/\1/p' "$TW/err.txt" | tail -1; }
# the daemon's TCP and unix sockets
n_sockets() { find "/proc/$TW_DAEMON_PID/fd" -lname 'socket:*' 2>/dev/null | wc -l; }
first=$(cap)
[ -n "$first" ] || { tw_fail "no budget line: $(head -3 "$TW/err.txt")"; tw_done; }

tw_flood "$PORT" 600 || { tw_fail "flood: $(cat "$TW/flood.log")"; tw_done; }
held_all() { [ "$(n_sockets)" -ge 600 ]; }
tw_daemon_wait 10 held_all || tw_fail "cap $first: only $(n_sockets) sockets held of 600"

conf 100 >"$CONF"
"$CERTLOOP" reload -c "$CONF" >"$TW/reload.txt" 2>&1 || tw_fail "reload: $(cat "$TW/reload.txt")"
second=$(cap)
grep -q "http01: at most $second connections.*(after the reload)" "$TW/err.txt" ||
  tw_fail "no budget line after the reload"
[ "$second" -lt $((first - 200)) ] || tw_fail "the http-01 cap went from $first to $second"
within_cap() { [ "$(n_sockets)" -le $((second + 16)) ]; }
tw_daemon_wait 10 within_cap || tw_fail "cap $second after the reload: $(n_sockets) sockets held"
"$CERTLOOP" status -c "$CONF" >/dev/null 2>"$TW/status.err" ||
  tw_fail "status after the reload: $(cat "$TW/status.err")"
tw_log "http-01 cap $first -> $second, sockets held: $(n_sockets)"

conf 4 >"$CONF"
"$CERTLOOP" reload -c "$CONF" >"$TW/reload.txt" 2>&1 || tw_fail "reload back: $(cat "$TW/reload.txt")"
[ "$(cap)" = "$first" ] || tw_fail "the cap after reloading back: $(cap), want $first"
grep -q 'Too many open files' "$TW/err.txt" && tw_fail "the daemon ran out of descriptors"
kill "$FLOOD_PID" 2>/dev/null
wait "$FLOOD_PID" 2>/dev/null
tw_daemon_stop >/dev/null || tw_fail "the daemon's exit status"
tw_done
