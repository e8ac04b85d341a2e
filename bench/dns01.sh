#!/usr/bin/env bash
# dns-01 benchmark against Knot (RFC 2136 + TSIG): certloop issues N
# certificates at once with one `run --once`; lego's rfc2136 provider issues
# LEGO_N certificates one at a time (its per-certificate time is what an
# extrapolation to N uses). One Pebble (no validation sleep, -dnsserver =
# Knot) and one Knot serve both phases.
#
#   bench/dns01.sh [N] [LEGO_N]        # defaults 100 and 10
#   env CERTLOOP (default build-main/certloop), BENCH_OUT (result file)
#
# Prints a markdown table. Wall times are end to end (process start to
# exit); certloop's CPU and peak RSS come from /usr/bin/time -f '%e %U %S %M'.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
. "$SRC/tests/integration/lib.sh"
. "$SRC/tests/integration/knot.sh"

N=${1:-100}
LEGO_N=${2:-10}
CERTLOOP=${CERTLOOP:-/work/build-main/certloop}
export CERTLOOP

tw_knot_start benchdns01
tw_need lego /usr/bin/time bc

# ---- certloop: N at once ------------------------------------------------
{
  tw_knot_config_head 128
  for ((i = 0; i < N; i++)); do
    mkdir -p "$TW/out/c$i"
    cat <<EOF
[certificate.c$i]
domains = ["c$i.test"]
ca = "pebble"
key = "ec-p256"
challenge = "dns-01"
dns = "knot"

[[certificate.c$i.deploy]]
type = "files"
fullchain = "$TW/out/c$i/fullchain.pem"
key = "$TW/out/c$i/key.pem"

EOF
  done
} >"$TW/certloop.toml"
"$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null || exit 1

pebble_pid=$(pgrep -n -f "pebble -config $TW/pebble.json")
pebble_ticks() { awk '{ print $14 + $15 }' "/proc/$pebble_pid/stat"; }
HZ=$(getconf CLK_TCK)

p0=$(pebble_ticks)
tw_log "certloop: $N dns-01 certificates at once"
timeout 600 /usr/bin/time -f '%e %U %S %M' -o "$TW/cl.time" \
  "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/cl.out" 2>"$TW/cl.err"
cl_rc=$?
p1=$(pebble_ticks)
cl_ok=0
for ((i = 0; i < N; i++)); do
  tw_verify_fullchain "$TW/out/c$i/fullchain.pem" 2>/dev/null && cl_ok=$((cl_ok + 1))
done
read -r cl_wall cl_user cl_sys cl_rss <"$TW/cl.time"
cl_peb=$(echo "($p1 - $p0) / $HZ" | bc -l)
tw_log "certloop: exit $cl_rc, $cl_ok/$N verified, $cl_wall s"

# ---- lego rfc2136: one at a time ----------------------------------------
export LEGO_CA_CERTIFICATES="$TW/tls-ca.pem"
export RFC2136_NAMESERVER="127.0.0.1:$KNOT_PORT"
export RFC2136_TSIG_KEY="acme-key."
export RFC2136_TSIG_SECRET="$KNOT_SECRET"
export RFC2136_TSIG_ALGORITHM="hmac-sha256."
export RFC2136_TTL=1
export RFC2136_POLLING_INTERVAL=1
export RFC2136_PROPAGATION_TIMEOUT=30
LEGO=(lego --server "$TW_DIRECTORY" --accept-tos --email x@example.org --key-type ec256
  --path "$TW/lego" --dns rfc2136 --dns.resolvers "127.0.0.1:$KNOT_PORT"
  ${LEGO_EXTRA:---dns.disable-cp})
p0=$(pebble_ticks)
lego_ok=0
lego_sum_u=0
lego_sum_s=0
lego_max_rss=0
t0=$(date +%s.%N)
for ((i = 0; i < LEGO_N; i++)); do
  timeout 300 /usr/bin/time -f '%e %U %S %M' -o "$TW/lego.$i.time" \
    "${LEGO[@]}" -d "l$i.test" run >"$TW/lego.$i.log" 2>&1
  rc=$?
  if [ "$rc" = 0 ] && tw_verify_fullchain "$TW/lego/certificates/l$i.test.crt" 2>/dev/null; then
    lego_ok=$((lego_ok + 1))
  else
    tw_log "lego l$i.test: exit $rc: $(tail -2 "$TW/lego.$i.log")"
  fi
  read -r _ u s m < <(tail -1 "$TW/lego.$i.time")
  lego_sum_u=$(echo "$lego_sum_u + $u" | bc)
  lego_sum_s=$(echo "$lego_sum_s + $s" | bc)
  [ "$m" -gt "$lego_max_rss" ] && lego_max_rss=$m
done
t1=$(date +%s.%N)
p1=$(pebble_ticks)
lego_wall=$(echo "$t1 - $t0" | bc)
lego_per=$(echo "$lego_wall / $LEGO_N" | bc -l)
lego_peb=$(echo "($p1 - $p0) / $HZ" | bc -l)
left=$(kdig @127.0.0.1 -p "$KNOT_PORT" AXFR test. | awk '$1 ~ /_acme-challenge/ && $4 == "TXT"' | wc -l)
tw_log "lego: $lego_ok/$LEGO_N in $lego_wall s; TXT records left in the zone: $left"

f() { printf '%.2f' "$1"; }
{
  echo "| run | certs ok | wall s | per cert s | client CPU user+sys s | client peak RSS MiB | Pebble CPU s |"
  echo "|---|---|---|---|---|---|---|"
  echo "| certloop run --once, $N at once | $cl_ok/$N | $(f "$cl_wall") | $(f "$(echo "$cl_wall / $N" | bc -l)") | $(f "$cl_user")+$(f "$cl_sys") | $(f "$(echo "$cl_rss / 1024" | bc -l)") | $(f "$cl_peb") |"
  echo "| lego rfc2136, $LEGO_N sequential (measured) | $lego_ok/$LEGO_N | $(f "$lego_wall") | $(f "$lego_per") | $(f "$lego_sum_u")+$(f "$lego_sum_s") (sum) | $(f "$(echo "$lego_max_rss / 1024" | bc -l)") (max of one) | $(f "$lego_peb") |"
  if [ "$LEGO_N" != "$N" ]; then
    echo "| lego rfc2136, $N sequential (**extrapolated** $N x per cert) | - | ~$(printf '%.0f' "$(echo "$lego_per * $N" | bc -l)") | $(f "$lego_per") | ~$(f "$(echo "($lego_sum_u + $lego_sum_s) * $N / $LEGO_N" | bc -l)") | - | - |"
  fi
} | tee "${BENCH_OUT:-/dev/null}"
