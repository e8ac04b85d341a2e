#!/usr/bin/env bash
# `certloop check` says at check time what used to fail only at run time
# (issue 11): a deploy or dns exec command that does not exist or cannot
# run, an empty secret file, a TSIG key file without the configured key
# name (or not a key at all), a name whose dns-01 record name would pass
# 253 characters. Each is one FILE:LINE:COL line and exit 78; the fixed
# configuration passes. Secret files may be 0640 with the daemon's group.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tw_init_bare check-refusals

cfg="$TW/certloop.toml"
head() {
  cat <<EOF
[daemon]
state_dir = "$TW/state"

[ca.local]
directory = "https://127.0.0.1:14000/dir"

EOF
}

# expect_refused LINE...: check exits 78 and prints exactly these lines
expect_refused() {
  tw_run 78 check -c "$cfg" || return
  for l in "$@"; do
    tw_has "$TW/err" "$l"
  done
  [ "$(wc -l <"$TW/err")" -eq $# ] || {
    tw_fail "check printed $(wc -l <"$TW/err") lines, expected $#"
    sed 's/^/  | /' "$TW/err" >&2
  }
}

echo "== exec commands that do not exist or cannot run"
printf '#!/bin/sh\nexit 0\n' >"$TW/hook.sh"
chmod 644 "$TW/hook.sh"
{
  head
  cat <<EOF
[dns.hook]
type = "exec"
command = ["$TW/hook.sh", "--quiet"]

[certificate.www]
domains = ["www.example.org"]

[[certificate.www.deploy]]
type = "exec"
command = ["certloop-no-such-program", "reload"]
EOF
} >"$cfg"
expect_refused \
  "$cfg:9:12: error: dns.hook.command[0]: program $TW/hook.sh is not executable (mode 0644); run chmod +x $TW/hook.sh" \
  "$cfg:16:12: error: certificate.www.deploy[0].command[0]: program \"certloop-no-such-program\" is not found in PATH ($PATH)"
chmod 755 "$TW/hook.sh"
sed -i 's/"certloop-no-such-program"/"true"/' "$cfg"
tw_run 0 check -c "$cfg"

echo "== empty secret files; 0640 with the daemon's group is fine"
: >"$TW/hook.secret"
chmod 600 "$TW/hook.secret"
{
  head
  cat <<EOF
[notify.ops]
url = "http://127.0.0.1:9/hook"
secret_file = "$TW/hook.secret"
EOF
} >"$cfg"
expect_refused "$cfg:9:15: error: notify.ops.secret_file: secret file $TW/hook.secret is empty"
echo "c2VjcmV0" >"$TW/hook.secret"
chmod 640 "$TW/hook.secret" # group: ours (the daemon's when check runs as it)
tw_run 0 check -c "$cfg"
chmod 644 "$TW/hook.secret"
expect_refused "$cfg:9:15: error: notify.ops.secret_file: secret file $TW/hook.secret is accessible by group or others (mode 0644); run chmod 600 $TW/hook.secret, or chmod 640 with the daemon's group (chgrp certloop $TW/hook.secret)"
chmod 600 "$TW/hook.secret"

echo "== a TSIG key file without the configured key name"
cat >"$TW/tsig.key" <<'EOF'
# written by tsig-keygen
key "other-key." {
	algorithm hmac-sha256;
	secret "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";
};
EOF
chmod 600 "$TW/tsig.key"
{
  head
  cat <<EOF
[dns.primary]
type = "rfc2136"
server = "127.0.0.1:53"
tsig = { name = "certloop.", secret_file = "$TW/tsig.key" }
EOF
} >"$cfg"
expect_refused "$cfg:7:6: error: dns.primary.tsig: $TW/tsig.key: TSIG key: no key named 'certloop.' in the file (it holds 'other-key.')"
sed -i 's/name = "certloop."/name = "other-key"/' "$cfg"
tw_run 0 check -c "$cfg"
echo "not base64 at all" >"$TW/tsig.key"
sed -i 's/name = "other-key"/name = "certloop."/' "$cfg"
tw_run 78 check -c "$cfg"
grep -qF "$cfg:7:6: error: dns.primary.tsig: $TW/tsig.key: TSIG key: " "$TW/err" ||
  tw_fail "a key file that is no key passed check: $(cat "$TW/err")"

echo "== a name too long for its dns-01 record"
l63=$(printf 'a%.0s' $(seq 1 63))
long="$l63.$l63.$l63.${l63:0:40}.example"
[ "${#long}" = 240 ] || tw_fail "test name is ${#long} characters"
{
  head
  cat <<EOF
[dns.hook]
type = "exec"
command = ["$TW/hook.sh"]

[certificate.long]
domains = ["$long"]
challenge = "dns-01"
EOF
} >"$cfg"
expect_refused "$cfg:12:12: error: certificate.long.domains[0]: a 240-character name: its dns-01 record _acme-challenge.aaaaaaaaaaaaaaaaaaaa... would be 256 characters, more than the 253 a DNS name may have; use http-01 or a shorter name"
sed -i 's/challenge = "dns-01"/challenge = "http-01"/' "$cfg"
tw_run 0 check -c "$cfg"

tw_done
