"""Gradient training of a stack of masked models, vmapped over members.

Pretraining the JAT is the one-member case with nothing masked; fine-tuning
trains every front member of a task together, each under its own fixed mask.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sosjax import sharding
from sosjax.checkpoint import Checkpoints
from sosjax.data.tasks import num_examples, padded_chunks, take
from sosjax.fitness import TaskHeads, task_loss, task_metric
from sosjax.models.base import MaskedModel


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Optimizer and schedule of one training stage."""

    epochs: int
    batch_size: int
    learning_rate: float
    #: Learning-rate factor applied after every epoch (1.0 keeps it constant).
    decay: float = 1.0
    #: adam | adamw | adafactor.
    optimizer: str = "adam"
    weight_decay: float = 0.0
    #: Stop once no member's validation metric improved for this many epochs; 0 never stops early.
    patience: int = 0


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Trained members and their history.

    Attributes:
      variables: the members' variables stacked on a leading axis M, each at the
        epoch of its best validation metric.
      best_epoch: `int[M]`, that epoch (0 means the starting variables).
      val_history: `f32[epochs + 1, M]`, the validation metric after each epoch
        (NaN for epochs that an early stop skipped).
      diverged: `bool[M]`, members whose loss became NaN or infinite at some
        point (they keep their last good variables).
    """

    variables: Any
    best_epoch: np.ndarray
    val_history: np.ndarray
    diverged: np.ndarray


@functools.lru_cache(maxsize=32)
def make_optimizer(settings: TrainSettings, steps_per_epoch: int) -> optax.GradientTransformation:
    """Adam, AdamW or Adafactor with the learning rate multiplied by `decay` after each epoch.

    Adafactor takes the learning rate as an absolute step size (no scaling by
    the parameters' norm), as Hugging Face's `Adafactor(relative_step=False,
    scale_parameter=False)` does for fine-tuning.
    """
    schedule = optax.exponential_decay(
        settings.learning_rate, transition_steps=max(steps_per_epoch, 1), decay_rate=settings.decay, staircase=True
    )
    if settings.optimizer == "adamw":
        return optax.adamw(schedule, weight_decay=settings.weight_decay)
    if settings.optimizer == "adafactor":
        return optax.adafactor(schedule, multiply_by_parameter_scale=False,
                               weight_decay_rate=settings.weight_decay or None)
    return optax.adam(schedule)


def higher_is_better(heads: TaskHeads) -> bool:
    return heads.kind == "classification"


def stack_members(variables: Any, count: int) -> Any:
    """Copy one model's variables `count` times along a new leading axis."""
    return jax.tree.map(lambda v: jnp.broadcast_to(v, (count,) + v.shape), variables)


def evaluate_members(
    model: MaskedModel,
    variables: Any,
    masks: jax.Array,
    heads: TaskHeads,
    task_id: int,
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int = 512,
    stacked: bool = True,
    mesh: jax.sharding.Mesh | None = None,
) -> np.ndarray:
    """Return the metric `f32[M]` of each member on `(x, y)`, with running statistics.

    With `stacked=False` every member shares `variables` (the JAT under masks).
    With a `mesh`, the members are split over its devices. Translation scores
    NLL per target token, summed over batches so that no `[M, n, T, vocab]`
    logits are held at once.
    """
    if heads.kind == "translation":
        from sosjax.translation.evaluate import members_nll

        # NOTE: translation NLL is computed on one device even with a mesh.
        return members_nll(model, variables, masks, x, y, batch_size=batch_size, stacked=stacked)
    outputs = predict_members(model, variables, masks, x, batch_size=batch_size, stacked=stacked, mesh=mesh)
    targets = jnp.asarray(y)
    return np.asarray(jax.vmap(lambda o: task_metric(heads, o, targets, task_id))(outputs))


def predict_members(model, variables, masks, x, *, batch_size=512, stacked=True, mesh=None) -> jax.Array:
    """Return outputs `[M, n, ...]` of every member on `x`, computed in batches.

    With a `mesh`, the members are split over its devices (M padded to a
    multiple of the device count) and the outputs gathered on every device.
    """
    apply = _predict_fn(model, stacked, mesh)
    count_members = masks.shape[0]
    if mesh is not None:
        size = sharding.padded_size(count_members, mesh)
        masks = sharding.shard_rows(mesh, sharding.pad_rows(jnp.asarray(masks), size))
        variables = sharding.shard_rows(mesh, sharding.pad_rows(variables, size)) if stacked else sharding.replicate(mesh, variables)
    pieces = []
    for chunk, count in padded_chunks(x, batch_size):
        pieces.append(apply(variables, masks, chunk)[:count_members, :count])
    return jnp.concatenate(pieces, axis=1)



_PREDICT_CACHE: dict = {}


def _predict_fn(model, stacked, mesh=None):
    key = (id(model), stacked, mesh)
    if key not in _PREDICT_CACHE:
        in_axes = (0 if stacked else None, 0, None)
        apply = jax.vmap(lambda v, m, xb: model.apply(v, xb, m), in_axes=in_axes)
        if mesh is not None:
            apply = sharding.map_rows(apply, mesh, split=(stacked, True, False))
        _PREDICT_CACHE[key] = (model, jax.jit(apply))
    return _PREDICT_CACHE[key][1]


def train_members(
    model: MaskedModel,
    variables: Any,
    masks: np.ndarray,
    heads: TaskHeads,
    task_id: int,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    settings: TrainSettings,
    key: jax.Array,
    *,
    progress: Callable[[int, np.ndarray], None] | None = None,
    start: Any = None,
    checkpoints: Checkpoints | None = None,
    checkpoint_every: int = 1,
    mesh: jax.sharding.Mesh | None = None,
) -> TrainResult:
    """Train M members, each under its fixed mask, on one task's data.

    Args:
      variables: one model's variables (every member starts from them).
      masks: `bool[M, D]`.
      heads, task_id: which loss and metric the members train and are scored on.
      train, val: `(x, y)`: arrays, or for x a pytree of arrays.
      key: epoch e shuffles the training data with `fold_in(key, e)` (the same
        order for all members), so a resumed run repeats an uninterrupted one.
      progress: called after every epoch with `(epoch, val_metric f32[M])`.
      start: optional per-member starting variables stacked on axis M (for
        example with recalibrated BatchNorm statistics); default `variables`.
      checkpoints: where to save the loop's state every `checkpoint_every`
        epochs and on Ctrl-C; training resumes from its newest readable step.
      mesh: splits the members over the mesh's devices; M is padded to a
        multiple of the device count with copies of member 0, and the padding
        is dropped from the result. The training batches are replicated.

    Pruned entries are zeroed at the start and their updates masked, so they stay
    zero. With `settings.patience > 0` training ends early once no member
    improved its validation metric for that many epochs. Every member keeps its best-validation variables; one that diverges
    (non-finite loss) is reset to them and does not affect the others.
    """
    masks = jnp.asarray(masks)
    num_members = masks.shape[0]
    requested = num_members
    if mesh is not None:
        num_members = sharding.padded_size(requested, mesh)
        start = stack_members(variables, requested) if start is None else start
        masks, start = sharding.pad_rows((masks, start), num_members)
    x_train, y_train = train
    steps_per_epoch = max(num_examples(x_train) // settings.batch_size, 1)
    optimizer = make_optimizer(settings, steps_per_epoch)
    larger = higher_is_better(heads)

    param_masks = jax.vmap(model.param_mask)(masks)
    members = stack_members(variables, num_members) if start is None else start
    members = dict(members, params=jax.tree.map(lambda p, m: p * m.astype(p.dtype), members["params"], param_masks))
    opt_state = jax.vmap(optimizer.init)(members["params"])
    if mesh is not None:
        members, opt_state, masks, param_masks = sharding.shard_rows(mesh, (members, opt_state, masks, param_masks))
    metric = evaluate_members(model, members, masks, heads, task_id, *val, mesh=mesh)
    loop = {
        "epoch": np.zeros((), np.int32),
        "members": members,
        "opt_state": opt_state,
        "best": members,
        "best_metric": metric.astype(np.float32),
        "best_epoch": np.zeros(num_members, np.int32),
        "diverged": np.zeros(num_members, bool),
        "history": np.full((settings.epochs + 1, num_members), np.nan, np.float32),
    }
    loop["history"][0] = metric
    if checkpoints is not None:
        restored = checkpoints.restore_latest(loop)
        if restored is not None:
            loop = restored[1]
            loop = dict(loop, **{name: np.asarray(loop[name]) for name in ("epoch", "best_metric", "best_epoch", "diverged", "history")})

    step = _train_step_fn(model, heads, optimizer, mesh)
    epoch = int(loop["epoch"])
    try:
        while epoch < settings.epochs and not _patience_ran_out(loop, epoch, settings.patience):
            epoch += 1
            loop = _train_epoch(loop, epoch, step, model, masks, param_masks, heads, task_id, x_train, y_train, val,
                                settings, steps_per_epoch, jax.random.fold_in(key, epoch), larger, mesh)
            if checkpoints is not None and (epoch % checkpoint_every == 0 or epoch == settings.epochs):
                checkpoints.save(epoch, loop)
            if progress is not None:
                progress(epoch, loop["history"][epoch][:requested])
    except KeyboardInterrupt:
        # `loop` is the state after the last finished epoch, so saving it lets the run resume there.
        if checkpoints is not None and int(loop["epoch"]) > 0:
            checkpoints.save(int(loop["epoch"]), loop)
        raise

    best = loop["best"]
    if mesh is not None:
        best = jax.tree.map(lambda v: v[:requested], sharding.gather_rows(mesh, best))
    return TrainResult(best, loop["best_epoch"][:requested], loop["history"][:, :requested], loop["diverged"][:requested])


def _patience_ran_out(loop: dict, epoch: int, patience: int) -> bool:
    # Computed from the loop state alone, so a resumed run stops where an uninterrupted one would.
    return patience > 0 and epoch - int(np.max(loop["best_epoch"])) >= patience


def _train_epoch(loop, epoch, step, model, masks, param_masks, heads, task_id, x_train, y_train, val, settings,
                 steps_per_epoch, shuffle_key, larger, mesh=None) -> dict:
    """Run one epoch and return the new loop state; `loop` itself is not changed."""
    members, opt_state = loop["members"], loop["opt_state"]
    order = np.asarray(jax.random.permutation(shuffle_key, num_examples(x_train)))
    losses = []
    for i in range(steps_per_epoch):
        idx = order[i * settings.batch_size : (i + 1) * settings.batch_size]
        batch = (jax.tree.map(jnp.asarray, take(x_train, idx)), jnp.asarray(y_train[idx]))
        if mesh is not None:
            batch = sharding.replicate(mesh, batch)
        members, opt_state, loss = step(members, opt_state, masks, param_masks, *batch, task_id)
        losses.append(loss)
    diverged = loop["diverged"] | ~np.all(np.isfinite(np.asarray(jnp.stack(losses))), axis=0)

    metric = evaluate_members(model, members, masks, heads, task_id, *val, mesh=mesh)
    history = loop["history"].copy()
    history[epoch] = metric
    best_metric, best_epoch, best = loop["best_metric"], loop["best_epoch"], loop["best"]
    finite = np.isfinite(metric) & ~diverged
    improved = finite & ((metric > best_metric) if larger else (metric < best_metric))
    improved |= finite & ~np.isfinite(best_metric)
    if improved.any():
        pick = jnp.asarray(improved) if mesh is None else sharding.shard_rows(mesh, improved)
        best = jax.tree.map(lambda new, old: _select(pick, new, old), members, best)
        best_metric = np.where(improved, metric, best_metric).astype(np.float32)
        best_epoch = np.where(improved, epoch, best_epoch).astype(np.int32)
    if diverged.any():
        # Restart diverged members from their best variables so NaNs never persist.
        reset = jnp.asarray(diverged) if mesh is None else sharding.shard_rows(mesh, diverged)
        members = jax.tree.map(lambda b, m: _select(reset, b, m), best, members)
    return {
        "epoch": np.asarray(epoch, np.int32),
        "members": members,
        "opt_state": opt_state,
        "best": best,
        "best_metric": best_metric,
        "best_epoch": best_epoch,
        "diverged": diverged,
        "history": history,
    }


def _select(pick: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
    return jnp.where(pick.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)


_STEP_CACHE: dict = {}


def _train_step_fn(model: MaskedModel, heads: TaskHeads, optimizer: optax.GradientTransformation, mesh=None):
    cache_key = (id(model), id(heads), id(optimizer), mesh)
    if cache_key in _STEP_CACHE:
        return _STEP_CACHE[cache_key][1]

    def member_step(variables, opt_state, mask, param_mask, x, y, task_id):
        def loss_fn(params):
            outputs, updates = model.apply(dict(variables, params=params), x, mask, train=True)
            return task_loss(heads, outputs, y, task_id), updates

        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
        grads = jax.tree.map(lambda g, m: g * m.astype(g.dtype), grads, param_mask)
        step_updates, opt_state = optimizer.update(grads, opt_state, variables["params"])
        step_updates = jax.tree.map(lambda u, m: u * m.astype(u.dtype), step_updates, param_mask)
        params = optax.apply_updates(variables["params"], step_updates)
        return dict(variables, params=params, **updates), opt_state, loss

    step = jax.vmap(member_step, in_axes=(0, 0, 0, 0, None, None, None))
    if mesh is not None:
        # Members and optimizer states stay split between steps; losses are gathered.
        step = sharding.map_rows(step, mesh, split=(True, True, True, True, False, False, False), gather=(False, False, True))
    step = jax.jit(step)
    _STEP_CACHE[cache_key] = ((model, heads, optimizer), step)
    return step
