"""The deployed pipeline on a real Prefect server: `prefect server start` + `pipeline deploy` (process worker),
driven through the API the way the UI drives it. Tiny random BERT; one server for the whole module."""

from __future__ import annotations

import time

import pytest
from mlflow import MlflowClient

from pipeline.config import load_config
from pipeline.data.demo import write_demo_files
from pipeline.workspace import Workspace
from tests.integration.prefect_stack import PrefectStack, stop

pytestmark = pytest.mark.integration

MODEL = "tiny-deployed"
POOL = "pipeline-test"
YEARLY = "30 4 1 1 *"  # a scheduled run must not fire in the middle of the test


def tiny_overrides(model_dir: str, epochs: int = 1) -> list[str]:
    return [
        f"model.name_or_path={model_dir}",
        "model.max_length=64",
        f"training.epochs={epochs}",
        "training.batch_size=16",
        "training.learning_rate=0.001",
        "training.checkpoint_steps=1000",
        f"registry.model_name={MODEL}",
        f"deployment.work_pool={POOL}",
        f"retraining.schedule_cron={YEARLY}",
    ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_model_dir):
    """Server + `pipeline deploy` whose deployment defaults are the tiny configuration."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = tmp_path_factory.mktemp("deployed")
    workspace = root / "ws"
    # Fast polling and a short wait for a concurrency slot keep the test short; production keeps the defaults.
    server = PrefectStack.start_server(root, workspace, PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS="2")
    try:
        args = [arg for item in tiny_overrides(tiny_model_dir) for arg in ("--set", item)]
        server.start_serve(root, args, PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5")
        with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
            server.wait_for_worker(client, POOL)
            yield {"stack": server, "client": client, "workspace": Workspace(workspace), "root": root}
    finally:
        server.close()


def registry(workspace: Workspace) -> MlflowClient:
    uri = workspace.default_tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def versions(workspace: Workspace) -> list:
    if not (workspace.mlflow_dir / "mlflow.db").exists():
        return []
    return sorted(registry(workspace).search_model_versions(f"name='{MODEL}'"), key=lambda v: int(v.version))


def run(name: str, parameters: dict | None = None, timeout: float = 600):
    from prefect.deployments import run_deployment

    return run_deployment(name, parameters=parameters, timeout=timeout, poll_interval=1)


def wait_final(client, flow_run_id, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        flow_run = client.read_flow_run(flow_run_id)
        if flow_run.state.is_final():
            return flow_run
        time.sleep(1)
    raise TimeoutError(f"flow run {flow_run_id} not finished after {timeout} s")


def wait_for_new_run(client, deployment_id, since: float, known: set, timeout: float = 120):
    """The first run of the deployment created after ``since`` that nobody here started (not scheduled either)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.read_flow_runs(deployment_filter=_deployment_filter(deployment_id))
        fresh = [r for r in runs if not r.auto_scheduled and r.created.timestamp() >= since and r.id not in known]
        if fresh:
            return fresh[0]
        time.sleep(1)
    raise AssertionError("no retraining run was started by the pipeline.data.arrived event")


def child_flow_runs(client, parent) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    return client.read_flow_runs(
        flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id]))
    )


def test_deployments_train_retrain_skip_and_take_turns(stack, tiny_model_dir):
    client, workspace = stack["client"], stack["workspace"]
    landing = workspace.ensure().landing

    # The deployments exist with the typed parameter form, the schedule, the event trigger and one shared slot.
    retraining = client.read_deployment_by_name("retraining/retraining")
    training = client.read_deployment_by_name("training/training")
    assert retraining.schedules[0].schedule.cron == YEARLY
    assert training.enforce_parameter_schema and retraining.enforce_parameter_schema
    assert training.entrypoint == "pipeline.flows.retraining.manual_training_flow"  # with failure notification
    form = training.parameter_openapi_schema["definitions"]["RetrainingConfig"]["properties"]["min_new_rows"]
    assert form["minimum"] == 1 and form["description"]
    assert (
        retraining.global_concurrency_limit.name == training.global_concurrency_limit.name == f"pipeline-model-{MODEL}"
    )

    # 1. A person starts `training` with their own parameters (two epochs) while retraining fires too:
    #    one waits for the model's slot, they never overlap, and the custom run registers a version.
    write_demo_files(landing, (1,), rows_per_batch=100)
    custom = load_config(overrides=tiny_overrides(tiny_model_dir, epochs=2), environ={}).model_dump(mode="json")
    started = [run("training/training", {"config": custom}, timeout=0), run("retraining/retraining", timeout=0)]
    done = [wait_final(client, r.id) for r in started]
    assert all(r.state.is_completed() for r in done), [r.state.message for r in done]
    waited = [r for r in done if any(s.name == "AwaitingConcurrencySlot" for s in client.read_flow_run_states(r.id))]
    assert waited, "neither run waited for the model's concurrency slot"
    first, second = sorted(done, key=lambda r: r.start_time)
    assert first.end_time <= second.start_time
    registered = versions(workspace)
    assert any(registry(workspace).get_run(v.run_id).data.params["training.epochs"] == "2" for v in registered)

    # 2. Retraining with nothing new: completes with "no new data" at once and trains nothing.
    idle = run("retraining/retraining")
    assert idle.state.is_completed() and idle.state.message.startswith("no new data"), idle.state.message
    assert child_flow_runs(client, idle) == []
    assert len(versions(workspace)) == len(registered)

    # 3. A new file lands; retraining trains on it and registers a new version.
    write_demo_files(landing, (2,), rows_per_batch=100)
    fresh = run("retraining/retraining")
    assert fresh.state.is_completed() and fresh.state.message.startswith("registered"), fresh.state.message
    assert len(child_flow_runs(client, fresh)) == 1
    assert len(versions(workspace)) == len(registered) + 1

    # 4. Ingestion takes the next file in and announces the snapshot; the event starts retraining on its own.
    since = time.time()
    write_demo_files(landing, (3,), rows_per_batch=100)
    ingested = run("ingestion/ingestion")
    assert ingested.state.is_completed(), ingested.state.message
    known = {r.id for r in [*started, idle, fresh]}
    triggered = wait_for_new_run(client, retraining.id, since, known)
    triggered = wait_final(client, triggered.id)
    assert triggered.state.is_completed() and triggered.state.message.startswith("registered"), triggered.state.message
    latest = versions(workspace)
    assert len(latest) == len(registered) + 2
    assert latest[-1].tags["snapshot_id"] == _head_snapshot(workspace)


def test_ui_shows_the_deployment_its_last_run_and_the_parameter_form(stack, tiny_model_dir):
    """Headless Chromium opens the retraining deployment and the training run form; screenshots land under
    the workspace (reports/prefect-ui/)."""
    from pipeline.deployments.screenshot import browser_available, capture_page, deployment_page

    if not browser_available():
        pytest.skip("chromium, chromium-driver or selenium is not installed")
    client, shots = stack["client"], stack["workspace"].reports / "prefect-ui"
    deployment = client.read_deployment_by_name("retraining/retraining")
    runs = [r for r in client.read_flow_runs(deployment_filter=_deployment_filter(deployment.id)) if r.state.is_final()]
    last = max(runs, key=lambda r: r.end_time) if runs else run("retraining/retraining")
    page = capture_page(
        deployment_page(stack["stack"].ui_url, deployment.id),
        shots / "retraining-deployment.png",
        expect=["retraining", last.name, "Concurrency Limit"],
    )
    assert "retraining" in page["text"] and last.name in page["text"]
    training = client.read_deployment_by_name("training/training")
    form = capture_page(
        deployment_page(stack["stack"].ui_url, training.id) + "/run",
        shots / "training-run-form.png",
        expect=["Parameters", "Data files", "Advanced settings"],
        size=(1600, 1400),
    )
    text = form["text"]
    order = [
        text.index(title) for title in ("Data files", "Base model", "Epochs", "Learning rate", "Advanced settings")
    ]
    assert order == sorted(order), "the common choices come first, the advanced section last"
    assert "Passes over the training split" in text, "each field carries its description"
    assert tiny_model_dir in form["values"], "the fields show the deployed configuration's values"
    assert (shots / "retraining-deployment.png").stat().st_size > 20_000


def test_worker_stops_on_sigterm(stack):
    worker = stack["stack"].worker
    assert worker.poll() is None
    code = stop(worker, timeout=60)
    assert code is not None, "the worker ignored SIGTERM and had to be killed"
    assert "stopped" in stack["stack"].worker_log.read_text()


def _deployment_filter(deployment_id):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))


def _head_snapshot(workspace: Workspace) -> str:
    from pipeline.data.ledger import Ledger

    return Ledger(workspace.ledger).head()
