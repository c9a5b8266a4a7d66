"""Snapshot building: partitioned (bounded-memory) equals in-memory; atomic writes survive injected crashes."""

import json
import random
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import pipeline.atomic
from pipeline.config import DataConfig
from pipeline.data.snapshots import build_snapshot_frame, content_digest
from pipeline.data.store import DataStore
from pipeline.workspace import Workspace
from tests.conftest import FIXTURES


def _messy_rows(count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        text = f"Text {rng.randrange(count // 2)}"
        if rng.random() < 0.3:
            text = "  " + text.upper()  # same normalised text
        rows.append((text, rng.choice("ab") if rng.random() < 0.02 else "a"))
    return rows


def _write(path, rows):
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("policy", ["drop", "latest"])
def test_partitioned_build_equals_in_memory_build(tmp_path, policy):
    batches = [_messy_rows(1500, seed) for seed in (1, 2)]
    results = {}
    for name, limit in (("memory", 1_000_000), ("partitioned", 1000)):
        config = DataConfig(conflict_policy=policy, max_conflict_share=1.0, max_rows_in_memory=limit, chunk_rows=97)
        store = DataStore(Workspace(tmp_path / name), config)
        for number, rows in enumerate(batches):
            _write(store.workspace.landing / f"{number}.csv", rows)
            store.ingest()
        results[name] = store.head()
    memory, partitioned = results["memory"], results["partitioned"]
    assert memory.id == partitioned.id
    same = ["text", "label", "row"]  # sources differ: each workspace has its own landing zone
    assert memory.load()[same].equals(partitioned.load()[same])
    assert memory.manifest.content_sha256 == partitioned.manifest.content_sha256 == content_digest(memory.load())
    for key in ("rows", "label_counts", "duplicates_dropped", "conflict_rows", "conflicts_dropped", "conflict_texts"):
        assert getattr(memory.manifest, key) == getattr(partitioned.manifest, key), key
    assert memory.conflicts()[same].equals(partitioned.conflicts()[same])
    assert memory.manifest.conflict_rows > 0 and memory.manifest.duplicates_dropped > 0


def test_streamed_build_matches_the_in_memory_reference(tmp_path):
    rows = _messy_rows(2000, 7)
    store = DataStore(Workspace(tmp_path / "w"), DataConfig(max_conflict_share=1.0, max_rows_in_memory=1000))
    _write(store.workspace.landing / "a.csv", rows)
    store.ingest()
    frame = pd.DataFrame(rows, columns=["text", "label"]).assign(source="x", row=range(1, len(rows) + 1))
    expected, duplicates, conflicts = build_snapshot_frame(None, [frame], "drop", 1.0)
    snapshot = store.head()
    assert snapshot.load()[["text", "label"]].astype(object).equals(expected[["text", "label"]].astype(object))
    assert snapshot.manifest.duplicates_dropped == duplicates and snapshot.manifest.conflict_rows == len(conflicts)


def test_conflicting_rows_are_listed_in_the_snapshot(tmp_path):
    store = DataStore(Workspace(tmp_path / "w"), DataConfig())
    _write(
        store.workspace.landing / "a.csv", [(f"text {i}", "a") for i in range(300)] + [("Same", "a"), ("same ", "b")]
    )
    result = store.ingest()
    manifest = store.head().manifest
    assert result.conflict_rows == 2 and manifest.conflicts_dropped == 2 and manifest.conflict_texts == 1
    listed = store.head().conflicts()
    assert listed["text"].tolist() == ["Same", "same "] and listed["row"].tolist() == [301, 302]
    assert manifest.conflict_examples[0]["label"] == "a"


def test_conflicts_over_the_share_fail_with_a_report_and_write_nothing(tmp_path):
    store = DataStore(Workspace(tmp_path / "w"), DataConfig())
    _write(store.workspace.landing / "a.csv", [("x", "a"), ("x", "b"), ("y", "a")])
    [item] = store.ingest().quarantined
    report = json.loads(Path(item["report"].replace(".report.md", ".report.json")).read_text())
    assert item["rule"] == "conflicting_labels" and "policy 'drop'" in report["message"]
    assert pd.read_csv(report["report_csv"])["text"].tolist() == ["x", "x"]
    assert store.head() is None and [f["status"] for f in store.read_ledger()["files"].values()] == ["quarantined"]
    assert not (store.workspace.landing / "a.csv").exists(), "moved to quarantine, nothing lost"
    assert not [p for p in store.workspace.snapshots.iterdir() if p.name != ".staging"]
    assert not list((store.workspace.snapshots / ".staging").iterdir()), "parsed parts are cleaned up"


def test_fail_policy_refuses_any_conflict(tmp_path):
    store = DataStore(Workspace(tmp_path / "w"), DataConfig(conflict_policy="fail", max_conflict_share=1.0))
    _write(store.workspace.landing / "a.csv", [(f"t{i}", "a") for i in range(1000)] + [("x", "a"), ("X", "b")])
    [item] = store.ingest().quarantined
    assert item["rule"] == "conflicting_labels" and "policy 'fail'" in item["message"]


def test_sst2_train_has_five_conflicting_texts(shared_data, tmp_path):
    store = DataStore(Workspace(tmp_path / "w"), DataConfig())
    result = store.ingest([str(shared_data / "sst2" / "train.tsv")])
    manifest = store.head().manifest
    assert result.rows_added == 67349
    assert manifest.conflict_texts == 5 and manifest.conflict_rows == 10 and manifest.conflicts_dropped == 10
    assert "laughably" in set(store.head().conflicts()["text"].str.strip())
    assert manifest.rows == 67349 - manifest.duplicates_dropped - 10
    strict = DataStore(Workspace(tmp_path / "strict"), DataConfig(max_conflict_share=0.0001))
    [item] = strict.ingest([str(shared_data / "sst2" / "train.tsv")]).quarantined
    report = json.loads(Path(item["report"].replace(".report.md", ".report.json")).read_text())
    assert len(pd.read_csv(report["report_csv"])) == 10


def _snapshot_dirs(store):
    return sorted(p.name for p in store.workspace.snapshots.iterdir() if p.name != ".staging")


@pytest.mark.parametrize("where", ["parquet", "rename"])
def test_crash_while_writing_the_snapshot_leaves_no_trace(tmp_path, monkeypatch, where):
    store = DataStore(Workspace(tmp_path / "w"), DataConfig())
    shutil.copy(FIXTURES / "good.csv", store.workspace.landing / "good.csv")
    ledger_before = store.read_ledger()

    def crash(*args, **kwargs):
        raise OSError("disk full (injected)")

    if where == "parquet":
        monkeypatch.setattr(pq.ParquetWriter, "write_table", crash)
    else:
        monkeypatch.setattr(pipeline.atomic.os, "replace", crash)
    with pytest.raises(OSError, match="injected"):
        store.ingest()
    monkeypatch.undo()
    assert _snapshot_dirs(store) == [] and store.head() is None
    ledger = store.read_ledger()
    assert ledger["files"] == ledger_before["files"] and ledger["head"] is None
    assert (store.workspace.landing / "good.csv").exists()
    result = store.ingest()
    assert result.rows_added == 60 and _snapshot_dirs(store) == [result.snapshot_id]


def test_crash_between_snapshot_and_ledger_recovers_to_the_same_snapshot(tmp_path, monkeypatch):
    store = DataStore(Workspace(tmp_path / "w"), DataConfig())
    shutil.copy(FIXTURES / "good.csv", store.workspace.landing / "good.csv")
    from pipeline.data.ledger import Ledger

    def power_cut(self, snapshot_id):  # the commit's transaction dies after the snapshot was written
        raise OSError("power cut (injected)")

    monkeypatch.setattr(Ledger, "add_snapshot", power_cut)
    with pytest.raises(OSError, match="injected"):
        store.ingest()
    monkeypatch.undo()
    orphan = _snapshot_dirs(store)
    assert len(orphan) == 1 and store.read_ledger()["head"] is None, "ledger still names the old state"
    assert store.read_ledger()["files"] == {}, "the whole commit rolled back"
    result = store.ingest()
    assert result.snapshot_id == orphan[0] and store.head().manifest.rows == 60
    ledger = store.read_ledger()
    assert [e["status"] for e in ledger["events"]] == ["accepted"]


def test_leftovers_of_a_killed_run_are_removed(tmp_path):
    store = DataStore(Workspace(tmp_path / "w"), DataConfig())
    (store.workspace.snapshots / ".abc123.tmpdir").mkdir(parents=True)
    (store.workspace.ledger / ".ledger.json.x.tmp").write_text("{")
    shutil.copy(FIXTURES / "good.csv", store.workspace.landing / "good.csv")
    store.ingest()
    assert _snapshot_dirs(store) == [store.head().id]
    assert not list(store.workspace.ledger.glob(".ledger.json.*"))
    assert store.read_ledger()["head"] == store.head().id
