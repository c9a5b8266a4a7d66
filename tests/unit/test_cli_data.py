"""``pipeline data ingest | status | show`` as a user runs them (in-process Typer runner)."""

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli.main import app
from tests.conftest import FIXTURES


@pytest.fixture
def run(workspace_dir):
    runner = CliRunner()

    def invoke(*args):
        result = runner.invoke(app, ["data", *args])
        payload = (
            json.loads(result.stdout.strip().splitlines()[-1]) if "--json" in args and result.stdout.strip() else None
        )
        return result.exit_code, payload, result

    return invoke


def test_ingest_status_show(run, workspace_dir):
    landing = workspace_dir / "landing"
    landing.mkdir(parents=True)
    code, status, _ = run("status", "--json")
    assert code == 0 and status == {"snapshot_id": None, "pending_files": [], "pending_rows": 0, "unreadable": []}
    shutil.copy(FIXTURES / "good.csv", landing / "good one.csv")
    code, status, _ = run("status", "--json")
    assert status["pending_files"] == [str(landing / "good one.csv")] and status["pending_rows"] == 60

    code, out, _ = run("ingest", "--json")
    assert code == 0, out
    assert set(out) >= {"snapshot_id", "new_files", "skipped_files", "quarantined"}
    assert out["new_files"] == [str(landing / "good one.csv")] and out["quarantined"] == []
    code, status, _ = run("status", "--json")
    assert status == {"snapshot_id": out["snapshot_id"], "pending_files": [], "pending_rows": 0, "unreadable": []}

    code, again, _ = run("ingest", "--json")
    assert code == 0 and again["new_files"] == [] and again["snapshot_id"] == out["snapshot_id"]
    assert again["skipped_files"][0]["reason"] == "content already accepted"

    code, manifest, _ = run("show", out["snapshot_id"], "--json")
    assert code == 0 and manifest["rows"] == 60 and manifest["files"][0]["uri"].endswith("good one.csv")
    code, _, result = run("show", "nope", "--json")
    assert code == 1 and "no snapshot" in result.stdout


def test_ingest_explicit_paths_and_bad_files(run, workspace_dir, tmp_path):
    shutil.copy(FIXTURES / "good.csv", tmp_path / "good.csv")
    shutil.copy(FIXTURES / "extra_fields.csv", tmp_path / "extra.csv")
    shutil.copy(FIXTURES / "bad_blank_and_missing_label.csv", tmp_path / "blank.csv")
    code, out, _ = run(
        "ingest", str(tmp_path / "good.csv"), str(tmp_path / "extra.csv"), str(tmp_path / "blank.csv"), "--json"
    )
    assert code == 1, "a quarantined file makes the command fail"
    assert out["new_files"] == [str(tmp_path / "good.csv")]
    rules = {item["uri"].rsplit("/", 1)[-1]: item for item in out["quarantined"]}
    assert rules["extra.csv"]["rule"] == "malformed_rows" and rules["extra.csv"]["row"] == 2
    assert rules["blank.csv"]["rule"] == "label_not_null"  # empty labels: the data contract names the rows
    assert "'row': 8" in open(rules["blank.csv"]["report"]).read()
    assert (tmp_path / "extra.csv").exists(), "explicit files outside the landing zone are copied, not moved"


def test_conflicts_in_one_file_over_the_share_quarantine_it_with_the_rows_listed(run, workspace_dir, tmp_path):
    path = tmp_path / "a.csv"
    pd.DataFrame(
        {"text": [f"t{i}" for i in range(20)] + ["same", "SAME"], "label": ["a", "b"] * 10 + ["a", "b"]}
    ).to_csv(path, index=False)
    code, out, _ = run("ingest", str(path), "--json")
    assert code == 1 and out["new_files"] == [] and out["quarantined"][0]["rule"] == "conflicting_labels"
    report = json.loads(open(out["quarantined"][0]["report"].replace(".report.md", ".report.json")).read())
    assert [e["text"] for e in report["failures"][0]["examples"]] == ["same", "SAME"]
    path.write_text(path.read_text() + "one more,a\n")  # new content: ingested again, now under a looser share
    code, out, _ = run("ingest", str(path), "--json", "--set", "data.max_conflict_share=0.5")
    assert code == 0 and out["new_files"] == [str(path)]


def test_conflicts_across_files_of_one_batch_quarantine_the_later_file(run, workspace_dir, tmp_path):
    for name, prefix, text, label in (("a.csv", "t", "same", "a"), ("b.csv", "u", "SAME", "b")):
        pd.DataFrame({"text": [f"{prefix}{i}" for i in range(20)] + [text], "label": ["a", "b"] * 10 + [label]}).to_csv(
            tmp_path / name, index=False
        )
    code, out, _ = run("ingest", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--json")
    assert code == 1 and out["new_files"] == [str(tmp_path / "a.csv")]
    [item] = out["quarantined"]
    assert item["uri"] == str(tmp_path / "b.csv") and item["rule"] == "conflicting_labels"
    report = json.loads(open(item["report"].replace(".report.md", ".report.json")).read())
    assert sorted(pd.read_csv(report["report_csv"])["text"]) == ["SAME", "same"]


def test_missing_path_is_a_clear_error(run, workspace_dir, tmp_path):
    code, out, _ = run("ingest", str(tmp_path / "nope.csv"), "--json")
    assert code == 2 and out["rule"] == "not_found" and "nope.csv" in out["error"]


def test_busy_workspace_exits_with_code_3(run, workspace_dir):
    import subprocess
    import sys

    from pipeline.workspace import Workspace

    lock = Workspace(workspace_dir).ensure().lock_file
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from filelock import FileLock\n"
            "with FileLock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        shutil.copy(FIXTURES / "good.csv", workspace_dir / "landing" / "good.csv")
        code, out, _ = run("ingest", "--json", "--set", "data.lock_timeout_s=0.2")
        assert code == 3 and out["rule"] == "busy" and "try again" in out["error"]
    finally:
        holder.kill()
        holder.wait()
