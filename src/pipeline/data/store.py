"""The landing zone, the ledger of every file seen, quarantine, and snapshot commits.

Ingestion is two steps so that the data contract can sit between them:
``stage`` finds new content and parses it, in chunks, into Parquet parts on disk (unparseable files go
to quarantine at once), then ``commit`` quarantines the files the contract rejected and writes a new
snapshot from the rest. Both steps hold a file lock on the workspace, so two processes never corrupt
the ledger: a second ingest waits up to ``data.lock_timeout_s`` and then raises ``DataStoreBusy``.

The ledger (``ledger/ledger.json``, replaced atomically) holds:
``files``  one record per content hash: status (accepted / quarantined), uris, size, rows, snapshot, time;
``seen``   the last size, mtime and hash of every URI, so unchanged files are never hashed again;
``events`` one record per file the first time each URI was seen with each content: uri, sha256, size,
rows, status (accepted / quarantined / duplicate), snapshot, time, reason;
``head`` and ``history``: the current snapshot id and every earlier one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import fsspec
from filelock import FileLock, Timeout

from pipeline.atomic import atomic_write_text
from pipeline.config import DataConfig
from pipeline.data.quarantine import quarantine_file, render_quarantine_report  # noqa: F401  (re-exported)
from pipeline.data.sources import (
    FileInfo,
    IngestionError,
    check_source_allowed,
    file_sha256,
    is_hf_uri,
    is_supported,
    stat_file,
)
from pipeline.workspace import Workspace

# pandas, pyarrow and the snapshot code are imported inside the methods that need them, so that
# `pipeline data status` (ledger + stat calls only) starts fast.

logger = logging.getLogger(__name__)

STALE_STAGING_S = 24 * 3600


class DataStoreBusy(RuntimeError):
    """Another process holds the workspace's data lock for longer than the wait allowed."""


@dataclass
class StagedFile:
    """A parsed file waiting for commit; its rows live in the Parquet file ``path``, not in memory."""

    uri: str
    sha256: str
    size: int
    mtime: float | None
    path: Path
    rows: int

    @property
    def frame(self):
        """All rows as a DataFrame (text, label, source, row; missing values None). Reads ``path`` each time."""
        import pandas as pd

        frame = pd.read_parquet(self.path)
        for column in ("text", "label"):
            values = frame[column].astype(object)
            frame[column] = values.where(values.notna(), None)
        return frame


@dataclass
class StagedBatch:
    files: list[StagedFile] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    folder: Path | None = None

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def frame(self):
        import pandas as pd

        if not self.files:
            return pd.DataFrame(columns=["text", "label", "source", "row"])
        return pd.concat([f.frame for f in self.files], ignore_index=True)

    def discard(self) -> None:
        """Delete the parsed parts (after commit, or when the batch is abandoned)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class IngestResult:
    snapshot_id: str | None
    new_files: list[str]
    skipped_files: list[dict]
    quarantined: list[dict]
    rows_added: int
    snapshot_changed: bool
    duplicates_dropped: int = 0
    conflict_rows: int = 0

    def to_dict(self) -> dict:
        return {"snapshot_id": self.snapshot_id, "new_files": self.new_files, "skipped_files": self.skipped_files,
                "quarantined": self.quarantined, "rows_added": self.rows_added,
                "snapshot_changed": self.snapshot_changed, "duplicates_dropped": self.duplicates_dropped,
                "conflict_rows": self.conflict_rows}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _is_local(uri: str) -> bool:
    return not is_hf_uri(uri) and "://" not in uri and "::" not in uri


class DataStore:
    """Files in, snapshots out, with a ledger that remembers every file by content hash."""

    def __init__(self, workspace: Workspace, config: DataConfig, lock_timeout: float | None = None):
        self.workspace = workspace.ensure()
        self.config = config
        timeout = config.lock_timeout_s if lock_timeout is None else lock_timeout
        self.lock = FileLock(str(workspace.lock_file), timeout=timeout)
        self.ledger_path = workspace.ledger / "ledger.json"
        self.staging_root = workspace.snapshots / ".staging"

    # -- ledger ---------------------------------------------------------------------------------
    def read_ledger(self) -> dict:
        if not self.ledger_path.exists():
            return {"files": {}, "seen": {}, "events": [], "head": None, "history": []}
        ledger = json.loads(self.ledger_path.read_text(encoding="utf-8"))
        ledger.setdefault("events", [])
        return ledger

    def _write_ledger(self, ledger: dict) -> None:
        atomic_write_text(self.ledger_path, json.dumps(ledger, indent=1, sort_keys=True))

    def head(self):
        """The newest Snapshot, or None before the first ingestion."""
        from pipeline.data.snapshots import load_snapshot

        head = self.read_ledger()["head"]
        return load_snapshot(self.workspace.snapshots, head) if head else None

    # -- discovery ------------------------------------------------------------------------------
    def discover(self, paths: list[str] | None = None) -> list[str]:
        """Supported files under the given paths, URLs or ``hf:`` sources (folders recursively), else
        under the landing zone. Local paths come back absolute with ``..`` resolved; hidden files and
        symlinked folders are not followed."""
        roots = list(paths or []) or [str(self.workspace.landing)]
        found: list[str] = []
        for root in roots:
            check_source_allowed(root, self.config.allowed_url_schemes, self.config.allowed_url_hosts)
            if is_hf_uri(root):
                found.append(root)
                continue
            fs, path = fsspec.core.url_to_fs(root)
            protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
            local = protocol in ("file", "local")
            if local:
                path = os.path.abspath(path)
            if any(ch in path for ch in "*?["):
                matches = sorted(fs.glob(path))
            elif fs.isdir(path):
                matches = sorted(p for p in fs.find(path) if not Path(p).name.startswith("."))
            elif fs.exists(path):
                matches = [path]
            else:
                raise IngestionError(root, "not_found", "no such file, folder or URL")
            for match in matches:
                uri = os.path.abspath(match) if local else fs.unstrip_protocol(match)
                if local and Path(uri).is_symlink() and Path(uri).is_dir():
                    logger.warning("not following symlinked folder %s", uri)
                elif is_supported(uri):
                    found.append(uri)
        return found

    def _landing_roots(self) -> tuple[Path, Path]:
        landing = self.workspace.landing
        return Path(os.path.abspath(landing)), landing.resolve()

    def _in_landing(self, uri: str) -> bool:
        if not _is_local(uri):
            return False
        path = Path(os.path.abspath(uri))
        return any(path.is_relative_to(root) for root in self._landing_roots())

    def _refuse_escaping_link(self, uri: str) -> str | None:
        """A reason to refuse a landing-zone path that resolves outside the landing zone, else None."""
        if not self._in_landing(uri):
            return None
        target = Path(uri).resolve()
        real_landing = self._landing_roots()[1]
        if not target.is_relative_to(real_landing):
            return f"symbolic link to {target}, outside the landing zone {real_landing}"
        return None

    def _content_hash(self, uri: str) -> str:
        if is_hf_uri(uri):
            from pipeline.data.readers import content_sha256

            return content_sha256(uri, self.config, self.workspace.cache / "datasets")
        return file_sha256(uri)

    def _fingerprint(self, info: FileInfo, ledger: dict) -> str:
        seen = ledger["seen"].get(info.uri)
        if seen and seen["size"] == info.size and info.mtime is not None and seen["mtime"] == info.mtime:
            return seen["sha256"]
        return self._content_hash(info.uri)

    def pending(self, paths: list[str] | None = None) -> list[dict]:
        """Files whose content was never ingested. Checks size and mtime first and hashes only files that
        changed since the ledger last saw them (``hf:`` sources have no mtime and are always hashed)."""
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
        """Parse every file whose content the ledger has not seen into Parquet parts; quarantine those
        that cannot be parsed; record duplicates (known content under another name) in the ledger."""
        with self._locked():
            self._remove_leftovers()
            self.staging_root.mkdir(parents=True, exist_ok=True)
            batch = StagedBatch(folder=Path(tempfile.mkdtemp(dir=self.staging_root)))
            try:
                ledger = self.read_ledger()
                claimed: dict[str, str] = {}
                for uri in self.discover(paths):
                    self._stage_one(uri, ledger, claimed, batch)
                self._write_ledger(ledger)
            except BaseException:
                batch.discard()
                raise
        return batch

    def _stage_one(self, uri: str, ledger: dict, claimed: dict[str, str], batch: StagedBatch) -> None:
        try:
            info = stat_file(uri)
        except FileNotFoundError:
            batch.skipped.append({"uri": uri, "sha256": None, "reason": "vanished before it could be read"})
            return
        refusal = self._refuse_escaping_link(uri)
        if refusal:
            error = IngestionError(uri, "symlink_outside_landing", refusal)
            batch.quarantined.append(self._quarantine(ledger, uri, None, info, error.to_dict()))
            return
        try:
            sha = self._fingerprint(info, ledger)
        except (IngestionError, OSError) as exc:
            error = exc if isinstance(exc, IngestionError) else IngestionError(uri, "unreadable", str(exc))
            batch.quarantined.append(self._quarantine(ledger, uri, None, info, error.to_dict()))
            return
        ledger["seen"][uri] = {"size": info.size, "mtime": info.mtime, "sha256": sha}
        known = ledger["files"].get(sha)
        if known or sha in claimed:
            if known and uri in known["uris"]:
                reason = f"content already {known['status']}"
            else:
                original = known["uris"][0] if known else claimed[sha]
                reason = f"duplicate of {original}"
                if known:
                    known["uris"].append(uri)
                self._record(ledger, uri, sha, info.size, None, "duplicate", None, reason)
            batch.skipped.append({"uri": uri, "sha256": sha, "reason": reason})
            return
        try:
            batch.files.append(self._parse_to_part(uri, sha, info, batch.folder))
        except IngestionError as exc:
            batch.quarantined.append(self._quarantine(ledger, uri, sha, info, exc.to_dict()))
            return
        claimed[sha] = uri

    def _parse_to_part(self, uri: str, sha: str, info: FileInfo, folder: Path) -> StagedFile:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from pipeline.data.deduplication import ROW_SCHEMA
        from pipeline.data.readers import iter_labeled_chunks

        target = folder / f"{sha}.parquet"
        rows = 0
        try:
            with pq.ParquetWriter(target, ROW_SCHEMA) as writer:
                for chunk in iter_labeled_chunks(uri, self.config, cache_dir=self.workspace.cache / "datasets"):
                    writer.write_table(pa.Table.from_pandas(chunk, schema=ROW_SCHEMA, preserve_index=False))
                    rows += len(chunk)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return StagedFile(uri, sha, info.size, info.mtime, target, rows)

    # -- commit ---------------------------------------------------------------------------------
    def commit(self, batch: StagedBatch, rejected: dict[str, dict] | None = None) -> IngestResult:
        """Quarantine ``rejected`` files (uri -> failure report) and snapshot the rest of the batch.

        Files another process committed meanwhile are skipped. Raises ``ConflictError`` (with
        ``report``, a CSV of the conflicting rows) when the conflict policy refuses the batch; then no
        snapshot is written, nothing is quarantined and the ledger is unchanged. The batch's parts are
        deleted either way.
        """
        from pipeline.data.deduplication import ConflictError
        from pipeline.data.snapshots import load_snapshot, snapshot_id_for, write_snapshot_from_parts

        rejected = rejected or {}
        try:
            with self._locked():
                ledger = self.read_ledger()
                accepted, refused, skipped = [], [], list(batch.skipped)
                for staged in batch.files:
                    if staged.sha256 in ledger["files"]:
                        skipped.append({"uri": staged.uri, "sha256": staged.sha256, "reason": "committed by another run"})
                    elif staged.uri in rejected:
                        refused.append(staged)
                    else:
                        accepted.append(staged)
                head_id, snapshot = ledger["head"], None
                if accepted:
                    parent = load_snapshot(self.workspace.snapshots, head_id) if head_id else None
                    members = [sha for sha, rec in ledger["files"].items() if rec["status"] == "accepted"]
                    members += [s.sha256 for s in accepted]
                    files = (parent.manifest.files if parent else []) + [
                        {"uri": s.uri, "sha256": s.sha256, "rows": s.rows, "size": s.size} for s in accepted]
                    try:
                        snapshot = write_snapshot_from_parts(self.workspace.snapshots, snapshot_id_for(members), parent,
                                                             [s.path for s in accepted], files, self.config)
                    except ConflictError as exc:
                        exc.report = self._write_conflict_report(exc)
                        raise
                quarantined = list(batch.quarantined)
                for staged in refused:
                    info = FileInfo(staged.uri, staged.size, staged.mtime)
                    quarantined.append(self._quarantine(ledger, staged.uri, staged.sha256, info, rejected[staged.uri]))
                for staged in accepted:
                    ledger["files"][staged.sha256] = {
                        "sha256": staged.sha256, "uris": [staged.uri], "size": staged.size, "rows": staged.rows,
                        "status": "accepted", "snapshot": snapshot.id, "time": _now()}
                    self._record(ledger, staged.uri, staged.sha256, staged.size, staged.rows, "accepted", snapshot.id)
                changed = snapshot is not None and snapshot.id != head_id
                if changed:
                    ledger["head"] = snapshot.id
                    ledger["history"].append(snapshot.id)
                self._write_ledger(ledger)
        finally:
            batch.discard()
        return IngestResult(ledger["head"], [s.uri for s in accepted], skipped, quarantined,
                            sum(s.rows for s in accepted), changed,
                            snapshot.manifest.duplicates_dropped if snapshot else 0,
                            snapshot.manifest.conflict_rows if snapshot else 0)

    def ingest(self, paths: list[str] | None = None, check=None) -> IngestResult:
        """Stage, run ``check(batch, head) -> {uri: failure report}`` when given, and commit."""
        batch = self.stage(paths)
        try:
            rejected = check(batch, self.head()) if check and batch.files else {}
        except BaseException:
            batch.discard()
            raise
        return self.commit(batch, rejected)

    # -- quarantine and reports -----------------------------------------------------------------
    @staticmethod
    def _record(ledger: dict, uri: str, sha: str | None, size: int, rows: int | None, status: str,
                snapshot: str | None, reason: str | None = None) -> None:
        ledger["events"].append({"time": _now(), "uri": uri, "sha256": sha, "size": size, "rows": rows,
                                 "status": status, "snapshot": snapshot, "reason": reason})

    def _quarantine(self, ledger: dict, uri: str, sha: str | None, info: FileInfo, report: dict) -> dict:
        """Quarantine the file (see ``quarantine.quarantine_file``) and record it in the ledger."""
        movable = self._in_landing(uri) and (Path(uri).is_symlink() or
                                             Path(uri).resolve().is_relative_to(self._landing_roots()[1]))
        item = quarantine_file(self.workspace.quarantine, uri, sha, info.size, report, move=movable)
        if sha:
            ledger["files"][sha] = {"sha256": sha, "uris": [uri], "size": info.size, "rows": None,
                                    "status": "quarantined", "snapshot": None, "time": _now(),
                                    "reason": report.get("rule"), "report": item["report_json"]}
        self._record(ledger, uri, sha, info.size, None, "quarantined", None, report.get("rule"))
        ledger["seen"].pop(uri, None)
        logger.warning("quarantined %s: %s", uri, report.get("rule"))
        return {k: v for k, v in item.items() if k != "report_json"}

    def _write_conflict_report(self, error) -> str:
        folder = self.workspace.reports / "conflicts"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-conflicts.csv"
        error.conflicts.to_csv(path, index=False)
        return str(path)

    def _remove_leftovers(self) -> None:
        """Under the lock: delete temporary snapshot folders and ledger files a crashed run left behind,
        and parsed parts older than a day (a live run between stage and commit keeps its own)."""
        for path in self.workspace.snapshots.glob(".*"):
            if path.name != ".staging" and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
        for path in self.workspace.ledger.glob(".ledger.json.*.tmp"):
            path.unlink(missing_ok=True)
        if self.staging_root.exists():
            for path in self.staging_root.iterdir():
                if time.time() - path.stat().st_mtime > STALE_STAGING_S:
                    shutil.rmtree(path, ignore_errors=True)

    @contextmanager
    def _locked(self):
        try:
            self.lock.acquire()
        except Timeout as exc:
            raise DataStoreBusy(f"another ingest holds {self.workspace.lock_file} (waited {self.lock.timeout:g} s); "
                                "try again later") from exc
        try:
            yield
        finally:
            self.lock.release()
