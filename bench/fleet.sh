#!/usr/bin/env bash
# Issue 14's bench, in one run against one Pebble: N certificates (1,000 by
# default) issued by one instance on the file store (`run --once`), then the
# same N declared on three daemons sharing one PostgreSQL 15 (lease per
# certificate, the others deploy through NOTIFY), then a forced renewal of
# one certificate and the time until all three deployed the new generation.
# Prints wall time, certloop CPU per certificate (user + system of every
# certloop process), database statements and transactions per certificate
# (log_statement = all, pg_stat_database), and the renewal's times.
# Uses the integration tests' world (tests/integration/lib.sh, pg.sh,
# pg_fleet.sh): Pebble, a shared webroot for http-01, a throwaway server.
#
#   N=1000 bash bench/fleet.sh          # FLEET_MAXC: max_concurrent_orders (16)
set -uo pipefail
N=${N:-1000}
src=$(cd "$(dirname "$0")/.." && pwd)
export BUILD_DIR=${BUILD_DIR:-$src/build}
export CERTLOOP=${CERTLOOP:-$BUILD_DIR/certloop}
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/pg.sh"
. "$src/tests/integration/pg_fleet.sh"
export FLEET_MAXC=${FLEET_MAXC:-16}
export TW_LOG_LEVEL=warn
export PEBBLE_VA_NOSLEEP=1

tw_init benchfleet
pg_start || exit 1
tw_start || exit 1
fleet_start_web || exit 1
now() { date +%s.%N; }
calc() { echo "scale=3; $*" | bc; }
# user + system CPU seconds of a live process
cpu_of() {
  local tck
  tck=$(getconf CLK_TCK)
  awk -v t="$tck" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"
}

echo "== file store: one instance, run --once, $N certificates"
# past 250 new orders per account and 3 hours ([ca.X] max_new_orders' default)
more_orders() { sed -i "s/^max_parallel_requests = 1\$/&\nmax_new_orders = $((N > 250 ? N : 250))/" "$1"; }
fleet_config s "$N"
sed -i -e '/^\[store\]/,/^$/d' -e '/^lease_time/d' "$TW/s.toml"
more_orders "$TW/s.toml"
"$CERTLOOP" check -c "$TW/s.toml" >/dev/null || { echo "s.toml invalid" >&2; exit 1; }
TIMEFORMAT='%R %U %S'
t=$({ time "$CERTLOOP" run --once -c "$TW/s.toml" >"$TW/s.out" 2>"$TW/s.err"; } 2>&1)
read -r fs_wall fs_user fs_sys <<<"$t"
fs_issued=$(grep -c ': issued' "$TW/s.out")
fs_orders=$(fleet_n_orders)
echo "files: $fs_issued issued in $fs_wall s, CPU $(calc "($fs_user + $fs_sys) * 1000 / $N") ms per certificate"

echo "== PostgreSQL: three instances, $N certificates declared on each"
pg_sql "ALTER SYSTEM SET log_statement = 'all'" >/dev/null
pg_sql "SELECT pg_reload_conf()" >/dev/null
for i in a b c; do
  fleet_config "$i" "$N"
  more_orders "$TW/$i.toml"
done
xact0=$(pg_sql "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database")
stmts0=$(grep -cE 'LOG:  (statement|execute)' "$PG_DIR/server.log")
start=$(now)
for i in a b c; do fleet_daemon "$i"; done
fleet_wait_deployed 1800 "$N" a b c || echo "not every instance deployed every certificate" >&2
end=$(now)
pg_wall=$(calc "$end - $start")
pg_cpu=0
for i in a b c; do pg_cpu=$(calc "$pg_cpu + $(cpu_of "${FLEET_PID[$i]}")"); done
xact1=$(pg_sql "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database")
stmts1=$(grep -cE 'LOG:  (statement|execute)' "$PG_DIR/server.log")
pg_orders=$(($(fleet_n_orders) - fs_orders))
echo "postgresql: deployed on all three in $pg_wall s, $pg_orders newOrder for $N certificates"
echo "  CPU (3 daemons) $(calc "$pg_cpu * 1000 / $N") ms per certificate;" \
  "$(calc "($stmts1 - $stmts0) / $N") statements and $(calc "($xact1 - $xact0) / $N") transactions per certificate"
echo "  generations stored per instance: $(pg_sql "SELECT created_by || '=' || count(*)
  FROM certloop_generations GROUP BY created_by ORDER BY 1" | tr '\n' ' ')"

echo "== a new generation of f00 on all three"
for i in a b c; do cp "$TW/$i/out/f00/fullchain.pem" "$TW/f00.$i.old"; done
gen0=$(pg_sql "SELECT current_generation FROM certloop_certificates WHERE name = 'f00'")
t0=$(now)
"$CERTLOOP" renew f00 --force -c "$TW/a.toml" >/dev/null || echo "renew f00 failed" >&2
all_new() {
  local i
  for i in a b c; do
    cmp -s "$TW/$i/out/f00/fullchain.pem" "$TW/f00.$i.old" && return 1
  done
  return 0
}
for ((k = 0; k < 3000; k++)); do all_new && break; sleep 0.02; done
t1=$(now)
gen1=$(pg_sql "SELECT current_generation FROM certloop_certificates WHERE name = 'f00'")
stored=$(pg_sql "SELECT extract(epoch FROM created_at) FROM certloop_generations
  WHERE cert = 'f00' AND generation = '$gen1'")
last=0
for i in a b c; do
  m=$(stat -c %.Y "$TW/$i/out/f00/fullchain.pem")
  [ "$(calc "$m > $last")" = 1 ] && last=$m
done
if all_new && [ "$gen1" != "$gen0" ]; then
  echo "renew --force to deployed on all three: $(calc "$t1 - $t0") s;" \
    "stored to deployed on the last instance: $(calc "$last - $stored") s"
else
  echo "the new generation did not reach all three" >&2
fi

for i in a b c; do kill -TERM "${FLEET_PID[$i]}"; done
for i in a b c; do wait "${FLEET_PID[$i]}"; done
echo "commit $(git -C "$src" rev-parse --short HEAD), N=$N, FLEET_MAXC=$FLEET_MAXC, load $(cut -d' ' -f1-3 /proc/loadavg)"
