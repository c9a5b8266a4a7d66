"""`pipeline run` as a user runs it: a subprocess, JSON on stdout, one-line reasons on stderr."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.data.demo import write_demo_files
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]


def pipeline_cli(args, home, timeout=600):
    env = {**os.environ, "PIPELINE_HOME": str(home), "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=home.parent,
    )


def test_bad_override_exits_2_with_reason(tmp_path):
    result = pipeline_cli(["run", "--json", "--set", "training.epochs=0"], tmp_path / "ws")
    assert result.returncode == 2
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["status"] == "failed" and "training.epochs" in payload["error"]
    assert result.stderr.strip().startswith("error:") and "training.epochs" in result.stderr


def test_run_json_success_then_bad_data_failure(tmp_path, tiny_model_dir):
    home = tmp_path / "ws"
    write_demo_files(home / "landing", (1,), rows_per_batch=200)
    common = [
        "--set",
        f"model.name_or_path={tiny_model_dir}",
        "--set",
        "training.max_steps=3",
        "--set",
        "model.max_length=32",
        "--json",
    ]
    ok = pipeline_cli(["run", *common], home)
    assert ok.returncode == 0, ok.stderr[-2000:]
    payload = json.loads(ok.stdout.strip().splitlines()[-1])
    assert payload["status"] == "completed"
    assert {
        "run_id",
        "tracking_uri",
        "snapshot_id",
        "model_name",
        "model_version",
        "aliases",
        "metrics",
        "resumed_from_step",
    } <= set(payload)
    assert payload["resumed_from_step"] is None
    assert payload["links"]["prefect_flow_run_id"]  # no MLflow UI configured: no MLflow addresses
    assert not {"mlflow_run", "mlflow_model_version"} & set(payload["links"])
    assert {"accuracy", "macro_f1"} <= set(payload["metrics"])
    assert payload["tracking_uri"].startswith("sqlite:///") and str(home) in payload["tracking_uri"]

    shutil.copy(FIXTURES / "bad_blank_and_missing_label.csv", home / "landing" / "bad.csv")
    bad = pipeline_cli(["run", *common], home)
    assert bad.returncode == 1
    failure = json.loads(bad.stdout.strip().splitlines()[-1])
    assert failure["status"] == "failed" and "bad.csv" in failure["error"]
    reasons = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert len(reasons) == 1 and "bad.csv" in reasons[0]
    assert "text_not_blank" in reasons[0] or "label_not_null" in reasons[0]
