#!/usr/bin/env bash
# `certloop account show|update|rollover|deactivate CA` against Pebble 2.4
# (RFC 8555 §7.3.2 update, §7.3.5 keyChange, §7.3.6 deactivation):
# - show prints the account's status and contacts, never registers one
#   (69 before the first order);
# - update pushes contacts changed in the configuration, and so does the
#   daemon by itself (account.json records what the CA has);
# - rollover: a new key, stored as account.key.next first, becomes
#   account.key once the CA agreed; the same account URL keeps ordering;
#   a .next key left by an interrupted rollover is used again;
# - deactivate refuses without --yes (64); with it the CA refuses the old
#   account and the next order registers a new account.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init account
tw_start || exit 1

config() {
  tw_config_head 64 | sed "s|^contact = .*|contact = [\"$1\"]|"
  tw_config_cert a ec-p256 a.test
}
config mailto:ops@example.org >"$TW/certloop.toml"
C=(-c "$TW/certloop.toml")
ACC=$TW/state/accounts/pebble

out=$("$CERTLOOP" account show pebble "${C[@]}" 2>&1)
[ $? = 69 ] || tw_fail "show without an account: $out"
[ -e "$ACC/account.key" ] && tw_fail "show registered an account"

timeout 120 "$CERTLOOP" run --once "${C[@]}" >/dev/null 2>"$TW/err1" || tw_fail "first run: $(tail -3 "$TW/err1")"
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$ACC/account.json")

out=$("$CERTLOOP" account show pebble "${C[@]}" 2>&1) || tw_fail "show: $out"
grep -q "status: *valid" <<<"$out" && grep -q "contact: *mailto:ops@example.org" <<<"$out" &&
  grep -qF "$url" <<<"$out" || tw_fail "show output: $out"

# update: the configured contacts go to the CA
config mailto:new@example.org >"$TW/certloop.toml"
out=$("$CERTLOOP" account update pebble "${C[@]}" 2>&1) || tw_fail "update: $out"
out=$("$CERTLOOP" account show pebble "${C[@]}" 2>&1)
grep -q "contact: *mailto:new@example.org" <<<"$out" || tw_fail "contact not updated: $out"

# a contact changed in the configuration is pushed by the daemon itself
config mailto:auto@example.org >"$TW/certloop.toml"
rm -rf "$TW/state/certs/a"
timeout 120 "$CERTLOOP" run --once "${C[@]}" >/dev/null 2>"$TW/errc" || tw_fail "run: $(tail -3 "$TW/errc")"
grep -q "account contacts updated at the CA" "$TW/errc" || tw_fail "no contact push: $(cat "$TW/errc")"
out=$("$CERTLOOP" account show pebble "${C[@]}" 2>&1)
grep -q "contact: *mailto:auto@example.org" <<<"$out" || tw_fail "contact not pushed: $out"
timeout 120 "$CERTLOOP" run --once "${C[@]}" >/dev/null 2>"$TW/errc2"
grep -q "account contacts updated" "$TW/errc2" && tw_fail "contacts pushed again unchanged"

# rollover
old=$(openssl pkey -in "$ACC/account.key" -pubout 2>/dev/null)
out=$("$CERTLOOP" account rollover pebble "${C[@]}" 2>&1) || tw_fail "rollover: $out"
new=$(openssl pkey -in "$ACC/account.key" -pubout 2>/dev/null)
[ -n "$new" ] && [ "$old" != "$new" ] || tw_fail "account.key unchanged after rollover"
[ -e "$ACC/account.key.next" ] && tw_fail "account.key.next left behind"
grep -q "rolled over" <<<"$out" || tw_fail "rollover output: $out"
out=$("$CERTLOOP" account show pebble "${C[@]}" 2>&1) || tw_fail "show with the new key: $out"
rm -rf "$TW/state/certs/a"
timeout 120 "$CERTLOOP" run --once "${C[@]}" >/dev/null 2>"$TW/err2" || tw_fail "order after rollover: $(tail -3 "$TW/err2")"
url2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$ACC/account.json")
[ "$url" = "$url2" ] || tw_fail "a new account was registered after the rollover ($url -> $url2)"
grep -q "registered" "$TW/err2" && tw_fail "run after rollover registered an account"

# an interrupted rollover: the stored .next key is used again
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$ACC/account.key.next" 2>/dev/null
chmod 600 "$ACC/account.key.next"
want=$(openssl pkey -in "$ACC/account.key.next" -pubout 2>/dev/null)
out=$("$CERTLOOP" account rollover pebble "${C[@]}" 2>&1) || tw_fail "resumed rollover: $out"
grep -q "interrupted rollover" <<<"$out" || tw_fail "resumed rollover output: $out"
[ "$(openssl pkey -in "$ACC/account.key" -pubout 2>/dev/null)" = "$want" ] ||
  tw_fail "the interrupted rollover's key was not used"

# deactivate
out=$("$CERTLOOP" account deactivate pebble "${C[@]}" 2>&1)
[ $? = 64 ] && grep -q "without --yes" <<<"$out" || tw_fail "deactivate without --yes: $out"
cp "$ACC/account.key" "$TW/deactivated.key"
out=$("$CERTLOOP" account deactivate pebble --yes "${C[@]}" 2>&1) || tw_fail "deactivate: $out"
[ -e "$ACC/account.key" ] && tw_fail "account.key still in place after deactivation"
ls "$ACC"/account.key.deactivated-* >/dev/null 2>&1 || tw_fail "deactivated key not kept"
# the CA refuses the deactivated account (put back, show fails)
cp "$TW/deactivated.key" "$ACC/account.key"
cp "$(ls "$ACC"/account.json.deactivated-* | head -1)" "$ACC/account.json"
out=$("$CERTLOOP" account show pebble "${C[@]}" 2>&1) && tw_fail "the CA still accepts the deactivated account: $out"
rm -f "$ACC/account.key" "$ACC/account.json"
rm -rf "$TW/state/certs/a"
timeout 120 "$CERTLOOP" run --once "${C[@]}" >/dev/null 2>"$TW/err3" || tw_fail "order after deactivation: $(tail -3 "$TW/err3")"
url3=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$ACC/account.json")
[ "$url3" != "$url" ] || tw_fail "no new account after deactivation"

tw_done
