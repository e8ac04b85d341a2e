#!/usr/bin/env bash
# Fails when a manager file in src/reactor calls a file above it (the rule in
# src/reactor/manager_internal.h and docs/ARCHITECTURE.md). Only the
# scheduler's entry points may be called upward.
set -euo pipefail
cd "$(dirname "$0")/../src/reactor"
order=(manager status due run pull imports round ari_sched lifecycle events)
upward_ok=' mgr_decide mgr_run_end mgr_pump mgr_maybe_finish '
declare -A home rank
for i in "${!order[@]}"; do
  f=${order[$i]}
  rank[$f]=$i
  # definitions: a line at column 0 naming mgr_*( or manager_*( that is not a declaration
  for fn in $(grep -E '^[a-z].*\b(mgr|manager)_[a-z0-9_]+\(' "$f.c" | grep -v ';[[:space:]]*$' |
              grep -oE '\b(mgr|manager)_[a-z0-9_]+\(' | head -c 100000 | tr -d '(' | sort -u); do
    home[$fn]=${home[$fn]:-$f}
  done
done
bad=0
for f in "${order[@]}"; do
  # calls outside comment lines
  for fn in $(grep -vE '^[[:space:]]*(/\*|\*)' "$f.c" | grep -oE '\b(mgr|manager)_[a-z0-9_]+\(' |
              tr -d '(' | sort -u); do
    h=${home[$fn]:-}
    [[ -z $h || $h == "$f" ]] && continue
    if (( ${rank[$h]} < ${rank[$f]} )) && [[ $upward_ok != *" $fn "* ]]; then
      echo "check-layers: src/reactor/$f.c calls $fn, defined above it in $h.c"
      bad=1
    fi
  done
done
(( bad == 0 )) || { echo "check-layers: see the rule in src/reactor/manager_internal.h"; exit 1; }
echo "check-layers: ok"
