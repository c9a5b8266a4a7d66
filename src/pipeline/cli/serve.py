"""``pipeline serve``: register the deployments on a Prefect server and run them on this machine.

The Prefect side lives in ``pipeline.deployments.serve``, reached through ``cli.common.prefect_module``.
"""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from pipeline.cli.common import ConfigOpt, SetOpt, build_config, configure_logging, fail, prefect_module
from pipeline.workspace import Workspace

app = typer.Typer(help="Deploy the flows to a Prefect server and run them here.", invoke_without_command=True)


@app.callback(invoke_without_command=True)
def serve(config: ConfigOpt = None, set_: SetOpt = None,
          api_url: Annotated[Optional[str], typer.Option(help="Prefect API, e.g. http://127.0.0.1:4200/api "
                                                              "(default: $PREFECT_API_URL).")] = None,
          worker: Annotated[bool, typer.Option(help="Run a worker after deploying (--no-worker: deploy only).")] = True,
          worker_name: Annotated[Optional[str], typer.Option(help="Worker name (default: pipeline-<host>).")] = None) -> None:
    """Create the work pool, the per-model concurrency limit and the deployments (retraining on its schedule
    and on new data; training and ingestion on demand), then run a process worker until SIGTERM or Ctrl-C."""
    cfg = build_config(config, set_)
    Workspace.resolve(cfg.workspace).ensure()
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url
    configure_logging()
    serving = prefect_module("pipeline.deployments.serve")
    try:
        serving.serve(cfg, run_worker=worker, worker_name=worker_name, echo=typer.echo)
    except serving.ServeError as exc:
        fail(str(exc), as_json=False)
