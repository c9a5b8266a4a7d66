"""Tasks of the registry stage: the MLflow run of a training, and registering its model version."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from pipeline.config import PipelineConfig
from pipeline.ops.reports import registration_markdown
from pipeline.registry import steps
from pipeline.results import Comparison, DataOutcome, Evaluation, Registration, TrackingRun, TrainedModel
from pipeline.tasks.links import link_tracking_run
from pipeline.workspace import Workspace


@task(name="start-tracking", retries=2, retry_delay_seconds=5)
def start_tracking(config: PipelineConfig, workspace: Workspace, data: DataOutcome) -> TrackingRun:
    tracking = steps.start_tracking(config, workspace, data.snapshot_id)
    link_tracking_run(config, tracking)
    return tracking


@task(name="fail-tracking")
def fail_tracking(tracking: TrackingRun | None, reason: str) -> None:
    steps.fail_tracking(tracking, reason)


@task(name="register-model", retries=2, retry_delay_seconds=5)
def register_model(
    config: PipelineConfig,
    workspace: Workspace,
    tracking: TrackingRun,
    trained: TrainedModel,
    evaluation: Evaluation,
    comparison: Comparison | None = None,
) -> Registration:
    registration = steps.register_model(config, workspace, tracking, trained, evaluation, comparison)
    create_markdown_artifact(
        key="registration",
        markdown=registration_markdown(registration),
        description="Registered model version and its model card",
    )
    return registration
