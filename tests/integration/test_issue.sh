#!/usr/bin/env bash
# `certloop run --once` issues 50 certificates at once from Pebble: one with
# 10 names, every key type. Each deployed fullchain verifies against
# Pebble's root, each deployed key is the certificate's key, the SANs are the
# configured names, the key types are right, the exec deploy ran with the
# CERTLOOP_*/RENEWED_* variables, file modes are right, no order file is
# left behind, and a second run finds nothing due.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init issue
tw_start || exit 1

N=50
types=(ec-p256 ec-p384 rsa2048 rsa3072 rsa4096)

cat >"$TW/hook.sh" <<'EOF'
#!/bin/sh
env | grep -E '^(CERTLOOP_|RENEWED_)' | sort > "$HOOK_OUT/$CERTLOOP_NAME.env"
EOF
chmod 755 "$TW/hook.sh"
mkdir -p "$TW/hooks"

declare -A NAMES KEYTYPE
{
  tw_config_head 64
  for ((i = 0; i < N; i++)); do
    name=$(printf 'c%02d' "$i")
    # every key type twice, then EC (RSA key generation is CPU-bound)
    if [ "$i" -lt 10 ]; then kt=${types[$((i % 5))]}; else kt=${types[$((i % 2))]}; fi
    if [ "$i" = 0 ]; then
      doms=()
      for ((j = 0; j < 10; j++)); do doms+=("n$j.$name.test"); done
    else
      doms=("$name.test" "www.$name.test")
    fi
    NAMES[$name]="${doms[*]}"
    KEYTYPE[$name]=$kt
    tw_config_cert "$name" "$kt" "${doms[@]}"
    if [ "$i" = 1 ]; then
      echo 'mode = "0640"'
      echo
    fi
    cat <<EOF
[[certificate.$name.deploy]]
type = "exec"
command = ["/usr/bin/env", "HOOK_OUT=$TW/hooks", "$TW/hook.sh"]
per_certificate = true

EOF
  done
} >"$TW/certloop.toml"

"$CERTLOOP" check -c "$TW/certloop.toml" || { tw_fail "config invalid"; tw_done; }

start=$(date +%s.%N)
timeout 300 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
end=$(date +%s.%N)
tw_log "run --once: exit $rc in $(echo "$end - $start" | bc) s"
if [ "$rc" != 0 ]; then
  tw_fail "run --once exited $rc"
  grep -E "error|warn" "$TW/err.txt" | head -20 >&2
fi
issued=$(grep -c ': issued, expires ' "$TW/out.txt")
[ "$issued" = "$N" ] || tw_fail "summary says $issued issued, expected $N"
[ "$(wc -l <"$TW/out.txt")" = "$N" ] || tw_fail "summary is not one line per certificate"

keytype_ok() { # FILE TYPE
  local t
  t=$(openssl pkey -in "$1" -noout -text 2>/dev/null)
  case $2 in
  ec-p256) grep -q 'ASN1 OID: prime256v1' <<<"$t" ;;
  ec-p384) grep -q 'ASN1 OID: secp384r1' <<<"$t" ;;
  rsa2048) grep -q '(2048 bit' <<<"$t" ;;
  rsa3072) grep -q '(3072 bit' <<<"$t" ;;
  rsa4096) grep -q '(4096 bit' <<<"$t" ;;
  esac
}

for ((i = 0; i < N; i++)); do
  name=$(printf 'c%02d' "$i")
  out="$TW/out/$name"
  if [ ! -s "$out/fullchain.pem" ] || [ ! -s "$out/key.pem" ]; then
    tw_fail "$name: files not deployed"
    continue
  fi
  tw_verify_fullchain "$out/fullchain.pem" || tw_fail "$name: fullchain does not verify"
  tw_check_pair "$out/fullchain.pem" "$out/key.pem" || tw_fail "$name: key does not match"
  tw_check_pair "$out/cert.pem" "$out/key.pem" || tw_fail "$name: cert.pem does not match key"
  keytype_ok "$out/key.pem" "${KEYTYPE[$name]}" || tw_fail "$name: key is not ${KEYTYPE[$name]}"
  want=$(tr ' ' '\n' <<<"${NAMES[$name]}" | sort)
  got=$(tw_sans "$out/cert.pem")
  [ "$want" = "$got" ] || tw_fail "$name: SANs differ: $(echo $got)"
  # chain.pem + cert.pem = fullchain.pem
  [ "$(cat "$out/cert.pem" "$out/chain.pem")" = "$(cat "$out/fullchain.pem")" ] ||
    tw_fail "$name: cert + chain is not the fullchain"
  # the stored generation matches too
  cur="$TW/state/certs/$name/current"
  tw_check_pair "$cur/cert.pem" "$cur/key.pem" || tw_fail "$name: stored pair mismatched"
  grep -q "\"not_after\"" "$cur/meta.json" || tw_fail "$name: meta.json lacks not_after"
  # modes
  if [ "$i" = 1 ]; then
    for f in cert chain fullchain key; do
      [ "$(tw_mode "$out/$f.pem")" = 640 ] || tw_fail "$name: $f.pem mode $(tw_mode "$out/$f.pem"), want 640"
    done
  else
    [ "$(tw_mode "$out/key.pem")" = 600 ] || tw_fail "$name: key mode $(tw_mode "$out/key.pem"), want 600"
    [ "$(tw_mode "$out/fullchain.pem")" = 644 ] || tw_fail "$name: fullchain mode $(tw_mode "$out/fullchain.pem"), want 644"
  fi
  [ "$(tw_mode "$cur/key.pem")" = 600 ] || tw_fail "$name: stored key mode $(tw_mode "$cur/key.pem")"
  # the exec deploy ran with the variables
  env="$TW/hooks/$name.env"
  if [ ! -s "$env" ]; then
    tw_fail "$name: exec deploy did not run"
  else
    grep -qx "CERTLOOP_NAME=$name" "$env" || tw_fail "$name: CERTLOOP_NAME missing"
    grep -qx "CERTLOOP_DOMAINS=${NAMES[$name]}" "$env" || tw_fail "$name: CERTLOOP_DOMAINS wrong: $(grep DOMAINS "$env")"
    grep -qx "RENEWED_DOMAINS=${NAMES[$name]}" "$env" || tw_fail "$name: RENEWED_DOMAINS wrong"
    lin=$(sed -n 's/^RENEWED_LINEAGE=//p' "$env")
    [ -n "$lin" ] && [ -e "$lin" ] || tw_fail "$name: RENEWED_LINEAGE missing or not a directory: $lin"
    grep -q "^CERTLOOP_EVENT=" "$env" || tw_fail "$name: CERTLOOP_EVENT missing"
  fi
done

# no order left in flight
if [ -n "$(ls -A "$TW/state/orders" 2>/dev/null)" ]; then
  tw_fail "order files left: $(ls "$TW/state/orders")"
fi
# the account key is private
[ "$(tw_mode "$TW/state/accounts/pebble/account.key")" = 600 ] || tw_fail "account key mode"

# A second run: nothing is due, nothing is ordered.
timeout 60 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out2.txt" 2>"$TW/err2.txt"
rc=$?
[ "$rc" = 0 ] || tw_fail "second run exited $rc"
ok=$(grep -c ': ok, valid until .*, renewal ' "$TW/out2.txt")
[ "$ok" = "$N" ] || tw_fail "second run: $ok ok lines, expected $N"
if grep -q "issued cert=" "$TW/err2.txt"; then
  tw_fail "second run issued again"
fi

tw_done
