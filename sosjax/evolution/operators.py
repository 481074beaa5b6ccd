"""Binary variation and selection operators, each written for one individual.

Callers vmap them over a population with one PRNG key per individual.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

CROSSOVER_KINDS = ("uniform", "two_point")

_WORD_BITS = 32


def random_bits(key: jax.Array, num_bits: int) -> jax.Array:
    """Draw `bool[num_bits]` fair coin flips, 32 from each random word.

    Crossover and mutation draw about D random numbers per offspring, which
    dominates a generation's cost on a CPU (Threefry measured about 10 ns per 32-bit
    word there), so every word is used whole.
    """
    words = jax.random.bits(key, (-(-num_bits // _WORD_BITS),), jnp.uint32)
    shifts = jnp.arange(_WORD_BITS, dtype=jnp.uint32)
    bits = (words[:, None] >> shifts) & jnp.uint32(1)
    return bits.reshape(-1)[:num_bits].astype(bool)


def _tie_budget(num_dims: int) -> int:
    """Random words kept for the bits whose first byte ties the rate's first byte.

    Ties follow Binomial(D, 1/256): the budget is more than 8 standard deviations
    above the mean for every D (16 + D/64 against D/256 ± sqrt(D)/16).
    """
    return min(num_dims, 16 + num_dims // 64)


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
    from_first = random_bits(key, first.shape[-1])
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
    """Flip each bit of a `bool[D]` genome independently with probability `rate`.

    A bit flips when a uniform 32-bit number u is below T = rate · 2^32, so the rate
    is exact to within 2^-32 (rates of 1 or more flip every bit). u is drawn lazily.
    Its top byte decides, unless it equals T's top byte (probability 1/256 per
    bit). Only those ties get the low 24 bits, from a short array of extra words
    handed out in bit order. That takes about D/4 + D/64 random words instead of D.

    NOTE: if more bits tie than `_tie_budget(D)` words (more than 8 standard
    deviations above the mean), the extra ties share the last word.
    """
    num_dims = genome.shape[-1]
    num_blocks = -(-num_dims // _WORD_BITS)
    rate = jnp.asarray(rate, jnp.float32)
    # 2^32 − 256 is the largest float32 below 2^32; casting 2^32 would overflow.
    threshold = jnp.clip(rate * jnp.float32(2.0**32), 0.0, jnp.float32(2.0**32 - 256)).astype(jnp.uint32)
    threshold_top = threshold >> 24
    threshold_low = threshold & jnp.uint32(0xFFFFFF)
    key_top, key_low = jax.random.split(key)

    # Top bytes in blocks of 32 bits, 4 bytes per word.
    words = jax.random.bits(key_top, (num_blocks, _WORD_BITS // 4), jnp.uint32)
    byte_shifts = jnp.arange(0, _WORD_BITS, 8, dtype=jnp.uint32)
    top = ((words[:, :, None] >> byte_shifts) & jnp.uint32(0xFF)).reshape(num_blocks, _WORD_BITS)
    ties = top == threshold_top

    # Number each tie in bit order by counting set bits of each block's tie word:
    # a long cumsum is several times slower than the rest of the mutation on a CPU.
    lane_bits = jnp.uint32(1) << jnp.arange(_WORD_BITS, dtype=jnp.uint32)
    tie_words = jnp.sum(jnp.where(ties, lane_bits, jnp.uint32(0)), axis=1, dtype=jnp.uint32)
    ties_per_block = lax.population_count(tie_words).astype(jnp.int32)
    ties_before_block = jnp.cumsum(ties_per_block) - ties_per_block
    ties_before_lane = lax.population_count(tie_words[:, None] & (lane_bits - jnp.uint32(1))).astype(jnp.int32)
    budget = _tie_budget(num_dims)
    tie_index = jnp.minimum(ties_before_block[:, None] + ties_before_lane, budget - 1)
    low = jax.random.bits(key_low, (budget,), jnp.uint32) >> 8

    flips = (top < threshold_top) | (ties & (low[tie_index] < threshold_low)) | (rate >= 1.0)
    return genome ^ flips.reshape(-1)[:num_dims]


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
