#!/usr/bin/env bash
# Per-certificate history that survives restarts: the daemon issues one
# certificate and fails another (its name resolves where nothing listens);
# `certloop status NAME` shows each one's events (issued, deployed; failed
# with the CA's problem type), STATE/history/NAME.jsonl holds them, and
# after a restart `status NAME` (and --json) still shows them. An unknown
# NAME exits 64.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
tw_init history
tw_start || exit 1
curl -fsS -X POST -d '{"host":"bad.test.","addresses":["127.0.0.2"]}' \
  "http://127.0.0.1:$TW_DNS_MGMT_PORT/add-a" >/dev/null || tw_fail "challtestsrv add-a"
{
  tw_config_head 4
  tw_config_cert good ec-p256 good.test
  tw_config_cert bad ec-p256 bad.test
} >"$TW/certloop.toml"
C=$TW/certloop.toml

both_done() {
  "$CERTLOOP" status -c "$C" --json 2>/dev/null | python3 -c '
import json, sys
s = {c["name"]: c for c in json.load(sys.stdin)["certificates"]}
ok = s["good"]["state"] == "valid" and s["bad"].get("last_error")
sys.exit(0 if ok else 1)' 2>/dev/null
}
tw_daemon_start "$C" "$TW/d1.out" "$TW/d1.err" 60 both_done ||
  { tw_fail "the daemon did not issue good and fail bad"; tw_daemon_stop >/dev/null; tw_done; }

check_good() { # $1: when
  "$CERTLOOP" status -c "$C" good >"$TW/good.txt" 2>&1 || tw_fail "$1: status good exited $?"
  grep -q "^  state         valid$" "$TW/good.txt" || tw_fail "$1: status good: no state line"
  grep -Eq "^  [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{5}  issued +not_after " "$TW/good.txt" ||
    tw_fail "$1: status good: no issued event: $(cat "$TW/good.txt")"
  grep -Eq "^  [0-9-]{10} [0-9:]{5}  deployed +1 actions" "$TW/good.txt" ||
    tw_fail "$1: status good: no deployed event: $(cat "$TW/good.txt")"
  "$CERTLOOP" status -c "$C" bad >"$TW/bad.txt" 2>&1
  grep -Eq "^  [0-9-]{10} [0-9:]{5}  failed +.*urn:ietf:params:acme:error:connection" "$TW/bad.txt" ||
    tw_fail "$1: status bad: no failed event with the problem type: $(cat "$TW/bad.txt")"
}
check_good "first run"
# the last run's log lines of each certificate, and only its own
grep -q "^log of the last run" "$TW/good.txt" || tw_fail "status good: no log section"
grep -Eq "^  [0-9-]{10} [0-9:]{5}  deploy cert=good files: written" "$TW/good.txt" ||
  tw_fail "status good: no deploy log line: $(cat "$TW/good.txt")"
grep -q "cert=bad" "$TW/good.txt" && tw_fail "status good shows bad's log lines"
grep -Eq "^  [0-9-]{10} [0-9:]{5}  .*cert=bad.*authorization invalid" "$TW/bad.txt" ||
  tw_fail "status bad: no log line of the failed authorization: $(cat "$TW/bad.txt")"
tw_daemon_stop >/dev/null
for n in good bad; do
  [ -s "$TW/state/history/$n.jsonl" ] || tw_fail "no $TW/state/history/$n.jsonl"
done
[ "$(stat -c %a "$TW/state/history/good.jsonl")" = 600 ] || tw_fail "history file mode"
python3 - "$TW/state/history/good.jsonl" <<'PY' || tw_fail "good.jsonl: $(cat "$TW/state/history/good.jsonl")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
names = [e["event"] for e in ev]
assert "issued" in names and "deployed" in names, names
assert all(isinstance(e["time"], int) for e in ev)
PY

# after a restart the events are still there (nothing new is ordered: good
# is valid, bad waits for its backoff)
before=$(grep -c . "$TW/state/history/good.jsonl")
tw_daemon_start "$C" "$TW/d2.out" "$TW/d2.err" 10 test -S "$TW/control.sock"
check_good "after a restart"
"$CERTLOOP" status -c "$C" --json good >"$TW/good.json" 2>&1
python3 - "$TW/good.json" <<'PY' || tw_fail "status --json good: $(cat "$TW/good.json")"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["name"] == "good", c
assert "issued" in [e["event"] for e in c["history"]], c["history"]
PY
"$CERTLOOP" status -c "$C" nosuch >/dev/null 2>&1
rc=$?
[ "$rc" = 64 ] || tw_fail "status of an unknown name exited $rc, want 64"
tw_daemon_stop >/dev/null
after=$(grep -c '"issued"' "$TW/state/history/good.jsonl")
[ "$after" = 1 ] || tw_fail "good.jsonl holds $after issued events, want 1 (loaded lines written again?)"
[ "$(grep -c . "$TW/state/history/good.jsonl")" -ge "$before" ] || tw_fail "history shrank"
tw_done
