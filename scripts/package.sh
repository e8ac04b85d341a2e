#!/usr/bin/env bash
# Builds the Debian package from the working tree (committed or not, minus
# ignored files): copies it to a temporary directory, runs
# `dpkg-buildpackage -us -uc -b` there (Debian 12's packages only: see
# debian/control, installed by scripts/deps.sh) and leaves
# certloop_VERSION_ARCH.deb (and its -dbgsym package, .buildinfo and
# .changes) in out/.
# Prints the .deb's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

version=$(dpkg-parsechangelog -S Version)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=$tmp/certloop-$version
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard |
  (cd "$top" && xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
  tar --null -T - -cf - | tar -xf - -C "$src"

(cd "$src" && dpkg-buildpackage -us -uc -b)

mkdir -p out
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
rm -f out/certloop*_"$version"_"$arch".*
cp "$tmp"/certloop*_"$version"_"$arch".{deb,buildinfo,changes} out/
echo "$top/out/certloop_${version}_${arch}.deb"
