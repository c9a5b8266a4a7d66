"""Tasks of the data stage: the workspace, ingestion under the contract, splitting."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from pipeline.config import PipelineConfig
from pipeline.data import steps
from pipeline.ops.reports import contracts_markdown, data_markdown
from pipeline.results import DataOutcome, Splits
from pipeline.workspace import Workspace
from pipeline.workspace import prepare_workspace as resolve_workspace


@task(name="prepare-workspace")
def prepare_workspace(config: PipelineConfig) -> Workspace:
    return resolve_workspace(config)


@task(name="ingest-data")
def ingest_data(config: PipelineConfig, workspace: Workspace) -> DataOutcome:
    outcome = steps.ingest_and_validate(config, workspace)
    create_markdown_artifact(key="data-ingestion", markdown=data_markdown(outcome), description="Ingested files")
    create_markdown_artifact(
        key="data-contract",
        markdown=contracts_markdown(outcome),
        description="Each expectation's result and observed value, per file",
    )
    return outcome


@task(name="split-data")
def split_data(config: PipelineConfig, workspace: Workspace, data: DataOutcome) -> Splits:
    return steps.split_snapshot(config, workspace, data.snapshot_id)
