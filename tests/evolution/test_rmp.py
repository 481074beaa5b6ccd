"""MO-MFEA-II rmp learning against a float64 grid search of the same likelihood."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from sosjax.evolution import cross_log_likelihoods, fit_rmp, learn_rmp

_fit = jax.jit(lambda masks: fit_rmp(cross_log_likelihoods(masks)))


def grid_search_rmp(masks, prior_count=1.0, grid=np.linspace(0.0, 1.0, 4001)):
    """Maximize the pairwise mixture log-likelihood over a grid, in float64."""
    masks = np.asarray(masks, np.float64)
    pop_size = masks.shape[1]
    probability = (masks.sum(axis=1) + prior_count) / (pop_size + 2 * prior_count)
    # log_likelihood[m, t, i]: member i of task t under task m's model.
    log_likelihood = np.einsum("tid,md->mti", masks, np.log(probability)) + np.einsum(
        "tid,md->mti", 1 - masks, np.log1p(-probability)
    )

    num_tasks = masks.shape[0]
    best = np.ones((num_tasks, num_tasks))
    for k in range(num_tasks):
        for l in range(num_tasks):
            if k == l:
                continue
            total = np.zeros_like(grid)
            for own, other in ((k, l), (l, k)):
                weights = np.stack([np.log1p(-grid / 2), np.log(np.maximum(grid / 2, 1e-300))])
                terms = np.stack([log_likelihood[own, own], log_likelihood[other, own]])
                total += logsumexp(weights[:, :, None] + terms[:, None, :], axis=0).sum(axis=-1)
            best[k, l] = grid[np.argmax(total)]
    return best


def mixed_populations(seed, num_tasks, pop_size, num_dims, shared):
    """Draw populations whose bit probabilities share a fraction `shared` of a common profile."""
    rng = np.random.default_rng(seed)
    common = rng.random(num_dims)
    masks = []
    for _ in range(num_tasks):
        own = rng.random(num_dims)
        probability = np.where(rng.random(num_dims) < shared, common, own)
        masks.append(rng.random((pop_size, num_dims)) < probability)
    return np.stack(masks)


@pytest.mark.parametrize("shared", [0.0, 0.9, 0.99, 1.0])
def test_fit_rmp_matches_grid_search(shared):
    masks = mixed_populations(0, num_tasks=3, pop_size=20, num_dims=40, shared=shared)
    learned = np.asarray(_fit(jnp.asarray(masks)))
    expected = grid_search_rmp(masks)
    off_diagonal = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(learned[off_diagonal], expected[off_diagonal], atol=1e-3)
    np.testing.assert_allclose(learned, learned.T)


def test_identical_populations_learn_full_transfer():
    masks = mixed_populations(1, num_tasks=1, pop_size=20, num_dims=40, shared=0.0)
    learned = np.asarray(_fit(jnp.asarray(np.concatenate([masks, masks, masks]))))
    np.testing.assert_allclose(learned, 1.0, atol=1e-6)


def test_opposite_populations_learn_no_transfer():
    masks = np.stack([np.zeros((20, 40), bool), np.ones((20, 40), bool), np.zeros((20, 40), bool)])
    learned = np.asarray(_fit(jnp.asarray(masks)))
    assert learned[0, 1] < 1e-6
    assert learned[1, 2] < 1e-6
    np.testing.assert_allclose(learned[0, 2], 1.0, atol=1e-6)


def test_learn_rmp_is_finite_for_thousands_of_bits():
    masks = mixed_populations(2, num_tasks=2, pop_size=20, num_dims=8000, shared=0.5)
    learned = np.asarray(jax.jit(learn_rmp)(jax.random.key(0), jnp.asarray(masks)))
    assert np.all(np.isfinite(learned))
    np.testing.assert_array_equal(np.diag(learned), 1.0)
    assert np.all((learned >= 0) & (learned <= 1))
    np.testing.assert_allclose(learned, learned.T)


def overlapping_populations(seed, replaced):
    """Two populations that share all but `replaced` members, which puts rmp inside (0, 1)."""
    rng = np.random.default_rng(seed)
    first = rng.random((20, 40)) < 0.5
    second = first.copy()
    second[:replaced] = rng.random((replaced, 40)) < 0.5
    return np.stack([first, second])


def test_fit_rmp_matches_grid_search_inside_bounds():
    masks = overlapping_populations(0, replaced=3)
    learned = np.asarray(_fit(jnp.asarray(masks)))
    assert 0.1 < learned[0, 1] < 0.9
    np.testing.assert_allclose(learned[0, 1], grid_search_rmp(masks)[0, 1], atol=1e-3)


def test_learn_rmp_adds_small_symmetric_noise():
    masks = jnp.asarray(np.concatenate([overlapping_populations(0, 3), overlapping_populations(1, 2)]))
    noiseless = np.asarray(_fit(masks))
    learn = jax.jit(jax.vmap(learn_rmp, in_axes=(0, None, None)))
    noisy = np.asarray(learn(jax.random.split(jax.random.key(1), 200), masks, 0.01))
    interior = (noiseless > 0.05) & (noiseless < 0.95) & ~np.eye(4, dtype=bool)
    assert interior.any(), "the test needs at least one rmp away from the bounds"
    deviation = noisy[:, interior] - noiseless[interior]
    assert abs(deviation.std() - 0.01) < 0.002
    assert abs(deviation.mean()) < 0.002
    np.testing.assert_allclose(noisy, np.swapaxes(noisy, 1, 2))
