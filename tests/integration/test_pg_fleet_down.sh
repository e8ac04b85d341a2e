#!/usr/bin/env bash
# PostgreSQL away for 30 s under a fleet (issue 14): three instances have
# deployed 3 certificates; the database stops and 2 certificates are added
# to every instance's configuration (SIGHUP): their runs cannot take their
# leases (a write waits 30 s for the database, then fails and is retried
# with backoff). Meanwhile every instance stays up, answers status saying
# the store is unreachable, and keeps its deployed files. The database
# comes back: the new certificates are ordered once each in the fleet and
# deployed byte-identical everywhere.
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
# the outage lasts 30 s; every instance stays up and keeps its files
while [ $(($(date +%s) - t0)) -lt 30 ]; do
  for i in a b c; do
    kill -0 "${FLEET_PID[$i]}" 2>/dev/null || { tw_fail "$i exited while the database was away"; tw_done; }
  done
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
tw_log "database back after $(($(date +%s) - t0)) s"

fleet_wait_deployed 240 "$N" a b c || tw_fail "not every instance deployed every certificate after the outage"
tw_log "all $N deployed everywhere $(($(date +%s) - t0)) s after the stop"
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
