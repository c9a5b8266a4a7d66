"""Task for evaluating the trained model on the frozen test split."""

from __future__ import annotations

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact

from pipeline.config import PipelineConfig
from pipeline.evaluation import steps as evaluation_steps
from pipeline.tasks.reporting import evaluation_markdown
from pipeline.workspace import Workspace


@task(name="evaluate-model")
def evaluate_model(model_dir: str, test_frame: pd.DataFrame, config: PipelineConfig, workspace: Workspace,
                   tracking: dict) -> dict:
    evaluation = evaluation_steps.evaluate_model(model_dir, test_frame, config, workspace, tracking)
    create_markdown_artifact(key="evaluation", markdown=evaluation_markdown(evaluation), description="Test metrics")
    return evaluation
