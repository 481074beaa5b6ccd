"""Stratified splits and subsamples: hand-computed counts, disjointness, seeding."""

import numpy as np

from sosjax.data.splits import seeded_rng, stratified_split, stratified_subsample

LABELS = np.repeat([0, 1, 2], [10, 20, 30])


def counts(labels):
    return np.bincount(labels, minlength=3).tolist()


def test_split_counts_per_class():
    kept, held = stratified_split(LABELS, 0.1, seeded_rng(0, 1))

    assert counts(LABELS[held]) == [1, 2, 3]
    assert counts(LABELS[kept]) == [9, 18, 27]


def test_split_rounds_halves_up():
    labels = np.repeat([0, 1], [5, 15])

    _, held = stratified_split(labels, 0.1, seeded_rng(0, 1))

    # 0.5 rounds to 1 and 1.5 to 2.
    assert np.bincount(labels[held]).tolist() == [1, 2]


def test_split_disjoint_and_complete():
    kept, held = stratified_split(LABELS, 0.25, seeded_rng(3, 1))

    assert np.intersect1d(kept, held).size == 0
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(LABELS)))


def test_split_fixed_by_seed():
    first = stratified_split(LABELS, 0.2, seeded_rng(5, 1))
    again = stratified_split(LABELS, 0.2, seeded_rng(5, 1))
    other = stratified_split(LABELS, 0.2, seeded_rng(6, 1))

    assert np.array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_split_zero_fraction():
    kept, held = stratified_split(LABELS, 0.0, seeded_rng(0, 1))

    assert held.size == 0
    assert kept.size == len(LABELS)


def test_subsample_proportional():
    picked = stratified_subsample(LABELS, 6, seeded_rng(0, 2))

    assert counts(LABELS[picked]) == [1, 2, 3]


def test_subsample_largest_remainder():
    # Quotas 7/6, 14/6, 21/6 = 1.17, 2.33, 3.5: floors 1, 2, 3 and the spare pick goes to class 2.
    picked = stratified_subsample(LABELS, 7, seeded_rng(0, 2))

    assert counts(LABELS[picked]) == [1, 2, 4]


def test_subsample_unique_sorted():
    picked = stratified_subsample(LABELS, 40, seeded_rng(1, 2))

    assert len(np.unique(picked)) == 40
    assert np.all(np.diff(picked) > 0)


def test_subsample_larger_than_data():
    picked = stratified_subsample(LABELS, 1000, seeded_rng(0, 2))

    assert np.array_equal(picked, np.arange(len(LABELS)))
