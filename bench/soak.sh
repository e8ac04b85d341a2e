#!/usr/bin/env bash
# Chaos soak (issue 17 item 8): one daemon with N certificates (default
# 200) against Pebble on loopback, renewing every ~8 minutes
# (renew_before 8 minutes short of Pebble's lifetime; no max_new_orders
# limit), its state directory
# on a small tmpfs, for DURATION seconds (default 1800). Every 20-60 s one
# event, chosen at random:
#   kill    kill -9 the daemon, start it again
#   hup     SIGHUP with an unchanged (good) configuration
#   badhup  SIGHUP with a broken configuration (the daemon must keep
#           running and answer status), then the good one back and SIGHUP
#   pebble  Pebble restarted (its state is lost: accounts, orders), every
#           other time with PEBBLE_WFE_NONCEREJECT=50 (badNonce on half the
#           requests) and back to 0 the next time
#   diskfull the state tmpfs filled to the last byte for 20 s, then freed
#   flood   1,100 idle connections on the http-01 port for 15 s
# At the end (daemon stopped with SIGTERM after a quiet minute):
#   - every deployed key matches its certificate and the chain verifies
#     against one of the roots Pebble had (it gets a new root each start);
#   - orders: Pebble's "Added order" lines against issuances and failed
#     orders in the daemon's log; per certificate, two issuances closer than
#     6 minutes without a chaos event between them are "early reissues";
#   - no temp or backup file left in the state directory or the deploy
#     directories;
#   - the daemon's RSS sampled every 10 s: first and last sample of the
#     longest-lived daemon process, and the maximum.
# Prints a summary (also to $OUT, default /tmp/certloop-soak-last.txt) and exits 1
# when a hard check fails. Needs root for the tmpfs (else the state
# directory is a plain directory and diskfull is skipped).
# Usage: bench/soak.sh [DURATION_S] [N_CERTS]
# Env: BUILD_DIR (build), SEED (random), KINDS (the events to draw from,
# default "kill hup badhup pebble diskfull flood"), OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD
export BUILD_DIR=${BUILD_DIR:-build}
CERTLOOP=$top/$BUILD_DIR/certloop
DUR=${1:-1800}
N=${2:-200}
OUT=${OUT:-${TMPDIR:-/tmp}/certloop-soak-last.txt}
RANDOM=${SEED:-$$}
. "$top/tests/integration/lib.sh"

tw_init soak
STATE=$TW/state
mkdir -p "$STATE"
TMPFS=false
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=128m,mode=0700 tmpfs "$STATE" 2>/dev/null; then
  TMPFS=true
fi
FLOOD_PID=
soak_cleanup() {
  [ -n "$FLOOD_PID" ] && kill "$FLOOD_PID" 2>/dev/null
  if [ -n "${TW_DAEMON_PID:-}" ] && kill -0 "$TW_DAEMON_PID" 2>/dev/null; then
    kill -KILL "$TW_DAEMON_PID" 2>/dev/null
    wait "$TW_DAEMON_PID" 2>/dev/null
  fi
  [ "$TMPFS" = true ] && umount "$STATE" 2>/dev/null
  tw_cleanup
}
trap soak_cleanup EXIT

PEBBLE_VA_NOSLEEP=1 tw_start || exit 1
PEBBLE_PID=${TW_PIDS[-1]}
cp "$TW/root.pem" "$TW/roots.pem"
NONCE_REJECT=0

CONF=$TW/certloop.toml
write_config() {
  # no max_new_orders limit: its default (250 per 3 hours) would hold the
  # renewals back after the first 200 issuances, and the soak would idle
  TW_CA_EXTRA='max_new_orders = 0' tw_config_head 64
  for ((i = 0; i < N; i++)); do
    TW_CERT_EXTRA='renew_before = "1825d23h52m"' tw_config_cert "$(printf 's%03d' "$i")" ec-p256 \
      "$(printf 's%03d' "$i").test"
  done
}
write_config >"$CONF"
"$CERTLOOP" check -c "$CONF" >/dev/null || { echo "soak: config invalid" >&2; exit 1; }
cp "$CONF" "$TW/good.toml"

LOG=$TW/daemon.err
EVENTS=$TW/events.tsv
: >"$EVENTS"
RSS=$TW/rss.tsv
: >"$RSS"
event() { # NAME [DETAIL]
  printf '%s\t%s\t%s\n' "$(date +%s)" "$1" "${2:-}" >>"$EVENTS"
  tw_log "event: $1 ${2:-}"
}

daemon_start() {
  "$CERTLOOP" run -c "$CONF" >>"$TW/daemon.out" 2>>"$LOG" &
  TW_DAEMON_PID=$!
  DAEMON_STARTED=$(date +%s)
}
daemon_alive() {
  kill -0 "$TW_DAEMON_PID" 2>/dev/null
}
status_ok() { # (the good copy: $CONF may be the broken one right now)
  timeout 10 "$CERTLOOP" status -c "$TW/good.toml" --json >/dev/null 2>"$TW/status.err"
}

pebble_restart() {
  kill "$PEBBLE_PID" 2>/dev/null
  wait "$PEBBLE_PID" 2>/dev/null
  NONCE_REJECT=$((NONCE_REJECT == 0 ? 50 : 0))
  PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=$NONCE_REJECT PEBBLE_AUTHZREUSE=0 \
    pebble -config "$TW/pebble.json" -dnsserver "127.0.0.1:$TW_DNS_PORT" >>"$TW/pebble.log" 2>&1 &
  PEBBLE_PID=$!
  TW_PIDS+=("$PEBBLE_PID")
  if tw_wait_http "$TW_DIRECTORY" "$TW/tls-ca.pem" 30; then
    curl -fsS --cacert "$TW/tls-ca.pem" "https://127.0.0.1:$TW_MGMT_PORT/roots/0" >>"$TW/roots.pem"
  else
    echo "soak: Pebble did not come back" >&2
  fi
}

flood() {
  python3 - "$TW_HTTP_PORT" 1100 15 <<'EOF' &
import resource, socket, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s, h = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
socks = []
for i in range(n):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    except OSError:
        break
    socks.append(c)
time.sleep(secs)
EOF
  FLOOD_PID=$!
}

diskfull() {
  [ "$TMPFS" = true ] || return 1
  dd if=/dev/zero of="$STATE/.soak-filler" bs=1M 2>/dev/null
  sleep 20
  rm -f "$STATE/.soak-filler"
}

sample_rss() {
  local r
  r=$(awk '/^VmRSS/ { print $2 }' "/proc/$TW_DAEMON_PID/status" 2>/dev/null)
  [ -n "$r" ] && printf '%s\t%s\t%s\n' "$(date +%s)" "$TW_DAEMON_PID" "$r" >>"$RSS"
}

declare -A COUNT
FAILS=0
hard_fail() {
  echo "FAIL: $*" | tee -a "$TW/fails" >&2
  FAILS=$((FAILS + 1))
}

daemon_start
t_end=$(($(date +%s) + DUR))
next_event=$(($(date +%s) + 30))
while [ "$(date +%s)" -lt "$t_end" ]; do
  sleep 10
  if ! daemon_alive; then
    hard_fail "the daemon died on its own (exit: $(wait "$TW_DAEMON_PID"; echo $?))"
    event restart-after-death
    daemon_start
    continue
  fi
  sample_rss
  [ "$(date +%s)" -lt "$next_event" ] && continue
  next_event=$(($(date +%s) + 20 + RANDOM % 41))
  read -r -a kinds <<<"${KINDS:-kill hup badhup pebble diskfull flood}"
  k=${kinds[$((RANDOM % ${#kinds[@]}))]}
  COUNT[$k]=$((${COUNT[$k]:-0} + 1))
  case $k in
  kill)
    event kill "pid $TW_DAEMON_PID"
    kill -KILL "$TW_DAEMON_PID"
    wait "$TW_DAEMON_PID" 2>/dev/null
    daemon_start
    ;;
  hup)
    event hup
    kill -HUP "$TW_DAEMON_PID"
    ;;
  badhup)
    event badhup
    printf '[certificate.broken\ndomains = ["x.test"' >>"$CONF"
    kill -HUP "$TW_DAEMON_PID"
    sleep 3
    daemon_alive || hard_fail "the daemon died on a broken configuration"
    status_ok || hard_fail "status did not answer after a broken configuration: $(cat "$TW/status.err")"
    cp "$TW/good.toml" "$CONF"
    kill -HUP "$TW_DAEMON_PID"
    ;;
  pebble)
    event pebble "nonce reject $NONCE_REJECT -> $((NONCE_REJECT == 0 ? 50 : 0))"
    pebble_restart
    ;;
  diskfull)
    if [ "$TMPFS" = true ]; then
      event diskfull
      diskfull
      event diskfree
    else
      COUNT[diskfull]=$((COUNT[diskfull] - 1))
    fi
    ;;
  flood)
    event flood
    flood
    sleep 5
    status_ok || hard_fail "status did not answer during a flood: $(cat "$TW/status.err")"
    ;;
  esac
done

# make sure Pebble answers normally for the final stretch, then a quiet
# minute so that what is due finishes
if [ "$NONCE_REJECT" != 0 ]; then
  event pebble "nonce reject 50 -> 0 (end)"
  pebble_restart
fi
event quiet
for ((i = 0; i < 6; i++)); do
  sleep 10
  sample_rss
done
kill -TERM "$TW_DAEMON_PID"
for ((i = 0; i < 600; i++)); do
  daemon_alive || break
  sleep 0.1
done
daemon_alive && hard_fail "the daemon still ran 60 s after SIGTERM"
wait "$TW_DAEMON_PID"
rc=$?
[ "$rc" = 0 ] || hard_fail "the daemon exited $rc after SIGTERM"

# ---- end checks ----
verify_any_root() { # FULLCHAIN: verifies against one of the roots Pebble had
  local d
  d=$(mktemp -d "$TW/v-XXXXXX")
  awk -v d="$d" '/BEGIN CERTIFICATE/{n++} {print > (d "/c" n ".pem")}' "$1"
  cat "$d"/c[2-9].pem >"$d/rest.pem" 2>/dev/null
  local ok=1
  if [ -s "$d/rest.pem" ]; then
    openssl verify -CAfile "$TW/roots.pem" -untrusted "$d/rest.pem" "$d/c1.pem" >/dev/null 2>&1 && ok=0
  else
    openssl verify -CAfile "$TW/roots.pem" "$d/c1.pem" >/dev/null 2>&1 && ok=0
  fi
  rm -rf "$d"
  return $ok
}
deployed=0 mismatched=0 unverified=0 missing=0
for ((i = 0; i < N; i++)); do
  name=$(printf 's%03d' "$i")
  o=$TW/out/$name
  if [ ! -s "$o/fullchain.pem" ]; then
    missing=$((missing + 1))
    continue
  fi
  deployed=$((deployed + 1))
  tw_check_pair "$o/fullchain.pem" "$o/key.pem" || mismatched=$((mismatched + 1))
  verify_any_root "$o/fullchain.pem" || unverified=$((unverified + 1))
done
[ "$mismatched" = 0 ] || hard_fail "$mismatched deployed keys do not match their certificates"
[ "$unverified" = 0 ] || hard_fail "$unverified deployed chains do not verify"
[ "$missing" = 0 ] || hard_fail "$missing certificates never deployed"

leftovers=$(find "$STATE" "$TW/out" \( -name '*.tmp' -o -name '.certloop-*' -o -name '*.certloop-bak*' \
  -o -name '*~' -o -name '.soak-filler' \) 2>/dev/null | wc -l)
[ "$leftovers" = 0 ] || {
  hard_fail "$leftovers temp or backup files left"
  find "$STATE" "$TW/out" \( -name '*.tmp' -o -name '.certloop-*' -o -name '*.certloop-bak*' \) | head >&2
}

pebble_orders=$(grep -c 'Added order' "$TW/pebble.log")
issued=$(grep -c ' issued cert=' "$LOG")
failed_orders=$(grep -c 'error main: order cert=' "$LOG")
# early reissues: two issuances of one certificate < 6 min apart with no
# chaos event between them
early=$(awk -F'\t' -v ev="$EVENTS" '
  BEGIN { while ((getline l < ev) > 0) { split(l, f, "\t"); evt[++ne] = f[1] } }
  / issued cert=/ {
    match($0, /cert=[^ ]+/); name = substr($0, RSTART + 5, RLENGTH - 5)
    cmd = "date -d " substr($0, 1, 24) " +%s"; cmd | getline t; close(cmd)
    if (name in last && t - last[name] < 360) {
      cause = 0
      for (i = 1; i <= ne; i++) if (evt[i] >= last[name] - 1 && evt[i] <= t) cause = 1
      if (!cause) n++
    }
    last[name] = t
  }
  END { print n + 0 }' "$LOG")
[ "$early" = 0 ] || hard_fail "$early early reissues without a chaos event"

# why orders failed: the step and the CA's or our error type, counted
reasons=$(sed -n 's/.* error main: order cert=[^ ]* //p' "$LOG" |
  sed -E 's/name=[^ :]*//; s/(https?:)?\/\/[^ ]*//g; s/[0-9]+/N/g' | cut -c1-90 | sort | uniq -c |
  sort -rn | head -6)
# RSS per daemon process that lived at least 5 minutes: first and last sample
rss_each=$(awk -F'\t' '{ if (!($2 in first)) { first[$2] = $3; t0[$2] = $1 } last[$2] = $3; t1[$2] = $1 }
  END { for (p in first) if (t1[p] - t0[p] >= 300)
          printf "  pid %s: %d s, first %d KiB, last %d KiB\n", p, t1[p] - t0[p], first[p], last[p] }' "$RSS")
# RSS of the longest-lived daemon process
rss_line=$(awk -F'\t' '{ if (!($2 in first)) { first[$2] = $3; t0[$2] = $1 } last[$2] = $3; t1[$2] = $1
  if ($3 > max) max = $3 }
  END { best = ""; for (p in first) if (best == "" || t1[p] - t0[p] > t1[best] - t0[best]) best = p
        printf "%s %d %d %d %d", best, t1[best] - t0[best], first[best], last[best], max }' "$RSS")
read -r rss_pid rss_span rss_first rss_last rss_max <<<"$rss_line"
# its RSS through its life: the sample nearest each tenth of it (a leak
# climbs steadily; bounded caches level off)
rss_curve=$(awk -F'\t' -v p="$rss_pid" '$2 == p { t[n + 0] = $1; r[n + 0] = $3; n++ }
  END { if (n == 0) exit; span = t[n - 1] - t[0]; j = 0
        for (k = 0; k <= 10; k++) { want = t[0] + span * k / 10
          while (j < n - 1 && t[j] < want) j++
          sep = k ? " " : ""; printf "%s%d", sep, r[j] } }' "$RSS")

{
  echo "soak: $(date -u +%Y-%m-%dT%H:%MZ), ${DUR}s, $N certificates, state on tmpfs: $TMPFS"
  echo "events: kill ${COUNT[kill]:-0}, hup ${COUNT[hup]:-0}, badhup ${COUNT[badhup]:-0}," \
    "pebble ${COUNT[pebble]:-0}, diskfull ${COUNT[diskfull]:-0}, flood ${COUNT[flood]:-0}"
  echo "issued (incl. renewals) $issued, failed orders logged $failed_orders, Pebble orders $pebble_orders"
  echo "deployed $deployed/$N, keys mismatched $mismatched, chains not verifying $unverified"
  echo "early reissues without an event: $early; temp/backup files left: $leftovers"
  echo "RSS (KiB) of the longest-lived process (pid $rss_pid, ${rss_span}s):" \
    "first $rss_first, last $rss_last; max of all samples $rss_max"
  echo "  that process's RSS at each tenth of its life (KiB): ${rss_curve:-?}"
  echo "RSS of each daemon process that lived 5 minutes or more:"
  echo "${rss_each:-  (none)}"
  echo "failed orders by reason (numbers and URLs folded):"
  echo "${reasons:-  (none)}"
  echo "daemon exit after SIGTERM: $rc; hard failures: $FAILS"
  [ -s "$TW/fails" ] && sed 's/^/  /' "$TW/fails"
} | tee "$OUT"
[ "$FAILS" = 0 ]
