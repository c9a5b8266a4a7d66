"""Deciding whether a retraining run trains: how many labeled rows arrived since the last training.

New rows are (a) rows of files waiting in the landing zone (the ledger has not seen their content) and
(b) rows of files already ingested into the newest snapshot but not into the snapshot of the newest
registered version of this model (ingestion may run on its own and announce new data). What is registered
decides, never what ran: a run killed after training but before registering leaves its snapshot untrained.
Files that cannot be read count too: training them quarantines them and the failure is reported.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from pipeline.config import PipelineConfig
from pipeline.data.readers import IngestionError, read_labeled_file
from pipeline.data.snapshots import Snapshot, load_snapshot
from pipeline.data.store import DataStore
from pipeline.registry import tracking as registry
from pipeline.workspace import Workspace

logger = logging.getLogger(__name__)


@dataclass
class NewData:
    """What arrived since the last training; ``rows`` is what ``min_new_rows`` is compared with."""

    head_snapshot: str | None
    trained_snapshot: str | None
    pending_files: list[str] = field(default_factory=list)
    pending_rows: int = 0
    unreadable_files: list[dict] = field(default_factory=list)
    untrained_files: list[str] = field(default_factory=list)
    untrained_rows: int = 0

    @property
    def rows(self) -> int:
        return self.pending_rows + self.untrained_rows

    def to_dict(self) -> dict:
        return {**asdict(self), "rows": self.rows}


@dataclass
class RetrainingDecision:
    train: bool
    reason: str


def registered_snapshots(config: PipelineConfig, workspace: Workspace) -> list[str]:
    """Snapshot ids of the registered versions of ``registry.model_name``, newest version first.

    A version counts whether or not it passed the promotion gate: the same data is not trained again. A run
    that registered nothing (failed, killed, or stopped before registering) does not count.
    """
    from mlflow.exceptions import MlflowException

    tracking_uri = workspace.tracking_uri(config.tracking.tracking_uri)
    if tracking_uri == workspace.default_tracking_uri() and not (workspace.mlflow_dir / "mlflow.db").exists():
        return []
    client = registry.client(tracking_uri)
    name = config.registry.model_name.replace("'", "\\'")
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code):
            return []
        raise
    ordered = sorted(versions, key=lambda v: int(v.version), reverse=True)
    return [v.tags["snapshot_id"] for v in ordered if v.tags.get("snapshot_id")]


def last_trained_snapshot(config: PipelineConfig, workspace: Workspace, head_snapshot: str | None = None) -> str | None:
    """``head_snapshot`` when a registered version was trained on it, else the snapshot of the newest
    registered version of ``registry.model_name``, else None."""
    snapshots = registered_snapshots(config, workspace)
    if head_snapshot and head_snapshot in snapshots:
        return head_snapshot
    return snapshots[0] if snapshots else None


def count_pending_rows(pending: list[dict], config: PipelineConfig) -> tuple[int, list[dict]]:
    """(rows in the readable pending files, [{uri, rule, message}] for those that cannot be read)."""
    rows, unreadable = 0, []
    for item in pending:
        try:
            rows += len(read_labeled_file(item["uri"], config.data))
        except IngestionError as exc:
            unreadable.append({"uri": item["uri"], "rule": exc.rule, "message": str(exc)})
    return rows, unreadable


def _load(workspace: Workspace, snapshot_id: str | None) -> Snapshot | None:
    if not snapshot_id:
        return None
    try:
        return load_snapshot(workspace.snapshots, snapshot_id)
    except FileNotFoundError:
        logger.warning("snapshot %s of the last training is gone; counting every ingested row as new", snapshot_id)
        return None


def measure_new_data(
    config: PipelineConfig, workspace: Workspace, trained_snapshot: str | None = None, lookup_trained: bool = True
) -> NewData:
    """Pending and ingested-but-untrained rows. Reads the pending files, never writes anything.

    ``trained_snapshot`` defaults to ``last_trained_snapshot`` (an MLflow query) when ``lookup_trained``.
    Raises IngestionError when a configured ``data.paths`` entry does not exist.
    """
    store = DataStore(workspace, config.data)
    pending = store.pending(config.data.paths or None)
    pending_rows, unreadable = count_pending_rows(pending, config)
    head = store.head()
    if trained_snapshot is None and lookup_trained and head is not None:
        trained_snapshot = last_trained_snapshot(config, workspace, head.id)
    new = NewData(head.id if head else None, trained_snapshot, [p["uri"] for p in pending], pending_rows, unreadable)
    if head is not None and head.id != trained_snapshot:
        trained = _load(workspace, trained_snapshot)
        known = {f["sha256"] for f in trained.manifest.files} if trained else set()
        fresh = [f for f in head.manifest.files if f["sha256"] not in known]
        new.untrained_files = [f["uri"] for f in fresh]
        new.untrained_rows = sum(int(f.get("rows") or 0) for f in fresh)
    return new


def decide_retraining(new: NewData, min_new_rows: int) -> RetrainingDecision:
    """Train when at least ``min_new_rows`` rows are new, or when a pending file cannot be read (training
    quarantines it and the run reports why). Every 'do not train' reason starts with 'no new data'."""
    parts = (
        f"{new.rows} new rows ({len(new.pending_files)} pending files with {new.pending_rows} rows, "
        f"{len(new.untrained_files)} ingested but untrained files with {new.untrained_rows} rows)"
    )
    if new.unreadable_files:
        return RetrainingDecision(
            True, f"{parts}; {len(new.unreadable_files)} pending files cannot be read and will be quarantined"
        )
    if new.rows == 0:
        trained = f"; snapshot {new.head_snapshot} is already trained" if new.head_snapshot else ""
        return RetrainingDecision(False, f"no new data: nothing pending{trained}")
    if new.rows < min_new_rows:
        return RetrainingDecision(False, f"no new data: {parts}, fewer than min_new_rows={min_new_rows}")
    return RetrainingDecision(True, parts)
