"""load_image_data on tiny files and on scikit-learn digits: splits, tasks, normalization, errors."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from image_file_writers import (
    TEST_ID_OFFSET,
    image_ids,
    make_images,
    tiny_labels,
    unstandardize,
    write_cifar_folder,
    write_idx_folder,
    write_mnist_pickle,
)
from sosjax.data import load_image_data

TRAIN_COUNTS = [20 + 2 * label for label in range(10)]
TEST_COUNTS = [3] * 10


@pytest.fixture(autouse=True)
def empty_tfds_dir(tmp_path, monkeypatch):
    """Keep "auto" from finding data prepared in the user's own TFDS directory."""
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds"))


def tiny_mnist():
    y_train = tiny_labels(TRAIN_COUNTS)
    y_test = tiny_labels(TEST_COUNTS)
    return make_images(y_train, first_id=0), y_train, make_images(y_test, first_id=TEST_ID_OFFSET), y_test


@pytest.fixture
def idx_folder(tmp_path):
    return write_idx_folder(tmp_path / "idx", *tiny_mnist(), gz=True)


def split_ids(task):
    """Raw images and ids of a task's three splits, undoing standardization."""
    stacked = np.concatenate([task.x_train, task.x_val, task.x_test])
    raw, _, _ = unstandardize(stacked)
    ids = image_ids(raw)
    n_train, n_val = len(task.x_train), len(task.x_val)
    return raw, ids[:n_train], ids[n_train : n_train + n_val], ids[n_train + n_val :]


def test_tasks_hold_their_classes(idx_folder):
    data = load_image_data("mnist", path=idx_folder)

    assert data.task_names == ("even", "odd")
    assert data.num_outputs == 10
    assert data.input_shape == (28, 28, 1)
    assert data.kind == "classification"
    for task, classes in zip(data.tasks, [(0, 2, 4, 6, 8), (1, 3, 5, 7, 9)]):
        assert task.classes == classes
        for labels in (task.y_train, task.y_val, task.y_test):
            assert labels.dtype == np.int32
            assert set(labels.tolist()) == set(classes)
        assert task.x_train.dtype == np.float32


def test_labels_match_images(idx_folder):
    data = load_image_data("mnist", path=idx_folder)

    for task in data.tasks:
        raw, _, _, _ = split_ids(task)
        labels = np.concatenate([task.y_train, task.y_val, task.y_test])
        np.testing.assert_array_equal(raw[:, 0, 2, 0] // 20, labels)


def test_splits_disjoint_and_complete(idx_folder):
    data = load_image_data("mnist", path=idx_folder, val_fraction=0.2)

    all_train, all_val, all_test = [], [], []
    for task in data.tasks:
        _, train, val, test = split_ids(task)
        all_train.append(train)
        all_val.append(val)
        all_test.append(test)
    train, val, test = (np.concatenate(parts) for parts in (all_train, all_val, all_test))

    assert np.intersect1d(train, val).size == 0
    assert np.all(train < TEST_ID_OFFSET)
    assert np.all(val < TEST_ID_OFFSET)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(sum(TRAIN_COUNTS)))
    assert np.array_equal(np.sort(test), TEST_ID_OFFSET + np.arange(sum(TEST_COUNTS)))


def test_validation_stratified(idx_folder):
    data = load_image_data("mnist", path=idx_folder, val_fraction=0.25)

    val_counts = np.bincount(np.concatenate([task.y_val for task in data.tasks]), minlength=10)

    # round(n_c / 4) with halves up: 20 -> 5, 22 -> 6 (5.5), 24 -> 6, ...
    expected = [int(np.floor(count * 0.25 + 0.5)) for count in TRAIN_COUNTS]
    assert val_counts.tolist() == expected


def test_splits_fixed_by_seed(idx_folder):
    first = load_image_data("mnist", path=idx_folder, seed=4)
    again = load_image_data("mnist", path=idx_folder, seed=4)
    other = load_image_data("mnist", path=idx_folder, seed=5)

    for task_first, task_again, task_other in zip(first.tasks, again.tasks, other.tasks):
        np.testing.assert_array_equal(task_first.x_train, task_again.x_train)
        np.testing.assert_array_equal(task_first.x_val, task_again.x_val)
        assert not np.array_equal(split_ids(task_first)[2], split_ids(task_other)[2])


def test_normalization_uses_training_split(idx_folder):
    data = load_image_data("mnist", path=idx_folder)

    train_raw = []
    for task in data.tasks:
        raw, _, _, _ = split_ids(task)
        train_raw.append(raw[: len(task.x_train)])
    _, mean, std = unstandardize(data.tasks[0].x_train)

    # Oracle: per-channel statistics of the training images only, in float64.
    pixels = np.concatenate(train_raw).astype(np.float64) / 255.0
    np.testing.assert_allclose(mean, [pixels.mean()], atol=1e-6)
    np.testing.assert_allclose(std, [pixels.std()], atol=1e-6)
    union = np.concatenate([task.x_train for task in data.tasks])
    np.testing.assert_allclose(union.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(union.std(), 1.0, atol=1e-5)


def test_test_images_do_not_change_training_data(tmp_path, idx_folder):
    x_train, y_train, x_test, y_test = tiny_mnist()
    other = write_idx_folder(tmp_path / "other", x_train, y_train, np.full_like(x_test, 255), y_test)

    data = load_image_data("mnist", path=idx_folder)
    changed = load_image_data("mnist", path=other)

    for task, task_changed in zip(data.tasks, changed.tasks):
        np.testing.assert_array_equal(task.x_train, task_changed.x_train)
        np.testing.assert_array_equal(task.x_val, task_changed.x_val)


def test_subsample_per_task(idx_folder):
    data = load_image_data("mnist", path=idx_folder, max_train_per_task=20, max_test_per_task=7, val_fraction=0.1)

    for task in data.tasks:
        assert len(task.x_train) == 20
        assert len(task.x_test) == 7
        # round(20 × 0.1 / 0.9) = 2 keeps the validation ratio.
        assert len(task.x_val) == 2
        assert np.bincount(task.y_train, minlength=10)[list(task.classes)].min() >= 3


def test_subsample_keeps_validation_split(idx_folder):
    full = load_image_data("mnist", path=idx_folder)
    small = load_image_data("mnist", path=idx_folder, max_train_per_task=20)

    for task_full, task_small in zip(full.tasks, small.tasks):
        _, train_full, val_full, _ = split_ids(task_full)
        _, train_small, val_small, _ = split_ids(task_small)
        assert np.isin(train_small, train_full).all()
        assert np.isin(val_small, val_full).all()


def test_sources_agree(tmp_path, idx_folder):
    x_train, y_train, x_test, y_test = tiny_mnist()
    plain = write_idx_folder(tmp_path / "plain", x_train, y_train, x_test, y_test)
    pickled = write_mnist_pickle(
        tmp_path / "mnist.pkl.gz", (x_train[:100], y_train[:100]), (x_train[100:], y_train[100:]), (x_test, y_test)
    )

    reference = load_image_data("mnist", path=idx_folder, source="idx")
    for path in (plain, pickled, tmp_path):
        data = load_image_data("mnist", path=path)
        for task, task_reference in zip(data.tasks, reference.tasks):
            np.testing.assert_array_equal(task.x_train, task_reference.x_train)
            np.testing.assert_array_equal(task.y_test, task_reference.y_test)


def test_custom_tasks(idx_folder):
    data = load_image_data("mnist", path=idx_folder, tasks={"low": [0, 1, "2"], "nine": ["9"]})

    assert data.task_names == ("low", "nine")
    assert data.tasks[1].classes == (9,)
    assert set(data.tasks[1].y_train.tolist()) == {9}
    # Normalization follows the union of these tasks' training images only.
    union = np.concatenate([task.x_train for task in data.tasks])
    np.testing.assert_allclose(union.mean(), 0.0, atol=1e-5)


def test_fashion_mnist_presets(tmp_path):
    folder = write_idx_folder(tmp_path / "fashion", *tiny_mnist())

    data = load_image_data("fashion_mnist", path=folder)

    assert data.task_names == ("clothing", "footwear_and_bags")
    assert data.labels[5] == "Sandal"
    assert set(data.tasks[1].y_test.tolist()) == {5, 7, 8, 9}


def test_cifar10_tasks_and_channels(tmp_path):
    y_train = tiny_labels([6] * 10)
    y_test = tiny_labels([2] * 10)
    x_train = make_images(y_train, first_id=0, height=32, width=32, channels=3)
    x_test = make_images(y_test, first_id=TEST_ID_OFFSET, height=32, width=32, channels=3)
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", x_train, y_train, x_test, y_test)

    data = load_image_data("cifar10", path=tmp_path)

    assert data.task_names == ("animals", "vehicles")
    assert data.input_shape == (32, 32, 3)
    assert set(data.tasks[1].y_train.tolist()) == {0, 1, 8, 9}
    union = np.concatenate([task.x_train for task in data.tasks])
    union = union.astype(np.float64)
    np.testing.assert_allclose(union.mean(axis=(0, 1, 2)), np.zeros(3), atol=1e-5)
    np.testing.assert_allclose(union.std(axis=(0, 1, 2)), np.ones(3), atol=1e-5)
    # Channel means differ (the writer shifts each plane), so statistics are per channel.
    _, mean, _ = unstandardize(data.tasks[0].x_train)
    assert len(set(np.round(mean, 4).tolist())) == 3
    assert folder.is_dir()


def test_digits_default():
    data = load_image_data()

    assert data.task_names == ("even", "odd")
    assert data.input_shape == (8, 8, 1)
    sizes = [len(task.x_train) + len(task.x_val) + len(task.x_test) for task in data.tasks]
    assert sum(sizes) == 1797
    test_sizes = sum(len(task.x_test) for task in data.tasks)
    assert test_sizes == sum(int(np.floor(count * 0.2 + 0.5)) for count in np.bincount(load_digits().target))


def test_digits_partition_of_images():
    data = load_image_data(seed=3)
    digits = load_digits()

    union = np.concatenate([task.x_train for task in data.tasks]).astype(np.float64)
    np.testing.assert_allclose(union.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(union.std(), 1.0, atol=1e-5)

    # Standardization is affine and digits pixels span 0..16, so the smallest and largest
    # standardized values map back to 0 and 16. Every embedded image must then appear
    # exactly once across the tasks' three splits.
    stacked = np.concatenate([np.concatenate([task.x_train, task.x_val, task.x_test]) for task in data.tasks])
    flat = stacked.reshape(len(stacked), -1).astype(np.float64)
    pixels = np.rint((flat - flat.min()) / (flat.max() - flat.min()) * 16).astype(np.int64)
    expected = digits.images.reshape(len(digits.images), -1).astype(np.int64)
    assert len(pixels) == len(expected)
    np.testing.assert_array_equal(
        pixels[np.lexsort(pixels.T[::-1])], expected[np.lexsort(expected.T[::-1])]
    )
