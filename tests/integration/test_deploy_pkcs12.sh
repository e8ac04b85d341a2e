#!/usr/bin/env bash
# PKCS#12 deploys against Pebble (`run --once`): the modern file opens with
# `openssl pkcs12` and its password file's first line (not with a wrong
# one); the legacy file (3DES, SHA-1 MAC) opens with `-legacy`; without a
# pkcs12_password_file the password is empty. Each holds the issued leaf,
# its key and the chain. Modes and groups: a secret file with a group is
# 0640 and owned by that group, an explicit mode is kept, certificates are
# 0644 by default.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init pkcs12
tw_start || exit 1

# a group to hand the files to: our own primary group, or (root) "daemon"
if [ "$(id -u)" = 0 ]; then grp=daemon; else grp=$(id -gn); fi
getent group "$grp" >/dev/null || { tw_fail "no group $grp"; tw_done; }

printf 'p12-s3cret\nsecond line ignored\n' >"$TW/p12.pw"
chmod 600 "$TW/p12.pw"
O=$TW/out/p12
{
  tw_config_head 4
  tw_config_cert p12 ec-p256 p12.test
  cat <<EOF
[[certificate.p12.deploy]]
type = "files"
pkcs12 = "$O/modern.p12"
pkcs12_password_file = "$TW/p12.pw"
group = "$grp"

[[certificate.p12.deploy]]
type = "files"
pkcs12 = "$O/legacy.p12"
pkcs12_password_file = "$TW/p12.pw"
pkcs12_legacy = true
mode = "0600"

[[certificate.p12.deploy]]
type = "files"
pkcs12 = "$O/nopass.p12"
cert = "$O/nopass-cert.pem"

EOF
} >"$TW/certloop.toml"
"$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null || { tw_fail "config invalid"; tw_done; }

timeout 120 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out1" 2>"$TW/err1" ||
  tw_fail "run --once failed: $(grep -E 'error' "$TW/err1" | head -3)"
grep -q '^p12: issued, expires ' "$TW/out1" || tw_fail "summary: $(cat "$TW/out1")"

leaf_fp=$(openssl x509 -in "$O/cert.pem" -noout -fingerprint -sha256)
key_pub=$(tw_pubkey "$O/key.pem")
check_p12() { # FILE LABEL OPENSSL-ARGS...
  local f=$1 label=$2
  shift 2
  [ -s "$f" ] || { tw_fail "$label: $f missing"; return; }
  openssl pkcs12 -in "$f" "$@" -nokeys -clcerts 2>/dev/null >"$TW/$label.leaf" ||
    { tw_fail "$label: does not open"; return; }
  [ "$(openssl x509 -in "$TW/$label.leaf" -noout -fingerprint -sha256)" = "$leaf_fp" ] ||
    tw_fail "$label: leaf is not the issued certificate"
  openssl pkcs12 -in "$f" "$@" -nocerts -nodes 2>/dev/null >"$TW/$label.key"
  [ "$(tw_pubkey "$TW/$label.key")" = "$key_pub" ] || tw_fail "$label: key is not the issued key"
  grep -q "BEGIN CERTIFICATE" <<<"$(openssl pkcs12 -in "$f" "$@" -nokeys -cacerts 2>/dev/null)" ||
    tw_fail "$label: no chain certificate"
  rm -f "$TW/$label.key"
}
check_p12 "$O/modern.p12" modern -passin "file:$TW/p12.pw"
openssl pkcs12 -in "$O/modern.p12" -passin pass:wrong -nokeys >/dev/null 2>&1 &&
  tw_fail "modern: opens with a wrong password"
check_p12 "$O/legacy.p12" legacy -legacy -passin "file:$TW/p12.pw"
# 3DES: OpenSSL 3 without -legacy reports the algorithm as unsupported
openssl pkcs12 -in "$O/legacy.p12" -info -noout -legacy -passin "file:$TW/p12.pw" 2>&1 |
  grep -qi "3DES\|TripleDES\|des-ede3" || tw_fail "legacy: not 3DES-encrypted"
openssl pkcs12 -in "$O/modern.p12" -info -noout -passin "file:$TW/p12.pw" 2>&1 |
  grep -qi "AES-256" || tw_fail "modern: not AES-256-encrypted"
check_p12 "$O/nopass.p12" nopass -passin pass:

# modes and groups
[ "$(tw_mode "$O/modern.p12")" = 640 ] || tw_fail "modern.p12 mode $(tw_mode "$O/modern.p12"), want 640"
[ "$(stat -c %G "$O/modern.p12")" = "$grp" ] || tw_fail "modern.p12 group $(stat -c %G "$O/modern.p12")"
[ "$(tw_mode "$O/legacy.p12")" = 600 ] || tw_fail "legacy.p12 mode $(tw_mode "$O/legacy.p12")"
[ "$(tw_mode "$O/nopass.p12")" = 600 ] || tw_fail "nopass.p12 mode $(tw_mode "$O/nopass.p12")"
[ "$(tw_mode "$O/nopass-cert.pem")" = 644 ] || tw_fail "cert mode $(tw_mode "$O/nopass-cert.pem")"
[ "$(tw_mode "$O/key.pem")" = 600 ] || tw_fail "key.pem mode $(tw_mode "$O/key.pem")"
grep -q . <<<"$(find "$O" \( -name '.tmp-*' -o -name '.bak-*' \))" && tw_fail "temp files left"
tw_done
