"""The evolution stage: MO-MFEA over the JAT's masks, one jitted call per generation."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from sosjax import evolution
from sosjax.data.tasks import MultiTaskData, num_examples, take


@dataclasses.dataclass(frozen=True)
class FitnessBatches:
    """Per-task fitness batches, drawn once from the training splits.

    Attributes:
      xs: `[K, NB, B, ...]` inputs (or a pytree of them); generation g uses
        batch `g mod NB`.
      ys: `[K, NB, B, ...]` targets.
    """

    xs: Any
    ys: np.ndarray


def draw_fitness_batches(data: MultiTaskData, batch_size: int, num_batches: int, seed: int) -> FitnessBatches:
    """Draw `num_batches` batches of `batch_size` training examples per task.

    Each batch samples without replacement when the task has enough examples.
    """
    rng = np.random.default_rng([seed, 1])
    xs, ys = [], []
    for task in data.tasks:
        n = num_examples(task.x_train)
        picks = np.stack([rng.choice(n, batch_size, replace=n < batch_size) for _ in range(num_batches)])
        xs.append(take(task.x_train, picks))
        ys.append(task.y_train[picks])
    return FitnessBatches(jax.tree.map(lambda *leaves: np.stack(leaves), *xs), np.stack(ys))


def make_strategy(config, num_tasks: int, num_dims: int, repair: Callable | None):
    """Build the MO-MFEA strategy and its params from `config.evolution`."""
    settings = config.evolution
    strategy = evolution.MOMFEA(num_tasks, settings.pop_size, num_dims, repair=repair)
    rmp = jnp.asarray(settings.rmp, jnp.float32)
    if rmp.ndim == 2 and rmp.shape != (num_tasks, num_tasks):
        raise ValueError(f"evolution.rmp is a {rmp.shape} matrix but the run has {num_tasks} tasks; give a {num_tasks}×{num_tasks} matrix or a scalar.")
    overrides = dict(
        rmp=rmp,
        learn_rmp=settings.learn_rmp,
        crossover=settings.crossover,
        p_min=settings.p_min,
    )
    if settings.mutation_rate is not None:
        overrides["mutation_rate"] = settings.mutation_rate
    params = strategy.default_params.replace(**overrides)
    return strategy, params


def make_generation(strategy, params, evaluate: Callable) -> Callable:
    """Build `generation(state, key, variables, xs, ys, g) -> (state, metrics)`, a pure function.

    `xs, ys` are the fitness batches `[K, NB, B, ...]`. The generation's
    randomness is `fold_in(key, g)`, so generation g computes the same thing
    whether the run got there in one go or after a resume.
    """

    def generation(state, key, variables, xs, ys, g):
        ask_key, tell_key = jax.random.split(jax.random.fold_in(key, g))
        offspring, task_ids, state = strategy.ask(ask_key, state, params)
        b = g % ys.shape[1]
        objectives = evaluate(variables, offspring, task_ids, jax.tree.map(lambda x: x[:, b], xs), ys[:, b])
        state, metrics = strategy.tell(tell_key, offspring, task_ids, objectives, state, params)
        return state, metrics

    return generation


def initial_state(strategy, params, evaluate, variables, batches: FitnessBatches, key: jax.Array, repair, num_tasks, pop_size, num_dims):
    """Draw the initial population, evaluate it on batch 0 and initialise the strategy."""
    init_key, pop_key = jax.random.split(key)
    masks = evolution.initial_population(pop_key, num_tasks, pop_size, num_dims, params.p_min, repair=repair)
    task_ids = jnp.repeat(jnp.arange(num_tasks, dtype=jnp.int32), pop_size)
    flat = masks.reshape(num_tasks * pop_size, num_dims)
    objectives = jax.jit(evaluate)(variables, flat, task_ids, jax.tree.map(lambda x: jnp.asarray(x[:, 0]), batches.xs), jnp.asarray(batches.ys[:, 0]))
    return strategy.init(init_key, masks, objectives.reshape(num_tasks, pop_size, 2), params)


def to_host(tree: Any) -> Any:
    """Copy a pytree of arrays to numpy, for JSON logs."""
    return jax.tree.map(np.asarray, tree)
