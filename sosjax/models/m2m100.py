"""M2M100 as a masked model: mask bits on attention heads or on rows of the attention projections.

Every encoder self-attention, decoder self-attention and decoder
cross-attention is masked. Embeddings, positions, layer norms, feed-forward
blocks and the output projection never are. Bits are ordered by attention
layer: encoder layer 0, 1, ..., then decoder layer 0 self, 0 cross, 1 self, 1
cross, ... Within a layer, `config.mask_unit` sets what one bit removes:

- "heads": `heads_per_group` adjacent whole heads (their q, k, v rows and
  out_proj input columns).
- "rows": `rows_per_group` adjacent rows of one head, of one of two kinds. The
  layer's query/key groups come first: each removes those rows of q_proj and
  k_proj (kernel columns and biases) together, since a query row is useless
  without the matching key row. Its value/output groups follow: each removes
  those rows of v_proj together with the matching input columns of out_proj.
  A head left without value/output rows adds nothing, so `compact` deletes it
  with its remaining query/key rows, and `num_params` counts those rows as
  removed.
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
    #: Width of an unpruned head, which fixes the score scale.
    head_dim: int
    #: Kept query/key and value/output widths per head.
    qk_dims: tuple[int, ...]
    vo_dims: tuple[int, ...]
    #: First mask bit of this layer.
    offset: int
    #: Mask bits of this layer: `heads // heads_per_group` in head mode; in row
    #: mode `qk_groups` query/key bits followed by the value/output bits.
    groups: int
    qk_groups: int

    @property
    def qk_width(self) -> int:
        return sum(self.qk_dims)

    @property
    def vo_width(self) -> int:
        return sum(self.vo_dims)


def _attention_sites(config: M2M100Config) -> tuple[AttentionSite, ...]:
    paths = [("encoder_layers_%d" % i, "self_attn") for i in range(config.encoder_layers)]
    for i in range(config.decoder_layers):
        paths += [("decoder_layers_%d" % i, "self_attn"), ("decoder_layers_%d" % i, "encoder_attn")]

    sites, offset = [], 0
    for path, (heads, head_dim), (qk_dims, vo_dims) in zip(paths, config.site_heads(), config.site_dims()):
        if config.mask_unit == "heads":
            groups, qk_groups = heads // config.heads_per_group, 0
        else:
            qk_groups = sum(qk_dims) // config.rows_per_group
            groups = qk_groups + sum(vo_dims) // config.rows_per_group
        sites.append(AttentionSite(path, heads, head_dim, qk_dims, vo_dims, offset, groups, qk_groups))
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
        total += site.qk_width * _qk_row_params(d) + site.vo_width * _vo_row_params(d) + d
    for ffn, layers, norms in (
        (config.encoder_ffn_dim, config.encoder_layers, 2),
        (config.decoder_ffn_dim, config.decoder_layers, 3),
    ):
        total += layers * (2 * d * ffn + ffn + d + norms * layer_norm)
    return total


def _qk_row_params(d_model: int) -> int:
    # One row of q_proj and of k_proj: two kernel columns and two biases.
    return 2 * d_model + 2


def _vo_row_params(d_model: int) -> int:
    # One row of v_proj (kernel column and bias) and one input column of out_proj.
    return 2 * d_model + 1


def _head_of_rows(dims: tuple[int, ...]) -> np.ndarray:
    """Return the head index `int[sum(dims)]` of every row of a layer with per-head widths `dims`."""
    return np.repeat(np.arange(len(dims)), dims)


class M2M100(MaskedModel):
    """The M2M100 encoder-decoder with masks on attention heads or projection rows.

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
        self.group_names = tuple(name for site in self.sites for name in self._site_group_names(site))
        self._total_params = _count_params(config)
        # Per site, a one-hot `f32[vo_width, heads]` of each value/output row's head.
        self._vo_heads = [np.eye(site.heads, dtype=np.float32)[_head_of_rows(site.vo_dims)] for site in self.sites]

    def _site_group_names(self, site: AttentionSite) -> list[str]:
        prefix = ".".join(site.path)
        if self.hparams.mask_unit == "heads":
            g = self.hparams.heads_per_group
            return [f"{prefix}.heads[{i * g}:{(i + 1) * g}]" for i in range(site.groups)]
        g = self.hparams.rows_per_group
        qk = [f"{prefix}.qk_rows[{i * g}:{(i + 1) * g}]" for i in range(site.qk_groups)]
        vo = [f"{prefix}.vo_rows[{i * g}:{(i + 1) * g}]" for i in range(site.groups - site.qk_groups)]
        return qk + vo

    @property
    def config(self) -> dict:
        return {"name": "m2m100", **self.hparams.to_dict()}

    # ---- mask to rows ----------------------------------------------------

    def _row_keeps(self, mask, xp=jnp) -> list[tuple[Any, Any]]:
        """Return the kept rows per site, `(qk bool[qk_width], vo bool[vo_width])`, from `mask: bool[D]`.

        A query/key row of a head without any value/output row is dropped,
        because that head adds nothing to the output.
        """
        keeps = []
        for site, vo_heads in zip(self.sites, self._vo_heads):
            bits = mask[site.offset: site.offset + site.groups]
            if self.hparams.mask_unit == "heads":
                head_keep = xp.repeat(bits, self.hparams.heads_per_group)
                qk = vo = xp.repeat(head_keep, site.head_dim)
            else:
                qk = xp.repeat(bits[: site.qk_groups], self.hparams.rows_per_group)
                vo = xp.repeat(bits[site.qk_groups:], self.hparams.rows_per_group)
                alive = (vo.astype(xp.float32) @ vo_heads) > 0
                qk = qk & alive[_head_of_rows(site.qk_dims)]
            keeps.append((qk, vo))
        return keeps

    # ---- forward ---------------------------------------------------------

    def _gates(self, mask):
        """Return per-layer `(qk_gate, vo_gate)` row gates from `mask: bool[D]`, or Nones."""
        if mask is None:
            return None, None, None
        gates = []
        for qk, vo in self._row_keeps(jnp.asarray(mask)):
            qk_gate = None if self.hparams.mask_unit == "heads" else qk.astype(jnp.float32)
            gates.append((qk_gate, vo.astype(jnp.float32)))
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

    def cross_key_values(self, variables: Variables, encoder_states) -> tuple:
        """Compute, per decoder layer, cross-attention `(keys, values)` over `encoder_states: f32[N, S, d]`."""
        return self.module.apply({"params": variables["params"]}, encoder_states,
                                 method=M2M100Module.cross_key_values)

    def decode_step(self, variables: Variables, tokens, positions, index, cache, cross_key_values,
                    attention_mask, mask=None):
        """Decode one new token per sequence: return logits `f32[N, vocab_size]` and the updated cache.

        See `M2M100Module.decode_step`; `init_cache` builds an empty cache.
        """
        _, self_gates, cross_gates = self._gates(mask)
        return self.module.apply({"params": variables["params"]}, tokens, positions, index, cache,
                                 cross_key_values, attention_mask, self_gates, cross_gates,
                                 method=M2M100Module.decode_step)

    def init_cache(self, batch: int, max_length: int, dtype=jnp.float32) -> tuple:
        """Build an empty self-attention cache: per decoder layer, `(keys f32[batch, max_length,
        sum(qk_dims)], values f32[batch, max_length, sum(vo_dims)])`.

        Rows of all heads sit side by side on the last axis (head 0's rows
        first), because pruned heads may have different widths.
        """
        self_sites = self.sites[self.hparams.encoder_layers::2]
        return tuple(
            (jnp.zeros((batch, max_length, site.qk_width), dtype), jnp.zeros((batch, max_length, site.vo_width), dtype))
            for site in self_sites
        )

    # ---- sizes -----------------------------------------------------------

    def num_params(self, mask=None):
        if mask is None:
            return self._total_params
        traced = isinstance(mask, jax.Array)
        xp = jnp if traced else np
        mask = mask if traced else np.asarray(mask, bool)

        d = self.hparams.d_model
        pruned = 0
        for site, (qk, vo) in zip(self.sites, self._row_keeps(mask, xp)):
            pruned_qk = site.qk_width - xp.sum(qk, dtype=xp.int32)
            pruned_vo = site.vo_width - xp.sum(vo, dtype=xp.int32)
            pruned = pruned + pruned_qk * _qk_row_params(d) + pruned_vo * _vo_row_params(d)
        return self._total_params - pruned if traced else int(self._total_params - pruned)

    def num_stored(self, mask=None):
        # Sinusoidal positions are computed, not stored, and there is no
        # non-trainable state.
        return self.num_params(mask)

    def param_mask(self, mask):
        shapes = jax.eval_shape(self.init, jax.random.key(0), _example_inputs())["params"]
        ones = jax.tree.map(lambda s: jnp.ones(s.shape, jnp.float32), shapes)
        if mask is None:
            return ones

        for site, (qk, vo) in zip(self.sites, self._row_keeps(jnp.asarray(mask))):
            qk, vo = qk.astype(jnp.float32), vo.astype(jnp.float32)
            attention = ones[site.path[0]][site.path[1]]
            for name, keep in (("q_proj", qk), ("k_proj", qk), ("v_proj", vo)):
                attention[name]["kernel"] = attention[name]["kernel"] * keep[None, :]
                attention[name]["bias"] = attention[name]["bias"] * keep
            attention["out_proj"]["kernel"] = attention["out_proj"]["kernel"] * vo[:, None]
        return ones

    # ---- pruning ---------------------------------------------------------

    def _repair_segments(self) -> list[tuple[int, int]]:
        """Return `(offset, length)` of each run of bits that keeps `min_active` groups:
        a whole layer in head mode, its query/key and its value/output bits in row mode."""
        if self.hparams.mask_unit == "heads":
            return [(site.offset, site.groups) for site in self.sites]
        segments = []
        for site in self.sites:
            segments += [(site.offset, site.qk_groups), (site.offset + site.qk_groups, site.groups - site.qk_groups)]
        return segments

    def repair(self, key: jax.Array, mask: jax.Array) -> jax.Array:
        mask = jnp.asarray(mask, bool)
        segments = self._repair_segments()
        keys = jax.random.split(key, max(len(segments), 1))
        pieces = []
        for (offset, length), segment_key in zip(segments, keys):
            piece = mask[offset: offset + length]
            needed = min(self.hparams.min_active, length) - jnp.sum(piece)

            # Switch on the `needed` off bits with the highest random priority.
            priority = jnp.where(piece, -jnp.inf, jax.random.uniform(segment_key, (length,)))
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
        qk_dims, vo_dims = [], []
        for site, (qk, vo) in zip(self.sites, self._row_keeps(mask, np)):
            attention = dict(params[site.path[0]][site.path[1]])
            for name, keep in (("q_proj", qk), ("k_proj", qk), ("v_proj", vo)):
                attention[name] = {"kernel": attention[name]["kernel"][:, keep], "bias": attention[name]["bias"][keep]}
            attention["out_proj"] = {"kernel": attention["out_proj"]["kernel"][vo, :],
                                     "bias": attention["out_proj"]["bias"]}
            params[site.path[0]] = {**params[site.path[0]], site.path[1]: attention}

            # Heads without value/output rows vanish together with their query/key rows.
            qk_per_head = np.bincount(_head_of_rows(site.qk_dims)[qk], minlength=site.heads)
            vo_per_head = np.bincount(_head_of_rows(site.vo_dims)[vo], minlength=site.heads)
            alive = vo_per_head > 0
            qk_dims.append(tuple(int(w) for w in qk_per_head[alive]))
            vo_dims.append(tuple(int(w) for w in vo_per_head[alive]))

        return M2M100(self._compacted_config(qk_dims, vo_dims)), {"params": jax.tree.map(jnp.asarray, params)}

    def _compacted_config(self, qk_dims, vo_dims) -> M2M100Config:
        c = self.hparams
        heads = [len(dims) for dims in vo_dims]
        n_encoder = c.encoder_layers
        full_width = all(w == head_dim for dims, (_, head_dim) in zip(qk_dims + vo_dims, c.site_heads() * 2)
                         for w in dims)
        return dataclasses.replace(
            c,
            encoder_heads=tuple(heads[:n_encoder]),
            decoder_self_heads=tuple(heads[n_encoder::2]),
            decoder_cross_heads=tuple(heads[n_encoder + 1::2]),
            # Full-width heads keep None, so head masks still apply to the compacted model.
            qk_dims=None if full_width else tuple(qk_dims),
            vo_dims=None if full_width else tuple(vo_dims),
        )


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
