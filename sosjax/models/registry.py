"""Rebuilding models from their saved configuration."""

from __future__ import annotations

from typing import Callable

from sosjax.models.base import MaskedModel

_BUILDERS: dict[str, Callable[..., MaskedModel]] = {}


def register(name: str):
    """Register `builder(**config_without_name) -> MaskedModel` under `name`."""

    def wrap(builder):
        _BUILDERS[name] = builder
        return builder

    return wrap


def build_model(config: dict) -> MaskedModel:
    """Rebuild a model from `model.config`; the `"name"` key picks the architecture."""
    config = dict(config)
    name = config.pop("name", None)
    if name not in _BUILDERS:
        raise ValueError(
            f"Unknown model name {name!r} in the model configuration; "
            f"expected one of {sorted(_BUILDERS)}."
        )
    return _BUILDERS[name](**config)
