"""Tasks for tokenization, tracking and fine-tuning."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from pipeline.config import PipelineConfig
from pipeline.registry import steps as registry_steps
from pipeline.tasks.links import link_tracking_run
from pipeline.tasks.logs import ProgressReporter
from pipeline.tasks.reporting import training_markdown
from pipeline.training import steps as training_steps
from pipeline.workspace import Workspace


@task(name="tokenize-data")
def tokenize_data(splits: dict, config: PipelineConfig, workspace: Workspace):
    return training_steps.tokenize_splits(splits, config, workspace)


@task(name="start-tracking", retries=2, retry_delay_seconds=5)
def start_tracking(config: PipelineConfig, workspace: Workspace, snapshot_id: str) -> dict:
    tracking = registry_steps.start_tracking(config, workspace, snapshot_id)
    link_tracking_run(config, tracking)
    return tracking


@task(name="fine-tune")
def fine_tune(config: PipelineConfig, workspace: Workspace, tracking: dict, snapshot_id: str, tokenizer,
              label_map: dict, tokenized: dict, warm_start_dir: str | None = None) -> dict:
    trained = training_steps.train_model(config, workspace, tracking, snapshot_id, tokenizer, label_map, tokenized,
                                         warm_start_dir, on_progress=ProgressReporter())
    create_markdown_artifact(key="fine-tuning", markdown=training_markdown(trained), description="Training curve numbers")
    return trained


@task(name="fail-tracking")
def fail_tracking(tracking: dict | None, reason: str) -> None:
    registry_steps.fail_tracking(tracking, reason)
