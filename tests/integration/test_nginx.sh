#!/usr/bin/env bash
# certloop behind Debian's real nginx, which owns Pebble's http-01 port (the
# "port 80" of this world) with the shipped etc/examples/nginx-acme.conf:
# /.well-known/acme-challenge/ answered, everything else redirected to https.
#  1. certloop cannot take nginx's port: exit 78, the message names nginx
#     and what to set.
#  2. proxy: nginx forwards the challenge path to certloop's listener on
#     loopback; `run --once` issues and deploys.
#  3. webroot: nginx serves the token files certloop writes ([http01]
#     webroot, listen = [] by default) to its worker user; the daemon issues
#     and deploys, and no token file is left once the order is over.
#  4. check refuses listen = [] without a webroot for an http-01 certificate.
#  5. `certloop test NAME` fetches a probe token through the name on
#     [http01] public_port as the CA does: it passes through the working
#     proxy and webroot sites, and fails, saying why, when nginx redirects
#     the challenge path to a dead https site or answers 404.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
tw_init nginx
tw_need nginx
SRC=${SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
NGINX_PORT=$(tw_port)
TW_HTTP_PORT=$NGINX_PORT # Pebble validates through nginx
tw_start || exit 1
CL_PORT=$(tw_port)
# nginx's workers (nobody when run as root) must reach the webroot
chmod 711 "$TW"
mkdir -p "$TW/nginx" "$TW/www"
chmod 755 "$TW/www"

# site.conf: the shipped example, on the test ports (IPv4 loopback only)
site() {
  sed -e "s|listen 80 default_server;|listen 127.0.0.1:$NGINX_PORT default_server;|" \
    -e '/listen \[::\]:80/d' -e "s|127.0.0.1:8402|127.0.0.1:$CL_PORT|" \
    "$SRC/etc/examples/nginx-acme.conf"
}
site >"$TW/nginx/proxy.conf"
# way 2 as its comment says: proxy_pass lines out, the root lines in
site | sed -e '/proxy_/d' -e "s|# root /var/www/acme;|root $TW/www;|" \
  -e 's|# default_type|default_type|' -e 's|# try_files|try_files|' >"$TW/nginx/webroot.conf"
grep -q "root $TW/www;" "$TW/nginx/webroot.conf" || tw_fail "example has no webroot lines to enable"

nginx_conf() {
  cat <<EOT
daemon on;
worker_processes 1;
pid $TW/nginx/nginx.pid;
error_log $TW/nginx/error.log;
events { worker_connections 64; }
http {
  access_log $TW/nginx/access.log;
  client_body_temp_path $TW/nginx/body;
  proxy_temp_path $TW/nginx/proxy;
  fastcgi_temp_path $TW/nginx/fastcgi;
  uwsgi_temp_path $TW/nginx/uwsgi;
  scgi_temp_path $TW/nginx/scgi;
  include $TW/nginx/$1.conf;
}
EOT
}
nginx_conf proxy >"$TW/nginx/nginx.conf"
nginx -c "$TW/nginx/nginx.conf" -e "$TW/nginx/error.log" || { tw_fail "nginx did not start"; tw_done; }
trap 'nginx -c "$TW/nginx/nginx.conf" -e "$TW/nginx/error.log" -s stop 2>/dev/null; tw_cleanup' EXIT
tw_wait_http "http://127.0.0.1:$NGINX_PORT/.well-known/acme-challenge/" "" 10 ||
  curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" || tw_fail "nginx does not answer"

# nginx_reload CONF PATH CODE: nginx -s reload with nginx_conf CONF, then
# waits until GET /.well-known/acme-challenge/PATH answers CODE as only the
# new configuration does: the signal returns at once, and the old workers
# answer until the master has read the new configuration and started new
# ones (under load, more than the 0.5 s this slept)
challenge_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    "http://127.0.0.1:$NGINX_PORT/.well-known/acme-challenge/$1"
}
# (the old worker goes on answering connections it accepts until it has
# exited: one new answer is not enough, the old workers must be gone)
nginx_reload() {
  local code old
  old=$(pgrep -P "$(cat "$TW/nginx/nginx.pid")" | tr '\n' ' ')
  nginx_conf "$1" >"$TW/nginx/nginx.conf"
  nginx -c "$TW/nginx/nginx.conf" -e "$TW/nginx/error.log" -s reload || { tw_fail "nginx reload"; return 1; }
  old_gone() {
    local p
    for p in $old; do kill -0 "$p" 2>/dev/null && return 1; done
    return 0
  }
  tw_wait 60 old_gone || tw_fail "nginx reload to $1: the old workers ($old) are still running"
  answers() { code=$(challenge_code "$1") && [ "$code" = "$2" ]; }
  tw_wait 60 answers "$2" "$3" || tw_fail "nginx reload to $1: the challenge path answers $code, not $3"
}

# the rest of the site is redirected to https, the challenge path is not
code=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: site.test' \
  "http://127.0.0.1:$NGINX_PORT/index.html")
[ "$code" = "301 https://site.test/index.html" ] || tw_fail "nginx redirect: $code"

# pf_conf: the test world's head with public_port = nginx's port and the
# mock DNS (every name is 127.0.0.1) as resolver, for `certloop test`
pf_conf() {
  sed -e "s|^\[http01\]|&\npublic_port = $NGINX_PORT|" \
    -e "s|^log_level = .*|&\nresolvers = [\"127.0.0.1:$TW_DNS_PORT\"]|"
}

# 1. certloop on nginx's port
{
  tw_config_head 4 "$NGINX_PORT"
  tw_config_cert www ec-p256 www.test
} >"$TW/clash.toml"
timeout 30 "$CERTLOOP" run -c "$TW/clash.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
[ "$rc" = 78 ] || tw_fail "port held by nginx: exit $rc, expected 78"
grep -q "listen 127.0.0.1:$NGINX_PORT: address already in use by nginx (pid [0-9]*).*webroot.*listen = \[\].*nginx-acme.conf" \
  "$TW/err.txt" || tw_fail "address in use message: $(cat "$TW/err.txt")"

# 2. proxy
{
  tw_config_head 4 "$CL_PORT" | pf_conf
  tw_config_cert www ec-p256 www.test www2.test
} >"$TW/proxy.toml"
# 5a. the working proxy passes `certloop test` (a temporary listener)
timeout 60 "$CERTLOOP" test www -c "$TW/proxy.toml" >"$TW/test.txt" 2>&1 ||
  tw_fail "test through the proxy: $(cat "$TW/test.txt")"
for d in www.test www2.test; do
  grep -Eq "^test www: http-01 $d: http://$d:$NGINX_PORT/\.well-known/acme-challenge/[A-Za-z0-9_-]+ via 127\.0\.0\.1: token served \.\.\. PASS$" \
    "$TW/test.txt" || tw_fail "test through the proxy: no PASS for $d: $(cat "$TW/test.txt")"
done
timeout 120 "$CERTLOOP" run --once -c "$TW/proxy.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
[ "$rc" = 0 ] || { tw_fail "proxy: run --once exit $rc"; sed 's/^/  /' "$TW/err.txt" >&2; }
tw_check_deployed www
grep -q 'GET /.well-known/acme-challenge/[A-Za-z0-9_-]* HTTP/1.1" 200' "$TW/nginx/access.log" ||
  tw_fail "proxy: nginx served no token"

# 3. webroot, through the daemon, nginx reloaded with way 2
# (a file in the webroot is served (200) by the new configuration only)
mkdir -p "$TW/www/.well-known/acme-challenge"
echo probe >"$TW/www/.well-known/acme-challenge/reload-probe"
nginx_reload webroot reload-probe 200
rm -f "$TW/www/.well-known/acme-challenge/reload-probe"
: >"$TW/nginx/access.log"
rm -rf "$TW/state" "$TW/out"
{
  tw_config_head 4 | pf_conf | sed "s|^listen = .*|webroot = \"$TW/www\"|"
  tw_config_cert web ec-p256 web.test www.web.test
} >"$TW/webroot.toml"
grep -q '^listen' "$TW/webroot.toml" && tw_fail "webroot config still has listen"
"$CERTLOOP" check -c "$TW/webroot.toml" >/dev/null 2>&1 || tw_fail "check refuses the webroot config"
"$CERTLOOP" plan -c "$TW/webroot.toml" web >"$TW/plan.txt" 2>&1
grep -qxF "  challenge  http-01 (token files in $TW/www/.well-known/acme-challenge/; the CA connects to port $NGINX_PORT)" \
  "$TW/plan.txt" || tw_fail "plan does not say who answers: $(cat "$TW/plan.txt")"
deployed() { [ -s "$TW/out/web/fullchain.pem" ]; }
tw_daemon_start "$TW/webroot.toml" "$TW/d.out" "$TW/d.err" 60 deployed ||
  { tw_fail "webroot: not deployed"; sed 's/^/  /' "$TW/d.err" >&2; }
tw_check_deployed web
grep -q "http01: no listener" "$TW/d.err" || tw_fail "webroot: the daemon opened a listener"
n=$(grep -c 'GET /.well-known/acme-challenge/[A-Za-z0-9_-]* HTTP/1.1" 200' "$TW/nginx/access.log")
[ "$n" -ge 2 ] || tw_fail "webroot: nginx served $n tokens, expected at least 2"
left=$(find "$TW/www/.well-known/acme-challenge" -type f | wc -l)
[ "$left" = 0 ] || tw_fail "webroot: $left token file(s) left behind"
# 5b. the webroot site passes `certloop test` while the daemon runs
timeout 60 "$CERTLOOP" test web -c "$TW/webroot.toml" >"$TW/test.txt" 2>&1 ||
  tw_fail "test through the webroot: $(cat "$TW/test.txt")"
grep -q "^test web: http-01 www.web.test: .* token served ... PASS$" "$TW/test.txt" ||
  tw_fail "test through the webroot: $(cat "$TW/test.txt")"
left=$(find "$TW/www/.well-known/acme-challenge" -type f | wc -l)
[ "$left" = 0 ] || tw_fail "test left $left probe file(s) in the webroot"
tw_daemon_stop >/dev/null || tw_fail "daemon exit status"

# 5c. broken nginx sites: everything (the challenge path too) redirected to
# https, where nothing answers; or a site without the challenge location
cat >"$TW/nginx/redirect.conf" <<EOT
server {
    listen 127.0.0.1:$NGINX_PORT default_server;
    return 301 https://\$host\$request_uri;
}
EOT
mkdir -p "$TW/empty"
cat >"$TW/nginx/notfound.conf" <<EOT
server {
    listen 127.0.0.1:$NGINX_PORT default_server;
    root $TW/empty;
}
EOT
mkdir -p "$TW/out/www"
nginx_reload redirect x 301
timeout 60 "$CERTLOOP" test www -c "$TW/proxy.toml" >"$TW/test.txt" 2>&1
rc=$?
[ "$rc" = 1 ] || tw_fail "redirect to dead https: test exit $rc, expected 1"
grep -q "^test www: http-01 www.test: http://www.test:$NGINX_PORT/.well-known/acme-challenge/[A-Za-z0-9_-]* via 127.0.0.1, redirected: 301 https://www.test/.well-known/acme-challenge/[A-Za-z0-9_-]*: connection refused by www.test:443.* FAIL$" \
  "$TW/test.txt" || tw_fail "redirect to dead https: $(cat "$TW/test.txt")"
nginx_reload notfound x 404
timeout 60 "$CERTLOOP" test www -c "$TW/proxy.toml" >"$TW/test.txt" 2>&1
rc=$?
[ "$rc" = 1 ] || tw_fail "404: test exit $rc, expected 1"
grep -q "^test www: http-01 www.test: .* answered HTTP 404: the server on port $NGINX_PORT does not serve the token.* FAIL$" \
  "$TW/test.txt" || tw_fail "404: $(cat "$TW/test.txt")"

# 4. nothing answers http-01
{
  tw_config_head 4 | sed 's|^listen = .*|listen = []|'
  tw_config_cert web ec-p256 web.test
} >"$TW/none.toml"
"$CERTLOOP" check -c "$TW/none.toml" >"$TW/out.txt" 2>&1
rc=$?
[ "$rc" = 78 ] || tw_fail "listen = [] without webroot: check exit $rc, expected 78"
grep -q "certificate.web: http-01 has nothing to answer the CA" "$TW/out.txt" ||
  tw_fail "listen = []: $(cat "$TW/out.txt")"
tw_done
