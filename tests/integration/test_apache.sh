#!/usr/bin/env bash
# certloop behind Debian's Apache with the shipped etc/examples/apache-acme.conf
# on Pebble's http-01 port: everything else is redirected to https, and
#  1. proxy: Apache forwards /.well-known/acme-challenge/ to certloop's
#     listener; `certloop test` passes through it and `run --once` issues;
#  2. webroot: Apache serves the token files certloop writes (the example's
#     Alias block); `run --once` issues and no token file is left.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
tw_init apache
command -v apache2 >/dev/null 2>&1 || tw_skip "apache2 not found"
SRC=${SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
MODS=/usr/lib/apache2/modules
PORT=$(tw_port)
TW_HTTP_PORT=$PORT # Pebble validates through Apache
tw_start || exit 1
CL_PORT=$(tw_port)
chmod 711 "$TW" # Apache's children run as nobody when started as root
mkdir -p "$TW/apache" "$TW/www"
chmod 755 "$TW/www"

site() {
  sed -e "s|<VirtualHost \\*:80>|<VirtualHost *:$PORT>|" -e "s|127.0.0.1:8402|127.0.0.1:$CL_PORT|g" \
    "$SRC/etc/examples/apache-acme.conf"
}
site >"$TW/apache/proxy.conf"
# way 2 as its comment says: the Proxy lines out, the Alias block in
site | sed -e '/^ *Proxy/d' -e "s|/var/www/acme|$TW/www|g" \
  -e 's|^    # Alias|    Alias|' -e 's|^    # <Directory|    <Directory|' \
  -e 's|^    #     |        |' -e 's|^    # </Directory>|    </Directory>|' >"$TW/apache/webroot.conf"
grep -q "^    Alias /.well-known/acme-challenge/ $TW/www/" "$TW/apache/webroot.conf" ||
  tw_fail "example has no Alias block to enable"

apache_conf() {
  cat <<EOT
LoadModule mpm_event_module $MODS/mod_mpm_event.so
LoadModule authz_core_module $MODS/mod_authz_core.so
LoadModule alias_module $MODS/mod_alias.so
LoadModule mime_module $MODS/mod_mime.so
TypesConfig /dev/null
LoadModule proxy_module $MODS/mod_proxy.so
LoadModule proxy_http_module $MODS/mod_proxy_http.so
LoadModule rewrite_module $MODS/mod_rewrite.so
ServerName localhost
Listen 127.0.0.1:$PORT
PidFile $TW/apache/httpd.pid
DefaultRuntimeDir $TW/apache
Mutex file:$TW/apache default
ErrorLog $TW/apache/error.log
LogFormat "%h \"%r\" %>s" short
CustomLog $TW/apache/access.log short
$( [ "$(id -u)" = 0 ] && printf 'User nobody\nGroup nogroup\n')
Include $TW/apache/$1.conf
EOT
}
apache_start() {
  apache_conf "$1" >"$TW/apache/httpd.conf"
  apache2 -t -f "$TW/apache/httpd.conf" >"$TW/apache/t.out" 2>&1 ||
    { tw_fail "apache2 -t refuses the $1 configuration"; sed 's/^/  | /' "$TW/apache/t.out" >&2; return 1; }
  apache2 -f "$TW/apache/httpd.conf" -DFOREGROUND >>"$TW/apache/run.log" 2>&1 &
  APACHE_PID=$!
  TW_PIDS+=($APACHE_PID)
  local t
  for ((t = 0; t < 50; t++)); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/" && return 0
    sleep 0.1
  done
  tw_fail "apache did not start"
  return 1
}
apache_stop() {
  kill "$APACHE_PID" 2>/dev/null
  wait "$APACHE_PID" 2>/dev/null
}

apache_start proxy || tw_done
code=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: site.test' \
  "http://127.0.0.1:$PORT/index.html")
[ "$code" = "301 https://site.test/index.html" ] || tw_fail "apache redirect: $code"

pf_conf() {
  sed -e "s|^\[http01\]|&\npublic_port = $PORT|" \
    -e "s|^log_level = .*|&\nresolvers = [\"127.0.0.1:$TW_DNS_PORT\"]|"
}
{
  tw_config_head 4 "$CL_PORT" | pf_conf
  tw_config_cert www ec-p256 www.test
} >"$TW/proxy.toml"
timeout 60 "$CERTLOOP" test www -c "$TW/proxy.toml" >"$TW/test.txt" 2>&1 ||
  tw_fail "test through Apache's proxy: $(cat "$TW/test.txt")"
grep -q "^test www: http-01 www.test: .* token served ... PASS$" "$TW/test.txt" ||
  tw_fail "test through Apache's proxy: no PASS line"
timeout 120 "$CERTLOOP" run --once -c "$TW/proxy.toml" >"$TW/out.txt" 2>"$TW/err.txt" ||
  { tw_fail "proxy: run --once failed"; tail -5 "$TW/err.txt" >&2; }
tw_check_deployed www
grep -q '"GET /.well-known/acme-challenge/[A-Za-z0-9_-]* HTTP/1.1" 200' "$TW/apache/access.log" ||
  tw_fail "proxy: Apache served no token"
apache_stop

apache_start webroot || tw_done
rm -rf "$TW/state" "$TW/out"
{
  tw_config_head 4 | pf_conf | sed "s|^listen = .*|webroot = \"$TW/www\"|"
  tw_config_cert web ec-p256 web.test
} >"$TW/webroot.toml"
timeout 60 "$CERTLOOP" test web -c "$TW/webroot.toml" >"$TW/test.txt" 2>&1 ||
  tw_fail "test through Apache's webroot: $(cat "$TW/test.txt")"
timeout 120 "$CERTLOOP" run --once -c "$TW/webroot.toml" >"$TW/out.txt" 2>"$TW/err.txt" ||
  { tw_fail "webroot: run --once failed"; tail -5 "$TW/err.txt" >&2; }
tw_check_deployed web
left=$(find "$TW/www/.well-known/acme-challenge" -type f | wc -l)
[ "$left" = 0 ] || tw_fail "webroot: $left token file(s) left behind"
apache_stop
tw_done
