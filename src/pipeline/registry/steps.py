"""Entry points of the registry stage: open and close the MLflow run, register the version."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from pipeline.config import PipelineConfig
from pipeline.data.snapshots import load_snapshot
from pipeline.faults import fault_point
from pipeline.registry import tracking as registry
from pipeline.results import Comparison, Evaluation, Registration, TrackingRun, TrainedModel
from pipeline.workspace import Workspace

logger = logging.getLogger(__name__)


def start_tracking(
    config: PipelineConfig, workspace: Workspace, snapshot_id: str, run_name: str | None = None
) -> TrackingRun:
    """Open the MLflow run for this training and log configuration, lineage tags and the data inputs."""
    from pipeline.registry.connection import apply_http_deadlines, check_tracking_server
    from pipeline.secrets import redact_config

    tracking_uri = workspace.tracking_uri(config.tracking.tracking_uri)
    apply_http_deadlines(config.tracking)
    check_tracking_server(tracking_uri)
    client = registry.client(tracking_uri)
    artifact_location = registry.experiment_artifact_location(
        tracking_uri, config.tracking.artifact_location, workspace.artifact_root()
    )
    experiment_id = registry.ensure_experiment(client, config.tracking.experiment, artifact_location)
    snapshot = load_snapshot(workspace.snapshots, snapshot_id)
    from pipeline.run_lock import is_held_here

    if is_held_here(workspace, config.registry.model_name):  # no other run of this model can be alive here
        fail_abandoned_runs(client, experiment_id, config.registry.model_name, str(workspace.root))
    name = run_name or f"train-{snapshot_id[:8]}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    run_id = registry.start_run(
        client,
        experiment_id,
        name,
        redact_config(config.model_dump()),
        {
            "snapshot_id": snapshot_id,
            "snapshot_digest": snapshot.manifest.content_sha256,
            "base_model": config.model.name_or_path,
            "code_version": registry.code_version(),
            "registered_model": config.registry.model_name,
            "workspace": str(workspace.root),
            REGISTRATION_TAG: "pending",
        },
    )
    client.log_text(run_id, json.dumps(snapshot.manifest.to_dict(), indent=2, default=str), "data/manifest.json")
    contract_reports = workspace.reports / "contracts" / snapshot_id
    if contract_reports.is_dir():
        client.log_artifacts(run_id, str(contract_reports), "data_contract")
    registry.log_dataset(
        run_id, snapshot.load(), name=f"snapshot-{snapshot_id}", source=str(snapshot.data_path), context="training"
    )
    return TrackingRun(tracking_uri=tracking_uri, run_id=run_id, experiment_id=experiment_id)


REGISTRATION_TAG = "registration"


def fail_abandoned_runs(client, experiment_id: str, model_name: str, workspace_root: str) -> list[str]:
    """Mark KILLED the runs of this model and workspace that never registered a version (killed mid-run, or
    after MLflow closed the run while logging the model). Only call while holding the run lock."""
    name, root = model_name.replace("'", "\\'"), workspace_root.replace("'", "\\'")
    runs = client.search_runs(
        [experiment_id],
        max_results=100,
        filter_string=(
            f"tags.registered_model = '{name}' and tags.workspace = '{root}' and tags.{REGISTRATION_TAG} = 'pending' "
            "and attributes.status != 'FAILED' and attributes.status != 'KILLED'"
        ),
    )
    from pipeline.registry.versions import find_version_of_run

    failed = []
    for run in runs:
        version = find_version_of_run(client, model_name, run.info.run_id)
        if version is not None:  # killed after registering: the version counts, its run is closed as such
            client.set_tag(run.info.run_id, "registered_version", str(version.version))
            client.set_tag(run.info.run_id, REGISTRATION_TAG, "done")
            client.set_tag(run.info.run_id, "interrupted", "after registering; check the version's aliases")
            registry.end_run(client, run.info.run_id, status="FINISHED")
            continue
        client.set_tag(
            run.info.run_id,
            "failure_reason",
            "interrupted before a version was registered (the process died or was killed); its data stays untrained",
        )
        client.set_tag(run.info.run_id, REGISTRATION_TAG, "none")
        registry.end_run(client, run.info.run_id, status="KILLED")
        failed.append(run.info.run_id)
    if failed:
        logger.warning("marked %d interrupted run(s) KILLED: %s", len(failed), ", ".join(failed))
    return failed


def fail_tracking(tracking: TrackingRun | None, reason: str) -> None:
    """Mark the MLflow run FAILED with the reason (no-op when no run was opened).

    Never raises: it runs while another error is on its way out (often the tracking server being gone),
    and that original error is what the caller must see. A run left RUNNING is logged here.
    """
    if tracking is None:
        return
    try:
        client = registry.client(tracking.tracking_uri)
        client.set_tag(tracking.run_id, "failure_reason", reason[:5000])
        client.set_tag(tracking.run_id, REGISTRATION_TAG, "none")
        registry.end_run(client, tracking.run_id, status="FAILED")
    except Exception as exc:
        logger.warning(
            "could not mark MLflow run %s FAILED (%s: %s); the run's own error follows",
            tracking.run_id,
            type(exc).__name__,
            str(exc).splitlines()[0] if str(exc) else "",
        )


EXAMPLE_TEXTS = ["the app crashes on start", "my parcel has not arrived", "I was charged twice"]


def register_model(
    config: PipelineConfig,
    workspace: Workspace,
    tracking: TrackingRun,
    trained: TrainedModel,
    evaluation: Evaluation,
    comparison: Comparison | None = None,
) -> Registration:
    """Log the pyfunc, register a version with its lineage, gate outcome and model card, then move aliases.

    ``comparison`` is ``compare_with_champion``'s outcome. A version that passes the gate gets
    ``challenger``; ``become_champion`` (first version, or ``auto_promote``) moves ``champion`` by
    compare-and-set against the champion it was compared with, so when two runs finish together only
    one becomes champion and the other records why it was not promoted. Every move is audited.
    """
    from pipeline.registry import aliases, model_card
    from pipeline.registry import versions as registration

    client = registry.client(tracking.tracking_uri)
    name, run_id = config.registry.model_name, tracking.run_id
    compared = comparison or registration.uncompared_outcome(config.promotion, name, client, run_id, evaluation)
    outcome, gate = compared.to_dict(), compared.gate
    manifest = workspace.snapshots / trained.snapshot_id / "manifest.json"
    lineage = registry.collect_lineage(client, run_id, Path(trained.model_dir), manifest, config.model.name_or_path)
    client.log_dict(run_id, lineage.get("label_map") or {}, "registry/label_map.json")
    version = registration.find_version_of_run(client, name, run_id)  # a retried task reuses its version
    if version is None:
        model_uri = registry.log_model(run_id, Path(trained.model_dir), EXAMPLE_TEXTS)
        registry.log_model_metrics(
            client, run_id, registry.model_id_of(model_uri), evaluation.metrics, evaluation.dataset
        )
        fault_point("after-log-model")
        version = registry.register_version(
            client,
            model_uri,
            name,
            run_id,
            registration.version_tags(lineage, evaluation.metrics, outcome),
            f"Registering. Gate: {gate['reason']}"[:5000],
        )
    fault_point("after-register-version")
    number, actor = str(version.version), f"pipeline run {run_id} ({aliases.default_actor()})"
    note = None
    if gate["passed"]:
        aliases.move_alias(client, name, registry.CHALLENGER, number, actor=actor, action="gate", reason=gate["reason"])
    if gate["become_champion"]:
        expected = outcome["champion"]["version"] if outcome["champion"] else None
        try:
            aliases.move_alias(
                client,
                name,
                registry.CHAMPION,
                number,
                expect_current=expected,
                actor=actor,
                action="first-champion" if expected is None else "auto-promote",
                reason=gate["reason"],
            )
        except aliases.AliasMovedError as exc:
            note = f"the champion moved while this run was being evaluated ({exc}); compare again or promote by hand"
            client.set_model_version_tag(name, number, "promotion_refused", note)
            logger.warning("version %s not promoted: %s", number, note)
    current = registry.aliases_of(client, name, number)
    card = model_card.render_model_card(name, number, lineage, evaluation.to_dict(), outcome, current, note)
    compact = model_card.render_model_card(
        name, number, lineage, evaluation.to_dict(), outcome, current, note, compact=True
    )
    client.update_model_version(name, number, description=model_card.fit_description(card, compact))
    client.log_text(run_id, card, "registry/model_card.md")
    client.set_tag(run_id, "registered_version", number)
    client.set_tag(run_id, REGISTRATION_TAG, "done")
    fault_point("before-end-run")
    registry.end_run(client, run_id)
    fault_point("after-end-run")
    from pipeline.training.run_folders import clear_run_checkpoints

    clear_run_checkpoints(workspace, name, run_id)
    return Registration(
        model_name=name,
        model_version=number,
        model_uri=version.source,
        aliases=current,
        gate=gate,
        promotion_note=note,
        model_card=card,
        model_id=getattr(version, "model_id", None) or registry.model_id_of(version.source),
    )
