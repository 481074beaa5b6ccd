"""Label-subset tasks: each task is a subset of a data set's classes."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

# Preset name -> task name -> class names. Every preset covers all ten classes, so the
# union of its tasks is the whole data set.
PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "even_odd": {
        "even": ("0", "2", "4", "6", "8"),
        "odd": ("1", "3", "5", "7", "9"),
    },
    "animals_vehicles": {
        "animals": ("bird", "cat", "deer", "dog", "frog", "horse"),
        "vehicles": ("airplane", "automobile", "ship", "truck"),
    },
    "clothing_footwear": {
        "clothing": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Shirt"),
        "footwear_and_bags": ("Sandal", "Sneaker", "Bag", "Ankle boot"),
    },
}

# Task names become file and folder names of a run, so they are kept path-safe.
_TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

TaskSpec = str | Mapping[str, Sequence[str | int]]


def resolve_label_tasks(
    tasks: TaskSpec, class_names: Sequence[str], presets: Sequence[str]
) -> dict[str, tuple[int, ...]]:
    """Turn a preset name or a mapping task name -> classes into sorted class indices.

    A class is given by its index or its name (case-insensitive). `presets` are
    the preset names that apply to the data set.

    Raises:
      ValueError: unknown preset, invalid task name, empty task, unknown or
        repeated class.
    """
    if isinstance(tasks, str):
        if tasks not in presets:
            raise ValueError(
                f"Unknown task preset '{tasks}' for this data set; presets: {', '.join(presets)}. "
                "Or pass a mapping task name -> list of class names or indices."
            )
        tasks = PRESETS[tasks]

    if not isinstance(tasks, Mapping) or not tasks:
        raise ValueError(
            f"tasks must be a preset name ({', '.join(presets)}) or a non-empty mapping "
            f"task name -> class names or indices, got {tasks!r}."
        )

    return {
        _check_task_name(name): _resolve_classes(name, classes, class_names)
        for name, classes in tasks.items()
    }


def _check_task_name(name: object) -> str:
    if not isinstance(name, str) or not _TASK_NAME.fullmatch(name):
        raise ValueError(
            f"Invalid task name {name!r}: use letters, digits, '_', '.' and '-', starting "
            "with a letter or digit, because it names the task's files."
        )
    return name


def _resolve_classes(task: str, classes: Sequence[str | int], class_names: Sequence[str]) -> tuple[int, ...]:
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) or not classes:
        raise ValueError(
            f"Task '{task}' must list one or more classes (names or indices), got {classes!r}."
        )

    by_name = {name.lower(): index for index, name in enumerate(class_names)}
    indices = []
    for item in classes:
        if isinstance(item, str) and item.lower() in by_name:
            indices.append(by_name[item.lower()])
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool) and 0 <= item < len(class_names):
            indices.append(int(item))
        else:
            raise ValueError(
                f"Unknown class {item!r} in task '{task}'; use an index in 0..{len(class_names) - 1} "
                f"or one of the names {list(class_names)}."
            )

    if len(set(indices)) != len(indices):
        raise ValueError(f"Task '{task}' lists a class twice: {list(classes)}.")
    return tuple(sorted(indices))
