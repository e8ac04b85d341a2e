#!/usr/bin/env bash
# PostgreSQL away for 30 s under a fleet (issue 14): three instances have
# deployed 3 certificates; the database stops and 2 certificates are added
# to every instance's configuration (SIGHUP): their runs cannot take their
# leases (a write waits 30 s for the database, then fails). Meanwhile every
# instance stays up, answers status saying the store is unreachable, and
# keeps its deployed files. The database comes back: the failed runs start
# again as soon as each instance has reconnected (not at their backoff),
# the new certificates are ordered once each in the fleet and deployed
# byte-identical everywhere within seconds.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
. "$(dirname "$0")/pg_fleet.sh"

N0=3
N=5
tw_init pgdown
pg_start || exit 1
tw_start || exit 1
fleet_start_web || tw_done
for i in a b c; do fleet_config "$i" "$N0"; done
for i in a b c; do fleet_daemon "$i"; done
fleet_wait_deployed 120 "$N0" a b c || tw_fail "the first certificates were not deployed"
for i in a b c; do cp -r "$TW/$i/out" "$TW/$i/out.before"; done

pg_stop
tw_log "database stopped"
t0=$(date +%s)
for i in a b c; do
  fleet_config "$i" "$N" >/dev/null
  kill -HUP "${FLEET_PID[$i]}"
done
# the store is said to be unreachable while it is (status, every instance)
for i in a b c; do
  ok=0
  for ((t = 0; t < 100; t++)); do
    if "$CERTLOOP" status -c "$TW/$i.toml" >"$TW/$i.status" 2>&1 &&
      grep -q "^store postgresql: UNREACHABLE since" "$TW/$i.status"; then
      ok=1
      break
    fi
    sleep 0.2
  done
  [ "$ok" = 1 ] || { tw_fail "$i: status does not say the store is unreachable"; cat "$TW/$i.status" >&2; }
done
# the outage lasts 30 s, and until every instance's runs of the new
# certificates have failed (their lease takes waited 30 s for the database);
# every instance stays up and keeps its files
lease_failed() {
  local i k
  for i in a b c; do
    for ((k = N0; k < N; k++)); do
      grep -q "order cert=$(printf 'f%02d' "$k") taking the lease" "$TW/$i.err" || return 1
    done
  done
}
while [ $(($(date +%s) - t0)) -lt 30 ] || ! lease_failed; do
  for i in a b c; do
    kill -0 "${FLEET_PID[$i]}" 2>/dev/null || { tw_fail "$i exited while the database was away"; tw_done; }
  done
  [ $(($(date +%s) - t0)) -lt 90 ] || { tw_fail "the new certificates' runs did not fail"; break; }
  sleep 1
done
for i in a b c; do
  for ((k = 0; k < N0; k++)); do
    name=$(printf 'f%02d' "$k")
    for f in fullchain.pem key.pem; do
      cmp -s "$TW/$i/out.before/$name/$f" "$TW/$i/out/$name/$f" ||
        tw_fail "$i: $name/$f changed or went while the database was away"
    done
  done
done
pg_restart || tw_done
t1=$(date +%s)
tw_log "database back after $((t1 - t0)) s"

# the runs the outage failed start again once each instance has reconnected
# (its attempts are at most 10 s apart), not at their backoff (30 to 60 s
# after the failure): well within 25 s of the database's return
fleet_wait_deployed 240 "$N" a b c || tw_fail "not every instance deployed every certificate after the outage"
t2=$(date +%s)
tw_log "all $N deployed everywhere $((t2 - t0)) s after the stop, $((t2 - t1)) s after the return"
[ $((t2 - t1)) -le 25 ] || tw_fail "deployed $((t2 - t1)) s after the database returned (the backoff, not its return)"
# (an instance that reconnects after another stored them deploys them
# through the watch instead)
grep -q "the store is back: deciding again now" "$TW"/[abc].err ||
  tw_fail "no instance decided the failed runs again when the store came back"
orders=$(fleet_n_orders)
[ "$orders" = "$N" ] || tw_fail "$orders newOrder requests for $N certificates"
fleet_check_same "$N" a b c
for i in a b c; do
  "$CERTLOOP" status -c "$TW/$i.toml" >"$TW/$i.status" 2>&1 || tw_fail "$i: status failed"
  grep -q "UNREACHABLE" "$TW/$i.status" && tw_fail "$i: still says unreachable"
done
grep -h "timed out\|Timed out\|database" "$TW"/[abc].err | sort | uniq -c | sort -rn | head -5 >&2
for i in a b c; do
  kill -TERM "${FLEET_PID[$i]}"
  wait "${FLEET_PID[$i]}" || tw_fail "$i exited $?"
done
tw_done
