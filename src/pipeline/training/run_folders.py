"""Per-run folders of the training stage that outlive the training itself (no torch import here)."""

from __future__ import annotations

import logging
import shutil

from pipeline.workspace import Workspace

logger = logging.getLogger(__name__)


def clear_run_checkpoints(workspace: Workspace, model_name: str, run_id: str) -> list[str]:
    """Delete the checkpoints of the configuration ``run_id`` trained (its folder and those of the killed runs
    it resumed from, which share the parent). Call once its version is registered; returns what was removed.

    One run per workspace and model holds the run lock (``pipeline.run_lock``), so no live run writes there.
    """
    removed = []
    for own in (workspace.checkpoints / model_name).glob(f"*/{run_id}"):
        shutil.rmtree(own.parent, ignore_errors=True)
        removed.append(str(own.parent))
    if removed:
        logger.info("removed checkpoints %s (version registered)", ", ".join(removed))
    return removed
