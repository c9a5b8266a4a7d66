"""Where a version's drift reference lives: the workspace cache, then the version's MLflow run, else built now."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from pipeline.atomic import atomic_write_text
from pipeline.config import PipelineConfig
from pipeline.scoring.model import ScoringModel
from pipeline.workspace import Workspace

logger = logging.getLogger(__name__)

ARTIFACT = "drift/reference.json"


def _cache_file(workspace: Workspace, scoring: ScoringModel) -> Path:
    ref = scoring.ref
    return workspace.cache / "drift" / re.sub(r"[^\w.-]+", "_", ref.model_name) / f"{ref.model_version}.json"


def _download(tracking_uri: str, run_id: str, folder: Path) -> dict | None:
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=ARTIFACT, dst_path=str(folder), tracking_uri=tracking_uri
        )
    except (MlflowException, OSError) as exc:
        logger.debug("no stored drift reference on run %s: %s", run_id, exc)
        return None
    return json.loads(Path(local).read_text(encoding="utf-8"))


def load_drift_reference(
    config: PipelineConfig, workspace: Workspace, scoring: ScoringModel, tracking_uri: str
) -> dict | None:
    """The version's drift reference; built from its training snapshot (and stored on its run) on first use.

    None when the snapshot is not in this workspace and no reference was stored.
    """
    from pipeline.data.snapshots import load_snapshot
    from pipeline.scoring.drift import build_reference

    cached = _cache_file(workspace, scoring)
    if cached.exists():
        return json.loads(cached.read_text(encoding="utf-8"))
    run_id = scoring.ref.run_id
    reference = _download(tracking_uri, run_id, cached.parent / ".download") if run_id else None
    if reference is None:
        snapshot_id = scoring.ref.snapshot_id
        try:
            snapshot = load_snapshot(workspace.snapshots, snapshot_id) if snapshot_id else None
        except FileNotFoundError:
            snapshot = None
        if snapshot is None:
            logger.warning(
                "no drift reference for %s: training snapshot %s is not in %s",
                scoring.ref.version_uri,
                snapshot_id,
                workspace.snapshots,
            )
            return None
        logger.info("building the drift reference of %s from snapshot %s", scoring.ref.version_uri, snapshot_id)
        reference = build_reference(
            scoring,
            snapshot.load(),
            snapshot.manifest.label_counts,
            config.data,
            config.scoring.drift_reference_rows,
            config.scoring.batch_size,
        )
        reference["snapshot_id"] = snapshot_id
        if run_id:
            from pipeline.registry import tracking as registry

            registry.client(tracking_uri).log_text(run_id, json.dumps(reference), ARTIFACT)
    atomic_write_text(cached, json.dumps(reference))
    return reference
