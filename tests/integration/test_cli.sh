#!/usr/bin/env bash
# The command line: every command's --help (and certloop(8)) against what
# it accepts; exit codes (0, 64 usage, 69 no daemon, 78
# configuration), `check` on good and broken files, the config path order
# (-c, $CERTLOOP_CONFIG, default), `--version`, and `plan` with no state and
# with a stored certificate made by hand with openssl.
set -uo pipefail

. "$(dirname "$0")/lib.sh"
tw_need openssl
tw_init_bare cli
tmp=$TW

# usage ARGS...: exit 64, a one-line message plus the hint (the command's
# --help when a known command was given)
usage() {
  local hint="Try 'certloop --help'."
  case ${1:-} in
  run | check | plan | status | renew | reload | test | revoke) hint="Try 'certloop $1 --help'." ;;
  esac
  tw_run 64 "$@" || return
  if [ "$(wc -l <"$tmp/err")" != 2 ] || ! grep -q "^certloop: " "$tmp/err" ||
     [ "$(sed -n 2p "$tmp/err")" != "$hint" ]; then
    tw_fail "certloop $*: usage message is not one line plus the hint"
    sed 's/^/  | /' "$tmp/err" >&2
  fi
  if [ -s "$tmp/out" ]; then
    tw_fail "certloop $*: usage error wrote to stdout"
  fi
}

echo "== version and help"
tw_run 0 --version && tw_has "$tmp/out" "certloop $(sed -n 's/^project(certloop VERSION \([0-9.]*\).*/\1/p' "${SOURCE_DIR:-.}/CMakeLists.txt")"
tw_run 0 --help && grep -q '^usage: certloop COMMAND' "$tmp/out" || tw_fail "--help: no usage line"
tw_run 0 help && grep -q 'plan \[-c FILE\] \[NAME...\]' "$tmp/out" || tw_fail "help: plan missing"
tw_run 0 check --help && grep -q '^usage:' "$tmp/out" || tw_fail "check --help"

echo "== per-command help"
# Every command of the overview has its own help: `CMD --help`, `CMD -h`
# (even after other options), and `help CMD` print the same text, whose
# first line is the command's synopsis and which lists every option the
# command's synopsis names; each option it lists is one the command takes.
cmds=$(sed -n 's/^  \([a-z][a-z-]\{2,\}\) .*/\1/p' <("$CERTLOOP" --help) | grep -v '^help$')
[ "$(echo "$cmds" | wc -w)" -ge 8 ] || tw_fail "overview lists too few commands: $cmds"
for c in $cmds; do
  tw_run 0 "$c" --help || continue
  cp "$tmp/out" "$tmp/help-$c"
  [ "$(head -1 "$tmp/help-$c" | cut -d' ' -f1-3)" = "usage: certloop $c" ] ||
    tw_fail "$c --help: first line is not its synopsis: $(head -1 "$tmp/help-$c")"
  tw_run 0 help "$c" && cmp -s "$tmp/out" "$tmp/help-$c" || tw_fail "help $c differs from $c --help"
  tw_run 0 "$c" --bogus-first -h && cmp -s "$tmp/out" "$tmp/help-$c" || tw_fail "$c ... -h"
  opts=$(sed -n 's/^  \(-[a-zA-Z], \)\{0,1\}\(--[a-z][a-z-]*\).*/\2/p' "$tmp/help-$c")
  for o in $(grep -o -- '--[a-z][a-z-]*' <(head -2 "$tmp/help-$c")); do
    grep -qx -- "$o" <<<"$opts" || tw_fail "$c --help: $o is in the synopsis, not in the options"
  done
  for o in $opts; do
    [ "$o" = --help ] && continue
    # a usage error after it (exit 64) keeps the command from running
    tw_run 64 "$c" "$o" x --zzz || continue
    grep -q "'$o'" "$tmp/err" && tw_fail "$c --help lists $o, which $c refuses"
  done
  # certloop(8) describes the command and every option it takes
  man8=${SOURCE_DIR:-.}/docs/man/certloop.8.scd
  grep -q "^\*$c\*" "$man8" || tw_fail "certloop(8) has no entry for $c"
  for o in $opts; do
    [ "$o" = --help ] && continue
    grep -q -- "\*$o\*" "$man8" || tw_fail "certloop(8) does not mention $c's $o"
  done
done
usage help bogus
usage help run check

echo "== --version names the libraries in use"
tw_run 0 --version
for lib in OpenSSL libcurl libuv c-ares ldns jansson libpq; do
  grep -Eq "^$lib [0-9]+\.[0-9]+" "$tmp/out" || tw_fail "--version: no '$lib VERSION' line"
done
# the run-time versions: the same OpenSSL and libcurl the command-line tools load
if command -v openssl >/dev/null; then
  v=$(openssl version | cut -d' ' -f2)
  grep -q "^OpenSSL $v " "$tmp/out" || tw_fail "--version: OpenSSL is not $v (openssl version)"
fi
if command -v curl >/dev/null; then
  v=$(curl --version | head -1 | grep -o 'libcurl/[0-9.]*' | cut -d/ -f2)
  grep -q "^libcurl $v " "$tmp/out" || tw_fail "--version: libcurl is not $v (curl --version)"
fi

echo "== usage errors"
usage
usage frobnicate
grep -q "unknown command 'frobnicate'" "$tmp/err" || tw_fail "unknown command message"
usage --bogus
usage run --bogus
grep -q "^certloop: run: unknown option '--bogus'" "$tmp/err" || tw_fail "unknown option message"
usage run -x
grep -q "unknown option '-x'" "$tmp/err" || tw_fail "unknown short option message"
usage run -c
grep -q "option '-c' needs an argument" "$tmp/err" || tw_fail "missing argument message"
usage run extra
usage check extra
usage status one two
usage renew
usage renew --all www
usage reload now
usage test
usage test a b
usage revoke
usage revoke www --reason bogus
grep -q "unknown reason 'bogus'" "$tmp/err" || tw_fail "revoke reason message"

echo "== test with an unreadable configuration (78); test_preflight covers the checks"
tw_run 78 test www -c "$tmp/missing.toml"

echo "== revoke with an unreadable configuration (78); test_revoke covers the CA"
tw_run 78 revoke www --reason keyCompromise -c "$tmp/missing.toml"

echo "== no daemon answers (69); test_control_cli covers a live one"
for args in "status" "status --json" "status www --json" "renew www" "renew --all --force" "reload"; do
  # shellcheck disable=SC2086
  tw_run 69 $args --socket "$tmp/none.sock" &&
    tw_has "$tmp/err" "certloop: no daemon answers on $tmp/none.sock: No such file or directory"
done

echo "== check"
mkdir -p "$tmp/etc/conf.d" "$tmp/deploy"
cat >"$tmp/etc/certloop.toml" <<EOF
[daemon]
state_dir = "$tmp/state"
control_socket = "$tmp/control.sock"

[http01]
listen = ["127.0.0.1:5002"]

[ca.pebble]
directory = "https://127.0.0.1:14000/dir"
agree_tos = true

[certificate.www]
domains = ["example.org", "www.example.org"]
ca = "pebble"

[[certificate.www.deploy]]
type = "files"
fullchain = "$tmp/deploy/www.fullchain.pem"
key = "$tmp/deploy/www.key"

[[certificate.www.deploy]]
type = "exec"
command = ["systemctl", "reload", "nginx"]
EOF
cat >"$tmp/etc/conf.d/api.toml" <<EOF
[certificate.api]
domains = ["api.example.org"]
ca = "pebble"
key = "rsa2048"
renew_before = "30d"
EOF
good="$tmp/etc/certloop.toml"
tw_run 0 check -c "$good" && tw_has "$tmp/out" "$good: OK: 2 certificates, 1 CA, 0 DNS solvers, 2 files"
[ -s "$tmp/err" ] && tw_fail "check: stderr not empty on success"
# $CERTLOOP_CONFIG is used without -c, and -c wins over it
CERTLOOP_CONFIG="$good" tw_run 0 check && tw_has "$tmp/out" "$good: OK: 2 certificates, 1 CA, 0 DNS solvers, 2 files"
CERTLOOP_CONFIG="$tmp/missing.toml" tw_run 0 check -c "$good"
CERTLOOP_CONFIG="$tmp/missing.toml" tw_run 78 check && grep -q "^$tmp/missing.toml" "$tmp/err" ||
  tw_fail "check: missing file not named"
# the default path is used when neither is given
if [ ! -e /etc/certloop/certloop.toml ]; then
  env -u CERTLOOP_CONFIG "$CERTLOOP" check >"$tmp/out" 2>"$tmp/err"
  [ $? = 78 ] && grep -q "^/etc/certloop/certloop.toml" "$tmp/err" || tw_fail "check: default path"
fi

mkdir -p "$tmp/bad"
cat >"$tmp/bad/certloop.toml" <<EOF
[daemon]
state_dir = "$tmp/state"

[ca.pebble]
directory = "https://127.0.0.1:14000/dir"
agree_tos = true

[certificate.www]
domains = ["example.org"]
ca = "pebble"
key = "ec-p999"
challenge = "http-01"
EOF
bad="$tmp/bad/certloop.toml"
tw_run 78 check -c "$bad"
[ -s "$tmp/out" ] && tw_fail "check: stdout not empty on failure"
grep -qE "^$bad:11:7: error: certificate\.www\.key: " "$tmp/err" || {
  tw_fail "check: no FILE:LINE:COL line for the bad key type"
  sed 's/^/  | /' "$tmp/err" >&2
}
# every line is in the FILE:LINE:COL format
if grep -vqE "^$tmp/[^:]+:[0-9]+:[0-9]+: error: " "$tmp/err"; then
  tw_fail "check: a diagnostic line is not FILE:LINE:COL: error: ..."
  sed 's/^/  | /' "$tmp/err" >&2
fi

# two errors: both reported, one line each, in file order
cat >"$tmp/bad/certloop.toml" <<EOF
[daemon]
state_dir = "$tmp/state"
log_levle = "debug"

[certificate.www]
domains = ["example.org"]
ca = "nowhere"
EOF
tw_run 78 check -c "$bad"
[ "$(wc -l <"$tmp/err")" -ge 2 ] || tw_fail "check: expected at least two error lines"
grep -qE "^$bad:3:1: error: daemon.*log_levle" "$tmp/err" || tw_fail "check: unknown key line"
grep -qE "^$bad:7:[0-9]+: error: certificate\.www\.ca" "$tmp/err" || tw_fail "check: unknown CA line"
# run refuses an invalid configuration the same way
tw_run 78 run -c "$bad"
grep -qE "^$bad:3:1: error: " "$tmp/err" || tw_fail "run: config errors not printed"

echo "== plan, nothing stored"
tw_run 0 plan -c "$good" && {
  tw_has "$tmp/out" "api"
  tw_has "$tmp/out" "www"
  tw_has "$tmp/out" "  domains    example.org, www.example.org"
  tw_has "$tmp/out" "  ca         pebble (https://127.0.0.1:14000/dir)"
  tw_has "$tmp/out" "  key        ec-p256"
  tw_has "$tmp/out" "  key        rsa2048"
  tw_has "$tmp/out" "  challenge  http-01 (certloop's listener on 127.0.0.1:5002)"
  tw_has "$tmp/out" "  deploy     files: key $tmp/deploy/www.key (0600), fullchain $tmp/deploy/www.fullchain.pem (0644)"
  tw_has "$tmp/out" "             exec: systemctl reload nginx (timeout 60s)"
  tw_has "$tmp/out" "  stored     none"
  tw_has "$tmp/out" "  next order now: no certificate stored"
  [ "$(grep -c '^  next order now: no certificate stored$' "$tmp/out")" = 2 ] ||
    tw_fail "plan: expected both certificates due now"
  # sorted by name: api before www
  [ "$(grep -nx 'api' "$tmp/out" | cut -d: -f1)" -lt "$(grep -nx 'www' "$tmp/out" | cut -d: -f1)" ] ||
    tw_fail "plan: not sorted by name"
}
tw_run 0 plan -c "$good" www && {
  grep -qx api "$tmp/out" && tw_fail "plan www: printed api too"
  tw_has "$tmp/out" "www"
}
tw_run 64 plan -c "$good" www nope && tw_has "$tmp/err" "certloop: plan: no certificate named nope"
[ -s "$tmp/out" ] && tw_fail "plan with an unknown name printed a plan"
tw_run 78 plan -c "$bad"

# a dns-01 certificate names its solver
mkdir -p "$tmp/dns"
cat >"$tmp/dns/certloop.toml" <<EOF
[daemon]
state_dir = "$tmp/state"

[ca.pebble]
directory = "https://127.0.0.1:14000/dir"
agree_tos = true

[dns.hook]
type = "exec"
command = ["/bin/true", "--zone", "example org"]

[certificate.wild]
domains = ["*.example.org"]
ca = "pebble"
challenge = "dns-01"
dns = "hook"
EOF
tw_run 0 check -c "$tmp/dns/certloop.toml" &&
  tw_has "$tmp/out" "$tmp/dns/certloop.toml: OK: 1 certificate, 1 CA, 1 DNS solver, 1 file"
tw_run 0 plan -c "$tmp/dns/certloop.toml" && {
  tw_has "$tmp/out" "  domains    *.example.org"
  tw_has "$tmp/out" "  challenge  dns-01 via hook (exec: /bin/true --zone 'example org')"
  tw_has "$tmp/out" "  deploy     none (the certificate stays in the state directory)"
}

# an imported certificate without a CA: names from the certificate, never ordered
mkdir -p "$tmp/imp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=legacy.example.org" -addext "subjectAltName=DNS:legacy.example.org" \
  -keyout "$tmp/imp/key.pem" -out "$tmp/imp/cert.pem" 2>/dev/null || tw_fail "openssl req (import)"
cat >"$tmp/imp/certloop.toml" <<EOF
[daemon]
state_dir = "$tmp/state"

[certificate.legacy]
import = { cert = "$tmp/imp/cert.pem", key = "$tmp/imp/key.pem" }
EOF
tw_run 0 plan -c "$tmp/imp/certloop.toml" && {
  tw_has "$tmp/out" "  domains    legacy.example.org (from the imported certificate)"
  tw_has "$tmp/out" "  ca         -"
  tw_has "$tmp/out" "  next order never: imported without ca: deployed and alerted on before expiry, never renewed (ca = \"NAME\" renews it)"
}

echo "== plan, stored certificates"
# store GEN NAME SAN KEYTYPE META: a self-signed certificate as the current generation
store() {
  local name=$1 gen=$2 san=$3 key=$4 meta=$5
  local dir="$tmp/state/certs/$name/$gen"
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 90 \
    -subj "/CN=${san%%,*}" -addext "subjectAltName=DNS:${san//,/,DNS:}" \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null || tw_fail "openssl req"
  : >"$dir/chain.pem"
  cp "$dir/cert.pem" "$dir/fullchain.pem"
  nb=$(date -u -d "$(openssl x509 -in "$dir/cert.pem" -noout -startdate | cut -d= -f2)" +%s)
  na=$(date -u -d "$(openssl x509 -in "$dir/cert.pem" -noout -enddate | cut -d= -f2)" +%s)
  if [ "$meta" = yes ]; then
    local doms
    doms=$(echo "$san" | sed 's/[^,]*/"&"/g')
    printf '{"domains":[%s],"ca":"pebble","directory":"https://127.0.0.1:14000/dir","key":"%s","not_before":%s,"not_after":%s,"issued_at":%s}\n' \
      "$doms" "$key" "$nb" "$na" "$nb" >"$dir/meta.json"
  else
    echo '{}' >"$dir/meta.json"
  fi
  ln -sfn "$gen" "$tmp/state/certs/$name/current"
}
utc() { date -u -d "@$1" '+%Y-%m-%d %H:%M UTC'; }
# jitter NAME NOT_BEFORE NOT_AFTER WHEN: the daemon's stable jitter
# (sched_jitter_s: FNV-1a of the name and not_after, at most a tenth of
# WHEN - NOT_BEFORE and 6 h), which plan applies too
jitter() {
  python3 - "$@" <<'PY'
import sys
name, nb, na, when = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
h = 1469598103934665603
for b in name.encode():
    h = ((h ^ b) * 1099511628211) % 2**64
for i in range(8):
    h = ((h ^ ((na % 2**64) >> (8 * i) & 0xff)) * 1099511628211) % 2**64
span = min((when - nb) // 10, 6 * 3600)
print(h % (span + 1) if span > 0 else 0)
PY
}
# has_next NAME NOT_BEFORE NOT_AFTER WHEN TEXT: plan's line is the daemon's
# time (WHEN less the jitter) with TEXT and the jitter named
has_next() {
  local j
  j=$(jitter "$1" "$2" "$3" "$4")
  grep -qF -- "  next order $(utc $(($4 - j))): $5, " "$tmp/out" &&
    grep -q "earlier (this certificate's jitter)$" <<<"$(grep -F -- "  next order $(utc $(($4 - j))): $5, " "$tmp/out")" ||
    { tw_fail "plan: no next order line at $(utc $(($4 - j))) (jitter $j s) with: $5"; sed 's/^/  | /' "$tmp/out" >&2; }
}

store www 20260101T000000Z-0001 "example.org,www.example.org" ec-p256 yes
www_nb=$nb www_na=$na
store api 20260101T000000Z-0002 "api.example.org" rsa2048 yes
api_nb=$nb api_na=$na
tw_run 0 plan -c "$good" && {
  tw_has "$tmp/out" "  stored     generation 20260101T000000Z-0001, expires $(utc "$www_na") (in 90 days)"
  has_next www "$www_nb" "$www_na" $((www_na - (www_na - www_nb) / 3)) "a third of the lifetime remaining (lifetime 90 days)"
  tw_has "$tmp/out" "  renew      30d before expiry"
  has_next api "$api_nb" "$api_na" $((api_na - 30 * 86400)) "renew_before 30d before expiry $(date -u -d "@$api_na" +%Y-%m-%d)"
}

# meta.json without validity ("{}"): the certificate itself is read
store www 20260101T000000Z-0003 "example.org,www.example.org" ec-p256 no
tw_run 0 plan -c "$good" www &&
  has_next www "$nb" "$na" $((na - (na - nb) / 3)) "a third of the lifetime remaining (lifetime 90 days)"

# a name added to the configuration is not covered by the stored certificate
store www 20260101T000000Z-0004 "example.org" ec-p256 yes
tw_run 0 plan -c "$good" www &&
  tw_has "$tmp/out" "  next order now: stored certificate does not cover name www.example.org (configuration changed)"

# the key type changed
store www 20260101T000000Z-0005 "example.org,www.example.org" rsa3072 yes
tw_run 0 plan -c "$good" www &&
  tw_has "$tmp/out" "  next order now: key type changed (stored rsa3072, configured ec-p256)"

# a broken current generation is reported, not fatal
rm "$tmp/state/certs/www/20260101T000000Z-0005/cert.pem"
tw_run 0 plan -c "$good" www && grep -q "^  stored     unreadable: " "$tmp/out" ||
  tw_fail "plan: unreadable generation not reported"

tw_done
