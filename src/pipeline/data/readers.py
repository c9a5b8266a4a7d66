"""Reading labeled data (CSV, TSV, JSONL, Parquet, optionally gzip; Hugging Face ``hf:`` sources) in chunks.

Files are parsed ``data.chunk_rows`` rows at a time, so memory stays bounded whatever the file size.
Every problem becomes an ``IngestionError`` naming the file, the row or line when known, and the rule.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd

from pipeline.config import DataConfig
from pipeline.data.delimited import iter_delimited
from pipeline.data.sources import (
    HASH_CHUNK,
    IngestionError,
    detect_format,
    file_sha256,
    is_hf_uri,
    reading_error,
)

logger = logging.getLogger(__name__)

LABELED_COLUMNS = ["text", "label", "source", "row"]
_PANDAS_LINE = re.compile(r"line (\d+)")


def normalise_text(text: str) -> str:
    """The form used for duplicate, conflict and split decisions: NFKC, casefolded, single spaces."""
    if text.isascii():  # NFKC leaves ASCII unchanged and casefold is lower there: same result, 3x faster
        return " ".join(text.lower().split())
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _open_text_encoding(encoding: str) -> str:
    return "utf-8-sig" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding


def _check_not_binary(uri: str) -> None:
    with fsspec.open(uri, "rb", compression="infer") as handle:
        head = handle.read(8192)
    if b"\x00" in head:
        raise IngestionError(
            uri, "binary_file", "the file holds NUL bytes: it is binary, not delimited text or JSON lines"
        )


def _first_undecodable_line(uri: str, encoding: str) -> int | None:
    """The 1-based line holding the first bytes that do not decode, scanned in bounded reads."""
    decoder = codecs.getincrementaldecoder(_open_text_encoding(encoding))()
    line = 1
    with fsspec.open(uri, "rb", compression="infer") as handle:
        while piece := handle.readline(HASH_CHUNK):
            try:
                decoder.decode(piece)
            except UnicodeDecodeError:
                return line
            line += piece.endswith(b"\n")
    return None


def _jsonl_record(record, uri: str, config: DataConfig, row: int, line: int) -> tuple:
    """(text, label) of one JSON object; a key that is absent is None (the contract reports it)."""
    text, label = record.get(config.text_column), record.get(config.label_column)
    if text is not None and not isinstance(text, str):
        raise IngestionError(
            uri,
            "text_not_string",
            f"{config.text_column!r} is a JSON {type(text).__name__} "
            f"({json.dumps(text)[:60]}), not a string: write the text in quotes",
            row=row,
            line=line,
        )
    if isinstance(label, (list, dict)):
        raise IngestionError(
            uri,
            "label_not_scalar",
            f"{config.label_column!r} is a JSON {type(label).__name__}, not a string or number",
            row=row,
            line=line,
        )
    return text, label


def iter_json_objects(handle, uri: str) -> Iterator[tuple[int, int, dict]]:
    """``(row, line, object)`` for each non-blank line of a JSON-lines file; blank lines are skipped.

    Raises IngestionError ``invalid_json`` naming the row and line of a line that is not a JSON object.
    """
    row = 0
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        row += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IngestionError(uri, "invalid_json", f"not a JSON object: {exc.msg}", row=row, line=number) from exc
        if not isinstance(record, dict):
            raise IngestionError(uri, "invalid_json", "each line must be a JSON object", row=row, line=number)
        yield row, number, record


def _iter_jsonl(uri: str, encoding: str, config: DataConfig, chunk_rows: int) -> Iterator[pd.DataFrame]:
    columns = list(dict.fromkeys((config.text_column, config.label_column)))
    keys_seen: set[str] = set()
    with fsspec.open(uri, "rt", compression="infer", encoding=encoding, newline="") as handle:
        records, seen = [], 0
        for row, number, record in iter_json_objects(handle, uri):
            text, label = _jsonl_record(record, uri, config, row, number)
            if len(keys_seen) < len(columns):
                keys_seen.update(c for c in columns if c in record)
            records.append((text, label) if len(columns) == 2 else (text,))
            seen += 1
            if len(records) == chunk_rows:
                yield _jsonl_frame(records, columns, keys_seen)
                records = []
        if records or seen == 0:
            yield _jsonl_frame(records, columns, keys_seen)


def _jsonl_frame(records: list[tuple], columns: list[str], keys_seen: set[str]) -> pd.DataFrame:
    """Only the keys met so far become columns, so a file that never names the label fails ``missing_column``."""
    frame = pd.DataFrame.from_records(records, columns=columns) if records else pd.DataFrame(columns=columns)
    return frame[[c for c in columns if c in keys_seen]]


def _iter_parquet(uri: str, config: DataConfig, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    with fsspec.open(uri, "rb", compression="infer") as handle:
        parquet = pq.ParquetFile(handle, pre_buffer=False)  # pre-buffering keeps every row group read
        names = parquet.schema_arrow.names
        wanted = list(dict.fromkeys((config.text_column, config.label_column)))
        if any(column not in names for column in wanted) or parquet.metadata.num_rows == 0:
            yield pd.DataFrame(columns=names)
            return
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=wanted):
            yield batch.to_pandas()


def _iter_raw(uri: str, fmt: str, config: DataConfig, chunk_rows: int, cache_dir) -> Iterator[pd.DataFrame]:
    """Frames of the file's own columns, ``chunk_rows`` rows at a time (a header-only file yields one empty frame)."""
    if fmt == "hf":
        from pipeline.data.hf_source import iter_hf_frames

        yield from iter_hf_frames(uri, config, chunk_rows, cache_dir)
        return
    if fmt == "parquet":
        yield from _iter_parquet(uri, config, chunk_rows)
        return
    _check_not_binary(uri)
    encoding = _open_text_encoding(config.encoding)
    if fmt == "jsonl":
        yield from _iter_jsonl(uri, encoding, config, chunk_rows)
        return
    yield from iter_delimited(
        uri, "\t" if fmt == "tsv" else ",", encoding, chunk_rows, config.label_column, config.quoting
    )


def _check_columns(frame: pd.DataFrame, uri: str, config: DataConfig) -> None:
    missing = [c for c in (config.text_column, config.label_column) if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "(none)"
        hint = ""
        if len(frame.columns) == 1 and ("\t" in str(frame.columns[0]) or "," in str(frame.columns[0])):
            hint = " (the header holds another delimiter: is the format or extension right?)"
        raise IngestionError(uri, "missing_column", f"missing column(s) {', '.join(missing)}; found: {found}{hint}")


def _text_values(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_string_dtype(series):
        return series.to_numpy(dtype=object, na_value=None)
    return np.array([None if _is_missing(v) else str(v) for v in series], dtype=object)


def _label_values(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_string_dtype(series):
        stripped = series.str.strip()
        return stripped.where(stripped != "").to_numpy(dtype=object, na_value=None)
    return np.array([_label_to_string(v) for v in series], dtype=object)


def _is_missing(value) -> bool:
    return value is None or (not isinstance(value, (str, list, dict)) and bool(pd.isna(value)))


def _label_to_string(value) -> str | None:
    if _is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _to_labeled(frame: pd.DataFrame, uri: str, config: DataConfig, offset: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": pd.Series(_text_values(frame[config.text_column]), dtype=object),
            "label": pd.Series(_label_values(frame[config.label_column]), dtype=object),
            "source": uri,
            "row": np.arange(offset + 1, offset + len(frame) + 1, dtype=np.int64),
        }
    )


def iter_labeled_chunks(
    uri: str, config: DataConfig, chunk_rows: int | None = None, cache_dir: str | Path | None = None
) -> Iterator[pd.DataFrame]:
    """Parse a file or ``hf:`` source into frames of columns ``text``, ``label``, ``source``, ``row``.

    At most ``chunk_rows`` (default ``data.chunk_rows``) rows per frame; ``row`` is the 1-based record
    number across the whole file. Labels are strings (``1`` and ``"1"`` are the same class); missing
    texts and labels are None (the data contract, not the parser, decides whether they are allowed).
    Raises IngestionError (possibly after some frames were yielded: consume all before committing).
    """
    fmt = detect_format(uri, config.format)
    size = chunk_rows or config.chunk_rows
    rows, checked = 0, False
    try:
        for raw in _iter_raw(uri, fmt, config, size, cache_dir):
            _check_columns(raw, uri, config)  # every chunk: a JSONL key may vanish later in the file
            checked = True
            if raw.empty:
                continue
            chunk = _to_labeled(raw, uri, config, rows)
            rows += len(chunk)
            yield chunk
    except IngestionError:
        raise
    except (OSError, ValueError) as exc:
        found = _PANDAS_LINE.search(str(exc)) if isinstance(exc, pd.errors.ParserError) else None
        row = int(found.group(1)) - 1 if found else None  # pandas counts records, the header being the first
        line = _first_undecodable_line(uri, config.encoding) if isinstance(exc, UnicodeDecodeError) else None
        raise reading_error(uri, exc, config.encoding, row=row, line=line) from exc
    if not checked:
        raise IngestionError(uri, "empty_file", "the file is empty")
    if rows == 0:
        raise IngestionError(uri, "no_rows", "the file has a header but no data rows")


def read_labeled_file(uri: str, config: DataConfig) -> pd.DataFrame:
    """The whole file as one frame (see ``iter_labeled_chunks``); for large files prefer the iterator."""
    frame = pd.concat(list(iter_labeled_chunks(uri, config)), ignore_index=True)
    return frame.astype({"text": "object", "label": "object"})


def count_rows(uri: str, config: DataConfig) -> int:
    """Data rows of a file, parsed in chunks (raises IngestionError like the reader)."""
    return sum(len(chunk) for chunk in iter_labeled_chunks(uri, config))


def content_sha256(uri: str, config: DataConfig, cache_dir: str | Path | None = None) -> str:
    """The content hash the ledger keys on: the file's bytes, or an ``hf:`` dataset's rows."""
    if is_hf_uri(uri):
        from pipeline.data.hf_source import hf_sha256

        return hf_sha256(uri, config, cache_dir)
    return file_sha256(uri)
