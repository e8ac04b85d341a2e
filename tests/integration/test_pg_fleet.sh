#!/usr/bin/env bash
# Three instances on one PostgreSQL (issue 14), every certificate declared
# on all three, each instance's http-01 listener on its own address
# (127.0.0.1, .2, .3) and Pebble resolving the names round-robin over the
# three: each certificate is ordered exactly once in the fleet (one
# newOrder per certificate in Pebble's log: the lease), its challenge is
# answered by whichever instance Pebble reaches (the shared tokens), and
# all three deploy byte-identical files (the holder stores, the others get
# the new generation through NOTIFY and deploy it with their own deploy
# actions). PG_FLEET_N certificates (default 6; the issue's full size:
# PG_FLEET_N=100).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
. "$(dirname "$0")/pg_fleet.sh"

N=${PG_FLEET_N:-6}
export FLEET_HTTP=listeners
tw_init pgfleet
pg_start || exit 1
tw_start || exit 1
fleet_start_web || tw_done
for i in a b c; do fleet_config "$i" "$N"; done

start=$(date +%s.%N)
for i in a b c; do fleet_daemon "$i"; done
fleet_wait_deployed 240 "$N" a b c || tw_fail "not every instance deployed every certificate"
end=$(date +%s.%N)
tw_log "3 instances, $N certificates: deployed everywhere in $(echo "$end - $start" | bc) s"

orders=$(fleet_n_orders)
if [ "$orders" != "$N" ]; then
  tw_fail "$orders newOrder requests for $N certificates"
  # why: a failed order (then ordered again by the next holder) or a lease
  grep -h "error\|warn\|resum\|new order" "$TW"/[abc].err | grep -v "open file limit" | head -40 >&2
fi
fleet_check_same "$N" a b c
# who ordered what: the holders (generations' created_by) and every
# instance's deployment record
tw_log "generations stored per instance: $(pg_sql "SELECT created_by || '=' || count(*)
  FROM certloop_generations GROUP BY created_by ORDER BY 1" | tr '\n' ' ')"
[ "$(pg_sql "SELECT count(*) FROM certloop_generations")" = "$N" ] ||
  tw_fail "not $N generations in the database"
[ "$(pg_sql "SELECT count(*) FROM certloop_deployments d JOIN certloop_certificates c
  ON c.name = d.cert AND c.current_generation = d.generation WHERE d.ok")" = $((3 * N)) ] ||
  tw_fail "not 3 x $N successful deployments of the current generations recorded"
[ "$(pg_sql "SELECT count(*) FROM certloop_orders")" = 0 ] || tw_fail "orders left in flight"
# round-robin: every instance's listener answered Pebble (a third of the
# names point at it), whoever ordered them
for i in a b c; do
  served=$(grep -c "http01: token .* fetched by" "$TW/$i.err")
  [ "$served" -ge 1 ] || tw_fail "$i's listener answered no challenge"
  tw_log "$i: stored $(pg_sql "SELECT count(*) FROM certloop_generations WHERE created_by = '$i'"), answered $served challenges"
done
# no PEM private key in the database (sealed)
if pg_sql "SELECT cert_pem || chain_pem || fullchain_pem FROM certloop_generations" |
  grep -q "PRIVATE KEY"; then
  tw_fail "a private key in clear in the database"
fi

for i in a b c; do
  kill -TERM "${FLEET_PID[$i]}"
  wait "${FLEET_PID[$i]}" || tw_fail "$i exited $?"
done
grep -h "error" "$TW"/[abc].err | head -5 >&2
tw_done
