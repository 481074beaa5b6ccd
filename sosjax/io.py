"""Crash-safe file output: every file of a run folder appears whole or not at all."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def is_writer() -> bool:
    """Return True if this process writes run files; in a multi-host job only process 0 does."""
    import jax

    return jax.process_index() == 0


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename.

    A crash leaves either the old file or the new one, never a truncated mix.
    In a multi-host job only process 0 writes; the others return at once.
    """
    if not is_writer():
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        # mkstemp creates the file as 0600; give it the mode open() would.
        os.chmod(temporary, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def read_json(path: str) -> Any:
    """Read a JSON file; a truncated or invalid file raises ValueError naming it."""
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); the file is corrupt, delete it to recompute it.") from None
