#!/usr/bin/env bash
# The fleet view and shared http-01 tokens (issue 14 items 4 and 6) with two
# daemons on one real PostgreSQL and Pebble: instance b's certificate is
# validated by Pebble through instance a's http-01 listener (Pebble only
# knows a's port: the token reaches a through the database); both heartbeat,
# `status --fleet` (and --json, and GET /v1/fleet of a's HTTPS API) shows
# both with their versions and configuration digests, b's failed deployment
# as FAILED; b killed -9 turns SILENT; with the database stopped the view
# says so and keeps the last copy, and recovers when it is back. b declares
# c0 with other names than a: both report the conflict and b never orders
# c0 (which would undo a's order, and a's next one b's).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"

tw_init pgfleet
pg_start || exit 1
tw_start || exit 1
tw_receiver_start || { tw_fail "the webhook receiver did not start"; tw_done; }
API_PORT=$(tw_port)
B_PORT=$(tw_port)

# a: serves http-01 on the port Pebble validates, and the HTTPS API
{
  tw_config_head 8
  pg_store_config a
  printf '[api]\nlisten = ["127.0.0.1:%s"]\ntokens_file = "%s"\n\n' "$API_PORT" "$TW/api-tokens"
  tw_config_cert c0 ec-p256 c0.test
} >"$TW/a.toml"
# b: its own state, socket and http-01 port (Pebble never asks it), and a
# deployment that fails
mkdir -p "$TW/state-b"
{
  tw_config_head 8 "$B_PORT" | sed -e "s|^state_dir = .*|state_dir = \"$TW/state-b\"|" \
    -e "s|^control_socket = .*|control_socket = \"$TW/b.sock\"|"
  pg_store_config b
  tw_config_cert c0 ec-p256 c0.test www.c0.test # a declares c0.test alone
  tw_config_cert c1 ec-p256 c1.test
  printf '[[certificate.c1.deploy]]\ntype = "exec"\ncommand = ["/bin/false"]\n\n'
  printf '[notify.ops]\nurl = "http://127.0.0.1:%s/hook"\nsecret_file = "%s"\nevents = ["fleet_conflict"]\n' \
    "$TW_RECEIVER_PORT" "$TW/webhook.secret"
} >"$TW/b.toml"
for f in a b; do
  "$CERTLOOP" check -c "$TW/$f.toml" >"$TW/check.out" 2>&1 ||
    { tw_fail "check $f.toml"; cat "$TW/check.out" >&2; }
done
"$CERTLOOP" api-token create reader --scopes read -c "$TW/a.toml" >"$TW/reader.tok" 2>/dev/null ||
  tw_fail "api-token create"

tw_daemon_start "$TW/a.toml" "$TW/a.out" "$TW/a.err" 90 test -s "$TW/out/c0/fullchain.pem" ||
  tw_fail "a did not deploy c0: $(tail -5 "$TW/a.err")"
A_PID=$TW_DAEMON_PID
tw_check_deployed c0
tw_daemon_start "$TW/b.toml" "$TW/b.out" "$TW/b.err"
B_PID=$TW_DAEMON_PID

echo "== b's token answered by a's listener"
stored_c1() { [ "$(pg_sql "SELECT count(*) FROM certloop_generations WHERE cert = 'c1'")" = 1 ]; }
tw_daemon_wait 90 stored_c1 || tw_fail "b did not store c1: $(grep -E 'error|warn' "$TW/b.err" | tail -5)"
grep -q 'http01: token .* fetched by' "$TW/a.err" || tw_fail "a's listener served no token"
grep -q 'http01: token .* fetched by' "$TW/b.err" && tw_fail "b's listener served a token Pebble cannot reach"

echo "== status --fleet"
fleet() { "$CERTLOOP" status --fleet -c "$TW/a.toml" "$@" >"$TW/fleet.out" 2>"$TW/fleet.err"; }
b_failed() { fleet && grep -qE '^b +.*FAILED: c1' "$TW/fleet.out"; }
tw_daemon_wait 30 b_failed ||
  tw_fail "status --fleet: b's failed deployment not shown: $(cat "$TW/fleet.out" "$TW/fleet.err")"
grep -qE '^a +[0-9.]+ +[0-9a-f]{16} +[0-9]+s ago +1 +ok$' "$TW/fleet.out" ||
  tw_fail "status --fleet: a: $(cat "$TW/fleet.out")"
grep -q '^fleet seen by a: database up' "$TW/fleet.out" ||
  tw_fail "status --fleet head: $(head -1 "$TW/fleet.out")"
fleet --json || tw_fail "status --fleet --json: $(cat "$TW/fleet.err")"
python3 - "$TW/fleet.out" <<'PY' || tw_fail "status --fleet --json: $(cat "$TW/fleet.out")"
import json, sys
f = json.load(open(sys.argv[1]))
inst = {i["instance"]: i for i in f["instances"]}
assert f["self"] == "a" and f["database"] == "up" and f["silent_after"] == 20, f
assert set(inst) == {"a", "b"}, inst
assert inst["b"]["failed"] == ["c1"] and inst["a"]["failed"] == [], inst
assert inst["a"]["lagging"] == [] and inst["a"]["deployed"] == 1, inst
assert not inst["a"]["silent"] and not inst["b"]["silent"], inst
assert inst["a"]["config_digest"] != inst["b"]["config_digest"], inst
PY
"$CERTLOOP" status --fleet -c "$TW/b.toml" >"$TW/fleet-b.out" 2>&1 || tw_fail "status --fleet on b"
grep -q '^fleet seen by b' "$TW/fleet-b.out" || tw_fail "b's view: $(cat "$TW/fleet-b.out")"

echo "== conflicting declarations of c0"
python3 - "$TW/fleet.out" <<'PY' || tw_fail "a's view of the conflict: $(cat "$TW/fleet.out")"
import json, sys
f = json.load(open(sys.argv[1]))
assert f["conflicts"] == [{"certificate": "c0", "instance": "b", "names": "c0.test www.c0.test",
                           "key": "ec-p256"}], f["conflicts"]
PY
grep -q '^CONFLICT c0: instance a declares it as c0.test (key ec-p256)$' "$TW/fleet-b.out" ||
  tw_fail "b's view of the conflict: $(cat "$TW/fleet-b.out")"
grep -q 'cert=c0: instance a declares it differently' "$TW/b.err" || tw_fail "b logs no conflict"
grep -q 'cert=c0: instance b declares it differently' "$TW/a.err" || tw_fail "a logs no conflict"
"$CERTLOOP" status -c "$TW/b.toml" >"$TW/status-b.out" 2>&1
grep -q 'another instance declares it differently' <<<"$(grep -E '^c0 ' "$TW/status-b.out")" ||
  tw_fail "b's status of c0: $(cat "$TW/status-b.out")"
"$CERTLOOP" status -c "$TW/b.toml" c0 >"$TW/status-b-c0.out" 2>&1
grep -q 'conflict.*instance a declares it as c0.test (key ec-p256)' "$TW/status-b-c0.out" ||
  tw_fail "b's history of c0 has no conflict: $(cat "$TW/status-b-c0.out")"
conflict_event() { grep -q '"event":"fleet_conflict"' "$TW/received"; }
tw_daemon_wait 20 conflict_event || tw_fail "no fleet_conflict webhook: $(cat "$TW/received")"
python3 - "$TW/received" <<'PY' || tw_fail "the fleet_conflict webhook: $(cat "$TW/received")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ev = [e for e in ev if e["event"] == "fleet_conflict"]
assert len(ev) == 1 and ev[0]["signature"] == "ok", ev
b = ev[0]["body"]
assert b["certificate"] == "c0" and b["error"]["identifier"] == "a", b
assert "declares it as c0.test (key ec-p256)" in b["error"]["detail"], b
PY
[ "$(grep -c "POST /order-plz" "$TW/pebble.log")" = 2 ] ||
  tw_fail "$(grep -c "POST /order-plz" "$TW/pebble.log") orders, expected 2 (c0 by a, c1 by b)"

echo "== GET /v1/fleet"
# the PostgreSQL store keeps no bootstrap certificate file: pin the one served
openssl s_client -connect "127.0.0.1:$API_PORT" </dev/null 2>/dev/null | openssl x509 >"$TW/api.pem" ||
  tw_fail "no certificate from the API"
st=$(curl -sS --max-time 15 --cacert "$TW/api.pem" -o "$TW/api.json" -w '%{http_code}' \
  -H "Authorization: Bearer $(cat "$TW/reader.tok")" "https://127.0.0.1:$API_PORT/v1/fleet")
[ "$st" = 200 ] || tw_fail "GET /v1/fleet: $st"
python3 -c 'import json,sys; f=json.load(open(sys.argv[1])); assert {i["instance"] for i in f["instances"]} == {"a","b"}' \
  "$TW/api.json" || tw_fail "GET /v1/fleet: $(cat "$TW/api.json")"

echo "== b killed: silent"
kill -KILL "$B_PID"
wait "$B_PID" 2>/dev/null
TW_DAEMON_PID=$A_PID
b_silent() { fleet && grep -qE '^b +.*SILENT' "$TW/fleet.out"; }
tw_daemon_wait 45 b_silent || tw_fail "b not shown silent: $(cat "$TW/fleet.out")"
grep -qE '^a +.* ok$' "$TW/fleet.out" || tw_fail "a not ok beside silent b: $(cat "$TW/fleet.out")"
grep -q '^CONFLICT' "$TW/fleet.out" && tw_fail "a silent instance's declaration still conflicts"
grep -q 'cert=c0: the fleet.s declarations agree again' "$TW/a.err" || tw_fail "a does not log the end of the conflict"

echo "== the database away and back"
pg_stop
db_down() { fleet && grep -q 'database unreachable' "$TW/fleet.out"; }
tw_daemon_wait 30 db_down || tw_fail "the view does not say the database is away: $(cat "$TW/fleet.out")"
grep -qE '^a ' "$TW/fleet.out" || tw_fail "the last view is gone while the database is away"
pg_restart || exit 1
db_up() { fleet && grep -q 'database up' "$TW/fleet.out"; }
tw_daemon_wait 60 db_up || tw_fail "the view did not recover: $(cat "$TW/fleet.out")"

tw_daemon_stop 30 || tw_fail "a did not exit 0"
tw_done
