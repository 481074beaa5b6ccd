"""Seeded, stratified index splits and subsamples over class labels.

All functions return sorted index arrays into the given labels, so a result does
not depend on the order in which classes are visited, only on the seed.
"""

from __future__ import annotations

import numpy as np

# Distinct streams per purpose, so that changing one setting (a subsample size)
# leaves the other splits of the same seed unchanged.
STREAM_TEST_SPLIT = 0
STREAM_VAL_SPLIT = 1
STREAM_SUBSAMPLE = 2


def seeded_rng(seed: int, stream: int, *extra: int) -> np.random.Generator:
    """A numpy generator for one purpose (`stream`, e.g. a task index in `extra`) of a run seed."""
    return np.random.default_rng((seed, stream, *extra))


def stratified_split(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split `int[n]` labels into remaining and held-out indices, `fraction` held out per class.

    Each class c with n_c examples contributes round(n_c × fraction) (halves
    rounded up) random examples to the held-out part.

    Returns:
      `(remaining int64[n - m], held_out int64[m])`, sorted and disjoint.
    """
    held_out = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = int(np.floor(len(members) * fraction + 0.5))
        held_out.append(rng.permutation(members)[:count])

    held_out = np.sort(np.concatenate(held_out)) if held_out else np.zeros(0, np.int64)
    remaining = np.setdiff1d(np.arange(len(labels)), held_out)
    return remaining.astype(np.int64), held_out.astype(np.int64)


def stratified_subsample(labels: np.ndarray, max_count: int, rng: np.random.Generator) -> np.ndarray:
    """Pick at most `max_count` indices of `int[n]` labels, keeping the class proportions.

    Classes get counts proportional to their size, rounded down, and the
    remaining picks go to the classes with the largest remainders (Hamilton's
    method), so the counts sum to exactly `min(max_count, n)`.

    Returns:
      `int64[min(max_count, n)]`, sorted.
    """
    if max_count >= len(labels):
        return np.arange(len(labels), dtype=np.int64)

    classes, sizes = np.unique(labels, return_counts=True)
    quotas = sizes * max_count / len(labels)
    counts = np.floor(quotas).astype(np.int64)
    # Stable sort so ties in the remainder go to the smaller class index.
    by_remainder = np.argsort(-(quotas - counts), kind="stable")
    counts[by_remainder[: max_count - counts.sum()]] += 1

    picked = [
        rng.permutation(np.flatnonzero(labels == label))[:count]
        for label, count in zip(classes, counts)
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)
