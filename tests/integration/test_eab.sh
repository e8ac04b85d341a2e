#!/usr/bin/env bash
# External Account Binding against Pebble configured to require it: without
# `eab` the account is refused and the error names the CA's problem; with
# the right kid and MAC key (file 0600) the account is created and a
# certificate issues; a wrong MAC key is refused; an EAB key file readable
# by others is a configuration error.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init eab
TW_EAB_REQUIRED=true tw_start || exit 1

conf() { # conf EAB_LINE
  tw_config_head 8 | sed "s|^trust = .*|&\n$1|"
  tw_config_cert site ec-p256 eab.test
}

echo "== no EAB: refused"
conf "" >"$TW/no-eab.toml"
timeout 120 "$CERTLOOP" run --once -c "$TW/no-eab.toml" >"$TW/out1.txt" 2>"$TW/err1.txt"
rc=$?
[ "$rc" = 1 ] || tw_fail "without EAB: exit $rc, expected 1"
grep -q "externalAccountRequired" "$TW/err1.txt" ||
  tw_fail "without EAB: no CA problem in the error: $(grep error "$TW/err1.txt" | head -3)"
[ ! -e "$TW/out/site/fullchain.pem" ] || tw_fail "without EAB: something was deployed"

echo "== wrong MAC key: refused"
rm -rf "$TW/state"
printf '%s\n' "AAAA${TW_EAB_HMAC:4}" >"$TW/wrong.key"
chmod 600 "$TW/wrong.key"
conf "eab = { kid = \"kid-certloop\", hmac_key_file = \"$TW/wrong.key\" }" >"$TW/wrong.toml"
timeout 120 "$CERTLOOP" run --once -c "$TW/wrong.toml" >"$TW/out2.txt" 2>"$TW/err2.txt"
rc=$?
[ "$rc" = 1 ] || tw_fail "wrong MAC: exit $rc, expected 1"
grep -q "urn:ietf:params:acme:error:" "$TW/err2.txt" ||
  tw_fail "wrong MAC: no CA problem: $(grep error "$TW/err2.txt" | head -3)"

echo "== key file readable by others: configuration error"
printf '%s\n' "$TW_EAB_HMAC" >"$TW/eab.key"
chmod 644 "$TW/eab.key"
conf "eab = { kid = \"kid-certloop\", hmac_key_file = \"$TW/eab.key\" }" >"$TW/eab.toml"
"$CERTLOOP" check -c "$TW/eab.toml" >/dev/null 2>"$TW/err3.txt"
rc=$?
[ "$rc" = 78 ] || tw_fail "world-readable EAB key: check exit $rc, expected 78"
grep -q "eab.key" "$TW/err3.txt" || tw_fail "check does not name the key file: $(cat "$TW/err3.txt")"

echo "== right kid and MAC key: issued"
chmod 600 "$TW/eab.key"
rm -rf "$TW/state"
timeout 120 "$CERTLOOP" run --once -c "$TW/eab.toml" >"$TW/out4.txt" 2>"$TW/err4.txt"
rc=$?
[ "$rc" = 0 ] || tw_fail "with EAB: exit $rc: $(grep error "$TW/err4.txt" | head -3)"
tw_verify_fullchain "$TW/out/site/fullchain.pem" || tw_fail "with EAB: chain does not verify"
tw_check_pair "$TW/out/site/cert.pem" "$TW/out/site/key.pem" || tw_fail "with EAB: key mismatch"
[ "$(tw_mode "$TW/state/accounts/pebble/account.key")" = 600 ] || tw_fail "account key mode"
grep -q "$TW_EAB_HMAC" "$TW"/err*.txt "$TW"/out*.txt && tw_fail "the EAB MAC key appears in the output"
tw_done
