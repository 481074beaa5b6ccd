"""Statistics of the binary crossover, mutation and tournament operators."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sosjax.evolution import (
    MOMFEA,
    binary_tournament,
    bit_flip_mutation,
    two_point_crossover,
    uniform_crossover,
)
from sosjax.evolution.operators import distinct_pair

_NUM_DRAWS = 4000
_NUM_DIMS = 64


def many_keys(seed, count=_NUM_DRAWS):
    return jax.random.split(jax.random.key(seed), count)


def zeros_and_ones(count=_NUM_DRAWS, num_dims=_NUM_DIMS):
    return jnp.zeros((count, num_dims), bool), jnp.ones((count, num_dims), bool)


def test_uniform_crossover_takes_each_bit_from_one_parent():
    rng = np.random.default_rng(0)
    first = jnp.asarray(rng.random((_NUM_DRAWS, _NUM_DIMS)) < 0.5)
    second = jnp.asarray(rng.random((_NUM_DRAWS, _NUM_DIMS)) < 0.5)
    child_1, child_2 = jax.jit(jax.vmap(uniform_crossover))(many_keys(0), first, second)
    child_1, child_2, first, second = map(np.asarray, (child_1, child_2, first, second))

    assert np.all((child_1 == first) | (child_1 == second))
    # Complementary children: together they hold both parents' bits at every position.
    np.testing.assert_array_equal(child_1 ^ child_2, first ^ second)
    np.testing.assert_array_equal(child_1 & child_2, first & second)


def test_uniform_crossover_mixes_half_the_bits():
    zeros, ones = zeros_and_ones()
    child, _ = jax.jit(jax.vmap(uniform_crossover))(many_keys(1), zeros, ones)
    share = float(np.mean(np.asarray(child)))
    # 256,000 fair coin flips: standard error 0.001.
    assert abs(share - 0.5) < 0.005


def test_two_point_crossover_swaps_one_segment():
    zeros, ones = zeros_and_ones()
    child_1, child_2 = map(np.asarray, jax.jit(jax.vmap(two_point_crossover))(many_keys(2), zeros, ones))
    np.testing.assert_array_equal(child_1, ~child_2)

    lengths = child_1.sum(axis=1)
    assert lengths.min() >= 1
    assert lengths.max() <= _NUM_DIMS
    for row, length in zip(child_1[:200], lengths[:200]):
        start = int(np.argmax(row))
        assert row[start:start + length].all(), "the swapped bits must be contiguous"

    # Two distinct cut points out of D + 1: E|i - j| = (D + 2) / 3, standard error about 0.25.
    assert abs(lengths.mean() - (_NUM_DIMS + 2) / 3) < 1.5


@pytest.mark.parametrize("rate", [1e-3, 0.01, 0.2, 0.9])
def test_bit_flip_mutation_rate(rate):
    # 1e-3 is below 1/256: every flip then comes from the tie path, where a bit's
    # top random byte equals the rate's and its low 24 bits decide.
    rng = np.random.default_rng(3)
    genomes = jnp.asarray(rng.random((_NUM_DRAWS, _NUM_DIMS)) < 0.5)
    mutate = jax.jit(jax.vmap(bit_flip_mutation, in_axes=(0, 0, None)))
    mutated = mutate(many_keys(3), genomes, jnp.float32(rate))
    flipped = np.asarray(mutated != genomes)
    expected = rate * flipped.size
    assert abs(flipped.sum() - expected) < 5 * np.sqrt(expected * (1 - rate))

    # Every position flips at the same rate: 64 binomial counts over 4,000 draws.
    per_position = flipped.sum(axis=0)
    assert np.all(np.abs(per_position - rate * _NUM_DRAWS) < 5 * np.sqrt(_NUM_DRAWS * rate * (1 - rate)) + 3)


def test_mutation_rate_one_flips_all():
    genomes, _ = zeros_and_ones(count=10)
    mutated = jax.vmap(bit_flip_mutation, in_axes=(0, 0, None))(many_keys(6, 10), genomes, 1.0)
    assert np.asarray(mutated).all()


def test_mutation_odd_length_tail():
    # D = 70 is not a multiple of the 32-bit blocks; the tail must still mutate.
    genomes = jnp.zeros((20000, 70), bool)
    mutated = np.asarray(jax.jit(jax.vmap(bit_flip_mutation, in_axes=(0, 0, None)))(
        many_keys(7, 20000), genomes, jnp.float32(0.05)))
    tail_rate = mutated[:, 64:].mean()
    assert abs(tail_rate - 0.05) < 5 * np.sqrt(0.05 * 0.95 / (20000 * 6))


def test_mutation_rate_defaults_to_one_over_num_dims():
    strategy = MOMFEA(num_tasks=2, pop_size=4, num_dims=250)
    np.testing.assert_allclose(float(strategy.default_params.mutation_rate), 1 / 250)


def test_zero_mutation_rate_changes_nothing():
    genomes, _ = zeros_and_ones(count=10)
    mutated = jax.vmap(bit_flip_mutation, in_axes=(0, 0, None))(many_keys(4, 10), genomes, 0.0)
    np.testing.assert_array_equal(np.asarray(mutated), np.asarray(genomes))


def tournament_winners(ranks, crowding, seed=5):
    tournament = jax.jit(jax.vmap(binary_tournament, in_axes=(0, None, None)))
    winners = np.asarray(tournament(many_keys(seed, 20000), jnp.asarray(ranks), jnp.asarray(crowding)))
    return np.bincount(winners, minlength=len(ranks)) / len(winners)


def test_binary_tournament_prefers_lower_rank():
    # Two distinct contestants out of 5: member j (j-th best) wins 2 (4 - j) / 20 of tournaments.
    shares = tournament_winners(np.array([2, 0, 4, 1, 3], np.int32), np.zeros(5, np.float32))
    expected = np.array([0.2, 0.4, 0.0, 0.3, 0.1])
    np.testing.assert_allclose(shares, expected, atol=0.015)


def test_binary_tournament_breaks_rank_ties_by_crowding():
    shares = tournament_winners(np.zeros(5, np.int32), np.array([0.1, np.inf, 0.3, 0.2, 0.0], np.float32))
    expected = np.array([0.1, 0.4, 0.3, 0.2, 0.0])
    np.testing.assert_allclose(shares, expected, atol=0.015)


def test_binary_tournament_full_ties_are_uniform():
    shares = tournament_winners(np.zeros(4, np.int32), np.ones(4, np.float32))
    np.testing.assert_allclose(shares, 0.25, atol=0.015)


@pytest.mark.parametrize("n", [2, 3, 17])
def test_distinct_pair_is_distinct_and_uniform(n):
    pairs = np.asarray(jax.jit(jax.vmap(distinct_pair, in_axes=(0, None)), static_argnums=1)(many_keys(6, 20000), n))
    assert np.all(pairs[:, 0] != pairs[:, 1])
    assert pairs.min() >= 0 and pairs.max() < n
    np.testing.assert_allclose(np.bincount(pairs.ravel(), minlength=n) / pairs.size, 1 / n, atol=0.01)
