"""Reading an image data set that TensorFlow Datasets has already prepared.

Nothing here downloads. A data set that is not prepared in the data directory
raises an error that explains how to prepare it. Data prepared in a random-access
format (ArrayRecord, Parquet) is read without TensorFlow; the default TFRecord
format needs TensorFlow installed.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib

import numpy as np

from sosjax.data.raw_images import RawImageSplits

_READ_CHUNK = 4096


def default_tfds_data_dir() -> pathlib.Path:
    """TFDS's data directory: `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`."""
    return pathlib.Path(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")).expanduser()


def is_tfds_prepared(name: str, data_dir: pathlib.Path) -> bool:
    """Check whether TFDS data set `name` (latest version) is prepared under `data_dir`."""
    if not (data_dir / name).is_dir():
        return False
    return _builder(name, data_dir).is_prepared()


def read_prepared_tfds(name: str, data_dir: str | pathlib.Path) -> RawImageSplits:
    """Read the `train` and `test` splits of a prepared TFDS image data set.

    Raises:
      FileNotFoundError: `name` is not prepared under `data_dir`.
      ValueError: the data is in TFRecord format and TensorFlow is not installed.
    """
    data_dir = pathlib.Path(data_dir).expanduser()
    if not is_tfds_prepared(name, data_dir):
        raise FileNotFoundError(
            f"TFDS data set '{name}' is not prepared in {data_dir} (expected "
            f"{data_dir / name}/<version>/dataset_info.json). sosjax never downloads: prepare "
            f"it on a machine with internet, e.g. `tfds build {name} --data_dir {data_dir} "
            "--file_format=array_record`, and copy the folder here."
        )

    builder = _builder(name, data_dir)
    x_train, y_train = _read_split(builder, "train")
    x_test, y_test = _read_split(builder, "test")
    return RawImageSplits(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        max_pixel=255.0,
        origin=f"TFDS {name} in {data_dir}",
    )


def _builder(name: str, data_dir: pathlib.Path):
    import tensorflow_datasets as tfds  # noqa: PLC0415 (import takes about 0.5 s)

    return tfds.builder(name, data_dir=os.fspath(data_dir))


def _tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def _read_split(builder, split: str) -> tuple[np.ndarray, np.ndarray]:
    from tensorflow_datasets.core import file_adapters  # noqa: PLC0415

    if builder.info.file_format in file_adapters.FileFormat.with_random_access():
        source = builder.as_data_source(split=split)
        images, labels = [], []
        for start in range(0, len(source), _READ_CHUNK):
            examples = source.__getitems__(range(start, min(start + _READ_CHUNK, len(source))))
            images.extend(example["image"] for example in examples)
            labels.extend(example["label"] for example in examples)
        return np.stack(images).astype(np.uint8), np.asarray(labels, np.int64)

    if not _tensorflow_installed():
        raise ValueError(
            f"TFDS data set '{builder.name}' in {builder.data_dir} is stored as "
            f"{builder.info.file_format.value}, which needs TensorFlow to read. Install "
            "tensorflow, or prepare it again with --file_format=array_record."
        )

    # NOTE: this TFRecord path is not covered by the tests, which run without TensorFlow.
    import tensorflow_datasets as tfds  # noqa: PLC0415

    arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    return np.asarray(arrays["image"], np.uint8), np.asarray(arrays["label"], np.int64)
