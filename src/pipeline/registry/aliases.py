"""Alias moves that cannot race or lose history: a registry lease, compare-and-set, an audit trail.

MLflow has no compare-and-set: ``set_registered_model_alias`` is last-writer-wins, so two runs that
both read "no champion" would both write one. The design:

1. **Lease.** Mutual exclusion rests on the one atomic primitive every MLflow registry has:
   creating a registered model whose name exists fails (a primary key in the SQL stores, checked by
   the database behind a tracking server too). The lease for model ``NAME`` is the registered model
   ``NAME--alias-lock``; its tags name the holder, a random token and an expiry. Only the holder
   deletes it. A lease held by the same token for longer than its ``ttl_s`` *as timed by the one who
   waits* (its own monotonic clock, never a comparison of two machines' clocks) belongs to a crashed holder
   and is broken. The holder re-checks, on its own clock, that enough of the ttl is left for one more call
   at MLflow's worst-case retry budget before it writes; the default ttl is twice that budget plus 30 s.
   A create whose answer was lost and retried finds our own token there: that is our lease, not contention.
   Works the same for SQLite files and for remote tracking servers, across processes and machines,
   which a file lock could not.
2. **Compare-and-set under the lease.** Read the alias live, refuse with ``AliasMovedError`` when it is
   not what the caller expected, check that the lease is still ours, write, read back.
3. **Audit history, intent first.** Each move first appends one registered-model tag ``audit.NNNNNN``
   holding a JSON entry (who, when, alias, from, to, action, why) in state ``intended``, then moves the
   alias, then marks the entry ``done``. A crash between them leaves an ``intended`` entry that the next
   move (under the lease) reconciles: ``done`` when the alias points where it said, ``abandoned`` when not.
   Entries are numbered under the lease, so concurrent writers cannot overwrite each other's.

Moves made by hand in the MLflow UI bypass this module: they are honoured (aliases are always read
live) and ``history`` reports when the live alias differs from the last recorded move.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import uuid
from datetime import UTC, datetime

from pipeline.faults import fault_point
from pipeline.registry.lease import (
    LockLostError,
    alias_lease,
    verify_lease,
)
from pipeline.registry.tracking import CHAMPION, alias_version

logger = logging.getLogger(__name__)

AUDIT_PREFIX = "audit."
ANY = object()
MAX_REASON = 1000


class AliasMovedError(RuntimeError):
    """The alias no longer points where the caller expected (someone moved it since they looked)."""

    def __init__(self, name: str, alias: str, expected, current):
        self.name, self.alias, self.expected, self.current = name, alias, expected, current
        super().__init__(
            f"refused: {name}@{alias} is now {_show(current)}, not {_show(expected)} as expected "
            f"(it moved since you looked); re-read with `pipeline models list {name}` and retry"
        )


def _show(version) -> str:
    return "unset" if version is None else f"version {version}"


def default_actor() -> str:
    """Who is acting: ``$PIPELINE_ACTOR``, else ``user@host``."""
    if os.environ.get("PIPELINE_ACTOR"):
        return os.environ["PIPELINE_ACTOR"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def read_history(client, name: str) -> list[dict]:
    """Every alias move of ``name`` that took place, oldest first.

    An entry still ``intended`` (its writer died between recording and moving) counts when the live alias
    points where it said and it is the last entry for that alias; ``abandoned`` entries never count.
    """
    model = client.get_registered_model(name)
    entries = sorted(
        (json.loads(v) for k, v in model.tags.items() if k.startswith(AUDIT_PREFIX)), key=lambda e: e["seq"]
    )
    live = {alias: str(version) for alias, version in model.aliases.items()}
    last = {e["alias"]: e["seq"] for e in entries}
    return [
        e
        for e in entries
        if e.get("state", "done") == "done"
        or (e.get("state") == "intended" and last[e["alias"]] == e["seq"] and live.get(e["alias"]) == e["to"])
    ]


def reconcile_history(client, name: str) -> list[dict]:
    """Settle entries left ``intended`` by a writer that died: ``done`` if the alias points where the entry
    said, else ``abandoned``. Call under the lease; returns the entries changed."""
    model = client.get_registered_model(name)
    live = {alias: str(version) for alias, version in model.aliases.items()}
    changed = []
    for key, value in sorted(model.tags.items()):
        if not key.startswith(AUDIT_PREFIX):
            continue
        entry = json.loads(value)
        if entry.get("state") != "intended":
            continue
        entry["state"] = "done" if live.get(entry["alias"]) == entry["to"] else "abandoned"
        client.set_registered_model_tag(name, key, json.dumps(entry, sort_keys=True))
        logger.warning(
            "audit entry %s of %s (%s -> %s) was left unfinished by a writer that died: now %s",
            key,
            name,
            entry["alias"],
            entry["to"],
            entry["state"],
        )
        changed.append(entry)
    return changed


def _append_history(client, name: str, entry: dict) -> dict:
    tags = client.get_registered_model(name).tags
    seq = 1 + max((int(k[len(AUDIT_PREFIX) :]) for k in tags if k.startswith(AUDIT_PREFIX)), default=0)
    entry = {"seq": seq, **entry}
    key = f"{AUDIT_PREFIX}{seq:06d}"
    client.set_registered_model_tag(name, key, json.dumps(entry, sort_keys=True))
    if json.loads(client.get_registered_model(name).tags[key])["id"] != entry["id"]:
        raise LockLostError(f"{name}: audit entry {key} was overwritten by another writer; the alias was not moved")
    return entry


def _mark_entry(client, name: str, entry: dict, state: str) -> dict:
    entry = {**entry, "state": state}
    client.set_registered_model_tag(name, f"{AUDIT_PREFIX}{entry['seq']:06d}", json.dumps(entry, sort_keys=True))
    return entry


def move_alias(
    client,
    name: str,
    alias: str,
    version,
    *,
    expect_current=ANY,
    actor: str | None = None,
    reason: str = "",
    action: str = "promote",
    details: dict | None = None,
    ttl_s: float | None = None,
    wait_s: float | None = None,
) -> dict:
    """Point ``name@alias`` at ``version`` if it still points at ``expect_current`` (None: unset).

    ``expect_current=ANY`` skips the comparison (the move is still serialised and audited). Raises
    AliasMovedError (nothing written) when the alias moved, MlflowException for an unknown version,
    RegistryLockTimeout / LockLostError when the lease cannot be had or kept. Returns the audit entry,
    or ``unchanged: True`` (nothing recorded) when the alias already points at ``version``.
    """
    version = str(version)
    actor = actor or default_actor()
    client.get_model_version(name, version)
    with alias_lease(client, name, actor, ttl_s, wait_s) as token:
        reconcile_history(client, name)
        current = alias_version(client, name, alias)
        if current == version:  # already there (e.g. a retried task): nothing to write or record
            return {"alias": alias, "from": current, "to": version, "action": action, "unchanged": True, "seq": None}
        expected = None if expect_current is None or expect_current is ANY else str(expect_current)
        if expect_current is not ANY and current != expected:
            raise AliasMovedError(name, alias, expected, current)
        verify_lease(client, name, token)
        entry = {
            "id": uuid.uuid4().hex,
            "alias": alias,
            "from": current,
            "to": version,
            "action": action,
            "actor": actor,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "reason": (reason or "")[:MAX_REASON],
            **(details or {}),
            "state": "intended",
        }
        entry = _append_history(client, name, entry)  # the intent first: a crash after it is reconciled
        fault_point("after-alias-intent")
        verify_lease(client, name, token)
        client.set_registered_model_alias(name, alias, version)
        written = alias_version(client, name, alias)
        if written != version:
            raise LockLostError(
                f"{name}@{alias} reads {_show(written)} right after writing {_show(version)}: "
                "another writer moved it since",
                written=True,
            )
        return _mark_entry(client, name, entry, "done")


def champion_stack(history: list[dict], live: str | None) -> list[str]:
    """Champions in the order they served, replaying promotions (push) and rollbacks (pop).

    A live champion that differs from the last recorded one (set by hand in the UI) goes on top.
    """
    stack: list[str] = []
    for entry in (e for e in history if e["alias"] == CHAMPION):
        if entry["action"] == "rollback":
            while stack and stack[-1] != entry["to"]:
                stack.pop()
            if not stack:
                stack.append(entry["to"])
            continue
        if entry["from"] is not None and (not stack or stack[-1] != entry["from"]):
            stack.append(entry["from"])
        if not stack or stack[-1] != entry["to"]:
            stack.append(entry["to"])
    if live is not None and (not stack or stack[-1] != live):
        stack.append(live)
    return stack


def previous_champion(history: list[dict], live: str | None) -> str | None:
    """The champion a rollback returns to, or None when there was none before the current one."""
    stack = champion_stack(history, live)
    return stack[-2] if len(stack) >= 2 else None


def rollback_champion(client, name: str, actor: str | None = None, reason: str = "", **lease) -> dict:
    """Move ``champion`` back to the previous champion (compare-and-set against the live one)."""
    live = alias_version(client, name, CHAMPION)
    target = previous_champion(read_history(client, name), live)
    if target is None:
        raise ValueError(f"{name}: no previous champion to roll back to (champion is {_show(live)})")
    return move_alias(
        client, name, CHAMPION, target, expect_current=live, actor=actor, reason=reason, action="rollback", **lease
    )


def untracked_moves(client, name: str, history: list[dict]) -> list[str]:
    """Aliases whose live version differs from their last recorded move (changed outside the pipeline)."""
    last: dict[str, str] = {}
    for entry in history:
        last[entry["alias"]] = entry["to"]
    live = {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}
    notes = []
    for alias in sorted(set(last) | set(live)):
        if last.get(alias) != live.get(alias):
            notes.append(
                f"{alias} is {_show(live.get(alias))} but the last recorded move set "
                f"{_show(last.get(alias))}: changed outside the pipeline (e.g. the MLflow UI)"
            )
    return notes
