#!/usr/bin/env bash
# certloop import-certbot on a state made by Debian's real certbot against
# Pebble (Knot as the DNS server): a webroot lineage (with a deploy hook)
# served by a web server on the http-01 port, and a dns-rfc2136 lineage
# (P-384 key, TSIG), and a manual lineage with dns-01 hooks. The import writes one conf.d file per lineage, reuses
# Pebble's [ca.pebble] and stores certbot's account; `run --once` takes the
# live certificates over as the first generations without an order (same
# serials, files unchanged); the daemon then renews both with certbot's
# account, writing the new certificates to certbot's live paths (key type
# kept, chains verify, keys match) and running the deploy hook with
# certbot's RENEWED_LINEAGE.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/knot.sh"

command -v certbot >/dev/null || tw_skip "certbot not installed"
grep -q 'ok installed' <<<"$(dpkg-query -W -f='${Status}' python3-certbot-dns-rfc2136 2>/dev/null)" || tw_skip "python3-certbot-dns-rfc2136 not installed"
tw_knot_start import-certbot

le=$TW/le
www=$TW/www
mkdir -p "$www" "$TW/etc"
# the site's web server, serving the webroot on the port Pebble validates
python3 -m http.server --bind 127.0.0.1 --directory "$www" "$TW_HTTP_PORT" \
  >"$TW/web.log" 2>&1 &
TW_PIDS+=("$!")
tw_wait_http "http://127.0.0.1:$TW_HTTP_PORT/" "" 10 || tw_fail "the web server did not start"

certbot_run() {
  REQUESTS_CA_BUNDLE=$TW/tls-ca.pem certbot --config-dir "$le" --work-dir "$TW/le-work" \
    --logs-dir "$TW/le-logs" --non-interactive --agree-tos -m ops@example.org --no-eff-email \
    --server "$TW_DIRECTORY" "$@" >>"$TW/certbot.log" 2>&1
}

echo "== certbot: a webroot lineage and a dns-rfc2136 lineage"
certbot_run certonly --cert-name web.test --webroot -w "$www" -d web.test -d www.web.test \
  --deploy-hook "echo \"\$RENEWED_LINEAGE \$RENEWED_DOMAINS\" >>$TW/hook.log" ||
  { tw_fail "certbot (webroot) failed"; tail -30 "$TW/certbot.log" >&2; tw_done; }
cat >"$TW/rfc2136.ini" <<EOF
dns_rfc2136_server = 127.0.0.1
dns_rfc2136_port = $KNOT_PORT
dns_rfc2136_name = acme-key.
dns_rfc2136_secret = $KNOT_SECRET
dns_rfc2136_algorithm = HMAC-SHA256
EOF
chmod 600 "$TW/rfc2136.ini"
certbot_run certonly --cert-name dnsc --dns-rfc2136 --dns-rfc2136-credentials "$TW/rfc2136.ini" \
  --dns-rfc2136-propagation-seconds 1 --key-type ecdsa --elliptic-curve secp384r1 -d dnsc.test ||
  { tw_fail "certbot (dns-rfc2136) failed"; tail -30 "$TW/certbot.log" >&2; tw_done; }
# a manual lineage: certbot's dns-01 hooks (knsupdate with the TSIG key)
for action in add delete; do
  cat >"$TW/manual-$action.sh" <<EOF
#!/bin/sh
echo "$action \$CERTBOT_DOMAIN \$CERTBOT_VALIDATION" >>"$TW/manual.log"
/usr/bin/knsupdate <<END
server 127.0.0.1 $KNOT_PORT
key hmac-sha256:acme-key. $KNOT_SECRET
zone test.
update $action _acme-challenge.\$CERTBOT_DOMAIN. 1 TXT "\$CERTBOT_VALIDATION"
send
END
EOF
  chmod 755 "$TW/manual-$action.sh"
done
certbot_run certonly --cert-name man.test --manual --preferred-challenges dns \
  --manual-auth-hook "$TW/manual-add.sh" --manual-cleanup-hook "$TW/manual-delete.sh" -d man.test ||
  { tw_fail "certbot (manual) failed"; tail -30 "$TW/certbot.log" >&2; tw_done; }
for n in web.test dnsc man.test; do
  [ -f "$le/renewal/$n.conf" ] || tw_fail "certbot made no renewal/$n.conf"
  cp "$le/live/$n/cert.pem" "$TW/certbot-$n.pem"
done
acct_url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["uri"])' \
  "$(find "$le/accounts" -name regr.json | head -1)")
[ -n "$acct_url" ] || tw_fail "no certbot account"

echo "== import"
# a directory hook, as certbot's packages and users leave them
mkdir -p "$le/renewal-hooks/deploy"
printf '#!/bin/sh\necho "dir-hook $RENEWED_LINEAGE" >>%s/dirhook.log\n' "$TW" >"$le/renewal-hooks/deploy/01-log"
chmod 755 "$le/renewal-hooks/deploy/01-log"
{
  tw_knot_config_head 8 | sed "s|^listen = .*|listen = []\nwebroot = \"$www\"|"
} >"$TW/etc/certloop.toml"
"$CERTLOOP" check -c "$TW/etc/certloop.toml" >/dev/null 2>"$TW/check.txt" ||
  { tw_fail "config invalid: $(cat "$TW/check.txt")"; tw_done; }
tw_run 0 import-certbot -c "$TW/etc/certloop.toml" "$le"
sed 's/^/  import: /' "$TW/out"
grep -qx "  hooks_dir = \"$le/renewal-hooks\"" "$TW/out" || tw_fail "no note about certbot's renewal-hooks/"
# for the systemd unit's user (when it exists on this machine): what to
# chown and which ReadWritePaths= to add
if getent passwd certloop >/dev/null; then
  grep -qx "  chown -R certloop: $le/live/web.test" "$TW/out" || tw_fail "no chown note for live/web.test"
  grep -qx "  chown -R certloop: $le/archive/web.test" "$TW/out" || tw_fail "no chown note for archive/web.test"
  grep -q "ReadWritePaths=.*$le/live/dnsc" "$TW/out" || tw_fail "no ReadWritePaths note"
fi
for f in conf.d/certbot-web.test.toml conf.d/certbot-dnsc.toml certbot-dnsc.tsig; do
  [ -f "$TW/etc/$f" ] || tw_fail "import wrote no $f"
done
# the secret: 0600, or 0640 root:certloop when the daemon's group exists
# (a root import for the systemd unit's certloop user)
case "$(stat -c '%a %G' "$TW/etc/certbot-dnsc.tsig")" in
"600 "* | "640 certloop") ;;
*) tw_fail "the TSIG secret file: $(stat -c '%a %U:%G' "$TW/etc/certbot-dnsc.tsig")" ;;
esac
grep -q '^certbot-ca-' <<<"$(ls "$TW/etc/conf.d")" && tw_fail "a new CA file although [ca.pebble] has the directory"
grep -q '^ca = "pebble"$' "$TW/etc/conf.d/certbot-web.test.toml" || tw_fail "web.test: not ca = pebble"
grep -q '^\[certificate."web.test"\]$' "$TW/etc/conf.d/certbot-web.test.toml" || tw_fail "web.test: the table name is not quoted"
grep -q '^key = "ec-p384"$' "$TW/etc/conf.d/certbot-dnsc.toml" || tw_fail "dnsc: key type not ec-p384"
grep -q '^challenge = "dns-01"$' "$TW/etc/conf.d/certbot-dnsc.toml" || tw_fail "dnsc: not dns-01"
grep -q "\"url\": \"$acct_url\"" "$TW/state/accounts/pebble/account.json" 2>/dev/null ||
  tw_fail "certbot's account ($acct_url) not stored: $(cat "$TW/state/accounts/pebble/account.json" 2>&1)"
"$CERTLOOP" check -c "$TW/etc/certloop.toml" >/dev/null || tw_fail "check after the import"
# The test world's authoritative servers (ns1.test, ns2.test) answer on
# Knot's port, not 53: the propagation check asks Knot there, as
# [dns.knot] of every dns-01 test does.
sed -i "/^\[dns.certbot-dnsc\]/a nameservers = [\"127.0.0.1:$KNOT_PORT\"]" "$TW/etc/conf.d/certbot-dnsc.toml"
sed -i "/^\[dns.\"certbot-man.test\"\]/a nameservers = [\"127.0.0.1:$KNOT_PORT\"]" "$TW/etc/conf.d/certbot-man.test.toml"
grep -q '^type = "exec"$' "$TW/etc/conf.d/certbot-man.test.toml" || tw_fail "man.test: no exec solver"
"$CERTLOOP" check -c "$TW/etc/certloop.toml" >/dev/null || tw_fail "check with nameservers"
# a second run imports nothing and overwrites nothing
tw_run 1 import-certbot -c "$TW/etc/certloop.toml" "$le"
grep -q "web.test: skipped: the configuration has a \[certificate.web.test\] already" "$TW/err" ||
  tw_fail "second import: $(cat "$TW/err")"

echo "== run --once: the live certificates become the first generations, no order"
timeout 120 "$CERTLOOP" run --once -c "$TW/etc/certloop.toml" >"$TW/once.out" 2>"$TW/once.err" ||
  tw_fail "run --once exited $?: $(grep -E ' (error|warn) ' "$TW/once.err" | head -5)"
for n in web.test dnsc man.test; do
  cmp -s "$TW/state/certs/$n/current/cert.pem" "$TW/certbot-$n.pem" ||
    tw_fail "$n: the first generation is not certbot's certificate"
  cmp -s "$le/live/$n/cert.pem" "$TW/certbot-$n.pem" || tw_fail "$n: live cert.pem changed by the import"
done
grep -q "ordering\|new order" "$TW/once.err" && tw_fail "run --once ordered: $(grep -m1 'new order' "$TW/once.err")"
grep -q "new account key" "$TW/once.err" && tw_fail "run --once made a new account"

echo "== the daemon renews both with certbot's account, into certbot's paths"
: >"$TW/hook.log"
: >"$TW/manual.log"
tw_daemon_start "$TW/etc/certloop.toml" "$TW/d.out" "$TW/d.err"
sock=$TW/control.sock
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
renewed() {
  local n
  for n in web.test dnsc man.test; do
    cmp -s "$le/live/$n/cert.pem" "$TW/certbot-$n.pem" && return 1
  done
  [ -s "$TW/hook.log" ]
}
"$CERTLOOP" renew --force --socket "$sock" web.test dnsc man.test >"$TW/renew.out" 2>&1 ||
  tw_fail "renew --force: $(cat "$TW/renew.out")"
tw_daemon_wait 120 renewed || tw_fail "not renewed in 120 s: $(grep -E ' (error|warn) ' "$TW/d.err" | tail -5)"
tw_daemon_stop
for n in web.test dnsc man.test; do
  live=$le/live/$n
  tw_check_pair "$live/cert.pem" "$live/privkey.pem" || tw_fail "$n: live key does not match the new certificate"
  tw_verify_fullchain "$live/fullchain.pem" || tw_fail "$n: live fullchain does not verify"
  [ "$(tw_sans "$live/cert.pem" | tr '\n' ' ')" = "$(tw_sans "$TW/certbot-$n.pem" | tr '\n' ' ')" ] ||
    tw_fail "$n: names changed"
done
grep -q 'NIST CURVE: P-384' <<<"$(openssl pkey -in "$le/live/dnsc/privkey.pem" -noout -text 2>/dev/null)" ||
  tw_fail "dnsc: the renewed key is not P-384"
grep -q "^add man.test ." "$TW/manual.log" && grep -q "^delete man.test ." "$TW/manual.log" ||
  tw_fail "certbot's manual hooks were not called as certbot calls them: $(cat "$TW/manual.log")"
grep -qx "$le/live/web.test web.test www.web.test" "$TW/hook.log" ||
  tw_fail "deploy hook: $(cat "$TW/hook.log")"
grep -q "\"url\": \"$acct_url\"" "$TW/state/accounts/pebble/account.json" ||
  tw_fail "the account changed: $(cat "$TW/state/accounts/pebble/account.json")"
grep -q "new account key" "$TW/d.err" && tw_fail "the daemon made a new account"
tw_done
