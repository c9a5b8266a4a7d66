"""Reading unlabeled files (CSV, TSV, JSONL, Parquet; local or fsspec URLs; gzip allowed) in bounded chunks.

Every frame keeps the file's own columns; the text column is checked once. Problems become an
``IngestionError`` naming the file, the row when known, and the rule.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import fsspec
import pandas as pd

from pipeline.data.readers import iter_json_objects
from pipeline.data.sources import IngestionError, detect_format, reading_error

STDIN = "-"


def _iter_jsonl(handle, uri: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    records: list[dict] = []
    for _, _, record in iter_json_objects(handle, uri):
        records.append(record)
        if len(records) == chunk_rows:
            yield pd.DataFrame.from_records(records)
            records = []
    if records:
        yield pd.DataFrame.from_records(records)


def _iter_raw(uri: str, fmt: str, encoding: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with fsspec.open(uri, "rb", compression="infer") as handle:
            parquet = pq.ParquetFile(handle, pre_buffer=False)
            for batch in parquet.iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
        return
    if fmt == "jsonl":
        with fsspec.open(uri, "rt", compression="infer", encoding=encoding, newline="") as handle:
            yield from _iter_jsonl(handle, uri, chunk_rows)
        return
    with fsspec.open(uri, "rb", compression="infer") as handle:
        with pd.read_csv(
            handle,
            sep="\t" if fmt == "tsv" else ",",
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            on_bad_lines="error",
            encoding=encoding,
            chunksize=chunk_rows,
        ) as reader:
            yield from reader


def iter_stdin_lines(chunk_rows: int, text_column: str = "text", stream=None) -> Iterator[pd.DataFrame]:
    """Standard input, one text per line (blank lines skipped), as frames with one ``text_column``."""
    stream = stream or sys.stdin
    texts: list[str] = []
    for line in stream:
        text = line.rstrip("\r\n")
        if text.strip():
            texts.append(text)
        if len(texts) == chunk_rows:
            yield pd.DataFrame({text_column: texts})
            texts = []
    if texts:
        yield pd.DataFrame({text_column: texts})


def iter_unlabeled_chunks(
    uri: str, text_column: str, chunk_rows: int, file_format: str = "auto", encoding: str = "utf-8"
) -> Iterator[pd.DataFrame]:
    """Frames of at most ``chunk_rows`` rows with the file's columns; ``text_column`` as strings ('' when missing).

    Raises IngestionError: unknown format, missing text column, unreadable or empty file.
    """
    fmt = detect_format(uri, file_format)
    if fmt == "hf":
        raise IngestionError(uri, "unsupported_format", "hf: sources hold labeled data; score a file instead")
    encoding = "utf-8-sig" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding
    rows, checked = 0, False
    try:
        for raw in _iter_raw(uri, fmt, encoding, chunk_rows):
            if not checked:
                if text_column not in raw.columns:
                    found = ", ".join(map(str, raw.columns)) or "(none)"
                    raise IngestionError(uri, "missing_column", f"missing column {text_column}; found: {found}")
                checked = True
            if raw.empty:
                continue
            raw = raw.reset_index(drop=True)
            raw[text_column] = raw[text_column].map(
                lambda v: "" if v is None or (isinstance(v, float) and v != v) else str(v)
            )
            rows += len(raw)
            yield raw
    except IngestionError:
        raise
    except (OSError, ValueError) as exc:
        raise reading_error(uri, exc, encoding, row=rows + 1) from exc
    if not checked:
        raise IngestionError(uri, "empty_file", "the file is empty")
