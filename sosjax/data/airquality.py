"""Beijing Multi-Site Air-Quality data (UCI): next-hour PM2.5 per monitoring station.

The UCI data set has one CSV per station, `PRSA_Data_<Station>_20130301-20170228.csv`,
with hourly rows from 2013-03-01 to 2017-02-28 (Beijing time, which has no
daylight saving) and missing readings written as `NA`. `load_beijing` reads them
from a folder or from a zip. Zips inside the zip are searched too, so either an
outer download zip or the data zip inside it can be passed.

Features, in this order: PM2.5, PM10, SO2, NO2, CO, O3 (µg/m³), TEMP (°C),
PRES (hPa), DEWP (°C), RAIN (mm), WSPM (m/s), the wind direction `wd` as sine and
cosine of its compass angle (N = 0°, E = 90°, 16 points), and the hour of the day
as sine and cosine. A missing `wd` is a missing reading, gap-filled like the
others. In calm air (WSPM = 0) the direction is undefined and both wind direction
columns are 0. The target is the next hour's PM2.5 in µg/m³. Splitting, gap
filling, standardization and windowing follow `sosjax.data.windows`.

Source: "Beijing Multi-Site Air Quality", UCI Machine Learning Repository.

NOTE: no real UCI download was available when this loader was written. It is
tested on files written in the documented format (columns, `NA`, file names),
not on the real files or the real zip layout.
"""

from __future__ import annotations

import csv
import datetime
import io
import pathlib
import re
import zipfile
import zlib
from typing import Callable, Sequence

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
    "No", "year", "month", "day", "hour", "PM2.5", "PM10", "SO2", "NO2", "CO", "O3",
    "TEMP", "PRES", "DEWP", "RAIN", "wd", "WSPM", "station",
)  # fmt: skip
NUMERIC_COLUMNS = (
    "PM2.5", "PM10", "SO2", "NO2", "CO", "O3", "TEMP", "PRES", "DEWP", "RAIN", "WSPM",
)  # fmt: skip
FEATURES = NUMERIC_COLUMNS + ("wd_sin", "wd_cos", "hour_sin", "hour_cos")
TARGET = "PM2.5"

#: Compass points of `wd` and their angles in degrees clockwise from north.
COMPASS = {
    point: 22.5 * i
    for i, point in enumerate(
        ("N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE",
         "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW")
    )
}  # fmt: skip

FILE_PATTERN = re.compile(r"PRSA_Data_(?P<station>.+?)_\d{8}-\d{8}\.csv")

# Reads one station file's text when called.
TextSource = Callable[[], str]


def load_beijing(
    path: str | pathlib.Path,
    stations: Sequence[str],
    *,
    window: int = 10,
    max_gap: int = 3,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> MultiTaskData:
    """Load next-hour PM2.5 forecasting tasks, one per station, named after it.

    Args:
      path: folder that contains the station CSV files (searched recursively), or
        the downloaded zip.
      stations: station names as in the file names, for example `"Dingling"`;
        matched without regard to case.
      window: input hours per example.
      max_gap: maximum run of missing hours (per column) filled by interpolation.
        Windows that would need a longer run are dropped.
      val_fraction, test_fraction: shares of the common time span, taken from its
        end, for the validation and test periods.
      seed: seed of the shuffle of training windows.

    Returns:
      Regression tasks with inputs `f32[n, window, 15]` and standardized targets
      `f32[n]`; `target_scale` converts a standardized RMSE to µg/m³.

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: unknown station (the message lists those found), corrupt zip,
        malformed file or row, or a station without windows in some period.
    """
    return prepare_beijing(
        path,
        stations,
        window=window,
        max_gap=max_gap,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    ).data


def prepare_beijing(
    path: str | pathlib.Path,
    stations: Sequence[str],
    *,
    window: int = 10,
    max_gap: int = 3,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> WindowedTasks:
    """Run `load_beijing` and also return its scaler, periods and window counts."""
    series = read_beijing(path, stations)
    return prepare_windows(
        series,
        feature_names=FEATURES,
        target_index=FEATURES.index(TARGET),
        target_label="PM2.5 next hour",
        target_unit="µg/m³",
        window=window,
        max_gap=max_gap,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )


def read_beijing(path: str | pathlib.Path, stations: Sequence[str]) -> tuple[StationSeries, ...]:
    """Read the requested stations' files into hourly series of `FEATURES`."""
    if isinstance(stations, str) or len(stations) == 0:
        raise ValueError(f"stations must be a non-empty list of station names, got {stations!r}.")

    sources = find_station_files(path)
    by_lower_name = {name.lower(): name for name in sources}
    chosen = []
    for requested in stations:
        name = by_lower_name.get(requested.lower())
        if name is None:
            raise ValueError(
                f"station {requested!r} not found in {path}: no file "
                f"PRSA_Data_{requested}_20130301-20170228.csv. Stations found: "
                f"{sorted(sources) or 'none'}."
            )
        if name in chosen:
            raise ValueError(f"station {name!r} is requested more than once.")
        chosen.append(name)

    return tuple(parse_station_csv(name, *sources[name]) for name in chosen)


def find_station_files(path: str | pathlib.Path) -> dict[str, tuple[str, TextSource]]:
    """Map station name to (file name for messages, text reader) for every station file.

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: `path` is a corrupt zip, or two files are for the same station.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist. Set it to the folder of PRSA_Data_*.csv files "
            "or to the zip downloaded from the UCI repository."
        )

    if path.is_dir():
        files = [(str(f), _file_reader(f)) for f in sorted(path.rglob("*.csv"))]
    else:
        files = _zip_members(path)

    found: dict[str, tuple[str, TextSource]] = {}
    for display_name, read in files:
        match = FILE_PATTERN.fullmatch(pathlib.PurePosixPath(display_name).name)
        if match is None:
            continue
        station = match["station"]
        if station in found:
            raise ValueError(
                f"two files for station {station}: {found[station][0]} and "
                f"{display_name}. Keep one of them."
            )
        found[station] = (display_name, read)
    return found


def parse_station_csv(station: str, display_name: str, read: TextSource) -> StationSeries:
    """Parse one station file in the UCI format into an hourly series.

    Raises:
      ValueError: empty file, wrong header, or a malformed row; the message
        names the file, the line and the value.
    """
    rows = csv.reader(io.StringIO(read()))
    header = next(rows, None)
    if header is None or not any(cell.strip() for cell in header):
        raise ValueError(f"{display_name}: empty file. Download it again or remove the station.")
    header = [name.strip() for name in header]
    if tuple(header) != COLUMNS:
        raise ValueError(
            f"{display_name}: header {header} does not match the UCI columns {list(COLUMNS)}."
        )

    hours = []
    readings = []
    for line_number, row in enumerate(rows, start=2):
        if not row:
            continue
        hour, row_readings = _parse_row(row, station, f"{display_name}: line {line_number}")
        hours.append(hour)
        readings.append(row_readings)

    if not hours:
        raise ValueError(
            f"{display_name}: no data rows after the header. Download it again or "
            "remove the station."
        )
    hours = np.array(hours, np.int64)
    values = _features(hours, np.array(readings, np.float64))
    return hourly_grid(station, display_name, hours, values)


def _features(hours: np.ndarray, readings: np.ndarray) -> np.ndarray:
    """Build `f32[n, 15]` `FEATURES` from `NUMERIC_COLUMNS` plus the wd angle, `f64[n, 12]`."""
    numeric, angle = readings[:, :-1], readings[:, -1]
    wind = cyclic_encoding(angle, 360.0)
    wind[numeric[:, NUMERIC_COLUMNS.index("WSPM")] == 0.0] = 0.0
    # Beijing time has no daylight saving, so the clock hour is the hour of the day.
    hour_of_day = cyclic_encoding(hours % 24, 24.0)
    return np.concatenate([numeric.astype(np.float32), wind, hour_of_day], axis=1)


def _parse_row(row: list[str], station: str, where: str) -> tuple[int, list[float]]:
    """Return the hour index, `NUMERIC_COLUMNS` and wd angle of one row (NaN for `NA`)."""
    if len(row) != len(COLUMNS):
        raise ValueError(
            f"{where}: {len(row)} fields, expected {len(COLUMNS)} ({', '.join(COLUMNS)}). "
            "Fix or remove the row."
        )
    cells = dict(zip(COLUMNS, (cell.strip() for cell in row)))

    try:
        moment = datetime.datetime(
            int(cells["year"]), int(cells["month"]), int(cells["day"]), int(cells["hour"])
        )
    except ValueError:
        date = "-".join(cells[c] for c in ("year", "month", "day", "hour"))
        raise ValueError(
            f"{where}: invalid date year-month-day-hour {date!r}. Fix or remove the row."
        ) from None
    hour = int((moment - datetime.datetime(1970, 1, 1)).total_seconds() // 3600)

    if cells["station"] != station:
        raise ValueError(
            f"{where}: station column is {cells['station']!r} but the file is for "
            f"{station!r}. Fix the row or the file name."
        )

    readings = {}
    for column in NUMERIC_COLUMNS:
        readings[column] = parse_reading(cells[column], column, where)

    direction = cells["wd"]
    if direction == "NA":
        angle = np.nan
    elif direction in COMPASS:
        angle = COMPASS[direction]
    else:
        raise ValueError(
            f"{where}: wd is {direction!r}, expected NA or one of {list(COMPASS)}. "
            "Fix or remove the row."
        )
    return hour, [readings[c] for c in NUMERIC_COLUMNS] + [angle]


def _file_reader(file: pathlib.Path) -> TextSource:
    return lambda: file.read_text(encoding="utf-8-sig")


def _zip_members(path: pathlib.Path) -> list[tuple[str, TextSource]]:
    """List the CSV members of a zip and of the zips inside it, with their readers."""
    try:
        archive = zipfile.ZipFile(path)
        members = _archive_members(archive, str(path))
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ValueError(
            f"{path} is not a readable zip ({error}). Download it again, or unpack it "
            "and pass the folder."
        ) from None
    return members


def _archive_members(archive: zipfile.ZipFile, label: str) -> list[tuple[str, TextSource]]:
    members = []
    for info in archive.infolist():
        if info.is_dir():
            continue
        inner_label = f"{label}!{info.filename}"
        if info.filename.lower().endswith(".zip"):
            inner = zipfile.ZipFile(io.BytesIO(archive.read(info)))
            members.extend(_archive_members(inner, inner_label))
        elif info.filename.lower().endswith(".csv"):
            members.append((inner_label, _member_reader(archive, info, inner_label)))
    return members


def _member_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> TextSource:
    def read() -> str:
        try:
            return archive.read(info).decode("utf-8-sig")
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
            raise ValueError(
                f"{label}: cannot be read from the zip ({error}). Download the zip again."
            ) from None

    return read
