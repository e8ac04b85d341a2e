#!/usr/bin/env bash
# [store] type = "postgresql" (issue 14): `check` validates its secret files;
# `run --once` issues two certificates into a real PostgreSQL (a server of
# the test's own on a unix socket) and deploys them; a second run finds
# both stored and orders nothing; `plan` reads the database; the daemon
# starts on it, answers `status` and stops cleanly, and its API's self-signed
# bootstrap is the same after a restart (a pinned client still connects);
# a database that is not
# there fails the start with exit 75 (temporary).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"

# runs certloop ARGS: exit status in $rc, output in $TW/o and $TW/e
# ($TW/out holds the deployed files)
cl() {
  "$CERTLOOP" "$@" >"$TW/o" 2>"$TW/e"
  rc=$?
}

tw_init pgstore
pg_start || exit 1
tw_start || exit 1

{
  tw_config_head 8
  pg_store_config web-1
  tw_config_cert c0 ec-p256 c0.test
  tw_config_cert c1 rsa2048 c1.test www.c1.test
} >"$TW/a.toml"
cl check -c "$TW/a.toml"
[ "$rc" = 0 ] || { tw_fail "check: exit $rc"; cat "$TW/e" >&2; }

# check refuses a key that is not 32 bytes and a world-readable conninfo
cp "$TW/pg.key" "$TW/good.key"
echo 00112233 >"$TW/pg.key"
chmod 644 "$TW/pg.conninfo"
cl check -c "$TW/a.toml"
[ "$rc" != 0 ] || tw_fail "check accepts a short key"
grep -q "does not hold a 32-byte key" "$TW/e" || tw_fail "check: no word on the short key"
grep -q "accessible by group or others" "$TW/e" || tw_fail "check: no word on the conninfo mode"
cp "$TW/good.key" "$TW/pg.key"
chmod 600 "$TW/pg.conninfo"

timeout 120 "$CERTLOOP" run --once -c "$TW/a.toml" >"$TW/out1" 2>"$TW/err1"
rc=$?
[ "$rc" = 0 ] || { tw_fail "run --once exited $rc"; tail -20 "$TW/err1" >&2; }
tw_has "$TW/out1" "c0: issued, expires $(date -u -d '+1826 days' +%F)"
grep -q '^c1: issued' "$TW/out1" || tw_fail "c1 not issued"
tw_check_deployed c0
tw_check_deployed c1
[ "$(pg_sql "SELECT count(*) FROM certloop_generations")" = 2 ] || tw_fail "not 2 generations in the database"
[ "$(pg_sql "SELECT count(*) FROM certloop_orders")" = 0 ] || tw_fail "orders left in the database"
[ "$(pg_sql "SELECT count(*) FROM certloop_accounts")" = 1 ] || tw_fail "no account in the database"
# nothing of it went to the state directory
[ ! -e "$TW/state/certs" ] || [ -z "$(ls -A "$TW/state/certs")" ] || tw_fail "generations in the state directory"
orders=$(grep -c "POST /order-plz" "$TW/pebble.log")
[ "$orders" = 2 ] || tw_fail "$orders orders, expected 2"

timeout 60 "$CERTLOOP" run --once -c "$TW/a.toml" >"$TW/out2" 2>"$TW/err2" || tw_fail "second run failed"
grep -q '^c0: ok, valid until' "$TW/out2" || tw_fail "second run: c0 not ok"
[ "$(grep -c "POST /order-plz" "$TW/pebble.log")" = 2 ] || tw_fail "the second run ordered"

cl plan -c "$TW/a.toml" c0
[ "$rc" = 0 ] || { tw_fail "plan: exit $rc"; cat "$TW/e" >&2; }
gen=$(pg_sql "SELECT current_generation FROM certloop_certificates WHERE name = 'c0'")
grep -q "stored     generation $gen" "$TW/o" || tw_fail "plan does not show the stored generation $gen"

# the daemon, with the HTTPS API: its self-signed bootstrap is kept in the
# instance's state directory (not in the database), so a client pinning it
# (curl --cacert STATE/api/bootstrap.pem) still connects after a restart
API_PORT=$(tw_port)
tw_config_api "$API_PORT" "$TW/api-tokens" >>"$TW/a.toml"
"$CERTLOOP" api-token create reader --scopes read -c "$TW/a.toml" >"$TW/reader.tok" 2>"$TW/e" ||
  tw_fail "api-token create: $(cat "$TW/e")"
boot=$TW/state/api/bootstrap.pem
api_ok() {
  curl -sS --max-time 10 --cacert "$TW/pinned.pem" -o /dev/null -w '%{http_code}' \
    -H "Authorization: Bearer $(cat "$TW/reader.tok")" "https://127.0.0.1:$API_PORT/v1/certificates" \
    2>"$TW/curl.err" | grep -qx 200
}
tw_daemon_start "$TW/a.toml" "$TW/d.out" "$TW/d.err" 20 test -S "$TW/control.sock" ||
  tw_fail "the daemon did not open its control socket"
cl status -c "$TW/a.toml"
[ "$rc" = 0 ] || { tw_fail "status: exit $rc"; cat "$TW/e" >&2; }
grep -q 'c0' "$TW/o" || tw_fail "status does not show c0"
tw_daemon_wait 20 test -s "$boot" || tw_fail "no $boot"
cp "$boot" "$TW/pinned.pem"
[ "$(tw_mode "$TW/state/api/bootstrap-key.pem")" = 600 ] || tw_fail "bootstrap key mode"
tw_daemon_wait 20 api_ok || tw_fail "the pinned bootstrap does not serve: $(cat "$TW/curl.err")"
tw_daemon_stop 30 || tw_fail "the daemon did not exit 0"
grep -q "handle still open" "$TW/d.err" && tw_fail "handles left open at shutdown"
tw_daemon_start "$TW/a.toml" "$TW/d2.out" "$TW/d2.err" 20 test -S "$TW/control.sock" ||
  tw_fail "the daemon did not start again"
tw_daemon_wait 20 api_ok || tw_fail "after a restart the pinned bootstrap fails: $(cat "$TW/curl.err")"
cmp -s "$boot" "$TW/pinned.pem" || tw_fail "a new bootstrap certificate after a restart"
grep -q "bootstrap certificate kept from the last start" "$TW/d2.err" ||
  tw_fail "the restart did not keep the bootstrap: $(grep bootstrap "$TW/d2.err")"
tw_daemon_stop 30 || tw_fail "the restarted daemon did not exit 0"

# no database: the start fails with 75 (systemd restarts it), not a hang
pg_stop
timeout 60 "$CERTLOOP" run --once -c "$TW/a.toml" >"$TW/out3" 2>"$TW/err3"
rc=$?
[ "$rc" = 75 ] || { tw_fail "run --once without the database exited $rc, expected 75"; tail -5 "$TW/err3" >&2; }
tw_done
