"""One run per workspace and model: the workspace run lock, plus a Prefect global concurrency limit when a
Prefect server (``PREFECT_API_URL``) holds the runs, so runs on other machines of the same server wait too.

Every flow that trains takes this guard itself, so ``pipeline run``, ``pipeline retrain``, ``pipeline deploy``
and ``prefect deploy`` deployments are all covered, whatever limits a deployment declares.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.config import PipelineConfig
from pipeline.run_lock import RunInProgressError, hold_run_lock
from pipeline.workspace import Workspace

logger = logging.getLogger(__name__)
# Taking a slot is a few API calls that count against the timeout: a busy server needs seconds for them.
SLOT_MIN_WAIT_S = 30.0
_slots: set[str] = set()
_slots_guard = threading.Lock()


def run_limit_name(model_name: str) -> str:
    """The global concurrency limit a run of ``model_name`` occupies (not the deployments' own limit)."""
    return "pipeline-run-" + re.sub(r"[^A-Za-z0-9_-]", "-", model_name)


def server_api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def ensure_run_limit(name: str) -> None:
    """Create the one-slot limit ``name`` unless it exists (an existing one is left as its owner set it)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:
                pass


@contextmanager
def one_run_per_model(config: PipelineConfig, workspace: Workspace, what: str = "") -> Iterator[None]:
    """Hold the model's run lock (and its server-wide slot); RunInProgressError when another run holds it
    for longer than ``deployment.run_lock_wait_s``. Re-entrant: a subflow inside a guarded flow passes."""
    model, wait = config.registry.model_name, config.deployment.run_lock_wait_s
    with hold_run_lock(workspace, model, wait_s=wait, what=what):
        name = run_limit_name(model)
        with _slots_guard:
            nested = name in _slots
        if nested or not server_api_url():
            yield
            return
        from prefect.concurrency.sync import concurrency

        ensure_run_limit(name)
        try:
            slot = concurrency(name, occupy=1, timeout_seconds=max(wait, SLOT_MIN_WAIT_S), strict=True)
            slot.__enter__()
        except TimeoutError:
            raise RunInProgressError(
                f"another run of {model} holds the Prefect concurrency limit {name} "
                f"(waited {max(wait, SLOT_MIN_WAIT_S):g} s); retry when it finishes"
            ) from None
        with _slots_guard:
            _slots.add(name)
        try:
            yield
        finally:
            with _slots_guard:
                _slots.discard(name)
            slot.__exit__(None, None, None)
