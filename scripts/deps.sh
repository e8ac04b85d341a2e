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
)

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
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
