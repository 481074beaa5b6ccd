"""Sharded fitness, evolution and fine-tuning against one device, and the mesh helpers.

The comparisons run `tests/sharded_checks.py` in a subprocess with 8 CPU
devices (`XLA_FLAGS=--xla_force_host_platform_device_count=8` must be set
before JAX starts). Population sizes 16 and 8 divide by 8; 13, 12 and 3 do not.
"""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from sosjax import sharding
from sosjax.cli import _parser
from sosjax.config import ConfigError, base_config, config_differences, validate

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHECKS = ROOT / "tests" / "sharded_checks.py"
# Float results may differ in the last bits because each device runs a
# smaller batch of candidates; discrete results (masks, epochs) must be equal.
TOLERANCE = 1e-5


def run_checks(part: str) -> dict:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, str(CHECKS), part], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["devices"] == 8
    return report


@pytest.mark.slow
def test_sharded_fitness_matches_one_device():
    report = run_checks("fitness")
    for name in ("fitness_n16_chunk0", "fitness_n13_chunk0", "fitness_n13_chunk2"):
        case = report[name]
        count = int(name.split("_n")[1].split("_")[0])
        assert case["shape"] == [count, 2], name
        assert case["finite"], name
        # Candidates differ in loss, so equal outputs are not a constant by accident.
        assert case["loss_spread"] > 1e-3, name
        assert case["max_difference"] <= TOLERANCE, name


@pytest.mark.slow
def test_sharded_evolution_matches_one_device():
    report = run_checks("evolution")
    for name in ("evolution_pop8", "evolution_pop6"):
        case = report[name]
        assert case["masks_equal"], name
        assert case["objectives_max_difference"] <= TOLERANCE, name
        assert case["distinct_masks"] > 2, name


@pytest.mark.slow
def test_sharded_finetuning_matches_one_device():
    report = run_checks("finetune")
    for name, count in (("finetune_m8", 8), ("finetune_m3", 3)):
        case = report[name]
        assert case["leading_axis"] == count, name
        assert case["history_shape"] == [3, count], name
        assert case["best_epoch_equal"], name
        assert case["history_max_difference"] <= TOLERANCE, name
        assert case["variables_max_difference"] <= TOLERANCE, name
        # Training changed the weights, so agreement is not agreement on the start.
        assert case["params_moved"] > 1e-3, name


def test_pad_rows_repeats_first_row():
    tree = {"a": np.arange(6).reshape(3, 2), "b": np.array([7, 8, 9])}
    padded = sharding.pad_rows(tree, 5)
    np.testing.assert_array_equal(padded["a"], [[0, 1], [2, 3], [4, 5], [0, 1], [0, 1]])
    np.testing.assert_array_equal(padded["b"], [7, 8, 9, 7, 7])


def test_make_mesh_counts_and_errors():
    count = len(jax.devices())
    mesh = sharding.make_mesh(0)
    assert mesh.axis_names == (sharding.POPULATION,)
    assert sharding.mesh_size(mesh) == count
    assert sharding.mesh_size(sharding.make_mesh(1)) == 1
    assert sharding.padded_size(5, sharding.make_mesh(1)) == 5
    assert sharding.population_mesh(1) is None
    with pytest.raises(ValueError, match="devices = -1"):
        sharding.make_mesh(-1)
    with pytest.raises(ValueError, match=f"sees {count} devices"):
        sharding.make_mesh(count + 1)


def test_initialize_distributed_reads_environment():
    assert sharding.initialize_distributed({}) is False
    assert sharding.initialize_distributed({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}) is False
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES and JAX_PROCESS_ID"):
        sharding.initialize_distributed({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"})
    with pytest.raises(ValueError, match="JAX_PROCESS_ID"):
        sharding.initialize_distributed({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "2"})


def test_devices_field_validated_and_not_compared():
    config = base_config()
    assert config.devices == 0
    config.devices = -2
    with pytest.raises(ConfigError, match="devices"):
        validate(config)
    saved, current = base_config().to_dict(), base_config().to_dict()
    current["devices"] = 4
    assert config_differences(saved, current) == []
    current["seed"] = 1
    assert config_differences(saved, current) == ["seed"]


def test_cli_devices_flag():
    args = _parser().parse_args(["run", "--devices", "4"])
    assert args.devices == 4
    assert _parser().parse_args(["run"]).devices is None
