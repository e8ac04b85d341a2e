#!/usr/bin/env bash
# ARI (RFC 9773) against a small ARI-capable fake CA (Pebble 2.4 has none;
# the Pebble-based tests are the fallback: no renewalInfo, renewal by
# policy). A stored certificate (tools/seed-state: valid 90 days, policy
# renewal in about 59) whose CA suggests a window 1-2 days from now: the
# daemon fetches renewalInfo/CERTID with the right CertID, schedules the
# renewal inside the window with the ARI reason, shows the window in
# status and its history, and persists it beside the generation
# (ari.json); restarted, it keeps the same time without asking again
# (Retry-After is 6 h).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

SEED=${CERTLOOP%/certloop}/seed-state
[ -x "$SEED" ] || { echo "no seed-state at $SEED" >&2; exit 1; }
tw_init ari
port=$(tw_port)
now=$(date +%s)
cat >"$TW/fakeca.py" <<'EOF'
import http.server, json, sys, time
port, start, end, hits = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
base = "http://127.0.0.1:%d" % port
def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def reply(self, code, body, extra=()):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        if self.path == "/dir":
            self.reply(200, {"newNonce": base + "/nonce", "newAccount": base + "/acct",
                             "newOrder": base + "/order", "renewalInfo": base + "/renewal-info"})
        elif self.path.startswith("/renewal-info/"):
            with open(hits, "a") as f:
                f.write(self.path[len("/renewal-info/"):] + "\n")
            self.reply(200, {"suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)},
                             "explanationURL": base + "/why"}, [("Retry-After", "21600")])
        else:
            self.reply(404, {"type": "urn:ietf:params:acme:error:malformed"})
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
start=$((now + 86400))
end=$((now + 2 * 86400))
python3 "$TW/fakeca.py" "$port" "$start" "$end" "$TW/hits" 2>"$TW/fakeca.err" &
TW_PIDS+=($!)
tw_wait_http "http://127.0.0.1:$port/dir" || { tw_fail "fake CA did not start"; tw_done; }

mkdir -p "$TW/state"
chmod 700 "$TW/state"
"$SEED" "$TW/state" 1 fake "http://127.0.0.1:$port/dir" 90 >/dev/null || { tw_fail "seed"; tw_done; }
cat >"$TW/certloop.toml" <<EOF
[daemon]
state_dir = "$TW/state"
control_socket = "$TW/control.sock"
log_level = "debug"

[http01]
listen = ["127.0.0.1:$(tw_port)"]

[ca.fake]
directory = "http://127.0.0.1:$port/dir"
agree_tos = true

[certificate.c0]
domains = ["c0.test"]
ca = "fake"
EOF
"$CERTLOOP" check -c "$TW/certloop.toml" >/dev/null || { tw_fail "config invalid"; tw_done; }

status_json() {
  "$CERTLOOP" status --json -c "$TW/certloop.toml" 2>/dev/null
}
ari_shown() { # N: status (kept in $TW/statusN.json) shows the ARI window
  status_json >"$TW/status$1.json" && grep -q '"ari": *{' "$TW/status$1.json"
}
run_daemon() { # N: start, wait until status shows the ARI window
  tw_daemon_start "$TW/certloop.toml" "$TW/run$1.out" "$TW/run$1.err" 10 ari_shown "$1"
}
run_daemon 1 || tw_fail "status never showed an ARI window: $(cat "$TW/status1.json")"
python3 - "$TW/status1.json" "$start" "$end" <<'EOF' || tw_fail "status: $(cat "$TW/status1.json")"
import json, sys
c = json.load(open(sys.argv[1]))["certificates"][0]
start, end = int(sys.argv[2]), int(sys.argv[3])
assert start <= c["next_renewal"] < end, (c["next_renewal"], start, end)
assert c["reason"] == "ARI window suggested by the CA", c
assert c["ari"]["start"] == start and c["ari"]["end"] == end, c["ari"]
assert c["ari"]["explanation_url"].endswith("/why"), c["ari"]
assert any(h["event"] == "ari" for h in c["history"]), c["history"]
EOF

# the CertID: base64url(AKI keyIdentifier) "." base64url(serial DER content)
cert="$TW/state/certs/c0/current/cert.pem"
want=$(python3 - "$cert" <<'EOF'
import base64, subprocess, sys
t = subprocess.run(["openssl", "x509", "-in", sys.argv[1], "-noout", "-ext",
                    "authorityKeyIdentifier", "-serial"], capture_output=True, text=True).stdout
aki = serial = None
lines = [l.strip() for l in t.splitlines()]
for i, l in enumerate(lines):
    if l.startswith("serial="):
        serial = l[len("serial="):]
    elif l.startswith("X509v3 Authority Key Identifier"):
        aki = lines[i + 1].replace("keyid:", "").replace(":", "")
b = bytes.fromhex(serial if len(serial) % 2 == 0 else "0" + serial)
if b[0] & 0x80:
    b = b"\0" + b
u = lambda x: base64.urlsafe_b64encode(x).decode().rstrip("=")
print(u(bytes.fromhex(aki)) + "." + u(b))
EOF
)
[ "$(head -1 "$TW/hits")" = "$want" ] || tw_fail "CertID asked: $(head -1 "$TW/hits"), expected $want"
[ -s "$TW/state/certs/c0/current/ari.json" ] || tw_fail "no ari.json beside the generation"
[ "$(wc -l <"$TW/hits")" = 1 ] || tw_fail "renewalInfo asked $(wc -l <"$TW/hits") times"
first=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["certificates"][0]["next_renewal"])' "$TW/status1.json")
tw_daemon_stop

# restarted: the same renewal time, no new fetch (Retry-After 6 h)
run_daemon 2 || tw_fail "after a restart status showed no ARI window: $(cat "$TW/status2.json")"
second=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["certificates"][0]["next_renewal"])' "$TW/status2.json")
[ "$first" = "$second" ] || tw_fail "renewal time changed across a restart: $first -> $second"
[ "$(wc -l <"$TW/hits")" = 1 ] || tw_fail "renewalInfo asked again after a restart"
tw_daemon_stop
tw_done
