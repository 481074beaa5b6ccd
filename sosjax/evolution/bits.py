"""Masks packed 32 bits to a word, the layout the variation operators work in.

Bit j of a `bool[D]` mask is bit j mod 32 (counting from the least significant)
of word j // 32 of a `uint32[W]` array, W = ceil(D / 32). Bits past D are zero.

Crossover and mutation on packed words touch 32 times fewer elements than on
`bool` arrays. On a CPU that matters more than the count suggests: XLA fuses
bit-level selects, gathers and transposes of `bool[..., D]` arrays into loops
that it does not vectorize, and a generation spent most of its time there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

WORD_BITS = 32


def num_words(num_dims: int) -> int:
    """Return W, the words that hold `num_dims` bits."""
    return -(-num_dims // WORD_BITS)


def pack_bits(bits: jax.Array) -> jax.Array:
    """Pack `bool[..., D]` into `uint32[..., W]`."""
    num_dims = bits.shape[-1]
    padding = [(0, 0)] * (bits.ndim - 1) + [(0, num_words(num_dims) * WORD_BITS - num_dims)]
    octets = jnp.pad(bits, padding).astype(jnp.uint8).reshape(*bits.shape[:-1], -1, 4, 8)

    # Bytes first, then words: XLA vectorizes these short uint8 sums, not a sum
    # of 32 shifted uint32 lanes.
    octet_bits = jnp.arange(8, dtype=jnp.uint8)
    packed_bytes = jnp.sum(octets << octet_bits, axis=-1, dtype=jnp.uint8)
    return _bytes_to_words(packed_bytes)


def unpack_bits(words: jax.Array, num_dims: int) -> jax.Array:
    """Unpack `uint32[..., W]` into `bool[..., num_dims]`."""
    packed_bytes = _words_to_bytes(words)
    one_bit = jnp.uint8(1) << jnp.arange(8, dtype=jnp.uint8)
    bits = (packed_bytes[..., None] & one_bit) != 0
    return bits.reshape(*words.shape[:-1], -1)[..., :num_dims]


def tail_mask(num_dims: int) -> jax.Array:
    """Return `uint32[W]` with the bits of positions below `num_dims` set."""
    position = jnp.arange(num_words(num_dims) * WORD_BITS).reshape(-1, WORD_BITS)
    lane = jnp.uint32(1) << jnp.arange(WORD_BITS, dtype=jnp.uint32)
    return jnp.sum(jnp.where(position < num_dims, lane, jnp.uint32(0)), axis=-1, dtype=jnp.uint32)


def _bytes_to_words(packed_bytes: jax.Array) -> jax.Array:
    # Byte i of a word contains its bits 8i to 8i + 7 on the little-endian hosts
    # and accelerators XLA runs on. Tests check the layout.
    return lax.bitcast_convert_type(packed_bytes, jnp.uint32)


def _words_to_bytes(words: jax.Array) -> jax.Array:
    return lax.bitcast_convert_type(words, jnp.uint8).reshape(*words.shape[:-1], -1)
