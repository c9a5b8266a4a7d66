"""Chaos: kill -9 a training run at every stage boundary and inside training, re-run, check the invariants.

Invariants after every kill and every completed run:
- no registered version without its model artifacts, and each registered version loads and predicts;
- no snapshot counts as trained without a registered version (the retraining check trains exactly when
  the newest snapshot has no version);
- every run is either still open by a process that is gone and then failed by the next run, or closed
  with its version: no run FINISHED without a version after recovery;
- the alias audit history matches the live aliases.
Fast mode runs in the default test run; ``PIPELINE_CHAOS=slow`` adds a second data batch killed at every
point again, kills at several training steps, and kills of the real Prefect flow (``pipeline run``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from pipeline.config import load_config
from pipeline.data.demo import write_demo_files
from pipeline.workspace import Workspace
from tests.chaos_driver import BOUNDARIES

ROOT = Path(__file__).resolve().parents[2]
INSIDE = ["after-checkpoint#2", "after-log-model", "after-register-version", "after-alias-intent", "before-end-run"]
# The default run: one kill per kind of boundary (data, training, logging, registering, alias move).
FAST = [
    "after-ingest",
    "after-checkpoint#2",
    "after-train",
    "after-log-model",
    "after-register-version",
    "after-alias-intent",
]
SLOW = os.environ.get("PIPELINE_CHAOS") == "slow"
NAME = "chaos-model"


@pytest.fixture
def chaos_config(tmp_path, tiny_model_dir):
    config = load_config(
        overrides=[
            f"workspace={tmp_path / 'ws'}",
            f"model.name_or_path={tiny_model_dir}",
            "model.max_length=32",
            "training.epochs=1",
            "training.batch_size=16",
            "training.learning_rate=0.001",
            "training.checkpoint_steps=2",
            "training.max_steps=8",
            "data.max_samples=200",
            f"registry.model_name={NAME}",
            "promotion.auto_promote=true",
            f"tracking.tracking_uri=sqlite:///{tmp_path / 'ws' / 'mlflow' / 'mlflow.db'}",
        ]
    )
    path = tmp_path / "config.json"
    path.write_text(config.model_dump_json())
    return config, path


def drive(config_path: Path, fault: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PIPELINE_FAULT_POINT": fault or ""}
    return subprocess.run(
        [sys.executable, "-m", "tests.chaos_driver", str(config_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )


def check_invariants(config, load_models: bool = False) -> dict:
    from pipeline.data.store import DataStore
    from pipeline.ops.retraining import decide_retraining, measure_new_data, registered_snapshots
    from pipeline.registry.aliases import read_history

    workspace = Workspace.resolve(config.workspace)
    uri = config.tracking.tracking_uri
    mlflow.set_tracking_uri(uri)  # models:/ URIs below resolve against it
    client = MlflowClient(uri, registry_uri=uri)
    versions = (
        client.search_model_versions(f"name='{NAME}'") if client.search_registered_models(f"name='{NAME}'") else []
    )
    for version in versions:
        assert version.tags.get("snapshot_id"), f"version {version.version} has no snapshot tag"
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/{version.version}"))
        assert (local / "MLmodel").exists() and list(local.rglob("*.safetensors")), (
            f"version {version.version} has no model artifacts"
        )
        if load_models:
            from pipeline.registry.tracking import load_version, predict_with

            labels, _, _ = predict_with(load_version(f"models:/{NAME}/{version.version}"), ["my parcel is late"])
            assert len(labels) == 1
    store = DataStore(workspace, config.data)
    head = store.head()
    decision = decide_retraining(measure_new_data(config, workspace), 1)
    trained = set(registered_snapshots(config, workspace)) if head else set()
    if head is not None and not store.pending(None):
        assert decision.train == (head.id not in trained), (decision, head.id, trained)
    if versions:
        history = read_history(client, NAME)
        live = {a: str(v) for a, v in client.get_registered_model(NAME).aliases.items()}
        last = {}
        for entry in history:
            last[entry["alias"]] = entry["to"]
        assert last == live, f"audit history {last} differs from live aliases {live}"
    return {"versions": len(versions), "train": decision.train}


def check_runs_closed(config) -> None:
    uri = config.tracking.tracking_uri
    client = MlflowClient(uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    for run in client.search_runs([experiment.experiment_id], max_results=500):
        status, tags = run.info.status, run.data.tags
        if status == "FINISHED":
            assert tags.get("registered_version"), f"run {run.info.run_id} FINISHED without a version"
        else:
            assert status in ("FAILED", "KILLED"), f"run {run.info.run_id} left {status}"


def kill_everywhere(config, config_path, points: list[str]) -> None:
    for point in points:
        done = drive(config_path, point)
        assert done.returncode == -9, f"{point}: expected kill -9, got {done.returncode}\n{done.stderr[-3000:]}"
        check_invariants(config)
    done = drive(config_path, None)
    assert done.returncode == 0, done.stderr[-3000:]
    check_invariants(config)
    check_runs_closed(config)


@pytest.mark.timeout(1800)
def test_kill_at_every_boundary_then_recover(chaos_config):
    config, config_path = chaos_config
    workspace = Workspace.resolve(config.workspace).ensure()
    write_demo_files(workspace.landing, (1,), 200)
    kill_everywhere(config, config_path, BOUNDARIES + INSIDE if SLOW else FAST)
    state = check_invariants(config, load_models=True)
    assert state == {"versions": state["versions"], "train": False} and state["versions"] >= 1
    if SLOW:
        write_demo_files(workspace.landing, (2,), 200)
        kill_everywhere(config, config_path, BOUNDARIES + INSIDE + ["after-checkpoint#1", "after-checkpoint#3"])
        check_invariants(config, load_models=True)


@pytest.mark.chaos_slow
@pytest.mark.timeout(3600)
@pytest.mark.skipif(not SLOW, reason="slow chaos mode: PIPELINE_CHAOS=slow")
def test_kill_the_real_flow_inside_its_steps(chaos_config):
    config, config_path = chaos_config
    workspace = Workspace.resolve(config.workspace).ensure()
    write_demo_files(workspace.landing, (1,), 200)
    args = ["run", "--json", "--config", str(config_path.with_suffix(".yaml"))]
    import yaml

    config_path.with_suffix(".yaml").write_text(yaml.safe_dump(json.loads(config.model_dump_json())))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    env.pop("PREFECT_API_URL", None)
    for point in INSIDE + [None]:
        env["PIPELINE_FAULT_POINT"] = point or ""
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            cwd=ROOT,
        )
        assert done.returncode == (0 if point is None else -9), done.stderr[-3000:]
        check_invariants(config)
    check_runs_closed(config)
    check_invariants(config, load_models=True)
