"""The workspace's data on object storage (fsspec's in-memory file system stands in for a bucket here; the
integration test runs the same against an S3-compatible server and PostgreSQL)."""

from __future__ import annotations

import uuid

import fsspec
import pandas as pd
import pytest
from pydantic import ValidationError

from pipeline.config import DataConfig
from pipeline.data.ledger import Ledger
from pipeline.data.snapshots import load_snapshot
from pipeline.data.store import DataStore
from pipeline.storage import RemotePath
from pipeline.workspace import Workspace

GOOD = [(f"text number {i} about billing", "billing") for i in range(20)] + [
    (f"text number {i} about cards", "cards") for i in range(20)
]


def put_csv(url: str, rows) -> None:
    with fsspec.open(url, "w") as out:
        pd.DataFrame(rows, columns=["text", "label"]).to_csv(out, index=False)


@pytest.fixture
def bucket():
    url = f"memory://bucket-{uuid.uuid4().hex[:8]}/team"
    yield url
    fs = fsspec.filesystem("memory")
    fs.rm(url.removeprefix("memory://"), recursive=True) if fs.exists(url.removeprefix("memory://")) else None


def remote_store(tmp_path, bucket, name="worker-a"):
    config = DataConfig(storage=bucket, ledger_url=f"sqlite:///{tmp_path / 'shared' / 'ledger.sqlite'}")
    return DataStore(Workspace(tmp_path / name), config)


def test_ingest_snapshot_and_quarantine_live_in_the_bucket(tmp_path, bucket):
    store = remote_store(tmp_path, bucket)
    put_csv(f"{bucket}/landing/good.csv", GOOD)
    with fsspec.open(f"{bucket}/landing/broken.csv", "w") as out:
        out.write('text,label\n"unterminated,billing\n')

    outcome = store.ingest()

    assert outcome.snapshot_changed and outcome.rows_added == 40
    base = str(RemotePath.from_url(bucket))  # the file system's own spelling of the URL
    assert outcome.new_files == [f"{base}/landing/good.csv"]
    fs = fsspec.filesystem("memory")
    root = bucket.removeprefix("memory://")
    snapshot_keys = fs.find(f"{root}/snapshots")
    assert {k.rsplit("/", 1)[1] for k in snapshot_keys} == {"data.parquet", "manifest.json"}
    head = store.head()
    assert isinstance(head.path, RemotePath) and head.manifest.rows == 40
    assert sorted(head.load()["label"].unique()) == ["billing", "cards"]
    # the refused file left the landing zone for the quarantine, with its reports beside it
    (refused,) = outcome.quarantined
    assert refused["uri"] == f"{base}/landing/broken.csv" and refused["report"].startswith(base)
    assert not fs.exists(f"{root}/landing/broken.csv")
    names = [k.rsplit("/", 1)[1] for k in fs.find(f"{root}/quarantine")]
    assert len(names) == 3 and any(n.endswith("broken.csv.report.md") for n in names)
    assert "broken.csv" in RemotePath.from_url(refused["report"]).read_text()
    # nothing of the data went to the worker's own folder; the ledger is the shared database
    assert not (tmp_path / "worker-a" / "snapshots").exists() and not (tmp_path / "worker-a" / "landing").exists()
    assert (tmp_path / "shared" / "ledger.sqlite").exists()


def test_a_second_worker_builds_on_the_first_workers_snapshot(tmp_path, bucket):
    first = remote_store(tmp_path, bucket, "worker-a")
    put_csv(f"{bucket}/landing/one.csv", GOOD)
    first.ingest()
    second = remote_store(tmp_path, bucket, "worker-b")
    assert second.pending() == []
    put_csv(f"{bucket}/landing/two.csv", [("a new text about cards", "cards"), ("another about billing", "billing")])
    outcome = second.ingest()
    assert outcome.new_files == [f"{RemotePath.from_url(bucket)}/landing/two.csv"]
    parent_id = first.ledger.history()[0]
    head = second.head()
    assert head.manifest.parent == parent_id
    assert head.manifest.rows == 42 and len(head.load()) == 42
    assert first.ledger.head() == head.id


def test_an_upload_cut_short_is_no_snapshot_and_is_written_again(tmp_path, bucket, monkeypatch):
    store = remote_store(tmp_path, bucket)
    put_csv(f"{bucket}/landing/good.csv", GOOD)
    calls = []
    fs = fsspec.filesystem("memory")
    original = type(fs).put_file

    def put_file(self, lpath, rpath, *args, **kwargs):
        if str(rpath).endswith("manifest.json") and not calls:
            calls.append(rpath)
            raise ConnectionError("connection reset")
        return original(self, lpath, rpath, *args, **kwargs)

    monkeypatch.setattr(type(fs), "put_file", put_file)
    with pytest.raises(ConnectionError):
        store.ingest()
    assert store.ledger.head() is None and store.head() is None
    root = bucket.removeprefix("memory://")
    (leftover,) = fs.find(f"{root}/snapshots")
    assert leftover.endswith("data.parquet")
    with pytest.raises(FileNotFoundError):
        load_snapshot(RemotePath.from_url(f"{bucket}/snapshots"), leftover.split("/")[-2])
    # the file is still waiting, and the next ingest finishes the job
    outcome = store.ingest()
    assert outcome.snapshot_changed and store.head().manifest.rows == 40


def test_object_storage_needs_a_shared_ledger():
    with pytest.raises(ValidationError, match="ledger_url"):
        DataConfig(storage="s3://bucket/team")
    assert DataConfig(storage="/mnt/shared/team").ledger_url is None  # a shared folder may keep its file ledger


def test_a_ledger_serves_one_data_storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    Ledger(tmp_path, url=url, storage="s3://bucket/a").head()
    with pytest.raises(RuntimeError, match="belongs to the data storage s3://bucket/a"):
        Ledger(tmp_path, url=url, storage="s3://bucket/b").head()


def test_the_ledger_url_is_recorded_without_its_password():
    from pipeline.config import load_config
    from pipeline.secrets import redact_config

    config = load_config(
        overrides=["data.storage=s3://team/data", "data.ledger_url=postgresql://team:s3cret@db/ledger"]
    )
    recorded = redact_config(config.model_dump())["data"]
    assert "s3cret" not in str(recorded) and recorded["ledger_url"].endswith("@db/ledger")
    assert recorded["storage"] == "s3://team/data"
