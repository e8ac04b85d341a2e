# Three certloop instances on one PostgreSQL (source after lib.sh and
# pg.sh): instance I (a, b, c) has its own state directory $TW/I/state,
# deploys into $TW/I/out/NAME/, and answers control on $TW/I/control.sock.
# http-01: with FLEET_HTTP=webroot the tokens go to one shared webroot
# served by python3's http.server on Pebble's http-01 port (whichever
# instance holds a certificate's lease answers); with FLEET_HTTP=listeners
# each instance's own listener answers on 127.0.0.K (a: 1, b: 2, c: 3) and
# Pebble resolves the names round-robin over the three, so most
# challenges reach an instance that did not order (the fleet's shared
# tokens answer them).
#
#   fleet_start_web                   # the shared webroot's server, or the A records
#   fleet_config a N [EXTRA]          # $TW/a.toml: N certificates f00.. (EXTRA: [daemon] lines)
#   fleet_daemon a                    # `certloop run` in the background: FLEET_PID[a]
#   fleet_wait_deployed SECONDS N a b c

declare -A FLEET_PID

fleet_start_web() {
  if [ "${FLEET_HTTP:-webroot}" = listeners ]; then
    return 0 # fleet_config adds each name's A record
  fi
  mkdir -p "$TW/www"
  python3 -m http.server --bind 127.0.0.1 --directory "$TW/www" "$TW_HTTP_PORT" \
    >"$TW/www.log" 2>&1 &
  TW_PIDS+=($!)
  # (a python3 start takes seconds on a loaded machine)
  tw_wait 30 curl -s -o /dev/null "http://127.0.0.1:$TW_HTTP_PORT/" && return 0
  tw_fail "the webroot's server did not start"
  return 1
}

# fleet_config INSTANCE N [DAEMON_LINES]: certificates f00 .. f(N-1), each
# named fNN.test, EC P-256, a files deploy into $TW/INSTANCE/out/fNN/.
fleet_config() {
  local inst=$1 n=$2 extra=${3:-} i name http
  mkdir -p "$TW/$inst/out"
  mkdir -p -m 700 "$TW/$inst/state"
  if [ "${FLEET_HTTP:-webroot}" = listeners ]; then
    case $inst in a) k=1 ;; b) k=2 ;; *) k=3 ;; esac
    http="listen = [\"127.0.0.$k:$TW_HTTP_PORT\"]"
    for ((i = 0; i < n; i++)); do
      name=$(printf 'f%02d' "$i")
      [ -e "$TW/a-record.$name" ] && continue
      curl -fsS -X POST -d "{\"host\":\"$name.test.\",\"addresses\":[\"127.0.0.$((i % 3 + 1))\"]}" \
        "http://127.0.0.1:$TW_DNS_MGMT_PORT/add-a" >/dev/null || tw_fail "challtestsrv add-a $name"
      touch "$TW/a-record.$name"
    done
  else
    http=$(printf 'listen = []\nwebroot = "%s"' "$TW/www")
  fi
  {
    cat <<EOF2
[daemon]
state_dir = "$TW/$inst/state"
control_socket = "$TW/$inst/control.sock"
max_concurrent_orders = ${FLEET_MAXC:-4}
log_level = "${TW_LOG_LEVEL:-info}"
$extra

[http01]
$http

[ca.pebble]
directory = "$TW_DIRECTORY"
contact = ["mailto:ops@example.org"]
agree_tos = true
trust = "$TW/tls-ca.pem"
max_parallel_requests = 1

EOF2
    pg_store_config "$inst"
    echo "lease_time = \"${FLEET_LEASE:-6s}\""
    echo
    for ((i = 0; i < n; i++)); do
      name=$(printf 'f%02d' "$i")
      mkdir -p "$TW/$inst/out/$name"
      cat <<EOF2
[certificate.$name]
domains = ["$name.test"]
ca = "pebble"
key = "ec-p256"

[[certificate.$name.deploy]]
type = "files"
fullchain = "$TW/$inst/out/$name/fullchain.pem"
key = "$TW/$inst/out/$name/key.pem"

EOF2
    done
  } >"$TW/$inst.toml"
  "$CERTLOOP" check -c "$TW/$inst.toml" >/dev/null || { tw_fail "$inst: config invalid"; tw_done; }
}

fleet_daemon() {
  "$CERTLOOP" run -c "$TW/$1.toml" >"$TW/$1.out" 2>>"$TW/$1.err" &
  FLEET_PID[$1]=$!
  TW_PIDS+=("${FLEET_PID[$1]}")
}

# How many of the N certificates INSTANCE has deployed (a fullchain whose
# key matches).
fleet_n_deployed() {
  local inst=$1 n=$2 i name c=0
  for ((i = 0; i < n; i++)); do
    name=$(printf 'f%02d' "$i")
    [ -s "$TW/$inst/out/$name/fullchain.pem" ] && [ -s "$TW/$inst/out/$name/key.pem" ] &&
      c=$((c + 1))
  done
  echo "$c"
}

# fleet_wait_deployed SECONDS N INSTANCE...: until each has deployed all N.
fleet_wait_deployed() {
  local secs=$1 n=$2 t inst all
  shift 2
  for ((t = 0; t < secs * 5; t++)); do
    all=1
    for inst in "$@"; do
      [ "$(fleet_n_deployed "$inst" "$n")" = "$n" ] || { all=0; break; }
    done
    [ "$all" = 1 ] && return 0
    sleep 0.2
  done
  for inst in "$@"; do
    tw_log "$inst deployed $(fleet_n_deployed "$inst" "$n") of $n"
  done
  return 1
}

# fleet_check_same N INSTANCE...: every certificate's deployed files are
# byte-identical on every instance, its key matches it, it verifies, and it
# is the database's current generation.
fleet_check_same() {
  local n=$1 first=$2 i name inst
  shift
  for ((i = 0; i < n; i++)); do
    name=$(printf 'f%02d' "$i")
    tw_check_pair "$TW/$first/out/$name/fullchain.pem" "$TW/$first/out/$name/key.pem" ||
      tw_fail "$first: $name: key does not match the certificate"
    tw_verify_fullchain "$TW/$first/out/$name/fullchain.pem" || tw_fail "$name: chain does not verify"
    for inst in "$@"; do
      cmp -s "$TW/$first/out/$name/fullchain.pem" "$TW/$inst/out/$name/fullchain.pem" ||
        tw_fail "$name: fullchain differs between $first and $inst"
      cmp -s "$TW/$first/out/$name/key.pem" "$TW/$inst/out/$name/key.pem" ||
        tw_fail "$name: key differs between $first and $inst"
    done
    [ "$(pg_sql "SELECT fullchain_pem FROM certloop_generations g JOIN certloop_certificates c
        ON c.name = g.cert AND c.current_generation = g.generation WHERE c.name = '$name'")" = \
      "$(cat "$TW/$first/out/$name/fullchain.pem")" ] ||
      tw_fail "$name: the deployed fullchain is not the current generation's"
  done
}

# Orders Pebble was asked for (newOrder).
fleet_n_orders() {
  grep -c "POST /order-plz" "$TW/pebble.log"
}
