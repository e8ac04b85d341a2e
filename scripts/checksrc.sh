#!/usr/bin/env bash
# Fails on functions banned in src/ (STYLE §9).
set -euo pipefail
cd "$(dirname "$0")/.."
banned='\b(sprintf|strcpy|strcat|atoi|gmtime|system|popen|sleep|getaddrinfo|curl_easy_perform)[[:space:]]*\('
if grep -rnE "$banned" src --include='*.c' --include='*.h' | grep -vE '^\S+:[0-9]+:\s*(/\*|\*|//)'; then
  echo "checksrc: banned function used in src/ (see STYLE.md §9)"
  exit 1
fi
bash scripts/check-layers.sh
echo "checksrc: ok"
