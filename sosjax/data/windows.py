"""Hourly station readings to forecasting windows: split, gap filling, scaling, windowing.

Every hourly domain (Beijing air quality, New York airport weather) goes through
`prepare_windows`, so one set of rules holds for all of them:

1. Split by calendar period. The span from the earliest to the latest hour of all
   stations is cut into train, validation and test periods, in that order. The
   cut points are shared by all stations, so no station trains on hours that
   another station is tested on (the JAT trains on the union of all stations).
2. Fill short gaps. Within each period separately, a run of at most `max_gap`
   missing hours with readings on both sides is filled by linear interpolation.
   Longer runs, and runs at the edge of a period, stay missing. Because periods
   are filled separately, no value of one period fills a gap in another.
3. Standardize. Each feature's mean and standard deviation come from the
   observed (not filled) readings of the training period only, pooled over all
   stations, so every station shares one input space.
4. Window. An example is `window` consecutive hours of features and the target
   variable's reading in the hour after them. Each window lies inside one period
   and inside one station's readings. It is kept only if (a) every input hour has
   every feature after gap filling, (b) the target reading was observed, not
   filled, and (c) every feature was observed in the last input hour. Rule (c)
   stops interpolation from leaking the target hour (or later hours) into the
   inputs: a value filled at the last input hour is interpolated towards a
   reading at the target hour or later.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from sosjax.data.tasks import MultiTaskData, TaskData

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class StationSeries:
    """One station's hourly readings on a complete hourly grid.

    `hours` are `int64[T]` consecutive hours counted from 1970-01-01T00 in the
    data's own clock. `values` are `f32[T, F]`, NaN where a reading is missing.
    """

    name: str
    #: File (or file and row filter) that the readings came from, for error messages.
    source: str
    hours: np.ndarray
    values: np.ndarray


@dataclasses.dataclass(frozen=True)
class Periods:
    """Cut points of the chronological split, as hours (see `StationSeries.hours`).

    Train is `[start, val_start)`, validation `[val_start, test_start)` and test
    `[test_start, end)`.
    """

    start: int
    val_start: int
    test_start: int
    end: int

    def bounds(self, split: str) -> tuple[int, int]:
        """Return the `[first, stop)` hours of `split` ("train", "val" or "test")."""
        edges = (self.start, self.val_start, self.test_start, self.end)
        index = SPLITS.index(split)
        return edges[index], edges[index + 1]

    def describe(self, split: str) -> str:
        first, stop = self.bounds(split)
        return f"{format_hour(first)} to {format_hour(stop - 1)}"


@dataclasses.dataclass(frozen=True)
class Standardizer:
    """Per-feature mean and standard deviation, `f32[F]` each."""

    mean: np.ndarray
    std: np.ndarray

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Standardize `f32[..., F]` values. NaN stays NaN."""
        return ((values - self.mean) / self.std).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class WindowedTasks:
    """The tasks of `prepare_windows` and what produced them, for inspection."""

    data: MultiTaskData
    standardizer: Standardizer
    periods: Periods
    feature_names: tuple[str, ...]
    #: Windows per station and split, in station order: `{"train": n, ...}`.
    counts: tuple[dict[str, int], ...]


def format_hour(hour: int) -> str:
    return str(np.datetime64(int(hour), "h"))


def cyclic_encoding(angle: np.ndarray, period: float) -> np.ndarray:
    """Encode angles (degrees, hours of the day) as `f32[..., 2]` sine and cosine.

    NaN angles give NaN in both columns, so they count as missing readings.
    """
    radians = 2.0 * np.pi * np.asarray(angle, dtype=np.float64) / period
    return np.stack([np.sin(radians), np.cos(radians)], axis=-1).astype(np.float32)


def parse_reading(cell: str, column: str, where: str) -> float:
    """Parse one numeric CSV cell, where `NA` is a missing reading (NaN).

    Raises:
      ValueError: the cell is neither a finite number nor `NA`; the message
        starts with `where` (file and line).
    """
    if cell == "NA":
        return np.nan
    try:
        value = float(cell)
    except ValueError:
        value = np.nan
    if not np.isfinite(value):
        raise ValueError(
            f"{where}: {column} is {cell!r}, expected a number or NA. Fix or remove the row."
        )
    return value


def hourly_grid(name: str, source: str, hours: np.ndarray, values: np.ndarray) -> StationSeries:
    """Place rows `int64[n]`, `f32[n, F]` on a complete hourly grid.

    Hours without a row become rows of NaN. Rows may come in any order.

    Raises:
      ValueError: if there are no rows, or an hour has more than one row.
    """
    hours = np.asarray(hours, dtype=np.int64)
    if hours.size == 0:
        raise ValueError(f"{source}: no data rows. Download the file again or remove the station.")

    order = np.argsort(hours, kind="stable")
    hours = hours[order]
    repeated = hours[1:][hours[1:] == hours[:-1]]
    if repeated.size:
        raise ValueError(
            f"{source}: hour {format_hour(repeated[0])} has more than one row. "
            "Keep one row per hour."
        )

    first = int(hours[0])
    grid = np.full((int(hours[-1]) - first + 1, values.shape[1]), np.nan, dtype=np.float32)
    grid[hours - first] = values[order]
    grid_hours = np.arange(first, int(hours[-1]) + 1, dtype=np.int64)
    return StationSeries(name=name, source=source, hours=grid_hours, values=grid)


def split_periods(
    series: Sequence[StationSeries], val_fraction: float, test_fraction: float
) -> Periods:
    """Cut the common span of all stations into train, validation and test periods."""
    if not (0.0 < val_fraction and 0.0 < test_fraction and val_fraction + test_fraction < 1.0):
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be "
            "positive with a sum below 1."
        )

    start = min(int(s.hours[0]) for s in series)
    end = max(int(s.hours[-1]) for s in series) + 1
    span = end - start
    test_start = end - int(round(test_fraction * span))
    val_start = test_start - int(round(val_fraction * span))
    return Periods(start=start, val_start=val_start, test_start=test_start, end=end)


def fill_gaps(values: np.ndarray, max_gap: int) -> np.ndarray:
    """Linearly interpolate runs of at most `max_gap` NaN hours in each column.

    Only runs with a reading on both sides are filled. `values` are `f32[T, F]`
    consecutive hours. The result is a new array of the same shape.
    """
    filled = np.array(values, dtype=np.float32, copy=True)
    positions = np.arange(values.shape[0])

    for column in range(values.shape[1]):
        missing = np.isnan(values[:, column])
        if not missing.any() or missing.all():
            continue

        # For each hour, the last observed hour at or before it and the first
        # observed hour at or after it (-1 and T where there is none).
        observed_at = np.where(missing, -1, positions)
        previous = np.maximum.accumulate(observed_at)
        observed_at = np.where(missing, values.shape[0], positions)
        following = np.minimum.accumulate(observed_at[::-1])[::-1]

        gap_length = following - previous - 1
        fillable = missing & (previous >= 0) & (following < values.shape[0])
        fillable &= gap_length <= max_gap
        if not fillable.any():
            continue

        left = previous[fillable]
        right = following[fillable]
        weight = (positions[fillable] - left) / (right - left)
        left_values = values[left, column]
        right_values = values[right, column]
        filled[fillable, column] = left_values + weight * (right_values - left_values)

    return filled


def fit_standardizer(train_values: Sequence[np.ndarray], feature_names: Sequence[str]) -> Standardizer:
    """Mean and standard deviation of the observed readings `f32[n, F]`, pooled.

    A feature that is constant in training gets a standard deviation of 1, so it
    is centred but not divided by zero.

    Raises:
      ValueError: if a feature has no observed reading in the training period.
    """
    pooled = np.concatenate(train_values, axis=0).astype(np.float64)
    counts = np.sum(~np.isnan(pooled), axis=0)
    if np.any(counts == 0):
        names = [feature_names[i] for i in np.flatnonzero(counts == 0)]
        raise ValueError(
            f"no observed readings of {names} in the training period. "
            "Lower val_fraction and test_fraction or choose other stations."
        )

    mean = np.nanmean(pooled, axis=0)
    std = np.nanstd(pooled, axis=0)
    std = np.where(std > 0, std, 1.0)
    return Standardizer(mean=mean.astype(np.float32), std=std.astype(np.float32))


def make_windows(
    inputs: np.ndarray,
    target: np.ndarray,
    last_hour_observed: np.ndarray,
    window: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut consecutive hours into input windows and next-hour targets.

    Args:
      inputs: `f32[T, F]` features after gap filling, NaN where still missing.
      target: `f32[T]` observed target readings, NaN where missing or filled.
      last_hour_observed: `bool[T]`, whether every feature was observed at that hour.
      window: number of input hours W.

    Returns:
      `f32[n, W, F]` inputs `inputs[t - W : t]` and `f32[n]` targets `target[t]`
      for every hour t that satisfies the windowing rules of this module.
    """
    num_hours = inputs.shape[0]
    if num_hours <= window:
        return (
            np.zeros((0, window, inputs.shape[1]), np.float32),
            np.zeros((0,), np.float32),
        )

    complete = ~np.isnan(inputs).any(axis=1)
    # complete_before[i] counts complete hours among hours [0, i).
    complete_before = np.concatenate([[0], np.cumsum(complete)])
    target_hours = np.arange(window, num_hours)
    complete_inputs = complete_before[target_hours] - complete_before[target_hours - window] == window
    keep = complete_inputs & ~np.isnan(target[target_hours]) & last_hour_observed[target_hours - 1]
    kept = target_hours[keep]

    offsets = np.arange(-window, 0)
    x = inputs[kept[:, None] + offsets[None, :]]
    y = target[kept]
    return x.astype(np.float32), y.astype(np.float32)


def prepare_windows(
    series: Sequence[StationSeries],
    *,
    feature_names: Sequence[str],
    target_index: int,
    target_label: str,
    target_unit: str,
    window: int,
    max_gap: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> WindowedTasks:
    """Turn each station's readings into one regression task of windows.

    `target_index` picks the feature column whose next-hour reading is the target.
    Targets are standardized with that column's training statistics, so
    `target_scale` is its training standard deviation. Training windows are
    shuffled with `seed`, and validation and test windows stay in time order.

    Raises:
      ValueError: on invalid settings, or when a station has no window in a period
        (the message names the station, its file, the period and what to change).
    """
    if window < 1:
        raise ValueError(f"window={window} must be at least 1 hour.")
    if max_gap < 0:
        raise ValueError(f"max_gap={max_gap} must be at least 0 hours.")

    periods = split_periods(series, val_fraction, test_fraction)
    pieces = [_split_station(s, periods) for s in series]

    standardizer = fit_standardizer([piece["train"] for piece in pieces], feature_names)
    rng = np.random.default_rng(seed)

    tasks = []
    counts = []
    for station, piece in zip(series, pieces):
        arrays = {}
        for split in SPLITS:
            x, y = _window_period(piece[split], standardizer, target_index, window, max_gap)
            if y.size == 0:
                raise ValueError(
                    f"station {station.name} ({station.source}) has no complete "
                    f"{window}-hour window with an observed next-hour target in the "
                    f"{split} period {periods.describe(split)}. Remove the station, "
                    "raise max_gap, or change val_fraction and test_fraction."
                )
            arrays[split] = (x, y)

        x_train, y_train = arrays["train"]
        order = rng.permutation(y_train.size)
        tasks.append(
            TaskData(
                name=station.name,
                x_train=x_train[order],
                y_train=y_train[order],
                x_val=arrays["val"][0],
                y_val=arrays["val"][1],
                x_test=arrays["test"][0],
                y_test=arrays["test"][1],
            )
        )
        counts.append({split: int(arrays[split][1].size) for split in SPLITS})

    data = MultiTaskData(
        tasks=tuple(tasks),
        kind="regression",
        num_outputs=1,
        input_shape=(window, len(feature_names)),
        labels=(target_label,),
        target_scale=float(standardizer.std[target_index]),
        target_unit=target_unit,
    )
    return WindowedTasks(
        data=data,
        standardizer=standardizer,
        periods=periods,
        feature_names=tuple(feature_names),
        counts=tuple(counts),
    )


def _split_station(station: StationSeries, periods: Periods) -> dict[str, np.ndarray]:
    """Split a station's rows into `f32[n, F]` per period (empty outside its hours)."""
    pieces = {}
    for split in SPLITS:
        first, stop = periods.bounds(split)
        inside = (station.hours >= first) & (station.hours < stop)
        pieces[split] = station.values[inside]
    return pieces


def _window_period(
    values: np.ndarray,
    standardizer: Standardizer,
    target_index: int,
    window: int,
    max_gap: int,
) -> tuple[np.ndarray, np.ndarray]:
    observed = ~np.isnan(values)
    filled = fill_gaps(values, max_gap)
    scaled = standardizer.apply(filled)

    target = np.where(observed[:, target_index], scaled[:, target_index], np.nan)
    return make_windows(scaled, target, observed.all(axis=1), window)
