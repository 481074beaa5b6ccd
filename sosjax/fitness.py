"""Fitness of a whole population of masks, every task at once, in one jitted call."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sosjax import sharding
from sosjax.models.base import MaskedModel
from sosjax.translation.loss import token_nll


@dataclasses.dataclass(frozen=True)
class TaskHeads:
    """How each task scores model outputs.

    Attributes:
      kind: "classification", "regression" or "translation" (outputs are
        logits `f32[B, T, vocab]`, targets tokens `int32[B, T]` with -100 at
        padding).
      class_mask: `bool[K, C]`, the classes of each task; a task's predictions
        and losses are restricted to them. None for regression.
      target_scale: regression only: the target's standard deviation, so that
        losses are RMSEs in the data's own units.
    """

    kind: str
    class_mask: np.ndarray | None = None
    target_scale: float = 1.0


def task_loss(heads: TaskHeads, outputs: jax.Array, targets: jax.Array, task_id: jax.Array) -> jax.Array:
    """Return the mean loss of one task's batch: `f32[]`.

    Classification: cross-entropy over the task's classes only (other logits
    are set to -inf). Regression: RMSE in data units. Translation: NLL per
    target token.
    """
    if heads.kind == "translation":
        return token_nll(outputs, targets)
    if heads.kind == "classification":
        allowed = jnp.asarray(heads.class_mask)[task_id]
        logits = jnp.where(allowed, outputs, -jnp.inf)
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        picked = jnp.take_along_axis(log_probs, targets[:, None].astype(jnp.int32), axis=-1)[:, 0]
        return -jnp.mean(picked)
    errors = outputs.reshape(targets.shape) - targets
    return jnp.sqrt(jnp.mean(errors**2)) * heads.target_scale


def task_metric(heads: TaskHeads, outputs: jax.Array, targets: jax.Array, task_id: int) -> jax.Array:
    """Return the metric: accuracy over the task's classes, RMSE in data units, or
    NLL per target token for translation (its test metric, BLEU, needs decoding
    and lives in `sosjax.translation.domain`)."""
    if heads.kind == "classification":
        allowed = jnp.asarray(heads.class_mask)[task_id]
        predictions = jnp.argmax(jnp.where(allowed, outputs, -jnp.inf), axis=-1)
        return jnp.mean(predictions == targets)
    return task_loss(heads, outputs, targets, task_id)


def make_evaluate(
    model: MaskedModel,
    heads: TaskHeads,
    *,
    size_objective: str = "params",
    batch_stats: str = "batch",
    chunk_size: int = 0,
    mesh: jax.sharding.Mesh | None = None,
) -> Callable:
    """Build `evaluate(variables, masks, task_ids, xs, ys) -> f32[N, 2]`.

    Args of the returned function:
      variables: the JAT's variables, shared by every candidate.
      masks: `bool[N, D]`.
      task_ids: `int32[N]`, the task each candidate is scored on.
      xs: `[K, B, ...]` one fitness batch per task (an array or a pytree of
        arrays); candidates gather theirs.
      ys: `[K, B, ...]` targets.

    Returns `f32[N, 2]`: column 0 the size (compacted parameters over the JAT's,
    or ‖mask‖₁/D), column 1 the task loss. The forward pass is vmapped over
    candidates and, with `chunk_size > 0`, run chunk by chunk under `lax.map`
    to bound memory; N must then be a multiple of `chunk_size` or is padded.
    With a `mesh`, the candidates are split over its devices (N padded to a
    multiple of the device count), each device evaluates its slice, chunked as
    above, and the objectives are gathered on every device.
    """
    full_params = model.num_params(None)

    def size_of(mask):
        if size_objective == "mask_l1":
            return jnp.mean(mask.astype(jnp.float32))
        return model.num_params(mask) / full_params

    def one(variables, mask, task_id, xs, ys):
        x = jax.tree.map(lambda leaf: leaf[task_id], xs)
        y = ys[task_id]
        outputs = model.apply(variables, x, mask, batch_stats=batch_stats)
        loss = task_loss(heads, outputs, y, task_id)
        return jnp.stack([jnp.asarray(size_of(mask), jnp.float32), loss.astype(jnp.float32)])

    def evaluate(variables, masks, task_ids, xs, ys):
        batched = jax.vmap(one, in_axes=(None, 0, 0, None, None))
        n = masks.shape[0]
        if chunk_size <= 0 or chunk_size >= n:
            return batched(variables, masks, task_ids, xs, ys)

        padded = -(-n // chunk_size) * chunk_size
        pad = padded - n
        masks_p = jnp.concatenate([masks, jnp.broadcast_to(masks[:1], (pad,) + masks.shape[1:])]) if pad else masks
        ids_p = jnp.concatenate([task_ids, jnp.broadcast_to(task_ids[:1], (pad,))]) if pad else task_ids
        chunks = (masks_p.reshape(-1, chunk_size, masks.shape[1]), ids_p.reshape(-1, chunk_size))
        out = jax.lax.map(lambda c: batched(variables, c[0], c[1], xs, ys), chunks)
        return out.reshape(padded, 2)[:n]

    if mesh is None:
        return evaluate
    on_devices = sharding.map_rows(evaluate, mesh, split=(False, True, True, False, False))

    def evaluate_sharded(variables, masks, task_ids, xs, ys):
        n = masks.shape[0]
        size = sharding.padded_size(n, mesh)
        masks, task_ids = sharding.pad_rows((masks, task_ids), size)
        return on_devices(variables, masks, task_ids, xs, ys)[:n]

    return evaluate_sharded
