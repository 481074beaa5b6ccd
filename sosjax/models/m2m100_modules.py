"""Flax modules of the M2M100 encoder-decoder, with a gate on every attention head.

The computation follows transformers' PyTorch `M2M100ForConditionalGeneration`
(transformers 5.25) in inference mode: pre-norm layers, scaled shared
embeddings, sinusoidal positions offset past the padding index, final layer
norms and an output projection tied to the embeddings.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sosjax.models.m2m100_config import M2M100Config

# The bias that blocks attention to a key, as transformers' eager attention
# adds it: a query with every key blocked attends uniformly instead of
# producing NaN.
_BLOCKED = float(jnp.finfo(jnp.float32).min)


def activation(name: str):
    """The jax function that transformers' `ACT2FN[name]` computes."""
    functions = {
        "relu": jax.nn.relu,
        "gelu": lambda x: jax.nn.gelu(x, approximate=False),
        "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
        "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
        "silu": jax.nn.silu,
        "swish": jax.nn.silu,
        "tanh": jnp.tanh,
    }
    return functions[name]


def position_ids(input_ids: jax.Array, pad_token_id: int) -> jax.Array:
    """Positions `int32[B, T]` as fairseq numbers them: pad_token_id + 1, + 2, ... over
    non-padding tokens, and `pad_token_id` (a zero embedding) on padding tokens."""
    not_pad = (input_ids != pad_token_id).astype(jnp.int32)
    return jnp.cumsum(not_pad, axis=1) * not_pad + pad_token_id


def sinusoidal_embedding(positions: jax.Array, dim: int, pad_token_id: int) -> jax.Array:
    """Embeddings `f32[..., dim]` of integer positions: sines then cosines, as in
    tensor2tensor, zero at `pad_token_id` and zero-padded when `dim` is odd."""
    half = dim // 2
    rate = math.log(10000) / (half - 1)
    frequencies = jnp.exp(jnp.arange(half, dtype=jnp.float32) * -rate)
    angles = positions.astype(jnp.float32)[..., None] * frequencies
    table = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
    if dim % 2:
        table = jnp.concatenate([table, jnp.zeros(table.shape[:-1] + (1,), table.dtype)], axis=-1)
    return jnp.where((positions == pad_token_id)[..., None], 0.0, table)


def attention_bias(allowed: jax.Array) -> jax.Array:
    """Additive score bias `f32[B, 1, Tq, Tk]` from `bool[B, Tq, Tk]`."""
    return jnp.where(allowed, 0.0, _BLOCKED)[:, None, :, :]


def _layer_norm(name: str) -> nn.LayerNorm:
    # PyTorch's LayerNorm: eps 1e-5 and the two-pass variance.
    return nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, name=name)


class Attention(nn.Module):
    """Multi-head attention whose head outputs are multiplied by a gate.

    A zero gate removes the head exactly: it zeroes the head's slice of the
    out_proj input, which is what deleting that head's q/k/v rows and out_proj
    columns does.
    """

    num_heads: int
    head_dim: int
    d_model: int
    init_std: float

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array, bias: jax.Array, gate: jax.Array | None) -> jax.Array:
        """`x: f32[B, Tq, d]`, `context: f32[B, Tk, d]`, `bias: f32[B, 1, Tq, Tk]`,
        `gate: f32[num_heads]` or None; returns `f32[B, Tq, d]`."""
        inner = self.num_heads * self.head_dim
        dense = lambda features, name: nn.Dense(
            features, kernel_init=nn.initializers.normal(self.init_std), name=name
        )
        split = lambda y: y.reshape(y.shape[:-1] + (self.num_heads, self.head_dim))

        query = split(dense(inner, "q_proj")(x))
        key = split(dense(inner, "k_proj")(context))
        value = split(dense(inner, "v_proj")(context))

        scores = jnp.einsum("bqhd,bkhd->bhqk", query, key) * self.head_dim**-0.5 + bias
        weights = jax.nn.softmax(scores, axis=-1)
        heads = jnp.einsum("bhqk,bkhd->bqhd", weights, value)
        if gate is not None:
            heads = heads * gate[:, None].astype(heads.dtype)

        return dense(self.d_model, "out_proj")(heads.reshape(heads.shape[:2] + (inner,)))


class EncoderLayer(nn.Module):
    config: M2M100Config
    num_heads: int

    @nn.compact
    def __call__(self, x, bias, gate):
        c = self.config
        attention = Attention(self.num_heads, c.encoder_head_dim, c.d_model, c.init_std, name="self_attn")
        h = _layer_norm("self_attn_layer_norm")(x)
        x = x + attention(h, h, bias, gate)

        h = _layer_norm("final_layer_norm")(x)
        h = activation(c.activation_function)(nn.Dense(c.encoder_ffn_dim, name="fc1")(h))
        return x + nn.Dense(c.d_model, name="fc2")(h)


class DecoderLayer(nn.Module):
    config: M2M100Config
    self_heads: int
    cross_heads: int

    @nn.compact
    def __call__(self, x, self_bias, encoder_states, cross_bias, self_gate, cross_gate):
        c = self.config
        hd = c.decoder_head_dim
        h = _layer_norm("self_attn_layer_norm")(x)
        x = x + Attention(self.self_heads, hd, c.d_model, c.init_std, name="self_attn")(h, h, self_bias, self_gate)

        h = _layer_norm("encoder_attn_layer_norm")(x)
        cross = Attention(self.cross_heads, hd, c.d_model, c.init_std, name="encoder_attn")
        x = x + cross(h, encoder_states, cross_bias, cross_gate)

        h = _layer_norm("final_layer_norm")(x)
        h = activation(c.activation_function)(nn.Dense(c.decoder_ffn_dim, name="fc1")(h))
        return x + nn.Dense(c.d_model, name="fc2")(h)


Gates = Sequence[jax.Array | None]


class M2M100Module(nn.Module):
    """The encoder-decoder with its language-model head.

    Gates are per attention layer: `encoder_gates[l]` is `f32[encoder_heads[l]]`,
    and likewise for decoder self- and cross-attention; None leaves every head on.
    """

    config: M2M100Config

    def setup(self):
        c = self.config
        embed = lambda name: nn.Embed(
            c.vocab_size, c.d_model, embedding_init=nn.initializers.normal(c.init_std), name=name
        )
        if c.tie_word_embeddings:
            self.shared = embed("shared")
        else:
            # transformers 5 unties all three when tie_word_embeddings is False.
            self.encoder_embed_tokens = embed("encoder_embed_tokens")
            self.decoder_embed_tokens = embed("decoder_embed_tokens")
        self.encoder_layers = [
            EncoderLayer(c, heads, name=f"encoder_layers_{i}") for i, heads in enumerate(c.layer_heads("encoder_heads"))
        ]
        self.encoder_layer_norm = _layer_norm("encoder_layer_norm")
        self.decoder_layers = [
            DecoderLayer(c, self_heads, cross_heads, name=f"decoder_layers_{i}")
            for i, (self_heads, cross_heads) in enumerate(
                zip(c.layer_heads("decoder_self_heads"), c.layer_heads("decoder_cross_heads"))
            )
        ]
        self.decoder_layer_norm = _layer_norm("decoder_layer_norm")
        if not c.tie_word_embeddings:
            self.lm_head = nn.Dense(
                c.vocab_size, use_bias=False, kernel_init=nn.initializers.normal(c.init_std), name="lm_head"
            )

    def _embed(self, table: nn.Embed, ids: jax.Array, positions: jax.Array) -> jax.Array:
        c = self.config
        scale = math.sqrt(c.d_model) if c.scale_embedding else 1.0
        return table(ids) * scale + sinusoidal_embedding(positions, c.d_model, c.pad_token_id)

    def encode(self, input_ids, attention_mask, encoder_gates: Gates | None = None):
        """Encoder states `f32[B, S, d]` of `input_ids: int32[B, S]`."""
        gates = encoder_gates or [None] * len(self.encoder_layers)
        table = self.shared if self.config.tie_word_embeddings else self.encoder_embed_tokens
        x = self._embed(table, input_ids, position_ids(input_ids, self.config.pad_token_id))
        keys = attention_mask.astype(bool)
        bias = attention_bias(jnp.broadcast_to(keys[:, None, :], keys.shape[:1] + keys.shape[1:] * 2))
        for layer, gate in zip(self.encoder_layers, gates):
            x = layer(x, bias, gate)
        return self.encoder_layer_norm(x)

    def decode(
        self,
        decoder_input_ids,
        encoder_states,
        attention_mask,
        decoder_attention_mask=None,
        decoder_positions=None,
        self_gates: Gates | None = None,
        cross_gates: Gates | None = None,
    ):
        """Logits `f32[B, T, vocab]` for `decoder_input_ids: int32[B, T]`.

        `decoder_positions` overrides the fairseq numbering; generation passes
        step indices so that a generated padding token does not shift later
        positions, as transformers' cached decoding does.
        """
        c = self.config
        batch, length = decoder_input_ids.shape
        self_gates = self_gates or [None] * len(self.decoder_layers)
        cross_gates = cross_gates or [None] * len(self.decoder_layers)

        if decoder_positions is None:
            decoder_positions = position_ids(decoder_input_ids, c.pad_token_id)
        table = self.shared if c.tie_word_embeddings else self.decoder_embed_tokens
        x = self._embed(table, decoder_input_ids, decoder_positions)

        causal = jnp.tril(jnp.ones((length, length), bool))[None]
        if decoder_attention_mask is not None:
            causal = causal & decoder_attention_mask.astype(bool)[:, None, :]
        self_bias = attention_bias(jnp.broadcast_to(causal, (batch, length, length)))
        keys = attention_mask.astype(bool)
        cross_bias = attention_bias(jnp.broadcast_to(keys[:, None, :], (batch, length, keys.shape[1])))

        for layer, self_gate, cross_gate in zip(self.decoder_layers, self_gates, cross_gates):
            x = layer(x, self_bias, encoder_states, cross_bias, self_gate, cross_gate)
        x = self.decoder_layer_norm(x)

        if c.tie_word_embeddings:
            return self.shared.attend(x)
        return self.lm_head(x)

    def __call__(self, inputs: dict, encoder_gates=None, self_gates=None, cross_gates=None):
        encoder_states = self.encode(inputs["input_ids"], inputs["attention_mask"], encoder_gates)
        return self.decode(
            inputs["decoder_input_ids"],
            encoder_states,
            inputs["attention_mask"],
            inputs.get("decoder_attention_mask"),
            self_gates=self_gates,
            cross_gates=cross_gates,
        )
