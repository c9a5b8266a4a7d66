"""The landing zone, the ledger of every file seen, quarantine, and snapshot commits.

Ingestion is two steps so that the data contract can sit between them:
``stage`` finds new content and parses it, in chunks, into Parquet parts on disk (unparseable files go
to quarantine at once), then ``commit`` quarantines the files the contract rejected and writes a new
snapshot from the rest. Both steps hold a file lock on the workspace, so two processes never corrupt
the ledger: a second ingest waits up to ``data.lock_timeout_s`` and then raises ``DataStoreBusy``.

The ledger (``pipeline.data.ledger``, SQLite in ``ledger/ledger.sqlite``, one transaction per stage and
per commit) holds: ``files`` (one record per content hash: status accepted / quarantined, uris, size,
rows, snapshot, time), ``seen`` (the last size, mtime and hash of every URI, so unchanged files are never
hashed again), ``events`` (one record per file the first time each URI was seen with each content:
status accepted / quarantined / duplicate, reason) and the snapshot history, whose last entry is the head.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from filelock import Timeout

from pipeline.config import DataConfig
from pipeline.data.db_lock import data_lock
from pipeline.data.landing import LandingZone
from pipeline.data.ledger import Ledger
from pipeline.data.quarantine import retry_transient
from pipeline.data.refusals import Refusals, now_iso
from pipeline.data.sources import (
    FileInfo,
    IngestionError,
    stat_file,
)
from pipeline.data.staging import StagedBatch, StagedFile
from pipeline.results import DataOutcome
from pipeline.workspace import Workspace

# pandas, pyarrow and the snapshot code are imported inside the methods that need them, so that
# `pipeline data status` (ledger + stat calls only) starts fast.

logger = logging.getLogger(__name__)

STALE_STAGING_S = 24 * 3600


class DataStoreBusy(RuntimeError):
    """Another process holds the workspace's data lock for longer than the wait allowed."""


class DataStore(LandingZone, Refusals):
    """Files in, snapshots out, with a ledger that remembers every file by content hash."""

    def __init__(self, workspace: Workspace, config: DataConfig, lock_timeout: float | None = None):
        if workspace.storage is None and config.storage:
            workspace = Workspace(workspace.root, config.storage, config.ledger_url or workspace.ledger_url)
        elif workspace.ledger_url is None and config.ledger_url:
            workspace = Workspace(workspace.root, workspace.storage, config.ledger_url)
        if workspace.data_is_remote and not workspace.ledger_url:
            raise ValueError(f"data storage {workspace.storage} is object storage: it needs data.ledger_url")
        self.workspace = workspace.ensure()
        self.config = config
        timeout = config.lock_timeout_s if lock_timeout is None else lock_timeout
        self.lock = data_lock(workspace, timeout)
        self.ledger = Ledger(
            workspace.ledger,
            timeout_s=max(timeout, 1.0) if timeout >= 0 else 60.0,
            url=workspace.ledger_url,
            storage=str(workspace.data_root) if workspace.ledger_url else None,
        )
        self.ledger_path = self.ledger.path
        # parsed parts are this process's scratch: on the local disk even when the snapshots are not
        self.staging_root = (workspace.cache if workspace.data_is_remote else workspace.snapshots) / ".staging"

    # -- ledger ---------------------------------------------------------------------------------
    def read_ledger(self) -> dict:
        """The whole ledger as a dict (files, seen, events, head, history): for reports and tests; the
        store itself queries ``self.ledger``."""
        return self.ledger.as_dict()

    def head(self):
        """The newest Snapshot, or None before the first ingestion."""
        from pipeline.data.snapshots import load_snapshot

        head = self.ledger.head()
        return load_snapshot(self.workspace.snapshots, head) if head else None

    # -- staging --------------------------------------------------------------------------------
    def stage(self, paths: list[str] | None = None) -> StagedBatch:
        """Parse every file whose content the ledger has not seen into Parquet parts; quarantine those
        that cannot be parsed; record duplicates (known content under another name) in the ledger."""
        with self._locked():
            self._remove_leftovers()
            self.staging_root.mkdir(parents=True, exist_ok=True)
            batch = StagedBatch(folder=Path(tempfile.mkdtemp(dir=self.staging_root)))
            try:
                uris = self.discover(paths)
                claimed: dict[str, str] = {}
                with self.ledger.transaction() as ledger:
                    for uri in uris:
                        self._stage_isolated(uri, ledger, claimed, batch)
            except BaseException:
                batch.discard()
                raise
        return batch

    def _stage_isolated(self, uri: str, ledger: Ledger, claimed: dict[str, str], batch: StagedBatch) -> None:
        """``_stage_one``, where no exception of one file stops the others: an unexpected error quarantines
        the file (rule ``internal_error``), and a file that cannot even be quarantined is skipped. An
        OSError of the workspace itself (disk full) still stops the stage: every file would hit it."""
        try:
            self._stage_one(uri, ledger, claimed, batch)
        except OSError:
            raise  # the workspace's own disk: not this file's fault, and the next file would fail too
        except Exception as exc:
            logger.exception("unexpected error staging %s", uri)
            report = {"rule": "internal_error", "message": f"{type(exc).__name__}: {exc}"[:2000]}
            try:
                info = stat_file(uri)
                batch.quarantined.append(self._quarantine(ledger, uri, None, info, report))
            except Exception as again:
                batch.skipped.append(
                    {
                        "uri": uri,
                        "sha256": None,
                        "reason": f"{report['message']}; could not be "
                        f"quarantined either ({type(again).__name__}: {again})",
                    }
                )

    def _stage_one(self, uri: str, ledger: Ledger, claimed: dict[str, str], batch: StagedBatch) -> None:
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
            sha = retry_transient(lambda: self._fingerprint(info, ledger), self.config, uri)
        except (IngestionError, OSError) as exc:
            error = exc if isinstance(exc, IngestionError) else IngestionError(uri, "unreadable", str(exc))
            batch.quarantined.append(self._quarantine(ledger, uri, None, info, error.to_dict()))
            return
        ledger.set_seen(uri, info.size, info.mtime, sha)
        known = ledger.file(sha)
        if known or sha in claimed:
            if known and uri in known["uris"]:
                reason = f"content already {known['status']}"
            else:
                original = known["uris"][0] if known else claimed[sha]
                reason = f"duplicate of {original}"
                if known:
                    ledger.add_uri(sha, uri)
                self._record(ledger, uri, sha, info.size, None, "duplicate", None, reason)
            batch.skipped.append({"uri": uri, "sha256": sha, "reason": reason})
            return
        try:
            # an OSError that is not an IngestionError comes from writing the part (our disk): it stops the stage
            batch.files.append(
                retry_transient(
                    lambda: self._parse_to_part(uri, sha, info, batch.folder), self.config, uri, reads_only=True
                )
            )
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
    def commit(self, batch: StagedBatch, rejected: dict[str, dict] | None = None) -> DataOutcome:
        """Quarantine ``rejected`` files (uri -> failure report) and snapshot the rest of the batch.

        Files another process committed meanwhile are skipped. A file whose conflicting labels the policy
        refuses is quarantined alone (report: a CSV of the conflicting rows) and the rest commits. The
        batch's parts are deleted either way.
        """
        from pipeline.data.isolation import write_isolating_conflicts
        from pipeline.data.snapshots import load_snapshot, snapshot_id_for, write_snapshot_from_parts

        rejected = rejected or {}
        try:
            with self._locked(), self.ledger.transaction() as ledger:
                accepted, refused, skipped = [], [], list(batch.skipped)
                for staged in batch.files:
                    if ledger.file(staged.sha256) is not None:
                        skipped.append(
                            {"uri": staged.uri, "sha256": staged.sha256, "reason": "committed by another run"}
                        )
                    elif staged.uri in rejected:
                        refused.append(staged)
                    else:
                        accepted.append(staged)
                head_id, snapshot = ledger.head(), None
                parent = load_snapshot(self.workspace.snapshots, head_id) if head_id and accepted else None
                known = ledger.accepted_hashes()

                def write(files: list[StagedFile]):
                    listed = (parent.manifest.files if parent else []) + [
                        {"uri": s.uri, "sha256": s.sha256, "rows": s.rows, "size": s.size} for s in files
                    ]
                    return write_snapshot_from_parts(
                        self.workspace.snapshots,
                        snapshot_id_for(known + [s.sha256 for s in files]),
                        parent,
                        [s.path for s in files],
                        listed,
                        self.config,
                        scratch=self.staging_root,
                    )

                snapshot, conflicted = write_isolating_conflicts(write, accepted, self._write_conflict_report)
                accepted = [s for s in accepted if all(s is not c for c, _ in conflicted)]
                quarantined = list(batch.quarantined)
                for staged, report in conflicted:
                    info = FileInfo(staged.uri, staged.size, staged.mtime)
                    quarantined.append(self._quarantine(ledger, staged.uri, staged.sha256, info, report))
                for staged in refused:
                    info = FileInfo(staged.uri, staged.size, staged.mtime)
                    quarantined.append(self._quarantine(ledger, staged.uri, staged.sha256, info, rejected[staged.uri]))
                for staged in accepted:
                    ledger.put_file(
                        {
                            "sha256": staged.sha256,
                            "uris": [staged.uri],
                            "size": staged.size,
                            "rows": staged.rows,
                            "status": "accepted",
                            "snapshot": snapshot.id,
                            "time": now_iso(),
                        }
                    )
                    self._record(ledger, staged.uri, staged.sha256, staged.size, staged.rows, "accepted", snapshot.id)
                changed = snapshot is not None and snapshot.id != head_id
                if changed:
                    ledger.add_snapshot(snapshot.id)
        finally:
            batch.discard()
        net = (snapshot.manifest.rows - (parent.manifest.rows if parent else 0)) if changed else 0
        return DataOutcome(
            self.ledger.head(),
            [s.uri for s in accepted],
            skipped,
            quarantined,
            sum(s.rows for s in accepted),
            changed,
            duplicates_dropped=snapshot.manifest.duplicates_dropped if snapshot else 0,
            conflict_rows=snapshot.manifest.conflict_rows if snapshot else 0,
            net_rows_added=net,
        )

    def ingest(self, paths: list[str] | None = None, check=None) -> DataOutcome:
        """Stage, run ``check(batch, head) -> {uri: failure report}`` when given, and commit."""
        batch = self.stage(paths)
        try:
            rejected = check(batch, self.head()) if check and batch.files else {}
        except BaseException:
            batch.discard()
            raise
        return self.commit(batch, rejected)

    def _remove_leftovers(self) -> None:
        """Under the lock: delete temporary snapshot folders and ledger files a crashed run left behind,
        and parsed parts older than a day (a live run between stage and commit keeps its own). On object
        storage a crashed upload has no manifest: it is never read, and the next upload overwrites it."""
        snapshots = self.workspace.snapshots
        for path in [] if self.workspace.data_is_remote else snapshots.glob(".*"):
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
            holder = self.lock.holder() if hasattr(self.lock, "holder") else self.lock.lock_file
            raise DataStoreBusy(
                f"another ingest holds the data lock ({holder}) (waited {self.lock.timeout:g} s); try again later"
            ) from exc
        try:
            yield
        finally:
            self.lock.release()
