"""``pipeline models``: exit codes and messages a script relies on, on a SQLite registry."""

import json

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from pipeline.cli.main import app
from tests.unit.registry_db import fresh_registry_uri

NAME = "clf"


@pytest.fixture
def registry(tmp_path, migrated_registry_db, monkeypatch):
    uri = fresh_registry_uri(migrated_registry_db, tmp_path)
    monkeypatch.setenv("PIPELINE_ACTOR", "ops@test")
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model(NAME)
    for passed in ("True", "True", "False"):
        client.create_model_version(
            NAME,
            (tmp_path / "w").as_uri(),
            tags={
                "gate_passed": passed,
                "gate_outcome": "challenger" if passed == "True" else "rejected",
                "gate_reason": "failed: macro_f1 0.4 vs floor 0.5" if passed == "False" else "passed",
                "metric.macro_f1": "0.8",
            },
        )
    return uri


def cli(uri, *args):
    return CliRunner().invoke(app, ["models", *args, "--tracking-uri", uri])


def test_promote_rollback_history_and_list(registry):
    assert cli(registry, "promote", NAME, "1", "--expect-current", "none", "--reason", "first").exit_code == 0
    result = cli(registry, "promote", NAME, "2", "--expect-current", "1", "--reason", "better", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["from"] == "1"
    assert "version 2 -> version 1" in cli(registry, "rollback", NAME, "--reason", "oops").stdout
    history = json.loads(cli(registry, "history", NAME, "--json").stdout)["entries"]
    assert [(e["from"], e["to"], e["action"], e["actor"], e["reason"]) for e in history] == [
        (None, "1", "promote", "ops@test", "first"),
        ("1", "2", "promote", "ops@test", "better"),
        ("2", "1", "rollback", "ops@test", "oops"),
    ]
    listed = cli(registry, "list", NAME)
    assert listed.exit_code == 0
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert list(rows) == ["3", "2", "1"]
    assert rows["1"][1] == "champion" and rows["2"][1] == "-" and "rejected" in rows["3"]
    everything = cli(registry, "list")
    assert "clf" in everything.stdout and "alias-lock" not in everything.stdout


def test_stale_expectation_exits_3_and_moves_nothing(registry):
    cli(registry, "promote", NAME, "1", "--expect-current", "none")
    result = cli(registry, "promote", NAME, "2", "--expect-current", "3")
    assert result.exit_code == 3
    assert "champion is now version 1, not version 3" in result.stderr
    assert len(json.loads(cli(registry, "history", NAME, "--json").stdout)["entries"]) == 1


def test_gate_failed_version_needs_force_and_unknown_version_exits_2(registry):
    refused = cli(registry, "promote", NAME, "3")
    assert refused.exit_code == 2 and "failed the gate" in refused.stderr and "--force" in refused.stderr
    forced = cli(registry, "promote", NAME, "3", "--force", "--reason", "hotfix", "--json")
    assert forced.exit_code == 0 and json.loads(forced.stdout)["forced"] is True
    assert cli(registry, "promote", NAME, "42").exit_code == 2
    assert cli(registry, "rollback", "nope").exit_code == 2


def test_rollback_without_a_previous_champion_is_refused(registry):
    cli(registry, "promote", NAME, "1", "--expect-current", "none")
    result = cli(registry, "rollback", NAME)
    assert result.exit_code == 2 and "no previous champion" in result.stderr
