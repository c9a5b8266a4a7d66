"""Task of the operations stage: the retraining decision, published as an artifact."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from pipeline.config import PipelineConfig
from pipeline.ops import steps
from pipeline.ops.reports import new_data_markdown
from pipeline.results import RetrainingCheck
from pipeline.workspace import Workspace


@task(name="check-new-data")
def check_new_data(config: PipelineConfig, workspace: Workspace) -> RetrainingCheck:
    check = steps.check_new_data(config, workspace)
    create_markdown_artifact(key="new-data", markdown=new_data_markdown(check), description="Retraining decision")
    return check
