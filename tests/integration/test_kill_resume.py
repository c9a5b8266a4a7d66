"""Kill a real `pipeline run` with SIGKILL after its first checkpoint, run the same command again:
it resumes, ends with the planned number of optimizer steps, and has seen every training example
exactly `epochs` times. The MLflow run and `--json` say that it resumed and from which step.
The kill comes at the first checkpoint written after epoch 1, so the resumed run also inherits epoch records."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.demo import write_demo_files

REPO = Path(__file__).resolve().parents[2]
EPOCHS, BATCH = 6, 4
pytestmark = pytest.mark.integration


def pipeline_command(data: Path, workspace: Path, model_dir: str) -> list[str]:
    settings = [
        f"workspace={workspace}",
        f"model.name_or_path={model_dir}",
        "model.max_length=64",
        f"training.epochs={EPOCHS}",
        f"training.batch_size={BATCH}",
        "training.learning_rate=0.001",
        "training.checkpoint_steps=5",
        "training.keep_checkpoints=2",
        "training.early_stopping_patience=null",
        "registry.model_name=resume-classifier",
    ]
    return [
        sys.executable,
        "-m",
        "pipeline.cli",
        "run",
        "--data",
        str(data),
        "--json",
        *[arg for item in settings for arg in ("--set", item)],
    ]


def environment(workspace: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIPELINE__", "MLFLOW_TRACKING_URI", "PREFECT_API_URL", "PREFECT_HOME"))
    }
    env.update(
        {"PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "PIPELINE_HOME": str(workspace), "PYTHONUNBUFFERED": "1"}
    )
    return env


def wait_for_checkpoint(process: subprocess.Popen, checkpoints: Path, timeout: float = 240.0) -> Path:
    """The first checkpoint made after the first epoch ended (so the resumed run inherits epoch records)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for meta in sorted(checkpoints.glob("*/*/*/step-*/meta.json")):
            try:
                if json.loads(meta.read_text())["epoch"] >= 1:
                    return meta.parent
            except (OSError, ValueError):
                continue  # pruned or half-visible while we looked
        if process.poll() is not None:
            raise AssertionError(f"the run ended (rc {process.returncode}) before writing a checkpoint")
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared in time")


def test_sigkilled_run_resumes_and_sees_every_example_exactly_epochs_times(tmp_path, tiny_model_dir):
    data = write_demo_files(tmp_path / "data", (1,), rows_per_batch=300)[0]
    workspace = tmp_path / "ws"
    command, env = pipeline_command(data, workspace, tiny_model_dir), environment(workspace)
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )  # its own process group: the Prefect server dies with it
    try:
        checkpoint = wait_for_checkpoint(first, workspace / "checkpoints")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
        log.close()
    assert first.returncode == -signal.SIGKILL
    assert not list((workspace / "runs").glob("*/sample_counts.npy")), "the first run finished before the kill"
    killed_at = json.loads((checkpoint / "meta.json").read_text())["step"]

    second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    result = json.loads(second.stdout.strip().splitlines()[-1])
    assert result["status"] == "completed"
    resumed = result["resumed_from_step"]
    assert isinstance(resumed, int) and resumed >= killed_at

    counts = np.load(workspace / "runs" / result["run_id"] / "sample_counts.npy")
    assert len(counts) > 200 and (counts == EPOCHS).all()
    assert result["training"]["steps"] == EPOCHS * math.ceil(len(counts) / BATCH)

    import mlflow

    mlflow.set_tracking_uri(result["tracking_uri"])
    client = mlflow.MlflowClient(result["tracking_uri"])
    run = client.get_run(result["run_id"])
    assert run.data.tags["resumed"] == "true" and run.data.tags["resumed_from_step"] == str(resumed)
    killed_run = client.get_run(run.data.tags["resumed_from_run"])
    assert killed_run.info.status == "KILLED" and killed_run.info.run_id != result["run_id"]
    assert run.data.metrics["optimizer_steps"] == result["training"]["steps"]
    # Epoch 1 ended before the kill, yet the resumed run's curve has every epoch, each once.
    assert [m.step for m in client.get_metric_history(result["run_id"], "val_macro_f1")] == list(range(1, EPOCHS + 1))
    assert "plots/training_curve.png" in [a.path for a in client.list_artifacts(result["run_id"], "plots")]

    # A finished run leaves no checkpoint behind.
    assert not list((workspace / "checkpoints").rglob("step-*"))
