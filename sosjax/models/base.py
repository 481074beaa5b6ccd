"""The masked-model interface that every sosjax model implements.

A masked model is a network whose prunable structure (conv channels, LSTM
hidden units, attention heads) is split into D groups. A mask `bool[D]` switches
groups off, and a masked forward pass computes exactly what the physically
smaller network returned by `compact` computes. Evolution, fitness, fine-tuning
and export only talk to models through this interface.

Variables follow Flax conventions: a dict with a `"params"` collection and, for
models with BatchNorm, a `"batch_stats"` collection.
"""

from __future__ import annotations

import abc
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

Variables = Mapping[str, Any]


class MaskedModel(abc.ABC):
    """A network with D prunable groups, its masked forward pass and compaction.

    Implementations are immutable: every attribute is fixed at construction, so
    a model can be closed over by jitted functions without retracing surprises.
    """

    #: Number of mask bits D.
    num_dims: int

    #: Name of each group, `len == num_dims`, for example `"layer2.0.conv1[12:16]"`.
    group_names: tuple[str, ...]

    #: Whether the model has BatchNorm statistics (a `"batch_stats"` collection).
    has_batch_stats: bool

    @property
    @abc.abstractmethod
    def config(self) -> dict:
        """JSON-serializable architecture description; `build_model(config)` rebuilds it."""

    @abc.abstractmethod
    def init(self, key: jax.Array, example_inputs: Any) -> dict:
        """Initialize variables for inputs shaped like `example_inputs` (with batch axis)."""

    @abc.abstractmethod
    def apply(
        self,
        variables: Variables,
        inputs: Any,
        mask: jax.Array | None = None,
        *,
        train: bool = False,
        batch_stats: str = "running",
    ) -> Any:
        """Run the masked forward pass.

        Args:
          variables: the model's variables.
          inputs: a batch of inputs, leading axis B.
          mask: `bool[D]`, True keeps a group; None keeps everything. The call
            must vmap over a leading population axis of `mask` (and of `inputs`).
          train: if True, return `(outputs, updates)` where `updates` holds the
            new values of mutable collections (`{"batch_stats": ...}`, or `{}`
            for models without BatchNorm); dropout is not used.
          batch_stats: with `train=False`, `"running"` normalizes with the stored
            running statistics, `"batch"` with statistics of this batch (adaptive
            BatchNorm for fitness evaluation of pruned candidates). Ignored by
            models without BatchNorm.

        Returns:
          The outputs (logits `f32[B, C]`, regression values `f32[B, O]`, ...),
          or `(outputs, updates)` when `train` is True.
        """

    @abc.abstractmethod
    def num_params(self, mask: jax.Array | np.ndarray | None = None) -> Any:
        """Count the trainable parameters of the compacted model for `mask`.

        Exact, biases and BatchNorm scales included. Traceable: with a jax array
        it returns a jax scalar so the size objective can be computed under jit;
        with a numpy array or None it returns a Python int.
        """

    @abc.abstractmethod
    def num_stored(self, mask: jax.Array | np.ndarray | None = None) -> Any:
        """Count every stored number of the compacted model: parameters plus
        non-trainable state such as BatchNorm running statistics. Traceable like
        `num_params`. Bytes at a dtype are this count times the dtype's size."""

    @abc.abstractmethod
    def param_mask(self, mask: jax.Array | None) -> Any:
        """Return a pytree shaped like `variables["params"]` holding 1.0 where an
        entry survives compaction for `mask` and 0.0 where it is pruned.

        `sum of param_mask(mask)` equals `num_params(mask)`. Fine-tuning multiplies
        parameters and updates by it so that pruned entries stay at zero.
        """

    @abc.abstractmethod
    def repair(self, key: jax.Array, mask: jax.Array) -> jax.Array:
        """Make `mask: bool[D]` valid; jittable and vmappable.

        Every layer keeps at least `min_active` groups: missing ones are switched
        back on at random positions chosen with `key`. Groups made redundant by
        others are switched off consistently. A valid mask is returned unchanged.
        """

    @abc.abstractmethod
    def compact(self, variables: Variables, mask: np.ndarray | jax.Array | None) -> tuple["MaskedModel", dict]:
        """Return a smaller model and its variables in which every pruned group
        is physically removed.

        For every input, `small.apply(small_vars, x)` equals
        `self.apply(variables, x, mask)` (float32, atol about 1e-5), and
        `small.num_params()` equals `self.num_params(mask)`.
        """

    def num_bytes(self, mask: Any = None, dtype: Any = jnp.float32) -> int:
        """Bytes of the compacted model's stored numbers at `dtype`."""
        return int(self.num_stored(None if mask is None else np.asarray(mask))) * np.dtype(dtype).itemsize
