"""Mask groups: how the bits of a mask map onto the units of a model's layers.

A masked layer has `units` prunable units (conv output channels, LSTM hidden
units). With granularity g, adjacent units `[j·g, (j+1)·g)` share one bit; the
last group of a layer is shorter when g does not divide `units`. The bits of all
layers are laid out one layer after another, in the order the layers were given.

Counting helpers accept a jax array (traced, returns jax values), a numpy array
(returns Python ints) or None (nothing pruned), so the same code serves the size
objective under jit and exact bookkeeping in compaction.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class MaskedLayer:
    """One layer's slice of the mask: `units` units under bits `[offset, offset + num_groups)`."""

    name: str
    units: int
    offset: int
    num_groups: int


@dataclasses.dataclass(frozen=True)
class GroupLayout:
    """The layers of a model's mask, in bit order, at one granularity."""

    layers: tuple[MaskedLayer, ...]
    granularity: int

    @classmethod
    def build(cls, layers: Sequence[tuple[str, int]], granularity: int) -> "GroupLayout":
        """Lay out `(name, units)` layers one after another with g units per bit."""
        if granularity < 1:
            raise ValueError(f"granularity must be a positive integer, got {granularity}.")
        masked = []
        offset = 0
        for name, units in layers:
            if units < 1:
                raise ValueError(f"Layer {name!r} has {units} units; every masked layer needs at least one.")
            num_groups = -(-units // granularity)
            masked.append(MaskedLayer(name, int(units), offset, num_groups))
            offset += num_groups
        return cls(tuple(masked), int(granularity))

    @property
    def num_dims(self) -> int:
        last = self.layers[-1]
        return last.offset + last.num_groups

    def index(self, name: str) -> MaskedLayer:
        """Return the layer called `name`."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"No masked layer named {name!r}; layers are {[l.name for l in self.layers]}.")

    def group_names(self) -> tuple[str, ...]:
        """Name every bit as `layer[first_unit:end_unit]`."""
        names = []
        g = self.granularity
        for layer in self.layers:
            for j in range(layer.num_groups):
                names.append(f"{layer.name}[{j * g}:{min((j + 1) * g, layer.units)}]")
        return tuple(names)

    def group_sizes(self, layer: MaskedLayer) -> np.ndarray:
        """Units per bit of `layer`, `int[num_groups]`."""
        g = self.granularity
        sizes = np.full(layer.num_groups, g, dtype=np.int64)
        sizes[-1] = layer.units - g * (layer.num_groups - 1)
        return sizes

    def unit_to_bit(self, layer: MaskedLayer) -> np.ndarray:
        """Global bit index of every unit of `layer`, `int[units]`."""
        return layer.offset + np.arange(layer.units) // self.granularity

    def unit_mask(self, mask: jax.Array | None, layer: MaskedLayer, dtype: Any = jnp.float32) -> jax.Array | None:
        """Per-unit gate `dtype[units]` (1 keeps, 0 prunes), or None when nothing is pruned."""
        if mask is None:
            return None
        return jnp.asarray(mask)[self.unit_to_bit(layer)].astype(dtype)

    def active_units(self, mask: Any, layer: MaskedLayer) -> Any:
        """Units of `layer` kept by `mask`: a Python int for None or numpy masks, a jax
        int32 scalar for jax masks (traceable)."""
        if mask is None:
            return layer.units
        bits = mask[layer.offset : layer.offset + layer.num_groups]
        sizes = self.group_sizes(layer)
        if isinstance(mask, np.ndarray):
            return int(np.dot(bits.astype(np.int64), sizes))
        return jnp.dot(bits.astype(jnp.int32), jnp.asarray(sizes, dtype=jnp.int32))

    def kept_units(self, mask: Any, layer: MaskedLayer) -> np.ndarray:
        """Indices of the units of `layer` that `mask` keeps, ascending, `int[kept]`."""
        if mask is None:
            return np.arange(layer.units)
        keep = np.asarray(mask, dtype=bool)[self.unit_to_bit(layer)]
        return np.flatnonzero(keep)

    def repair(self, key: jax.Array, mask: jax.Array, min_active: int) -> jax.Array:
        """Switch random bits on until every layer has `min(min_active, num_groups)` on.

        Bits that are already on stay on, so a valid mask comes back unchanged.
        Jittable and vmappable: the loop over layers is static.
        """
        mask = jnp.asarray(mask, dtype=bool)
        if mask.shape != (self.num_dims,):
            raise ValueError(f"Expected a mask of shape ({self.num_dims},), got {mask.shape}.")
        priority = jax.random.uniform(key, (self.num_dims,))
        pieces = []
        for layer in self.layers:
            bits = mask[layer.offset : layer.offset + layer.num_groups]
            need = jnp.maximum(min(min_active, layer.num_groups) - jnp.sum(bits), 0)

            # Rank the off bits by a random priority; bits already on sort last.
            score = jnp.where(bits, -1.0, priority[layer.offset : layer.offset + layer.num_groups])
            rank = jnp.argsort(jnp.argsort(-score))
            pieces.append(bits | (rank < need))
        return jnp.concatenate(pieces)

    def layer_ids(self) -> np.ndarray:
        """Index of the layer each bit belongs to, `int[D]`."""
        ids = np.empty(self.num_dims, dtype=np.int64)
        for i, layer in enumerate(self.layers):
            ids[layer.offset : layer.offset + layer.num_groups] = i
        return ids
