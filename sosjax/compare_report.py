"""Statistics, tables and figures of a comparison folder.

`comparison.json` contains, per variant and task, the mean and standard
deviation of the hypervolume per generation, every seed's curve, the final
values and the rmp matrices. `comparison.md` is its table, and
`comparison.png` draws the mean curves with ±1 standard deviation bands.
"""

from __future__ import annotations

import io
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from sosjax.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json  # noqa: E402

FILES = {"json": "comparison.json", "markdown": "comparison.md", "plot": "comparison.png"}


def paired_test(values: np.ndarray, baseline: np.ndarray) -> dict:
    """Compare paired final hypervolumes `f[S]` of a variant and a baseline over seeds.

    Returns the mean difference, the seeds where the variant is ahead, behind
    or tied, and the two-sided Wilcoxon signed-rank test (scipy's default
    method: exact for small samples without ties or zeros). With every
    difference zero the test is undefined, and the p-value is 1.
    """
    values = np.asarray(values, np.float64)
    baseline = np.asarray(baseline, np.float64)
    differences = values - baseline
    result = {
        "mean_difference": float(np.mean(differences)),
        "wins": int(np.sum(differences > 0)),
        "losses": int(np.sum(differences < 0)),
        "ties": int(np.sum(differences == 0)),
        "statistic": None,
        "p_value": 1.0,
    }
    if np.any(differences != 0):
        test = stats.wilcoxon(values, baseline, alternative="two-sided")
        result["statistic"] = float(test.statistic)
        result["p_value"] = float(test.pvalue)
    return result


def summarize(comparison, task_names, *, evaluations_per_generation: int) -> dict:
    """Build the `comparison.json` dictionary from a `Comparison`.

    Each non-baseline variant is tested against the baseline: `single` when it
    is among the variants, otherwise the first variant.
    """
    names = [variant.name for variant in comparison.variants]
    baseline = "single" if "single" in names else names[0]
    generations = next(iter(comparison.hypervolume.values())).shape[1] - 1

    variants = {}
    for variant in comparison.variants:
        curves = comparison.hypervolume[variant.name]
        tasks = {}
        for k, task in enumerate(task_names):
            curve = curves[:, :, k]
            tasks[task] = {
                "mean": _floats(curve.mean(axis=0)),
                "std": _floats(curve.std(axis=0)),
                "curves": [_floats(row) for row in curve],
                "final": _floats(curve[:, -1]),
                "final_mean": float(curve[:, -1].mean()),
                "final_std": float(curve[:, -1].std()),
            }
        variants[variant.name] = {
            "description": variant.description,
            "rmp_setting": np.asarray(variant.params.rmp).tolist(),
            "learn_rmp": bool(variant.params.learn_rmp),
            "crossover": variant.params.crossover,
            "mutation_rate": float(variant.params.mutation_rate),
            "p_min": float(variant.params.p_min),
            "seconds": comparison.seconds[variant.name],
            "tasks": tasks,
            # [S][G][K][K]: the rmp matrix each seed used in each generation.
            "rmp": np.asarray(comparison.rmp[variant.name]).tolist(),
            "final_rmp_mean": np.asarray(comparison.rmp[variant.name])[:, -1].mean(axis=0).tolist() if generations else None,
            "transfers": np.asarray(comparison.transfers[variant.name]).tolist(),
        }

    tests = []
    for name in names:
        if name == baseline:
            continue
        for k, task in enumerate(task_names):
            test = paired_test(comparison.hypervolume[name][:, -1, k], comparison.hypervolume[baseline][:, -1, k])
            tests.append({"task": task, "variant": name, "baseline": baseline, **test})

    return {
        "tasks": list(task_names),
        "seeds": [int(s) for s in comparison.seeds],
        "generations": int(generations),
        "evaluations_per_generation": int(evaluations_per_generation),
        # Both objectives are normalized: size is a fraction of the JAT, and loss is
        # divided by reference_loss. The reference point is (1, 1).
        "reference_loss": dict(zip(task_names, _floats(comparison.reference_loss))),
        "reference_point": [1.0, 1.0],
        "baseline": baseline,
        "variants": variants,
        "tests": tests,
    }


def markdown_table(summary: dict) -> str:
    """Render the final hypervolumes and paired tests as a Markdown table."""
    tests = {(t["variant"], t["task"]): t for t in summary["tests"]}
    middle = summary["generations"] // 2
    lines = [
        f"Hypervolume over {len(summary['seeds'])} seeds, {summary['generations']} generations of "
        f"{summary['evaluations_per_generation']} evaluations; reference point (1, 1), shared loss scale "
        + ", ".join(f"{task} {value:.4g}" for task, value in summary["reference_loss"].items())
        + ".",
        "",
        f"| task | variant | HV gen 0 | HV gen {middle} | final HV (mean ± std) | vs {summary['baseline']}: mean diff | wins/losses/ties | Wilcoxon p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task in summary["tasks"]:
        for name, variant in summary["variants"].items():
            entry = variant["tasks"][task]
            test = tests.get((name, task))
            if test is None:
                versus = ["(baseline)", "", ""]
            else:
                versus = [f"{test['mean_difference']:+.4f}", f"{test['wins']}/{test['losses']}/{test['ties']}", f"{test['p_value']:.3g}"]
            lines.append(
                f"| {task} | {name} | {entry['mean'][0]:.4f} | {entry['mean'][middle]:.4f} | "
                f"{entry['final_mean']:.4f} ± {entry['final_std']:.4f} | " + " | ".join(versus) + " |"
            )
    return "\n".join(lines) + "\n"


def plot_curves(summary: dict):
    """Draw mean hypervolume per generation with ±1 standard deviation bands, one panel per task."""
    tasks = summary["tasks"]
    figure, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.2), squeeze=False)
    generations = np.arange(summary["generations"] + 1)
    for axis, task in zip(axes[0], tasks):
        for name, variant in summary["variants"].items():
            mean = np.asarray(variant["tasks"][task]["mean"], float)
            std = np.asarray(variant["tasks"][task]["std"], float)
            (line,) = axis.plot(generations, mean, label=name)
            axis.fill_between(generations, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        axis.set_xlabel(f"generation ({summary['evaluations_per_generation']} evaluations each)")
        axis.set_ylabel("hypervolume")
        axis.set_title(f"{task}: mean ± std over {len(summary['seeds'])} seeds")
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.tight_layout()
    return figure


def write_comparison(summary: dict, folder: str) -> dict[str, str]:
    """Write `comparison.json`, `comparison.md` and `comparison.png` into `folder`; return their paths."""
    paths = {kind: os.path.join(folder, name) for kind, name in FILES.items()}
    atomic_write_json(paths["json"], summary)
    atomic_write_text(paths["markdown"], markdown_table(summary))
    figure = plot_curves(summary)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    atomic_write_bytes(paths["plot"], buffer.getvalue())
    return paths


def load_comparison(folder: str) -> dict:
    """Read the `comparison.json` of a comparison folder."""
    path = os.path.join(folder, FILES["json"])
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {FILES['json']} in {folder!r}; run `sosjax compare --workdir {folder}` first.")
    return read_json(path)


def _floats(values) -> list:
    """Convert to a list of floats, with None for NaN and infinities (JSON has neither)."""
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(values).reshape(-1)]
