"""The team deployment on a real PostgreSQL server: an MLflow tracking server (artifacts proxied to a local
S3-compatible store) and a Prefect server both keep their state in PostgreSQL; training, promotion and a deployed
retraining run through them. Also a direct ``postgresql://`` tracking store, with no server in between."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pipeline.config import load_config
from pipeline.data.demo import write_demo_files
from pipeline.workspace import Workspace
from tests.integration.postgres import PostgresServer, find_binaries
from tests.integration.prefect_stack import PrefectStack, free_port
from tests.integration.s3_server import S3Server
from tests.integration.test_registry_server import child_env, mlflow_server_command, serving, train_and_register

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_binaries() is None, reason="PostgreSQL (initdb, pg_ctl) is not installed"),
]

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "team-artifacts"
MODEL = "tiny-team"
POOL = "team-test"
YEARLY = "30 4 1 1 *"  # a scheduled run must not fire during the test


@pytest.fixture
def object_store(tmp_path):
    pytest.importorskip("moto", reason="the test extra (moto) is not installed")
    pytest.importorskip("boto3", reason="the team extra (boto3) is not installed")
    server = S3Server.start(tmp_path)
    try:
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def postgres():
    pytest.importorskip("psycopg", reason="the team extra (psycopg) is not installed")
    pytest.importorskip("asyncpg", reason="the team extra (asyncpg) is not installed")
    server = PostgresServer.start()
    try:
        for database in ("mlflow", "prefect", "direct"):
            server.create_database(database)
        yield server
    finally:
        server.stop()


def tiny_overrides(model_dir: str, workspace: Path, epochs: int = 1) -> list[str]:
    return [
        f"workspace={workspace}",
        f"model.name_or_path={model_dir}",
        "model.max_length=64",
        f"training.epochs={epochs}",
        "training.batch_size=16",
        "training.learning_rate=0.001",
        "training.checkpoint_steps=1000",
        f"registry.model_name={MODEL}",
        "promotion.min_improvement=-1.0",
        "promotion.max_class_regression=1.0",
        "promotion.bootstrap_samples=200",
        f"deployment.work_pool={POOL}",
        f"retraining.schedule_cron={YEARLY}",
        "retraining.trigger_on_new_data=false",
    ]


def test_direct_postgresql_store_keeps_artifacts_in_the_workspace(postgres, tiny_model_dir, tmp_path, monkeypatch):
    """Tracking straight into PostgreSQL (no server): artifacts go to the workspace, not the process's folder."""
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a worker starts runs in a folder of its own
    workspace = tmp_path / "ws"
    config = load_config(
        overrides=[*tiny_overrides(tiny_model_dir, workspace), f"tracking.tracking_uri={postgres.url('direct')}"],
        environ={},
    )
    write_demo_files(Workspace(workspace).ensure().landing, (1,), rows_per_batch=100)
    registered = train_and_register(config)
    assert registered["model_version"] == "1" and "champion" in registered["aliases"]

    client = MlflowClient(postgres.url("direct"), registry_uri=postgres.url("direct"))
    run = client.get_run(client.get_model_version(MODEL, "1").run_id)
    artifact_root = Workspace(workspace).mlflow_dir / "artifacts"
    assert run.info.artifact_uri.startswith(artifact_root.as_uri()), run.info.artifact_uri
    assert any(artifact_root.rglob("MLmodel")), "the model was not written under the workspace"
    assert not (elsewhere / "mlruns").exists()
    assert postgres.query("direct", f"select count(*) from model_versions where name = '{MODEL}'") == [(1,)]


# Three server processes and three deployed flow runs, each a fresh Python process: slow on a busy machine.
@pytest.mark.timeout(1800)
def test_training_promotion_and_deployed_retraining_on_postgresql(postgres, object_store, tiny_model_dir, tmp_path):
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    workspace = Workspace(tmp_path / "ws")
    port = free_port()
    mlflow_url = f"http://127.0.0.1:{port}"
    mlflow_command = mlflow_server_command(port, postgres.url("mlflow"), f"s3://{BUCKET}/mlflow")
    # Only the tracking server holds object-storage credentials; the worker and this process reach artifacts
    # through it (proxied), with nothing but MLFLOW_TRACKING_URI.
    server_env = child_env(**object_store.env())
    with serving(mlflow_command, f"{mlflow_url}/health", server_env, tmp_path / "mlflow-server.log"):
        stack = PrefectStack.start_server(
            tmp_path,
            workspace.root,
            PREFECT_API_DATABASE_CONNECTION_URL=postgres.url("prefect", driver="postgresql+asyncpg"),
        )
        try:
            args = [arg for item in tiny_overrides(tiny_model_dir, workspace.root) for arg in ("--set", item)]
            stack.start_serve(
                tmp_path,
                args,
                MLFLOW_TRACKING_URI=mlflow_url,
                PREFECT_WORKER_QUERY_SECONDS="1",
                PREFECT_WORKER_PREFETCH_SECONDS="5",
            )
            with temporary_settings({PREFECT_API_URL: stack.api_url}), get_client(sync_client=True) as client:
                stack.wait_for_worker(client, POOL)
                landing = workspace.ensure().landing

                # 1. A person starts training: the first version becomes champion.
                write_demo_files(landing, (1,), rows_per_batch=100)
                first = run_deployment("training/training", timeout=900, poll_interval=1)
                assert first.state.is_completed(), first.state.message

                # 2. New data lands; the deployed retraining trains on it and registers a challenger.
                write_demo_files(landing, (2,), rows_per_batch=100)
                second = run_deployment("retraining/retraining", timeout=900, poll_interval=1)
                assert second.state.is_completed() and second.state.message.startswith("registered"), (
                    second.state.message
                )
                flow_runs = postgres.query("prefect", "select count(*) from flow_run where state_type = 'COMPLETED'")
                assert flow_runs[0][0] >= 3, flow_runs  # training, retraining and its training child
        finally:
            stack.close()

        registry = MlflowClient(mlflow_url, registry_uri=mlflow_url)
        versions = sorted(registry.search_model_versions(f"name='{MODEL}'"), key=lambda v: int(v.version))
        assert [v.version for v in versions] == ["1", "2"]
        assert registry.get_model_version_by_alias(MODEL, "champion").version == "1"
        assert registry.get_model_version_by_alias(MODEL, "challenger").version == "2"

        # 3. Promotion by hand through the CLI, against the tracking server.
        promoted = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "models",
                "promote",
                MODEL,
                "2",
                "--expect-current",
                "1",
                "--reason",
                "better on batch 2",
                "--json",
                "--tracking-uri",
                mlflow_url,
            ],
            env=child_env(PIPELINE_ACTOR="ops@team"),
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        assert promoted.returncode == 0, promoted.stderr
        assert json.loads(promoted.stdout)["to"] == "2"
        assert registry.get_model_version_by_alias(MODEL, "champion").version == "2"

        # Everything durable lives in PostgreSQL and the server's artifact store, nothing in the workspace's.
        assert postgres.query("mlflow", f"select version from model_versions where name = '{MODEL}' order by 1") == [
            (1,),
            (2,),
        ]
        aliases = dict(
            postgres.query("mlflow", f"select alias, version from registered_model_aliases where name = '{MODEL}'")
        )
        assert aliases["champion"] == 2
        run = registry.get_run(versions[1].run_id)
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
        stored = object_store.keys(BUCKET)
        assert sum(key.endswith("/MLmodel") for key in stored) >= 2, stored[:20]
        assert any(key.startswith(f"mlflow/{run.info.experiment_id}/{run.info.run_id}/") for key in stored)
        assert not (workspace.mlflow_dir / "mlflow.db").exists()
        assert not any((workspace.mlflow_dir / "artifacts").rglob("*"))

        # The champion loads back through the server (artifacts proxied).
        import mlflow

        mlflow.set_tracking_uri(mlflow_url)
        predictions = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(["my parcel has not arrived"])
        assert len(predictions) == 1 and predictions["label"][0] in {"account", "billing", "shipping", "technical"}
