"""The data gate inside the flow: a batch with one bad file stops the run before training, and the Prefect
artifacts show each expectation's result per file and why the run stopped."""

import shutil

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from pipeline.flows.training import training_flow
from pipeline.validation.results import DataValidationError
from pipeline.workspace import Workspace
from tests.conftest import FIXTURES


def latest_markdown(key: str) -> str:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return sorted(artifacts, key=lambda a: a.created)[-1].data


def test_a_bad_file_stops_the_flow_with_per_file_contract_artifacts(tiny_config):
    workspace = Workspace.resolve(tiny_config.workspace).ensure()
    shutil.copy(FIXTURES / "contract" / "good.csv", workspace.landing / "good.csv")
    shutil.copy(FIXTURES / "contract" / "duplicate_rows.csv", workspace.landing / "dupes.csv")
    with pytest.raises(DataValidationError) as info:
        training_flow(config=tiny_config)
    assert "dupes.csv" in str(info.value) and "rule duplicate_rows observed 15 of 75 rows (20.00%)" in str(info.value)
    assert "row 61" in str(info.value)

    contract = latest_markdown("data-contract")
    assert "## Data contract: good.csv: PASSED" in contract and "## Data contract: dupes.csv: FAILED" in contract
    assert "| duplicate_rows | is_duplicate | error | **FAIL** | 15 of 75 rows (20.00%) |" in contract
    assert "| text_not_blank | is_blank | error | pass | 0 of 60 rows (0.00%) |" in contract
    gate = latest_markdown("data-gate")
    assert gate.startswith("# Data gate: FAILED") and "duplicate_rows" in gate and "**FAIL**" in gate
    assert not list(workspace.runs.iterdir()), "nothing was trained"
    assert list(workspace.quarantine.glob("*dupes.csv.report.md"))
