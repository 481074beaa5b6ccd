"""The stages of `sosjax run`, each resumable from the run folder.

    load data → pretrain or load the JAT → evolve → fronts → fine-tune → export

Every stage writes its results atomically into the workdir. Running the same
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

from sosjax import evolution, export, report, sharding
from sosjax.checkpoint import Checkpoints
from sosjax.config import config_differences, config_to_json
from sosjax.data.tasks import MultiTaskData
from sosjax.evolve import draw_fitness_batches, initial_state, make_generation, make_strategy, to_host
from sosjax.fitness import TaskHeads, make_evaluate
from sosjax.io import atomic_write_json, atomic_write_text, is_writer, read_json
from sosjax.models import MaskedModel
from sosjax.train import TrainSettings, evaluate_members, train_members

log = logging.getLogger(__name__)


class WorkdirError(ValueError):
    """The workdir belongs to another config or cannot be used."""


@dataclasses.dataclass(frozen=True)
class RunContext:
    """Inputs shared by every stage: the config, the run folder, the data and the model."""

    config: Any
    workdir: str
    data: MultiTaskData
    model: MaskedModel
    heads: TaskHeads
    progress: bool = True
    #: Devices that candidates and fine-tuned members are split over.
    mesh: jax.sharding.Mesh | None = None
    #: The translation domain's bitext, tokenizer and JAT (`sosjax.translation.domain`); None otherwise.
    translation: Any = None


def run(config, workdir: str, *, force: bool = False, progress: bool = True) -> str:
    """Run every stage of the main job and return the path of `set_of_sets.json`.

    Data, model and config are checked before the workdir is touched, so a bad
    input never changes an earlier run's folder.
    """
    context = build_context(config, workdir, progress=progress)
    make_strategy(config, len(context.data.tasks), context.model.num_dims, None)
    given_jat = load_given_jat(context) if config.pretrain.checkpoint else None
    prepare_workdir(config, workdir, force=force)

    jat = pretrain_stage(context, given_jat)
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
                f"The workdir {workdir!r} contains a run of another config (fields that differ: {', '.join(differing)}); "
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
    if config.data.name == "wmt19":
        # The tokenizer that encodes the data comes with the JAT, which may be
        # pretrained into the workdir first: data, model and JAT come together.
        from sosjax.translation.domain import build_translation

        domain = build_translation(config, workdir)
        return RunContext(config, workdir, domain.data, domain.model, TaskHeads("translation"), progress,
                          mesh=sharding.population_mesh(config.get("devices", 0)), translation=domain)
    data = load_data(config)
    model = build_model(config, data)
    mesh = sharding.population_mesh(config.get("devices", 0))
    return RunContext(config, workdir, data, model, task_heads(data), progress, mesh)


def metric_name(heads: TaskHeads) -> str:
    """Return the test metric's name: accuracy, bleu or rmse."""
    return {"classification": "accuracy", "translation": "bleu"}.get(heads.kind, "rmse")


def validation_metric_name(heads: TaskHeads) -> str:
    """Return the name of the metric that picks each member's best epoch.

    Translation uses NLL, because BLEU needs decoding and is too slow per epoch.
    """
    return "nll" if heads.kind == "translation" else metric_name(heads)


def test_metrics(context: RunContext, variables, masks: np.ndarray, k: int, *, stacked: bool = True,
                 count: int | None = None) -> np.ndarray:
    """The test metric `f32[count]` of the first `count` (default all M) members
    on task k: BLEU of decoded translations for translation, `evaluate_members`
    otherwise (which scores all M in one compiled call)."""
    count = len(masks) if count is None else count
    if context.translation is not None:
        from sosjax.translation.domain import test_bleu

        variables = jax.tree.map(lambda v: v[:count], variables) if stacked else variables
        return test_bleu(context.translation, variables, masks[:count], k, stacked=stacked)
    task = context.data.tasks[k]
    metric = evaluate_members(context.model, variables, masks, context.heads, k, task.x_test, task.y_test, stacked=stacked,
                              mesh=context.mesh)
    return metric[:count]


# Pretraining ---------------------------------------------------------------


def union_split(data: MultiTaskData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate one split over tasks, without duplicates for overlapping tasks."""
    xs = [getattr(task, f"x_{split}") for task in data.tasks]
    ys = [getattr(task, f"y_{split}") for task in data.tasks]
    return np.concatenate(xs), np.concatenate(ys)


def _init_jat(context: RunContext) -> tuple[dict, jax.Array]:
    init_key, train_key = jax.random.split(jax.random.key(context.config.seed))
    example = jax.tree.map(lambda x: jnp.asarray(x[:2]), context.data.tasks[0].x_train)
    return context.model.init(init_key, example), train_key


def load_given_jat(context: RunContext) -> dict:
    """Load the JAT from `config.pretrain.checkpoint`, checking it fits `config.model`."""
    template, _ = _init_jat(context)
    return export.load_jat_checkpoint(context.config.pretrain.checkpoint, context.model, template)


def pretrain_stage(context: RunContext, given_jat: dict | None = None) -> dict:
    """Pretrain the JAT on the union of the tasks' training data, or take `given_jat`."""
    config, model, data = context.config, context.model, context.data
    if context.translation is not None:
        return context.translation.variables  # loaded, or pretrained with its tokenizer, by build_context
    checkpoints = Checkpoints(os.path.join(context.workdir, "checkpoints", "jat"), keep=1)
    variables, train_key = _init_jat(context)

    restored = checkpoints.restore_latest(variables)
    if restored is not None:
        log.info("Loaded the JAT from %s.", checkpoints.folder)
        return restored[1]

    if given_jat is not None:
        variables = given_jat
    elif config.pretrain.checkpoint:
        variables = load_given_jat(context)
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
        progress_checkpoints = Checkpoints(os.path.join(context.workdir, "checkpoints", "pretrain"), keep=2)
        result = train_members(
            model, variables, all_on, heads, 0, union_split(data, "train"), union_split(data, "val"), settings, train_key,
            progress=on_epoch, checkpoints=progress_checkpoints, checkpoint_every=config.pretrain.checkpoint_every,
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
        mesh=context.mesh,
    )
    batches = draw_fitness_batches(data, settings.fitness_batch_size, settings.num_fitness_batches, config.seed)
    xs, ys = jax.tree.map(jnp.asarray, batches.xs), jnp.asarray(batches.ys)
    if context.mesh is not None:
        jat, xs, ys = sharding.replicate(context.mesh, (jat, xs, ys))
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
    _truncate_metrics(metrics_path, start)

    generation = jax.jit(make_generation(strategy, params, evaluate))
    if start >= settings.generations:
        return state

    # Compile before timing so evaluations per second exclude compilation.
    compiled = generation.lower(state, run_key, jat, xs, ys, jnp.int32(start)).compile()
    evaluations = num_tasks * pop_size
    bar = tqdm(total=settings.generations, initial=start, desc="evolve", unit="gen", disable=not context.progress)
    g = start
    try:
        for g in range(start, settings.generations):
            state = _run_generation(compiled, state, run_key, jat, xs, ys, g, data.task_names, evaluations, metrics_path, bar)
            if (g + 1) % settings.checkpoint_every == 0 or g + 1 == settings.generations:
                checkpoints.save(g + 1, state)
    except KeyboardInterrupt:
        # `state` is the last finished generation's (g of them): keep it.
        checkpoints.save(int(state.generation), state)
        raise
    finally:
        bar.close()
    return state


def _run_generation(compiled, state, run_key, jat, xs, ys, g, task_names, evaluations, metrics_path, bar):
    """Run generation g, log its metrics and return the new state."""
    begin = time.perf_counter()
    state, metrics = compiled(state, run_key, jat, xs, ys, jnp.int32(g))
    metrics = to_host(metrics)
    seconds = time.perf_counter() - begin

    record = _metrics_record(g + 1, metrics, task_names, evaluations / seconds)
    _append_line(metrics_path, record)
    bar.update(1)
    bar.set_postfix({"evals/s": f"{record['evaluations_per_second']:.0f}", "HV": " ".join(f"{v:.3f}" for v in record["hypervolume"].values())})
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
    if not is_writer():
        return
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
        patience=config.finetune.patience,
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


def members_per_call(config, mesh=None) -> int:
    """Members trained together in one vmapped program (0 means all).

    On one CPU device, vmapping convolutions over members with different
    weights lowers to grouped convolutions, which XLA runs 2.5× slower than a
    loop (measured for 10 ResNet-18 members at width 0.25). So
    `finetune.members_per_call = 0` means 1 there, and all members on
    accelerators or when a mesh splits the members over devices.
    """
    chosen = config.finetune.members_per_call
    if chosen:
        return chosen
    return 1 if jax.default_backend() == "cpu" and mesh is None else 0


def _finetune_task(context: RunContext, jat: dict, k: int, chosen: np.ndarray, settings: TrainSettings) -> TunedTask:
    config, model, heads, task = context.config, context.model, context.heads, context.data.tasks[k]
    count = len(chosen)
    group = members_per_call(config, context.mesh) or max(config.finetune.max_members or config.evolution.pop_size, count)

    # Every group has the same number of members (the last one repeated as
    # padding) so that all groups and tasks share one compiled training step.
    slots = -(-count // group) * group
    masks = np.concatenate([chosen, np.repeat(chosen[-1:], slots - count, axis=0)])
    key = jax.random.fold_in(jax.random.key(config.seed), 100 + k)
    bar = tqdm(total=settings.epochs * (slots // group), desc=f"fine-tune {task.name} ({count} members)", unit="member-epoch",
               disable=not context.progress)

    def on_epoch(epoch, metric):
        bar.update(1)
        bar.set_postfix({f"val {validation_metric_name(heads)}": " ".join(f"{v:.3f}" for v in metric[:count])})

    parts = []
    for first in range(0, slots, group):
        group_masks = masks[first : first + group]
        start = recalibrate(model, jat, group_masks, task.x_train, key) if model.has_batch_stats else _stack(jat, group)
        before = test_metrics(context, start, group_masks, k)
        progress_checkpoints = Checkpoints(
            os.path.join(context.workdir, "checkpoints", "finetune_progress", task.name, f"members_{first}"), keep=2
        )
        result = train_members(model, jat, group_masks, heads, k, (task.x_train, task.y_train), (task.x_val, task.y_val),
                               settings, key, progress=on_epoch, start=start, checkpoints=progress_checkpoints,
                               checkpoint_every=config.finetune.checkpoint_every, mesh=context.mesh)
        after = test_metrics(context, result.variables, group_masks, k)
        parts.append((result.variables, before, after, result.val_history))
    bar.close()

    variables = jax.tree.map(lambda *v: jnp.concatenate(v)[:count], *[p[0] for p in parts])
    return TunedTask(
        masks=chosen,
        variables=variables,
        before=np.concatenate([p[1] for p in parts])[:count].astype(np.float32),
        after=np.concatenate([p[2] for p in parts])[:count].astype(np.float32),
        val_history=np.concatenate([p[3] for p in parts], axis=1)[:, :count].astype(np.float32),
    )


def _stack(variables, count):
    return jax.tree.map(lambda v: jnp.broadcast_to(v, (count,) + v.shape), variables)


def recalibrate(model: MaskedModel, variables: dict, masks: np.ndarray, x_train: np.ndarray, key: jax.Array,
                passes: int = 40, batch_size: int = 128) -> dict:
    """Recompute BatchNorm running statistics of the masked JAT for each mask.

    The JAT's statistics do not fit a pruned network. Forward passes in
    training mode over training batches (weights unchanged) move the running
    averages to the pruned network's statistics. Returns variables stacked on M.
    """
    stats = _stack(variables["batch_stats"], len(masks))
    masks = jnp.asarray(masks)
    one_pass = _recalibration_pass(model)
    for i in range(passes):
        pick = np.asarray(jax.random.choice(jax.random.fold_in(key, i), len(x_train), (min(batch_size, len(x_train)),), replace=False))
        stats = one_pass(variables["params"], stats, masks, jnp.asarray(x_train[pick]))
    return dict(_stack(variables, len(masks)), batch_stats=stats)


@functools.lru_cache(maxsize=8)
def _recalibration_pass(model: MaskedModel):
    # The weights are shared, so the vmapped convolutions batch over inputs only.
    def member(params, stats, mask, x):
        _, updates = model.apply({"params": params, "batch_stats": stats}, x, mask, train=True)
        return updates["batch_stats"]

    return jax.jit(jax.vmap(member, in_axes=(None, 0, 0, None)))


# Export --------------------------------------------------------------------


def export_stage(context: RunContext, jat: dict, fronts: dict[str, Front], tuned: dict[str, TunedTask]) -> str:
    """Compact every member, write models, the manifest and the fronts with test metrics."""
    model, data, heads = context.model, context.data, context.heads
    jat_metrics = {}
    for k, task in enumerate(data.tasks):
        value = test_metrics(context, jat, np.ones((1, model.num_dims), bool), k, stacked=False)
        jat_metrics[task.name] = float(value[0])
    extra = None
    if context.translation is not None:
        from sosjax.translation.domain import export_tokenizer

        extra = {"translation": export_tokenizer(context.translation, context.workdir)}
    if data.preprocessing is not None:
        extra = dict(extra or {}, preprocessing=data.preprocessing)
    return export.write_set_of_sets(context.workdir, model, jat, jat_metrics, tuned, metric_name(heads),
                                    tuple(context.config.export.dtypes), target_unit=data.target_unit, extra=extra)
