#!/usr/bin/env bash
# Run every benchmark script on this machine with its default (CPU-sized)
# settings and print their results; BENCHMARKS.md records them with the date.
# benchmarks/gpu.sh is separate: it runs the paper-scale MNIST config, which
# needs a GPU.
#
# Usage: benchmarks/run_all.sh   Environment: PYTHON (default .venv/bin/python,
# else python3), OUT (folder for the full run's workdir; default a temp folder).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
WORKDIR="${OUT:-$(mktemp -d)}/full_run_digits"

run() {
  echo "== $* ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  PYTHONPATH=. "$PYTHON" "$@"
  echo
}

run benchmarks/population_eval.py
run benchmarks/selection.py
run benchmarks/compare_seeds.py --seeds 10 --generations 5 --repeats 2 config.evolution.fitness_batch_size=64
run benchmarks/population_flops.py --config configs/digits_resnet18.py
run benchmarks/full_run.py --config configs/digits_resnet18.py --workdir "$WORKDIR"
run benchmarks/generation.py
