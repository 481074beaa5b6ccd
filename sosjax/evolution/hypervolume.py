"""Exact two-objective hypervolume (both objectives minimized)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def hypervolume(objectives: jax.Array, reference: jax.Array) -> jax.Array:
    """Compute the area dominated by a point set and bounded by a reference point.

    Sweep the points in increasing first objective: each one adds a strip of width
    `reference[0] - f1` between the lowest second objective seen before it and its
    own. O(N log N).

    Args:
      objectives: `f32[N, 2]`, minimized. Rows that are not strictly better than
        the reference in both objectives, or that hold a NaN or infinity,
        contribute nothing.
      reference: `f32[2]`.

    Returns:
      `f32[]`, the hypervolume.
    """
    objectives = jnp.asarray(objectives)
    reference = jnp.asarray(reference, objectives.dtype)
    finite = jnp.all(jnp.isfinite(objectives), axis=-1)
    inside = finite & jnp.all(objectives < reference, axis=-1)
    points = jnp.where(inside[:, None], objectives, reference)

    order = jnp.lexsort((points[:, 1], points[:, 0]))
    first = points[order, 0]
    second = points[order, 1]

    lowest_so_far = lax.cummin(second)
    lowest_before = jnp.concatenate([reference[1:], lowest_so_far[:-1]])
    strip_height = jnp.maximum(lowest_before - second, 0.0)
    return jnp.sum((reference[0] - first) * strip_height)
