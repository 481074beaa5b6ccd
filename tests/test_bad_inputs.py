"""Bad input gets one clear error line and a non-zero exit, and loses no earlier result."""

import errno
import gzip
import hashlib
import os
import pickle
import shutil

import numpy as np
import pytest

from sosjax import cli, io

TINY = "configs/digits_resnet18.py:tiny"


def run_args(workdir, *overrides, config=TINY):
    return ["run", "--config", config, "--workdir", workdir, "--no-progress", *overrides]


def write(path, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(data)
    return os.path.dirname(path)


def idx_images(count=4, magic=2051):
    header = magic.to_bytes(4, "big") + count.to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
    return header + bytes(count * 28 * 28)


def bad_mnist_folder(tmp, kind):
    folder = os.path.join(tmp, f"mnist_{kind}")
    if kind == "empty_pickle":
        write(os.path.join(folder, "mnist.pkl.gz"), b"")
    elif kind == "corrupt_pickle":
        write(os.path.join(folder, "mnist.pkl.gz"), gzip.compress(b"not a pickle at all"))
    elif kind == "wrong_shape_pickle":
        split = (np.zeros((5, 17), np.float32), np.zeros(5, np.int64))
        write(os.path.join(folder, "mnist.pkl.gz"), gzip.compress(pickle.dumps((split, split, split))))
    elif kind == "bad_magic":
        for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
            write(os.path.join(folder, name), idx_images(magic=1234))
        for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
            write(os.path.join(folder, name), (2049).to_bytes(4, "big") + (4).to_bytes(4, "big") + bytes(4))
    elif kind == "truncated_idx":
        for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
            write(os.path.join(folder, name), idx_images()[:-100])
        for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
            write(os.path.join(folder, name), (2049).to_bytes(4, "big") + (4).to_bytes(4, "big") + bytes(4))
    else:
        os.makedirs(folder, exist_ok=True)
    return folder


# (name, argv builder, expected words in the message). Every case exits with 1
# (or 2 for command-line usage errors, as argparse does).
CASES = [
    ("odd population", lambda t, w: run_args(w, "--config.evolution.pop_size=7"), ["evolution.pop_size", "even"]),
    ("zero population", lambda t, w: run_args(w, "--config.evolution.pop_size=0"), ["evolution.pop_size", "0"]),
    ("negative generations", lambda t, w: run_args(w, "--config.evolution.generations=-5"), ["evolution.generations", "-5"]),
    ("rmp above one", lambda t, w: run_args(w, "--config.evolution.rmp=1.5"), ["evolution.rmp", "1.5"]),
    ("rmp matrix of wrong size", lambda t, w: run_args(w, "--config.evolution.rmp=[[1,0,0],[0,1,0],[0,0,1]]"), ["3", "2 tasks"]),
    ("unknown crossover", lambda t, w: run_args(w, "--config.evolution.crossover=three_point"), ["evolution.crossover", "three_point"]),
    ("negative mutation rate", lambda t, w: run_args(w, "--config.evolution.mutation_rate=-0.5"), ["evolution.mutation_rate"]),
    ("zero fitness batch", lambda t, w: run_args(w, "--config.evolution.fitness_batch_size=0"), ["evolution.fitness_batch_size"]),
    ("unknown dataset", lambda t, w: run_args(w, "--config.data.name=imagenet"), ["data.name", "imagenet"]),
    ("unknown task preset", lambda t, w: run_args(w, "--config.data.tasks=primes"), ["primes"]),
    ("unknown class name", lambda t, w: run_args(w, "--config.data.tasks={'small': ['0', 'seven']}"), ["seven"]),
    ("validation fraction too large", lambda t, w: run_args(w, "--config.data.val_fraction=0.75"), ["data.val_fraction", "0.75"]),
    ("unknown model", lambda t, w: run_args(w, "--config.model.name=vgg16"), ["model.name", "vgg16"]),
    ("zero width", lambda t, w: run_args(w, "--config.model.width=0"), ["model.width"]),
    ("images into an LSTM", lambda t, w: run_args(w, "--config.model.name=bilstm"), ["bilstm", "windows"]),
    ("unknown optimizer", lambda t, w: run_args(w, "--config.finetune.optimizer=sgd"), ["finetune.optimizer", "sgd"]),
    ("unknown field", lambda t, w: run_args(w, "--config.evolution.population=10"), ["evolution.population"]),
    ("wrong value type", lambda t, w: run_args(w, "--config.evolution.generations=lots"), ["evolution.generations", "lots"]),
    ("missing config file", lambda t, w: run_args(w, config="configs/missing.py"), ["configs/missing.py", "not found"]),
    ("config file with a syntax error", lambda t, w: run_args(w, config=write(os.path.join(t, "broken", "c.py"), b"def get_config(:\n") + "/c.py"),
     ["failed to load", "SyntaxError"]),
    ("missing MNIST folder", lambda t, w: run_args(w, "--config.data.name=mnist", f"--config.data.path={os.path.join(t, 'nowhere')}"), ["nowhere"]),
    ("empty data file", lambda t, w: run_args(w, "--config.data.name=mnist", f"--config.data.path={bad_mnist_folder(t, 'empty_pickle')}"), ["mnist.pkl.gz"]),
    ("corrupt data file", lambda t, w: run_args(w, "--config.data.name=mnist", f"--config.data.path={bad_mnist_folder(t, 'corrupt_pickle')}"), ["mnist.pkl.gz"]),
    ("wrong data shape", lambda t, w: run_args(w, "--config.data.name=mnist", f"--config.data.path={bad_mnist_folder(t, 'wrong_shape_pickle')}"), ["mnist.pkl.gz"]),
    ("IDX file with a bad magic number", lambda t, w: run_args(w, "--config.data.name=mnist", f"--config.data.path={bad_mnist_folder(t, 'bad_magic')}"), ["magic"]),
    ("truncated IDX file", lambda t, w: run_args(w, "--config.data.name=mnist", f"--config.data.path={bad_mnist_folder(t, 'truncated_idx')}"), ["idx3-ubyte"]),
    ("missing JAT checkpoint", lambda t, w: run_args(w, "--config.pretrain.checkpoint=/no/such/jat.pth"), ["pretrain.checkpoint", "/no/such/jat.pth"]),
    ("corrupt JAT checkpoint", lambda t, w: run_args(w, f"--config.pretrain.checkpoint={write(os.path.join(t, 'ckpt', 'jat.safetensors'), b'garbage')}/jat.safetensors"),
     ["jat.safetensors"]),
    ("workdir under a file", lambda t, w: run_args(os.path.join(write(os.path.join(t, "plain", "file"), b"x"), "file", "run")), ["workdir"]),
    ("select an unknown task", lambda t, w: ["select", "--workdir", w, "--task", "prime", "--max-params", "100000"], ["prime", "even", "odd"]),
    ("select with a budget nobody fits", lambda t, w: ["select", "--workdir", w, "--task", "odd", "--max-bytes", "10"], ["No member", "smallest"]),
    ("select without a run", lambda t, w: ["select", "--workdir", os.path.join(t, "empty"), "--task", "odd", "--max-params", "5"], ["not found", "sosjax run"]),
    ("report without a run", lambda t, w: ["report", "--workdir", os.path.join(t, "empty")], ["not found"]),
]


def digest(workdir):
    """Hash every file of a run folder except the config, which `run` rewrites when it matches."""
    hashes = {}
    for folder, _, files in os.walk(workdir):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as file:
                hashes[os.path.relpath(path, workdir)] = hashlib.sha256(file.read()).hexdigest()
    return hashes


@pytest.fixture
def workdir_copy(finished_run, tmp_path):
    _, workdir, _ = finished_run
    copy = str(tmp_path / "finished")
    shutil.copytree(workdir, copy)
    return copy


@pytest.fixture(scope="module")
def shared_copy(finished_run, tmp_path_factory):
    """One copy for the whole table: a case that changed it fails its own check."""
    _, workdir, _ = finished_run
    copy = str(tmp_path_factory.mktemp("table") / "finished")
    shutil.copytree(workdir, copy)
    return copy, digest(copy)


@pytest.mark.slow
@pytest.mark.parametrize("name, argv, words", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_one_clear_line(name, argv, words, shared_copy, tmp_path, capsys):
    workdir_copy, before = shared_copy
    code = cli.main(argv(str(tmp_path), workdir_copy))
    err = capsys.readouterr().err
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("sosjax: error:")]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "Traceback" not in err
    assert digest(workdir_copy) == before


def test_case_table_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.slow
def test_workdir_of_another_config_is_refused(workdir_copy, capsys):
    before = digest(workdir_copy)
    code = cli.main(run_args(workdir_copy, "--config.seed=5", "--config.evolution.rmp=0.1"))
    err = capsys.readouterr().err
    assert code == 1
    assert "evolution.rmp" in err
    assert "seed" in err
    assert "--force" in err
    assert digest(workdir_copy) == before


@pytest.mark.slow
def test_debug_flag_shows_traceback(tmp_path, capsys):
    code = cli.main(["--debug", *run_args(str(tmp_path / "w"), "--config.evolution.pop_size=3")])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" in err
    assert "evolution.pop_size" in err


@pytest.mark.slow
def test_full_disk_keeps_earlier_results(workdir_copy, monkeypatch, capsys):
    before = digest(workdir_copy)

    def full_disk(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(io, "atomic_write_bytes", full_disk)
    code = cli.main(["report", "--workdir", workdir_copy])
    err = capsys.readouterr().err
    assert code == 1
    assert "No space left on device" in err
    assert "run the same command again" in err
    assert digest(workdir_copy) == before
