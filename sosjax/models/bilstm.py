"""A stacked bidirectional LSTM regressor as a masked model.

Inputs are windows `f32[B, T, F]`. Layer l runs a forward and a backward LSTM
over the sequence; layer l+1 reads their concatenated hidden states
`[h_forward, h_backward]` at every step. The readout is a dense layer on the
top layer's concatenated hidden states at the last time step t = T-1, so the
forward direction has read the whole window and the backward direction has read
only `x[T-1]`, so the top backward direction's recurrent weights `W_hh` do not
affect the output (they still count as parameters).

Each direction of each layer has its own hidden size, so a compacted model can
keep different numbers of units per direction. Cell, per direction:

    z = x_t · W_ih + h_{t-1} · W_hh + b          (gate blocks i, f, g, o)
    c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g)
    h_t = σ(o) ⊙ tanh(c_t)

with one bias vector per direction (torch.nn.LSTM stores two that add up).

Mask groups: hidden units, named `layer{l}.forward` / `layer{l}.backward`. A
pruned unit's hidden state is multiplied by 0 at every step, so it feeds neither
the recurrence, the next layer nor the readout; its own gates and cell still run
but affect nothing. Compaction removes the unit's column in each of the four
gate blocks of `W_ih`, `W_hh` and `b`, its row of `W_hh`, its row of the next
layer's `W_ih` (or of the readout kernel), so the result is exact.
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

DIRECTIONS = ("forward", "backward")


def _run_direction(params, x, gate, reverse):
    """Run one LSTM direction over `x: f32[B, T, I]`; return hidden states `f32[B, T, H]`."""
    hidden = params["w_hh"].shape[0]
    batch = x.shape[0]

    # The input projection of all steps is one matmul; the scan only does the recurrence.
    z_inputs = jnp.einsum("bti,ig->tbg", x, params["w_ih"]) + params["bias"]

    def step(carry, z_t):
        h, c = carry
        z = z_t + h @ params["w_hh"]
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        if gate is not None:
            h = h * gate
        return (h, c), h

    init = (jnp.zeros((batch, hidden), x.dtype), jnp.zeros((batch, hidden), x.dtype))
    _, hs = lax.scan(step, init, z_inputs, reverse=reverse)
    return jnp.swapaxes(hs, 0, 1)


def _gate_columns(keep, hidden):
    """Columns of the four gate blocks `[i, f, g, o]` that belong to the kept units."""
    return np.concatenate([k * hidden + keep for k in range(4)])


@dataclasses.dataclass(frozen=True)
class BiLSTM(MaskedModel):
    """A masked stacked bidirectional LSTM with a dense readout; build it with `bilstm`.

    Attributes:
      input_features: F.
      hidden_sizes: `((forward, backward), ...)` units per layer and direction.
      outputs: O, width of the readout.
      granularity: hidden units per mask bit.
      min_active: groups `repair` keeps on in every direction of every layer.
    """

    input_features: int
    hidden_sizes: tuple[tuple[int, int], ...]
    outputs: int = 1
    granularity: int = 1
    min_active: int = 1
    layout: GroupLayout = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.min_active < 1:
            raise ValueError(f"min_active must be at least 1, got {self.min_active}.")
        if not self.hidden_sizes:
            raise ValueError("A BiLSTM needs at least one layer.")
        layers = [
            (f"layer{l}.{direction}", sizes[d])
            for l, sizes in enumerate(self.hidden_sizes)
            for d, direction in enumerate(DIRECTIONS)
        ]
        object.__setattr__(self, "layout", GroupLayout.build(layers, self.granularity))

    @property
    def num_dims(self) -> int:
        return self.layout.num_dims

    @property
    def group_names(self) -> tuple[str, ...]:
        return self.layout.group_names()

    @property
    def has_batch_stats(self) -> bool:
        return False

    @property
    def config(self) -> dict:
        return {
            "name": "bilstm",
            "input_features": self.input_features,
            "hidden": [list(sizes) for sizes in self.hidden_sizes],
            "layers": len(self.hidden_sizes),
            "outputs": self.outputs,
            "granularity": self.granularity,
            "min_active": self.min_active,
        }

    def _layer(self, l, direction):
        return self.layout.index(f"layer{l}.{direction}")

    # ----- counting ------------------------------------------------------------

    def num_params(self, mask=None):
        counts = [[self.layout.active_units(mask, self._layer(l, d)) for d in DIRECTIONS] for l in range(len(self.hidden_sizes))]
        total = 0
        inputs = self.input_features
        for forward, backward in counts:
            for h in (forward, backward):
                total = total + 4 * h * (inputs + h + 1)
            inputs = forward + backward
        return total + inputs * self.outputs + self.outputs

    def num_stored(self, mask=None):
        return self.num_params(mask)

    # ----- variables -----------------------------------------------------------

    def init(self, key, example_inputs):
        """Initialize every weight and bias uniformly in ±1/sqrt(H) as torch.nn.LSTM does,
        and the readout uniformly in ±1/sqrt(fan-in)."""
        example_inputs = jnp.asarray(example_inputs)
        if example_inputs.ndim != 3 or example_inputs.shape[-1] != self.input_features:
            raise ValueError(
                f"Expected inputs f32[B, T, {self.input_features}], got shape {example_inputs.shape}."
            )
        shapes = {}
        bounds = {}
        inputs = self.input_features
        for l, sizes in enumerate(self.hidden_sizes):
            shapes[f"layer{l}"] = {
                direction: {"w_ih": (inputs, 4 * h), "w_hh": (h, 4 * h), "bias": (4 * h,)}
                for direction, h in zip(DIRECTIONS, sizes)
            }
            bounds[f"layer{l}"] = {direction: 1.0 / math.sqrt(h) for direction, h in zip(DIRECTIONS, sizes)}
            inputs = sum(sizes)
        shapes["head"] = {"kernel": (inputs, self.outputs), "bias": (self.outputs,)}
        bounds["head"] = 1.0 / math.sqrt(inputs)

        draws = initializers.uniform(key, shapes)
        params = {}
        for name, node in draws.items():
            if name == "head":
                params[name] = {k: jnp.asarray(v * bounds[name]) for k, v in node.items()}
            else:
                params[name] = {
                    direction: {k: jnp.asarray(v * bounds[name][direction]) for k, v in weights.items()}
                    for direction, weights in node.items()
                }
        return {"params": params}

    # ----- forward pass --------------------------------------------------------

    def apply(self, variables, inputs, mask=None, *, train=False, batch_stats="running"):
        """Return `f32[B, outputs]` for windows `f32[B, T, F]`; see `MaskedModel.apply`.

        `batch_stats` is ignored (no BatchNorm); with `train=True` the second
        output is `{}`.
        """
        params = variables["params"]
        x = jnp.asarray(inputs)
        for l in range(len(self.hidden_sizes)):
            directions = []
            for direction in DIRECTIONS:
                gate = self.layout.unit_mask(mask, self._layer(l, direction), x.dtype)
                directions.append(_run_direction(params[f"layer{l}"][direction], x, gate, reverse=direction == "backward"))
            x = jnp.concatenate(directions, axis=-1)

        outputs = x[:, -1, :] @ params["head"]["kernel"] + params["head"]["bias"]
        if train:
            return outputs, {}
        return outputs

    # ----- masks ---------------------------------------------------------------

    def param_mask(self, mask):
        """Return 1.0/0.0 per parameter entry, shaped like `variables["params"]`."""

        def gate(l, direction):
            g = self.layout.unit_mask(mask, self._layer(l, direction))
            return jnp.ones((self.hidden_sizes[l][DIRECTIONS.index(direction)],), jnp.float32) if g is None else g

        out = {}
        g_in = jnp.ones((self.input_features,), jnp.float32)
        for l in range(len(self.hidden_sizes)):
            layer = {}
            for direction in DIRECTIONS:
                g = gate(l, direction)
                g_cols = jnp.tile(g, 4)
                layer[direction] = {
                    "w_ih": g_in[:, None] * g_cols[None, :],
                    "w_hh": g[:, None] * g_cols[None, :],
                    "bias": g_cols,
                }
            out[f"layer{l}"] = layer
            g_in = jnp.concatenate([gate(l, d) for d in DIRECTIONS])
        out["head"] = {
            "kernel": jnp.broadcast_to(g_in[:, None], (g_in.shape[0], self.outputs)),
            "bias": jnp.ones((self.outputs,), jnp.float32),
        }
        return out

    def repair(self, key, mask):
        """Keep at least `min_active` units on in every direction of every layer.

        With `min_active ≥ 1` no unit is made redundant by others (every layer
        still reads a non-empty input), so repair only switches bits on.
        """
        return self.layout.repair(key, mask, self.min_active)

    # ----- compaction ----------------------------------------------------------

    def compact(self, variables, mask):
        """Remove every pruned unit from all matrices; see `MaskedModel.compact`."""
        mask = None if mask is None else np.asarray(mask, dtype=bool)
        if mask is not None and mask.shape != (self.num_dims,):
            raise ValueError(f"Expected a mask of shape ({self.num_dims},), got {mask.shape}.")
        params = jax.tree.map(np.asarray, variables["params"])

        new_params = {}
        new_sizes = []
        keep_in = np.arange(self.input_features)
        for l, sizes in enumerate(self.hidden_sizes):
            layer = {}
            kept = []
            for direction, h in zip(DIRECTIONS, sizes):
                p = params[f"layer{l}"][direction]
                keep = self.layout.kept_units(mask, self._layer(l, direction))
                cols = _gate_columns(keep, h)
                layer[direction] = {
                    "w_ih": p["w_ih"][keep_in][:, cols],
                    "w_hh": p["w_hh"][keep][:, cols],
                    "bias": p["bias"][cols],
                }
                kept.append(keep)
            new_params[f"layer{l}"] = layer
            new_sizes.append((len(kept[0]), len(kept[1])))

            # The next layer reads [h_forward, h_backward]: backward rows start at H_forward.
            keep_in = np.concatenate([kept[0], sizes[0] + kept[1]])
        new_params["head"] = {"kernel": params["head"]["kernel"][keep_in], "bias": params["head"]["bias"]}

        small = dataclasses.replace(self, hidden_sizes=tuple(new_sizes))
        return small, {"params": jax.tree.map(jnp.asarray, new_params)}


@register("bilstm")
def bilstm(
    input_features: int,
    hidden: int | list = 128,
    layers: int = 2,
    outputs: int = 1,
    granularity: int = 1,
    min_active: int = 1,
) -> BiLSTM:
    """Build a masked stacked bidirectional LSTM.

    Args:
      input_features: features per time step F.
      hidden: units per direction, or per-layer `[[forward, backward], ...]`
        as stored in the configuration of a compacted model.
      layers: number of stacked bidirectional layers.
      outputs: width of the dense readout.
      granularity: adjacent hidden units per mask bit.
      min_active: groups `repair` keeps on in every direction of every layer.
    """
    if isinstance(hidden, int):
        hidden_sizes = tuple((int(hidden), int(hidden)) for _ in range(layers))
    else:
        hidden_sizes = tuple((int(f), int(b)) for f, b in hidden)
        if len(hidden_sizes) != layers:
            raise ValueError(f"hidden lists {len(hidden_sizes)} layers but layers={layers}.")
    return BiLSTM(
        input_features=int(input_features),
        hidden_sizes=hidden_sizes,
        outputs=int(outputs),
        granularity=int(granularity),
        min_active=int(min_active),
    )
