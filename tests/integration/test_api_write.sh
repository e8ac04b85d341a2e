#!/usr/bin/env bash
# The API's write side (docs/API.md) against a Pebble-backed daemon:
# POST /v1/certificates writes conf.d/api/NAME.toml, reloads and answers 201
# with the resource; the same request_identifier again answers 200 with it,
# and the certificate is issued once (one "issued" event id on the stream).
# A body that does not validate answers 422 with check's FILE:LINE:COL
# lines and writes nothing; the administrator's names are 409 to POST and
# 403 to DELETE; DELETE removes an API file and reloads. GET/POST /v1/plan
# preview a pasted change as `certloop plan` prints it (422 with check's
# lines when it does not load); POST …/test answers `certloop test`'s lines;
# POST …/renew?dry_run=true runs a dry run in the daemon (against Pebble as
# the staging CA) and stores nothing. The self-signed bootstrap certificate
# stays the same across a restart (kept by the store, key 0600).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init api_write
tw_start || exit 1
API_PORT=$(tw_port)
TOKENS=$TW/api-tokens
{
  tw_config_head 8
  cat <<EOF
[api]
listen = ["127.0.0.1:$API_PORT"]
tokens_file = "$TOKENS"

EOF
  tw_config_cert www ec-p256 www.test
} >"$TW/certloop.toml"
# the same Pebble stands in for the staging directory of dry runs
sed -i "s|^directory = \"$TW_DIRECTORY\"\$|&\nstaging = \"$TW_DIRECTORY\"|" "$TW/certloop.toml"
grep -q '^staging = ' "$TW/certloop.toml" || tw_fail "no staging line"
APIDIR=$TW/conf.d/api
for t in reader:read manager:manage; do
  "$CERTLOOP" api-token create "${t%%:*}" --scopes "${t#*:}" -c "$TW/certloop.toml" \
    >"$TW/${t%%:*}.tok" 2>"$TW/tok.err" || tw_fail "api-token create $t: $(cat "$TW/tok.err")"
done
tw_daemon_start "$TW/certloop.toml" "$TW/out.txt" "$TW/err.txt" 20 test -s "$TW/state/api/bootstrap.pem" ||
  tw_fail "no bootstrap.pem: $(tail -5 "$TW/err.txt")"
CA=$TW/state/api/bootstrap.pem
URL=https://127.0.0.1:$API_PORT
# api TOKEN METHOD PATH [curl args...]: prints the status; the body goes to $TW/body
api() {
  local tok=$1 method=$2 path=$3
  shift 3
  curl -sS --max-time 60 --path-as-is --cacert "$CA" -X "$method" \
    -H "Authorization: Bearer $(cat "$TW/$tok.tok")" -o "$TW/body" -w '%{http_code}' "$@" \
    "$URL$path" 2>"$TW/curl.err"
}
post() { api manager POST /v1/certificates -H 'Content-Type: application/json' --data-binary "$1"; }

curl -sSN --max-time 300 --cacert "$CA" -H "Authorization: Bearer $(cat "$TW/reader.tok")" \
  "$URL/v1/events" >"$TW/sse.txt" 2>/dev/null &
TW_PIDS+=($!)
tw_daemon_wait 30 test -s "$TW/out/www/fullchain.pem" || tw_fail "www not issued"

# ---- created once for one request_identifier
REQ='{"name":"hub1","domains":["hub1.test","alt.hub1.test"],"ca":"pebble","key":"ec-p256","challenge":"http-01","auto_renew":true,"request_identifier":"order-7f3a"}'
t0=$(date +%s%N)
st=$(post "$REQ")
t1=$(date +%s%N)
[ "$st" = 201 ] || tw_fail "POST: $st $(cat "$TW/body" "$TW/curl.err")"
tw_log "POST /v1/certificates -> $st in $(((t1 - t0) / 1000000)) ms (TLS handshake, checked as check does, written, reloaded)"
python3 - "$TW/body" <<'EOF' || tw_fail "201 body: $(cat "$TW/body")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["name"] == "hub1" and o["domains"] == ["hub1.test", "alt.hub1.test"] and o["state"], o
EOF
[ -f "$APIDIR/hub1.toml" ] || tw_fail "no $APIDIR/hub1.toml"
[ "$(tw_mode "$APIDIR/hub1.toml")" = 640 ] || tw_fail "hub1.toml mode $(tw_mode "$APIDIR/hub1.toml")"
[ "$(tw_mode "$APIDIR")" = 750 ] || tw_fail "$APIDIR mode $(tw_mode "$APIDIR")"
grep -qx '# request_identifier: order-7f3a' "$APIDIR/hub1.toml" || tw_fail "file: $(cat "$APIDIR/hub1.toml")"
"$CERTLOOP" check -c "$TW/certloop.toml" >"$TW/check.txt" 2>&1 || tw_fail "check: $(cat "$TW/check.txt")"
grep -q 'OK: 2 certificates' "$TW/check.txt" || tw_fail "check: $(cat "$TW/check.txt")"
st=$(post "$REQ")
[ "$st" = 200 ] || tw_fail "the same request_identifier again: $st $(cat "$TW/body")"
grep -q '"name":"hub1"' "$TW/body" || tw_fail "repeat body: $(cat "$TW/body")"
# another identifier for the same name is a clash, not a second certificate
st=$(post '{"name":"hub1","domains":["hub1.test"],"request_identifier":"other"}')
[ "$st" = 409 ] || tw_fail "another identifier for hub1: $st $(cat "$TW/body")"
# the same identifier with another body is the client's mistake: 409, and
# nothing changes (it answered 200 with hub1 as if other.test were ordered)
cp "$APIDIR/hub1.toml" "$TW/hub1.before"
st=$(post '{"name":"hub2","domains":["other.test"],"ca":"pebble","request_identifier":"order-7f3a"}')
[ "$st" = 409 ] && grep -q 'request_identifier order-7f3a created hub1 with another body' "$TW/body" ||
  tw_fail "the identifier with another body: $st $(cat "$TW/body")"
cmp -s "$APIDIR/hub1.toml" "$TW/hub1.before" || tw_fail "hub1.toml changed"
[ "$(ls "$APIDIR")" = hub1.toml ] || tw_fail "files in $APIDIR: $(ls "$APIDIR")"
tw_daemon_wait 90 test -e "$TW/state/certs/hub1/current/fullchain.pem" || tw_fail "hub1 not issued"
issued() { grep -c '^data: {.*"event":"issued".*"certificate":"hub1"' "$TW/sse.txt"; }
issued_seen() { [ "$(issued)" -ge 1 ]; } # counted at each try, not once before the wait
tw_daemon_wait 10 issued_seen || tw_fail "no issued event for hub1: $(cat "$TW/sse.txt")"
st=$(post "$REQ") # after the issuance, still the same one
[ "$st" = 200 ] || tw_fail "the identifier after issuance: $st"
[ "$(grep -B2 '^data: {.*"event":"issued".*"certificate":"hub1"' "$TW/sse.txt" | grep -c '^id: ')" = 1 ] ||
  tw_fail "issued events for hub1: $(grep hub1 "$TW/sse.txt")"
[ "$(ls "$TW/state/certs/hub1" | grep -vc current)" = 1 ] || tw_fail "generations: $(ls "$TW/state/certs/hub1")"
tw_log "request_identifier: 3 POSTs, 1 file, 1 generation, 1 issued event"

# ---- refused without writing anything
st=$(post '{"name":"bad","domains":["ok.test","not a name"],"ca":"pebble"}')
[ "$st" = 422 ] || tw_fail "a bad domain: $st $(cat "$TW/body")"
grep -q "\"$APIDIR/bad.toml:[0-9]*:[0-9]*: error: certificate.bad.domains" "$TW/body" ||
  tw_fail "422 without check's line: $(cat "$TW/body")"
st=$(post '{"name":"bad","domains":["ok.test"],"ca":"nosuchca"}')
[ "$st" = 422 ] && grep -q 'error: certificate.bad.ca' "$TW/body" || tw_fail "unknown ca: $st $(cat "$TW/body")"
st=$(post '{"name":"bad","domains":["ok.test"],"key":"dsa"}')
[ "$st" = 422 ] || tw_fail "bad key: $st"
st=$(post '{"name":"bad","domains":["ok.test"],"colour":"red"}')
[ "$st" = 422 ] && grep -q 'unknown field' "$TW/body" || tw_fail "unknown field: $st $(cat "$TW/body")"
for n in '../evil' '.hidden' 'a/b' ''; do
  st=$(post "{\"name\":\"$n\",\"domains\":[\"ok.test\"]}")
  [ "$st" = 422 ] || tw_fail "name '$n': $st"
done
st=$(post '{"name":"bad","domains":["ok.test"],"ca":"pebble"')
[ "$st" = 400 ] || tw_fail "broken JSON: $st"
st=$(post '{"name":"www","domains":["www2.test"],"ca":"pebble"}')
[ "$st" = 409 ] && grep -q 'administrator' "$TW/body" || tw_fail "the administrator's name: $st $(cat "$TW/body")"
st=$(post "{\"name\":\"big\",\"domains\":[\"$(head -c 70000 /dev/zero | tr '\0' a)\"]}")
[ "$st" = 413 ] || [ "$st" = 000 ] || tw_fail "a 70 kB body: $st"
st=$(api reader POST /v1/certificates --data-binary '{"name":"r","domains":["r.test"]}')
[ "$st" = 403 ] || tw_fail "a read token created: $st"
[ "$(ls "$APIDIR")" = hub1.toml ] || tw_fail "a refused request wrote: $(ls "$APIDIR")"

# ---- DELETE: only the API's own
[ "$(api manager DELETE /v1/certificates/www)" = 403 ] || tw_fail "DELETE www: $(cat "$TW/body")"
[ "$(api manager DELETE /v1/certificates/nope)" = 404 ] || tw_fail "DELETE nope"
[ "$(api reader DELETE /v1/certificates/hub1)" = 403 ] || tw_fail "a read token deleted"
[ "$(api manager DELETE /v1/certificates/hub1)" = 200 ] || tw_fail "DELETE hub1: $(cat "$TW/body")"
[ -e "$APIDIR/hub1.toml" ] && tw_fail "hub1.toml is still there"
[ "$(api reader GET /v1/certificates/hub1)" = 404 ] || tw_fail "hub1 still served after DELETE"
[ "$(api reader GET /v1/certificates/www)" = 200 ] || tw_fail "www after DELETE hub1"
grep -q 'error' "$TW/check.txt" && tw_fail "check: $(cat "$TW/check.txt")"
# a name with dots (allowed) is a quoted key: [certificate.a.b] was a nested
# table and the POST a 422 saying only [certificate.a.b] may be in a.b.toml
st=$(post '{"name":"shop.example","domains":["shop.test"],"ca":"pebble"}')
[ "$st" = 201 ] || tw_fail "a name with dots: $st $(cat "$TW/body")"
grep -qxF '[certificate."shop.example"]' "$APIDIR/shop.example.toml" ||
  tw_fail "shop.example.toml: $(cat "$APIDIR/shop.example.toml")"
"$CERTLOOP" check -c "$TW/certloop.toml" >"$TW/check2.txt" 2>&1 || tw_fail "check: $(cat "$TW/check2.txt")"
[ "$(api manager DELETE /v1/certificates/shop.example)" = 200 ] || tw_fail "DELETE shop.example: $(cat "$TW/body")"
[ -e "$APIDIR/shop.example.toml" ] && tw_fail "shop.example.toml is still there"
grep -q 'info api: 127.0.0.1 POST /v1/certificates token=manager -> 201' "$TW/err.txt" ||
  tw_fail "no log line for the POST"

# ---- previews: plan, test, dry run
st=$(api manager GET /v1/plan)
[ "$st" = 200 ] || tw_fail "GET /v1/plan: $st $(cat "$TW/body")"
"$CERTLOOP" plan -c "$TW/certloop.toml" www >"$TW/plan.txt" 2>&1
python3 - "$TW/body" "$TW/plan.txt" <<'EOF' || tw_fail "plan of the configuration: $(cat "$TW/body")"
import json, sys
o = json.load(open(sys.argv[1]))
c = {x["name"]: x for x in o["certificates"]}
assert list(c) == ["www"] and c["www"]["change"] == "unchanged", o
assert c["www"]["plan"] == open(sys.argv[2]).read(), (c["www"]["plan"], open(sys.argv[2]).read())
EOF
PASTE='[certificate.shop]
domains = ["shop.test"]
ca = "pebble"

[certificate.www]
domains = ["www.test", "www2.test"]
ca = "pebble"'
st=$(api manager GET /v1/plan -G --data-urlencode "config=$PASTE")
[ "$st" = 200 ] || tw_fail "GET /v1/plan?config=: $st $(cat "$TW/body")"
python3 - "$TW/body" <<'EOF' || tw_fail "plan of a change: $(cat "$TW/body")"
import json, sys
o = json.load(open(sys.argv[1]))
c = {x["name"]: x for x in o["certificates"]}
assert c["shop"]["change"] == "added" and c["shop"]["plan"].startswith("shop\n"), o
assert "now: no certificate stored" in c["shop"]["plan"], c["shop"]["plan"]
assert c["www"]["change"] == "reorder" and "www2.test" in c["www"]["plan"], o
assert "does not cover name www2.test" in c["www"]["plan"], c["www"]["plan"]
EOF
st=$(api manager POST /v1/plan -H 'Content-Type: application/toml' --data-binary "$PASTE")
[ "$st" = 200 ] && grep -q '"name":"shop"' "$TW/body" || tw_fail "POST /v1/plan: $st $(cat "$TW/body")"
st=$(api manager POST /v1/plan -H 'Content-Type: application/json' \
  --data-binary "$(python3 -c 'import json,sys; print(json.dumps({"config": sys.argv[1]}))' "$PASTE")")
[ "$st" = 200 ] && grep -q '"name":"shop"' "$TW/body" || tw_fail "POST /v1/plan (JSON): $st $(cat "$TW/body")"
st=$(api manager POST /v1/plan --data-binary $'[certificate.bad]\ndomains = ["ok.test"]\nca = "nosuch"')
[ "$st" = 422 ] && grep -q '"(config):3:[0-9]*: error: certificate.bad.ca' "$TW/body" ||
  tw_fail "a bad preview: $st $(cat "$TW/body")"
st=$(api manager POST /v1/plan --data-binary $'[daemon]\nlog_level = "debug"')
[ "$st" = 422 ] || tw_fail "[daemon] in a preview: $st"
[ -e "$APIDIR/shop.toml" ] && tw_fail "a preview wrote a file"
[ "$(api reader GET /v1/plan)" = 403 ] || tw_fail "a read token planned"

st=$(api manager POST /v1/certificates/www/test)
[ "$st" = 200 ] || tw_fail "test www: $st $(cat "$TW/body")"
"$CERTLOOP" test -c "$TW/certloop.toml" www >"$TW/test.txt" 2>&1
python3 - "$TW/body" "$TW/test.txt" <<'EOF' || tw_fail "test answer: $(cat "$TW/body") cli: $(cat "$TW/test.txt")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["name"] == "www" and isinstance(o["ok"], bool) and o["lines"], o
assert all(l.startswith("test www: ") for l in o["lines"]), o
cli = [l for l in open(sys.argv[2]).read().splitlines() if l.startswith("test www: ")]
check = lambda l: l.split(":")[1]  # the check's name; details (addresses, ids) may differ
assert [check(l) for l in o["lines"]] == [check(l) for l in cli], (o["lines"], cli)
EOF
[ "$(api manager POST /v1/certificates/nope/test)" = 404 ] || tw_fail "test of an unknown name"

gen=$(readlink "$TW/state/certs/www/current")
st=$(api manager POST '/v1/certificates/www/renew?dry_run=true')
[ "$st" = 200 ] || tw_fail "dry run: $st $(cat "$TW/body")"
python3 - "$TW/body" <<'EOF' || tw_fail "dry run answer: $(cat "$TW/body")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["name"] == "www" and o["dry_run"] is True and o["ok"] is True and o["failed"] == 0, o
assert any(l.startswith("www: ") for l in o["summary"]), o
EOF
[ "$(readlink "$TW/state/certs/www/current")" = "$gen" ] || tw_fail "a dry run changed www's generation"
st=$(api manager POST '/v1/certificates/nope/renew?dry_run=true')
[ "$st" = 404 ] || tw_fail "dry run of nope: $st $(cat "$TW/body")"
tw_log "previews: plan (3 forms), test, dry run"

# ---- the bootstrap certificate is kept by the store across a restart
boot=$(sha256sum <"$CA")
tw_daemon_stop
[ "$(tw_mode "$TW/state/api/bootstrap-key.pem")" = 600 ] || tw_fail "bootstrap key mode $(tw_mode "$TW/state/api/bootstrap-key.pem")"
fp=$(openssl x509 -in "$CA" -noout -fingerprint -sha256)
for f in "$TW"/state/certs/*/*/cert.pem; do
  [ "$(openssl x509 -in "$f" -noout -fingerprint -sha256)" = "$fp" ] && tw_fail "the bootstrap is a generation: $f"
done
tw_daemon_start "$TW/certloop.toml" "$TW/out2.txt" "$TW/err2.txt"
up() { [ "$(api reader GET /v1/certificates/www)" = 200 ]; }
tw_daemon_wait 20 up || tw_fail "after a restart, bootstrap.pem does not verify: $(cat "$TW/curl.err")"
[ "$(sha256sum <"$CA")" = "$boot" ] || tw_fail "bootstrap.pem changed at the restart"
grep -q 'bootstrap certificate kept from the last start' "$TW/err2.txt" || tw_fail "no log line for the kept bootstrap"
tw_daemon_stop
tw_done
