"""Prepared TFDS data, written offline with TFDS's own builder in ArrayRecord format."""

import shutil

import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import mnist as tfds_mnist

from image_file_writers import TEST_ID_OFFSET, image_ids, make_images, tiny_labels, unstandardize
from sosjax.data import load_image_data, read_prepared_tfds, tfds_source

Y_TRAIN = tiny_labels([6] * 10)
Y_TEST = tiny_labels([2] * 10)
X_TRAIN = make_images(Y_TRAIN, first_id=0)
X_TEST = make_images(Y_TEST, first_id=TEST_ID_OFFSET)

# TFDS's registered MNIST builder with its download step replaced by the tiny arrays.
# Its features, name and version are the real ones, so `tfds.builder("mnist")` reads the result.
with tfds.core.registered.skip_registration():

    class TinyMnist(tfds_mnist.MNIST):
        name = "mnist"

        def _split_generators(self, dl_manager):
            return {"train": self._examples(X_TRAIN, Y_TRAIN), "test": self._examples(X_TEST, Y_TEST)}

        def _examples(self, images, labels):
            for index, (image, label) in enumerate(zip(images, labels)):
                yield index, {"image": PIL.Image.fromarray(image[..., 0]), "label": int(label)}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    TinyMnist(data_dir=str(data_dir), file_format="array_record").download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return data_dir


def by_id(images, labels):
    order = np.argsort(image_ids(images))
    return images[order], labels[order]


def test_read_prepared_mnist(tfds_dir):
    raw = read_prepared_tfds("mnist", tfds_dir)

    # TFDS shuffles examples when it prepares a data set, so compare in id order.
    x_train, y_train = by_id(raw.x_train, raw.y_train)
    x_test, y_test = by_id(raw.x_test, raw.y_test)
    np.testing.assert_array_equal(x_train, X_TRAIN)
    np.testing.assert_array_equal(y_train, Y_TRAIN)
    np.testing.assert_array_equal(x_test, X_TEST)
    np.testing.assert_array_equal(y_test, Y_TEST)


def test_load_auto_finds_tfds(tfds_dir):
    data = load_image_data("mnist", path=tfds_dir)

    ids = []
    for task in data.tasks:
        raw, _, _ = unstandardize(np.concatenate([task.x_train, task.x_val, task.x_test]))
        np.testing.assert_array_equal(raw[:, 0, 2, 0] // 20, np.concatenate([task.y_train, task.y_val, task.y_test]))
        ids.append(image_ids(raw))
    assert np.array_equal(np.sort(np.concatenate(ids)), np.sort(np.concatenate([np.arange(60), TEST_ID_OFFSET + np.arange(20)])))


def test_tfds_default_data_dir(tfds_dir, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))

    data = load_image_data("mnist", source="tfds")

    assert sum(len(task.x_test) for task in data.tasks) == 20


def test_tfds_not_prepared(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"TFDS data set 'cifar10' is not prepared in .*sosjax never downloads: .*tfds build cifar10"):
        load_image_data("cifar10", path=tmp_path, source="tfds")


def test_tfrecord_without_tensorflow(tfds_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_source, "_tensorflow_installed", lambda: False)
    copy = tmp_path / "tfrecord"
    shutil.copytree(tfds_dir, copy)
    info = copy / "mnist" / "3.0.1" / "dataset_info.json"
    info.write_text(info.read_text().replace('"fileFormat": "array_record"', '"fileFormat": "tfrecord"'))

    with pytest.raises(ValueError, match="is stored as tfrecord, which needs TensorFlow to read. Install tensorflow, or prepare it again with --file_format=array_record"):
        load_image_data("mnist", path=copy)
