"""Time every stage of one `sosjax run` and compare evolution plus fine-tuning with the paper.

Runs the stages of `sosjax.pipeline.run` one by one on a fresh workdir and
prints the wall time of each. The last line gives the time of evolution plus
fine-tuning and the evaluations per second of the evolution stage. Compile
time is included, because a user waits for it too. It ends with the ratio of
the time that Choong et al., "Jack and Masters of All Trades", report for one
MO-MFEA run on MNIST (about 8 hours on one RTX 3090) to this time.

Run: `python benchmarks/full_run.py --workdir DIR [--config FILE[:ARG]] [--config.FIELD=VALUE ...]`
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine import describe
from sosjax import pipeline, report, sharding
from sosjax.config import load_config

PAPER_SECONDS = 8 * 3600


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="config file, optionally FILE:ARG (default: configs/digits_resnet18.py)")
    parser.add_argument("--workdir", required=True, help="run folder; emptied first so that every stage runs")
    overrides = [a for a in sys.argv[1:] if a.startswith("--config.")]
    args = parser.parse_args([a for a in sys.argv[1:] if not a.startswith("--config.")])

    sharding.initialize_distributed()
    config = load_config(args.config, overrides)
    shutil.rmtree(args.workdir, ignore_errors=True)
    pipeline.prepare_workdir(config, args.workdir)
    print(f"machine: {describe()}", flush=True)

    seconds = {}
    begin = time.perf_counter()
    context = pipeline.build_context(config, args.workdir, progress=False)
    seconds["load data"] = time.perf_counter() - begin

    def timed(name, stage, *stage_args):
        start = time.perf_counter()
        result = stage(*stage_args)
        seconds[name] = time.perf_counter() - start
        print(f"{name}: {seconds[name]:.1f} s", flush=True)
        return result

    jat = timed("pretrain", pipeline.pretrain_stage, context)
    state = timed("evolution", pipeline.evolve_stage, context, jat)
    fronts = timed("fronts", pipeline.fronts_stage, context, state)
    tuned = timed("fine-tuning", pipeline.finetune_stage, context, jat, fronts)
    timed("export", pipeline.export_stage, context, jat, fronts, tuned)
    report.write_report(args.workdir)

    settings = config.evolution
    evaluations = len(context.data.tasks) * settings.pop_size * (settings.generations + 1)
    members = sum(len(t.masks) for t in tuned.values())
    total = seconds["evolution"] + seconds["fine-tuning"]
    print(f"{config.data.name} {config.model.name} width {config.model.width}: K = {len(context.data.tasks)}, Γ = {settings.pop_size}, "
          f"{settings.generations} generations, {members} members fine-tuned for {config.finetune.epochs} epochs; "
          f"devices {1 if context.mesh is None else sharding.mesh_size(context.mesh)}")
    print(f"evolution + fine-tuning: {total:.1f} s (evolution {seconds['evolution']:.1f} s at "
          f"{evaluations / seconds['evolution']:.1f} evaluations/s including compilation, fine-tuning {seconds['fine-tuning']:.1f} s); "
          f"paper's 8 h on one RTX 3090 / this = {PAPER_SECONDS / total:.1f}×")


if __name__ == "__main__":
    main()
