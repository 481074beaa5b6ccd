"""Compact members to files, the Set of Sets manifest, and picking a model by budget.

A run folder holds, per task and member, `models/<task>/<id>/model.json` (the
compact architecture) and `variables.msgpack` (its variables, Flax msgpack);
`load_member(folder)` rebuilds the compact model from them.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Any

import jax
import numpy as np
from flax import serialization

from sosjax.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from sosjax.models import MaskedModel, build_model

MANIFEST = "set_of_sets.json"
DTYPE_FIELDS = {"float32": "bytes_fp32", "float16": "bytes_fp16", "bfloat16": "bytes_bf16"}


def save_model(folder: str, model: MaskedModel, variables: Any, extra: dict | None = None) -> None:
    """Write `model.json` and `variables.msgpack` (and `member.json` with `extra`)."""
    host = jax.tree.map(np.asarray, variables)
    atomic_write_bytes(os.path.join(folder, "variables.msgpack"), serialization.msgpack_serialize(host))
    atomic_write_json(os.path.join(folder, "model.json"), model.config)
    if extra is not None:
        atomic_write_json(os.path.join(folder, "member.json"), extra)


def load_member(folder: str) -> tuple[MaskedModel, dict]:
    """Load a compact model saved by `save_model`: `(model, variables)`.

    `model.apply(variables, inputs)` (no mask) runs the compact specialist.
    """
    config_path = os.path.join(folder, "model.json")
    variables_path = os.path.join(folder, "variables.msgpack")
    for path in (config_path, variables_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found; a model folder needs model.json and variables.msgpack (written by sosjax run).")
    model = build_model(read_json(config_path))
    with open(variables_path, "rb") as file:
        try:
            variables = serialization.msgpack_restore(file.read())
        except Exception as error:  # msgpack raises several types for damaged data.
            raise ValueError(f"{variables_path} is corrupt ({error}); re-export it with `sosjax run` on the same workdir.") from None
    return model, variables


def load_jat_checkpoint(path: str, model: MaskedModel, template: dict) -> dict:
    """Load JAT variables from a sosjax model folder or a torchvision ResNet-18 state_dict.

    The loaded variables must have the shapes of `template` (the config's model).
    """
    if os.path.isdir(path):
        _, variables = load_member(path)
    else:
        from sosjax.models.torchvision import load_torchvision_resnet18

        try:
            _, variables = load_torchvision_resnet18(
                path, stem=model.stem, granularity=model.granularity, min_active=model.min_active, residual=model.residual
            )
        except Exception as error:  # torch, safetensors and the converter raise many types.
            raise ValueError(f"Cannot read the JAT checkpoint {path}: {error}. Give a torchvision ResNet-18 state_dict or a sosjax model folder.") from None
    _check_same_shapes(template, variables, path)
    return variables


def _check_same_shapes(template: Any, variables: Any, path: str) -> None:
    expected = jax.tree_util.tree_flatten_with_path(template)[0]
    given = dict(jax.tree_util.tree_flatten_with_path(variables)[0])
    for key_path, leaf in expected:
        name = jax.tree_util.keystr(key_path)
        if key_path not in given:
            raise ValueError(f"The checkpoint {path} has no variable {name}; it does not match config.model.")
        if np.shape(given[key_path]) != np.shape(leaf):
            raise ValueError(
                f"The checkpoint {path} has {name} of shape {np.shape(given[key_path])}, but config.model needs {np.shape(leaf)}; "
                "set config.model to the checkpoint's architecture."
            )


def write_front(workdir: str, task: str, front, model: MaskedModel) -> None:
    """Write `fronts/<task>.csv` (size, parameters, fitness loss) and the masks as `.npz`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["index", "size", "params", "fitness_loss", "active_groups"])
    for i, (mask, (size, loss)) in enumerate(zip(front.masks, front.objectives)):
        writer.writerow([i, f"{size:.6f}", int(model.num_params(np.asarray(mask))), f"{loss:.6f}", int(mask.sum())])
    atomic_write_text(os.path.join(workdir, "fronts", f"{task}.csv"), buffer.getvalue())
    masks = io.BytesIO()
    np.savez_compressed(masks, masks=front.masks, objectives=front.objectives)
    atomic_write_bytes(os.path.join(workdir, "fronts", f"{task}.npz"), masks.getvalue())


def _byte_sizes(model: MaskedModel, mask, dtypes) -> dict:
    return {DTYPE_FIELDS[d]: model.num_bytes(mask, np.dtype(d) if d != "bfloat16" else np.float16) for d in dtypes}


def write_set_of_sets(workdir, model, jat, jat_metrics, tuned, metric, dtypes, target_unit: str = "",
                      extra: dict | None = None) -> str:
    """Compact and save every fine-tuned member, then write `set_of_sets.json`
    (with the entries of `extra` added at its top level)."""
    members = []
    for task, result in tuned.items():
        for i, mask in enumerate(result.masks):
            member_id = f"m{i:03d}"
            variables = jax.tree.map(lambda v: v[i], result.variables)
            small, small_variables = model.compact(variables, np.asarray(mask))
            params = int(small.num_params())
            if params != int(model.num_params(np.asarray(mask))):
                raise AssertionError(f"Compaction of {task}/{member_id} failed: it kept {params} parameters, but the mask keeps {int(model.num_params(np.asarray(mask)))}.")
            relative = os.path.join("models", task, member_id)
            entry = {
                "task": task,
                "id": member_id,
                "params": params,
                **_byte_sizes(model, np.asarray(mask), dtypes),
                "size": params / int(model.num_params()),
                "metric": metric,
                "test_metric": float(result.after[i]),
                "test_metric_before_finetune": float(result.before[i]),
                "active_groups": int(np.asarray(mask).sum()),
                "path": relative,
            }
            save_model(os.path.join(workdir, relative), small, small_variables, extra=entry)
            members.append(entry)

    manifest = {
        "metric": metric,
        "unit": target_unit,
        "jat": {"params": int(model.num_params()), **_byte_sizes(model, None, dtypes), "test_metric": jat_metrics},
        "members": members,
        **(extra or {}),
    }
    save_model(os.path.join(workdir, "models", "jat"), model, jat)
    path = os.path.join(workdir, MANIFEST)
    atomic_write_json(path, manifest)
    return path


MEMBER_FIELDS = ("task", "id", "params", "bytes_fp32", "bytes_fp16", "metric", "test_metric", "path")


def read_manifest(path: str) -> dict:
    """Read `set_of_sets.json`, raising ValueError naming the file if its layout is wrong."""
    manifest = read_json(path)
    problem = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("members"), list) or "jat" not in manifest or "metric" not in manifest:
        problem = "it needs the keys metric, jat and members"
    else:
        for member in manifest["members"]:
            missing = [field for field in MEMBER_FIELDS if not isinstance(member, dict) or field not in member]
            if missing:
                problem = f"a member lacks {', '.join(missing)}"
                break
    if problem:
        raise ValueError(f"{path} is not a valid Set of Sets manifest ({problem}); delete it and run `sosjax run` on the same workdir to rewrite it.")
    return manifest


def higher_is_better(metric: str) -> bool:
    return metric in ("accuracy", "bleu")


def select(workdir: str, task: str, *, max_params: int | None = None, max_bytes: int | None = None, dtype: str = "float32") -> dict:
    """Return the member of `task` with the best test metric within the budget.

    Raises ValueError if the task is unknown or no member fits the budget.
    """
    path = os.path.join(workdir, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found; run `sosjax run --workdir {workdir}` first.")
    manifest = read_manifest(path)
    members = [m for m in manifest["members"] if m["task"] == task]
    if not members:
        tasks = sorted({m["task"] for m in manifest["members"]})
        raise ValueError(f"Unknown task {task!r} in {path}; the tasks are: {', '.join(tasks)}.")
    field = DTYPE_FIELDS.get(dtype)
    if field is None:
        raise ValueError(f"Unknown dtype {dtype!r}; expected one of {', '.join(DTYPE_FIELDS)}.")
    fitting = [
        m for m in members
        if (max_params is None or m["params"] <= max_params) and (max_bytes is None or m[field] <= max_bytes)
    ]
    if not fitting:
        smallest = min(members, key=lambda m: m["params"])
        budget = f"max params {max_params}" if max_params is not None else f"max bytes {max_bytes} at {dtype}"
        raise ValueError(
            f"No member of task {task!r} fits the budget ({budget}); "
            f"the smallest has {smallest['params']} parameters and {smallest[field]} bytes."
        )
    sign = -1.0 if higher_is_better(manifest["metric"]) else 1.0
    return min(fitting, key=lambda m: (sign * m["test_metric"], m["params"]))
