#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install what is needed, build,
# start a local Pebble ACME CA (plus a mock DNS server that resolves every
# *.test name to 127.0.0.1) on loopback ports, and run the certloop daemon
# with a demo configuration: it issues three certificates (two EC, one RSA)
# over http-01 from its own listener, deploys them as files and runs a
# deploy command. The script shows where everything went, verifies each
# chain against Pebble's root, prints `certloop plan`, and stops the daemon.
#   scripts/demo.sh            run the demo (about 30 s) and stop
#   scripts/demo.sh --keep     leave certloop running in the foreground (Ctrl-C stops it)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
keep=no
[ "${1:-}" = "--keep" ] && keep=yes

bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "built $top/build/certloop ($(build/certloop --version))"

CERTLOOP=$top/build/certloop
. tests/integration/lib.sh
set +e
tw_init demo
set -e
TW_KEEP=1   # keep the demo directory after the script ends
tw_start

conf=$TW/certloop.toml
{
  tw_config_head 8
  tw_config_cert www ec-p256 www.demo.test demo.test
  tw_config_cert api ec-p384 api.demo.test
  tw_config_cert legacy rsa2048 legacy.demo.test old.demo.test
  cat <<TOML
[[certificate.www.deploy]]
type = "exec"
command = ["/bin/sh", "-c", "echo \"deploy hook: \$CERTLOOP_NAME (\$CERTLOOP_DOMAINS) from \$CERTLOOP_CERT_DIR\""]
per_certificate = true
TOML
} >"$conf"

echo
echo "== configuration: $conf =="
"$CERTLOOP" check -c "$conf"
echo
echo "== certloop plan (before) =="
"$CERTLOOP" plan -c "$conf"
echo
echo "== certloop run (the daemon) =="
"$CERTLOOP" run -c "$conf" 2>"$TW/certloop.log" &
daemon=$!
TW_PIDS+=("$daemon")
shopt -s nullglob
for _ in $(seq 1 600); do
  done_files=("$TW"/out/*/fullchain.pem)
  [ "${#done_files[@]}" -ge 3 ] && break
  kill -0 "$daemon" 2>/dev/null || break
  sleep 0.1
done
sleep 0.5
sed 's/^/  /' "$TW/certloop.log"
echo
echo "== deployed files =="
for d in "$TW"/out/*; do
  name=$(basename "$d")
  echo "$name:"
  ls -l "$d" | sed 1d | awk '{print "  " $1, $NF}'
  if [ -f "$d/cert.pem" ]; then
    openssl x509 -in "$d/cert.pem" -noout -subject -issuer -enddate -ext subjectAltName 2>/dev/null |
      sed 's/^/    /'
    if tw_verify_fullchain "$d/fullchain.pem"; then echo "    chain verifies against Pebble's root"; else echo "    chain does NOT verify"; fi
    if tw_check_pair "$d/cert.pem" "$d/key.pem"; then echo "    key matches certificate"; fi
  fi
done
echo
echo "== certloop plan (after) =="
"$CERTLOOP" plan -c "$conf"
echo
echo "state directory: $TW/state    log: $TW/certloop.log"
if [ "$keep" = yes ]; then
  echo "certloop is running (pid $daemon); Ctrl-C stops it and Pebble."
  trap 'kill -TERM $daemon 2>/dev/null; wait $daemon; tw_cleanup' INT TERM
  wait "$daemon"
else
  kill -TERM "$daemon"
  wait "$daemon" && echo "certloop stopped cleanly"
fi
set +e   # the EXIT trap stops Pebble; processes already gone are fine
exit 0
