# dns-01 solvers against Knot DNS on loopback, through dns01-tool (which
# calls challenge.h's chal_dns01_present/cleanup/wait_start):
# - rfc2136 present adds a TXT that the primary serves; two values under one
#   name coexist; cleanup removes exactly one;
# - a wrong TSIG secret (BADSIG) or key name (BADKEY) gives an error that
#   says what to fix, and leaves nothing behind; a BIND key file works;
#   hmac-sha384 works (its own key on Knot);
# - propagation: servers found through NS (127.0.0.1 and 127.0.0.2; ::1,
#   where nothing listens, is skipped because ns1's other address has it), the
#   wait succeeds when both have the value, keeps waiting while the
#   secondary lags and succeeds once it catches up, and times out with a
#   per-server report when it never does; `nameservers` overrides NS;
# - CNAME delegation: _acme-challenge.b.test -> b.acme-dns.test;
# - exec: the program gets `present|cleanup FQDN. VALUE`, a failing one's
#   output ends up in the error, a slow one is killed at the timeout.
set -u
. "$(dirname "$0")/knot.sh"

BUILD_DIR=${BUILD_DIR:-build}
TOOL=$BUILD_DIR/dns01-tool
[ -x "$TOOL" ] || { echo "no $TOOL" >&2; exit 1; }
FAILS=0

fail() {
  echo "FAIL: $*" >&2
  FAILS=$((FAILS + 1))
}

ok() {
  echo "ok: $*" >&2
}

knot_init dns01
knot_start || exit 1
knot_start_secondary || exit 1
P=$KNOT_PORT
A=127.0.0.1
RFC=(--server "$A:$P" --key-name acme-key. --key-file "$KW/tsig.secret" --resolver "$A:$P")
WAIT=(--resolver "$A:$P" --ns-port "$P" --poll-interval 1)
N=_acme-challenge.a.test

# 1. present: the primary serves it.
out=$("$TOOL" present --name "$N" --value valueOne "${RFC[@]}" 2>"$KW/err") ||
  fail "present: $(cat "$KW/err")"
[ "$(knot_txt $A $N)" = valueOne ] && ok "present" || fail "present: primary has '$(knot_txt $A $N)'"
grep -q "^TXT added via $A:$P (zone test., key acme-key.)$" <<<"$out" ||
  fail "present detail: $out"

# 2. a second value under the same name (wildcard + apex) keeps the first.
"$TOOL" present --name "$N" --value valueTwo "${RFC[@]}" >/dev/null 2>"$KW/err" ||
  fail "present 2: $(cat "$KW/err")"
[ "$(knot_txt $A $N | tr '\n' ' ')" = "valueOne valueTwo " ] && ok "two values" ||
  fail "two values: '$(knot_txt $A $N | tr '\n' ' ')'"

# 3. propagation: the secondary lags (no NOTIFY, refresh in an hour).
start=$(date +%s)
"$TOOL" wait --name "$N" --value valueTwo "${WAIT[@]}" --propagation-timeout 20 \
  >"$KW/wait.out" 2>"$KW/wait.err" &
wpid=$!
sleep 3
kill -0 $wpid 2>/dev/null && ok "wait still waiting while the secondary lags" ||
  fail "wait ended before the secondary had the value: $(cat "$KW/wait.out")"
knot_sync || fail "knot_sync"
if wait $wpid; then
  took=$(($(date +%s) - start))
  ok "wait succeeded after the secondary caught up (${took}s)"
  for want in "$A:$P has it" "127.0.0.2:$P has it" \
    "[::1]:$P cannot be reached from here (skipped: ns1.test. has it on another address)"; do
    grep -qF "$want" "$KW/wait.out" || fail "wait report lacks '$want': $(cat "$KW/wait.out")"
  done
  [ "$took" -lt 15 ] || fail "wait took ${took}s"
else
  fail "wait: $(cat "$KW/wait.out" "$KW/wait.err")"
fi

# 4. never propagated: timeout with the per-server report.
"$TOOL" present --name _acme-challenge.c.test --value valueThree "${RFC[@]}" >/dev/null 2>&1 ||
  fail "present c"
start=$(date +%s)
if out=$("$TOOL" wait --name _acme-challenge.c.test --value valueThree "${WAIT[@]}" \
  --propagation-timeout 3 2>"$KW/err"); then
  fail "wait for a value the secondary never gets succeeded: $out"
else
  took=$(($(date +%s) - start))
  grep -q "dns01-tool: timed out" "$KW/err" || fail "timeout status: $(cat "$KW/err")"
  grep -Eq "^not on every authoritative server after 3s: .*\(waited [3-5] s\)$" <<<"$out" &&
    grep -qF "$A:$P has it" <<<"$out" &&
    grep -qF "127.0.0.2:$P answers without TXT records" <<<"$out" &&
    ok "timeout report: $out" || fail "timeout report: $out"
  [ "$took" -ge 3 ] && [ "$took" -le 7 ] || fail "timeout took ${took}s"
fi

# 5. nameservers instead of NS: only the primary is asked.
out=$("$TOOL" wait --name _acme-challenge.c.test --value valueThree --resolver "$A:$P" \
  --nameserver "$A:$P" --propagation-timeout 5 2>/dev/null) &&
  grep -q "^every server has it: $A:$P has it (waited 0 s)$" <<<"$out" &&
  ok "nameservers override" || fail "nameservers override: $out"

# 6. cleanup removes exactly one value.
"$TOOL" cleanup --name "$N" --value valueOne "${RFC[@]}" >/dev/null 2>"$KW/err" ||
  fail "cleanup: $(cat "$KW/err")"
[ "$(knot_txt $A $N)" = valueTwo ] && ok "cleanup removed one value" ||
  fail "after cleanup: '$(knot_txt $A $N | tr '\n' ' ')'"

# 7. wrong secret: BADSIG, nothing written.
head -c 32 /dev/urandom | base64 >"$KW/wrong.secret"
if out=$("$TOOL" present --name _acme-challenge.d.test --value bad "${RFC[@]}" \
  --key-file "$KW/wrong.secret" 2>/dev/null); then
  fail "a wrong secret was accepted"
else
  grep -q "NOTAUTH/BADSIG: the server knows key 'acme-key.' but the signature does not verify" \
    <<<"$out" && ok "BADSIG: $out" || fail "BADSIG message: $out"
fi
[ -z "$(knot_txt $A _acme-challenge.d.test)" ] || fail "a rejected update left a record"

# 8. unknown key name: BADKEY.
sed 's/acme-key\./other-key./' "$KW/tsig.key" >"$KW/other.key"
if out=$("$TOOL" present --name _acme-challenge.d.test --value bad "${RFC[@]}" \
  --key-name other-key. --key-file "$KW/other.key" 2>/dev/null); then
  fail "an unknown key was accepted"
else
  grep -q "NOTAUTH/BADKEY: the server does not know key 'other-key.'" <<<"$out" &&
    ok "BADKEY: $out" || fail "BADKEY message: $out"
fi
[ -z "$(knot_txt $A _acme-challenge.d.test)" ] || fail "a rejected update left a record"

# 9. BIND key file + CNAME delegation: the record goes to the CNAME target.
out=$("$TOOL" present --name _acme-challenge.b.test --value delegated "${RFC[@]}" \
  --key-file "$KW/tsig.key" 2>"$KW/err") || fail "present via CNAME: $(cat "$KW/err")"
grep -q "^fqdn=b.acme-dns.test. zone=test.$" "$KW/err" || fail "CNAME target/zone: $(cat "$KW/err")"
[ "$(knot_txt $A b.acme-dns.test)" = delegated ] && ok "CNAME delegation: $out" ||
  fail "CNAME target has '$(knot_txt $A b.acme-dns.test)': $out"
knot_sync
out=$("$TOOL" wait --name _acme-challenge.b.test --value delegated "${WAIT[@]}" \
  --propagation-timeout 5 2>/dev/null) && ok "wait via CNAME: $out" || fail "wait via CNAME: $out"
"$TOOL" cleanup --name _acme-challenge.b.test --value delegated "${RFC[@]}" >/dev/null 2>&1 &&
  [ -z "$(knot_txt $A b.acme-dns.test)" ] && ok "cleanup via CNAME" || fail "cleanup via CNAME"

# 10. an explicit zone is used as is (no SOA lookup needed).
"$TOOL" present --name "$N" --value valueZone "${RFC[@]}" --zone test. >/dev/null 2>&1 &&
  grep -qx valueZone <<<"$(knot_txt $A $N)" && ok "explicit zone" || fail "explicit zone"

# 10b. TSIG hmac-sha384 (regression: ldns 1.8.3 knows it only as
# "hmac-shac384.", every update failed with "TSIG sign: Unknown cryptographic
# algorithm"): Knot accepts the update and its signed reply verifies.
R384=(--server "$A:$P" --key-name acme-key384. --algorithm hmac-sha384
  --key-file "$KW/tsig384.secret" --resolver "$A:$P")
out=$("$TOOL" present --name _acme-challenge.h.test --value v384 "${R384[@]}" 2>"$KW/err") &&
  [ "$(knot_txt $A _acme-challenge.h.test)" = v384 ] && ok "hmac-sha384 present: $out" ||
  fail "hmac-sha384 present: $out $(cat "$KW/err")"
"$TOOL" cleanup --name _acme-challenge.h.test --value v384 "${R384[@]}" >/dev/null 2>"$KW/err" &&
  [ -z "$(knot_txt $A _acme-challenge.h.test)" ] && ok "hmac-sha384 cleanup" ||
  fail "hmac-sha384 cleanup: $(cat "$KW/err")"
head -c 48 /dev/urandom | base64 -w0 >"$KW/wrong384.secret"
if out=$("$TOOL" present --name _acme-challenge.h.test --value bad "${R384[@]}" \
  --key-file "$KW/wrong384.secret" 2>/dev/null); then
  fail "hmac-sha384: a wrong secret was accepted"
else
  grep -q "BADSIG" <<<"$out" && ok "hmac-sha384 BADSIG" || fail "hmac-sha384 BADSIG: $out"
fi

# 11. exec: lego's convention, argv only.
cat >"$KW/hook.sh" <<EOF
#!/bin/sh
printf '%s|' "\$@" >> "$KW/hook.log"
echo "\$CERTLOOP_DNS_ACTION" >> "$KW/hook.log"
[ "\$3" = fail ] && { echo "zone API said: permission denied" >&2; exit 3; }
[ "\$3" = slow ] && exec sleep 30
exit 0
EOF
chmod +x "$KW/hook.sh"
"$TOOL" present --name "$N" --value 'exec value' --exec "$KW/hook.sh" --resolver "$A:$P" \
  >/dev/null 2>"$KW/err" || fail "exec present: $(cat "$KW/err")"
"$TOOL" cleanup --name _acme-challenge.b.test --value v2 --exec "$KW/hook.sh" \
  --resolver "$A:$P" >/dev/null 2>"$KW/err" || fail "exec cleanup: $(cat "$KW/err")"
printf '%s\n' "present|$N.|exec value|present" "cleanup|b.acme-dns.test.|v2|cleanup" >"$KW/want"
diff "$KW/want" "$KW/hook.log" >&2 && ok "exec argv" || fail "exec argv"
out=$("$TOOL" present --name "$N" --value fail --exec "$KW/hook.sh" --resolver "$A:$P" \
  2>"$KW/err") && fail "a failing hook succeeded"
grep -q "hook.sh present failed (non-zero exit): zone API said: permission denied" <<<"$out" &&
  ok "exec failure: $out" || fail "exec failure message: $out"
start=$(date +%s)
out=$("$TOOL" present --name "$N" --value slow --exec "$KW/hook.sh" --timeout 1 \
  --resolver "$A:$P" 2>"$KW/err") && fail "a hanging hook succeeded"
took=$(($(date +%s) - start))
grep -q "timed out" <<<"$out" && [ "$took" -le 5 ] && ok "exec timeout (${took}s)" ||
  fail "exec timeout: $out (${took}s)"

# 12. a server that is down is named in the report.
kill "${KNOT_PIDS[1]}" && wait "${KNOT_PIDS[1]}" 2>/dev/null
out=$("$TOOL" wait --name "$N" --value valueTwo "${WAIT[@]}" --propagation-timeout 2 2>/dev/null) &&
  fail "wait succeeded with the secondary down: $out"
grep -qF "127.0.0.2:$P cannot be reached (connection refused or no route)" <<<"$out" &&
  ok "server down: $out" || fail "server down report: $out"

if [ "$FAILS" -gt 0 ]; then
  echo "$FAILS failure(s)" >&2
  exit 1
fi
echo "all dns-01 solver checks passed" >&2
