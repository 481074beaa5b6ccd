"""Convergence on a bi-objective binary problem with a known Pareto front.

Task k minimizes (ones fraction, Hamming distance to a hidden target t_k, / D).
Every x ⊆ t_k is Pareto-optimal, so the front is {(i/D, (|t_k| − i)/D)}. The two
targets differ in 4 of 48 bits, so material from one task helps the other.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sosjax.evolution import MOMFEA, hypervolume

NUM_TASKS, POP_SIZE, NUM_DIMS = 2, 30, 48
NUM_GENERATIONS, NUM_SEEDS = 60, 16


def hidden_targets():
    rng = np.random.default_rng(1)
    first = rng.random(NUM_DIMS) < 0.5
    second = first.copy()
    flipped = rng.permutation(NUM_DIMS)[:4]
    second[flipped] = ~second[flipped]
    return np.stack([first, second])


def optimal_hypervolume(target):
    ones = int(target.sum())
    front = np.array([[i / NUM_DIMS, (ones - i) / NUM_DIMS] for i in range(ones + 1)], np.float32)
    return float(hypervolume(front, np.ones(2, np.float32)))


@pytest.mark.slow
def test_hypervolume_converges_and_transfer_speeds_it_up():
    targets_np = hidden_targets()
    targets = jnp.asarray(targets_np)
    strategy = MOMFEA(NUM_TASKS, POP_SIZE, NUM_DIMS)

    def objective(masks, task_ids):
        size = jnp.mean(masks, axis=-1)
        loss = jnp.mean(masks != targets[task_ids], axis=-1)
        return jnp.stack([size, loss], axis=-1).astype(jnp.float32)

    def run(key, params):
        key_population, key_init, key_run = jax.random.split(key, 3)
        masks = strategy.init_population(key_population, params)
        task_ids = jnp.repeat(jnp.arange(NUM_TASKS), POP_SIZE)
        objectives = objective(masks.reshape(-1, NUM_DIMS), task_ids).reshape(NUM_TASKS, POP_SIZE, 2)
        # The largest possible loss is 1, a reference shared by every run.
        state = strategy.init(key_init, masks, objectives, params, jnp.ones(NUM_TASKS))

        def generation(state, key):
            key_ask, key_tell = jax.random.split(key)
            offspring, task_ids, state = strategy.ask(key_ask, state, params)
            return strategy.tell(key_tell, offspring, task_ids, objective(offspring, task_ids), state, params)

        _, metrics = jax.lax.scan(generation, state, jax.random.split(key_run, NUM_GENERATIONS))
        return metrics["hypervolume"]

    params = strategy.default_params.replace(rmp=jnp.array([0.0, 0.3], jnp.float32))
    axes = jax.tree.map(lambda _: None, strategy.default_params).replace(rmp=0)
    over_seeds = jax.vmap(run, in_axes=(0, None))
    runs = jax.jit(jax.vmap(over_seeds, in_axes=(None, axes)))
    hypervolumes = np.asarray(runs(jax.random.split(jax.random.key(0), NUM_SEEDS), params))

    optimum = np.array([optimal_hypervolume(target) for target in targets_np])
    share = (hypervolumes / optimum).mean(axis=-1)  # [rmp, seed, generation]
    assert np.all(share <= 1.0 + 1e-6)

    single_task, multitask = share[0], share[1]
    assert single_task[:, -1].mean() > 0.92
    assert multitask[:, -1].mean() > 0.94

    # Generations until a seed first reaches 90% of the optimal hypervolume.
    def generations_to(reached):
        return np.where(reached.any(axis=1), reached.argmax(axis=1), NUM_GENERATIONS).mean()

    assert generations_to(multitask >= 0.9) < generations_to(single_task >= 0.9)
    assert multitask.mean(axis=0)[-1] > single_task.mean(axis=0)[-1]
