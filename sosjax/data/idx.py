"""Reading IDX files, the binary format of MNIST and Fashion-MNIST.

An IDX file starts with a 4-byte magic number: two zero bytes, a type code and the
number of dimensions. Then come the sizes of the dimensions as big-endian
uint32, then the data in row-major order, big-endian. Files may be gzipped.
"""

from __future__ import annotations

import gzip
import pathlib
import zlib

import numpy as np

from sosjax.data.raw_images import RawImageSplits

# Type code of the magic number's third byte -> big-endian numpy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | pathlib.Path) -> np.ndarray:
    """Read one IDX file, plain or gzipped (by the `.gz` suffix), into an array.

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: the file is not valid IDX (bad magic number, unknown type code,
        truncated data, trailing bytes) or not valid gzip.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")

    content = _read_bytes(path)
    if len(content) < 4:
        raise ValueError(
            f"{path} is truncated: {len(content)} bytes, shorter than the 4-byte IDX magic "
            "number. Replace it with a complete copy."
        )

    zero_0, zero_1, type_code, ndim = content[:4]
    if zero_0 != 0 or zero_1 != 0 or type_code not in IDX_DTYPES:
        raise ValueError(
            f"{path} is not an IDX file: invalid magic number 0x{content[:4].hex()} "
            "(expected 0x0000, a type code in "
            f"{sorted(hex(code) for code in IDX_DTYPES)} and the number of dimensions). "
            "Check that the file is an uncompressed IDX file, or gzipped with a .gz suffix."
        )

    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise ValueError(
            f"{path} is truncated: the header declares {ndim} dimensions but the file "
            f"has only {len(content)} bytes. Replace it with a complete copy."
        )
    shape = tuple(int(size) for size in np.frombuffer(content, ">u4", count=ndim, offset=4))

    dtype = IDX_DTYPES[type_code]
    expected_size = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(content) != expected_size:
        problem = "truncated" if len(content) < expected_size else "longer than its header declares"
        raise ValueError(
            f"{path} is {problem}: shape {shape} of {dtype.name} needs {expected_size} bytes, "
            f"the file has {len(content)}. Replace it with a complete copy."
        )

    data = np.frombuffer(content, dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _read_bytes(path: pathlib.Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as stream:
            return stream.read()
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(
            f"{path} is not a valid gzip file ({error}). Replace it with a complete copy, "
            "or remove the .gz suffix if it is an uncompressed IDX file."
        ) from error


# Standard file names of MNIST and Fashion-MNIST. Some mirrors write a dot in place of
# the dash before "idx"; either may be gzipped.
IDX_FILE_NAMES = {
    "train images": "train-images-idx3-ubyte",
    "train labels": "train-labels-idx1-ubyte",
    "test images": "t10k-images-idx3-ubyte",
    "test labels": "t10k-labels-idx1-ubyte",
}


def find_idx_file(folder: pathlib.Path, base_name: str) -> pathlib.Path | None:
    """Return the first existing variant of a standard IDX file name in `folder`."""
    dotted = base_name.replace("-idx", ".idx")
    for name in (base_name, dotted):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def read_idx_folder(folder: str | pathlib.Path) -> RawImageSplits:
    """Read the four standard MNIST-style IDX files of a folder as `uint8[n, H, W, 1]` images.

    Raises:
      FileNotFoundError: the folder or one of the four files is missing.
      ValueError: a file is invalid IDX, images are not `uint8[n, H, W]`, labels are
        not `uint8[n]`, or the counts of images and labels differ.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"IDX folder not found: {folder}")

    paths = {role: find_idx_file(folder, name) for role, name in IDX_FILE_NAMES.items()}
    missing = [IDX_FILE_NAMES[role] for role, path in paths.items() if path is None]
    if missing:
        raise FileNotFoundError(
            f"IDX files missing in {folder}: {', '.join(missing)} (plain or .gz). Put the "
            "four standard files of the data set there."
        )

    x_train, y_train = _read_pair(paths["train images"], paths["train labels"])
    x_test, y_test = _read_pair(paths["test images"], paths["test labels"])
    return RawImageSplits(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        max_pixel=255.0,
        origin=f"IDX files in {folder}",
    )


def _read_pair(images_path: pathlib.Path, labels_path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)

    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            f"{images_path} contains {images.dtype.name}{list(images.shape)}, expected images "
            "uint8[n, height, width]. Check that the image and label files are not swapped."
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_path} contains {labels.dtype.name}{list(labels.shape)}, expected labels "
            "uint8[n]. Check that the image and label files are not swapped."
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} "
            "labels; both files must come from the same split."
        )
    return images[..., np.newaxis], labels.astype(np.int64)
