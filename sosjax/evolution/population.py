"""Drawing the first population of binary masks."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

#: `repair(key, mask bool[D]) -> bool[D]`, applied to every new mask.
RepairFn = Callable[[jax.Array, jax.Array], jax.Array]


def repair_all(key: jax.Array, masks: jax.Array, repair: RepairFn | None) -> jax.Array:
    """Apply `repair` to every row of `bool[N, D]`, each row with its own key."""
    if repair is None:
        return masks
    keys = jax.random.split(key, masks.shape[0])
    return jax.vmap(repair)(keys, masks)


def initial_population(
    key: jax.Array,
    num_tasks: int,
    pop_size: int,
    num_dims: int,
    p_min: float | jax.Array,
    repair: RepairFn | None = None,
) -> jax.Array:
    """Draw `bool[K, Γ, D]` masks whose sizes spread over [p_min, 1].

    Each candidate draws its own keep-probability q uniformly from [p_min, 1], then
    keeps each bit with probability q, so the first population covers small and
    large models alike. `repair` then runs on every mask.
    """
    key_probability, key_bits, key_repair = jax.random.split(key, 3)
    keep_probability = jax.random.uniform(
        key_probability, (num_tasks, pop_size, 1), minval=p_min, maxval=1.0
    )
    masks = jax.random.uniform(key_bits, (num_tasks, pop_size, num_dims)) < keep_probability

    flat = masks.reshape(num_tasks * pop_size, num_dims)
    flat = repair_all(key_repair, flat, repair)
    return flat.reshape(num_tasks, pop_size, num_dims).astype(bool)
