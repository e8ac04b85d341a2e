#!/usr/bin/env bash
# GET /v1/status written as the client reads it (issue 16), with the real
# daemon: 1,500 seeded certificates (~1 MB of status). A client reads the
# head and the first 100 KB, then stops reading; meanwhile two reloads
# remove the last 750 certificates (the second frees the entries the first
# unlinked), GET /metrics is answered in full and the http-01 listener
# answers. Then the client reads the rest: the document is valid JSON in
# HTTP/1.1 chunks ending with the last chunk; in the manager's order, it
# holds what was written before the reloads, then only the kept
# certificates (the removed ones not written yet are left out); the daemon still
# answers `certloop status --json` with 750 certificates.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
tw_init statusstream
SEED=${CERTLOOP%/certloop}/seed-state
[ -x "$SEED" ] || { echo "no seed-state at $SEED" >&2; exit 1; }
tw_start || exit 1
N=1500
KEEP=750

# certificates c0..c<n-1> as seed-state stores them (www.c<i>.test when i is odd)
certs() {
  awk -v n="$1" 'BEGIN {
    for (i = 0; i < n; i++) {
      d = "\"c" i ".test\""
      if (i % 2) d = d ", \"www.c" i ".test\""
      printf "[certificate.c%d]\ndomains = [%s]\nca = \"pebble\"\nkey = \"ec-p256\"\n\n", i, d
    }
  }'
}
tw_config_head >"$TW/certloop.toml"
mkdir -p "$TW/conf.d"
certs "$N" >"$TW/conf.d/certs.toml"
chmod 700 "$TW/state"
"$SEED" "$TW/state" "$N" pebble "$TW_DIRECTORY" >/dev/null || { tw_fail "seed-state"; tw_done; }

decided() { [ "$(grep -c ': valid, renewal at ' "$TW/err.txt" 2>/dev/null)" -ge "$N" ]; }
tw_daemon_start "$TW/certloop.toml" "$TW/out.txt" "$TW/err.txt" 120 decided ||
  { tw_fail "the daemon did not decide $N certificates"; tw_done; }

# the client: reads 100 KB, says so (paused), waits for go, reads the rest
python3 - "$TW/control.sock" "$TW" <<'EOF' &
import os, socket, sys, time
sock, tw = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.connect(sock)
s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n")
data = b""
while len(data) < 100 * 1024:
    b = s.recv(4096)
    if not b:
        break
    data += b
open(tw + "/paused", "w").close()
for _ in range(600):
    if os.path.exists(tw + "/go"):
        break
    time.sleep(0.1)
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
open(tw + "/raw.bin", "wb").write(data)
EOF
READER=$!
TW_PIDS+=("$READER")
for ((i = 0; i < 300; i++)); do
  [ -e "$TW/paused" ] && break
  sleep 0.1
done
[ -e "$TW/paused" ] || tw_fail "the client got no 100 KB of status"

certs "$KEEP" >"$TW/conf.d/certs.toml"
for r in 1 2; do
  before=$(grep -c 'main: reloaded: ' "$TW/err.txt")
  kill -HUP "$TW_DAEMON_PID"
  reloaded() { [ "$(grep -c 'main: reloaded: ' "$TW/err.txt")" -gt "$before" ]; }
  tw_daemon_wait 30 reloaded || tw_fail "reload $r during the stream"
done
grep -q "cert=c$((N - 1)): removed from the configuration" "$TW/err.txt" ||
  tw_fail "the reload did not remove c$((N - 1))"

# others are answered while the stream waits for its reader
t0=$(date +%s%N)
st=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TW_HTTP_PORT/.well-known/acme-challenge/none")
tw_log "http-01 answered $st in $((($(date +%s%N) - t0) / 1000000)) ms during the stream"
[ "$st" = 404 ] || tw_fail "http-01 during the stream: $st"
curl -sS --unix-socket "$TW/control.sock" -D "$TW/metrics.head" -o "$TW/metrics.txt" \
  http://localhost/metrics || tw_fail "GET /metrics during the stream"
grep -qi '^Transfer-Encoding: chunked' "$TW/metrics.head" || tw_fail "/metrics not chunked"
[ "$(grep -c '^certloop_renewals_total{' "$TW/metrics.txt")" = $((2 * KEEP)) ] ||
  tw_fail "/metrics: $(grep -c '^certloop_renewals_total{' "$TW/metrics.txt") renewal samples"

touch "$TW/go"
wait "$READER" || tw_fail "the client failed"
python3 - "$TW/raw.bin" "$KEEP" "$N" <<'EOF' || tw_fail "the streamed status document"
import json, sys
raw = open(sys.argv[1], "rb").read()
keep, n = int(sys.argv[2]), int(sys.argv[3])
head, _, body = raw.partition(b"\r\n\r\n")
assert head.startswith(b"HTTP/1.1 200 "), head[:40]
assert b"\r\ntransfer-encoding: chunked" in head.lower(), head
doc, rest = b"", body
while True:
    line, _, rest = rest.partition(b"\r\n")
    size = int(line.split(b";")[0], 16)
    if size == 0:
        assert rest == b"\r\n", rest[:40]  # the last chunk, no trailer
        break
    doc += rest[:size]
    assert rest[size:size + 2] == b"\r\n"
    rest = rest[size + 2:]
j = json.loads(doc)
names = [c["name"] for c in j["certificates"]]
# the manager's order (the configuration's, by name): what was written
# before the reloads is the old list's start; after them only kept ones
everyone = sorted("c%d" % i for i in range(n))
kept = set("c%d" % i for i in range(keep))
k = max(i + 1 for i, x in enumerate(names) if x not in kept)
assert names[:k] == everyone[:k], "before the reload"
assert names[k:] == [x for x in everyone[k:] if x in kept], "after the reload"
assert keep < len(names) < n, len(names)  # some removed ones written, some left out
assert "store" in j
print("status stream: %d bytes, %d certificates, %d written before the reloads"
      % (len(doc), len(names), k))
EOF

"$CERTLOOP" status --json -c "$TW/certloop.toml" >"$TW/after.json" 2>"$TW/after.err" ||
  tw_fail "status after the stream: $(cat "$TW/after.err")"
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["certificates"]))' "$TW/after.json")
[ "$n" = "$KEEP" ] || tw_fail "status after the reloads: $n certificates"
if grep -E ' (error|crit) ' "$TW/err.txt" | grep -v 'acme-challenge'; then
  tw_fail "errors in the log"
fi
tw_daemon_stop || tw_fail "the daemon's exit status"
tw_done
