"""The retraining and ingestion flows under the Prefect test harness, with the tiny random BERT."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from mlflow import MlflowClient
from prefect.artifacts import Artifact

from pipeline.data.demo import write_demo_files
from pipeline.flows.ingestion import ingestion_flow
from pipeline.flows.retraining import manual_training_flow, retraining_flow
from pipeline.workspace import Workspace
from tests.conftest import FIXTURES


def registered_versions(config) -> list:
    workspace = Workspace.resolve(config.workspace)
    if not (workspace.mlflow_dir / "mlflow.db").exists():
        return []
    uri = workspace.tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return sorted(client.search_model_versions(f"name='{config.registry.model_name}'"), key=lambda v: int(v.version))


def artifact_of(key: str, flow_run_id):
    artifact = Artifact.get(key)
    assert artifact is not None and artifact.flow_run_id == flow_run_id, f"no {key} artifact for this run"
    return artifact


@pytest.fixture
def webhook():
    """A local HTTP server on 127.0.0.1 that records the JSON bodies posted to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_port}/hook", "received": received}
    server.shutdown()
    server.server_close()


def test_no_data_finishes_at_once_and_trains_nothing(tiny_config):
    state = retraining_flow(tiny_config, return_state=True)
    assert state.is_completed()
    assert state.message == "no new data: nothing pending"
    assert registered_versions(tiny_config) == []
    assert "skip" in artifact_of("new-data", state.state_details.flow_run_id).data


def test_retrains_on_new_files_and_on_ingested_snapshots_only(tiny_config):
    # 100-row demo batches: larger ones repeat a few texts of the frozen test split and fail the contract.
    landing = Workspace.resolve(tiny_config.workspace).ensure().landing
    write_demo_files(landing, (1,), rows_per_batch=100)

    first = retraining_flow(tiny_config)
    assert first["status"] == "trained" and first["new_data"]["pending_rows"] == 100
    assert [int(v.version) for v in registered_versions(tiny_config)] == [1]

    again = retraining_flow(tiny_config, return_state=True)
    assert again.is_completed() and again.message.startswith("no new data")
    assert "already trained" in again.message
    assert len(registered_versions(tiny_config)) == 1

    # Fewer new rows than min_new_rows: skipped, and the file stays pending (nothing ingested).
    write_demo_files(landing, (3,), rows_per_batch=100)
    demanding = tiny_config.model_copy(deep=True)
    demanding.retraining.min_new_rows = 1000
    skipped = retraining_flow(demanding, return_state=True)
    assert skipped.message.startswith("no new data") and "fewer than min_new_rows=1000" in skipped.message
    assert skipped.result()["new_data"]["pending_rows"] == 100

    # Ingestion on its own takes the file in and announces the snapshot; retraining then trains on it.
    ingested = ingestion_flow(config=tiny_config)
    assert ingested["snapshot_changed"] and ingested["rows_added"] == 100
    trained = retraining_flow(tiny_config)
    assert trained["status"] == "trained"
    assert trained["new_data"]["pending_rows"] == 0 and trained["new_data"]["untrained_rows"] == 100
    latest = registered_versions(tiny_config)
    assert len(latest) == 2 and latest[-1].tags["snapshot_id"] == ingested["snapshot_id"]


def test_failed_run_publishes_the_reason_and_posts_the_webhook(tiny_config, webhook):
    landing = Workspace.resolve(tiny_config.workspace).ensure().landing
    shutil.copy(FIXTURES / "bad_blank_and_missing_label.csv", landing / "bad.csv")
    config = tiny_config.model_copy(deep=True)
    config.notifications.webhook_url = webhook["url"]

    state = retraining_flow(config, return_state=True)
    assert state.is_failed()
    flow_run_id = state.state_details.flow_run_id
    report = artifact_of("run-failure", flow_run_id).data
    assert "DataValidationError" in report and "bad.csv" in report
    assert len(webhook["received"]) == 1
    message = webhook["received"][0]
    assert message["event"] == "pipeline.run.failed" and message["flow"] == "retraining"
    assert message["flow_run_id"] == str(flow_run_id) and message["state"] == "Failed"
    assert "bad.csv" in message["reason"] and message["model_name"] == "tiny-classifier"
    assert message["text"].startswith("Pipeline run retraining/")
    assert registered_versions(config) == []


def test_manual_training_flow_reports_failures_too(tiny_config, webhook):
    landing = Workspace.resolve(tiny_config.workspace).ensure().landing
    shutil.copy(FIXTURES / "bad_blank_and_missing_label.csv", landing / "bad.csv")
    config = tiny_config.model_copy(deep=True)
    config.notifications.webhook_url = webhook["url"]
    assert manual_training_flow.name == "training"
    state = manual_training_flow(config=config, return_state=True)
    assert state.is_failed()
    assert [m["flow"] for m in webhook["received"]] == ["training"]
    assert "bad.csv" in artifact_of("run-failure", state.state_details.flow_run_id).data
