#!/usr/bin/env bash
# kill -9 of a lease holder in a fleet (issue 14): three instances on one
# PostgreSQL, each ordering one certificate at a time, Pebble validating
# slowly (its VA sleeps, so orders are in flight for seconds). As soon as an
# instance holds a lease whose order is stored, it is killed with SIGKILL.
# The two others finish every certificate: the one that was in flight is
# taken over after the lease time (a higher fencing token) and its stored
# order resumed, so no certificate is ordered twice (one newOrder each in
# Pebble's log); every deployed key matches its certificate and the
# survivors' files are identical. Restarted, the killed instance deploys
# the same files. PG_FLEET_N certificates (default 6).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
. "$(dirname "$0")/pg_fleet.sh"

N=${PG_FLEET_N:-6}
tw_init pgcrash
pg_start || exit 1
PEBBLE_VA_NOSLEEP= tw_start || exit 1
fleet_start_web || tw_done
for i in a b c; do FLEET_MAXC=1 fleet_config "$i" "$N"; done
for i in a b c; do fleet_daemon "$i"; done

# a holder whose order is stored (the crash the lease must survive)
victim= cert=
for ((t = 0; t < 600; t++)); do
  row=$(pg_sql "SELECT l.holder || ' ' || l.cert FROM certloop_leases l JOIN certloop_orders o
    ON o.cert = l.cert AND o.holder = l.holder
    WHERE l.expires_ms > (extract(epoch FROM clock_timestamp()) * 1000)::bigint
    AND NOT EXISTS (SELECT 1 FROM certloop_certificates c JOIN certloop_generations g
      ON g.cert = c.name AND g.generation = c.current_generation WHERE c.name = l.cert)
    LIMIT 1" 2>/dev/null)
  if [ -n "$row" ]; then
    read -r victim cert <<<"$row"
    break
  fi
  sleep 0.1
done
[ -n "$victim" ] || { tw_fail "no lease held with a stored order"; tw_done; }
token=$(pg_sql "SELECT token FROM certloop_leases WHERE cert = '$cert'")
order_url=$(pg_sql "SELECT order_json::json->>'order' FROM certloop_orders WHERE cert = '$cert'")
kill -KILL "${FLEET_PID[$victim]}"
wait "${FLEET_PID[$victim]}" 2>/dev/null
tw_log "killed $victim holding $cert (token $token, order $order_url)"
survivors=()
for i in a b c; do [ "$i" = "$victim" ] || survivors+=("$i"); done

fleet_wait_deployed 300 "$N" "${survivors[@]}" || tw_fail "the survivors did not deploy every certificate"
orders=$(fleet_n_orders)
[ "$orders" = "$N" ] || tw_fail "$orders newOrder requests for $N certificates (one was ordered twice)"
new_token=$(pg_sql "SELECT token FROM certloop_leases WHERE cert = '$cert'")
[ -n "$new_token" ] && [ "$new_token" -gt "$token" ] ||
  tw_fail "$cert: the lease was not taken over (token $token -> ${new_token:-none})"
taker=$(grep -l "cert=$cert: resuming the stored order" "$TW"/[abc].err | head -1)
[ -n "$taker" ] || tw_fail "$cert: nobody resumed the stored order"
tw_log "$cert: lease token $token -> $new_token, resumed by $(basename "${taker:-?}" .err)"
fleet_check_same "$N" "${survivors[@]}"

# the killed instance comes back and deploys what the fleet stored
fleet_daemon "$victim"
fleet_wait_deployed 120 "$N" "$victim" || tw_fail "$victim did not catch up after its restart"
fleet_check_same "$N" "${survivors[0]}" "$victim"
[ "$(fleet_n_orders)" = "$N" ] || tw_fail "the restart ordered again"
for i in a b c; do
  kill -TERM "${FLEET_PID[$i]}"
  wait "${FLEET_PID[$i]}" || tw_fail "$i exited $?"
done
tw_done
