import json
import shutil

import pandas as pd
import pytest

from pipeline.config import DataConfig
from pipeline.datastore import DataStore
from pipeline.snapshots import ConflictError
from pipeline.workspace import Workspace
from tests.conftest import FIXTURES


@pytest.fixture
def store(tmp_path):
    return DataStore(Workspace(tmp_path / "ws"), DataConfig())


def write(path, rows):
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return path


def test_ingest_landing_zone_snapshot_and_ledger(store):
    shutil.copy(FIXTURES / "good.csv", store.workspace.landing / "good.csv")
    result = store.ingest()
    assert result.snapshot_changed and result.rows_added == 60
    snapshot = store.head()
    assert snapshot.manifest.rows == 60 and snapshot.manifest.label_counts["billing"] == 15
    ledger = store.read_ledger()
    (entry,) = ledger["files"].values()
    assert entry["status"] == "accepted" and entry["snapshot"] == snapshot.id


def test_same_content_under_another_name_is_ingested_once(store):
    shutil.copy(FIXTURES / "good.csv", store.workspace.landing / "a.csv")
    store.ingest()
    shutil.copy(FIXTURES / "good.csv", store.workspace.landing / "copy of a.csv")
    result = store.ingest()
    assert result.new_files == [] and not result.snapshot_changed
    assert store.pending() == []


def test_changed_content_is_new(store):
    path = write(store.workspace.landing / "a.csv", [("one", "x"), ("two", "y")])
    first = store.ingest()
    write(path, [("one", "x"), ("two", "y"), ("three", "x")])
    assert [p["uri"] for p in store.pending()] == [str(path)]
    second = store.ingest()
    assert second.snapshot_changed and second.snapshot_id != first.snapshot_id
    assert store.head().manifest.rows == 3 and store.head().manifest.parent == first.snapshot_id


def test_snapshot_id_is_content_addressed(tmp_path):
    ids = []
    for name in ("one", "two"):
        s = DataStore(Workspace(tmp_path / name), DataConfig())
        shutil.copy(FIXTURES / "good.csv", s.workspace.landing / f"{name}.csv")
        ids.append(s.ingest().snapshot_id)
    assert ids[0] == ids[1]


def test_unparseable_file_is_quarantined_with_report_and_others_flow(store):
    shutil.copy(FIXTURES / "good.csv", store.workspace.landing / "good.csv")
    shutil.copy(FIXTURES / "missing_label_column.csv", store.workspace.landing / "bad.csv")
    result = store.ingest()
    assert result.rows_added == 60
    (item,) = result.quarantined
    assert item["rule"] == "missing_column"
    assert not (store.workspace.landing / "bad.csv").exists()
    report = json.loads(open(item["report"].replace(".md", ".json")).read())
    assert report["file"].endswith("bad.csv") and "label" in report["message"]
    assert "missing_column" in open(item["report"]).read()


def test_contract_rejection_goes_to_quarantine(store):
    write(store.workspace.landing / "a.csv", [("one", "x"), ("two", "y")])
    result = store.ingest(check=lambda batch, head: {batch.files[0].uri: {"rule": "text_not_blank", "message": "m"}})
    assert result.snapshot_id is None and result.quarantined[0]["rule"] == "text_not_blank"


def test_exact_duplicates_dropped_and_counted(store):
    write(store.workspace.landing / "a.csv", [("same", "x"), ("same", "x"), ("other", "y")])
    store.ingest()
    assert store.head().manifest.rows == 2 and store.head().manifest.duplicates_dropped == 1


def test_conflicts_drop_policy_and_share_limit(tmp_path):
    rows = [(f"text {i}", "a") for i in range(300)] + [("Same Text", "a"), ("same text", "b")]
    ok = DataStore(Workspace(tmp_path / "ok"), DataConfig())
    write(ok.workspace.landing / "a.csv", rows)
    ok.ingest()
    assert ok.head().manifest.rows == 300 and ok.head().manifest.conflicts_dropped == 2
    strict = DataStore(Workspace(tmp_path / "strict"), DataConfig(max_conflict_share=0.001))
    write(strict.workspace.landing / "a.csv", rows)
    with pytest.raises(ConflictError, match="different label"):
        strict.ingest()
    assert strict.head() is None


def test_conflicts_latest_policy(tmp_path):
    s = DataStore(Workspace(tmp_path / "w"), DataConfig(conflict_policy="latest", max_conflict_share=1.0))
    write(s.workspace.landing / "a.csv", [("same", "a"), ("same", "b"), ("x", "a")])
    s.ingest()
    frame = s.head().load()
    assert sorted(frame["label"]) == ["a", "b"] and frame.loc[frame.text == "same", "label"].item() == "b"


def test_symlink_outside_landing_is_refused(store, tmp_path):
    outside = write(tmp_path / "outside.csv", [("one", "x"), ("two", "y")])
    (store.workspace.landing / "link.csv").symlink_to(outside)
    result = store.ingest()
    assert result.quarantined[0]["rule"] == "symlink_outside_landing"
    assert outside.exists()


def test_odd_file_names(store):
    write(store.workspace.landing / "ünï cödé ..name.csv", [("one", "x"), ("two", "y")])
    assert store.ingest().rows_added == 2
