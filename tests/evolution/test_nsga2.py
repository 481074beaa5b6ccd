"""Non-dominated ranks, crowding distances and NSGA-II survival against pymoo."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from sosjax.evolution import crowding_distance, non_dominated_ranks, nsga2_select, rank_and_crowd
from sosjax.evolution.nsga2 import _MAX_COUNTED_PILES, rank_and_crowd_groups

_pymoo_crowding = get_crowding_function("cd")
_ranks = jax.jit(non_dominated_ranks)
_crowding = jax.jit(crowding_distance)
_rank_and_crowd = jax.jit(rank_and_crowd)
_select = jax.jit(nsga2_select, static_argnums=1)


def pymoo_fronts(objectives):
    """Return pymoo's fronts (lists of row indices) and ranks for finite rows."""
    return NonDominatedSorting().do(np.asarray(objectives, np.float64), return_rank=True)


def pymoo_crowding(objectives, fronts):
    distance = np.zeros(len(objectives))
    for front in fronts:
        distance[front] = _pymoo_crowding.do(np.asarray(objectives[front], np.float64))
    return distance


def degenerate_cases():
    rng = np.random.default_rng(7)
    duplicates = rng.random((6, 2)).astype(np.float32)
    return {
        "single point": np.array([[0.3, 0.7]], np.float32),
        "two points": np.array([[0.3, 0.7], [0.5, 0.1]], np.float32),
        "all equal": np.full((9, 2), 0.5, np.float32),
        "duplicates": np.concatenate([duplicates, duplicates, duplicates[:2]]),
        "ties on a grid": rng.integers(0, 4, (40, 2)).astype(np.float32),
        "one objective constant": np.stack([rng.random(12), np.full(12, 2.0)], 1).astype(np.float32),
        "chain": np.stack([np.arange(10), np.arange(10)], 1).astype(np.float32),
        "three objectives with ties": rng.integers(0, 3, (30, 3)).astype(np.float32),
    }


@pytest.mark.parametrize("num_objectives", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_ranks_match_pymoo_random(num_objectives, seed):
    rng = np.random.default_rng(seed)
    objectives = rng.random((200, num_objectives)).astype(np.float32)
    _, expected = pymoo_fronts(objectives)
    np.testing.assert_array_equal(np.asarray(_ranks(objectives)), expected)


@pytest.mark.parametrize("name", list(degenerate_cases()))
def test_ranks_and_crowding_match_pymoo_degenerate(name):
    objectives = degenerate_cases()[name]
    fronts, expected_ranks = pymoo_fronts(objectives)
    ranks, distance = map(np.asarray, _rank_and_crowd(objectives))
    np.testing.assert_array_equal(ranks, expected_ranks)

    np.testing.assert_allclose(distance, pymoo_crowding(objectives, fronts), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("num_objectives", [2, 3])
def test_crowding_matches_pymoo_random(num_objectives):
    rng = np.random.default_rng(11)
    objectives = rng.random((200, num_objectives)).astype(np.float32)
    fronts, ranks = pymoo_fronts(objectives)
    distance = np.asarray(_crowding(objectives, ranks))
    np.testing.assert_allclose(distance, pymoo_crowding(objectives, fronts), rtol=1e-5, atol=1e-6)


# (rows, rows rounded to create ties, rounding levels). Up to _MAX_COUNTED_PILES
# rows a point's front is found by counting pile tops, above it by binary search.
# At 33,000 rows a row index no longer fits beside a code, so sorts fall back to
# stable argsorts.
_LARGE_RANKING_CASES = {
    "counted piles": (_MAX_COUNTED_PILES, _MAX_COUNTED_PILES, 12),
    "searched piles": (_MAX_COUNTED_PILES + 1, _MAX_COUNTED_PILES + 1, 12),
    "5,000 rows": (5000, 500, 8),
    "beyond packed limit": (33000, 3000, 16),
}


@pytest.mark.parametrize("case", list(_LARGE_RANKING_CASES))
def test_two_objective_ranks_match_pymoo(case):
    size, tied_rows, levels = _LARGE_RANKING_CASES[case]
    rng = np.random.default_rng(size)
    objectives = rng.random((size, 2)).astype(np.float32)
    objectives[:tied_rows] = np.round(objectives[:tied_rows] * levels) / levels
    _, expected = pymoo_fronts(objectives)
    np.testing.assert_array_equal(np.asarray(_ranks(objectives)), expected)


def test_two_objective_sort_matches_dominance_matrix():
    """The O(N log N) path and the general path agree: a constant third
    objective changes no dominance relation but forces the general path."""
    rng = np.random.default_rng(5)
    objectives = rng.integers(0, 6, (150, 2)).astype(np.float32)
    padded = np.concatenate([objectives, np.zeros((150, 1), np.float32)], axis=1)
    np.testing.assert_array_equal(np.asarray(_ranks(objectives)), np.asarray(_ranks(padded)))


@pytest.mark.parametrize("num_objectives", [2, 3])
def test_nonfinite_rows_rank_after_finite(num_objectives):
    rng = np.random.default_rng(2)
    objectives = rng.random((200, num_objectives)).astype(np.float32)
    broken = np.array([3, 17, 40, 41])
    objectives[3, 0] = np.nan
    objectives[17, 1] = np.inf
    objectives[40, :] = np.nan
    objectives[41, 0] = -np.inf
    finite = np.setdiff1d(np.arange(200), broken)

    ranks, distance = map(np.asarray, _rank_and_crowd(objectives))
    fronts, expected = pymoo_fronts(objectives[finite])
    np.testing.assert_array_equal(ranks[finite], expected)
    np.testing.assert_array_equal(ranks[broken], expected.max() + 1)

    np.testing.assert_array_equal(distance[broken], 0.0)
    expected_distance = pymoo_crowding(objectives[finite], fronts)
    np.testing.assert_allclose(distance[finite], expected_distance, rtol=1e-5, atol=1e-6)


def test_all_rows_nonfinite_rank_zero():
    objectives = np.full((5, 2), np.nan, np.float32)
    np.testing.assert_array_equal(np.asarray(_ranks(objectives)), 0)


def pymoo_survivors(objectives, k):
    """Run pymoo's rank-and-crowding survival; return (whole fronts, split front, count)."""
    fronts = NonDominatedSorting().do(np.asarray(objectives, np.float64), n_stop_if_ranked=k)
    whole, taken = [], 0
    for front in fronts:
        if taken + len(front) <= k:
            whole.extend(front)
            taken += len(front)
        else:
            return set(whole), front, k - taken
    return set(whole), np.array([], int), 0


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("num_objectives", [2, 3])
def test_nsga2_select_matches_pymoo_survival(seed, num_objectives):
    rng = np.random.default_rng(seed)
    objectives = rng.random((120, num_objectives)).astype(np.float32)
    objectives[:20] = np.round(objectives[:20] * 4) / 4
    k = 50
    selected = np.asarray(_select(objectives, k))

    whole, split_front, from_split = pymoo_survivors(objectives, k)
    assert len(np.unique(selected)) == k
    assert whole <= set(selected.tolist())
    chosen_from_split = np.array(sorted(set(selected.tolist()) - whole))
    assert len(chosen_from_split) == from_split
    assert set(chosen_from_split.tolist()) <= set(split_front.tolist())

    # Up to ties, the split front contributes its largest crowding distances.
    split_distance = _pymoo_crowding.do(np.asarray(objectives[split_front], np.float64))
    by_row = dict(zip(split_front.tolist(), split_distance))
    chosen = np.array([by_row[row] for row in chosen_from_split])
    rejected = np.array([by_row[row] for row in split_front if row not in set(chosen_from_split.tolist())])
    if len(chosen) and len(rejected):
        assert chosen.min() >= rejected.max() - 1e-6


def test_nsga2_select_skips_invalid_and_nonfinite_rows():
    rng = np.random.default_rng(4)
    objectives = rng.random((30, 2)).astype(np.float32)
    objectives[:5] = -1.0  # would dominate everything, but invalid
    objectives[5:8] = np.nan
    valid = np.arange(30) >= 5
    selected = np.asarray(_select(objectives, 25, jnp.asarray(valid)))
    np.testing.assert_array_equal(np.sort(selected), np.arange(5, 30))
    np.testing.assert_array_equal(np.sort(selected[-3:]), [5, 6, 7])

    ranks, crowding = _rank_and_crowd(objectives, jnp.asarray(valid))
    np.testing.assert_array_equal(np.asarray(ranks)[:5], 30)
    np.testing.assert_array_equal(np.asarray(crowding)[:8], 0.0)


def test_nsga2_select_under_vmap():
    rng = np.random.default_rng(9)
    batch = rng.random((4, 120, 2)).astype(np.float32)
    batched = np.asarray(jax.jit(jax.vmap(lambda f: nsga2_select(f, 50)))(batch))
    for objectives, selected in zip(batch, batched):
        np.testing.assert_array_equal(selected, np.asarray(_select(objectives, 50)))


@pytest.mark.parametrize("size", [1, 2, 7, 1024, 1025, 32767, 32768])
def test_packed_lexsort_matches_numpy(size):
    # Sizes straddle the packing limits: 2 keys per sort up to 1,024 rows, 1 key
    # per sort below 32,768, stable argsorts from there on.
    from sosjax.evolution.nsga2 import _lexsort

    rng = np.random.default_rng(size)
    special = np.array([np.inf, -np.inf, 0.0, -0.0, 1.5, -2.0, 1e-30, -1e-30], np.float32)
    keys = (
        rng.choice(special, size),
        rng.integers(0, 3, size).astype(np.int32),
        rng.random(size).astype(np.float32),
        np.round(rng.random(size) * 4).astype(np.float32) - 2,
    )
    lexsort = jax.jit(_lexsort)
    for chosen in [(0,), (0, 1), (1, 0), (2, 1), (0, 1, 3), (3, 0, 1, 2)]:
        ours = np.asarray(lexsort(*(jnp.asarray(keys[i]) for i in chosen)))
        # numpy orders -0.0 and 0.0 as equal, as sosjax must.
        np.testing.assert_array_equal(ours, np.lexsort([keys[i] for i in chosen]))


def test_survival_order_matches_numpy_lexsort():
    # Ranks with gaps and the value N (invalid rows), tied and infinite crowding.
    from sosjax.evolution.nsga2 import survival_order

    rng = np.random.default_rng(5)
    size = 700
    ranks = rng.choice(np.array([0, 1, 3, 7, size], np.int32), size)
    crowding = rng.choice(np.array([0.0, 0.25, 0.5, np.inf], np.float32), size)
    ours = np.asarray(jax.jit(survival_order)(jnp.asarray(ranks), jnp.asarray(crowding)))
    np.testing.assert_array_equal(ours, np.lexsort((-crowding, ranks)))


@pytest.mark.parametrize(
    "num_groups, size, num_objectives", [(1, 5, 2), (2, 180, 2), (3, 100, 2), (5, 7, 2), (2, 30, 3), (2, 16400, 2)]
)
def test_grouped_ranking_equals_ranking_each_group(num_groups, size, num_objectives):
    # One shared pass over all groups must give each group's own ranks and crowding,
    # with ties, non-finite rows and invalid rows. Three objectives and G·N of
    # 2^15 or more take the per-group fallback.
    rng = np.random.default_rng(size)
    objectives = np.round(rng.random((num_groups, size, num_objectives)) * 6) / 6
    objectives[0, :2] = np.nan
    objectives[-1, 3, 1] = np.inf
    objectives = jnp.asarray(objectives, jnp.float32)
    valid = jnp.asarray(rng.random((num_groups, size)) < 0.7)

    expected_ranks, expected_crowding = jax.vmap(rank_and_crowd)(objectives, valid)
    ranks, crowding = jax.jit(rank_and_crowd_groups)(objectives, valid)
    np.testing.assert_array_equal(np.asarray(ranks), np.asarray(expected_ranks))
    np.testing.assert_array_equal(np.asarray(crowding), np.asarray(expected_crowding))
