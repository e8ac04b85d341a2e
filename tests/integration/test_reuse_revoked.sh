#!/usr/bin/env bash
# Key reuse and revocation state against Pebble 2.4:
# - reuse_key = true: a forced renewal keeps the private key (a new
#   certificate, serial and generation, same key); without it the key changes;
#   `renew --force --new-key` makes a new one;
# - `certloop revoke NAME` records the revocation: plan says REVOKED and
#   `status` says "revoked" while the daemon runs;
# - `revoke --reason keyCompromise --reissue` with the daemon running: the
#   replacement is ordered at once, with a new key despite reuse_key.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init reuse
tw_start || exit 1

{
  tw_config_head 4
  TW_CERT_EXTRA='reuse_key = true' tw_config_cert keep ec-p256 keep.test
  tw_config_cert fresh ec-p256 fresh.test
} >"$TW/certloop.toml"
C=(-c "$TW/certloop.toml")
"$CERTLOOP" check "${C[@]}" >/dev/null || { tw_fail "config invalid"; tw_done; }

pub() { openssl pkey -in "$TW/state/certs/$1/current/key.pem" -pubout 2>/dev/null | sha256sum; }
serial() { openssl x509 -in "$TW/state/certs/$1/current/cert.pem" -noout -serial; }
gen() { readlink "$TW/state/certs/$1/current"; }
status_word() {
  "$CERTLOOP" status "${C[@]}" --json 2>/dev/null | python3 -c '
import json,sys
for c in json.load(sys.stdin)["certificates"]:
    if c["name"] == sys.argv[1]: print(c["state"])' "$1" 2>/dev/null
}

tw_daemon_start "$TW/certloop.toml" "$TW/d.out" "$TW/d.err" 60 \
  test -s "$TW/out/keep/fullchain.pem" -a -s "$TW/out/fresh/fullchain.pem" ||
  tw_fail "first issuance: $(tail -5 "$TW/d.err")"
is_valid() { [ "$(status_word "$1")" = valid ]; }
tw_daemon_wait 20 is_valid keep
tw_daemon_wait 20 is_valid fresh
k1=$(pub keep) s1=$(serial keep) g1=$(gen keep) f1=$(pub fresh)

# forced renewals: keep keeps its key, fresh does not
"$CERTLOOP" renew keep fresh --force "${C[@]}" >/dev/null 2>&1 || tw_fail "renew --force"
renewed() { [ "$(gen keep)" != "$g1" ] && [ "$(pub fresh)" != "$f1" ] && is_valid keep && is_valid fresh; }
tw_daemon_wait 60 renewed || tw_fail "forced renewals did not finish: $(tail -5 "$TW/d.err")"
[ "$(pub keep)" = "$k1" ] || tw_fail "reuse_key: the key changed"
[ "$(serial keep)" != "$s1" ] || tw_fail "reuse_key: no new certificate"
grep -q "cert=keep: reusing the stored key (reuse_key)" "$TW/d.err" || tw_fail "no reuse log line"
[ "$(pub fresh)" != "$f1" ] || tw_fail "without reuse_key the key was kept"

# renew --force --new-key: a new key despite reuse_key, then reused again
g3=$(gen keep)
"$CERTLOOP" renew keep --force --new-key "${C[@]}" >/dev/null 2>&1 || tw_fail "renew --new-key"
newkeyed() { [ "$(gen keep)" != "$g3" ] && is_valid keep; }
tw_daemon_wait 60 newkeyed || tw_fail "renew --new-key did not finish"
[ "$(pub keep)" != "$k1" ] || tw_fail "--new-key kept the key"
grep -q "cert=keep: reuse_key: a new key (renew --new-key)" "$TW/d.err" || tw_fail "no --new-key log line"
out=$("$CERTLOOP" renew keep --new-key "${C[@]}" 2>&1)
[ $? = 64 ] || tw_fail "--new-key without --force: $out"

# revoke without --reissue: shown as revoked by status and plan
out=$("$CERTLOOP" revoke fresh --reason superseded "${C[@]}" 2>&1) || tw_fail "revoke: $out"
[ "$(status_word fresh)" = revoked ] || tw_fail "status after revoke: $(status_word fresh)"
grep -q "REVOKED (superseded)" <<<"$("$CERTLOOP" plan "${C[@]}" fresh 2>&1)" ||
  tw_fail "plan: $("$CERTLOOP" plan "${C[@]}" fresh 2>&1)"

# keyCompromise + --reissue: replaced at once, with a new key despite reuse_key
k2=$(pub keep) g2=$(gen keep)
out=$("$CERTLOOP" revoke keep --reason keyCompromise --reissue "${C[@]}" 2>&1) || tw_fail "revoke --reissue: $out"
grep -q "the daemon orders the replacement now" <<<"$out" || tw_fail "reissue output: $out"
replaced() { [ "$(gen keep)" != "$g2" ] && is_valid keep; }
tw_daemon_wait 60 replaced || tw_fail "no replacement after --reissue: $(tail -5 "$TW/d.err")"
[ "$(pub keep)" != "$k2" ] || tw_fail "keyCompromise: the compromised key was reused"
grep -q "cert=keep: reuse_key: a new key: the certificate was revoked for keyCompromise" "$TW/d.err" ||
  tw_fail "no keyCompromise log line"
[ "$(status_word keep)" = valid ] || tw_fail "status of the replacement: $(status_word keep)"

tw_daemon_stop
tw_done
