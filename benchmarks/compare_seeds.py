"""Time S seeds vmapped in one jitted program against S sequential runs, in one process.

Both sides run the same `lax.scan` over generations of the same MO-MFEA
strategy on the digits config. The sequential side calls the one-seed program
S times. Both programs are compiled and timed before the runs, so compile time
is reported apart. The JAT is randomly initialised: a generation's cost does not depend on
its weights.

    JAX_PLATFORMS=cpu PYTHONPATH=. python benchmarks/compare_seeds.py --seeds 10 --generations 5
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from sosjax import compare as cmp
from sosjax.config import load_config
from sosjax.evolve import make_strategy
from sosjax.fitness import make_evaluate
from sosjax.pipeline import build_model, load_data, task_heads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits_resnet18.py")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("overrides", nargs="*", help="config overrides, config.FIELD=VALUE")
    parser.add_argument("--repeats", type=int, default=2, help="timed repetitions of each side; the fastest is reported")
    args = parser.parse_args()

    config = load_config(args.config, args.overrides)
    data = load_data(config)
    model = build_model(config, data)
    variables = model.init(jax.random.key(0), jnp.asarray(data.tasks[0].x_train[:2]))
    strategy, params = make_strategy(config, len(data.tasks), model.num_dims, model.repair)
    evaluate = make_evaluate(model, task_heads(data), chunk_size=config.evolution.chunk_size)
    inputs = cmp.seed_inputs(data, config.evolution, list(range(args.seeds)))

    initial = cmp.make_initial_program(strategy, evaluate)
    masks, objectives = initial(params.p_min, variables, inputs.population_keys, jnp.asarray(inputs.xs), jnp.asarray(inputs.ys))
    reference = jnp.asarray(cmp.shared_reference_loss([np.asarray(objectives)]))
    states = jax.vmap(strategy.init, in_axes=(None, 0, 0, None, None))(jax.random.key(0), masks, objectives, params, reference)
    program = cmp.make_seed_program(strategy, evaluate, args.generations)
    xs, ys = jnp.asarray(inputs.xs), jnp.asarray(inputs.ys)

    def one(rows):
        return (params, jax.tree.map(lambda v: v[rows], states), inputs.run_keys[rows], variables, xs[rows], ys[rows])

    begin = time.perf_counter()
    together = program.lower(*one(np.arange(args.seeds))).compile()
    compile_together = time.perf_counter() - begin
    begin = time.perf_counter()
    alone = program.lower(*one(np.arange(1))).compile()
    compile_alone = time.perf_counter() - begin

    seed_args = [one(np.array([s])) for s in range(args.seeds)]
    all_args = one(np.arange(args.seeds))
    vmapped, sequential = [], []
    for _ in range(args.repeats):
        begin = time.perf_counter()
        jax.block_until_ready(together(*all_args))
        vmapped.append(time.perf_counter() - begin)
        begin = time.perf_counter()
        for arguments in seed_args:
            jax.block_until_ready(alone(*arguments))
        sequential.append(time.perf_counter() - begin)

    evaluations = args.seeds * args.generations * strategy.num_offspring
    print(f"config {args.config} {' '.join(args.overrides)}: K={strategy.num_tasks}, pop_size={strategy.pop_size}, D={strategy.num_dims}, "
          f"{args.seeds} seeds x {args.generations} generations = {evaluations} evaluations")
    print("| mode | compile (s) | run (s) | evaluations/s |")
    print("|---|---|---|---|")
    print(f"| {args.seeds} seeds vmapped, one call | {compile_together:.1f} | {min(vmapped):.2f} | {evaluations / min(vmapped):.0f} |")
    print(f"| {args.seeds} sequential one-seed calls | {compile_alone:.1f} | {min(sequential):.2f} | {evaluations / min(sequential):.0f} |")
    print(f"speed-up of vmapped over sequential: {min(sequential) / min(vmapped):.2f}x")


if __name__ == "__main__":
    main()
