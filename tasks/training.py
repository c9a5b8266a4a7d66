"""Tasks of the training stage: tokenization and fine-tuning."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from pipeline.config import PipelineConfig
from pipeline.ops.reports import training_markdown
from pipeline.results import Splits, TokenizedData, TrackingRun, TrainedModel
from pipeline.tasks.logs import ProgressReporter
from pipeline.training import steps
from pipeline.workspace import Workspace


@task(name="tokenize-data")
def tokenize_data(config: PipelineConfig, workspace: Workspace, splits: Splits) -> TokenizedData:
    return steps.tokenize_splits(config, workspace, splits)


@task(name="fine-tune")
def fine_tune(
    config: PipelineConfig,
    workspace: Workspace,
    tracking: TrackingRun,
    data: TokenizedData,
    warm_start_dir: str | None = None,
) -> TrainedModel:
    trained = steps.train_model(config, workspace, tracking, data, warm_start_dir, on_progress=ProgressReporter())
    create_markdown_artifact(
        key="fine-tuning", markdown=training_markdown(trained), description="Training curve numbers"
    )
    return trained
