"""Task for registering the model version in MLflow and moving aliases."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from pipeline import steps
from pipeline.config import PipelineConfig
from tasks.reporting import registration_markdown


@task(name="register-model", retries=2, retry_delay_seconds=5)
def register_model(config: PipelineConfig, tracking: dict, model_dir: str, snapshot_id: str, evaluation: dict,
                   gate: dict | None = None) -> dict:
    registered = steps.register_model(config, tracking, model_dir, snapshot_id, evaluation, gate)
    create_markdown_artifact(key="registration", markdown=registration_markdown(registered),
                             description="Registered model version")
    return registered
