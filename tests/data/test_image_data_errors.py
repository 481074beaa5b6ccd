"""load_image_data: every invalid argument and missing or wrong file raises a clear error."""

import dataclasses
import pathlib

import numpy as np
import pytest

from image_file_writers import make_images, tiny_labels, write_idx_folder
from sosjax.data import image_datasets, load_image_data


@pytest.fixture(autouse=True)
def empty_tfds_dir(tmp_path, monkeypatch):
    """Keep "auto" from finding data prepared in the user's own TFDS directory."""
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds"))


def write_tiny(folder, *, size=28, train_labels=None):
    y_train = tiny_labels([4] * 10) if train_labels is None else train_labels
    y_test = tiny_labels([1] * 10)
    return write_idx_folder(
        folder,
        make_images(y_train, first_id=0, height=size, width=size),
        y_train,
        make_images(y_test, first_id=500, height=size, width=size),
        y_test,
    )


def test_unknown_data_set():
    with pytest.raises(ValueError, match="Unknown image data set 'svhn'; choose one of digits, mnist"):
        load_image_data("svhn")


def test_invalid_source():
    with pytest.raises(ValueError, match="Invalid source 'idx' for cifar10; choose 'auto' or one of 'pickle', 'tfds'"):
        load_image_data("cifar10", source="idx")


def test_digits_with_path(tmp_path):
    with pytest.raises(ValueError, match="digits is embedded in scikit-learn and reads no files"):
        load_image_data("digits", path=tmp_path)


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("seed", -1, "seed must be an integer >= 0, got -1"),
        ("seed", 1.5, "seed must be an integer >= 0, got 1.5"),
        ("val_fraction", 1.0, r"val_fraction must be in \[0, 1\), got 1.0"),
        ("val_fraction", -0.1, r"val_fraction must be in \[0, 1\), got -0.1"),
        ("max_train_per_task", 0, "max_train_per_task must be None or an integer >= 1, got 0"),
        ("max_test_per_task", 2.5, "max_test_per_task must be None or an integer >= 1, got 2.5"),
    ],
)
def test_invalid_argument(argument, value, message):
    with pytest.raises(ValueError, match=message):
        load_image_data(**{argument: value})


def test_unknown_class_name():
    with pytest.raises(ValueError, match="Unknown class 'ten' in task 'a'"):
        load_image_data(tasks={"a": ["ten"]})


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist data path not found: .*absent. Pass path="):
        load_image_data("mnist", path=tmp_path / "absent")


def test_auto_finds_nothing(tmp_path):
    (tmp_path / "empty").mkdir()

    with pytest.raises(FileNotFoundError, match=r"No mnist data found; looked in: .*empty; TFDS data_dir .*empty\. Pass path="):
        load_image_data("mnist", path=tmp_path / "empty")


def test_auto_without_path_names_tfds_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="No cifar10 data found; looked in: TFDS data_dir .*no_tfds"):
        load_image_data("cifar10")


def test_fashion_default_folder_named(tmp_path, monkeypatch):
    spec = image_datasets.DATASETS["fashion_mnist"]
    assert spec.default_folder == pathlib.Path("/usr/share/datasets/fashion-mnist")
    monkeypatch.setitem(image_datasets.DATASETS, "fashion_mnist", dataclasses.replace(spec, default_folder=tmp_path / "debian"))

    with pytest.raises(FileNotFoundError, match="looked in: .*debian; TFDS data_dir .*Install the Debian package dataset-fashion-mnist"):
        load_image_data("fashion_mnist")


def test_fashion_default_folder_used(tmp_path, monkeypatch):
    spec = image_datasets.DATASETS["fashion_mnist"]
    folder = write_tiny(tmp_path / "debian")
    monkeypatch.setitem(image_datasets.DATASETS, "fashion_mnist", dataclasses.replace(spec, default_folder=folder))

    data = load_image_data("fashion_mnist")

    assert data.task_names == ("clothing", "footwear_and_bags")


def test_idx_source_on_file(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(b"")

    with pytest.raises(ValueError, match="source='idx' needs a folder, but .*mnist.pkl.gz is a file"):
        load_image_data("mnist", path=path, source="idx")


def test_cifar_path_is_file(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(b"")

    with pytest.raises(ValueError, match="cifar10 needs a folder, but .*cifar-10-python.tar.gz is a file"):
        load_image_data("cifar10", path=path)


def test_wrong_image_shape(tmp_path):
    folder = write_tiny(tmp_path / "small", size=8)

    with pytest.raises(ValueError, match=r"IDX files in .*small: training images have shape \(40, 8, 8, 1\), but mnist images are \(n, 28, 28, 1\)"):
        load_image_data("mnist", path=folder)


def test_label_out_of_range(tmp_path):
    labels = tiny_labels([4] * 10)
    labels[3] = 12
    folder = write_tiny(tmp_path / "labels", train_labels=labels)

    with pytest.raises(ValueError, match="training labels range over 0..12, but mnist has classes 0..9"):
        load_image_data("mnist", path=folder)


def test_partial_idx_folder(tmp_path):
    folder = write_tiny(tmp_path / "partial")
    (folder / "train-images-idx3-ubyte").unlink()

    with pytest.raises(FileNotFoundError, match="IDX files missing in .*partial: train-images-idx3-ubyte"):
        load_image_data("mnist", path=folder)


def test_task_without_test_images(tmp_path):
    labels = tiny_labels([4] * 10)
    folder = tmp_path / "no_test_nine"
    y_test = np.arange(9)
    write_idx_folder(folder, make_images(labels, first_id=0), labels, make_images(y_test, first_id=500), y_test)

    with pytest.raises(ValueError, match=r"Task 'nine' \(classes \[9\]\) has 4 training and 0 test images"):
        load_image_data("mnist", path=folder, tasks={"rest": list(range(9)), "nine": [9]}, val_fraction=0.0)
