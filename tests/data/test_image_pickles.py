"""Pickled MNIST and the CIFAR-10 batch folder: layout, restricted unpickling, errors."""

import collections
import gzip
import pickle

import numpy as np
import pytest

from image_file_writers import make_images, tiny_labels, write_cifar_batch, write_cifar_folder, write_mnist_pickle
from sosjax.data import read_cifar10_batches, read_mnist_pickle


def mnist_parts():
    labels = [tiny_labels([2, 2]), tiny_labels([1, 1]), tiny_labels([1, 2])]
    return [(make_images(y, first_id=first), y) for y, first in zip(labels, (0, 10, 20))]


def test_mnist_pickle_bytes_and_splits(tmp_path):
    train, validation, test = mnist_parts()
    path = write_mnist_pickle(tmp_path / "mnist.pkl.gz", train, validation, test)

    raw = read_mnist_pickle(path)

    # The file's validation part is appended to its training part.
    np.testing.assert_array_equal(raw.x_train, np.concatenate([train[0], validation[0]]))
    np.testing.assert_array_equal(raw.y_train, np.concatenate([train[1], validation[1]]))
    np.testing.assert_array_equal(raw.x_test, test[0])
    np.testing.assert_array_equal(raw.y_test, test[1])
    assert raw.x_train.dtype == np.uint8


def test_mnist_pickle_pixel_255(tmp_path):
    images = np.full((1, 28, 28, 1), 255, np.uint8)
    part = (images, np.array([3]))
    path = write_mnist_pickle(tmp_path / "mnist.pkl.gz", part, part, part)

    raw = read_mnist_pickle(path)

    assert raw.x_test.max() == 255


def test_mnist_pickle_not_256ths(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    part = (np.full((2, 784), 0.3, np.float32), np.array([1, 2]))
    with gzip.open(path, "wb") as stream:
        pickle.dump((part, part, part), stream)

    with pytest.raises(ValueError, match="train images are not byte values divided by 256"):
        read_mnist_pickle(path)


def test_mnist_pickle_wrong_structure(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as stream:
        pickle.dump({"train": 1}, stream)

    with pytest.raises(ValueError, match="does not contain the three \\(images, labels\\) pairs"):
        read_mnist_pickle(path)


def test_mnist_pickle_wrong_shape(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    part = (np.zeros((2, 100), np.float32), np.array([1, 2]))
    with gzip.open(path, "wb") as stream:
        pickle.dump((part, part, part), stream)

    with pytest.raises(ValueError, match=r"train images have shape \(2, 100\), expected \(n, 784\)"):
        read_mnist_pickle(path)


def test_mnist_pickle_label_count(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    part = (np.zeros((2, 784), np.float32), np.array([1, 2, 3]))
    with gzip.open(path, "wb") as stream:
        pickle.dump((part, part, part), stream)

    with pytest.raises(ValueError, match=r"train labels have shape \(3,\), expected \(2,\)"):
        read_mnist_pickle(path)


def test_mnist_pickle_rejects_other_globals(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as stream:
        pickle.dump((collections.OrderedDict,), stream)

    with pytest.raises(ValueError, match="refers to collections.OrderedDict; a data set pickle may only"):
        read_mnist_pickle(path)


def test_mnist_pickle_truncated(tmp_path):
    path = write_mnist_pickle(tmp_path / "mnist.pkl.gz", *mnist_parts())
    path.write_bytes(path.read_bytes()[:-40])

    with pytest.raises(ValueError, match="mnist.pkl.gz could not be unpickled"):
        read_mnist_pickle(path)


def test_mnist_pickle_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist.pkl.gz"):
        read_mnist_pickle(tmp_path / "mnist.pkl.gz")


def tiny_cifar():
    y_train = tiny_labels([1, 2, 1, 1, 1, 1, 1, 1, 1, 1])
    y_test = tiny_labels([1, 0, 0, 0, 0, 0, 0, 0, 0, 2])
    x_train = make_images(y_train, first_id=0, height=32, width=32, channels=3)
    x_test = make_images(y_test, first_id=100, height=32, width=32, channels=3)
    return x_train, y_train, x_test, y_test


def test_cifar_row_layout(tmp_path):
    # One hand-made row: red plane all 10, green 20, blue 30, and red pixel (row 1, column 2) = 99.
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)]).astype(np.uint8)
    row[1 * 32 + 2] = 99
    batch = {b"data": row[None, :], b"labels": [7]}
    for name in [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]:
        with open(tmp_path / name, "wb") as stream:
            pickle.dump(batch, stream, protocol=2)

    raw = read_cifar10_batches(tmp_path)

    image = raw.x_test[0]
    assert image.shape == (32, 32, 3)
    assert image[0, 0].tolist() == [10, 20, 30]
    assert image[1, 2].tolist() == [99, 20, 30]
    assert image[2, 1].tolist() == [10, 20, 30]
    assert raw.y_test.tolist() == [7]
    assert len(raw.x_train) == 5


def test_cifar_folder_round_trip(tmp_path):
    x_train, y_train, x_test, y_test = tiny_cifar()
    write_cifar_folder(tmp_path, x_train, y_train, x_test, y_test)

    raw = read_cifar10_batches(tmp_path)

    np.testing.assert_array_equal(raw.x_train, x_train)
    np.testing.assert_array_equal(raw.y_train, y_train)
    np.testing.assert_array_equal(raw.x_test, x_test)
    np.testing.assert_array_equal(raw.y_test, y_test)


def test_cifar_subfolder_and_str_keys(tmp_path):
    x_train, y_train, x_test, y_test = tiny_cifar()
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", x_train, y_train, x_test, y_test)
    write_cifar_batch(folder / "test_batch", x_test, y_test, bytes_keys=False)

    raw = read_cifar10_batches(tmp_path)

    np.testing.assert_array_equal(raw.x_test, x_test)


def test_cifar_missing_batch(tmp_path):
    write_cifar_folder(tmp_path, *tiny_cifar())
    (tmp_path / "data_batch_3").unlink()

    with pytest.raises(FileNotFoundError, match="CIFAR-10 batch files missing in .*: data_batch_3"):
        read_cifar10_batches(tmp_path)


def test_cifar_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="CIFAR-10 batch folder not found: .*absent"):
        read_cifar10_batches(tmp_path / "absent")


def test_cifar_wrong_row_size(tmp_path):
    write_cifar_folder(tmp_path, *tiny_cifar())
    with open(tmp_path / "data_batch_2", "wb") as stream:
        pickle.dump({b"data": np.zeros((2, 1024), np.uint8), b"labels": [1, 2]}, stream)

    with pytest.raises(ValueError, match=r"data_batch_2: 'data' is uint8\[2, 1024\], expected uint8\[n, 3072\]"):
        read_cifar10_batches(tmp_path)


def test_cifar_label_count(tmp_path):
    write_cifar_folder(tmp_path, *tiny_cifar())
    with open(tmp_path / "test_batch", "wb") as stream:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, stream)

    with pytest.raises(ValueError, match="test_batch: 'labels' has 1 entries .* expected 2 integers"):
        read_cifar10_batches(tmp_path)


def test_cifar_missing_key(tmp_path):
    write_cifar_folder(tmp_path, *tiny_cifar())
    with open(tmp_path / "test_batch", "wb") as stream:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8)}, stream)

    with pytest.raises(ValueError, match="test_batch has keys \\['data'\\], expected 'data' and 'labels'"):
        read_cifar10_batches(tmp_path)
