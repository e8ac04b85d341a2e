#!/usr/bin/env bash
# Alternate chains (RFC 8555 §7.4.2, Link: rel="alternate"): with Pebble
# offering a second root, `preferred_chain` = that root's CN deploys the
# alternate chain (it verifies against root 1, not root 0); without it, or
# with a CN that matches nothing, the default chain is deployed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init chains
PEBBLE_ALTERNATE_ROOTS=1 tw_start || exit 1
cn1=$(openssl x509 -in "$TW/root-1.pem" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= //p')
cn0=$(openssl x509 -in "$TW/root.pem" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= //p')
tw_log "roots: '$cn0' (default), '$cn1' (alternate)"
[ -n "$cn1" ] && [ "$cn1" != "$cn0" ] || tw_fail "no distinct alternate root"

write_conf() { # PREFERRED: [ca.pebble] is the last table of the head, so the key lands there
  tw_config_head 8
  if [ -n "$1" ]; then echo "preferred_chain = \"$1\""; echo; fi
  tw_config_cert alt ec-p256 alt.test
  tw_config_cert other rsa2048 other.test
}
write_conf "$cn1" >"$TW/certloop.toml"
timeout 120 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
[ "$rc" = 0 ] || { tw_fail "run exited $rc"; grep ' error ' "$TW/err.txt" >&2; }

verify_with() { # ROOT FULLCHAIN
  local dir
  dir=$(mktemp -d "$TW/v-XXXXXX")
  awk -v d="$dir" '/BEGIN CERTIFICATE/{n++} {print > (d "/c" n ".pem")}' "$2"
  cat "$dir"/c[2-9].pem >"$dir/rest.pem"
  openssl verify -CAfile "$1" -untrusted "$dir/rest.pem" "$dir/c1.pem" >/dev/null 2>&1
}
for n in alt other; do
  f="$TW/out/$n/fullchain.pem"
  [ -s "$f" ] || { tw_fail "$n: not deployed"; continue; }
  verify_with "$TW/root-1.pem" "$f" || tw_fail "$n: preferred chain does not verify against root 1"
  if verify_with "$TW/root.pem" "$f"; then tw_fail "$n: got the default chain, not the preferred one"; fi
  tw_check_pair "$f" "$TW/out/$n/key.pem" || tw_fail "$n: key mismatch"
done

# No preference (and an unknown one): the default chain.
rm -rf "$TW/state/certs" "$TW/out"
write_conf "" >"$TW/certloop.toml"
timeout 120 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out2.txt" 2>"$TW/err2.txt" ||
  tw_fail "second run failed"
verify_with "$TW/root.pem" "$TW/out/alt/fullchain.pem" || tw_fail "default chain does not verify against root 0"
rm -rf "$TW/state/certs" "$TW/out"
write_conf "No Such CA" >"$TW/certloop.toml"
timeout 120 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out3.txt" 2>"$TW/err3.txt" ||
  tw_fail "third run failed"
verify_with "$TW/root.pem" "$TW/out/alt/fullchain.pem" || tw_fail "unmatched preference: default chain expected"
tw_done
