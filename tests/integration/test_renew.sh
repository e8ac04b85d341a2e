#!/usr/bin/env bash
# The daemon renews on its timer: with renew_before just under Pebble's
# 5-year lifetime the renewal time falls ~20 s after issuance. `certloop run`
# issues, schedules, renews (a new key, a new generation, the exec deploy
# sees CERTLOOP_EVENT=renewed), keeps serving, and stops cleanly on SIGTERM.
# Pebble has no ARI: the fallback to the policy is logged.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init renew
tw_start || exit 1
cat >"$TW/hook.sh" <<'EOF2'
#!/bin/sh
echo "$CERTLOOP_EVENT $RENEWED_LINEAGE" >> "$HOOK_OUT"
EOF2
chmod 755 "$TW/hook.sh"
{
  tw_config_head 8
  TW_CERT_EXTRA='renew_before = "1825d23h59m40s"' tw_config_cert rn ec-p256 rn.test
  cat <<EOF2
[[certificate.rn.deploy]]
type = "exec"
command = ["/usr/bin/env", "HOOK_OUT=$TW/events", "$TW/hook.sh"]

EOF2
} >"$TW/certloop.toml"
"$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null || { tw_fail "config invalid"; tw_done; }

issued() { # N: the log shows at least N issuances
  [ "$(grep -c 'issued cert=rn ' "$TW/err.txt")" -ge "$1" ]
}
tw_daemon_start "$TW/certloop.toml" "$TW/out.txt" "$TW/err.txt" 90 issued 1
first=$(openssl x509 -in "$TW/out/rn/cert.pem" -noout -serial 2>/dev/null)
[ -n "$first" ] || tw_fail "first issuance did not happen"
grep -q 'cert=rn: valid, renewal at' "$TW/err.txt" || tw_fail "no renewal scheduled"
# Pebble 2.4 has no ARI: the daemon says so and renews by policy
tw_daemon_wait 5 grep -q 'ca=pebble: no renewalInfo in the directory: renewal by policy only' "$TW/err.txt" ||
  tw_fail "no ARI fallback line for Pebble"
tw_daemon_wait 90 issued 2 || tw_fail "no renewal within 90 s"
sleep 0.5
second=$(openssl x509 -in "$TW/out/rn/cert.pem" -noout -serial 2>/dev/null)
[ "$first" != "$second" ] || tw_fail "the deployed certificate did not change"
tw_check_pair "$TW/out/rn/fullchain.pem" "$TW/out/rn/key.pem" || tw_fail "renewed pair mismatched"
tw_verify_fullchain "$TW/out/rn/fullchain.pem" || tw_fail "renewed chain does not verify"
gens=$(ls -d "$TW"/state/certs/rn/*/ | grep -vc current)
[ "$gens" -ge 2 ] || tw_fail "expected two generations, found $gens"
[ "$(sed -n 1p "$TW/events" | cut -d' ' -f1)" = issued ] || tw_fail "first event: $(sed -n 1p "$TW/events")"
[ "$(sed -n 2p "$TW/events" | cut -d' ' -f1)" = renewed ] || tw_fail "second event: $(sed -n 2p "$TW/events")"

tw_daemon_stop
rc=$?
[ "$rc" = 0 ] || tw_fail "daemon exited $rc after SIGTERM"
tw_done
