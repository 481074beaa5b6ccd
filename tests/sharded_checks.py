"""Run fitness, evolution and fine-tuning on one device and on 8, print a JSON report.

`tests/test_sharding.py` runs this file in a subprocess with
`XLA_FLAGS=--xla_force_host_platform_device_count=8`, because XLA reads that
flag only once, when JAX creates its CPU backend. The report holds, for each
check, the largest absolute difference between the two runs and the exact
equality of the discrete results (masks, best epochs).
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from sosjax import sharding
from sosjax.config import base_config
from sosjax.evolve import FitnessBatches, initial_state, make_generation, make_strategy
from sosjax.fitness import TaskHeads, make_evaluate
from sosjax.models import bilstm, resnet18
from sosjax.train import TrainSettings, train_members

CLASS_MASK = np.array([[True, False] * 5, [False, True] * 5])


def max_difference(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def random_masks(model, count, seed):
    keys = jax.random.split(jax.random.key(seed), 2)
    raw = jax.random.bernoulli(keys[0], 0.7, (count, model.num_dims))
    return jax.vmap(model.repair)(jax.random.split(keys[1], count), raw)


def fitness_checks(mesh) -> dict:
    """ResNet-18 (adaptive BatchNorm) fitness for 16 and 13 candidates, with and without chunks."""
    model = resnet18(10, stem="cifar", width=0.0625, in_channels=1)
    variables = model.init(jax.random.key(0), jnp.zeros((2, 8, 8, 1)))
    heads = TaskHeads("classification", class_mask=CLASS_MASK)
    xs = jax.random.normal(jax.random.key(1), (2, 16, 8, 8, 1))
    ys = 2 * jax.random.randint(jax.random.key(2), (2, 16), 0, 5) + jnp.arange(2)[:, None]
    report = {}
    for count, chunk in ((16, 0), (13, 0), (13, 2)):
        masks = random_masks(model, count, seed=count)
        task_ids = jnp.arange(count, dtype=jnp.int32) % 2
        single = jax.jit(make_evaluate(model, heads, chunk_size=chunk))(variables, masks, task_ids, xs, ys)
        split = jax.jit(make_evaluate(model, heads, chunk_size=chunk, mesh=mesh))(variables, masks, task_ids, xs, ys)
        report[f"fitness_n{count}_chunk{chunk}"] = {
            "max_difference": max_difference(single, split),
            "shape": list(split.shape),
            "finite": bool(np.all(np.isfinite(split))),
            "loss_spread": float(np.ptp(np.asarray(single)[:, 1])),
        }
    return report


def small_bilstm():
    return bilstm(3, hidden=8, layers=1, outputs=1)


def evolution_checks(mesh) -> dict:
    """Five MO-MFEA generations on a BiLSTM for Γ = 8 (16 candidates) and Γ = 6 (12)."""
    model = small_bilstm()
    variables = model.init(jax.random.key(0), jnp.zeros((2, 5, 3)))
    heads = TaskHeads("regression")
    rng = np.random.default_rng(0)
    batches = FitnessBatches(rng.normal(size=(2, 2, 16, 5, 3)).astype(np.float32), rng.normal(size=(2, 2, 16)).astype(np.float32))
    report = {}
    for pop_size in (8, 6):
        config = base_config()
        config.evolution.pop_size = pop_size
        strategy, params = make_strategy(config, 2, model.num_dims, model.repair)
        states = []
        for run_mesh in (None, mesh):
            evaluate = make_evaluate(model, heads, batch_stats="running", mesh=run_mesh)
            state = initial_state(strategy, params, evaluate, variables, batches, jax.random.key(1), model.repair, 2, pop_size, model.num_dims)
            generation = jax.jit(make_generation(strategy, params, evaluate))
            xs, ys = jnp.asarray(batches.xs), jnp.asarray(batches.ys)
            for g in range(5):
                state, _ = generation(state, jax.random.key(2), variables, xs, ys, jnp.int32(g))
            states.append(state)
        single, split = states
        report[f"evolution_pop{pop_size}"] = {
            "masks_equal": bool(np.array_equal(np.asarray(single.masks), np.asarray(split.masks))),
            "objectives_max_difference": max_difference(single.objectives, split.objectives),
            "distinct_masks": int(len(np.unique(np.asarray(single.masks).reshape(-1, model.num_dims), axis=0))),
        }
    return report


def finetune_checks(mesh) -> dict:
    """Two epochs of fine-tuning 8 and 3 BiLSTM members on one task."""
    model = small_bilstm()
    variables = model.init(jax.random.key(0), jnp.zeros((2, 5, 3)))
    heads = TaskHeads("regression")
    rng = np.random.default_rng(1)
    train = (rng.normal(size=(48, 5, 3)).astype(np.float32), rng.normal(size=48).astype(np.float32))
    val = (rng.normal(size=(16, 5, 3)).astype(np.float32), rng.normal(size=16).astype(np.float32))
    settings = TrainSettings(epochs=2, batch_size=16, learning_rate=1e-2)
    report = {}
    for count in (8, 3):
        masks = np.asarray(random_masks(model, count, seed=count))
        single = train_members(model, variables, masks, heads, 0, train, val, settings, jax.random.key(3))
        split = train_members(model, variables, masks, heads, 0, train, val, settings, jax.random.key(3), mesh=mesh)
        moved = max_difference(single.variables["params"], jax.tree.map(lambda v: np.broadcast_to(v, (count,) + v.shape), variables["params"]))
        report[f"finetune_m{count}"] = {
            "variables_max_difference": max_difference(single.variables, split.variables),
            "history_max_difference": max_difference(single.val_history, split.val_history),
            "best_epoch_equal": bool(np.array_equal(single.best_epoch, split.best_epoch)),
            "leading_axis": int(jax.tree.leaves(split.variables)[0].shape[0]),
            "history_shape": list(split.val_history.shape),
            "params_moved": moved,
        }
    return report


def main() -> None:
    mesh = sharding.make_mesh(0)
    report = {"devices": sharding.mesh_size(mesh)}
    for name in sys.argv[1:] or ("fitness", "evolution", "finetune"):
        report.update(globals()[f"{name}_checks"](mesh))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
