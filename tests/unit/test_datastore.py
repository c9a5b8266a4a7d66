import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import DataConfig
from pipeline.data.sources import file_sha256
from pipeline.data.store import DataStore, DataStoreBusy
from pipeline.workspace import Workspace
from tests.conftest import FIXTURES

REPO = Path(__file__).resolve().parents[2]


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
    result = strict.ingest()  # the file is refused alone, with its report; it no longer raises for the batch
    assert (
        result.quarantined[0]["rule"] == "conflicting_labels" and "different label" in result.quarantined[0]["message"]
    )
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
    (store.workspace.landing / "sub dir").mkdir()
    (store.workspace.landing / "sub dir" / "bäd ..file.csv").write_text("text,category\nx,y\n")
    result = store.ingest()
    assert result.rows_added == 2 and result.new_files[0].endswith("ünï cödé ..name.csv")
    (item,) = result.quarantined
    assert item["uri"].endswith("sub dir/bäd ..file.csv") and item["report"].endswith("bäd ..file.csv.report.md")
    assert os.path.exists(item["report"][: -len(".report.md")])


def test_ledger_records_every_file_with_status(store):
    landing = store.workspace.landing
    shutil.copy(FIXTURES / "good.csv", landing / "a.csv")
    shutil.copy(FIXTURES / "missing_label_column.csv", landing / "bad.csv")
    first = store.ingest()
    shutil.copy(FIXTURES / "good.csv", landing / "copy of a.csv")
    store.ingest()
    store.ingest()  # nothing new: no new events
    events = {Path(e["uri"]).name: e for e in store.read_ledger()["events"]}
    assert len(store.read_ledger()["events"]) == 3
    accepted, quarantined, duplicate = events["a.csv"], events["bad.csv"], events["copy of a.csv"]
    assert accepted["status"] == "accepted" and accepted["rows"] == 60 and accepted["snapshot"] == first.snapshot_id
    assert accepted["sha256"] == file_sha256(str(landing / "a.csv")) and accepted["size"] > 0 and accepted["time"]
    assert quarantined["status"] == "quarantined" and quarantined["reason"] == "missing_column"
    assert duplicate["status"] == "duplicate" and duplicate["sha256"] == accepted["sha256"]
    assert "a.csv" in duplicate["reason"]
    (record,) = [r for r in store.read_ledger()["files"].values() if r["status"] == "accepted"]
    assert sorted(Path(u).name for u in record["uris"]) == ["a.csv", "copy of a.csv"]


def test_same_content_twice_in_one_batch_is_ingested_once(store):
    shutil.copy(FIXTURES / "good.csv", store.workspace.landing / "a.csv")
    shutil.copy(FIXTURES / "good.csv", store.workspace.landing / "b.csv")
    result = store.ingest()
    assert len(result.new_files) == 1 and result.rows_added == 60
    assert "duplicate of" in result.skipped_files[0]["reason"]
    assert store.head().manifest.rows == 60 and len(store.head().manifest.files) == 1


def test_fixed_file_dropped_again_is_ingested(store):
    bad = store.workspace.landing / "data.csv"
    bad.write_text("text,category\nhello,a\n")
    assert store.ingest().quarantined
    write(bad, [("hello", "a"), ("world", "b")])
    assert store.ingest().rows_added == 2


def test_memory_filesystem_urls(tmp_path):
    import fsspec

    with fsspec.open("memory://incoming/a.csv", "w") as handle:
        handle.write("text,label\nhello,a\nworld,b\n")
    with fsspec.open("memory://incoming/b.csv", "w") as handle:
        handle.write("text,category\nhello,a\n")
    store = DataStore(Workspace(tmp_path / "ws"), DataConfig(allowed_url_schemes=["file", "memory"]))
    assert len(store.pending(["memory://incoming"])) == 2
    result = store.ingest(["memory://incoming"])
    assert result.new_files == ["memory:///incoming/a.csv"] and result.rows_added == 2
    assert result.quarantined[0]["rule"] == "missing_column"
    assert fsspec.filesystem("memory").exists("/incoming/b.csv"), "files outside the landing zone are copied, not moved"
    assert store.pending(["memory://incoming"]) == []


def test_dot_dot_paths_are_normalised_and_not_treated_as_landing(store, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "bad.csv").write_text("text,category\nx,y\n")
    sneaky = store.workspace.landing / ".." / ".." / "elsewhere" / "bad.csv"
    result = store.ingest([str(sneaky)])
    assert result.quarantined[0]["uri"] == str(outside / "bad.csv")
    assert (outside / "bad.csv").exists(), "a file outside the landing zone is copied into quarantine, never moved"


def test_symlinked_folder_in_landing_is_not_followed(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    write(outside / "a.csv", [("one", "x"), ("two", "y")])
    (store.workspace.landing / "linked").symlink_to(outside, target_is_directory=True)
    assert store.discover() == [] and store.ingest().snapshot_id is None
    result = store.ingest([str(store.workspace.landing / "linked" / "a.csv")])
    assert result.quarantined[0]["rule"] == "symlink_outside_landing"
    assert (outside / "a.csv").exists(), "the target is never moved"


def test_status_check_does_not_rehash_unchanged_files(store, monkeypatch):
    import pipeline.data.landing

    for i in range(30):
        write(store.workspace.landing / f"f{i}.csv", [(f"text {i}", "a"), (f"other {i}", "b")])
    store.ingest()
    calls = []
    real = pipeline.data.landing.file_sha256
    monkeypatch.setattr(pipeline.data.landing, "file_sha256", lambda uri: calls.append(uri) or real(uri))
    assert store.pending() == [] and calls == []
    changed = write(store.workspace.landing / "f3.csv", [("text 3", "a"), ("changed", "b"), ("more", "a")])
    new = write(store.workspace.landing / "new.csv", [("fresh", "a")])
    assert sorted(p["uri"] for p in store.pending()) == sorted([str(changed), str(new)])
    assert sorted(calls) == sorted([str(changed), str(new)])


def test_status_sees_a_same_size_edit_through_mtime(store):
    path = write(store.workspace.landing / "a.csv", [("one", "x"), ("two", "y")])
    store.ingest()
    stat = path.stat()
    write(path, [("one", "x"), ("two", "z")])  # same size, new content
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert [p["uri"] for p in store.pending()] == [str(path)]


def test_parsed_rows_are_staged_on_disk_not_in_memory(store):
    write(store.workspace.landing / "a.csv", [("one", "x"), ("", "y"), ("three", "")])
    batch = store.stage()
    (staged,) = batch.files
    assert staged.path.exists() and staged.rows == 3
    assert staged.frame["text"].tolist() == ["one", None, "three"] and staged.frame["label"].tolist() == [
        "x",
        "y",
        None,
    ]
    store.commit(batch)
    assert not staged.path.exists()


def test_busy_lock_gives_up_cleanly(tmp_path):
    config = DataConfig(lock_timeout_s=0.2)
    workspace = Workspace(tmp_path / "ws").ensure()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(workspace.lock_file)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataStoreBusy, match="another ingest"):
            DataStore(workspace, config).ingest()
    finally:
        holder.kill()
        holder.wait()
    assert DataStore(workspace, config).read_ledger()["head"] is None


HOLD_LOCK = """
import sys, time
from filelock import FileLock
with FileLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""

INGEST = """
import json, sys, time
from pathlib import Path
from pipeline.config import DataConfig
from pipeline.data.store import DataStore
from pipeline.workspace import Workspace
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
result = DataStore(Workspace(Path(sys.argv[1])), DataConfig()).ingest([sys.argv[3]])
print(json.dumps(result.to_dict()))
"""


def test_two_ingest_processes_at_once_share_the_ledger_safely(tmp_path):
    workspace = Workspace(tmp_path / "ws").ensure()
    folders = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(5):
            write(folder / f"{name}{i}.csv", [(f"{name} {i} {j}", "ab"[j % 2]) for j in range(200)])
        shutil.copy(FIXTURES / "good.csv", folder / "shared.csv")  # both see the same content
        folders.append(folder)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", INGEST, str(workspace.root), str(go), str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for folder in folders
    ]
    go.touch()
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    store = DataStore(workspace, DataConfig())
    ledger = store.read_ledger()
    accepted = [r for r in ledger["files"].values() if r["status"] == "accepted"]
    assert len(accepted) == 11, "ten own files plus the shared content exactly once"
    assert sum(len(r["new_files"]) for r in results) == 11
    assert store.head().manifest.rows == 10 * 200 + 60 and len(store.head().manifest.files) == 11
    assert len(ledger["history"]) == 2
