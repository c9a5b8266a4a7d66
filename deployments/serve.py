"""Register the deployments on a Prefect server and run them on this machine (``pipeline deploy``).

Every step is idempotent: the process work pool is created when missing, the deployments are created or
updated, and the global concurrency limit ``pipeline-model-<model>`` (1 slot) is created and shared by
the training and retraining deployments, so at most one of them runs per registered model; a run
that collides waits (state AwaitingConcurrencySlot) or is cancelled, per ``deployment.collision_strategy``.
Each deployment also gets its server-side automations (``pipeline.deployments.automations``): failure
notices, a deadline and crash detection.
Then the process is replaced by ``prefect worker start``, which stops cleanly on SIGTERM or Ctrl-C.

Run it directly with ``python -m pipeline.deployments.serve [--config FILE] [--set KEY=VALUE ...]``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL
from prefect.workers.process import ProcessWorker

from pipeline.config import PipelineConfig
from pipeline.deployments.automations import ensure_automations
from pipeline.deployments.definitions import MODEL_LIMITED, build_deployments, model_limit_name, pinned_config

logger = logging.getLogger(__name__)


class ServeError(RuntimeError):
    """No Prefect server to deploy to, or it refused a deployment."""


def check_server() -> str:
    """The API URL of a healthy Prefect server; raises ServeError naming what to do otherwise."""
    url = PREFECT_API_URL.value()
    if not url:
        raise ServeError(
            "no Prefect server configured: start one with `prefect server start` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api (or pass --api-url)"
        )
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise ServeError(f"the Prefect server at {url} is not reachable: {problem}")
    return url


def ensure_work_pool(client, name: str) -> bool:
    """Create the process work pool (with the process worker's job template) unless it exists; True if created."""
    try:
        client.create_work_pool(
            WorkPoolCreate(
                name=name, type=ProcessWorker.type, base_job_template=ProcessWorker.get_default_base_job_template()
            )
        )
    except ObjectAlreadyExists:
        return False
    logger.info("created work pool %s", name)
    return True


def ensure_model_limit(client, model_name: str) -> UUID:
    """Create (or reset to 1 slot) the model's global concurrency limit; returns its id."""
    name = model_limit_name(model_name)
    client.upsert_global_concurrency_limit_by_name(name, 1)
    return client.read_global_concurrency_limit_by_name(name).id


def link_model_limit(client, deployment_id: UUID, limit_id: UUID | None, collision_strategy: str | None) -> None:
    """Make the deployment take its run slot from the shared limit (the REST API's ``global_concurrency_limit_id``);
    ``limit_id=None`` unlinks it."""
    body = {"global_concurrency_limit_id": str(limit_id) if limit_id else None}
    if collision_strategy:
        body["concurrency_options"] = {"collision_strategy": collision_strategy}
    response = client.request("PATCH", "/deployments/{id}", path_params={"id": deployment_id}, json=body)
    response.raise_for_status()


def unlink_existing(client, full_name: str) -> None:
    """Unlink an existing deployment from its shared limit before it is re-applied: applying a deployment
    without a limit of its own deletes the limit it points at (and the slots runs hold on it)."""
    try:
        deployment = client.read_deployment_by_name(full_name)
    except ObjectNotFound:
        return
    if deployment.global_concurrency_limit is not None:
        link_model_limit(client, deployment.id, None, None)


def deploy_all(config: PipelineConfig) -> dict[str, UUID]:
    """Work pool, deployments and the shared concurrency limit; returns ``{deployment name: id}``."""
    pool = config.deployment.work_pool
    with get_client(sync_client=True) as client:
        ensure_work_pool(client, pool)
        deployments = build_deployments(config)
        for name in MODEL_LIMITED:
            unlink_existing(client, deployments[name].full_name)
        ids = {name: deployment.apply(work_pool_name=pool) for name, deployment in deployments.items()}
        limit_id = ensure_model_limit(client, config.registry.model_name)
        for name in MODEL_LIMITED:
            link_model_limit(client, ids[name], limit_id, config.deployment.collision_strategy)
        automations = ensure_automations(client, config, ids)
    logger.info("%d automations in place: %s", len(automations), ", ".join(sorted(automations)))
    return ids


def worker_command(pool: str, worker_name: str | None = None) -> list[str]:
    name = worker_name or f"pipeline-{socket.gethostname()}"
    return [
        sys.executable,
        "-m",
        "prefect",
        "worker",
        "start",
        "--pool",
        pool,
        "--type",
        ProcessWorker.type,
        "--name",
        name,
    ]


def start_worker(config: PipelineConfig, worker_name: str | None = None) -> None:
    """Replace this process by a process worker on the configured pool (never returns).

    SIGINT is reset to its default first: a process started in the background by a script inherits an
    ignored SIGINT, and the worker turns SIGTERM into SIGINT to stop.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    command = worker_command(config.deployment.work_pool, worker_name)
    env = {**os.environ, "PIPELINE_HOME": pinned_config(config).workspace}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, env)


def serve(
    config: PipelineConfig, run_worker: bool = True, worker_name: str | None = None, echo=print
) -> dict[str, UUID]:
    """Deploy everything, print where to look, then (unless ``run_worker`` is False) become the worker."""
    url = check_server()
    ids = deploy_all(config)
    ui = url.removesuffix("/api")
    for name, deployment_id in ids.items():
        echo(f"deployment {name}: {ui}/deployments/deployment/{deployment_id}")
    if run_worker:
        echo(f"starting a process worker on pool {config.deployment.work_pool!r} (Ctrl-C or SIGTERM stops it)")
        start_worker(config, worker_name)
    return ids


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - thin CLI
    import argparse

    from pipeline.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--no-worker", action="store_true")
    args = parser.parse_args(argv)
    serve(load_config(args.config, args.set), run_worker=not args.no_worker)


if __name__ == "__main__":  # pragma: no cover
    main()
