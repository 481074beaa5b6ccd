"""Compare MO-MFEA variants with the single-task baseline over many seeds.

For seed s, every variant of one comparison starts from the same JAT, the same
initial population and the same fitness batches, and spends the same number of
evaluations (K·Γ per generation). Every hypervolume uses one reference loss per
task, shared by all variants and seeds. Seeds run together: one jitted program
maps `vmap` over seeds onto a `lax.scan` over generations, in chunks of seeds
when memory requires.

    sosjax compare --config configs/digits_resnet18.py --workdir runs/compare --seeds 10
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from sosjax import evolution
from sosjax.config import apply_override, validate
from sosjax.evolve import draw_fitness_batches, make_generation, make_strategy

#: Algorithms that `compare` runs by default, with what each one changes in the config's params.
ALGORITHMS = {
    "momfea": "MO-MFEA with the config's fixed rmp",
    "momfea2": "MO-MFEA-II: rmp learned every generation",
    "single": "single-task baseline: rmp = 0, K independent NSGA-II runs",
}

#: `evolution` fields that `--sweep` may vary: those that only change the strategy's params.
SWEEP_FIELDS = ("rmp", "learn_rmp", "crossover", "mutation_rate", "p_min")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One evolution setting of a comparison.

    Attributes:
      name: label in tables, plots and `comparison.json`, for example `single` or `rmp=0.1`.
      params: the strategy's hyperparameters.
      description: one line saying what the variant is.
    """

    name: str
    params: evolution.MOMFEAParams
    description: str


@dataclasses.dataclass(frozen=True)
class SeedInputs:
    """Per-seed inputs that every variant shares: fitness batches and PRNG keys.

    Attributes:
      seeds: `int[S]`, the seed values.
      xs: `[S, K, NB, B, ...]` fitness batch inputs of each seed.
      ys: `[S, K, NB, B]` fitness batch targets.
      population_keys: `key[S]` that draw each seed's initial population.
      run_keys: `key[S]` of each seed's generations.
    """

    seeds: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    population_keys: jax.Array
    run_keys: jax.Array

    def take(self, rows: np.ndarray) -> "SeedInputs":
        """Return the inputs of the seeds at `rows` (repeats allowed, for padding)."""
        return SeedInputs(self.seeds[rows], self.xs[rows], self.ys[rows], self.population_keys[rows], self.run_keys[rows])


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Results of every variant on every seed, on host memory.

    Attributes:
      variants: the variants, in run order.
      seeds: `int[S]`.
      reference_loss: `f32[K]`, the shared loss that maps to 1 in every hypervolume.
      hypervolume: variant name → `f32[S, G+1, K]`; generation 0 is the initial population.
      rmp: variant name → `f32[S, G, K, K]`, the matrix each generation used.
      transfers: variant name → `int32[S, G]`, offspring per generation that mix two tasks.
      final: variant name → the final `MOMFEAState`, each leaf with a leading seed axis.
      seconds: variant name → wall time of its run, compilation included.
    """

    variants: tuple[Variant, ...]
    seeds: np.ndarray
    reference_loss: np.ndarray
    hypervolume: dict[str, np.ndarray]
    rmp: dict[str, np.ndarray]
    transfers: dict[str, np.ndarray]
    final: dict[str, Any]
    seconds: dict[str, float]


# Variants ------------------------------------------------------------------


def algorithm_variants(names: Sequence[str], base_params: evolution.MOMFEAParams) -> list[Variant]:
    """Build the variants `names` (keys of `ALGORITHMS`) from the config's params."""
    unknown = [name for name in names if name not in ALGORITHMS]
    if unknown or not names:
        raise ValueError(f"Unknown algorithms {unknown or list(names)}; choose from {', '.join(ALGORITHMS)}.")
    if len(set(names)) != len(names):
        raise ValueError(f"Algorithms are listed twice in {list(names)}; name each one once.")

    variants = []
    for name in names:
        if name == "momfea":
            params = base_params.replace(learn_rmp=False)
        elif name == "momfea2":
            params = base_params.replace(learn_rmp=True)
        else:
            params = base_params.replace(rmp=jnp.zeros_like(base_params.rmp), learn_rmp=False)
        variants.append(Variant(name, params, ALGORITHMS[name]))
    return variants


def parse_sweep(sweep: str) -> tuple[str, list[str]]:
    """Split `evolution.FIELD=v1,v2,...` into the field name and the value texts."""
    key, sep, values = sweep.partition("=")
    field = key.removeprefix("config.").removeprefix("evolution.")
    if not sep or not key.removeprefix("config.").startswith("evolution.") or field not in SWEEP_FIELDS:
        raise ValueError(f"Invalid sweep {sweep!r}: expected evolution.FIELD=v1,v2,... with FIELD one of {', '.join(SWEEP_FIELDS)}.")
    texts = [text.strip() for text in values.split(",")]
    if len(texts) < 2 or any(not text for text in texts):
        raise ValueError(f"Invalid sweep {sweep!r}: give at least two comma-separated values, for example evolution.rmp=0,0.3.")
    return field, texts


def sweep_variants(config, sweep: str, num_tasks: int, num_dims: int) -> list[Variant]:
    """Build one variant per value of `evolution.FIELD=v1,v2,...`, the rest of the config unchanged.

    NOTE: values are split at commas, so an rmp matrix cannot be swept.
    """
    field, texts = parse_sweep(sweep)
    variants = []
    for text in texts:
        varied = copy.deepcopy(config)
        apply_override(varied, f"evolution.{field}={text}")
        validate(varied)
        _, params = make_strategy(varied, num_tasks, num_dims, None)
        variants.append(Variant(f"{field}={text}", params, f"evolution.{field} = {text}"))
    return variants


# Seeds ---------------------------------------------------------------------


def seed_inputs(data, settings, seeds: Sequence[int]) -> SeedInputs:
    """Draw each seed's fitness batches and keys the way `sosjax run` does for its seed.

    For seed s the batches come from `draw_fitness_batches(..., seed=s)` and the
    keys from `fold_in(key(s), 2)`, so the run of seed `config.seed` starts as
    the evolution stage of `sosjax run` does. The data split itself is the
    config's and is the same for every seed.
    """
    batches = [draw_fitness_batches(data, settings.fitness_batch_size, settings.num_fitness_batches, int(s)) for s in seeds]
    population_keys, run_keys = [], []
    for s in seeds:
        init_key, run_key = jax.random.split(jax.random.fold_in(jax.random.key(int(s)), 2))
        _, population_key = jax.random.split(init_key)
        population_keys.append(population_key)
        run_keys.append(run_key)
    return SeedInputs(
        seeds=np.asarray(seeds, np.int64),
        xs=np.stack([b.xs for b in batches]),
        ys=np.stack([b.ys for b in batches]),
        population_keys=jnp.stack(population_keys),
        run_keys=jnp.stack(run_keys),
    )


def shared_reference_loss(objectives: Sequence[np.ndarray]) -> np.ndarray:
    """Return `f32[K]`: each task's largest finite positive loss over all `[..., K, Γ, 2]` arrays.

    A task with no finite positive loss gets 1, as in `MOMFEA.init`.
    """
    losses = []
    for values in objectives:
        values = np.asarray(values, np.float64)
        usable = np.all(np.isfinite(values), axis=-1)
        loss = np.where(usable, values[..., 1], -np.inf)
        losses.append(loss.reshape(-1, *loss.shape[-2:]).max(axis=(0, 2)))
    largest = np.max(np.stack(losses), axis=0)
    return np.where(largest > 0, largest, 1.0).astype(np.float32)


def population_hypervolume(objectives: jax.Array, reference_loss: jax.Array) -> jax.Array:
    """Return `f32[K]` hypervolumes of `f32[K, Γ, 2]` objectives, loss divided by `reference_loss`.

    The same normalization and reference point (1, 1) as the `hypervolume` metric of `MOMFEA.tell`.
    """
    scale = jnp.stack([jnp.ones_like(reference_loss), reference_loss], axis=-1)
    return jax.vmap(evolution.hypervolume, in_axes=(0, None))(objectives / scale[:, None, :], jnp.ones(2, jnp.float32))


# Programs ------------------------------------------------------------------


def make_initial_program(strategy, evaluate: Callable) -> Callable:
    """Build the jitted `(p_min, variables, keys, xs, ys) -> (masks bool[S, K, Γ, D], objectives f32[S, K, Γ, 2])`.

    Each seed draws its population with its own key and evaluates it on its batch 0.
    """
    num_tasks, pop_size, num_dims = strategy.num_tasks, strategy.pop_size, strategy.num_dims
    task_ids = jnp.repeat(jnp.arange(num_tasks, dtype=jnp.int32), pop_size)

    def one_seed(p_min, variables, key, xs, ys):
        masks = evolution.initial_population(key, num_tasks, pop_size, num_dims, p_min, repair=strategy.repair)
        flat = masks.reshape(num_tasks * pop_size, num_dims)
        objectives = evaluate(variables, flat, task_ids, xs[:, 0], ys[:, 0])
        return masks, objectives.reshape(num_tasks, pop_size, 2)

    return jax.jit(jax.vmap(one_seed, in_axes=(None, None, 0, 0, 0)))


def make_seed_program(strategy, evaluate: Callable, generations: int) -> Callable:
    """Build the jitted `(params, states, keys, variables, xs, ys) -> (states, metrics)` over seeds.

    Seed axis S leads `states`, `keys`, `xs`, `ys` and every output; `params` and
    `variables` are shared. Each seed runs `make_generation`, the pipeline's own
    generation, under `lax.scan` for `generations` steps, so the metrics have
    shape `[S, G, ...]`. `params` is an argument rather than a constant, so
    variants that differ only in array fields (rmp, mutation rate) share one
    compiled program.
    """

    def one_seed(params, state, key, variables, xs, ys):
        generation = make_generation(strategy, params, evaluate)

        def step(state, g):
            return generation(state, key, variables, xs, ys, g)

        return jax.lax.scan(step, state, jnp.arange(generations, dtype=jnp.int32))

    return jax.jit(jax.vmap(one_seed, in_axes=(None, 0, 0, None, 0, 0)))


def _chunks(count: int, chunk: int) -> list[np.ndarray]:
    """Split seed rows 0..count-1 into chunks of `chunk`, padding the last with its final row.

    Equal chunk shapes let every chunk reuse one compiled program.
    """
    chunk = count if chunk <= 0 else min(chunk, count)
    rows = []
    for start in range(0, count, chunk):
        part = np.arange(start, min(start + chunk, count))
        rows.append(np.concatenate([part, np.full(chunk - len(part), part[-1])]))
    return rows


def _concat_chunks(parts: list, counts: list[int]):
    """Join per-chunk pytrees along the seed axis, dropping padding rows."""
    return jax.tree.map(lambda *leaves: np.concatenate([np.asarray(leaf)[:n] for leaf, n in zip(leaves, counts)]), *parts)


# Running -------------------------------------------------------------------


def run_variants(
    strategy,
    evaluate: Callable,
    variables,
    inputs: SeedInputs,
    variants: Sequence[Variant],
    generations: int,
    *,
    reference_loss: np.ndarray | None = None,
    seed_chunk: int = 0,
    progress: bool = False,
) -> Comparison:
    """Run every variant on every seed, seeds vmapped, and collect hypervolume curves.

    Args:
      strategy: the `MOMFEA` strategy shared by all variants.
      evaluate: `evaluate(variables, masks, task_ids, xs, ys) -> f32[N, 2]` (see `make_evaluate`).
      variables: the JAT's variables.
      inputs: each seed's fitness batches and keys.
      variants: the settings to compare; each sees the same seeds.
      generations: G.
      reference_loss: optional `f32[K]`. Defaults to `shared_reference_loss` over
        every variant's initial populations on every seed.
      seed_chunk: seeds per vmapped chunk; 0 runs all seeds at once.
      progress: show a progress bar.

    Returns:
      A `Comparison`. Variants with the same `p_min` start from the same population.
    """
    count = len(inputs.seeds)
    chunks = _chunks(count, seed_chunk)
    counts = [min(len(rows), count - i * len(chunks[0])) for i, rows in enumerate(chunks)]
    jnp_inputs = [inputs.take(rows) for rows in chunks]

    # Initial populations depend on p_min only; draw each distinct one once.
    initial_program = make_initial_program(strategy, evaluate)
    initial = {}
    for variant in variants:
        p_min = float(variant.params.p_min)
        if p_min not in initial:
            parts = [initial_program(variant.params.p_min, variables, part.population_keys, jnp.asarray(part.xs), jnp.asarray(part.ys))
                     for part in jnp_inputs]
            initial[p_min] = [jax.tree.map(np.asarray, part) for part in parts]
    if reference_loss is None:
        reference_loss = shared_reference_loss([objectives for parts in initial.values() for _, objectives in parts])
    reference_loss = np.asarray(reference_loss, np.float32)
    reference = jnp.asarray(reference_loss)

    program = make_seed_program(strategy, evaluate, generations)
    init = jax.vmap(strategy.init, in_axes=(None, 0, 0, None, None))
    initial_hypervolume = jax.jit(jax.vmap(population_hypervolume, in_axes=(0, None)))
    bar = tqdm(total=len(variants) * len(chunks), desc="compare", unit="chunk", disable=not progress)

    results = {name: {} for name in ("hypervolume", "rmp", "transfers", "final")}
    seconds = {}
    for variant in variants:
        begin = time.perf_counter()
        finals, metrics, starts = [], [], []
        for part, (masks, objectives) in zip(jnp_inputs, initial[float(variant.params.p_min)]):
            state = init(jax.random.key(0), masks, objectives, variant.params, reference)
            final, metric = program(variant.params, state, part.run_keys, variables, jnp.asarray(part.xs), jnp.asarray(part.ys))
            finals.append(jax.tree.map(np.asarray, final))
            metrics.append({name: np.asarray(metric[name]) for name in ("hypervolume", "rmp", "transfers")})
            starts.append(np.asarray(initial_hypervolume(jnp.asarray(objectives), reference)))
            bar.update(1)
        seconds[variant.name] = time.perf_counter() - begin

        metric = _concat_chunks(metrics, counts)
        start = _concat_chunks(starts, counts)
        results["hypervolume"][variant.name] = np.concatenate([start[:, None], metric["hypervolume"]], axis=1)
        results["rmp"][variant.name] = metric["rmp"]
        results["transfers"][variant.name] = metric["transfers"]
        results["final"][variant.name] = _concat_chunks(finals, counts)
    bar.close()

    return Comparison(
        variants=tuple(variants),
        seeds=np.asarray(inputs.seeds),
        reference_loss=reference_loss,
        seconds=seconds,
        **results,
    )


def compare(
    config,
    workdir: str,
    *,
    seeds: int,
    algorithms: Sequence[str] = tuple(ALGORITHMS),
    sweep: str | None = None,
    seed_chunk: int = 0,
    force: bool = False,
    progress: bool = True,
) -> dict:
    """Run a comparison in `workdir` and write `comparison.json`, `comparison.md` and `comparison.png`.

    The JAT is pretrained once with `config.seed` (or loaded from the workdir's
    `checkpoints/jat`). Seeds are `config.seed, config.seed + 1, ...`. With
    `sweep`, the variants are the sweep's values instead of `algorithms`.
    `force` reuses a workdir whose config.json differs, as `sosjax run --force` does.

    Returns the summary written to `comparison.json`.
    """
    from sosjax.compare_report import summarize, write_comparison
    from sosjax.fitness import make_evaluate
    from sosjax.pipeline import build_context, prepare_workdir, pretrain_stage

    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}.")
    if seed_chunk < 0:
        raise ValueError(f"--seed-chunk must be 0 (all seeds at once) or positive, got {seed_chunk}.")
    prepare_workdir(config, workdir, force=force)
    context = build_context(config, workdir, progress=progress)
    model, data, settings = context.model, context.data, config.evolution
    num_tasks = len(data.tasks)

    strategy, params = make_strategy(config, num_tasks, model.num_dims, model.repair)
    if sweep:
        variants = sweep_variants(config, sweep, num_tasks, model.num_dims)
    else:
        variants = algorithm_variants(list(algorithms), params)

    jat = pretrain_stage(context)
    evaluate = make_evaluate(
        model,
        context.heads,
        size_objective=settings.size_objective,
        batch_stats=settings.batch_stats if model.has_batch_stats else "running",
        chunk_size=settings.chunk_size,
    )
    inputs = seed_inputs(data, settings, [config.seed + i for i in range(seeds)])
    comparison = run_variants(strategy, evaluate, jat, inputs, variants, settings.generations, seed_chunk=seed_chunk, progress=progress)

    summary = summarize(comparison, data.task_names, evaluations_per_generation=strategy.num_offspring)
    write_comparison(summary, workdir)
    return summary
