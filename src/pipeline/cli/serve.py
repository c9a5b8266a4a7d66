"""``pipeline deploy``: register the deployments and automations on a Prefect server and run a worker here.

``pipeline serve`` is the former name, kept for one release as an alias that warns (Prefect's own
``serve`` and ``mlflow models serve`` mean other things). The Prefect side lives in
``pipeline.deployments.serve``, reached through ``cli.common.prefect_module``.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from pipeline.cli.common import ConfigOpt, SetOpt, build_config, configure_logging, fail, prefect_module
from pipeline.workspace import Workspace

ApiUrlOpt = Annotated[
    str | None, typer.Option(help="Prefect API, e.g. http://127.0.0.1:4200/api (default: $PREFECT_API_URL).")
]
WorkerOpt = Annotated[bool, typer.Option(help="Run a worker after deploying (--no-worker: deploy only).")]
WorkerNameOpt = Annotated[str | None, typer.Option(help="Worker name (default: pipeline-<host>).")]
DEPRECATION = "`pipeline serve` is deprecated and will be removed in the next release: use `pipeline deploy`"


def deploy(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    api_url: ApiUrlOpt = None,
    worker: WorkerOpt = True,
    worker_name: WorkerNameOpt = None,
) -> None:
    """Create the work pool, the per-model concurrency limit, the deployments (retraining on its schedule and on
    new data; training and ingestion on demand) and their automations (failure notices, deadlines), then run a
    process worker until SIGTERM or Ctrl-C."""
    cfg = build_config(config, set_)
    Workspace.for_config(cfg).ensure()
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url
    configure_logging()
    serving = prefect_module("pipeline.deployments.serve")
    try:
        serving.serve(cfg, run_worker=worker, worker_name=worker_name, echo=typer.echo)
    except serving.ServeError as exc:
        fail(str(exc), as_json=False)


def serve(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    api_url: ApiUrlOpt = None,
    worker: WorkerOpt = True,
    worker_name: WorkerNameOpt = None,
) -> None:
    """Deprecated name of `pipeline deploy`."""
    typer.echo(f"warning: {DEPRECATION}", err=True)
    deploy(config, set_, api_url, worker, worker_name)
