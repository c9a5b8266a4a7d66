"""One training run per workspace and registered model at a time.

Two runs of the same model in one workspace would share the landing zone, the checkpoints and the
registry's last word, so the second one waits for the first (up to ``wait_s``) or stops with
``RunInProgressError`` naming the holder. The lock is an OS file lock (``fcntl``/``LockFileEx`` through
``filelock``): the kernel drops it when the holder dies, even by ``kill -9``, so a crash never leaves a
stale lock behind. Taking it again in the same process (a flow that runs another as a subflow) is a no-op.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from pipeline.workspace import Workspace

logger = logging.getLogger(__name__)

EXIT_CODE_BUSY = 75  # EX_TEMPFAIL: try again later
_held: dict[str, int] = {}
_guard = threading.Lock()


class RunInProgressError(RuntimeError):
    """Another run of this model holds the workspace."""

    exit_code = EXIT_CODE_BUSY


def lock_path(workspace: Workspace, model_name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", model_name)
    return workspace.root / "locks" / f"run-{safe}.lock"


def _describe_holder(path: Path) -> str:
    try:
        holder = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        return f"pid {holder['pid']} on {holder['host']} since {holder['since']} ({holder.get('what') or 'a run'})"
    except (OSError, ValueError, KeyError):
        return "another process"


@contextmanager
def hold_run_lock(workspace: Workspace, model_name: str, wait_s: float = 0.0, what: str = "") -> Iterator[None]:
    """Hold the run lock of ``model_name`` in ``workspace``; RunInProgressError after ``wait_s`` seconds."""
    path = lock_path(workspace, model_name)
    key = str(path)
    with _guard:
        if _held.get(key):
            _held[key] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock, describe = _lock_for(workspace, model_name, path, what)
    try:
        lock.acquire(timeout=max(wait_s, 0.0), poll_interval=0.5)
    except Timeout:
        raise RunInProgressError(
            f"another run of {model_name} is in progress in workspace {workspace.storage or workspace.root} "
            f"({describe()}); it was not started (waited {wait_s:g} s). Retry when it finishes."
        ) from None
    try:
        with _guard:
            _held[key] = 1
        path.with_suffix(".json").write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "what": what,
                    "since": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            ),
            encoding="utf-8",
        )
        yield
    finally:
        with _guard:
            _held.pop(key, None)
        lock.release()


def _lock_for(workspace: Workspace, model_name: str, path: Path, what: str):
    """An advisory lock in the ledger's PostgreSQL database when the workspace has one (workers on several
    machines share the data storage), else the OS file lock at ``path``; and how to describe its holder."""
    from pipeline.secrets import resolve_secret

    url = resolve_secret(workspace.ledger_url) if workspace.ledger_url else None
    if url and url.startswith("postgres"):
        from pipeline.data.db_lock import AdvisoryLock

        lock = AdvisoryLock(url, f"run:{workspace.storage or workspace.root}:{model_name}", what=what)
        return lock, lock.holder
    return FileLock(str(path), is_singleton=False), lambda: _describe_holder(path)


def is_held_here(workspace: Workspace, model_name: str) -> bool:
    """Whether this process holds the run lock of ``model_name`` (the flow checks before taking it again)."""
    return bool(_held.get(str(lock_path(workspace, model_name))))
