#!/usr/bin/env bash
# dns-01 through a `callback` solver, end to end: Pebble resolves through
# Knot; certloop POSTs signed dns_record_required / dns_record_removable
# events to the solver's url; the receiver (tools/webhook-receiver --exec)
# checks the signature and puts the TXT record into Knot with knsupdate
# (TSIG), as a DNS provider's API would; certloop waits until the record is
# served, answers the challenges, and asks for the removal afterwards.
# 1. A wildcard + apex certificate (two values under one name) and a plain
#    one: the receiver refuses its first request (500), the retry comes
#    about 2 s later, every certificate is issued, each record was asked
#    for and removed once, the signatures verify, nothing is left in Knot;
#    a [notify.obs] webhook subscribed to the dns events gets a copy; only
#    the solver's url is asked to change records.
#    `certloop test` makes the same round trip (no outbox written).
# 2. A receiver that refuses (403 with a reason): the order fails after the
#    propagation timeout with an error that quotes the receiver's answer;
#    the removal request waits in STATE/outbox (solver delivery, 0600).
# 3. With the receiver fixed, the next run (once the removal's retry is
#    due) delivers that removal (it survived the restart) and issues the
#    certificate.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/knot.sh"

tw_knot_start dns01cb

# The DNS provider's side: EVENT NAME VALUE -> a TSIG-signed update.
cat >"$TW/dnsapi.sh" <<EOF
#!/bin/sh
case "\$1" in
dns_record_required) op="add \$2. 60 TXT \"\$3\"" ;;
dns_record_removable) op="delete \$2. TXT \"\$3\"" ;;
*) exit 2 ;;
esac
echo "\$1 \$2 \$3" >>"$TW/dnsapi.calls"
printf 'server 127.0.0.1 %s\nzone test.\nupdate %s\nsend\n' "$KNOT_PORT" "\$op" |
  knsupdate -y "hmac-sha256:acme-key.:$KNOT_SECRET"
EOF
chmod 755 "$TW/dnsapi.sh"
: >"$TW/dnsapi.calls"

# A second receiver, the observer webhook (own files; no --exec).
printf 'obs-secret\n' >"$TW/obs.secret"
chmod 600 "$TW/obs.secret"
"$BUILD_DIR/webhook-receiver" --port-file "$TW/obs.port" --secret-file "$TW/obs.secret" \
  >"$TW/obs.received" 2>"$TW/obs.log" &
TW_PIDS+=($!)

start_solver_receiver() { # ARGS...: (re)start the solver's receiver on its port
  if [ -n "${solver_pid:-}" ]; then
    kill "$solver_pid" 2>/dev/null
    wait "$solver_pid" 2>/dev/null
  fi
  rm -f "$TW/solver.port"
  "$BUILD_DIR/webhook-receiver" --port "$solver_port" --port-file "$TW/solver.port" \
    --secret-file "$TW/solver.secret" "$@" >>"$TW/solver.received" 2>>"$TW/solver.log" &
  solver_pid=$!
  TW_PIDS+=("$solver_pid")
  for ((t = 0; t < 50; t++)); do
    [ -s "$TW/solver.port" ] && return 0
    sleep 0.1
  done
  return 1
}
printf 'solver-secret-%s\n' "$RANDOM$RANDOM" >"$TW/solver.secret"
chmod 600 "$TW/solver.secret"
solver_port=$(tw_port)
: >"$TW/solver.received"
start_solver_receiver --fail 1 --exec "$TW/dnsapi.sh" || { tw_fail "solver receiver"; tw_done; }
for ((t = 0; t < 50; t++)); do
  [ -s "$TW/obs.port" ] && break
  sleep 0.1
done
obs_port=$(cat "$TW/obs.port")

config() { # PROPAGATION_TIMEOUT CERT-LINES...
  tw_config_head 8 | sed "s|^log_level = .*|&\nresolvers = [\"127.0.0.1:$KNOT_PORT\"]|"
  cat <<EOF2
[dns.api]
type = "callback"
url = "http://127.0.0.1:$solver_port/dns"
secret_file = "$TW/solver.secret"
timeout = "10s"
nameservers = ["127.0.0.1:$KNOT_PORT"]
propagation_timeout = "$1"
poll_interval = "1s"

[notify.obs]
url = "http://127.0.0.1:$obs_port/hook"
secret_file = "$TW/obs.secret"
events = ["dns_record_required", "dns_record_removable"]

EOF2
}
CB=$'challenge = "dns-01"\ndns = "api"'

# ---- 1. issue through the callback ----
{
  config 60s
  TW_CERT_EXTRA=$CB tw_config_cert wild ec-p256 "*.w.test" w.test
  TW_CERT_EXTRA=$CB tw_config_cert plain ec-p256 p.test
} >"$TW/certloop.toml"
"$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null 2>"$TW/check.txt" ||
  { tw_fail "config invalid: $(cat "$TW/check.txt")"; tw_done; }
"$CERTLOOP" plan -c "$TW/certloop.toml" >"$TW/plan.txt" 2>&1 || true
grep -q "callback http://127.0.0.1:$solver_port/dns" "$TW/plan.txt" ||
  tw_fail "plan does not show the callback solver: $(cat "$TW/plan.txt")"

timeout 180 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out1.txt" 2>"$TW/err1.txt"
rc=$?
[ "$rc" = 0 ] || { tw_fail "run --once exited $rc"; grep -E ' (error|warn) ' "$TW/err1.txt" | head >&2; }
for n in wild plain; do
  tw_check_deployed "$n"
done
grep -q "dns callback solver=api delivery=.* event=dns_record_required: attempt 1 failed: HTTP 500: refused by the test receiver" \
  "$TW/err1.txt" || tw_fail "the refused first request is not logged"
python3 - "$TW/solver.received" "$TW/obs.received" "$TW/dnsapi.calls" <<'EOF' || tw_fail "callback requests (see above)"
import json, sys
solver = [json.loads(l) for l in open(sys.argv[1])]
obs = [json.loads(l) for l in open(sys.argv[2])]
calls = [l.split() for l in open(sys.argv[3])]
assert all(r["signature"] == "ok" for r in solver), solver
assert all(r["signature"] == "ok" for r in obs), obs
assert solver[0]["status"] == 500, solver[0]
ok = [r for r in solver if r["status"] == 200]
req = [r["body"] for r in ok if r["event"] == "dns_record_required"]
rem = [r["body"] for r in ok if r["event"] == "dns_record_removable"]
# three authorizations: w.test, *.w.test (same record name), p.test
names = sorted(b["record"]["name"] for b in req)
assert names == ["_acme-challenge.p.test", "_acme-challenge.w.test", "_acme-challenge.w.test"], names
vals = lambda bs: sorted((b["record"]["name"], b["record"]["value"]) for b in bs)
assert vals(req) == vals(rem), (req, rem)
assert len(set(v for _, v in vals(req))) == 3, req
for b in req + rem:
    assert len(b["id"]) == 32 and b["certificate"] in ("wild", "plain"), b
    assert b["domains"] == (["*.w.test", "w.test"] if b["certificate"] == "wild" else ["p.test"]), b
    assert len(b["record"]["value"]) == 43, b
# the retried request kept its delivery id
assert solver[0]["delivery"] in [r["delivery"] for r in ok], solver
# the observer got a copy of each event (same event id), and changed nothing
ids = lambda rs: sorted(r["body"]["id"] for r in rs)
assert ids(obs) == sorted(b["id"] for b in req + rem), (obs, req + rem)
assert sorted(c[0] for c in calls) == ["dns_record_removable"] * 3 + ["dns_record_required"] * 3, calls
print("callback requests ok: %d required, %d removable, %d observed" % (len(req), len(rem), len(obs)))
EOF
for name in w.test p.test; do
  left=$(kdig @127.0.0.1 -p "$KNOT_PORT" +short "_acme-challenge.$name" TXT 2>/dev/null)
  [ -z "$left" ] || tw_fail "TXT left behind at _acme-challenge.$name: $left"
done
grep -q '\.json$' <<<"$(ls "$TW/state/outbox")" && tw_fail "outbox not empty after run 1: $(ls "$TW/state/outbox")"

# ---- 1b. `certloop test` runs the same round trip, without a state outbox ----
: >"$TW/solver.received"
timeout 90 "$CERTLOOP" test wild -c "$TW/certloop.toml" >"$TW/test.out" 2>"$TW/test.err"
rc=$?
[ "$rc" = 0 ] || tw_fail "certloop test: exit $rc: $(cat "$TW/test.out")"
for d in '\*.w.test' w.test; do
  grep -q "^test wild: dns-01  $d: test record at _acme-challenge.w.test: .* PASS$" "$TW/test.out" ||
    tw_fail "certloop test: no PASS line for $d: $(cat "$TW/test.out")"
done
[ "$(grep -c '"event":"dns_record_required","delivery"' "$TW/solver.received")" = 2 ] &&
  [ "$(grep -c '"event":"dns_record_removable","delivery"' "$TW/solver.received")" = 2 ] ||
  tw_fail "certloop test: requests $(cat "$TW/solver.received")"
left=$(kdig @127.0.0.1 -p "$KNOT_PORT" +short _acme-challenge.w.test TXT 2>/dev/null)
[ -z "$left" ] || tw_fail "certloop test: TXT left behind: $left"
grep -q '\.json$' <<<"$(ls "$TW/state/outbox")" && tw_fail "certloop test wrote to the outbox"

# run_denied PROPAGATION_TIMEOUT N RECEIVER-ARGS...: the certificate "denied"
# alone, with the solver's receiver restarted with ARGS; exit code in $rc,
# output in $TW/outN.txt and $TW/errN.txt
run_denied() {
  local pt=$1 n=$2
  shift 2
  start_solver_receiver "$@" || { tw_fail "solver receiver ($*)"; tw_done; }
  : >"$TW/solver.received"
  {
    config "$pt"
    TW_CERT_EXTRA=$CB tw_config_cert denied ec-p256 d.test
  } >"$TW/denied.toml"
  timeout 180 "$CERTLOOP" run --once -c "$TW/denied.toml" >"$TW/out$n.txt" 2>"$TW/err$n.txt"
  rc=$?
}

# ---- 2. a receiver that refuses ----
run_denied 5s 2 --status 403
[ "$rc" = 1 ] || tw_fail "run --once with a refusing receiver exited $rc, expected 1"
[ -s "$TW/out/denied/fullchain.pem" ] && tw_fail "denied: deployed anyway"
grep -q "the callback URL refused the request [0-9]* times\?, last: HTTP 403: refused by the test receiver" \
  "$TW/err2.txt" "$TW/out2.txt" ||
  tw_fail "the error does not quote the receiver: $(grep -E ' error ' "$TW/err2.txt" | head -3)"
grep -q '"status":403' "$TW/solver.received" || tw_fail "no request reached the refusing receiver"
files=$(ls "$TW/state/outbox" | grep '\.json$')
[ "$(echo "$files" | grep -c .)" = 1 ] || tw_fail "expected one removal in the outbox: $files"
f="$TW/state/outbox/$(echo "$files" | head -1)"
[ "$(stat -c %a "$f")" = 600 ] || tw_fail "outbox file mode $(stat -c %a "$f")"
python3 - "$f" <<'EOF' || tw_fail "outbox record: $(cat "$f")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["solver"] is True and r["target"] == "api" and r["event"] == "dns_record_removable", r
assert json.loads(r["body"])["record"]["name"] == "_acme-challenge.d.test", r
EOF
pending_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["delivery"])' "$f")
# its retry is due 5-10 s after the refusal (the outbox's backoff): wait for it
due_ms=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["next_attempt_ms"])' "$f")
while [ "$(date +%s%3N)" -lt "$due_ms" ]; do sleep 0.2; done

# ---- 3. fixed: the removal from run 2 goes out, and the certificate issues ----
run_denied 60s 3 --exec "$TW/dnsapi.sh"
[ "$rc" = 0 ] || { tw_fail "run --once after the fix exited $rc"; grep -E ' error ' "$TW/err3.txt" | head >&2; }
tw_verify_fullchain "$TW/out/denied/fullchain.pem" || tw_fail "denied: not issued after the fix"
grep -q "\"delivery\":\"$pending_id\"" "$TW/solver.received" ||
  tw_fail "the stored removal $pending_id was not delivered after the restart"
grep -q '\.json$' <<<"$(ls "$TW/state/outbox")" && tw_fail "outbox not empty after run 3"
left=$(kdig @127.0.0.1 -p "$KNOT_PORT" +short _acme-challenge.d.test TXT 2>/dev/null)
[ -z "$left" ] || tw_fail "TXT left behind at _acme-challenge.d.test: $left"
tw_done
