"""One bad file never holds up good ones: per-file isolation at stage and commit, snapshot checks
before commit, retried reads and quarantine names that never collide."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.config import DataConfig, load_config
from pipeline.data import steps as data_steps
from pipeline.data.sources import IngestionError
from pipeline.data.store import DataStore
from pipeline.workspace import Workspace


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return path


def rows(prefix: str, labels=("a", "b"), count: int = 40):
    return [(f"{prefix} text number {i}", labels[i % len(labels)]) for i in range(count)]


@pytest.fixture
def store(tmp_path):
    return DataStore(Workspace(tmp_path / "ws"), DataConfig(max_conflict_share=0.05))


def test_a_file_over_the_conflict_share_is_quarantined_alone_and_the_batch_commits(store):
    write(store.workspace.landing / "base.csv", rows("base", count=100))
    store.ingest()
    flipped = [(text, "b" if label == "a" else "a") for text, label in rows("base", count=10)]
    write(store.workspace.landing / "good.csv", rows("good"))
    write(store.workspace.landing / "bad.csv", flipped + rows("bad", count=10))
    result = store.ingest()
    assert result.new_files == [str(store.workspace.landing / "good.csv")]
    [item] = result.quarantined
    assert item["uri"].endswith("bad.csv") and item["rule"] == "conflicting_labels"
    report = json.loads(Path(item["report"].replace(".report.md", ".report.json")).read_text())
    assert Path(report["report_csv"]).exists() and "10 of its 20 rows" in report["message"]
    assert store.head().manifest.rows == 140 and result.net_rows_added == 40
    again = store.ingest()
    assert again.new_files == [] and again.quarantined == [], "the refused file no longer blocks later runs"


def test_an_unexpected_error_in_one_file_quarantines_it_and_the_others_commit(store, monkeypatch):
    write(store.workspace.landing / "good.csv", rows("good"))
    write(store.workspace.landing / "boom.csv", rows("boom"))
    original = DataStore._parse_to_part

    def parse(self, uri, *args):
        if uri.endswith("boom.csv"):
            raise KeyError("label")
        return original(self, uri, *args)

    monkeypatch.setattr(DataStore, "_parse_to_part", parse)
    result = store.ingest()
    assert [Path(u).name for u in result.new_files] == ["good.csv"]
    assert result.quarantined[0]["rule"] == "internal_error" and "KeyError" in result.quarantined[0]["message"]
    statuses = {Path(e["uri"]).name: e["status"] for e in store.read_ledger()["events"]}
    assert statuses == {"good.csv": "accepted", "boom.csv": "quarantined"}, "every file ends in the ledger"


def test_a_transient_read_error_is_retried_and_a_lasting_one_quarantines(tmp_path, monkeypatch):
    store = DataStore(Workspace(tmp_path / "ws"), DataConfig(read_retry_delay_s=0.0))
    write(store.workspace.landing / "flaky.csv", rows("flaky"))
    original, calls = DataStore._parse_to_part, []

    def parse(self, uri, *args):
        calls.append(uri)
        if len(calls) < 3:  # what the reader raises for an I/O error while reading
            raise IngestionError(uri, "unreadable", "OSError: EIO") from OSError(5, "Input/output error")
        return original(self, uri, *args)

    monkeypatch.setattr(DataStore, "_parse_to_part", parse)
    assert store.ingest().rows_added == 40 and len(calls) == 3
    write(store.workspace.landing / "dead.csv", rows("dead"))

    def dead(self, uri, *args):
        raise IngestionError(uri, "unreadable", "OSError: EIO") from OSError(5, "Input/output error")

    monkeypatch.setattr(DataStore, "_parse_to_part", dead)
    [item] = store.ingest().quarantined
    assert item["rule"] == "unreadable"


def test_quarantine_never_overwrites_same_name_same_second(store, tmp_path, monkeypatch):
    monkeypatch.setattr(DataStore, "_fingerprint", lambda self, info, ledger: (_ for _ in ()).throw(OSError(5, "EIO")))
    first = tmp_path / "one" / "data.csv"
    second = tmp_path / "two" / "data.csv"
    for path, content in ((first, b"\x00binary one"), (second, b"\x00binary two")):
        path.parent.mkdir()
        path.write_bytes(content)
    twin = tmp_path / "three" / "data.csv"
    twin.parent.mkdir()
    twin.write_bytes(b"\x00binary one")
    result = store.ingest([str(first), str(second)])
    result2 = store.ingest([str(twin)])  # same content, same name, unreadable again: a third file, nothing replaced
    kept = sorted(p.name for p in store.workspace.quarantine.iterdir() if not p.name.endswith((".md", ".json")))
    assert len(result.quarantined) == 2 and len(result2.quarantined) == 1 and len(kept) == 3
    assert sorted(p.read_bytes() for p in store.workspace.quarantine.iterdir() if p.name in kept) == [
        b"\x00binary one",
        b"\x00binary one",
        b"\x00binary two",
    ]
    assert all("nohash" not in name for name in kept)


def test_quarantine_names_get_a_suffix_rather_than_replace(tmp_path):
    from pipeline.data.quarantine import quarantine_file

    folder = tmp_path / "q"
    folder.mkdir()
    made = []
    for content in (b"one", b"two"):
        source = tmp_path / "x.csv"
        source.write_bytes(content)
        made.append(quarantine_file(folder, str(source), "f" * 64, 3, {"rule": "r", "message": "m"}, move=True))
    files = sorted(p for p in folder.iterdir() if not p.name.endswith((".md", ".json")))
    assert sorted(p.read_bytes() for p in files) == [b"one", b"two"] and made[0]["report"] != made[1]["report"]


@pytest.fixture
def ingest(tmp_path, monkeypatch):
    def run(*overrides):
        config = load_config(overrides=[f"workspace={tmp_path / 'ws'}", "validation.data_docs=false", *overrides])
        return data_steps.ingest_and_validate(config, Workspace.resolve(config.workspace).ensure())

    return run


def test_a_single_class_first_file_does_not_freeze_the_label_set(ingest, tmp_path):
    landing = tmp_path / "ws" / "landing"
    write(landing / "first.csv", rows("first", labels=("billing",), count=30))
    first = ingest()
    assert first.new_files and "validation.allowed_labels" in first.notes[0]
    write(landing / "second.csv", rows("second", labels=("billing", "shipping", "account"), count=60))
    second = ingest()
    assert second.quarantined == [] and [Path(u).name for u in second.new_files] == ["second.csv"]
    assert second.notes == []


def test_a_file_that_breaks_a_snapshot_rule_is_quarantined_alone(ingest, tmp_path):
    landing = tmp_path / "ws" / "landing"
    write(landing / "base.csv", rows("base", count=60))
    ingest()
    write(landing / "good.csv", rows("good", count=20))
    write(landing / "lonely.csv", [("a question about my warranty", "warranty")])
    result = ingest("validation.allow_new_labels=true")
    assert [Path(u).name for u in result.new_files] == ["good.csv"]
    [item] = result.quarantined
    assert item["uri"].endswith("lonely.csv") and item["rule"] == "min_examples_per_class"


def test_data_ingest_json_reports_duplicates_conflicts_and_net_rows(tmp_path):
    landing = tmp_path / "ws" / "landing"
    data = rows("x", count=100) + [("x text number 1", "b"), ("Same Thing", "a"), ("same thing", "b")]
    write(landing / "a.csv", data)
    env = {"PIPELINE_HOME": str(tmp_path / "ws")}
    result = CliRunner().invoke(
        app,
        ["data", "ingest", "--json", "--set", "validation.data_docs=false", "--set", "data.max_conflict_share=0.05"],
        env=env,
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.exit_code == 0, out
    assert out["duplicates_dropped"] == 1 and out["conflict_rows"] == 2
    assert out["rows_added"] == 103 and out["net_rows_added"] == 100, "conflicting texts dropped by the policy"
