#!/usr/bin/env bash
# certloop import-lego on a state made by Debian's real lego against Pebble:
# two certificates (one P-384 with two names, one RSA 2048) issued with
# lego's own http-01 server. The import writes conf.d/lego-NAME.toml per
# certificate, reuses [ca.pebble] (found by the certificate URL's host) and
# stores lego's account; `run --once` takes lego's files over as the first
# generations without an order; the daemon then renews both with lego's
# account (certloop's listener on the same port), writing the new
# certificates to lego's paths (key type kept, chains verify, keys match).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

command -v lego >/dev/null || tw_skip "lego not installed"
tw_init import-lego
tw_start || tw_done

lego_run() {
  LEGO_CA_CERTIFICATES=$TW/tls-ca.pem lego --server "$TW_DIRECTORY" --accept-tos \
    --email ops@example.org --path "$TW/lego" --http --http.port "127.0.0.1:$TW_HTTP_PORT" \
    "$@" run >>"$TW/lego.log" 2>&1
}

echo "== lego: two certificates"
lego_run --key-type ec384 -d a.test -d www.a.test ||
  { tw_fail "lego (ec384) failed"; tail -20 "$TW/lego.log" >&2; tw_done; }
lego_run --key-type rsa2048 -d b.test ||
  { tw_fail "lego (rsa2048) failed"; tail -20 "$TW/lego.log" >&2; tw_done; }
certs=$TW/lego/certificates
for n in a.test b.test; do
  [ -f "$certs/$n.json" ] || tw_fail "lego made no $n.json"
  cp "$certs/$n.crt" "$TW/lego-$n.crt"
done
acct_url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["registration"]["uri"])' \
  "$(find "$TW/lego/accounts" -name account.json | head -1)")
[ -n "$acct_url" ] || tw_fail "no lego account"

echo "== import"
mkdir -p "$TW/etc"
tw_config_head 8 >"$TW/etc/certloop.toml"
tw_run 0 import-lego -c "$TW/etc/certloop.toml" "$TW/lego"
sed 's/^/  import: /' "$TW/out"
for n in a.test b.test; do
  f=$TW/etc/conf.d/lego-$n.toml
  [ -f "$f" ] || { tw_fail "import wrote no $f"; continue; }
  grep -q '^ca = "pebble"$' "$f" || tw_fail "$n: not ca = pebble"
  grep -q "^fullchain = \"$certs/$n.crt\"$" "$f" || tw_fail "$n: lego's bundled .crt is not the fullchain"
done
grep -q '^key = "ec-p384"$' "$TW/etc/conf.d/lego-a.test.toml" || tw_fail "a.test: key type not ec-p384"
grep -q '^key = "rsa2048"$' "$TW/etc/conf.d/lego-b.test.toml" || tw_fail "b.test: key type not rsa2048"
grep -q "\"url\": \"$acct_url\"" "$TW/state/accounts/pebble/account.json" 2>/dev/null ||
  tw_fail "lego's account ($acct_url) not stored"
"$CERTLOOP" check -c "$TW/etc/certloop.toml" >/dev/null || tw_fail "check after the import"

echo "== a CA lego used that the configuration lacks: skipped, nothing written"
mkdir -p "$TW/other/certificates"
sed 's|"certUrl": "https://[^/]*/|"certUrl": "https://acme.invalid:8443/|' "$certs/a.test.json" \
  >"$TW/other/certificates/c.test.json"
for x in crt key issuer.crt; do cp "$certs/a.test.$x" "$TW/other/certificates/c.test.$x"; done
tw_run 1 import-lego -c "$TW/etc/certloop.toml" "$TW/other"
grep -q "c.test: skipped: lego does not record its CA's directory URL: add a \[ca.NAME\] whose directory is on https://acme.invalid:8443/" "$TW/err" ||
  tw_fail "unknown CA: $(cat "$TW/err")"
[ -e "$TW/etc/conf.d/lego-c.test.toml" ] && tw_fail "a file for the skipped certificate"

echo "== run --once: lego's files become the first generations, no order"
timeout 120 "$CERTLOOP" run --once -c "$TW/etc/certloop.toml" >"$TW/once.out" 2>"$TW/once.err" ||
  tw_fail "run --once exited $?: $(grep -E ' (error|warn) ' "$TW/once.err" | head -5)"
for n in a.test b.test; do
  cmp -s "$TW/state/certs/$n/current/fullchain.pem" "$TW/lego-$n.crt" ||
    tw_fail "$n: the first generation is not lego's certificate"
  cmp -s "$certs/$n.crt" "$TW/lego-$n.crt" || tw_fail "$n: lego's .crt changed by the import"
done
grep -q "new order" "$TW/once.err" && tw_fail "run --once ordered"

echo "== the daemon renews both with lego's account, into lego's paths"
tw_daemon_start "$TW/etc/certloop.toml" "$TW/d.out" "$TW/d.err"
sock=$TW/control.sock
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
renewed() {
  ! cmp -s "$certs/a.test.crt" "$TW/lego-a.test.crt" && ! cmp -s "$certs/b.test.crt" "$TW/lego-b.test.crt"
}
"$CERTLOOP" renew --force --socket "$sock" a.test b.test >"$TW/renew.out" 2>&1 ||
  tw_fail "renew --force: $(cat "$TW/renew.out")"
tw_daemon_wait 120 renewed || tw_fail "not renewed in 120 s: $(grep -E ' (error|warn) ' "$TW/d.err" | tail -5)"
tw_daemon_stop
for n in a.test b.test; do
  tw_check_pair "$certs/$n.crt" "$certs/$n.key" || tw_fail "$n: key does not match the new certificate"
  tw_verify_fullchain "$certs/$n.crt" || tw_fail "$n: the new .crt does not verify"
  [ "$(tw_sans "$certs/$n.crt" | tr '\n' ' ')" = "$(tw_sans "$TW/lego-$n.crt" | tr '\n' ' ')" ] ||
    tw_fail "$n: names changed"
done
grep -q 'NIST CURVE: P-384' <<<"$(openssl pkey -in "$certs/a.test.key" -noout -text 2>/dev/null)" ||
  tw_fail "a.test: the renewed key is not P-384"
grep -q "\"url\": \"$acct_url\"" "$TW/state/accounts/pebble/account.json" ||
  tw_fail "the account changed"
grep -q "new account key" "$TW/d.err" && tw_fail "the daemon made a new account"
tw_done
