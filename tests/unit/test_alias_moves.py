"""Compare-and-set alias moves, the registry lease and the audit history, on a real SQLite registry."""

import threading
import time

import pytest
from mlflow import MlflowClient

from pipeline.registry import aliases, lease
from pipeline.registry.aliases import AliasMovedError, move_alias, read_history, rollback_champion
from pipeline.registry.lease import RegistryLockTimeout
from tests.unit.registry_db import fresh_registry_uri

NAME = "clf"


@pytest.fixture
def registry_uri(tmp_path, migrated_registry_db):
    uri = fresh_registry_uri(migrated_registry_db, tmp_path)
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model(NAME)
    for _ in range(4):
        client.create_model_version(NAME, (tmp_path / "weights").as_uri())
    return uri


def new_client(uri):
    return MlflowClient(uri, registry_uri=uri)


def race(uri, moves):
    """Start every move at the same instant, each from its own thread and client; collect outcomes."""
    barrier = threading.Barrier(len(moves))
    outcomes = [None] * len(moves)

    def attempt(i, kwargs):
        client = new_client(uri)
        barrier.wait()
        try:
            outcomes[i] = move_alias(client, NAME, **kwargs)
        except AliasMovedError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=attempt, args=(i, kw)) for i, kw in enumerate(moves)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return outcomes


def test_compare_and_set_moves_only_from_the_expected_version(registry_uri):
    client = new_client(registry_uri)
    first = move_alias(client, NAME, "champion", 1, expect_current=None, actor="ops@a", reason="first")
    assert (first["from"], first["to"], first["seq"], first["actor"]) == (None, "1", 1, "ops@a")
    with pytest.raises(AliasMovedError) as info:
        move_alias(client, NAME, "champion", 3, expect_current=2, actor="ops@b")
    assert "champion is now version 1, not version 2" in str(info.value)
    assert client.get_model_version_by_alias(NAME, "champion").version in (1, "1")
    move_alias(client, NAME, "champion", 2, expect_current="1", actor="ops@b", reason="better on refunds")
    again = move_alias(client, NAME, "champion", 2, expect_current="1", actor="retried-task")
    assert again["unchanged"] and again["seq"] is None, "a retry that finds its target in place changes nothing"
    history = read_history(client, NAME)
    assert [(e["from"], e["to"], e["reason"]) for e in history] == [
        (None, "1", "first"),
        ("1", "2", "better on refunds"),
    ]
    assert not any(m.name.endswith(lease.LOCK_SUFFIX) for m in client.search_registered_models()), "lease released"


def test_two_runs_finishing_together_cannot_both_become_champion(registry_uri):
    outcomes = race(
        registry_uri,
        [{"alias": "champion", "version": v, "expect_current": None, "actor": f"run-{v}"} for v in (1, 2, 3)],
    )
    winners = [o for o in outcomes if isinstance(o, dict)]
    losers = [o for o in outcomes if isinstance(o, AliasMovedError)]
    assert len(winners) == 1 and len(losers) == 2
    client = new_client(registry_uri)
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == winners[0]["to"]
    assert all(loser.current == winners[0]["to"] for loser in losers)
    assert [e["to"] for e in read_history(client, NAME)] == [winners[0]["to"]]

    # Both compared against the same champion; only one replaces it.
    champion = winners[0]["to"]
    others = [v for v in ("1", "2", "3", "4") if v != champion][:2]
    outcomes = race(registry_uri, [{"alias": "champion", "version": v, "expect_current": champion} for v in others])
    assert sum(isinstance(o, dict) for o in outcomes) == 1
    assert len(read_history(client, NAME)) == 2


def test_concurrent_writers_never_lose_audit_entries(registry_uri):
    outcomes = race(registry_uri, [{"alias": "challenger", "version": v, "actor": f"writer-{v}"} for v in (1, 2, 3, 4)])
    assert all(isinstance(o, dict) for o in outcomes)
    history = read_history(new_client(registry_uri), NAME)
    assert [e["seq"] for e in history] == [1, 2, 3, 4]
    assert sorted(e["actor"] for e in history) == [f"writer-{v}" for v in (1, 2, 3, 4)]
    for before, after in zip(history, history[1:]):
        assert after["from"] == before["to"], "each entry starts where the previous one ended"


def test_a_held_lease_blocks_other_writers_and_an_expired_one_is_broken(registry_uri):
    client = new_client(registry_uri)
    token = lease.acquire_lease(client, NAME, "holder-a", ttl_s=60)
    with pytest.raises(RegistryLockTimeout, match="holder-a"):
        move_alias(new_client(registry_uri), NAME, "champion", 1, expect_current=None, wait_s=0.5)
    assert aliases.alias_version(client, NAME, "champion") is None
    lease.release_lease(client, NAME, token)

    lease.acquire_lease(client, NAME, "crashed-holder", ttl_s=0.2)
    time.sleep(0.3)
    entry = move_alias(client, NAME, "champion", 1, expect_current=None, actor="next", wait_s=5)
    assert entry["to"] == "1"


def test_unknown_version_is_refused_before_anything_moves(registry_uri):
    from mlflow.exceptions import MlflowException

    client = new_client(registry_uri)
    with pytest.raises(MlflowException):
        move_alias(client, NAME, "champion", 99, expect_current=None)
    assert read_history(client, NAME) == []


def test_rollback_walks_back_through_previous_champions(registry_uri):
    client = new_client(registry_uri)
    for version, expected in ((1, None), (2, "1"), (3, "2")):
        move_alias(client, NAME, "champion", version, expect_current=expected, actor="ops")
    assert rollback_champion(client, NAME, actor="ops", reason="v3 misroutes refunds")["to"] == "2"
    assert rollback_champion(client, NAME, actor="ops")["to"] == "1"
    with pytest.raises(ValueError, match="no previous champion"):
        rollback_champion(client, NAME, actor="ops")
    history = read_history(client, NAME)
    assert [(e["action"], e["from"], e["to"]) for e in history][-2:] == [("rollback", "3", "2"), ("rollback", "2", "1")]


def test_a_move_made_in_the_ui_is_honoured_and_reported(registry_uri):
    client = new_client(registry_uri)
    move_alias(client, NAME, "champion", 1, expect_current=None, actor="ops")
    move_alias(client, NAME, "champion", 2, expect_current="1", actor="ops")
    client.set_registered_model_alias(NAME, "champion", "4")  # by hand, bypassing the pipeline
    history = read_history(client, NAME)
    assert aliases.untracked_moves(client, NAME, history) == [
        "champion is version 4 but the last recorded move set version 2: changed outside the pipeline (e.g. the MLflow UI)"
    ]
    assert aliases.previous_champion(history, "4") == "2"
    entry = rollback_champion(client, NAME, actor="ops")
    assert (entry["from"], entry["to"]) == ("4", "2")


def test_champion_stack_replays_promotions_and_rollbacks():
    def entry(action, src, dst):
        return {"alias": "champion", "action": action, "from": src, "to": dst}

    history = [
        entry("promote", None, "1"),
        entry("promote", "1", "2"),
        entry("promote", "2", "3"),
        entry("rollback", "3", "2"),
        entry("promote", "2", "5"),
        {"alias": "challenger", "action": "promote", "from": None, "to": "9"},
    ]
    assert aliases.champion_stack(history, "5") == ["1", "2", "5"]
    assert aliases.previous_champion(history, "5") == "2"
    assert aliases.previous_champion(history[:1], "1") is None
