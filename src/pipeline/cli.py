"""The ``pipeline`` command line: run the flows, manage data, models and deployments.

Flow commands import ``flows.*`` lazily (that is where Prefect lives); the library stays Prefect-free.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.config import ConfigError, PipelineConfig, load_config
from pipeline.workspace import Workspace, apply_environment_defaults

app = typer.Typer(help="Continuous fine-tuning pipeline for transformer text classifiers.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="Landing zone, ledger and snapshots.", no_args_is_help=True)
app.add_typer(data_app, name="data")

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
    flow = getattr(importlib.import_module(module), attribute)
    state = flow(return_state=True, **kwargs)
    result = state.result(raise_on_failure=False)
    if not state.is_completed() or isinstance(result, BaseException):
        reason = f"{type(result).__name__}: {result}" if isinstance(result, BaseException) else state.message
        fail(str(reason), as_json, flow_run_state=state.type.value)
    return result


@app.command()
def run(data: Annotated[Optional[list[str]], typer.Option("--data", "-d", help="File, folder or URL to ingest (repeatable).")] = None,
        config: ConfigOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Run the training flow end to end: ingest, validate, fine-tune, evaluate, register."""
    cfg = build_config(config, set_, data, as_json)
    configure_logging()
    result = run_flow("flows.training", "training_flow", as_json, config=cfg)
    if as_json:
        keys = ["status", "run_id", "tracking_uri", "snapshot_id", "model_name", "model_version", "aliases", "metrics",
                "resumed_from_step", "gate", "training"]
        typer.echo(json.dumps({k: result.get(k) for k in keys}, default=str))
    else:
        m = result["metrics"]
        typer.echo(f"registered {result['model_name']} v{result['model_version']} {result['aliases']} "
                   f"accuracy={m['accuracy']:.4f} macro_f1={m['macro_f1']:.4f} (snapshot {result['snapshot_id']})")


@app.command()
def demo(batch: Annotated[Optional[list[int]], typer.Option("--batch", "-b", help="Demo batch 1, 2 or 3 (repeatable).")] = None,
         to: Annotated[Optional[Path], typer.Option(help="Folder to write to (default: the landing zone).")] = None,
         rows: Annotated[int, typer.Option(help="Rows per batch.")] = 1200,
         config: ConfigOpt = None) -> None:
    """Write the generated demo data set (support-ticket topics) into the landing zone."""
    from pipeline.demo import write_demo_files

    cfg = build_config(config, None)
    folder = to or Workspace.resolve(cfg.workspace).ensure().landing
    for path in write_demo_files(folder, tuple(batch or (1, 2)), rows):
        typer.echo(str(path))


@data_app.command("ingest")
def data_ingest(paths: Annotated[Optional[list[str]], typer.Argument(help="Files, folders or URLs (default: landing zone).")] = None,
                config: ConfigOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Ingest new files into a snapshot, running the data contract on each (bad files are quarantined)."""
    from pipeline import steps

    cfg = build_config(config, set_, paths, as_json)
    workspace = steps.prepare_workspace(cfg)
    outcome = steps.ingest_and_validate(cfg, workspace)
    payload = {k: v for k, v in outcome.to_dict().items() if k != "contracts"}
    if as_json:
        typer.echo(json.dumps(payload, default=str))
    else:
        typer.echo(f"snapshot {outcome.snapshot_id}: {len(outcome.new_files)} new, {len(outcome.skipped_files)} skipped, "
                   f"{len(outcome.quarantined)} quarantined")
        for item in outcome.quarantined:
            typer.echo(f"  quarantined {item['uri']}: {item['rule']} (report {item['report']})")
    if outcome.quarantined:
        raise typer.Exit(1)


@data_app.command("status")
def data_status(config: ConfigOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Current snapshot and files waiting in the landing zone (cheap: hashes only changed files)."""
    from pipeline.datastore import DataStore

    cfg = build_config(config, set_, None, as_json)
    store = DataStore(Workspace.resolve(cfg.workspace), cfg.data)
    ledger = store.read_ledger()
    pending = store.pending(cfg.data.paths or None)
    payload = {"snapshot_id": ledger["head"], "pending_files": [p["uri"] for p in pending],
               "pending_rows": None if not pending else _count_rows(pending, cfg)}
    typer.echo(json.dumps(payload) if as_json else
               f"snapshot {payload['snapshot_id']}; {len(pending)} pending files ({payload['pending_rows']} rows)")


def _count_rows(pending: list[dict], cfg: PipelineConfig) -> int:
    from pipeline.ingestion import IngestionError, read_labeled_file

    total = 0
    for item in pending:
        try:
            total += len(read_labeled_file(item["uri"], cfg.data))
        except IngestionError:
            continue
    return total


@data_app.command("show")
def data_show(snapshot: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Print a snapshot's manifest."""
    from pipeline.snapshots import load_snapshot

    cfg = build_config(config, None)
    try:
        manifest = load_snapshot(Workspace.resolve(cfg.workspace).snapshots, snapshot).manifest.to_dict()
    except FileNotFoundError as exc:
        fail(str(exc), as_json)
    typer.echo(json.dumps(manifest, indent=None if as_json else 2, default=str))


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
