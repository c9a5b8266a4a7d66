"""Tasks for the data stages: ingest with the contract, the data gate, splitting."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from pipeline.config import PipelineConfig
from pipeline.data import steps as data_steps
from pipeline.results import DataOutcome
from pipeline.tasks.reporting import contracts_markdown, data_markdown
from pipeline.validation import steps as validation_steps
from pipeline.validation.contract import ContractResult
from pipeline.workspace import Workspace
from pipeline.workspace import prepare_workspace as resolve_workspace


@task(name="prepare-workspace")
def prepare_workspace(config: PipelineConfig) -> Workspace:
    return resolve_workspace(config)


@task(name="ingest-data")
def ingest_data(config: PipelineConfig, workspace: Workspace) -> DataOutcome:
    outcome = data_steps.ingest_and_validate(config, workspace)
    create_markdown_artifact(key="data-ingestion", markdown=data_markdown(outcome), description="Ingested files")
    create_markdown_artifact(key="data-contract", markdown=contracts_markdown(outcome),
                             description="Each expectation's result and observed value, per file")
    return outcome


@task(name="check-data-gate")
def check_data_gate(outcome: DataOutcome, config: PipelineConfig, workspace: Workspace) -> ContractResult:
    try:
        result = validation_steps.check_data_gate(outcome, config, workspace)
    except Exception as exc:
        result = getattr(exc, "result", None)
        body = result.to_markdown("Data gate") if result is not None else ""
        create_markdown_artifact(key="data-gate", markdown=f"# Data gate: FAILED\n\n{exc}\n\n{body}",
                                 description="Why the run stopped")
        raise
    create_markdown_artifact(key="data-gate", markdown=result.to_markdown("Snapshot contract"),
                             description="Data contract result")
    return result


@task(name="split-data")
def split_data(snapshot_id: str, config: PipelineConfig, workspace: Workspace):
    return data_steps.split_snapshot(snapshot_id, config, workspace)
