"""The landing zone, the ledger of every file seen, quarantine, and snapshot commits.

Ingestion is two steps so that the data contract can sit between them:
``stage`` finds new files and parses them (unparseable files go to quarantine at once), then
``commit`` quarantines the files the contract rejected and writes a new snapshot from the rest.
Both steps hold a file lock on the workspace, so two processes never corrupt the ledger.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import fsspec
import pandas as pd
from filelock import FileLock, Timeout

from pipeline.config import DataConfig
from pipeline.ingestion import FileInfo, IngestionError, file_sha256, is_supported, read_labeled_file, stat_file
from pipeline.snapshots import (Snapshot, atomic_write_text, build_snapshot_frame, load_snapshot, snapshot_id_for,
                                write_snapshot)
from pipeline.workspace import Workspace

logger = logging.getLogger(__name__)


class DataStoreBusy(RuntimeError):
    """Another process holds the workspace's data lock for longer than the wait allowed."""


@dataclass
class StagedFile:
    uri: str
    sha256: str
    size: int
    mtime: float | None
    frame: pd.DataFrame

    @property
    def rows(self) -> int:
        return len(self.frame)


@dataclass
class StagedBatch:
    files: list[StagedFile] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def frame(self) -> pd.DataFrame:
        if not self.files:
            return pd.DataFrame(columns=["text", "label", "source", "row"])
        return pd.concat([f.frame for f in self.files], ignore_index=True)


@dataclass
class IngestResult:
    snapshot_id: str | None
    new_files: list[str]
    skipped_files: list[dict]
    quarantined: list[dict]
    rows_added: int
    snapshot_changed: bool

    def to_dict(self) -> dict:
        return {"snapshot_id": self.snapshot_id, "new_files": self.new_files, "skipped_files": self.skipped_files,
                "quarantined": self.quarantined, "rows_added": self.rows_added,
                "snapshot_changed": self.snapshot_changed}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class DataStore:
    """Files in, snapshots out, with a ledger that remembers every file by content hash."""

    def __init__(self, workspace: Workspace, config: DataConfig, lock_timeout: float = 600.0):
        self.workspace = workspace.ensure()
        self.config = config
        self.lock = FileLock(str(workspace.lock_file), timeout=lock_timeout)
        self.ledger_path = workspace.ledger / "ledger.json"

    # -- ledger ---------------------------------------------------------------------------------
    def read_ledger(self) -> dict:
        if not self.ledger_path.exists():
            return {"files": {}, "seen": {}, "head": None, "history": []}
        return json.loads(self.ledger_path.read_text(encoding="utf-8"))

    def _write_ledger(self, ledger: dict) -> None:
        atomic_write_text(self.ledger_path, json.dumps(ledger, indent=1, sort_keys=True))

    def head(self) -> Snapshot | None:
        """The newest snapshot, or None before the first ingestion."""
        head = self.read_ledger()["head"]
        return load_snapshot(self.workspace.snapshots, head) if head else None

    # -- discovery ------------------------------------------------------------------------------
    def discover(self, paths: list[str] | None = None) -> list[str]:
        """Supported files under the given paths/URLs (folders recursively), else under the landing zone."""
        roots = list(paths or []) or [str(self.workspace.landing)]
        found: list[str] = []
        for root in roots:
            fs, path = fsspec.core.url_to_fs(root)
            protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
            local = protocol in ("file", "local")
            if any(ch in path for ch in "*?["):
                matches = sorted(fs.glob(path))
            elif fs.isdir(path):
                matches = sorted(p for p in fs.find(path) if not Path(p).name.startswith("."))
            elif fs.exists(path):
                matches = [path]
            else:
                raise IngestionError(root, "not_found", "no such file, folder or URL")
            for match in matches:
                uri = str(Path(match).absolute()) if local else fs.unstrip_protocol(match)
                if is_supported(uri):
                    found.append(uri)
        return found

    def _refuse_escaping_link(self, uri: str) -> str | None:
        path = Path(uri)
        if not path.is_symlink():
            return None
        landing = self.workspace.landing.resolve()
        target = path.resolve()
        if path.absolute().is_relative_to(landing) and not target.is_relative_to(landing):
            return f"symbolic link to {target}, outside the landing zone {landing}"
        return None

    def _fingerprint(self, info: FileInfo, ledger: dict) -> str:
        seen = ledger["seen"].get(info.uri)
        if seen and seen["size"] == info.size and info.mtime is not None and seen["mtime"] == info.mtime:
            return seen["sha256"]
        return file_sha256(info.uri)

    def pending(self, paths: list[str] | None = None) -> list[dict]:
        """Files not ingested yet (new content), checking size and mtime before hashing anything."""
        ledger = self.read_ledger()
        out = []
        for uri in self.discover(paths):
            info = stat_file(uri)
            sha = self._fingerprint(info, ledger)
            if sha not in ledger["files"]:
                out.append({"uri": uri, "size": info.size, "sha256": sha})
        return out

    # -- staging --------------------------------------------------------------------------------
    def stage(self, paths: list[str] | None = None) -> StagedBatch:
        """Parse every file whose content the ledger has not seen; quarantine those that cannot be parsed."""
        batch = StagedBatch()
        with self._locked():
            ledger = self.read_ledger()
            claimed: set[str] = set()
            for uri in self.discover(paths):
                info = stat_file(uri)
                refusal = self._refuse_escaping_link(uri)
                if refusal:
                    batch.quarantined.append(self._quarantine(
                        ledger, uri, None, info, IngestionError(uri, "symlink_outside_landing", refusal).to_dict()))
                    continue
                sha = self._fingerprint(info, ledger)
                ledger["seen"][uri] = {"size": info.size, "mtime": info.mtime, "sha256": sha}
                known = ledger["files"].get(sha)
                if known or sha in claimed:
                    status = known["status"] if known else "duplicate"
                    if known and uri not in known["uris"]:
                        known["uris"].append(uri)
                    batch.skipped.append({"uri": uri, "sha256": sha, "reason": f"content already {status}"})
                    continue
                try:
                    frame = read_labeled_file(uri, self.config)
                except IngestionError as exc:
                    batch.quarantined.append(self._quarantine(ledger, uri, sha, info, exc.to_dict()))
                    continue
                claimed.add(sha)
                batch.files.append(StagedFile(uri, sha, info.size, info.mtime, frame))
            self._write_ledger(ledger)
        return batch

    # -- commit ---------------------------------------------------------------------------------
    def commit(self, batch: StagedBatch, rejected: dict[str, dict] | None = None) -> IngestResult:
        """Quarantine ``rejected`` files (uri -> failure report) and snapshot the rest of the batch.

        Files another process committed meanwhile are skipped. Raises ``ConflictError`` when the
        conflict policy refuses the batch; then nothing is written.
        """
        rejected = rejected or {}
        quarantined = list(batch.quarantined)
        with self._locked():
            ledger = self.read_ledger()
            accepted = []
            skipped = list(batch.skipped)
            for staged in batch.files:
                if staged.sha256 in ledger["files"]:
                    skipped.append({"uri": staged.uri, "sha256": staged.sha256, "reason": "committed by another run"})
                elif staged.uri in rejected:
                    info = FileInfo(staged.uri, staged.size, staged.mtime)
                    quarantined.append(self._quarantine(ledger, staged.uri, staged.sha256, info, rejected[staged.uri]))
                else:
                    accepted.append(staged)
            head_id = ledger["head"]
            changed = False
            if accepted:
                parent = load_snapshot(self.workspace.snapshots, head_id) if head_id else None
                members = [sha for sha, rec in ledger["files"].items() if rec["status"] == "accepted"]
                members += [s.sha256 for s in accepted]
                frame, duplicates, conflicts = build_snapshot_frame(
                    parent.load() if parent else None, [s.frame for s in accepted],
                    self.config.conflict_policy, self.config.max_conflict_share)
                files = (parent.manifest.files if parent else []) + [
                    {"uri": s.uri, "sha256": s.sha256, "rows": s.rows, "size": s.size} for s in accepted]
                snapshot = write_snapshot(self.workspace.snapshots, snapshot_id_for(members), head_id, frame, files,
                                          duplicates, conflicts)
                for staged in accepted:
                    ledger["files"][staged.sha256] = {
                        "sha256": staged.sha256, "uris": [staged.uri], "size": staged.size, "rows": staged.rows,
                        "status": "accepted", "snapshot": snapshot.id, "time": _now()}
                changed = snapshot.id != head_id
                if changed:
                    ledger["head"] = snapshot.id
                    ledger["history"].append(snapshot.id)
            self._write_ledger(ledger)
        return IngestResult(ledger["head"], [s.uri for s in accepted], skipped, quarantined,
                            sum(s.rows for s in accepted), changed)

    def ingest(self, paths: list[str] | None = None, check=None) -> IngestResult:
        """Stage, run ``check(batch, head) -> {uri: failure report}`` when given, and commit."""
        batch = self.stage(paths)
        rejected = check(batch, self.head()) if check and batch.files else {}
        return self.commit(batch, rejected)

    # -- quarantine -----------------------------------------------------------------------------
    def _quarantine(self, ledger: dict, uri: str, sha: str | None, info: FileInfo, report: dict) -> dict:
        """Move (landing zone) or copy (elsewhere) the file into quarantine with JSON and Markdown reports."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        name = Path(uri.split("::")[-1]).name
        dest = self.workspace.quarantine / f"{stamp}_{(sha or 'nohash')[:8]}_{name}"
        source = Path(uri)
        in_landing = source.absolute().is_relative_to(self.workspace.landing) if source.is_absolute() else False
        if in_landing and source.is_symlink():
            os.replace(source, dest)
        elif in_landing:
            shutil.move(str(source), dest)
        else:
            with fsspec.open(uri, "rb") as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
        full = {"file": uri, "sha256": sha, "size": info.size, "quarantined_as": str(dest), "time": _now(), **report}
        Path(f"{dest}.report.json").write_text(json.dumps(full, indent=2, default=str), encoding="utf-8")
        Path(f"{dest}.report.md").write_text(render_quarantine_report(full), encoding="utf-8")
        if sha:
            ledger["files"][sha] = {"sha256": sha, "uris": [uri], "size": info.size, "rows": None,
                                    "status": "quarantined", "snapshot": None, "time": _now(),
                                    "reason": report.get("rule"), "report": f"{dest}.report.json"}
        ledger["seen"].pop(uri, None)
        logger.warning("quarantined %s: %s", uri, report.get("rule"))
        return {"uri": uri, "rule": report.get("rule"), "message": report.get("message"), "report": f"{dest}.report.md"}

    @contextmanager
    def _locked(self):
        try:
            self.lock.acquire()
        except Timeout as exc:
            raise DataStoreBusy(f"another process holds {self.workspace.lock_file}; try again later") from exc
        try:
            yield
        finally:
            self.lock.release()


def render_quarantine_report(report: dict) -> str:
    """A person-readable Markdown version of a quarantine report."""
    lines = [f"# Quarantined: {Path(str(report['file'])).name}", "",
             f"- file: `{report['file']}`", f"- rule: **{report.get('rule')}**"]
    if report.get("row") is not None:
        lines.append(f"- row: {report['row']}")
    lines += [f"- when: {report['time']}", "", str(report.get("message", "")), ""]
    for failure in report.get("failures", []):
        lines.append(f"- **{failure.get('rule')}** ({failure.get('severity', 'error')}): observed {failure.get('observed')}")
        for example in failure.get("examples", [])[:5]:
            lines.append(f"  - {example}")
    lines += ["", "Fix the file and drop it into the landing zone again: new content is ingested."]
    return "\n".join(lines) + "\n"
