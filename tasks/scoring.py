"""Tasks of the batch-inference flow: load the model, score the inbox, record, report, announce drift."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from pipeline.config import PipelineConfig
from pipeline.scoring import steps as scoring_steps
from pipeline.scoring.model import ModelNotFoundError
from pipeline.scoring.outcomes import ScoringOutcome
from pipeline.scoring.reports import scoring_markdown
from pipeline.workspace import Workspace

DRIFT_DETECTED = "pipeline.drift.detected"
INBOX_ARRIVED = "pipeline.inbox.arrived"


class BatchScoringError(RuntimeError):
    """Some input files could not be scored (the others were); carries the outcome."""

    def __init__(self, outcome: ScoringOutcome):
        self.outcome = outcome
        failed = "; ".join(f"{f.uri}: {f.error}" for f in outcome.failed)
        super().__init__(f"{len(outcome.failed)} of {len(outcome.files)} files failed: {failed}"[:4000])


def _not_a_missing_model(task, task_run, state) -> bool:
    """Retry a load that met a transient fault, not one asking for a model that does not exist."""
    try:
        state.result()
    except ModelNotFoundError:
        return False
    except Exception:
        return True
    return True


@task(
    name="load-scoring-model",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=_not_a_missing_model,
    cache_policy=NO_CACHE,
)
def load_scoring_model(config: PipelineConfig, workspace: Workspace, model_uri: str | None):
    """The named model, else the champion; None while there is no champion yet."""
    return scoring_steps.load_champion_if_any(config, workspace, model_uri)


@task(name="score-inbox", cache_policy=NO_CACHE)
def score_inbox(config: PipelineConfig, workspace: Workspace, scoring, paths: list[str] | None) -> ScoringOutcome:
    return scoring_steps.score_inbox(config, workspace, scoring, paths)


@task(name="record-scoring", retries=2, retry_delay_seconds=5)
def record_scoring(config: PipelineConfig, workspace: Workspace, outcome: ScoringOutcome) -> str | None:
    link = scoring_steps.record_scoring(config, workspace, outcome)
    create_markdown_artifact(
        key="batch-inference",
        markdown=scoring_markdown(outcome, link),
        description="Rows scored, label mix, confidence and drift per file",
    )
    return link


@task(name="announce-drift")
def announce_drift(outcome: ScoringOutcome, workspace: Workspace) -> list[str]:
    """Emit ``pipeline.drift.detected`` for each file whose drift report has an error; returns the event ids."""
    ids = []
    for item in outcome.drifted:
        event = emit_event(
            DRIFT_DETECTED,
            resource={
                "prefect.resource.id": f"pipeline.model.{outcome.model_name}.{outcome.model_version}",
                "prefect.resource.name": f"{outcome.model_name} version {outcome.model_version}",
                "pipeline.model-name": outcome.model_name,
                "pipeline.model-version": outcome.model_version,
                "pipeline.workspace": str(workspace.root),
            },
            payload={
                "file": item.uri,
                "predictions": item.output,
                "rows": item.rows,
                "reason": item.drift["reason"],
                "observed": item.drift["observed"],
                "to_label": item.to_label,
            },
        )
        if event is not None:
            ids.append(str(event.id))
    return ids


@task(name="check-scoring-gate")
def check_scoring_gate(outcome: ScoringOutcome) -> None:
    """Fail the run (after every other file was scored and reported) when a file could not be scored."""
    if outcome.failed:
        raise BatchScoringError(outcome)
