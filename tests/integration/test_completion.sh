#!/usr/bin/env bash
# Shell completion (completions/certloop.bash; of completions/_certloop,
# zsh's, the syntax and the name lookup): the commands and each command's options are exactly those of
# `certloop --help` and `certloop CMD --help`; certificate names come from
# a running daemon (tools/ctl-fake, the real control socket server with
# canned certificates www and api) and, with no daemon, from the
# configuration's [certificate.NAME] tables, conf.d/ included.
set -uo pipefail

. "$(dirname "$0")/lib.sh"
tw_init_bare completion
tmp=$TW
src=${SOURCE_DIR:-.}
FAKE=${BUILD_DIR:-build}/ctl-fake

# shellcheck source=/dev/null
. "$src/completions/certloop.bash"
complete -p certloop >/dev/null || tw_fail "the script does not register a completion for certloop"

# zsh_names CONFIG [SOCKET]: the zsh completion's names, sorted, space-separated
zsh_names() {
  zsh -fc '. "$1"; shift; _certloop_names "$@"' zsh "$src/completions/_certloop" "$CERTLOOP" "$@" |
    LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//'
}
have_zsh=false
if command -v zsh >/dev/null; then
  have_zsh=true
  zsh -n "$src/completions/_certloop" || tw_fail "_certloop: zsh syntax"
elif [ "${CI:-}" = true ]; then
  tw_fail "zsh not installed (scripts/deps.sh)"
fi

# comp WORD... : the completions of the last word, sorted, space-separated
comp() {
  COMP_WORDS=("$CERTLOOP" "$@")
  COMP_CWORD=$#
  COMP_LINE="certloop $*"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  _certloop
  printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//'
}

# expect WANT WORD...
expect() {
  local want=$1 got
  shift
  got=$(comp "$@")
  [ "$got" = "$want" ] || tw_fail "completing 'certloop $*': got '$got', expected '$want'"
}

echo "== commands, as --help lists them"
cmds=$("$CERTLOOP" --help | sed -n 's/^  \([a-z][a-z-]\{2,\}\) .*/\1/p' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')
expect "--help --version $cmds" ""
expect "reload renew revoke" "re"
expect "--help --version" "--"

echo "== each command's options, as its --help lists them"
for c in $cmds; do
  [ "$c" = help ] && continue
  want=$("$CERTLOOP" "$c" --help | sed -n 's/^  \(-[a-zA-Z], \)\{0,1\}\(--[a-z][a-z-]*\).*/\2/p' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')
  [ -n "$want" ] || tw_fail "$c --help lists no options"
  expect "$want" "$c" "--"
done
expect "$(echo "$cmds" | tr ' ' '\n' | grep -vx help | tr '\n' ' ' | sed 's/ $//')" help ""
expect "affiliationChanged" revoke www --reason af
expect "rotate-key" store ""
printf '00' >"$tmp/new.key"
expect "$tmp/new.key" store rotate-key --new-key-file "$tmp/new"
mkdir -p "$tmp/letsencrypt"
expect "$tmp/letsencrypt" import-certbot "$tmp/lets"

echo "== names from the configuration (no daemon)"
mkdir -p "$tmp/etc/conf.d" "$tmp/etc/sub"
cat >"$tmp/etc/certloop.toml" <<'EOF'
[daemon]
control_socket = "/nonexistent/certloop-completion.sock"

[ca.local]
directory = "https://127.0.0.1:14000/dir"

[certificate.alpha]   # the main site
domains = ["alpha.test"]

[[certificate.alpha.deploy]]
type = "exec"
command = ["true"]

  [ certificate."mail-1.example" ]
domains = ["mail.test"]
EOF
printf '[certificate.beta]\ndomains = ["beta.test"]\n' >"$tmp/etc/conf.d/beta.toml"
printf '[certificate.gamma]\n' >"$tmp/etc/sub/other.toml"
printf '[certificate.beta.import]\n' >"$tmp/etc/conf.d/not-a-name.txt"
expect "alpha beta mail-1.example" renew -c "$tmp/etc/certloop.toml" ""
expect "alpha" plan --config "$tmp/etc/certloop.toml" "a"
CERTLOOP_CONFIG=$tmp/etc/certloop.toml expect "alpha beta mail-1.example" test ""
expect "" test -c "$tmp/etc/certloop.toml" alpha ""
expect "" revoke -c "$tmp/etc/certloop.toml" --reason superseded alpha ""
expect "" check -c "$tmp/etc/certloop.toml" ""
expect "deactivate" account -c "$tmp/etc/certloop.toml" de
expect "local" account -c "$tmp/etc/certloop.toml" show ""
expect "" account -c "$tmp/etc/certloop.toml" show local ""
"$CERTLOOP" check -c "$tmp/etc/certloop.toml" >/dev/null ||
  tw_fail "the test configuration does not pass check"
expect "$tmp/etc/certloop.toml" check -c "$tmp/etc/cert"
if $have_zsh; then
  got=$(zsh_names "$tmp/etc/certloop.toml")
  [ "$got" = "alpha beta mail-1.example" ] || tw_fail "zsh, names from the configuration: '$got'"
  got=$(zsh -fc '. "$1"; _certloop_tables ca "$2"' zsh "$src/completions/_certloop" "$tmp/etc/certloop.toml")
  [ "$got" = "local" ] || tw_fail "zsh, CAs from the configuration: '$got'"
fi

echo "== names from the running daemon"
sock=$tmp/control.sock
"$FAKE" "$sock" >"$tmp/fake.out" 2>"$tmp/fake.err" &
TW_PIDS+=("$!")
for _ in $(seq 50); do grep -q ready "$tmp/fake.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$tmp/fake.out" || tw_fail "ctl-fake did not start: $(cat "$tmp/fake.err")"
expect "api www" renew --socket "$sock" -c "$tmp/etc/certloop.toml" ""
expect "api www" status --socket "$sock" ""
expect "" status --socket "$sock" www ""
expect "www" renew --all --socket "$sock" "w"
sed -i "s|^control_socket = .*|control_socket = \"$sock\"|" "$tmp/etc/certloop.toml"
expect "api www" renew -c "$tmp/etc/certloop.toml" ""
if $have_zsh; then
  got=$(zsh_names "$tmp/etc/certloop.toml")
  [ "$got" = "api www" ] || tw_fail "zsh, names from the daemon: '$got'"
fi

tw_done
