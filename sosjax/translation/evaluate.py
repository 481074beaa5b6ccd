"""Scoring a stack of M2M100 members: NLL on token batches, BLEU of their translations."""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sosjax.data.tasks import padded_chunks
from sosjax.translation.bleu import bleu, translate


def members_nll(model, variables, masks, x: dict, labels: np.ndarray, *, batch_size: int = 64,
                stacked: bool = True) -> np.ndarray:
    """Return the NLL per target token `f32[M]` of each member over all of `(x, labels)`.

    Args:
      variables: stacked on a leading axis M, or shared by every member with `stacked=False`.
      masks: `bool[M, D]`.
      x: the model inputs, `int32[n, ...]` arrays; labels: `int32[n, T]`, -100 at padding.

    Sums of token log-likelihoods and token counts are accumulated batch by
    batch, so the result is the corpus-level mean, not a mean of batch means.
    """
    sums = _nll_sums_fn(model, stacked)
    total, tokens = np.zeros(len(masks), np.float64), 0
    for (chunk, count), (labels_chunk, _) in zip(padded_chunks(x, batch_size), padded_chunks(labels, batch_size)):
        # Padding rows repeat a real row, so their labels are dropped and count nothing.
        labels_chunk = jnp.where(jnp.arange(labels_chunk.shape[0])[:, None] < count, labels_chunk, -100)
        total += np.asarray(sums(variables, jnp.asarray(masks), chunk, labels_chunk), np.float64)
        tokens += int(jnp.sum(labels_chunk >= 0))
    return (total / max(tokens, 1)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _nll_sums_fn(model, stacked: bool):
    def one(variables, mask, x, labels):
        logits = model.apply(variables, x, mask).astype(jnp.float32)
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        valid = labels >= 0
        picked = jnp.take_along_axis(log_probs, jnp.where(valid, labels, 0)[..., None], axis=-1)[..., 0]
        return -jnp.sum(jnp.where(valid, picked, 0.0))

    return jax.jit(jax.vmap(one, in_axes=(0 if stacked else None, 0, None, None)))


def members_bleu(model, variables, masks, tokenizer, sources: Sequence[str], references: Sequence[str],
                 source_lang: str, target_lang: str, *, stacked: bool = True, **translate_options: Any) -> np.ndarray:
    """Return the corpus BLEU `f32[M]` (sacrebleu) of each member's translations of `sources`.

    Members are decoded one after another with the same jitted decoder: the
    mask is an argument of the compiled function, so M members compile once.
    `translate_options` go to `translate` (lengths, beams, batch size).
    """
    scores = []
    for i, mask in enumerate(np.asarray(masks)):
        member = jax.tree.map(lambda v: v[i], variables) if stacked else variables
        hypotheses = translate(model, member, tokenizer, sources, source_lang, target_lang, jnp.asarray(mask),
                               **translate_options)
        scores.append(bleu(hypotheses, references))
    return np.asarray(scores, np.float32)
