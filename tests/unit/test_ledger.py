"""The SQLite ledger: transactions, appends, and the migration of a former ledger.json."""

import json
import shutil

import pytest

from pipeline.config import DataConfig
from pipeline.data.ledger import Ledger
from pipeline.data.store import DataStore
from pipeline.workspace import Workspace
from tests.conftest import FIXTURES


def test_writes_commit_together_or_not_at_all(tmp_path):
    ledger = Ledger(tmp_path)
    with ledger.transaction():
        ledger.put_file({"sha256": "a" * 64, "status": "accepted", "uris": ["x.csv"], "size": 3, "rows": 1})
        ledger.add_snapshot("s1")
    with pytest.raises(RuntimeError), ledger.transaction():
        ledger.add_snapshot("s2")
        ledger.add_event({"uri": "y.csv", "status": "accepted"})
        raise RuntimeError("crash")
    assert ledger.head() == "s1" and ledger.events() == [] and ledger.file("a" * 64)["uris"] == ["x.csv"]
    assert (tmp_path / "ledger.sqlite").exists()
    journal = Ledger(tmp_path)._connect().execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"


def test_a_former_ledger_json_is_migrated_on_first_use(tmp_path):
    old = Workspace(tmp_path / "old")
    store = DataStore(old, DataConfig())
    shutil.copy(FIXTURES / "good.csv", old.landing / "good.csv")
    store.ingest()
    expected = store.read_ledger()
    store.ledger.close()
    legacy = {**expected, "files": expected["files"]}
    new = Workspace(tmp_path / "new").ensure()
    (new.ledger / "ledger.json").write_text(json.dumps(legacy))
    shutil.copytree(old.snapshots, new.snapshots, dirs_exist_ok=True)
    migrated = DataStore(new, DataConfig())
    assert migrated.read_ledger() == expected
    assert not (new.ledger / "ledger.json").exists() and (new.ledger / "ledger.json.migrated").exists()
    assert migrated.head().id == expected["head"]
    shutil.copy(FIXTURES / "good.csv", new.landing / "again.csv")
    result = migrated.ingest()
    assert result.new_files == [] and "duplicate of" in result.skipped_files[0]["reason"], "history carried over"
