#!/usr/bin/env bash
# The Debian package, end to end (CI runs it from .ci/run, as root, on the
# machine itself): build it (scripts/package.sh), lintian (no error or
# warning; overrides in debian/certloop.lintian-overrides say why), install
# it with apt-get, check what the installation made and that the service is
# neither enabled nor started, run `certloop --version` and `certloop check`
# on the installed default configuration (as root and as the certloop user,
# as the unit's ExecStartPre does), purge it, and check that nothing is left
# but what Debian policy keeps: the certloop system user and group.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "package-test: needs root (apt-get install, purge)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
fails=0
fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}

# What the package may touch, listed with owner and mode. dpkg's and apt's
# own records and logs change with every installation and are left out.
snapshot() {
  find /etc /var/lib /var/log /var/cache /run /usr/bin /usr/sbin /usr/lib/sysusers.d \
       /usr/lib/tmpfiles.d /lib/systemd/system /usr/lib/systemd/system /usr/share/doc \
       /usr/share/man /usr/share/bash-completion /usr/share/zsh \
       -xdev -printf '%p %u:%g %m\n' 2>/dev/null |
    grep -Ev '^/(var/lib/dpkg|var/lib/apt|var/cache/apt|var/cache/debconf|var/log/apt|var/cache/man|var/cache/ldconfig)(/| )|^/var/log/(dpkg|alternatives)\.log |^/etc/(passwd|group|shadow|gshadow|subuid|subgid)-? |^/etc/ld\.so\.cache ' |
    sort
}

if dpkg-query -W -f='${Status}' certloop 2>/dev/null | grep -q installed; then
  echo "package-test: purging an earlier certloop package first"
  apt-get purge -y -q certloop
fi

echo "== build"
deb=$(bash scripts/package.sh | tail -1)
[ -f "$deb" ] || { echo "package-test: no package built" >&2; exit 1; }
echo "$deb"

echo "== lintian"
lintian --fail-on error,warning --display-info "${deb%.deb}.changes" ||
  fail "lintian reports errors or warnings"

echo "== install"
before=$(mktemp)
after=$(mktemp)
files=$(mktemp)
trap 'rm -f "$before" "$after" "$files"' EXIT
snapshot >"$before"
apt-get install -y -q "$deb"
dpkg -L certloop >"$files"

for f in /usr/bin/certloop /lib/systemd/system/certloop.service /lib/systemd/system/certloop.socket \
         /lib/systemd/system/certloop-reload@.path /lib/systemd/system/certloop-reload@.service \
         /etc/certloop/certloop.toml /usr/share/doc/certloop/examples/certloop-socket.conf \
         /usr/lib/sysusers.d/certloop.conf /usr/lib/tmpfiles.d/certloop.conf \
         /usr/share/man/man8/certloop.8.gz /usr/share/man/man5/certloop.toml.5.gz \
         /usr/share/bash-completion/completions/certloop /usr/share/zsh/vendor-completions/_certloop; do
  [ -f "$f" ] || fail "$f not installed"
done
dpkg-query -W -f='${Conffiles}\n' certloop | grep -q '^ /etc/certloop/certloop.toml ' ||
  fail "/etc/certloop/certloop.toml is not a conffile"
getent passwd certloop | grep -q ':/var/lib/certloop:/usr/sbin/nologin$' ||
  fail "no certloop system user with home /var/lib/certloop and nologin: $(getent passwd certloop)"
uid=$(id -u certloop 2>/dev/null || echo 65535)
[ "$uid" -lt 1000 ] || fail "certloop is not a system user (uid $uid)"
[ "$(stat -c '%U:%G %a' /var/lib/certloop 2>/dev/null)" = "certloop:certloop 700" ] ||
  fail "/var/lib/certloop: $(stat -c '%U:%G %a' /var/lib/certloop 2>&1), expected certloop:certloop 700"
if [ -e /etc/systemd/system/multi-user.target.wants/certloop.service ]; then
  fail "the package enabled certloop.service"
fi
state=$(systemctl is-enabled certloop.service 2>/dev/null || true)
[ "$state" = disabled ] || fail "systemctl is-enabled certloop: '$state', expected disabled"
for p in $(pgrep -x certloop); do # (other builds' daemons may run)
  [ "$(readlink "/proc/$p/exe")" = /usr/bin/certloop ] && fail "the installed certloop runs (pid $p)"
done

echo "== certloop --version"
certloop --version || fail "certloop --version"
for lib in OpenSSL libcurl libuv c-ares ldns jansson libpq; do
  certloop --version | grep -q "^$lib " || fail "--version does not name $lib"
done

echo "== certloop check on the installed configuration"
certloop check || fail "certloop check (root) on /etc/certloop/certloop.toml"
runuser -u certloop -- certloop check ||
  fail "certloop check as the certloop user (the unit's ExecStartPre)"
man -w certloop >/dev/null 2>&1 || [ ! -x /usr/bin/man ] || fail "man certloop not found"

echo "== purge"
apt-get purge -y -q certloop
if dpkg-query -W -f='${Status}' certloop 2>/dev/null | grep -q installed; then
  fail "certloop still installed after purge"
fi
while read -r f; do
  [ -d "$f" ] && continue # directories shared with other packages stay
  [ -e "$f" ] && fail "$f left after purge"
done <"$files"
snapshot >"$after"
if ! diff -u "$before" "$after"; then
  fail "the purge left files behind (or removed others), above"
fi
getent passwd certloop >/dev/null && echo "kept (Debian policy 9.2.2): the certloop system user and group"

if [ "$fails" -gt 0 ]; then
  echo "package-test: $fails check(s) failed" >&2
  exit 1
fi
echo "package-test: ok"
