"""M2M100 as a masked model: one mask bit per group of attention heads.

Groups are attention heads (`heads_per_group` adjacent heads of one attention
layer per bit) of every encoder self-attention, decoder self-attention and
decoder cross-attention. Embeddings, positions, layer norms, feed-forward blocks
and the output projection are never masked. Bits are ordered by site: encoder
layer 0, 1, ..., then decoder layer 0 self, 0 cross, 1 self, 1 cross, ...
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from sosjax.models.base import MaskedModel, Variables
from sosjax.models.m2m100_config import M2M100Config
from sosjax.models.m2m100_modules import M2M100Module
from sosjax.models.registry import register


@dataclasses.dataclass(frozen=True)
class AttentionSite:
    """One attention layer: where its parameters live and its slice of the mask."""

    #: Path of the attention module inside `variables["params"]`.
    path: tuple[str, str]
    heads: int
    head_dim: int
    #: First mask bit of this layer.
    offset: int
    #: Mask bits of this layer: `heads // heads_per_group`.
    groups: int


def _attention_sites(config: M2M100Config) -> tuple[AttentionSite, ...]:
    named = [(("encoder_layers_%d" % i, "self_attn"), h, config.encoder_head_dim)
             for i, h in enumerate(config.layer_heads("encoder_heads"))]
    decoder = zip(config.layer_heads("decoder_self_heads"), config.layer_heads("decoder_cross_heads"))
    for i, (self_heads, cross_heads) in enumerate(decoder):
        named.append((("decoder_layers_%d" % i, "self_attn"), self_heads, config.decoder_head_dim))
        named.append((("decoder_layers_%d" % i, "encoder_attn"), cross_heads, config.decoder_head_dim))

    sites, offset = [], 0
    for path, heads, head_dim in named:
        groups = heads // config.heads_per_group
        sites.append(AttentionSite(path, heads, head_dim, offset, groups))
        offset += groups
    return tuple(sites)


def _count_params(config: M2M100Config) -> int:
    """Trainable parameters of the model described by `config`, computed from shapes."""
    d = config.d_model
    layer_norm = 2 * d
    # Tied: one shared table. Untied: encoder, decoder and output tables.
    total = config.vocab_size * d * (1 if config.tie_word_embeddings else 3)
    total += 2 * layer_norm  # final layer norms of encoder and decoder

    for site in _attention_sites(config):
        total += site.heads * (4 * d * site.head_dim + 3 * site.head_dim) + d
    for ffn, layers, norms in (
        (config.encoder_ffn_dim, config.encoder_layers, 2),
        (config.decoder_ffn_dim, config.decoder_layers, 3),
    ):
        total += layers * (2 * d * ffn + ffn + d + norms * layer_norm)
    return total


class M2M100(MaskedModel):
    """The M2M100 encoder-decoder with masks on attention heads.

    `inputs` is a dict: `input_ids int32[B, S]`, `attention_mask int32[B, S]`,
    `decoder_input_ids int32[B, T]` and optionally `decoder_attention_mask
    int32[B, T]`; outputs are logits `f32[B, T, vocab_size]`.
    """

    has_batch_stats = False

    def __init__(self, config: M2M100Config):
        self.hparams = config
        self.module = M2M100Module(config)
        self.sites = _attention_sites(config)
        self.num_dims = sum(site.groups for site in self.sites)
        self.group_names = tuple(
            f"{'.'.join(site.path)}.heads[{g * config.heads_per_group}:{(g + 1) * config.heads_per_group}]"
            for site in self.sites
            for g in range(site.groups)
        )
        group_params = [
            config.heads_per_group * (4 * config.d_model * site.head_dim + 3 * site.head_dim)
            for site in self.sites
            for _ in range(site.groups)
        ]
        self._group_params = np.asarray(group_params, np.int64)
        self._total_params = _count_params(config)

    @property
    def config(self) -> dict:
        return {"name": "m2m100", **self.hparams.to_dict()}

    # ---- forward ---------------------------------------------------------

    def _gates(self, mask):
        """Per-layer head gates `f32[heads]` from `mask: bool[D]`, or Nones."""
        if mask is None:
            return None, None, None
        mask = jnp.asarray(mask)
        gates = [
            jnp.repeat(mask[site.offset: site.offset + site.groups], self.hparams.heads_per_group).astype(jnp.float32)
            for site in self.sites
        ]
        n_encoder = self.hparams.encoder_layers
        return gates[:n_encoder], gates[n_encoder::2], gates[n_encoder + 1::2]

    def init(self, key: jax.Array, example_inputs: Mapping[str, Any]) -> dict:
        return {"params": self.module.init(key, dict(example_inputs))["params"]}

    def apply(self, variables, inputs, mask=None, *, train=False, batch_stats="running"):
        encoder_gates, self_gates, cross_gates = self._gates(mask)
        logits = self.module.apply({"params": variables["params"]}, dict(inputs), encoder_gates, self_gates, cross_gates)
        return (logits, {}) if train else logits

    def encode(self, variables: Variables, input_ids, attention_mask, mask=None) -> jax.Array:
        """Encoder states `f32[B, S, d_model]`."""
        encoder_gates, _, _ = self._gates(mask)
        return self.module.apply(
            {"params": variables["params"]}, input_ids, attention_mask, encoder_gates, method=M2M100Module.encode
        )

    def decode(
        self,
        variables: Variables,
        decoder_input_ids,
        encoder_states,
        attention_mask,
        mask=None,
        decoder_attention_mask=None,
        decoder_positions=None,
    ) -> jax.Array:
        """Logits `f32[B, T, vocab_size]` given encoder states from `encode`."""
        _, self_gates, cross_gates = self._gates(mask)
        return self.module.apply(
            {"params": variables["params"]},
            decoder_input_ids,
            encoder_states,
            attention_mask,
            decoder_attention_mask,
            decoder_positions,
            self_gates,
            cross_gates,
            method=M2M100Module.decode,
        )

    # ---- sizes -----------------------------------------------------------

    def num_params(self, mask=None):
        if mask is None:
            return self._total_params
        if isinstance(mask, jax.Array):
            pruned = jnp.sum(jnp.where(mask, 0, jnp.asarray(self._group_params, jnp.int32)))
            return self._total_params - pruned
        return int(self._total_params - self._group_params[~np.asarray(mask, bool)].sum())

    def num_stored(self, mask=None):
        # Sinusoidal positions are computed, not stored, and there is no
        # non-trainable state.
        return self.num_params(mask)

    def param_mask(self, mask):
        shapes = jax.eval_shape(self.init, jax.random.key(0), _example_inputs())["params"]
        ones = jax.tree.map(lambda s: jnp.ones(s.shape, jnp.float32), shapes)
        if mask is None:
            return ones

        mask = jnp.asarray(mask)
        for site in self.sites:
            head_keep = jnp.repeat(mask[site.offset: site.offset + site.groups], self.hparams.heads_per_group)
            inner_keep = jnp.repeat(head_keep, site.head_dim).astype(jnp.float32)
            attention = ones[site.path[0]][site.path[1]]
            for name in ("q_proj", "k_proj", "v_proj"):
                attention[name]["kernel"] = attention[name]["kernel"] * inner_keep[None, :]
                attention[name]["bias"] = attention[name]["bias"] * inner_keep
            attention["out_proj"]["kernel"] = attention["out_proj"]["kernel"] * inner_keep[:, None]
        return ones

    # ---- pruning ---------------------------------------------------------

    def repair(self, key: jax.Array, mask: jax.Array) -> jax.Array:
        mask = jnp.asarray(mask, bool)
        keys = jax.random.split(key, max(len(self.sites), 1))
        pieces = []
        for site, site_key in zip(self.sites, keys):
            piece = mask[site.offset: site.offset + site.groups]
            needed = min(self.hparams.min_active, site.groups) - jnp.sum(piece)

            # Switch on the `needed` off bits with the highest random priority.
            priority = jnp.where(piece, -jnp.inf, jax.random.uniform(site_key, (site.groups,)))
            rank = jnp.argsort(jnp.argsort(-priority))
            pieces.append(piece | (rank < needed))
        return jnp.concatenate(pieces) if pieces else mask

    def compact(self, variables, mask):
        if mask is None:
            return self, jax.tree.map(jnp.asarray, dict(variables))
        mask = np.asarray(mask, bool)
        if mask.shape != (self.num_dims,):
            raise ValueError(f"Expected a mask of shape ({self.num_dims},), got {mask.shape}.")

        params = _nested_numpy(variables["params"])
        kept_heads = {}
        for site in self.sites:
            head_keep = np.repeat(mask[site.offset: site.offset + site.groups], self.hparams.heads_per_group)
            inner_keep = np.repeat(head_keep, site.head_dim)
            attention = dict(params[site.path[0]][site.path[1]])
            for name in ("q_proj", "k_proj", "v_proj"):
                attention[name] = {
                    "kernel": attention[name]["kernel"][:, inner_keep],
                    "bias": attention[name]["bias"][inner_keep],
                }
            attention["out_proj"] = {
                "kernel": attention["out_proj"]["kernel"][inner_keep, :],
                "bias": attention["out_proj"]["bias"],
            }
            params[site.path[0]] = {**params[site.path[0]], site.path[1]: attention}
            kept_heads[site.path] = int(head_keep.sum())

        n_decoder = self.hparams.decoder_layers
        small_config = dataclasses.replace(
            self.hparams,
            encoder_heads=tuple(kept_heads[("encoder_layers_%d" % i, "self_attn")] for i in range(self.hparams.encoder_layers)),
            decoder_self_heads=tuple(kept_heads[("decoder_layers_%d" % i, "self_attn")] for i in range(n_decoder)),
            decoder_cross_heads=tuple(kept_heads[("decoder_layers_%d" % i, "encoder_attn")] for i in range(n_decoder)),
        )
        return M2M100(small_config), {"params": jax.tree.map(jnp.asarray, params)}


def _nested_numpy(tree: Mapping) -> dict:
    """Copy a nested mapping into plain dicts of numpy arrays."""
    return {k: _nested_numpy(v) if isinstance(v, Mapping) else np.asarray(v) for k, v in tree.items()}


def _example_inputs(batch: int = 1, length: int = 2) -> dict:
    ids = jnp.full((batch, length), 4, jnp.int32)
    return {"input_ids": ids, "attention_mask": jnp.ones_like(ids), "decoder_input_ids": ids}


def m2m100(config: M2M100Config | Mapping[str, Any] | None = None, **fields) -> M2M100:
    """Build an M2M100 masked model.

    Args:
      config: an `M2M100Config`, or a dict of its fields, which may be a Hugging
        Face `config.json` dictionary (keys that are not fields are ignored).
      **fields: fields that override those of `config`.
    """
    if config is None:
        config = M2M100Config(**fields)
    elif isinstance(config, M2M100Config):
        config = dataclasses.replace(config, **fields)
    else:
        config = M2M100Config.from_hf({k: v for k, v in config.items() if k != "name"}, **fields)
    return M2M100(config)


@register("m2m100")
def _build_from_fields(**fields) -> M2M100:
    # `model.config` minus its name: every key must be a field, so a damaged
    # configuration fails here instead of silently building another model.
    return M2M100(M2M100Config(**fields))
