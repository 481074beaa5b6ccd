"""Orbax checkpoints of the run's resumable state, with fallback to the last good one."""

from __future__ import annotations

import logging
import os
from typing import Any

import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class Checkpoints:
    """Numbered checkpoints of one pytree in `folder`, the newest `keep` retained.

    Orbax writes each step to a temporary folder and renames it when complete, so
    a killed process leaves no partial step behind.
    """

    def __init__(self, folder: str, keep: int = 2):
        self.folder = os.path.abspath(folder)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=True)
        self._manager = ocp.CheckpointManager(self.folder, options=options)

    def save(self, step: int, tree: Any) -> None:
        """Save `tree` as `step`; a step that exists already is kept as it is.

        Every caller saves a step from the same deterministic state, so an
        existing step (for example saved again on Ctrl-C) contains the same tree.
        """
        if step in self.steps():
            return
        self._manager.save(step, args=ocp.args.StandardSave(tree), force=True)
        self._manager.wait_until_finished()

    def steps(self) -> list[int]:
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def restore_latest(self, target: Any) -> tuple[int, Any] | None:
        """Restore the newest readable step shaped like `target`, or None if there is none.

        A step that fails to load (truncated or corrupt files) is reported in the
        log and skipped in favour of the previous one.
        """
        for step in reversed(self.steps()):
            try:
                return step, self._manager.restore(step, args=ocp.args.StandardRestore(target))
            except Exception as error:  # Orbax raises many types for damaged files.
                log.warning("Checkpoint step %d in %s is unreadable (%s); trying an earlier one.", step, self.folder, error)
        return None
