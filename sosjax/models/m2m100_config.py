"""The M2M100 architecture description: Hugging Face `M2M100Config` fields plus head counts."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

# Activations that transformers' `ACT2FN` maps these names to, written for jax.
ACTIVATIONS = ("relu", "gelu", "gelu_new", "gelu_pytorch_tanh", "silu", "swish", "tanh")


@dataclasses.dataclass(frozen=True)
class M2M100Config:
    """Architecture of an M2M100 encoder-decoder.

    The first fields mirror Hugging Face's `M2M100Config` (transformers 5.25). The
    last ones describe a pruned model (per-layer head counts and, after row
    pruning, per-head widths, which `compact` lowers) and its mask groups.
    `encoder_attention_heads` and `decoder_attention_heads` stay those of the
    unpruned model because they fix the width of one head (`d_model // heads`)
    and the score scale `head_dim ** -0.5`. Training
    settings of the Hugging Face configuration (dropout, layerdrop, init) have no
    field because sosjax never uses dropout.
    """

    vocab_size: int = 128112
    d_model: int = 1024
    encoder_layers: int = 12
    decoder_layers: int = 12
    encoder_attention_heads: int = 16
    decoder_attention_heads: int = 16
    encoder_ffn_dim: int = 4096
    decoder_ffn_dim: int = 4096
    activation_function: str = "relu"
    scale_embedding: bool = True
    max_position_embeddings: int = 1024
    pad_token_id: int = 1
    bos_token_id: int = 0
    eos_token_id: int = 2
    decoder_start_token_id: int = 2
    tie_word_embeddings: bool = True
    init_std: float = 0.02

    #: Heads of each encoder self-attention, `len == encoder_layers`; None: all
    #: `encoder_attention_heads`.
    encoder_heads: tuple[int, ...] | None = None
    #: Heads of each decoder self-attention; None: all `decoder_attention_heads`.
    decoder_self_heads: tuple[int, ...] | None = None
    #: Heads of each decoder cross-attention; None: all `decoder_attention_heads`.
    decoder_cross_heads: tuple[int, ...] | None = None
    #: Kept query/key widths of every head, one tuple per attention layer in
    #: mask order (encoder layers, then decoder layer 0 self, 0 cross, 1 self,
    #: ...); None: every head is `head_dim` wide. Set by `compact` in row mode.
    qk_dims: tuple[tuple[int, ...], ...] | None = None
    #: Kept value/output widths of every head, laid out like `qk_dims`.
    vo_dims: tuple[tuple[int, ...], ...] | None = None
    #: What one mask bit switches off: "heads" (whole heads) or "rows" (rows of
    #: the q/k or v/o projections inside one head).
    mask_unit: str = "heads"
    #: Adjacent heads of one attention layer that share one mask bit ("heads").
    heads_per_group: int = 1
    #: Adjacent rows of one head that share one mask bit ("rows").
    rows_per_group: int = 1
    #: Groups that `repair` keeps switched on in every attention layer (in
    #: row mode: among its q/k groups and among its v/o groups).
    min_active: int = 1

    def __post_init__(self):
        for name in ("encoder_heads", "decoder_self_heads", "decoder_cross_heads"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(int(h) for h in value))
        for name in ("qk_dims", "vo_dims"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(tuple(int(w) for w in layer) for layer in value))

        if self.activation_function not in ACTIVATIONS:
            raise ValueError(
                f"Unsupported activation_function {self.activation_function!r}; expected one of {ACTIVATIONS}."
            )
        for name in ("encoder_attention_heads", "decoder_attention_heads"):
            if self.d_model % getattr(self, name):
                raise ValueError(f"d_model ({self.d_model}) must be divisible by {name} ({getattr(self, name)}).")

        expected_lengths = {
            "encoder_heads": self.encoder_layers,
            "decoder_self_heads": self.decoder_layers,
            "decoder_cross_heads": self.decoder_layers,
        }
        for name, length in expected_lengths.items():
            heads = self.layer_heads(name)
            if len(heads) != length:
                raise ValueError(f"{name} has {len(heads)} entries but the model has {length} layers.")
            if any(h < 0 or h % self.heads_per_group for h in heads):
                raise ValueError(
                    f"Every entry of {name} must be a non-negative multiple of heads_per_group "
                    f"({self.heads_per_group}); got {heads}."
                )
        self._check_mask_unit()

    def _check_mask_unit(self):
        if self.mask_unit not in ("heads", "rows"):
            raise ValueError(f"Invalid mask_unit {self.mask_unit!r}; expected 'heads' or 'rows'.")
        if self.mask_unit == "heads" and (self.qk_dims is not None or self.vo_dims is not None):
            raise ValueError(
                "mask_unit='heads' needs heads of full width, but qk_dims or vo_dims is set; "
                "mask this model with mask_unit='rows'."
            )
        if self.mask_unit == "rows":
            for name in ("encoder_head_dim", "decoder_head_dim"):
                if getattr(self, name) % self.rows_per_group:
                    raise ValueError(
                        f"rows_per_group ({self.rows_per_group}) must divide {name} ({getattr(self, name)}), "
                        "so that no mask group spans two heads."
                    )

        heads = self.site_heads()
        for name in ("qk_dims", "vo_dims"):
            dims = getattr(self, name)
            if dims is None:
                continue
            if [len(layer) for layer in dims] != [h for h, _ in heads]:
                raise ValueError(
                    f"{name} must have one entry per head of every attention layer "
                    f"({[h for h, _ in heads]} heads); got {[len(layer) for layer in dims]}."
                )
            for layer, (_, head_dim) in zip(dims, heads):
                if any(w < 0 or w > head_dim or w % self.rows_per_group for w in layer):
                    raise ValueError(
                        f"Every width in {name} must be a multiple of rows_per_group ({self.rows_per_group}) "
                        f"in [0, {head_dim}]; got {layer}."
                    )

    @property
    def encoder_head_dim(self) -> int:
        return self.d_model // self.encoder_attention_heads

    @property
    def decoder_head_dim(self) -> int:
        return self.d_model // self.decoder_attention_heads

    def layer_heads(self, name: str) -> tuple[int, ...]:
        """Head counts of the attention layers called `name` (`"encoder_heads"`, ...)."""
        value = getattr(self, name)
        if value is not None:
            return value
        if name == "encoder_heads":
            return (self.encoder_attention_heads,) * self.encoder_layers
        return (self.decoder_attention_heads,) * self.decoder_layers

    def site_heads(self) -> list[tuple[int, int]]:
        """`(heads, head_dim)` of every attention layer, in mask order."""
        sites = [(h, self.encoder_head_dim) for h in self.layer_heads("encoder_heads")]
        for self_heads, cross_heads in zip(self.layer_heads("decoder_self_heads"), self.layer_heads("decoder_cross_heads")):
            sites += [(self_heads, self.decoder_head_dim), (cross_heads, self.decoder_head_dim)]
        return sites

    def site_dims(self) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """`(qk widths, vo widths)` per head of every attention layer, in mask order."""
        full = [((head_dim,) * heads,) * 2 for heads, head_dim in self.site_heads()]
        qk = self.qk_dims if self.qk_dims is not None else [q for q, _ in full]
        vo = self.vo_dims if self.vo_dims is not None else [v for _, v in full]
        return list(zip(qk, vo))

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        for name in ("encoder_heads", "decoder_self_heads", "decoder_cross_heads"):
            if out[name] is not None:
                out[name] = list(out[name])
        for name in ("qk_dims", "vo_dims"):
            if out[name] is not None:
                out[name] = [list(layer) for layer in out[name]]
        return out

    @classmethod
    def from_hf(cls, hf_config: Mapping[str, Any], **overrides) -> "M2M100Config":
        """Build from a Hugging Face `config.json` dictionary, ignoring training-only keys.

        `eos_token_id` given as a list keeps its first entry.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in hf_config.items() if k in fields}
        if isinstance(kwargs.get("eos_token_id"), (list, tuple)):
            kwargs["eos_token_id"] = kwargs["eos_token_id"][0]
        if kwargs.get("decoder_start_token_id") is None:
            kwargs["decoder_start_token_id"] = kwargs.get("eos_token_id", cls.eos_token_id)
        kwargs.update(overrides)
        return cls(**kwargs)
