"""Tables of a run folder, as Markdown, rebuilt from its manifest."""

from __future__ import annotations

import os

from sosjax import plots
from sosjax.export import MANIFEST, higher_is_better, read_manifest
from sosjax.io import atomic_write_text


def tables_markdown(manifest: dict) -> str:
    """Return one Markdown table per task: the JAT, then the members by size."""
    metric = manifest["metric"]
    unit = f" ({manifest['unit']})" if manifest.get("unit") else ""
    jat = manifest["jat"]
    lines = []
    for task in sorted({m["task"] for m in manifest["members"]}):
        members = sorted((m for m in manifest["members"] if m["task"] == task), key=lambda m: m["params"])
        lines += [
            f"## {task}",
            "",
            f"| model | params | size vs JAT | bytes fp32 | bytes fp16 | test {metric}{unit} before fine-tuning | test {metric}{unit} |",
            "|---|---:|---:|---:|---:|---:|---:|",
            f"| JAT | {jat['params']:,} | 100.0% | {jat.get('bytes_fp32', 0):,} | {jat.get('bytes_fp16', 0):,} | | {jat['test_metric'][task]:.4f} |",
        ]
        for m in members:
            lines.append(
                f"| {m['id']} | {m['params']:,} | {100 * m['params'] / jat['params']:.1f}% | {m.get('bytes_fp32', 0):,} | "
                f"{m.get('bytes_fp16', 0):,} | {m['test_metric_before_finetune']:.4f} | {m['test_metric']:.4f} |"
            )
        lines.append("")
    return "\n".join(lines)


def summary_lines(manifest: dict) -> list[str]:
    """Summarize each task in one line: the JAT's metric and the smallest member at least as good."""
    metric = manifest["metric"]
    better = higher_is_better(metric)
    jat = manifest["jat"]
    lines = []
    for task in sorted({m["task"] for m in manifest["members"]}):
        members = [m for m in manifest["members"] if m["task"] == task]
        reference = jat["test_metric"][task]
        good = [m for m in members if (m["test_metric"] >= reference if better else m["test_metric"] <= reference)]
        text = f"{task}: JAT {metric} {reference:.4f} with {jat['params']:,} params; {len(members)} specialists"
        if good:
            best = min(good, key=lambda m: m["params"])
            text += f"; the smallest at least as good: {best['id']} with {best['params']:,} params ({100 * best['params'] / jat['params']:.1f}% of the JAT), {metric} {best['test_metric']:.4f}"
        else:
            top = (max if better else min)(members, key=lambda m: m["test_metric"])
            text += f"; none matches the JAT, the best is {top['id']} with {metric} {top['test_metric']:.4f}"
        lines.append(text)
    return lines


def write_report(workdir: str) -> list[str]:
    """Rewrite `report.md` and every plot of the run folder; return the paths."""
    path = os.path.join(workdir, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found; run `sosjax run --workdir {workdir}` to finish the run first.")
    manifest = read_manifest(path)
    report_path = os.path.join(workdir, "report.md")
    atomic_write_text(report_path, "# Set of Sets\n\n" + "\n".join(f"- {line}" for line in summary_lines(manifest)) + "\n\n" + tables_markdown(manifest))
    return [report_path] + plots.write_all(workdir)
