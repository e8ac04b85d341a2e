#!/usr/bin/env bash
# Imported certificates ([certificate.NAME] import = {cert, key}, no CA):
# `run --once` stores the files as a generation and deploys them (leaf,
# chain, key), says "imported, valid until"; a second run finds them
# unchanged and deploys nothing; the daemon shows the certificate's expiry
# in status, and `certloop renew NAME` makes it read the files again: a
# replaced certificate is deployed; a certificate that does not belong to
# its key is refused with both paths named and the deployed files stay; one
# that does not cover the configured names is refused with both lists. check
# warns that an import without ca is never renewed although a CA is
# configured. Nothing is ever ordered from the CA for it.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init import
tw_start || exit 1

# a private CA and two leaves for imp.test
P=$TW/pki
mkdir -p "$P"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=certloop import test CA" -keyout "$P/ca.key" -out "$P/ca.pem" >/dev/null 2>&1
leaf() { # NAME DAYS
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=imp.test" \
    -keyout "$P/$1.key" -out "$P/$1.csr" >/dev/null 2>&1
  printf 'subjectAltName=DNS:imp.test\n' >"$P/ext"
  openssl x509 -req -in "$P/$1.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial \
    -days "$2" -extfile "$P/ext" -out "$P/$1.crt" >/dev/null 2>&1
  cat "$P/$1.crt" "$P/ca.pem" >"$P/$1.chain.pem"
}
leaf one 20
leaf two 25
mkdir -p "$TW/in"
cp "$P/one.chain.pem" "$TW/in/imp.pem"
cp "$P/one.key" "$TW/in/imp.key"
chmod 600 "$TW/in/imp.key"

{
  tw_config_head 4
  tw_config_import imp imp.test "$TW/in/imp.pem" "$TW/in/imp.key"
  printf 'cert = "%s"\n\n' "$TW/out/imp/cert.pem"
} >"$TW/certloop.toml"
"$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null 2>"$TW/check.err" || { tw_fail "config invalid"; tw_done; }
# the configuration has a CA, which the import does not use: check says so
grep -q "warning: certificate.imp: imported without ca: .*never renewed; add ca = \"pebble\"" \
  "$TW/check.err" || tw_fail "check did not warn that imp is never renewed: $(cat "$TW/check.err")"

"$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out1" 2>"$TW/err1" ||
  tw_fail "run --once failed: $(grep error "$TW/err1" | head -3)"
grep -q "^imp: imported, valid until " "$TW/out1" || tw_fail "summary: $(cat "$TW/out1")"
cmp -s "$TW/out/imp/fullchain.pem" "$P/one.chain.pem" || tw_fail "fullchain is not the imported chain"
cmp -s "$TW/out/imp/cert.pem" "$P/one.crt" || tw_fail "cert is not the imported leaf"
tw_check_pair "$TW/out/imp/key.pem" "$TW/out/imp/cert.pem" || tw_fail "deployed key/cert mismatch"
case $(stat -c %a "$TW/out/imp/key.pem") in 600 | 640) ;; *) tw_fail "key mode $(stat -c %a "$TW/out/imp/key.pem")" ;; esac
gen1=$(readlink "$TW/state/certs/imp/current")

# unchanged files: no new generation, nothing deployed again
"$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out2" 2>"$TW/err2" || tw_fail "second run failed"
[ "$(readlink "$TW/state/certs/imp/current")" = "$gen1" ] || tw_fail "unchanged files made a new generation"
grep -q "deploy cert=imp" "$TW/err2" && tw_fail "unchanged files were deployed again"

# the daemon: status shows the expiry; renew re-reads the files
status_json() {
  "$CERTLOOP" status --json -c "$TW/certloop.toml" >"$TW/status.json" 2>/dev/null
}
tw_daemon_start "$TW/certloop.toml" "$TW/run.out" "$TW/run.err" 10 status_json
want_na=$(date -d "$(openssl x509 -in "$P/one.crt" -noout -enddate | cut -d= -f2)" +%s)
python3 - "$TW/status.json" "$want_na" <<'EOF' || tw_fail "status: $(cat "$TW/status.json")"
import json, sys
d = json.load(open(sys.argv[1]))
c = [c for c in d["certificates"] if c["name"] == "imp"][0]
assert c["not_after"] == int(sys.argv[2]), c
assert c["state"] == "valid", c
assert c["reason"].startswith("imported"), c
EOF
cp "$P/two.chain.pem" "$TW/in/imp.pem"
cp "$P/two.key" "$TW/in/imp.key"
"$CERTLOOP" renew imp -c "$TW/certloop.toml" >/dev/null 2>&1 || tw_fail "renew imp refused"
for ((t = 0; t < 100; t++)); do
  cmp -s "$TW/out/imp/cert.pem" "$P/two.crt" && break
  sleep 0.1
done
cmp -s "$TW/out/imp/cert.pem" "$P/two.crt" || tw_fail "the replaced certificate was not deployed"
tw_check_pair "$TW/out/imp/key.pem" "$TW/out/imp/cert.pem" || tw_fail "key/cert mismatch after replace"

# a certificate that is not the key's: refused, the deployed files stay
cp "$P/one.chain.pem" "$TW/in/imp.pem" # key is still two's
before=$(sha256sum "$TW"/out/imp/*)
"$CERTLOOP" renew imp -c "$TW/certloop.toml" >/dev/null 2>&1 || tw_fail "renew imp refused"
for ((t = 0; t < 100; t++)); do
  grep -q "does not belong to the key" "$TW/run.err" && break
  sleep 0.1
done
grep -q "import: $TW/in/imp.pem does not belong to the key $TW/in/imp.key" "$TW/run.err" ||
  tw_fail "mismatch not reported: $(grep -i import "$TW/run.err" | tail -3)"
[ "$(sha256sum "$TW"/out/imp/*)" = "$before" ] || tw_fail "a refused import changed deployed files"
tw_daemon_stop

# a certificate that does not cover the configured names: refused with both
# lists, nothing deployed
{
  tw_config_head 4
  tw_config_import wide imp.test "$TW/in/imp.pem" "$TW/in/imp.key" | sed 's|^domains = .*|domains = ["imp.test", "other.test"]|'
} >"$TW/wide.toml"
cp "$P/one.key" "$TW/in/imp.key"
"$CERTLOOP" run --once -c "$TW/wide.toml" >"$TW/out.wide" 2>"$TW/err.wide" &&
  tw_fail "an import not covering its domains was accepted"
grep -q "import: $TW/in/imp.pem does not cover other.test: it names imp.test; domains asks for imp.test, other.test" \
  "$TW/out.wide" "$TW/err.wide" || tw_fail "uncovered names not reported: $(cat "$TW/out.wide")"
[ -e "$TW/out/wide/fullchain.pem" ] && tw_fail "an import not covering its domains was deployed"
grep -q "POST /order-plz" "$TW/pebble.log" && tw_fail "an order was sent for an imported certificate"
tw_done
