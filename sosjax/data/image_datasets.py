"""The supported image data sets, and finding and reading their files.

Sources:
  "sklearn": scikit-learn's embedded digits (8×8, 1,797 images, no files needed).
  "idx": a folder with the four standard IDX files, plain or gzipped.
  "pickle": MNIST's classic `mnist.pkl.gz` (a folder holding it, or the file
    itself); for CIFAR-10, the python-pickle batch folder.
  "tfds": a TensorFlow Datasets data directory where the data set is prepared.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib

import numpy as np

from sosjax.data import cifar, idx, pickled, splits, tfds_source
from sosjax.data.raw_images import RawImageSplits

logger = logging.getLogger(__name__)

DIGITS_TEST_FRACTION = 0.2
MNIST_PICKLE_NAME = "mnist.pkl.gz"


@dataclasses.dataclass(frozen=True)
class ImageDatasetSpec:
    """Description of one supported image data set: classes, shape, sources, presets."""

    name: str
    class_names: tuple[str, ...]
    #: One image, `(H, W, C)`.
    image_shape: tuple[int, int, int]
    #: Accepted values of `source`, in the order that `source="auto"` tries them.
    sources: tuple[str, ...]
    #: Task presets that apply; the first is the default.
    presets: tuple[str, ...]
    tfds_name: str | None = None
    #: Folder used when no path is given, e.g. where a Debian package installs the files.
    default_folder: pathlib.Path | None = None
    #: How to obtain the files, for error messages.
    how_to_get: str = ""


DATASETS: dict[str, ImageDatasetSpec] = {
    spec.name: spec
    for spec in (
        ImageDatasetSpec(
            name="digits",
            class_names=tuple(str(digit) for digit in range(10)),
            image_shape=(8, 8, 1),
            sources=("sklearn",),
            presets=("even_odd",),
        ),
        ImageDatasetSpec(
            name="mnist",
            class_names=tuple(str(digit) for digit in range(10)),
            image_shape=(28, 28, 1),
            sources=("idx", "pickle", "tfds"),
            presets=("even_odd",),
            tfds_name="mnist",
            how_to_get=(
                "Pass path= a folder with the four MNIST IDX files (train-images-idx3-ubyte[.gz] "
                "and so on), a folder with mnist.pkl.gz or that file itself, or a TFDS data_dir "
                "where 'mnist' is prepared."
            ),
        ),
        ImageDatasetSpec(
            name="fashion_mnist",
            class_names=(
                "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
            ),
            image_shape=(28, 28, 1),
            sources=("idx", "tfds"),
            presets=("clothing_footwear",),
            tfds_name="fashion_mnist",
            default_folder=pathlib.Path("/usr/share/datasets/fashion-mnist"),
            how_to_get=(
                "Install the Debian package dataset-fashion-mnist (it puts the IDX files in "
                "/usr/share/datasets/fashion-mnist/), or pass path= a folder with the four "
                "IDX files or a TFDS data_dir where 'fashion_mnist' is prepared."
            ),
        ),
        ImageDatasetSpec(
            name="cifar10",
            class_names=(
                "airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck",
            ),
            image_shape=(32, 32, 3),
            sources=("pickle", "tfds"),
            presets=("animals_vehicles",),
            tfds_name="cifar10",
            how_to_get=(
                "Pass path= the folder of the CIFAR-10 python version (data_batch_1..5 and "
                "test_batch, directly or in cifar-10-batches-py/), or a TFDS data_dir where "
                "'cifar10' is prepared."
            ),
        ),
    )
}


def dataset_spec(name: str) -> ImageDatasetSpec:
    """Look up a data set by name; raise `ValueError` naming the known ones."""
    if name not in DATASETS:
        raise ValueError(f"Unknown image data set {name!r}; choose one of {', '.join(DATASETS)}.")
    return DATASETS[name]


def read_image_splits(
    spec: ImageDatasetSpec, path: str | pathlib.Path | None, source: str, seed: int
) -> RawImageSplits:
    """Read a data set's own training and test splits from `source` ("auto" or one of `spec.sources`).

    `seed` only matters for digits, which has no test split of its own.

    Raises:
      FileNotFoundError: no data at `path` (or the default locations for "auto").
      ValueError: an invalid source or path, or files with the wrong content.
    """
    if source != "auto" and source not in spec.sources:
        raise ValueError(
            f"Invalid source {source!r} for {spec.name}; choose 'auto' or one of "
            f"{', '.join(repr(item) for item in spec.sources)}."
        )

    if spec.name == "digits":
        if path not in (None, ""):
            raise ValueError(
                f"digits is embedded in scikit-learn and reads no files, but path={path!r} "
                "was given; leave path unset or choose another data set."
            )
        raw = _read_digits(seed)
    else:
        location = pathlib.Path(path).expanduser() if path not in (None, "") else None
        if source == "auto":
            source, location = _detect_source(spec, location)
        raw = _read_source(spec, source, location)

    _check_splits(raw, spec)
    logger.info("Read %s: %s", spec.name, raw.origin)
    return raw


def _read_digits(seed: int) -> RawImageSplits:
    from sklearn.datasets import load_digits  # noqa: PLC0415 (sklearn import is slow)

    digits = load_digits()
    images = digits.images.astype(np.uint8)[..., np.newaxis]
    labels = digits.target.astype(np.int64)

    # digits has no test split of its own: hold out a seeded, stratified part.
    rng = splits.seeded_rng(seed, splits.STREAM_TEST_SPLIT)
    train, test = splits.stratified_split(labels, DIGITS_TEST_FRACTION, rng)
    return RawImageSplits(
        x_train=images[train],
        y_train=labels[train],
        x_test=images[test],
        y_test=labels[test],
        max_pixel=16.0,
        origin=f"scikit-learn digits, seeded {DIGITS_TEST_FRACTION:.0%} test split",
    )


def _read_source(spec: ImageDatasetSpec, source: str, location: pathlib.Path | None) -> RawImageSplits:
    if source == "tfds":
        data_dir = location or tfds_source.default_tfds_data_dir()
        return tfds_source.read_prepared_tfds(spec.tfds_name, data_dir)

    if location is None:
        location = spec.default_folder
    if location is None:
        raise ValueError(f"source={source!r} for {spec.name} needs path=. {spec.how_to_get}")
    if not location.exists():
        raise FileNotFoundError(f"{spec.name} data path not found: {location}. {spec.how_to_get}")

    if source == "idx":
        if not location.is_dir():
            raise ValueError(f"source='idx' needs a folder, but {location} is a file. {spec.how_to_get}")
        return idx.read_idx_folder(location)
    if spec.name == "cifar10":
        return cifar.read_cifar10_batches(location)
    return pickled.read_mnist_pickle(location / MNIST_PICKLE_NAME if location.is_dir() else location)


def _detect_source(
    spec: ImageDatasetSpec, location: pathlib.Path | None
) -> tuple[str, pathlib.Path | None]:
    """Pick the first source whose files exist; raise `FileNotFoundError` naming where it looked."""
    if location is not None and not location.exists():
        raise FileNotFoundError(f"{spec.name} data path not found: {location}. {spec.how_to_get}")
    if location is not None and location.is_file():
        if "pickle" in spec.sources and spec.name == "mnist":
            return "pickle", location
        raise ValueError(f"{spec.name} needs a folder, but {location} is a file. {spec.how_to_get}")

    folders = [location] if location is not None else [spec.default_folder]
    looked_in = []
    for folder in folders:
        if folder is None:
            continue
        looked_in.append(str(folder))
        if not folder.is_dir():
            continue
        if "idx" in spec.sources and _has_any_idx_file(folder):
            return "idx", folder
        if spec.name == "mnist" and (folder / MNIST_PICKLE_NAME).is_file():
            return "pickle", folder
        if spec.name == "cifar10" and cifar.find_cifar10_folder(folder) is not None:
            return "pickle", folder

    tfds_dir = location or tfds_source.default_tfds_data_dir()
    if tfds_source.is_tfds_prepared(spec.tfds_name, tfds_dir):
        return "tfds", tfds_dir
    looked_in.append(f"TFDS data_dir {tfds_dir}")

    raise FileNotFoundError(
        f"No {spec.name} data found; looked in: {'; '.join(looked_in)}. {spec.how_to_get}"
    )


def _has_any_idx_file(folder: pathlib.Path) -> bool:
    return any(idx.find_idx_file(folder, name) is not None for name in idx.IDX_FILE_NAMES.values())


def _check_splits(raw: RawImageSplits, spec: ImageDatasetSpec) -> None:
    for split, images, labels in (("training", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)):
        if images.ndim != 4 or images.shape[1:] != spec.image_shape:
            raise ValueError(
                f"{raw.origin}: {split} images have shape {images.shape}, but {spec.name} "
                f"images are (n, {', '.join(map(str, spec.image_shape))}). Check that the "
                f"files belong to {spec.name}."
            )
        if len(images) == 0 or labels.shape != (len(images),):
            raise ValueError(
                f"{raw.origin}: the {split} split has {len(images)} images and labels of "
                f"shape {labels.shape}; expected at least one image and one label per image."
            )
        if labels.min() < 0 or labels.max() >= len(spec.class_names):
            raise ValueError(
                f"{raw.origin}: {split} labels range over {labels.min()}..{labels.max()}, "
                f"but {spec.name} has classes 0..{len(spec.class_names) - 1}."
            )
