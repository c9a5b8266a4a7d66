"""The inbox and its ledger: which unlabeled files were scored, by which model version, into which output.

Files are keyed by content hash, so a file is scored once however often it is listed (renamed or copied
files included). A failed file is tried again on later runs, up to ``scoring.max_attempts`` times.
The ledger (``ledger/scoring.json``) is replaced atomically; a file lock keeps two runs from scoring
the same inbox at once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import fsspec

from pipeline.atomic import atomic_write_text
from pipeline.data.sources import file_sha256, is_supported, stat_file
from pipeline.workspace import Workspace

SCORED, FAILED = "scored", "failed"


@dataclass(frozen=True)
class InboxFile:
    uri: str
    sha256: str


def inbox_dir(workspace: Workspace) -> Path:
    return workspace.root / "inbox"


def predictions_dir(workspace: Workspace) -> Path:
    return workspace.root / "predictions"


def to_label_dir(workspace: Workspace) -> Path:
    return workspace.root / "to_label"


def ledger_path(workspace: Workspace) -> Path:
    return workspace.ledger / "scoring.json"


def lock_path(workspace: Workspace) -> Path:
    return workspace.root / ".scoring.lock"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def list_inputs(paths: list[str]) -> list[str]:
    """Files named or found (not recursively) in folders, with supported extensions; hidden files skipped."""
    found: list[str] = []
    for path in paths:
        fs, _, (root,) = fsspec.get_fs_token_paths(path)
        if fs.isdir(root):
            entries = sorted(fs.ls(root, detail=False))
            names = [
                e for e in entries if not PurePosixPath(e).name.startswith(".") and is_supported(e) and fs.isfile(e)
            ]
            found.extend(names if "://" not in path else [fs.unstrip_protocol(e) for e in names])
        else:
            found.append(path)
    return list(dict.fromkeys(found))


def output_name(uri: str, sha256: str, file_format: str, kind: str = "predictions") -> str:
    """``<input stem>.<8 hex of its hash>.<kind>.<format>``: the input's name, never overwritten by other content."""
    name = PurePosixPath(uri.split("::")[-1].rstrip("/")).name or "input"
    name = re.sub(r"\.gz$", "", name, flags=re.IGNORECASE)
    stem = re.sub(r"[^\w.-]+", "_", PurePosixPath(name).stem) or "input"
    return f"{stem}.{sha256[:8]}.{kind}.{file_format}"


class ScoringLedger:
    """``files``: one record per content hash (status, uris, output, model version, rows, attempts, error, time)."""

    def __init__(self, workspace: Workspace):
        self.path = ledger_path(workspace)

    def read(self) -> dict:
        if not self.path.exists():
            return {"files": {}}
        return json.loads(self.path.read_text(encoding="utf-8"))

    def _write(self, ledger: dict) -> None:
        atomic_write_text(self.path, json.dumps(ledger, indent=1, sort_keys=True))

    def plan(self, uris: list[str], max_attempts: int) -> tuple[list[InboxFile], list[dict]]:
        """(files to score now, skipped files with the reason); each content once even when listed twice.

        A file whose size and modification time match the last run is not hashed again.
        """
        ledger = self.read()
        files, seen = ledger["files"], ledger.setdefault("seen", {})
        todo: list[InboxFile] = []
        skipped: list[dict] = []
        planned: set[str] = set()
        for uri in uris:
            try:
                sha = self._content_hash(uri, seen)
            except OSError as exc:
                skipped.append({"uri": uri, "reason": f"cannot be read: {type(exc).__name__}: {exc}"})
                continue
            record = files.get(sha)
            if sha in planned:
                skipped.append({"uri": uri, "reason": "same content as another file in this run"})
            elif record and record["status"] == SCORED:
                skipped.append(
                    {
                        "uri": uri,
                        "reason": f"already scored by version {record['model_version']} into {record['output']}",
                    }
                )
            elif record and record.get("attempts", 0) >= max_attempts:
                reason = f"failed {record['attempts']} times (last: {record.get('error')})"
                skipped.append({"uri": uri, "reason": reason})
            else:
                todo.append(InboxFile(uri, sha))
                planned.add(sha)
        self._write(ledger)
        return todo, skipped

    @staticmethod
    def _content_hash(uri: str, seen: dict) -> str:
        info = stat_file(uri)
        known = seen.get(uri)
        if known and known["size"] == info.size and known["mtime"] == info.mtime and info.mtime is not None:
            return known["sha256"]
        sha = file_sha256(uri)
        seen[uri] = {"size": info.size, "mtime": info.mtime, "sha256": sha}
        return sha

    def record(self, item: InboxFile, status: str, **fields) -> None:
        ledger = self.read()
        previous = ledger["files"].get(item.sha256, {})
        uris = list(dict.fromkeys([*previous.get("uris", []), item.uri]))
        attempts = previous.get("attempts", 0) + (status == FAILED)
        ledger["files"][item.sha256] = {
            **previous,
            **fields,
            "status": status,
            "uris": uris,
            "attempts": attempts,
            "time": _now(),
        }
        self._write(ledger)
