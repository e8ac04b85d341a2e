#!/usr/bin/env bash
# Runs a peer ACME client (Debian's lego or uacme) the way its users run it:
# one process per certificate, PAR processes at once. Used by bench/issue.sh.
#
#   issue-peers.sh register CLIENT            # account (not timed)
#   issue-peers.sh run CLIENT N PAR OUTDIR    # certificates 0..N-1
#   issue-peers.sh one CLIENT I OUTDIR        # certificate I (internal)
#
# Environment: BW_DIRECTORY (ACME directory URL), BW_CA (PEM of the CA that
# signed Pebble's HTTPS certificate), BW_WEBROOT (served on Pebble's http-01
# port by a file server), BW_CLIENTDIR (lego --path / uacme --confdir),
# BW_PREFIX (certificate I is for $BW_PREFIX$I.test, and when I is odd also
# for www.$BW_PREFIX$I.test: the same names bench/issue.sh gives certloop).
#
# uacme has no CA-file option and its GnuTLS libcurl ignores CURL_CA_BUNDLE,
# so for uacme this script re-runs itself in a private mount namespace with
# $BW_CA bind-mounted over the system bundle.
set -uo pipefail
self=$(readlink -f "$0")
here=$(dirname "$self")
action=$1
client=$2
shift 2

: "${BW_DIRECTORY:?}" "${BW_CA:?}" "${BW_WEBROOT:?}" "${BW_CLIENTDIR:?}" "${BW_PREFIX:=c}"
SYSTEM_BUNDLE=/etc/ssl/certs/ca-certificates.crt

if [ "$client" = uacme ] && [ -z "${BW_IN_NS:-}" ]; then
  BW_IN_NS=1 exec unshare -m "$self" "$action" "$client" "$@"
fi
if [ "$client" = uacme ] && [ "${BW_IN_NS:-}" = 1 ]; then
  mount --bind "$BW_CA" "$SYSTEM_BUNDLE" || {
    echo "cannot bind-mount $BW_CA over $SYSTEM_BUNDLE" >&2
    exit 1
  }
  export BW_IN_NS=2 # children share the namespace; mount once
fi

# client_argv CLIENT NAME...: sets CMD to the client's command line.
export LEGO_CA_CERTIFICATES=$BW_CA
client_argv() {
  local c=$1 d
  shift
  case $c in
  lego)
    CMD=(lego --server "$BW_DIRECTORY" --accept-tos --email bench@example.org
      --key-type ec256 --path "$BW_CLIENTDIR" --http --http.webroot "$BW_WEBROOT")
    for d in "$@"; do CMD+=(-d "$d"); done
    CMD+=(run)
    ;;
  uacme)
    CMD=(uacme -a "$BW_DIRECTORY" -c "$BW_CLIENTDIR" -t EC -y -h "$here/issue-uacme-hook.sh"
      issue "$@")
    ;;
  *)
    echo "unknown client $c" >&2
    exit 64
    ;;
  esac
}

case $action in
register)
  mkdir -p "$BW_CLIENTDIR" "$BW_WEBROOT/.well-known/acme-challenge"
  case $client in
  lego) # lego has no register-only command: issue one warm-up certificate
    client_argv lego "warmup.$BW_PREFIX.test" ;;
  uacme)
    CMD=(uacme -a "$BW_DIRECTORY" -c "$BW_CLIENTDIR" -t EC -y new bench@example.org) ;;
  *) echo "unknown client $client" >&2; exit 64 ;;
  esac
  timeout 120 "${CMD[@]}" >"$BW_CLIENTDIR.register.log" 2>&1
  ;;
one)
  i=$1 out=$2
  name="$BW_PREFIX$i.test"
  if [ $((i % 2)) = 1 ]; then
    client_argv "$client" "$name" "www.$name"
  else
    client_argv "$client" "$name"
  fi
  timeout 300 /usr/bin/time -f '%e %U %S %M' -o "$out/$i.time" "${CMD[@]}" >"$out/$i.log" 2>&1
  rc=$?
  case $client in
  lego) crt="$BW_CLIENTDIR/certificates/$name.crt" ;;
  uacme) crt="$BW_CLIENTDIR/$name/cert.pem" ;;
  esac
  if [ "$rc" = 0 ] && [ ! -s "$crt" ]; then rc=1; fi
  echo "$rc" >"$out/$i.rc"
  ;;
run)
  n=$1 par=$2 out=$3
  mkdir -p "$out"
  seq 0 $((n - 1)) | xargs -P "$par" -I{} "$self" one "$client" {} "$out"
  ;;
*)
  echo "usage: $0 register|run|one CLIENT ..." >&2
  exit 64
  ;;
esac
