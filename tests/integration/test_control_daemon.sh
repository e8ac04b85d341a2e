#!/usr/bin/env bash
# The control socket on a running daemon: `certloop run` issues three
# certificates, then `certloop status` (table and --json), `certloop renew
# NAME --force` (a new generation and a new serial), GET /metrics over the
# unix socket, `certloop reload` with a broken configuration (78, the
# FILE:LINE:COL line, the daemon keeps running) and a valid one (0), the
# socket's mode, and after SIGTERM: exit 0, socket gone, status exits 69.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init ctld
tw_start || exit 1
CONF="$TW/certloop.toml"
SOCK="$TW/control.sock"
NAMES="alpha beta gamma"
write_config() {
  tw_config_head 8
  for n in $NAMES; do
    tw_config_cert "$n" ec-p256 "$n.test"
  done
}
write_config >"$CONF"
"$CERTLOOP" check -c "$CONF" >/dev/null || { tw_fail "config invalid"; tw_done; }

all_issued() {
  local n
  for n in $NAMES; do
    [ -s "$TW/out/$n/cert.pem" ] || return 1
  done
}
if ! tw_daemon_start "$CONF" "$TW/out.txt" "$TW/err.txt" 60 all_issued; then
  tw_fail "not all 3 certificates issued within 60 s"
  sed 's/^/  log: /' "$TW/err.txt" >&2
  tw_done
fi
# the deploy writes files before the manager goes idle: wait until status says valid
all_valid() {
  "$CERTLOOP" status -c "$CONF" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if len(d["certificates"]) == 3 and all(c["state"] == "valid" for c in d["certificates"]) else 1)'
}
tw_daemon_wait 20 all_valid

# status: a table with all three, valid, with their not_after
"$CERTLOOP" status -c "$CONF" >"$TW/status.txt" 2>"$TW/status.err"
rc=$?
[ "$rc" = 0 ] || tw_fail "status exited $rc: $(cat "$TW/status.err")"
for n in $NAMES; do
  line=$(grep -E "^$n[[:space:]]" "$TW/status.txt")
  [ -n "$line" ] || { tw_fail "status lacks $n"; continue; }
  grep -qw valid <<<"$line" || tw_fail "status: $n not valid: $line"
  # NOT AFTER as the certificate says (UTC date)
  na=$(openssl x509 -in "$TW/out/$n/cert.pem" -noout -enddate | cut -d= -f2)
  day=$(date -u -d "$na" +%Y-%m-%d)
  grep -qF "$day" <<<"$line" || tw_fail "status: $n lacks not_after $day: $line"
done

# status --json: valid JSON, 3 certificates, not_after matching the files
"$CERTLOOP" status -c "$CONF" --json >"$TW/status.json" 2>"$TW/status.err" ||
  tw_fail "status --json failed: $(cat "$TW/status.err")"
for n in $NAMES; do
  na=$(openssl x509 -in "$TW/out/$n/cert.pem" -noout -enddate | cut -d= -f2)
  echo "$n $(date -u -d "$na" +%s)"
done >"$TW/expect.txt"
python3 - "$TW/status.json" "$TW/expect.txt" <<'PY' || tw_fail "status --json is not what was expected"
import json, sys
d = json.load(open(sys.argv[1]))
certs = {c["name"]: c for c in d["certificates"]}
assert len(d["certificates"]) == 3, d
for line in open(sys.argv[2]):
    name, na = line.split()
    c = certs[name]
    assert c["state"] == "valid", c
    assert c["not_after"] == int(na), (c["not_after"], na)
    assert isinstance(c["next_renewal"], int) and c["next_renewal"] < c["not_after"], c
PY

# metrics: one not_after sample per certificate, with its value
curl -fsS --max-time 10 --unix-socket "$SOCK" http://x/metrics >"$TW/metrics.txt" ||
  tw_fail "GET /metrics failed"
while read -r n na; do
  grep -qE "^certloop_certificate_not_after_timestamp_seconds\{name=\"$n\"\} $na(\.0+)?\$" \
    "$TW/metrics.txt" || tw_fail "metrics lack the not_after of $n ($na)"
done <"$TW/expect.txt"

# renew --force: accepted, a new generation and a new serial get deployed
cur_before=$(readlink "$TW/state/certs/beta/current" 2>/dev/null || cat "$TW/state/certs/beta/current")
serial_before=$(openssl x509 -in "$TW/out/beta/cert.pem" -noout -serial)
"$CERTLOOP" renew -c "$CONF" beta --force >"$TW/renew.out" 2>&1
rc=$?
[ "$rc" = 0 ] || tw_fail "renew --force exited $rc: $(cat "$TW/renew.out")"
for ((t = 0; t < 600; t++)); do
  cur=$(readlink "$TW/state/certs/beta/current" 2>/dev/null || cat "$TW/state/certs/beta/current")
  serial=$(openssl x509 -in "$TW/out/beta/cert.pem" -noout -serial 2>/dev/null)
  [ "$cur" != "$cur_before" ] && [ -n "$serial" ] && [ "$serial" != "$serial_before" ] && break
  sleep 0.1
done
[ "$cur" != "$cur_before" ] || tw_fail "renew --force: no new generation ($cur)"
[ "$serial" != "$serial_before" ] || tw_fail "renew --force: the deployed serial did not change"
"$CERTLOOP" renew -c "$CONF" nosuch --force >/dev/null 2>&1 && tw_fail "renew of an unknown name succeeded"

# reload with a broken configuration: 78, the FILE:LINE:COL line, still running
cp "$CONF" "$TW/good.toml"
write_config | sed 's/^log_level = .*/log_level = "loud"/' >"$CONF"
"$CERTLOOP" reload -c "$TW/good.toml" --socket "$SOCK" >"$TW/reload.out" 2>&1
rc=$?
[ "$rc" = 78 ] || tw_fail "reload of a broken config exited $rc (want 78)"
grep -qE "$CONF:[0-9]+:[0-9]+: error: daemon\.log_level" "$TW/reload.out" ||
  { tw_fail "reload lacks the FILE:LINE:COL line"; sed 's/^/  reload: /' "$TW/reload.out" >&2; }
kill -0 "$TW_DAEMON_PID" 2>/dev/null || tw_fail "the daemon died on a broken reload"
# reload -c FILE with FILE itself broken still reaches the daemon FILE names
"$CERTLOOP" reload -c "$CONF" >"$TW/reload.out" 2>&1
rc=$?
[ "$rc" = 78 ] || tw_fail "reload -c BROKEN exited $rc (want 78): $(cat "$TW/reload.out")"
grep -qE "$CONF:[0-9]+:[0-9]+: error: daemon\.log_level" "$TW/reload.out" ||
  tw_fail "reload -c BROKEN lacks the daemon's FILE:LINE:COL line: $(cat "$TW/reload.out")"
cp "$TW/good.toml" "$CONF"
"$CERTLOOP" reload -c "$CONF" >"$TW/reload.out" 2>&1
rc=$?
[ "$rc" = 0 ] || tw_fail "reload of a valid config exited $rc: $(cat "$TW/reload.out")"
grep -qF "reloaded: 3 certificates" "$TW/reload.out" "$TW/err.txt" || tw_fail "no 'reloaded: 3 certificates'"

# a second daemon (its own state directory and http-01 port) on the same
# socket: 75, and the first one keeps its socket
mkdir -p "$TW/state2"
printf '[daemon]\nstate_dir = "%s"\ncontrol_socket = "%s"\n[http01]\nlisten = ["127.0.0.1:%s"]\n' \
  "$TW/state2" "$SOCK" "$(tw_port)" >"$TW/second.toml"
timeout 30 "$CERTLOOP" run -c "$TW/second.toml" >/dev/null 2>"$TW/second.err"
rc=$?
[ "$rc" = 75 ] || { tw_fail "a second daemon on the same socket exited $rc (want 75)"; cat "$TW/second.err" >&2; }
grep -qF "another certloop daemon answers on $SOCK" "$TW/second.err" || tw_fail "second daemon: no clear error"
"$CERTLOOP" status -c "$CONF" >/dev/null 2>&1 || tw_fail "the first daemon lost its socket"

[ "$(tw_mode "$SOCK")" = 660 ] || tw_fail "socket mode $(tw_mode "$SOCK"), want 660"

tw_daemon_stop 30
rc=$?
[ "$rc" = 0 ] || tw_fail "daemon exited $rc after SIGTERM"
[ -e "$SOCK" ] && tw_fail "the socket file is still there after the stop"
grep -qF "handle still open" "$TW/err.txt" && tw_fail "handles left open at shutdown"
timeout 20 "$CERTLOOP" status -c "$CONF" >/dev/null 2>&1
rc=$?
[ "$rc" = 69 ] || tw_fail "status without a daemon exited $rc (want 69)"
[ "$TW_FAILS" -gt 0 ] && sed 's/^/  log: /' "$TW/err.txt" >&2
tw_done
