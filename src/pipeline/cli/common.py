"""Options and helpers shared by the ``pipeline`` command groups.

This module is the CLI's one door to the Prefect side (``pipeline.flows``, ``pipeline.deployments``):
``prefect_module`` imports it lazily, so the library itself never imports Prefect.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from pipeline.config import ConfigError, PipelineConfig, load_config
from pipeline.workspace import Workspace, apply_environment_defaults

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration file.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override, e.g. training.epochs=2 (repeatable).")]
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


def build_config(
    config_file: Path | None, overrides: list[str] | None, data: list[str] | None = None, as_json: bool = False
) -> PipelineConfig:
    try:
        config = load_config(config_file, overrides)
    except ConfigError as exc:
        fail(str(exc), as_json, code=2)
    if data:
        config.data.paths = list(data)
    apply_environment_defaults(Workspace.for_config(config))
    from pipeline.registry.connection import apply_http_deadlines

    apply_http_deadlines(config.tracking)
    return config


def prefect_module(module: str):
    """Import a module of the Prefect side (``pipeline.flows.*`` or ``pipeline.deployments.*``)."""
    if not module.startswith(("pipeline.flows.", "pipeline.deployments.")):
        raise ValueError(f"{module} is not a flows or deployments module")
    return importlib.import_module(module)


def check_tracking(config: PipelineConfig, as_json: bool) -> None:
    """Exit non-zero at once, in one line naming the server, when the MLflow tracking server does not answer."""
    from pipeline.registry.connection import TrackingUnavailableError, check_tracking_server

    try:
        check_tracking_server(Workspace.for_config(config).tracking_uri(config.tracking.tracking_uri))
    except TrackingUnavailableError as exc:
        fail(str(exc), as_json, code=1)


def run_flow(module: str, attribute: str, as_json: bool, **kwargs) -> dict:
    """Run a Prefect flow in this process; returns its result or exits non-zero with the reason."""
    if os.environ.get("PREFECT_HOME"):  # the temporary Prefect server needs it at start
        Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    flow = getattr(prefect_module(module), attribute)
    try:
        state = flow(return_state=True, **kwargs)
        result = state.result(raise_on_failure=False)
    except Exception as exc:  # the Prefect API unreachable, its database locked...: one line, not a traceback
        logging.getLogger(__name__).debug("flow %s could not run", attribute, exc_info=True)
        fail(f"could not run the flow ({_describe_prefect_error(exc)})", as_json)
    if not state.is_completed() or isinstance(result, BaseException):
        from pipeline.secrets import config_secrets, redact_text

        reason = f"{type(result).__name__}: {result}" if isinstance(result, BaseException) else state.message
        config = kwargs.get("config")
        secrets = config_secrets(config) if isinstance(config, PipelineConfig) else []
        fail(redact_text(str(reason), secrets), as_json, flow_run_state=state.type.value)
    return result


@contextmanager
def run_guard(config: PipelineConfig, as_json: bool, what: str):
    """Hold the model's run lock for the command; exit 75 at once (one line) when another run holds it."""
    from pipeline.run_lock import RunInProgressError, hold_run_lock

    workspace = Workspace.for_config(config)
    try:
        lock = hold_run_lock(workspace, config.registry.model_name, config.deployment.run_lock_wait_s, what)
        lock.__enter__()
    except RunInProgressError as exc:
        fail(str(exc), as_json, code=exc.exit_code)
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def _describe_prefect_error(exc: BaseException) -> str:
    """``Type: first line``, naming the Prefect API when the error is about reaching it."""
    from pipeline.secrets import redact_text

    text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    api = os.environ.get("PREFECT_API_URL")  # (the library never imports prefect; a profile's URL is in the error)
    if api and any(word in type(exc).__name__ for word in ("Connect", "Timeout", "Network", "Protocol")):
        text = f"Prefect API {api} is unreachable: {text}"
    return redact_text(text, [])


LINK_LABELS = {
    "prefect_flow_run": "Prefect flow run",
    "mlflow_run": "MLflow run",
    "mlflow_logged_model": "MLflow logged model",
    "mlflow_model_version": "MLflow version",
}


def link_lines(result: dict) -> list[str]:
    """``label: address`` for each link of a flow result; says how to get MLflow links when none is known."""
    links = result.get("links") or {}
    lines = [f"{label}: {links[key]}" for key, label in LINK_LABELS.items() if links.get(key)]
    if links.get("prefect_flow_run_id") and not links.get("prefect_flow_run"):
        lines.append(f"Prefect flow run: {links['prefect_flow_run_id']} (no Prefect UI: a temporary server ran it)")
    if not links.get("mlflow_run") and result.get("run_id"):
        lines.append(
            f"MLflow run: {result['run_id']} in {result.get('tracking_uri')} "
            "(set tracking.ui_url to the MLflow UI for links)"
        )
    return lines
