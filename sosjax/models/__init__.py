"""Masked models: networks whose masks are real pruning."""

from sosjax.models.base import MaskedModel
from sosjax.models.bilstm import BiLSTM, bilstm
from sosjax.models.groups import GroupLayout, MaskedLayer
from sosjax.models.registry import build_model, register
from sosjax.models.resnet import ResNet18, resnet18
from sosjax.models.torchvision import load_torchvision_resnet18, torchvision_resnet18_variables
