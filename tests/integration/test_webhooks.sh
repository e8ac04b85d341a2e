#!/usr/bin/env bash
# Signed webhooks end to end. A receiver (tools/webhook-receiver) answers
# 500 to the first delivery: `certloop run --once` issues, the "issued"
# event is signed and attempted once, and stays in STATE/outbox/. A daemon
# started afterwards on the same state directory delivers it (same
# X-Certloop-Delivery) after the backoff, and the outbox ends empty. Then a
# certificate whose http-01 validation fails (its name resolves where
# nothing listens) sends a "failed" event naming the CA's problem type and
# the identifier.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init webhooks
tw_start || exit 1
tw_receiver_start --fail 1 || { tw_fail "the webhook receiver did not start"; tw_done; }
port=$TW_RECEIVER_PORT
config() { # CERT DOMAIN EVENTS: one certificate and the [notify.ops] webhook
  tw_config_head 8
  tw_config_cert "$1" ec-p256 "$2"
  printf '[notify.ops]\nurl = "http://127.0.0.1:%s/hook"\nsecret_file = "%s"\nevents = %s\n' \
    "$port" "$TW/webhook.secret" "$3"
}
config wh wh.test '["issued", "renewed", "failed"]' >"$TW/certloop.toml"
"$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null || { tw_fail "config invalid"; tw_done; }

"$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/once.out" 2>"$TW/once.err" ||
  tw_fail "run --once failed: $(tail -3 "$TW/once.err")"
[ "$(wc -l <"$TW/received")" -eq 1 ] || tw_fail "expected one attempt, got $(wc -l <"$TW/received")"
first=$(sed -n 1p "$TW/received")
python3 - "$first" <<'EOF' || tw_fail "first attempt: $first"
import json, sys
r = json.loads(sys.argv[1])
assert r["status"] == 500 and r["signature"] == "ok" and r["event"] == "issued", r
b = r["body"]
assert b["event"] == "issued" and b["certificate"] == "wh" and b["domains"] == ["wh.test"], b
assert len(b["id"]) == 32 and b["time"].endswith("Z") and b["not_after"].endswith("Z"), b
EOF
n=$(ls "$TW/state/outbox" | grep -c '\.json$')
[ "$n" = 1 ] || tw_fail "expected one delivery in the outbox, found $n"
[ "$(stat -c %a "$TW"/state/outbox/*.json)" = 600 ] || tw_fail "outbox file mode"

# the daemon, restarted on the same state: the retry goes out after the backoff
received_two() {
  [ "$(wc -l <"$TW/received")" -ge 2 ]
}
tw_daemon_start "$TW/certloop.toml" "$TW/run.out" "$TW/run.err" 40 received_two
second=$(sed -n 2p "$TW/received")
python3 - "$first" "$second" <<'EOF' || tw_fail "second attempt: $second"
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert b["status"] == 200 and b["signature"] == "ok", b
assert a["delivery"] == b["delivery"] and a["body"] == b["body"], (a, b)
EOF
# the delivery leaves the outbox once its 200 is in (after the receiver wrote it)
outbox_n() { ls "$TW/state/outbox" | grep -c '\.json$'; }
outbox_empty() { [ "$(outbox_n)" = 0 ]; }
tw_daemon_wait 30 outbox_empty
n=$(outbox_n)
[ "$n" = 0 ] || tw_fail "the outbox still holds $n deliveries"
tw_daemon_stop
rc=$?
[ "$rc" = 0 ] || tw_fail "daemon exited $rc after SIGTERM"

# A failing order: bad.test resolves to 127.0.0.2, where nothing listens.
curl -fsS -X POST -d '{"host":"bad.test.","addresses":["127.0.0.2"]}' \
  "http://127.0.0.1:$TW_DNS_MGMT_PORT/add-a" >/dev/null || tw_fail "challtestsrv add-a"
config bad bad.test '["failed"]' >"$TW/bad.toml"
"$CERTLOOP" run --once -c "$TW/bad.toml" >"$TW/bad.out" 2>"$TW/bad.err"
rc=$?
[ "$rc" = 1 ] || tw_fail "run --once with a failing order exited $rc, expected 1"
[ "$(wc -l <"$TW/received")" -eq 3 ] || tw_fail "expected a third delivery, got $(wc -l <"$TW/received")"
third=$(sed -n 3p "$TW/received")
python3 - "$third" <<'EOF' || tw_fail "failed event: $third"
import json, sys
r = json.loads(sys.argv[1])
assert r["status"] == 200 and r["signature"] == "ok" and r["event"] == "failed", r
b = r["body"]
assert b["event"] == "failed" and b["certificate"] == "bad" and b["domains"] == ["bad.test"], b
e = b["error"]
assert e["identifier"] == "bad.test", e
assert e["type"].startswith("urn:ietf:params:acme:error:"), e
assert "bad.test" in e["detail"], e
assert "not_after" not in b, b
EOF
tw_done
