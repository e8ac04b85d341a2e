#!/usr/bin/env bash
# What a reload changes, certificate by certificate (`certloop reload` over
# the control socket, and SIGHUP), on a running daemon against Pebble:
#   keep    unchanged, issued          -> untouched: same generation, serial,
#                                         deployed files not rewritten
#   busy    unchanged, order in flight -> the same order goes on and issues
#           (dns-01 through an exec hook held at a gate across the reload)
#   names   a name added               -> reissued with the new SANs
#   ktype   ec-p256 -> ec-p384         -> reissued with a P-384 key
#   caswap  another CA (directory)     -> reissued from it
#   deploy  files deploy path changed  -> the current generation deployed to
#                                         the new path, no new order
#   gone    removed                    -> no new work, gone from status
#   added   new                        -> issued
# Then an invalid configuration: `certloop reload` exits 78 with the
# FILE:LINE:COL line, SIGHUP logs it, the old configuration keeps running.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init reloaddiff
TW_LOG_LEVEL=debug # "order cert=NAME: created|started" are debug lines
tw_start || exit 1
CONF="$TW/certloop.toml"
SOCK="$TW/control.sock"

cat >"$TW/hook.sh" <<EOF
#!/bin/sh
# exec dns-01 solver: present|cleanup FQDN VALUE into pebble-challtestsrv;
# present waits (at most 90 s) for the gate file first
echo "\$1 \$2" >>"$TW/hook.log"
if [ "\$1" = present ]; then
  i=0
  while [ ! -e "$TW/gate" ] && [ \$i -lt 900 ]; do sleep 0.1; i=\$((i + 1)); done
  exec curl -fsS -X POST -d "{\"host\":\"\$2\",\"value\":\"\$3\"}" http://127.0.0.1:$TW_DNS_MGMT_PORT/set-txt
fi
exec curl -fsS -X POST -d "{\"host\":\"\$2\"}" http://127.0.0.1:$TW_DNS_MGMT_PORT/clear-txt
EOF
chmod 755 "$TW/hook.sh"

# v1 or v2 of the configuration
write_config() {
  local v=$1
  tw_config_head 16
  cat <<EOF
[ca.pebble2]
directory = "https://localhost:$TW_ACME_PORT/dir"
contact = ["mailto:ops@example.org"]
agree_tos = true
trust = "$TW/tls-ca.pem"

[dns.hook]
type = "exec"
command = ["$TW/hook.sh"]
timeout = "120s"
nameservers = ["127.0.0.1:$TW_DNS_PORT"]
poll_interval = "1s"

EOF
  tw_config_cert keep ec-p256 keep.test
  TW_CERT_EXTRA=$'challenge = "dns-01"\ndns = "hook"' tw_config_cert busy ec-p256 busy.test
  if [ "$v" = 1 ]; then
    tw_config_cert names ec-p256 names.test
    tw_config_cert ktype ec-p256 ktype.test
    tw_config_cert caswap ec-p256 caswap.test
    tw_config_cert deploy ec-p256 deploy.test
    tw_config_cert gone ec-p256 gone.test
  else
    tw_config_cert names ec-p256 names.test www.names.test
    tw_config_cert ktype ec-p384 ktype.test
    tw_config_cert caswap ec-p256 caswap.test | sed 's/^ca = "pebble"$/ca = "pebble2"/'
    mkdir -p "$TW/out2/deploy"
    tw_config_cert deploy ec-p256 deploy.test | sed "s|$TW/out/deploy/|$TW/out2/deploy/|"
    tw_config_cert added ec-p256 added.test
  fi
}
write_config 1 >"$CONF"
"$CERTLOOP" check -c "$CONF" >/dev/null 2>"$TW/check.txt" || { tw_fail "v1 invalid: $(cat "$TW/check.txt")"; tw_done; }

V1="keep names ktype caswap deploy gone"
issued() {
  local n
  for n in "$@"; do
    grep -qE "info main: issued cert=$n " "$TW/err.txt" || return 1
  done
}
v1_done() {
  # shellcheck disable=SC2086
  issued $V1 && grep -q "^present " "$TW/hook.log" 2>/dev/null
}
tw_daemon_start "$CONF" "$TW/out.txt" "$TW/err.txt" 60 v1_done
# shellcheck disable=SC2086
issued $V1 || { tw_fail "v1 not issued within 60 s"; sed 's/^/  log: /' "$TW/err.txt" >&2; tw_done; }
grep -q "^present " "$TW/hook.log" || { tw_fail "busy: the dns-01 hook never ran"; tw_done; }
sleep 0.5 # the last deploy's files are written before "issued" is logged; let the manager settle

serial() { openssl x509 -in "$1" -noout -serial 2>/dev/null | cut -d= -f2; }
current() { readlink "$TW/state/certs/$1/current"; }
mtime() { stat -c %.9Y "$1"; }
declare -A SER GEN
for n in $V1; do
  SER[$n]=$(serial "$TW/out/$n/cert.pem")
  GEN[$n]=$(current "$n")
done
keep_mtime=$(mtime "$TW/out/keep/fullchain.pem")
busy_created=$(grep -c "order cert=busy: created\|order cert=busy: started" "$TW/err.txt")
"$CERTLOOP" status -c "$CONF" --json >"$TW/status0.json" 2>&1
python3 -c 'import json,sys; c={x["name"]:x for x in json.load(open(sys.argv[1]))["certificates"]}; sys.exit(0 if c["busy"]["state"]=="ordering" else 1)' \
  "$TW/status0.json" || tw_fail "busy is not 'ordering' before the reload: $(cat "$TW/status0.json")"
lines_before=$(wc -l <"$TW/err.txt")

echo "== certloop reload with v2"
write_config 2 >"$CONF"
"$CERTLOOP" check -c "$CONF" >/dev/null 2>"$TW/check.txt" || { tw_fail "v2 invalid: $(cat "$TW/check.txt")"; tw_done; }
"$CERTLOOP" reload -c "$CONF" >"$TW/reload.out" 2>&1
rc=$?
[ "$rc" = 0 ] || tw_fail "reload exited $rc: $(cat "$TW/reload.out")"
grep -qF "reloaded: 7 certificates" "$TW/reload.out" || tw_fail "reload said: $(cat "$TW/reload.out")"
touch "$TW/gate"

# after the reload: wait for the new work
done_v2() {
  issued added busy || return 1
  [ "$(current names)" != "${GEN[names]}" ] && [ "$(current ktype)" != "${GEN[ktype]}" ] &&
    [ "$(current caswap)" != "${GEN[caswap]}" ] || return 1
  # every new generation deployed
  local n
  for n in names ktype caswap added busy; do
    cmp -s "$TW/state/certs/$n/current/cert.pem" "$TW/out/$n/cert.pem" || return 1
  done
}
tw_daemon_wait 90 done_v2
# the redeploy to the new path (no order: quick once the reload is done)
for ((t = 0; t < 100; t++)); do
  [ -s "$TW/out2/deploy/key.pem" ] && break
  sleep 0.1
done
sleep 1 # anything wrongly started by the reload would show up now
after=$(tail -n +"$((lines_before + 1))" "$TW/err.txt")

echo "== added: issued"
[ -s "$TW/out/added/fullchain.pem" ] || tw_fail "added: not issued"
tw_verify_fullchain "$TW/out/added/fullchain.pem" || tw_fail "added: chain does not verify"

echo "== busy: the order in flight went on, not restarted"
issued busy || tw_fail "busy: not issued after the gate opened"
n=$(grep -c "order cert=busy: created\|order cert=busy: started" "$TW/err.txt")
[ "$n" = "$busy_created" ] || tw_fail "busy: the reload disturbed its order ($busy_created -> $n order starts)"
grep -q "cert=busy: order cancelled" <<<"$after" && tw_fail "busy: its order was cancelled by the reload"
[ "$(grep -c '^present ' "$TW/hook.log")" = 1 ] || tw_fail "busy: dns-01 present ran $(grep -c '^present ' "$TW/hook.log") times"
tw_check_pair "$TW/out/busy/fullchain.pem" "$TW/out/busy/key.pem" || tw_fail "busy: key mismatch"

echo "== keep: untouched"
[ "$(current keep)" = "${GEN[keep]}" ] || tw_fail "keep: new generation $(current keep)"
[ "$(serial "$TW/out/keep/cert.pem")" = "${SER[keep]}" ] || tw_fail "keep: the serial changed"
[ "$(mtime "$TW/out/keep/fullchain.pem")" = "$keep_mtime" ] || tw_fail "keep: its deployed files were rewritten"
grep -qE "order cert=keep|cert=keep: (due|deploy)" <<<"$after" && tw_fail "keep: work after the reload: $(grep -E 'cert=keep' <<<"$after" | head -3)"

echo "== names: reissued with the new SANs"
[ "$(current names)" != "${GEN[names]}" ] || tw_fail "names: no new generation"
sans=$(tw_sans "$TW/out/names/cert.pem" | tr '\n' ' ')
[ "$sans" = "names.test www.names.test " ] || tw_fail "names: deployed SANs '$sans'"
tw_check_pair "$TW/out/names/fullchain.pem" "$TW/out/names/key.pem" || tw_fail "names: key mismatch"

echo "== ktype: reissued with a P-384 key"
[ "$(current ktype)" != "${GEN[ktype]}" ] || tw_fail "ktype: no new generation"
grep -q 'P-384\|secp384r1' <<<"$(openssl pkey -in "$TW/out/ktype/key.pem" -noout -text 2>/dev/null)" ||
  tw_fail "ktype: the deployed key is not P-384"
grep -q 'P-384\|secp384r1' <<<"$(openssl x509 -in "$TW/out/ktype/cert.pem" -noout -text)" ||
  tw_fail "ktype: the certificate's key is not P-384"
tw_check_pair "$TW/out/ktype/fullchain.pem" "$TW/out/ktype/key.pem" || tw_fail "ktype: key mismatch"

echo "== caswap: reissued from the other CA directory"
[ "$(current caswap)" != "${GEN[caswap]}" ] || tw_fail "caswap: no new generation"
grep -qF "\"directory\": \"https://localhost:$TW_ACME_PORT/dir\"" "$TW/state/certs/caswap/current/meta.json" ||
  tw_fail "caswap: meta.json does not name the new directory"
[ "$(serial "$TW/out/caswap/cert.pem")" != "${SER[caswap]}" ] || tw_fail "caswap: the serial did not change"

echo "== deploy: redeployed to the new path, no new order"
if [ -s "$TW/out2/deploy/fullchain.pem" ]; then
  [ "$(serial "$TW/out2/deploy/cert.pem")" = "${SER[deploy]}" ] ||
    tw_fail "deploy: the new path holds another serial (a new order?)"
  tw_check_pair "$TW/out2/deploy/fullchain.pem" "$TW/out2/deploy/key.pem" || tw_fail "deploy: key mismatch"
else
  tw_fail "deploy: nothing deployed to the new path $TW/out2/deploy"
fi
[ "$(current deploy)" = "${GEN[deploy]}" ] || tw_fail "deploy: a new generation $(current deploy) (a new order)"
grep -q "order cert=deploy: created" <<<"$after" && tw_fail "deploy: a new order was sent"

echo "== gone: no new work, not in status"
grep -qE "order cert=gone" <<<"$after" && tw_fail "gone: work after its removal"
"$CERTLOOP" status -c "$CONF" --json >"$TW/status1.json" 2>&1 || tw_fail "status failed: $(cat "$TW/status1.json")"
python3 - "$TW/status1.json" <<'PY' || tw_fail "status after the reload: $(cat "$TW/status1.json")"
import json, sys
names = sorted(c["name"] for c in json.load(open(sys.argv[1]))["certificates"])
assert names == sorted("added busy caswap deploy keep ktype names".split()), names
PY
"$CERTLOOP" renew -c "$CONF" gone --force >/dev/null 2>&1 && tw_fail "renew of the removed certificate succeeded"

echo "== an invalid configuration keeps the old one (reload and SIGHUP)"
cp "$CONF" "$TW/good.toml"
sed 's/^key = "ec-p384"$/key = "ec-p999"/' "$TW/good.toml" >"$CONF"
line=$(grep -n '^key = "ec-p999"$' "$CONF" | cut -d: -f1)
[ -n "$line" ] || tw_fail "test bug: no ec-p999 line"
"$CERTLOOP" reload -c "$TW/good.toml" --socket "$SOCK" >"$TW/reload.out" 2>&1
rc=$?
[ "$rc" = 78 ] || tw_fail "reload of an invalid configuration exited $rc (want 78)"
grep -qE "^$CONF:$line:[0-9]+: error: certificate\.ktype\.key" "$TW/reload.out" ||
  { tw_fail "reload lacks FILE:$line:COL: error: certificate.ktype.key"; sed 's/^/  reload: /' "$TW/reload.out" >&2; }
kill -HUP "$TW_DAEMON_PID"
for ((t = 0; t < 100; t++)); do
  [ "$(grep -c 'keeping the previous configuration' "$TW/err.txt")" -ge 2 ] && break
  sleep 0.1
done
[ "$(grep -c 'keeping the previous configuration' "$TW/err.txt")" -ge 2 ] ||
  tw_fail "SIGHUP with an invalid configuration: no 'keeping the previous configuration'"
grep -qE "$CONF:$line:[0-9]+: error: certificate\.ktype\.key" "$TW/err.txt" ||
  tw_fail "SIGHUP: the log lacks the FILE:LINE:COL line"
kill -0 "$TW_DAEMON_PID" 2>/dev/null || tw_fail "the daemon died on an invalid reload"
"$CERTLOOP" status -c "$TW/good.toml" --json >"$TW/status2.json" 2>&1
python3 - "$TW/status2.json" <<'PY' || tw_fail "status after the invalid reload: $(cat "$TW/status2.json")"
import json, sys
certs = json.load(open(sys.argv[1]))["certificates"]
assert len(certs) == 7, len(certs)
assert all(c["state"] == "valid" for c in certs), [(c["name"], c["state"]) for c in certs]
PY

tw_daemon_stop
rc=$?
[ "$rc" = 0 ] || tw_fail "daemon exited $rc after SIGTERM"
[ "$TW_FAILS" -gt 0 ] && grep -E ' (error|warn) |reload|cert=(deploy|busy)' "$TW/err.txt" | head -40 >&2
tw_done
