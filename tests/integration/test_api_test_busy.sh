#!/usr/bin/env bash
# POST /v1/certificates/NAME/test runs `certloop test` on a threadpool
# thread for as long as it takes (a dns-01 test record's hook and its
# propagation wait: minutes). One runs at a time: a second one while it runs
# is 409 with a sentence, so tests asked for again and again cannot take
# every thread the store, key generation and reloads need; once it has
# ended the next one runs.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init api_test_busy
tw_start || exit 1
API_PORT=$(tw_port)
# the hook holds the test's thread for 4 s, then fails
cat >"$TW/hook" <<EOF
#!/bin/sh
echo "\$*" >>"$TW/hook.calls"
sleep 4
exit 1
EOF
chmod 755 "$TW/hook"
{
  tw_config_head 8
  tw_config_api "$API_PORT" "$TW/api-tokens"
  printf '[dns.slow]\ntype = "exec"\ncommand = ["%s"]\nnameservers = ["127.0.0.1:%s"]\n\n' "$TW/hook" "$TW_DNS_PORT"
  tw_config_cert www ec-p256 www.test
  TW_CERT_EXTRA=$'challenge = "dns-01"\ndns = "slow"' tw_config_cert slow ec-p256 slow.test
} >"$TW/certloop.toml"
"$CERTLOOP" api-token create m --scopes manage -c "$TW/certloop.toml" >"$TW/m.tok" 2>"$TW/tok.err" ||
  { tw_fail "api-token: $(cat "$TW/tok.err")"; exit 1; }
tw_daemon_start "$TW/certloop.toml" "$TW/out.txt" "$TW/err.txt" 20 test -s "$TW/state/api/bootstrap.pem" ||
  { tw_fail "no bootstrap.pem: $(tail -5 "$TW/err.txt")"; exit 1; }
CA=$TW/state/api/bootstrap.pem
URL=https://127.0.0.1:$API_PORT
api() { # PATH BODYFILE: prints the status
  curl -sS --max-time 60 --cacert "$CA" -X POST -H "Authorization: Bearer $(cat "$TW/m.tok")" \
    -o "$2" -w '%{http_code}' "$URL$1" 2>>"$TW/curl.err"
}
calls() { if [ -f "$TW/hook.calls" ]; then grep -c '^present ' "$TW/hook.calls"; else echo 0; fi; }
more_calls() { [ "$(calls)" -gt "$k" ]; }
# the daemon's own first order of slow fails through the hook (then waits its backoff)
failed_once() { grep -q 'order cert=slow' "$TW/err.txt"; }
tw_daemon_wait 60 failed_once || tw_fail "the order of slow did not fail: $(tail -5 "$TW/err.txt")"
k=$(calls)
api /v1/certificates/slow/test "$TW/t1.json" >"$TW/t1.st" &
T1=$!
tw_daemon_wait 20 more_calls || tw_fail "the test did not run the hook"
st=$(api /v1/certificates/www/test "$TW/t2.json")
[ "$st" = 409 ] && grep -q 'a test is running already' "$TW/t2.json" ||
  tw_fail "a second test while one runs: $st $(cat "$TW/t2.json")"
wait "$T1"
[ "$(cat "$TW/t1.st")" = 200 ] || tw_fail "the slow test: $(cat "$TW/t1.st") $(cat "$TW/t1.json")"
grep -q '"ok":false' "$TW/t1.json" || tw_fail "the slow test passed: $(cat "$TW/t1.json")"
st=$(api /v1/certificates/www/test "$TW/t3.json")
[ "$st" = 200 ] && grep -q '"name":"www"' "$TW/t3.json" || tw_fail "a test after it ended: $st $(cat "$TW/t3.json")"
tw_daemon_stop || tw_fail "the daemon did not exit cleanly"
tw_done
