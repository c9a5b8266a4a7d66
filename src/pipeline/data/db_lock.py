"""Locks in PostgreSQL, for workers that share no file system: session-level advisory locks.

A lock is held by one database session, on a connection opened for it alone. The server drops it when that
session ends, so a worker that dies (even by ``kill -9``, or with its machine) never leaves a stale lock:
the connection's TCP keepalives end the session within about a minute. ``AdvisoryLock`` has the part of
``filelock.FileLock``'s interface the data store and the run lock use (``acquire`` raising ``Timeout``,
``release``, ``timeout``), so either serves. The holder is named in the session's ``application_name``,
so a busy error can say who holds the lock.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time

from filelock import Timeout

CONNECT_TIMEOUT_S = 10
POLL_S = 0.5


def postgres_connect(url: str, purpose: str, statement_timeout_s: float = 60.0, application_name: str = ""):
    """A psycopg connection (autocommit) with deadlines: connect, each statement, and dead-peer detection."""
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://").replace("postgresql+psycopg2://", "postgresql://")
    name = application_name or f"pipeline {purpose} {socket.gethostname()} pid {os.getpid()}"
    return psycopg.connect(
        conninfo,
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT_S,
        application_name=name[:63],
        keepalives=1,
        keepalives_idle=20,
        keepalives_interval=5,
        keepalives_count=4,
        options=f"-c statement_timeout={int(max(statement_timeout_s, 1.0) * 1000)}",
    )


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name`` (the same in every process)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


class AdvisoryLock:
    """``name`` locked in the PostgreSQL database at ``url``; re-entrant within one object."""

    def __init__(self, url: str, name: str, timeout: float = -1, what: str = ""):
        self.url, self.name, self.timeout, self.what = url, name, timeout, what
        self.key = lock_key(name)
        self._connection = None
        self._count = 0

    @property
    def is_locked(self) -> bool:
        return self._count > 0

    def acquire(self, timeout: float | None = None, poll_interval: float = POLL_S) -> AdvisoryLock:
        """Take the lock, waiting up to ``timeout`` seconds (``self.timeout`` when None; < 0: forever)."""
        if self._count:
            self._count += 1
            return self
        wait = self.timeout if timeout is None else timeout
        label = f"pid {os.getpid()} on {socket.gethostname()}" + (f" ({self.what})" if self.what else "")
        connection = postgres_connect(self.url, "lock", application_name=label)
        deadline = time.monotonic() + wait if wait >= 0 else None
        try:
            while not connection.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]:
                if deadline is not None and time.monotonic() >= deadline:
                    raise Timeout(self.name)
                time.sleep(poll_interval)
        except BaseException:
            connection.close()
            raise
        self._connection, self._count = connection, 1
        return self

    def release(self) -> None:
        if not self._count:
            return
        self._count -= 1
        if self._count:
            return
        connection, self._connection = self._connection, None
        try:
            connection.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        finally:
            connection.close()  # ending the session frees the lock even if the unlock failed

    def holder(self) -> str:
        """Who holds the lock now (``pid N on HOST (what)``, its session's application name; PostgreSQL keeps
        63 characters), or ``another process``."""
        try:
            with postgres_connect(self.url, "lock query") as connection:
                row = connection.execute(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.objid::bigint = (%s::bigint & 4294967295) "
                    "AND l.classid::bigint = ((%s::bigint >> 32) & 4294967295) LIMIT 1",
                    (self.key, self.key),
                ).fetchone()
        except Exception:
            return "another process"
        return row[0] if row and row[0] else "another process"

    def __enter__(self) -> AdvisoryLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def data_lock(workspace, timeout: float):
    """The workspace's data lock: advisory in the ledger's PostgreSQL database, else a file lock next to the
    ledger (the workspace folder, or a shared SQLite ledger's folder)."""
    from filelock import FileLock

    from pipeline.secrets import resolve_secret

    url = resolve_secret(workspace.ledger_url) if workspace.ledger_url else None
    if url and url.startswith("postgres"):
        return AdvisoryLock(url, f"data:{workspace.storage or workspace.root}", timeout, "ingest")
    if url:
        return FileLock(url.removeprefix("sqlite:///") + ".lock", timeout=timeout)
    return FileLock(str(workspace.lock_file), timeout=timeout)
