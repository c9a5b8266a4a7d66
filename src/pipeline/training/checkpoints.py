"""Resumable training checkpoints: model, optimizer, scheduler, RNG states and position in the data.

Each checkpoint is a folder ``step-NNNNNNNN`` written under a temporary name and renamed, so a run
killed mid-write leaves the previous checkpoint intact (files and folders are flushed to disk before the
rename). A checkpoint carries the fingerprint of the configuration and data that made it; loading it for
anything else is refused. ``state.pt`` holds tensors and plain values only (NumPy arrays and RNG states are
stored as tensors) and is loaded with ``weights_only=True``: a checkpoint file can never run code.

``CheckpointWriter`` copies the state to host memory at the step boundary and writes it in a background
thread, so training goes on while a few hundred MB reach the disk (on a GPU that write would otherwise
cost as much as hundreds of training steps).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

from pipeline.atomic import replace_durably
from pipeline.faults import fault_point

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
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):  # stored as tensors (see to_storable)
        numpy_state = (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    folder: Path, step: int, fingerprint: dict, state: dict, keep: int, rng: dict | None = None
) -> Path:
    """Write ``folder/step-<step>`` atomically and prune all but the ``keep`` newest checkpoints.

    ``rng`` defaults to the RNG states of this moment; pass the ones taken at the step boundary when
    writing later (as ``CheckpointWriter`` does).
    """
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:08d}"
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".partial-"))
    try:
        torch.save(to_storable({**state, "rng": rng if rng is not None else rng_state()}), staging / STATE_FILE)
        meta = {
            "step": step,
            "epoch": state.get("epoch"),
            "next_batch": state.get("next_batch"),
            "fingerprint": fingerprint,
        }
        (staging / META_FILE).write_text(json.dumps(meta, indent=2))
        if final.exists():
            shutil.rmtree(final)
        replace_durably(staging, final)
        fault_point("after-checkpoint")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def copy_to_host(value):
    """A copy of ``value`` (nested dicts, lists, tensors) whose tensors live in host memory and are not
    shared with the caller's, so training may go on changing the originals."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: copy_to_host(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(copy_to_host(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.copy()
    return value


class CheckpointWriter:
    """Saves checkpoints in a background thread, one at a time; ``wait()`` before relying on the files.

    ``save`` snapshots the state (a host copy) and the RNG states at once, then returns; a write error
    is raised by the next ``save`` or ``wait``.
    """

    def __init__(self, folder: Path, fingerprint: dict, keep: int):
        self.folder, self.fingerprint, self.keep = folder, fingerprint, keep
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, step: int, state: dict, shared: dict | None = None) -> None:
        """Checkpoint ``state`` (copied now) plus ``shared`` (values never modified in place later: not copied)."""
        snapshot, rng = {**copy_to_host(state), **(shared or {})}, rng_state()
        self.wait()
        self._thread = threading.Thread(
            target=self._write, args=(step, snapshot, rng), name="checkpoint-writer", daemon=True
        )
        self._thread.start()

    def _write(self, step: int, snapshot: dict, rng: dict) -> None:
        try:
            save_checkpoint(self.folder, step, self.fingerprint, snapshot, self.keep, rng=rng)
        except BaseException as exc:  # handed to the training thread by wait()
            self._error = exc

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first (partial ones never carry the final name)."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.glob("step-*") if (p / META_FILE).exists() and (p / STATE_FILE).exists())


def check_fingerprint(path: Path, expected: dict) -> dict:
    """The checkpoint's metadata; raises CheckpointMismatch listing every key that differs."""
    meta = json.loads((path / META_FILE).read_text())
    found = meta.get("fingerprint", {})
    diffs = [
        f"{k}: checkpoint has {found.get(k)!r}, this run has {expected.get(k)!r}"
        for k in sorted(set(found) | set(expected))
        if found.get(k) != expected.get(k)
    ]
    if diffs:
        raise CheckpointMismatch(
            f"refusing checkpoint {path}: it was made by another configuration or data: " + "; ".join(diffs)
        )
    return meta


def to_storable(value):
    """``value`` with NumPy arrays, NumPy scalars and NumPy's RNG state turned into tensors and plain values
    (what ``torch.load(weights_only=True)`` accepts)."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple) and len(value) == 5 and value[0] == "MT19937":  # np.random.get_state()
        return {
            "name": value[0],
            "keys": torch.from_numpy(value[1].astype(np.int64)),
            "pos": int(value[2]),
            "has_gauss": int(value[3]),
            "cached_gaussian": float(value[4]),
        }
    if isinstance(value, dict):
        return {k: to_storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_storable(v) for v in value)
    return value


def from_storable(value):
    """Inverse of ``to_storable`` for arrays (RNG states are converted by ``restore_rng_state``)."""
    if isinstance(value, dict):
        if set(value) == {"__ndarray__"}:
            return value["__ndarray__"].numpy()
        return {k: from_storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_storable(v) for v in value]
    return value


def load_checkpoint(path: Path, expected: dict) -> dict:
    """Load a checkpoint's state after checking its fingerprint (RNG states are restored too).

    Tensors and plain values only (``weights_only=True``); a file that holds anything else is refused.
    """
    check_fingerprint(path, expected)
    state = from_storable(torch.load(path / STATE_FILE, map_location="cpu", weights_only=True))
    restore_rng_state(state["rng"])
    return state


def load_newest_valid(folders: list[Path], expected: dict) -> tuple[Path | None, dict | None]:
    """(path, state) of the newest checkpoint across ``folders`` that loads and matches ``expected``.

    A corrupt or unreadable checkpoint (a torn disk write, a truncated copy) is skipped with a warning and
    the next older one is tried; (None, None) when none is usable.
    """
    found = sorted((p for folder in folders for p in list_checkpoints(folder)), key=lambda p: (p.name, str(p)))
    for path in reversed(found):
        try:
            return path, load_checkpoint(path, expected)
        except Exception as exc:
            logger.warning("skipping checkpoint %s: it cannot be used (%s: %s)", path, type(exc).__name__, exc)
    return None, None
