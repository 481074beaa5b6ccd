"""Shared helpers for the masked-model tests."""

import jax
import jax.numpy as jnp
import numpy as np


def count_leaves(tree) -> int:
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(tree)))


def random_masks(model, densities, seed=0):
    """Return `(label, bool[D])` pairs: all-on, one repaired random mask per density, and the minimal mask."""
    rng = np.random.default_rng(seed)
    masks = [("all-on", np.ones(model.num_dims, bool))]
    for i, density in enumerate(densities):
        raw = jnp.asarray(rng.random(model.num_dims) < density)
        masks.append((f"density-{density}", np.asarray(model.repair(jax.random.key(seed + i), raw))))
    minimal = model.repair(jax.random.key(seed + 99), jnp.zeros(model.num_dims, bool))
    masks.append(("minimal", np.asarray(minimal)))
    return masks
