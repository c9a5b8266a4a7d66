"""Quarantine: refused files set aside with a report a person can act on.

Nothing is lost: a landing-zone file is moved (a symlink is moved itself, never its target), a file
from elsewhere is copied, and an ``hf:`` source (nothing to copy) gets a ``.source`` note.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import fsspec

from pipeline.atomic import atomic_write_text
from pipeline.data.sources import is_hf_uri


def quarantine_file(folder: Path, uri: str, sha: str | None, size: int, report: dict, move: bool) -> dict:
    """Put ``uri`` into ``folder`` with ``.report.json`` and ``.report.md`` beside it.

    ``report`` holds at least ``rule`` and ``message`` (and ``row``/``line``/``failures`` when known).
    Returns uri, rule, row, line, message, report (the Markdown path) and report_json.
    """
    now = datetime.now(timezone.utc)
    name = re.sub(r"[^\w.-]+", "_", uri) + ".source" if is_hf_uri(uri) else Path(uri.split("::")[-1]).name
    dest = folder / f"{now:%Y%m%dT%H%M%S}_{(sha or 'nohash')[:8]}_{name}"
    if is_hf_uri(uri):
        dest.write_text(uri + "\n", encoding="utf-8")
    elif move and Path(uri).is_symlink():
        os.replace(uri, dest)
    elif move:
        shutil.move(uri, dest)
    else:
        with fsspec.open(uri, "rb") as source, open(dest, "wb") as out:
            shutil.copyfileobj(source, out)
    full = {"file": uri, "sha256": sha, "size": size, "quarantined_as": str(dest),
            "time": now.isoformat(timespec="seconds"), **report}
    atomic_write_text(Path(f"{dest}.report.json"), json.dumps(full, indent=2, default=str))
    atomic_write_text(Path(f"{dest}.report.md"), render_quarantine_report(full))
    return {"uri": uri, "rule": report.get("rule"), "row": report.get("row"), "line": report.get("line"),
            "message": report.get("message"), "report": f"{dest}.report.md", "report_json": f"{dest}.report.json"}


def render_quarantine_report(report: dict) -> str:
    """A person-readable Markdown version of a quarantine report."""
    lines = [f"# Quarantined: {Path(str(report['file'])).name}", "",
             f"- file: `{report['file']}`", f"- rule: **{report.get('rule')}**"]
    if report.get("row") is not None:
        lines.append(f"- row: {report['row']}")
    if report.get("line") is not None:
        lines.append(f"- line: {report['line']}")
    lines += [f"- when: {report['time']}", "", str(report.get("message", "")), ""]
    for failure in report.get("failures", []):
        lines.append(f"- **{failure.get('rule')}** ({failure.get('severity', 'error')}): observed {failure.get('observed')}")
        for example in failure.get("examples", [])[:5]:
            lines.append(f"  - {example}")
    lines += ["", "Fix the file and drop it into the landing zone again: new content is ingested."]
    return "\n".join(lines) + "\n"
