"""Task of the validation stage: the data gate that stops a run on a failed contract."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from pipeline.config import PipelineConfig
from pipeline.results import DataOutcome
from pipeline.validation import steps
from pipeline.validation.results import ContractResult
from pipeline.workspace import Workspace


@task(name="check-data-gate")
def check_data_gate(config: PipelineConfig, workspace: Workspace, data: DataOutcome) -> ContractResult:
    try:
        result = steps.check_data_gate(config, workspace, data)
    except Exception as exc:
        result = getattr(exc, "result", None)
        body = result.to_markdown("Data gate") if result is not None else ""
        create_markdown_artifact(
            key="data-gate", markdown=f"# Data gate: FAILED\n\n{exc}\n\n{body}", description="Why the run stopped"
        )
        raise
    create_markdown_artifact(
        key="data-gate", markdown=result.to_markdown("Snapshot contract"), description="Data contract result"
    )
    return result
