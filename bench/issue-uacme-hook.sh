#!/bin/sh
# uacme hook for bench/issue.sh: http-01 only, token files in $BW_WEBROOT,
# served by a file server on Pebble's http-01 port (uacme(1)'s example hook).
dir="$BW_WEBROOT/.well-known/acme-challenge"
[ $# -eq 5 ] || { echo "usage: $0 method type ident token auth" >&2; exit 85; }
[ "$2" = http-01 ] || exit 1
case $1 in
begin) printf '%s' "$5" >"$dir/$4" ;;
done | failed) rm -f "$dir/$4" ;;
*) exit 1 ;;
esac
