#!/usr/bin/env bash
# Expiry alerts (issue 6): a certificate inside the warning window whose
# renewal keeps failing sends "expiring" with "failed"; the time of the
# last alert survives a restart (STATE/alerts/NAME.expiring), so the next
# run within the day sends none; once that time is a day old it repeats;
# a successful renewal ("renewed") ends the series and removes the file.
# Pebble's certificates last about 5 years, so the window is set beyond
# that; the CA fails by pointing at a closed port (a changed CA directory
# makes the certificate due at once).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init expiring
tw_start || exit 1
tw_receiver_start || { tw_fail "the webhook receiver did not start"; tw_done; }
port=$TW_RECEIVER_PORT
good_dir=$TW_DIRECTORY

# config DIRECTORY: a warning window beyond Pebble's lifetime
config() {
  {
    TW_DIRECTORY=$1 tw_config_head 8 | sed 's/^\[daemon\]$/[daemon]\nexpiring_window = "3000d"/'
    tw_config_cert ex ec-p256 ex.test
    cat <<EOF
[notify.ops]
url = "http://127.0.0.1:$port/hook"
secret_file = "$TW/webhook.secret"

EOF
  } >"$TW/certloop.toml"
  "$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null || tw_fail "config invalid"
}

# events: the event names received so far, sorted (deliveries run
# concurrently, so their order is not fixed), on one line
events() {
  events_raw | sort | tr '\n' ' '
}
events_raw() {
  python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    assert r["signature"] == "ok", r
    print(r["body"]["event"])' "$TW/received"
}

config "$good_dir"
"$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/once1.out" 2>"$TW/once1.err" ||
  tw_fail "first issuance failed: $(tail -3 "$TW/once1.err")"
[ "$(events)" = "issued " ] || tw_fail "after issuance: $(events)"

config "https://127.0.0.1:9/dir"
"$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/once2.out" 2>"$TW/once2.err" &&
  tw_fail "run --once against a closed CA port succeeded"
[ "$(events)" = "expiring failed issued " ] || tw_fail "after the first failure: $(events)"
alert="$TW/state/alerts/ex.expiring"
[ -f "$alert" ] || tw_fail "no $alert"
[ "$(stat -c %a "$alert" 2>/dev/null)" = 600 ] || tw_fail "$alert mode"
python3 - "$TW/received" <<'EOF' || tw_fail "expiring event body"
import json, sys
b = [e for e in (json.loads(l)["body"] for l in open(sys.argv[1])) if e["event"] == "expiring"][0]
assert b["event"] == "expiring" and b["certificate"] == "ex" and b["domains"] == ["ex.test"], b
assert b["not_after"].endswith("Z") and len(b["id"]) == 32 and b["error"]["detail"], b
EOF

# a restart within the day: failed again, no second alert
"$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/once3.out" 2>"$TW/once3.err"
[ "$(events)" = "expiring failed failed issued " ] ||
  tw_fail "second failure within the day: $(events)"

# the last alert a day and a second old: it repeats
echo $(($(date +%s) - 86401)) >"$alert"
"$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/once4.out" 2>"$TW/once4.err"
[ "$(events)" = "expiring expiring failed failed failed issued " ] ||
  tw_fail "a day later: $(events)"

# fixed: renewed, the series ends (the directory spelt with localhost is a
# CA change, which makes the run --once renew at once)
config "${good_dir/127.0.0.1/localhost}"
"$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/once5.out" 2>"$TW/once5.err" ||
  tw_fail "renewal failed: $(tail -3 "$TW/once5.err")"
[ "$(events)" = "expiring expiring failed failed failed issued renewed " ] ||
  tw_fail "after the renewal: $(events)"
[ -e "$alert" ] && tw_fail "$alert still there after the renewal"
ids=$(python3 -c '
import json, sys
print(len({json.loads(l)["body"]["id"] for l in open(sys.argv[1])}))' "$TW/received")
[ "$ids" = "$(wc -l <"$TW/received")" ] || tw_fail "event ids are not unique"
tw_done
