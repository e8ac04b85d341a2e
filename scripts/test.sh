#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds with warnings as errors,
# runs every ctest (unit, loop, conformance, integration against a local
# Pebble CA and Knot DNS on loopback), then the unit and loop tests again
# under AddressSanitizer + UndefinedBehaviorSanitizer, then a short run of
# every fuzz target. Any failure fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

bash scripts/deps.sh

jobs=$(nproc 2>/dev/null || echo 2)

echo "== build (-Werror) =="
cmake -S . -B build -DWERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$jobs"

echo "== banned functions in src/ =="
bash scripts/checksrc.sh

echo "== ctest: all tests =="
# Twice as many ctest slots as cores: integration tests mostly wait (see
# tests/tests.cmake); CTEST_JOBS overrides.
(cd build && ctest --output-on-failure -j"${CTEST_JOBS:-$((jobs * 2))}" --timeout 900)
# what the tests keep for people to look at (test_browser's screenshots)
if [ -d build/test-artifacts ]; then
  echo "== test artefacts =="
  find "$top/build/test-artifacts" -type f | sort
fi

echo "== build with ASan+UBSan, unit and loop tests =="
CC=clang cmake -S . -B build-asan -DWERROR=ON -DSANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug
cmake --build build-asan -j"$jobs"
(cd build-asan && UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
   ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$jobs" -L 'unit|loop')

echo "== fuzz targets (short run each) =="
CC=clang cmake -S . -B build-fuzz -DFUZZ=ON -DCMAKE_BUILD_TYPE=Debug
cmake --build build-fuzz -j"$jobs"
fuzz_secs=${FUZZ_SECONDS:-30}
for f in build-fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  corpus="$top/tests/fuzz/corpus/${name#fuzz_}"
  work=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus/." "$work/"
  echo "fuzz: $name for ${fuzz_secs}s"
  "$f" -max_total_time="$fuzz_secs" -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
       -artifact_prefix="$work/" "$work" 2>"$work.log" || { tail -50 "$work.log"; echo "fuzz: $name FAILED"; exit 1; }
  grep -E 'stat::number_of_executed_units' "$work.log" || true
  rm -rf "$work" "$work.log"
done

echo "== all tests passed =="
