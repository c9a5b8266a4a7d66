"""Where labeled data comes from: file URIs and Hugging Face ``hf:`` sources, their formats, sizes and hashes.

Nothing here parses rows or imports pandas, so ``pipeline data status`` (which only needs sizes,
modification times and, for changed files, hashes) starts fast.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import PurePosixPath

import fsspec

SUPPORTED_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
HF_PREFIX = "hf:"
HASH_CHUNK = 1 << 20


class IngestionError(ValueError):
    """A labeled file cannot be read. ``rule`` is a short machine-readable name of what broke.

    ``row`` is the 1-based data record when known; ``line`` the 1-based physical line of the file
    (header included) when known, which is what an editor shows.
    """

    def __init__(self, file: str, rule: str, message: str, row: int | None = None, line: int | None = None):
        self.file, self.rule, self.row, self.line, self.message = file, rule, row, line, message
        where = file
        if row is not None:
            where += f", row {row}"
        if line is not None:
            where += f", line {line}"
        super().__init__(f"{where}: [{rule}] {message}")

    def to_dict(self) -> dict:
        return {"file": self.file, "rule": self.rule, "row": self.row, "line": self.line, "message": self.message}


def reading_error(uri: str, exc: Exception, encoding: str, row: int | None = None, line: int | None = None):
    """The IngestionError that a parser's exception means; ``row``/``line`` where they locate the fault."""
    import pandas as pd

    if isinstance(exc, UnicodeDecodeError):
        message = f"bytes that are not valid {encoding}: {exc.reason}"
        return IngestionError(uri, "invalid_encoding", message, row=row, line=line)
    if isinstance(exc, pd.errors.EmptyDataError):
        return IngestionError(uri, "empty_file", "the file is empty")
    if isinstance(exc, pd.errors.ParserError):
        return IngestionError(uri, "malformed_rows", str(exc).strip(), row=row)
    if isinstance(exc, FileNotFoundError):
        return IngestionError(uri, "not_found", "no such file")
    return IngestionError(uri, "unreadable", f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class FileInfo:
    """What the ledger needs to know about one file without parsing it."""

    uri: str
    size: int
    mtime: float | None


def is_hf_uri(uri: str) -> bool:
    return uri.startswith(HF_PREFIX)


def parse_hf_uri(uri: str) -> tuple[str, str | None]:
    """``hf:NAME[:CONFIG]`` -> (NAME, CONFIG or None). NAME is a hub id or a local folder."""
    name, _, config = uri[len(HF_PREFIX) :].partition(":")
    if not name:
        raise IngestionError(uri, "bad_source", "expected hf:NAME[:CONFIG], e.g. hf:glue:sst2 or hf:/path/to/folder")
    return name, config or None


def detect_format(uri: str, configured: str = "auto") -> str:
    """The source's format from configuration or its extension (``.gz`` ignored); ``hf`` for ``hf:`` sources."""
    if is_hf_uri(uri):
        return "hf"
    if configured != "auto":
        return configured
    name = PurePosixPath(uri.split("::")[-1]).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    suffix = PurePosixPath(name).suffix
    if suffix not in SUPPORTED_SUFFIXES:
        raise IngestionError(
            uri,
            "unsupported_format",
            f"unknown extension {suffix or '(none)'!r}; expected one of "
            f"{', '.join(sorted(SUPPORTED_SUFFIXES))} (optionally .gz)",
        )
    return SUPPORTED_SUFFIXES[suffix]


def is_supported(uri: str) -> bool:
    try:
        detect_format(uri)
        return True
    except IngestionError:
        return False


def file_sha256(uri: str) -> str:
    """SHA-256 of the file's bytes as stored (compressed files hash compressed), streamed in 1 MiB reads."""
    digest = hashlib.sha256()
    with fsspec.open(uri, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def stat_file(uri: str) -> FileInfo:
    """Size and modification time without reading the file (mtime is None where there is none, e.g. ``hf:``)."""
    if is_hf_uri(uri):
        return FileInfo(uri=uri, size=0, mtime=None)
    if "://" not in uri and "::" not in uri:  # a local path: skip fsspec's URL handling (status calls this often)
        stat = os.stat(uri)
        return FileInfo(uri=uri, size=stat.st_size, mtime=stat.st_mtime)
    fs, path = fsspec.core.url_to_fs(uri)
    fs.invalidate_cache(path)  # a listing cached earlier in this process may predate the file
    info = fs.info(path)
    mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    return FileInfo(uri=uri, size=int(info.get("size") or 0), mtime=float(mtime) if mtime is not None else None)


def check_source_allowed(uri: str, allowed_schemes: list[str], allowed_hosts: list[str] | None = None) -> None:
    """Raise IngestionError (rule ``source_not_allowed``) unless every scheme of ``uri`` is allowed.

    Local paths are scheme ``file``, ``hf:`` sources ``hf``; chained fsspec URLs (``simplecache::s3://b/k``)
    are checked link by link. With ``allowed_hosts``, a remote link's host (or bucket) must be listed too:
    a value typed into the run form must not make the pipeline fetch from anywhere (SSRF).
    """
    from urllib.parse import urlsplit

    allowed = {s.lower() for s in allowed_schemes}
    if is_hf_uri(uri):
        links = [("hf", None)]
    else:
        links = []
        for link in uri.split("::"):
            if "://" not in link:
                links.append(("file", None))
                continue
            parts = urlsplit(link)
            links.append((parts.scheme.lower(), parts.hostname))
    for scheme, host in links:
        scheme = "file" if scheme == "local" else scheme
        if scheme not in allowed:
            raise IngestionError(
                uri,
                "source_not_allowed",
                f"scheme {scheme!r} is not in data.allowed_url_schemes "
                f"({', '.join(sorted(allowed))}); add it there to read from it",
            )
        if host and allowed_hosts and scheme != "file" and host.lower() not in {h.lower() for h in allowed_hosts}:
            raise IngestionError(uri, "source_not_allowed", f"host {host!r} is not in data.allowed_url_hosts")
