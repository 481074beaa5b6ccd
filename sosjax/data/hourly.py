"""Run settings of the hourly domains (beijing, nycweather): loader arguments and example caps."""

from __future__ import annotations

import dataclasses

import numpy as np

from sosjax.data.tasks import MultiTaskData


def hourly_settings(data_config) -> dict:
    """Return the windowing arguments of `load_beijing` and `load_nycweather` from `config.data`."""
    return {
        "window": data_config.window,
        "max_gap": data_config.max_gap,
        "val_fraction": data_config.val_fraction,
        "test_fraction": data_config.test_fraction,
    }


def limit_examples(data: MultiTaskData, max_train: int | None, max_test: int | None) -> MultiTaskData:
    """Keep at most `max_train` training and `max_test` validation and test windows per task.

    Training windows are already shuffled, so the first `max_train` are a random
    sample. Validation and test windows are in time order; the kept ones are
    spaced evenly over the period, so a capped test set still covers all of it.
    None keeps every window of that split.
    """
    tasks = []
    for task in data.tasks:
        train = slice(None) if max_train is None else slice(0, max_train)
        val = _evenly_spaced(len(task.y_val), max_test)
        test = _evenly_spaced(len(task.y_test), max_test)
        tasks.append(
            dataclasses.replace(
                task,
                x_train=task.x_train[train],
                y_train=task.y_train[train],
                x_val=task.x_val[val],
                y_val=task.y_val[val],
                x_test=task.x_test[test],
                y_test=task.y_test[test],
            )
        )
    return dataclasses.replace(data, tasks=tuple(tasks))


def _evenly_spaced(count: int, limit: int | None) -> np.ndarray:
    """Indices of at most `limit` of `count` items, first and last included, in order."""
    if limit is None or count <= limit:
        return np.arange(count)
    return np.unique(np.round(np.linspace(0, count - 1, limit)).astype(int))
