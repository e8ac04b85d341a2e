#!/usr/bin/env bash
# A deployment that fails against a running daemon and Pebble: a forced
# renewal whose files action cannot replace the fullchain (a directory took
# its place) leaves every previously deployed file byte-identical (the key
# already replaced is put back), status says "deploy-failed" with the
# error, and no further order follows; a second forced renewal meanwhile
# is a new order (the failed deployment's order file, kept for a restart,
# is not resumed); once the obstacle is gone,
# `certloop renew NAME --deploy-only` deploys the stored certificate
# without ordering. The PKCS#12 action of the same certificate opens with
# its password file.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init deployfail
tw_start || exit 1

printf 'p12-secret\n' >"$TW/p12.pw"
chmod 600 "$TW/p12.pw"
mkdir -p "$TW/p12"
{
  tw_config_head 4
  tw_config_cert df ec-p256 df.test
  cat <<EOF
[[certificate.df.deploy]]
type = "files"
pkcs12 = "$TW/p12/df.p12"
pkcs12_password_file = "$TW/p12.pw"

EOF
} >"$TW/certloop.toml"

"$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null || { tw_fail "config invalid"; tw_done; }
tw_daemon_start "$TW/certloop.toml" "$TW/run.out" "$TW/run.err"
for ((t = 0; t < 300; t++)); do
  [ -s "$TW/out/df/fullchain.pem" ] && [ -s "$TW/p12/df.p12" ] && break
  sleep 0.1
done
[ -s "$TW/out/df/fullchain.pem" ] || { tw_fail "first issuance not deployed"; tw_done; }
sleep 0.5
openssl pkcs12 -in "$TW/p12/df.p12" -passin "file:$TW/p12.pw" -nokeys 2>/dev/null |
  grep -q "BEGIN CERTIFICATE" || tw_fail "PKCS#12 does not open with its password"
openssl pkcs12 -in "$TW/p12/df.p12" -passin pass:wrong -nokeys >/dev/null 2>&1 &&
  tw_fail "PKCS#12 opens with a wrong password"

before=$(sha256sum "$TW/out/df/cert.pem" "$TW/out/df/key.pem" "$TW/out/df/chain.pem")
old_fullchain=$(sha256sum <"$TW/out/df/fullchain.pem")
# the obstacle: fullchain.pem becomes a non-empty directory
mv "$TW/out/df/fullchain.pem" "$TW/fullchain.saved"
mkdir "$TW/out/df/fullchain.pem"
touch "$TW/out/df/fullchain.pem/x"
orders0=$(grep -c "POST /order-plz" "$TW/pebble.log")

"$CERTLOOP" renew df --force -c "$TW/certloop.toml" >/dev/null 2>"$TW/renew.err" ||
  tw_fail "renew --force refused: $(cat "$TW/renew.err")"
state=""
for ((t = 0; t < 300; t++)); do
  "$CERTLOOP" status --json -c "$TW/certloop.toml" >"$TW/st.json" 2>/dev/null
  state=$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["certificates"][0]; print(c["state"])' "$TW/st.json" 2>/dev/null)
  [ "$state" = deploy-failed ] && break
  sleep 0.1
done
[ "$state" = deploy-failed ] || tw_fail "status state is '$state', expected deploy-failed"
python3 - "$TW/st.json" <<'EOF' || tw_fail "status: $(cat "$TW/st.json")"
import json, sys
c = json.load(open(sys.argv[1]))["certificates"][0]
assert "fullchain.pem: rename" in c["last_error"] and "put back" in c["last_error"], c
assert c["reason"] == "deploy retry after a failure", c
assert c["consecutive_failures"] == 1, c
EOF
[ "$(sha256sum "$TW/out/df/cert.pem" "$TW/out/df/key.pem" "$TW/out/df/chain.pem")" = "$before" ] ||
  tw_fail "a failed deploy changed the deployed files"
grep -q . <<<"$(find "$TW/out" \( -name '.tmp-*' -o -name '.bak-*' \))" && tw_fail "temp files left"
[ $(($(grep -c "POST /order-plz" "$TW/pebble.log") - orders0)) = 1 ] ||
  tw_fail "expected one order (the forced one), Pebble saw more"

# the failed deployment keeps its order file (a restart deploys again); a
# forced renewal meanwhile orders anew rather than resuming that order
[ -f "$TW/state/orders/df.json" ] || tw_fail "the failed deployment's order file is gone"
gen1=$(readlink "$TW/state/certs/df/current")
"$CERTLOOP" renew df --force -c "$TW/certloop.toml" >/dev/null 2>"$TW/renew.err" ||
  tw_fail "second renew --force refused: $(cat "$TW/renew.err")"
for ((t = 0; t < 300; t++)); do
  [ "$(readlink "$TW/state/certs/df/current")" != "$gen1" ] &&
    "$CERTLOOP" status --json -c "$TW/certloop.toml" 2>/dev/null | python3 -c \
      'import json,sys; sys.exit(json.load(sys.stdin)["certificates"][0]["consecutive_failures"] != 2)' &&
    break
  sleep 0.1
done
[ "$(readlink "$TW/state/certs/df/current")" != "$gen1" ] || tw_fail "no new generation stored"
orders1=$(grep -c "POST /order-plz" "$TW/pebble.log")
[ $((orders1 - orders0)) = 2 ] || tw_fail "expected two new orders, Pebble saw $((orders1 - orders0))"
[ "$(sha256sum "$TW/out/df/cert.pem" "$TW/out/df/key.pem" "$TW/out/df/chain.pem")" = "$before" ] ||
  tw_fail "the second failed deploy changed the deployed files"

# the obstacle goes; a deploy-only renewal deploys the stored certificate
rm -rf "$TW/out/df/fullchain.pem"
mv "$TW/fullchain.saved" "$TW/out/df/fullchain.pem"
"$CERTLOOP" renew df --deploy-only -c "$TW/certloop.toml" >/dev/null 2>"$TW/renew2.err" ||
  tw_fail "renew --deploy-only refused: $(cat "$TW/renew2.err")"
for ((t = 0; t < 100; t++)); do
  [ "$(sha256sum <"$TW/out/df/fullchain.pem")" != "$old_fullchain" ] && break
  sleep 0.1
done
cmp -s "$TW/out/df/fullchain.pem" "$TW/state/certs/df/current/fullchain.pem" ||
  tw_fail "the stored certificate was not deployed"
tw_check_pair "$TW/out/df/key.pem" "$TW/out/df/fullchain.pem" || tw_fail "key/cert mismatch"
sleep 0.3
orders2=$(grep -c "POST /order-plz" "$TW/pebble.log")
[ "$orders2" = "$orders1" ] || tw_fail "the deploy-only renewal sent an order"
[ -e "$TW/state/orders/df.json" ] && tw_fail "order file left after the deployment succeeded"
tw_daemon_stop || tw_fail "the daemon did not stop cleanly"
tw_done
