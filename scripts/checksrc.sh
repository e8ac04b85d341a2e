#!/usr/bin/env bash
# Fails on functions banned in src/ (STYLE §9) and on a polling test
# helper given a command substitution.
set -euo pipefail
cd "$(dirname "$0")/.."
banned='\b(sprintf|strcpy|strcat|atoi|gmtime|system|popen|sleep|getaddrinfo|curl_easy_perform)[[:space:]]*\('
if grep -rnE "$banned" src --include='*.c' --include='*.h' | grep -vE '^\S+:[0-9]+:\s*(/\*|\*|//)'; then
  echo "checksrc: banned function used in src/ (see STYLE.md §9)"
  exit 1
fi
# a polling helper given "$(...)" runs it once, before the first try, and
# then waits on a constant (test_dry_run failed under load that way)
if grep -rnE '\b[a-z_]*wait[a-z_]* [0-9.]+ [^|&;]*\$\(' tests bench --include='*.sh'; then
  echo "checksrc: a \$(...) in a wait helper's command is expanded once: wrap the test in a function"
  exit 1
fi
bash scripts/check-layers.sh
echo "checksrc: ok"
