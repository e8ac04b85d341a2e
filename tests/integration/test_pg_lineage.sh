#!/usr/bin/env bash
# An exec deploy action with [store] type = "postgresql" gets the
# generation's files in $RENEWED_LINEAGE (= $CERTLOOP_CERT_DIR), certbot's
# names included: a private directory under the state directory (0700,
# key 0600) holding what was deployed. A forced renewal replaces it (one
# generation's key on disk per certificate), and the next start empties it.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
. "$(dirname "$0")/pg_fleet.sh"

tw_init pglineage
pg_start || exit 1
tw_start || exit 1
fleet_start_web || tw_done
fleet_config a 1
mkdir -p "$TW/hook"
cat >"$TW/hook.sh" <<EOF
#!/bin/sh
# a certbot deploy hook: copies what \$RENEWED_LINEAGE holds, with its modes
d=\$RENEWED_LINEAGE
[ -n "\$d" ] || { echo "RENEWED_LINEAGE is empty" >&2; exit 1; }
[ "\$d" = "\$CERTLOOP_CERT_DIR" ] || { echo "CERTLOOP_CERT_DIR \$CERTLOOP_CERT_DIR" >&2; exit 1; }
out=$TW/hook/\$(ls $TW/hook | wc -l)
mkdir "\$out.tmp" || exit 1
cp "\$d/fullchain.pem" "\$d/privkey.pem" "\$d/cert.pem" "\$d/chain.pem" "\$out.tmp/" || exit 1
stat -c '%a' "\$(dirname "\$(dirname "\$d")")" "\$(dirname "\$d")" "\$d" "\$d/key.pem" \
  "\$(readlink -f "\$d/privkey.pem")" >"\$out.tmp/modes"
echo "\$d" >"\$out.tmp/dir"
mv "\$out.tmp" "\$out"
EOF
chmod 755 "$TW/hook.sh"
cat >>"$TW/a.toml" <<EOF
[[certificate.f00.deploy]]
type = "exec"
command = ["$TW/hook.sh"]
EOF
"$CERTLOOP" check -c "$TW/a.toml" >/dev/null || tw_fail "config with the hook invalid"

# check_run N: the hook's Nth run saw the deployed files, in a private
# directory of STATE/lineage/f00/
check_run() {
  local h=$TW/hook/$1 out=$TW/a/out/f00 d
  d=$(cat "$h/dir")
  case $d in "$TW/a/state/lineage/f00/"*) ;; *) tw_fail "run $1: RENEWED_LINEAGE $d" ;; esac
  cmp -s "$h/fullchain.pem" "$out/fullchain.pem" || tw_fail "run $1: fullchain.pem is not the deployed one"
  cmp -s "$h/privkey.pem" "$out/key.pem" || tw_fail "run $1: privkey.pem is not the deployed key"
  tw_check_pair "$h/cert.pem" "$h/privkey.pem" || tw_fail "run $1: cert.pem is not the key's"
  [ "$(cat "$h/cert.pem" "$h/chain.pem")" = "$(cat "$h/fullchain.pem")" ] ||
    tw_fail "run $1: cert.pem + chain.pem is not fullchain.pem"
  [ "$(tr '\n' ' ' <"$h/modes")" = "700 700 700 600 600 " ] ||
    tw_fail "run $1: modes (lineage, f00, generation, key.pem, privkey.pem) $(tr '\n' ' ' <"$h/modes")"
}
hook_ran() { [ -d "$TW/hook/$1" ]; }

fleet_daemon a
TW_DAEMON_PID=${FLEET_PID[a]}
tw_daemon_wait 90 hook_ran 0 || { tw_fail "the hook did not run"; tail -20 "$TW/a.err" >&2; tw_done; }
check_run 0
first=$(cat "$TW/hook/0/dir")

"$CERTLOOP" renew --force f00 -c "$TW/a.toml" >/dev/null || tw_fail "renew --force"
tw_daemon_wait 90 hook_ran 1 || { tw_fail "the hook did not run after renew --force"; tw_done; }
check_run 1
second=$(cat "$TW/hook/1/dir")
[ "$first" != "$second" ] || tw_fail "the renewal's hook got the first generation"
cmp -s "$TW/hook/0/privkey.pem" "$TW/hook/1/privkey.pem" && tw_fail "the renewal kept the key"
# one generation (and its key) per certificate stays on disk: the current one
left=$(ls -A "$TW/a/state/lineage/f00")
[ "$left" = "$(basename "$second")" ] || tw_fail "STATE/lineage/f00 holds: $left"
[ -z "$(find "$TW/a/state/lineage" -perm /077 -name key.pem)" ] || tw_fail "a key readable by others"
tw_daemon_stop || tw_fail "the daemon exited $?"

# the next start removes what the last run's hooks read (nothing is due)
timeout 60 "$CERTLOOP" run --once -c "$TW/a.toml" >"$TW/once.out" 2>>"$TW/a.err" ||
  tw_fail "run --once exited $?"
[ -z "$(ls -A "$TW/a/state/lineage")" ] || tw_fail "STATE/lineage not emptied at start: $(ls -R "$TW/a/state/lineage")"
[ -d "$TW/hook/2" ] && tw_fail "the hook ran with nothing due"
tw_done
