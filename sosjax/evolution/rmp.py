"""Learning the random mating probability (rmp) between tasks, as in MO-MFEA-II.

K. K. Bali, A. Gupta, Y.-S. Ong, P. S. Tan, "Cognizant multitasking in
multiobjective multifactorial evolution: MO-MFEA-II", IEEE Trans. Cybernetics,
2020. Each task's population is summarized by a probabilistic model, and rmp[k, l]
is the mixing weight that best explains both populations when each task's
offspring come from its own model with weight 1 − rmp/2 and from the other task's
model with weight rmp/2.

Departures from the paper: the models are independent Bernoulli marginals (the
genome is binary) in place of factorized Gaussians, and each pair (k, l) is fitted
on its own, so the matrix needs K(K−1)/2 one-dimensional searches in place of one
joint K-task optimization. With D in the thousands, a genome's likelihood
underflows float32, so all likelihoods stay in log space.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

#: Bisection steps over [0, 1]; 30 halvings reach float32 resolution.
_BISECTION_STEPS = 30


def bernoulli_log_probabilities(masks: jax.Array, prior_count: float | jax.Array = 1.0) -> tuple[jax.Array, jax.Array]:
    """Fit one Bernoulli marginal per bit to a population, with additive smoothing.

    Args:
      masks: `bool[Γ, D]`.
      prior_count: pseudo-count added to both outcomes of every bit, so that no
        probability is 0 or 1 (1.0 is Laplace smoothing).

    Returns:
      `(log p, log (1 − p))`, each `f32[D]`, with p the probability of a 1 bit.
    """
    ones = jnp.sum(masks, axis=0, dtype=jnp.float32)
    probability = (ones + prior_count) / (masks.shape[0] + 2.0 * prior_count)
    return jnp.log(probability), jnp.log1p(-probability)


def cross_log_likelihoods(masks: jax.Array, prior_count: float | jax.Array = 1.0) -> jax.Array:
    """Score every task's population under every task's Bernoulli model.

    Args:
      masks: `bool[K, Γ, D]`.
      prior_count: smoothing pseudo-count of `bernoulli_log_probabilities`.

    Returns:
      `f32[K, K, Γ]`: entry `[t, m, i]` is log P_m(x) − log P_t(x) for member i of
      task t, the log-likelihood ratio of task m's model over the member's own.
    """
    log_p, log_q = jax.vmap(bernoulli_log_probabilities, in_axes=(0, None))(masks, prior_count)
    bits = masks.astype(jnp.float32)

    # log P_m(x) = sum_d x_d log p_md + (1 − x_d) log (1 − p_md).
    log_likelihood = jnp.einsum(
        "tid,md->tmi", bits, log_p - log_q, precision=lax.Precision.HIGHEST
    ) + jnp.sum(log_q, axis=-1)[None, :, None]
    own = jnp.diagonal(log_likelihood, axis1=0, axis2=1).T
    return log_likelihood - own[:, None, :]


def _mixture_slope(log_ratio: jax.Array, rmp: jax.Array) -> jax.Array:
    """d/d rmp of log((1 − rmp/2) a + (rmp/2) b) for log_ratio = log(b/a).

    Written as 1 / (2/s + rmp) with s = b/a − 1, which stays finite when b/a
    overflows (s = inf gives 1/rmp) and is 0 when the models agree (s = 0).
    """
    excess = jnp.expm1(log_ratio)
    safe_excess = jnp.where(excess == 0, 1.0, excess)
    return jnp.where(excess == 0, 0.0, 1.0 / (2.0 / safe_excess + rmp))


def fit_rmp(log_ratios: jax.Array) -> jax.Array:
    """Find, for every task pair, the rmp in [0, 1] that maximizes both populations'
    log-likelihood under the pair's mixture.

    The log-likelihood is concave in rmp (a sum of logs of affine functions), so a
    bisection on the sign of its slope finds the maximizer. Where it is flat (two
    identical models), the search returns 1: nothing speaks against transfer.

    Args:
      log_ratios: `f32[K, K, Γ]` from `cross_log_likelihoods`.

    Returns:
      `f32[K, K]`, symmetric. The diagonal holds values without meaning; callers
      overwrite it.
    """
    num_tasks = log_ratios.shape[0]

    def slope(rmp):
        per_population = jnp.sum(_mixture_slope(log_ratios, rmp[:, :, None]), axis=-1)
        return per_population + per_population.T

    def halve(_, bounds):
        low, high = bounds
        middle = 0.5 * (low + high)
        rising = slope(middle) >= 0
        return jnp.where(rising, middle, low), jnp.where(rising, high, middle)

    low = jnp.zeros((num_tasks, num_tasks), jnp.float32)
    high = jnp.ones((num_tasks, num_tasks), jnp.float32)
    low, high = lax.fori_loop(0, _BISECTION_STEPS, halve, (low, high))
    return 0.5 * (low + high)


def learn_rmp(
    key: jax.Array,
    masks: jax.Array,
    noise_std: float | jax.Array = 0.01,
    prior_count: float | jax.Array = 1.0,
) -> jax.Array:
    """Learn the rmp matrix from the current populations (MO-MFEA-II).

    Args:
      key: PRNG key for the exploration noise.
      masks: `bool[K, Γ, D]`.
      noise_std: standard deviation of the Gaussian noise added to each learned
        value before clipping to [0, 1].
      prior_count: smoothing pseudo-count of the Bernoulli models.

    Returns:
      `f32[K, K]`, symmetric, with ones on the diagonal.
    """
    num_tasks = masks.shape[0]
    rmp = fit_rmp(cross_log_likelihoods(masks, prior_count))

    noise = noise_std * jax.random.normal(key, (num_tasks, num_tasks))
    upper = jnp.triu(noise, 1)
    rmp = jnp.clip(rmp + upper + upper.T, 0.0, 1.0)
    return jnp.where(jnp.eye(num_tasks, dtype=bool), 1.0, rmp)
