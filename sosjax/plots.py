"""Figures of a run folder, rebuilt from its files alone.

`plots/front_<task>.png`: size against test metric before and after
fine-tuning, the JAT as a star. `plots/hypervolume.png`: hypervolume per
generation per task. `plots/rmp.png`: the inter-task rmp over generations.
"""

from __future__ import annotations

import io
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sosjax.export import higher_is_better  # noqa: E402
from sosjax.io import atomic_write_bytes, read_json  # noqa: E402

MANIFEST = "set_of_sets.json"
#: Axis-label spelling of the manifest's metric names.
METRIC_LABELS = {"rmse": "RMSE", "bleu": "BLEU"}


def _save(figure, path: str) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def read_metrics(workdir: str) -> list[dict]:
    """Read `metrics.jsonl`, ignoring a last line cut short by a killed run."""
    path = os.path.join(workdir, "metrics.jsonl")
    records = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as file:
            for line in file:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break
    return records


def plot_fronts(workdir: str) -> list[str]:
    """Draw one front plot per task from `set_of_sets.json`; return the paths."""
    manifest = read_json(os.path.join(workdir, MANIFEST))
    metric = manifest["metric"]
    unit = f" ({manifest['unit']})" if manifest.get("unit") else ""
    direction = "higher is better" if higher_is_better(metric) else "lower is better"
    jat = manifest["jat"]
    paths = []
    for task in sorted({m["task"] for m in manifest["members"]}):
        members = sorted((m for m in manifest["members"] if m["task"] == task), key=lambda m: m["params"])
        params = [m["params"] for m in members]
        figure, axes = plt.subplots(figsize=(6, 4.2))
        axes.plot(params, [m["test_metric_before_finetune"] for m in members], "o--", color="tab:gray", label="evolved (before fine-tuning)")
        axes.plot(params, [m["test_metric"] for m in members], "o-", color="tab:blue", label="fine-tuned specialists")
        axes.plot([jat["params"]], [jat["test_metric"][task]], marker="*", markersize=16, color="tab:red", linestyle="none", label="JAT")
        axes.set_xscale("log")
        axes.set_xlabel("parameters")
        axes.set_ylabel(f"test {METRIC_LABELS.get(metric, metric)}{unit}, {direction}")
        axes.set_title(f"Pareto front: {task}")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        path = os.path.join(workdir, "plots", f"front_{task}.png")
        _save(figure, path)
        paths.append(path)
    return paths


def plot_hypervolume(workdir: str) -> str | None:
    """Draw hypervolume per generation per task from `metrics.jsonl`."""
    records = read_metrics(workdir)
    if not records or "hypervolume" not in records[0]:
        return None
    figure, axes = plt.subplots(figsize=(6, 4.2))
    generations = [r["generation"] for r in records]
    for task in records[0]["hypervolume"]:
        axes.plot(generations, [r["hypervolume"][task] for r in records], label=task)
    axes.set_xlabel("generation")
    axes.set_ylabel("hypervolume (reference point (1, 1))")
    axes.set_title("Hypervolume per task")
    axes.grid(True, alpha=0.3)
    axes.legend()
    path = os.path.join(workdir, "plots", "hypervolume.png")
    _save(figure, path)
    return path


def plot_rmp(workdir: str) -> str | None:
    """Draw every off-diagonal rmp entry over generations."""
    records = read_metrics(workdir)
    if not records or "rmp" not in records[0]:
        return None
    tasks = list(records[0].get("hypervolume", {})) or [str(i) for i in range(len(records[0]["rmp"]))]
    figure, axes = plt.subplots(figsize=(6, 4.2))
    generations = [r["generation"] for r in records]
    size = len(records[0]["rmp"])
    for k in range(size):
        for l in range(k + 1, size):
            axes.plot(generations, [r["rmp"][k][l] for r in records], label=f"{tasks[k]} ↔ {tasks[l]}")
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("generation")
    axes.set_ylabel("rmp")
    axes.set_title("Random mating probability between tasks")
    axes.grid(True, alpha=0.3)
    axes.legend()
    path = os.path.join(workdir, "plots", "rmp.png")
    _save(figure, path)
    return path


def write_all(workdir: str) -> list[str]:
    """Rebuild every figure of the run folder; return the paths written."""
    paths = []
    if os.path.exists(os.path.join(workdir, MANIFEST)):
        paths.extend(plot_fronts(workdir))
    for path in (plot_hypervolume(workdir), plot_rmp(workdir)):
        if path:
            paths.append(path)
    return paths
