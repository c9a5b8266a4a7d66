"""`pipeline retrain`, one run per workspace and model, and no secret anywhere after a run (CLI subprocesses)."""

import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from pipeline.data.demo import write_demo_files
from tests.conftest import FIXTURES
from tests.flows.test_cli import ROOT, pipeline_cli

TOKEN = "SECRET-TOKEN-7f3a9c"


def common_args(tiny_model_dir):
    return [
        "--set",
        f"model.name_or_path={tiny_model_dir}",
        "--set",
        "training.max_steps=3",
        "--set",
        "model.max_length=32",
        "--set",
        "registry.model_name=tiny",
        "--json",
    ]


@pytest.mark.timeout(1800)
def test_retrain_skips_trains_then_skips(tmp_path, tiny_model_dir):
    home = tmp_path / "ws"
    args = common_args(tiny_model_dir)
    empty = pipeline_cli(["retrain", *args], home)
    assert empty.returncode == 0, empty.stderr[-2000:]
    assert json.loads(empty.stdout.strip().splitlines()[-1])["status"] == "skipped"
    write_demo_files(home / "landing", (1,), rows_per_batch=200)
    trained = pipeline_cli(["retrain", *args], home)
    assert trained.returncode == 0, trained.stderr[-2000:]
    payload = json.loads(trained.stdout.strip().splitlines()[-1])
    assert payload["status"] == "trained" and payload["new_rows"] > 0 and "new rows" in payload["reason"]
    assert payload["training"]["model_version"] == "1" and payload["training"]["snapshot_id"]
    again = pipeline_cli(["retrain", *args], home)
    payload = json.loads(again.stdout.strip().splitlines()[-1])
    assert payload["status"] == "skipped" and payload["reason"].startswith("no new data")
    assert not list((home / "checkpoints").rglob("step-*")), "checkpoints are cleared once the version is registered"


def test_a_second_run_exits_75_while_another_holds_the_model(tmp_path, tiny_model_dir):
    home = tmp_path / "ws"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import time
        from pipeline.run_lock import hold_run_lock
        from pipeline.workspace import Workspace
        with hold_run_lock(Workspace.resolve({str(home)!r}), "tiny", what="pipeline run"):
            print("held", flush=True)
            time.sleep(120)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        for command in ("run", "retrain"):
            busy = pipeline_cli([command, *common_args(tiny_model_dir)], home, timeout=120)
            assert busy.returncode == 75, busy.stderr[-2000:]
            assert "another run of tiny is in progress" in json.loads(busy.stdout)["error"]
            assert len([line for line in busy.stderr.splitlines() if line.startswith("error:")]) == 1
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.timeout(1800)
def cli_with_own_prefect(args, home):
    """``pipeline ...`` whose temporary Prefect server keeps its database in the workspace (not the harness's)."""
    import os

    env = {**os.environ, "PIPELINE_HOME": str(home), "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    for key in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_API_DATABASE_CONNECTION_URL"):
        env.pop(key, None)
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=home.parent,
    )


def test_a_webhook_token_appears_nowhere_after_a_run(tmp_path, tiny_model_dir):
    home = tmp_path / "ws"
    write_demo_files(home / "landing", (1,), rows_per_batch=200)
    webhook = ["--set", f"notifications.webhook_url=http://127.0.0.1:9/services/T0/{TOKEN}"]
    ok = cli_with_own_prefect(["run", *common_args(tiny_model_dir), *webhook], home)
    assert ok.returncode == 0, ok.stderr[-2000:]
    (home / "landing" / "bad.csv").write_bytes((FIXTURES / "bad_blank_and_missing_label.csv").read_bytes())
    failed = cli_with_own_prefect(["retrain", *common_args(tiny_model_dir), *webhook], home)
    assert failed.returncode == 1
    logs = ok.stdout + ok.stderr + failed.stdout + failed.stderr
    assert TOKEN not in logs and "failure notification not delivered" in logs
    prefect_db = home / "prefect" / "prefect.db"
    assert prefect_db.exists()
    for path in home.rglob("*"):
        if path.is_file() and not path.is_relative_to(home / "prefect"):
            assert TOKEN.encode() not in path.read_bytes(), f"{path} holds the webhook token"
    with sqlite3.connect(prefect_db) as db:
        artifacts = db.execute("select key, data, description from artifact").fetchall()
    assert any(key == "run-failure" for key, _, _ in artifacts)
    assert all(TOKEN not in str(row) for row in artifacts)
