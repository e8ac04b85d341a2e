#!/usr/bin/env bash
# The HTTPS API ([api], docs/API.md) against a Pebble-backed daemon:
# check refuses what is not usable; api-token writes hashes only; the
# self-signed bootstrap serves (curl --cacert STATE/api/bootstrap.pem) until
# [api] certificate is set by a reload, then the managed certificate does
# (curl --cacert Pebble's root), and a renewal through the API takes over
# the next connections. A table over every route: no token and a wrong token
# get 401 (each from its own loopback address: failures are limited per
# address), a token without the route's scope 403, the right scope 200/202;
# a read token never gets a key; a pull token's key.pem is the deployed key.
# Path traversal, request bodies, an oversized head and slow clients are cut
# off; failed authentications from one address end in 429; a revoked token
# is refused at once; every request is logged with its token's name.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init api
tw_start || exit 1
API_PORT=$(tw_port)
TOKENS=$TW/api-tokens

head_conf() {
  tw_config_head 8
  cat <<EOF
[api]
listen = ["127.0.0.1:$API_PORT"]
tokens_file = "$TOKENS"
$1

EOF
  tw_config_cert www ec-p256 www.test
  tw_config_cert apicert ec-p256 api.test
  tw_config_cert spare ec-p256 spare.test
}
head_conf "" >"$TW/certloop.toml"
head_conf 'certificate = "apicert"' >"$TW/managed.toml"

# ---- check refuses what it cannot honour
"$CERTLOOP" check -c "$TW/certloop.toml" >"$TW/check.txt" 2>&1 || tw_fail "check: $(cat "$TW/check.txt")"
sed -e '/^tokens_file = /d' "$TW/certloop.toml" >"$TW/bad1.toml"
out=$("$CERTLOOP" check -c "$TW/bad1.toml" 2>&1) && tw_fail "check accepted listen without tokens_file"
grep -q 'error: api: listen needs tokens_file' <<<"$out" || tw_fail "no tokens_file message: $out"
sed -e 's/^tokens_file = .*/&\ncertificate = "nope"/' "$TW/certloop.toml" >"$TW/bad2.toml"
out=$("$CERTLOOP" check -c "$TW/bad2.toml" 2>&1) && tw_fail "check accepted an unknown api.certificate"
grep -q 'api.certificate: no \[certificate.nope\] is defined' <<<"$out" || tw_fail "unknown certificate: $out"
sed -e 's/^listen = \["127.0.0.1:'"$API_PORT"'"\]/listen = []/' "$TW/managed.toml" >"$TW/bad3.toml"
out=$("$CERTLOOP" check -c "$TW/bad3.toml" 2>&1) && tw_fail "check accepted api.certificate without listen"
grep -q 'api.certificate: only used with \[api\] listen' <<<"$out" || tw_fail "certificate without listen: $out"
sed -e 's/^listen = \["127.0.0.1:'"$API_PORT"'"\]/listen = ["localhost:8443"]/' "$TW/certloop.toml" >"$TW/bad4.toml"
"$CERTLOOP" check -c "$TW/bad4.toml" >/dev/null 2>&1 && tw_fail "check accepted a host name in api.listen"

# ---- tokens: the secret printed once, only its hash stored
for t in reader:read puller:pull manager:manage all:read,pull,manage victim:read; do
  "$CERTLOOP" api-token create "${t%%:*}" --scopes "${t#*:}" -c "$TW/certloop.toml" \
    >"$TW/${t%%:*}.tok" 2>"$TW/tok.err" || tw_fail "api-token create $t: $(cat "$TW/tok.err")"
done
[ "$(tw_mode "$TOKENS")" = 600 ] || tw_fail "tokens file mode $(tw_mode "$TOKENS")"
grep -qF "$(cut -c5- "$TW/reader.tok")" "$TOKENS" && tw_fail "a secret is in the tokens file"
grep -qx 'all read,pull,manage sha256:[0-9a-f]\{64\}' "$TOKENS" || tw_fail "tokens file: $(cat "$TOKENS")"
"$CERTLOOP" api-token create reader --scopes read -c "$TW/certloop.toml" >/dev/null 2>&1 &&
  tw_fail "a second token named reader was created"
"$CERTLOOP" api-token create x --scopes admin -c "$TW/certloop.toml" >/dev/null 2>&1
[ $? = 64 ] || tw_fail "--scopes admin was not a usage error"

tw_daemon_start "$TW/certloop.toml" "$TW/out.txt" "$TW/err.txt" 20 test -s "$TW/state/api/bootstrap.pem" ||
  tw_fail "no bootstrap.pem: $(tail -5 "$TW/err.txt")"

URL=https://127.0.0.1:$API_PORT
# api ADDR TOKEN-NAME|-|bad METHOD PATH [curl args...]: prints the HTTP status
# (000 when the connection broke); the body goes to $TW/body.
CA=$TW/state/api/bootstrap.pem
api() {
  local from=$1 tok=$2 method=$3 path=$4 auth=()
  shift 4
  case $tok in
  -) ;;
  bad) auth=(-H "Authorization: Bearer clt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") ;;
  *) auth=(-H "Authorization: Bearer $(cat "$TW/$tok.tok")") ;;
  esac
  curl -sS --max-time 15 --path-as-is --interface "$from" --cacert "$CA" -X "$method" "${auth[@]}" \
    -o "$TW/body" -w '%{http_code}' "$@" "$URL$path" 2>"$TW/curl.err"
}

# ---- the bootstrap serves until [api] certificate is set
st=$(api 127.0.0.1 reader GET /v1/certificates)
[ "$st" = 200 ] || tw_fail "bootstrap GET /v1/certificates: $st $(cat "$TW/body" "$TW/curl.err")"
grep -q '"name":"www"' "$TW/body" || tw_fail "list: $(cat "$TW/body")"
grep -q 'DNS:localhost, IP Address:127.0.0.1' <<<"$(openssl x509 -in "$CA" -noout -ext subjectAltName)" ||
  tw_fail "bootstrap SANs: $(openssl x509 -in "$CA" -noout -ext subjectAltName)"

tw_daemon_wait 90 test -s "$TW/out/apicert/fullchain.pem" || tw_fail "apicert not issued"
tw_daemon_wait 30 test -s "$TW/out/www/fullchain.pem" || tw_fail "www not issued"
tw_daemon_wait 30 test -s "$TW/out/spare/fullchain.pem" || tw_fail "spare not issued"
tw_check_deployed www

# ---- the route table: every route with no, a bad, each scope's token
# method path | none bad reader puller manager all
ROUTES=(
  "GET /v1/certificates|401 401 200 403 403 200"
  "GET /v1/certificates/www|401 401 200 403 403 200"
  "GET /v1/certificates/www/cert.pem|401 401 200 200 403 200"
  "GET /v1/certificates/www/chain.pem|401 401 200 200 403 200"
  "GET /v1/certificates/www/fullchain.pem|401 401 200 200 403 200"
  "GET /v1/certificates/www/key.pem|401 401 403 200 403 200"
  "POST /v1/certificates/spare/renew?force=true|401 401 403 403 202 409"
  "GET /v1/events|401 401 200 403 403 200"
  "POST /v1/certificates|401 401 403 403 400 400"
  "DELETE /v1/certificates/nope|401 401 403 403 404 404"
  "GET /v1/fleet|401 401 404 403 403 404"
  "GET /v1/plan|401 401 403 403 200 200"
  "POST /v1/plan|401 401 403 403 200 200"
  "POST /v1/certificates/nope/test|401 401 403 403 404 404"
)
n=$(grep -c '^    {"' "$(dirname "$0")/../../src/api/routes.c")
[ "$n" = "${#ROUTES[@]}" ] || tw_fail "routes.c has $n routes, this table ${#ROUTES[@]}"
addr=10
for row in "${ROUTES[@]}"; do
  route=${row%%|*}
  read -r -a want <<<"${row#*|}"
  i=0
  for tok in - bad reader puller manager all; do
    from=127.0.0.$addr
    [ "$tok" = - ] || [ "$tok" = bad ] && addr=$((addr + 1)) # failures counted per address
    extra=()
    [ "${route#* }" = /v1/events ] && extra=(--max-time 1) # a stream: the status, then cut
    st=$(api "$from" "$tok" ${route% *} ${route#* } "${extra[@]}")
    # renew: the manager's queues it, then "all" finds it running (409) or,
    # if it was quick, queues another (202)
    if [ "$st" != "${want[$i]}" ] && ! { [ "$tok" = all ] && [ "$st" = 202 ]; }; then
      tw_fail "$route token=$tok: $st, expected ${want[$i]} ($(cat "$TW/body" 2>/dev/null))"
    fi
    i=$((i + 1))
  done
done
tw_log "route table: ${#ROUTES[@]} routes x 6 tokens"

# a read token never gets a key; a pull token gets the deployed one
api 127.0.0.1 reader GET /v1/certificates/www/key.pem >/dev/null
grep -q PRIVATE "$TW/body" && tw_fail "a read token got a private key"
[ "$(api 127.0.0.1 puller GET /v1/certificates/www/key.pem)" = 200 ] || tw_fail "pull key.pem"
cmp -s "$TW/body" "$TW/out/www/key.pem" || tw_fail "key.pem is not the deployed key"
[ "$(api 127.0.0.1 reader GET /v1/certificates/www/fullchain.pem)" = 200 ] || tw_fail "fullchain"
cmp -s "$TW/body" "$TW/out/www/fullchain.pem" || tw_fail "fullchain.pem is not the deployed one"
[ "$(api 127.0.0.1 reader GET /v1/certificates/nope)" = 404 ] || tw_fail "unknown name not 404"
[ "$(api 127.0.0.1 reader GET /v1/certificates/www)" = 200 ] || tw_fail "GET www"
python3 - "$TW/body" <<'EOF' || tw_fail "certificate object: $(cat "$TW/body")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["name"] == "www" and o["domains"] == ["www.test"], o
assert o["state"] and o["not_after"] and o["next_renewal"] and o["reason"], o
assert isinstance(o.get("history"), list) and o["history"], o
EOF
# a dry run needs a staging directory: Pebble's [ca.pebble] has none here
[ "$(api 127.0.0.1 manager POST '/v1/certificates/www/renew?dry_run=true')" = 422 ] &&
  grep -q 'no staging directory' "$TW/body" || tw_fail "dry_run without staging: $(cat "$TW/body")"
[ "$(api 127.0.0.1 manager POST '/v1/certificates/www/renew?bogus=1')" = 400 ] || tw_fail "unknown parameter not 400"
# not forced and not due: nothing queued, and the answer says so
st=$(api 127.0.0.1 manager POST /v1/certificates/www/renew)
[ "$st" = 200 ] && grep -q '"queued": *false' "$TW/body" && grep -q 'not due; renewal at' "$TW/body" ||
  tw_fail "renew of a certificate not due: $st $(cat "$TW/body")"

# ---- traversal and escapes match no route
for p in /v1/certificates/../certificates/www/key.pem /v1/certificates/%2e%2e/key.pem \
  /v1/certificates/www%2fkey.pem /v1/certificates/.www/key.pem "/v1/certificates//key.pem" \
  /v1/certificates/www/../www/key.pem; do
  st=$(api 127.0.0.1 all GET "$p")
  [ "$st" = 404 ] || [ "$st" = 400 ] || tw_fail "traversal $p: $st"
  grep -q PRIVATE "$TW/body" && tw_fail "traversal $p returned a key"
done

# ---- bodies, oversized heads, slow clients
st=$(api 127.0.0.1 manager POST /v1/certificates/spare/renew --data-binary "$(head -c 100000 /dev/zero | tr '\0' x)")
[ "$st" = 413 ] || [ "$st" = 000 ] || tw_fail "a 100 kB body: $st"
st=$(api 127.0.0.1 manager POST /v1/certificates/spare/renew --data-binary 'x=1')
[ "$st" = 400 ] || tw_fail "a body on renew: $st"
# a body announced but never sent is cut at the head's time limit
python3 - "$API_PORT" "$CA" "$(cat "$TW/manager.tok")" <<'EOF' || tw_fail "a slow body was not cut off"
import socket, ssl, sys, time
port, ca, tok = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
t = time.monotonic()
s.sendall(b"POST /v1/certificates HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " +
          tok.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"name\":")
s.settimeout(30)
try:
    data = s.recv(100)
except (ConnectionError, ssl.SSLError):
    data = b""
took = time.monotonic() - t
print("slow body cut after", round(took, 1), "s:", data)
sys.exit(0 if 8 <= took <= 15 and data == b"" else 1)
EOF
st=$(api 127.0.0.1 reader GET /v1/certificates -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' x)")
[ "$st" = 431 ] || tw_fail "a 9 kB head: $st"
python3 - "$API_PORT" "$CA" <<'EOF' || tw_fail "slow clients were not cut off"
import socket, ssl, sys, threading, time
port, ca = int(sys.argv[1]), sys.argv[2]
res = {}
def slow_head():
    ctx = ssl.create_default_context(cafile=ca)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    t = time.monotonic()
    s.sendall(b"GET /v1/certificates HTTP/1.1\r\nHost: localhost\r\n")  # never finished
    s.settimeout(30)
    try:
        data = s.recv(100)
    except (ConnectionError, ssl.SSLError):
        data = b""
    res["head"] = (time.monotonic() - t, data)
def no_handshake():
    s = socket.create_connection(("127.0.0.1", port))
    t = time.monotonic()
    s.settimeout(30)
    try:
        data = s.recv(100)
    except ConnectionError:
        data = b""
    res["tls"] = (time.monotonic() - t, data)
th = [threading.Thread(target=f) for f in (slow_head, no_handshake)]
[x.start() for x in th]
[x.join() for x in th]
print("slow clients:", {k: (round(v[0], 1), v[1]) for k, v in res.items()})
ok = all(8 <= v[0] <= 15 and v[1] == b"" for v in res.values())
sys.exit(0 if ok and len(res) == 2 else 1)
EOF

# ---- failed authentications from one address end in 429, others unaffected
for i in $(seq 1 10); do
  st=$(api 127.0.0.99 bad GET /v1/certificates)
  [ "$st" = 401 ] || tw_fail "bad token $i from 127.0.0.99: $st"
done
st=$(api 127.0.0.99 reader GET /v1/certificates)
[ "$st" = 429 ] || tw_fail "after 10 failures, a good token from the same address: $st"
grep -qi '^Retry-After: [0-9]' <<<"$(curl -sS --interface 127.0.0.99 --cacert "$CA" -D - -o /dev/null "$URL/v1/certificates")" ||
  tw_fail "429 without Retry-After"
[ "$(api 127.0.0.98 reader GET /v1/certificates)" = 200 ] || tw_fail "another address was limited too"

# ---- revoke takes effect at the next request
[ "$(api 127.0.0.1 victim GET /v1/certificates)" = 200 ] || tw_fail "victim before revoke"
"$CERTLOOP" api-token revoke victim -c "$TW/certloop.toml" 2>/dev/null || tw_fail "api-token revoke"
[ "$(api 127.0.0.97 victim GET /v1/certificates)" = 401 ] || tw_fail "a revoked token was accepted"
"$CERTLOOP" api-token revoke victim -c "$TW/certloop.toml" 2>/dev/null && tw_fail "revoked twice"

# every request is logged with its token's name
grep -q 'info api: 127.0.0.1 GET /v1/certificates/www/key.pem token=puller -> 200' "$TW/err.txt" ||
  tw_fail "no log line for the pull"
grep -q 'token=- -> 401' "$TW/err.txt" || tw_fail "no log line for an unauthenticated request"
grep -q 'PRIVATE\|clt_' "$TW/err.txt" && tw_fail "a key or a secret in the log"

# ---- the managed certificate: a reload sets [api] certificate
cp "$TW/managed.toml" "$TW/certloop.toml"
"$CERTLOOP" reload -c "$TW/certloop.toml" >/dev/null 2>&1 || tw_fail "reload"
CA=$TW/root.pem
URL=https://api.test:$API_PORT
managed() {
  [ "$(api 127.0.0.1 reader GET /v1/certificates --resolve "api.test:$API_PORT:127.0.0.1")" = 200 ]
}
tw_daemon_wait 10 managed || tw_fail "the managed certificate is not served: $(cat "$TW/curl.err")"
served_serial() {
  echo | openssl s_client -connect "127.0.0.1:$API_PORT" -servername api.test 2>/dev/null |
    openssl x509 -noout -serial
}
s1=$(served_serial)
[ "$s1" = "$(openssl x509 -in "$TW/out/apicert/cert.pem" -noout -serial)" ] ||
  tw_fail "served $s1, stored $(openssl x509 -in "$TW/out/apicert/cert.pem" -noout -serial)"
tw_log "managed certificate served over the API ($s1), fetched with curl --cacert Pebble's root"

# renewal through the API: the next connections get the new certificate,
# and a GET /v1/events stream sees it
curl -sSN --max-time 120 --cacert "$CA" --resolve "api.test:$API_PORT:127.0.0.1" \
  -H "Authorization: Bearer $(cat "$TW/reader.tok")" "$URL/v1/events" >"$TW/sse.txt" 2>/dev/null &
TW_PIDS+=($!)
gen1=$(readlink "$TW/state/certs/apicert/current")
[ "$(api 127.0.0.1 manager POST '/v1/certificates/apicert/renew?force=true' --resolve "api.test:$API_PORT:127.0.0.1")" = 202 ] ||
  tw_fail "renew apicert: $(cat "$TW/body")"
renewed() { [ "$(readlink "$TW/state/certs/apicert/current")" != "$gen1" ]; }
tw_daemon_wait 90 renewed || tw_fail "apicert was not renewed"
new_served() { [ "$(served_serial)" = "$(openssl x509 -in "$TW/state/certs/apicert/current/cert.pem" -noout -serial)" ]; }
tw_daemon_wait 10 new_served || tw_fail "the renewed certificate is not served"
[ "$(served_serial)" != "$s1" ] || tw_fail "still the first certificate"
managed || tw_fail "curl --cacert Pebble's root after the renewal"
sse_renewed() { grep -q '^data: {.*"event":"renewed".*"certificate":"apicert"' "$TW/sse.txt"; }
tw_daemon_wait 10 sse_renewed || tw_fail "no renewed event on the stream: $(cat "$TW/sse.txt")"
grep -q '^event: renewed$' "$TW/sse.txt" && grep -q '^id: ' "$TW/sse.txt" || tw_fail "stream format: $(cat "$TW/sse.txt")"
# an unknown Last-Event-ID replays every kept event; the id of one of them
# replays only what came after it
sse_get() {
  api 127.0.0.1 reader GET /v1/events --resolve "api.test:$API_PORT:127.0.0.1" --max-time 1 \
    -H "Last-Event-ID: $1" >/dev/null
}
sse_get unknown-id
grep -q '"certificate":"spare"' "$TW/body" && grep -q '"certificate":"apicert"' "$TW/body" ||
  tw_fail "an unknown Last-Event-ID did not replay the kept events: $(cat "$TW/body")"
spare_id=$(grep -B2 '^data: .*"certificate":"spare"' "$TW/body" | sed -n 's/^id: //p' | tail -1)
sse_get "$spare_id"
grep -q '"certificate":"spare"' "$TW/body" && tw_fail "resume after $spare_id replayed it"
grep -q '"certificate":"apicert"' "$TW/body" || tw_fail "resume after $spare_id: $(cat "$TW/body")"

tw_daemon_stop
tw_done
