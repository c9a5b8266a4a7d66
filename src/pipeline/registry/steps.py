"""Entry points of the registry stage: open and close the MLflow run, register the version."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

from pipeline.config import PipelineConfig
from pipeline.data.snapshots import load_snapshot
from pipeline.registry import tracking as registry
from pipeline.workspace import Workspace

logger = logging.getLogger(__name__)


def start_tracking(config: PipelineConfig, workspace: Workspace, snapshot_id: str, run_name: str | None = None) -> dict:
    """Open the MLflow run for this training and log configuration, lineage tags and the data inputs."""
    tracking_uri = workspace.tracking_uri(config.registry.tracking_uri)
    client = registry.client(tracking_uri)
    artifact_location = workspace.artifact_root() if tracking_uri.startswith("sqlite:") else None
    experiment_id = registry.ensure_experiment(client, config.registry.experiment, artifact_location)
    snapshot = load_snapshot(workspace.snapshots, snapshot_id)
    name = run_name or f"train-{snapshot_id[:8]}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    run_id = registry.start_run(client, experiment_id, name, config.model_dump(), {
        "snapshot_id": snapshot_id, "snapshot_digest": snapshot.manifest.content_sha256,
        "base_model": config.model.name_or_path, "code_version": registry.code_version(),
        "registered_model": config.registry.model_name})
    client.log_text(run_id, json.dumps(snapshot.manifest.to_dict(), indent=2, default=str), "data/manifest.json")
    contract_reports = workspace.reports / "contracts" / snapshot_id
    if contract_reports.is_dir():
        client.log_artifacts(run_id, str(contract_reports), "data_contract")
    registry.log_dataset(run_id, snapshot.load(), name=f"snapshot-{snapshot_id}", source=str(snapshot.data_path),
                         context="training")
    return {"tracking_uri": tracking_uri, "run_id": run_id, "experiment_id": experiment_id}


def fail_tracking(tracking: dict | None, reason: str) -> None:
    """Mark the MLflow run FAILED with the reason (no-op when no run was opened)."""
    if not tracking:
        return
    client = registry.client(tracking["tracking_uri"])
    client.set_tag(tracking["run_id"], "failure_reason", reason[:5000])
    registry.end_run(client, tracking["run_id"], status="FAILED")


EXAMPLE_TEXTS = ["the app crashes on start", "my parcel has not arrived", "I was charged twice"]


def register_model(config: PipelineConfig, tracking: dict, model_dir: str, snapshot_id: str, evaluation: dict,
                   comparison: dict | None = None) -> dict:
    """Log the pyfunc, register a version with its lineage, gate outcome and model card, then move aliases.

    ``comparison`` is ``compare_with_champion``'s outcome. A version that passes the gate gets
    ``challenger``; ``become_champion`` (first version, or ``auto_promote``) moves ``champion`` by
    compare-and-set against the champion it was compared with, so when two runs finish together only
    one becomes champion and the other records why it was not promoted. Every move is audited.
    """
    from pipeline.registry import aliases, model_card
    from pipeline.registry import versions as registration
    from pipeline.workspace import Workspace

    client = registry.client(tracking["tracking_uri"])
    name, run_id = config.registry.model_name, tracking["run_id"]
    outcome = comparison or registration.uncompared_outcome(config.registry, client, run_id, evaluation)
    gate = outcome["gate"]
    manifest = Workspace.resolve(config.workspace).snapshots / snapshot_id / "manifest.json"
    lineage = registry.collect_lineage(client, run_id, Path(model_dir), manifest, config.model.name_or_path)
    version = registration.find_version_of_run(client, name, run_id)  # a retried task reuses its version
    if version is None:
        model_uri = registry.log_model(run_id, Path(model_dir), EXAMPLE_TEXTS)
        registry.log_model_metrics(client, run_id, registry.model_id_of(model_uri), evaluation["metrics"],
                                   evaluation.get("dataset"))
        version = registry.register_version(client, model_uri, name, run_id,
                                            registration.version_tags(lineage, evaluation["metrics"], outcome),
                                            f"Registering. Gate: {gate['reason']}"[:5000])
    number, actor = str(version.version), f"pipeline run {run_id} ({aliases.default_actor()})"
    note = None
    if gate["passed"]:
        aliases.move_alias(client, name, registry.CHALLENGER, number, actor=actor, action="gate", reason=gate["reason"])
    if gate["become_champion"]:
        expected = outcome["champion"]["version"] if outcome["champion"] else None
        try:
            aliases.move_alias(client, name, registry.CHAMPION, number, expect_current=expected, actor=actor,
                               action="first-champion" if expected is None else "auto-promote", reason=gate["reason"])
        except aliases.AliasMovedError as exc:
            note = f"the champion moved while this run was being evaluated ({exc}); compare again or promote by hand"
            client.set_model_version_tag(name, number, "promotion_refused", note)
            logger.warning("version %s not promoted: %s", number, note)
    current = registry.aliases_of(client, name, number)
    card = model_card.render_model_card(name, number, lineage, evaluation, outcome, current, note)
    compact = model_card.render_model_card(name, number, lineage, evaluation, outcome, current, note, compact=True)
    client.update_model_version(name, number, description=model_card.fit_description(card, compact))
    client.log_text(run_id, card, "registry/model_card.md")
    registry.end_run(client, run_id)
    return {"model_name": name, "model_version": number, "model_uri": version.source,
            "model_id": getattr(version, "model_id", None) or registry.model_id_of(version.source), "aliases": current,
            "gate": gate, "promotion_note": note, "model_card": card}
