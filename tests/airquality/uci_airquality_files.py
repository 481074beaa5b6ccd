"""Small station files in the exact format of the UCI Beijing Multi-Site Air-Quality data."""

from __future__ import annotations

import datetime
import pathlib

import numpy as np

HEADER = "No,year,month,day,hour,PM2.5,PM10,SO2,NO2,CO,O3,TEMP,PRES,DEWP,RAIN,wd,WSPM,station"
NUMERIC = ("PM2.5", "PM10", "SO2", "NO2", "CO", "O3", "TEMP", "PRES", "DEWP", "RAIN", "WSPM")
START = datetime.datetime(2013, 3, 1, 0)


def file_name(station: str) -> str:
    return f"PRSA_Data_{station}_20130301-20170228.csv"


def station_table(hours: int, **columns) -> dict[str, list]:
    """Readings for `hours` hours from 2013-03-01T00: PM2.5 equals the hour index.

    Other numeric columns default to simple non-constant values; `wd` cycles
    through N, E, S, W. Keyword arguments replace whole columns; None is `NA`.
    """
    index = np.arange(hours, dtype=float)
    table = {
        "PM2.5": list(index),
        "PM10": list(2.0 * index + 1.0),
        "SO2": list(index % 5),
        "NO2": list(30.0 + (index % 7)),
        "CO": list(300.0 + 10.0 * (index % 3)),
        "O3": list(50.0 - (index % 4)),
        "TEMP": list(-2.0 + 0.5 * (index % 6)),
        "PRES": list(1020.0 + (index % 2)),
        "DEWP": list(-10.0 + 0.25 * (index % 8)),
        "RAIN": [0.0] * hours,
        "WSPM": list(1.0 + 0.1 * (index % 9)),
        "wd": [("N", "E", "S", "W")[i % 4] for i in range(hours)],
    }
    table.update(columns)
    return table


def format_cell(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "NA"
    if isinstance(value, str):
        return value
    # The UCI files write whole numbers without a decimal point ("1023", "-0.7").
    return repr(float(value)).removesuffix(".0")


def station_lines(station: str, table: dict[str, list], start: datetime.datetime = START) -> list[str]:
    """CSV lines (header first) of a table from `station_table`."""
    lines = [HEADER]
    for i in range(len(table["PM2.5"])):
        moment = start + datetime.timedelta(hours=i)
        cells = [str(i + 1), str(moment.year), str(moment.month), str(moment.day), str(moment.hour)]
        cells += [format_cell(table[column][i]) for column in NUMERIC[:-1]]
        cells += [format_cell(table["wd"][i]), format_cell(table["WSPM"][i]), station]
        lines.append(",".join(cells))
    return lines


def write_station(
    folder: pathlib.Path,
    station: str,
    table: dict[str, list],
    start: datetime.datetime = START,
) -> pathlib.Path:
    path = folder / file_name(station)
    path.write_text("\n".join(station_lines(station, table, start)) + "\n")
    return path
