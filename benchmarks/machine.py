"""Machine description and peak FLOP rate, shared by the benchmark scripts."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp


def cpu_model() -> str:
    """Return `lscpu`'s model name, or the platform's processor string without lscpu."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    for line in text.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def describe() -> str:
    """Return one line: CPU model, CPU count, JAX version, backend and devices."""
    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    return (f"{cpu_model()}, {os.cpu_count()} CPUs, jax {jax.__version__} {jax.default_backend()}, "
            f"{len(devices)} × {'/'.join(kinds)} ({jax.process_count()} process(es))")


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of `fn()` over `repeats` calls, after one warm-up call."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(size: int, repeats: int = 5, dtype=jnp.float32) -> float:
    """Return the measured FLOP/s of one device on a `size`×`size` float32 matmul.

    The matmul runs at JAX's default precision, the precision the fitness call
    uses too (on recent NVIDIA GPUs that may mean TF32 tensor cores).
    """
    a = jax.random.normal(jax.random.key(0), (size, size), dtype)
    b = jax.random.normal(jax.random.key(1), (size, size), dtype)
    product = jax.jit(jnp.matmul)
    seconds = median_seconds(lambda: product(a, b), repeats)
    return 2.0 * size**3 / seconds


def compiled_flops(compiled) -> float:
    """Return the FLOP count that XLA's cost analysis gives for a compiled call."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return float(analysis["flops"])
