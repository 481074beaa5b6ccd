"""Writers of tiny image data sets in the real on-disk formats, for the loader tests.

Every image carries its identity, so tests can follow it through splits and
standardization. Pixel (0, 0) is `id % 256`, pixel (0, 1) is `id // 256` and pixel
(0, 2) is `20 × label`. Pixel (1, 0) is 0 and pixel (1, 1) is 255 in every image,
so the affine standardization can be undone. Other pixels vary with id and label.
"""

from __future__ import annotations

import gzip
import pathlib
import pickle

import numpy as np

TEST_ID_OFFSET = 1000


def make_images(labels: np.ndarray, *, first_id: int, height: int = 28, width: int = 28, channels: int = 1) -> np.ndarray:
    """`uint8[n, height, width, channels]` images that encode their id and label."""
    labels = np.asarray(labels)
    ids = first_id + np.arange(len(labels))
    rows = np.arange(height)[:, None, None]
    cols = np.arange(width)[None, :, None]
    planes = np.arange(channels)[None, None, :]

    images = np.empty((len(labels), height, width, channels), np.uint8)
    for index, (image_id, label) in enumerate(zip(ids, labels)):
        images[index] = (image_id * 7 + label * 13 + rows * 3 + cols * 5 + planes * 41) % 256
        images[index, 0, 0] = image_id % 256
        images[index, 0, 1] = image_id // 256
        images[index, 0, 2] = 20 * label
        images[index, 1, 0] = 0
        images[index, 1, 1] = 255
    return images


def image_ids(images: np.ndarray) -> np.ndarray:
    """Ids of raw `uint8[n, H, W, C]` images made by `make_images`."""
    return images[:, 0, 0, 0].astype(np.int64) + 256 * images[:, 0, 1, 0].astype(np.int64)


def unstandardize(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undo per-channel standardization of `make_images` images scaled to [0, 1].

    Returns:
      `(raw uint8[n, H, W, C], mean f64[C], std f64[C])` of the standardization.
    """
    low = images[0, 1, 0].astype(np.float64)
    high = images[0, 1, 1].astype(np.float64)
    std = 1.0 / (high - low)
    mean = -low * std
    raw = np.rint((images.astype(np.float64) * std + mean) * 255.0)
    return raw.astype(np.uint8), mean, std


def tiny_labels(counts: list[int]) -> np.ndarray:
    """Labels `int64[sum(counts)]`: `counts[c]` examples of class c, interleaved by class."""
    labels = np.concatenate([np.full(count, label) for label, count in enumerate(counts)])
    return np.random.default_rng(123).permutation(labels).astype(np.int64)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 or int32 array."""
    type_code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[array.dtype]
    header = bytes([0, 0, type_code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: pathlib.Path, array: np.ndarray) -> pathlib.Path:
    """Write `array` as IDX; gzipped if `path` ends in `.gz`."""
    content = idx_bytes(array)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as stream:
            stream.write(content)
    else:
        path.write_bytes(content)
    return path


def write_idx_folder(folder: pathlib.Path, x_train, y_train, x_test, y_test, *, gz: bool = False) -> pathlib.Path:
    """Write the four standard MNIST file names; images `uint8[n, H, W, 1]`."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", x_train[..., 0])
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", y_train.astype(np.uint8))
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", x_test[..., 0])
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", y_test.astype(np.uint8))
    return folder


def write_mnist_pickle(path: pathlib.Path, train, validation, test) -> pathlib.Path:
    """Write the classic `mnist.pkl.gz` layout from (uint8[n, 28, 28, 1], labels) pairs."""
    parts = tuple(
        ((images.reshape(len(images), -1) / np.float32(256.0)).astype(np.float32), labels.astype(np.int64))
        for images, labels in (train, validation, test)
    )
    with gzip.open(path, "wb") as stream:
        pickle.dump(parts, stream, protocol=2)
    return path


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """`uint8[n, 3072]` rows of `uint8[n, 32, 32, 3]` images: red, green, blue planes."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def write_cifar_batch(path: pathlib.Path, images: np.ndarray, labels: np.ndarray, *, bytes_keys: bool = True) -> pathlib.Path:
    """Write one CIFAR-10 batch pickle as the python version stores it."""
    batch = {
        "batch_label": b"tiny batch",
        "labels": [int(label) for label in labels],
        "data": cifar_rows(images),
        "filenames": [f"image_{index}.png".encode() for index in range(len(labels))],
    }
    if bytes_keys:
        batch = {key.encode(): value for key, value in batch.items()}
    with open(path, "wb") as stream:
        pickle.dump(batch, stream, protocol=2)
    return path


def write_cifar_folder(folder: pathlib.Path, x_train, y_train, x_test, y_test) -> pathlib.Path:
    """Split the training images over `data_batch_1..5` and write `test_batch`."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, part in enumerate(np.array_split(np.arange(len(y_train)), 5), start=1):
        write_cifar_batch(folder / f"data_batch_{index}", x_train[part], y_train[part])
    write_cifar_batch(folder / "test_batch", x_test, y_test)
    return folder
