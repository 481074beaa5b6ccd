"""Binary variation and selection operators, each written for one individual.

Callers vmap them over a population with one PRNG key per individual. Crossover
and mutation come in two forms: on `bool[D]` genomes, and as the packed words
(`sosjax.evolution.bits`) that the strategy combines directly. The same key gives
the same result in both.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from sosjax.evolution.bits import WORD_BITS, num_words, pack_bits, tail_mask, unpack_bits

CROSSOVER_KINDS = ("uniform", "two_point")

#: Expected flips per genome up to which mutation draws flip positions, not bits.
_SPARSE_FLIPS = 64.0
#: Geometric gaps drawn at a time by the sparse mutation.
_GAP_CHUNK = 32


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


def crossover_words(key: jax.Array, num_dims: int, kind: str = "uniform") -> jax.Array:
    """Draw which parent each child bit comes from, as packed `uint32[W]`.

    A set bit means the first child takes the first parent's bit and the second
    child the second parent's. A clear bit means the other way round. `kind` is one of
    `CROSSOVER_KINDS`:
    - "uniform": every bit from either parent with probability 1/2;
    - "two_point": two cut points drawn from {0, ..., D} without replacement and
      sorted, `[start, stop)`, and the bits of that segment swapped. The segment
      has between 1 and D bits.
    """
    if kind == "uniform":
        return jax.random.bits(key, (num_words(num_dims),), jnp.uint32) & tail_mask(num_dims)
    if kind == "two_point":
        start, stop = jnp.sort(distinct_pair(key, num_dims + 1))
        word_start = WORD_BITS * jnp.arange(num_words(num_dims))
        swapped = _ones_below(stop - word_start) & ~_ones_below(start - word_start)
        return ~swapped & tail_mask(num_dims)
    raise ValueError(f"Unknown crossover kind {kind!r}; expected one of {CROSSOVER_KINDS}.")


def _ones_below(count: jax.Array) -> jax.Array:
    """Return `uint32[...]` words whose lowest `count` bits are set (count clipped to [0, 32])."""
    count = jnp.clip(count, 0, WORD_BITS).astype(jnp.uint32)
    below = (jnp.uint32(1) << jnp.minimum(count, WORD_BITS - 1)) - jnp.uint32(1)
    return jnp.where(count >= WORD_BITS, jnp.uint32(0xFFFFFFFF), below)


def uniform_crossover(key: jax.Array, first: jax.Array, second: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Cross two `bool[D]` parents bit by bit with probability 1/2.

    Returns two complementary children: where one child takes the first parent's
    bit, the other takes the second parent's.
    """
    return crossover(key, first, second, "uniform")


def two_point_crossover(key: jax.Array, first: jax.Array, second: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Swap one random contiguous segment of two `bool[D]` parents (see `crossover_words`)."""
    return crossover(key, first, second, "two_point")


def crossover(
    key: jax.Array, first: jax.Array, second: jax.Array, kind: str = "uniform"
) -> tuple[jax.Array, jax.Array]:
    """Apply the crossover named `kind` (one of `CROSSOVER_KINDS`) to two `bool[D]` parents."""
    from_first = unpack_bits(crossover_words(key, first.shape[-1], kind), first.shape[-1])
    return jnp.where(from_first, first, second), jnp.where(from_first, second, first)


def bit_flip_mutation(key: jax.Array, genome: jax.Array, rate: jax.Array | float) -> jax.Array:
    """Flip each bit of a `bool[D]` genome independently with probability `rate`."""
    num_dims = genome.shape[-1]
    return genome ^ unpack_bits(mutation_words(key, num_dims, rate), num_dims)


def mutation_words(key: jax.Array, num_dims: int, rate: jax.Array | float) -> jax.Array:
    """Draw which bits a bit-flip mutation flips, as packed `uint32[W]`.

    Each of the D bits is set independently with probability `rate`, a scalar.
    Rates of 1 or more set every bit. Rates of at most `_SPARSE_FLIPS / D` take the
    sparse path, which draws only the positions of the flips. Higher rates take
    the dense path, which draws a random byte for every bit.
    """
    rate = jnp.asarray(rate, jnp.float32)
    sparse = (rate * num_dims <= _SPARSE_FLIPS) & (rate < 1.0)
    # Under a vmap over rates (a sweep), `cond` runs both paths: a zero rate
    # ends the sparse path's loop at once for the rates that take the dense one.
    sparse_rate = jnp.where(sparse, rate, 0.0)
    return lax.cond(
        sparse,
        lambda key: _sparse_flips(key, sparse_rate, num_dims),
        lambda key: _dense_flips(key, rate, num_dims),
        key,
    )


def _sparse_flips(key: jax.Array, rate: jax.Array, num_dims: int) -> jax.Array:
    """Set bits at the successes of D Bernoulli trials, found by geometric skips.

    The gap before the next success is Geometric(rate), drawn by inversion as
    floor(log(1 − v) / log(1 − rate)) from a uniform 32-bit v. Each bit is thus
    set with probability `rate` up to float32 rounding (a relative error of about
    1e-7 per gap, an estimate). Gaps come `_GAP_CHUNK` at a time until they pass
    the last bit. Up to `_SPARSE_FLIPS` expected flips, one or a few chunks
    suffice, so the mutation costs a few dozen random words instead of D/4.
    """
    log_keep = jnp.log1p(-rate)
    word_count = num_words(num_dims)

    def more_gaps(carry):
        _, start, _ = carry
        return start < num_dims

    def set_next(carry):
        key, start, flips = carry
        key, key_gaps = jax.random.split(key)
        uniform = jax.random.bits(key_gaps, (_GAP_CHUNK,), jnp.uint32).astype(jnp.float32) * jnp.float32(2.0**-32)
        skips = jnp.log1p(-uniform) / log_keep
        # NaN (rate 0 and v = 0) and skips past the genome both end the genome.
        gaps = jnp.where(skips < num_dims, jnp.floor(skips), num_dims).astype(jnp.int32)
        positions = start + jnp.cumsum(gaps + 1) - 1

        # Positions are distinct, so adding their one-bit words sets each bit once.
        word = jnp.where(positions < num_dims, positions // WORD_BITS, word_count)
        lane = jnp.uint32(1) << (positions % WORD_BITS).astype(jnp.uint32)
        return key, positions[-1] + 1, flips.at[word].add(lane, mode="drop")

    initial = (key, jnp.int32(0), jnp.zeros(word_count, jnp.uint32))
    return lax.while_loop(more_gaps, set_next, initial)[2]


def _dense_flips(key: jax.Array, rate: jax.Array, num_dims: int) -> jax.Array:
    """Set each bit when a uniform 32-bit number u is below T = rate · 2^32.

    The rate is exact to within 2^-32. u is drawn lazily: its top byte decides,
    unless it equals T's top byte (probability 1/256 per bit). Only those ties get
    the low 24 bits, from a short array of extra words handed out in bit order.
    That takes about D/4 + D/64 random words instead of D.

    NOTE: if more bits tie than `_tie_budget(D)` words (more than 8 standard
    deviations above the mean), the extra ties share the last word.
    """
    num_blocks = num_words(num_dims)
    # 2^32 − 256 is the largest float32 below 2^32; casting 2^32 would overflow.
    threshold = jnp.clip(rate * jnp.float32(2.0**32), 0.0, jnp.float32(2.0**32 - 256)).astype(jnp.uint32)
    threshold_top = threshold >> 24
    threshold_low = threshold & jnp.uint32(0xFFFFFF)
    key_top, key_low = jax.random.split(key)

    # Top bytes in blocks of 32 bits, 4 bytes per word.
    words = jax.random.bits(key_top, (num_blocks, WORD_BITS // 4), jnp.uint32)
    byte_shifts = jnp.arange(0, WORD_BITS, 8, dtype=jnp.uint32)
    top = ((words[:, :, None] >> byte_shifts) & jnp.uint32(0xFF)).reshape(num_blocks, WORD_BITS)
    ties = top == threshold_top

    # Number each tie in bit order by counting set bits of each block's tie word:
    # a long cumsum is several times slower than the rest of the mutation on a CPU.
    lane_bits = jnp.uint32(1) << jnp.arange(WORD_BITS, dtype=jnp.uint32)
    tie_words = jnp.sum(jnp.where(ties, lane_bits, jnp.uint32(0)), axis=1, dtype=jnp.uint32)
    ties_per_block = lax.population_count(tie_words).astype(jnp.int32)
    ties_before_block = jnp.cumsum(ties_per_block) - ties_per_block
    ties_before_lane = lax.population_count(tie_words[:, None] & (lane_bits - jnp.uint32(1))).astype(jnp.int32)
    budget = _tie_budget(num_dims)
    tie_index = jnp.minimum(ties_before_block[:, None] + ties_before_lane, budget - 1)
    low = jax.random.bits(key_low, (budget,), jnp.uint32) >> 8

    flips = (top < threshold_top) | (ties & (low[tie_index] < threshold_low)) | (rate >= 1.0)
    return pack_bits(flips.reshape(-1)[:num_dims])


def _tie_budget(num_dims: int) -> int:
    """Random words kept for the bits whose first byte ties the rate's first byte.

    Ties follow Binomial(D, 1/256): the budget is more than 8 standard deviations
    above the mean for every D (16 + D/64 against D/256 ± sqrt(D)/16).
    """
    return min(num_dims, 16 + num_dims // 64)


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
