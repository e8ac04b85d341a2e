#!/usr/bin/env bash
# The file-descriptor budget (issue 17 item 1). The daemon runs at
# `ulimit -Sn 1024 -Hn 1024` (systemd's default soft limit, no way up) with
# three certificates. While ~1,100 idle connections are held on its http-01
# port, `certloop renew --all --force` goes through the control socket, all
# three renewals complete (Pebble's token requests are answered), every probe
# request on the http-01 port gets an HTTP answer (404 for an unknown token,
# never an empty reply), `certloop status` answers, and the log has no
# "Too many open files". Before the budget the listener took connections
# until the process ran out of descriptors.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

FLOOD=${FLOOD:-1100}
tw_init fdbudget
tw_start || exit 1
CONF="$TW/certloop.toml"
NAMES="fa fb fc"
{
  tw_config_head 8
  for n in $NAMES; do
    tw_config_cert "$n" ec-p256 "$n.test"
  done
} >"$CONF"
"$CERTLOOP" check -c "$CONF" >/dev/null || { tw_fail "config invalid"; tw_done; }

n_issued() {
  grep -c 'issued cert=' "$TW/err.txt"
}
issued_at_least() {
  [ "$(n_issued)" -ge "$1" ]
}

bash -c 'ulimit -Sn 1024 -Hn 1024 && exec "$@"' limit "$CERTLOOP" run -c "$CONF" \
  >"$TW/out.txt" 2>"$TW/err.txt" &
TW_DAEMON_PID=$!
TW_PIDS+=("$TW_DAEMON_PID")
if ! tw_daemon_wait 60 issued_at_least 3; then
  tw_fail "the first three issuances did not happen within 60 s"
  sed 's/^/  log: /' "$TW/err.txt" >&2
  tw_done
fi
lim=$(awk '/^Max open files/ { print $4 }' "/proc/$TW_DAEMON_PID/limits")
[ "$lim" = 1024 ] || tw_fail "daemon runs with soft limit $lim, expected 1024"

# The flood: FLOOD connections opened and held without a byte sent
tw_flood "$TW_HTTP_PORT" "$FLOOD" || tw_fail "the flood did not start: $(cat "$TW/flood.log")"
tw_log "flood: $(cat "$TW/flood.state"), daemon fds: $(ls "/proc/$TW_DAEMON_PID/fd" | wc -l)"

# probe PATH: one request on the http-01 port; prints the status (000: no
# HTTP answer)
probe() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$TW_HTTP_PORT$1"
}

if ! "$CERTLOOP" renew -c "$CONF" --all --force >"$TW/renew.out" 2>"$TW/renew.err"; then
  tw_fail "renew --all --force during the flood: $(cat "$TW/renew.err")"
fi
probes=0 unanswered=0
for ((t = 0; t < 600; t++)); do
  code=$(probe /.well-known/acme-challenge/not-a-token-$t)
  probes=$((probes + 1))
  [ "$code" = 404 ] || { unanswered=$((unanswered + 1)); tw_log "probe $t: HTTP $code"; }
  issued_at_least 6 && break
  kill -0 "$TW_DAEMON_PID" 2>/dev/null || break
  sleep 0.1
done
issued_at_least 6 || tw_fail "only $(($(n_issued) - 3)) of 3 renewals completed during the flood"
[ "$unanswered" = 0 ] || tw_fail "$unanswered of $probes probe requests got no 404"
tw_log "renewals: $(($(n_issued) - 3)), probes: $probes, unanswered: $unanswered, daemon fds: $(ls "/proc/$TW_DAEMON_PID/fd" | wc -l)"

# the control socket answers while the flood still holds its connections
"$CERTLOOP" status -c "$CONF" >"$TW/status.txt" 2>"$TW/status.err" ||
  tw_fail "status during the flood: $(cat "$TW/status.err")"
for n in $NAMES; do
  tw_check_deployed "$n"
done
if grep -q 'Too many open files' "$TW/err.txt"; then
  tw_fail "the daemon ran out of descriptors"
  grep 'Too many open files' "$TW/err.txt" | head -5 >&2
fi
grep -q 'http01: at most [0-9]* connections' "$TW/err.txt" ||
  tw_fail "no budget line in the log"
kill "$FLOOD_PID" 2>/dev/null
wait "$FLOOD_PID" 2>/dev/null
tw_daemon_stop
rc=$?
[ "$rc" = 0 ] || tw_fail "daemon exited $rc after SIGTERM"
tw_done
