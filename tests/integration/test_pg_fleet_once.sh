#!/usr/bin/env bash
# `certloop run --once` on two instances of one PostgreSQL at the same time
# (issue 14): each certificate is ordered once in the fleet; the instance
# that does not get a lease waits for the other's generation (its --once
# run does not end before) and deploys it ("deployed the stored
# generation" in its summary); both exit 0 with byte-identical files.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
. "$(dirname "$0")/pg_fleet.sh"

N=4
tw_init pgonce
pg_start || exit 1
tw_start || exit 1
fleet_start_web || tw_done
for i in a b; do fleet_config "$i" "$N"; done
timeout 120 "$CERTLOOP" run --once -c "$TW/a.toml" >"$TW/a.out" 2>"$TW/a.err" &
pa=$!
timeout 120 "$CERTLOOP" run --once -c "$TW/b.toml" >"$TW/b.out" 2>"$TW/b.err" &
pb=$!
wait "$pa" || tw_fail "a: run --once exited $?"
wait "$pb" || tw_fail "b: run --once exited $?"
for i in a b; do
  [ "$(fleet_n_deployed "$i" "$N")" = "$N" ] || tw_fail "$i deployed $(fleet_n_deployed "$i" "$N") of $N"
done
waited=$(grep -h -c "another instance is ordering it: waiting" "$TW/a.err" "$TW/b.err" | paste -sd+ | bc)
tw_log "--once: $waited waits for the other instance"
[ "$(fleet_n_orders)" = "$N" ] || tw_fail "$(fleet_n_orders) newOrder requests for $N certificates"
# each certificate: issued by one instance, deployed (not ordered) by the other
for ((k = 0; k < N; k++)); do
  name=$(printf 'f%02d' "$k")
  lines=$(grep -h "^$name: " "$TW/a.out" "$TW/b.out" | sed 's/, expires .*//' | sort | tr '\n' '|')
  [ "$lines" = "$name: deployed the stored generation|$name: issued|" ] ||
    tw_fail "$name: summaries $lines"
done
fleet_check_same "$N" a b
tw_done
