#!/usr/bin/env bash
# The status words end to end (issue 17 item 5): `certloop status` of a
# running daemon against Pebble shows each certificate's word with the dates
# and error statusview_decide puts beside it, in the table and in --json:
#   valid          issued and deployed; no error; next renewal years away
#   retrying       its validation failed; the error; a retry within the hour
#   deploy-failed  stored, but a directory stands where its fullchain goes
#   expired        an imported certificate past its notAfter
#   ordering, due  while the CA does not answer (paused), a forced renewal
#                  holds the one order slot and a second one waits for it
set -uo pipefail
. "$(dirname "$0")/lib.sh"
tw_init statuswords
tw_start || exit 1
PEBBLE_PID=$(pgrep -f -- "-config $TW/pebble.json" | head -1)

# an expired certificate for old.test (openssl ca sets past dates)
mkdir -p "$TW/oldca" "$TW/in"
: >"$TW/oldca/index.txt"
echo 01 >"$TW/oldca/serial"
cat >"$TW/oldca/ca.cnf" <<EOF
[ca]
default_ca = d
[d]
database = $TW/oldca/index.txt
new_certs_dir = $TW/oldca
serial = $TW/oldca/serial
default_md = sha256
policy = p
copy_extensions = none
[p]
commonName = supplied
[ext]
subjectAltName = DNS:old.test
EOF
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=old.test \
  -keyout "$TW/in/old.key" -out "$TW/in/old.csr" 2>/dev/null &&
  openssl ca -batch -config "$TW/oldca/ca.cnf" -selfsign -keyfile "$TW/in/old.key" \
    -in "$TW/in/old.csr" -startdate 20200101000000Z -enddate 20200201000000Z \
    -extensions ext -notext -out "$TW/in/old.pem" >/dev/null 2>&1 ||
  { tw_fail "cannot make the expired certificate"; tw_done; }

curl -fsS -X POST -d '{"host":"bad.test.","addresses":["127.0.0.2"]}' \
  "http://127.0.0.1:$TW_DNS_MGMT_PORT/add-a" >/dev/null || tw_fail "challtestsrv add-a"
{
  tw_config_head 1
  tw_config_cert ok ec-p256 ok.test
  tw_config_cert bad ec-p256 bad.test
  tw_config_cert df ec-p256 df.test
  tw_config_import old old.test "$TW/in/old.pem" "$TW/in/old.key"
} >"$TW/certloop.toml"
mkdir -p "$TW/out/df/fullchain.pem" # a directory where the fullchain goes
"$CERTLOOP" check -c "$TW/certloop.toml" >"$TW/check.txt" 2>&1 ||
  { tw_fail "config invalid: $(cat "$TW/check.txt")"; tw_done; }

tw_daemon_start "$TW/certloop.toml" "$TW/d.out" "$TW/d.err"
settled() {
  grep -q "issued cert=ok " "$TW/d.err" && grep -q "order cert=bad " "$TW/d.err" &&
    grep -q "deployed cert=old .*deployed=1" "$TW/d.err" &&
    "$CERTLOOP" status -c "$TW/certloop.toml" 2>/dev/null | grep -q "^df  *deploy-failed"
}
tw_daemon_wait 90 settled || { tw_fail "the first runs did not end: $(tail -5 "$TW/d.err")"; tw_done; }

"$CERTLOOP" status -c "$TW/certloop.toml" >"$TW/status.txt" 2>&1 || tw_fail "status"
"$CERTLOOP" status --json -c "$TW/certloop.toml" >"$TW/status.json" 2>&1 || tw_fail "status --json"
sed 's/^/  /' "$TW/status.txt" >&2
word() { awk -v n="$1" '$1 == n { print $2 }' "$TW/status.txt"; }
row() { grep "^$1 " "$TW/status.txt"; }
jword() {
  python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
print([c["state"] for c in d["certificates"] if c["name"] == sys.argv[2]][0])' "$TW/status.json" "$1"
}
for pair in ok:valid bad:retrying df:deploy-failed old:expired; do
  n=${pair%%:*} want=${pair#*:}
  [ "$(word "$n")" = "$want" ] || tw_fail "$n: status says '$(word "$n")', want $want"
  [ "$(jword "$n")" = "$want" ] || tw_fail "$n: --json says '$(jword "$n")', want $want"
done
grep -q "error:" <<<"$(row ok)" && tw_fail "valid with an error: $(row ok)"
grep -q "error: .*connection" <<<"$(row bad)" || tw_fail "retrying without its error: $(row bad)"
grep -q "error: " <<<"$(row df)" || tw_fail "deploy-failed without its error: $(row df)"
# the next attempt shown: a retry soon for bad, the renewal years away for ok
python3 - "$TW/status.json" <<'EOF' || tw_fail "the dates beside the words"
import json, sys, time
d = {c["name"]: c for c in json.load(open(sys.argv[1]))["certificates"]}
now = time.time()
assert d["bad"]["next_renewal"] and d["bad"]["next_renewal"] - now < 3600, d["bad"]
assert d["ok"]["next_renewal"] - now > 365 * 86400, d["ok"]
assert d["ok"]["last_error"] is None, d["ok"]
assert d["old"]["not_after"] < now, d["old"]
EOF

# the CA paused: ok's forced order holds the one slot (ordering), df's
# forced one waits for it (due)
kill -STOP "$PEBBLE_PID"
"$CERTLOOP" renew ok --force -c "$TW/certloop.toml" >/dev/null 2>&1 || tw_fail "renew ok --force"
"$CERTLOOP" renew df --force -c "$TW/certloop.toml" >/dev/null 2>&1 || tw_fail "renew df --force"
"$CERTLOOP" status -c "$TW/certloop.toml" >"$TW/status.txt" 2>&1
"$CERTLOOP" status --json -c "$TW/certloop.toml" >"$TW/status.json" 2>&1
kill -CONT "$PEBBLE_PID"
sed 's/^/  /' "$TW/status.txt" >&2
[ "$(word ok)" = ordering ] || tw_fail "ok during its order: '$(word ok)', want ordering"
[ "$(word df)" = due ] || tw_fail "df waiting for the slot: '$(word df)', want due"
[ "$(jword ok)" = ordering ] && [ "$(jword df)" = due ] || tw_fail "--json: $(jword ok) $(jword df)"
renewed() { [ "$(grep -c "issued cert=ok " "$TW/d.err")" -ge 2 ]; }
tw_daemon_wait 60 renewed || tw_fail "ok's forced renewal did not end after the CA came back"
tw_daemon_stop >/dev/null || tw_fail "the daemon's exit status"
tw_done
