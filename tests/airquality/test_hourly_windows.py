"""Gap filling, splitting, scaling and windowing of hourly series, on hand-computed cases."""

import numpy as np
import pytest

from sosjax.data.windows import (
    StationSeries,
    cyclic_encoding,
    fill_gaps,
    fit_standardizer,
    hourly_grid,
    make_windows,
    prepare_windows,
    split_periods,
)

nan = np.nan


def test_fill_gaps_short_runs_only():
    column = np.array([nan, 1, nan, nan, 4, nan, nan, nan, nan, 9, nan], np.float32)
    filled = fill_gaps(column[:, None], max_gap=3)[:, 0]

    # The run of 2 between 1 and 4 is interpolated, the run of 4 between 4 and 9
    # is longer than max_gap, and the edge runs have a reading on one side only.
    expected = np.array([nan, 1, 2, 3, 4, nan, nan, nan, nan, 9, nan], np.float32)
    np.testing.assert_array_equal(filled, expected)


def test_fill_gaps_boundary_length():
    column = np.array([0, nan, nan, nan, 8], np.float32)[:, None]
    np.testing.assert_allclose(fill_gaps(column, max_gap=3)[:, 0], [0, 2, 4, 6, 8])
    assert np.isnan(fill_gaps(column, max_gap=2)[1:4, 0]).all()
    assert np.isnan(fill_gaps(column, max_gap=0)[1:4, 0]).all()


def test_fill_gaps_columns_independent():
    values = np.array([[0, 10], [nan, 20], [2, nan], [3, nan], [4, nan], [5, 60]], np.float32)
    filled = fill_gaps(values, max_gap=1)
    np.testing.assert_allclose(filled[:, 0], [0, 1, 2, 3, 4, 5])
    assert np.isnan(filled[2:5, 1]).all()
    assert np.isnan(values[1, 0]), "the input must stay unchanged"


def test_make_windows_hand_case():
    # Hour t has reading t; hour 6 is missing, so no window may contain it.
    inputs = np.arange(12, dtype=np.float32)[:, None]
    inputs[6] = nan
    target = inputs[:, 0].copy()
    x, y = make_windows(inputs, target, np.ones(12, bool), window=3)

    np.testing.assert_array_equal(y, [3, 4, 5, 10, 11])
    np.testing.assert_array_equal(x[:, :, 0], [[0, 1, 2], [1, 2, 3], [2, 3, 4], [7, 8, 9], [8, 9, 10]])


def test_make_windows_rules_on_target_and_last_hour():
    inputs = np.arange(10, dtype=np.float32)[:, None]
    target = inputs[:, 0].copy()
    target[5] = nan  # a filled target reading
    last_hour_observed = np.ones(10, bool)
    last_hour_observed[7] = False  # a feature was filled at hour 7

    _, y = make_windows(inputs, target, last_hour_observed, window=2)
    np.testing.assert_array_equal(y, [2, 3, 4, 6, 7, 9])


def test_make_windows_too_short():
    x, y = make_windows(np.zeros((3, 2), np.float32), np.zeros(3, np.float32), np.ones(3, bool), 3)
    assert x.shape == (0, 3, 2)
    assert y.shape == (0,)


def test_hourly_grid_fills_missing_rows_and_sorts():
    hours = np.array([103, 100, 101])
    values = np.array([[3.0], [0.0], [1.0]], np.float32)
    series = hourly_grid("A", "a.csv", hours, values)
    np.testing.assert_array_equal(series.hours, [100, 101, 102, 103])
    np.testing.assert_array_equal(series.values[:, 0], [0, 1, nan, 3])


def test_hourly_grid_rejects_repeated_hour():
    with pytest.raises(ValueError, match=r"a\.csv: hour 1970-01-05T04 has more than one row"):
        hourly_grid("A", "a.csv", np.array([100, 100]), np.zeros((2, 1), np.float32))


def test_split_periods_shared_span():
    series = [
        StationSeries("A", "a", np.arange(0, 80), np.zeros((80, 1), np.float32)),
        StationSeries("B", "b", np.arange(20, 100), np.zeros((80, 1), np.float32)),
    ]
    periods = split_periods(series, val_fraction=0.1, test_fraction=0.2)
    assert (periods.start, periods.val_start, periods.test_start, periods.end) == (0, 70, 80, 100)
    assert periods.bounds("val") == (70, 80)


@pytest.mark.parametrize("fractions", [(0.0, 0.2), (0.2, 0.0), (0.5, 0.5), (-0.1, 0.2)])
def test_split_periods_rejects_fractions(fractions):
    series = [StationSeries("A", "a", np.arange(10), np.zeros((10, 1), np.float32))]
    with pytest.raises(ValueError, match="must be positive with a sum below 1"):
        split_periods(series, *fractions)


def test_fit_standardizer_pooled_observed_constant():
    a = np.array([[1.0, 5.0, nan], [3.0, 5.0, nan]], np.float32)
    b = np.array([[5.0, 5.0, 1.0], [nan, 5.0, 1.0]], np.float32)
    scaler = fit_standardizer([a, b], ["x", "const", "sparse"])
    np.testing.assert_allclose(scaler.mean, [3.0, 5.0, 1.0])
    np.testing.assert_allclose(scaler.std, [np.sqrt(8 / 3), 1.0, 1.0], rtol=1e-6)


def test_fit_standardizer_rejects_unobserved_feature():
    values = np.array([[1.0, nan], [2.0, nan]], np.float32)
    with pytest.raises(ValueError, match=r"no observed readings of \['empty'\]"):
        fit_standardizer([values], ["full", "empty"])


def test_cyclic_encoding_compass_and_missing():
    encoded = cyclic_encoding(np.array([0.0, 90.0, 180.0, 270.0, nan]), 360.0)
    np.testing.assert_allclose(encoded[:4], [[0, 1], [1, 0], [0, -1], [-1, 0]], atol=1e-7)
    assert np.isnan(encoded[4]).all()


def test_prepare_windows_shuffles_train_only():
    hours = np.arange(200)
    values = np.stack([hours, np.sin(hours)], axis=1).astype(np.float32)
    series = [StationSeries("A", "a", hours, values)]
    settings = dict(
        feature_names=("x", "s"), target_index=0, target_label="x", target_unit="u",
        window=4, max_gap=0, val_fraction=0.2, test_fraction=0.2,
    )  # fmt: skip
    first = prepare_windows(series, seed=0, **settings).data.tasks[0]
    again = prepare_windows(series, seed=0, **settings).data.tasks[0]
    other = prepare_windows(series, seed=1, **settings).data.tasks[0]

    np.testing.assert_array_equal(first.y_train, again.y_train)
    assert not np.array_equal(first.y_train, other.y_train)
    np.testing.assert_array_equal(np.sort(first.y_train), np.sort(other.y_train))
    assert not np.all(np.diff(first.y_train) > 0), "training windows are shuffled"
    assert np.all(np.diff(first.y_val) > 0), "validation windows stay in time order"
    assert np.all(np.diff(first.y_test) > 0), "test windows stay in time order"


@pytest.mark.parametrize("setting", [{"window": 0}, {"max_gap": -1}])
def test_prepare_windows_rejects_settings(setting):
    series = [StationSeries("A", "a", np.arange(50), np.ones((50, 1), np.float32))]
    settings = dict(
        feature_names=("x",), target_index=0, target_label="x", target_unit="u",
        window=3, max_gap=1, val_fraction=0.2, test_fraction=0.2, seed=0,
    )  # fmt: skip
    settings.update(setting)
    with pytest.raises(ValueError, match="must be at least"):
        prepare_windows(series, **settings)
