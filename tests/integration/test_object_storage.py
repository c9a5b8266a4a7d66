"""The workspace's data on object storage, for workers that share no disk: the landing zone, snapshots and
quarantine in a bucket of a local S3-compatible server (moto's server mode), the ledger and the locks in a real
PostgreSQL server. Ingest, quarantine, a snapshot and a training run that reads it; a second worker that
builds on the first; locks that block across processes and vanish with a killed holder."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.data.demo import write_demo_files
from pipeline.data.sources import IngestionError
from pipeline.data.store import DataStore, DataStoreBusy
from pipeline.run_lock import RunInProgressError, hold_run_lock
from pipeline.workspace import Workspace
from tests.integration.postgres import find_binaries
from tests.integration.test_postgres_stack import BUCKET, object_store, postgres  # noqa: F401 (fixtures)
from tests.integration.test_registry_server import child_env, train_and_register

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_binaries() is None, reason="PostgreSQL (initdb, pg_ctl) is not installed"),
]

ROOT = Path(__file__).resolve().parents[2]
STORAGE = f"s3://{BUCKET}/textclf"
MODEL = "tiny-shared-data"

HOLD_LOCKS = """
import sys, time
from pipeline.data.db_lock import data_lock
from pipeline.run_lock import hold_run_lock
from pipeline.workspace import Workspace
workspace = Workspace(sys.argv[1], sys.argv[2], sys.argv[3])
lock = data_lock(workspace, 5)
lock.acquire()
with hold_run_lock(workspace, sys.argv[4], what="holding for the test"):
    print("held", flush=True)
    time.sleep(600)
"""


def overrides(tmp_path: Path, name: str, tiny_model_dir: str, ledger_url: str) -> list[str]:
    return [
        f"workspace={tmp_path / name}",
        f"data.storage={STORAGE}",
        f"data.ledger_url={ledger_url}",
        f"model.name_or_path={tiny_model_dir}",
        "model.max_length=64",
        "training.epochs=2",
        "training.batch_size=16",
        "training.learning_rate=0.001",
        f"registry.model_name={MODEL}",
        f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        "promotion.min_improvement=-1.0",
        "promotion.max_class_regression=1.0",
        "promotion.bootstrap_samples=200",
    ]


def upload(object_store, files: list[Path]) -> None:  # noqa: F811 (the fixture's value)
    client = object_store.client()
    for path in files:
        client.upload_file(str(path), BUCKET, f"textclf/landing/{path.name}")


@pytest.mark.timeout(900)
def test_workers_share_data_in_a_bucket_and_a_ledger_in_postgresql(
    postgres,  # noqa: F811 (fixture)
    object_store,  # noqa: F811 (fixture)
    tiny_model_dir,
    tmp_path,
    monkeypatch,
):
    for key, value in object_store.env().items():
        monkeypatch.setenv(key, value)
    postgres.create_database("ledger")
    ledger_url = postgres.url("ledger")

    # 1. Worker A: demo labels and a broken file land in the bucket; training runs on the snapshot it makes.
    upload(object_store, write_demo_files(tmp_path / "drop", (1,), rows_per_batch=120))
    broken = tmp_path / "drop" / "broken.csv"
    broken.write_text('text,label\n"an unterminated quote,billing\n', encoding="utf-8")
    upload(object_store, [broken])
    config_a = load_config(overrides=overrides(tmp_path, "worker-a", tiny_model_dir, ledger_url))
    with pytest.raises(IngestionError, match=f"{STORAGE}/landing/broken.csv: .unbalanced_quote"):
        train_and_register(config_a)  # the refused file stops this run; the good file is in the snapshot
    first = train_and_register(config_a)  # the next run trains on that snapshot
    assert first["model_version"] == "1" and first["test_rows"] > 0

    keys = object_store.keys(BUCKET)
    snapshot_id = postgres.query("ledger", "select id from pipeline_ledger.snapshots order by seq desc limit 1")[0][0]
    assert f"textclf/snapshots/{snapshot_id}/manifest.json" in keys
    assert f"textclf/snapshots/{snapshot_id}/data.parquet" in keys
    quarantined = [k for k in keys if k.startswith("textclf/quarantine/")]
    assert len(quarantined) == 3 and any(k.endswith("broken.csv.report.md") for k in quarantined), quarantined
    assert "textclf/landing/broken.csv" not in keys  # moved out of the landing zone, not copied
    accepted = postgres.query("ledger", "select status, count(*) from pipeline_ledger.files group by 1 order by 1")
    assert accepted == [("accepted", 1), ("quarantined", 1)]
    worker_a = tmp_path / "worker-a"
    assert not (worker_a / "snapshots").exists() and not (worker_a / "ledger" / "ledger.sqlite").exists()
    from mlflow import MlflowClient

    client = MlflowClient(config_a.tracking.tracking_uri)
    run = client.get_run(client.get_model_version(MODEL, "1").run_id)
    assert run.data.tags["snapshot_id"] == snapshot_id and run.data.tags["workspace"] == str(worker_a)

    # 2. Worker B, another folder, nothing shared but the bucket and the database: it sees what A ingested and
    #    builds the next snapshot on A's.
    config_b = load_config(overrides=overrides(tmp_path, "worker-b", tiny_model_dir, ledger_url))
    store_b = DataStore(Workspace.for_config(config_b), config_b.data)
    assert store_b.pending() == [] and store_b.head().id == snapshot_id
    rows_before = store_b.head().manifest.rows
    upload(object_store, write_demo_files(tmp_path / "drop2", (2,), rows_per_batch=120))
    # what an operator sees from a third machine, configured through the environment only
    env = child_env(
        **object_store.env(),
        PIPELINE_HOME=str(tmp_path / "operator"),
        PIPELINE__DATA__STORAGE=STORAGE,
        PIPELINE__DATA__LEDGER_URL=ledger_url,
    )
    status = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "data", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert status.returncode == 0, status.stderr
    payload = json.loads(status.stdout)
    assert payload["snapshot_id"] == snapshot_id and payload["pending_rows"] == 120
    assert payload["pending_files"] == [f"{STORAGE}/landing/demo_batch_2.jsonl"]
    outcome = store_b.ingest()
    assert outcome.snapshot_changed and outcome.new_files == [f"{STORAGE}/landing/demo_batch_2.jsonl"], (
        outcome.skipped_files
    )
    assert store_b.head().manifest.parent == snapshot_id and store_b.head().manifest.rows > rows_before

    # 3. Locks: a process on "another machine" holds the data lock and the model's run lock.
    workspace_b = Workspace.for_config(config_b)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCKS, str(tmp_path / "worker-c"), STORAGE, ledger_url, MODEL],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "held", holder.communicate(timeout=10)
        with pytest.raises(DataStoreBusy, match="holding for the test|ingest"):
            DataStore(workspace_b, config_b.data, lock_timeout=1).ingest()
        with pytest.raises(RunInProgressError, match="holding for the test"):
            with hold_run_lock(workspace_b, MODEL, wait_s=1):
                pass
        holder.kill()  # SIGKILL: no clean-up runs; the server ends the session and its locks
        holder.wait()
        started = time.monotonic()
        with hold_run_lock(workspace_b, MODEL, wait_s=60):
            DataStore(workspace_b, config_b.data, lock_timeout=60).ingest()
        assert time.monotonic() - started < 60
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
