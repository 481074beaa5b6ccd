"""The stages of `sosjax run`, each resumable from the run folder.

    load data → pretrain or load the JAT → evolve → fronts → fine-tune → export

Every stage writes its results atomically into the workdir; running the same
command again on the same workdir skips finished stages and resumes the
unfinished one from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from sosjax import evolution, export, report
from sosjax.checkpoint import Checkpoints
from sosjax.config import config_differences, config_to_json
from sosjax.data.tasks import MultiTaskData
from sosjax.evolve import draw_fitness_batches, initial_state, make_generation, make_strategy, to_host
from sosjax.fitness import TaskHeads, make_evaluate
from sosjax.io import atomic_write_json, atomic_write_text, read_json
from sosjax.models import MaskedModel
from sosjax.train import TrainSettings, evaluate_members, train_members

log = logging.getLogger(__name__)


class WorkdirError(ValueError):
    """The workdir belongs to another config or cannot be used."""


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What every stage needs: the config, the run folder, the data and the model."""

    config: Any
    workdir: str
    data: MultiTaskData
    model: MaskedModel
    heads: TaskHeads
    progress: bool = True


def run(config, workdir: str, *, force: bool = False, progress: bool = True) -> str:
    """Run every stage of the main job and return the path of `set_of_sets.json`."""
    prepare_workdir(config, workdir, force=force)
    context = build_context(config, workdir, progress=progress)

    jat = pretrain_stage(context)
    state = evolve_stage(context, jat)
    fronts = fronts_stage(context, state)
    tuned = finetune_stage(context, jat, fronts)
    manifest_path = export_stage(context, jat, fronts, tuned)
    report.write_report(workdir)
    return manifest_path


def prepare_workdir(config, workdir: str, *, force: bool = False) -> None:
    """Create the workdir and its config.json, or check that it belongs to this config."""
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as error:
        raise WorkdirError(f"Cannot create the workdir {workdir!r} ({error.strerror}); choose a writable folder with --workdir.") from None
    if not os.access(workdir, os.W_OK):
        raise WorkdirError(f"The workdir {workdir!r} is not writable; choose a writable folder with --workdir.")

    path = os.path.join(workdir, "config.json")
    current = json.loads(config_to_json(config))
    if os.path.exists(path) and not force:
        saved = read_json(path)
        differing = config_differences(saved, current)
        if differing:
            raise WorkdirError(
                f"The workdir {workdir!r} holds a run of another config (fields that differ: {', '.join(differing)}); "
                "use another --workdir, or pass --force to continue it with this config."
            )
    atomic_write_text(path, config_to_json(config) + "\n")


def load_data(config) -> MultiTaskData:
    """Load the multi-task data that `config.data` names."""
    data = config.data
    if data.name in ("digits", "mnist", "fashion_mnist", "cifar10"):
        from sosjax.data.images import load_image_data

        tasks = data.tasks.to_dict() if hasattr(data.tasks, "to_dict") else data.tasks
        return load_image_data(
            data.name,
            path=data.path,
            source=data.source,
            tasks=tasks,
            seed=config.seed,
            val_fraction=data.val_fraction,
            max_train_per_task=data.max_train_per_task,
            max_test_per_task=data.max_test_per_task,
        )
    if data.name == "beijing":
        from sosjax.data.airquality import load_beijing
        from sosjax.data.hourly import hourly_settings, limit_examples

        loaded = load_beijing(data.path, tuple(data.stations), seed=config.seed, **hourly_settings(data))
        return limit_examples(loaded, data.max_train_per_task, data.max_test_per_task)
    if data.name == "nycweather":
        from sosjax.data.hourly import hourly_settings, limit_examples
        from sosjax.data.nycweather import load_nycweather

        kwargs = {"stations": tuple(data.stations)} if data.stations else {}
        if data.target is not None:
            kwargs["target"] = data.target
        loaded = load_nycweather(seed=config.seed, path=data.path, **kwargs, **hourly_settings(data))
        return limit_examples(loaded, data.max_train_per_task, data.max_test_per_task)
    raise ValueError(f"Unknown data.name {data.name!r}.")


def build_model(config, data: MultiTaskData) -> MaskedModel:
    """Build the JAT's architecture from `config.model` for this data."""
    from sosjax import models

    spec = config.model
    if spec.name == "resnet18":
        if len(data.input_shape) != 3:
            raise ValueError(f"model.name = 'resnet18' needs images (H, W, C), but data {config.data.name!r} has inputs of shape {data.input_shape}.")
        return models.resnet18(
            data.num_outputs,
            stem=spec.stem,
            width=spec.width,
            in_channels=data.input_shape[-1],
            granularity=spec.granularity,
            min_active=spec.min_active,
        )
    if spec.name == "bilstm":
        if len(data.input_shape) != 2:
            raise ValueError(f"model.name = 'bilstm' needs windows (T, F), but data {config.data.name!r} has inputs of shape {data.input_shape}.")
        return models.bilstm(
            data.input_shape[-1],
            hidden=spec.hidden,
            layers=spec.layers,
            outputs=data.num_outputs,
            granularity=spec.granularity,
            min_active=spec.min_active,
        )
    raise ValueError(f"model.name = {spec.name!r} is not supported by `sosjax run` for data {config.data.name!r}.")


def task_heads(data: MultiTaskData) -> TaskHeads:
    if data.kind == "classification":
        class_mask = np.zeros((len(data.tasks), data.num_outputs), bool)
        for k, task in enumerate(data.tasks):
            class_mask[k, list(task.classes)] = True
        return TaskHeads("classification", class_mask=class_mask)
    return TaskHeads("regression", target_scale=data.target_scale)


def build_context(config, workdir: str, *, progress: bool = True) -> RunContext:
    data = load_data(config)
    model = build_model(config, data)
    return RunContext(config, workdir, data, model, task_heads(data), progress)


def metric_name(heads: TaskHeads) -> str:
    return "accuracy" if heads.kind == "classification" else "rmse"


# Pretraining ---------------------------------------------------------------


def union_split(data: MultiTaskData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate one split over tasks, without duplicates for overlapping tasks."""
    xs = [getattr(task, f"x_{split}") for task in data.tasks]
    ys = [getattr(task, f"y_{split}") for task in data.tasks]
    return np.concatenate(xs), np.concatenate(ys)


def pretrain_stage(context: RunContext) -> dict:
    """Pretrain the JAT on the union of the tasks' training data, or load it."""
    config, model, data = context.config, context.model, context.data
    checkpoints = Checkpoints(os.path.join(context.workdir, "checkpoints", "jat"), keep=1)
    key = jax.random.key(config.seed)
    init_key, train_key = jax.random.split(key)
    example = jnp.asarray(data.tasks[0].x_train[:2])
    variables = model.init(init_key, example)

    restored = checkpoints.restore_latest(variables)
    if restored is not None:
        log.info("Loaded the JAT from %s.", checkpoints.folder)
        return restored[1]

    if config.pretrain.checkpoint:
        variables = export.load_jat_checkpoint(config.pretrain.checkpoint, model, variables)
    else:
        settings = TrainSettings(
            epochs=config.pretrain.epochs,
            batch_size=config.pretrain.batch_size,
            learning_rate=config.pretrain.learning_rate,
            optimizer="adamw" if config.pretrain.weight_decay > 0 else "adam",
            weight_decay=config.pretrain.weight_decay,
        )
        # The JAT is scored on every class (or every target) of the union.
        if context.heads.kind == "classification":
            heads = TaskHeads("classification", class_mask=np.ones((1, data.num_outputs), bool))
        else:
            heads = context.heads
        bar = tqdm(total=settings.epochs, desc="pretrain JAT", unit="epoch", disable=not context.progress)

        def on_epoch(epoch, metric):
            bar.update(1)
            bar.set_postfix({f"val {metric_name(heads)}": f"{float(metric[0]):.4f}"})

        all_on = np.ones((1, model.num_dims), bool)
        result = train_members(
            model, variables, all_on, heads, 0, union_split(data, "train"), union_split(data, "val"), settings, train_key, progress=on_epoch
        )
        bar.close()
        variables = jax.tree.map(lambda v: v[0], result.variables)
    checkpoints.save(0, variables)
    return variables


# Evolution -----------------------------------------------------------------


def evolve_stage(context: RunContext, jat: dict):
    """Evolve the K populations; return the final strategy state."""
    config, model, data = context.config, context.model, context.data
    settings = config.evolution
    num_tasks, pop_size, num_dims = len(data.tasks), settings.pop_size, model.num_dims

    repair = model.repair
    strategy, params = make_strategy(config, num_tasks, num_dims, repair)
    evaluate = make_evaluate(
        model,
        context.heads,
        size_objective=settings.size_objective,
        batch_stats=settings.batch_stats if model.has_batch_stats else "running",
        chunk_size=settings.chunk_size,
    )
    batches = draw_fitness_batches(data, settings.fitness_batch_size, settings.num_fitness_batches, config.seed)
    xs, ys = jnp.asarray(batches.xs), jnp.asarray(batches.ys)
    key = jax.random.fold_in(jax.random.key(config.seed), 2)
    init_key, run_key = jax.random.split(key)

    state = initial_state(strategy, params, evaluate, jat, batches, init_key, repair, num_tasks, pop_size, num_dims)
    checkpoints = Checkpoints(os.path.join(context.workdir, "checkpoints", "evolution"))
    restored = checkpoints.restore_latest(state)
    start = 0
    if restored is not None:
        start, state = restored
    else:
        checkpoints.save(0, state)
    metrics_path = os.path.join(context.workdir, "metrics.jsonl")
    history = _truncate_metrics(metrics_path, start)

    generation = jax.jit(make_generation(strategy, params, evaluate))
    if start >= settings.generations:
        return state

    # Compile before timing so evaluations per second exclude compilation.
    compiled = generation.lower(state, run_key, jat, xs, ys, jnp.int32(start)).compile()
    evaluations = num_tasks * pop_size
    bar = tqdm(total=settings.generations, initial=start, desc="evolve", unit="gen", disable=not context.progress)
    for g in range(start, settings.generations):
        begin = time.perf_counter()
        state, metrics = compiled(state, run_key, jat, xs, ys, jnp.int32(g))
        metrics = to_host(metrics)
        seconds = time.perf_counter() - begin
        record = _metrics_record(g + 1, metrics, data.task_names, evaluations / seconds)
        history.append(record)
        _append_line(metrics_path, record)
        bar.update(1)
        bar.set_postfix({"evals/s": f"{record['evaluations_per_second']:.0f}", "HV": " ".join(f"{v:.3f}" for v in record["hypervolume"].values())})
        if (g + 1) % settings.checkpoint_every == 0 or g + 1 == settings.generations:
            checkpoints.save(g + 1, state)
    bar.close()
    return state


def _metrics_record(generation: int, metrics: dict, task_names, evals_per_second: float) -> dict:
    record = {"generation": generation}
    for name, value in metrics.items():
        value = np.asarray(value)
        if value.ndim == 1 and len(value) == len(task_names):
            record[name] = {task: _json_number(v) for task, v in zip(task_names, value)}
        else:
            record[name] = value.tolist() if value.ndim else _json_number(value)
    record["evaluations_per_second"] = evals_per_second
    return record


def _json_number(value):
    value = np.asarray(value).item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _append_line(path: str, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")
        file.flush()
        os.fsync(file.fileno())


def _truncate_metrics(path: str, generations: int) -> list[dict]:
    """Keep the metrics of generations 1..generations; drop lines a killed run left after them."""
    records = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as file:
            for line in file:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    break  # A line cut short by a kill ends the valid part.
                if record.get("generation", 0) <= generations:
                    records.append(record)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    return records


# Fronts --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Front:
    """One task's non-dominated masks, sorted by size.

    Attributes:
      masks: `bool[F, D]`.
      objectives: `f32[F, 2]` (size, fitness loss) from the last generation.
    """

    masks: np.ndarray
    objectives: np.ndarray


def fronts_stage(context: RunContext, state) -> dict[str, Front]:
    """Extract each task's first front (unique masks, finite objectives) and write it."""
    fronts = {}
    masks_all = np.asarray(state.masks)
    objectives_all = np.asarray(state.objectives)
    for k, name in enumerate(context.data.task_names):
        masks, objectives = masks_all[k], objectives_all[k]
        finite = np.all(np.isfinite(objectives), axis=1)
        ranks = np.asarray(evolution.non_dominated_ranks(jnp.asarray(objectives)))
        keep = np.flatnonzero((ranks == 0) & finite)
        _, unique = np.unique(masks[keep], axis=0, return_index=True)
        keep = keep[np.sort(unique)]
        keep = keep[np.lexsort((objectives[keep, 1], objectives[keep, 0]))]
        fronts[name] = Front(masks[keep], objectives[keep])
        export.write_front(context.workdir, name, fronts[name], context.model)
    return fronts


def pick_members(front: Front, max_members: int) -> np.ndarray:
    """Indices of the members to fine-tune: all, or `max_members` spread evenly by size."""
    count = len(front.masks)
    if max_members <= 0 or count <= max_members:
        return np.arange(count)
    return np.unique(np.round(np.linspace(0, count - 1, max_members)).astype(int))


# Fine-tuning ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TunedTask:
    """A task's fine-tuned members.

    Attributes:
      masks: `bool[M, D]`; variables: stacked on axis M.
      before: `f32[M]` test metric of the masked JAT (BatchNorm recalibrated).
      after: `f32[M]` test metric after fine-tuning.
    """

    masks: np.ndarray
    variables: Any
    before: np.ndarray
    after: np.ndarray
    val_history: np.ndarray


def finetune_stage(context: RunContext, jat: dict, fronts: dict[str, Front]) -> dict[str, TunedTask]:
    """Fine-tune the chosen front members of every task, all members of a task together.

    Each finished task is checkpointed, so a resumed run repeats at most the
    task that was in progress.
    """
    config = context.config
    settings = TrainSettings(
        epochs=config.finetune.epochs,
        batch_size=config.finetune.batch_size,
        learning_rate=config.finetune.learning_rate,
        decay=config.finetune.decay,
        optimizer=config.finetune.optimizer,
        weight_decay=config.finetune.weight_decay,
    )
    tuned = {}
    for k, task in enumerate(context.data.tasks):
        front = fronts[task.name]
        chosen = front.masks[pick_members(front, config.finetune.max_members)]
        count = len(chosen)
        checkpoints = Checkpoints(os.path.join(context.workdir, "checkpoints", "finetune", task.name), keep=1)
        target = {
            "variables": _stack(jat, count),
            "masks": jnp.asarray(chosen),
            "before": jnp.zeros(count, jnp.float32),
            "after": jnp.zeros(count, jnp.float32),
            "val_history": jnp.zeros((settings.epochs + 1, count), jnp.float32),
        }
        restored = checkpoints.restore_latest(target)
        if restored is None:
            result = _finetune_task(context, jat, k, chosen, settings)
            checkpoints.save(0, dataclasses.asdict(result))
        else:
            result = TunedTask(**{name: (value if name == "variables" else np.asarray(value)) for name, value in restored[1].items()})
        tuned[task.name] = result
    return tuned


def _finetune_task(context: RunContext, jat: dict, k: int, chosen: np.ndarray, settings: TrainSettings) -> TunedTask:
    config, model, heads, task = context.config, context.model, context.heads, context.data.tasks[k]

    # Every task trains the same number of members (the last one repeated as
    # padding) so that all tasks share one compiled training step.
    count = len(chosen)
    slots = max(config.finetune.max_members or config.evolution.pop_size, count)
    masks = np.concatenate([chosen, np.repeat(chosen[-1:], slots - count, axis=0)])

    key = jax.random.fold_in(jax.random.key(config.seed), 100 + k)
    start = recalibrate(model, jat, masks, task.x_train, key) if model.has_batch_stats else _stack(jat, slots)
    before = evaluate_members(model, start, masks, heads, k, task.x_test, task.y_test)
    bar = tqdm(total=settings.epochs, desc=f"fine-tune {task.name} ({count} members)", unit="epoch", disable=not context.progress)

    def on_epoch(epoch, metric):
        best = np.nanmax(metric[:count]) if heads.kind == "classification" else np.nanmin(metric[:count])
        bar.update(1)
        bar.set_postfix({f"best val {metric_name(heads)}": f"{best:.4f}"})

    result = train_members(model, jat, masks, heads, k, (task.x_train, task.y_train), (task.x_val, task.y_val),
                           settings, key, progress=on_epoch, start=start)
    bar.close()
    after = evaluate_members(model, result.variables, masks, heads, k, task.x_test, task.y_test)
    return TunedTask(
        masks=chosen,
        variables=jax.tree.map(lambda v: v[:count], result.variables),
        before=np.asarray(before[:count], np.float32),
        after=np.asarray(after[:count], np.float32),
        val_history=np.asarray(result.val_history[:, :count], np.float32),
    )


def _stack(variables, count):
    return jax.tree.map(lambda v: jnp.broadcast_to(v, (count,) + v.shape), variables)


def recalibrate(model: MaskedModel, variables: dict, masks: np.ndarray, x_train: np.ndarray, key: jax.Array,
                passes: int = 40, batch_size: int = 128) -> dict:
    """Recompute BatchNorm running statistics of the masked JAT for each mask.

    The JAT's statistics do not fit a pruned network; forward passes in
    training mode over training batches (weights unchanged) move the running
    averages to the pruned network's statistics. Returns variables stacked on M.
    """
    stacked = _stack(variables, len(masks))
    masks = jnp.asarray(masks)
    one_pass = _recalibration_pass(model)
    for i in range(passes):
        pick = np.asarray(jax.random.choice(jax.random.fold_in(key, i), len(x_train), (min(batch_size, len(x_train)),), replace=False))
        stacked = one_pass(stacked, masks, jnp.asarray(x_train[pick]))
    return stacked


@functools.lru_cache(maxsize=8)
def _recalibration_pass(model: MaskedModel):
    def member(variables, mask, x):
        _, updates = model.apply(variables, x, mask, train=True)
        return dict(variables, **updates)

    return jax.jit(jax.vmap(member, in_axes=(0, 0, None)))


# Export --------------------------------------------------------------------


def export_stage(context: RunContext, jat: dict, fronts: dict[str, Front], tuned: dict[str, TunedTask]) -> str:
    """Compact every member, write models, the manifest and the fronts with test metrics."""
    model, data, heads = context.model, context.data, context.heads
    jat_metrics = {}
    for k, task in enumerate(data.tasks):
        value = evaluate_members(model, jat, np.ones((1, model.num_dims), bool), heads, k, task.x_test, task.y_test, stacked=False)
        jat_metrics[task.name] = float(value[0])
    return export.write_set_of_sets(context.workdir, model, jat, jat_metrics, tuned, metric_name(heads),
                                    tuple(context.config.export.dtypes), target_unit=data.target_unit)
