"""Task for the retraining decision: what arrived since the last training, and whether to train."""

from __future__ import annotations

from dataclasses import asdict

from prefect import task
from prefect.artifacts import create_markdown_artifact

from pipeline.config import PipelineConfig
from pipeline.ops import retraining
from pipeline.tasks.reporting import new_data_markdown
from pipeline.workspace import Workspace


@task(name="check-new-data")
def check_new_data(config: PipelineConfig, workspace: Workspace) -> dict:
    """``{"train": bool, "reason": str, "new_data": {...}}``; publishes the decision as an artifact."""
    new_data = retraining.measure_new_data(config, workspace)
    decision = asdict(retraining.decide_retraining(new_data, config.retraining.min_new_rows))
    create_markdown_artifact(key="new-data", markdown=new_data_markdown(new_data.to_dict(), decision),
                             description="Retraining decision")
    return {**decision, "new_data": new_data.to_dict()}
