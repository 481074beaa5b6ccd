"""Image classification data as label-subset tasks: `load_image_data`."""

from __future__ import annotations

import pathlib

import numpy as np

from sosjax.data import splits
from sosjax.data.image_datasets import dataset_spec, read_image_splits
from sosjax.data.label_tasks import TaskSpec, resolve_label_tasks
from sosjax.data.tasks import MultiTaskData, TaskData

_STATS_CHUNK = 4096


def load_image_data(
    name: str = "digits",
    *,
    path: str | pathlib.Path | None = None,
    source: str = "auto",
    tasks: TaskSpec | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    max_train_per_task: int | None = None,
    max_test_per_task: int | None = None,
) -> MultiTaskData:
    """Load an image data set as label-subset tasks with fixed splits.

    Images are `f32[n, H, W, C]`: pixels scaled to [0, 1], then standardized per
    channel with the mean and standard deviation of the union of the tasks'
    training splits, which is the data the JAT trains on. Validation and test
    data never influence the statistics. Labels are `int32[n]` indices of the full
    label space (10 classes for every data set here), also inside a task.

    Splits, all fixed by `seed`: the test split is the data set's own (digits: a
    stratified 20% of the 1,797 images). The validation split is a stratified
    `val_fraction` of the training split, carved before the tasks are formed, so
    no image is in the training split of one task and the validation split of
    another. `max_train_per_task` and `max_test_per_task` keep a stratified
    subsample of each task's split; the validation split is then capped at
    round(max_train_per_task × val_fraction / (1 − val_fraction)) to keep its
    ratio to the training split.

    Args:
      name: "digits" (scikit-learn, the default), "mnist", "fashion_mnist" or "cifar10".
      path: a folder or file holding the data (see `image_datasets`); None for
        digits and for the default locations.
      source: "auto" (try what exists) or one of "sklearn", "idx", "pickle", "tfds"
        that the data set accepts.
      tasks: a preset name ("even_odd" for digits and mnist, "clothing_footwear"
        for fashion_mnist, "animals_vehicles" for cifar10; the default), or a
        mapping task name -> class names or indices.
      seed: seed of every split and subsample, an integer >= 0.
      val_fraction: fraction of each class held out for validation, in [0, 1).
      max_train_per_task: keep at most this many training images per task.
      max_test_per_task: keep at most this many test images per task.

    Raises:
      FileNotFoundError: the data is not at `path` or the default locations.
      ValueError: an invalid argument or a file with the wrong content.
    """
    spec = dataset_spec(name)
    _check_arguments(seed, val_fraction, max_train_per_task, max_test_per_task)
    task_spec = tasks if tasks is not None else spec.presets[0]
    task_classes = resolve_label_tasks(task_spec, spec.class_names, spec.presets)
    raw = read_image_splits(spec, path, source, seed)

    val_rng = splits.seeded_rng(seed, splits.STREAM_VAL_SPLIT)
    train, val = splits.stratified_split(raw.y_train, val_fraction, val_rng)
    val_cap = None
    if max_train_per_task is not None:
        val_cap = int(np.floor(max_train_per_task * val_fraction / (1.0 - val_fraction) + 0.5))

    selections = []
    for task_index, (task_name, classes) in enumerate(task_classes.items()):
        rngs = [splits.seeded_rng(seed, splits.STREAM_SUBSAMPLE, task_index, part) for part in range(3)]
        task_train = _select(train, raw.y_train, classes, max_train_per_task, rngs[0])
        task_val = _select(val, raw.y_train, classes, val_cap, rngs[1])
        task_test = _select(np.arange(len(raw.y_test)), raw.y_test, classes, max_test_per_task, rngs[2])
        if len(task_train) == 0 or len(task_test) == 0:
            raise ValueError(
                f"Task '{task_name}' (classes {list(classes)}) has {len(task_train)} training and "
                f"{len(task_test)} test images in {raw.origin}; every task needs both. Check "
                "the task's classes."
            )
        selections.append((task_name, classes, task_train, task_val, task_test))

    jat_train = np.unique(np.concatenate([task_train for _, _, task_train, _, _ in selections]))
    mean, std = _channel_mean_std(raw.x_train, jat_train, raw.max_pixel)

    def standardize(images: np.ndarray) -> np.ndarray:
        return ((images.astype(np.float32) / np.float32(raw.max_pixel) - mean) / std).astype(np.float32)

    task_data = tuple(
        TaskData(
            name=task_name,
            x_train=standardize(raw.x_train[task_train]),
            y_train=raw.y_train[task_train].astype(np.int32),
            x_val=standardize(raw.x_train[task_val]),
            y_val=raw.y_train[task_val].astype(np.int32),
            x_test=standardize(raw.x_test[task_test]),
            y_test=raw.y_test[task_test].astype(np.int32),
            classes=classes,
        )
        for task_name, classes, task_train, task_val, task_test in selections
    )
    return MultiTaskData(
        tasks=task_data,
        kind="classification",
        num_outputs=len(spec.class_names),
        input_shape=spec.image_shape,
        labels=spec.class_names,
        preprocessing={"scale": float(raw.max_pixel), "mean": mean.tolist(), "std": std.tolist()},
    )


def _check_arguments(
    seed: int, val_fraction: float, max_train: int | None, max_test: int | None
) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}.")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}.")
    for field, value in (("max_train_per_task", max_train), ("max_test_per_task", max_test)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{field} must be None or an integer >= 1, got {value!r}.")


def _select(
    indices: np.ndarray, labels: np.ndarray, classes: tuple[int, ...], max_count: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Indices among `indices` whose label is in `classes`, subsampled to `max_count`."""
    chosen = indices[np.isin(labels[indices], classes)]
    if max_count is None:
        return chosen
    return chosen[splits.stratified_subsample(labels[chosen], max_count, rng)]


def _channel_mean_std(images: np.ndarray, indices: np.ndarray, max_pixel: float) -> tuple[np.ndarray, np.ndarray]:
    channels = images.shape[-1]
    total = np.zeros(channels)
    total_squares = np.zeros(channels)

    # Chunks bound the float64 copy to a few MB even for CIFAR-10's 50,000 images.
    for start in range(0, len(indices), _STATS_CHUNK):
        chunk = images[indices[start : start + _STATS_CHUNK]].astype(np.float64) / max_pixel
        total += chunk.sum(axis=(0, 1, 2))
        total_squares += np.square(chunk).sum(axis=(0, 1, 2))

    count = len(indices) * images.shape[1] * images.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(total_squares / count - np.square(mean), 0.0))
    # A constant channel would divide by zero; it is only centred.
    std = np.where(std > 1e-12, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)
