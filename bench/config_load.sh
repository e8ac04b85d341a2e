#!/usr/bin/env bash
# Benchmark: load and validate 10,000 certificates spread over 100 conf.d
# files with `certloop check`; beside it, in the same run, Python 3's tomllib
# (the standard-library TOML 1.0 parser) parsing the same files (parse only,
# no validation) as a peer. Reports wall time (hyperfine) and peak RSS
# (/usr/bin/time -v or getrusage via bash's `command time`).
# Usage: bench/config_load.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
case "$build" in /*) ;; *) build=$PWD/$build ;; esac
certloop=$build/certloop
[ -x "$certloop" ] || { echo "build first: $certloop missing"; exit 1; }
work=$(mktemp -d /tmp/certloop-bench-config.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/conf.d" "$work/deploy" "$work/state"

cat > "$work/certloop.toml" <<TOML
[daemon]
state_dir = "$work/state"
[ca.local]
directory = "https://127.0.0.1:14000/dir"
TOML
n=0
for f in $(seq -w 1 100); do
  out="$work/conf.d/$f.toml"
  : > "$out"
  for i in $(seq 1 100); do
    n=$((n+1))
    cat >> "$out" <<TOML
[certificate.site$n]
domains = ["site$n.example.org", "www.site$n.example.org"]
ca = "local"
key = "ec-p256"
renew_before = "30d"
[[certificate.site$n.deploy]]
type = "files"
fullchain = "$work/deploy/site$n.fullchain.pem"
key = "$work/deploy/site$n.key"

TOML
  done
done
echo "generated $n certificates in $(ls "$work/conf.d" | wc -l) files ($(du -sh "$work/conf.d" | cut -f1))"
"$certloop" check -c "$work/certloop.toml"

peak() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1; }
echo "peak RSS certloop check: $(peak "$certloop" check -c "$work/certloop.toml") KiB"

cat > "$work/peer.py" <<'PY'
import sys, glob, tomllib
n = 0
for path in [sys.argv[1]] + sorted(glob.glob(sys.argv[2] + "/*.toml")):
    with open(path, "rb") as f:
        n += len(tomllib.load(f).get("certificate", {}))
print(n)
PY
if command -v python3 >/dev/null && python3 -c 'import tomllib' 2>/dev/null; then
  echo "peak RSS python3 tomllib: $(peak python3 "$work/peer.py" "$work/certloop.toml" "$work/conf.d") KiB"
  hyperfine -w 2 -r 10 -N \
    -n "certloop check (parse + validate)" "$certloop check -c $work/certloop.toml" \
    -n "python3 tomllib (parse only)" "python3 $work/peer.py $work/certloop.toml $work/conf.d"
else
  hyperfine -w 2 -r 10 -N -n "certloop check" "$certloop check -c $work/certloop.toml"
fi
