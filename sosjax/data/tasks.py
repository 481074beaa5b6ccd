"""Multi-task data: the splits of every task that a run works on."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class TaskData:
    """One task's fixed train, validation and test splits.

    Inputs have a leading example axis: images `f32[n, H, W, C]`, windows
    `f32[n, T, F]`. Targets are `int32[n]` class labels of the whole label space
    (classification) or `f32[n]` standardized values (regression).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    #: Classification: the task's label subset; predictions are restricted to it.
    classes: tuple[int, ...] | None = None


@dataclasses.dataclass(frozen=True)
class MultiTaskData:
    """All tasks of a run over one input space; the JAT trains on their union."""

    tasks: tuple[TaskData, ...]
    #: "classification" or "regression".
    kind: str
    #: Model outputs: number of classes, or regression targets (1).
    num_outputs: int
    #: Shape of one input example, without the batch axis.
    input_shape: tuple[int, ...]
    #: Human-readable class names (classification) or the target's name and unit.
    labels: tuple[str, ...] = ()
    #: Regression: standard deviation of the target in its own units, so that an
    #: RMSE on standardized targets times `target_scale` is in data units.
    target_scale: float = 1.0
    #: Regression: the target's unit, for tables and plots (for example "µg/m³").
    target_unit: str = ""

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(task.name for task in self.tasks)
