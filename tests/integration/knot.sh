# Knot DNS on loopback for dns-01 tests (source it from bash):
#
#   . "$(dirname "$0")/knot.sh"
#   knot_init dns01              # temp dir $KW, EXIT trap, tool checks
#   knot_start                   # primary on 127.0.0.1:$KNOT_PORT (zone test.)
#   knot_start_secondary         # optional: 127.0.0.2:$KNOT_PORT, lags until knot_sync
#   kdig @127.0.0.1 -p "$KNOT_PORT" _acme-challenge.a.test TXT
#   knot_sync                    # the secondary pulls the primary's changes now
#
# The zone test. accepts TXT updates signed with TSIG key acme-key.
# (hmac-sha256, secret in $KNOT_SECRET, files $KW/tsig.secret (one line of
# base64) and $KW/tsig.key (BIND syntax)), and with acme-key384.
# (hmac-sha384, secret in $KW/tsig384.secret). Unsigned updates get NOTAUTH.
# Records: NS ns1.test. (127.0.0.1, and ::1 where nothing listens: an
# address that cannot be reached) and ns2.test. (127.0.0.2), "* A 127.0.0.1", and _acme-challenge.b.test. CNAME b.acme-dns.test. (the
# acme-dns pattern). Both servers listen on the same port so that servers
# found through NS are reachable with one --ns-port. The secondary's SOA
# refresh is an hour and the primary sends no NOTIFY: it only catches up
# when knot_sync asks it to. A missing knotd skips (exit 77) unless CI=true.

KW=
KNOT_PIDS=()
KNOT_PORT=
KNOT_SECRET=
KNOT_SECRET384=

KNOT_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

knot_log() {
  echo "[$(date +%H:%M:%S)] $*" >&2
}

knot_skip() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL (CI): $*" >&2
    exit 1
  fi
  echo "SKIP: $*" >&2
  exit 77
}

knot_cleanup() {
  local p
  for p in "${KNOT_PIDS[@]}"; do
    kill "$p" 2>/dev/null
  done
  for p in "${KNOT_PIDS[@]}"; do
    wait "$p" 2>/dev/null
  done
  if [ -n "$KW" ] && [ -d "$KW" ]; then
    python3 "$KNOT_LIB_DIR/port.py" --release "$KW"
    if [ -n "${KNOT_KEEP:-}" ]; then
      echo "knot world kept in $KW" >&2
    else
      rm -rf "$KW"
    fi
  fi
}

# knot_init NAME: temp dir, EXIT trap (chains to a later `trap ... EXIT`
# only if the caller includes knot_cleanup), tool checks.
knot_init() {
  local t
  for t in knotd knotc kdig knsupdate python3 base64; do
    command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || knot_skip "$t not found"
  done
  KW=$(mktemp -d "/tmp/certloop-${1:-knot}-XXXXXX")
  trap knot_cleanup EXIT
  KNOT_SECRET=$(head -c 32 /dev/urandom | base64)
  echo "$KNOT_SECRET" > "$KW/tsig.secret"
  cat > "$KW/tsig.key" <<EOF
# made by knot.sh (tsig-keygen style)
key "acme-key." {
	algorithm hmac-sha256;
	secret "$KNOT_SECRET";
};
EOF
  KNOT_SECRET384=$(head -c 48 /dev/urandom | base64 -w0)
  echo "$KNOT_SECRET384" > "$KW/tsig384.secret"
  chmod 600 "$KW/tsig.secret" "$KW/tsig.key" "$KW/tsig384.secret"
}

knotd_bin() {
  command -v knotd 2>/dev/null || echo /usr/sbin/knotd
}

knotc_bin() {
  command -v knotc 2>/dev/null || echo /usr/sbin/knotc
}

# A port free on 127.0.0.1 and 127.0.0.2, TCP and UDP, below the ephemeral
# range and reserved until knot_cleanup (port.py says why).
knot_port() {
  python3 "$KNOT_LIB_DIR/port.py" "${KW:?knot_port before knot_init}" 127.0.0.1 127.0.0.2
}

knot_zonefile() {
  cat <<'EOF'
$ORIGIN test.
$TTL 1
@	SOA	ns1.test. hostmaster.test. 1 3600 60 86400 1
@	NS	ns1.test.
@	NS	ns2.test.
ns1	A	127.0.0.1
ns1	AAAA	::1
ns2	A	127.0.0.2
*	A	127.0.0.1
_acme-challenge.b	CNAME	b.acme-dns.test.
EOF
}

# knot_conf ROLE DIR ADDR: a knot.conf for the primary or the secondary.
knot_conf() {
  local role=$1 dir=$2 addr=$3
  cat <<EOF
server:
    rundir: "$dir"
    listen: $addr@$KNOT_PORT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: "$dir/knot.log"
    any: info
database:
    storage: "$dir/db"
key:
  - id: acme-key.
    algorithm: hmac-sha256
    secret: $KNOT_SECRET
  - id: acme-key384.
    algorithm: hmac-sha384
    secret: $KNOT_SECRET384
remote:
  - id: primary
    address: 127.0.0.1@$KNOT_PORT
acl:
  - id: update
    key: [acme-key., acme-key384.]
    action: update
    update-type: [TXT]
  - id: xfr
    address: 127.0.0.0/8
    action: transfer
  - id: notify
    address: 127.0.0.0/8
    action: notify
template:
  - id: default
    storage: "$dir"
    zonefile-sync: -1
    journal-content: all
EOF
  if [ "$role" = primary ]; then
    cat <<EOF
zone:
  - domain: test.
    file: test.zone
    acl: [update, xfr]
EOF
  else
    cat <<EOF
zone:
  - domain: test.
    file: test.zone
    master: primary
    acl: [notify]
    zonefile-load: none
EOF
  fi
}

# knot_wait_up ADDR: until the server answers the zone's SOA.
knot_wait_up() {
  local i
  for i in $(seq 1 100); do
    if kdig +timeout=1 +retry=0 @"$1" -p "$KNOT_PORT" test. SOA 2>/dev/null |
      grep -q 'status: NOERROR'; then
      return 0
    fi
    sleep 0.1
  done
  echo "knotd on $1:$KNOT_PORT did not come up:" >&2
  cat "$KW"/*/knot.log >&2 2>/dev/null
  return 1
}

knot_start() {
  [ -n "$KNOT_PORT" ] || KNOT_PORT=$(knot_port)
  mkdir -p "$KW/primary/db"
  knot_zonefile > "$KW/primary/test.zone"
  knot_conf primary "$KW/primary" 127.0.0.1 > "$KW/primary/knot.conf"
  "$(knotd_bin)" -c "$KW/primary/knot.conf" >"$KW/primary/stdout" 2>&1 &
  KNOT_PIDS+=($!)
  knot_wait_up 127.0.0.1 || return 1
  knot_log "knot primary on 127.0.0.1:$KNOT_PORT"
}

knot_start_secondary() {
  mkdir -p "$KW/secondary/db"
  knot_conf secondary "$KW/secondary" 127.0.0.2 > "$KW/secondary/knot.conf"
  "$(knotd_bin)" -c "$KW/secondary/knot.conf" >"$KW/secondary/stdout" 2>&1 &
  KNOT_PIDS+=($!)
  knot_wait_up 127.0.0.2 || return 1
  knot_log "knot secondary on 127.0.0.2:$KNOT_PORT"
}

# knot_serial ADDR: the zone's SOA serial on that server.
knot_serial() {
  kdig +short +timeout=1 +retry=1 @"$1" -p "$KNOT_PORT" test. SOA | awk '{print $3}'
}

# knot_sync: the secondary transfers the primary's zone now and this waits
# until both serials match.
knot_sync() {
  local i want
  want=$(knot_serial 127.0.0.1)
  "$(knotc_bin)" -s "$KW/secondary/knot.sock" zone-refresh test. >/dev/null
  for i in $(seq 1 100); do
    [ "$(knot_serial 127.0.0.2)" = "$want" ] && return 0
    sleep 0.1
  done
  echo "secondary did not reach serial $want" >&2
  return 1
}

# knot_txt ADDR NAME: the TXT values at NAME on that server, one per line, sorted.
knot_txt() {
  kdig +short +timeout=1 +retry=1 @"$1" -p "$KNOT_PORT" "$2" TXT | tr -d '"' | sort
}

# knot_acme_txt: every TXT record under an _acme-challenge label in the
# primary's zone (a full transfer), or "AXFR FAILED: ..." when it fails.
knot_acme_txt() {
  local out
  out=$(kdig +timeout=2 +retry=1 @127.0.0.1 -p "$KNOT_PORT" AXFR test. 2>&1)
  if ! grep -q 'SOA' <<<"$out"; then
    echo "AXFR FAILED: $out"
    return
  fi
  awk '$1 ~ /_acme-challenge/ && $4 == "TXT"' <<<"$out"
}
