"""Random initial values drawn in one call per distribution.

On the CPU, XLA takes seconds to compile each differently shaped
`jax.random.normal` call (measured with jax 0.10 on a 2-core CPU: about 1 s per shape, 23 s for
20 kernels in one jitted function). These helpers draw a single flat vector and
cut it into the requested shapes, so initializing a model compiles one small
program per distribution.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def is_shape(node: Any) -> bool:
    """Whether `node` is a shape tuple, the leaf type of shape pytrees."""
    return isinstance(node, tuple) and all(isinstance(d, int) for d in node)


def _fill(flat: np.ndarray, shapes: Any) -> Any:
    leaves, treedef = jax.tree.flatten(shapes, is_leaf=is_shape)
    arrays = []
    start = 0
    for shape in leaves:
        size = int(np.prod(shape))
        arrays.append(flat[start : start + size].reshape(shape))
        start += size
    return jax.tree.unflatten(treedef, arrays)


def _total_size(shapes: Any) -> int:
    return int(sum(np.prod(s) for s in jax.tree.leaves(shapes, is_leaf=is_shape)))


def standard_normal(key: jax.Array, shapes: Any) -> Any:
    """Return float32 numpy arrays of N(0, 1) draws, shaped like the shape pytree `shapes`."""
    flat = np.asarray(jax.random.normal(key, (max(_total_size(shapes), 1),)), np.float32)
    return _fill(flat, shapes)


def uniform(key: jax.Array, shapes: Any) -> Any:
    """Return float32 numpy arrays of U(-1, 1) draws, shaped like the shape pytree `shapes`."""
    flat = np.asarray(jax.random.uniform(key, (max(_total_size(shapes), 1),), minval=-1.0, maxval=1.0), np.float32)
    return _fill(flat, shapes)
