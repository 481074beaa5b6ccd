"""Exact 2-D hypervolume against pymoo's HV indicator."""

import jax
import numpy as np
import pytest
from pymoo.indicators.hv import HV

from sosjax.evolution import hypervolume

_hypervolume = jax.jit(hypervolume)
_REFERENCE = np.array([1.0, 1.0], np.float32)


def pymoo_hypervolume(objectives, reference):
    finite = np.all(np.isfinite(objectives), axis=1)
    points = np.asarray(objectives[finite], np.float64)
    if len(points) == 0:
        return 0.0
    return HV(ref_point=np.asarray(reference, np.float64)).do(points)


def padded(points, size=64):
    """Fill up to `size` rows with points beyond the reference, which add nothing."""
    filler = np.full((size - len(points), 2), 2.0, np.float32)
    return np.concatenate([np.asarray(points, np.float32), filler])


@pytest.mark.parametrize("seed", range(5))
def test_hypervolume_matches_pymoo_random(seed):
    rng = np.random.default_rng(seed)
    objectives = (rng.random((64, 2)) * 1.3).astype(np.float32)
    if seed % 2:
        objectives = np.round(objectives * 5) / 5
    expected = pymoo_hypervolume(objectives, _REFERENCE)
    np.testing.assert_allclose(float(_hypervolume(objectives, _REFERENCE)), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "points, expected",
    [
        ([[0.25, 0.5]], 0.75 * 0.5),
        ([[0.25, 0.5], [0.25, 0.5], [0.25, 0.5]], 0.75 * 0.5),
        ([[0.0, 0.5], [0.5, 0.0]], 0.5 + 0.5 * 0.5),
        ([[0.5, 0.5], [0.25, 0.75], [0.75, 0.25], [0.6, 0.6]], 0.75 * 0.25 + 0.5 * 0.25 + 0.25 * 0.25),
        ([[1.0, 0.5], [0.5, 1.0], [1.5, -1.0]], 0.0),
        ([[0.2, np.nan], [np.inf, 0.1], [0.5, 0.5]], 0.25),
        ([], 0.0),
    ],
    ids=["one point", "duplicates", "two corners", "staircase with a dominated point",
         "on or beyond the reference", "nonfinite rows", "no points"],
)
def test_hypervolume_hand_computed(points, expected):
    objectives = padded(np.asarray(points, np.float32).reshape(-1, 2))
    value = float(_hypervolume(objectives, _REFERENCE))
    np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(value, pymoo_hypervolume(objectives, _REFERENCE), rtol=1e-6, atol=1e-7)


def test_hypervolume_other_reference():
    rng = np.random.default_rng(1)
    objectives = (rng.random((64, 2)) * np.array([3.0, 8.0])).astype(np.float32)
    reference = np.array([2.5, 6.0], np.float32)
    np.testing.assert_allclose(
        float(_hypervolume(objectives, reference)), pymoo_hypervolume(objectives, reference), rtol=1e-5
    )
