"""Statistics of the binary crossover, mutation and tournament operators."""

from functools import partial

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
from sosjax.evolution import operators
from sosjax.evolution.bits import tail_mask, unpack_bits
from sosjax.evolution.operators import crossover_words, distinct_pair

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


@pytest.mark.parametrize("num_dims", [1, 31, 32, 64, 70])
def test_two_point_words_swap_exactly_the_drawn_segment(num_dims):
    keys = many_keys(11, 3000)
    words = jax.jit(jax.vmap(crossover_words, in_axes=(0, None, None)), static_argnums=(1, 2))(keys, num_dims, "two_point")
    from_first = np.asarray(unpack_bits(words, num_dims))
    cuts = np.sort(np.asarray(jax.vmap(distinct_pair, in_axes=(0, None))(keys, num_dims + 1)), axis=1)
    position = np.arange(num_dims)
    swapped = (position >= cuts[:, :1]) & (position < cuts[:, 1:])
    np.testing.assert_array_equal(from_first, ~swapped)
    # Padding bits past D stay clear.
    np.testing.assert_array_equal(np.asarray(words) & ~np.asarray(tail_mask(num_dims)), 0)


def flip_statistics(flips, rate, draws, num_dims):
    """Check flips `bool[draws, D]` against independent Bernoulli(rate) bits."""
    expected = rate * draws * num_dims
    assert abs(flips.sum() - expected) < 5 * np.sqrt(expected * (1 - rate))
    per_position = flips.sum(axis=0)
    assert np.all(np.abs(per_position - rate * draws) < 5 * np.sqrt(draws * rate * (1 - rate)) + 3)
    # Independence: flips per genome have the binomial variance, and two
    # neighbouring bits flip together with probability rate².
    counts = flips.sum(axis=1)
    variance = num_dims * rate * (1 - rate)
    assert abs(counts.var() / variance - 1) < 6 * np.sqrt(2 / draws) + 0.02
    together = (flips[:, 1:] & flips[:, :-1]).sum()
    expected_together = rate**2 * draws * (num_dims - 1)
    assert abs(together - expected_together) < 5 * np.sqrt(expected_together) + 3


@pytest.mark.parametrize("path", ["sparse", "dense"])
@pytest.mark.parametrize("rate", [0.002, 0.05, 0.3, 0.9])
def test_mutation_paths_flip_at_rate(path, rate):
    num_dims, draws = 70, 6000
    flip_words = {"sparse": operators._sparse_flips, "dense": operators._dense_flips}[path]
    draw = jax.jit(jax.vmap(partial(flip_words, num_dims=num_dims), in_axes=(0, None)))
    words = draw(many_keys(12, draws), jnp.float32(rate))
    np.testing.assert_array_equal(np.asarray(words) & ~np.asarray(tail_mask(num_dims)), 0)
    flip_statistics(np.asarray(unpack_bits(words, num_dims)), rate, draws, num_dims)


def test_sparse_mutation_over_many_gap_chunks(monkeypatch):
    # One gap per chunk: every flip after the first needs another loop step.
    monkeypatch.setattr(operators, "_GAP_CHUNK", 1)
    num_dims, draws, rate = 40, 6000, 0.1
    draw = jax.jit(jax.vmap(partial(operators._sparse_flips, num_dims=num_dims), in_axes=(0, None)))
    flips = np.asarray(unpack_bits(draw(many_keys(13, draws), jnp.float32(rate)), num_dims))
    flip_statistics(flips, rate, draws, num_dims)


def test_mutation_path_by_flip_budget(monkeypatch):
    # Make the dense path recognizable: it would flip every bit.
    monkeypatch.setattr(operators, "_dense_flips", lambda key, rate, num_dims: tail_mask(num_dims))
    num_dims = 1000
    genome = jnp.zeros(num_dims, bool)
    budget_rate = operators._SPARSE_FLIPS / num_dims
    for rate, dense in ((1 / num_dims, False), (budget_rate * 0.99, False), (budget_rate * 1.5, True), (1.0, True)):
        flipped = np.asarray(bit_flip_mutation(jax.random.key(0), genome, jnp.float32(rate)))
        assert flipped.all() == dense, rate


def test_mutation_vmapped_over_rates_of_both_paths():
    # A sweep vmaps the rate, so both paths run for every row and `cond` picks.
    num_dims, draws = 500, 2000
    rates = jnp.tile(jnp.asarray([2 / num_dims, 0.6], jnp.float32), draws // 2)
    mutate = jax.jit(jax.vmap(bit_flip_mutation, in_axes=(0, None, 0)))
    flipped = np.asarray(mutate(many_keys(14, draws), jnp.zeros(num_dims, bool), rates))
    for offset, rate in enumerate((2 / num_dims, 0.6)):
        share = flipped[offset::2].mean()
        assert abs(share - rate) < 5 * np.sqrt(rate * (1 - rate) / (num_dims * draws / 2))
