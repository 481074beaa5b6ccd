#!/usr/bin/env bash
# Rebuild BENCHMARKS.md from its header and the results files beside each
# benchmark script, in a fixed order.
#
# Usage: benchmarks/assemble.sh
set -euo pipefail
cd "$(dirname "$0")/.."

sections=(population_eval selection population_flops compare generation sharding gpu)
{
  cat benchmarks/header.md
  for name in "${sections[@]}"; do
    echo
    cat "benchmarks/results_${name}.md"
  done
} > BENCHMARKS.md.tmp
mv BENCHMARKS.md.tmp BENCHMARKS.md
