"""ResNet-18 as a masked model whose masks are real channel pruning.

The network is torchvision's ResNet-18 (BasicBlocks, two per stage, stage widths
64·w, 128·w, 256·w, 512·w) with two stems: `"imagenet"` (7×7 stride-2 conv, 3×3
stride-2 max pool) and `"cifar"` (3×3 stride-1 conv, no pool). Inputs are
`f32[B, H, W, C]` (NHWC), kernels HWIO, and convolutions use torchvision's
explicit paddings, so tiny inputs such as 8×8 digits work (stage 4 then runs at 1×1).

Mask groups, in bit order per stage s = 1..4:

- `layer{s}.residual`: the channels of the stage's residual stream, one group
  per channel (or per g channels) shared by every layer that writes or reads the
  stream: the stem (s = 1) or the first block's downsample branch, every block's
  `conv2`/`bn2` output and the next stage's inputs (or the classifier for s = 4).
  With `residual="unmasked"` these groups do not exist and the stream keeps its
  full width.
- `layer{s}.{b}.conv1`: the inner channels of block b, between `conv1` and `conv2`.

Gates multiply activations after BatchNorm and ReLU: after the stem (and its
pool), after `relu(bn1(conv1(x)))` in every block, and after every block's
output `relu(bn2(conv2(·)) + shortcut)`. A pruned channel is therefore exactly
zero wherever a later layer reads it, which is what removing its input weights
does, and no layer's surviving channels depend on a pruned one. That holds for
running statistics, for statistics of the batch (BatchNorm normalizes each
channel on its own) and in training mode. A kernel zeroed in front of BatchNorm
would not prune: BatchNorm would emit its bias as a constant.

`compact` slices kernels on both sides, BatchNorm scales, biases and running
statistics, and the classifier rows, and returns a model whose configuration
stores the per-layer widths.
"""

from __future__ import annotations

import dataclasses
import math
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sosjax.models import initializers
from sosjax.models.base import MaskedModel
from sosjax.models.groups import GroupLayout
from sosjax.models.registry import register

#: Stage base widths of ResNet-18 before the width multiplier.
BASE_WIDTHS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2
STAGE_STRIDES = (1, 2, 2, 2)

#: BatchNorm epsilon and running-average momentum as in torch.nn.BatchNorm2d
#: (new = (1 - 0.1)·old + 0.1·batch). Running variances use the biased batch
#: variance, unlike torch's unbiased update.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

_STEMS = ("cifar", "imagenet")
_RESIDUAL_MODES = ("shared", "unmasked")
_BATCH_STATS_MODES = ("running", "batch")


def _block_keys():
    """Yield `(stage index, block index, "layer{s}", "block{b}")` in network order."""
    for s in range(len(BASE_WIDTHS)):
        for b in range(BLOCKS_PER_STAGE):
            yield s, b, f"layer{s + 1}", f"block{b}"


def _conv(x, kernel, stride, padding):
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


def _batch_norm(x, params, stats, mode):
    """Normalize `x: f32[B, H, W, C]` per channel; return `(y, new_stats or None)`.

    `mode`: "running" uses `stats`; "batch" uses this batch's statistics and
    returns no update; "train" uses this batch's statistics and returns the
    updated running averages.
    """
    if mode == "running":
        mean, var = stats["mean"], stats["var"]
    else:
        mean = jnp.mean(x, axis=(0, 1, 2))
        var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
    y = (x - mean) * lax.rsqrt(var + BN_EPSILON) * params["scale"] + params["bias"]

    new_stats = None
    if mode == "train":
        new_stats = {
            "mean": BN_MOMENTUM * stats["mean"] + (1.0 - BN_MOMENTUM) * mean,
            "var": BN_MOMENTUM * stats["var"] + (1.0 - BN_MOMENTUM) * var,
        }
    return y, new_stats


def _bn_shapes(channels):
    return {"scale": (channels,), "bias": (channels,)}


def _bn_subtrees(params):
    """Keep only the BatchNorm entries of a params tree (those with a `scale`)."""
    out = {}
    for name, node in params.items():
        if isinstance(node, dict) and "scale" in node:
            out[name] = node
        elif isinstance(node, dict) and "kernel" not in node:
            out[name] = _bn_subtrees(node)
    return out


def _gate(x, gate):
    return x if gate is None else x * gate


def _max_pool(x):
    return lax.reduce_window(
        x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), ((0, 0), (1, 1), (1, 1), (0, 0))
    )


@dataclasses.dataclass(frozen=True)
class ResNet18(MaskedModel):
    """A masked ResNet-18 with explicit per-layer widths; build it with `resnet18`.

    Attributes:
      num_classes: classifier outputs C.
      stem: `"cifar"` or `"imagenet"`.
      in_channels: input channels.
      residual_widths: channels of the four residual streams.
      inner_widths: inner channels of the eight blocks, in network order.
      granularity: units per mask bit.
      min_active: groups that `repair` keeps on in every masked layer.
      residual: `"shared"` (stream channels are mask groups) or `"unmasked"`.
      width: the width multiplier the widths came from (recorded in `config`).
    """

    num_classes: int
    stem: str
    in_channels: int
    residual_widths: tuple[int, ...]
    inner_widths: tuple[int, ...]
    granularity: int = 1
    min_active: int = 1
    residual: str = "shared"
    width: float = 1.0
    layout: GroupLayout = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.stem not in _STEMS:
            raise ValueError(f"stem must be one of {_STEMS}, got {self.stem!r}.")
        if self.residual not in _RESIDUAL_MODES:
            raise ValueError(f"residual must be one of {_RESIDUAL_MODES}, got {self.residual!r}.")
        if len(self.residual_widths) != 4 or len(self.inner_widths) != 4 * BLOCKS_PER_STAGE:
            raise ValueError(
                f"Expected 4 residual widths and 8 inner widths, got {self.residual_widths} "
                f"and {self.inner_widths}."
            )
        if self.min_active < 1:
            raise ValueError(f"min_active must be at least 1, got {self.min_active}.")

        layers = []
        for s, b, stage, block in _block_keys():
            if b == 0 and self.residual == "shared":
                layers.append((f"{stage}.residual", self.residual_widths[s]))
            layers.append((f"{stage}.{b}.conv1", self.inner_widths[s * BLOCKS_PER_STAGE + b]))
        object.__setattr__(self, "layout", GroupLayout.build(layers, self.granularity))

    # ----- interface attributes -------------------------------------------------

    @property
    def num_dims(self) -> int:
        return self.layout.num_dims

    @property
    def group_names(self) -> tuple[str, ...]:
        return self.layout.group_names()

    @property
    def has_batch_stats(self) -> bool:
        return True

    @property
    def config(self) -> dict:
        return {
            "name": "resnet18",
            "num_classes": self.num_classes,
            "stem": self.stem,
            "width": self.width,
            "in_channels": self.in_channels,
            "granularity": self.granularity,
            "min_active": self.min_active,
            "residual": self.residual,
            "widths": {"residual": list(self.residual_widths), "inner": list(self.inner_widths)},
        }

    # ----- per-layer gates and counts -------------------------------------------

    def _residual_layer(self, s):
        return self.layout.index(f"layer{s + 1}.residual") if self.residual == "shared" else None

    def _inner_layer(self, s, b):
        return self.layout.index(f"layer{s + 1}.{b}.conv1")

    def _gates(self, mask, dtype):
        """Unit gates `{"residual": [4], "inner": [8]}`, each `dtype[units]` or None."""
        residual = []
        for s in range(4):
            layer = self._residual_layer(s)
            residual.append(None if layer is None else self.layout.unit_mask(mask, layer, dtype))
        inner = [self.layout.unit_mask(mask, self._inner_layer(s, b), dtype) for s, b, _, _ in _block_keys()]
        return {"residual": residual, "inner": inner}

    def _counts(self, mask):
        """Kept units `{"residual": [4], "inner": [8]}` as ints or traced scalars."""
        residual = []
        for s in range(4):
            layer = self._residual_layer(s)
            residual.append(self.residual_widths[s] if layer is None else self.layout.active_units(mask, layer))
        inner = [self.layout.active_units(mask, self._inner_layer(s, b)) for s, b, _, _ in _block_keys()]
        return {"residual": residual, "inner": inner}

    def _stem_kernel_size(self):
        return 7 if self.stem == "imagenet" else 3

    def _count(self, mask, with_stats):
        counts = self._counts(mask)
        r, inner = counts["residual"], counts["inner"]

        # BatchNorm has a scale and a bias per channel, plus a running mean and variance when stored.
        per_bn_channel = 4 if with_stats else 2
        k = self._stem_kernel_size()
        total = k * k * self.in_channels * r[0] + per_bn_channel * r[0]
        for s, b, _, _ in _block_keys():
            c_in = r[s - 1] if (b == 0 and s > 0) else r[s]
            c_mid = inner[s * BLOCKS_PER_STAGE + b]
            total = total + 9 * c_in * c_mid + per_bn_channel * c_mid
            total = total + 9 * c_mid * r[s] + per_bn_channel * r[s]
            if b == 0 and s > 0:
                total = total + c_in * r[s] + per_bn_channel * r[s]
        return total + r[3] * self.num_classes + self.num_classes

    def num_params(self, mask=None):
        return self._count(mask, with_stats=False)

    def num_stored(self, mask=None):
        return self._count(mask, with_stats=True)

    # ----- variables -------------------------------------------------------------

    def param_shapes(self) -> dict:
        """Return the shape of every parameter, a pytree shaped like `variables["params"]`."""
        r = self.residual_widths
        k = self._stem_kernel_size()
        shapes = {"stem": {"conv": {"kernel": (k, k, self.in_channels, r[0])}, "bn": _bn_shapes(r[0])}}
        for s, b, stage, block in _block_keys():
            c_in = r[s - 1] if (b == 0 and s > 0) else r[s]
            c_mid = self.inner_widths[s * BLOCKS_PER_STAGE + b]
            p = {
                "conv1": {"kernel": (3, 3, c_in, c_mid)},
                "bn1": _bn_shapes(c_mid),
                "conv2": {"kernel": (3, 3, c_mid, r[s])},
                "bn2": _bn_shapes(r[s]),
            }
            if b == 0 and s > 0:
                p["downsample_conv"] = {"kernel": (1, 1, c_in, r[s])}
                p["downsample_bn"] = _bn_shapes(r[s])
            shapes.setdefault(stage, {})[block] = p
        shapes["fc"] = {"kernel": (r[3], self.num_classes), "bias": (self.num_classes,)}
        return shapes

    def init(self, key, example_inputs):
        """Initialize as torchvision does: He-normal (fan-out) convs, BatchNorm scale 1
        and bias 0 with running mean 0 and variance 1, classifier uniform in
        ±1/sqrt(fan-in)."""
        example_inputs = jnp.asarray(example_inputs)
        if example_inputs.ndim != 4 or example_inputs.shape[-1] != self.in_channels:
            raise ValueError(
                f"Expected inputs f32[B, H, W, {self.in_channels}], got shape {example_inputs.shape}."
            )
        shapes = self.param_shapes()
        k_conv, k_fc = jax.random.split(key)
        normal = initializers.standard_normal(k_conv, shapes)
        fc = initializers.uniform(k_fc, shapes["fc"])

        def init_leaf(path, shape, draw):
            names = [p.key for p in path]
            if names[0] == "fc":
                return fc[names[1]] / math.sqrt(self.residual_widths[3])
            if names[-1] == "kernel":
                # He normal with fan-out, as torchvision's kaiming_normal_(mode="fan_out").
                return draw * math.sqrt(2.0 / (shape[0] * shape[1] * shape[3]))
            return np.ones(shape, np.float32) if names[-1] == "scale" else np.zeros(shape, np.float32)

        params = jax.tree_util.tree_map_with_path(init_leaf, shapes, normal, is_leaf=initializers.is_shape)
        batch_stats = jax.tree.map(
            lambda bn: {"mean": np.zeros_like(bn["scale"]), "var": np.ones_like(bn["scale"])},
            _bn_subtrees(params),
            is_leaf=lambda node: isinstance(node, dict) and "scale" in node,
        )
        to_jax = lambda tree: jax.tree.map(jnp.asarray, tree)
        return {"params": to_jax(params), "batch_stats": to_jax(batch_stats)}

    # ----- forward pass ----------------------------------------------------------

    def apply(self, variables, inputs, mask=None, *, train=False, batch_stats="running"):
        """Return logits `f32[B, num_classes]` for `inputs: f32[B, H, W, C]`.

        See `MaskedModel.apply`. With `train=True` BatchNorm uses this batch's
        statistics and the second output is `{"batch_stats": updated}`.
        """
        if batch_stats not in _BATCH_STATS_MODES:
            raise ValueError(f"batch_stats must be one of {_BATCH_STATS_MODES}, got {batch_stats!r}.")
        mode = "train" if train else batch_stats
        params, stats = variables["params"], variables["batch_stats"]
        x = jnp.asarray(inputs)
        gates = self._gates(mask, x.dtype)
        new_stats = {}

        # Stem: conv, BatchNorm, ReLU (and max pool), then the stage-1 stream gate.
        stride, pad = (2, 3) if self.stem == "imagenet" else (1, 1)
        x = _conv(x, params["stem"]["conv"]["kernel"], stride, pad)
        x, stem_stats = self._bn(x, params["stem"], stats["stem"], "bn", mode)
        new_stats["stem"] = {"bn": stem_stats}
        x = jax.nn.relu(x)
        if self.stem == "imagenet":
            x = _max_pool(x)
        x = _gate(x, gates["residual"][0])

        for s, b, stage, block in _block_keys():
            p, st = params[stage][block], stats[stage][block]
            block_stats = {}
            stride = STAGE_STRIDES[s] if b == 0 else 1

            y = _conv(x, p["conv1"]["kernel"], stride, 1)
            y, block_stats["bn1"] = self._bn(y, p, st, "bn1", mode)
            y = _gate(jax.nn.relu(y), gates["inner"][s * BLOCKS_PER_STAGE + b])
            y = _conv(y, p["conv2"]["kernel"], 1, 1)
            y, block_stats["bn2"] = self._bn(y, p, st, "bn2", mode)

            shortcut = x
            if "downsample_conv" in p:
                shortcut = _conv(x, p["downsample_conv"]["kernel"], stride, 0)
                shortcut, block_stats["downsample_bn"] = self._bn(shortcut, p, st, "downsample_bn", mode)
            x = _gate(jax.nn.relu(y + shortcut), gates["residual"][s])
            new_stats.setdefault(stage, {})[block] = block_stats

        x = jnp.mean(x, axis=(1, 2))
        logits = x @ params["fc"]["kernel"] + params["fc"]["bias"]
        if train:
            return logits, {"batch_stats": new_stats}
        return logits

    @staticmethod
    def _bn(x, params, stats, name, mode):
        return _batch_norm(x, params[name], stats[name], mode)

    # ----- masks -----------------------------------------------------------------

    def param_mask(self, mask):
        """Return 1.0/0.0 per parameter entry, shaped like `variables["params"]`."""
        params_shape = self.param_shapes()
        gates = self._gates(mask, jnp.float32)

        def ones(n):
            return jnp.ones((n,), jnp.float32)

        r = [g if g is not None else ones(w) for g, w in zip(gates["residual"], self.residual_widths)]
        inner = [g if g is not None else ones(w) for g, w in zip(gates["inner"], self.inner_widths)]

        def conv(shape, g_in, g_out):
            return {"kernel": jnp.broadcast_to(g_in[None, None, :, None] * g_out[None, None, None, :], shape)}

        def bn(g):
            return {"scale": g, "bias": g}

        in_ones = ones(self.in_channels)
        out = {"stem": {"conv": conv(params_shape["stem"]["conv"]["kernel"], in_ones, r[0]), "bn": bn(r[0])}}
        for s, b, stage, block in _block_keys():
            shapes = params_shape[stage][block]
            g_in = r[s - 1] if (b == 0 and s > 0) else r[s]
            g_mid = inner[s * BLOCKS_PER_STAGE + b]
            p = {
                "conv1": conv(shapes["conv1"]["kernel"], g_in, g_mid),
                "bn1": bn(g_mid),
                "conv2": conv(shapes["conv2"]["kernel"], g_mid, r[s]),
                "bn2": bn(r[s]),
            }
            if b == 0 and s > 0:
                p["downsample_conv"] = conv(shapes["downsample_conv"]["kernel"], g_in, r[s])
                p["downsample_bn"] = bn(r[s])
            out.setdefault(stage, {})[block] = p
        out["fc"] = {
            "kernel": jnp.broadcast_to(r[3][:, None], (self.residual_widths[3], self.num_classes)),
            "bias": ones(self.num_classes),
        }
        return out

    def repair(self, key, mask):
        """Keep at least `min_active` groups on in every masked layer.

        With `min_active ≥ 1` every layer keeps a channel, so no group is ever made
        redundant by others and repair only switches bits on.
        """
        return self.layout.repair(key, mask, self.min_active)

    # ----- compaction ------------------------------------------------------------

    def compact(self, variables, mask):
        """Slice every pruned channel out of the variables; see `MaskedModel.compact`."""
        mask = None if mask is None else np.asarray(mask, dtype=bool)
        if mask is not None and mask.shape != (self.num_dims,):
            raise ValueError(f"Expected a mask of shape ({self.num_dims},), got {mask.shape}.")
        params = jax.tree.map(np.asarray, variables["params"])
        stats = jax.tree.map(np.asarray, variables["batch_stats"])

        r_keep = []
        for s in range(4):
            layer = self._residual_layer(s)
            r_keep.append(np.arange(self.residual_widths[s]) if layer is None else self.layout.kept_units(mask, layer))
        inner_keep = [self.layout.kept_units(mask, self._inner_layer(s, b)) for s, b, _, _ in _block_keys()]

        def conv(p, keep_in, keep_out):
            return {"kernel": p["kernel"][:, :, keep_in][:, :, :, keep_out]}

        def channels(p, keep):
            return {name: value[keep] for name, value in p.items()}

        in_all = np.arange(self.in_channels)
        new_params = {
            "stem": {"conv": conv(params["stem"]["conv"], in_all, r_keep[0]), "bn": channels(params["stem"]["bn"], r_keep[0])}
        }
        new_stats = {"stem": {"bn": channels(stats["stem"]["bn"], r_keep[0])}}
        for s, b, stage, block in _block_keys():
            p, st = params[stage][block], stats[stage][block]
            keep_in = r_keep[s - 1] if (b == 0 and s > 0) else r_keep[s]
            keep_mid = inner_keep[s * BLOCKS_PER_STAGE + b]
            new_p = {
                "conv1": conv(p["conv1"], keep_in, keep_mid),
                "bn1": channels(p["bn1"], keep_mid),
                "conv2": conv(p["conv2"], keep_mid, r_keep[s]),
                "bn2": channels(p["bn2"], r_keep[s]),
            }
            new_st = {"bn1": channels(st["bn1"], keep_mid), "bn2": channels(st["bn2"], r_keep[s])}
            if b == 0 and s > 0:
                new_p["downsample_conv"] = conv(p["downsample_conv"], keep_in, r_keep[s])
                new_p["downsample_bn"] = channels(p["downsample_bn"], r_keep[s])
                new_st["downsample_bn"] = channels(st["downsample_bn"], r_keep[s])
            new_params.setdefault(stage, {})[block] = new_p
            new_stats.setdefault(stage, {})[block] = new_st
        new_params["fc"] = {"kernel": params["fc"]["kernel"][r_keep[3]], "bias": params["fc"]["bias"]}

        small = dataclasses.replace(
            self,
            residual_widths=tuple(len(k) for k in r_keep),
            inner_widths=tuple(len(k) for k in inner_keep),
        )
        to_jax = lambda tree: jax.tree.map(jnp.asarray, tree)
        return small, {"params": to_jax(new_params), "batch_stats": to_jax(new_stats)}


def stage_widths(width: float) -> tuple[int, ...]:
    """Return the four stage widths `max(1, round(base · width))`."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}.")
    return tuple(max(1, int(round(base * width))) for base in BASE_WIDTHS)


@register("resnet18")
def resnet18(
    num_classes: int,
    stem: str = "cifar",
    width: float = 1.0,
    in_channels: int = 3,
    granularity: int = 1,
    min_active: int = 1,
    residual: str = "shared",
    widths: dict | None = None,
) -> ResNet18:
    """Build a masked ResNet-18.

    Args:
      num_classes: classifier outputs.
      stem: `"cifar"` (3×3 stride-1 conv, no pool) or `"imagenet"` (7×7 stride-2
        conv and 3×3 stride-2 max pool).
      width: multiplier on the stage widths 64, 128, 256, 512.
      in_channels: input channels (1 for grey images).
      granularity: adjacent channels per mask bit.
      min_active: groups `repair` keeps on in every masked layer (at least 1).
      residual: `"shared"` makes each residual-stream channel of a stage one
        group shared by all layers on that stream; `"unmasked"` keeps the streams
        at full width and masks only the blocks' inner channels.
      widths: explicit `{"residual": [4 ints], "inner": [8 ints]}`, as stored in
        the configuration of a compacted model; overrides `width`.
    """
    if widths is None:
        residual_widths = stage_widths(width)
        inner_widths = tuple(w for w in residual_widths for _ in range(BLOCKS_PER_STAGE))
    else:
        residual_widths = tuple(int(w) for w in widths["residual"])
        inner_widths = tuple(int(w) for w in widths["inner"])
    return ResNet18(
        num_classes=int(num_classes),
        stem=stem,
        in_channels=int(in_channels),
        residual_widths=residual_widths,
        inner_widths=inner_widths,
        granularity=int(granularity),
        min_active=int(min_active),
        residual=residual,
        width=float(width),
    )
