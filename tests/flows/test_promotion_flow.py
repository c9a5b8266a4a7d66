"""The promotion policy through the training flow: first champion, auto-promotion, a failed gate."""

import json

from mlflow import MlflowClient
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

from pipeline.data.demo import write_demo_files
from pipeline.flows.training import training_flow
from pipeline.registry.aliases import read_history
from pipeline.workspace import Workspace


def artifact_text(flow_run_id, key: str) -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        )
    assert len(found) == 1, key
    return found[0].data


def run(config):
    state = training_flow(config=config, return_state=True)
    return state.result(), state.state_details.flow_run_id


def test_first_champion_auto_promotion_and_a_failed_gate(tiny_config):
    write_demo_files(Workspace.resolve(tiny_config.workspace).ensure().landing, (1,), rows_per_batch=300)
    name = tiny_config.registry.model_name
    first, flow_run = run(tiny_config)
    assert first["aliases"] == ["challenger", "champion"]
    assert "No champion yet" in artifact_text(flow_run, "champion-comparison")
    assert "# Model card: tiny-classifier version 1" in artifact_text(flow_run, "registration")

    tiny_config.promotion.auto_promote = True
    tiny_config.promotion.min_improvement = -1.0
    tiny_config.promotion.max_class_regression = 1.0
    tiny_config.training.learning_rate = 0.002
    second, flow_run = run(tiny_config)
    assert second["aliases"] == ["challenger", "champion"], second["gate"]
    report = artifact_text(flow_run, "champion-comparison")
    assert "Champion: **version 1**" in report and "McNemar" in report and "Per-class F1" in report

    tiny_config.promotion.min_metric = 1.0
    third, flow_run = run(tiny_config)
    assert third["aliases"] == [] and third["gate"]["outcome"] == "rejected"
    client = MlflowClient(Workspace.resolve(tiny_config.workspace).tracking_uri())
    failed = client.get_model_version(name, third["model_version"])
    assert failed.tags["gate_passed"] == "False" and "floor 1.0000" in failed.tags["gate_reason"]
    assert "Status: **no alias**" in failed.description and "FAILED" in failed.description
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"

    history = read_history(client, name)
    assert [(e["alias"], e["from"], e["to"], e["action"]) for e in history] == [
        ("challenger", None, "1", "gate"),
        ("champion", None, "1", "first-champion"),
        ("challenger", "1", "2", "gate"),
        ("champion", "1", "2", "auto-promote"),
    ]
    assert all(e["actor"].startswith("pipeline run ") for e in history)
    comparison = json.loads(failed.tags["comparison"])
    assert comparison["champion"]["version"] == "2", "the third run compared against the live champion"
