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
import numpy as np

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


def _multi_head(query, key, value, bias, qk_dims, vo_dims, scale):
    """Compute scaled dot-product attention over heads of per-head widths.

    `query: f32[B, Tq, sum(qk_dims)]`, `key: f32[B, Tk, sum(qk_dims)]`,
    `value: f32[B, Tk, sum(vo_dims)]`, `bias: f32[B, 1, Tq, Tk]`; returns the
    concatenated head outputs `f32[B, Tq, sum(vo_dims)]`. Heads of equal width
    run as one batched einsum. Ragged heads (left by row pruning) run one by one
    on static slices, so no FLOP is spent on pruned rows. A head of query/key
    width 0 scores every key 0 and so averages the allowed values.
    """
    widths = set(qk_dims) | set(vo_dims)
    if len(widths) == 1 and 0 not in widths:
        width = widths.pop()
        split = lambda y: y.reshape(y.shape[:-1] + (len(qk_dims), width))
        scores = jnp.einsum("bqhd,bkhd->bhqk", split(query), split(key)) * scale + bias
        heads = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), split(value))
        return heads.reshape(heads.shape[:2] + (-1,))

    outputs = []
    qk_end = np.cumsum(qk_dims, dtype=int)
    vo_end = np.cumsum(vo_dims, dtype=int)
    for head, (qk_width, vo_width) in enumerate(zip(qk_dims, vo_dims)):
        q = query[..., qk_end[head] - qk_width: qk_end[head]]
        k = key[..., qk_end[head] - qk_width: qk_end[head]]
        scores = jnp.einsum("bqd,bkd->bqk", q, k) * scale + bias[:, 0]
        v = value[..., vo_end[head] - vo_width: vo_end[head]]
        outputs.append(jnp.einsum("bqk,bkd->bqd", jax.nn.softmax(scores, axis=-1), v))
    if not outputs:
        return jnp.zeros(query.shape[:2] + (0,), query.dtype)
    return jnp.concatenate(outputs, axis=-1)


#: Gates of one attention layer: `(qk_gate f32[sum(qk_dims)] or None, vo_gate
#: f32[sum(vo_dims)] or None)`, or None for no gate at all.
AttentionGate = tuple[jax.Array | None, jax.Array | None] | None


class Attention(nn.Module):
    """Multi-head attention with gates on the rows of its projections.

    A zero query/key gate removes that row of q_proj and k_proj exactly: the
    row's product no longer enters any score. A zero value/output gate removes
    that row of v_proj and that input column of out_proj exactly. A head whose
    value/output rows are all gated off adds nothing, which is what deleting
    the head does. Scores keep the scale `head_dim ** -0.5` of the unpruned
    head, whatever width a pruned head has left.
    """

    qk_dims: tuple[int, ...]
    vo_dims: tuple[int, ...]
    head_dim: int
    d_model: int
    init_std: float

    def setup(self):
        dense = lambda features: nn.Dense(features, kernel_init=nn.initializers.normal(self.init_std))
        self.q_proj = dense(sum(self.qk_dims))
        self.k_proj = dense(sum(self.qk_dims))
        self.v_proj = dense(sum(self.vo_dims))
        self.out_proj = dense(self.d_model)

    def __call__(self, x: jax.Array, context: jax.Array, bias: jax.Array, gate: AttentionGate) -> jax.Array:
        """Attend from `x: f32[B, Tq, d]` over `context: f32[B, Tk, d]` with `bias: f32[B, 1, Tq, Tk]`.

        Returns `f32[B, Tq, d]`.
        """
        key, value = self.key_value(context)
        return self.attend(x, key, value, bias, gate)

    def key_value(self, context: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Compute the keys `f32[B, Tk, sum(qk_dims)]` and values `f32[B, Tk, sum(vo_dims)]` of `context`."""
        return self.k_proj(context), self.v_proj(context)

    def attend(self, x, key, value, bias, gate: AttentionGate) -> jax.Array:
        """Attend from the queries of `x: f32[B, Tq, d]` over precomputed keys and values."""
        qk_gate, vo_gate = gate if gate is not None else (None, None)
        query = self.q_proj(x)
        if qk_gate is not None:
            query = query * qk_gate.astype(query.dtype)
        heads = _multi_head(query, key, value, bias, self.qk_dims, self.vo_dims, self.head_dim**-0.5)
        if vo_gate is not None:
            heads = heads * vo_gate.astype(heads.dtype)
        return self.out_proj(heads)


def _site_attention(config: M2M100Config, dims, head_dim: int, name: str | None = None) -> Attention:
    qk_dims, vo_dims = dims
    kwargs = {} if name is None else {"name": name}
    return Attention(qk_dims, vo_dims, head_dim, config.d_model, config.init_std, **kwargs)


class EncoderLayer(nn.Module):
    config: M2M100Config
    #: `(qk widths, vo widths)` per head of the self-attention.
    dims: tuple

    @nn.compact
    def __call__(self, x, bias, gate):
        c = self.config
        attention = _site_attention(c, self.dims, c.encoder_head_dim, name="self_attn")
        h = _layer_norm("self_attn_layer_norm")(x)
        x = x + attention(h, h, bias, gate)

        h = _layer_norm("final_layer_norm")(x)
        h = activation(c.activation_function)(nn.Dense(c.encoder_ffn_dim, name="fc1")(h))
        return x + nn.Dense(c.d_model, name="fc2")(h)


class DecoderLayer(nn.Module):
    """A pre-norm decoder layer, run over a whole sequence or one cached step."""

    config: M2M100Config
    self_dims: tuple
    cross_dims: tuple

    def setup(self):
        c = self.config
        norm = lambda: nn.LayerNorm(epsilon=1e-5, use_fast_variance=False)
        self.self_attn_layer_norm = norm()
        self.self_attn = _site_attention(c, self.self_dims, c.decoder_head_dim)
        self.encoder_attn_layer_norm = norm()
        self.encoder_attn = _site_attention(c, self.cross_dims, c.decoder_head_dim)
        self.final_layer_norm = norm()
        self.fc1 = nn.Dense(c.decoder_ffn_dim)
        self.fc2 = nn.Dense(c.d_model)

    def __call__(self, x, self_bias, encoder_states, cross_bias, self_gate, cross_gate):
        h = self.self_attn_layer_norm(x)
        x = x + self.self_attn(h, h, self_bias, self_gate)
        return self._cross_and_feed_forward(x, self.cross_key_value(encoder_states), cross_bias, cross_gate)

    def step(self, x, cache, index, self_bias, cross_key_value, cross_bias, self_gate, cross_gate):
        """Run one position `x: f32[N, 1, d]` against a self-attention cache.

        `cache` is `(keys f32[N, L, sum(qk_dims)], values f32[N, L, sum(vo_dims)])`;
        this position's key and value are written at `index` before attending,
        and `self_bias: f32[N, 1, 1, L]` blocks the positions after it.
        Returns the layer output and the updated cache.
        """
        h = self.self_attn_layer_norm(x)
        key, value = self.self_attn.key_value(h)
        keys = jax.lax.dynamic_update_slice_in_dim(cache[0], key.astype(cache[0].dtype), index, axis=1)
        values = jax.lax.dynamic_update_slice_in_dim(cache[1], value.astype(cache[1].dtype), index, axis=1)
        x = x + self.self_attn.attend(h, keys, values, self_bias, self_gate)
        return self._cross_and_feed_forward(x, cross_key_value, cross_bias, cross_gate), (keys, values)

    def cross_key_value(self, encoder_states):
        """Compute the cross-attention keys and values over `encoder_states: f32[N, S, d]`."""
        return self.encoder_attn.key_value(encoder_states)

    def _cross_and_feed_forward(self, x, cross_key_value, cross_bias, cross_gate):
        h = self.encoder_attn_layer_norm(x)
        x = x + self.encoder_attn.attend(h, *cross_key_value, cross_bias, cross_gate)

        h = self.final_layer_norm(x)
        h = activation(self.config.activation_function)(self.fc1(h))
        return x + self.fc2(h)


Gates = Sequence[AttentionGate]


class M2M100Module(nn.Module):
    """The encoder-decoder with its language-model head.

    Gates are per attention layer (`encoder_gates[l]`, and likewise for decoder
    self- and cross-attention), each an `AttentionGate`; None leaves every row on.
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
        dims = c.site_dims()
        encoder_dims, decoder_dims = dims[: c.encoder_layers], dims[c.encoder_layers:]
        self.encoder_layers = [EncoderLayer(c, d, name=f"encoder_layers_{i}") for i, d in enumerate(encoder_dims)]
        self.encoder_layer_norm = _layer_norm("encoder_layer_norm")
        self.decoder_layers = [
            DecoderLayer(c, self_dims, cross_dims, name=f"decoder_layers_{i}")
            for i, (self_dims, cross_dims) in enumerate(zip(decoder_dims[::2], decoder_dims[1::2]))
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
        return self._logits(x)

    def _logits(self, x):
        x = self.decoder_layer_norm(x)
        if self.config.tie_word_embeddings:
            return self.shared.attend(x)
        return self.lm_head(x)

    def cross_key_values(self, encoder_states):
        """Compute the keys and values of every decoder cross-attention over
        `encoder_states: f32[N, S, d]`, once per generation."""
        return tuple(layer.cross_key_value(encoder_states) for layer in self.decoder_layers)

    def decode_step(self, tokens, positions, index, cache, cross_key_values, attention_mask,
                    self_gates: Gates | None = None, cross_gates: Gates | None = None):
        """Decode one new token per sequence and return the logits `f32[N, vocab]` after it.

        Args:
          tokens: `int32[N]` the tokens at decoder position `index`.
          positions: `int32[N]` their position ids (see `decode`).
          index: scalar position in the cache, the same for every sequence.
          cache: per layer, `(keys f32[N, L, ·], values f32[N, L, ·])` of the
            positions before `index`; entries at `index` and later are ignored.
          cross_key_values: the output of `cross_key_values`.
          attention_mask: `int32[N, S]` source padding.

        Returns:
          `(logits, cache)` with this position's keys and values written in.
        """
        self_gates = self_gates or [None] * len(self.decoder_layers)
        cross_gates = cross_gates or [None] * len(self.decoder_layers)
        table = self.shared if self.config.tie_word_embeddings else self.decoder_embed_tokens
        x = self._embed(table, tokens[:, None], positions[:, None])

        cache_length = cache[0][0].shape[1] if cache else 0
        visible = jnp.arange(cache_length) <= index
        self_bias = attention_bias(jnp.broadcast_to(visible, (x.shape[0], 1, cache_length)))
        source_allowed = attention_mask.astype(bool)
        cross_bias = attention_bias(source_allowed[:, None, :])

        new_cache = []
        layers = zip(self.decoder_layers, cache, cross_key_values, self_gates, cross_gates)
        for layer, layer_cache, cross_key_value, self_gate, cross_gate in layers:
            x, layer_cache = layer.step(x, layer_cache, index, self_bias, cross_key_value, cross_bias,
                                        self_gate, cross_gate)
            new_cache.append(layer_cache)
        return self._logits(x)[:, 0], tuple(new_cache)

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
