"""Quarantine: refused files set aside with a report a person can act on.

Nothing is lost: a landing-zone file is moved (a symlink is moved itself, never its target; on object
storage, copied and then deleted), a file from elsewhere is copied, and an ``hf:`` source (nothing to copy)
gets a ``.source`` note.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import fsspec

from pipeline.atomic import atomic_write_text
from pipeline.data.sources import IngestionError, file_sha256, is_hf_uri
from pipeline.storage import DataPath, is_remote, move_or_copy

logger = logging.getLogger(__name__)


def quarantine_file(folder: DataPath, uri: str, sha: str | None, size: int, report: dict, move: bool) -> dict:
    """Put ``uri`` into ``folder`` with ``.report.json`` and ``.report.md`` beside it.

    ``report`` holds at least ``rule`` and ``message`` (and ``row``/``line``/``failures`` when known).
    Returns uri, rule, row, line, message, report (the Markdown path) and report_json.
    """
    now = datetime.now(UTC)
    name = re.sub(r"[^\w.-]+", "_", uri) + ".source" if is_hf_uri(uri) else Path(uri.split("::")[-1]).name
    dest = unused_path(folder, f"{now:%Y%m%dT%H%M%S}_{(sha or _best_effort_hash(uri))[:12]}_{name}")
    if is_hf_uri(uri):
        dest.write_text(uri + "\n", encoding="utf-8")
    elif is_remote(dest) or not is_local(uri):
        move_or_copy(uri, dest, move)
    elif move and Path(uri).is_symlink():
        os.replace(uri, dest)
    elif move:
        shutil.move(uri, dest)
    else:
        with fsspec.open(uri, "rb") as source, open(dest, "wb") as out:
            shutil.copyfileobj(source, out)
    full = {
        "file": uri,
        "sha256": sha,
        "size": size,
        "quarantined_as": str(dest),
        "time": now.isoformat(timespec="seconds"),
        **report,
    }
    _write_report(beside(dest, ".report.json"), json.dumps(full, indent=2, default=str))
    _write_report(beside(dest, ".report.md"), render_quarantine_report(full))
    return {
        "uri": uri,
        "rule": report.get("rule"),
        "row": report.get("row"),
        "line": report.get("line"),
        "message": report.get("message"),
        "report": f"{dest}.report.md",
        "report_json": f"{dest}.report.json",
    }


def beside(path: DataPath, suffix: str) -> DataPath:
    """``path`` with ``suffix`` appended to its name (a report next to its file)."""
    return path.parent / f"{path.name}{suffix}"


def _write_report(path: DataPath, text: str) -> None:
    # an object store's put is atomic; a local file is written aside and renamed
    path.write_text(text) if is_remote(path) else atomic_write_text(path, text)


def unused_path(folder: DataPath, name: str) -> DataPath:
    """``folder/name``, or ``name`` with ``-2``, ``-3`` ... before the suffix: quarantine never overwrites
    (callers hold the workspace lock, so no other ingest picks the same name meanwhile)."""
    path = folder / name
    stem, suffix = (name.split(".", 1) + [""])[:2]
    number = 1
    while path.exists() or path.is_symlink() or beside(path, ".report.json").exists():
        number += 1
        path = folder / (f"{stem}-{number}.{suffix}" if suffix else f"{stem}-{number}")
    return path


def is_local(uri: str) -> bool:
    """A path on this machine (not ``hf:``, not a URL)."""
    return not is_hf_uri(uri) and "://" not in uri and "::" not in uri


def _best_effort_hash(uri: str) -> str:
    """The file's content hash when its bytes can be read, else a hash of its name (marked ``name``)."""
    try:
        return file_sha256(uri)
    except Exception:
        return "name" + hashlib.sha256(uri.encode("utf-8")).hexdigest()


def retry_transient(action, config, uri: str, reads_only: bool = False):
    """``action()``, tried ``config.read_attempts`` times when it fails with an I/O error that may pass
    (a network share, an object store); a missing file or a parse error is not retried. With
    ``reads_only`` only read errors the reader reported (IngestionError ``unreadable``) are retried."""
    delay = config.read_retry_delay_s
    for attempt in range(1, config.read_attempts + 1):
        try:
            return action()
        except Exception as exc:
            if (
                attempt == config.read_attempts
                or not _may_be_transient(exc)
                or (reads_only and not isinstance(exc, IngestionError))
            ):
                raise
            logger.warning(
                "reading %s failed (%s); try %d of %d in %.1f s", uri, exc, attempt + 1, config.read_attempts, delay
            )
            time.sleep(delay)
            delay *= 2


def _may_be_transient(exc: BaseException) -> bool:
    if isinstance(exc, IngestionError):
        return exc.rule == "unreadable" and _may_be_transient(exc.__cause__) if exc.__cause__ else False
    permanent = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, UnicodeError)
    return isinstance(exc, OSError) and not isinstance(exc, permanent)


def render_quarantine_report(report: dict) -> str:
    """A person-readable Markdown version of a quarantine report."""
    lines = [
        f"# Quarantined: {Path(str(report['file'])).name}",
        "",
        f"- file: `{report['file']}`",
        f"- rule: **{report.get('rule')}**",
    ]
    if report.get("row") is not None:
        lines.append(f"- row: {report['row']}")
    if report.get("line") is not None:
        lines.append(f"- line: {report['line']}")
    lines += [f"- when: {report['time']}", "", str(report.get("message", "")), ""]
    for failure in report.get("failures", []):
        lines.append(
            f"- **{failure.get('rule')}** ({failure.get('severity', 'error')}): observed {failure.get('observed')}"
        )
        for example in failure.get("examples", [])[:5]:
            lines.append(f"  - {example}")
    lines += ["", "Fix the file and drop it into the landing zone again: new content is ingested."]
    return "\n".join(lines) + "\n"
