"""`sosjax run` on the real MNIST digits (the offline copy from `tests/fetch_test_data.py`)."""

import json
import os

import pytest

from sosjax.config import load_config
from sosjax.pipeline import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.path.join(ROOT, ".cache", "mnist")


@pytest.mark.slow
def test_mnist_even_odd_small_budget(tmp_path):
    if not os.path.isfile(os.path.join(MNIST, "mnist.pkl.gz")):
        pytest.fail(f"{MNIST}/mnist.pkl.gz is missing; run `python tests/fetch_test_data.py` first.")
    config = load_config(
        os.path.join(ROOT, "configs", "mnist_resnet18.py") + ":cpu",
        [
            f"config.data.path={MNIST}",
            "config.data.max_train_per_task=400",
            "config.data.max_test_per_task=300",
            "config.model.width=0.125",
            "config.pretrain.epochs=4",
            "config.evolution.pop_size=6",
            "config.evolution.generations=2",
            "config.evolution.fitness_batch_size=64",
            "config.finetune.epochs=1",
            "config.finetune.max_members=2",
        ],
    )
    with open(run(config, str(tmp_path), progress=False)) as file:
        manifest = json.load(file)

    # Chance on a five-class task is 0.2; a JAT trained on 800 real digits is far above it.
    for task in ("even", "odd"):
        assert manifest["jat"]["test_metric"][task] > 0.6, manifest["jat"]
    assert {m["task"] for m in manifest["members"]} == {"even", "odd"}
    assert all(0 <= m["test_metric"] <= 1 for m in manifest["members"])
