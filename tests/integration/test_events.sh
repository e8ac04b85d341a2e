#!/usr/bin/env bash
# The webhook events no other test sends end to end, through the signing
# receiver:
# 1. an imported certificate (private CA, no ACME) that expires in 5 days,
#    inside the 14-day window: `run --once` deploys it and sends one signed
#    "expiring" event with its not_after; a second run the same day sends
#    none (STATE/alerts/ keeps the pace);
# 2. a certificate issued by Pebble whose per-certificate deploy command
#    fails: the certificate is stored, the deployment fails, and a signed
#    "deploy_failed" event names the certificate, its domains and the
#    command's failure; no "issued" event goes out for it.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init events
tw_start || exit 1
tw_receiver_start || { tw_fail "the webhook receiver did not start"; tw_done; }

P=$TW/pki
mkdir -p "$P" "$TW/in"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=certloop events test CA" -keyout "$P/ca.key" -out "$P/ca.pem" >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=soon.test" \
  -keyout "$TW/in/soon.key" -out "$P/soon.csr" >/dev/null 2>&1
printf 'subjectAltName=DNS:soon.test\n' >"$P/ext"
openssl x509 -req -in "$P/soon.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial \
  -days 5 -extfile "$P/ext" -out "$TW/in/soon.pem" >/dev/null 2>&1
chmod 600 "$TW/in/soon.key"
want_na=$(date -u -d "$(openssl x509 -in "$TW/in/soon.pem" -noout -enddate | cut -d= -f2)" \
  +%Y-%m-%dT%H:%M:%SZ)

hook() { # EVENTS
  printf '[notify.ops]\nurl = "http://127.0.0.1:%s/hook"\nsecret_file = "%s"\nevents = %s\n\n' \
    "$TW_RECEIVER_PORT" "$TW/webhook.secret" "$1"
}

# ---- 1. an imported certificate close to expiry ----
{
  tw_config_head 4
  hook '["expiring", "issued", "renewed", "failed", "deploy_failed"]'
  tw_config_import soon soon.test "$TW/in/soon.pem" "$TW/in/soon.key"
} >"$TW/imp.toml"
"$CERTLOOP" check -c "$TW/imp.toml" >/dev/null 2>"$TW/check.txt" ||
  { tw_fail "config invalid: $(cat "$TW/check.txt")"; tw_done; }
for run in 1 2; do
  "$CERTLOOP" run --once -c "$TW/imp.toml" >"$TW/imp$run.out" 2>"$TW/imp$run.err" ||
    tw_fail "run --once ($run) failed: $(grep -E ' error ' "$TW/imp$run.err" | head -3)"
done
cmp -s "$TW/out/soon/fullchain.pem" "$TW/in/soon.pem" || tw_fail "the import was not deployed"
python3 - "$TW/received" "$want_na" <<'EOF' || tw_fail "expiring event: $(cat "$TW/received")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 1, "want one event over two runs, got %d" % len(lines)
r = lines[0]
assert r["status"] == 200 and r["signature"] == "ok" and r["event"] == "expiring", r
b = r["body"]
assert b["certificate"] == "soon" and b["domains"] == ["soon.test"], b
assert b["not_after"] == sys.argv[2], (b["not_after"], sys.argv[2])
EOF
[ -s "$TW/state/alerts/soon.expiring" ] || tw_fail "no STATE/alerts/soon.expiring"

# ---- 2. a deploy command that fails after issuance ----
# (the receiver appends to $TW/received: only the lines after these count)
seen=$(wc -l <"$TW/received")
rm -rf "$TW/state"
{
  tw_config_head 4
  hook '["issued", "deploy_failed"]'
  tw_config_cert df ec-p256 df.test
  cat <<EOF
[[certificate.df.deploy]]
type = "exec"
command = ["sh", "-c", "echo reload refused >&2; exit 3"]
per_certificate = true

EOF
} >"$TW/df.toml"
"$CERTLOOP" run --once -c "$TW/df.toml" >"$TW/df.out" 2>"$TW/df.err"
rc=$?
[ "$rc" = 1 ] || tw_fail "run --once with a failing deploy exited $rc, expected 1"
ls "$TW"/state/certs/df/*/cert.pem >/dev/null 2>&1 || tw_fail "the certificate was not stored"
tail -n +"$((seen + 1))" "$TW/received" >"$TW/received2"
python3 - "$TW/received2" <<'EOF' || tw_fail "deploy_failed event: $(cat "$TW/received2")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert [r["event"] for r in lines] == ["deploy_failed"], lines
r = lines[0]
assert r["status"] == 200 and r["signature"] == "ok", r
b = r["body"]
assert b["certificate"] == "df" and b["domains"] == ["df.test"], b
assert "not_after" not in b, b
d = b["error"]["detail"]
assert "sh" in d and "3" in d, d
EOF
tw_done
