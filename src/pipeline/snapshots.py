"""The file ledger and immutable, content-addressed data snapshots.

A snapshot is the cumulative accepted data: its parent's rows plus the rows of newly accepted files,
deduplicated. Its id is a hash of the member files' content hashes and the schema version, so the same
files always give the same snapshot. Snapshot folders and the ledger are written to a temporary name
and renamed into place, so a crash leaves either the old state or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from pipeline.ingestion import normalise_text

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
COLUMNS = ["text", "label", "source", "row"]


class ConflictError(ValueError):
    """Too many texts carry conflicting labels (or the policy is ``fail``)."""

    def __init__(self, message: str, conflicts: pd.DataFrame):
        super().__init__(message)
        self.conflicts = conflicts


@dataclass
class Manifest:
    snapshot_id: str
    parent: str | None
    created: str
    rows: int
    label_counts: dict[str, int]
    files: list[dict]
    content_sha256: str
    duplicates_dropped: int = 0
    conflicts_dropped: int = 0
    conflict_examples: list[dict] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Snapshot:
    """A snapshot on disk: ``data.parquet`` and ``manifest.json`` in ``snapshots/<id>/``."""

    path: Path
    manifest: Manifest

    @property
    def id(self) -> str:
        return self.manifest.snapshot_id

    @property
    def data_path(self) -> Path:
        return self.path / "data.parquet"

    def load(self) -> pd.DataFrame:
        return pd.read_parquet(self.data_path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def snapshot_id_for(file_hashes: list[str]) -> str:
    digest = hashlib.sha256(f"schema={SCHEMA_VERSION}\n".encode())
    for sha in sorted(set(file_hashes)):
        digest.update(sha.encode() + b"\n")
    return digest.hexdigest()[:16]


def content_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of the snapshot's (text, label) pairs in order: what MLflow records as the data digest."""
    hashed = pd.util.hash_pandas_object(frame[["text", "label"]], index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def label_counts(frame: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame["label"].value_counts().sort_index().items()}


def resolve_conflicts(frame: pd.DataFrame, policy: str, max_share: float, new_rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply the conflict policy to texts whose normalised form carries more than one label.

    Returns (kept rows, conflicting rows). ``drop`` removes every row of a conflicting text, ``latest``
    keeps the last one seen, ``fail`` raises. Any policy raises when conflicts exceed ``max_share`` of
    the ``new_rows`` of this batch.
    """
    keys = frame["text"].map(normalise_text)
    labels_per_key = frame.groupby(keys)["label"].transform("nunique")
    conflicting = frame[labels_per_key > 1]
    if conflicting.empty:
        return frame, conflicting
    share = len(conflicting) / max(new_rows, 1)
    if policy == "fail" or share > max_share:
        raise ConflictError(
            f"{len(conflicting)} rows ({share:.2%} of {new_rows} new rows) share a text with a different label "
            f"(policy {policy!r}, max share {max_share:.2%}); e.g. {conflicting.head(3)[['text', 'label', 'source', 'row']].to_dict('records')}",
            conflicting,
        )
    if policy == "latest":
        last_of_text = ~keys.duplicated(keep="last")
        return frame[(labels_per_key == 1) | last_of_text], conflicting
    return frame[labels_per_key == 1], conflicting


def build_snapshot_frame(parent: pd.DataFrame | None, new: list[pd.DataFrame], policy: str,
                         max_conflict_share: float) -> tuple[pd.DataFrame, int, pd.DataFrame]:
    """Combine parent rows and new rows, drop exact duplicate (text, label) pairs, resolve conflicts.

    Returns (rows, duplicates dropped, conflicting rows).
    """
    new_rows = sum(len(f) for f in new)
    frames = ([parent] if parent is not None else []) + [f[COLUMNS] for f in new]
    combined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    before = len(combined)
    combined = combined.drop_duplicates(subset=["text", "label"], keep="first")
    duplicates = before - len(combined)
    kept, conflicts = resolve_conflicts(combined, policy, max_conflict_share, new_rows)
    return kept.reset_index(drop=True), duplicates, conflicts


def write_snapshot(root: Path, snapshot_id: str, parent: str | None, frame: pd.DataFrame, files: list[dict],
                   duplicates: int, conflicts: pd.DataFrame) -> Snapshot:
    """Write ``root/<snapshot_id>`` atomically (temporary folder, then rename) and return it.

    An existing snapshot with the same id is returned unchanged: snapshots are immutable.
    """
    final = root / snapshot_id
    if (final / "manifest.json").exists():
        return load_snapshot(root, snapshot_id)
    manifest = Manifest(
        snapshot_id=snapshot_id, parent=parent, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        rows=len(frame), label_counts=label_counts(frame), files=files, content_sha256=content_digest(frame),
        duplicates_dropped=duplicates, conflicts_dropped=len(conflicts),
        conflict_examples=conflicts.head(20)[["text", "label", "source", "row"]].to_dict("records"),
    )
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{snapshot_id}."))
    try:
        frame[COLUMNS].to_parquet(staging / "data.parquet", index=False)
        (staging / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=2, default=str), encoding="utf-8")
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("wrote snapshot %s (%d rows)", snapshot_id, len(frame))
    return Snapshot(final, manifest)


def load_snapshot(root: Path, snapshot_id: str) -> Snapshot:
    path = root / snapshot_id
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"no snapshot {snapshot_id!r} under {root}")
    return Snapshot(path, Manifest(**json.loads(manifest_path.read_text(encoding="utf-8"))))
