"""Tasks for the promotion gate (compare with the champion) and registering the version in MLflow."""

from __future__ import annotations

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact

from pipeline.config import PipelineConfig
from pipeline.evaluation import steps as evaluation_steps
from pipeline.registry import steps as registry_steps
from pipeline.tasks.reporting import comparison_markdown, registration_markdown


@task(name="compare-with-champion")
def compare_with_champion(config: PipelineConfig, tracking: dict, test_frame: pd.DataFrame, evaluation: dict) -> dict:
    comparison = evaluation_steps.compare_with_champion(config, tracking, test_frame, evaluation)
    create_markdown_artifact(key="champion-comparison", markdown=comparison_markdown(comparison),
                             description="Candidate vs the live champion on the same test split, and the gate")
    return comparison


@task(name="register-model", retries=2, retry_delay_seconds=5)
def register_model(config: PipelineConfig, tracking: dict, model_dir: str, snapshot_id: str, evaluation: dict,
                   comparison: dict | None = None) -> dict:
    registered = registry_steps.register_model(config, tracking, model_dir, snapshot_id, evaluation, comparison)
    create_markdown_artifact(key="registration", markdown=registration_markdown(registered),
                             description="Registered model version and its model card")
    return registered
