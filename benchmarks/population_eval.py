"""Time a masked population evaluation against a loop and against one unmasked pass.

For each model, in one process and with compile time excluded:

- vmapped: one jitted call `vmap(apply)` over P masks and P batches of B inputs;
- loop: P calls of one jitted single-candidate function;
- unmasked: one jitted forward pass without a mask on all P·B inputs.

The ratio vmapped / unmasked is the overhead of masking a population; the
target is at most 1.15. The masked ResNet calls normalize with batch
statistics (adaptive BatchNorm, as fitness does). The unmasked ResNet pass is
timed twice: with batch statistics over all P·B inputs and with running statistics.

Run: `python benchmarks/population_eval.py [--population 32] [--batch 64] [--repeats 20]`
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from sosjax.models import bilstm, resnet18


def median_seconds(fns, repeats):
    """Median wall time of each `fns[name]()` after one warm-up (compile) run.

    The functions run in turns, one call each per round, so that load from other
    processes affects all of them alike.
    """
    for fn in fns.values():
        jax.block_until_ready(fn())
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def random_population(model, population, seed):
    rng = np.random.default_rng(seed)
    density = rng.uniform(0.3, 1.0, size=(population, 1))
    raw = jnp.asarray(rng.random((population, model.num_dims)) < density)
    keys = jax.random.split(jax.random.key(seed), population)
    return jax.vmap(model.repair)(keys, raw)


def bench_model(name, model, example, population, repeats, masked_mode):
    """Return a dict of timings (seconds) for one model."""
    batch = example.shape[0]
    xs = jax.random.normal(jax.random.key(1), (population,) + example.shape)
    flat = xs.reshape((population * batch,) + example.shape[1:])
    variables = model.init(jax.random.key(0), example)
    masks = random_population(model, population, seed=2)

    vmapped = jax.jit(jax.vmap(lambda m, x: model.apply(variables, x, m, batch_stats=masked_mode)))
    single = jax.jit(lambda m, x: model.apply(variables, x, m, batch_stats=masked_mode))
    unmasked_batch = jax.jit(lambda x: model.apply(variables, x, batch_stats="batch"))
    unmasked_running = jax.jit(lambda x: model.apply(variables, x, batch_stats="running"))

    fns = {
        "vmapped": lambda: vmapped(masks, xs),
        "loop": lambda: [single(masks[i], xs[i]) for i in range(population)],
        "unmasked_batch": lambda: unmasked_batch(flat),
    }
    if model.has_batch_stats:
        fns["unmasked_running"] = lambda: unmasked_running(flat)
    result = {"model": name, **median_seconds(fns, repeats)}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=32, help="candidates P")
    parser.add_argument("--batch", type=int, default=64, help="inputs per candidate B")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per measurement (median)")
    args = parser.parse_args()
    P, B = args.population, args.batch

    print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
    print(f"P = {P} candidates, B = {B} inputs each\n")
    rows = [
        bench_model(
            "resnet18 cifar w=0.25, 8×8×1",
            resnet18(10, stem="cifar", width=0.25, in_channels=1),
            jnp.zeros((B, 8, 8, 1)),
            P,
            args.repeats,
            masked_mode="batch",
        ),
        bench_model(
            "bilstm F=11 H=128 L=2, T=10",
            bilstm(11, hidden=128, layers=2, outputs=1),
            jnp.zeros((B, 10, 11)),
            P,
            args.repeats,
            masked_mode="running",
        ),
    ]

    print("| model | vmapped (ms) | loop of P (ms) | unmasked P·B, batch stats (ms) | unmasked P·B, running stats (ms) | vmapped / loop | vmapped / unmasked (same BN mode) | vmapped / unmasked running |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        running = r.get("unmasked_running")
        running_ms = "—" if running is None else f"{1e3 * running:.2f}"
        running_ratio = "—" if running is None else f"{r['vmapped'] / running:.3f}"
        print(
            f"| {r['model']} | {1e3 * r['vmapped']:.2f} | {1e3 * r['loop']:.2f} | {1e3 * r['unmasked_batch']:.2f} | "
            f"{running_ms} | {r['vmapped'] / r['loop']:.3f} | {r['vmapped'] / r['unmasked_batch']:.3f} | {running_ratio} |"
        )

if __name__ == "__main__":
    main()
