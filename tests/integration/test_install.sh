#!/usr/bin/env bash
# The systemd path as README "Running under systemd" writes it: `cmake
# --install` puts the binary, units whose Exec lines name that binary, the
# configuration reference and the web server / polkit examples, and nothing
# under etc/ or var/ (no user, state or config is created); the installed
# default configuration passes `certloop check`; systemd-analyze verify
# accepts the installed units, the reload path unit included.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
tw_init_bare install
BUILD=${BUILD_DIR:-build}
P=$TW/prefix
cmake --install "$BUILD" --prefix "$P" >"$TW/install.log" 2>&1 ||
  { tw_fail "cmake --install failed"; sed 's/^/  /' "$TW/install.log" >&2; tw_done; }

[ -x "$P/bin/certloop" ] || tw_fail "no $P/bin/certloop"
U=$P/lib/systemd/system
for u in certloop.service certloop.socket certloop-reload@.path certloop-reload@.service; do
  [ -f "$U/$u" ] || tw_fail "no unit $U/$u"
done
for l in "ExecStartPre=$P/bin/certloop check" "ExecStart=$P/bin/certloop run" \
  "ExecReload=$P/bin/certloop check"; do
  grep -qxF "$l" "$U/certloop.service" || tw_fail "certloop.service lacks: $l"
done
grep -q "/usr/bin/certloop" "$U/certloop.service" && tw_fail "installed unit still names /usr/bin/certloop"
E=$P/share/doc/certloop/examples
for f in certloop.toml nginx-acme.conf apache-acme.conf certloop-reload.rules certloop-socket.conf; do
  [ -f "$E/$f" ] || tw_fail "no example $E/$f"
done
for d in etc var; do
  [ -e "$P/$d" ] && tw_fail "the install created $P/$d"
done
"$P/bin/certloop" check -c "$E/certloop.toml" >"$TW/check.txt" 2>&1 ||
  tw_fail "the installed default configuration fails check: $(cat "$TW/check.txt")"

if command -v systemd-analyze >/dev/null; then
  mkdir -p "$TW/verify"
  cp "$U/certloop.service" "$U/certloop.socket" "$TW/verify/"
  cp "$U/certloop-reload@.path" "$TW/verify/certloop-reload@nginx.path"
  cp "$U/certloop-reload@.service" "$TW/verify/certloop-reload@nginx.service"
  (cd "$TW/verify" && systemd-analyze verify --man=no ./certloop.service \
    ./certloop-reload@nginx.path ./certloop-reload@nginx.service) >"$TW/verify.txt" 2>&1
  rc=$?
  if [ "$rc" != 0 ] || [ -s "$TW/verify.txt" ]; then
    tw_fail "systemd-analyze verify complains (exit $rc)"
    sed 's/^/  | /' "$TW/verify.txt" >&2
  fi
else
  [ "${CI:-}" = true ] && tw_fail "systemd-analyze not found"
fi
tw_done
