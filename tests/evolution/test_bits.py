"""The packed-word layout of masks that the variation operators work in."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sosjax.evolution.bits import num_words, pack_bits, tail_mask, unpack_bits


def reference_pack(bits):
    """Pack with numpy: bit j is bit j mod 32 of word j // 32."""
    words = np.zeros(bits.shape[:-1] + (-(-bits.shape[-1] // 32),), np.uint64)
    for position in range(bits.shape[-1]):
        words[..., position // 32] |= bits[..., position].astype(np.uint64) << np.uint64(position % 32)
    return words.astype(np.uint32)


@pytest.mark.parametrize("num_dims", [1, 8, 31, 32, 33, 70, 1000])
def test_pack_bits_layout_and_round_trip(num_dims):
    bits = np.random.default_rng(num_dims).random((3, 5, num_dims)) < 0.5
    packed = np.asarray(jax.jit(pack_bits)(jnp.asarray(bits)))
    assert packed.dtype == np.uint32
    assert packed.shape == (3, 5, num_words(num_dims))
    np.testing.assert_array_equal(packed, reference_pack(bits))

    unpacked = np.asarray(jax.jit(unpack_bits, static_argnums=1)(jnp.asarray(packed), num_dims))
    np.testing.assert_array_equal(unpacked, bits)


def test_single_bit_lands_in_its_word():
    bits = np.zeros((70, 70), bool)
    bits[np.arange(70), np.arange(70)] = True
    packed = np.asarray(pack_bits(jnp.asarray(bits)))
    for position in range(70):
        expected = np.zeros(3, np.uint32)
        expected[position // 32] = np.uint32(1) << np.uint32(position % 32)
        np.testing.assert_array_equal(packed[position], expected)


@pytest.mark.parametrize("num_dims", [1, 32, 33, 70])
def test_tail_mask_covers_exactly_the_mask(num_dims):
    mask = np.asarray(tail_mask(num_dims))
    np.testing.assert_array_equal(mask, reference_pack(np.ones((num_dims,), bool)))
