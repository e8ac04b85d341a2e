#!/usr/bin/env bash
# Rounds of renewals with hooks against Pebble (`run --once` is one round):
# hooks.d/pre runs once before the first order, hooks.d/deploy once per
# certificate after its files (CERTLOOP_NAME, RENEWED_LINEAGE pointing at
# the generation), the reload command shared by five certificates runs once
# after every certificate is in place, then hooks.d/post once. A reload
# command that fails marks the deployment of its certificates failed (exit
# 1, the summary says so) and rolls back the files of every certificate
# that shared it (byte-identical to before the round, no backup left), and
# no new order follows for them.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init hooks
tw_start || exit 1

H=$TW/hooks.d
mkdir -p "$H/pre" "$H/deploy" "$H/post"
for phase in pre deploy post; do
  cat >"$H/$phase/10-record" <<EOF
#!/bin/sh
echo "$phase \${CERTLOOP_NAME:-} \${RENEWED_LINEAGE:-}" >> "$TW/trace"
EOF
  chmod 755 "$H/$phase/10-record"
done
# not executable: skipped
printf '#!/bin/sh\necho never >> "%s/trace"\n' "$TW" >"$H/deploy/20-disabled"

config() { # RELOAD_COMMAND: five certificates sharing one reload command
  tw_config_head 8 | sed "s|^log_level = .*|&\nhooks_dir = \"$H\"|"
  for i in 1 2 3 4 5; do
    tw_config_cert "h$i" ec-p256 "h$i.hooks.test"
    printf '[[certificate.h%s.deploy]]\ntype = "exec"\ncommand = %s\n\n' "$i" "$1"
  done
}
config "[\"/bin/sh\", \"-c\", \"echo reload \$CERTLOOP_NAME >> $TW/trace\"]" >"$TW/certloop.toml"
"$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null || { tw_fail "config invalid"; tw_done; }

timeout 120 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out1" 2>"$TW/err1"
rc=$?
[ "$rc" = 0 ] || tw_fail "run --once exited $rc: $(grep -E 'error' "$TW/err1" | head -5)"
[ "$(grep -c ': issued, expires ' "$TW/out1")" = 5 ] || tw_fail "summary: $(cat "$TW/out1")"

# order: pre first, then the five deploy hooks, then one reload, then post
cut -d' ' -f1 "$TW/trace" | uniq -c | awk '{print $2 " " $1}' >"$TW/shape"
printf 'pre 1\ndeploy 5\nreload 1\npost 1\n' >"$TW/want"
diff "$TW/want" "$TW/shape" >&2 || tw_fail "hook order/count: $(cat "$TW/trace")"
for i in 1 2 3 4 5; do
  line=$(grep "^deploy h$i " "$TW/trace")
  lineage=${line##* }
  [ "$lineage" = "$(readlink -f "$TW/state/certs/h$i/current")" ] ||
    [ "$lineage" = "$TW/state/certs/h$i/$(readlink "$TW/state/certs/h$i/current")" ] ||
    tw_fail "h$i: RENEWED_LINEAGE $lineage is not its generation"
done
grep -q "^pre  $" "$TW/trace" || tw_fail "pre hook saw a certificate: $(grep '^pre' "$TW/trace")"
grep -q never "$TW/trace" && tw_fail "a non-executable hook ran"

# a failing reload command: deployments fail and are rolled back, no order is sent
# beyond the renewals themselves (renew_before makes them due 20 s after
# issuance, as in test_renew)
TW_CERT_EXTRA='renew_before = "1825d23h59m40s"' config '["/bin/sh", "-c", "exit 3"]' >"$TW/fail.toml"
"$CERTLOOP" check -c "$TW/fail.toml" >/dev/null || { tw_fail "fail config invalid"; tw_done; }
sleep 21
before=$(sha256sum "$TW"/out/h*/*.pem)
orders_before=$(grep -c "POST /order-plz" "$TW/pebble.log")
timeout 120 "$CERTLOOP" run --once -c "$TW/fail.toml" >"$TW/out2" 2>"$TW/err2"
rc=$?
[ "$rc" = 1 ] || tw_fail "run --once with a failing reload exited $rc, expected 1"
[ "$(grep -c 'deployment failed: reload command `/bin/sh -c exit 3` exited 3; rolled back 4 file(s)' "$TW/out2")" = 5 ] ||
  tw_fail "summary does not name the failed deploy: $(cat "$TW/out2")"
[ "$(grep -c 'deploy cert=h[1-5]: rolled back 4 files after: reload command `/bin/sh -c exit 3` exited 3' "$TW/err2")" = 5 ] ||
  tw_fail "the rollbacks are not logged: $(grep 'rolled back' "$TW/err2")"
after=$(sha256sum "$TW"/out/h*/*.pem)
[ "$before" = "$after" ] || tw_fail "the files of a failed deployment were not rolled back"
grep -q . <<<"$(find "$TW/out" -name '.bak-*')" && tw_fail "backups left after the rollback"
for i in 1 2 3 4 5; do
  tw_check_pair "$TW/out/h$i/key.pem" "$TW/out/h$i/fullchain.pem" || tw_fail "h$i: key/cert mismatch"
done
orders=$(($(grep -c "POST /order-plz" "$TW/pebble.log") - orders_before))
[ "$orders" = 5 ] || tw_fail "expected 5 new orders (one per certificate), Pebble saw $orders"

# a failed deployment keeps its order file: the next run deploys the
# stored certificates (reload working again), without a new order
timeout 120 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/out3" 2>"$TW/err3"
rc=$?
[ "$rc" = 0 ] || tw_fail "run --once after the failed round exited $rc: $(cat "$TW/out3")"
for i in 1 2 3 4 5; do
  cmp -s "$TW/out/h$i/fullchain.pem" "$TW/state/certs/h$i/current/fullchain.pem" ||
    tw_fail "h$i: the stored certificate was not deployed by the next run"
  [ -e "$TW/state/orders/h$i.json" ] && tw_fail "h$i: order file left after a deployment"
done
[ "$(grep -c "POST /order-plz" "$TW/pebble.log")" = $((orders_before + 5)) ] ||
  tw_fail "the deploy-only run sent an order"
tw_done
