"""FLOPs of one population evaluation and the fraction of the machine's peak it reaches.

For the run that a config describes, this script builds the fitness call of one
generation (all K·Γ candidates on their tasks' fitness batches, drawn from the
real data), and in one process:

- counts its FLOPs with XLA's cost analysis of the compiled, unsharded call;
- times it, compile excluded, split over the config's devices;
- measures the peak FLOP rate of one device with a large float32 matmul.

The masked forward pass computes every channel and multiplies pruned ones by
zero, so the count is that of the dense JAT on K·Γ·B inputs, and it is the work
the hardware does. The last line states the achieved FLOP rate as a fraction of
the measured peak (times the device count).

Run: `python benchmarks/population_flops.py [--config FILE[:ARG]] [--config.FIELD=VALUE ...]
[--matmul 4096] [--repeats 10]`
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.machine import compiled_flops, describe, matmul_peak, median_seconds
from sosjax import evolution, sharding
from sosjax.config import load_config
from sosjax.evolve import draw_fitness_batches
from sosjax.fitness import make_evaluate
from sosjax.pipeline import build_model, load_data, task_heads


def population(model, num_tasks, pop_size, p_min, seed=0):
    """Return masks `bool[K·Γ, D]` and task ids `int32[K·Γ]` of a first generation."""
    masks = evolution.initial_population(jax.random.key(seed), num_tasks, pop_size, model.num_dims, p_min, repair=model.repair)
    task_ids = jnp.repeat(jnp.arange(num_tasks, dtype=jnp.int32), pop_size)
    return masks.reshape(num_tasks * pop_size, model.num_dims), task_ids


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="config file, optionally FILE:ARG (default: configs/digits_resnet18.py)")
    parser.add_argument("--matmul", type=int, default=0, help="side of the peak-measuring matmul (default: 2048 on CPU, 8192 otherwise)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per measurement (median)")
    overrides = [a for a in sys.argv[1:] if a.startswith("--config.")]
    args = parser.parse_args([a for a in sys.argv[1:] if not a.startswith("--config.")])

    sharding.initialize_distributed()
    config = load_config(args.config, overrides)
    data = load_data(config)
    model = build_model(config, data)
    settings = config.evolution
    num_tasks, pop_size = len(data.tasks), settings.pop_size
    evaluate_args = dict(size_objective=settings.size_objective, chunk_size=settings.chunk_size,
                         batch_stats=settings.batch_stats if model.has_batch_stats else "running")

    variables = model.init(jax.random.key(0), jnp.asarray(data.tasks[0].x_train[:2]))
    batches = draw_fitness_batches(data, settings.fitness_batch_size, 1, config.seed)
    xs, ys = jnp.asarray(batches.xs[:, 0]), jnp.asarray(batches.ys[:, 0])
    masks, task_ids = population(model, num_tasks, pop_size, settings.p_min)
    candidates = num_tasks * pop_size

    # FLOPs from the unsharded program: the sharded one reports one device's share.
    single = jax.jit(make_evaluate(model, task_heads(data), **evaluate_args))
    flops = compiled_flops(single.lower(variables, masks, task_ids, xs, ys).compile())

    mesh = sharding.population_mesh(config.devices)
    devices = 1 if mesh is None else sharding.mesh_size(mesh)
    evaluate = jax.jit(make_evaluate(model, task_heads(data), mesh=mesh, **evaluate_args))
    if mesh is not None:
        variables, xs, ys = sharding.replicate(mesh, (variables, xs, ys))
    begin = time.perf_counter()
    jax.block_until_ready(evaluate(variables, masks, task_ids, xs, ys))
    compile_seconds = time.perf_counter() - begin
    seconds = median_seconds(lambda: evaluate(variables, masks, task_ids, xs, ys), args.repeats)

    side = args.matmul or (2048 if jax.default_backend() == "cpu" else 8192)
    peak = matmul_peak(side) * devices
    achieved = flops / seconds

    print(f"machine: {describe()}")
    print(f"population: K = {num_tasks} tasks × Γ = {pop_size} = {candidates} candidates, "
          f"{settings.fitness_batch_size} inputs of shape {data.input_shape} each, {config.model.name} D = {model.num_dims}, "
          f"{devices} device(s)")
    print(f"first call (compile and run): {compile_seconds:.2f} s")
    print(f"one population evaluation: {flops / 1e9:.2f} GFLOP (XLA cost analysis), {1e3 * seconds:.2f} ms median of {args.repeats}, "
          f"{candidates / seconds:.1f} evaluations/s; {achieved / 1e9:.1f} GFLOP/s is {achieved / peak:.3f} of the "
          f"measured peak {peak / 1e9:.1f} GFLOP/s ({side}×{side} float32 matmul × {devices} device(s))")


if __name__ == "__main__":
    main()
