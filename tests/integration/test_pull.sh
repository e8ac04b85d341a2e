#!/usr/bin/env bash
# The pull client (issue 15 item 3): daemon A issues www from Pebble and
# serves it on its HTTPS API (with its own certificate for 127.0.0.1, also
# from Pebble); daemon B has no [ca.*], no DNS and no http-01 listener,
# only [hub.a] (url, a read,pull token, trust = Pebble's root) and
# from = "hub.a". B deploys byte-identical files; a
# renewal on A reaches B through A's event stream and B deploys the new
# generation; B keeps the last event id and resumes after it on a restart.
# A wrong token, a token without the pull scope and a wrong trust are each
# refused with a sentence saying so, and nothing is deployed; a pin of A's
# own certificate is accepted. With A stopped, B keeps what it deployed and
# its status says the hub is down; when A is back B follows its events
# again and deploys its next renewal.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init pull
tw_start || exit 1
API_PORT=$(tw_port)
B=$TW/b
mkdir -p "$B/state" "$B/out/www"

{
  tw_config_head 4
  cat <<EOF
[api]
listen = ["127.0.0.1:$API_PORT"]
tokens_file = "$TW/api-tokens"
certificate = "apicert"

EOF
  tw_config_cert www ec-p256 www.test
  tw_config_cert apicert ec-p256 127.0.0.1
} >"$TW/a.toml"
for t in b:read,pull ro:read; do
  "$CERTLOOP" api-token create "${t%%:*}" --scopes "${t#*:}" -c "$TW/a.toml" 2>"$TW/tok.err" |
    tr -d '\n' >"$B/${t%%:*}.token" || tw_fail "api-token create $t: $(cat "$TW/tok.err")"
  chmod 600 "$B/${t%%:*}.token"
done
printf 'clt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n' >"$B/bad.token"
chmod 600 "$B/bad.token"

tw_daemon_start "$TW/a.toml" "$TW/a.out" "$TW/a.err" 20 test -s "$TW/state/api/bootstrap.pem" ||
  tw_fail "A: no bootstrap.pem: $(tail -5 "$TW/a.err")"
A_PID=$TW_DAEMON_PID
tw_daemon_wait 90 test -s "$TW/out/www/fullchain.pem" || tw_fail "A did not issue www"
tw_daemon_wait 90 test -s "$TW/out/apicert/fullchain.pem" || tw_fail "A did not issue apicert"
cp "$TW/root.pem" "$B/hub.pem"

# b_conf NAME TOKEN TRUST: B's configuration (no CA, no DNS, no listener)
b_conf() {
  cat <<EOF
[daemon]
state_dir = "$B/state${4:-}"
control_socket = "$B/control.sock"
log_level = "debug"

[http01]
listen = []

[hub.a]
url = "https://127.0.0.1:$API_PORT"
token_file = "$B/$2.token"
trust = "$3"

[certificate.www]
from = "hub.a"
domains = ["www.test"]

[[certificate.www.deploy]]
type = "files"
fullchain = "$B/out/www/fullchain.pem"
key = "$B/out/www/key.pem"
cert = "$B/out/www/cert.pem"
chain = "$B/out/www/chain.pem"
EOF
}
b_conf b b "$B/hub.pem" >"$B/b.toml"

# ---- check: the keys, and those that make no sense with from
"$CERTLOOP" check -c "$B/b.toml" >"$TW/check.txt" 2>&1 || tw_fail "check: $(cat "$TW/check.txt")"
sed -e 's|^from = "hub.a"$|&\nca = "pebble"\nchallenge = "dns-01"\nrenew_before = "10d"|' \
  -e 's|^url = .*|url = "http://127.0.0.1:1/x"|' -e 's|^trust = .*|trust = "'"$TW/tls.key"'"|' \
  "$B/b.toml" >"$TW/bad.toml"
echo '[certificate.w2]
from = "hub.nope"' >>"$TW/bad.toml"
out=$("$CERTLOOP" check -c "$TW/bad.toml" 2>&1) && tw_fail "check accepted bad.toml"
for want in 'certificate.www.ca: not allowed with from = "hub.a": the hub orders it' \
  'certificate.www.challenge: not allowed with from = "hub.a"' \
  'certificate.www.renew_before: not allowed with from = "hub.a": the hub decides when' \
  'hub.a.url: "http://127.0.0.1:1/x" is not https://HOST\[:PORT\]' \
  'hub.a.trust: .* holds no PEM certificate' \
  'certificate.w2.from: no \[hub.nope\] is defined'; do
  grep -q "$want" <<<"$out" || tw_fail "check: no '$want' in: $out"
done
chmod 644 "$B/b.token"
out=$("$CERTLOOP" check -c "$B/b.toml" 2>&1) && tw_fail "check accepted a world-readable token_file"
grep -q 'hub.a.token_file: secret file' <<<"$out" || tw_fail "token_file mode: $out"
chmod 600 "$B/b.token"
"$CERTLOOP" plan -c "$B/b.toml" >"$TW/plan.txt" 2>&1 || tw_fail "plan: $(cat "$TW/plan.txt")"
grep -q "from *hub.a (https://127.0.0.1:$API_PORT; trust $B/hub.pem)" "$TW/plan.txt" &&
  grep -q 'renew *by the hub' "$TW/plan.txt" || tw_fail "plan: $(cat "$TW/plan.txt")"

out=$("$CERTLOOP" revoke www -c "$B/b.toml" 2>&1)
[ $? = 64 ] && grep -q 'cert=www is pulled from hub.a (no CA here): revoke it on the hub' <<<"$out" ||
  tw_fail "revoke of a pulled certificate: $out"
out=$("$CERTLOOP" test www -c "$B/b.toml" 2>&1) && grep -q 'test www: pulled from hub.a: nothing to order here' <<<"$out" ||
  tw_fail "test of a pulled certificate: $out"

same_files() { # same_files: B's four files are A's, byte for byte
  local f
  for f in fullchain key cert chain; do
    cmp -s "$TW/out/www/$f.pem" "$B/out/www/$f.pem" || return 1
  done
}

# ---- B pulls and deploys what A has
tw_daemon_start "$B/b.toml" "$B/b.out" "$B/b.err"
B_PID=$TW_DAEMON_PID
tw_daemon_wait 30 same_files || tw_fail "B did not deploy A's files: $(grep -i 'hub\|www' "$B/b.err" | tail -5)"
[ "$(tw_mode "$B/out/www/key.pem")" = 600 ] || tw_fail "B's key mode $(tw_mode "$B/out/www/key.pem")"
grep -q 'hub.a: new generation' "$B/b.err" || tw_fail "B: no 'new generation' line"
# B follows A's events (A logs the stream's request)
TW_DAEMON_PID=$A_PID
tw_daemon_wait 30 grep -q 'GET /v1/events token=b -> 200' "$TW/a.err" || tw_fail "B is not on A's stream"
"$CERTLOOP" status --json -c "$B/b.toml" >"$TW/st.json" 2>&1 || tw_fail "B status: $(cat "$TW/st.json")"
python3 - "$TW/st.json" <<'EOF' || tw_fail "B status: $(cat "$TW/st.json")"
import json, sys
c = json.load(open(sys.argv[1]))["certificates"][0]
assert c["name"] == "www" and c["from"] == "hub.a" and c["ca"] is None, c
assert c["not_after"] and c["last_error"] is None and c["hub_error"] is None, c
EOF

# ---- a renewal on A reaches B through the event stream
old=$(openssl x509 -in "$TW/out/www/cert.pem" -noout -serial)
"$CERTLOOP" renew www --force -c "$TW/a.toml" >/dev/null 2>&1 || tw_fail "renew on A"
renewed() { [ "$(openssl x509 -in "$TW/out/www/cert.pem" -noout -serial)" != "$old" ]; }
tw_daemon_wait 90 renewed || tw_fail "A did not renew www"
TW_DAEMON_PID=$B_PID
tw_daemon_wait 30 same_files || tw_fail "B did not deploy the renewed generation"
grep -q 'hub.a: an event for cert=www' "$B/b.err" || tw_fail "B: the renewal did not come by the stream"
tw_daemon_wait 10 test -s "$B/state/hubs/a.last-event-id" || tw_fail "B kept no last event id"
id=$(cat "$B/state/hubs/a.last-event-id")
[ "$(find "$B/state/certs/www" -mindepth 1 -maxdepth 1 -type d | wc -l)" = 2 ] ||
  tw_fail "B: not two generations: $(ls "$B/state/certs/www")"

# ---- a reload that changes the hub's trust reopens its stream (same certificates: no fetch)
cp "$B/hub.pem" "$B/hub2.pem"
sed -i "s|^trust = .*|trust = \"$B/hub2.pem\"|" "$B/b.toml"
"$CERTLOOP" reload -c "$B/b.toml" >/dev/null 2>&1 || tw_fail "reload of B"
reopened() { [ "$(grep -c 'hub.a: following its events' "$B/b.err")" -ge 2 ]; }
tw_daemon_wait 30 reopened && grep -q 'hub.a: changed: no longer followed' "$B/b.err" ||
  tw_fail "B's reload did not reopen the stream: $(grep hub "$B/b.err" | tail -3)"

# ---- a restart resumes the stream after the last event
tw_daemon_stop || tw_fail "B did not stop cleanly"
tw_daemon_start "$B/b.toml" "$B/b2.out" "$B/b2.err"
B_PID=$TW_DAEMON_PID
tw_daemon_wait 30 grep -q "hub.a: following its events (https://127.0.0.1:$API_PORT, after event $id)" "$B/b2.err" ||
  tw_fail "B did not resume after $id: $(grep hub "$B/b2.err" | tail -3)"
same_files || tw_fail "B's files changed across its restart"
tw_daemon_wait 30 grep -q 'cert=www: unchanged: nothing stored or deployed' "$B/b2.err" || tw_fail "B: no unchanged fetch at its restart"
grep -q 'deployed cert=www' "$B/b2.err" && tw_fail "B deployed an unchanged generation again"

# ---- refused: a wrong token, a token without pull, a wrong trust (run --once: nothing deployed)
mkdir -p "$B/out/www"
for c in "bad $B/hub.pem|the hub refused the token of $B/bad.token (HTTP 401)" \
  "ro $B/hub.pem|GET www/key.pem: the token of $B/ro.token lacks the scope (HTTP 403" \
  "b $TW/tls-ca.pem|TLS: .* (the hub's certificate is checked against trust = $TW/tls-ca.pem only)"; do
  set -- ${c%%|*}
  want=${c#*|}
  b_conf x "$1" "$2" "-$1" | sed -e "s|$B/out/www/|$B/out/$1-|" -e "s|$B/control.sock|$B/c-$1.sock|" >"$B/once-$1.toml"
  "$CERTLOOP" run --once -c "$B/once-$1.toml" >"$B/$1.out" 2>"$B/$1.err"
  [ $? = 1 ] || tw_fail "token $1 trust $2: run --once did not fail"
  grep -q "www: failed: hub.a: .*$want" "$B/$1.out" || tw_fail "token $1: no '$want' in: $(cat "$B/$1.out")"
  ls "$B/out/$1-"* >/dev/null 2>&1 && tw_fail "token $1 trust $2: something was deployed"
  [ -e "$B/state-$1/certs/www/current" ] && tw_fail "token $1 trust $2: something was stored"
done

# a pin: A's own certificate as the only anchor (not a CA: accepted as it is)
b_conf x b "$TW/out/apicert/cert.pem" -pin | sed -e "s|$B/out/www/|$B/out/pin-|" \
  -e "s|$B/control.sock|$B/c-pin.sock|" >"$B/once-pin.toml"
"$CERTLOOP" run --once -c "$B/once-pin.toml" >"$B/pin.out" 2>"$B/pin.err" || tw_fail "pin: $(cat "$B/pin.out")"
cmp -s "$B/out/pin-fullchain.pem" "$TW/out/www/fullchain.pem" || tw_fail "pin: not A's fullchain"

# ---- A stopped: B keeps its files, and status says why
TW_DAEMON_PID=$A_PID
tw_daemon_stop || tw_fail "A did not stop cleanly"
TW_DAEMON_PID=$B_PID
"$CERTLOOP" renew www -c "$B/b.toml" >/dev/null 2>&1 || tw_fail "renew (fetch) on B"
down() {
  "$CERTLOOP" status --json -c "$B/b.toml" >"$TW/st.json" 2>&1 &&
    python3 - "$TW/st.json" 2>/dev/null <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))["certificates"][0]
assert c["hub_error"] and "connection refused" in c["hub_error"], c
assert c["last_error"] and "connection refused" in c["last_error"], c
EOF
}
tw_daemon_wait 30 down || tw_fail "B's status does not say the hub is down: $(cat "$TW/st.json")"
"$CERTLOOP" status -c "$B/b.toml" | grep -q '\[from hub.a\] hub down: ' || tw_fail "status text: no hub down"
same_files || tw_fail "B's files changed while the hub was down"

# ---- A back: B follows its events again and deploys A's next renewal
tw_daemon_start "$TW/a.toml" "$TW/a2.out" "$TW/a2.err"
A_PID=$TW_DAEMON_PID
TW_DAEMON_PID=$B_PID
back() { [ "$(grep -c 'hub.a: following its events' "$B/b2.err")" -ge 2 ]; }
tw_daemon_wait 60 back || tw_fail "B did not follow A's events again: $(grep hub "$B/b2.err" | tail -3)"
old=$(openssl x509 -in "$TW/out/www/cert.pem" -noout -serial)
"$CERTLOOP" renew www --force -c "$TW/a.toml" >/dev/null 2>&1 || tw_fail "renew on A (back)"
tw_daemon_wait 90 renewed || tw_fail "A did not renew www again"
tw_daemon_wait 30 same_files || tw_fail "B did not deploy A's renewal after the outage"
"$CERTLOOP" status --json -c "$B/b.toml" >"$TW/st.json" 2>&1
python3 - "$TW/st.json" <<'EOF' || tw_fail "B status after the outage: $(cat "$TW/st.json")"
import json, sys
c = json.load(open(sys.argv[1]))["certificates"][0]
assert c["hub_error"] is None and c["last_error"] is None and c["consecutive_failures"] == 0, c
EOF
tw_daemon_stop || tw_fail "B did not stop cleanly"
TW_DAEMON_PID=$A_PID
tw_daemon_stop || tw_fail "A did not stop cleanly"
tw_done
