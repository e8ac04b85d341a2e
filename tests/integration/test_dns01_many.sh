#!/usr/bin/env bash
# dns-01 at scale: 20 certificates under one zone (test.), two names each
# (every fourth one a wildcard + apex pair), issued by one `run --once`
# through RFC 2136 updates to Knot. Every chain verifies against Pebble's
# root, every key matches, and the zone holds no _acme-challenge TXT record
# afterwards (checked with a full AXFR).
# Then a wrong TSIG secret: run --once exits 1, the error names BADSIG or
# NOTAUTH and the setting to fix, and nothing is left behind (no TXT record,
# nothing deployed, no certificate stored).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/knot.sh"

N=20
tw_knot_start dns01many

# The names of certificate i: *.wI.test + wI.test when i % 4 == 0, else
# aI.test + www.aI.test.
names_of() {
  if [ $(($1 % 4)) = 0 ]; then
    echo "*.w$1.test w$1.test"
  else
    echo "a$1.test www.a$1.test"
  fi
}

EXTRA=$TW_KNOT_DNS01
{
  tw_knot_config_head 32
  for ((i = 0; i < N; i++)); do
    # shellcheck disable=SC2046
    TW_CERT_EXTRA=$EXTRA tw_config_cert "c$i" ec-p256 $(names_of "$i")
  done
} >"$TW/certloop.toml"
"$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null 2>"$TW/check.txt" ||
  { tw_fail "config invalid: $(cat "$TW/check.txt")"; tw_done; }

start=$(date +%s.%N)
timeout 300 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
tw_log "run --once for $N dns-01 certificates: exit $rc in $(echo "$(date +%s.%N) - $start" | bc) s"
[ "$rc" = 0 ] || { tw_fail "run --once exited $rc"; grep -E ' (error|warn) ' "$TW/err.txt" | head >&2; }
ok=0
for ((i = 0; i < N; i++)); do
  f="$TW/out/c$i/fullchain.pem"
  [ -s "$f" ] || { tw_fail "c$i: not deployed"; continue; }
  tw_verify_fullchain "$f" || { tw_fail "c$i: chain does not verify"; continue; }
  tw_check_pair "$f" "$TW/out/c$i/key.pem" || { tw_fail "c$i: key mismatch"; continue; }
  want=$(names_of "$i" | tr ' ' '\n' | sort | tr '\n' ' ')
  got=$(tw_sans "$TW/out/c$i/cert.pem" | sort | tr '\n' ' ')
  [ "$got" = "$want" ] || { tw_fail "c$i: SANs '$got', want '$want'"; continue; }
  ok=$((ok + 1))
done
[ "$ok" = "$N" ] && tw_log "all $N certificates verify, keys match, SANs right"
left=$(knot_acme_txt)
[ -z "$left" ] || tw_fail "_acme-challenge TXT left in the zone: $(head -5 <<<"$left")"
# and per name, in case a record sits outside what AXFR showed
for ((i = 0; i < N; i++)); do
  for name in $(names_of "$i"); do
    name=${name#\*.}
    v=$(kdig @127.0.0.1 -p "$KNOT_PORT" +short "_acme-challenge.$name" TXT 2>/dev/null)
    [ -z "$v" ] || tw_fail "TXT left at _acme-challenge.$name: $v"
  done
done

# --- a wrong TSIG secret -------------------------------------------------
head -c 32 /dev/urandom | base64 >"$KW/wrong.secret"
chmod 600 "$KW/wrong.secret"
serial0=$(knot_serial 127.0.0.1)
mkdir -p "$TW/state-bad"
{
  tw_knot_config_head 8 "$KW/wrong.secret" | sed -e "s|^state_dir = .*|state_dir = \"$TW/state-bad\"|" \
    -e "s|^control_socket = .*|control_socket = \"$TW/control-bad.sock\"|"
  TW_CERT_EXTRA=$EXTRA tw_config_cert badw ec-p256 "*.bad.test" bad.test
  TW_CERT_EXTRA=$EXTRA tw_config_cert bada ec-p256 bad1.test
} >"$TW/bad.toml"
"$CERTLOOP" check -c "$TW/bad.toml" >/dev/null 2>"$TW/check-bad.txt" ||
  { tw_fail "bad config invalid: $(cat "$TW/check-bad.txt")"; tw_done; }
timeout 120 "$CERTLOOP" run --once -c "$TW/bad.toml" >"$TW/out-bad.txt" 2>"$TW/err-bad.txt"
rc=$?
[ "$rc" = 1 ] || tw_fail "wrong TSIG secret: run --once exited $rc, want 1"
errs=$(grep -E ' error ' "$TW/err-bad.txt")
grep -qE 'BADSIG|NOTAUTH' <<<"$errs" ||
  tw_fail "wrong TSIG secret: no error line names BADSIG/NOTAUTH: $(head -3 <<<"$errs")"
grep -qiE 'tsig|secret' <<<"$errs" ||
  tw_fail "wrong TSIG secret: the error does not say to check the TSIG key/secret: $(head -3 <<<"$errs")"
tw_log "wrong TSIG secret, first error: $(grep -E 'BADSIG|NOTAUTH' <<<"$errs" | head -1)"
for n in badw bada; do
  [ -z "$(ls -A "$TW/out/$n")" ] || tw_fail "$n: something was deployed: $(ls "$TW/out/$n")"
done
stored=$(find "$TW/state-bad" -type f \( -name '*.pem' -o -name '*cert*' \) 2>/dev/null |
  xargs -r grep -l 'BEGIN CERTIFICATE' 2>/dev/null)
[ -z "$stored" ] || tw_fail "wrong TSIG secret: a certificate was stored: $stored"
left=$(knot_acme_txt)
[ -z "$left" ] || tw_fail "wrong TSIG secret: TXT in the zone: $(head -5 <<<"$left")"
[ "$(knot_serial 127.0.0.1)" = "$serial0" ] ||
  tw_fail "wrong TSIG secret: the zone changed (serial $serial0 -> $(knot_serial 127.0.0.1))"
tw_done
