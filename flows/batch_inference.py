"""The batch-inference flow: score new unlabeled files with the champion, check drift, report.

Deployed on ``scoring.schedule_cron`` and on the ``pipeline.inbox.arrived`` event (deployments/); emits
``pipeline.drift.detected`` when a scored file drifted past an error threshold.
"""

from __future__ import annotations

from prefect import flow

from pipeline.config import PipelineConfig
from pipeline.tasks.data import prepare_workspace
from pipeline.tasks.notifications import report_failure
from pipeline.tasks.scoring import announce_drift, check_scoring_gate, load_scoring_model, record_scoring, score_inbox


@flow(
    name="batch-inference",
    log_prints=True,
    validate_parameters=True,
    on_failure=[report_failure],
    on_crashed=[report_failure],
)
def batch_inference_flow(
    config: PipelineConfig = PipelineConfig(), model_uri: str | None = None, paths: list[str] | None = None
) -> dict:
    """Score every input not scored before with ``model_uri`` (default: the champion, resolved now)."""
    workspace = prepare_workspace(config)
    scoring = load_scoring_model(config, workspace, model_uri)
    if scoring is None:  # no champion yet: the inbox waits for the first promotion
        print(f"{config.registry.model_name} has no champion yet: nothing scored, the inbox waits")
        return {"status": "waiting for a champion", "files": [], "rows": 0}
    outcome = score_inbox(config, workspace, scoring, paths)
    link = record_scoring(config, workspace, outcome) if outcome.files else None
    events = announce_drift(outcome, workspace) if outcome.drifted else []
    print(
        f"{outcome.model_name} v{outcome.model_version}: {len(outcome.scored)} files, {outcome.rows} rows scored, "
        f"{len(outcome.failed)} failed, {len(outcome.skipped)} skipped, {len(outcome.drifted)} drifted"
    )
    check_scoring_gate(outcome)
    return {**outcome.to_dict(), "status": "completed", "model_link": link, "drift_events": events}
