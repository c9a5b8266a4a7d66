"""Options and helpers shared by the ``pipeline`` command groups."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.config import ConfigError, PipelineConfig, load_config
from pipeline.workspace import Workspace, apply_environment_defaults

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML configuration file.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override, e.g. training.epochs=2 (repeatable).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def configure_logging() -> None:
    """Progress and stage logs to stderr (stdout stays clean for --json); quiet chatty clients."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "alembic", "urllib3", "matplotlib", "mlflow.store"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str, as_json: bool, code: int = 1, **extra) -> None:
    if as_json:
        typer.echo(json.dumps({"status": "failed", "error": message, **extra}, default=str))
    typer.echo(f"error: {message}".splitlines()[0], err=True)
    raise typer.Exit(code)


def build_config(config_file: Path | None, overrides: list[str] | None, data: list[str] | None = None,
                 as_json: bool = False) -> PipelineConfig:
    try:
        config = load_config(config_file, overrides)
    except ConfigError as exc:
        fail(str(exc), as_json, code=2)
    if data:
        config.data.paths = list(data)
    apply_environment_defaults(Workspace.resolve(config.workspace))
    return config


def run_flow(module: str, attribute: str, as_json: bool, **kwargs) -> dict:
    """Run a Prefect flow in this process; returns its result or exits non-zero with the reason."""
    if os.environ.get("PREFECT_HOME"):  # the temporary Prefect server needs it at start
        Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    flow = getattr(importlib.import_module(module), attribute)
    state = flow(return_state=True, **kwargs)
    result = state.result(raise_on_failure=False)
    if not state.is_completed() or isinstance(result, BaseException):
        reason = f"{type(result).__name__}: {result}" if isinstance(result, BaseException) else state.message
        fail(str(reason), as_json, flow_run_state=state.type.value)
    return result


LINK_LABELS = {"prefect_flow_run": "Prefect flow run", "mlflow_run": "MLflow run",
               "mlflow_logged_model": "MLflow logged model", "mlflow_model_version": "MLflow version"}


def link_lines(result: dict) -> list[str]:
    """``label: address`` for each link of a flow result; says how to get MLflow links when none is known."""
    links = result.get("links") or {}
    lines = [f"{label}: {links[key]}" for key, label in LINK_LABELS.items() if links.get(key)]
    if links.get("prefect_flow_run_id") and not links.get("prefect_flow_run"):
        lines.append(f"Prefect flow run: {links['prefect_flow_run_id']} (no Prefect UI: a temporary server ran it)")
    if not links.get("mlflow_run") and result.get("run_id"):
        lines.append(f"MLflow run: {result['run_id']} in {result.get('tracking_uri')} "
                     "(set registry.ui_url to the MLflow UI for links)")
    return lines
