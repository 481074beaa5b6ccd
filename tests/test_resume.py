"""Killed and interrupted runs resume to the same Set of Sets as an uninterrupted run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "configs/digits_resnet18.py:tiny"
# Three generations with a checkpoint after the second keep the run short while
# leaving a generation to redo after a kill.
OVERRIDES = ["--config.evolution.generations=3", "--config.evolution.checkpoint_every=2"]


def command(workdir):
    return [sys.executable, "-m", "sosjax.cli", "run", "--config", TINY, "--workdir", workdir, "--no-progress", *OVERRIDES]


def run_to_end(workdir):
    result = subprocess.run(command(workdir), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def start_and_signal_when(workdir, trigger, sig, timeout=600):
    """Start `sosjax run`, send `sig` once `trigger(workdir)` holds, and return the process result."""
    process = subprocess.Popen(command(workdir), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while not trigger(workdir):
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the run ended before the kill point (exit {process.returncode}): {err[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the kill point was never reached")
        time.sleep(0.01)
    process.send_signal(sig)
    out, err = process.communicate(timeout=600)
    return process.returncode, out, err


def results(workdir):
    """The parts of a run folder that must not depend on interruptions."""
    with open(os.path.join(workdir, "set_of_sets.json")) as file:
        manifest = json.load(file)
    fronts = {}
    for task in ("even", "odd"):
        with open(os.path.join(workdir, "fronts", f"{task}.csv")) as file:
            fronts[task] = file.read()
        fronts[task + "_masks"] = np.load(os.path.join(workdir, "fronts", f"{task}.npz"))["masks"]
    with open(os.path.join(workdir, "metrics.jsonl")) as file:
        metrics = [json.loads(line) for line in file]
    for record in metrics:
        record.pop("evaluations_per_second")
    return manifest, fronts, metrics


def assert_same_results(workdir, reference):
    manifest, fronts, metrics = results(workdir)
    expected_manifest, expected_fronts, expected_metrics = results(reference)
    assert manifest == expected_manifest
    assert metrics == expected_metrics
    for name, value in expected_fronts.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(fronts[name], value)
        else:
            assert fronts[name] == value, name


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("reference"))
    run_to_end(workdir)
    return workdir


def has_step(folder, step):
    return lambda workdir: os.path.isdir(os.path.join(workdir, "checkpoints", folder, str(step)))


KILL_POINTS = {
    "pretraining": has_step("pretrain", 1),
    "evolution": has_step("evolution", 2),
    "fine-tuning": lambda w: os.path.isdir(os.path.join(w, "checkpoints", "finetune_progress", "even", "members_0", "1")),
    "export": lambda w: os.path.isdir(os.path.join(w, "models", "even")),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_sigkill_then_resume_matches(point, reference, tmp_path):
    workdir = str(tmp_path / "run")
    code, _, _ = start_and_signal_when(workdir, KILL_POINTS[point], signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert not os.path.exists(os.path.join(workdir, "set_of_sets.json")) or point == "export"
    run_to_end(workdir)
    assert_same_results(workdir, reference)


@pytest.mark.slow
def test_ctrl_c_saves_and_says_how_to_resume(reference, tmp_path):
    workdir = str(tmp_path / "run")
    code, _, err = start_and_signal_when(workdir, lambda w: os.path.exists(os.path.join(w, "metrics.jsonl"))
                                         and os.path.getsize(os.path.join(w, "metrics.jsonl")) > 0, signal.SIGINT)
    assert code == 130
    assert "run the same command again to resume" in err
    assert "Traceback" not in err
    # The interrupt may land before or after the generation's state is kept,
    # so the newest checkpoint is the last finished generation or the one before.
    steps = [int(step) for step in os.listdir(os.path.join(workdir, "checkpoints", "evolution")) if step.isdigit()]
    with open(os.path.join(workdir, "metrics.jsonl")) as file:
        logged = len(file.readlines())
    assert logged - 1 <= max(steps) <= logged, (steps, logged)
    run_to_end(workdir)
    assert_same_results(workdir, reference)


@pytest.mark.slow
def test_corrupt_latest_checkpoint_falls_back(reference, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(reference, workdir)
    # Damage every file of the final evolution checkpoint and drop later stages.
    final = os.path.join(workdir, "checkpoints", "evolution", "3")
    for folder, _, files in os.walk(final):
        for name in files:
            with open(os.path.join(folder, name), "wb") as file:
                file.write(b"\x00garbage")
    for stage in ("finetune", "finetune_progress", "models", "fronts"):
        shutil.rmtree(os.path.join(workdir, stage if stage in ("models", "fronts") else os.path.join("checkpoints", stage)))
    os.remove(os.path.join(workdir, "set_of_sets.json"))
    result = run_to_end(workdir)
    assert "unreadable" in result.stderr
    assert_same_results(workdir, reference)


@pytest.mark.slow
def test_same_seed_is_bit_identical(reference, tmp_path):
    workdir = str(tmp_path / "again")
    run_to_end(workdir)
    assert_same_results(workdir, reference)
    for task in ("even", "odd"):
        a = np.load(os.path.join(workdir, "fronts", f"{task}.npz"))["objectives"]
        b = np.load(os.path.join(reference, "fronts", f"{task}.npz"))["objectives"]
        assert a.tobytes() == b.tobytes()
