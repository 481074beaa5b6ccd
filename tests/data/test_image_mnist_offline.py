"""Real MNIST from the offline copy that `tests/fetch_test_data.py` extracts."""

import pathlib

import numpy as np
import pytest

from sosjax.data import load_image_data, read_mnist_pickle

MNIST_PICKLE = pathlib.Path(__file__).resolve().parents[2] / ".cache" / "mnist" / "mnist.pkl.gz"

# Published class counts of MNIST's 60,000 training and 10,000 test images.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist_pickle():
    if not MNIST_PICKLE.is_file():
        pytest.fail(f"{MNIST_PICKLE} is missing; run `python tests/fetch_test_data.py` first.")
    return MNIST_PICKLE


def test_raw_mnist_matches_published_facts(mnist_pickle):
    raw = read_mnist_pickle(mnist_pickle)

    assert raw.x_train.shape == (60000, 28, 28, 1)
    assert raw.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(raw.y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(raw.y_test).tolist() == TEST_COUNTS
    assert raw.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    # The usual MNIST normalization constants 0.1307 and 0.3081 come from these pixels.
    histogram = np.bincount(raw.x_train.ravel(), minlength=256)
    values = np.arange(256) / 255.0
    mean = (histogram * values).sum() / histogram.sum()
    std = np.sqrt((histogram * (values - mean) ** 2).sum() / histogram.sum())
    assert abs(mean - 0.1307) < 1e-4
    assert abs(std - 0.3081) < 1e-4


def test_load_mnist_even_odd(mnist_pickle):
    data = load_image_data("mnist", path=mnist_pickle, max_train_per_task=2000, max_test_per_task=500)

    assert data.task_names == ("even", "odd")
    for task, classes in zip(data.tasks, [(0, 2, 4, 6, 8), (1, 3, 5, 7, 9)]):
        assert task.x_train.shape == (2000, 28, 28, 1)
        assert task.x_test.shape == (500, 28, 28, 1)
        assert len(task.x_val) == 222
        assert set(task.y_test.tolist()) == set(classes)
    union = np.concatenate([task.x_train for task in data.tasks]).astype(np.float64)
    assert abs(union.mean()) < 1e-5
    assert abs(union.std() - 1.0) < 1e-5
