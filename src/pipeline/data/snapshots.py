"""Immutable, content-addressed data snapshots.

A snapshot is the cumulative accepted data: its parent's rows plus the rows of newly accepted files,
without exact duplicates and with label conflicts resolved (``deduplication``). Its id is a hash of the
member files' content hashes and the schema version, so the same files always give the same snapshot.
The folder (``data.parquet``, ``manifest.json``, ``conflicts.csv`` when there were conflicts) is built
under a temporary name and renamed into place: a crash leaves no partial snapshot. On object storage it is
built on the local disk and uploaded with ``manifest.json`` last; a snapshot without its manifest does not
exist for any reader. Rows are streamed
``data.chunk_rows`` at a time, so memory stays bounded however large the snapshot grows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import staged_directory
from pipeline.config import DataConfig
from pipeline.data.deduplication import ROW_SCHEMA, SEQ, ConflictError, decide_rows, iter_row_batches, plan_rows
from pipeline.data.readers import LABELED_COLUMNS
from pipeline.storage import DataPath, is_remote, local_copy, readable, upload_folder

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
COLUMNS = LABELED_COLUMNS
CONFLICT_EXAMPLES = 20


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
    conflict_rows: int = 0
    conflict_texts: int = 0
    conflict_policy: str | None = None
    conflicts_file: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Snapshot:
    """A snapshot on disk: ``data.parquet`` and ``manifest.json`` in ``snapshots/<id>/``."""

    path: DataPath
    manifest: Manifest

    @property
    def id(self) -> str:
        return self.manifest.snapshot_id

    @property
    def data_path(self) -> DataPath:
        return self.path / "data.parquet"

    def load(self) -> pd.DataFrame:
        """All rows in memory (columns text, label, source, row); see ``iter_batches`` for large snapshots."""
        return pd.read_parquet(readable(self.data_path))

    def iter_batches(self, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
        for table in iter_row_batches([self.data_path], chunk_rows):
            yield table.to_pandas()

    def conflicts(self) -> pd.DataFrame:
        """Every row of a text that carried conflicting labels when this snapshot was built (may be empty)."""
        if not self.manifest.conflicts_file:
            return pd.DataFrame(columns=COLUMNS)
        return pd.read_csv(
            readable(self.path / self.manifest.conflicts_file),
            dtype={"text": str, "label": str, "source": str},
            keep_default_na=False,
        )


def snapshot_id_for(file_hashes: list[str]) -> str:
    digest = hashlib.sha256(f"schema={SCHEMA_VERSION}\n".encode())
    for sha in sorted(set(file_hashes)):
        digest.update(sha.encode() + b"\n")
    return digest.hexdigest()[:16]


def _encode(value) -> str:
    return "-" if value is None else f"{len(value)}:{value}"


def update_digest(digest, texts: list, labels: list) -> None:
    """Feed (text, label) rows into ``digest``, length-prefixed, so chunking never changes the result."""
    if None in texts or None in labels:
        parts = [_encode(t) + _encode(y) for t, y in zip(texts, labels)]
    else:
        parts = [f"{len(t)}:{t}{len(y)}:{y}" for t, y in zip(texts, labels)]
    digest.update("".join(parts).encode("utf-8", "surrogatepass"))


def _values(series: pd.Series) -> list:
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in series.astype(object)]


def content_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of the snapshot's (text, label) pairs in order: what MLflow records as the data digest."""
    digest = hashlib.sha256()
    update_digest(digest, _values(frame["text"]), _values(frame["label"]))
    return digest.hexdigest()


def label_counts(frame: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame["label"].value_counts().sort_index().items()}


def build_snapshot_frame(
    parent: pd.DataFrame | None, new: list[pd.DataFrame], policy: str, max_conflict_share: float
) -> tuple[pd.DataFrame, int, pd.DataFrame]:
    """In-memory version of what ``write_snapshot_from_parts`` streams: (rows, duplicates dropped, conflicting rows).

    Raises ConflictError like the streaming build.
    """
    frames = ([parent[COLUMNS]] if parent is not None else []) + [f[COLUMNS] for f in new]
    combined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    combined[SEQ] = np.arange(len(combined), dtype=np.int64)
    kept, duplicates, conflicting = decide_rows(combined, policy)
    conflicts = combined.iloc[conflicting][COLUMNS].reset_index(drop=True)
    new_rows = sum(len(f) for f in new)
    if len(conflicts) and (policy == "fail" or len(conflicts) / max(new_rows, 1) > max_conflict_share):
        raise ConflictError(f"{len(conflicts)} rows share a normalised text with a different label", conflicts)
    return combined.iloc[np.sort(kept)][COLUMNS].reset_index(drop=True), duplicates, conflicts


def _write_kept_rows(paths: list[Path], keep: np.ndarray, target: Path, chunk_rows: int) -> tuple[int, dict, str]:
    """Stream the kept rows of ``paths`` into ``target``; returns (rows, label counts, content digest)."""
    counts: Counter = Counter()
    digest = hashlib.sha256()
    offset = rows = 0
    with pq.ParquetWriter(target, ROW_SCHEMA) as writer:
        for table in iter_row_batches(paths, chunk_rows):
            mask = keep[offset : offset + table.num_rows]
            offset += table.num_rows
            table = table.filter(pa.array(mask))
            if table.num_rows == 0:
                continue
            writer.write_table(table)
            labels = table.column("label").to_pylist()
            update_digest(digest, table.column("text").to_pylist(), labels)
            counts.update(label for label in labels if label is not None)
            rows += table.num_rows
    return rows, {str(k): int(counts[k]) for k in sorted(counts)}, digest.hexdigest()


def write_snapshot_from_parts(
    root: DataPath,
    snapshot_id: str,
    parent: Snapshot | None,
    parts: list[Path],
    files: list[dict],
    config: DataConfig,
    scratch: Path | None = None,
) -> Snapshot:
    """Build ``root/<snapshot_id>`` from the parent's rows plus ``parts`` (Parquet files of parsed rows).

    Atomic (temporary folder, then rename; on object storage, upload with the manifest last). An existing
    snapshot with the same id is returned unchanged: snapshots are immutable. Raises ConflictError (and
    writes nothing) when the conflict policy refuses the rows. ``scratch`` is the local folder a remote
    snapshot is built in.
    """
    final = root / snapshot_id
    if (final / "manifest.json").exists():
        return load_snapshot(root, snapshot_id)
    if not is_remote(root):
        return _build_snapshot(final, parent, parts, files, config, parent.data_path if parent else None)
    scratch = scratch or Path(tempfile.gettempdir())
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".snapshot-") as folder:
        parent_rows = local_copy(parent.data_path, Path(folder) / "parent") if parent else None
        built = _build_snapshot(Path(folder) / snapshot_id, parent, parts, files, config, parent_rows)
        upload_folder(built.path, final, last="manifest.json")
    return Snapshot(final, built.manifest)


def _build_snapshot(
    final: Path, parent: Snapshot | None, parts: list[Path], files: list[dict], config: DataConfig, parent_rows
) -> Snapshot:
    snapshot_id = final.name
    sources = ([parent_rows] if parent else []) + list(parts)
    new_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    with staged_directory(final) as staging:
        plan = plan_rows(
            sources,
            config.conflict_policy,
            config.max_conflict_share,
            new_rows,
            config.chunk_rows,
            config.max_rows_in_memory,
            staging / "partitions",
        )
        rows, counts, digest = _write_kept_rows(sources, plan.keep, staging / "data.parquet", config.chunk_rows)
        conflicts_file = None
        if len(plan.conflicts):
            conflicts_file = "conflicts.csv"
            plan.conflicts[COLUMNS].to_csv(staging / conflicts_file, index=False)
        manifest = Manifest(
            snapshot_id=snapshot_id,
            parent=parent.id if parent else None,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            rows=rows,
            label_counts=counts,
            files=files,
            content_sha256=digest,
            duplicates_dropped=plan.duplicates,
            conflicts_dropped=plan.conflicts_dropped,
            conflict_examples=_records(plan.conflicts.head(CONFLICT_EXAMPLES)),
            conflict_rows=len(plan.conflicts),
            conflict_texts=plan.conflict_texts,
            conflict_policy=config.conflict_policy,
            conflicts_file=conflicts_file,
        )
        (staging / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=2, default=str), encoding="utf-8")
    logger.info(
        "wrote snapshot %s (%d rows, %d duplicates, %d conflicting rows)",
        snapshot_id,
        rows,
        plan.duplicates,
        len(plan.conflicts),
    )
    return Snapshot(final, manifest)


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame[COLUMNS].to_dict("records")]


SNAPSHOT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_snapshot_id(snapshot_id: str) -> str:
    """``snapshot_id`` when it is a plain name (letters, digits, ``_``, ``-``); ValueError otherwise, so a
    typed value such as ``../../x`` never names a path outside ``snapshots/``."""
    if not isinstance(snapshot_id, str) or not SNAPSHOT_ID.match(snapshot_id):
        raise ValueError(
            f"invalid snapshot id {snapshot_id!r}: expected letters, digits, '_' or '-' (e.g. 3f2a9c0d1e4b5a67)"
        )
    return snapshot_id


def load_snapshot(root: DataPath, snapshot_id: str) -> Snapshot:
    """The snapshot ``root/<snapshot_id>``; ValueError for an id that is not a plain name, FileNotFoundError
    when there is none."""
    path = root / check_snapshot_id(snapshot_id)
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"no snapshot {snapshot_id!r} under {root}")
    return Snapshot(path, Manifest.from_dict(json.loads(manifest_path.read_text(encoding="utf-8"))))
