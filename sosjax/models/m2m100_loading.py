"""Reading and writing Hugging Face M2M100 folders (`config.json` plus weights)."""

from __future__ import annotations

import json
import os
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from sosjax.models.m2m100 import M2M100, _example_inputs
from sosjax.models.m2m100_config import M2M100Config

# Keys of a Hugging Face state dict that hold no parameter of their own: fixed
# sinusoidal tables, and tied copies of the shared embedding (or, untied, the
# shared table that transformers 5 keeps but no longer uses).
_TIED_OR_FIXED = (
    "encoder.embed_positions.",
    "decoder.embed_positions.",
    "encoder.embed_tokens.weight",
    "decoder.embed_tokens.weight",
    "shared.weight",
)

#: `M2M100Config` fields that describe a pruned model, which transformers' configuration cannot express.
_PRUNING_FIELDS = ("encoder_heads", "decoder_self_heads", "decoder_cross_heads", "qk_dims", "vo_dims")
#: `M2M100Config` fields of sosjax's mask groups, which mean nothing to transformers.
_MASK_FIELDS = ("mask_unit", "heads_per_group", "rows_per_group", "min_active")


def flax_to_hf_key(path: tuple[str, ...]) -> tuple[str, bool]:
    """Map the Flax parameter at `path` to its Hugging Face state-dict key, and
    tell whether the matrix is stored transposed there."""
    top, *rest = path
    for stack in ("encoder_layers_", "decoder_layers_"):
        if top.startswith(stack):
            top = f"{stack.split('_')[0]}.layers.{top[len(stack):]}"
    renames = {
        "encoder_layer_norm": "encoder.layer_norm",
        "decoder_layer_norm": "decoder.layer_norm",
        "encoder_embed_tokens": "encoder.embed_tokens",
        "decoder_embed_tokens": "decoder.embed_tokens",
    }
    top = renames.get(top, top)

    *modules, leaf = rest
    hf_leaf = {"kernel": "weight", "scale": "weight", "embedding": "weight", "bias": "bias"}[leaf]
    prefix = "" if top == "lm_head" else "model."
    return prefix + ".".join([top, *modules, hf_leaf]), leaf == "kernel"


def _read_state_dict(path: str) -> dict[str, np.ndarray]:
    safetensors_file = os.path.join(path, "model.safetensors")
    index_file = os.path.join(path, "model.safetensors.index.json")
    torch_file = os.path.join(path, "pytorch_model.bin")

    if os.path.exists(safetensors_file) or os.path.exists(index_file):
        from safetensors.numpy import load_file

        if os.path.exists(safetensors_file):
            return dict(load_file(safetensors_file))
        with open(index_file) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        state = {}
        for shard in shards:
            state.update(load_file(os.path.join(path, shard)))
        return state

    if os.path.exists(torch_file):
        try:
            import torch
        except ImportError as error:
            raise ImportError(
                f"Reading {torch_file} needs PyTorch; install the CPU build (`pip install sosjax[torch]`) "
                "or convert the checkpoint to model.safetensors."
            ) from error
        state = torch.load(torch_file, map_location="cpu", weights_only=True)
        return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}

    raise FileNotFoundError(
        f"No weights in {path}: expected model.safetensors, model.safetensors.index.json or pytorch_model.bin."
    )


def read_hf_config(path: str) -> dict:
    """Read the `config.json` of a Hugging Face folder and check that it describes an M2M100."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"M2M100 folder not found: {path}")
    config_file = os.path.join(path, "config.json")
    if not os.path.exists(config_file):
        raise FileNotFoundError(f"Missing config.json in {path}; it is not a Hugging Face model folder.")
    with open(config_file) as f:
        hf_config = json.load(f)
    if hf_config.get("model_type") != "m2m_100":
        raise ValueError(
            f"{config_file} describes model_type {hf_config.get('model_type')!r}, not 'm2m_100'; "
            "load_m2m100 reads M2M100 checkpoints only."
        )
    return hf_config


def load_m2m100(path: str, dtype=jnp.float32) -> tuple[M2M100, dict]:
    """Load a local Hugging Face M2M100 folder as `(model, variables)`.

    Raises:
      FileNotFoundError: the folder, its config.json or its weights are missing.
      ValueError: the folder contains another architecture, or a weight is
        missing, unexpected or of the wrong shape.
    """
    model = M2M100(M2M100Config.from_hf(read_hf_config(path)))
    state = {k if k.startswith(("model.", "lm_head.")) else "model." + k: v for k, v in _read_state_dict(path).items()}
    # Checkpoints may store any one of the tied tables.
    for key in ("model.shared.weight", "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"):
        for source in ("model.shared.weight", "model.encoder.embed_tokens.weight"):
            if key not in state and source in state:
                state[key] = state[source]

    shapes = jax.eval_shape(model.init, jax.random.key(0), _example_inputs())["params"]
    used, missing, mismatched = set(), [], []

    def fill(path_entries, shape):
        path = tuple(entry.key for entry in path_entries)
        key, transposed = flax_to_hf_key(path)
        if key not in state:
            missing.append(key)
            return None
        value = np.asarray(state[key])
        value = value.T if transposed else value
        used.add(key)
        if value.shape != shape.shape:
            mismatched.append(f"{key}: checkpoint {value.shape[::-1] if transposed else value.shape}, "
                              f"config expects {shape.shape[::-1] if transposed else shape.shape}")
            return None
        return jnp.asarray(value, dtype)

    params = jax.tree_util.tree_map_with_path(fill, shapes)

    tied_head = "lm_head.weight" if model.hparams.tie_word_embeddings else None
    unexpected = sorted(
        k for k in state
        if k not in used and k != tied_head and not k.removeprefix("model.").startswith(_TIED_OR_FIXED)
    )
    problems = [f"missing weights: {missing}" if missing else "",
                f"shape mismatches: {mismatched}" if mismatched else "",
                f"unexpected weights: {unexpected}" if unexpected else ""]
    problems = [p for p in problems if p]
    if problems:
        raise ValueError(f"The weights in {path} do not fit its config.json; " + "; ".join(problems))
    return model, {"params": params}


def save_m2m100(path: str, model: M2M100, variables: Mapping, extra_config: Mapping | None = None) -> None:
    """Write `config.json` and `model.safetensors` that transformers'
    `M2M100ForConditionalGeneration.from_pretrained` and `load_m2m100` read.

    Only unpruned models fit transformers' configuration: a model from
    `compact` with fewer heads is rejected.
    """
    from safetensors.numpy import save_file

    c = model.hparams
    full = M2M100Config.from_hf({k: v for k, v in c.to_dict().items() if k not in _PRUNING_FIELDS})
    if c.site_dims() != full.site_dims():
        raise ValueError("save_m2m100 writes unpruned models only; this one has pruned attention heads or rows.")

    hf_config = {
        "model_type": "m2m_100",
        "architectures": ["M2M100ForConditionalGeneration"],
        "is_encoder_decoder": True,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "encoder_layerdrop": 0.0,
        "decoder_layerdrop": 0.0,
        **{k: v for k, v in c.to_dict().items() if k not in _PRUNING_FIELDS + _MASK_FIELDS},
        **(extra_config or {}),
    }
    state = {}
    for path_entries, value in jax.tree_util.tree_flatten_with_path(variables["params"])[0]:
        key, transposed = flax_to_hf_key(tuple(entry.key for entry in path_entries))
        value = np.asarray(value, np.float32)
        state[key] = np.ascontiguousarray(value.T if transposed else value)

    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(hf_config, f, indent=2)
    save_file(state, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
