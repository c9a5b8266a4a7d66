"""Resumable training checkpoints: model, optimizer, scheduler, RNG states and position in the data.

Each checkpoint is a folder ``step-NNNNNNNN`` written under a temporary name and renamed, so a run
killed mid-write leaves the previous checkpoint intact. A checkpoint carries the fingerprint of the
configuration and data that made it; loading it for anything else is refused.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

STATE_FILE = "state.pt"
META_FILE = "meta.json"


class CheckpointMismatch(ValueError):
    """The checkpoint was made for another configuration, snapshot or model."""


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: Path, step: int, fingerprint: dict, state: dict, keep: int) -> Path:
    """Write ``folder/step-<step>`` atomically and prune all but the ``keep`` newest checkpoints."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:08d}"
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".partial-"))
    try:
        torch.save({**state, "rng": rng_state()}, staging / STATE_FILE)
        (staging / META_FILE).write_text(json.dumps({"step": step, "fingerprint": fingerprint}, indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first (partial ones never carry the final name)."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.glob("step-*") if (p / META_FILE).exists() and (p / STATE_FILE).exists())


def check_fingerprint(path: Path, expected: dict) -> dict:
    """The checkpoint's metadata; raises CheckpointMismatch listing every key that differs."""
    meta = json.loads((path / META_FILE).read_text())
    found = meta.get("fingerprint", {})
    diffs = [f"{k}: checkpoint has {found.get(k)!r}, this run has {expected.get(k)!r}"
             for k in sorted(set(found) | set(expected)) if found.get(k) != expected.get(k)]
    if diffs:
        raise CheckpointMismatch(f"refusing checkpoint {path}: it was made by another configuration or data: "
                                 + "; ".join(diffs))
    return meta


def load_checkpoint(path: Path, expected: dict) -> dict:
    """Load a checkpoint's state after checking its fingerprint (RNG states are restored too)."""
    check_fingerprint(path, expected)
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    restore_rng_state(state["rng"])
    return state
