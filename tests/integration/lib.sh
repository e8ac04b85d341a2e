# The Pebble test world for integration tests (source it from bash):
# free loopback ports, a throwaway CA and leaf for Pebble's own HTTPS, a
# mock DNS server answering every name with 127.0.0.1 (pebble-challtestsrv),
# Pebble itself, its root for `openssl verify`, and a certloop config
# writer. Everything lives under $TW (a temp dir) and is stopped and removed
# on EXIT. A missing tool skips the test (exit 77) unless CI=true.
#
#   . "$(dirname "$0")/lib.sh"
#   tw_init issue                 # name for the temp dir
#   tw_start                      # DNS + Pebble (env: PEBBLE_WFE_NONCEREJECT, TW_HTTP_PORT)
#   tw_config_begin > "$TW/certloop.toml"; tw_cert www ec-p256 www.test >> ...
#   "$CERTLOOP" run --once -c "$TW/certloop.toml"

CERTLOOP=${CERTLOOP:-${BUILD_DIR:-build}/certloop}
TW_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TW=
TW_PIDS=()
TW_FAILS=0

tw_log() {
  echo "[$(date +%H:%M:%S)] $*" >&2
}

tw_fail() {
  echo "FAIL: $*" >&2
  TW_FAILS=$((TW_FAILS + 1))
}

# tw_skip MESSAGE: exit 77, or fail when CI=true (a missing dependency must
# not pass silently there).
tw_skip() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL (CI): $*" >&2
    exit 1
  fi
  echo "SKIP: $*" >&2
  exit 77
}

tw_need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || tw_skip "$t not found"
  done
}

tw_cleanup() {
  local p
  for p in "${TW_PIDS[@]}"; do
    kill "$p" 2>/dev/null
  done
  for p in "${TW_PIDS[@]}"; do
    wait "$p" 2>/dev/null
  done
  if [ -n "$TW" ] && [ -d "$TW" ]; then
    python3 "$TW_LIB_DIR/port.py" --release "$TW"
    if [ -n "${TW_KEEP:-}" ]; then
      echo "test world kept in $TW" >&2
    else
      rm -rf "$TW"
    fi
  fi
}

# tw_init NAME: temp dir, traps, tool checks.
tw_init() {
  tw_need pebble pebble-challtestsrv openssl curl python3
  tw_init_bare "$1"
}

# tw_init_bare NAME: the temp dir $TW and the EXIT trap only, for tests
# that need no Pebble.
tw_init_bare() {
  if [ ! -x "$CERTLOOP" ]; then
    echo "no certloop binary at $CERTLOOP" >&2
    exit 1
  fi
  TW=$(mktemp -d "/tmp/certloop-${1:-it}-XXXXXX")
  trap tw_cleanup EXIT
}

# tw_run EXPECTED_CODE ARGS...: runs certloop ARGS, output in $TW/out and
# $TW/err; a failure (showing both) and status 1 when it exits otherwise.
tw_run() {
  local want=$1 got
  shift
  "$CERTLOOP" "$@" >"$TW/out" 2>"$TW/err"
  got=$?
  if [ "$got" != "$want" ]; then
    tw_fail "certloop $*: exit $got, expected $want"
    sed 's/^/  stdout: /' "$TW/out" >&2
    sed 's/^/  stderr: /' "$TW/err" >&2
    return 1
  fi
}

# tw_has FILE LINE: a failure (showing FILE) unless FILE holds exactly LINE.
tw_has() {
  if ! grep -qxF -- "$2" "$1"; then
    tw_fail "expected line in $(basename "$1"): $2"
    sed 's/^/  | /' "$1" >&2
  fi
}

# tw_port [HOST...]: a loopback port free for TCP and UDP (on each HOST,
# default 127.0.0.1), below the kernel's ephemeral range and reserved for
# this world until its cleanup (tests/integration/port.py says why).
tw_port() {
  python3 "$TW_LIB_DIR/port.py" "${TW:?tw_port before tw_init}" "$@"
}

# tw_ports N: N such ports (on 127.0.0.1), one a line, from one python3 start
# (each start took 2-3 s on a loaded 2-core machine: six of them were most
# of a test world's start).
tw_ports() {
  python3 "$TW_LIB_DIR/port.py" -n "$1" "${TW:?tw_ports before tw_init}"
}

# tw_tls: a throwaway CA and a leaf for 127.0.0.1/localhost (Pebble's HTTPS).
tw_tls() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=certloop test world CA" -keyout "$TW/tls-ca.key" -out "$TW/tls-ca.pem" \
    >/dev/null 2>&1 || return 1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$TW/tls.key" -out "$TW/tls.csr" >/dev/null 2>&1 || return 1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    >"$TW/tls.ext"
  openssl x509 -req -in "$TW/tls.csr" -CA "$TW/tls-ca.pem" -CAkey "$TW/tls-ca.key" \
    -CAcreateserial -days 2 -extfile "$TW/tls.ext" -out "$TW/tls.pem" >/dev/null 2>&1
}

# tw_wait_http URL [CAFILE] [SECONDS] [PID]: bounded poll until URL
# answers; 1 at once when PID (the server's process) has exited.
tw_wait_http() {
  local url=$1 ca=${2:-} secs=${3:-20} pid=${4:-} i
  for ((i = 0; i < secs * 10; i++)); do
    [ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || return 1
    if [ -n "$ca" ]; then
      curl -fsS --max-time 2 --cacert "$ca" "$url" >/dev/null 2>&1 && return 0
    else
      curl -fsS --max-time 2 "$url" >/dev/null 2>&1 && return 0
    fi
    sleep 0.1
  done
  return 1
}

# tw_start: the DNS mock (or $TW_DNS_SERVER, IP:PORT, when set), then Pebble
# (PEBBLE_VA_NOSLEEP= (empty) keeps its random 0-15 s validation delay). Sets TW_DNS_PORT, TW_ACME_PORT,
# TW_MGMT_PORT, TW_HTTP_PORT (where Pebble validates http-01: certloop's
# listener; preset it to point Pebble elsewhere), TW_DIRECTORY, and fetches
# the issuing root to $TW/root.pem (alternate roots, PEBBLE_ALTERNATE_ROOTS=N,
# to $TW/root-1.pem ... root-N.pem).
tw_start() {
  tw_tls || { tw_fail "cannot make the TLS certificates"; return 1; }
  local ports
  mapfile -t ports < <(tw_ports 6)
  [ "${#ports[@]}" = 6 ] || { tw_fail "no free ports for the test world"; return 1; }
  TW_DNS_PORT=${ports[0]}
  TW_DNS_MGMT_PORT=${ports[1]}
  local dns="127.0.0.1:$TW_DNS_PORT" dns_pid=
  TW_ACME_PORT=${ports[2]}
  TW_MGMT_PORT=${ports[3]}
  TW_HTTP_PORT=${TW_HTTP_PORT:-${ports[4]}}
  TW_TLS_PORT=${ports[5]}
  if [ -n "${TW_DNS_SERVER:-}" ]; then
    dns=$TW_DNS_SERVER # e.g. Knot (knot.sh) for dns-01
  else
    pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
      -dns01 "127.0.0.1:$TW_DNS_PORT" -management "127.0.0.1:$TW_DNS_MGMT_PORT" \
      -http01 "" -https01 "" -tlsalpn01 "" >"$TW/dns.log" 2>&1 &
    dns_pid=$!
    TW_PIDS+=($!)
  fi
  cat >"$TW/pebble.json" <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:$TW_ACME_PORT",
    "managementListenAddress": "127.0.0.1:$TW_MGMT_PORT",
    "certificate": "$TW/tls.pem",
    "privateKey": "$TW/tls.key",
    "httpPort": $TW_HTTP_PORT,
    "tlsPort": $TW_TLS_PORT,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": ${TW_EAB_REQUIRED:-false},
    "externalAccountMACKeys": {
      "kid-certloop": "$TW_EAB_HMAC"
    }
  }
}
EOF
  PEBBLE_VA_NOSLEEP=${PEBBLE_VA_NOSLEEP-1} PEBBLE_WFE_NONCEREJECT=${PEBBLE_WFE_NONCEREJECT:-0} \
    PEBBLE_AUTHZREUSE=${PEBBLE_AUTHZREUSE:-0} PEBBLE_ALTERNATE_ROOTS=${PEBBLE_ALTERNATE_ROOTS:-0} \
    pebble -config "$TW/pebble.json" -dnsserver "$dns" >"$TW/pebble.log" 2>&1 &
  TW_PIDS+=($!)
  TW_DIRECTORY="https://127.0.0.1:$TW_ACME_PORT/dir"
  # a Pebble that exits (a port taken) fails at once, not after the 30 s a
  # slow start may take (test_control_daemon failed in 36 s instead of 4)
  if ! tw_wait_http "$TW_DIRECTORY" "$TW/tls-ca.pem" 30 "$!"; then
    tw_fail "Pebble did not come up"
    sed 's/^/  pebble: /' "$TW/pebble.log" >&2
    return 1
  fi
  if [ -n "$dns_pid" ] && ! kill -0 "$dns_pid" 2>/dev/null; then
    tw_fail "pebble-challtestsrv exited"
    sed 's/^/  dns: /' "$TW/dns.log" >&2
    return 1
  fi
  if ! curl -fsS --cacert "$TW/tls-ca.pem" "https://127.0.0.1:$TW_MGMT_PORT/roots/0" \
    -o "$TW/root.pem"; then
    tw_fail "cannot fetch Pebble's root"
    return 1
  fi
  local r
  for ((r = 1; r <= ${PEBBLE_ALTERNATE_ROOTS:-0}; r++)); do
    curl -fsS --cacert "$TW/tls-ca.pem" "https://127.0.0.1:$TW_MGMT_PORT/roots/$r" \
      -o "$TW/root-$r.pem" || { tw_fail "cannot fetch Pebble's root $r"; return 1; }
  done
  tw_log "test world: pebble $TW_DIRECTORY, dns $dns, http-01 port $TW_HTTP_PORT"
}

# The EAB MAC key Pebble knows as kid-certloop (TW_EAB_REQUIRED=true makes
# Pebble refuse accounts without External Account Binding).
TW_EAB_HMAC=${TW_EAB_HMAC:-Y2VydGxvb3AtdGVzdC13b3JsZC1lYWItbWFjLWtleS1ub3Qtc2VjcmV0LTAx}

# tw_config_head [MAX_CONCURRENT] [LISTEN_PORT]: [daemon], [http01] and
# [ca.pebble] for the test world.
tw_config_head() {
  local maxc=${1:-64} port=${2:-$TW_HTTP_PORT}
  mkdir -p "$TW/state"
  cat <<EOF
[daemon]
state_dir = "$TW/state"
control_socket = "$TW/control.sock"
max_concurrent_orders = $maxc
log_level = "${TW_LOG_LEVEL:-info}"

[http01]
listen = ["127.0.0.1:$port"]

[ca.pebble]
directory = "$TW_DIRECTORY"
contact = ["mailto:ops@example.org"]
agree_tos = true
trust = "$TW/tls-ca.pem"
# Pebble 2.4 deadlocks when an authorization is fetched while new orders are
# created (see etc/certloop.toml): one request at a time, orders still concurrent.
max_parallel_requests = ${TW_CA_PARALLEL:-1}
${TW_CA_EXTRA:-}
EOF
}

# tw_config_cert NAME KEYTYPE DOMAIN...: a certificate with a files deploy
# into $TW/out/NAME/ (fullchain, key, chain, cert). $TW_CERT_EXTRA (lines)
# goes into the [certificate.NAME] table. Keys printed right after this go
# into the files deploy table; further deploy tables may follow.
# tw_config_api PORT TOKENS_FILE: an [api] section listening on 127.0.0.1:PORT
tw_config_api() {
  printf '[api]\nlisten = ["127.0.0.1:%s"]\ntokens_file = "%s"\n\n' "$1" "$2"
}

tw_config_cert() {
  local name=$1 key=$2 d list=""
  shift 2
  for d in "$@"; do
    list="$list${list:+, }\"$d\""
  done
  mkdir -p "$TW/out/$name"
  cat <<EOF
[certificate.$name]
domains = [$list]
ca = "pebble"
key = "$key"
${TW_CERT_EXTRA:-}

[[certificate.$name.deploy]]
type = "files"
fullchain = "$TW/out/$name/fullchain.pem"
key = "$TW/out/$name/key.pem"
cert = "$TW/out/$name/cert.pem"
chain = "$TW/out/$name/chain.pem"

EOF
}

# tw_daemon_start CONF OUT ERR [SECONDS COMMAND...]: `certloop run -c CONF`
# in the background (stdout to OUT, stderr to ERR), stopped on EXIT; sets
# TW_DAEMON_PID. With COMMAND, then waits as tw_daemon_wait SECONDS COMMAND
# does and returns what it returns.
tw_daemon_start() {
  local conf=$1 out=$2 err=$3
  shift 3
  "$CERTLOOP" run -c "$conf" >"$out" 2>"$err" &
  TW_DAEMON_PID=$!
  TW_PIDS+=("$TW_DAEMON_PID")
  [ $# -eq 0 ] || tw_daemon_wait "$@"
}

# tw_daemon_wait SECONDS COMMAND...: runs COMMAND (a function or program)
# every 0.1 s until it succeeds, the daemon ($TW_DAEMON_PID) exits, or
# SECONDS pass; returns COMMAND's last status. A $(...) among the arguments
# is expanded once, before the first try: put it in a function instead.
tw_daemon_wait() {
  local secs=$1 t
  shift
  for ((t = 0; t < secs * 10; t++)); do
    "$@" && return 0
    kill -0 "$TW_DAEMON_PID" 2>/dev/null || break
    sleep 0.1
  done
  "$@"
}

# tw_wait SECONDS COMMAND...: runs COMMAND (a function or program) every
# 0.1 s until it succeeds or SECONDS (of wall time) pass; returns COMMAND's
# last status. For a helper process coming up (a python3 start took 2-3 s
# on a loaded 2-core machine) or any event without a daemon to watch: give
# it several times what it takes under load. The same note on $(...) as
# for tw_daemon_wait.
tw_wait() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.1
  done
}

# tw_daemon_stop [SECONDS]: SIGTERM to the daemon ($TW_DAEMON_PID), then
# waits up to SECONDS (default 30) for it to exit; if it still runs, a
# failure and SIGKILL. Returns its exit status.
tw_daemon_stop() {
  local secs=${1:-30} t
  kill -TERM "$TW_DAEMON_PID" 2>/dev/null
  for ((t = 0; t < secs * 20; t++)); do
    kill -0 "$TW_DAEMON_PID" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$TW_DAEMON_PID" 2>/dev/null; then
    tw_fail "the daemon still runs $secs s after SIGTERM"
    kill -KILL "$TW_DAEMON_PID"
  fi
  wait "$TW_DAEMON_PID"
}

# tw_check_generations: every stored generation's cert.pem and
# fullchain.pem belong to its key.pem (one failure per mismatch).
tw_check_generations() {
  local gen
  for gen in "$TW"/state/certs/*/*/; do
    [ -f "$gen/cert.pem" ] || continue
    tw_check_pair "$gen/cert.pem" "$gen/key.pem" || tw_fail "mismatched pair in $gen"
    tw_check_pair "$gen/fullchain.pem" "$gen/key.pem" || tw_fail "mismatched fullchain in $gen"
  done
}

# tw_config_many N FORMAT MAX_ORDERS: writes $TW/certloop.toml with N EC
# certificates named by printf FORMAT i (for the name NAME.test) and checks
# it; a failure and the end of the test when it is refused.
tw_config_many() {
  local n=$1 fmt=$2 maxc=$3 i name
  {
    tw_config_head "$maxc"
    for ((i = 0; i < n; i++)); do
      name=$(printf "$fmt" "$i")
      tw_config_cert "$name" ec-p256 "$name.test"
    done
  } >"$TW/certloop.toml"
  "$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null || { tw_fail "config invalid"; tw_done; }
}

# tw_check_many N FORMAT: every certificate of tw_config_many is deployed,
# its pair matches, its deployed fullchain is the current generation's.
tw_check_many() {
  local n=$1 fmt=$2 i name
  for ((i = 0; i < n; i++)); do
    name=$(printf "$fmt" "$i")
    tw_check_deployed "$name" || continue
    tw_check_pair "$TW/out/$name/cert.pem" "$TW/out/$name/key.pem" ||
      tw_fail "$name: deployed cert/key mismatched"
    cmp -s "$TW/out/$name/fullchain.pem" "$TW/state/certs/$name/current/fullchain.pem" ||
      tw_fail "$name: the deployed fullchain is not the current generation's"
  done
}

# tw_check_deployed NAME: $TW/out/NAME/fullchain.pem is there, belongs to
# key.pem beside it and verifies against Pebble's root; a failure and
# status 1 otherwise.
tw_check_deployed() {
  local out=$TW/out/$1
  [ -s "$out/fullchain.pem" ] || { tw_fail "$1: not deployed"; return 1; }
  tw_check_pair "$out/fullchain.pem" "$out/key.pem" || { tw_fail "$1: deployed pair mismatched"; return 1; }
  tw_verify_fullchain "$out/fullchain.pem" || { tw_fail "$1: chain does not verify"; return 1; }
}

# tw_n_deployed: how many $TW/out/*/fullchain.pem are not empty.
tw_n_deployed() {
  local n=0 f
  for f in "$TW"/out/*/fullchain.pem; do
    [ -s "$f" ] && n=$((n + 1))
  done
  echo "$n"
}

# tw_n_orders: how many order files (orders in flight) the state holds.
tw_n_orders() {
  find "$TW/state/orders" -name '*.json' 2>/dev/null | wc -l
}

# tw_knot_start NAME: the test world with Knot as Pebble's DNS server
# (source knot.sh too): temp dirs and one EXIT trap for both, Knot's
# primary on 127.0.0.1:$KNOT_PORT (zone test.), then tw_start (the same
# environment knobs, e.g. PEBBLE_VA_NOSLEEP=).
tw_knot_start() {
  tw_init "$1"
  command -v kdig >/dev/null || tw_skip "kdig not found"
  knot_init "$1"
  trap 'knot_cleanup; tw_cleanup' EXIT
  knot_start || { tw_fail "knot did not start"; tw_done; }
  TW_DNS_SERVER="127.0.0.1:$KNOT_PORT" tw_start || exit 1
}

# tw_knot_config_head [MAX_CONCURRENT] [SECRET_FILE] [PROPAGATION_TIMEOUT]:
# tw_config_head with Knot as certloop's resolver, then the [dns.knot]
# rfc2136 solver (TSIG acme-key. with SECRET_FILE, default $KW/tsig.secret;
# propagation checked on Knot, default timeout 60s). A certificate uses it
# with TW_CERT_EXTRA=$TW_KNOT_DNS01.
# shellcheck disable=SC2034 # used by the tests that source this
TW_KNOT_DNS01=$'challenge = "dns-01"\ndns = "knot"'
tw_knot_config_head() {
  tw_config_head "${1:-64}" | sed "s|^log_level = .*|&\nresolvers = [\"127.0.0.1:$KNOT_PORT\"]|"
  cat <<EOF
[dns.knot]
type = "rfc2136"
server = "127.0.0.1:$KNOT_PORT"
zone = "test."
tsig = { name = "acme-key.", algorithm = "hmac-sha256", secret_file = "${2:-$KW/tsig.secret}" }
nameservers = ["127.0.0.1:$KNOT_PORT"]
propagation_timeout = "${3:-60s}"

EOF
}

# tw_config_import NAME DOMAIN CERT KEY: an imported certificate (no CA)
# with a files deploy of fullchain and key into $TW/out/NAME/. Keys printed
# right after this go into the files deploy table.
tw_config_import() {
  mkdir -p "$TW/out/$1"
  cat <<EOF
[certificate.$1]
domains = ["$2"]
import = { cert = "$3", key = "$4" }

[[certificate.$1.deploy]]
type = "files"
fullchain = "$TW/out/$1/fullchain.pem"
key = "$TW/out/$1/key.pem"
EOF
}

# tw_receiver_start [ARGS...]: tools/webhook-receiver on a free loopback
# port with a fresh secret in $TW/webhook.secret (0600); what it receives
# goes to $TW/received, one JSON line per delivery. ARGS go to the receiver
# (e.g. --fail N). Sets TW_RECEIVER_PORT; returns 1 when it does not start.
tw_receiver_start() {
  local recv=${BUILD_DIR:-build}/webhook-receiver t
  [ -x "$recv" ] || { echo "no webhook-receiver at $recv" >&2; return 1; }
  printf 'whsec-%s\n' "$RANDOM$RANDOM" >"$TW/webhook.secret"
  chmod 600 "$TW/webhook.secret"
  "$recv" --port-file "$TW/receiver.port" --secret-file "$TW/webhook.secret" "$@" \
    >"$TW/received" 2>"$TW/receiver.log" &
  TW_PIDS+=($!)
  for ((t = 0; t < 50; t++)); do
    [ -s "$TW/receiver.port" ] && break
    sleep 0.1
  done
  TW_RECEIVER_PORT=$(cat "$TW/receiver.port" 2>/dev/null) && [ -n "$TW_RECEIVER_PORT" ]
}

# tw_flood PORT N: N connections to 127.0.0.1:PORT opened and held without
# a byte sent, in the background ($FLOOD_PID; a connection the server
# closes is not reopened); returns once all are open ("held N" in
# $TW/flood.state), 1 when they could not be within 30 s.
tw_flood() {
  python3 - "$1" "$2" "$TW/flood.state" >"$TW/flood.log" 2>&1 <<'EOF' &
import os, resource, signal, socket, sys, time
port, n, state = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
socks = []
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    socks.append(s)
time.sleep(0.5)
with open(state + ".tmp", "w") as f:
    f.write("held %d\n" % len(socks))
os.rename(state + ".tmp", state)
while True:
    time.sleep(1)
EOF
  FLOOD_PID=$!
  TW_PIDS+=("$FLOOD_PID")
  # (a python3 start alone took 2-3 s on a loaded machine)
  tw_wait 30 test -s "$TW/flood.state"
}

# tw_pubkey FILE: the public key (PEM) of a private key or certificate.
tw_pubkey() {
  if grep -q "BEGIN CERTIFICATE" "$1"; then
    openssl x509 -in "$1" -noout -pubkey 2>/dev/null
  else
    openssl pkey -in "$1" -pubout 2>/dev/null
  fi
}

# tw_check_pair CERTPEM KEYPEM: the certificate's public key is the key's.
tw_check_pair() {
  local a b
  a=$(tw_pubkey "$1")
  b=$(tw_pubkey "$2")
  [ -n "$a" ] && [ "$a" = "$b" ]
}

# tw_verify_fullchain FULLCHAIN: verifies leaf against $TW/root.pem with the
# rest of the file as untrusted intermediates.
tw_verify_fullchain() {
  local f=$1 dir
  dir=$(mktemp -d "$TW/v-XXXXXX")
  awk -v d="$dir" '/BEGIN CERTIFICATE/{n++} {print > (d "/c" n ".pem")}' "$f"
  cat "$dir"/c[2-9].pem >"$dir/rest.pem" 2>/dev/null
  if [ -s "$dir/rest.pem" ]; then
    openssl verify -CAfile "$TW/root.pem" -untrusted "$dir/rest.pem" "$dir/c1.pem" >/dev/null 2>&1
  else
    openssl verify -CAfile "$TW/root.pem" "$dir/c1.pem" >/dev/null 2>&1
  fi
  local rc=$?
  rm -rf "$dir"
  return $rc
}

# tw_sans CERTPEM: the DNS SANs, one per line, sorted.
tw_sans() {
  openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null | tr ',' '\n' |
    sed -n 's/^ *DNS://p' | sort
}

# tw_mode FILE: octal permission bits.
tw_mode() {
  stat -c %a "$1"
}

tw_done() {
  if [ "$TW_FAILS" -gt 0 ]; then
    echo "$TW_FAILS check(s) failed" >&2
    exit 1
  fi
  echo "ok"
  exit 0
}
