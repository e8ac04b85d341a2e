# Helpers for bench/issue.sh, on top of tests/integration/lib.sh (source that
# first): a Pebble restartable per phase with or without its validation
# delay, a file server for the peers' http-01 tokens, CPU readings from
# /proc, and result rows rendered as markdown.

BW_PEBBLE_PID=
BW_DNS_PID=
BW_WEB_PID=
BW_ROWS=

# bw_ticks PID: utime+stime of a live process, in clock ticks (empty when
# the process is gone).
bw_ticks() {
  [ -r "/proc/$1/stat" ] && awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null
}

# bw_cpu_delta T0 T1: seconds between two bw_ticks readings, empty when
# either is missing.
bw_cpu_delta() {
  [ -n "$1" ] && [ -n "$2" ] && echo "($2 - $1) / $BW_HZ" | bc -l
}

# ms_of "2026-11-25T05:09:10.416Z ..." (a daemon's log line) -> ms since the epoch
ms_of() {
  local ts=${1%% *}
  echo $(($(date -u -d "${ts%.*}" +%s) * 1000 + 10#$(cut -d. -f2 <<<"${ts%Z}")))
}

# status_kib PID FIELD: a /proc/PID/status figure in KiB (VmRSS, VmHWM)
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# median N...: the middle one of the numbers (the upper of the two middle ones)
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# bw_load: the 1-minute load average (other work on the machine skews wall
# times; CPU times much less).
bw_load() {
  cut -d' ' -f1 /proc/loadavg
}

# bw_config_certs N: what tw_config_cert writes for certificates c0..c(N-1)
# (EC P-256; c<i>.test, and www.c<i>.test when i is odd), without a fork
# per certificate.
bw_config_certs() {
  local n=$1 i
  for ((i = 0; i < n; i++)); do
    echo "$TW/out/c$i"
  done | xargs mkdir -p
  awk -v n="$n" -v tw="$TW" 'BEGIN {
    for (i = 0; i < n; i++) {
      d = "\"c" i ".test\""
      if (i % 2) d = d ", \"www.c" i ".test\""
      o = tw "/out/c" i
      printf "[certificate.c%d]\ndomains = [%s]\nca = \"pebble\"\nkey = \"ec-p256\"\n\n", i, d
      printf "[[certificate.c%d.deploy]]\ntype = \"files\"\n", i
      printf "fullchain = \"%s/fullchain.pem\"\nkey = \"%s/key.pem\"\n", o, o
      printf "cert = \"%s/cert.pem\"\nchain = \"%s/chain.pem\"\n\n", o, o
    }
  }'
}

# bw_watchdog PID LOG MARKER: while PID runs (at most 900 s), if LOG (Pebble's
# request log) stops growing for 20 s, Pebble is taken as stuck: SIGQUIT
# makes it dump its goroutines into its log and exit, and MARKER is created.
# Pebble 2.4's in-memory store can deadlock under many concurrent requests.
bw_watchdog() {
  local pid=$1 log=$2 marker=$3 last=-1 size still=0 i
  for ((i = 0; i < 450; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    size=$(stat -c %s "$log" 2>/dev/null || echo 0)
    if [ "$size" = "$last" ]; then
      still=$((still + 1))
    else
      still=0
      last=$size
    fi
    if [ "$still" -ge 10 ] && [ -n "$BW_PEBBLE_PID" ]; then
      touch "$marker"
      kill -QUIT "$BW_PEBBLE_PID" 2>/dev/null
      return 0
    fi
    sleep 2
  done
}
BW_HZ=$(getconf CLK_TCK)

# bw_world_init: TLS pieces, ports, the DNS mock (kept for every phase) and
# the file server for the peers' webroot. Sets BW_CL_PORT (certloop's
# http-01 listener) and BW_WEB_PORT (the file server).
bw_world_init() {
  tw_tls || { echo "cannot make the TLS certificates" >&2; return 1; }
  TW_DNS_PORT=$(tw_port)
  TW_DNS_MGMT_PORT=$(tw_port)
  TW_ACME_PORT=$(tw_port)
  TW_MGMT_PORT=$(tw_port)
  TW_TLS_PORT=$(tw_port)
  BW_CL_PORT=$(tw_port)
  BW_WEB_PORT=$(tw_port)
  TW_DIRECTORY="https://127.0.0.1:$TW_ACME_PORT/dir"
  pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
    -dns01 "127.0.0.1:$TW_DNS_PORT" -management "127.0.0.1:$TW_DNS_MGMT_PORT" \
    -http01 "" -https01 "" -tlsalpn01 "" >"$TW/dns.log" 2>&1 &
  BW_DNS_PID=$!
  TW_PIDS+=("$BW_DNS_PID")
  BW_WEBROOT=$TW/webroot
  mkdir -p "$BW_WEBROOT/.well-known/acme-challenge"
  python3 -m http.server --bind 127.0.0.1 --directory "$BW_WEBROOT" "$BW_WEB_PORT" \
    >"$TW/web.log" 2>&1 &
  BW_WEB_PID=$!
  TW_PIDS+=("$BW_WEB_PID")
  echo probe >"$BW_WEBROOT/.well-known/acme-challenge/probe"
  tw_wait_http "http://127.0.0.1:$BW_WEB_PORT/.well-known/acme-challenge/probe" "" 20 || {
    echo "the file server did not come up" >&2
    return 1
  }
  rm -f "$BW_WEBROOT/.well-known/acme-challenge/probe"
  BW_ROWS=$TW/rows.tsv
  : >"$BW_ROWS"
}

# bw_pebble_start SLEEP HTTP_PORT: a fresh Pebble (nothing kept from an
# earlier phase) validating http-01 on HTTP_PORT; SLEEP=0 sets
# PEBBLE_VA_NOSLEEP=1, SLEEP=1 keeps Pebble's default validation delay.
# Nonces are never rejected on purpose; authorizations are never reused.
bw_pebble_start() {
  local sleep=$1 http=$2 nosleep=()
  [ "$sleep" = 0 ] && nosleep=(PEBBLE_VA_NOSLEEP=1)
  cat >"$TW/pebble.json" <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:$TW_ACME_PORT",
    "managementListenAddress": "127.0.0.1:$TW_MGMT_PORT",
    "certificate": "$TW/tls.pem",
    "privateKey": "$TW/tls.key",
    "httpPort": $http,
    "tlsPort": $TW_TLS_PORT,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false
  }
}
EOF
  env -u PEBBLE_VA_NOSLEEP -u PEBBLE_VA_ALWAYS_VALID "${nosleep[@]}" \
    PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
    pebble -config "$TW/pebble.json" -dnsserver "127.0.0.1:$TW_DNS_PORT" \
    >"$TW/pebble.log" 2>&1 &
  BW_PEBBLE_PID=$!
  TW_PIDS+=("$BW_PEBBLE_PID")
  if ! tw_wait_http "$TW_DIRECTORY" "$TW/tls-ca.pem" 30; then
    echo "Pebble did not come up" >&2
    tail -20 "$TW/pebble.log" >&2
    return 1
  fi
  curl -fsS --cacert "$TW/tls-ca.pem" "https://127.0.0.1:$TW_MGMT_PORT/roots/0" -o "$TW/root.pem"
}

bw_pebble_stop() {
  [ -n "$BW_PEBBLE_PID" ] || return 0
  kill "$BW_PEBBLE_PID" 2>/dev/null
  wait "$BW_PEBBLE_PID" 2>/dev/null
  BW_PEBBLE_PID=
}

# bw_row PHASE CLIENT MODE N OK WALL CPU PEBBLE_CPU RSS_KIB NOTE: one result
# (times in seconds).
bw_row() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$BW_ROWS"
}

# bw_render: markdown tables, one per phase, from the rows.
bw_render() {
  awk -F'\t' '
    function ms(x, n) { return (x == "" || n == 0) ? "–" : sprintf("%.1f", 1000 * x / n) }
    function s(x) { return x == "" ? "–" : sprintf("%.2f", x) }
    {
      if ($1 != phase) {
        phase = $1
        printf "\n### %s\n\n", phase
        print "| client | how | N | issued | wall s | wall/cert ms | client CPU s | client CPU/cert ms | Pebble CPU s | Pebble CPU/cert ms | peak RSS MiB | note |"
        print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
      }
      rss = $9 == "" ? "–" : sprintf("%.1f", $9 / 1024)
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
        $2, $3, $4, $5, s($6), ms($6, $4), s($7), ms($7, $4), s($8), ms($8, $4), rss, $10
    }' "$BW_ROWS"
}

# bw_field CLIENT MODE N COLUMN [PHASE_PREFIX]: a value from an earlier row.
bw_field() {
  awk -F'\t' -v c="$1" -v m="$2" -v n="$3" -v col="$4" -v p="${5:-}" \
    '$2 == c && $3 == m && $4 == n && index($1, p) == 1 { v = $col } END { print v }' "$BW_ROWS"
}

# bw_free_port: a free TCP port on 127.0.0.1.
bw_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# bw_kept_seed KEEP N PER_FILE SEED_BIN DIRECTORY CA_NAME: a state kept
# between runs (bench/reload.sh, bench/stream.sh): KEEP/conf.d holds the N
# certificates of bw_config_certs, PER_FILE per file; KEEP/state is seeded
# by tools/seed-state for the CA at DIRECTORY; KEEP/ca.pem is a throwaway CA
# named CA_NAME for `trust`. The caller marks KEEP/seeded when its own
# additions are done.
bw_kept_seed() {
  local keep=$1 n=$2 per=$3 seed=$4 dir=$5 name=$6 t
  mkdir -p "$keep/conf.d" "$keep/state" && chmod 700 "$keep/state" || return 1
  keep=$(cd "$keep" && pwd)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=$name" -keyout "$keep/ca.key" -out "$keep/ca.pem" >/dev/null 2>&1 || return 1
  t=$(date +%s%N)
  TW=$keep bw_config_certs "$n" | awk -v dir="$keep/conf.d" -v per="$per" '
    /^\[certificate\./ { k++; if ((k - 1) % per == 0) { if (f) close(f); f = sprintf("%s/certs-%06d.toml", dir, (k - 1) / per) } }
    { print > (f ? f : dir "/certs-000000.toml") }'
  "$seed" "$keep/state" "$n" pebble "$dir" >/dev/null || return 1
  echo "seeded $n certificates in $keep in $((($(date +%s%N) - t) / 1000000)) ms" >&2
}

# bw_kept_config KEEP HTTP_PORT DIRECTORY: the daemon's configuration for a
# state of bw_kept_seed (its certificates come from KEEP/conf.d).
bw_kept_config() {
  cat <<EOF
[daemon]
state_dir = "$1/state"
control_socket = "$1/control.sock"
max_concurrent_orders = 64
log_level = "info"

[http01]
listen = ["127.0.0.1:$2"]

[ca.pebble]
directory = "$3"
contact = ["mailto:ops@example.org"]
agree_tos = true
trust = "$1/ca.pem"
EOF
}
