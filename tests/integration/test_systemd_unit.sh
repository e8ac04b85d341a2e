#!/usr/bin/env bash
# systemd/certloop.service: systemd-analyze accepts it (with the Exec paths
# pointed at the built binary), and it keeps the contract of DESIGN.md
# "systemd": Type=notify, check before start and reload, SIGHUP reload,
# no restart on usage/configuration errors, only CAP_NET_BIND_SERVICE.
set -uo pipefail

unit=${SOURCE_DIR:-.}/systemd/certloop.service
CERTLOOP=${CERTLOOP:-${BUILD_DIR:-build}/certloop}
fails=0
fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}
has() {
  grep -qxF -- "$1" "$unit" || fail "certloop.service lacks: $1"
}

has "Type=notify"
has "ExecStartPre=/usr/bin/certloop check"
has "ExecStart=/usr/bin/certloop run"
has "ExecReload=/usr/bin/certloop check"
has 'ExecReload=/bin/kill -HUP $MAINPID'
has "RestartPreventExitStatus=64 78"
has "User=certloop"
has "StateDirectory=certloop"
has "RuntimeDirectory=certloop"
has "ProtectSystem=strict"
has "NoNewPrivileges=yes"
has "PrivateTmp=yes"
has "AmbientCapabilities=CAP_NET_BIND_SERVICE"
has "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"
has "LimitNOFILE=65536"
# the check must run before the HUP: the first ExecReload line is the check
first=$(grep -m1 '^ExecReload=' "$unit")
[ "$first" = "ExecReload=/usr/bin/certloop check" ] || fail "ExecReload does not check first"

if ! command -v systemd-analyze >/dev/null; then
  echo "test_systemd_unit: systemd-analyze not found" >&2
  [ "${CI:-}" = true ] && exit 1
  [ "$fails" -ne 0 ] && exit 1
  exit 77
fi
tmp=$(mktemp -d /tmp/certloop-unit-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/bin/certloop#$CERTLOOP#" "$unit" >"$tmp/certloop.service"
if ! systemd-analyze verify --man=no "$tmp/certloop.service" >"$tmp/out" 2>&1 || [ -s "$tmp/out" ]; then
  fail "systemd-analyze verify complains"
  sed 's/^/  | /' "$tmp/out" >&2
fi

if [ "$fails" -ne 0 ]; then
  echo "test_systemd_unit: $fails failure(s)" >&2
  exit 1
fi
echo "test_systemd_unit: ok"
