"""Multi-task data: the splits of every task that a run works on."""

from __future__ import annotations

import dataclasses

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class TaskData:
    """One task's fixed train, validation and test splits.

    Inputs have a leading example axis: images `f32[n, H, W, C]`, windows
    `f32[n, T, F]`, or a dict of such arrays (translation: token ids and their
    attention masks, `int32[n, S]` and `int32[n, T]`). Targets are `int32[n]`
    class labels of the whole label space (classification), `f32[n]`
    standardized values (regression) or `int32[n, T]` target tokens with -100 at
    padding (translation).
    """

    name: str
    x_train: Any
    y_train: np.ndarray
    x_val: Any
    y_val: np.ndarray
    x_test: Any
    y_test: np.ndarray
    #: Classification: the task's label subset; predictions are restricted to it.
    classes: tuple[int, ...] | None = None


@dataclasses.dataclass(frozen=True)
class MultiTaskData:
    """All tasks of a run over one input space; the JAT trains on their union."""

    tasks: tuple[TaskData, ...]
    #: "classification", "regression" or "translation".
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
    #: How raw inputs become model inputs, for users of exported models; for
    #: images `{"scale": max_pixel, "mean": [...], "std": [...]}` per channel,
    #: meaning `(x / scale - mean) / std` on NHWC arrays.
    preprocessing: dict | None = None

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(task.name for task in self.tasks)


def num_examples(x: Any) -> int:
    """Examples in `x`, an array or a pytree of arrays sharing their leading axis."""
    return len(jax.tree.leaves(x)[0])


def take(x: Any, index: Any) -> Any:
    """`x[index]` for an array or every leaf of a pytree of arrays."""
    return jax.tree.map(lambda leaf: leaf[index], x)


def padded_chunks(x, batch_size: int):
    """Yield `(chunk, count)`: consecutive chunks of `x` (an array or a pytree of
    arrays) as jax arrays of `min(batch_size, n)` rows, the last one padded by
    repeating its last row so that every call has one shape and compiles once;
    `count` is the number of real rows."""
    n = num_examples(x)
    batch_size = min(batch_size, n)
    for i in range(0, n, batch_size):
        rows = np.minimum(np.arange(i, i + batch_size), n - 1)
        yield jax.tree.map(jnp.asarray, take(x, rows)), min(batch_size, n - i)