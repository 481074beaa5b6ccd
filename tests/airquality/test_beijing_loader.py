"""The Beijing air-quality loader on small files in the exact UCI format.

In the files of `station_table`, PM2.5 equals the hour index, so un-standardizing
a window's PM2.5 column shows which hours it covers.
"""

import datetime
import io
import zipfile

import numpy as np
import pytest

from sosjax.data.airquality import FEATURES, load_beijing, prepare_beijing, read_beijing
from uci_airquality_files import file_name, station_lines, station_table, write_station

PM25 = FEATURES.index("PM2.5")
PRES = FEATURES.index("PRES")
SPLIT = dict(window=3, max_gap=3, val_fraction=0.25, test_fraction=0.25)


def hours_of(prepared, x, y):
    """Un-standardized PM2.5 of inputs `int[n, W]` and targets `int[n]`."""
    mean, std = prepared.standardizer.mean[PM25], prepared.standardizer.std[PM25]
    inputs = np.rint(x[:, :, PM25] * std + mean).astype(int)
    targets = np.rint(y * std + mean).astype(int)
    return inputs, targets


def test_windows_align_with_next_hour(tmp_path):
    write_station(tmp_path, "Aotizhongxin", station_table(40))
    prepared = prepare_beijing(tmp_path, ["Aotizhongxin"], **SPLIT)
    task = prepared.data.tasks[0]

    # 40 hours: train 0-19, validation 20-29, test 30-39, 3-hour windows.
    order = np.argsort(task.y_train)
    inputs, targets = hours_of(prepared, task.x_train[order], task.y_train[order])
    np.testing.assert_array_equal(targets, np.arange(3, 20))
    np.testing.assert_array_equal(inputs, targets[:, None] + np.array([-3, -2, -1]))

    inputs, targets = hours_of(prepared, task.x_val, task.y_val)
    np.testing.assert_array_equal(targets, [23, 24, 25, 26, 27, 28, 29])
    np.testing.assert_array_equal(inputs[0], [20, 21, 22])
    _, targets = hours_of(prepared, task.x_test, task.y_test)
    np.testing.assert_array_equal(targets, np.arange(33, 40))

    assert prepared.data.input_shape == (3, len(FEATURES))
    assert task.x_train.dtype == np.float32
    assert task.y_train.dtype == np.float32
    assert prepared.data.kind == "regression"
    assert prepared.data.num_outputs == 1
    assert prepared.data.target_unit == "µg/m³"
    assert task.name == "Aotizhongxin"


def test_standardized_values_hand_check(tmp_path):
    write_station(tmp_path, "Aotizhongxin", station_table(40))
    prepared = prepare_beijing(tmp_path, ["Aotizhongxin"], **SPLIT)
    train_hours = np.arange(20.0)

    assert prepared.standardizer.mean[PM25] == pytest.approx(train_hours.mean())
    assert prepared.standardizer.std[PM25] == pytest.approx(train_hours.std())
    assert prepared.data.target_scale == pytest.approx(train_hours.std())
    # PM10 = 2 * hour + 1, so its standardized value equals that of PM2.5.
    task = prepared.data.tasks[0]
    pm10 = FEATURES.index("PM10")
    np.testing.assert_allclose(task.x_test[:, :, pm10], task.x_test[:, :, PM25], atol=1e-6)
    # RAIN is 0 throughout, so it is centred and divided by 1.
    assert prepared.standardizer.std[FEATURES.index("RAIN")] == 1.0


def test_short_gap_interpolated(tmp_path):
    table = station_table(40)
    table["PM2.5"][7] = table["PM2.5"][8] = None
    table["TEMP"][11] = None
    write_station(tmp_path, "Aotizhongxin", table)
    prepared = prepare_beijing(tmp_path, ["Aotizhongxin"], **SPLIT)
    task = prepared.data.tasks[0]
    inputs, targets = hours_of(prepared, task.x_train, task.y_train)

    # Interpolation restores PM2.5 = hour exactly at hours 7 and 8.
    window_with_gap = inputs[targets == 10][0]
    np.testing.assert_array_equal(window_with_gap, [7, 8, 9])
    # Filled readings are never targets (hours 7, 8), and a window whose last
    # input hour has a filled feature is dropped (PM2.5 at 8, TEMP at 11).
    assert set(targets) == set(range(3, 20)) - {7, 8, 9, 12}
    temp = FEATURES.index("TEMP")
    scale, shift = prepared.standardizer.std[temp], prepared.standardizer.mean[temp]
    window_13 = task.x_train[targets == 13][0, :, temp] * scale + shift
    expected = (np.array([-2.0 + 0.5 * (h % 6) for h in (10, 12)]).sum()) / 2
    assert window_13[1] == pytest.approx(expected)


def test_long_gap_never_crossed(tmp_path):
    table = station_table(60)
    for hour in range(12, 17):  # 5 missing hours, longer than max_gap=3
        table["PM2.5"][hour] = None
    write_station(tmp_path, "Aotizhongxin", table)
    prepared = prepare_beijing(tmp_path, ["Aotizhongxin"], **SPLIT)
    task = prepared.data.tasks[0]
    inputs, targets = hours_of(prepared, task.x_train, task.y_train)

    covered = set(inputs.ravel()) | set(targets)
    assert covered.isdisjoint(range(12, 17))
    assert set(targets) == set(range(3, 12)) | set(range(20, 30))

    settings = dict(SPLIT, max_gap=5, window=6)
    prepared = prepare_beijing(tmp_path, ["Aotizhongxin"], **settings)
    inputs, targets = hours_of(prepared, prepared.data.tasks[0].x_train, prepared.data.tasks[0].y_train)
    np.testing.assert_array_equal(inputs[targets == 18][0], np.arange(12, 18))


def test_whole_missing_rows_are_gaps(tmp_path):
    lines = station_lines("Aotizhongxin", station_table(40))
    del lines[1 + 15]  # the row of hour 15
    (tmp_path / file_name("Aotizhongxin")).write_text("\n".join(lines) + "\n")
    prepared = prepare_beijing(tmp_path, ["Aotizhongxin"], **SPLIT)
    task = prepared.data.tasks[0]
    inputs, targets = hours_of(prepared, task.x_train, task.y_train)
    assert 15 in inputs[targets == 17][0], "one missing hour is interpolated"
    assert 15 not in set(targets)
    assert 16 not in set(targets), "the last input hour must be observed"


def test_wind_direction_encoding(tmp_path):
    table = station_table(8)
    table["wd"] = ["N", "E", "S", "W", "NNE", None, "SW", "NW"]
    table["WSPM"][7] = 0.0
    write_station(tmp_path, "Aotizhongxin", table)
    (series,) = read_beijing(tmp_path, ["Aotizhongxin"])
    wind = series.values[:, [FEATURES.index("wd_sin"), FEATURES.index("wd_cos")]]

    s = np.sqrt(0.5)
    expected = [[0, 1], [1, 0], [0, -1], [-1, 0], [np.sin(np.pi / 8), np.cos(np.pi / 8)]]
    np.testing.assert_allclose(wind[:5], expected, atol=1e-6)
    assert np.isnan(wind[5]).all(), "NA wd is a missing reading"
    np.testing.assert_allclose(wind[6], [-s, -s], atol=1e-6)
    # Calm air (WSPM = 0) has no direction.
    np.testing.assert_array_equal(wind[7], [0, 0])


def test_hour_of_day_encoding(tmp_path):
    write_station(tmp_path, "Aotizhongxin", station_table(30))
    (series,) = read_beijing(tmp_path, ["Aotizhongxin"])
    hour = series.values[:, [FEATURES.index("hour_sin"), FEATURES.index("hour_cos")]]
    np.testing.assert_allclose(hour[6], [1, 0], atol=1e-6)
    np.testing.assert_allclose(hour[24], hour[0], atol=1e-6)
    assert str(np.datetime64(int(series.hours[0]), "h")) == "2013-03-01T00"


def test_no_leak_from_val_or_test(tmp_path):
    # Huge readings only in the validation and test periods of both stations,
    # and a gap that straddles the train/validation cut.
    tables = {}
    for station, offset in (("Aotizhongxin", 0.0), ("Changping", 100.0)):
        table = station_table(40, TEMP=[offset + (h % 5) for h in range(40)])
        for hour in range(20, 40):
            table["PM2.5"][hour] = 1e6 + hour
            table["TEMP"][hour] = -1e6
        table["PM2.5"][19] = None
        write_station(tmp_path, station, table)
        tables[station] = table
    prepared = prepare_beijing(tmp_path, ["Aotizhongxin", "Changping"], **SPLIT)

    train_pm25 = np.array([h for h in range(19)] * 2, float)
    train_temp = np.array([o + (h % 5) for o in (0.0, 100.0) for h in range(20)])
    assert prepared.standardizer.mean[PM25] == pytest.approx(train_pm25.mean())
    assert prepared.standardizer.std[PM25] == pytest.approx(train_pm25.std())
    assert prepared.data.target_scale == pytest.approx(train_pm25.std())
    temp = FEATURES.index("TEMP")
    assert prepared.standardizer.mean[temp] == pytest.approx(train_temp.mean())
    assert prepared.standardizer.std[temp] == pytest.approx(train_temp.std())

    # Hour 19 is not interpolated from hour 20 of the validation period.
    for task in prepared.data.tasks:
        assert np.abs(task.x_train).max() < 10
        inputs, targets = hours_of(prepared, task.x_train, task.y_train)
        assert inputs.max() <= 18
        assert targets.max() <= 18


def test_chronological_split_two_stations(tmp_path):
    # Changping starts 10 hours later; the cut points are shared calendar hours.
    write_station(tmp_path, "Aotizhongxin", station_table(60))
    later = datetime.datetime(2013, 3, 1, 10)
    write_station(tmp_path, "Changping", station_table(50, **{"PM2.5": list(np.arange(10.0, 60))}), later)
    prepared = prepare_beijing(tmp_path, ["Changping", "Aotizhongxin"], **SPLIT)

    assert prepared.data.task_names == ("Changping", "Aotizhongxin")
    assert prepared.periods.describe("test") == "2013-03-02T21 to 2013-03-03T11"
    for task in prepared.data.tasks:
        _, train = hours_of(prepared, task.x_train, task.y_train)
        _, val = hours_of(prepared, task.x_val, task.y_val)
        _, test = hours_of(prepared, task.x_test, task.y_test)
        assert train.max() < 30 <= val.min()
        assert val.max() < 45 <= test.min()
    assert prepared.counts[0] == {"train": 17, "val": 12, "test": 12}
    assert prepared.counts[1] == {"train": 27, "val": 12, "test": 12}


def test_station_names_case_insensitive(tmp_path):
    write_station(tmp_path, "Dingling", station_table(40))
    data = load_beijing(tmp_path, ["dingling"], **SPLIT)
    assert data.task_names == ("Dingling",)


def test_missing_station_lists_found(tmp_path):
    write_station(tmp_path, "Aotizhongxin", station_table(40))
    write_station(tmp_path, "Changping", station_table(40))
    with pytest.raises(ValueError) as error:
        load_beijing(tmp_path, ["Aotizhongxin", "Dingling"], **SPLIT)
    message = str(error.value)
    assert "'Dingling' not found" in message
    assert "PRSA_Data_Dingling_20130301-20170228.csv" in message
    assert "['Aotizhongxin', 'Changping']" in message


def test_empty_folder_lists_none(tmp_path):
    with pytest.raises(ValueError, match="Stations found: none"):
        load_beijing(tmp_path, ["Dingling"])


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_beijing(tmp_path / "absent", ["Dingling"])


@pytest.mark.parametrize("stations", [[], "Dingling", ["Dingling", "dingling"]])
def test_station_list_rejected(tmp_path, stations):
    write_station(tmp_path, "Dingling", station_table(40))
    with pytest.raises(ValueError, match="non-empty list|more than once"):
        load_beijing(tmp_path, stations, **SPLIT)


MALFORMED = [
    # (line 3 of the file, what the error names)
    ("2,2013,3,1,1,4,4,4,7,300,77,-0.7,1023,-18.8,0,NNW,4.4", "17 fields, expected 18"),
    ("2,2013,3,1,1,4,abc,4,7,300,77,-0.7,1023,-18.8,0,NNW,4.4,Dingling", "PM10 is 'abc'"),
    ("2,2013,3,1,1,4,4,4,7,300,77,,1023,-18.8,0,NNW,4.4,Dingling", "TEMP is ''"),
    ("2,2013,3,1,1,4,4,4,7,300,77,-0.7,1023,-18.8,0,NNW,inf,Dingling", "WSPM is 'inf'"),
    ("2,2013,13,1,1,4,4,4,7,300,77,-0.7,1023,-18.8,0,NNW,4.4,Dingling", "invalid date"),
    ("2,2013,3,1,x,4,4,4,7,300,77,-0.7,1023,-18.8,0,NNW,4.4,Dingling", "invalid date"),
    ("2,2013,3,1,1,4,4,4,7,300,77,-0.7,1023,-18.8,0,NNNW,4.4,Dingling", "wd is 'NNNW'"),
    ("2,2013,3,1,1,4,4,4,7,300,77,-0.7,1023,-18.8,0,NNW,4.4,Changping", "station column"),
    ("2,2013,3,1,0,4,4,4,7,300,77,-0.7,1023,-18.8,0,NNW,4.4,Dingling", "more than one row"),
]


@pytest.mark.parametrize("row, expected", MALFORMED)
def test_malformed_row_named(tmp_path, row, expected):
    lines = station_lines("Dingling", station_table(40))
    lines[2] = row
    (tmp_path / file_name("Dingling")).write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as error:
        load_beijing(tmp_path, ["Dingling"], **SPLIT)
    message = str(error.value)
    assert expected in message
    assert file_name("Dingling") in message
    if expected != "more than one row":
        assert "line 3" in message


@pytest.mark.parametrize("text", ["", "No,year,month,day,hour,PM2.5,PM10,SO2,NO2,CO,O3,TEMP,PRES,DEWP,RAIN,wd,WSPM,station\n"])
def test_empty_file(tmp_path, text):
    (tmp_path / file_name("Dingling")).write_text(text)
    with pytest.raises(ValueError, match=r"PRSA_Data_Dingling_20130301-20170228\.csv: (empty file|no data rows)"):
        load_beijing(tmp_path, ["Dingling"], **SPLIT)


def test_wrong_header(tmp_path):
    lines = station_lines("Dingling", station_table(40))
    lines[0] = lines[0].replace("PM2.5", "PM25")
    (tmp_path / file_name("Dingling")).write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="does not match the UCI columns"):
        load_beijing(tmp_path, ["Dingling"], **SPLIT)


def test_station_ending_before_test_period(tmp_path):
    write_station(tmp_path, "Aotizhongxin", station_table(80))
    write_station(tmp_path, "Dingling", station_table(50))
    with pytest.raises(ValueError) as error:
        load_beijing(tmp_path, ["Aotizhongxin", "Dingling"], **SPLIT)
    message = str(error.value)
    assert "station Dingling" in message
    assert "test period 2013-03-03T12 to 2013-03-04T07" in message
    assert "Remove the station" in message


def test_station_without_test_readings(tmp_path):
    table = station_table(40)
    table["PM2.5"][30:] = [None] * 10
    write_station(tmp_path, "Dingling", table)
    with pytest.raises(ValueError, match="station Dingling .* in the test period"):
        load_beijing(tmp_path, ["Dingling"], **SPLIT)


def make_zip(folder, stations, nested=False):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for station in stations:
            text = "\n".join(station_lines(station, station_table(40))) + "\n"
            archive.writestr(f"PRSA_Data_20130301-20170228/{file_name(station)}", text)
    path = folder / "PRSA2017_Data_20130301-20170228.zip"
    if nested:
        outer = io.BytesIO()
        with zipfile.ZipFile(outer, "w") as archive:
            archive.writestr(path.name, buffer.getvalue())
        path = folder / "beijing+multi+site+air+quality+data.zip"
        path.write_bytes(outer.getvalue())
    else:
        path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize("nested", [False, True])
def test_zip_matches_folder(tmp_path, nested):
    zipped = make_zip(tmp_path, ["Aotizhongxin", "Dingling"], nested)
    folder = tmp_path / "folder"
    folder.mkdir()
    for station in ("Aotizhongxin", "Dingling"):
        write_station(folder, station, station_table(40))

    from_zip = load_beijing(zipped, ["Dingling", "Aotizhongxin"], **SPLIT)
    from_folder = load_beijing(folder, ["Dingling", "Aotizhongxin"], **SPLIT)
    assert from_zip.task_names == ("Dingling", "Aotizhongxin")
    for a, b in zip(from_zip.tasks, from_folder.tasks):
        np.testing.assert_array_equal(a.x_train, b.x_train)
        np.testing.assert_array_equal(a.y_test, b.y_test)


def test_corrupt_zip(tmp_path):
    path = tmp_path / "PRSA2017_Data_20130301-20170228.zip"
    path.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(ValueError, match="not a readable zip.*Download it again"):
        load_beijing(path, ["Dingling"])


def test_truncated_zip(tmp_path):
    good = make_zip(tmp_path, ["Dingling"]).read_bytes()
    path = tmp_path / "truncated.zip"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="not a readable zip"):
        load_beijing(path, ["Dingling"])


def test_corrupt_zip_member(tmp_path):
    path = make_zip(tmp_path, ["Dingling"])
    data = bytearray(path.read_bytes())
    data[60:80] = bytes(20)  # inside the compressed member, before the directory
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="cannot be read from the zip|not a readable zip"):
        load_beijing(path, ["Dingling"])
