"""Masked models: networks whose masks are real pruning."""

from sosjax.models.base import MaskedModel
from sosjax.models.registry import build_model, register
