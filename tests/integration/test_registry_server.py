"""Against a real ``mlflow server`` on 127.0.0.1: train twice with the tiny model, gate and register,
promote and roll back through the CLI (with a race), read the history, load and serve the champion."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from pipeline.config import load_config
from pipeline.data import steps as data_steps
from pipeline.data.demo import write_demo_files
from pipeline.evaluation import steps as evaluation_steps
from pipeline.registry import steps as registry_steps
from pipeline.training import steps as training_steps
from pipeline.validation import steps as validation_steps
from pipeline.workspace import Workspace, prepare_workspace
from tests.integration.prefect_stack import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NAME = "tiny-registry"
TEXTS = ["my parcel has not arrived", "the app crashes on start", "I was charged twice for my subscription"]


def child_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE__", "MLFLOW_"))}
    # `mlflow models serve` execs `uvicorn` from PATH: put this interpreter's scripts first, as an activated venv would.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        {
            "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "DO_NOT_TRACK": "1",
            **extra,
        }
    )
    return env


@contextmanager
def serving(command: list[str], health_url: str, env: dict, log: Path, timeout_s: float = 180):
    """Start a server in its own process group; yield once ``health_url`` answers 200; stop it by PID."""
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[:3]} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(health_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[:3]} not healthy after {timeout_s} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def mlflow_server_command(port: int, backend_store_uri: str, artifacts_destination: str) -> list[str]:
    """``mlflow server`` on 127.0.0.1:PORT, one worker, proxying artifacts to ``artifacts_destination``."""
    return [
        *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        *("--backend-store-uri", backend_store_uri, "--artifacts-destination", artifacts_destination),
    ]


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    command = mlflow_server_command(port, f"sqlite:///{tmp_path / 'server.db'}", str(tmp_path / "server-artifacts"))
    with serving(command, f"http://127.0.0.1:{port}/health", child_env(), tmp_path / "mlflow-server.log"):
        yield f"http://127.0.0.1:{port}"


def pipeline_cli(*args: str, uri: str, actor: str = "ops@test") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "models", *args, "--tracking-uri", uri],
        env=child_env(PIPELINE_ACTOR=actor),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def train_and_register(config) -> dict:
    """The training flow's steps, in its order, without Prefect."""
    workspace = prepare_workspace(config)
    data = data_steps.ingest_and_validate(config, workspace)
    validation_steps.check_data_gate(config, workspace, data)
    splits = data_steps.split_snapshot(config, workspace, data.snapshot_id)
    tokenized = training_steps.tokenize_splits(config, workspace, splits)
    tracking = registry_steps.start_tracking(config, workspace, data.snapshot_id)
    trained = training_steps.train_model(config, workspace, tracking, tokenized, progress=False)
    evaluation = evaluation_steps.evaluate_model(config, workspace, tracking, trained, splits)
    comparison = evaluation_steps.compare_with_champion(config, workspace, tracking, evaluation, splits)
    registered = registry_steps.register_model(config, workspace, tracking, trained, evaluation, comparison)
    return {**registered.to_dict(), "comparison": comparison.to_dict(), "test_rows": len(splits.test)}


def test_gate_promotion_rollback_history_and_serving_against_a_real_server(
    mlflow_server, workspace_dir, tiny_model_dir, tmp_path
):
    import mlflow
    from mlflow import MlflowClient

    config = load_config(
        overrides=[
            f"workspace={workspace_dir}",
            f"model.name_or_path={tiny_model_dir}",
            "model.max_length=64",
            "training.epochs=1",
            "training.batch_size=16",
            "training.learning_rate=0.001",
            f"registry.model_name={NAME}",
            f"tracking.tracking_uri={mlflow_server}",
            "promotion.min_improvement=-1.0",
            "promotion.max_class_regression=1.0",
            "promotion.bootstrap_samples=200",
        ]
    )
    landing = Workspace.resolve(config.workspace).ensure().landing
    write_demo_files(landing, (1,), rows_per_batch=300)
    first = train_and_register(config)
    assert first["model_version"] == "1" and first["aliases"] == ["challenger", "champion"]
    assert first["gate"]["outcome"] == "champion" and first["comparison"]["champion"] is None

    write_demo_files(landing, (2,), rows_per_batch=300)
    config.training.epochs = 2
    second = train_and_register(config)
    assert second["model_version"] == "2" and second["aliases"] == ["challenger"], second["gate"]
    comparison = second["comparison"]
    assert comparison["champion"]["version"] == "1"
    assert comparison["comparison"]["test_rows"] == second["test_rows"], "champion re-scored on the current split"
    assert "Comparison with the champion" in comparison["report"] and "McNemar" in comparison["report"]

    client = MlflowClient(mlflow_server)
    version = client.get_model_version(NAME, "2")
    for key in (
        "source_run",
        "snapshot_id",
        "snapshot_sha256",
        "manifest_sha256",
        "code_version",
        "base_model",
        "label_map",
        "gate_outcome",
        "gate_reason",
        "delta_macro_f1",
        "comparison",
    ):
        assert version.tags.get(key), key
    # MLflow 3: the test metrics live on the logged model (Logged Models page), not in version tags.
    assert not [key for key in version.tags if key.startswith("metric.")]
    logged = client.get_logged_model(version.model_id or version.source.removeprefix("models:/"))
    assert {"accuracy", "macro_f1"} <= {metric.key for metric in logged.metrics}
    assert version.tags["compared_with"] == "version 1"
    assert set(json.loads(version.tags["label_map"])) == {"account", "billing", "shipping", "technical"}
    assert version.description.startswith(f"# Model card: {NAME} version 2")
    run_files = {f.path for f in client.list_artifacts(version.run_id, "registry")}
    assert run_files == {
        "registry/model_card.md",
        "registry/comparison.md",
        "registry/comparison.json",
        "registry/label_map.json",
    }

    # Model format: signature, input example, pinned requirements, no pickled copy of the weights.
    local = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{NAME}/2", dst_path=str(tmp_path / "v2"), tracking_uri=mlflow_server
        )
    )
    mlmodel = (local / "MLmodel").read_text()
    assert "signature:" in mlmodel and '"name": "label"' in mlmodel and '"name": "score"' in mlmodel
    assert (local / "input_example.json").exists() and not list(local.rglob("*.pkl"))
    assert all("==" in line for line in (local / "requirements.txt").read_text().split() if not line.startswith("-"))
    weights = sum(p.stat().st_size for p in (local / "artifacts").rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in local.rglob("*") if p.is_file())
    assert total - weights < 200_000, "everything but the saved model folder is small metadata"

    # Promote by hand through the CLI: a stale expectation is refused, a fresh one moves the alias.
    assert pipeline_cli("promote", NAME, "2", "--expect-current", "2", uri=mlflow_server).returncode == 3
    moved = pipeline_cli(
        "promote", NAME, "2", "--expect-current", "1", "--reason", "better on batch 2", "--json", uri=mlflow_server
    )
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["to"] == "2"

    # Two operators promoting different versions from the same view at once: exactly one wins.
    racers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "models",
                "promote",
                NAME,
                v,
                "--alias",
                "staging",
                "--expect-current",
                "none",
                "--tracking-uri",
                mlflow_server,
            ],
            env=child_env(PIPELINE_ACTOR=f"racer-{v}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for v in ("1", "2")
    ]
    codes = sorted(p.wait(300) for p in racers)
    assert codes == [0, 3], [p.stderr.read() for p in racers]

    rolled = pipeline_cli("rollback", NAME, "--reason", "v2 misroutes refunds", uri=mlflow_server)
    assert rolled.returncode == 0, rolled.stderr
    assert "version 2 -> version 1" in rolled.stdout

    listed = pipeline_cli("list", NAME, uri=mlflow_server)
    assert listed.returncode == 0 and "champion" in listed.stdout and "challenger" in listed.stdout
    history = json.loads(pipeline_cli("history", NAME, "--json", uri=mlflow_server).stdout)
    moves = [(e["alias"], e["from"], e["to"], e["action"]) for e in history["entries"]]
    assert moves[:3] == [
        ("challenger", None, "1", "gate"),
        ("champion", None, "1", "first-champion"),
        ("challenger", "1", "2", "gate"),
    ]
    assert ("champion", "1", "2", "promote") in moves and moves[-1] == ("champion", "2", "1", "rollback")
    assert sum(1 for m in moves if m[0] == "staging") == 1
    assert history["entries"][-1]["actor"] == "ops@test" and history["entries"][-1]["reason"] == "v2 misroutes refunds"
    assert history["untracked"] == []
    readable = pipeline_cli("history", NAME, uri=mlflow_server).stdout
    assert "v2 misroutes refunds" in readable and "first-champion" in readable

    # The champion, resolved now, loads and predicts; then it is served over HTTP.
    mlflow.set_tracking_uri(mlflow_server)
    predictions = mlflow.pyfunc.load_model(f"models:/{NAME}@champion").predict(TEXTS)
    assert list(predictions.columns) == ["label", "score"] and len(predictions) == 3
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        f"models:/{NAME}@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "1",
    ]
    with serving(
        command, f"http://127.0.0.1:{port}/ping", child_env(MLFLOW_TRACKING_URI=mlflow_server), tmp_path / "serve.log"
    ):
        answer = httpx.post(
            f"http://127.0.0.1:{port}/invocations",
            timeout=60,
            json={"dataframe_split": {"columns": ["text"], "data": [[t] for t in TEXTS]}},
        )
        assert answer.status_code == 200, answer.text
        served = answer.json()["predictions"]
        assert [p["label"] for p in served] == predictions["label"].tolist()
        assert all(0.0 < p["score"] <= 1.0 for p in served)
        plain = httpx.post(f"http://127.0.0.1:{port}/invocations", json={"inputs": TEXTS}, timeout=60)
        assert plain.status_code == 200 and len(plain.json()["predictions"]) == 3
