# A throwaway PostgreSQL 15 for integration tests (source it from bash after
# lib.sh): initdb in $TW/pg and a server on a unix socket only (no TCP
# port), as the postgres user when we are root (PostgreSQL refuses root).
#
#   . "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/pg.sh"
#   tw_init fleet; pg_start || exit 1      # EXIT trap stops the server too
#   pg_store_config web-1 >>"$TW/a.toml"   # [store] for instance web-1
#   pg_sql "SELECT count(*) FROM certloop_generations"
#   pg_stop; pg_restart                    # the database away and back
#
# A missing initdb skips the test (exit 77) unless CI=true.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR=
PG_RUNNING=

# Runs a command line as postgres when we are root.
pg_as() {
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "$1"
  else
    sh -c "$1"
  fi
}

pg_cleanup() {
  if [ -n "$PG_RUNNING" ]; then
    pg_as "$PG_BIN/pg_ctl -D $PG_DIR/data -s -m immediate stop" >/dev/null 2>&1
    PG_RUNNING=
  fi
}

# pg_start: creates the cluster in $TW/pg and starts it; 1 (with its log)
# when it does not come up. Sets PG_CONNINFO.
pg_start() {
  [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] || tw_skip "PostgreSQL 15 (initdb) not found"
  PG_DIR=$TW/pg
  mkdir -p "$PG_DIR"
  chmod 711 "$TW"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$PG_DIR" || tw_skip "no postgres user to run the server as"
  fi
  trap 'pg_cleanup; tw_cleanup' EXIT
  if ! pg_as "$PG_BIN/initdb -D $PG_DIR/data --auth=trust -U postgres -E UTF8 --locale=C \
      --no-sync" >"$TW/initdb.log" 2>&1; then
    tw_fail "initdb failed"
    sed 's/^/  initdb: /' "$TW/initdb.log" >&2
    return 1
  fi
  PG_CONNINFO="host=$PG_DIR dbname=postgres user=postgres"
  pg_restart
}

# pg_restart: starts the (stopped) server again.
pg_restart() {
  if ! pg_as "$PG_BIN/pg_ctl -D $PG_DIR/data -l $PG_DIR/server.log -w -s -o \"-k $PG_DIR \
      -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
      -c max_connections=40\" start"; then
    tw_fail "PostgreSQL did not start"
    sed 's/^/  postgres: /' "$PG_DIR/server.log" >&2
    return 1
  fi
  PG_RUNNING=1
}

# pg_stop: a fast shutdown (clients are disconnected); the data stays.
pg_stop() {
  pg_as "$PG_BIN/pg_ctl -D $PG_DIR/data -s -m fast stop" >/dev/null 2>&1
  PG_RUNNING=
}

# pg_sql SQL: the result rows, unaligned, fields separated by '|'.
pg_sql() {
  psql -X -A -t -q -v ON_ERROR_STOP=1 "$PG_CONNINFO" -c "$1"
}

# pg_store_config INSTANCE: the [store] table for instance INSTANCE, with
# the conninfo and the test key in $TW (0600).
pg_store_config() {
  if [ ! -f "$TW/pg.conninfo" ]; then
    printf '%s\n' "$PG_CONNINFO" >"$TW/pg.conninfo"
    openssl rand -hex 32 >"$TW/pg.key"
    chmod 600 "$TW/pg.conninfo" "$TW/pg.key"
  fi
  cat <<EOF
[store]
type = "postgresql"
conninfo_file = "$TW/pg.conninfo"
encryption_key_file = "$TW/pg.key"
instance = "$1"

EOF
}
