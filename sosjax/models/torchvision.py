"""Load a torchvision ResNet-18 `state_dict` into a masked `ResNet18`.

torchvision names the tensors `conv1.weight`, `bn1.{weight,bias,running_mean,
running_var,num_batches_tracked}`, `layer{s}.{b}.conv{1,2}.weight`,
`layer{s}.{b}.bn{1,2}.*`, `layer{s}.0.downsample.{0,1}.*` for s = 2..4 and
`fc.{weight,bias}`. Conv weights are OIHW and become HWIO kernels; the `fc`
weight `[C, 512]` becomes a `[512, C]` kernel; BatchNorm `weight`/`bias` become
`scale`/`bias` and the running statistics `mean`/`var`.

Files: `.safetensors` is read with `safetensors.numpy`; any other suffix
(`.pt`, `.pth`, `.bin`) with `torch.load(weights_only=True)`, so torch is only
needed for those. A `module.` prefix (left by `DataParallel`) is stripped.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from sosjax.models.resnet import BLOCKS_PER_STAGE, ResNet18, resnet18


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a state_dict from a `.safetensors` file or a torch pickle (`.pt`, `.pth`, `.bin`)."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return dict(load_file(path))

    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"Reading {path} needs torch (pip install torch); save the weights as .safetensors to avoid it."
        ) from error
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path} contains a {type(loaded).__name__}, not a state_dict mapping names to tensors.")
    return {name: _to_numpy(value) for name, value in loaded.items()}


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _normalize_keys(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for name, value in state_dict.items():
        if name.startswith("module."):
            name = name[len("module.") :]
        if name.endswith("num_batches_tracked"):
            continue
        out[name] = _to_numpy(value)
    return out


def _expected_keys() -> list[str]:
    keys = ["conv1.weight"] + [f"bn1.{n}" for n in ("weight", "bias", "running_mean", "running_var")]
    for s in range(1, 5):
        for b in range(BLOCKS_PER_STAGE):
            prefix = f"layer{s}.{b}"
            for i in (1, 2):
                keys.append(f"{prefix}.conv{i}.weight")
                keys += [f"{prefix}.bn{i}.{n}" for n in ("weight", "bias", "running_mean", "running_var")]
            if b == 0 and s > 1:
                keys.append(f"{prefix}.downsample.0.weight")
                keys += [f"{prefix}.downsample.1.{n}" for n in ("weight", "bias", "running_mean", "running_var")]
    return keys + ["fc.weight", "fc.bias"]


def _conv_kernel(weight: np.ndarray) -> np.ndarray:
    """OIHW (torch) to HWIO."""
    return np.transpose(weight, (2, 3, 1, 0)).astype(np.float32)


def torchvision_resnet18_variables(state_dict: Mapping[str, Any], model: ResNet18) -> dict:
    """Convert a torchvision ResNet-18 `state_dict` into `model`'s variables.

    Raises ValueError on missing or unexpected keys and on shapes that do not
    fit `model`.
    """
    sd = _normalize_keys(state_dict)
    expected = _expected_keys()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"The state_dict is not a torchvision ResNet-18: missing keys {missing}, unexpected keys {unexpected}."
        )

    def conv(name):
        return {"kernel": _conv_kernel(sd[f"{name}.weight"])}

    def bn(name):
        params = {"scale": sd[f"{name}.weight"].astype(np.float32), "bias": sd[f"{name}.bias"].astype(np.float32)}
        stats = {"mean": sd[f"{name}.running_mean"].astype(np.float32), "var": sd[f"{name}.running_var"].astype(np.float32)}
        return params, stats

    stem_bn, stem_stats = bn("bn1")
    params = {"stem": {"conv": conv("conv1"), "bn": stem_bn}}
    batch_stats = {"stem": {"bn": stem_stats}}
    for s in range(4):
        stage = f"layer{s + 1}"
        for b in range(BLOCKS_PER_STAGE):
            prefix = f"{stage}.{b}"
            p = {"conv1": conv(f"{prefix}.conv1"), "conv2": conv(f"{prefix}.conv2")}
            st = {}
            p["bn1"], st["bn1"] = bn(f"{prefix}.bn1")
            p["bn2"], st["bn2"] = bn(f"{prefix}.bn2")
            if b == 0 and s > 0:
                p["downsample_conv"] = conv(f"{prefix}.downsample.0")
                p["downsample_bn"], st["downsample_bn"] = bn(f"{prefix}.downsample.1")
            params.setdefault(stage, {})[f"block{b}"] = p
            batch_stats.setdefault(stage, {})[f"block{b}"] = st
    params["fc"] = {"kernel": sd["fc.weight"].T.astype(np.float32), "bias": sd["fc.bias"].astype(np.float32)}

    _check_shapes(params, model)
    to_jax = lambda tree: {k: to_jax(v) if isinstance(v, dict) else jnp.asarray(v) for k, v in tree.items()}
    return {"params": to_jax(params), "batch_stats": to_jax(batch_stats)}


def _check_shapes(params: dict, model: ResNet18) -> None:
    expected = model.param_shapes()

    def walk(actual, shapes, path):
        for key, shape in shapes.items():
            if isinstance(shape, dict):
                walk(actual[key], shape, f"{path}{key}/")
            elif tuple(actual[key].shape) != tuple(shape):
                raise ValueError(
                    f"Parameter {path}{key} has shape {actual[key].shape} but the model expects {tuple(shape)}."
                )

    walk(params, expected, "")


def load_torchvision_resnet18(
    source: str | os.PathLike | Mapping[str, Any],
    *,
    stem: str | None = None,
    granularity: int = 1,
    min_active: int = 1,
    residual: str = "shared",
) -> tuple[ResNet18, dict]:
    """Build a masked ResNet-18 from a torchvision `state_dict` and convert its weights.

    Args:
      source: a path (`.safetensors`, `.pt`, `.pth`, `.bin`) or a mapping of
        names to torch tensors or arrays.
      stem: `"imagenet"` or `"cifar"`. A state_dict does not record the max
        pool, so by default a 7×7 `conv1` means `"imagenet"` and a 3×3 one
        `"cifar"`.
      granularity, min_active, residual: as in `resnet18`.

    Returns:
      `(model, variables)`; widths, input channels and classes come from the
      tensor shapes, so width-scaled or re-headed networks load too.
    """
    state_dict = source if isinstance(source, Mapping) else read_state_dict(source)
    sd = _normalize_keys(state_dict)
    if "conv1.weight" not in sd or "fc.weight" not in sd:
        raise ValueError("The state_dict has no conv1.weight or fc.weight; it is not a torchvision ResNet-18.")

    stem_kernel = sd["conv1.weight"].shape[-1]
    if stem is None:
        if stem_kernel not in (3, 7):
            raise ValueError(f"Cannot infer the stem from a {stem_kernel}×{stem_kernel} conv1; pass stem=.")
        stem = "imagenet" if stem_kernel == 7 else "cifar"

    residual_widths = [int(sd[f"layer{s}.0.bn2.weight"].shape[0]) for s in range(1, 5)]
    inner_widths = [int(sd[f"layer{s}.{b}.bn1.weight"].shape[0]) for s in range(1, 5) for b in range(BLOCKS_PER_STAGE)]
    model = resnet18(
        num_classes=int(sd["fc.weight"].shape[0]),
        stem=stem,
        width=residual_widths[0] / 64,
        in_channels=int(sd["conv1.weight"].shape[1]),
        granularity=granularity,
        min_active=min_active,
        residual=residual,
        widths={"residual": residual_widths, "inner": inner_widths},
    )
    return model, torchvision_resnet18_variables(sd, model)
