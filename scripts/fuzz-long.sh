#!/usr/bin/env bash
# The long fuzz campaign (outside CI): every target in build-fuzz/ runs from
# its committed corpus until 10 M executions or 30 minutes (whichever comes
# first), one target at a time, at nice 19, with the dictionary of its text
# format; then its corpus is minimised (libFuzzer -merge=1) and written back
# to tests/fuzz/corpus/NAME, and one line of figures per target is appended
# to RESULTS (default tests/fuzz/long-results.tsv):
#   date  target  executions  seconds  exec/s  cov  ft  corpus-before  corpus-after  result
# A crash stops that target, keeps the artifact in $WORK and marks it FAIL.
# Usage: scripts/fuzz-long.sh [TARGET...]   (default: every fuzz_* built)
# Env: RUNS (10000000), SECONDS_MAX (1800), JOBS unused (one at a time),
#      BUILD (build-fuzz; built with CC=clang -DFUZZ=ON when missing),
#      RESULTS, WORK (a temp dir).
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${BUILD:-build-fuzz}
runs=${RUNS:-10000000}
secs=${SECONDS_MAX:-1800}
results=${RESULTS:-$top/tests/fuzz/long-results.tsv}
work=${WORK:-$(mktemp -d /tmp/certloop-fuzz-long.XXXXXX)}

if [ ! -d "$build" ]; then
  CC=clang nice -n 19 cmake -S . -B "$build" -DFUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
nice -n 19 cmake --build "$build" -j1 >/dev/null || { echo "fuzz-long: build failed" >&2; exit 1; }

dict_of() { # TARGET -> dictionary path or ""
  case $1 in
  toml | config) echo "$top/tests/fuzz/dict/toml.dict" ;;
  http01 | control | http_headers | api) echo "$top/tests/fuzz/dict/http.dict" ;;
  problem | acme_json) echo "$top/tests/fuzz/dict/json.dict" ;;
  pem_chain) echo "$top/tests/fuzz/dict/pem.dict" ;;
  *) echo "" ;;
  esac
}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$build"/fuzz_*; do
    [ -x "$f" ] && targets+=("$(basename "$f" | sed 's/^fuzz_//')")
  done
fi

failed=0
for t in "${targets[@]}"; do
  bin=$build/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz-long: no $bin" >&2; failed=1; continue; }
  corpus=$top/tests/fuzz/corpus/$t
  mkdir -p "$corpus"
  run=$work/$t.run
  rm -rf "$run" "$work/$t.min"
  mkdir -p "$run" "$work/$t.min"
  cp -r "$corpus/." "$run/"
  before=$(find "$corpus" -type f | wc -l)
  dict=$(dict_of "$t")
  dict_opt=()
  [ -n "$dict" ] && dict_opt=(-dict="$dict")
  echo "fuzz-long: $t (${dict:-no dictionary}) from $before inputs" >&2
  start=$(date +%s)
  nice -n 19 "$bin" -runs="$runs" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 "${dict_opt[@]}" -artifact_prefix="$work/$t-" "$run" >"$work/$t.log" 2>&1
  rc=$?
  end=$(date +%s)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$work/$t.log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  result=ok
  if [ "$rc" != 0 ]; then
    result=FAIL
    failed=1
    tail -40 "$work/$t.log" >&2
  else
    # minimise into a fresh directory and commit that as the corpus
    nice -n 19 "$bin" -merge=1 -rss_limit_mb=2048 -max_len=4096 "$work/$t.min" "$run" \
      >"$work/$t.merge.log" 2>&1 || { result=FAIL-merge; failed=1; }
    if [ "$result" = ok ]; then
      rm -rf "$corpus"
      mkdir -p "$corpus"
      cp "$work/$t.min/." "$corpus/" -r
    fi
  fi
  after=$(find "$corpus" -type f | wc -l)
  el=$((end - start))
  eps=$(awk -v e="${execs:-0}" -v s="$el" 'BEGIN { printf "%d", (s > 0 ? e / s : 0) }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$t" \
    "${execs:-?}" "$el" "$eps" "${cov:-?}" "${ft:-?}" "$before" "$after" "$result" | tee -a "$results"
done
[ -n "${WORK:-}" ] || { [ "$failed" = 0 ] && rm -rf "$work"; }
exit $failed
