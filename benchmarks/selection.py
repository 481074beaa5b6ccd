"""Speed of NSGA-II selection and of one MO-MFEA generation, side by side with pymoo.

Run from the repository root:

    python benchmarks/selection.py

(a) `nsga2_select` (k = N/2) against pymoo's non-dominated sorting plus crowding
    distance of every ranked front (the work of pymoo's `RankAndCrowding`
    survival), on the same random two-objective points.
(b) One engine generation (`ask`, a cheap synthetic objective, `tell`) for
    K = 2 tasks and Γ = 60, alone and for 100 seeds under `vmap`, against
    pymoo's NSGA-II with population 60 on the same binary problem, run once per
    task. Times exclude compilation.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.problem import Problem
from pymoo.operators.crossover.ux import UX
from pymoo.operators.mutation.bitflip import BitflipMutation
from pymoo.operators.sampling.rnd import BinaryRandomSampling
from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from sosjax.evolution import MOMFEA, non_dominated_ranks, nsga2_select


def best_time(function, repeats):
    """Return the smallest wall time of `repeats` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def pymoo_rank_and_crowd(objectives, k):
    """Sort until k rows are ranked, then compute every ranked front's crowding."""
    fronts = NonDominatedSorting().do(objectives, n_stop_if_ranked=k)
    crowding = get_crowding_function("cd")
    return [crowding.do(objectives[front]) for front in fronts]


def benchmark_selection(sizes, repeats):
    rows = []
    for size in sizes:
        rng = np.random.default_rng(size)
        objectives = rng.random((size, 2)).astype(np.float32)
        objectives64 = objectives.astype(np.float64)
        k = size // 2
        device_objectives = jnp.asarray(objectives)

        select = jax.jit(nsga2_select, static_argnums=1)
        ranks = jax.jit(non_dominated_ranks)
        select(device_objectives, k).block_until_ready()
        ranks(device_objectives).block_until_ready()

        ours = best_time(lambda: select(device_objectives, k).block_until_ready(), repeats)
        ours_ranks = best_time(lambda: ranks(device_objectives).block_until_ready(), repeats)
        theirs = best_time(lambda: pymoo_rank_and_crowd(objectives64, k), repeats)
        theirs_ranks = best_time(lambda: NonDominatedSorting().do(objectives64, return_rank=True), repeats)
        rows.append((size, ours, theirs, ours_ranks, theirs_ranks))
    return rows


def count_true(bits):
    """Count the True entries of `bool[..., D]` along the last axis.

    Summing bytes of 8 bits first is what XLA's CPU compiler vectorizes: a
    direct `sum` or `mean` of `bool[12000, 1000]` takes about 15 ms, this 1 ms.
    """
    padding = [(0, 0)] * (bits.ndim - 1) + [(0, -bits.shape[-1] % 8)]
    octets = jnp.pad(bits, padding).astype(jnp.int8).reshape(*bits.shape[:-1], -1, 8)
    return jnp.sum(jnp.sum(octets, axis=-1, dtype=jnp.int8), axis=-1, dtype=jnp.int32)


class HiddenTargetProblem(Problem):
    """Minimize (ones fraction, Hamming distance to a hidden target / D)."""

    def __init__(self, target):
        super().__init__(n_var=len(target), n_obj=2, xl=0, xu=1, vtype=bool)
        self.target = target

    def _evaluate(self, x, out, *args, **kwargs):
        x = np.asarray(x, bool)
        out["F"] = np.stack([x.mean(axis=1), (x != self.target).mean(axis=1)], axis=1)


def benchmark_generation(num_dims, num_seeds, repeats, scan_length):
    num_tasks, pop_size = 2, 60
    rng = np.random.default_rng(0)
    targets_np = rng.random((num_tasks, num_dims)) < 0.5
    targets = jnp.asarray(targets_np)
    strategy = MOMFEA(num_tasks, pop_size, num_dims)
    params = strategy.default_params

    def objective(masks, task_ids):
        ones = count_true(masks)
        distance = count_true(masks != targets[task_ids])
        return (jnp.stack([ones, distance], -1) / num_dims).astype(jnp.float32)

    def start(key):
        masks = strategy.init_population(key, params)
        task_ids = jnp.repeat(jnp.arange(num_tasks), pop_size)
        objectives = objective(masks.reshape(-1, num_dims), task_ids).reshape(num_tasks, pop_size, 2)
        return strategy.init(key, masks, objectives, params)

    def generation(state, key):
        key_ask, key_tell = jax.random.split(key)
        offspring, task_ids, state = strategy.ask(key_ask, state, params)
        return strategy.tell(key_tell, offspring, task_ids, objective(offspring, task_ids), state, params)

    def generations(state, key):
        """Run `scan_length` generations under `lax.scan`, as `sosjax compare` does."""
        state, _ = jax.lax.scan(generation, state, jax.random.split(key, scan_length))
        return state

    # Single calls pay Python's dispatch and XLA's per-call overhead every
    # generation; under `lax.scan` they are paid once per scan.
    step = jax.jit(generation)
    scanned = jax.jit(generations)
    state = jax.jit(start)(jax.random.key(0))
    key = jax.random.key(1)
    jax.block_until_ready(step(state, key))
    jax.block_until_ready(scanned(state, key))
    # A single call takes well under a millisecond: more repeats steady its minimum.
    one_seed = best_time(lambda: jax.block_until_ready(step(state, key)), 10 * repeats)
    one_seed_scanned = best_time(lambda: jax.block_until_ready(scanned(state, key)), repeats) / scan_length

    seeds = jax.random.split(jax.random.key(2), num_seeds)
    batched_step = jax.jit(jax.vmap(generation))
    batched_scan = jax.jit(jax.vmap(generations))
    states = jax.jit(jax.vmap(start))(seeds)
    jax.block_until_ready(batched_step(states, seeds))
    jax.block_until_ready(batched_scan(states, seeds))
    many_seeds = best_time(lambda: jax.block_until_ready(batched_step(states, seeds)), repeats)
    many_seeds_scanned = best_time(lambda: jax.block_until_ready(batched_scan(states, seeds)), repeats) / scan_length

    # pymoo: one NSGA-II per task, stepped with its ask/tell interface.
    algorithms = []
    for task in range(num_tasks):
        algorithm = NSGA2(
            pop_size=pop_size,
            sampling=BinaryRandomSampling(),
            crossover=UX(),
            mutation=BitflipMutation(prob=1.0, prob_var=1.0 / num_dims),
            eliminate_duplicates=False,
        )
        algorithm.setup(HiddenTargetProblem(targets_np[task]), seed=task, verbose=False)
        algorithm.next()
        algorithms.append(algorithm)
    pymoo_generation = best_time(lambda: [algorithm.next() for algorithm in algorithms], repeats)
    return (one_seed, one_seed_scanned), (many_seeds, many_seeds_scanned), pymoo_generation


def machine_description():
    model = "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    import os

    return f"{model}, {os.cpu_count()} cores, {platform.system()}, jax {jax.__version__} ({jax.default_backend()})"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 20_000, 200_000], help="population sizes N for (a)")
    parser.add_argument("--num-dims", type=int, default=1_000, help="mask bits D for (b)")
    parser.add_argument("--num-seeds", type=int, default=100, help="seeds vmapped in (b)")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per figure; the fastest counts")
    parser.add_argument("--scan-length", type=int, default=20, help="generations per lax.scan call in (b)")
    args = parser.parse_args()

    print(f"# Selection and generation speed, {datetime.date.today().isoformat()}")
    print(f"Machine: {machine_description()}\n")

    print("(a) NSGA-II survival of N/2 out of N random two-objective points (ms)\n")
    print("| N | sosjax nsga2_select | pymoo sort + crowding | pymoo time / sosjax time | sosjax ranks only | pymoo sort only |")
    print("|---|---|---|---|---|---|")
    for size, ours, theirs, ours_ranks, theirs_ranks in benchmark_selection(args.sizes, args.repeats):
        print(
            f"| {size:,} | {ours * 1e3:.2f} | {theirs * 1e3:.2f} | {theirs / ours:.2f} "
            f"| {ours_ranks * 1e3:.2f} | {theirs_ranks * 1e3:.2f} |"
        )

    one_seed, many_seeds, pymoo_generation = benchmark_generation(
        args.num_dims, args.num_seeds, args.repeats, args.scan_length
    )
    print(f"\n(b) One generation, K = 2, Γ = 60, D = {args.num_dims:,} (ms)\n")
    print(f"pymoo NSGA-II, one run per task, {pymoo_generation * 1e3:.2f} ms per generation.\n")
    print("| sosjax MO-MFEA | calls | per seed-generation | pymoo time / sosjax time |")
    print("|---|---|---|---|")
    runs = [("1 seed", 1, one_seed), (f"{args.num_seeds} seeds vmapped", args.num_seeds, many_seeds)]
    for label, seeds, (single_call, scanned) in runs:
        calls = [("one generation per call", single_call), (f"lax.scan of {args.scan_length}", scanned)]
        for call, seconds in calls:
            per_seed = seconds / seeds
            print(f"| {label} | {call} | {per_seed * 1e3:.4f} | {pymoo_generation / per_seed:.1f} |")


if __name__ == "__main__":
    main()
