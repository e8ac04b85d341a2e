#!/usr/bin/env bash
# The store's write path of N issuances at once (lease take, order put,
# certificate put with a redeploy mark, settle, release) through the store
# interface: the file backend in a temp dir, then PostgreSQL 15 started
# here on a unix socket (initdb + pg_ctl, durability settings left at their
# defaults, as in production). Prints wall time and certloop's CPU per
# certificate for each (tools/store-bench.c). N=1000 by default.
set -euo pipefail
N=${N:-1000}
BUILD_DIR=${BUILD_DIR:-$(cd "$(dirname "$0")/.." && pwd)/build}
tool=$BUILD_DIR/store-bench
PG_BIN=/usr/lib/postgresql/15/bin
[ -x "$tool" ] || { echo "build first: $tool missing" >&2; exit 1; }
[ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL 15 missing (scripts/deps.sh)" >&2; exit 1; }

dir=$(mktemp -d /tmp/certloop-storebench-XXXXXX)
as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi
}
cleanup() {
  as_pg "$PG_BIN/pg_ctl -D $dir/pg -s -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] && chown postgres "$dir"

"$tool" files "$dir/state" "$N"
as_pg "$PG_BIN/initdb -D $dir/pg --auth=trust -U postgres -E UTF8 --locale=C >$dir/initdb.log 2>&1"
as_pg "$PG_BIN/pg_ctl -D $dir/pg -l $dir/server.log -w -s -o \"-k $dir -c listen_addresses=''\" start"
"$tool" postgresql "host=$dir dbname=postgres user=postgres" "$N"
