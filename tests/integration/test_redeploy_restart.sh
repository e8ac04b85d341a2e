#!/usr/bin/env bash
# A deployment without an order file is not lost by a restart:
# 1. a certificate issued by Pebble; the daemon reloads (SIGHUP) a
#    configuration that adds a per-certificate deploy command which fails:
#    the deploy-only run fails and STATE/orders/NAME.redeploy stays; the
#    daemon is stopped before its retry; with the command fixed, the next
#    start (`run --once`) deploys the stored certificate again, without a
#    new order, and the mark is gone;
# 2. an imported certificate whose first deployment fails: the next
#    `run --once` finds the files unchanged but the mark, and deploys.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init redeploy
tw_start || exit 1

flag=$TW/deploy-ok
deploy_cmd() { # NAME: a per-certificate command that fails until $flag exists
  cat <<EOF
[[certificate.$1.deploy]]
type = "exec"
command = ["sh", "-c", "test -e '$flag' && echo ok >'$TW/ran.$1'"]
per_certificate = true

EOF
}

# ---- 1. a reloaded deploy action fails, then a restart ----
{
  tw_config_head 4
  tw_config_cert rr ec-p256 rr.test
} >"$TW/v1.toml"
{
  cat "$TW/v1.toml"
  deploy_cmd rr
} >"$TW/v2.toml"
"$CERTLOOP" check -c "$TW/v2.toml" >/dev/null 2>"$TW/check.txt" ||
  { tw_fail "config invalid: $(cat "$TW/check.txt")"; tw_done; }
"$CERTLOOP" run --once -c "$TW/v1.toml" >"$TW/once1.out" 2>"$TW/once1.err" ||
  { tw_fail "first issuance failed: $(grep -E ' error ' "$TW/once1.err" | head -3)"; tw_done; }
orders() { grep -c "newOrder" "$TW/pebble.log"; }
n_orders=$(orders)

cp "$TW/v1.toml" "$TW/certloop.toml"
tw_daemon_start "$TW/certloop.toml" "$TW/run.out" "$TW/run.err" 20 test -S "$TW/control.sock" ||
  tw_fail "the daemon did not start"
cp "$TW/v2.toml" "$TW/certloop.toml"
kill -HUP "$TW_DAEMON_PID"
failed() { grep -q "deploy cert=rr: rolled back .* files after: command .sh -c" "$TW/run.err"; }
tw_daemon_wait 30 failed || tw_fail "the reloaded deploy action did not fail: $(tail -5 "$TW/run.err")"
tw_daemon_wait 10 test -e "$TW/state/orders/rr.redeploy" ||
  tw_fail "no STATE/orders/rr.redeploy after the failed deployment"
tw_daemon_stop || tw_fail "the daemon did not stop cleanly"
[ -e "$TW/state/orders/rr.redeploy" ] || tw_fail "the mark did not survive the stop"

touch "$flag"
"$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/once2.out" 2>"$TW/once2.err" ||
  tw_fail "run --once after the fix failed: $(grep -E ' error ' "$TW/once2.err" | head -3)"
grep -q "cert=rr: a deployment of the stored certificate did not finish: deploying it again" \
  "$TW/once2.err" || tw_fail "the restart did not redeploy: $(grep 'cert=rr' "$TW/once2.err" | head -5)"
[ -s "$TW/ran.rr" ] || tw_fail "the fixed deploy command did not run"
[ -e "$TW/state/orders/rr.redeploy" ] && tw_fail "the mark stayed after the commit"
[ "$(orders)" = "$n_orders" ] || tw_fail "a new order was sent ($n_orders -> $(orders))"

# ---- 2. an imported certificate whose first deployment fails ----
rm -f "$flag"
P=$TW/pki
mkdir -p "$P" "$TW/in"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 60 \
  -subj "/CN=imp.test" -addext "subjectAltName=DNS:imp.test" \
  -keyout "$TW/in/imp.key" -out "$TW/in/imp.pem" >/dev/null 2>&1
chmod 600 "$TW/in/imp.key"
{
  tw_config_head 4
  tw_config_import imp imp.test "$TW/in/imp.pem" "$TW/in/imp.key"
  echo
  deploy_cmd imp
} >"$TW/imp.toml"
"$CERTLOOP" run --once -c "$TW/imp.toml" >"$TW/imp1.out" 2>"$TW/imp1.err" &&
  tw_fail "the import's first deployment did not fail"
[ -e "$TW/state/orders/imp.redeploy" ] || tw_fail "no STATE/orders/imp.redeploy"
[ -e "$TW/out/imp/fullchain.pem" ] && tw_fail "a failed first deployment left files (no rollback)"
touch "$flag"
"$CERTLOOP" run --once -c "$TW/imp.toml" >"$TW/imp2.out" 2>"$TW/imp2.err" ||
  tw_fail "the import's second run failed: $(grep -E ' error ' "$TW/imp2.err" | head -3)"
cmp -s "$TW/out/imp/fullchain.pem" "$TW/in/imp.pem" || tw_fail "the import was not deployed"
[ -s "$TW/ran.imp" ] || tw_fail "the import's deploy command did not run"
[ -e "$TW/state/orders/imp.redeploy" ] && tw_fail "the import's mark stayed"
tw_done
