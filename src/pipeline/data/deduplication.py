"""Which rows of a growing snapshot to keep: exact duplicates and label conflicts.

Rows carry a global sequence number (parent snapshot rows first, then new files in order). Exact
duplicate (text, label) pairs keep their first occurrence. Texts whose normalised form carries more
than one label are conflicts, resolved by the policy. Both decisions depend only on rows that share a
normalised text, so data larger than ``max_rows_in_memory`` is partitioned on disk by a hash of that
text and decided one partition at a time: memory then holds one partition plus one byte per row.
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

from pipeline.data.readers import LABELED_COLUMNS, normalise_text
from pipeline.storage import readable

logger = logging.getLogger(__name__)

SEQ, KEY = "_seq", "_key"
ROW_SCHEMA = pa.schema([("text", pa.string()), ("label", pa.string()), ("source", pa.string()), ("row", pa.int64())])
PARTITION_SCHEMA = pa.schema([("text", pa.string()), ("label", pa.string()), (SEQ, pa.int64()), (KEY, pa.string())])


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
        return int(self.conflicts["text"].map(text_key).nunique()) if len(self.conflicts) else 0


def text_key(text) -> str | None:
    """The normalised text that conflicts are decided on (None for a missing text, which never conflicts)."""
    return normalise_text(text) if isinstance(text, str) else None


def decide_rows(frame: pd.DataFrame, policy: str) -> tuple[np.ndarray, int, np.ndarray]:
    """(kept sequence numbers, exact duplicates dropped, sequence numbers of conflicting rows) for a frame
    with columns ``text``, ``label``, ``_seq`` and optionally ``_key``.

    ``drop`` removes every row of a conflicting text, ``latest`` keeps its last row, ``fail`` keeps them
    (the caller raises). Missing labels do not count as a label but share their text's fate.
    """
    if not frame[SEQ].is_monotonic_increasing:
        frame = frame.sort_values(SEQ)
    duplicate = frame.duplicated(subset=["text", "label"], keep="first").to_numpy()
    rows = frame[~duplicate]
    keys = rows[KEY] if KEY in rows else rows["text"].map(text_key)
    key_codes, uniques = pd.factorize(keys, use_na_sentinel=True)
    label_codes, labels = pd.factorize(rows["label"], use_na_sentinel=True)
    labelled = (key_codes >= 0) & (label_codes >= 0)
    pairs = np.unique(key_codes[labelled].astype(np.int64) * (len(labels) + 1) + label_codes[labelled])
    labels_per_key = np.bincount(pairs // (len(labels) + 1), minlength=len(uniques))
    conflicting = (key_codes >= 0) & (labels_per_key[np.maximum(key_codes, 0)] > 1)
    if policy == "latest":
        keep = ~conflicting | ~pd.Series(key_codes).duplicated(keep="last").to_numpy()
    elif policy == "drop":
        keep = ~conflicting
    else:
        keep = np.ones(len(rows), dtype=bool)
    seqs = rows[SEQ].to_numpy()
    return seqs[keep], int(duplicate.sum()), seqs[conflicting]


def count_part_rows(paths: list[Path]) -> int:
    return sum(pq.ParquetFile(path).metadata.num_rows for path in paths)


def iter_row_batches(paths: list[Path], chunk_rows: int, columns: list[str] = LABELED_COLUMNS) -> Iterator[pa.Table]:
    """``columns`` of Parquet files of ``ROW_SCHEMA``, in order, ``chunk_rows`` rows at a time."""
    schema = pa.schema([ROW_SCHEMA.field(c) for c in columns])
    for path in paths:
        # pre_buffer (the default) caches every row group read until the iterator ends: memory would grow
        for batch in pq.ParquetFile(readable(path), pre_buffer=False).iter_batches(
            batch_size=chunk_rows, columns=columns
        ):
            yield pa.Table.from_batches([batch]).cast(schema)


def rows_at(paths: list[Path], seqs: np.ndarray, chunk_rows: int) -> pd.DataFrame:
    """The rows (all columns) at the given sequence numbers, in sequence order."""
    wanted = np.sort(seqs)
    parts, offset = [], 0
    for table in iter_row_batches(paths, chunk_rows):
        lo, hi = np.searchsorted(wanted, [offset, offset + table.num_rows])
        if hi > lo:
            parts.append(table.take(pa.array(wanted[lo:hi] - offset)).to_pandas())
        offset += table.num_rows
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LABELED_COLUMNS)


def _decide_in_memory(paths: list[Path], policy: str) -> tuple[np.ndarray, int, np.ndarray]:
    tables = [pq.read_table(path, columns=["text", "label"]) for path in paths]
    frame = pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame(columns=["text", "label"])
    frame[SEQ] = np.arange(len(frame), dtype=np.int64)
    return decide_rows(frame, policy)


def _split_into_partitions(paths: list[Path], partitions: int, chunk_rows: int, scratch: Path) -> list[Path]:
    """Write (text, label, _seq, _key) of every row to the partition its key hashes to, in sequence order.

    Partitions are Arrow IPC streams (a writer holds no row-group buffers, so many can be open at once).
    Python's own string hash is enough: partitions only live for the duration of one call.
    """
    writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
    options = pa.ipc.IpcWriteOptions(compression="lz4" if pa.Codec.is_available("lz4") else None)
    seq = 0
    try:
        for table in iter_row_batches(paths, chunk_rows, ["text", "label"]):
            keys = [text_key(t) for t in table.column("text").to_pylist()]
            buckets = np.fromiter((hash(k) for k in keys), dtype=np.int64, count=len(keys)) % partitions
            table = table.append_column(SEQ, pa.array(np.arange(seq, seq + len(keys), dtype=np.int64)))
            table = table.append_column(KEY, pa.array(keys, pa.string()))
            seq += len(keys)
            order = np.argsort(buckets, kind="stable")
            table = table.take(pa.array(order))
            bounds = np.searchsorted(buckets[order], np.arange(partitions + 1))
            for number in range(partitions):
                if bounds[number + 1] > bounds[number]:
                    if number not in writers:
                        writers[number] = pa.ipc.new_stream(
                            scratch / f"{number}.arrows", PARTITION_SCHEMA, options=options
                        )
                    writers[number].write_table(table.slice(bounds[number], bounds[number + 1] - bounds[number]))
    finally:
        for writer in writers.values():
            writer.close()
    return [scratch / f"{number}.arrows" for number in sorted(writers)]


def _read_partition(path: Path) -> pd.DataFrame:
    with pa.ipc.open_stream(path) as reader:
        return reader.read_all().to_pandas()


def _decide_partitioned(
    paths: list[Path], policy: str, keep: np.ndarray, chunk_rows: int, max_rows: int, scratch: Path
) -> tuple[int, np.ndarray]:
    """Set ``keep`` partition by partition; returns (duplicates, conflicting sequence numbers)."""
    partitions = max(2, math.ceil(2 * len(keep) / max_rows))  # about half the limit each, leaving room for skew
    scratch.mkdir(parents=True, exist_ok=True)
    duplicates, conflicting = 0, []
    try:
        for path in _split_into_partitions(paths, partitions, chunk_rows, scratch):
            part_kept, part_duplicates, part_conflicting = decide_rows(_read_partition(path), policy)
            keep[part_kept] = True
            duplicates += part_duplicates
            conflicting.append(part_conflicting)
            path.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    logger.info("deduplicated %d rows in %d partitions", len(keep), partitions)
    return duplicates, np.sort(np.concatenate(conflicting)) if conflicting else np.empty(0, dtype=np.int64)


def plan_rows(
    paths: list[Path],
    policy: str,
    max_conflict_share: float,
    new_rows: int,
    chunk_rows: int,
    max_rows_in_memory: int,
    scratch: Path,
) -> RowPlan:
    """Decide which rows of ``paths`` (read in order) to keep; raises ConflictError when the policy is
    ``fail`` and there is a conflict, or when conflicting rows exceed ``max_conflict_share`` of ``new_rows``."""
    keep = np.zeros(count_part_rows(paths), dtype=bool)
    if len(keep) <= max_rows_in_memory:
        kept, duplicates, conflicting = _decide_in_memory(paths, policy)
        keep[kept] = True
    else:
        duplicates, conflicting = _decide_partitioned(paths, policy, keep, chunk_rows, max_rows_in_memory, scratch)
    conflicts = rows_at(paths, conflicting, chunk_rows) if len(conflicting) else pd.DataFrame(columns=LABELED_COLUMNS)
    if len(conflicts):
        share = len(conflicts) / max(new_rows, 1)
        if policy == "fail" or share > max_conflict_share:
            examples = conflicts.head(3)[LABELED_COLUMNS].to_dict("records")
            raise ConflictError(
                f"{len(conflicts)} rows ({share:.2%} of {new_rows} new rows) share a normalised text with a different "
                f"label (policy {policy!r}, max share {max_conflict_share:.2%}); e.g. {examples}",
                conflicts,
            )
    return RowPlan(keep, duplicates, conflicts, int(len(conflicting) - keep[conflicting].sum()))
