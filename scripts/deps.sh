#!/usr/bin/env bash
# Installs every Debian 12 package certloop needs to build, test and benchmark.
# Idempotent; needs root (or sudo).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  libuv1-dev libssl-dev libcurl4-openssl-dev libc-ares-dev libjansson-dev libldns-dev
  libcmocka-dev
  clang libclang-rt-14-dev
  pebble knot knot-dnsutils openssl curl ca-certificates iproute2 procps python3 bc
  nginx # loop/test_http's HTTP/2 peer, bench/http01.sh's, test_nginx's web server in front
  apache2 # test_apache: the shipped etc/examples/apache-acme.conf in front of certloop
  scdoc # the man pages (docs/man/*.scd)
  debhelper lintian fakeroot dpkg-dev # the Debian package (scripts/package.sh, package-test.sh)
  zsh # test_completion checks the zsh completion
  postgresql-15 libpq-dev # the postgresql store backend (libpq) and its tests' server (initdb, pg_ctl)
  certbot python3-certbot-dns-rfc2136 # test_import_certbot makes a real certbot state
  lego # test_import_lego makes a real lego state (and bench/ compares with it)
  chromium # test_browser drives the dashboard in headless Chromium (puppeteer-core from npm)
)
# test_browser installs puppeteer-core with npm: Debian's nodejs and npm,
# unless an npm is there already (another node install, e.g. NodeSource's)
if ! command -v npm >/dev/null 2>&1; then
  PKGS+=(nodejs npm)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO=sudo
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# Packages install, services do not start (nginx, knot would take ports 80
# and 53 on a test machine): a policy-rc.d that refuses, for the install only.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  own_policy=true
fi
rc=0
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
if [ "$own_policy" = true ]; then
  $SUDO rm -f "$policy"
fi
exit $rc
