"""The registry lease behind every alias move: a lock model created to acquire and deleted to release."""

from __future__ import annotations

import logging
import random
import time
import uuid
from contextlib import contextmanager

logger = logging.getLogger(__name__)

LOCK_SUFFIX = "--alias-lock"


LOCK_TAG = "pipeline.alias_lock"


class RegistryLockTimeout(RuntimeError):
    """Another writer held the model's alias lease for longer than we were willing to wait."""


class LockLostError(RuntimeError):
    """Our lease expired or was taken over. ``written`` says whether the alias had already been moved."""

    def __init__(self, message: str, written: bool = False):
        self.written = written
        super().__init__(message)


def lock_name(name: str) -> str:
    return f"{name}{LOCK_SUFFIX}"


def is_lock_model(model) -> bool:
    return model.name.endswith(LOCK_SUFFIX) and model.tags.get(LOCK_TAG) == "true"


def _error_code(exc) -> str:
    return str(getattr(exc, "error_code", ""))


def _read_lease(client, name: str) -> dict | None:
    from mlflow.exceptions import MlflowException

    try:
        return dict(client.get_registered_model(lock_name(name)).tags)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in _error_code(exc):
            return None
        raise


def default_ttl_s() -> float:
    """Lease ttl: twice the MLflow client's worst-case retry budget plus 30 s (a holder's call never outlives it)."""
    from pipeline.registry.connection import current_retry_budget_s

    return 2 * current_retry_budget_s() + 30.0


def default_wait_s() -> float:
    """How long a writer waits for the lease by default: long enough to outwait a crashed holder's ttl."""
    return default_ttl_s() + 10.0


_acquired: dict[str, tuple[float, float]] = {}  # our tokens -> (monotonic time taken, ttl_s)


def acquire_lease(client, name: str, holder: str, ttl_s: float | None = None, wait_s: float | None = None) -> str:
    """Take the alias lease of model ``name``; returns its token. Raises RegistryLockTimeout after ``wait_s``."""
    from mlflow.exceptions import MlflowException

    ttl_s = default_ttl_s() if ttl_s is None else ttl_s
    wait_s = default_wait_s() if wait_s is None else wait_s
    token, deadline, pause = uuid.uuid4().hex, time.monotonic() + wait_s, 0.05
    first_seen: dict[str, float] = {}  # other holders' tokens -> when we first saw them (our monotonic clock)
    while True:
        taken_at = time.monotonic()
        tags = {
            LOCK_TAG: "true",
            "token": token,
            "holder": holder,
            "ttl_s": f"{ttl_s:.3f}",
            "expires": f"{time.time() + ttl_s:.3f}",
        }  # ``expires``: informational, for people reading it
        try:
            client.create_registered_model(
                lock_name(name), tags=tags, description=f"Alias lease of {name} held by {holder}; deleted when done."
            )
            _acquired[token] = (taken_at, ttl_s)
            return token
        except MlflowException as exc:
            # Exists, or vanished between the failed insert and the store's follow-up read: contended.
            if not any(code in _error_code(exc) for code in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST")):
                raise
        lease = _read_lease(client, name)
        if lease is not None and lease.get("token") == token:  # our create went through; its answer was lost
            _acquired[token] = (taken_at, ttl_s)
            return token
        if lease is not None:
            seen = first_seen.setdefault(lease.get("token", ""), time.monotonic())
            if time.monotonic() - seen > float(lease.get("ttl_s") or ttl_s):
                _break_lease(client, name, lease)
                continue
        if time.monotonic() > deadline:
            who = lease.get("holder", "?") if lease else "?"
            raise RegistryLockTimeout(
                f"{name}: alias lease held by {who} for more than {wait_s:.0f} s; "
                f"retry, or delete the registered model {lock_name(name)!r} if its holder died"
            )
        time.sleep(pause * (1 + random.random()))
        pause = min(pause * 2, 1.0)


def _delete_lock(client, name: str) -> None:
    """Delete the lock model; one that is already gone is fine."""
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model(lock_name(name))
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" not in _error_code(exc):
            raise


def _break_lease(client, name: str, stale: dict) -> None:
    current = _read_lease(client, name)
    if current is None or current.get("token") != stale.get("token"):
        return
    logger.warning("breaking the expired alias lease of %s held by %s", name, stale.get("holder"))
    _delete_lock(client, name)


def release_lease(client, name: str, token: str) -> None:
    """Delete the lease if it is still ours (never someone else's)."""
    _acquired.pop(token, None)
    lease = _read_lease(client, name)
    if lease is None or lease.get("token") != token:
        logger.warning("alias lease of %s was no longer ours at release", name)
        return
    _delete_lock(client, name)


def verify_lease(client, name: str, token: str) -> None:
    """Raise LockLostError (nothing written yet) unless the lease is ours and, on our own clock, enough of its
    ttl is left for one more call at the client's worst-case retry budget."""
    from pipeline.registry.connection import current_retry_budget_s

    lease = _read_lease(client, name)
    taken_at, ttl_s = _acquired.get(token, (0.0, 0.0))
    left = ttl_s - (time.monotonic() - taken_at)
    if lease is None or lease.get("token") != token or left <= min(current_retry_budget_s(), ttl_s / 2):
        raise LockLostError(f"{name}: the alias lease expired or was taken over before the write; nothing written")


@contextmanager
def alias_lease(client, name: str, holder: str, ttl_s: float | None = None, wait_s: float | None = None):
    """Hold the alias lease of ``name`` for the ``with`` block; yields the token."""
    token = acquire_lease(client, name, holder, ttl_s, wait_s)
    try:
        yield token
    finally:
        release_lease(client, name, token)
