"""Binary variation and selection operators, each written for one individual.

Callers vmap them over a population with one PRNG key per individual.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

CROSSOVER_KINDS = ("uniform", "two_point")


def distinct_pair(key: jax.Array, n: int) -> jax.Array:
    """Draw `int32[2]`: two distinct integers from {0, ..., n − 1} (equal if n = 1).

    One uniform draw serves both numbers: every random call site adds a Threefry
    kernel that XLA compiles separately (about 0.2 s each on a CPU), and the
    strategy's `ask` would otherwise hold dozens of them.
    """
    uniform = jax.random.uniform(key, (2,))
    first = jnp.minimum(jnp.floor(uniform[0] * n), n - 1).astype(jnp.int32)
    second = jnp.minimum(jnp.floor(uniform[1] * max(n - 1, 1)), max(n - 2, 0)).astype(jnp.int32)
    second = jnp.where((second >= first) & (n > 1), second + 1, second)
    return jnp.stack([first, second])


def uniform_crossover(key: jax.Array, first: jax.Array, second: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Cross two `bool[D]` parents bit by bit with probability 1/2.

    Returns two complementary children: where one child takes the first parent's
    bit, the other takes the second parent's.
    """
    from_first = jax.random.bernoulli(key, 0.5, first.shape)
    return jnp.where(from_first, first, second), jnp.where(from_first, second, first)


def two_point_crossover(key: jax.Array, first: jax.Array, second: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Swap one random contiguous segment `[start, stop)` of two `bool[D]` parents.

    `start` and `stop` are two cut points drawn from {0, ..., D} without replacement
    and sorted, so the segment holds between 1 and D bits.
    """
    num_dims = first.shape[-1]
    cuts = jnp.sort(distinct_pair(key, num_dims + 1))
    position = jnp.arange(num_dims)
    swapped = (position >= cuts[0]) & (position < cuts[1])
    return jnp.where(swapped, second, first), jnp.where(swapped, first, second)


def crossover(
    key: jax.Array, first: jax.Array, second: jax.Array, kind: str = "uniform"
) -> tuple[jax.Array, jax.Array]:
    """Apply the crossover named `kind` (one of `CROSSOVER_KINDS`)."""
    if kind == "uniform":
        return uniform_crossover(key, first, second)
    if kind == "two_point":
        return two_point_crossover(key, first, second)
    raise ValueError(f"Unknown crossover kind {kind!r}; expected one of {CROSSOVER_KINDS}.")


def bit_flip_mutation(key: jax.Array, genome: jax.Array, rate: jax.Array | float) -> jax.Array:
    """Flip each bit of a `bool[D]` genome independently with probability `rate`."""
    flips = jax.random.bernoulli(key, rate, genome.shape)
    return genome ^ flips


def binary_tournament(key: jax.Array, ranks: jax.Array, crowding: jax.Array) -> jax.Array:
    """Pick the winner of one binary tournament on (lower rank, larger crowding).

    Args:
      key: PRNG key.
      ranks: `int32[Γ]` front index of each member.
      crowding: `f32[Γ]` crowding distance of each member.

    Returns:
      `int32[]` index of the winner. The two contestants are distinct members
      (when Γ ≥ 2); a full tie goes to the first one drawn, itself random.
    """
    first, second = distinct_pair(key, ranks.shape[0])
    second_wins = (ranks[second] < ranks[first]) | (
        (ranks[second] == ranks[first]) & (crowding[second] > crowding[first])
    )
    return jnp.where(second_wins, second, first).astype(jnp.int32)
