"""Every remote call has a deadline: a dead MLflow or Prefect server fails a run fast, in one line."""

import json
import os
import socket
import subprocess
import sys
import time

from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.config import TrackingConfig
from pipeline.registry.connection import apply_http_deadlines, retry_budget_s
from pipeline.results import TrackingRun


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_default_client_budget_fails_a_call_within_about_a_minute():
    environ = {}
    applied = apply_http_deadlines(TrackingConfig(), environ)
    assert applied == {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    }
    assert retry_budget_s() <= 75
    assert retry_budget_s(120, 7, 2) > 600, "MLflow's own defaults: minutes per call"


def test_deadlines_are_configurable_and_user_environment_wins_over_built_in_defaults():
    environ = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in apply_http_deadlines(None, environ)
    assert environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "5" and environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
    apply_http_deadlines(TrackingConfig(http_timeout_s=30, http_max_retries=1), environ)
    assert environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30" and environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"


def test_an_mlflow_call_to_a_closed_port_gives_up_within_the_budget(monkeypatch):
    import pytest
    from mlflow.exceptions import MlflowException

    from pipeline.registry import tracking as registry

    for key in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"):
        monkeypatch.delenv(key, raising=False)
    client = registry.client(f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    with pytest.raises(MlflowException):
        client.search_registered_models()
    assert time.monotonic() - started < retry_budget_s()


def test_run_with_a_closed_tracking_port_exits_in_one_line_naming_the_server(workspace_dir, monkeypatch):
    port = closed_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    result = CliRunner().invoke(app, ["run", "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["status"] == "failed" and f"tracking server http://127.0.0.1:{port}" in payload["error"]
    assert not workspace_dir.exists() or not any((workspace_dir / "snapshots").glob("*")), "nothing was ingested"


def test_models_list_with_a_closed_tracking_port_exits_in_one_line():
    port = closed_port()
    result = CliRunner().invoke(app, ["models", "list", "--tracking-uri", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert f"tracking server http://127.0.0.1:{port} is unreachable" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_fail_tracking_never_replaces_the_original_error(monkeypatch):
    from pipeline.registry.steps import fail_tracking

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    fail_tracking(
        TrackingRun(tracking_uri=f"http://127.0.0.1:{closed_port()}", run_id="abc", experiment_id="0"),
        "ValueError: original",
    )


def test_run_with_an_unreachable_prefect_api_prints_one_json_document(tmp_path):
    env = {
        **os.environ,
        "PREFECT_API_URL": f"http://127.0.0.1:{closed_port()}/api",
        "PIPELINE_HOME": str(tmp_path / "ws"),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    payload = json.loads(done.stdout)
    assert payload["status"] == "failed" and "Failed to reach API" in payload["error"]
    assert "Traceback" not in done.stderr
