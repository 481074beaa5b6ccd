"""Masked models: networks whose masks are real pruning."""

from sosjax.models.base import MaskedModel
from sosjax.models.bilstm import BiLSTM, bilstm
from sosjax.models.groups import GroupLayout, MaskedLayer
from sosjax.models.registry import build_model, register
from sosjax.models.resnet import ResNet18, resnet18
from sosjax.models.torchvision import load_torchvision_resnet18, torchvision_resnet18_variables
from sosjax.models.m2m100 import M2M100, m2m100
from sosjax.models.m2m100_config import M2M100Config
from sosjax.models.m2m100_generate import beam_search, generate, greedy_generate
from sosjax.models.m2m100_loading import load_m2m100, save_m2m100
