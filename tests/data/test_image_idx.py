"""IDX reading: hand-made bytes, plain and gzipped files, and every invalid-file error."""

import gzip

import numpy as np
import pytest

from image_file_writers import idx_bytes, make_images, tiny_labels, write_idx, write_idx_folder
from sosjax.data import read_idx, read_idx_folder


def test_read_idx_hand_made_bytes(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 5, 6, 7]))

    array = read_idx(path)

    assert array.dtype == np.uint8
    assert array.tolist() == [5, 6, 7]


def test_read_idx_big_endian_int32(tmp_path):
    path = tmp_path / "values-idx2-int"
    path.write_bytes(bytes([0, 0, 0x0C, 2, 0, 0, 0, 1, 0, 0, 0, 2]) + bytes([0, 1, 0x11, 0x70, 0xFF, 0xFF, 0xFF, 0xFE]))

    array = read_idx(path)

    assert array.shape == (1, 2)
    assert array.tolist() == [[70000, -2]]


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_read_idx_round_trip(tmp_path, name):
    images = make_images(tiny_labels([2, 3]), first_id=0)[..., 0]

    array = read_idx(write_idx(tmp_path / name, images))

    np.testing.assert_array_equal(array, images)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent-idx1-ubyte"):
        read_idx(tmp_path / "absent-idx1-ubyte")


def test_read_idx_bad_magic(tmp_path):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(b"PK\x03\x04" + bytes(8))

    with pytest.raises(ValueError, match=r"bad-idx1-ubyte is not an IDX file: invalid magic number 0x504b0304"):
        read_idx(path)


def test_read_idx_unknown_type_code(tmp_path):
    path = tmp_path / "odd-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 9]))

    with pytest.raises(ValueError, match="invalid magic number 0x00000701"):
        read_idx(path)


@pytest.mark.parametrize("cut", [2, 9, 30])
def test_read_idx_truncated(tmp_path, cut):
    content = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(content[:cut])

    with pytest.raises(ValueError, match="short-idx3-ubyte is truncated"):
        read_idx(path)


def test_read_idx_trailing_bytes(tmp_path):
    path = tmp_path / "long-idx1-ubyte"
    path.write_bytes(idx_bytes(np.arange(3, dtype=np.uint8)) + b"\x00")

    with pytest.raises(ValueError, match="longer than its header declares: shape \\(3,\\)"):
        read_idx(path)


def test_read_idx_invalid_gzip(tmp_path):
    path = tmp_path / "plain-idx1-ubyte.gz"
    path.write_bytes(idx_bytes(np.arange(3, dtype=np.uint8)))

    with pytest.raises(ValueError, match="plain-idx1-ubyte.gz is not a valid gzip file"):
        read_idx(path)


def test_read_idx_truncated_gzip(tmp_path):
    path = tmp_path / "cut-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(300, dtype=np.int32)))[:-12])

    with pytest.raises(ValueError, match="cut-idx1-ubyte.gz is not a valid gzip file"):
        read_idx(path)


def tiny_split():
    y_train = tiny_labels([2, 1, 3])
    y_test = tiny_labels([1, 1, 1])
    return make_images(y_train, first_id=0), y_train, make_images(y_test, first_id=100), y_test


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_folder_standard_names(tmp_path, gz):
    x_train, y_train, x_test, y_test = tiny_split()
    write_idx_folder(tmp_path, x_train, y_train, x_test, y_test, gz=gz)

    raw = read_idx_folder(tmp_path)

    np.testing.assert_array_equal(raw.x_train, x_train)
    np.testing.assert_array_equal(raw.y_train, y_train)
    np.testing.assert_array_equal(raw.x_test, x_test)
    np.testing.assert_array_equal(raw.y_test, y_test)
    assert raw.max_pixel == 255.0


def test_read_idx_folder_dotted_names(tmp_path):
    x_train, y_train, x_test, y_test = tiny_split()
    write_idx_folder(tmp_path, x_train, y_train, x_test, y_test)
    for path in tmp_path.iterdir():
        path.rename(tmp_path / path.name.replace("-idx", ".idx"))

    raw = read_idx_folder(tmp_path)

    np.testing.assert_array_equal(raw.y_test, y_test)


def test_read_idx_folder_missing_file(tmp_path):
    write_idx_folder(tmp_path, *tiny_split())
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()

    with pytest.raises(FileNotFoundError, match="IDX files missing in .*: t10k-labels-idx1-ubyte"):
        read_idx_folder(tmp_path)


def test_read_idx_folder_swapped_files(tmp_path):
    write_idx_folder(tmp_path, *tiny_split())
    images = tmp_path / "train-images-idx3-ubyte"
    labels = tmp_path / "train-labels-idx1-ubyte"
    images.rename(tmp_path / "swap")
    labels.rename(images)
    (tmp_path / "swap").rename(labels)

    with pytest.raises(ValueError, match="train-images-idx3-ubyte contains uint8\\[6\\], expected images"):
        read_idx_folder(tmp_path)


def test_read_idx_folder_count_mismatch(tmp_path):
    x_train, y_train, x_test, y_test = tiny_split()
    write_idx_folder(tmp_path, x_train, y_train[:-1], x_test, y_test)

    with pytest.raises(ValueError, match="has 6 images but .*train-labels-idx1-ubyte has 5 labels"):
        read_idx_folder(tmp_path)
