"""Token-level negative log-likelihood of a translation batch: the fitness loss."""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

MODEL_INPUTS = ("input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask")


def token_nll(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean NLL over the label tokens.

    Args:
      logits: `f32[B, T, vocab]`.
      labels: `int32[B, T]`, -100 where a position is padding.

    Returns:
      `f32[]`, nats per target token; 0 for a batch without target tokens.
    """
    valid = labels >= 0
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    picked = jnp.take_along_axis(log_probs, jnp.where(valid, labels, 0)[..., None], axis=-1)[..., 0]
    return -jnp.sum(jnp.where(valid, picked, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


def loss(model, variables, batch: Mapping[str, jax.Array], mask: jax.Array | None = None) -> jax.Array:
    """NLL `f32[]` of `batch["labels"]` under the model masked by `mask: bool[D]`.

    `batch` is what `encode_pairs` returns; pure and jittable, and vmappable over
    `mask` for a population.
    """
    inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
    return token_nll(model.apply(variables, inputs, mask), batch["labels"])
