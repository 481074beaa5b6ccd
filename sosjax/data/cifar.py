"""Reading CIFAR-10's python-pickle batch folder (`cifar-10-batches-py`).

Each batch file is a pickled dict. Its `data` is `uint8[n, 3072]`: one row per
image, with the 1,024 red, then green, then blue values of a 32×32 image in
row-major order. Its `labels` is a list of n integers in 0..9. The training split is
`data_batch_1` to `data_batch_5`, the test split `test_batch`.
"""

from __future__ import annotations

import pathlib

import numpy as np

from sosjax.data.pickled import load_array_pickle
from sosjax.data.raw_images import RawImageSplits

TRAIN_BATCHES = tuple(f"data_batch_{index}" for index in range(1, 6))
TEST_BATCH = "test_batch"
SUBFOLDER = "cifar-10-batches-py"


def find_cifar10_folder(folder: pathlib.Path) -> pathlib.Path | None:
    """Return the folder holding the batch files: `folder` or its `cifar-10-batches-py`."""
    for candidate in (folder, folder / SUBFOLDER):
        if (candidate / TEST_BATCH).is_file() or (candidate / TRAIN_BATCHES[0]).is_file():
            return candidate
    return None


def read_cifar10_batches(folder: str | pathlib.Path) -> RawImageSplits:
    """Read the five training batches and the test batch as `uint8[n, 32, 32, 3]` images.

    `folder` may hold the batch files or contain them in `cifar-10-batches-py/`.

    Raises:
      FileNotFoundError: the folder or one of the six batch files is missing.
      ValueError: a batch is not a dict with `data uint8[n, 3072]` and n integer labels.
        (`read_image_splits` checks the label range.)
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"CIFAR-10 batch folder not found: {folder}")

    batch_folder = find_cifar10_folder(folder) or folder
    missing = [name for name in (*TRAIN_BATCHES, TEST_BATCH) if not (batch_folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 batch files missing in {batch_folder}: {', '.join(missing)}. Extract "
            "cifar-10-python.tar.gz there (it holds data_batch_1..5 and test_batch)."
        )

    train = [_read_batch(batch_folder / name) for name in TRAIN_BATCHES]
    x_test, y_test = _read_batch(batch_folder / TEST_BATCH)
    return RawImageSplits(
        x_train=np.concatenate([images for images, _ in train]),
        y_train=np.concatenate([labels for _, labels in train]),
        x_test=x_test,
        y_test=y_test,
        max_pixel=255.0,
        origin=f"CIFAR-10 batches in {batch_folder}",
    )


def _read_batch(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    batch = load_array_pickle(path, encoding="bytes")
    if not isinstance(batch, dict):
        raise ValueError(
            f"{path} contains {type(batch).__name__}, expected a CIFAR-10 batch dict with "
            "'data' and 'labels'."
        )

    # Batches pickled by Python 2 have bytes keys; re-pickled copies may have str keys.
    batch = {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(
            f"{path} has keys {sorted(map(str, batch))}, expected 'data' and 'labels'."
        )

    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{path}: 'data' is {data.dtype.name}{list(data.shape)}, expected uint8[n, 3072] "
            "(32×32 images, red then green then blue planes)."
        )
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path}: 'labels' has {labels.size} entries of type {labels.dtype.name}, "
            f"expected {data.shape[0]} integers, one per image."
        )

    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)
