"""Tasks of the evaluation stage: test metrics, then the comparison with the live champion (the gate)."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from pipeline.config import PipelineConfig
from pipeline.evaluation import steps
from pipeline.ops.reports import comparison_markdown, evaluation_markdown
from pipeline.results import Comparison, Evaluation, Splits, TrackingRun, TrainedModel
from pipeline.workspace import Workspace


@task(name="evaluate-model")
def evaluate_model(
    config: PipelineConfig, workspace: Workspace, tracking: TrackingRun, trained: TrainedModel, splits: Splits
) -> Evaluation:
    evaluation = steps.evaluate_model(config, workspace, tracking, trained, splits)
    create_markdown_artifact(key="evaluation", markdown=evaluation_markdown(evaluation), description="Test metrics")
    return evaluation


@task(name="compare-with-champion")
def compare_with_champion(
    config: PipelineConfig, workspace: Workspace, tracking: TrackingRun, evaluation: Evaluation, splits: Splits
) -> Comparison:
    comparison = steps.compare_with_champion(config, workspace, tracking, evaluation, splits)
    create_markdown_artifact(
        key="champion-comparison",
        markdown=comparison_markdown(comparison),
        description="Candidate vs the live champion on the same test split, and the gate",
    )
    return comparison
