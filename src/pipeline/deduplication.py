"""Which rows of a growing snapshot to keep: exact duplicates and label conflicts.

Rows carry a global sequence number (parent snapshot rows first, then new files in order). Exact
duplicate (text, label) pairs keep their first occurrence. Texts whose normalised form carries more
than one label are conflicts, resolved by the policy. Both decisions depend only on rows that share a
normalised text, so data larger than ``max_rows_in_memory`` is partitioned on disk by a hash of that
text and decided one partition at a time: memory holds one partition plus one byte per row.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.ingestion import LABELED_COLUMNS, normalise_text

logger = logging.getLogger(__name__)

SEQ, KEY = "_seq", "_key"
ROW_SCHEMA = pa.schema([("text", pa.string()), ("label", pa.string()), ("source", pa.string()), ("row", pa.int64())])
PARTITION_SCHEMA = ROW_SCHEMA.append(pa.field(SEQ, pa.int64())).append(pa.field(KEY, pa.string()))


class ConflictError(ValueError):
    """Too many texts carry conflicting labels (or the policy is ``fail``). ``conflicts`` lists the rows;
    ``report`` is the path of a CSV listing them when one was written."""

    def __init__(self, message: str, conflicts: pd.DataFrame, report: str | None = None):
        super().__init__(message)
        self.conflicts = conflicts
        self.report = report


@dataclass
class RowPlan:
    keep: np.ndarray  # bool, one per row in sequence order
    duplicates: int
    conflicts: pd.DataFrame  # every row of a conflicting text (after exact duplicates), in sequence order
    conflicts_dropped: int = 0  # conflicting rows the policy removed

    @property
    def conflict_texts(self) -> int:
        return int(self.conflicts["text"].map(_key).nunique()) if len(self.conflicts) else 0


def _key(text) -> str | None:
    return normalise_text(text) if isinstance(text, str) else None


def decide_rows(frame: pd.DataFrame, policy: str) -> tuple[np.ndarray, int, pd.DataFrame]:
    """(kept sequence numbers, exact duplicates dropped, conflicting rows) for rows with a ``_seq`` column.

    ``drop`` removes every row of a conflicting text, ``latest`` keeps its last row, ``fail`` keeps them
    (the caller raises). Missing texts never conflict.
    """
    if not frame[SEQ].is_monotonic_increasing:
        frame = frame.sort_values(SEQ)
    duplicate = frame.duplicated(subset=["text", "label"], keep="first").to_numpy()
    rows = frame[~duplicate]
    keys = rows[KEY] if KEY in rows else rows["text"].map(_key)
    labels_per_text = rows.groupby(keys.to_numpy(), sort=False, dropna=True)["label"].transform("nunique")
    conflicting = (labels_per_text.fillna(0) > 1).to_numpy()
    if policy == "latest":
        keep = ~conflicting | ~keys.duplicated(keep="last").to_numpy()
    elif policy == "drop":
        keep = ~conflicting
    else:
        keep = np.ones(len(rows), dtype=bool)
    conflicts = rows.loc[conflicting, [*LABELED_COLUMNS, SEQ]]
    return rows[SEQ].to_numpy()[keep], int(duplicate.sum()), conflicts


def count_rows(paths: list[Path]) -> int:
    return sum(pq.ParquetFile(path).metadata.num_rows for path in paths)


def iter_row_batches(paths: list[Path], chunk_rows: int) -> Iterator[pa.Table]:
    """The rows of Parquet files of ``ROW_SCHEMA`` in order, ``chunk_rows`` at a time."""
    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=LABELED_COLUMNS):
            yield pa.Table.from_batches([batch]).cast(ROW_SCHEMA)


def _decide_in_memory(paths: list[Path], policy: str) -> tuple[np.ndarray, int, pd.DataFrame]:
    frames = [pq.read_table(path, columns=LABELED_COLUMNS).cast(ROW_SCHEMA).to_pandas() for path in paths]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=LABELED_COLUMNS)
    frame[SEQ] = np.arange(len(frame), dtype=np.int64)
    return decide_rows(frame, policy)


def _decide_partitioned(paths: list[Path], policy: str, total: int, chunk_rows: int, max_rows: int,
                        scratch: Path) -> tuple[np.ndarray, int, pd.DataFrame]:
    partitions = max(2, math.ceil(2 * total / max_rows))  # about half the limit each, leaving room for skew
    scratch.mkdir(parents=True, exist_ok=True)
    writers: dict[int, pq.ParquetWriter] = {}
    seq = 0
    try:
        for table in iter_row_batches(paths, chunk_rows):
            chunk = table.to_pandas()
            chunk[SEQ] = np.arange(seq, seq + len(chunk), dtype=np.int64)
            seq += len(chunk)
            chunk[KEY] = chunk["text"].map(_key).astype(object)
            bucket = pd.util.hash_array(chunk[KEY].fillna("").to_numpy(dtype=object)) % partitions
            for number, part in chunk.groupby(bucket, sort=False):
                if number not in writers:
                    writers[number] = pq.ParquetWriter(scratch / f"{number}.parquet", PARTITION_SCHEMA)
                writers[number].write_table(pa.Table.from_pandas(part, schema=PARTITION_SCHEMA, preserve_index=False))
    finally:
        for writer in writers.values():
            writer.close()
    kept, duplicates, conflicts = [], 0, []
    for number in sorted(writers):
        part = pq.read_table(scratch / f"{number}.parquet").to_pandas()
        part_kept, part_duplicates, part_conflicts = decide_rows(part, policy)
        kept.append(part_kept)
        duplicates += part_duplicates
        conflicts.append(part_conflicts)
        (scratch / f"{number}.parquet").unlink()
    shutil.rmtree(scratch, ignore_errors=True)
    logger.info("deduplicated %d rows in %d partitions", total, partitions)
    conflict_rows = pd.concat(conflicts, ignore_index=True).sort_values(SEQ) if conflicts else pd.DataFrame(
        columns=[*LABELED_COLUMNS, SEQ])
    return np.concatenate(kept) if kept else np.empty(0, dtype=np.int64), duplicates, conflict_rows


def plan_rows(paths: list[Path], policy: str, max_conflict_share: float, new_rows: int, chunk_rows: int,
              max_rows_in_memory: int, scratch: Path) -> RowPlan:
    """Decide which rows of ``paths`` (read in order) to keep; raises ConflictError when the policy is
    ``fail`` and there is a conflict, or when conflicting rows exceed ``max_conflict_share`` of ``new_rows``."""
    total = count_rows(paths)
    if total <= max_rows_in_memory:
        kept, duplicates, conflicts = _decide_in_memory(paths, policy)
    else:
        kept, duplicates, conflicts = _decide_partitioned(paths, policy, total, chunk_rows, max_rows_in_memory, scratch)
    keep = np.zeros(total, dtype=bool)
    keep[kept] = True
    dropped = int(len(conflicts) - keep[conflicts[SEQ].to_numpy(dtype=np.int64)].sum())
    conflicts = conflicts.drop(columns=[SEQ]).reset_index(drop=True)
    if len(conflicts):
        share = len(conflicts) / max(new_rows, 1)
        if policy == "fail" or share > max_conflict_share:
            examples = conflicts.head(3)[LABELED_COLUMNS].to_dict("records")
            raise ConflictError(
                f"{len(conflicts)} rows ({share:.2%} of {new_rows} new rows) share a normalised text with a different "
                f"label (policy {policy!r}, max share {max_conflict_share:.2%}); e.g. {examples}", conflicts)
    return RowPlan(keep, duplicates, conflicts, dropped)
