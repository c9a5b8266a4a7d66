"""Alias moves survive a writer that dies mid-move, lost answers and slow clients (SQLite registry)."""

import json

import pytest
from mlflow import MlflowClient

from pipeline.registry import aliases, lease
from pipeline.registry.aliases import move_alias, read_history
from pipeline.registry.connection import current_retry_budget_s
from pipeline.registry.lease import LockLostError
from tests.unit.registry_db import fresh_registry_uri

NAME = "clf"


@pytest.fixture
def client(tmp_path, migrated_registry_db):
    uri = fresh_registry_uri(migrated_registry_db, tmp_path)
    mlflow_client = MlflowClient(uri, registry_uri=uri)
    mlflow_client.create_registered_model(NAME)
    for _ in range(3):
        mlflow_client.create_model_version(NAME, (tmp_path / "weights").as_uri())
    return mlflow_client


class Died(BaseException):
    """Stands for kill -9 between two registry calls."""


def test_a_writer_killed_between_intent_and_move_leaves_no_unaudited_move(client, monkeypatch):
    move_alias(client, NAME, "champion", 1, expect_current=None, actor="ops")
    real = client.set_registered_model_alias
    monkeypatch.setattr(client, "set_registered_model_alias", lambda *a: (_ for _ in ()).throw(Died()))
    with pytest.raises(Died):
        move_alias(client, NAME, "champion", 2, expect_current="1", actor="ops")
    monkeypatch.setattr(client, "set_registered_model_alias", real)
    assert aliases.alias_version(client, NAME, "champion") == "1"
    assert [e["to"] for e in read_history(client, NAME)] == ["1"], "the move never happened: not in the history"
    lease._delete_lock(client, NAME)  # the dead writer's lease (a live breaker would wait out its ttl)
    move_alias(client, NAME, "champion", 3, expect_current="1", actor="ops")
    states = sorted(
        json.loads(v)["state"] for k, v in client.get_registered_model(NAME).tags.items() if k.startswith("audit.")
    )
    assert states == ["abandoned", "done", "done"]
    assert [(e["from"], e["to"]) for e in read_history(client, NAME)] == [(None, "1"), ("1", "3")]


def test_a_writer_killed_after_the_move_is_audited_as_done(client, monkeypatch):
    import pipeline.registry.aliases as module

    monkeypatch.setattr(module, "_mark_entry", lambda *a: (_ for _ in ()).throw(Died()))
    with pytest.raises(Died):
        move_alias(client, NAME, "champion", 1, expect_current=None, actor="ops")
    monkeypatch.undo()
    assert [e["to"] for e in read_history(client, NAME)] == ["1"], "the move happened and is in the history"
    lease._delete_lock(client, NAME)
    move_alias(client, NAME, "challenger", 2, actor="ops")
    assert all(
        json.loads(v)["state"] == "done"
        for k, v in client.get_registered_model(NAME).tags.items()
        if k.startswith("audit.")
    )


def test_a_lost_answer_to_the_lease_create_is_recognised_as_ours(client, monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS

    real = client.create_registered_model
    calls = []

    def lost_then_retried(*args, **kwargs):
        calls.append(1)
        real(*args, **kwargs)  # the server did it, then the answer was lost; the retry finds it there
        raise MlflowException("already exists", error_code=RESOURCE_ALREADY_EXISTS)

    monkeypatch.setattr(client, "create_registered_model", lost_then_retried)
    token = lease.acquire_lease(client, NAME, "me", wait_s=2)
    assert len(calls) == 1 and lease._read_lease(client, NAME)["token"] == token


def test_the_lease_outlives_the_client_retry_budget_and_is_not_judged_by_wall_clocks(client, monkeypatch):
    assert lease.default_ttl_s() > 2 * current_retry_budget_s()
    token = lease.acquire_lease(client, NAME, "me")
    tags = client.get_registered_model(lease.lock_name(NAME)).tags
    assert float(tags["ttl_s"]) == pytest.approx(lease.default_ttl_s())
    monkeypatch.setattr(lease.time, "time", lambda: 4_000_000_000.0)  # this machine's clock jumps 60 years
    with pytest.raises(lease.RegistryLockTimeout):
        lease.acquire_lease(client, NAME, "other", wait_s=0.5)
    lease.verify_lease(client, NAME, token)  # still ours, by our own monotonic clock
    lease.release_lease(client, NAME, token)


def test_a_lock_lost_after_the_move_says_the_alias_was_written(client, monkeypatch):
    real = client.set_registered_model_alias

    def someone_else_wins(name, alias, version):
        real(name, alias, version)
        real(name, alias, "3")

    monkeypatch.setattr(client, "set_registered_model_alias", someone_else_wins)
    with pytest.raises(LockLostError, match="another writer moved it since") as caught:
        move_alias(client, NAME, "champion", 1, expect_current=None, actor="ops")
    assert caught.value.written
