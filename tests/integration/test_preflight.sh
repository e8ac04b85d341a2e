#!/usr/bin/env bash
# certloop test NAME: pre-flight checks without ordering. Names resolve
# through Knot (zone test., "* A 127.0.0.1"), Pebble only serves the
# directory (no caaIdentities). An http-01 certificate passes with a
# temporary listener; a listener on an address its names do not resolve to
# fails with a clear line; with the daemon running, its listener is found
# reachable; a dns-01 certificate passes through the rfc2136 solver and
# leaves no TXT record behind; CAA records (added through knotc) are
# climbed and matched against a CA's caaIdentities, with RFC 8657's
# accounturi (the state directory's account) and validationmethods (the
# challenge in use) on the property naming the CA; usage and configuration
# errors exit 64/78.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/knot.sh"

tw_knot_start preflight

# config LISTEN: the whole configuration with [http01] listen = [LISTEN]
config() {
  tw_knot_config_head 8 "$KW/tsig.secret" 30s |
    sed "s|^listen = .*|listen = [\"$1\"]\npublic_port = $P|"
  tw_config_cert web ec-p256 web.test www.web.test
  TW_CERT_EXTRA=$TW_KNOT_DNS01 tw_config_cert wild ec-p256 "*.w.test" w.test
}

# run_test NAME CONFIG: exit code in $rc, output in $TW/out.txt
run_test() {
  timeout 90 "$CERTLOOP" test "$1" -c "$2" >"$TW/out.txt" 2>"$TW/err.txt"
  rc=$?
  sed 's/^/  | /' "$TW/out.txt" >&2
}

P=$TW_HTTP_PORT
config "127.0.0.1:$P" >"$TW/ok.toml"
"$CERTLOOP" check -c "$TW/ok.toml" >/dev/null 2>"$TW/check.txt" ||
  { tw_fail "config invalid: $(cat "$TW/check.txt")"; tw_done; }

# 1. http-01 with a temporary listener: every check passes
run_test web "$TW/ok.toml"
[ "$rc" = 0 ] || tw_fail "http-01: exit $rc, want 0 ($(cat "$TW/err.txt"))"
for d in web.test www.web.test; do
  grep -q "^test web: dns     $d: resolves to 127.0.0.1 ... PASS$" "$TW/out.txt" ||
    tw_fail "http-01: no dns PASS line for $d"
  grep -q "^test web: caa     $d: CA publishes no caaIdentities: CAA not checked ... PASS$" \
    "$TW/out.txt" || tw_fail "http-01: no caa line for $d"
  grep -Eq "^test web: http-01 $d: http://$d:$P/\.well-known/acme-challenge/[A-Za-z0-9_-]+ via 127\.0\.0\.1: token served \.\.\. PASS$" \
    "$TW/out.txt" || tw_fail "http-01: no token-served PASS line for $d"
done
grep -q "note: fetching port $P" "$TW/out.txt" || tw_fail "http-01: no note about the port"
[ "$(grep -c ' \.\.\. PASS$' "$TW/out.txt")" = 6 ] || tw_fail "http-01: want 6 PASS lines"

# 2. the listener is on an address the names do not resolve to: FAIL, exit 1
config "127.0.0.2:$P" >"$TW/other.toml"
run_test web "$TW/other.toml"
[ "$rc" = 1 ] || tw_fail "wrong listener: exit $rc, want 1"
grep -Eq "^test web: http-01 web.test: http://web.test:$P/\.well-known/acme-challenge/[A-Za-z0-9_-]+ via 127\.0\.0\.1: .*nothing listens there.* \.\.\. FAIL$" \
  "$TW/out.txt" || tw_fail "wrong listener: no FAIL line for web.test"
grep -q "^test web: dns     web.test: .* PASS$" "$TW/out.txt" ||
  tw_fail "wrong listener: the dns check should still pass"

# 3. something else than certloop holds the port: its 404 is not certloop's
python3 -m http.server --bind 127.0.0.1 "$P" >/dev/null 2>&1 &
pypid=$!
TW_PIDS+=($pypid)
tw_wait_http "http://127.0.0.1:$P/" "" 10 >/dev/null 2>&1 || true
run_test web "$TW/ok.toml"
[ "$rc" = 1 ] || tw_fail "foreign server: exit $rc, want 1"
grep -q "^test web: http-01 web.test: .* not certloop's 404 .* FAIL$" "$TW/out.txt" ||
  tw_fail "foreign server: no FAIL line naming the foreign 404"
kill "$pypid" 2>/dev/null
wait "$pypid" 2>/dev/null

# 4. the daemon runs (its listener holds the port): reachable, exit 0
tw_daemon_start "$TW/ok.toml" "$TW/daemon.out" "$TW/daemon.err" 10 test -S "$TW/control.sock"
run_test web "$TW/ok.toml"
[ "$rc" = 0 ] || tw_fail "daemon running: exit $rc, want 0 ($(cat "$TW/err.txt"))"
grep -q "^test web: http-01 www.web.test: .* the running daemon's listener is reachable ... PASS$" \
  "$TW/out.txt" || tw_fail "daemon running: no reachable line"
tw_daemon_stop

# 5. dns-01: the test records propagate and are removed
run_test wild "$TW/ok.toml"
[ "$rc" = 0 ] || tw_fail "dns-01: exit $rc, want 0 ($(tail -5 "$TW/err.txt"))"
grep -q "^test wild: dns     \*.w.test: base name w.test resolves to 127.0.0.1 ... PASS$" "$TW/out.txt" ||
  tw_fail "dns-01: no dns line for the wildcard's base name"
for d in '\*.w.test' w.test; do
  grep -q "^test wild: dns-01  $d: test record at _acme-challenge.w.test: .* PASS$" \
    "$TW/out.txt" || tw_fail "dns-01: no PASS line for $d"
done
grep -q "test records removed" "$TW/out.txt" || tw_fail "dns-01: no cleanup line"
left=$(knot_txt 127.0.0.1 _acme-challenge.w.test)
[ -z "$left" ] || tw_fail "dns-01: TXT left behind at _acme-challenge.w.test: $left"

# 6. CAA: a CA publishing caaIdentities (a static directory) against
# records added to the zone through knotc
kc() { "$(knotc_bin)" -s "$KW/primary/knot.sock" "$@" >/dev/null; }
kc zone-begin test. &&
  kc zone-set test. caa.test. 1 A 127.0.0.1 &&
  kc zone-set test. x.caa.test. 1 A 127.0.0.1 &&
  kc zone-set test. caa.test. 1 CAA 0 issue '"CA.example; accounturi=https://x/1"' &&
  kc zone-set test. caa.test. 1 CAA 0 issuewild '";"' &&
  kc zone-set test. bad.test. 1 A 127.0.0.1 &&
  kc zone-set test. bad.test. 1 CAA 0 issue '"other.example"' &&
  kc zone-set test. vm.test. 1 A 127.0.0.1 &&
  kc zone-set test. vm.test. 1 CAA 0 issue '"ca.example; validationmethods=http-01,tls-alpn-01"' &&
  kc zone-set test. acct.test. 1 A 127.0.0.1 &&
  kc zone-set test. acct.test. 1 CAA 0 issue '"ca.example; accounturi=https://x/2"' &&
  kc zone-commit test. || tw_fail "knotc: cannot add the CAA records"
mkdir -p "$TW/fakeca"
echo '{"meta": {"caaIdentities": ["ca.example"]}, "newNonce": "x"}' >"$TW/fakeca/dir"
Q=$(tw_port)
python3 -m http.server --bind 127.0.0.1 --directory "$TW/fakeca" "$Q" >/dev/null 2>&1 &
TW_PIDS+=($!)
{
  config "127.0.0.1:$P"
  printf '[ca.fake]\ndirectory = "http://127.0.0.1:%s/dir"\n\n' "$Q"
  TW_CERT_EXTRA=$TW_KNOT_DNS01 tw_config_cert caa ec-p256 "*.caa.test" x.caa.test bad.test \
    vm.test acct.test |
    sed 's/^ca = "pebble"/ca = "fake"/'
} >"$TW/caa.toml"
"$CERTLOOP" check -c "$TW/caa.toml" >/dev/null 2>"$TW/check.txt" ||
  tw_fail "caa config invalid: $(cat "$TW/check.txt")"
tw_wait_http "http://127.0.0.1:$Q/dir" "" 10 >/dev/null 2>&1 || true
# RFC 8657: the account this state directory holds is https://x/1
mkdir -p "$TW/state/accounts/fake"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TW/state/accounts/fake/account.key" 2>/dev/null
printf '{"directory": "http://127.0.0.1:%s/dir", "url": "https://x/1"}\n' "$Q" >"$TW/state/accounts/fake/account.json"
chmod 600 "$TW/state/accounts/fake/"*
run_test caa "$TW/caa.toml"
[ "$rc" = 1 ] || tw_fail "caa: exit $rc, want 1"
[ "$(grep -c " ... FAIL$" "$TW/out.txt")" = 4 ] || tw_fail "caa: want exactly 4 FAIL lines (the CAA ones)"
grep -q '^test caa: caa     vm.test: 1 CAA record at vm.test: the property naming the CA has validationmethods without the challenge in use ... FAIL$' \
  "$TW/out.txt" || tw_fail "caa: no validationmethods FAIL line for vm.test (dns-01 in use)"
grep -q '^test caa: caa     acct.test: 1 CAA record at acct.test: the property naming the CA has an accounturi of another account ... FAIL$' \
  "$TW/out.txt" || tw_fail "caa: no accounturi FAIL line for acct.test"
grep -q '^test caa: caa     x.caa.test: 2 CAA records at caa.test: an issue property names the CA ... PASS$' \
  "$TW/out.txt" || tw_fail "caa: no PASS line for x.caa.test (climbed to caa.test)"
grep -q '^test caa: caa     \*.caa.test: 2 CAA records at caa.test: no issuewild property names the CA ... FAIL$' \
  "$TW/out.txt" || tw_fail "caa: no FAIL line for *.caa.test (issuewild \";\")"
grep -q '^test caa: caa     bad.test: 1 CAA record at bad.test: no issue property names the CA ... FAIL$' \
  "$TW/out.txt" || tw_fail "caa: no FAIL line for bad.test"
[ -z "$(knot_txt 127.0.0.1 _acme-challenge.caa.test)$(knot_txt 127.0.0.1 _acme-challenge.bad.test)" ] ||
  tw_fail "caa: TXT records left behind"

# 7. usage and configuration errors
"$CERTLOOP" test -c "$TW/ok.toml" >/dev/null 2>&1
[ $? = 64 ] || tw_fail "no NAME: want 64"
"$CERTLOOP" test nosuch -c "$TW/ok.toml" >/dev/null 2>"$TW/err.txt"
[ $? = 64 ] || tw_fail "unknown NAME: want 64"
grep -q "no certificate named 'nosuch'" "$TW/err.txt" || tw_fail "unknown NAME: no message"
printf '[certificate.x]\ndomains = 3\n' >"$TW/bad.toml"
"$CERTLOOP" test x -c "$TW/bad.toml" >/dev/null 2>&1
[ $? = 78 ] || tw_fail "bad config: want 78"
tw_done
