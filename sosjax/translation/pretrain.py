"""A small M2M100 JAT built offline: a sentencepiece tokenizer and a short Adafactor pretraining.

The result is a Hugging Face M2M100 folder (`config.json`, `model.safetensors`,
`sentencepiece.bpe.model`, `vocab.json`, `tokenizer_config.json`) that
`load_m2m100`, `load_tokenizer` and transformers all read.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sosjax.data.translation import TranslationTask
from sosjax.models.m2m100 import M2M100
from sosjax.models.m2m100_config import M2M100Config
from sosjax.models.m2m100_loading import save_m2m100
from sosjax.translation.loss import loss
from sosjax.translation.tokenizer import encode_pairs, load_tokenizer, model_vocab_size, train_tokenizer


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Size of the small JAT and of its pretraining."""

    #: sentencepiece pieces (special pieces included); language tokens come on top.
    pieces: int = 1000
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 256
    #: Tokens per source and per target, language token and `</s>` included.
    source_length: int = 32
    target_length: int = 32
    batch_size: int = 32
    steps: int = 2000
    #: Adafactor's step size (optax.adafactor, relative step sizes off).
    learning_rate: float = 1e-2
    seed: int = 0


def _encode_tasks(tokenizer, tasks: Sequence[TranslationTask], config: PretrainConfig) -> dict[str, np.ndarray]:
    batches = [
        encode_pairs(tokenizer, [s for s, _ in task.train], [t for _, t in task.train], task.source_lang,
                     task.target_lang, config.source_length, config.target_length)
        for task in tasks
    ]
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def pretrain_m2m100(
    tasks: Sequence[TranslationTask], folder: str, config: PretrainConfig = PretrainConfig()
) -> tuple[M2M100, dict, np.ndarray]:
    """Train a tokenizer and a small M2M100 on the union of the tasks' training pairs.

    Returns:
      `(model, variables, losses f32[steps])` and writes the model and tokenizer to `folder`.
    """
    texts = [text for task in tasks for pair in task.train for text in pair]
    train_tokenizer(texts, folder, vocab_size=config.pieces)
    tokenizer = load_tokenizer(folder)
    data = _encode_tasks(tokenizer, tasks, config)

    model = M2M100(M2M100Config(
        vocab_size=model_vocab_size(tokenizer),
        d_model=config.d_model,
        encoder_layers=config.layers,
        decoder_layers=config.layers,
        encoder_attention_heads=config.heads,
        decoder_attention_heads=config.heads,
        encoder_ffn_dim=config.ffn_dim,
        decoder_ffn_dim=config.ffn_dim,
        max_position_embeddings=max(config.source_length, config.target_length),
    ))
    init_key = jax.random.key(config.seed)
    params = jax.jit(model.init)(init_key, {k: jnp.asarray(v[:1]) for k, v in data.items()})["params"]
    optimizer = optax.adafactor(config.learning_rate, multiply_by_parameter_scale=False)
    state = optimizer.init(params)

    @jax.jit
    def step(params, state, batch):
        value, grads = jax.value_and_grad(lambda p: loss(model, {"params": p}, batch))(params)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    rng = np.random.default_rng(config.seed)
    count = len(data["labels"])
    losses = np.zeros(config.steps, np.float32)
    for i in range(config.steps):
        rows = rng.choice(count, size=min(config.batch_size, count), replace=False)
        params, state, value = step(params, state, {k: jnp.asarray(v[rows]) for k, v in data.items()})
        losses[i] = float(value)

    variables = {"params": params}
    save_m2m100(folder, model, variables)
    return model, variables, losses
