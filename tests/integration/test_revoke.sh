#!/usr/bin/env bash
# `certloop revoke NAME [--reason R]` against Pebble: a certificate issued by
# `run --once` is revoked with its reason (Pebble's management API then calls
# its serial "Revoked" with that reason code), the stored and deployed files
# are left alone, a second revoke names the CA's alreadyRevoked problem and
# exits 1, and the refusals that need no CA: an unknown name (64), nothing
# stored yet (69), no account in the state directory (69).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init revoke
tw_start || exit 1

{
  tw_config_head 4
  tw_config_cert www ec-p256 www.revoke.test
  tw_config_cert later ec-p256 later.revoke.test
} >"$TW/certloop.toml"
"$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null || { tw_fail "config invalid"; tw_done; }

# Nothing stored yet: 69, and the CA is not contacted.
"$CERTLOOP" revoke www -c "$TW/certloop.toml" >"$TW/out0" 2>"$TW/err0"
rc=$?
[ "$rc" = 69 ] || tw_fail "revoke before issuance exited $rc, expected 69"
grep -q "cert=www: no stored certificate" "$TW/err0" || tw_fail "no-certificate message: $(cat "$TW/err0")"

# Issue only www (later is removed from a copy of the config).
sed '/^\[certificate.later\]/,$d' "$TW/certloop.toml" >"$TW/www.toml"
timeout 120 "$CERTLOOP" run --once -c "$TW/www.toml" >"$TW/run.out" 2>"$TW/run.err" ||
  tw_fail "run --once failed: $(tail -5 "$TW/run.err")"
cert="$TW/state/certs/www/current/cert.pem"
[ -s "$cert" ] || { tw_fail "no stored certificate"; tw_done; }
serial=$(openssl x509 -in "$cert" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f' | sed 's/^0*//')
before=$(sha256sum "$cert" "$TW/out/www/fullchain.pem" "$TW/out/www/key.pem")

status_of() { # SERIAL: Pebble's view of a certificate
  curl -fsS --cacert "$TW/tls-ca.pem" "https://127.0.0.1:$TW_MGMT_PORT/cert-status-by-serial/$1"
}
grep -q '"Status": *"Valid"' <<<"$(status_of "$serial")" || tw_fail "Pebble does not know serial $serial as valid"

# Unknown name: 64.
"$CERTLOOP" revoke nosuch -c "$TW/certloop.toml" >/dev/null 2>"$TW/err1"
rc=$?
[ "$rc" = 64 ] || tw_fail "revoke of an unknown name exited $rc, expected 64"
grep -q "no certificate 'nosuch'" "$TW/err1" || tw_fail "unknown-name message: $(cat "$TW/err1")"

# The revocation itself.
"$CERTLOOP" revoke www --reason keyCompromise -c "$TW/certloop.toml" >"$TW/out2" 2>"$TW/err2"
rc=$?
[ "$rc" = 0 ] || tw_fail "revoke exited $rc: $(cat "$TW/err2")"
grep -q "cert=www: serial .* revoked by ca=pebble, reason keyCompromise" "$TW/out2" ||
  tw_fail "revoke output: $(cat "$TW/out2")"
st=$(status_of "$serial")
grep -q '"Status": *"Revoked"' <<<"$st" || tw_fail "Pebble still calls $serial: $st"
grep -q '"Reason": *1' <<<"$st" || tw_fail "Pebble has no reason 1 (keyCompromise) for $serial: $st"
[ "$(sha256sum "$cert" "$TW/out/www/fullchain.pem" "$TW/out/www/key.pem")" = "$before" ] ||
  tw_fail "revoke changed stored or deployed files"

# Again: the CA's problem document, exit 1.
"$CERTLOOP" revoke www -c "$TW/certloop.toml" >/dev/null 2>"$TW/err3"
rc=$?
[ "$rc" = 1 ] || tw_fail "second revoke exited $rc, expected 1"
grep -q "cert=www ca=pebble: .*alreadyRevoked" "$TW/err3" || tw_fail "second revoke message: $(cat "$TW/err3")"

# No account: 69, and none is registered.
mv "$TW/state/accounts" "$TW/accounts.away"
"$CERTLOOP" revoke www -c "$TW/certloop.toml" >/dev/null 2>"$TW/err4"
rc=$?
[ "$rc" = 69 ] || tw_fail "revoke without an account exited $rc, expected 69"
grep -q "no account for ca=pebble" "$TW/err4" || tw_fail "no-account message: $(cat "$TW/err4")"
[ ! -e "$TW/state/accounts" ] || tw_fail "revoke created an account"

tw_done
