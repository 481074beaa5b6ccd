"""`sosjax run` end to end on a tiny digits config, then reloading and selection."""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from sosjax.export import load_member, select
from sosjax.pipeline import build_context

@pytest.fixture
def tiny_run(finished_run):
    return finished_run


@pytest.mark.slow
def test_run_folder_layout(tiny_run):
    config, workdir, manifest_path = tiny_run
    assert manifest_path == os.path.join(workdir, "set_of_sets.json")
    for name in ("config.json", "metrics.jsonl", "report.md", "plots/hypervolume.png", "plots/rmp.png",
                 "fronts/even.csv", "fronts/odd.csv", "plots/front_even.png", "plots/front_odd.png"):
        assert os.path.isfile(os.path.join(workdir, name)), name
    with open(os.path.join(workdir, "metrics.jsonl")) as file:
        records = [json.loads(line) for line in file]
    assert [r["generation"] for r in records] == list(range(1, config.evolution.generations + 1))
    assert set(records[-1]["hypervolume"]) == {"even", "odd"}


@pytest.mark.slow
def test_manifest_fields_and_sizes(tiny_run):
    _, workdir, manifest_path = tiny_run
    with open(manifest_path) as file:
        manifest = json.load(file)
    jat = manifest["jat"]
    assert jat["bytes_fp16"] * 2 == jat["bytes_fp32"]
    assert set(jat["test_metric"]) == {"even", "odd"}
    assert manifest["members"]
    for member in manifest["members"]:
        for field in ("task", "id", "params", "bytes_fp32", "bytes_fp16", "metric", "test_metric", "path"):
            assert field in member, field
        assert member["metric"] == "accuracy"
        assert 0 < member["params"] <= jat["params"]
        assert member["bytes_fp16"] * 2 == member["bytes_fp32"]
        assert member["bytes_fp32"] >= 4 * member["params"]
        assert not os.path.isabs(member["path"])


@pytest.mark.slow
def test_reloaded_member_reproduces_test_metric(tiny_run):
    config, workdir, manifest_path = tiny_run
    with open(manifest_path) as file:
        manifest = json.load(file)
    context = build_context(config, workdir, progress=False)
    for member in manifest["members"][:2]:
        model, variables = load_member(os.path.join(workdir, member["path"]))
        assert model.num_params() == member["params"]
        task_index = context.data.task_names.index(member["task"])
        task = context.data.tasks[task_index]
        logits = model.apply(variables, jnp.asarray(task.x_test))
        allowed = context.heads.class_mask[task_index]
        predictions = np.argmax(np.where(allowed, np.asarray(logits), -np.inf), axis=-1)
        accuracy = float(np.mean(predictions == task.y_test))
        assert accuracy == pytest.approx(member["test_metric"], abs=1e-6)


@pytest.mark.slow
def test_select_picks_best_within_budget(tiny_run):
    _, workdir, manifest_path = tiny_run
    with open(manifest_path) as file:
        members = [m for m in json.load(file)["members"] if m["task"] == "even"]
    budget = sorted(m["params"] for m in members)[len(members) // 2]
    chosen = select(workdir, "even", max_params=budget)
    fitting = [m for m in members if m["params"] <= budget]
    assert chosen["params"] <= budget
    assert chosen["test_metric"] == max(m["test_metric"] for m in fitting)


@pytest.mark.slow
def test_select_cli_reports_no_fit(tiny_run):
    _, workdir, _ = tiny_run
    result = subprocess.run([sys.executable, "-m", "sosjax.cli", "select", "--workdir", workdir, "--task", "even", "--max-params", "1"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "No member of task 'even' fits the budget" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_select_cli_prints_json(tiny_run):
    _, workdir, _ = tiny_run
    result = subprocess.run([sys.executable, "-m", "sosjax.cli", "select", "--workdir", workdir, "--task", "odd", "--max-bytes", "10000000000"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    member = json.loads(result.stdout)
    assert member["task"] == "odd"
    assert os.path.isdir(member["folder"])
