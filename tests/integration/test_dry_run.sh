#!/usr/bin/env bash
# `certloop renew NAME --dry-run` against a second Pebble as the CA's
# staging directory ([ca.pebble] staging): a full order with validation,
# the usual summary and exit 0, nothing stored in the state directory,
# nothing deployed, no events (a webhook receiver gets nothing), and the
# production Pebble sees no order. A name that cannot be validated makes it
# exit 1 with the failure; a CA without staging is refused with a sentence.
# With the daemon running (and holding the http-01 port), the same dry runs
# run inside it through the control socket.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
tw_init dryrun
tw_start || exit 1

# the second Pebble: the staging CA (same TLS leaf, same DNS, same http-01 port)
S_ACME=$(tw_port)
S_MGMT=$(tw_port)
sed -e "s|127.0.0.1:$TW_ACME_PORT|127.0.0.1:$S_ACME|" -e "s|127.0.0.1:$TW_MGMT_PORT|127.0.0.1:$S_MGMT|" \
  -e "s|\"tlsPort\": [0-9]*|\"tlsPort\": $(tw_port)|" "$TW/pebble.json" >"$TW/staging.json"
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
  pebble -config "$TW/staging.json" -dnsserver "127.0.0.1:$TW_DNS_PORT" >"$TW/staging.log" 2>&1 &
STAGING_PID=$!
TW_PIDS+=("$STAGING_PID")
STAGING="https://127.0.0.1:$S_ACME/dir"
tw_wait_http "$STAGING" "$TW/tls-ca.pem" 30 || { tw_fail "the staging Pebble did not come up"; tw_done; }
curl -fsS --cacert "$TW/tls-ca.pem" "https://127.0.0.1:$S_MGMT/roots/0" -o "$TW/staging-root.pem" ||
  tw_fail "staging root"

tw_receiver_start || { tw_fail "webhook receiver"; tw_done; }
curl -fsS -X POST -d '{"host":"bad.test.","addresses":["127.0.0.2"]}' \
  "http://127.0.0.1:$TW_DNS_MGMT_PORT/add-a" >/dev/null || tw_fail "challtestsrv add-a"
{
  tw_config_head 4 | sed "s|^directory = .*|&\nstaging = \"$STAGING\"|"
  printf '[notify.ops]\nurl = "http://127.0.0.1:%s/hook"\nsecret_file = "%s"\n\n' \
    "$TW_RECEIVER_PORT" "$TW/webhook.secret"
  tw_config_cert dry ec-p256 dry.test www.dry.test
  tw_config_cert bad ec-p256 bad.test
} >"$TW/certloop.toml"
"$CERTLOOP" check -c "$TW/certloop.toml" >"$TW/check.txt" 2>&1 ||
  { tw_fail "config invalid: $(cat "$TW/check.txt")"; tw_done; }

timeout 120 "$CERTLOOP" renew dry --dry-run -c "$TW/certloop.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
[ "$rc" = 0 ] || { tw_fail "renew --dry-run exited $rc"; sed 's/^/  /' "$TW/err.txt" | tail -5 >&2; }
grep -q "^dry run: 1 certificate against the staging CA, nothing stored or deployed, no events$" \
  "$TW/out.txt" || tw_fail "no dry-run banner: $(cat "$TW/out.txt")"
grep -q "^dry: issued" "$TW/out.txt" || tw_fail "no summary line: $(cat "$TW/out.txt")"
grep -q "directory.*127.0.0.1:$S_ACME\|127.0.0.1:$S_ACME" "$TW/err.txt" ||
  tw_fail "the run did not talk to the staging CA"
grep -q "127.0.0.1:$TW_ACME_PORT" "$TW/err.txt" && tw_fail "the dry run talked to the production CA"
[ -e "$TW/out/dry/fullchain.pem" ] && tw_fail "the dry run deployed"
[ -e "$TW/state/certs" ] && tw_fail "the dry run stored into the state directory"
[ -e "$TW/state/dry-run/certs" ] && tw_fail "the dry run left its certificates behind"
[ -d "$TW/state/dry-run/accounts/pebble" ] || tw_fail "no staging account kept"
sleep 0.5
[ -s "$TW/received" ] && tw_fail "the dry run sent events: $(cat "$TW/received")"

# a name that does not validate: exit 1 and the failure
timeout 120 "$CERTLOOP" renew bad --dry-run -c "$TW/certloop.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
[ "$rc" = 1 ] || tw_fail "renew bad --dry-run exited $rc, want 1"
grep -q "^bad: failed: .*urn:ietf:params:acme:error:connection" "$TW/out.txt" ||
  tw_fail "no failure line: $(cat "$TW/out.txt")"

# a CA without a staging directory
grep -v '^staging = ' "$TW/certloop.toml" >"$TW/nostaging.toml"
"$CERTLOOP" renew --all --dry-run -c "$TW/nostaging.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
[ "$rc" = 78 ] || tw_fail "no staging: exit $rc, want 78"
grep -q "ca.pebble: no staging directory to dry-run against: set staging = \"URL\" in \[ca.pebble\]" \
  "$TW/err.txt" || tw_fail "no staging: $(cat "$TW/err.txt")"
"$CERTLOOP" renew nosuch --dry-run -c "$TW/certloop.toml" >/dev/null 2>"$TW/err.txt"
rc=$?
[ "$rc" = 64 ] || tw_fail "unknown name: exit $rc, want 64"

# the daemon runs (the same file) and holds the http-01 listener: the dry
# run runs inside it, over the control socket, answered by its listener;
# the daemon's own certificate, deployment, events and log stay untouched
tw_daemon_start "$TW/certloop.toml" "$TW/d.out" "$TW/d.err"
tw_daemon_wait 60 grep -q "issued cert=dry .*deployed=1" "$TW/d.err" ||
  { tw_fail "the daemon did not deploy dry: $(tail -3 "$TW/d.err")"; tw_done; }
tw_daemon_wait 60 grep -q "order cert=bad " "$TW/d.err" || tw_fail "the daemon's bad did not fail"
# (a function: a $(...) in the arguments would be counted once, before the wait)
two_events() { [ "$(wc -l <"$TW/received")" -ge 2 ]; }
tw_daemon_wait 30 two_events || tw_fail "the daemon's events: $(cat "$TW/received")"
events=$(wc -l <"$TW/received")
gens=$(ls "$TW/state/certs/dry" | sort | tr '\n' ' ')
deployed=$(sha256sum <"$TW/out/dry/fullchain.pem")
issued=$(grep -c "Issued certificate" "$TW/staging.log")
timeout 120 "$CERTLOOP" renew dry --dry-run -c "$TW/certloop.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
[ "$rc" = 0 ] || { tw_fail "dry run in the daemon exited $rc: $(cat "$TW/err.txt")"; }
grep -q "^(run by the daemon at $TW/control.sock" "$TW/out.txt" ||
  tw_fail "the daemon did not run it: $(cat "$TW/out.txt")"
grep -q "^dry: issued" "$TW/out.txt" || tw_fail "no summary line from the daemon: $(cat "$TW/out.txt")"
[ "$(grep -c "Issued certificate" "$TW/staging.log")" -gt "$issued" ] ||
  tw_fail "the staging CA issued nothing"
grep -q "127.0.0.1:$S_ACME" "$TW/d.err" || tw_fail "the daemon did not order from staging"
grep -q "dry run finished: 0 certificates failed" "$TW/d.err" || tw_fail "no end of the dry run logged"
[ "$(ls "$TW/state/certs/dry" | sort | tr '\n' ' ')" = "$gens" ] || tw_fail "the dry run stored a generation"
[ "$(sha256sum <"$TW/out/dry/fullchain.pem")" = "$deployed" ] || tw_fail "the dry run deployed"
[ -e "$TW/state/dry-run/certs" ] && tw_fail "the dry run in the daemon left its certificates behind"
"$CERTLOOP" status dry -c "$TW/certloop.toml" >"$TW/status.txt" 2>&1 ||
  tw_fail "status dry: $(cat "$TW/status.txt")"
grep -q "127.0.0.1:$S_ACME" "$TW/status.txt" && tw_fail "the dry run's log lines went into dry's status"
timeout 120 "$CERTLOOP" renew bad --dry-run -c "$TW/certloop.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
[ "$rc" = 1 ] || tw_fail "renew bad --dry-run in the daemon exited $rc, want 1"
grep -q "^bad: failed: .*urn:ietf:params:acme:error:connection" "$TW/out.txt" ||
  tw_fail "no failure line from the daemon: $(cat "$TW/out.txt")"
sleep 0.5
[ "$(wc -l <"$TW/received")" = "$events" ] || tw_fail "the dry run in the daemon sent events"
kill -0 "$TW_DAEMON_PID" 2>/dev/null || tw_fail "the daemon died"
# a daemon slow to answer (stopped for 3 s, past the 2 s the CLI once gave
# it on a loaded machine) still runs the dry run: never one beside it
kill -STOP "$TW_DAEMON_PID"
timeout 120 "$CERTLOOP" renew dry --dry-run -c "$TW/certloop.toml" >"$TW/out.txt" 2>"$TW/err.txt" &
cli=$!
sleep 3
kill -CONT "$TW_DAEMON_PID"
wait "$cli"
rc=$?
[ "$rc" = 0 ] || tw_fail "dry run with a slow daemon exited $rc: $(cat "$TW/err.txt")"
grep -q "^(run by the daemon at $TW/control.sock" "$TW/out.txt" ||
  tw_fail "a slow daemon did not run the dry run: $(cat "$TW/out.txt" "$TW/err.txt")"
# SIGTERM during a dry run (the staging CA paused, so it is still ordering):
# the dry run ends first (its challenges use the daemon's listener), the
# client hears that the daemon stops (75), the exit is clean
kill -STOP "$STAGING_PID"
timeout 120 "$CERTLOOP" renew dry --dry-run -c "$TW/certloop.toml" >"$TW/out.txt" 2>"$TW/err.txt" &
cli=$!
fourth_started() { [ "$(grep -c "control: a dry run of 1 certificate" "$TW/d.err")" -ge 4 ]; }
tw_daemon_wait 30 fourth_started || tw_fail "the fourth dry run did not start"
tw_daemon_stop >/dev/null || tw_fail "the daemon's exit status after a stop during a dry run"
kill -CONT "$STAGING_PID"
wait "$cli"
rc=$?
[ "$rc" = 75 ] || tw_fail "dry run cut by SIGTERM: exit $rc, want 75: $(cat "$TW/err.txt")"
grep -q "the daemon is stopping" "$TW/err.txt" || tw_fail "cut dry run: $(cat "$TW/err.txt")"
[ -e "$TW/state/dry-run/certs" ] && tw_fail "the stopped dry run left its certificates behind"
tw_done
