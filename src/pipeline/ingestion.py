"""Reading labeled files (CSV, TSV, JSONL, Parquet; optionally gzip) from local paths or fsspec URLs.

Every problem becomes an ``IngestionError`` naming the file, the row when there is one, and the rule.
"""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath

import fsspec
import pandas as pd

from pipeline.config import DataConfig

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
HASH_CHUNK = 1 << 20


class IngestionError(ValueError):
    """A labeled file cannot be read. ``rule`` is a short machine-readable name of what broke."""

    def __init__(self, file: str, rule: str, message: str, row: int | None = None):
        self.file, self.rule, self.row, self.message = file, rule, row, message
        where = f"{file}, row {row}" if row is not None else file
        super().__init__(f"{where}: [{rule}] {message}")

    def to_dict(self) -> dict:
        return {"file": self.file, "rule": self.rule, "row": self.row, "message": self.message}


@dataclass(frozen=True)
class FileInfo:
    """What the ledger needs to know about one file without parsing it."""

    uri: str
    size: int
    mtime: float | None


def normalise_text(text: str) -> str:
    """The form used for duplicate, conflict and split decisions: NFKC, casefolded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def detect_format(uri: str, configured: str = "auto") -> str:
    """The file's format from configuration or its extension (``.gz`` ignored)."""
    if configured != "auto":
        return configured
    name = PurePosixPath(uri.split("::")[-1]).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    suffix = PurePosixPath(name).suffix
    if suffix not in SUPPORTED_SUFFIXES:
        raise IngestionError(uri, "unsupported_format", f"unknown extension {suffix or '(none)'!r}; expected one of "
                             f"{', '.join(sorted(SUPPORTED_SUFFIXES))} (optionally .gz)")
    return SUPPORTED_SUFFIXES[suffix]


def is_supported(uri: str) -> bool:
    try:
        detect_format(uri)
        return True
    except IngestionError:
        return False


def file_sha256(uri: str) -> str:
    """SHA-256 of the file's bytes as stored (compressed files hash compressed), streamed."""
    digest = hashlib.sha256()
    with fsspec.open(uri, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _open_text_encoding(encoding: str) -> str:
    return "utf-8-sig" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding


def _check_not_binary(uri: str) -> None:
    with fsspec.open(uri, "rb", compression="infer") as handle:
        head = handle.read(8192)
    if b"\x00" in head:
        raise IngestionError(uri, "binary_file", "the file holds NUL bytes: it is binary, not delimited text or JSON lines")


def _read_frame(uri: str, fmt: str, config: DataConfig) -> pd.DataFrame:
    encoding = _open_text_encoding(config.encoding)
    if fmt == "parquet":
        with fsspec.open(uri, "rb", compression="infer") as handle:
            return pd.read_parquet(handle)
    _check_not_binary(uri)
    with fsspec.open(uri, "rt", compression="infer", encoding=encoding, newline="") as handle:
        if fmt == "jsonl":
            records = []
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise IngestionError(uri, "invalid_json", f"not a JSON object: {exc.msg}", row=number) from exc
                if not isinstance(record, dict):
                    raise IngestionError(uri, "invalid_json", "each line must be a JSON object", row=number)
                records.append(record)
            return pd.DataFrame.from_records(records)
        sep = "\t" if fmt == "tsv" else ","
        return pd.read_csv(handle, sep=sep, dtype=str, keep_default_na=False, na_values=[""], on_bad_lines="error")


def read_labeled_file(uri: str, config: DataConfig) -> pd.DataFrame:
    """Parse one file into columns ``text``, ``label`` (strings), ``source`` and ``row`` (1-based record number).

    Labels are kept as strings (``1`` and ``"1"`` are the same class). Missing values stay missing: the
    data contract, not the parser, decides whether they are allowed.
    """
    fmt = detect_format(uri, config.format)
    try:
        frame = _read_frame(uri, fmt, config)
    except IngestionError:
        raise
    except UnicodeDecodeError as exc:
        raise IngestionError(uri, "invalid_encoding",
                             f"bytes at offset {exc.start} are not valid {config.encoding}: {exc.reason}") from exc
    except pd.errors.EmptyDataError as exc:
        raise IngestionError(uri, "empty_file", "the file is empty") from exc
    except pd.errors.ParserError as exc:
        raise IngestionError(uri, "malformed_rows", str(exc).strip()) from exc
    except FileNotFoundError as exc:
        raise IngestionError(uri, "not_found", "no such file") from exc
    except (OSError, ValueError) as exc:
        raise IngestionError(uri, "unreadable", f"{type(exc).__name__}: {exc}") from exc

    missing = [c for c in (config.text_column, config.label_column) if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "(none)"
        hint = ""
        if len(frame.columns) == 1 and ("\t" in str(frame.columns[0]) or "," in str(frame.columns[0])):
            hint = " (the header holds another delimiter: is the format or extension right?)"
        raise IngestionError(uri, "missing_column", f"missing column(s) {', '.join(missing)}; found: {found}{hint}")
    if frame.empty:
        raise IngestionError(uri, "no_rows", "the file has a header but no data rows")

    out = pd.DataFrame({
        "text": frame[config.text_column].map(lambda v: None if pd.isna(v) else str(v)),
        "label": frame[config.label_column].map(_label_to_string),
    })
    out["source"] = uri
    out["row"] = range(1, len(out) + 1)
    return out.astype({"text": "object", "label": "object"})


def _label_to_string(value) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def stat_file(uri: str) -> FileInfo:
    """Size and modification time without reading the file (mtime is None where the filesystem has none)."""
    fs, path = fsspec.core.url_to_fs(uri)
    info = fs.info(path)
    mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    return FileInfo(uri=uri, size=int(info.get("size") or 0), mtime=float(mtime) if mtime is not None else None)
